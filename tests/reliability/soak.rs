//! The fault-proxy soak: one app stays open (one `Sessions`, `LedgerClient`, `Journal`,
//! `ChargeSync` with its background loop, and `Jobs`, assembled as the plugin assembles them)
//! while jobs run through [`Jobs::run`] and webview-style charges through [`Jobs::charge`], for
//! 100 accounts signing in and out (some with opaque tokens and an account id, exchanged by a
//! gateway), through a proxy that faults a quarter of the requests: answers dropped after the
//! ledger committed, resets, refusals, stalls and held answers past the client's timeout, 503
//! with `Retry-After` from 0 to 10^20 seconds, bare 400 and 422 pages. A few charges are refused
//! for good by the ledger (a key it already has, with another body; a reference past its limit).
//! Offline work is on: a job whose pre-check meets an unreachable ledger (a refusal, a reset, a
//! stall, a 5xx) runs on its account's allowance (taken while the ledger answered, through the
//! same faults) and its charge settles under it; the ledger refusing one of those
//! (`allowance_exhausted`: this machine spent past the allowance) would be an unexpected refusal.
//! Then the faults stop, the background sync drains what is pending within a stated bound, and
//! the ledger's own history is checked: every charged job charged exactly once, in the account
//! that ran it, at its price; nothing else charged; every definitive refusal recorded once.
//!
//! The seed is `SOAK_SEED`, the number of charges `POINTS_SOAK_CHARGES` (default 10,000). The
//! seed fixes the jobs and the sequence of faults; which job meets which fault, and which
//! account is signed in when a job starts, still depend on scheduling.

use std::collections::{BTreeMap, HashMap};
use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::task::Poll;
use std::time::{Duration, Instant};

use tauri_plugin_points::allowance::PinnedKeys;
use tauri_plugin_points::client::{IdempotencyKey, LedgerClient, RetryPolicy};
use tauri_plugin_points::journal::{Journal, PendingCharge};
use tauri_plugin_points::models::{ChargeReceipt, RefusedCharge, Transaction, TransactionKind};
use tauri_plugin_points::offline::{Offline, OfflineSettings};
use tauri_plugin_points::sync::SyncListener;
use tauri_plugin_points::{
    ChargeOutcome, ChargeSync, Error, JobSpec, Jobs, Session, Sessions, TokenProvider,
};
use tokio::sync::RwLock;
use uuid::Uuid;

use crate::common::proxy::{Fault, FaultProxy};
use crate::common::{client_for, fast_sync, in_days};

const DEFAULT_SEED: u64 = 0x5EED_0007;
const ACCOUNTS: usize = 100;
const DEFAULT_CHARGES: usize = 10_000;
/// Jobs and charges in flight at once, all accounts together.
const TASKS: usize = 32;
/// Share of requests faulted outside the outage.
const FAULT_RATE: f64 = 0.25;
/// Points of most accounts (never short), and of every tenth account (soon short).
const FUNDS: i64 = 1_000_000_000;
const POOR_FUNDS: i64 = 40;
/// The client's request timeout: stalls and held answers last longer.
const REQUEST_TIMEOUT: Duration = Duration::from_millis(300);
const STALL: Duration = Duration::from_millis(600);
/// The `Retry-After` values the 503s carry.
const RETRY_AFTERS: [&str; 5] = [
    "0",
    "1",
    "86400",
    "18446744073709551615",
    "100000000000000000000",
];
/// How long every charge is refused at the start, so that many go pending at once.
const OUTAGE: Duration = Duration::from_secs(1);
/// Every pending charge is acknowledged within this long after the faults stop, plus
/// [`DRAIN_PER_CHARGE`] for each charge pending then.
const DRAIN_BOUND: Duration = Duration::from_secs(20);
const DRAIN_PER_CHARGE: Duration = Duration::from_millis(2);
/// About this many charges of each kind refused for good, whatever the number of charges (the
/// refused record keeps 500).
const CONFLICTS: usize = 100;
const TOO_LONG: usize = 50;

/// The desktop services and their prices in the reference ledger's shipped table.
const SERVICES: [(&str, i64); 3] = [("compose", 5), ("subtitle_burn", 2), ("cover_design", 2)];

