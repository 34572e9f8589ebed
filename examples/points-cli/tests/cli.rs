//! Runs the built `points` binary against a real reference ledger started in this process.

use std::path::Path;
use std::process::Output;
use std::sync::Arc;

use points_ledger::{LedgerConfig, RunningLedger};
use points_sdk::client::{ConsumeRequest, IdempotencyKey, LedgerClient};
use points_sdk::journal::{Journal, PendingCharge};
use points_sdk::models::TransactionKind;
use points_sdk::Session;
use serde_json::Value;
use tempfile::TempDir;
use uuid::Uuid;

/// A running ledger, one user of it, and a journal directory of this test's own.
struct Fixture {
    ledger: RunningLedger,
    user: Uuid,
    token: String,
    dir: TempDir,
}

impl Fixture {
    /// A ledger whose user holds `points`, expiring in 30 days.
    async fn start(points: i64) -> Self {
        let ledger = points_ledger::serve(LedgerConfig::ephemeral())
            .await
            .expect("the reference ledger starts");
        let user = Uuid::new_v4();
        if points > 0 {
            let expires_at = time::OffsetDateTime::now_utc() + time::Duration::days(30);
            ledger
                .recharge(user, points, expires_at)
                .await
                .expect("recharge");
        }
        let token = ledger.token_for(user);
        Self {
            ledger,
            user,
            token,
            dir: tempfile::tempdir().expect("a temporary directory"),
        }
    }

    fn journal(&self) -> std::path::PathBuf {
        self.dir.path().join("journal")
    }

    /// Runs `points <args>` with this fixture's ledger, token and journal in the environment.
    async fn points(&self, args: &[&str]) -> Output {
        points_with(
            &[
                ("POINTS_API_URL", self.ledger.base_url().as_str()),
                ("POINTS_TOKEN", self.token.as_str()),
                (
                    "POINTS_JOURNAL",
                    self.journal().to_str().expect("utf-8 path"),
                ),
            ],
            args,
            self.dir.path(),
        )
        .await
    }

    /// `points --json <args>`, its stdout parsed.
    async fn points_json(&self, args: &[&str]) -> (Option<i32>, Value) {
        let mut all = vec!["--json"];
        all.extend_from_slice(args);
        let output = self.points(&all).await;
        let value = serde_json::from_slice(&output.stdout).unwrap_or_else(|error| {
            panic!(
                "`points {}` printed no JSON ({error}): {}",
                all.join(" "),
                text(&output)
            )
        });
        (output.status.code(), value)
    }

    async fn summary(&self) -> points_ledger::ledger::Summary {
        self.ledger
            .ledger()
            .summary(self.user)
            .await
            .expect("summary")
    }

    /// The consume entries of the user's history.
    async fn consumes(&self) -> Vec<points_sdk::models::Transaction> {
        let client = LedgerClient::builder(self.ledger.base_url())
            .token_provider({
                let token = self.token.clone();
                move || Some(token.clone())
            })
            .build()
            .expect("a loopback URL is valid");
        let page = client.transactions(Some(100), None).await.expect("history");
        page.items
            .into_iter()
            .filter(|entry| entry.kind == TransactionKind::Consume)
            .collect()
    }
}

async fn points_with(env: &[(&str, &str)], args: &[&str], cwd: &Path) -> Output {
    let mut command = tokio::process::Command::new(env!("CARGO_BIN_EXE_points"));
    command
        .args(args)
        .current_dir(cwd)
        .env_remove("POINTS_API_URL")
        .env_remove("POINTS_TOKEN")
        .env_remove("POINTS_ACCOUNT")
        .env_remove("POINTS_JOURNAL")
        .env_remove("RUST_LOG");
    for (name, value) in env {
        command.env(name, value);
    }
    command.output().await.expect("the points binary runs")
}

fn stdout(output: &Output) -> String {
    String::from_utf8_lossy(&output.stdout).into_owned()
}

