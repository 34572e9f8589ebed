//! Shared set-up for the integration tests: a ledger on SQLite or on a fresh PostgreSQL database,
//! a manual clock, and an HTTP client.
#![allow(dead_code)]

pub mod sse;

use std::sync::Arc;

use points_ledger::{LedgerConfig, ManualClock, RunningLedger};
use sqlx::Connection;
use time::OffsetDateTime;
use uuid::Uuid;

/// Which database a test runs on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
}

/// A running ledger with a clock the test controls.
pub struct TestLedger {
    pub running: RunningLedger,
    pub clock: ManualClock,
    pub http: reqwest::Client,
    pub database_url: String,
}

/// A fixed starting time, so expiry dates in tests are easy to read.
pub fn start_time() -> OffsetDateTime {
    time::macros::datetime!(2026-05-01 12:00 UTC)
}

/// The PostgreSQL server to test against, from `POINTS_LEDGER_PG_URL`. Without it the test is
/// skipped, unless `POINTS_REQUIRE_PG=1`, when it fails.
pub fn pg_url() -> Option<String> {
    match std::env::var("POINTS_LEDGER_PG_URL") {
        Ok(url) if !url.is_empty() => Some(url),
        _ => {
            if std::env::var("POINTS_REQUIRE_PG").as_deref() == Ok("1") {
                panic!("POINTS_REQUIRE_PG=1 but POINTS_LEDGER_PG_URL is not set");
            }
            eprintln!("skipped: POINTS_LEDGER_PG_URL not set");
            None
        }
    }
}

/// Creates an empty database with a random name on the server of `base_url`; returns its URL.
pub async fn fresh_pg_database(base_url: &str) -> String {
    let name = format!("points_test_{}", Uuid::new_v4().simple());
    let mut conn = sqlx::PgConnection::connect(base_url)
        .await
        .expect("connect to PostgreSQL");
    sqlx::query(&format!("CREATE DATABASE {name}"))
        .execute(&mut conn)
        .await
        .expect("create a test database");
    conn.close().await.ok();
    let (without_query, query) = match base_url.split_once('?') {
        Some((url, query)) => (url, Some(query)),
        None => (base_url, None),
    };
    let (server, _) = without_query
        .rsplit_once('/')
        .expect("a database URL has a path");
    match query {
        Some(query) => format!("{server}/{name}?{query}"),
        None => format!("{server}/{name}"),
    }
}

/// The database URL for `backend`, or `None` when PostgreSQL is not available (test skipped).
pub async fn database_url(backend: Backend) -> Option<String> {
    match backend {
        Backend::Sqlite => Some("sqlite::memory:".to_owned()),
        Backend::Postgres => Some(fresh_pg_database(&pg_url()?).await),
    }
}

/// A ledger on `backend` with a manual clock at [`start_time`].
pub async fn start(backend: Backend) -> Option<TestLedger> {
    Some(start_with_url(database_url(backend).await?).await)
}

/// A ledger on the database at `url` with a manual clock at [`start_time`].
pub async fn start_with_url(url: String) -> TestLedger {
    start_with_pricing(url, points_ledger::PriceTable::shipped()).await
}

/// A ledger on the database at `url` with its own price table and a manual clock at
/// [`start_time`].
pub async fn start_with_pricing(url: String, pricing: points_ledger::PriceTable) -> TestLedger {
    let clock = ManualClock::new(start_time());
    let config = LedgerConfig::ephemeral()
        .with_database_url(url.clone())
        .with_pricing(pricing)
        .with_clock(Arc::new(clock.clone()));
    let running = points_ledger::serve(config)
        .await
        .expect("the ledger starts");
    TestLedger {
        running,
        clock,
        http: reqwest::Client::new(),
        database_url: url,
    }
}

/// A ledger on the database at `url` with a manual clock at [`start_time`], its configuration
/// changed by `configure`.
pub async fn start_configured(
    url: String,
    configure: impl FnOnce(LedgerConfig) -> LedgerConfig,
) -> TestLedger {
    let clock = ManualClock::new(start_time());
    let config = configure(
        LedgerConfig::ephemeral()
            .with_database_url(url.clone())
            .with_clock(Arc::new(clock.clone())),
    );
    let running = points_ledger::serve(config)
        .await
        .expect("the ledger starts");
    TestLedger {
        running,
        clock,
        http: reqwest::Client::new(),
        database_url: url,
    }
}

