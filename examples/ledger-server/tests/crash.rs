//! The ledger process under load, killed and restarted: every consume acknowledged to a client
//! is in the journal exactly once afterwards, and the books balance. And two ledger processes
//! on one PostgreSQL database under the same kind of load, the same keys sent to both: every
//! consume is charged exactly once. These run the `points-ledger` binary itself.

mod common;

use std::collections::HashMap;
use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use points_ledger::auth::{Auth, JwtSettings};
use points_ledger::db::Db;
use points_ledger::{Ledger, PriceTable, SystemClock};
use serde_json::{json, Value};
use uuid::Uuid;

const SECRET: &str = "crash-test-secret-of-more-than-32-bytes";
const ADMIN_KEY: &str = "crash-test-admin-key";
/// `script` costs 5 points (the shipped price table).
const PRICE: i64 = 5;

/// A `points-ledger serve` process.
struct Process {
    child: Child,
    base_url: String,
}

impl Process {
    /// Starts the binary on `database_url` on a free loopback port; returns once it listens.
    fn start(database_url: &str) -> Self {
        let mut child = Command::new(env!("CARGO_BIN_EXE_points-ledger"))
            .args([
                "serve",
                "--database-url",
                database_url,
                "--bind",
                "127.0.0.1:0",
            ])
            .args(["--jwt-secret", SECRET, "--admin-key", ADMIN_KEY])
            .env("RUST_LOG", "info")
            .env("NO_COLOR", "1")
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("start points-ledger");
        let stderr = child.stderr.take().unwrap();
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            let mut tx = Some(tx);
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                if let Some(at) = line.find("addr=") {
                    let addr: String = line[at + 5..]
                        .chars()
                        .take_while(|c| !c.is_whitespace())
                        .collect();
                    if let Some(tx) = tx.take() {
                        let _ = tx.send(addr);
                    }
                }
            }
        });
        let addr = rx
            .recv_timeout(Duration::from_secs(60))
            .expect("the ledger says where it listens");
        Self {
            child,
            base_url: format!("http://{addr}"),
        }
    }

    /// SIGKILL: no shutdown, no flush, no answer to what is in flight.
    fn kill(mut self) {
        self.child.kill().expect("SIGKILL");
        self.child.wait().unwrap();
    }
}

impl Drop for Process {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn tokens(users: &[Uuid]) -> Vec<String> {
    let auth = Auth::configured(SECRET, ADMIN_KEY, &JwtSettings::default()).unwrap();
    users.iter().map(|u| auth.token_for(*u)).collect()
}

async fn recharge(http: &reqwest::Client, base_url: &str, user: Uuid, points: i64) {
    let response = http
        .post(format!("{base_url}/admin/recharge"))
        .header("X-Admin-Key", ADMIN_KEY)
        .header("Idempotency-Key", format!("setup-{user}"))
        .json(&json!({
            "user_id": user,
            "points": points,
            "expires_at": "2099-01-01T00:00:00Z",
        }))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200, "recharge");
}

/// One consume of `script` under `key`: `Some(status)`, or `None` when no answer came (the
/// outcome is unknown).
async fn consume(http: &reqwest::Client, base_url: &str, token: &str, key: &str) -> Option<u16> {
    let response = http
        .post(format!("{base_url}/points/consume"))
        .bearer_auth(token)
        .header("Idempotency-Key", key)
        .json(&json!({"service": "script"}))
        .timeout(Duration::from_secs(30))
        .send()
        .await
        .ok()?;
    let status = response.status().as_u16();
    response.json::<Value>().await.ok()?;
    Some(status)
}

/// What the load generator saw: the keys answered 200, and every key sent.
#[derive(Default)]
struct Seen {
    acknowledged: Vec<(usize, String)>,
    sent: Vec<(usize, String)>,
}

