//! Kill test: a worker process runs charged jobs through the plugin's own job flow
//! ([`Jobs::run`]: session captured, price pre-checked with this machine's running jobs and
//! pending charges counted, work, journal, first send; the background sync for the rest) against
//! the reference ledger; the harness SIGKILLs it at seeded random moments, reads the journal it
//! left on disk, starts it again, and at the end lets every account drain. The ledger's own
//! history must then show every job whose journal entry was on disk at a kill charged exactly
//! once, every job that reported its charge charged, no job charged twice (by its reference, and
//! by the account's `total_consumed`), none in the other account, and no failed job charged.
//!
//! An offline phase follows the first: the ledger unreachable (a closed port), jobs run on the
//! allowances the workers took while online, kills during it; then the drain settles them. Every
//! account's charges of that phase must stay within its allowance.
//!
//! The worker is this test binary, started again with `--ignored --exact kill::kill_worker` and
//! its orders in an environment variable. Seed and kill count: `POINTS_KILL_SEED`,
//! `POINTS_KILL_COUNT` (defaults 20261124 and 200). `POINTS_KILL_BREAK` makes the worker break
//! one rule on purpose (see RELIABILITY.md): the test must then fail.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::fs::File;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Child, Command};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};
use tauri_plugin_points::allowance::PinnedKeys;
use tauri_plugin_points::client::{IdempotencyKey, LedgerClient};
use tauri_plugin_points::journal::{Journal, PendingCharge};
use tauri_plugin_points::models::{Transaction, TransactionKind};
use tauri_plugin_points::offline::{Offline, OfflineSettings};
use tauri_plugin_points::{
    ChargeOutcome, ChargeSync, Error, JobSpec, Jobs, Session, Sessions, SyncPolicy, TokenProvider,
};

use crate::common::{client_for, fast_retry, in_days, TestLedger};

const WORKER_ENV: &str = "POINTS_KILL_WORKER";
const BREAK_ENV: &str = "POINTS_KILL_BREAK";
/// Jobs in a row run by one account before the other signs in.
const JOBS_PER_SIGN_IN: usize = 20;
/// The most jobs of one account in flight at once.
const MAX_IN_FLIGHT: u64 = 3;
/// The desktop services and their prices in the reference ledger's shipped table.
const SERVICES: [(&str, i64); 3] = [("compose", 5), ("subtitle_burn", 2), ("cover_design", 2)];
/// Jobs run after the last kill, to the end.
const JOBS_AFTER_LAST_KILL: usize = 200;
/// Jobs of the offline phase (far more than the allowances cover).
const OFFLINE_JOBS: usize = 300;
/// The errors an offline job may meet: past its allowance, or no allowance to run on.
const OFFLINE_REFUSALS: [&str; 2] = ["offlineAllowanceExhausted", "offlineAllowanceNone"];

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
    /// The job after the last one to run.
    jobs: usize,
    /// Sign in as each account in turn and send everything pending, then exit.
    drain: bool,
    seed: u64,
    /// Where the offline allowances are kept.
    offline_dir: PathBuf,
    /// The ledger's allowance keys, pinned.
    allowance_keys: Vec<(String, String)>,
}

/// Job `n` as the seed fixes it.
#[derive(Debug, Clone, Copy)]
struct Plan {
    account: usize,
    service: &'static str,
    price: i64,
    /// Its work fails: it must never be charged.
    fails: bool,
}

fn mix(seed: u64, n: usize) -> u64 {
    seed ^ (n as u64).wrapping_mul(0x9e37_79b9_7f4a_7c15)
}

fn plan(n: usize, seed: u64, accounts: usize) -> Plan {
    let mut rng = fastrand::Rng::with_seed(mix(seed, n));
    let (service, price) = SERVICES[rng.usize(..SERVICES.len())];
    Plan {
        account: (n / JOBS_PER_SIGN_IN) % accounts,
        service,
        price,
        fails: rng.u8(..5) == 0,
    }
}

/// The end of the batch of jobs started at `n`: 1 to 3 jobs run at once, all of one account.
fn batch_end(n: usize, seed: u64, jobs: usize) -> usize {
    let width =
        1 + (fastrand::Rng::with_seed(mix(seed.rotate_left(7), n)).u64(..MAX_IN_FLIGHT)) as usize;
    let block_end = (n / JOBS_PER_SIGN_IN + 1) * JOBS_PER_SIGN_IN;
    (n + width).min(block_end).min(jobs)
}