/// Drops a database made by [`fresh_pg_database`]; other URLs are left alone.
pub async fn drop_pg_database(url: &str) {
    let Some(base) = pg_url() else { return };
    let path = url.split('?').next().unwrap_or(url);
    let Some((_, name)) = path.rsplit_once('/') else {
        return;
    };
    if !name.starts_with("points_test_") {
        return;
    }
    if let Ok(mut conn) = sqlx::PgConnection::connect(&base).await {
        let _ = sqlx::query(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
            .execute(&mut conn)
            .await;
        conn.close().await.ok();
    }
}

impl TestLedger {
    /// Stops the ledger and drops its PostgreSQL test database.
    pub async fn finish(self) {
        self.running.shutdown().await;
        drop_pg_database(&self.database_url).await;
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{}", self.running.base_url(), path)
    }

    /// A new user with a recharge of `points` expiring in 30 days (none when `points` is 0).
    pub async fn user_with(&self, points: i64) -> (Uuid, String) {
        let user = Uuid::new_v4();
        if points > 0 {
            self.recharge(user, points, 30).await;
        }
        (user, self.running.token_for(user))
    }

    /// Recharges `user` with a batch of `points` expiring `days` from the test clock's now.
    pub async fn recharge(&self, user: Uuid, points: i64, days: i64) {
        self.running
            .recharge(user, points, self.clock.now_plus_days(days))
            .await
            .expect("recharge");
    }

    pub async fn get(&self, token: &str, path: &str) -> reqwest::Response {
        self.http
            .get(self.url(path))
            .bearer_auth(token)
            .send()
            .await
            .expect("GET")
    }

    pub async fn get_json(&self, token: &str, path: &str) -> serde_json::Value {
        let response = self.get(token, path).await;
        assert_eq!(response.status(), 200, "GET {path}");
        response.json().await.expect("JSON")
    }

    pub async fn consume(
        &self,
        token: &str,
        key: &str,
        body: serde_json::Value,
    ) -> reqwest::Response {
        self.http
            .post(self.url("/points/consume"))
            .bearer_auth(token)
            .header("Idempotency-Key", key)
            .json(&body)
            .send()
            .await
            .expect("POST /points/consume")
    }

    /// `POST /admin/recharge` with the admin key and `Idempotency-Key: key`.
    pub async fn admin_recharge(&self, key: &str, body: serde_json::Value) -> reqwest::Response {
        self.http
            .post(self.url("/admin/recharge"))
            .header("X-Admin-Key", self.running.admin_key())
            .header("Idempotency-Key", key)
            .json(&body)
            .send()
            .await
            .expect("POST /admin/recharge")
    }

    pub async fn balance(&self, token: &str) -> i64 {
        self.get_json(token, "/points/balance").await["balance"]
            .as_i64()
            .expect("balance")
    }
}

/// Days from the manual clock's now.
pub trait ClockExt {
    fn now_plus_days(&self, days: i64) -> OffsetDateTime;
}

impl ClockExt for ManualClock {
    fn now_plus_days(&self, days: i64) -> OffsetDateTime {
        use points_ledger::Clock;
        self.now() + time::Duration::days(days)
    }
}

/// Checks every account in the database: `balance == total_recharged - total_consumed -
/// total_expired`; while `balance >= 0` the batches' remaining points sum to it, else they are
/// all empty; and the journal's newest `balance_after` is the balance.
pub async fn assert_books_balance(ledger: &points_ledger::Ledger) {
    use sqlx::Row;
    let pool = ledger.db().pool();
    let accounts = sqlx::query(
        "SELECT user_id, balance, total_recharged, total_consumed, total_expired, last_seq FROM accounts",
    )
    .fetch_all(pool)
    .await
    .unwrap();
    for account in accounts {
        let user: String = account.get(0);
        let balance: i64 = account.get(1);
        let (recharged, consumed, expired): (i64, i64, i64) =
            (account.get(2), account.get(3), account.get(4));
        assert_eq!(
            balance,
            recharged - consumed - expired,
            "user {user}: totals"
        );
        let remaining: i64 = sqlx::query_scalar(
            "SELECT CAST(COALESCE(SUM(remaining), 0) AS BIGINT) FROM batches WHERE user_id = $1",
        )
        .bind(&user)
        .fetch_one(pool)
        .await
        .unwrap();
        assert_eq!(
            remaining,
            balance.max(0),
            "user {user}: batches hold the balance"
        );
        let last_seq: i64 = account.get(5);
        if last_seq > 0 {
            let after: i64 = sqlx::query_scalar(
                "SELECT balance_after FROM journal WHERE user_id = $1 AND seq = $2",
            )
            .bind(&user)
            .bind(last_seq)
            .fetch_one(pool)
            .await
            .unwrap();
            assert_eq!(after, balance, "user {user}: journal ends at the balance");
        }
    }
}

/// Runs each named `async fn(&TestLedger)` of the calling file as a test on SQLite and, when its
/// URL is set, on PostgreSQL (`mod sqlite` / `mod postgres`).
#[allow(unused_macros)]
macro_rules! on_both_backends {
    ($($case:ident),* $(,)?) => {
        mod sqlite {
            $(
                #[tokio::test]
                async fn $case() {
                    let l = crate::common::start(crate::common::Backend::Sqlite).await.expect("SQLite");
                    super::$case(&l).await;
                    l.finish().await;
                }
            )*
        }
        mod postgres {
            $(
                #[tokio::test]
                async fn $case() {
                    let Some(l) = crate::common::start(crate::common::Backend::Postgres).await else { return };
                    super::$case(&l).await;
                    l.finish().await;
                }
            )*
        }
    };
}
