//! Kill test: a worker process runs charged jobs through the plugin's real charge path (session,
//! price check, work, `ChargeSync::charge` with its journal, the background sync) against the
//! reference ledger; the harness SIGKILLs it at seeded random moments, starts it again, and at
//! the end lets every account drain. The ledger's own history must then show every job that
//! reported its charge charged exactly once, to the account that ran it, and no failed or
//! unfinished job charged.
//!
//! The worker is this test binary, started again with `--ignored --exact kill::kill_worker` and
//! its orders in an environment variable. Seed and kill count: `POINTS_KILL_SEED`,
//! `POINTS_KILL_COUNT` (defaults 20261124 and 120).

use std::collections::{BTreeMap, BTreeSet};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Child, Command};
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};
use tauri_plugin_points::client::{ConsumeRequest, IdempotencyKey, LedgerClient};
use tauri_plugin_points::journal::{Journal, PendingCharge};
use tauri_plugin_points::{
    ChargeOutcome, ChargeSync, Session, Sessions, SyncPolicy, TokenProvider,
};

use crate::common::{client_for, fast_retry, in_days, TestLedger};

const WORKER_ENV: &str = "POINTS_KILL_WORKER";
const JOBS: usize = 2000;
/// Jobs in a row run by one account before the other signs in.
const JOBS_PER_SIGN_IN: usize = 20;

/// What a worker process is told to do.
#[derive(Serialize, Deserialize)]
struct Orders {
    base_url: String,
    journal_dir: PathBuf,
    progress: PathBuf,
    /// The accounts' tokens (the worker signs in with them in turn).
    tokens: Vec<String>,
    /// The first job to run.
    start_at: usize,
    /// Sign in as each account in turn and send everything pending, then exit.
    drain: bool,
    seed: u64,
}

/// Job `n`: its account, service, and whether its work fails.
fn job(n: usize, seed: u64, accounts: usize) -> (usize, &'static str, bool) {
    let mut rng = fastrand::Rng::with_seed(seed ^ (n as u64).wrapping_mul(0x9e37_79b9_7f4a_7c15));
    let account = (n / JOBS_PER_SIGN_IN) % accounts;
    let service = ["compose", "subtitle_burn", "cover_design"][rng.usize(0..3)];
    (account, service, rng.u8(0..5) == 0)
}

fn key_of(n: usize, service: &str) -> String {
    format!("{service}:kill-{n}")
}

/// The worker: run by the harness as a child process; does nothing in a normal test run.
#[test]
#[ignore = "started by kill_test as a child process"]
fn kill_worker() {
    let Ok(orders) = std::env::var(WORKER_ENV) else {
        return;
    };
    let orders: Orders = serde_json::from_str(&orders).unwrap();
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap()
        .block_on(work(orders));
}

async fn work(orders: Orders) {
    let sessions = Arc::new(Sessions::new(None));
    let client = LedgerClient::builder(&orders.base_url)
        .retry(fast_retry())
        .request_timeout(Duration::from_secs(3))
        .token_provider({
            let sessions = sessions.clone();
            move || sessions.token()
        })
        .build()
        .unwrap();
    let journal = Arc::new(Journal::open(&orders.journal_dir).expect("the journal opens"));
    let policy = SyncPolicy {
        min_delay: Duration::from_millis(20),
        max_delay: Duration::from_millis(200),
    };
    let sync = ChargeSync::new(
        client.clone(),
        journal,
        sessions.clone(),
        policy,
        Arc::new(()),
    );
    tokio::spawn(sync.clone().run());
    let mut progress = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(&orders.progress)
        .unwrap();
    let mut log = |line: String| {
        progress.write_all(format!("{line}\n").as_bytes()).unwrap();
    };
    if orders.drain {
        for token in &orders.tokens {
            let session = Session::new(token.clone(), None).unwrap();
            sessions.sign_in(session.clone());
            let deadline = Instant::now() + Duration::from_secs(30);
            while !sync.pending_of(session.account()).is_empty() {
                if Instant::now() > deadline {
                    let stuck = &sync.pending_of(session.account())[0];
                    let answer = client
                        .as_token(session.token())
                        .consume(
                            &stuck.request,
                            &IdempotencyKey::parse(stuck.idempotency_key.clone()).unwrap(),
                        )
                        .await;
                    panic!("pending charges did not drain: {stuck:?}: {answer:?}");
                }
                sync.sync_now().await;
            }
        }
        log("drained".into());
        return;
    }
    let mut rng = fastrand::Rng::with_seed(orders.seed ^ orders.start_at as u64);
    for n in orders.start_at..JOBS {
        let (account, service, fails) = job(n, orders.seed, orders.tokens.len());
        let token = &orders.tokens[account];
        if sessions.current().map(|s| s.token().to_owned()).as_deref() != Some(token) {
            sessions.sign_out();
            sessions.sign_in(Session::new(token.clone(), None).unwrap());
        }
        let session = sessions.current().unwrap();
        log(format!("start {n}"));
        let cost = client.as_token(session.token()).cost(service, None).await;
        if !cost.is_ok_and(|cost| cost.sufficient) {
            log(format!("skipped {n}"));
            continue;
        }
        tokio::time::sleep(Duration::from_micros(rng.u64(0..3000))).await;
        if fails {
            log(format!("failed {n}"));
            continue;
        }
        log(format!("done {n}"));
        let request = ConsumeRequest {
            allow_debt: true,
            ..ConsumeRequest::new(service)
        };
        let key = IdempotencyKey::parse(key_of(n, service)).unwrap();
        let charge = PendingCharge::new(session.account(), &key, request);
        let outcome = match sync.charge(&session, charge).await.outcome() {
            Some(ChargeOutcome::Acknowledged { .. }) => "acknowledged",
            Some(ChargeOutcome::Pending { .. }) => "pending",
            _ => "refused",
        };
        log(format!("outcome {n} {outcome}"));
    }
    log("finished".into());
}