fn text(output: &Output) -> String {
    format!(
        "exit {:?}\n--- stdout\n{}--- stderr\n{}",
        output.status.code(),
        stdout(output),
        String::from_utf8_lossy(&output.stderr)
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn balance_prints_the_summary() {
    let fx = Fixture::start(100).await;
    let output = fx.points(&["balance"]).await;
    assert_eq!(output.status.code(), Some(0), "{}", text(&output));
    assert!(
        stdout(&output).starts_with("balance: 100 points (recharged 100, consumed 0, expired 0;"),
        "{}",
        text(&output)
    );
    let (code, value) = fx.points_json(&["balance"]).await;
    assert_eq!(code, Some(0));
    assert_eq!(value["balance"], 100);
    assert_eq!(value["totalRecharged"], 100);
    assert_eq!(value["seq"], 1, "one recharge so far: {value}");
    assert!(
        !fx.journal().exists(),
        "balance does not create the journal"
    );
    fx.ledger.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cost_prints_the_price_and_whether_the_balance_covers_it() {
    let fx = Fixture::start(4).await;
    let output = fx.points(&["cost", "subtitle_burn"]).await;
    assert_eq!(output.status.code(), Some(0), "{}", text(&output));
    assert_eq!(
        stdout(&output),
        "subtitle_burn: 2 points; the balance of 4 covers it\n"
    );
    let output = fx.points(&["cost", "compose"]).await;
    assert_eq!(output.status.code(), Some(2), "{}", text(&output));
    assert_eq!(
        stdout(&output),
        "compose: 5 points; the balance of 4 does not cover it\n"
    );
    let (code, value) = fx.points_json(&["cost", "tts", "3"]).await;
    assert_eq!(code, Some(0));
    assert_eq!(value["required"], 3, "{value}");
    assert_eq!(value["sufficient"], true, "{value}");
    let output = fx.points(&["cost", "no_such_service"]).await;
    assert_eq!(output.status.code(), Some(1), "{}", text(&output));
    fx.ledger.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn run_charges_once_per_job_key() {
    let fx = Fixture::start(100).await;
    let output = fx.points(&["run", "compose", "--key", "k1"]).await;
    assert_eq!(output.status.code(), Some(0), "{}", text(&output));
    assert_eq!(
        stdout(&output),
        "acknowledged: compose charged 5 points under compose:k1; balance 95\n"
    );
    // The same job again: the ledger answers the first receipt, nothing is charged twice.
    let (code, value) = fx.points_json(&["run", "compose", "--key", "k1"]).await;
    assert_eq!(code, Some(0), "{value}");
    assert_eq!(value["status"], "acknowledged", "{value}");
    assert_eq!(value["receipt"]["replayed"], true, "{value}");
    assert_eq!(value["receipt"]["balance"], 95, "{value}");
    assert_eq!(value["receipt"]["idempotencyKey"], "compose:k1", "{value}");

    let summary = fx.summary().await;
    assert_eq!((summary.balance, summary.total_consumed), (95, 5));
    let consumes = fx.consumes().await;
    assert_eq!(consumes.len(), 1, "{consumes:?}");
    assert_eq!(consumes[0].points, -5);

    // A run without a key gets a fresh one, so it is a second job.
    let (code, value) = fx.points_json(&["run", "compose"]).await;
    assert_eq!(code, Some(0), "{value}");
    let key = value["receipt"]["idempotencyKey"]
        .as_str()
        .unwrap_or_default();
    assert!(
        key.starts_with("compose:") && key != "compose:k1",
        "{value}"
    );
    assert_eq!(fx.summary().await.balance, 90);
    let (_, balance) = fx.points_json(&["balance"]).await;
    assert_eq!(
        (&balance["balance"], &balance["seq"]),
        (&Value::from(90), &Value::from(3)),
        "a recharge and two charges: {balance}"
    );

    let output = fx.points(&["pending"]).await;
    assert_eq!(
        stdout(&output),
        "0 pending charge(s) of this account; 0 of other accounts\n",
        "acknowledged charges leave the journal"
    );
    fx.ledger.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failed_work_charges_nothing() {
    let fx = Fixture::start(100).await;
    let output = fx
        .points(&["run", "compose", "--key", "k2", "--fail"])
        .await;
    assert_eq!(output.status.code(), Some(1), "{}", text(&output));
    assert!(stdout(&output).is_empty(), "{}", text(&output));
    assert!(
        String::from_utf8_lossy(&output.stderr).contains("the work failed: nothing was charged"),
        "{}",
        text(&output)
    );
    let summary = fx.summary().await;
    assert_eq!((summary.balance, summary.total_consumed), (100, 0));
    assert!(fx.consumes().await.is_empty());
    // Nothing was journaled either.
    let journal = Journal::open(fx.journal()).expect("the journal was released");
    assert!(journal.is_empty());
    fx.ledger.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn too_few_points_exit_with_code_2_and_charge_nothing() {
    let fx = Fixture::start(3).await;
    let output = fx.points(&["run", "compose", "--key", "k3"]).await;
    assert_eq!(output.status.code(), Some(2), "{}", text(&output));
    assert!(
        String::from_utf8_lossy(&output.stderr).contains("insufficient points"),
        "{}",
        text(&output)
    );
    let (code, value) = fx.points_json(&["run", "compose", "--key", "k3"]).await;
    assert_eq!(code, Some(2));
    assert_eq!(value["error"]["kind"], "insufficientPoints", "{value}");
    assert_eq!(value["error"]["required"], 5, "{value}");
    let summary = fx.summary().await;
    assert_eq!((summary.balance, summary.total_consumed), (3, 0));
    fx.ledger.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_journaled_charge_is_listed_then_sent_by_sync() {
    let fx = Fixture::start(100).await;
    let account = Session::new(fx.token.clone(), None)
        .expect("a valid token")
        .account()
        .to_owned();
    {
        let journal = Arc::new(Journal::open(fx.journal()).expect("journal"));
        let mut request = ConsumeRequest::new("compose");
        request.allow_debt = true;
        let key = IdempotencyKey::parse("compose:offline-1").expect("key");
        let mut charge = PendingCharge::new(&account, &key, request);
        charge.price = Some(5);
        journal.record(&charge).expect("recorded");
        // A charge of another account, which this token must never send.
        let other = PendingCharge::new(
            "sub:someone-else",
            &IdempotencyKey::parse("compose:other-1").expect("key"),
            ConsumeRequest::new("compose"),
        );
        journal.record(&other).expect("recorded");
        journal.close();
    }

    let output = fx.points(&["pending"]).await;
    assert_eq!(output.status.code(), Some(0), "{}", text(&output));
    let lines: Vec<String> = stdout(&output).lines().map(str::to_owned).collect();
    assert_eq!(lines.len(), 2, "{}", text(&output));
    assert!(
        lines[0].starts_with("pending: compose:offline-1 compose, 5 points, recorded "),
        "{}",
        text(&output)
    );
    assert!(
        lines[1].starts_with("1 pending charge(s) of this account (oldest ")
            && lines[1].ends_with("; 1 of other accounts"),
        "{}",
        text(&output)
    );
    assert_eq!(
        fx.summary().await.total_consumed,
        0,
        "pending sends nothing"
    );

    let output = fx.points(&["sync"]).await;
    assert_eq!(output.status.code(), Some(0), "{}", text(&output));
    assert_eq!(
        stdout(&output),
        "acknowledged: compose:offline-1 compose 5 points; balance 95\n\
         still pending: 0 of this account; 1 of other accounts\n"
    );
    let consumes = fx.consumes().await;
    assert_eq!(consumes.len(), 1, "{consumes:?}");
    assert_eq!(
        consumes[0].idempotency_key.as_deref(),
        Some("compose:offline-1")
    );

    let (code, value) = fx.points_json(&["pending"]).await;
    assert_eq!(code, Some(0));
    assert_eq!(value["count"], 0, "{value}");
    assert_eq!(value["otherAccounts"], 1, "{value}");
    assert_eq!(value["charges"], Value::Array(Vec::new()), "{value}");
    // A second pass has nothing of this account to send.
    let (code, value) = fx.points_json(&["sync"]).await;
    assert_eq!(code, Some(0));
    assert_eq!(value["acknowledged"], Value::Array(Vec::new()), "{value}");
    assert_eq!(fx.consumes().await.len(), 1);
    fx.ledger.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_token_is_never_printed_and_an_unreachable_ledger_is_an_error() {
    let fx = Fixture::start(10).await;
    let help = fx.points(&["--help"]).await;
    assert_eq!(help.status.code(), Some(0));
    assert!(stdout(&help).contains("POINTS_TOKEN"), "{}", text(&help));
    // Nothing listens on the port of a listener just closed.
    let port = {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        listener.local_addr().expect("addr").port()
    };
    let url = format!("http://127.0.0.1:{port}");
    let journal = fx.journal();
    let env = [
        ("POINTS_API_URL", url.as_str()),
        ("POINTS_TOKEN", fx.token.as_str()),
        ("POINTS_JOURNAL", journal.to_str().expect("utf-8 path")),
        ("RUST_LOG", "trace"),
    ];
    let down = points_with(&env, &["balance"], fx.dir.path()).await;
    assert_eq!(down.status.code(), Some(1), "{}", text(&down));
    assert!(
        String::from_utf8_lossy(&down.stderr).contains("could not be reached"),
        "{}",
        text(&down)
    );
    let plain = points_with(
        &[("POINTS_TOKEN", fx.token.as_str())],
        &["--base-url", "http://example.com", "balance"],
        fx.dir.path(),
    )
    .await;
    assert_eq!(plain.status.code(), Some(1), "{}", text(&plain));
    for output in [&help, &down, &plain] {
        assert!(!text(output).contains(&fx.token), "{}", text(output));
    }
    fx.ledger.shutdown().await;
}
