//! Consumes applied as one group (`Ledger::consume_many`, the path every consume takes): each
//! gets the answer it would get alone, in order; the same key twice is charged once; one user's
//! many charges coalesce into one transaction; a charge that fails the group's statement fails
//! only itself. On a SQLite file and on PostgreSQL.

mod common;

use std::sync::Arc;

use points_ledger::db::Db;
use points_ledger::ledger::{ConsumeRequest, IdempotencyKey, LedgerError, Receipt};
use points_ledger::{Ledger, ManualClock, PriceTable};
use uuid::Uuid;

/// A ledger on a fresh database: a SQLite file in `dir`, or a new PostgreSQL database.
async fn ledger(postgres: bool, dir: &tempfile::TempDir) -> Option<(Ledger, ManualClock, String)> {
    let url = if postgres {
        common::fresh_pg_database(&common::pg_url()?).await
    } else {
        format!(
            "sqlite:{}?mode=rwc",
            dir.path().join("ledger.sqlite").display()
        )
    };
    let clock = ManualClock::new(common::start_time());
    let db = Db::connect(&url, 4).await.expect("database");
    let ledger = Ledger::new(db, PriceTable::shipped(), Arc::new(clock.clone()));
    Some((ledger, clock, url))
}

async fn finish(ledger: Ledger, url: &str) {
    common::assert_books_balance(&ledger).await;
    ledger.db().close().await;
    common::drop_pg_database(url).await;
}

fn consume(user: Uuid, service: &str, key: &str) -> (Uuid, ConsumeRequest, IdempotencyKey) {
    let request = ConsumeRequest {
        service: service.into(),
        duration: None,
        allow_debt: false,
        reference: None,
    };
    (user, request, IdempotencyKey::parse(key).unwrap())
}

async fn recharge(ledger: &Ledger, clock: &ManualClock, user: Uuid, points: i64) {
    use points_ledger::Clock;
    ledger
        .recharge(user, points, clock.now() + time::Duration::days(30))
        .await
        .expect("recharge");
}

fn receipt(answer: &Result<Receipt, LedgerError>) -> &Receipt {
    answer
        .as_ref()
        .unwrap_or_else(|e| panic!("expected a receipt, got {e:?}"))
}

/// How many transactions wrote the consumes journalled under `keys` (PostgreSQL: their rows'
/// `xmin`); `None` on SQLite, which does not say.
async fn transactions_of(url: &str, postgres: bool, keys: &[&str]) -> Option<i64> {
    if !postgres {
        return None;
    }
    let keys: Vec<String> = keys.iter().map(|k| k.to_string()).collect();
    let mut conn = <sqlx::PgConnection as sqlx::Connection>::connect(url)
        .await
        .unwrap();
    let count: i64 = sqlx::query_scalar(
        "SELECT COUNT(DISTINCT xmin::text) FROM journal WHERE kind = 'consume' AND idempotency_key = ANY($1)",
    )
    .bind(keys)
    .fetch_one(&mut conn)
    .await
    .unwrap();
    sqlx::Connection::close(conn).await.ok();
    Some(count)
}

/// One group holding a replay of an earlier charge, a conflict under that key, a short balance,
/// two charges and another user's charge: each answered as alone, in order.
async fn mixed_group(postgres: bool) {
    let dir = tempfile::tempdir().unwrap();
    let Some((ledger, clock, url)) = ledger(postgres, &dir).await else {
        return;
    };
    let (a, b) = (Uuid::new_v4(), Uuid::new_v4());
    recharge(&ledger, &clock, a, 20).await;
    recharge(&ledger, &clock, b, 3).await;
    let first = ledger.consume_many(&[consume(a, "script", "k0")]).await;
    let first = receipt(&first[0]).clone();
    assert_eq!((first.balance, first.seq), (15, 2));

    let answers = ledger
        .consume_many(&[
            consume(a, "script", "k0"),      // the same request again: its replay
            consume(a, "script", "k1"),      // 15 → 10
            consume(a, "voice_clone", "k2"), // 200 on 10: refused, nothing written
            consume(b, "title", "k1"),       // another user, the same key: a charge of its own
            consume(a, "title", "k0"),       // k0 with another request: a conflict
            consume(a, "script", "k3"),      // 10 → 5
        ])
        .await;
    let replay = receipt(&answers[0]);
    assert!(replay.replayed);
    assert_eq!(replay.transaction_id, first.transaction_id);
    assert_eq!((replay.balance, replay.seq), (15, 2));
    let k1 = receipt(&answers[1]);
    assert_eq!(
        (k1.points, k1.balance, k1.seq, k1.replayed),
        (5, 10, 3, false)
    );
    match &answers[2] {
        Err(LedgerError::InsufficientPoints {
            required, balance, ..
        }) => assert_eq!((*required, *balance), (200, 10)),
        other => panic!("expected insufficient points, got {other:?}"),
    }
    let other_user = receipt(&answers[3]);
    assert_eq!((other_user.user_id, other_user.balance), (b, 2));
    assert!(
        matches!(answers[4], Err(LedgerError::IdempotencyMismatch)),
        "{:?}",
        answers[4]
    );
    let k3 = receipt(&answers[5]);
    assert_eq!((k3.balance, k3.seq), (5, 4));

    let summary = ledger.summary(a).await.unwrap();
    assert_eq!(
        (summary.balance, summary.total_consumed, summary.seq),
        (5, 15, 4)
    );
    assert_eq!(ledger.summary(b).await.unwrap().balance, 2);
    if let Some(n) = transactions_of(&url, postgres, &["k1", "k3"]).await {
        assert_eq!(n, 1, "the group's charges were committed together");
    }
    finish(ledger, &url).await;
}