/// What the progress log says about each job.
#[derive(Default)]
struct Progress {
    started: BTreeSet<usize>,
    failed: BTreeSet<usize>,
    done: BTreeSet<usize>,
    outcomes: BTreeMap<usize, String>,
    finished: bool,
    drained: bool,
}

fn read_progress(path: &Path) -> Progress {
    let mut progress = Progress::default();
    let text = std::fs::read_to_string(path).unwrap_or_default();
    for line in text.lines() {
        let words: Vec<&str> = line.split(' ').collect();
        let n = || words.get(1).and_then(|n| n.parse::<usize>().ok());
        match words[0] {
            "start" => progress.started.extend(n()),
            "failed" => progress.failed.extend(n()),
            "done" => progress.done.extend(n()),
            "outcome" if words.len() == 3 => {
                progress.outcomes.insert(n().unwrap(), words[2].to_owned());
            }
            "finished" => progress.finished = true,
            "drained" => progress.drained = true,
            _ => {} // a line cut short by a kill
        }
    }
    progress
}

fn spawn_worker(orders: &Orders) -> Child {
    let errors = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(orders.progress.with_extension("err"))
        .unwrap();
    Command::new(std::env::current_exe().unwrap())
        .args([
            "--ignored",
            "--exact",
            "kill::kill_worker",
            "--test-threads=1",
        ])
        .env(WORKER_ENV, serde_json::to_string(orders).unwrap())
        .stdout(errors.try_clone().unwrap())
        .stderr(errors)
        .spawn()
        .unwrap()
}

/// What the workers printed (their panics), for a failed assertion.
fn worker_output(orders: &Orders) -> String {
    let text = std::fs::read_to_string(orders.progress.with_extension("err")).unwrap_or_default();
    let lines: Vec<&str> = text
        .lines()
        .filter(|line| !line.starts_with("  ") && !line.trim().is_empty())
        .collect();
    lines[lines.len().saturating_sub(12)..].join("\n")
}

fn env_number(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|value| value.parse().ok())
        .unwrap_or(default)
}