/// The faults the proxy draws from, in this order.
const FAULT_KINDS: [&str; 8] = [
    "drop_answer",
    "reset",
    "refuse",
    "stall",
    "delay",
    "503_retry_after",
    "400_html",
    "422_empty",
];

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    /// A Rust job: `Jobs::run`, debt allowed.
    Run,
    /// A Rust job whose work fails.
    FailingRun,
    /// A webview charge: `Jobs::charge`, no debt; sometimes sent again under its key.
    Webview,
    /// A job charged under a key the ledger already has for another charge of its account.
    Conflict,
    /// A job whose reference is longer than the ledger takes.
    TooLong,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Outcome {
    Acknowledged,
    Pending,
    Refused,
    /// A charge that may not go into debt met too few points at the ledger.
    Declined,
    /// Refused before any work for too few points (this machine's own count).
    Insufficient,
    WorkFailed,
    /// Nobody signed in when it started.
    SignedOut,
    /// The pre-check failed (a fault): no work, nothing charged.
    PreCheck(&'static str),
}

/// One job or charge.
#[derive(Debug, Clone)]
struct Record {
    n: usize,
    kind: Kind,
    /// The account signed in when it started.
    account: Option<usize>,
    key: String,
    reference: String,
    service: &'static str,
    price: i64,
    outcome: Outcome,
}

impl Record {
    /// Whether the ledger must hold it (unless, for a charge without debt, it was refused for
    /// good after going pending).
    fn reported_charged(&self) -> bool {
        matches!(self.outcome, Outcome::Acknowledged | Outcome::Pending)
    }
}

/// Counts what the sync reports.
#[derive(Default)]
struct Tally {
    resent: Mutex<HashMap<String, u64>>,
    replayed: AtomicU64,
    /// Allowance → points of the charges settled under it.
    settled_offline: Mutex<HashMap<String, i64>>,
    /// Charges settled under an allowance.
    settled_offline_count: AtomicU64,
    /// (account, key) → `refused` calls.
    refused: Mutex<HashMap<(String, String), u64>>,
}

impl SyncListener for Tally {
    fn acknowledged(&self, charge: &PendingCharge, receipt: &ChargeReceipt, first_send: bool) {
        if receipt.replayed {
            self.replayed.fetch_add(1, Ordering::SeqCst);
        }
        if let Some(allowance) = &charge.allowance_id {
            self.settled_offline_count.fetch_add(1, Ordering::SeqCst);
            *self
                .settled_offline
                .lock()
                .unwrap()
                .entry(allowance.clone())
                .or_default() += receipt.points;
        }
        if !first_send {
            *self
                .resent
                .lock()
                .unwrap()
                .entry(charge.account.clone())
                .or_default() += 1;
        }
    }

    fn refused(&self, charge: &PendingCharge, _refused: &RefusedCharge) {
        *self
            .refused
            .lock()
            .unwrap()
            .entry((charge.account.clone(), charge.idempotency_key.clone()))
            .or_default() += 1;
    }
}

/// The faults outside the outage: `FAULT_RATE` of requests, spread over every kind, counted.
fn seeded_faults(
    seed: u64,
    counts: Arc<[AtomicU64; FAULT_KINDS.len()]>,
) -> impl FnMut(&str) -> Fault + Send + 'static {
    let mut rng = fastrand::Rng::with_seed(seed);
    move |_| {
        if rng.f64() >= FAULT_RATE {
            return Fault::Pass;
        }
        let (kind, fault) = match rng.u32(0..100) {
            0..25 => (0, Fault::DropAnswer),
            25..35 => (1, Fault::Reset),
            35..45 => (2, Fault::Refuse),
            45..55 => (3, Fault::Stall(STALL)),
            55..62 => (4, Fault::Delay(STALL)),
            62..80 => (
                5,
                Fault::Answer {
                    status: 503,
                    retry_after: Some(RETRY_AFTERS[rng.usize(..RETRY_AFTERS.len())]),
                    body: "{\"code\":\"unavailable\"}",
                },
            ),
            80..90 => (
                6,
                Fault::Answer {
                    status: 400,
                    retry_after: None,
                    body: "<html>blocked</html>",
                },
            ),
            _ => (
                7,
                Fault::Answer {
                    status: 422,
                    retry_after: None,
                    body: "{}",
                },
            ),
        };
        counts[kind].fetch_add(1, Ordering::SeqCst);
        fault
    }
}

