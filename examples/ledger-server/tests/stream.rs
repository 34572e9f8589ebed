//! The balance stream, `GET /points/stream`, against a real ledger over loopback, on a SQLite
//! file and on PostgreSQL: first events, live delivery of every kind of change once and in
//! order, `Last-Event-ID` resume and its bound, heartbeat, typed ends, limits, slow readers,
//! shutdown, and (PostgreSQL) two ledger instances on one database and a lost listener.

mod common;

use std::time::{Duration, Instant};

use common::sse::{self, Frame};
use common::{Backend, TestLedger};
use points_ledger::ledger::{ConsumeRequest, IdempotencyKey};
use points_ledger::stream::StreamLimits;
use points_ledger::LedgerConfig;
use serde_json::json;
use uuid::Uuid;

const WAIT: Duration = Duration::from_secs(10);

/// A ledger for one test, with the SQLite file's directory kept until the end.
struct Fixture {
    l: TestLedger,
    _dir: Option<tempfile::TempDir>,
}

impl Fixture {
    async fn finish(self) {
        self.l.finish().await;
    }
}

/// A ledger on `backend` (SQLite: a file), its configuration changed by `configure`; `None`
/// when PostgreSQL is not available (the test is skipped).
async fn start(
    backend: Backend,
    configure: impl FnOnce(LedgerConfig) -> LedgerConfig,
) -> Option<Fixture> {
    let (url, dir) = match backend {
        Backend::Sqlite => {
            let dir = tempfile::tempdir().expect("a temporary directory");
            let url = format!("sqlite:{}?mode=rwc", dir.path().join("s.sqlite").display());
            (url, Some(dir))
        }
        Backend::Postgres => (common::fresh_pg_database(&common::pg_url()?).await, None),
    };
    Some(Fixture {
        l: common::start_configured(url, configure).await,
        _dir: dir,
    })
}

fn limits(change: impl FnOnce(&mut StreamLimits)) -> impl FnOnce(LedgerConfig) -> LedgerConfig {
    move |config| {
        let mut limits = StreamLimits::default();
        change(&mut limits);
        config.with_stream_limits(limits)
    }
}

fn same(config: LedgerConfig) -> LedgerConfig {
    config
}

async fn consume_title(l: &TestLedger, token: &str, key: &str) {
    let response = l.consume(token, key, json!({"service": "title"})).await;
    assert_eq!(response.status(), 200, "consume {key}");
}

/// `n` charges of one point for `user` in groups (one transaction each), with debt allowed.
async fn burst(l: &TestLedger, user: Uuid, n: usize, tag: &str) {
    let charges: Vec<_> = (0..n)
        .map(|i| {
            (
                user,
                ConsumeRequest {
                    service: "title".into(),
                    duration: None,
                    allow_debt: true,
                    reference: None,
                },
                IdempotencyKey::parse(&format!("{tag}-{i}")).unwrap(),
            )
        })
        .collect();
    for chunk in charges.chunks(points_ledger::ledger::MAX_GROUP) {
        for answer in l.running.ledger().consume_many(chunk).await {
            answer.expect("a burst charge");
        }
    }
}

fn assert_change(event: &serde_json::Value, seq: i64, kind: &str, points: i64, balance: i64) {
    assert_eq!(event["seq"], seq, "{event}");
    assert_eq!(event["change"]["kind"], kind, "{event}");
    assert_eq!(event["change"]["points"], points, "{event}");
    assert_eq!(event["balance"], balance, "{event}");
    let totals = event["total_recharged"].as_i64().unwrap()
        - event["total_consumed"].as_i64().unwrap()
        - event["total_expired"].as_i64().unwrap();
    assert_eq!(totals, balance, "the totals add up: {event}");
}

