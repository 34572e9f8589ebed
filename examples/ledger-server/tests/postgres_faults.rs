//! PostgreSQL faults a deployment meets: a lock wait that times out, and a server whose default
//! isolation level is not READ COMMITTED. Skipped without `POINTS_LEDGER_PG_URL` (fails with
//! `POINTS_REQUIRE_PG=1`).

mod common;

use std::sync::Arc;

use common::{assert_books_balance, ClockExt};
use serde_json::{json, Value};
use sqlx::Connection;
use uuid::Uuid;

/// The database name of a URL made by [`common::fresh_pg_database`].
fn database_name(url: &str) -> String {
    let path = url.split('?').next().unwrap();
    path.rsplit('/').next().unwrap().to_owned()
}

/// A write whose row lock times out (`lock_timeout`) fails alone: the connection it ran on goes
/// back to the pool outside any transaction, and the next write on it succeeds.
#[tokio::test]
async fn a_failed_row_lock_does_not_poison_the_connection() {
    let Some(base) = common::pg_url() else { return };
    let url = common::fresh_pg_database(&base).await;
    // The ledger's lock waits give up after 200 ms.
    let mut admin = sqlx::PgConnection::connect(&base).await.unwrap();
    sqlx::query(&format!(
        "ALTER DATABASE {} SET lock_timeout = '200ms'",
        database_name(&url)
    ))
    .execute(&mut admin)
    .await
    .unwrap();
    admin.close().await.ok();
    let clock = points_ledger::ManualClock::new(common::start_time());
    // One connection: the write after the failure runs on the connection that failed.
    let config = points_ledger::LedgerConfig::ephemeral()
        .with_database_url(url.clone())
        .with_clock(Arc::new(clock.clone()))
        .with_max_connections(1);
    let ledger = points_ledger::serve(config).await.unwrap();
    let user = Uuid::new_v4();
    ledger
        .recharge(user, 10, clock.now_plus_days(30))
        .await
        .unwrap();

    // Another session holds the user's row lock.
    let mut holder = sqlx::PgConnection::connect(&url).await.unwrap();
    let mut lock = holder.begin().await.unwrap();
    sqlx::query("SELECT 1 FROM accounts WHERE user_id = $1 FOR UPDATE")
        .bind(user.to_string())
        .execute(&mut *lock)
        .await
        .unwrap();
    let blocked = ledger.recharge(user, 5, clock.now_plus_days(30)).await;
    assert!(blocked.is_err(), "the lock wait did not time out");
    lock.rollback().await.unwrap();

    for attempt in 0..3 {
        ledger
            .recharge(user, 5, clock.now_plus_days(30))
            .await
            .unwrap_or_else(|e| panic!("write {attempt} after the lock timeout: {e}"));
    }
    let summary = ledger.ledger().summary(user).await.unwrap();
    assert_eq!(summary.balance, 25);
    assert_books_balance(ledger.ledger()).await;
    ledger.shutdown().await;
    holder.close().await.ok();
    common::drop_pg_database(&url).await;
}

/// On a server whose default isolation level is SERIALIZABLE, concurrent consumes and
/// recharges of one user all succeed or get a contract answer (402), never a 500: the ledger
/// sets READ COMMITTED itself and retries serialization failures and deadlocks.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn serializable_by_default_is_no_500() {
    let Some(base) = common::pg_url() else { return };
    let url = common::fresh_pg_database(&base).await;
    let name = database_name(&url);
    let mut admin = sqlx::PgConnection::connect(&base).await.unwrap();
    sqlx::query(&format!(
        "ALTER DATABASE {name} SET default_transaction_isolation = 'serializable'"
    ))
    .execute(&mut admin)
    .await
    .unwrap();
    admin.close().await.ok();

    let l = Arc::new(common::start_with_url(url.clone()).await);
    // A session that does not set its own level gets SERIALIZABLE.
    let mut plain = sqlx::PgConnection::connect(&url).await.unwrap();
    let isolation: String = sqlx::query_scalar("SHOW transaction_isolation")
        .fetch_one(&mut plain)
        .await
        .unwrap();
    assert_eq!(isolation, "serializable");
    plain.close().await.ok();
    let (user, token) = l.user_with(300).await;
    let mut tasks = tokio::task::JoinSet::new();
    for i in 0..120 {
        let (l, token) = (l.clone(), token.clone());
        tasks.spawn(async move {
            if i % 10 == 0 {
                let response = l
                    .admin_recharge(
                        &format!("pay-{i}"),
                        json!({"user_id": user, "points": 5, "expires_at": "2026-06-01T00:00:00Z"}),
                    )
                    .await;
                let status = response.status().as_u16();
                return (status, response.json::<Value>().await.unwrap());
            }
            let response = l
                .consume(&token, &format!("c-{i}"), json!({"service": "script"}))
                .await;
            let status = response.status().as_u16();
            (status, response.json::<Value>().await.unwrap())
        });
    }
    let answers = tasks.join_all().await;
    let unexpected: Vec<_> = answers
        .iter()
        .filter(|(s, _)| ![200, 402].contains(s))
        .collect();
    assert!(
        unexpected.is_empty(),
        "{} of {} answers were not 200 or 402, e.g. {:?}",
        unexpected.len(),
        answers.len(),
        unexpected.first()
    );
    let charged = answers
        .iter()
        .filter(|(s, b)| *s == 200 && b["service"] == "script")
        .count() as i64;
    assert_eq!(l.balance(&token).await, 300 + 12 * 5 - 5 * charged);
    assert_books_balance(l.running.ledger()).await;
    if let Ok(l) = Arc::try_unwrap(l) {
        l.finish().await;
    }
}