/// What every job task shares.
struct Shared {
    seed: u64,
    target: usize,
    sessions: Arc<Sessions>,
    jobs: Jobs,
    /// Held for reading while a job captures its session, for writing to change it: so that
    /// the test knows the account each job ran in.
    gate: RwLock<()>,
    /// Session label → account.
    index: HashMap<String, usize>,
    next: AtomicUsize,
    /// Jobs and charges the ledger must hold (acknowledged or pending).
    charged: AtomicUsize,
    /// Keys acknowledged per account, for conflicting charges to reuse.
    acknowledged: Mutex<HashMap<usize, Vec<(String, &'static str)>>>,
    records: Mutex<Vec<Record>>,
    /// Webview charges sent again under their key, and what the second send answered.
    repeats: Mutex<BTreeMap<&'static str, usize>>,
}

/// A job's error: the flow's, or its work's.
#[derive(Debug)]
enum JobError {
    Points(Error),
    WorkFailed,
}

impl From<Error> for JobError {
    fn from(error: Error) -> Self {
        JobError::Points(error)
    }
}

/// Polls `future` once: its output if it is done already. A job captures its session on its
/// first poll.
async fn poll_once<F: Future + ?Sized>(future: &mut Pin<Box<F>>) -> Option<F::Output> {
    std::future::poll_fn(|cx| {
        Poll::Ready(match future.as_mut().poll(cx) {
            Poll::Ready(output) => Some(output),
            Poll::Pending => None,
        })
    })
    .await
}

fn outcome_of(result: Result<ChargeOutcome, Error>) -> Outcome {
    match result {
        Ok(ChargeOutcome::Acknowledged { .. }) => Outcome::Acknowledged,
        Ok(ChargeOutcome::Pending { .. }) => Outcome::Pending,
        Ok(_) => Outcome::Refused,
        Err(Error::Unauthorized) => Outcome::SignedOut,
        Err(error) => Outcome::PreCheck(error.kind()),
    }
}

/// The kind of job `n` (of `target` charges).
fn kind_of(n: usize, seed: u64, target: usize) -> Kind {
    let mut rng = fastrand::Rng::with_seed(seed ^ (n as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15));
    let roll = rng.f64();
    let conflict = CONFLICTS as f64 / target as f64;
    let too_long = TOO_LONG as f64 / target as f64;
    if roll < conflict {
        Kind::Conflict
    } else if roll < conflict + too_long {
        Kind::TooLong
    } else if roll < conflict + too_long + 0.03 {
        Kind::FailingRun
    } else if roll < conflict + too_long + 0.15 {
        Kind::Webview
    } else {
        Kind::Run
    }
}

/// Runs jobs until the target number of charges is reached.
async fn job_task(shared: Arc<Shared>) {
    while shared.charged.load(Ordering::SeqCst) < shared.target {
        let n = shared.next.fetch_add(1, Ordering::SeqCst);
        let record = one_job(&shared, n).await;
        if record.outcome == Outcome::SignedOut {
            // Nobody to run jobs for: wait for a sign-in.
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        if record.reported_charged() && matches!(record.kind, Kind::Run | Kind::Webview) {
            shared.charged.fetch_add(1, Ordering::SeqCst);
        }
        if record.outcome == Outcome::Acknowledged && record.kind == Kind::Run {
            if let Some(account) = record.account {
                shared
                    .acknowledged
                    .lock()
                    .unwrap()
                    .entry(account)
                    .or_default()
                    .push((record.key.clone(), record.service));
            }
        }
        shared.records.lock().unwrap().push(record);
    }
}

async fn one_job(shared: &Shared, n: usize) -> Record {
    let mut rng = fastrand::Rng::with_seed(shared.seed.rotate_left(11) ^ n as u64);
    let mut kind = kind_of(n, shared.seed, shared.target);
    let (mut service, price) = SERVICES[rng.usize(..SERVICES.len())];
    let mut key = format!("{service}:soak-{n}");
    let mut reference = format!("soak-{n}");
    let pause = Duration::from_micros(rng.u64(..2000));
    let gate = shared.gate.read().await;
    let session = shared.sessions.current();
    let account = session
        .as_ref()
        .map(|session| shared.index[session.account()]);
    match kind {
        Kind::Conflict => {
            // Another service under a key the ledger has already charged for this account.
            let earlier = account.and_then(|account| {
                shared
                    .acknowledged
                    .lock()
                    .unwrap()
                    .get_mut(&account)
                    .and_then(Vec::pop)
            });
            match earlier {
                Some((earlier_key, earlier_service)) => {
                    key = earlier_key;
                    service = SERVICES
                        .iter()
                        .map(|(service, _)| *service)
                        .find(|other| *other != earlier_service)
                        .unwrap();
                }
                None => kind = Kind::Run,
            }
        }
        Kind::TooLong => reference = format!("soak-{n}-{}", "x".repeat(1100)),
        _ => {}
    }
    let price = SERVICES
        .iter()
        .find(|(name, _)| *name == service)
        .map_or(price, |(_, price)| *price);
    let mut spec = JobSpec::new(service, IdempotencyKey::parse(key.clone()).unwrap());
    spec.reference = Some(reference.clone());
    let record = |outcome| Record {
        n,
        kind,
        account,
        key: key.clone(),
        reference: reference.clone(),
        service,
        price,
        outcome,
    };
    if kind == Kind::Webview {
        spec.allow_debt = false;
        let mut charge = Box::pin(shared.jobs.charge(spec.clone()));
        let first = poll_once(&mut charge).await;
        drop(gate);
        let result = match first {
            Some(result) => result,
            None => charge.await,
        };
        let outcome = match result {
            Err(Error::InsufficientPoints { .. }) => Outcome::Declined,
            result => outcome_of(result),
        };
        if matches!(outcome, Outcome::Acknowledged | Outcome::Pending) && rng.u8(..3) == 0 {
            // The webview sends it again under the same key, in the same session.
            let gate = shared.gate.read().await;
            let same = shared
                .sessions
                .current()
                .is_some_and(|now| Some(shared.index[now.account()]) == account);
            if same {
                let mut again = Box::pin(shared.jobs.charge(spec));
                let first = poll_once(&mut again).await;
                drop(gate);
                let result = match first {
                    Some(result) => result,
                    None => again.await,
                };
                let answer = match result {
                    Ok(ChargeOutcome::Acknowledged { ref receipt }) if receipt.replayed => {
                        "acknowledged_replayed"
                    }
                    Ok(ChargeOutcome::Acknowledged { .. }) => "acknowledged",
                    Ok(ChargeOutcome::Pending { .. }) => "pending",
                    Ok(_) => "refused",
                    Err(Error::InsufficientPoints { .. }) => "insufficient",
                    Err(_) => "failed",
                };
                *shared.repeats.lock().unwrap().entry(answer).or_default() += 1;
            }
        }
        return record(outcome);
    }
    let fails = kind == Kind::FailingRun;
    let mut job = Box::pin(shared.jobs.run(spec, move || async move {
        tokio::time::sleep(pause).await;
        if fails {
            Err(JobError::WorkFailed)
        } else {
            Ok(())
        }
    }));
    let first = poll_once(&mut job).await;
    drop(gate);
    let result = match first {
        Some(result) => result,
        None => job.await,
    };
    record(match result {
        Ok(charged) => outcome_of(Ok(charged.charge)),
        Err(JobError::WorkFailed) => Outcome::WorkFailed,
        Err(JobError::Points(Error::InsufficientPoints { .. })) => Outcome::Insufficient,
        Err(JobError::Points(error)) => outcome_of(Err(error)),
    })
}

/// Every consume entry of `client`'s account, newest first.
async fn consumes(client: &LedgerClient) -> Vec<Transaction> {
    let mut items = Vec::new();
    let mut before: Option<String> = None;
    loop {
        let page = client
            .transactions(Some(200), before.as_deref())
            .await
            .expect("the ledger's history is readable");
        items.extend(
            page.items
                .into_iter()
                .filter(|item| item.kind == TransactionKind::Consume),
        );
        match page.next_cursor {
            Some(cursor) => before = Some(cursor),
            None => return items,
        }
    }
}

fn env_number(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|value| value.parse().ok())
        .unwrap_or(default)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn charges_through_network_faults_are_each_charged_once_to_their_account() {
    let wall = Instant::now();
    // The SDK's errors (a journal that could not be written, a refusal not recorded) are shown.
    let _ = tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::new("points_sdk=error"))
        .with_test_writer()
        .try_init();
    let seed = env_number("SOAK_SEED", DEFAULT_SEED);
    let target = env_number("POINTS_SOAK_CHARGES", DEFAULT_CHARGES as u64) as usize;
    let jobs_bound = Duration::from_secs(120) + Duration::from_millis(20 * target as u64);
    let ledger = points_ledger::serve(points_ledger::LedgerConfig::ephemeral())
        .await
        .expect("the reference ledger starts");
    let proxy = FaultProxy::start(&ledger.base_url()).await;

    // The accounts: one in four signs in with an opaque token and its account id (the gateway
    // exchanges the token for the ledger's), one in four with a JWT and its id, the rest with a
    // JWT alone. Every tenth has few points.
    let mut users = Vec::with_capacity(ACCOUNTS);
    for account in 0..ACCOUNTS {
        let user = Uuid::new_v4();
        let funds = if account % 10 == 9 { POOR_FUNDS } else { FUNDS };
        ledger.recharge(user, funds, in_days(30)).await.unwrap();
        let jwt = ledger.token_for(user);
        let session = match account % 4 {
            0 => {
                let opaque = format!("opaque.{account}.{}", Uuid::new_v4().simple());
                proxy.exchange_token(&opaque, &jwt);
                Session::new(opaque, Some(format!("acct-{account}"))).unwrap()
            }
            1 => Session::new(jwt.clone(), Some(format!("acct-{account}"))).unwrap(),
            _ => Session::new(jwt.clone(), None).unwrap(),
        };
        users.push((jwt, session, funds));
    }
    let index: HashMap<String, usize> = users
        .iter()
        .enumerate()
        .map(|(account, (_, session, _))| (session.account().to_owned(), account))
        .collect();
    assert_eq!(index.len(), ACCOUNTS, "one label per account");

    // The app: one session holder, one client, one journal, one sync, one job runner, as the
    // plugin assembles them. The client retries once, so that faults reach the journal and the
    // background sync.
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
    let journal = Arc::new(Journal::open(dir.path()).unwrap());
    let mut journal_changes = journal.subscribe();
    let tally = Arc::new(Tally::default());
    let sync = ChargeSync::new(
        client.clone(),
        journal.clone(),
        sessions.clone(),
        fast_sync(),
        tally.clone(),
    );
    let background = tokio::spawn(sync.clone().run());
    let keys = ledger.allowance_public_keys();
    let keys =
        PinnedKeys::from_base64(keys.iter().map(|(id, key)| (id.as_str(), key.as_str()))).unwrap();
    let mut settings = OfflineSettings::new(keys);
    settings.device_id = Some("soak-desk".into());
    let offline = Offline::open(dir.path().join("offline"), settings).unwrap();
    let jobs = Jobs::new(client.clone(), sync.clone(), Arc::new(())).with_offline(offline);
    let shared = Arc::new(Shared {
        seed,
        target,
        sessions: sessions.clone(),
        jobs: jobs.clone(),
        gate: RwLock::new(()),
        index,
        next: AtomicUsize::new(0),
        charged: AtomicUsize::new(0),
        acknowledged: Mutex::default(),
        records: Mutex::default(),
        repeats: Mutex::default(),
    });

    // Users sign in and out of the app while the jobs run (the sync wakes itself on each change).
    let switcher = tokio::spawn({
        let shared = shared.clone();
        let signed_in: Vec<Session> = users.iter().map(|(_, s, _)| s.clone()).collect();
        let mut rng = fastrand::Rng::with_seed(seed.rotate_left(17));
        async move {
            let mut ticks = tokio::time::interval(Duration::from_millis(20));
            loop {
                ticks.tick().await;
                let _gate = shared.gate.write().await;
                if rng.u8(..6) == 0 {
                    shared.sessions.sign_out();
                } else {
                    shared
                        .sessions
                        .sign_in(signed_in[rng.usize(..signed_in.len())].clone());
                }
            }
        }
    });

    // An outage of the charges first (pre-checks pass, charges go pending), then the faults.
    let fault_counts: Arc<[AtomicU64; FAULT_KINDS.len()]> = Arc::new(Default::default());
    proxy.fault_charges(Fault::Refuse);
    let tasks: Vec<_> = (0..TASKS)
        .map(|_| tokio::spawn(job_task(shared.clone())))
        .collect();
    tokio::time::sleep(OUTAGE).await;
    let pending_after_outage = journal.len();
    proxy.choose(seeded_faults(seed.rotate_left(29), fault_counts.clone()));
    tokio::time::timeout(jobs_bound, async {
        for task in tasks {
            task.await.expect("a job task ran");
        }
    })
    .await
    .unwrap_or_else(|_| {
        panic!(
            "the jobs did not finish within {jobs_bound:?}: {} of {target} charges made, {} \
             pending, {} of {} requests faulted",
            shared.charged.load(Ordering::SeqCst),
            journal.len(),
            proxy.stats.faulted.load(Ordering::SeqCst),
            proxy.stats.requests.load(Ordering::SeqCst),
        )
    });
    switcher.abort();
    let _ = switcher.await;
    let jobs_done = wall.elapsed();

    // The faults stop; nobody is signed in: each pending charge goes out with its own account's
    // token, captured when its job ran, and only the background sync sends it.
    let pending_at_drain = journal.len();
    sessions.sign_out();
    proxy.set(Fault::Pass);
    let drain_bound = DRAIN_BOUND + DRAIN_PER_CHARGE * u32::try_from(pending_at_drain).unwrap();
    let drain = Instant::now();
    sync.ledger_reachable();
    sync.wake();
    let drained = tokio::time::timeout(
        drain_bound,
        journal_changes.wait_for(|_| journal.is_empty()),
    )
    .await
    .is_ok();
    let drain_time = drain.elapsed();
    let left_pending = journal.len();
    // Why some were left: what one more pass does with them (waiting for a token, failing, busy).
    let left_after_a_pass = if drained {
        None
    } else {
        Some(sync.sync_now().await)
    };
    let idle = jobs.shutdown(Duration::from_secs(5)).await;
    tokio::time::timeout(Duration::from_secs(10), background)
        .await
        .expect("the background sync stops after shutdown")
        .unwrap();

    // The ledger's own history and summary, read directly (not through the proxy).
    let records = shared.records.lock().unwrap().clone();
    let by_n: HashMap<usize, &Record> = records.iter().map(|record| (record.n, record)).collect();
    let job_of = |item: &Transaction| -> Option<&Record> {
        let reference = item.reference.as_deref()?;
        let n = reference.strip_prefix("soak-")?.parse::<usize>().ok()?;
        by_n.get(&n).copied()
    };
    let mut entries: Vec<(usize, Transaction)> = Vec::new();
    let mut totals_wrong = Vec::new();
    for (account, (jwt, _, funds)) in users.iter().enumerate() {
        let direct = client_for(&ledger.base_url(), Some(jwt));
        let summary = direct.balance().await.expect("the balance is readable");
        let items = consumes(&direct).await;
        let consumed: i64 = items.iter().map(|item| -item.points).sum();
        let mut distinct: Vec<usize> = items
            .iter()
            .filter_map(|item| job_of(item).map(|record| record.n))
            .collect();
        distinct.sort_unstable();
        distinct.dedup();
        let priced: i64 = distinct.iter().map(|n| by_n[n].price).sum();
        if summary.total_recharged != *funds
            || summary.total_consumed != priced
            || consumed != priced
            || summary.balance
                != summary.total_recharged - summary.total_consumed - summary.total_expired
        {
            totals_wrong.push((account, summary, consumed, priced));
        }
        entries.extend(items.into_iter().map(|item| (account, item)));
    }
    let mut by_reference: HashMap<&str, Vec<&(usize, Transaction)>> = HashMap::new();
    let mut by_key: HashMap<(usize, &str), Vec<&(usize, Transaction)>> = HashMap::new();
    for entry in &entries {
        by_reference
            .entry(entry.1.reference.as_deref().unwrap_or("-"))
            .or_default()
            .push(entry);
        by_key
            .entry((entry.0, entry.1.idempotency_key.as_deref().unwrap_or("-")))
            .or_default()
            .push(entry);
    }
    // Refusals, as the listener heard them and as the record keeps them, per (account, key).
    let heard = tally.refused.lock().unwrap().clone();
    let mut on_record: HashMap<(String, String), usize> = HashMap::new();
    let mut refusal_errors: HashMap<(String, String), String> = HashMap::new();
    for (_, session, _) in &users {
        for refused in journal.refused_of(session.account()) {
            let id = (
                session.account().to_owned(),
                refused.idempotency_key.clone(),
            );
            refusal_errors.insert(
                id.clone(),
                format!("{}: {:?}", refused.service, refused.error),
            );
            *on_record.entry(id).or_default() += 1;
        }
    }
    let label = |account: usize| users[account].1.account().to_owned();
    let refused_key = |record: &Record| record.account.map(|a| (label(a), record.key.clone()));
    let refusal_count = |record: &Record| {
        refused_key(record).map_or((0, 0), |id| {
            (
                heard.get(&id).copied().unwrap_or(0),
                on_record.get(&id).copied().unwrap_or(0),
            )
        })
    };

    // The keys conflicting charges reused: their refusals are the conflicting charge's.
    let reused: Vec<(String, String)> = records
        .iter()
        .filter(|record| record.kind == Kind::Conflict)
        .filter_map(refused_key)
        .collect();
    let mut lost = Vec::new();
    let mut refused_but_charged = Vec::new();
    let mut charged_wrongly = Vec::new();
    let mut refusals_not_once = Vec::new();
    let mut webview_refused_later = 0;
    for record in &records {
        let own = by_reference
            .get(record.reference.as_str())
            .map_or(0, |found| {
                found
                    .iter()
                    .filter(|(account, _)| Some(*account) == record.account)
                    .count()
            });
        let found = by_reference
            .get(record.reference.as_str())
            .map_or(0, Vec::len);
        let (heard_n, recorded_n) = match refused_key(record) {
            Some(id) if record.kind != Kind::Conflict && reused.contains(&id) => (0, 0),
            _ => refusal_count(record),
        };
        let refused = heard_n > 0 || recorded_n > 0;
        // A charge refused for good after its first send, or at it, is heard and kept once.
        let must_be_refused = matches!(record.kind, Kind::Conflict | Kind::TooLong)
            && matches!(record.outcome, Outcome::Refused | Outcome::Pending);
        if (refused || must_be_refused) && (heard_n, recorded_n) != (1, 1) {
            refusals_not_once.push((record.n, heard_n, recorded_n));
        }
        match record.kind {
            Kind::Run | Kind::Webview if record.reported_charged() => {
                // Only a charge that may not go into debt may be refused after going pending
                // (a 402 at its re-send): then it is not charged.
                let may_be_refused =
                    record.kind == Kind::Webview && record.outcome == Outcome::Pending;
                if refused && may_be_refused && found == 0 {
                    webview_refused_later += 1;
                } else if own == 0 {
                    lost.push(record.clone());
                } else if refused {
                    // Charged, yet told refused and kept on record.
                    refused_but_charged.push(record.clone());
                }
            }
            _ => {
                if found > 0 || record.outcome == Outcome::Acknowledged {
                    charged_wrongly.push(record.clone());
                }
            }
        }
    }
    // Refusals of no job that may be refused (a debt-allowed job's charge is never refused).
    let mut refused_ids: Vec<&(String, String)> = heard.keys().chain(on_record.keys()).collect();
    refused_ids.sort();
    refused_ids.dedup();
    let unexpected_refusals: Vec<(&(String, String), Option<&String>)> = refused_ids
        .into_iter()
        .filter(|(account, key)| {
            !records.iter().any(|record| {
                matches!(record.kind, Kind::Conflict | Kind::TooLong | Kind::Webview)
                    && refused_key(record)
                        .as_ref()
                        .is_some_and(|id| id.0 == *account && id.1 == *key)
            })
        })
        .map(|id| (id, refusal_errors.get(id)))
        .collect();
    let doubled: Vec<&str> = by_reference
        .iter()
        .filter(|(_, found)| found.len() > 1)
        .map(|(reference, _)| *reference)
        .chain(
            by_key
                .iter()
                .filter(|(_, found)| found.len() > 1)
                .map(|((_, key), _)| *key),
        )
        .collect();
    // Misbilled: a charge in an account that did not run its job, or of no job at all.
    let misbilled: Vec<&(usize, Transaction)> = entries
        .iter()
        .filter(|(account, item)| {
            job_of(item).is_none_or(|record| record.account != Some(*account))
        })
        .collect();
    // Wrong: a charge in the right account under another key, service or price than its job's.
    let wrong: Vec<&(usize, Transaction)> = entries
        .iter()
        .filter(|(account, item)| {
            job_of(item).is_some_and(|record| {
                record.account == Some(*account)
                    && (item.idempotency_key.as_deref() != Some(record.key.as_str())
                        || item.service.as_deref() != Some(record.service)
                        || item.points != -record.price)
            })
        })
        .collect();

    let count_of = |kind: Kind, outcome: Option<&Outcome>| {
        records
            .iter()
            .filter(|r| r.kind == kind && outcome.is_none_or(|o| r.outcome == *o))
            .count()
    };
    let outcomes = |pick: fn(&Outcome) -> bool| records.iter().filter(|r| pick(&r.outcome)).count();
    let charges = records
        .iter()
        .filter(|r| matches!(r.kind, Kind::Run | Kind::Webview) && r.reported_charged())
        .count();
    let accounts_charged = {
        let mut seen: Vec<usize> = records
            .iter()
            .filter(|r| r.reported_charged())
            .filter_map(|r| r.account)
            .collect();
        seen.sort_unstable();
        seen.dedup();
        seen.len()
    };
    let requests = proxy.stats.requests.load(Ordering::SeqCst);
    let faulted = proxy.stats.faulted.load(Ordering::SeqCst);
    let faults: Vec<String> = FAULT_KINDS
        .iter()
        .zip(fault_counts.iter())
        .map(|(kind, count)| format!("{kind}={}", count.load(Ordering::SeqCst)))
        .collect();
    let resent = tally.resent.lock().unwrap().clone();
    let accounts_resent = resent.values().filter(|n| **n > 0).count();
    let refusals_heard: u64 = heard.values().sum();
    let refused_records: usize = on_record.values().sum();
    let repeats = shared.repeats.lock().unwrap().clone();
    let settled_offline = tally.settled_offline.lock().unwrap().clone();
    let offline_refused =
        outcomes(|o| matches!(o, Outcome::PreCheck(kind) if kind.starts_with("offline")));
    println!(
        "SOAK offline: allowances_used={} charges_settled_under_them={} points={} \
         refused_before_work={offline_refused}",
        settled_offline.len(),
        tally.settled_offline_count.load(Ordering::SeqCst),
        settled_offline.values().sum::<i64>(),
    );
    println!(
        "SOAK seed={seed} accounts={ACCOUNTS} jobs={} charges={charges} \
         accounts_charged={accounts_charged} runs_acknowledged={} runs_pending={} webview={} \
         (acknowledged {}, pending {}, declined_402 {}, refused_after_pending \
         {webview_refused_later}) webview_repeats={repeats:?} failed_work={} insufficient={} \
         signed_out={} precheck_failed={} conflicts={} (refused {}) too_long={} (refused {}) \
         refusals_heard={refusals_heard} refused_records={refused_records} requests={requests} \
         faulted={faulted} faulted_pct={:.1} outage_refused_charges=yes \
         pending_after_outage={pending_after_outage} {} resent={} accounts_resent={accounts_resent} \
         replayed={} pending_at_drain={pending_at_drain} lost={} refused_but_charged={} doubled={} misbilled={} \
         wrong={} charged_wrongly={} totals_wrong={} refusals_not_once={} \
         unexpected_refusals={} drain_ms={} drain_bound_ms={} jobs_ms={} wall_ms={}",
        records.len(),
        count_of(Kind::Run, Some(&Outcome::Acknowledged)),
        count_of(Kind::Run, Some(&Outcome::Pending)),
        count_of(Kind::Webview, None),
        count_of(Kind::Webview, Some(&Outcome::Acknowledged)),
        count_of(Kind::Webview, Some(&Outcome::Pending)),
        count_of(Kind::Webview, Some(&Outcome::Declined)),
        outcomes(|o| *o == Outcome::WorkFailed),
        outcomes(|o| *o == Outcome::Insufficient),
        outcomes(|o| *o == Outcome::SignedOut),
        outcomes(|o| matches!(o, Outcome::PreCheck(_))),
        count_of(Kind::Conflict, None),
        count_of(Kind::Conflict, Some(&Outcome::Refused)),
        count_of(Kind::TooLong, None),
        count_of(Kind::TooLong, Some(&Outcome::Refused)),
        100.0 * faulted as f64 / requests.max(1) as f64,
        faults.join(" "),
        resent.values().sum::<u64>(),
        tally.replayed.load(Ordering::SeqCst),
        lost.len(),
        refused_but_charged.len(),
        doubled.len(),
        misbilled.len(),
        wrong.len(),
        charged_wrongly.len(),
        totals_wrong.len(),
        refusals_not_once.len(),
        unexpected_refusals.len(),
        drain_time.as_millis(),
        drain_bound.as_millis(),
        jobs_done.as_millis(),
        wall.elapsed().as_millis(),
    );

    // The money rules.
    assert!(
        drained,
        "{left_pending} charges still pending {drain_bound:?} after the faults stopped: {:?}; \
         one more pass: {left_after_a_pass:?}",
        journal.pending().iter().take(5).collect::<Vec<_>>()
    );
    assert!(idle, "no job was left running");
    assert!(
        unexpected_refusals.is_empty(),
        "charges refused that no rule refuses: {:?}",
        &unexpected_refusals[..unexpected_refusals.len().min(5)]
    );
    assert!(lost.is_empty(), "lost: {:?}", &lost[..lost.len().min(5)]);
    assert!(
        refused_but_charged.is_empty(),
        "charged, yet refused for good: {:?}",
        &refused_but_charged[..refused_but_charged.len().min(5)]
    );
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
        charged_wrongly.is_empty(),
        "charged though failed, refused, declined or never started: {:?}",
        &charged_wrongly[..charged_wrongly.len().min(5)]
    );
    assert!(
        totals_wrong.is_empty(),
        "an account's totals differ from the prices of its jobs: {:?}",
        &totals_wrong[..totals_wrong.len().min(5)]
    );
    assert!(
        refusals_not_once.is_empty(),
        "refusals not heard and recorded exactly once (job, heard, recorded): {:?}",
        &refusals_not_once[..refusals_not_once.len().min(5)]
    );
    // The run is the one described.
    assert!(charges >= target, "{charges} charges");
    assert_eq!(accounts_charged, ACCOUNTS, "every account was charged");
    assert!(
        faulted as f64 >= 0.2 * requests as f64,
        "{faulted} of {requests} requests faulted"
    );
    assert!(
        fault_counts
            .iter()
            .all(|count| count.load(Ordering::SeqCst) > 0),
        "every kind of fault: {faults:?}"
    );
    assert!(
        count_of(Kind::Conflict, Some(&Outcome::Refused)) > 0
            && count_of(Kind::TooLong, Some(&Outcome::Refused)) > 0
            && count_of(Kind::Webview, Some(&Outcome::Declined)) > 0,
        "definitive refusals and declined charges were met"
    );
    assert!(accounts_resent > 0, "the background sync re-sent charges");
    assert!(
        !settled_offline.is_empty(),
        "jobs ran offline on allowances and their charges settled"
    );
    drop(proxy);
    ledger.shutdown().await;
}
