//! Concurrent requests never over-spend and never charge one key twice, on SQLite and PostgreSQL.

mod common;

use std::sync::Arc;

use common::{assert_books_balance, Backend, TestLedger};
use serde_json::{json, Value};

/// 200 concurrent consumes of 5 points on a user holding 100: exactly 20 succeed, the rest are
/// 402, and the balance ends at 0.
async fn no_overspending(l: TestLedger) {
    let l = Arc::new(l);
    let (user, token) = l.user_with(100).await;
    let mut tasks = tokio::task::JoinSet::new();
    for i in 0..200 {
        let (l, token) = (l.clone(), token.clone());
        tasks.spawn(async move {
            let response = l
                .consume(&token, &format!("c-{i}"), json!({"service": "script"}))
                .await;
            response.status().as_u16()
        });
    }
    let statuses = tasks.join_all().await;
    let ok = statuses.iter().filter(|s| **s == 200).count();
    let refused = statuses.iter().filter(|s| **s == 402).count();
    assert_eq!((ok, refused), (20, 180), "statuses: {statuses:?}");
    let summary = l.get_json(&token, "/points/balance").await;
    assert_eq!(
        summary,
        json!({"user_id": user.to_string(), "balance": 0, "total_recharged": 100, "total_consumed": 100, "total_expired": 0, "seq": 21})
    );
    assert_books_balance(l.running.ledger()).await;
    finish(l).await;
}

/// 50 concurrent requests with one key: exactly one charge; the others replay it or are told
/// the key is in flight.
async fn one_charge_per_key(l: TestLedger) {
    let l = Arc::new(l);
    let (_, token) = l.user_with(100).await;
    let mut tasks = tokio::task::JoinSet::new();
    for _ in 0..50 {
        let (l, token) = (l.clone(), token.clone());
        tasks.spawn(async move {
            let response = l
                .consume(&token, "the-job", json!({"service": "compose"}))
                .await;
            let status = response.status().as_u16();
            (status, response.json::<Value>().await.unwrap())
        });
    }
    let answers = tasks.join_all().await;
    let mut charged = None;
    let mut replays = 0;
    for (status, body) in &answers {
        match status {
            200 if body["replayed"] == false => {
                assert!(charged.is_none(), "charged twice: {answers:?}");
                charged = Some(body["transaction_id"].clone());
            }
            200 => replays += 1,
            409 => assert_eq!(body["code"], "idempotency_conflict"),
            other => panic!("unexpected {other}: {body}"),
        }
    }
    let charged = charged.expect("nobody was charged");
    for (status, body) in &answers {
        if *status == 200 {
            assert_eq!(body["transaction_id"], charged);
        }
    }
    assert_eq!(l.balance(&token).await, 95, "{replays} replays");
    assert_books_balance(l.running.ledger()).await;
    finish(l).await;
}

async fn finish(l: Arc<TestLedger>) {
    if let Ok(l) = Arc::try_unwrap(l) {
        l.finish().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn sqlite_no_overspending() {
    no_overspending(common::start(Backend::Sqlite).await.unwrap()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn sqlite_file_no_overspending() {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite:{}?mode=rwc", dir.path().join("c.sqlite").display());
    no_overspending(common::start_with_url(url).await).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn postgres_no_overspending() {
    if let Some(l) = common::start(Backend::Postgres).await {
        no_overspending(l).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn sqlite_one_charge_per_key() {
    one_charge_per_key(common::start(Backend::Sqlite).await.unwrap()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn sqlite_file_one_charge_per_key() {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite:{}?mode=rwc", dir.path().join("k.sqlite").display());
    one_charge_per_key(common::start_with_url(url).await).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn postgres_one_charge_per_key() {
    if let Some(l) = common::start(Backend::Postgres).await {
        one_charge_per_key(l).await;
    }
}

/// Two ledger processes on one PostgreSQL database (no shared in-flight set): still one charge
/// per key and no over-spending, through the row lock alone.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn postgres_two_servers_share_the_row_lock() {
    let Some(base) = common::pg_url() else { return };
    let url = common::fresh_pg_database(&base).await;
    let http = reqwest::Client::new();
    let config = points_ledger::LedgerConfig::ephemeral()
        .with_database_url(url.clone())
        .with_secrets("a-jwt-secret-shared-by-both-servers", "admin-key-for-both");
    let first = points_ledger::serve(config.clone()).await.unwrap();
    let second = points_ledger::serve(config).await.unwrap();
    let user = uuid::Uuid::new_v4();
    first
        .recharge(
            user,
            100,
            time::OffsetDateTime::now_utc() + time::Duration::days(1),
        )
        .await
        .unwrap();
    let token = first.token_for(user);
    let urls = [first.base_url(), second.base_url()];
    let mut tasks = tokio::task::JoinSet::new();
    for i in 0..60 {
        let (url, token, http) = (urls[i % 2].clone(), token.clone(), http.clone());
        let key = if i < 20 {
            "shared".to_owned()
        } else {
            format!("own-{i}")
        };
        tasks.spawn(async move {
            let response = http
                .post(format!("{url}/points/consume"))
                .bearer_auth(token)
                .header("Idempotency-Key", key)
                .json(&json!({"service": "script"}))
                .send()
                .await
                .unwrap();
            let status = response.status().as_u16();
            (status, response.json::<Value>().await.unwrap())
        });
    }
    let answers = tasks.join_all().await;
    let fresh_charges = answers
        .iter()
        .filter(|(s, b)| *s == 200 && b["replayed"] == false)
        .count();
    assert_eq!(fresh_charges, 20, "{answers:?}");
    assert!(
        answers.iter().all(|(s, _)| [200, 402, 409].contains(s)),
        "{answers:?}"
    );
    assert_books_balance(first.ledger()).await;
    first.shutdown().await;
    second.shutdown().await;
    common::drop_pg_database(&url).await;
}
