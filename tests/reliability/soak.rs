//! The fault-proxy soak: one app stays open while 100 accounts run 10,000 charged jobs through a
//! proxy that faults a quarter of the requests (answers dropped after the ledger committed,
//! resets, refusals, stalls and held answers past the client's timeout, 503 with `Retry-After`),
//! after an outage during which every account's first charge goes pending. Then the faults stop,
//! the background sync drains what is pending within a stated bound, and the ledger's own history
//! is checked: every job that reached its charge step is charged exactly once, in the account that
//! ran it, at its price; no failed job is charged; every account's figures add up.
//!
//! The seed is `SOAK_SEED` (default below). It fixes the jobs, the failed jobs and the sequence of
//! faults; which request meets which fault still depends on scheduling.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tauri_plugin_points::client::{ConsumeRequest, IdempotencyKey, LedgerClient, RetryPolicy};
use tauri_plugin_points::journal::{Journal, PendingCharge};
use tauri_plugin_points::models::{ChargeReceipt, RefusedCharge, Transaction, TransactionKind};
use tauri_plugin_points::sync::SyncListener;
use tauri_plugin_points::{ChargeOutcome, ChargeSync, Session, Sessions, TokenProvider};
use tokio::sync::{watch, Barrier};
use uuid::Uuid;

use crate::common::proxy::{Fault, FaultProxy};
use crate::common::{client_for, fast_sync, in_days};

const DEFAULT_SEED: u64 = 0x5EED_0007;
const ACCOUNTS: usize = 100;
/// Jobs of each account that reach their charge step.
const CHARGES_PER_ACCOUNT: usize = 100;
/// Share of requests faulted outside the outage.
const FAULT_RATE: f64 = 0.25;
/// Share of jobs whose work fails after a successful pre-check (never charged).
const WORK_FAILURE_RATE: f64 = 0.03;
/// Points each account is given (more than 100 jobs at the highest price).
const FUNDS: i64 = 1_000;
/// The client's request timeout: stalls and held answers last longer.
const REQUEST_TIMEOUT: Duration = Duration::from_millis(300);
const STALL: Duration = Duration::from_millis(600);
const RETRY_AFTER_SECS: u64 = 1;
/// How long the ledger stays unreachable while every account's first charge is pending.
const OUTAGE: Duration = Duration::from_secs(1);
/// The bound on the jobs phase (the test stops by itself if the charge path hangs).
const JOBS_BOUND: Duration = Duration::from_secs(240);
/// Every pending charge is acknowledged within this long after the faults stop.
const DRAIN_BOUND: Duration = Duration::from_secs(20);

/// Fixed-price services and their prices in the reference ledger's shipped table.
const SERVICES: [(&str, i64); 6] = [
    ("script", 5),
    ("polish", 1),
    ("title", 1),
    ("compose", 5),
    ("subtitle_burn", 2),
    ("cover_design", 2),
];

/// One job of one account.
#[derive(Debug, Clone)]
struct Job {
    account: usize,
    /// The job's id, sent as the charge's reference: a job charged under two keys shows here.
    reference: String,
    key: String,
    service: &'static str,
    price: i64,
}

/// What one account's jobs did.
#[derive(Debug, Default)]
struct AccountRun {
    /// Jobs that reached their charge step.
    charged: Vec<Job>,
    /// Jobs that failed before it (pre-check unanswered, or the work failed).
    failed: Vec<Job>,
    acknowledged_at_once: usize,
    pending_after_first_send: usize,
    refused: usize,
}

/// Counts what the sync reports, per account.
#[derive(Default)]
struct Tally {
    resent: Mutex<HashMap<String, u64>>,
    replayed: AtomicU64,
    refused: AtomicU64,
}

impl SyncListener for Tally {
    fn acknowledged(&self, charge: &PendingCharge, receipt: &ChargeReceipt, first_send: bool) {
        let account = charge.account.as_str();
        if receipt.replayed {
            self.replayed.fetch_add(1, Ordering::SeqCst);
        }
        if !first_send {
            *self
                .resent
                .lock()
                .unwrap()
                .entry(account.to_owned())
                .or_default() += 1;
        }
    }

