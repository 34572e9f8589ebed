//! The embedding API that other crates' tests use: start, recharge, token, shutdown.

use points_ledger::{LedgerConfig, RunningLedger};
use serde_json::Value;
use uuid::Uuid;

async fn balance_of(ledger: &RunningLedger, user: Uuid) -> Value {
    reqwest::Client::new()
        .get(format!("{}/points/balance", ledger.base_url()))
        .bearer_auth(ledger.token_for(user))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap()
}

#[tokio::test]
async fn ephemeral_ledger_serves_recharges_and_stops() {
    let ledger = points_ledger::serve(LedgerConfig::ephemeral())
        .await
        .unwrap();
    assert!(ledger.addr().ip().is_loopback());
    assert_eq!(
        ledger.base_url(),
        format!("http://127.0.0.1:{}", ledger.addr().port())
    );
    let user = Uuid::new_v4();
    ledger
        .recharge(
            user,
            100,
            time::OffsetDateTime::now_utc() + time::Duration::days(1),
        )
        .await
        .unwrap();
    let summary = balance_of(&ledger, user).await;
    assert_eq!(summary["balance"], 100);
    assert_eq!(summary["total_recharged"], 100);
    assert!(!ledger.admin_key().is_empty());

    let addr = ledger.addr();
    ledger.shutdown().await;
    assert!(
        tokio::net::TcpStream::connect(addr).await.is_err(),
        "still listening after shutdown"
    );
}

#[tokio::test]
async fn two_ephemeral_ledgers_are_independent() {
    let a = points_ledger::serve(LedgerConfig::ephemeral())
        .await
        .unwrap();
    let b = points_ledger::serve(LedgerConfig::ephemeral())
        .await
        .unwrap();
    let user = Uuid::new_v4();
    a.recharge(
        user,
        7,
        time::OffsetDateTime::now_utc() + time::Duration::days(1),
    )
    .await
    .unwrap();
    assert_eq!(balance_of(&a, user).await["balance"], 7);
    let foreign = reqwest::Client::new()
        .get(format!("{}/points/balance", b.base_url()))
        .bearer_auth(a.token_for(user))
        .send()
        .await
        .unwrap();
    assert_eq!(foreign.status(), 401, "a token of one ledger opens another");
    a.shutdown().await;
    b.shutdown().await;
}

#[tokio::test]
async fn file_database_keeps_balances_across_restarts() {
    let dir = tempfile::tempdir().unwrap();
    let url = format!(
        "sqlite:{}?mode=rwc",
        dir.path().join("ledger.sqlite").display()
    );
    let user = Uuid::new_v4();
    let config = LedgerConfig::ephemeral().with_database_url(url);
    let first = points_ledger::serve(config.clone()).await.unwrap();
    first
        .recharge(
            user,
            42,
            time::OffsetDateTime::now_utc() + time::Duration::days(1),
        )
        .await
        .unwrap();
    first.shutdown().await;
    let second = points_ledger::serve(config).await.unwrap();
    assert_eq!(balance_of(&second, user).await["balance"], 42);
    second.shutdown().await;
}
