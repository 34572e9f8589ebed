//! The balance stream across ledger instances on one PostgreSQL database: each instance has its
//! own pools and its own `LISTEN` connection, as two processes would. Writes through one are
//! streamed by the other, once each and in order, also after the listener's connection is killed.
//! Skipped without `POINTS_LEDGER_PG_URL` (failed with `POINTS_REQUIRE_PG=1`).

mod common;

use std::time::Duration;

use common::sse;
use common::TestLedger;
use points_ledger::ledger::{ConsumeRequest, IdempotencyKey};
use serde_json::json;
use sqlx::Connection;
use uuid::Uuid;

const WAIT: Duration = Duration::from_secs(10);

/// Two ledgers on one fresh database, with the same secrets (a token works on both).
async fn two_instances() -> Option<(TestLedger, TestLedger)> {
    let url = common::fresh_pg_database(&common::pg_url()?).await;
    let secrets = |c: points_ledger::LedgerConfig| {
        c.with_secrets(
            "a-shared-secret-of-at-least-32-bytes-long",
            "a-shared-admin-key-for-both",
        )
    };
    let writer = common::start_configured(url.clone(), secrets).await;
    let reader = common::start_configured(url, secrets).await;
    Some((writer, reader))
}

fn charge(user: Uuid, key: &str) -> (Uuid, ConsumeRequest, IdempotencyKey) {
    (
        user,
        ConsumeRequest {
            service: "title".into(),
            duration: None,
            allow_debt: true,
            reference: None,
        },
        IdempotencyKey::parse(key).unwrap(),
    )
}