async fn the_first_event_is_a_snapshot(backend: Backend) {
    let Some(f) = start(backend, same).await else {
        return;
    };
    let l = &f.l;
    let (user, token) = l.user_with(100).await;
    let mut stream = sse::open(l.running.addr(), &token, None).await;
    assert_eq!(stream.status, 200, "{}", stream.head);
    assert_eq!(
        stream.header("content-type").as_deref(),
        Some("text/event-stream")
    );
    assert_eq!(stream.header("cache-control").as_deref(), Some("no-cache"));
    assert_eq!(stream.header("x-accel-buffering").as_deref(), Some("no"));
    let first = stream.balance(WAIT).await;
    assert_eq!(
        first,
        json!({"user_id": user.to_string(), "seq": 1, "balance": 100, "total_recharged": 100,
               "total_consumed": 0, "total_expired": 0, "change": null})
    );
    // A user without any entry: zeros at seq 0.
    let (nobody, token) = l.user_with(0).await;
    let mut stream = sse::open(l.running.addr(), &token, None).await;
    let first = stream.balance(WAIT).await;
    assert_eq!(first["user_id"], nobody.to_string());
    assert_eq!(
        (first["seq"].as_i64(), first["balance"].as_i64()),
        (Some(0), Some(0))
    );
    assert!(first["change"].is_null());
    f.finish().await;
}

async fn every_change_is_delivered_once_in_order(backend: Backend) {
    let Some(f) = start(backend, same).await else {
        return;
    };
    let l = &f.l;
    let (user, token) = l.user_with(100).await;
    let mut stream = sse::open(l.running.addr(), &token, None).await;
    assert_eq!(stream.balance(WAIT).await["seq"], 1);

    consume_title(l, &token, "k1").await;
    let event = stream.balance(WAIT).await;
    assert_change(&event, 2, "consume", 1, 99);
    assert_eq!(event["change"]["service"], "title");

    // A recharge through the admin route, one expiring tomorrow.
    let expires_at = (l.clock_now() + time::Duration::days(1))
        .format(&time::format_description::well_known::Rfc3339)
        .unwrap();
    let response = l
        .admin_recharge(
            "pay-1",
            json!({"user_id": user, "points": 10, "expires_at": expires_at}),
        )
        .await;
    assert_eq!(response.status(), 200);
    let event = stream.balance(WAIT).await;
    assert_change(&event, 3, "recharge", 10, 109);
    assert!(event["change"]["service"].is_null());

    // Two days on, the sweep expires it.
    l.clock.advance(time::Duration::days(2));
    let response = l
        .http
        .post(l.url("/admin/expire"))
        .header("X-Admin-Key", l.running.admin_key())
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let event = stream.balance(WAIT).await;
    assert_change(&event, 4, "expire", 10, 99);
    assert_eq!(event["total_expired"], 10);

    // Nothing else: no event twice.
    assert_eq!(stream.quiet_for(Duration::from_millis(500)).await, Ok(()));
    let balance = l.get_json(&token, "/points/balance").await;
    for field in [
        "seq",
        "balance",
        "total_recharged",
        "total_consumed",
        "total_expired",
    ] {
        assert_eq!(event[field], balance[field], "{field}");
    }
    f.finish().await;
}

async fn last_event_id_resumes_without_a_gap(backend: Backend) {
    let Some(f) = start(backend, same).await else {
        return;
    };
    let l = &f.l;
    let (_, token) = l.user_with(100).await;
    let addr = l.running.addr();
    let mut stream = sse::open(addr, &token, None).await;
    assert_eq!(stream.balance(WAIT).await["seq"], 1);
    drop(stream);
    // Changes while disconnected.
    for key in ["a", "b", "c"] {
        consume_title(l, &token, key).await;
    }
    let mut stream = sse::open(addr, &token, Some("1")).await;
    for (seq, balance) in [(2, 99), (3, 98), (4, 97)] {
        let event = stream.balance(WAIT).await;
        assert_change(&event, seq, "consume", 1, balance);
        assert_eq!(event["total_consumed"], 100 - balance);
    }
    // Then live.
    consume_title(l, &token, "d").await;
    assert_change(&stream.balance(WAIT).await, 5, "consume", 1, 96);

    // Resuming at the current seq, or past it, replays nothing; live events follow.
    let mut current = sse::open(addr, &token, Some("5")).await;
    let mut ahead = sse::open(addr, &token, Some("999")).await;
    assert_eq!(current.quiet_for(Duration::from_millis(300)).await, Ok(()));
    assert_eq!(ahead.quiet_for(Duration::from_millis(10)).await, Ok(()));
    consume_title(l, &token, "e").await;
    for s in [&mut stream, &mut current, &mut ahead] {
        assert_change(&s.balance(WAIT).await, 6, "consume", 1, 95);
    }
    f.finish().await;
}