    fn refused(&self, _charge: &PendingCharge, _refused: &RefusedCharge) {
        self.refused.fetch_add(1, Ordering::SeqCst);
    }
}

/// The faults outside the outage: `FAULT_RATE` of requests, spread over every kind.
fn seeded_faults(seed: u64) -> impl FnMut(&str) -> Fault + Send + 'static {
    let mut rng = fastrand::Rng::with_seed(seed);
    move |_| {
        if rng.f64() >= FAULT_RATE {
            return Fault::Pass;
        }
        match rng.u32(0..100) {
            0..30 => Fault::DropAnswer,
            30..45 => Fault::Reset,
            45..60 => Fault::Refuse,
            60..75 => Fault::Stall(STALL),
            75..85 => Fault::Delay(STALL),
            _ => Fault::Unavailable {
                retry_after_secs: RETRY_AFTER_SECS,
            },
        }
    }
}

/// Runs one account's jobs as the plugin's `run_charged` does: a price pre-check with the
/// account's token (a success tells the sync the ledger is reachable; a failure fails the job
/// before any work), the work, then the charge through the shared sync with the account's session.
/// The first job is charged during the outage the barriers frame.
async fn run_account(
    account: usize,
    seed: u64,
    session: Session,
    client: LedgerClient,
    sync: ChargeSync,
    outage: Arc<Barrier>,
) -> AccountRun {
    let mut rng = fastrand::Rng::with_seed(seed ^ (account as u64).wrapping_mul(0x9E37_79B9));
    let client = client.as_token(session.token());
    let mut run = AccountRun::default();
    let mut number = 0;
    while run.charged.len() < CHARGES_PER_ACCOUNT {
        number += 1;
        let (service, price) = SERVICES[rng.usize(..SERVICES.len())];
        let reference = format!("a{account:03}-j{number:03}");
        let job = Job {
            account,
            key: format!("{service}:{reference}"),
            reference,
            service,
            price,
        };
        let first = run.charged.is_empty();
        if client.cost(service, None).await.is_err() {
            run.failed.push(job);
            continue;
        }
        sync.ledger_reachable();
        if !first && rng.f64() < WORK_FAILURE_RATE {
            run.failed.push(job);
            continue;
        }
        if first {
            // Work done; the network goes down before its charge (the main task cuts it).
            outage.wait().await;
            outage.wait().await;
        }
        let request = ConsumeRequest {
            allow_debt: true,
            reference: Some(job.reference.clone()),
            ..ConsumeRequest::new(service)
        };
        let key = IdempotencyKey::parse(job.key.clone()).unwrap();
        let charge = PendingCharge::new(session.account(), &key, request);
        match sync.charge(&session, charge).await.outcome() {
            Some(ChargeOutcome::Acknowledged { .. }) => run.acknowledged_at_once += 1,
            Some(ChargeOutcome::Pending { .. }) => run.pending_after_first_send += 1,
            _ => run.refused += 1,
        }
        run.charged.push(job);
        if first {
            // Every first charge is made; the network comes back when the outage ends.
            outage.wait().await;
            outage.wait().await;
        }
    }
    run
}