/// The same key twice in one group: charged once; the second is the first's replay (same
/// request) or a conflict (another request).
async fn same_key_twice(postgres: bool) {
    let dir = tempfile::tempdir().unwrap();
    let Some((ledger, clock, url)) = ledger(postgres, &dir).await else {
        return;
    };
    let user = Uuid::new_v4();
    recharge(&ledger, &clock, user, 20).await;
    let answers = ledger
        .consume_many(&[
            consume(user, "script", "twice"),
            consume(user, "script", "twice"),
            consume(user, "script", "clash"),
            consume(user, "title", "clash"),
        ])
        .await;
    let (first, again) = (receipt(&answers[0]), receipt(&answers[1]));
    assert!(!first.replayed && again.replayed);
    assert_eq!(first.transaction_id, again.transaction_id);
    assert_eq!((first.balance, again.balance), (15, 15));
    assert_eq!(receipt(&answers[2]).balance, 10);
    assert!(
        matches!(answers[3], Err(LedgerError::IdempotencyMismatch)),
        "{:?}",
        answers[3]
    );
    let summary = ledger.summary(user).await.unwrap();
    assert_eq!((summary.balance, summary.seq), (10, 3));
    finish(ledger, &url).await;
}

/// One user's 50 charges of 5 points on 100 in one group: the first 20 are charged, one after
/// the other, in one transaction; the other 30 are refused.
async fn hot_user_group(postgres: bool) {
    let dir = tempfile::tempdir().unwrap();
    let Some((ledger, clock, url)) = ledger(postgres, &dir).await else {
        return;
    };
    let user = Uuid::new_v4();
    recharge(&ledger, &clock, user, 100).await;
    let keys: Vec<String> = (0..50).map(|i| format!("hot-{i}")).collect();
    let group: Vec<_> = keys.iter().map(|k| consume(user, "script", k)).collect();
    let answers = ledger.consume_many(&group).await;
    for (i, answer) in answers.iter().enumerate() {
        if i < 20 {
            let r = receipt(answer);
            assert_eq!(
                (r.balance, r.seq),
                (95 - 5 * i as i64, 2 + i as i64),
                "charge {i}"
            );
        } else {
            assert!(
                matches!(
                    answer,
                    Err(LedgerError::InsufficientPoints { balance: 0, .. })
                ),
                "charge {i}: {answer:?}"
            );
        }
    }
    let charged: Vec<&str> = keys[..20].iter().map(String::as_str).collect();
    if let Some(n) = transactions_of(&url, postgres, &charged).await {
        assert_eq!(n, 1, "one user's group is one transaction");
    }
    let summary = ledger.summary(user).await.unwrap();
    assert_eq!(
        (summary.balance, summary.total_consumed, summary.seq),
        (0, 100, 21)
    );
    finish(ledger, &url).await;
}

/// A charge whose journal entry the database refuses (a trigger, standing in for any failure of
/// one charge) fails alone: the group is rolled back and applied one by one; the others are
/// charged exactly once.
async fn one_failure_fails_only_itself(postgres: bool) {
    let dir = tempfile::tempdir().unwrap();
    let Some((ledger, clock, url)) = ledger(postgres, &dir).await else {
        return;
    };
    let trigger = if postgres {
        vec![
            "CREATE FUNCTION refuse_boom() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN \
             IF NEW.reference = 'boom' THEN RAISE EXCEPTION 'refused'; END IF; RETURN NEW; END $$",
            "CREATE TRIGGER refuse_boom BEFORE INSERT ON journal FOR EACH ROW EXECUTE FUNCTION refuse_boom()",
        ]
    } else {
        vec![
            "CREATE TRIGGER refuse_boom BEFORE INSERT ON journal WHEN NEW.reference = 'boom' \
             BEGIN SELECT RAISE(ABORT, 'refused'); END",
        ]
    };
    for statement in trigger {
        sqlx::query(statement)
            .execute(ledger.db().pool())
            .await
            .unwrap();
    }
    let user = Uuid::new_v4();
    recharge(&ledger, &clock, user, 20).await;
    let mut boom = consume(user, "script", "boom");
    boom.1.reference = Some("boom".into());
    let answers = ledger
        .consume_many(&[
            consume(user, "script", "before"),
            boom,
            consume(user, "script", "after"),
        ])
        .await;
    assert_eq!(receipt(&answers[0]).balance, 15);
    assert!(
        matches!(answers[1], Err(LedgerError::Database(_))),
        "{:?}",
        answers[1]
    );
    assert_eq!(receipt(&answers[2]).balance, 10);
    let summary = ledger.summary(user).await.unwrap();
    assert_eq!((summary.balance, summary.seq), (10, 3));
    finish(ledger, &url).await;
}

macro_rules! on_both {
    ($($name:ident),* $(,)?) => {
        mod sqlite {
            $(#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn $name() { super::$name(false).await })*
        }
        mod postgres {
            $(#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn $name() { super::$name(true).await })*
        }
    };
}

on_both!(
    mixed_group,
    same_key_twice,
    hot_user_group,
    one_failure_fails_only_itself
);