fn reference_of(n: usize) -> String {
    format!("kill-{n}")
}

fn key_of(n: usize, service: &str) -> String {
    format!("{service}:kill-{n}")
}

/// The job number of a charge's reference.
fn job_of_reference(reference: &str) -> Option<usize> {
    reference.strip_prefix("kill-")?.parse().ok()
}

/// The rule the worker breaks on purpose (`POINTS_KILL_BREAK`), if any.
fn broken() -> String {
    std::env::var(BREAK_ENV).unwrap_or_default()
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

/// The progress file: whole lines, appended with one write each (a kill never leaves half of
/// one behind another).
struct Log(Mutex<File>);

impl Log {
    fn line(&self, line: String) {
        let mut file = self.0.lock().unwrap_or_else(|p| p.into_inner());
        file.write_all(format!("{line}\n").as_bytes()).unwrap();
    }
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

async fn work(orders: Orders) {
    let broken = broken();
    if broken == "lose-journal" {
        // A worker that loses its journal at every start.
        for entry in std::fs::read_dir(&orders.journal_dir).into_iter().flatten() {
            let path = entry.unwrap().path();
            if path.extension().is_some_and(|ext| ext == "json") {
                std::fs::remove_file(path).unwrap();
            }
        }
    }
    // The app, assembled as the plugin assembles it.
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
        ..SyncPolicy::default()
    };
    let sync = ChargeSync::new(
        client.clone(),
        journal,
        sessions.clone(),
        policy,
        Arc::new(()),
    );
    tokio::spawn(sync.clone().run());
    let keys = PinnedKeys::from_base64(
        orders
            .allowance_keys
            .iter()
            .map(|(id, key)| (id.as_str(), key.as_str())),
    )
    .unwrap();
    let mut settings = OfflineSettings::new(keys);
    settings.device_id = Some("kill-desk".into());
    let offline = Offline::open(&orders.offline_dir, settings).expect("the offline state opens");
    let jobs = Jobs::new(client.clone(), sync.clone(), Arc::new(())).with_offline(offline);
    let log = Arc::new(Log(Mutex::new(
        std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&orders.progress)
            .unwrap(),
    )));
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
        log.line("drained".into());
        return;
    }
    let accounts = orders.tokens.len();
    let mut n = orders.start_at;
    while n < orders.jobs {
        let end = batch_end(n, orders.seed, orders.jobs);
        let mut account = plan(n, orders.seed, accounts).account;
        if broken == "wrong-account" && (n / JOBS_PER_SIGN_IN).is_multiple_of(5) {
            // Jobs of one account run in the other's session.
            account = (account + 1) % accounts;
        }
        let token = &orders.tokens[account];
        if sessions.current().map(|s| s.token().to_owned()).as_deref() != Some(token) {
            sessions.sign_out();
            sessions.sign_in(Session::new(token.clone(), None).unwrap());
        }
        // Up to three jobs of the account at once, each its own task.
        let batch: Vec<_> = (n..end)
            .map(|job| {
                tokio::spawn(run_job(
                    jobs.clone(),
                    log.clone(),
                    job,
                    orders.seed,
                    accounts,
                ))
            })
            .collect();
        for job in batch {
            job.await.unwrap();
        }
        n = end;
    }
    log.line(format!("finished {}", orders.jobs));
}

/// Runs job `n` through [`Jobs::run`] in the session signed in now.
async fn run_job(jobs: Jobs, log: Arc<Log>, n: usize, seed: u64, accounts: usize) {
    let broken = broken();
    let plan = plan(n, seed, accounts);
    let mut key = key_of(n, plan.service);
    if broken == "fresh-key" {
        // A worker that starts the jobs a kill interrupted again, each under a fresh key.
        key = format!("{key}:{}", uuid::Uuid::new_v4().simple());
    }
    let mut spec = JobSpec::new(plan.service, IdempotencyKey::parse(key).unwrap());
    spec.reference = Some(reference_of(n));
    log.line(format!("start {n}"));
    let pause = Duration::from_micros(fastrand::Rng::with_seed(mix(seed, n)).u64(..3000));
    let outcome = jobs
        .run(spec, || {
            let log = log.clone();
            work_of(n, plan.fails && broken != "charge-failed", pause, log)
        })
        .await;
    match outcome {
        Ok(charged) => {
            let outcome = match charged.charge {
                ChargeOutcome::Acknowledged { .. } => "acknowledged",
                ChargeOutcome::Pending { .. } => "pending",
                _ => "refused",
            };
            log.line(format!("outcome {n} {outcome}"));
        }
        Err(JobError::WorkFailed) => {}
        Err(JobError::Points(error)) => log.line(format!("error {n} {}", error.kind())),
    }
}