/// `clients` tasks sending consumes with fresh keys over `users` to the `targets` in turn (the
/// same key to each target when `same_key_to_all`), until `stop`.
fn load(
    targets: Vec<String>,
    tokens: Arc<Vec<String>>,
    clients: usize,
    same_key_to_all: bool,
    stop: Arc<AtomicBool>,
    seen: Arc<Mutex<Seen>>,
) -> tokio::task::JoinSet<()> {
    let mut tasks = tokio::task::JoinSet::new();
    for client in 0..clients {
        let (targets, tokens, stop, seen) =
            (targets.clone(), tokens.clone(), stop.clone(), seen.clone());
        tasks.spawn(async move {
            let http = reqwest::Client::new();
            let mut n = 0usize;
            while !stop.load(Ordering::Relaxed) {
                let user = (client + n) % tokens.len();
                let key = format!("c{client}-{n}");
                let sends = if same_key_to_all { targets.len() } else { 1 };
                for i in 0..sends {
                    let target = &targets[(client + n + i) % targets.len()];
                    seen.lock().unwrap().sent.push((user, key.clone()));
                    match consume(&http, target, &tokens[user], &key).await {
                        Some(200) => seen.lock().unwrap().acknowledged.push((user, key.clone())),
                        // 409: the same key is being applied (the other instance): not an answer.
                        Some(409) | None => {}
                        Some(status) => panic!("consume {key}: status {status}"),
                    }
                }
                n += 1;
            }
        });
    }
    tasks
}

/// The consume keys in the journal, with how many entries each has.
async fn journalled(ledger: &Ledger, users: &[Uuid]) -> HashMap<(usize, String), i64> {
    let mut keys = HashMap::new();
    for (i, user) in users.iter().enumerate() {
        let rows: Vec<(String, i64)> = sqlx::query_as(
            "SELECT idempotency_key, COUNT(*) FROM journal \
             WHERE user_id = $1 AND kind = 'consume' GROUP BY idempotency_key",
        )
        .bind(user.to_string())
        .fetch_all(ledger.db().pool())
        .await
        .unwrap();
        for (key, n) in rows {
            keys.insert((i, key), n);
        }
    }
    keys
}

/// Every key of `seen` is charged exactly once (after the retries of the unanswered ones), and
/// the totals are what that many charges make.
async fn assert_exactly_once(ledger: &Ledger, users: &[Uuid], seen: &Seen, initial: i64) {
    let journal = journalled(ledger, users).await;
    for key in &seen.acknowledged {
        assert_eq!(journal.get(key), Some(&1), "acknowledged {key:?}");
    }
    let mut sent: Vec<&(usize, String)> = seen.sent.iter().collect();
    sent.sort();
    sent.dedup();
    for key in &sent {
        assert_eq!(journal.get(*key), Some(&1), "sent and retried {key:?}");
    }
    assert_eq!(
        journal.len(),
        sent.len(),
        "no charge under a key never sent"
    );
    let mut consumed = 0;
    for user in users {
        let summary = ledger.summary(*user).await.unwrap();
        assert_eq!(summary.balance, initial - summary.total_consumed);
        consumed += summary.total_consumed;
    }
    assert_eq!(consumed, PRICE * sent.len() as i64);
    common::assert_books_balance(ledger).await;
}

/// Sends again every key that got no 200, until each does: after a crash, a client retries.
async fn retry_unanswered(base_url: &str, tokens: &[String], seen: &mut Seen) {
    let http = reqwest::Client::new();
    let acknowledged: std::collections::HashSet<_> = seen.acknowledged.iter().cloned().collect();
    let mut unanswered: Vec<(usize, String)> = seen
        .sent
        .iter()
        .filter(|k| !acknowledged.contains(*k))
        .cloned()
        .collect();
    unanswered.sort();
    unanswered.dedup();
    for (user, key) in unanswered {
        let status = consume(&http, base_url, &tokens[user], &key).await;
        assert_eq!(status, Some(200), "retry of {key}");
        seen.acknowledged.push((user, key));
    }
}

const USERS: usize = 8;
const INITIAL: i64 = 1_000_000_000;

