//! The scheduled sweep tidies expired batches with no request touching the user.

mod common;

use std::sync::Arc;
use std::time::Duration;

use points_ledger::{LedgerConfig, ManualClock};
use sqlx::Row;

#[tokio::test]
async fn sweep_expires_due_batches_on_its_own() {
    let clock = ManualClock::new(common::start_time());
    let config = LedgerConfig::ephemeral()
        .with_clock(Arc::new(clock.clone()))
        .with_sweep_interval(Duration::from_millis(20));
    let ledger = points_ledger::serve(config).await.unwrap();
    let user = uuid::Uuid::new_v4();
    let start = common::start_time();
    ledger
        .recharge(user, 25, start + time::Duration::hours(1))
        .await
        .unwrap();
    ledger
        .recharge(user, 5, start + time::Duration::days(3))
        .await
        .unwrap();

    let stored = |sql: &'static str| {
        let pool = ledger.ledger().db().pool().clone();
        async move { sqlx::query(sql).fetch_one(&pool).await.unwrap() }
    };
    tokio::time::sleep(Duration::from_millis(100)).await;
    let row = stored("SELECT balance, total_expired FROM accounts").await;
    assert_eq!(
        (row.get::<i64, _>(0), row.get::<i64, _>(1)),
        (30, 0),
        "expired too early"
    );

    clock.advance(time::Duration::hours(2));
    let mut swept = false;
    for _ in 0..100 {
        tokio::time::sleep(Duration::from_millis(20)).await;
        let row = stored("SELECT balance, total_expired FROM accounts").await;
        if row.get::<i64, _>(1) == 25 {
            assert_eq!(row.get::<i64, _>(0), 5);
            swept = true;
            break;
        }
    }
    assert!(swept, "the sweep did not run");
    let row = stored("SELECT COUNT(*) FROM journal WHERE kind = 'expire' AND points = -25").await;
    assert_eq!(row.get::<i64, _>(0), 1);
    common::assert_books_balance(ledger.ledger()).await;
    ledger.shutdown().await;
}