async fn replay_is_bounded(backend: Backend) {
    let Some(f) = start(backend, limits(|l| l.replay_limit = 3)).await else {
        return;
    };
    let l = &f.l;
    let (_, token) = l.user_with(100).await;
    for key in ["a", "b", "c", "d", "e"] {
        consume_title(l, &token, key).await;
    }
    let addr = l.running.addr();
    // Five missed, three allowed: a snapshot of the summary now.
    let mut stream = sse::open(addr, &token, Some("1")).await;
    let event = stream.balance(WAIT).await;
    assert_eq!(
        (event["seq"].as_i64(), event["balance"].as_i64()),
        (Some(6), Some(95))
    );
    assert!(event["change"].is_null());
    assert_eq!(stream.quiet_for(Duration::from_millis(300)).await, Ok(()));
    // Three missed: all three.
    let mut stream = sse::open(addr, &token, Some("3")).await;
    for (seq, balance) in [(4, 97), (5, 96), (6, 95)] {
        assert_change(&stream.balance(WAIT).await, seq, "consume", 1, balance);
    }
    f.finish().await;
}

async fn heartbeat_comments_keep_the_stream_alive(backend: Backend) {
    let config = limits(|l| l.heartbeat = Duration::from_millis(200));
    let Some(f) = start(backend, config).await else {
        return;
    };
    let l = &f.l;
    let (_, token) = l.user_with(5).await;
    let mut stream = sse::open(l.running.addr(), &token, None).await;
    stream.balance(WAIT).await;
    for _ in 0..3 {
        let started = Instant::now();
        assert_eq!(
            stream.next_within(Duration::from_secs(2)).await,
            Some(Frame::Comment("ping".into()))
        );
        assert!(started.elapsed() < Duration::from_secs(1));
    }
    f.finish().await;
}

async fn the_stream_ends_when_the_token_expires(backend: Backend) {
    let secret = "a-test-secret-of-at-least-32-bytes-long";
    let config = move |c: LedgerConfig| c.with_secrets(secret, "admin-key-for-the-stream-test");
    let Some(f) = start(backend, config).await else {
        return;
    };
    let l = &f.l;
    let user = Uuid::new_v4();
    let now = time::OffsetDateTime::now_utc().unix_timestamp();
    let token = jsonwebtoken::encode(
        &jsonwebtoken::Header::new(jsonwebtoken::Algorithm::HS256),
        &json!({"sub": user.to_string(), "iat": now, "exp": now + 2}),
        &jsonwebtoken::EncodingKey::from_secret(secret.as_bytes()),
    )
    .unwrap();
    let started = Instant::now();
    let mut stream = sse::open(l.running.addr(), &token, None).await;
    assert_eq!(stream.status, 200, "{}", stream.body);
    stream.balance(WAIT).await;
    assert_eq!(stream.event(WAIT).await, Frame::End("token_expired".into()));
    assert!(
        started.elapsed() >= Duration::from_millis(900),
        "{:?}",
        started.elapsed()
    );
    assert_eq!(
        stream.next_within(WAIT).await,
        None,
        "closed after the end event"
    );
    f.finish().await;
}

async fn a_user_past_the_cap_ends_the_oldest_stream(backend: Backend) {
    let Some(f) = start(backend, limits(|l| l.max_per_user = 2)).await else {
        return;
    };
    let l = &f.l;
    let (_, token) = l.user_with(10).await;
    let addr = l.running.addr();
    let mut oldest = sse::open(addr, &token, None).await;
    oldest.balance(WAIT).await;
    let mut second = sse::open(addr, &token, None).await;
    second.balance(WAIT).await;
    let mut third = sse::open(addr, &token, None).await;
    third.balance(WAIT).await;
    assert_eq!(
        oldest.event(WAIT).await,
        Frame::End("too_many_streams".into())
    );
    assert_eq!(oldest.next_within(WAIT).await, None);
    consume_title(l, &token, "k").await;
    for stream in [&mut second, &mut third] {
        assert_change(&stream.balance(WAIT).await, 2, "consume", 1, 9);
    }
    assert_eq!(l.running.open_streams(), 2);
    f.finish().await;
}