/// Every entry of `client`'s history, newest first.
async fn history(client: &LedgerClient) -> Vec<Transaction> {
    let mut items = Vec::new();
    let mut before: Option<String> = None;
    loop {
        let page = client
            .transactions(Some(200), before.as_deref())
            .await
            .expect("the ledger's history is readable");
        items.extend(page.items);
        match page.next_cursor {
            Some(cursor) => before = Some(cursor),
            None => return items,
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ten_thousand_charges_through_network_faults_are_each_charged_once_to_their_account() {
    let wall = Instant::now();
    let seed = std::env::var("SOAK_SEED")
        .ok()
        .and_then(|seed| seed.parse().ok())
        .unwrap_or(DEFAULT_SEED);
    let ledger = points_ledger::serve(points_ledger::LedgerConfig::ephemeral())
        .await
        .expect("the reference ledger starts");
    let proxy = FaultProxy::start(&ledger.base_url()).await;

    let mut users = Vec::with_capacity(ACCOUNTS);
    for _ in 0..ACCOUNTS {
        let user = Uuid::new_v4();
        ledger.recharge(user, FUNDS, in_days(30)).await.unwrap();
        let token = ledger.token_for(user);
        let session = Session::new(token.clone(), None).unwrap();
        users.push((user, token, session));
    }

    // The app: one session holder, one client, one journal, one sync, as the plugin assembles
    // them. The client retries once, so that faults reach the journal and the background sync.
    let sessions = Arc::new(Sessions::new(None));
    let client = LedgerClient::builder(proxy.base_url.clone())
        .retry(RetryPolicy {
            max_attempts: 2,
            base_delay: Duration::from_millis(10),
            max_delay: Duration::from_millis(40),
            max_retry_after: Duration::from_secs(3),
        })
        .connect_timeout(REQUEST_TIMEOUT)
        .request_timeout(REQUEST_TIMEOUT)
        .token_provider({
            let sessions = sessions.clone();
            move || sessions.token()
        })
        .build()
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let (pending_tx, mut pending_rx) = watch::channel(0usize);
    let journal = Arc::new(Journal::open(dir.path()).unwrap().with_observer(
        move |journal: &Journal| {
            pending_tx.send_replace(journal.len());
        },
    ));
    let tally = Arc::new(Tally::default());
    let sync = ChargeSync::new(
        client.clone(),
        journal.clone(),
        sessions.clone(),
        fast_sync(),
        tally.clone(),
    );
    sessions.observe({
        let sync = sync.clone();
        move |_, _| sync.wake()
    });
    let background = tokio::spawn(sync.clone().run());

    // Users sign in and out of the app while the jobs of all accounts run.
    let switcher = tokio::spawn({
        let sessions = sessions.clone();
        let signed_in: Vec<Session> = users.iter().map(|(_, _, s)| s.clone()).collect();
        let mut rng = fastrand::Rng::with_seed(seed.rotate_left(17));
        async move {
            let mut ticks = tokio::time::interval(Duration::from_millis(50));
            loop {
                ticks.tick().await;
                if rng.u8(..5) == 0 {
                    sessions.sign_out();
                } else {
                    sessions.sign_in(signed_in[rng.usize(..signed_in.len())].clone());
                }
            }
        }
    });

    proxy.choose(seeded_faults(seed));
    let outage = Arc::new(Barrier::new(ACCOUNTS + 1));
    let jobs: Vec<_> = users
        .iter()
        .enumerate()
        .map(|(account, (_, _, session))| {
            tokio::spawn(run_account(
                account,
                seed,
                session.clone(),
                client.clone(),
                sync.clone(),
                outage.clone(),
            ))
        })
        .collect();
    let runs = tokio::time::timeout(JOBS_BOUND, async {
        // Every account's first job has passed its pre-check and done its work: cut the network.
        outage.wait().await;
        proxy.set(Fault::Refuse);
        outage.wait().await;
        // Every first charge was made while the ledger was unreachable.
        outage.wait().await;
        assert_eq!(journal.len(), ACCOUNTS, "every first charge is pending");
        tokio::time::sleep(OUTAGE).await;
        proxy.choose(seeded_faults(seed.rotate_left(29)));
        outage.wait().await;
        let mut runs = Vec::with_capacity(ACCOUNTS);
        for job in jobs {
            runs.push(job.await.expect("an account's jobs ran"));
        }
        runs
    })
    .await
    .unwrap_or_else(|_| panic!("the jobs did not finish within {JOBS_BOUND:?}"));
    switcher.abort();
    let _ = switcher.await;
    let jobs_done = wall.elapsed();

    // The faults stop; nobody is signed in: each pending charge goes out with its own account's
    // token, captured when its job ran, and only the background sync sends it.
    let pending_at_drain = journal.len();
    sessions.sign_out();
    proxy.set(Fault::Pass);
    let drain = Instant::now();
    sync.ledger_reachable();
    sync.wake();
    let drained = tokio::time::timeout(DRAIN_BOUND, pending_rx.wait_for(|pending| *pending == 0))
        .await
        .is_ok();
    let drain_time = drain.elapsed();
    let left_pending = journal.len();
    sync.shutdown();
    tokio::time::timeout(Duration::from_secs(10), background)
        .await
        .expect("the background sync stops after shutdown")
        .unwrap();

    // The ledger's own history, read directly (not through the proxy).
    let mut entries: Vec<(usize, Transaction)> = Vec::new();
    let mut invariant_broken = Vec::new();
    let mut totals_wrong = Vec::new();
    let mut refused_on_record = 0;
    for (account, (_, token, session)) in users.iter().enumerate() {
        let direct = client_for(&ledger.base_url(), Some(token));
        let balance = direct.balance().await.expect("the balance is readable");
        if balance.balance
            != balance.total_recharged - balance.total_consumed - balance.total_expired
        {
            invariant_broken.push((account, balance.clone()));
        }
        let items = history(&direct).await;
        let consumed: i64 = items
            .iter()
            .filter(|item| item.kind == TransactionKind::Consume)
            .map(|item| -item.points)
            .sum();
        let expected: i64 = runs[account].charged.iter().map(|job| job.price).sum();
        if balance.total_recharged != FUNDS
            || balance.total_consumed != expected
            || consumed != expected
        {
            totals_wrong.push((account, balance.clone(), consumed, expected));
        }
        refused_on_record += journal.refused_of(session.account()).len();
        entries.extend(
            items
                .into_iter()
                .filter(|item| item.kind == TransactionKind::Consume)
                .map(|item| (account, item)),
        );
    }

    let mut by_reference: HashMap<&str, Vec<&(usize, Transaction)>> = HashMap::new();
    let mut by_key: HashMap<&str, Vec<&(usize, Transaction)>> = HashMap::new();
    for entry in &entries {
        by_reference
            .entry(entry.1.reference.as_deref().unwrap_or("-"))
            .or_default()
            .push(entry);
        by_key
            .entry(entry.1.idempotency_key.as_deref().unwrap_or("-"))
            .or_default()
            .push(entry);
    }
    let charged: HashMap<&str, &Job> = runs
        .iter()
        .flat_map(|run| &run.charged)
        .map(|job| (job.reference.as_str(), job))
        .collect();
    let failed: HashMap<&str, &Job> = runs
        .iter()
        .flat_map(|run| &run.failed)
        .map(|job| (job.reference.as_str(), job))
        .collect();
    // Lost: a job that reached its charge step with no charge in its own account.
    let lost: Vec<&Job> = charged
        .values()
        .filter(|job| {
            !by_reference
                .get(job.reference.as_str())
                .is_some_and(|found| found.iter().any(|(account, _)| *account == job.account))
        })
        .copied()
        .collect();
    // Doubled: a job charged more than once (under one key or several), or a key charged twice.
    let mut doubled: Vec<&str> = by_reference
        .iter()
        .filter(|(_, found)| found.len() > 1)
        .map(|(reference, _)| *reference)
        .collect();
    doubled.extend(
        by_key
            .iter()
            .filter(|(_, found)| found.len() > 1)
            .map(|(key, _)| *key),
    );
    // Misbilled: a charge in an account that did not run its job (or of no job at all).
    let job_of = |item: &Transaction| {
        item.reference
            .as_deref()
            .and_then(|reference| charged.get(reference))
            .copied()
    };
    let failed_job = |item: &Transaction| {
        item.reference
            .as_deref()
            .is_some_and(|reference| failed.contains_key(reference))
    };
    let misbilled: Vec<&(usize, Transaction)> = entries
        .iter()
        .filter(|(account, item)| {
            !failed_job(item) && job_of(item).is_none_or(|job| job.account != *account)
        })
        .collect();
    // Wrong: a charge of the right account under another key, service or price than its job's.
    let wrong: Vec<&(usize, Transaction)> = entries
        .iter()
        .filter(|(account, item)| {
            job_of(item).is_some_and(|job| {
                job.account == *account
                    && (item.idempotency_key.as_deref() != Some(job.key.as_str())
                        || item.service.as_deref() != Some(job.service)
                        || item.points != -job.price)
            })
        })
        .collect();
    let failed_charged: Vec<&str> = failed
        .keys()
        .filter(|reference| by_reference.contains_key(*reference))
        .copied()
        .collect();

    let charges = charged.len();
    let requests = proxy.stats.requests.load(Ordering::SeqCst);
    let faulted = proxy.stats.faulted.load(Ordering::SeqCst);
    let count = |counter: &AtomicU64| counter.load(Ordering::SeqCst);
    let resent = tally.resent.lock().unwrap().clone();
    let resent_total: u64 = resent.values().sum();
    let accounts_resent = users
        .iter()
        .filter(|(_, _, session)| resent.get(session.account()).is_some_and(|n| *n > 0))
        .count();
    let pending_after_first_send: usize = runs.iter().map(|r| r.pending_after_first_send).sum();
    let refused_outcomes: usize = runs.iter().map(|r| r.refused).sum();
    println!(
        "SOAK seed={seed} accounts={ACCOUNTS} jobs={} charges={charges} failed_jobs={} \
         requests={requests} faulted={faulted} faulted_pct={:.1} drop_answer={} reset={} \
         refuse={} stall={} delay={} unavailable={} pending_after_first_send={} resent={} \
         replayed={} accounts_resent={accounts_resent} pending_at_drain={pending_at_drain} \
         lost={} doubled={} misbilled={} wrong={} failed_charged={} invariant_broken={} refused={} \
         drain_ms={} drain_bound_ms={} jobs_ms={} wall_ms={}",
        charges + failed.len(),
        failed.len(),
        100.0 * faulted as f64 / requests.max(1) as f64,
        count(&proxy.stats.dropped_answers),
        count(&proxy.stats.reset),
        count(&proxy.stats.refused),
        count(&proxy.stats.stalled),
        count(&proxy.stats.delayed),
        count(&proxy.stats.unavailable),
        pending_after_first_send,
        resent_total,
        count(&tally.replayed),
        lost.len(),
        doubled.len(),
        misbilled.len(),
        wrong.len(),
        failed_charged.len(),
        invariant_broken.len(),
        refused_outcomes + refused_on_record,
        drain_time.as_millis(),
        DRAIN_BOUND.as_millis(),
        jobs_done.as_millis(),
        wall.elapsed().as_millis(),
    );

    // The money rules.
    assert!(
        drained,
        "{left_pending} charges still pending {DRAIN_BOUND:?} after the faults stopped: {:?}",
        journal.pending().iter().take(5).collect::<Vec<_>>()
    );
    assert!(lost.is_empty(), "lost: {:?}", &lost[..lost.len().min(5)]);
    assert!(
        doubled.is_empty(),
        "doubled: {:?}",
        &doubled[..doubled.len().min(5)]
    );
    assert!(
        misbilled.is_empty(),
        "misbilled: {:?}",
        &misbilled[..misbilled.len().min(5)]
    );
    assert!(
        wrong.is_empty(),
        "charged under another key, service or price: {:?}",
        &wrong[..wrong.len().min(5)]
    );
    assert!(
        failed_charged.is_empty(),
        "failed jobs charged: {:?}",
        &failed_charged[..failed_charged.len().min(5)]
    );
    assert!(
        invariant_broken.is_empty(),
        "balance != recharged - consumed - expired: {invariant_broken:?}"
    );
    assert!(
        totals_wrong.is_empty(),
        "an account's totals differ from its jobs: {:?}",
        &totals_wrong[..totals_wrong.len().min(5)]
    );
    assert_eq!(
        refused_outcomes + refused_on_record + count(&tally.refused) as usize,
        0,
        "no charge is refused"
    );
    // The run is the one described: enough charges, enough faults, the re-send path taken.
    assert!(
        charges >= ACCOUNTS * CHARGES_PER_ACCOUNT,
        "{charges} charges"
    );
    assert!(
        faulted as f64 >= 0.2 * requests as f64,
        "{faulted} of {requests} requests faulted"
    );
    assert_eq!(
        accounts_resent, ACCOUNTS,
        "every account had a charge acknowledged on a re-send by the sync"
    );
    drop(proxy);
    ledger.shutdown().await;
}