#[test]
fn kill_test() {
    let seed = env_number("POINTS_KILL_SEED", 20_261_124);
    let wanted_kills = env_number("POINTS_KILL_COUNT", 120);
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let ledger = runtime.block_on(TestLedger::start(1_000_000));
    let second = uuid::Uuid::new_v4();
    runtime
        .block_on(ledger.ledger.recharge(second, 1_000_000, in_days(30)))
        .unwrap();
    let tokens = vec![ledger.token.clone(), ledger.ledger.token_for(second)];
    let dir = tempfile::tempdir().unwrap();
    let mut orders = Orders {
        base_url: ledger.ledger.base_url(),
        journal_dir: dir.path().join("journal"),
        progress: dir.path().join("progress.log"),
        tokens: tokens.clone(),
        start_at: 0,
        drain: false,
        seed,
    };
    let mut rng = fastrand::Rng::with_seed(seed);
    let started = Instant::now();
    let (mut kills, mut runs, mut torn_writes) = (0u64, 0u64, 0usize);
    loop {
        let progress = read_progress(&orders.progress);
        if progress.finished {
            break;
        }
        orders.start_at = progress.started.last().map_or(0, |last| last + 1);
        torn_writes += count_temporary_files(&orders.journal_dir);
        let mut child = spawn_worker(&orders);
        runs += 1;
        if kills < wanted_kills {
            std::thread::sleep(Duration::from_millis(rng.u64(10..120)));
            if child.try_wait().unwrap().is_none() {
                child.kill().unwrap(); // SIGKILL
                kills += 1;
            }
        }
        let status = child.wait().unwrap();
        assert!(
            kills < wanted_kills || status.success() || status.code().is_none(),
            "the worker failed: {status}: {}",
            worker_output(&orders)
        );
        assert!(
            started.elapsed() < Duration::from_secs(240),
            "bounded in time"
        );
    }
    orders.drain = true;
    let drain_started = Instant::now();
    let status = spawn_worker(&orders).wait().unwrap();
    if !status.success() {
        // Ask the ledger itself why the charges left cannot be applied.
        let journal = Journal::open(&orders.journal_dir).unwrap();
        let users = [ledger.user, second];
        for charge in journal.pending().iter().take(3) {
            let user = users
                .into_iter()
                .find(|user| charge.account == format!("sub:{user}"))
                .unwrap();
            let answer = runtime.block_on(ledger.ledger.ledger().consume(
                user,
                &points_ledger::ledger::ConsumeRequest {
                    service: charge.request.service.clone(),
                    duration: None,
                    allow_debt: true,
                    reference: None,
                },
                &points_ledger::ledger::IdempotencyKey::parse(&charge.idempotency_key).unwrap(),
            ));
            eprintln!("{}: {answer:?}", charge.idempotency_key);
        }
    }
    assert!(
        status.success(),
        "drain: {status}: {}",
        worker_output(&orders)
    );
    let drain_time = drain_started.elapsed();
    let progress = read_progress(&orders.progress);
    assert!(progress.drained);

    // The ledger's history, per account: which job keys it charged, how often.
    let histories: Vec<Vec<String>> = tokens
        .iter()
        .map(|token| runtime.block_on(charged_keys(&client_for(&orders.base_url, Some(token)))))
        .collect();
    let (mut lost, mut doubled, mut misbilled, mut failed_charged, mut unfinished_charged) =
        (0, 0, 0, 0, 0);
    let (mut killed_after_work, mut killed_after_work_charged) = (0, 0);
    for n in 0..JOBS {
        let (account, service, _) = job(n, seed, tokens.len());
        let key = key_of(n, service);
        let count = |history: &Vec<String>| history.iter().filter(|k| **k == key).count();
        let own = count(&histories[account]);
        let others: usize = (0..tokens.len())
            .filter(|other| *other != account)
            .map(|other| count(&histories[other]))
            .sum();
        misbilled += others;
        doubled += own.saturating_sub(1);
        if progress.failed.contains(&n) && own > 0 {
            failed_charged += 1;
        }
        if !progress.done.contains(&n) && !progress.failed.contains(&n) && own > 0 {
            unfinished_charged += 1;
        }
        if progress.outcomes.contains_key(&n) && own == 0 {
            lost += 1;
        }
        if progress.done.contains(&n) && !progress.outcomes.contains_key(&n) {
            killed_after_work += 1;
            killed_after_work_charged += usize::from(own > 0);
        }
    }
    let reported = progress.outcomes.len();
    let pending_left = Journal::open(&orders.journal_dir).unwrap().len();
    for token in &tokens {
        let balance = runtime
            .block_on(client_for(&orders.base_url, Some(token)).balance())
            .unwrap();
        assert_eq!(
            balance.balance,
            balance.total_recharged - balance.total_consumed - balance.total_expired
        );
    }
    println!(
        "kill-test seed={seed} kills={kills} runs={runs} jobs={JOBS} charges_reported={reported} \
         killed_between_work_and_answer={killed_after_work} (charged {killed_after_work_charged}) \
         torn_journal_writes={torn_writes} lost={lost} doubled={doubled} misbilled={misbilled} \
         failed_charged={failed_charged} unfinished_charged={unfinished_charged} \
         pending_left={pending_left} drain_ms={} wall_s={:.1}",
        drain_time.as_millis(),
        started.elapsed().as_secs_f64()
    );
    assert!(kills >= wanted_kills, "{kills} kills");
    assert_eq!(
        (
            lost,
            doubled,
            misbilled,
            failed_charged,
            unfinished_charged,
            pending_left
        ),
        (0, 0, 0, 0, 0, 0)
    );
    assert!(reported > JOBS / 2, "most jobs reported their charge");
}

async fn charged_keys(client: &LedgerClient) -> Vec<String> {
    let mut keys = Vec::new();
    let mut before: Option<String> = None;
    loop {
        let page = client
            .transactions(Some(200), before.as_deref())
            .await
            .unwrap();
        keys.extend(
            page.items
                .iter()
                .filter(|item| item.points < 0 && item.service.is_some())
                .filter_map(|item| item.idempotency_key.clone()),
        );
        match page.next_cursor {
            Some(cursor) => before = Some(cursor),
            None => return keys,
        }
    }
}

fn count_temporary_files(dir: &Path) -> usize {
    std::fs::read_dir(dir)
        .into_iter()
        .flatten()
        .filter_map(|entry| entry.ok())
        .filter(|entry| entry.path().extension().is_some_and(|ext| ext == "tmp"))
        .count()
}