/// Reads balance events until `last`, checking that they run 1 by 1 from `first` with totals
/// that add up; answers them.
async fn events_from(stream: &mut sse::SseClient, first: i64, last: i64) -> Vec<serde_json::Value> {
    let mut events = Vec::new();
    for seq in first..=last {
        let event = stream.balance(WAIT).await;
        assert_eq!(event["seq"], seq, "in order, no gap, no duplicate: {event}");
        let totals = event["total_recharged"].as_i64().unwrap()
            - event["total_consumed"].as_i64().unwrap()
            - event["total_expired"].as_i64().unwrap();
        assert_eq!(totals, event["balance"].as_i64().unwrap(), "{event}");
        events.push(event);
    }
    events
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn writes_through_one_instance_stream_on_the_other() {
    let Some((writer, reader)) = two_instances().await else {
        return;
    };
    let (user, token) = writer.user_with(100).await;
    let mut remote = sse::open(reader.running.addr(), &token, None).await;
    let mut local = sse::open(writer.running.addr(), &token, None).await;
    assert_eq!(remote.balance(WAIT).await["seq"], 1);
    assert_eq!(local.balance(WAIT).await["seq"], 1);

    // Every writer of the writing instance: HTTP consumes (the batch function), a group of
    // consumes in one statement, an idempotent recharge, the expiry sweep.
    for i in 0..10 {
        let response = writer
            .consume(&token, &format!("http-{i}"), json!({"service": "title"}))
            .await;
        assert_eq!(response.status(), 200);
    }
    let group: Vec<_> = (0..20)
        .map(|i| charge(user, &format!("group-{i}")))
        .collect();
    for answer in writer.running.ledger().consume_many(&group).await {
        answer.unwrap();
    }
    let tomorrow = {
        use points_ledger::Clock;
        writer.clock.now() + time::Duration::days(1)
    };
    writer
        .running
        .recharge_once(user, 7, tomorrow, "pay-1")
        .await
        .unwrap();
    writer.clock.advance(time::Duration::days(2));
    writer.running.ledger().expire_all().await.unwrap();
    // 1 + 10 + 20 + 1 + 1 entries.
    let last = 33;
    let remote_events = events_from(&mut remote, 2, last).await;
    let local_events = events_from(&mut local, 2, last).await;
    assert_eq!(
        remote_events, local_events,
        "both instances tell the same story"
    );
    let kinds: Vec<_> = remote_events
        .iter()
        .map(|e| e["change"]["kind"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(kinds.iter().filter(|k| *k == "consume").count(), 30);
    assert_eq!(kinds[30], "recharge");
    assert_eq!(kinds[31], "expire");
    assert_eq!(remote.quiet_for(Duration::from_millis(500)).await, Ok(()));
    let balance = reader.get_json(&token, "/points/balance").await;
    assert_eq!(remote_events.last().unwrap()["balance"], balance["balance"]);
    assert_eq!(balance["seq"], last);
    writer.running.shutdown().await;
    reader.finish().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_group_that_expires_a_batch_streams_the_expiry_then_its_consumes() {
    let Some((writer, reader)) = two_instances().await else {
        return;
    };
    let (user, token) = writer.user_with(100).await;
    let mut remote = sse::open(reader.running.addr(), &token, None).await;
    assert_eq!(remote.balance(WAIT).await["seq"], 1);
    let tomorrow = {
        use points_ledger::Clock;
        writer.clock.now() + time::Duration::days(1)
    };
    writer
        .running
        .recharge_once(user, 7, tomorrow, "pay-soon-gone")
        .await
        .unwrap();
    writer.clock.advance(time::Duration::days(2));
    // No sweep: the group's first charge expires the batch inside the group function; the
    // expiry entry and each charge reach the other instance, in their order.
    let group: Vec<_> = (0..3)
        .map(|i| charge(user, &format!("after-expiry-{i}")))
        .collect();
    for answer in writer.running.ledger().consume_many(&group).await {
        answer.unwrap();
    }
    let events = events_from(&mut remote, 2, 6).await;
    let kinds: Vec<_> = events
        .iter()
        .map(|e| e["change"]["kind"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(
        kinds,
        ["recharge", "expire", "consume", "consume", "consume"],
        "{events:?}"
    );
    assert_eq!(remote.quiet_for(Duration::from_millis(500)).await, Ok(()));
    writer.running.shutdown().await;
    reader.finish().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_killed_listener_connection_resyncs_every_stream() {
    let Some((writer, reader)) = two_instances().await else {
        return;
    };
    let (user, token) = writer.user_with(100).await;
    let (other, other_token) = writer.user_with(100).await;
    let mut stream = sse::open(reader.running.addr(), &token, None).await;
    let mut other_stream = sse::open(reader.running.addr(), &other_token, None).await;
    assert_eq!(stream.balance(WAIT).await["seq"], 1);
    assert_eq!(other_stream.balance(WAIT).await["seq"], 1);
    let pid = reader
        .running
        .stream_listener_pid()
        .expect("a listener on PostgreSQL");
    assert!(pid > 0);

    let mut admin = sqlx::PgConnection::connect(&reader.database_url)
        .await
        .unwrap();
    let killed: bool = sqlx::query_scalar("SELECT pg_terminate_backend($1)")
        .bind(pid)
        .fetch_one(&mut admin)
        .await
        .unwrap();
    assert!(killed);
    // Written at once, while the listener is (likely) still gone, and nothing after: a lost
    // notification is only found by the resync.
    let writes = [charge(user, "k1"), charge(user, "k2"), charge(other, "k3")];
    for answer in writer.running.ledger().consume_many(&writes).await {
        answer.unwrap();
    }
    events_from(&mut stream, 2, 3).await;
    events_from(&mut other_stream, 2, 2).await;

    // Listening again, on another connection.
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        match reader.running.stream_listener_pid() {
            Some(new) if new > 0 && new != pid => break,
            _ => {
                assert!(
                    tokio::time::Instant::now() < deadline,
                    "the listener reconnected"
                );
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        }
    }
    writer
        .consume(&token, "after", json!({"service": "title"}))
        .await;
    events_from(&mut stream, 4, 4).await;
    assert_eq!(stream.quiet_for(Duration::from_millis(300)).await, Ok(()));
    admin.close().await.ok();
    writer.running.shutdown().await;
    reader.finish().await;
}