/// The work of job `n`: a few milliseconds, then success, or failure when `fails`.
async fn work_of(n: usize, fails: bool, pause: Duration, log: Arc<Log>) -> Result<(), JobError> {
    tokio::time::sleep(pause).await;
    if fails {
        log.line(format!("failed {n}"));
        return Err(JobError::WorkFailed);
    }
    log.line(format!("done {n}"));
    Ok(())
}

/// What the progress log says about each job.
#[derive(Default)]
struct Progress {
    started: BTreeSet<usize>,
    failed: BTreeSet<usize>,
    done: BTreeSet<usize>,
    outcomes: BTreeMap<usize, String>,
    errors: BTreeMap<usize, String>,
    /// The job count of the last run that ran to its end.
    finished: Option<usize>,
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
            "error" if words.len() == 3 => {
                progress.errors.insert(n().unwrap(), words[2].to_owned());
            }
            "finished" => progress.finished = n(),
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

/// The charges on disk in a journal directory left by a killed worker, read without opening
/// the journal (which would set aside its temporary files): (account, key) of each.
fn journaled(dir: &Path) -> Vec<(String, String)> {
    std::fs::read_dir(dir)
        .into_iter()
        .flatten()
        .filter_map(|entry| entry.ok().map(|entry| entry.path()))
        .filter(|path| path.extension().is_some_and(|ext| ext == "json"))
        .filter_map(|path| {
            let bytes = std::fs::read(&path).ok()?;
            let charge: PendingCharge = serde_json::from_slice(&bytes)
                .unwrap_or_else(|error| panic!("{} is unreadable: {error}", path.display()));
            Some((charge.account, charge.idempotency_key))
        })
        .collect()
}

#[test]
fn kill_test() {
    let seed = env_number("POINTS_KILL_SEED", 20_261_124);
    let wanted_kills = env_number("POINTS_KILL_COUNT", 200);
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let ledger = runtime.block_on(TestLedger::start(1_000_000_000));
    let second = uuid::Uuid::new_v4();
    runtime
        .block_on(ledger.ledger.recharge(second, 1_000_000_000, in_days(30)))
        .unwrap();
    let tokens = vec![ledger.token.clone(), ledger.ledger.token_for(second)];
    let labels: Vec<String> = tokens
        .iter()
        .map(|token| {
            Session::new(token.clone(), None)
                .unwrap()
                .account()
                .to_owned()
        })
        .collect();
    let dir = tempfile::tempdir().unwrap();
    let allowance_keys = ledger.ledger.allowance_public_keys();
    let mut orders = Orders {
        base_url: ledger.ledger.base_url(),
        journal_dir: dir.path().join("journal"),
        progress: dir.path().join("progress.log"),
        tokens: tokens.clone(),
        start_at: 0,
        jobs: 2000,
        drain: false,
        seed,
        offline_dir: dir.path().join("offline"),
        allowance_keys,
    };
    let mut rng = fastrand::Rng::with_seed(seed);
    let started = Instant::now();
    let bound = Duration::from_secs(180 + wanted_kills);
    let mut tally = Tally::default();
    kill_phase(
        &mut orders,
        wanted_kills,
        true,
        &mut rng,
        &mut tally,
        started + bound,
    );
    let online_kills = tally.kills;

    // Offline: the ledger unreachable, jobs on the allowances taken while online, kills too.
    let online_base_url = orders.base_url.clone();
    orders.base_url = closed_port();
    let offline_from = read_progress(&orders.progress)
        .started
        .last()
        .map_or(0, |last| last + 1);
    orders.jobs = offline_from + OFFLINE_JOBS;
    let allowances_before = allowances(&orders.offline_dir);
    let offline_kills = (wanted_kills / 5).max(5);
    kill_phase(
        &mut orders,
        offline_kills,
        false,
        &mut rng,
        &mut tally,
        started + bound,
    );
    let offline_to = orders.jobs;
    let allowances_after = allowances(&orders.offline_dir);
    assert_eq!(
        allowances_before, allowances_after,
        "no allowance is taken while the ledger is unreachable"
    );
    orders.base_url = online_base_url;
    let Tally {
        kills,
        runs,
        torn_writes,
        on_disk,
    } = tally;
    let kill_phase_time = started.elapsed();
    orders.drain = true;
    let drain_started = Instant::now();
    let status = spawn_worker(&orders).wait().unwrap();
    assert!(
        status.success(),
        "drain: {status}: {}",
        worker_output(&orders)
    );
    let drain_time = drain_started.elapsed();
    let progress = read_progress(&orders.progress);
    assert!(progress.drained);
    let jobs = orders.jobs;

    // The ledger's own history and summary, per account, read directly.
    let mut summaries = Vec::new();
    let mut histories: Vec<Vec<Transaction>> = Vec::new();
    for token in &tokens {
        let client = client_for(&orders.base_url, Some(token));
        summaries.push(runtime.block_on(client.balance()).unwrap());
        histories.push(runtime.block_on(consumes(&client)));
    }
    // reference → the accounts its entries are in (one per entry).
    let mut by_reference: HashMap<String, Vec<usize>> = HashMap::new();
    // (account, key) → entries.
    let mut by_key: HashMap<(usize, String), usize> = HashMap::new();
    let mut unreferenced = 0;
    for (account, history) in histories.iter().enumerate() {
        for item in history {
            match item.reference.as_deref().and_then(job_of_reference) {
                Some(n) => by_reference
                    .entry(reference_of(n))
                    .or_default()
                    .push(account),
                None => unreferenced += 1,
            }
            *by_key
                .entry((account, item.idempotency_key.clone().unwrap_or_default()))
                .or_default() += 1;
        }
    }
    let accounts = tokens.len();
    let entries_of = |n: usize| by_reference.get(&reference_of(n)).map_or(&[][..], |v| v);
    let mut doubled = Vec::new();
    let mut misbilled = Vec::new();
    let mut failed_charged = Vec::new();
    let mut unfinished_charged = Vec::new();
    let mut lost = Vec::new();
    let mut killed_after_work_uncharged = Vec::new();
    let mut killed_after_work_charged = 0;
    let mut failed_jobs = 0;
    let mut charged_jobs = 0;
    for n in 0..jobs {
        let plan = plan(n, seed, accounts);
        let entries = entries_of(n);
        failed_jobs += usize::from(plan.fails);
        charged_jobs += usize::from(!entries.is_empty());
        if entries.len() > 1 {
            doubled.push(n);
        }
        if entries.iter().any(|account| *account != plan.account) {
            misbilled.push(n);
        }
        if plan.fails && !entries.is_empty() {
            failed_charged.push(n);
        }
        if !plan.fails && !progress.done.contains(&n) && !entries.is_empty() {
            unfinished_charged.push(n);
        }
        if progress.outcomes.contains_key(&n) && entries.is_empty() {
            lost.push(n);
        }
        if progress.done.contains(&n) && !progress.outcomes.contains_key(&n) {
            if entries.is_empty() {
                killed_after_work_uncharged.push(n);
            } else {
                killed_after_work_charged += 1;
            }
        }
    }
    // Every charge that was on disk at a kill: exactly once in the ledger, in its own account.
    let mut journaled_not_once = Vec::new();
    for (account, key) in on_disk.keys() {
        let own = labels.iter().position(|label| label == account);
        let counts: Vec<usize> = (0..accounts)
            .map(|other| {
                by_key
                    .get(&(other, key.clone()))
                    .copied()
                    .unwrap_or_default()
            })
            .collect();
        let once = own.is_some_and(|own| counts[own] == 1 && counts.iter().sum::<usize>() == 1);
        if !once {
            journaled_not_once.push((account.clone(), key.clone(), counts));
        }
    }
    // total_consumed of each account against the prices of the distinct jobs in its history.
    let mut totals_wrong = Vec::new();
    for (account, summary) in summaries.iter().enumerate() {
        let distinct: BTreeSet<usize> = histories[account]
            .iter()
            .filter_map(|item| item.reference.as_deref().and_then(job_of_reference))
            .collect();
        let priced: i64 = distinct
            .iter()
            .map(|n| plan(*n, seed, accounts).price)
            .sum();
        if summary.total_consumed != priced
            || summary.balance
                != summary.total_recharged - summary.total_consumed - summary.total_expired
        {
            totals_wrong.push((account, summary.total_consumed, priced));
        }
    }
    let journal = Journal::open(&orders.journal_dir).unwrap();
    let pending_left = journal.len();
    // No rule refuses a charge here (debt allowed, known services, fresh keys).
    let refused: Vec<_> = labels
        .iter()
        .flat_map(|label| journal.refused_of(label))
        .collect();
    drop(journal);
    // The offline phase: each account's charges of it within the allowance it ran on.
    let mut offline_charged = 0;
    let mut over_allowance = Vec::new();
    for (account, label) in labels.iter().enumerate() {
        let spent: i64 = (offline_from..offline_to)
            .filter(|n| !entries_of(*n).is_empty())
            .map(|n| plan(n, seed, accounts))
            .filter(|plan| plan.account == account)
            .map(|plan| plan.price)
            .sum();
        offline_charged += (offline_from..offline_to)
            .filter(|n| !entries_of(*n).is_empty() && plan(*n, seed, accounts).account == account)
            .count();
        let allowed = allowances_before
            .get(label)
            .map_or(0, |(_, points)| *points);
        if spent > allowed {
            over_allowance.push((label.clone(), spent, allowed));
        }
    }
    let offline_refused = progress
        .errors
        .iter()
        .filter(|(n, kind)| {
            (offline_from..offline_to).contains(n) && OFFLINE_REFUSALS.contains(&kind.as_str())
        })
        .count();
    let other_errors: Vec<_> = progress
        .errors
        .iter()
        .filter(|(n, kind)| {
            !((offline_from..offline_to).contains(*n) && OFFLINE_REFUSALS.contains(&kind.as_str()))
        })
        .take(5)
        .collect();
    println!(
        "kill-test offline phase: jobs={} kills={} charged={offline_charged} \
         refused_before_work={offline_refused} over_allowance={} allowances={:?}",
        offline_to - offline_from,
        kills - online_kills,
        over_allowance.len(),
        allowances_before
            .values()
            .map(|(_, points)| *points)
            .collect::<Vec<_>>(),
    );
    assert!(
        over_allowance.is_empty(),
        "offline charges past the allowance (account, spent, allowance): {over_allowance:?}"
    );
    assert!(
        offline_charged > 0 && offline_refused > 0,
        "the offline phase ran jobs on the allowances and met their end"
    );
    let reported = progress.outcomes.len();
    let pending_reported = progress
        .outcomes
        .values()
        .filter(|outcome| *outcome == "pending")
        .count();
    println!(
        "kill-test seed={seed} kills={kills} runs={runs} jobs={jobs} charged_jobs={charged_jobs} \
         failed_jobs={failed_jobs} charges_reported={reported} (pending {pending_reported}) \
         journaled_at_a_kill={} killed_between_work_and_answer={} (charged \
         {killed_after_work_charged}, uncharged {}) torn_journal_writes={torn_writes} \
         lost={} doubled={} misbilled={} failed_charged={} unfinished_charged={} \
         journaled_not_charged_once={} unreferenced={unreferenced} totals_wrong={} \
         pending_left={pending_left} refused={} errors={} kill_phase_s={:.1} drain_ms={} wall_s={:.1}",
        on_disk.len(),
        killed_after_work_charged + killed_after_work_uncharged.len(),
        killed_after_work_uncharged.len(),
        lost.len(),
        doubled.len(),
        misbilled.len(),
        failed_charged.len(),
        unfinished_charged.len(),
        journaled_not_once.len(),
        totals_wrong.len(),
        refused.len(),
        progress.errors.len(),
        kill_phase_time.as_secs_f64(),
        drain_time.as_millis(),
        started.elapsed().as_secs_f64()
    );
    println!(
        "kill-test: jobs killed after their work, before their charge was journaled (allowed \
         uncharged): {killed_after_work_uncharged:?}"
    );
    let first = |list: &Vec<usize>| list.iter().take(5).copied().collect::<Vec<_>>();
    assert!(doubled.is_empty(), "doubled: jobs {:?}", first(&doubled));
    assert!(
        totals_wrong.is_empty(),
        "total_consumed against the prices of the jobs charged: {totals_wrong:?}"
    );
    assert!(
        journaled_not_once.is_empty(),
        "journaled at a kill but not charged exactly once (account, key, entries per account): \
         {:?}",
        &journaled_not_once[..journaled_not_once.len().min(5)]
    );
    assert!(
        failed_charged.is_empty(),
        "failed jobs charged: {:?}",
        first(&failed_charged)
    );
    assert!(
        misbilled.is_empty(),
        "charged to the other account: jobs {:?}",
        first(&misbilled)
    );
    assert!(
        lost.is_empty(),
        "reported but not charged: {:?}",
        first(&lost)
    );
    assert!(
        unfinished_charged.is_empty(),
        "charged before their work ended: {:?}",
        first(&unfinished_charged)
    );
    assert_eq!(unreferenced, 0, "charges of no job");
    assert_eq!(pending_left, 0, "the journal is empty after the drain");
    assert!(
        refused.is_empty(),
        "charges refused for good: {:?}",
        &refused[..refused.len().min(5)]
    );
    assert!(other_errors.is_empty(), "jobs refused: {other_errors:?}");
    // The run is the one described.
    assert!(kills >= wanted_kills, "{kills} kills");
    assert!(
        !on_disk.is_empty() && failed_jobs > 0 && 4 * reported > jobs - failed_jobs,
        "kills found journaled charges, some jobs failed, a good share of the others reported their charge"
    );
}

/// What the kill phases did, together.
#[derive(Default)]
struct Tally {
    kills: u64,
    runs: u64,
    torn_writes: usize,
    /// Every charge found on disk after a kill: (account, key) → the kills it was seen after.
    on_disk: BTreeMap<(String, String), usize>,
}

/// Starts workers and kills them at random moments until `wanted_kills` kills and the jobs of
/// `orders` ran to their end (`more_jobs`: more jobs when they run out before the kills).
fn kill_phase(
    orders: &mut Orders,
    wanted_kills: u64,
    more_jobs: bool,
    rng: &mut fastrand::Rng,
    tally: &mut Tally,
    deadline: Instant,
) {
    let broken = broken();
    let mut kills = 0;
    loop {
        let progress = read_progress(&orders.progress);
        if progress.finished == Some(orders.jobs) {
            if kills >= wanted_kills || !more_jobs {
                break;
            }
            // The jobs ran out before the kills: more of them.
            orders.jobs += 1000;
        }
        orders.start_at = progress.started.last().map_or(0, |last| last + 1);
        if broken == "fresh-key" {
            orders.start_at = orders.start_at.saturating_sub(2);
        }
        if kills >= wanted_kills {
            orders.jobs = orders
                .jobs
                .min(orders.start_at + JOBS_AFTER_LAST_KILL)
                .max(orders.start_at);
        }
        let mut child = spawn_worker(orders);
        tally.runs += 1;
        let mut killed = false;
        if kills < wanted_kills {
            std::thread::sleep(Duration::from_millis(rng.u64(10..120)));
            if child.try_wait().unwrap().is_none() {
                child.kill().unwrap(); // SIGKILL
                kills += 1;
                killed = true;
            }
        }
        let status = child.wait().unwrap();
        if killed {
            // The worker is dead: what its journal holds now is what the next start finds.
            for charge in journaled(&orders.journal_dir) {
                *tally.on_disk.entry(charge).or_default() += 1;
            }
            tally.torn_writes += count_temporary_files(&orders.journal_dir);
        }
        assert!(
            killed || status.success(),
            "the worker failed: {status}: {}",
            worker_output(orders)
        );
        assert!(Instant::now() < deadline, "bounded in time");
    }
    tally.kills += kills;
}

/// A loopback URL nothing listens on: the ledger unreachable.
fn closed_port() -> String {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    drop(listener);
    url
}

/// The allowances held in `dir`, read from the file: account → (allowance id, points).
fn allowances(dir: &Path) -> BTreeMap<String, (String, i64)> {
    let Ok(bytes) = std::fs::read(dir.join("allowances.json")) else {
        return BTreeMap::new();
    };
    let saved: serde_json::Value = serde_json::from_slice(&bytes).unwrap();
    saved["accounts"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|account| {
            let allowance = &account["held"]["allowance"];
            Some((
                account["account"].as_str()?.to_owned(),
                (
                    allowance["allowance_id"].as_str()?.to_owned(),
                    allowance["points"].as_i64()?,
                ),
            ))
        })
        .collect()
}

/// Every consume entry of `client`'s account.
async fn consumes(client: &LedgerClient) -> Vec<Transaction> {
    let mut items = Vec::new();
    let mut before: Option<String> = None;
    loop {
        let page = client
            .transactions(Some(200), before.as_deref())
            .await
            .unwrap();
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

fn count_temporary_files(dir: &Path) -> usize {
    std::fs::read_dir(dir)
        .into_iter()
        .flatten()
        .filter_map(|entry| entry.ok())
        .filter(|entry| entry.path().extension().is_some_and(|ext| ext == "tmp"))
        .count()
}