/// Loads a ledger process on `database_url`, SIGKILLs it once `min_acks` consumes were
/// acknowledged, restarts it, and checks.
async fn killed_under_load(database_url: String, min_acks: usize) {
    let users: Vec<Uuid> = (0..USERS).map(|_| Uuid::new_v4()).collect();
    let tokens = Arc::new(tokens(&users));
    let first = Process::start(&database_url);
    let http = reqwest::Client::new();
    for user in &users {
        recharge(&http, &first.base_url, *user, INITIAL).await;
    }
    let (stop, seen) = (Arc::new(AtomicBool::new(false)), Arc::default());
    let tasks = load(
        vec![first.base_url.clone()],
        tokens.clone(),
        16,
        false,
        stop.clone(),
        Arc::clone(&seen),
    );
    let started = Instant::now();
    while seen.lock().unwrap().acknowledged.len() < min_acks {
        assert!(
            started.elapsed() < Duration::from_secs(60),
            "too slow a load"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    first.kill();
    stop.store(true, Ordering::Relaxed);
    tasks.join_all().await;
    let mut seen = Arc::try_unwrap(seen).ok().unwrap().into_inner().unwrap();
    let acknowledged_before_kill = seen.acknowledged.len();

    let second = Process::start(&database_url);
    retry_unanswered(&second.base_url, &tokens, &mut seen).await;
    let db = Db::connect(&database_url, 2).await.unwrap();
    let ledger = Ledger::new(db, PriceTable::shipped(), Arc::new(SystemClock));
    assert_exactly_once(&ledger, &users, &seen, INITIAL).await;
    eprintln!(
        "killed with {acknowledged_before_kill} acknowledged, {} sent",
        seen.sent.len()
    );
    ledger.db().close().await;
    drop(second);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_file_killed_under_load_keeps_every_acknowledged_consume() {
    let dir = tempfile::tempdir().unwrap();
    let url = format!(
        "sqlite:{}?mode=rwc",
        dir.path().join("crash.sqlite").display()
    );
    killed_under_load(url, 300).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_killed_under_load_keeps_every_acknowledged_consume() {
    let Some(base) = common::pg_url() else { return };
    let url = common::fresh_pg_database(&base).await;
    killed_under_load(url.clone(), 500).await;
    common::drop_pg_database(&url).await;
}

/// Two processes on one PostgreSQL database, 16 clients sending each key to both (one after
/// the other, so the second is a retry on the other instance, while other keys of the same
/// users are in flight on both): every key charged exactly once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_processes_on_one_postgres_charge_every_consume_once() {
    let Some(base) = common::pg_url() else { return };
    let url = common::fresh_pg_database(&base).await;
    let users: Vec<Uuid> = (0..USERS).map(|_| Uuid::new_v4()).collect();
    let tokens = Arc::new(tokens(&users));
    let (a, b) = (Process::start(&url), Process::start(&url));
    let http = reqwest::Client::new();
    for user in &users {
        recharge(&http, &a.base_url, *user, INITIAL).await;
    }
    let (stop, seen) = (Arc::new(AtomicBool::new(false)), Arc::default());
    let tasks = load(
        vec![a.base_url.clone(), b.base_url.clone()],
        tokens.clone(),
        16,
        true,
        stop.clone(),
        Arc::clone(&seen),
    );
    tokio::time::sleep(Duration::from_secs(3)).await;
    stop.store(true, Ordering::Relaxed);
    tasks.join_all().await;
    let mut seen = Arc::try_unwrap(seen).ok().unwrap().into_inner().unwrap();
    assert!(seen.acknowledged.len() > 100, "the load ran");
    retry_unanswered(&a.base_url, &tokens, &mut seen).await;
    let db = Db::connect(&url, 2).await.unwrap();
    let ledger = Ledger::new(db, PriceTable::shipped(), Arc::new(SystemClock));
    assert_exactly_once(&ledger, &users, &seen, INITIAL).await;
    ledger.db().close().await;
    drop((a, b));
    common::drop_pg_database(&url).await;
}
