//! Shared by the integration tests: a real reference ledger on loopback with a funded user, and
//! clients of it.
#![allow(dead_code)]

pub mod proxy;
pub mod stub;

use std::time::Duration;

use points_ledger::{LedgerConfig, RunningLedger};
use points_sdk::client::{LedgerClient, RetryPolicy, SessionToken};
use uuid::Uuid;

/// A running ledger and one user of it.
pub struct TestLedger {
    pub ledger: RunningLedger,
    pub user: Uuid,
    pub token: String,
}

impl TestLedger {
    /// An in-memory ledger whose user holds `points`, expiring in 30 days.
    pub async fn start(points: i64) -> Self {
        let ledger = points_ledger::serve(LedgerConfig::ephemeral())
            .await
            .expect("the reference ledger starts");
        let user = Uuid::new_v4();
        if points > 0 {
            ledger
                .recharge(user, points, in_days(30))
                .await
                .expect("recharge");
        }
        let token = ledger.token_for(user);
        Self {
            ledger,
            user,
            token,
        }
    }

    /// A client signed in as the user, with short retry waits.
    pub fn client(&self) -> LedgerClient {
        client_for(&self.ledger.base_url(), Some(&self.token))
    }
}

/// A client of `base_url`, signed in with `token`, retrying fast.
pub fn client_for(base_url: &str, token: Option<&str>) -> LedgerClient {
    let session = SessionToken::new();
    if let Some(token) = token {
        session.set(token);
    }
    LedgerClient::builder(base_url)
        .retry(fast_retry())
        .connect_timeout(Duration::from_secs(2))
        .request_timeout(Duration::from_secs(5))
        .token_provider(session)
        .build()
        .expect("a loopback base URL is valid")
}

/// Three attempts, waits of a few milliseconds.
pub fn fast_retry() -> RetryPolicy {
    RetryPolicy {
        max_attempts: 3,
        base_delay: Duration::from_millis(10),
        max_delay: Duration::from_millis(40),
        max_retry_after: Duration::from_secs(3),
    }
}

/// Background sync waits of a few tens of milliseconds.
pub fn fast_sync() -> points_sdk::SyncPolicy {
    points_sdk::SyncPolicy {
        min_delay: Duration::from_millis(50),
        max_delay: Duration::from_millis(400),
        ..points_sdk::SyncPolicy::default()
    }
}

/// Now plus `days`.
pub fn in_days(days: i64) -> time::OffsetDateTime {
    time::OffsetDateTime::now_utc() + time::Duration::days(days)
}
