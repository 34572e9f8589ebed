//! A batch's row: `emptied_at` is set exactly when its points are gone (burnt, expired, or never
//! there: a recharge that only paid a debt), the database refuses a row that says otherwise, and
//! a burn that leaves points changes no indexed column (on PostgreSQL, a heap-only update: no
//! new index entries for every consume). On SQLite and PostgreSQL.

#[macro_use]
mod common;

use common::{assert_books_balance, Backend, TestLedger};
use serde_json::json;
use sqlx::Row;
use std::time::Duration;
use uuid::Uuid;

/// Each batch of `user`, oldest first: (points, remaining, emptied_at, created_at).
async fn batch_rows(l: &TestLedger, user: Uuid) -> Vec<(i64, i64, Option<i64>, i64)> {
    sqlx::query(
        "SELECT points, remaining, emptied_at, created_at FROM batches WHERE user_id = $1 \
         ORDER BY created_at, id",
    )
    .bind(user.to_string())
    .fetch_all(l.running.ledger().db().pool())
    .await
    .unwrap()
    .iter()
    .map(|r| (r.get(0), r.get(1), r.get(2), r.get(3)))
    .collect()
}

fn micros(t: time::OffsetDateTime) -> i64 {
    i64::try_from(t.unix_timestamp_nanos() / 1000).unwrap()
}

async fn a_batch_says_when_it_was_emptied(l: &TestLedger) {
    use points_ledger::Clock;
    let (user, token) = l.user_with(7).await;
    let charge = |key: &'static str, debt: bool| {
        l.consume(
            &token,
            key,
            json!({"service": "compose", "allow_debt": debt}),
        )
    };
    // 7 - 5 leaves 2: the batch is live.
    assert_eq!(charge("a", false).await.status(), 200);
    let rows = batch_rows(l, user).await;
    assert_eq!(rows.len(), 1);
    assert_eq!((rows[0].1, rows[0].2), (2, None));

    // 2 - 5 with debt: the batch is burnt out, emptied now; the balance is -3.
    l.clock.advance(time::Duration::seconds(60));
    let burnt_at = micros(l.clock.now());
    assert_eq!(charge("b", true).await.status(), 200);
    assert_eq!(l.balance(&token).await, -3);
    let rows = batch_rows(l, user).await;
    assert_eq!((rows[0].1, rows[0].2), (0, Some(burnt_at)));

    // A recharge of 2 only pays debt: its batch is empty, and emptied when created.
    l.recharge(user, 2, 30).await;
    // A recharge of 10 leaves 9 in a live batch.
    l.recharge(user, 10, 1).await;
    let rows = batch_rows(l, user).await;
    assert_eq!(rows.len(), 3);
    assert_eq!((rows[1].1, rows[1].2), (0, Some(rows[1].3)));
    assert_eq!((rows[2].1, rows[2].2), (9, None));

    // Past its expiry, the sweep empties it, at the sweep's now.
    l.clock.advance(time::Duration::days(2));
    let swept_at = micros(l.clock.now());
    l.running.ledger().expire_all().await.unwrap();
    let rows = batch_rows(l, user).await;
    assert_eq!((rows[2].1, rows[2].2), (0, Some(swept_at)));
    assert_books_balance(l.running.ledger()).await;
}

async fn the_database_refuses_a_batch_row_that_contradicts_itself(l: &TestLedger) {
    let (user, _) = l.user_with(10).await;
    let pool = l.running.ledger().db().pool();
    for (sql, what) in [
        (
            "UPDATE batches SET remaining = 0 WHERE user_id = $1",
            "empty with no emptied_at",
        ),
        (
            "UPDATE batches SET emptied_at = 1 WHERE user_id = $1",
            "emptied_at with points left",
        ),
    ] {
        let refused = sqlx::query(sql).bind(user.to_string()).execute(pool).await;
        assert!(refused.is_err(), "{what}: accepted");
    }
    assert_eq!(batch_rows(l, user).await[0].1, 10);
}

/// The columns a burn writes (`remaining`; `emptied_at` only when the batch is used up) are in
/// no index of `batches`, its key, columns or predicate: a burn that leaves points rewrites no
/// index entry.
async fn a_burn_changes_no_indexed_column(l: &TestLedger) {
    let pool = l.running.ledger().db().pool();
    let definitions: Vec<String> = match l.running.ledger().db().backend() {
        points_ledger::db::Backend::Sqlite => sqlx::query_scalar(
            "SELECT sql FROM sqlite_master WHERE type = 'index' AND tbl_name = 'batches' \
             AND sql IS NOT NULL",
        ),
        points_ledger::db::Backend::Postgres => {
            sqlx::query_scalar("SELECT indexdef FROM pg_indexes WHERE tablename = 'batches'")
        }
    }
    .fetch_all(pool)
    .await
    .unwrap();
    // The two indexes of live batches, at least (SQLite lists no automatic key index here).
    let live: Vec<_> = definitions
        .iter()
        .filter(|d| d.contains("emptied_at IS NULL"))
        .collect();
    assert_eq!(live.len(), 2, "{definitions:#?}");
    for definition in &definitions {
        assert!(
            !definition.contains("remaining"),
            "an index of batches uses `remaining`: {definition}"
        );
    }
}

on_both_backends!(
    a_batch_says_when_it_was_emptied,
    the_database_refuses_a_batch_row_that_contradicts_itself,
    a_burn_changes_no_indexed_column,
);

/// On PostgreSQL, what the schema promises: twenty charges from one batch are twenty heap-only
/// updates of its row (the server's own statistics, read once the ledger's connections have
/// reported them).
#[tokio::test]
async fn postgres_burns_that_leave_points_are_heap_only_updates() {
    let Some(l) = common::start(Backend::Postgres).await else {
        return;
    };
    let (_, token) = l.user_with(1000).await;
    for n in 0..20 {
        let key = format!("hot-{n}");
        assert_eq!(
            l.consume(&token, &key, json!({"service": "compose"}))
                .await
                .status(),
            200
        );
    }
    let pool = l.running.ledger().db().pool();
    let mut seen = (0i64, 0i64);
    // A backend reports its counts when idle, within about 10 s.
    for _ in 0..150 {
        sqlx::query("SELECT pg_stat_clear_snapshot()")
            .execute(pool)
            .await
            .unwrap();
        let row = sqlx::query(
            "SELECT n_tup_upd, n_tup_hot_upd FROM pg_stat_user_tables WHERE relname = 'batches'",
        )
        .fetch_one(pool)
        .await
        .unwrap();
        seen = (row.get(0), row.get(1));
        if seen.0 >= 20 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(seen.0 >= 20, "updates of batches reported: {seen:?}");
    assert_eq!(seen.1, seen.0, "(updates, heap-only updates) of batches");
    l.finish().await;
}
