//! The scheduled sweep tidies expired batches with no request touching the user.

mod common;

use std::sync::Arc;
use std::time::Duration;

use points_ledger::{LedgerConfig, ManualClock};
use sqlx::{Connection, Row};
use uuid::Uuid;

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

/// A user whose expiry fails does not stop the sweep: the others are expired, the failure is
/// counted, and the next run tries again.
#[tokio::test]
async fn one_failing_user_does_not_stop_the_sweep() {
    let clock = ManualClock::new(common::start_time());
    let ledger =
        points_ledger::serve(LedgerConfig::ephemeral().with_clock(Arc::new(clock.clone())))
            .await
            .unwrap();
    let start = common::start_time();
    // The sweep goes in user order: the broken user comes first.
    let broken = Uuid::parse_str("00000000-0000-4000-8000-000000000001").unwrap();
    let fine = Uuid::parse_str("ffffffff-ffff-4fff-bfff-ffffffffffff").unwrap();
    for user in [broken, fine] {
        ledger
            .recharge(user, 10, start + time::Duration::hours(1))
            .await
            .unwrap();
    }
    // Totals at the top of the range (consistent, but expiring 10 more would leave it).
    sqlx::query(
        "UPDATE accounts SET total_recharged = total_recharged + 9007199254740991, \
         total_expired = total_expired + 9007199254740991 WHERE user_id = $1",
    )
    .bind(broken.to_string())
    .execute(ledger.ledger().db().pool())
    .await
    .unwrap();
    clock.advance(time::Duration::hours(2));
    let report = ledger.ledger().expire_all().await.unwrap();
    assert_eq!(
        (
            report.users,
            report.batches,
            report.points,
            report.failed_users
        ),
        (1, 1, 10, 1),
        "{report:?}"
    );
    let fine_row = sqlx::query("SELECT balance, total_expired FROM accounts WHERE user_id = $1")
        .bind(fine.to_string())
        .fetch_one(ledger.ledger().db().pool())
        .await
        .unwrap();
    assert_eq!(
        (fine_row.get::<i64, _>(0), fine_row.get::<i64, _>(1)),
        (0, 10)
    );
    // The broken user is tried again on the next run, and fails alone again.
    let again = ledger.ledger().expire_all().await.unwrap();
    assert_eq!((again.users, again.failed_users), (0, 1), "{again:?}");
    ledger.shutdown().await;
}

/// More due users than one page: one run expires them all, each once.
#[tokio::test]
async fn a_run_goes_through_every_page() {
    let clock = ManualClock::new(common::start_time());
    let ledger =
        points_ledger::serve(LedgerConfig::ephemeral().with_clock(Arc::new(clock.clone())))
            .await
            .unwrap();
    let start = common::start_time();
    let users = points_ledger::ledger::SWEEP_PAGE as u64 * 2 + 7;
    for _ in 0..users {
        ledger
            .recharge(Uuid::new_v4(), 3, start + time::Duration::hours(1))
            .await
            .unwrap();
    }
    clock.advance(time::Duration::hours(2));
    let report = ledger.ledger().expire_all().await.unwrap();
    assert_eq!(
        (
            report.users,
            report.batches,
            report.points,
            report.failed_users
        ),
        (users, users, 3 * users as i64, 0)
    );
    let expired: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM journal WHERE kind = 'expire'")
        .fetch_one(ledger.ledger().db().pool())
        .await
        .unwrap();
    assert_eq!(expired as u64, users);
    common::assert_books_balance(ledger.ledger()).await;
    ledger.shutdown().await;
}

/// One sweeper at a time across instances on one PostgreSQL database: while another session
/// holds the sweep's advisory lock, a run does nothing and says so; once it is released, the
/// run sweeps.
#[tokio::test]
async fn one_sweeper_at_a_time_across_instances() {
    let Some(base) = common::pg_url() else { return };
    let url = common::fresh_pg_database(&base).await;
    let clock = ManualClock::new(common::start_time());
    let config = LedgerConfig::ephemeral()
        .with_database_url(url.clone())
        .with_clock(Arc::new(clock.clone()));
    let first = points_ledger::serve(config.clone()).await.unwrap();
    let second = points_ledger::serve(config).await.unwrap();
    let start = common::start_time();
    for _ in 0..20 {
        first
            .recharge(Uuid::new_v4(), 4, start + time::Duration::hours(1))
            .await
            .unwrap();
    }
    clock.advance(time::Duration::hours(2));

    let mut other = sqlx::PgConnection::connect(&url).await.unwrap();
    let held: bool = sqlx::query_scalar("SELECT pg_try_advisory_lock($1)")
        .bind(points_ledger::ledger::SWEEP_LOCK)
        .fetch_one(&mut other)
        .await
        .unwrap();
    assert!(held);
    for ledger in [&first, &second] {
        let report = ledger.ledger().expire_all().await.unwrap();
        assert!(report.skipped, "{report:?}");
        assert_eq!(report.batches, 0);
    }
    sqlx::query("SELECT pg_advisory_unlock($1)")
        .bind(points_ledger::ledger::SWEEP_LOCK)
        .execute(&mut other)
        .await
        .unwrap();
    other.close().await.ok();

    // Both at once: one sweeps, or they take turns; every batch expires exactly once.
    let (a, b) = tokio::join!(first.ledger().expire_all(), second.ledger().expire_all());
    let (a, b) = (a.unwrap(), b.unwrap());
    assert_eq!(a.batches + b.batches, 20, "{a:?} {b:?}");
    let expired: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM journal WHERE kind = 'expire'")
        .fetch_one(first.ledger().db().pool())
        .await
        .unwrap();
    assert_eq!(expired, 20);
    common::assert_books_balance(first.ledger()).await;
    first.shutdown().await;
    second.shutdown().await;
    common::drop_pg_database(&url).await;
}