async fn limits_and_refusals_are_typed(backend: Backend) {
    let Some(f) = start(backend, limits(|l| l.max_streams = 2)).await else {
        return;
    };
    let l = &f.l;
    let addr = l.running.addr();
    let (_, token) = l.user_with(10).await;
    for bad in ["abc", "-1", "1.5", "99999999999999999999", ""] {
        let refused = sse::open(addr, &token, Some(bad)).await;
        assert_eq!(refused.status, 400, "{bad:?}: {}", refused.body);
        assert!(
            refused.body.contains("invalid_last_event_id"),
            "{}",
            refused.body
        );
    }
    let refused = sse::open(addr, "not-a-token", None).await;
    assert_eq!(refused.status, 401);
    assert!(refused.body.contains("unauthorized"));
    let mut open = Vec::new();
    for _ in 0..2 {
        let (_, token) = l.user_with(1).await;
        let mut stream = sse::open(addr, &token, None).await;
        stream.balance(WAIT).await;
        open.push(stream);
    }
    let refused = sse::open(addr, &token, None).await;
    assert_eq!(refused.status, 503, "{}", refused.body);
    assert_eq!(
        refused.header("content-type").as_deref(),
        Some("application/problem+json")
    );
    assert!(
        refused.body.contains("too_many_streams"),
        "{}",
        refused.body
    );
    drop(open);
    // Room again once they are gone.
    let deadline = Instant::now() + WAIT;
    while l.running.open_streams() > 0 {
        assert!(Instant::now() < deadline, "closed streams left the hub");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let mut stream = sse::open(addr, &token, None).await;
    assert_eq!(stream.status, 200);
    stream.balance(WAIT).await;
    f.finish().await;
}

async fn a_slow_reader_is_dropped(backend: Backend) {
    let Some(f) = start(backend, limits(|l| l.buffer = 4)).await else {
        return;
    };
    let l = &f.l;
    let (user, token) = l.user_with(10).await;
    let mut stream = sse::open_with(l.running.addr(), &token, None, Some(4096)).await;
    stream.balance(WAIT).await;
    // The reader stops reading; the changes keep coming.
    let hub = l.running.ledger().hub().clone();
    let mut rounds = 0;
    while hub.dropped_slow_readers() == 0 {
        rounds += 1;
        assert!(rounds <= 200, "a reader that never reads was never dropped");
        burst(l, user, 128, &format!("slow-{rounds}")).await;
    }
    assert_eq!(l.running.open_streams(), 0);
    // Its connection is closed: what it still reads is what was already buffered, then the end.
    let mut frames = 0u64;
    let read_all = async {
        while stream.next().await.is_some() {
            frames += 1;
        }
    };
    tokio::time::timeout(WAIT, read_all)
        .await
        .expect("the dropped stream's connection is closed");
    assert!(
        frames < rounds as u64 * 128,
        "{frames} frames: not every change was buffered for the slow reader"
    );
    // A new stream of the same user works.
    let mut again = sse::open(l.running.addr(), &token, None).await;
    assert_eq!(
        again.balance(WAIT).await["seq"].as_i64(),
        Some(1 + rounds * 128)
    );
    f.finish().await;
}

async fn shutdown_ends_open_streams(backend: Backend) {
    let Some(f) = start(backend, same).await else {
        return;
    };
    let l = &f.l;
    let addr = l.running.addr();
    let (_, token) = l.user_with(10).await;
    let mut reading = sse::open(addr, &token, None).await;
    reading.balance(WAIT).await;
    // A reader that stopped reading with its buffers full: its end event cannot be sent.
    let (stuck_user, stuck_token) = l.user_with(10).await;
    let mut stuck = sse::open_with(addr, &stuck_token, None, Some(4096)).await;
    stuck.balance(WAIT).await;
    burst(l, stuck_user, 1024, "stuck").await;
    let f_running = f;
    let started = Instant::now();
    tokio::time::timeout(Duration::from_secs(5), f_running.finish())
        .await
        .expect("shutdown does not wait for open streams");
    assert!(started.elapsed() < Duration::from_secs(5));
    assert_eq!(reading.event(WAIT).await, Frame::End("shutdown".into()));
    assert_eq!(reading.next_within(WAIT).await, None);
    drop(stuck);
}

async fn streams_are_not_cut_by_the_request_timeout_nor_counted_in_flight(backend: Backend) {
    let config = |c: LedgerConfig| {
        let mut http = points_ledger::http::HttpLimits::default();
        http.request_timeout = Duration::from_millis(500);
        http.max_in_flight = 2;
        let mut stream = StreamLimits::default();
        stream.heartbeat = Duration::from_millis(200);
        c.with_http_limits(http).with_stream_limits(stream)
    };
    let Some(f) = start(backend, config).await else {
        return;
    };
    let l = &f.l;
    let mut streams = Vec::new();
    let mut tokens = Vec::new();
    for _ in 0..3 {
        let (_, token) = l.user_with(10).await;
        let mut stream = sse::open(l.running.addr(), &token, None).await;
        stream.balance(WAIT).await;
        streams.push(stream);
        tokens.push(token);
    }
    tokio::time::sleep(Duration::from_millis(1200)).await;
    // Three streams open past the request timeout, more than the in-flight limit: requests are
    // still served, and every stream still delivers.
    assert_eq!(l.balance(&tokens[0]).await, 10);
    for (i, token) in tokens.iter().enumerate() {
        consume_title(l, token, &format!("k{i}")).await;
    }
    for stream in &mut streams {
        assert_change(&stream.balance(WAIT).await, 2, "consume", 1, 9);
    }
    f.finish().await;
}

async fn many_streams_each_get_their_change(backend: Backend) {
    const USERS: usize = 300;
    let Some(f) = start(backend, same).await else {
        return;
    };
    let l = &f.l;
    let addr = l.running.addr();
    let mut streams = Vec::with_capacity(USERS);
    let mut tokens = Vec::with_capacity(USERS);
    for _ in 0..USERS {
        let (_, token) = l.user_with(10).await;
        let mut stream = sse::open(addr, &token, None).await;
        stream.balance(WAIT).await;
        streams.push(stream);
        tokens.push(token);
    }
    let writes: Vec<_> = tokens
        .iter()
        .map(|token| l.consume(token, "fan-out", json!({"service": "title"})))
        .collect();
    for response in futures_util::future::join_all(writes).await {
        assert_eq!(response.status(), 200);
    }
    let reads = streams.iter_mut().map(|stream| async move {
        let event = stream.balance(WAIT).await;
        assert_change(&event, 2, "consume", 1, 9);
        assert_eq!(stream.quiet_for(Duration::from_millis(200)).await, Ok(()));
    });
    futures_util::future::join_all(reads).await;
    f.finish().await;
}

trait ClockNow {
    fn clock_now(&self) -> time::OffsetDateTime;
}

impl ClockNow for TestLedger {
    fn clock_now(&self) -> time::OffsetDateTime {
        use points_ledger::Clock;
        self.clock.now()
    }
}

macro_rules! on_both_backends {
    ($($case:ident),* $(,)?) => {
        mod sqlite {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $case() {
                    super::$case(crate::Backend::Sqlite).await;
                }
            )*
        }
        mod postgres {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $case() {
                    super::$case(crate::Backend::Postgres).await;
                }
            )*
        }
    };
}

on_both_backends!(
    the_first_event_is_a_snapshot,
    every_change_is_delivered_once_in_order,
    last_event_id_resumes_without_a_gap,
    replay_is_bounded,
    heartbeat_comments_keep_the_stream_alive,
    the_stream_ends_when_the_token_expires,
    a_user_past_the_cap_ends_the_oldest_stream,
    limits_and_refusals_are_typed,
    a_slow_reader_is_dropped,
    shutdown_ends_open_streams,
    streams_are_not_cut_by_the_request_timeout_nor_counted_in_flight,
    many_streams_each_get_their_change,
);
