//! The money rules: recharge, consume, expire, offline allowances, and the reads that show them.
//! Nothing here knows HTTP. One module per operation: [`consume`], [`recharge`], [`expire`],
//! [`allowance`] (issue, and the checks of a consume under one), [`reads`]; a consume's charge
//! inside a transaction is in `charge`, the group commit of consumes in `batch`, the steps every
//! write transaction shares in `write`, amounts and their bounds in [`crate::amount`]. Modules
//! import in one direction: consume → batch → charge → allowance → expire → write.
//!
//! Invariants every operation keeps (the model test, `tests/model.rs`, checks them on SQLite and
//! on PostgreSQL, whose consume is the `points_consume_batch` function of `migrations-postgres/`):
//! - `balance == total_recharged - total_consumed - total_expired` on every summary row (also a
//!   `CHECK` of the schema), and every amount, balance and total within ±(2^53 − 1): a write
//!   that would leave the range writes nothing.
//! - Every write runs in one transaction holding the user's summary row lock, expires the user's
//!   due batches first, and appends to the journal: one entry per recharge, charge and expired
//!   batch, numbered by `seq` without gaps per user.
//! - A batch's `emptied_at` is set exactly when its `remaining` reaches zero (a `CHECK`), by
//!   the statement that empties it; live batches are found by `emptied_at IS NULL`, the
//!   predicate of their indexes, so a burn that leaves points rewrites no index entry.
//! - An idempotency key is used at most once per user and kind of write (a unique index): the
//!   same request again answers the first receipt (`replayed`), another request under it is a
//!   conflict, and a key still being applied in this instance is refused (in flight).
//! - Nothing is acknowledged before it is committed.
//! - For every offline allowance, the consumes journaled under it add up to its `spent`, and
//!   `spent <= points <= granted` (also a `CHECK`): the ledger risks at most what it signed.

pub mod allowance;
mod batch;
pub mod changes;
mod charge;
pub use batch::{GroupStats, MAX_GROUP, MAX_QUEUED};
pub use changes::{BalanceEvent, Change, Changes, JournalEntry};
pub mod consume;
pub mod expire;
pub mod reads;
pub mod recharge;
mod write;

use std::collections::HashSet;
use std::sync::{Arc, Mutex};

use serde::{Deserialize, Serialize};
use time::OffsetDateTime;
use utoipa::ToSchema;
use uuid::Uuid;

use crate::clock::Clock;
use crate::db::Db;
use crate::pricing::{PriceTable, PricingError, PricingMode};
use crate::stream::{Hub, Notice};

pub use crate::amount::MAX_AMOUNT;
pub use allowance::{AllowanceGrant, AllowancePolicy, MAX_DEVICE_ID_LEN};
pub use consume::MAX_REFERENCE_CHARS;
pub use expire::{SWEEP_LOCK, SWEEP_PAGE};
pub use reads::{DEFAULT_PAGE, MAX_PAGE};

/// Why a ledger operation did not happen.
#[derive(Debug, thiserror::Error)]
pub enum LedgerError {
    /// The service or duration cannot be priced.
    #[error(transparent)]
    Pricing(#[from] PricingError),
    /// The balance does not cover the charge and debt was not allowed. Nothing was written.
    #[error("insufficient points for `{service}`: {required} required, balance {balance}")]
    InsufficientPoints {
        /// The service asked for.
        service: String,
        /// Its price.
        required: i64,
        /// The user's balance.
        balance: i64,
    },
    /// A request with the same idempotency key is still being applied.
    #[error("a request with this idempotency key is still in flight")]
    IdempotencyInFlight,
    /// The idempotency key was already used for a different request.
    #[error("this idempotency key was already used with a different request")]
    IdempotencyMismatch,
    /// A recharge that cannot be applied (no points, or already expired).
    #[error("invalid recharge: {0}")]
    InvalidRecharge(String),
    /// The write would take an amount, a balance or a total beyond ±(2^53 − 1). Nothing was
    /// written.
    #[error("amounts, balances and totals must stay within ±9007199254740991; this write would leave that range")]
    AmountOutOfRange,
    /// An idempotency key that is not 1 to 255 printable ASCII characters without space.
    #[error("invalid idempotency key")]
    InvalidIdempotencyKey,
    /// A consume's `reference` longer than [`MAX_REFERENCE_CHARS`]. Nothing was written.
    #[error("reference must be at most {MAX_REFERENCE_CHARS} characters")]
    ReferenceTooLong,
    /// A `device_id` that is not 1 to 128 characters of `[A-Za-z0-9._:-]`.
    #[error("device_id must be 1 to {MAX_DEVICE_ID_LEN} characters of [A-Za-z0-9._:-]")]
    InvalidDeviceId,
    /// This ledger has no allowance key: it issues no offline allowance.
    #[error("this ledger issues no offline allowances (no allowance key is configured)")]
    AllowanceUnavailable,
    /// The consume names an allowance that is not the user's, or none at all. Nothing was
    /// written.
    #[error("no such allowance for this user")]
    AllowanceNotFound,
    /// The consume names an allowance past its `not_after` and grace period. Nothing was
    /// written.
    #[error("the allowance has expired (past its not_after and grace period)")]
    AllowanceExpired,
    /// The charge is more than what is left of the allowance it names. Nothing was written.
    #[error("the allowance does not cover this charge: {required} required, {left} left")]
    AllowanceExhausted {
        /// The charge's price.
        required: i64,
        /// What is left of the allowance.
        left: i64,
    },
    /// A history cursor that this ledger did not hand out.
    #[error("invalid cursor")]
    InvalidCursor,
    /// The database failed.
    #[error("database error: {0}")]
    Database(#[from] sqlx::Error),
}

impl LedgerError {
    /// Whether the database refused the transaction for a reason a new attempt clears: a
    /// serialization failure (SQLSTATE 40001) or a deadlock (40P01). Nothing was written.
    pub fn is_transient(&self) -> bool {
        match self {
            LedgerError::Database(sqlx::Error::Database(error)) => {
                matches!(error.code().as_deref(), Some("40001" | "40P01"))
            }
            _ => false,
        }
    }
}

/// How many times a transaction refused with a serialization failure or a deadlock is tried
/// again before the error is answered.
pub const TRANSIENT_RETRIES: u32 = 8;

/// Runs `attempt` until it succeeds, fails for good, or has failed transiently (see
/// [`LedgerError::is_transient`]) [`TRANSIENT_RETRIES`] more times, sleeping a little longer
/// (with jitter) after each failure.
pub(crate) async fn retrying<T, F, Fut>(mut attempt: F) -> Result<T, LedgerError>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<T, LedgerError>>,
{
    let mut failures = 0;
    loop {
        match attempt().await {
            Err(error) if error.is_transient() && failures < TRANSIENT_RETRIES => {
                failures += 1;
                let jitter = u64::from(Uuid::new_v4().as_bytes()[0]) % 4;
                let millis = (1u64 << failures.min(6)) + jitter;
                tracing::debug!(%error, failures, "transient database failure: trying again");
                tokio::time::sleep(std::time::Duration::from_millis(millis)).await;
            }
            other => return other,
        }
    }
}

/// A client's idempotency key: 1 to 255 printable ASCII characters, no space.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct IdempotencyKey(String);

impl IdempotencyKey {
    /// Checks a key's shape; `None` when it is not a valid key.
    pub fn parse(key: &str) -> Option<Self> {
        let valid =
            (1..=255).contains(&key.len()) && key.bytes().all(|b| (0x21..=0x7e).contains(&b));
        valid.then(|| Self(key.to_owned()))
    }

    /// The key as sent.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// A user's summary row.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize, ToSchema)]
pub struct Summary {
    /// The ledger's account of the bearer token: the user's UUID (the token's `sub`), lowercase
    /// and hyphenated. A client binds its pending charges to it.
    pub user_id: Uuid,
    /// Points available now; negative while the user is in arrears.
    #[schema(minimum = -9_007_199_254_740_991_i64, maximum = 9_007_199_254_740_991_i64)]
    pub balance: i64,
    /// Points ever recharged.
    #[schema(minimum = 0, maximum = 9_007_199_254_740_991_i64)]
    pub total_recharged: i64,
    /// Points ever consumed.
    #[schema(minimum = 0, maximum = 9_007_199_254_740_991_i64)]
    pub total_consumed: i64,
    /// Points that expired unused.
    #[schema(minimum = 0, maximum = 9_007_199_254_740_991_i64)]
    pub total_expired: i64,
    /// The user's latest journal sequence number (0 before any entry): a larger `seq` is a newer
    /// figure.
    #[schema(minimum = 0)]
    pub seq: i64,
}

/// A priced use of a service, against the user's balance.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct CostCheck {
    /// The ledger's account of the bearer token: the user's UUID (the token's `sub`), lowercase
    /// and hyphenated.
    pub user_id: Uuid,
    /// The service priced.
    pub service: String,
    /// How it is priced.
    pub mode: PricingMode,
    /// Points it costs.
    #[schema(minimum = 0, maximum = 9_007_199_254_740_991_i64)]
    pub required: i64,
    /// The user's balance now.
    #[schema(minimum = -9_007_199_254_740_991_i64, maximum = 9_007_199_254_740_991_i64)]
    pub balance: i64,
    /// `required == 0 || balance >= required`.
    pub sufficient: bool,
    /// The user's latest journal sequence number when `balance` was read.
    #[schema(minimum = 0)]
    pub seq: i64,
}

/// One use of a service to charge, as the client asked for it (after defaults).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ConsumeRequest {
    /// The service used.
    pub service: String,
    /// Seconds of media, for duration services.
    pub duration: Option<f64>,
    /// Apply the charge even if the balance goes negative.
    pub allow_debt: bool,
    /// The client's own reference, stored with the transaction.
    pub reference: Option<String>,
}

/// The ledger's answer to a consume.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct Receipt {
    /// The account charged: the user's UUID (the bearer token's `sub`), lowercase and
    /// hyphenated.
    pub user_id: Uuid,
    /// The journal entry; `null` for a free service (nothing stored).
    pub transaction_id: Option<String>,
    /// The service charged.
    pub service: String,
    /// Points charged.
    #[schema(minimum = 0, maximum = 9_007_199_254_740_991_i64)]
    pub points: i64,
    /// The balance right after the charge.
    #[schema(minimum = -9_007_199_254_740_991_i64, maximum = 9_007_199_254_740_991_i64)]
    pub balance: i64,
    /// `true` when this is the stored answer to an earlier request with the same key.
    pub replayed: bool,
    /// The sequence number of the journal entry written (for a replay: the original one, which
    /// `balance` belongs to); for a free service, the user's latest one.
    #[schema(minimum = 0)]
    pub seq: i64,
}

/// The ledger's answer to a recharge.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct RechargeReceipt {
    /// The journal entry.
    pub transaction_id: String,
    /// The batch created.
    pub batch_id: String,
    /// The balance right after (debt is paid first).
    #[schema(minimum = -9_007_199_254_740_991_i64, maximum = 9_007_199_254_740_991_i64)]
    pub balance: i64,
    /// `true` when this is the stored answer to an earlier request with the same key.
    pub replayed: bool,
    /// The sequence number of the journal entry written (for a replay: the original one).
    #[schema(minimum = 1)]
    pub seq: i64,
}

/// A recharge to apply, as the caller asked for it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct RechargeRequest {
    /// Points to add.
    pub points: i64,
    /// When the batch's remaining points expire.
    #[serde(with = "time::serde::rfc3339")]
    pub expires_at: OffsetDateTime,
}

/// What an expiry run reclaimed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize, ToSchema)]
pub struct ExpiryReport {
    /// Users whose batches expired.
    pub users: u64,
    /// Batches expired.
    pub batches: u64,
    /// Points reclaimed.
    pub points: i64,
    /// Users whose expiry failed this run (logged; the next run tries them again). The others
    /// were swept all the same.
    pub failed_users: u64,
    /// `true` when another sweep (this instance's or another instance's on the same database)
    /// was running: this run did nothing.
    pub skipped: bool,
}

/// A recharge batch.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct Batch {
    /// The batch's id.
    pub id: String,
    /// Points recharged.
    #[schema(minimum = 1, maximum = 9_007_199_254_740_991_i64)]
    pub points: i64,
    /// Points left.
    #[schema(minimum = 0, maximum = 9_007_199_254_740_991_i64)]
    pub remaining: i64,
    /// When the remaining points expire.
    #[serde(with = "time::serde::rfc3339")]
    #[schema(value_type = String, format = DateTime)]
    pub expires_at: OffsetDateTime,
    /// When the batch was recharged.
    #[serde(with = "time::serde::rfc3339")]
    #[schema(value_type = String, format = DateTime)]
    pub created_at: OffsetDateTime,
}

/// The live batches of a user, soonest expiry first.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct BatchList {
    /// The batches with points left that have not expired.
    pub items: Vec<Batch>,
}

/// What a journal entry records.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum EntryKind {
    /// Points added.
    Recharge,
    /// Points spent.
    Consume,
    /// Points that expired.
    Expire,
}

impl EntryKind {
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            EntryKind::Recharge => "recharge",
            EntryKind::Consume => "consume",
            EntryKind::Expire => "expire",
        }
    }

    pub(crate) fn parse(text: &str) -> Option<Self> {
        match text {
            "recharge" => Some(EntryKind::Recharge),
            "consume" => Some(EntryKind::Consume),
            "expire" => Some(EntryKind::Expire),
            _ => None,
        }
    }
}

/// One history entry.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct Entry {
    /// The transaction's id.
    pub id: String,
    /// What happened.
    pub kind: EntryKind,
    /// Signed: positive for a recharge, negative for a consume or an expiry.
    #[schema(minimum = -9_007_199_254_740_991_i64, maximum = 9_007_199_254_740_991_i64)]
    pub points: i64,
    /// The balance right after.
    #[schema(minimum = -9_007_199_254_740_991_i64, maximum = 9_007_199_254_740_991_i64)]
    pub balance_after: i64,
    /// The service, for a consume.
    pub service: Option<String>,
    /// The idempotency key the entry was written under, if any.
    pub idempotency_key: Option<String>,
    /// The client's reference stored with the entry, if any.
    pub reference: Option<String>,
    /// When it happened.
    #[serde(with = "time::serde::rfc3339")]
    #[schema(value_type = String, format = DateTime)]
    pub created_at: OffsetDateTime,
}

/// A page of history, newest first.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct EntryPage {
    /// The entries.
    pub items: Vec<Entry>,
    /// Pass as `before` for the next page; `null` on the last page.
    pub next_cursor: Option<String>,
}

/// The keys being applied in this instance: (user, kind of write, key).
type KeysInFlight = Arc<Mutex<HashSet<(Uuid, EntryKind, String)>>>;

/// The ledger: prices, the database and the clock.
#[derive(Debug)]
pub struct Ledger {
    db: Db,
    pricing: PriceTable,
    clock: Arc<dyn Clock>,
    in_flight: KeysInFlight,
    /// Applies the consumes in groups.
    batcher: batch::Batcher,
    /// Held by the sweep running in this instance.
    sweeping: tokio::sync::Mutex<()>,
    /// The balance streams open on this instance.
    hub: Arc<Hub>,
    /// Cap, window and grace period of offline allowances.
    allowance: AllowancePolicy,
}

/// Marks an idempotency key as being applied until dropped.
struct InFlight {
    set: KeysInFlight,
    entry: (Uuid, EntryKind, String),
}

impl Drop for InFlight {
    fn drop(&mut self) {
        self.set.lock().expect("in-flight lock").remove(&self.entry);
    }
}

impl Ledger {
    /// A ledger over a migrated database.
    pub fn new(db: Db, pricing: PriceTable, clock: Arc<dyn Clock>) -> Self {
        let hub = Arc::new(Hub::default());
        Self {
            batcher: batch::Batcher::new(db.clone(), clock.clone(), hub.clone()),
            hub,
            db,
            pricing,
            clock,
            in_flight: KeysInFlight::default(),
            sweeping: tokio::sync::Mutex::new(()),
            allowance: AllowancePolicy::default(),
        }
    }

    /// The same, with another cap, window or grace period for offline allowances.
    pub fn with_allowance_policy(mut self, policy: AllowancePolicy) -> Self {
        self.allowance = policy;
        self
    }

    /// Cap, window and grace period of offline allowances.
    pub fn allowance_policy(&self) -> AllowancePolicy {
        self.allowance
    }

    /// The balance streams open on this instance, which every commit is published to.
    pub fn hub(&self) -> &Arc<Hub> {
        &self.hub
    }

    /// Tells the streams of `user` that its journal reached `seq`, once committed. Only on
    /// SQLite: on PostgreSQL the journal trigger notifies every process, this one included.
    pub(crate) fn committed(&self, user: Uuid, seq: i64) {
        if self.db.backend() == crate::db::Backend::Sqlite {
            self.hub
                .publish(user, Notice::Committed { seq, entry: None });
        }
    }

    /// The price table.
    pub fn pricing(&self) -> &PriceTable {
        &self.pricing
    }

    /// The database.
    pub fn db(&self) -> &Db {
        &self.db
    }

    /// What the groups of consumes applied so far add up to: their count, the charges in them
    /// and the time spent applying them.
    pub fn group_stats(&self) -> GroupStats {
        self.batcher.stats()
    }

    /// The ledger's current time.
    pub fn now(&self) -> OffsetDateTime {
        self.clock.now()
    }

    /// separate), or answers that it already is.
    fn mark_in_flight(
        &self,
        user: Uuid,
        kind: EntryKind,
        key: &IdempotencyKey,
    ) -> Result<InFlight, LedgerError> {
        let entry = (user, kind, key.as_str().to_owned());
        if !self
            .in_flight
            .lock()
            .expect("in-flight lock")
            .insert(entry.clone())
        {
            return Err(LedgerError::IdempotencyInFlight);
        }
        Ok(InFlight {
            set: self.in_flight.clone(),
            entry,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::clock::SystemClock;

    async fn ledger() -> Ledger {
        let db = Db::connect("sqlite::memory:", 1).await.unwrap();
        Ledger::new(db, PriceTable::shipped(), Arc::new(SystemClock))
    }

    #[tokio::test]
    async fn a_key_in_flight_is_refused_until_it_lands() {
        let ledger = ledger().await;
        let user = Uuid::new_v4();
        let in_a_day = ledger.now() + time::Duration::days(1);
        ledger.recharge(user, 10, in_a_day).await.unwrap();
        let key = IdempotencyKey::parse("job-7").unwrap();
        let request = ConsumeRequest {
            service: "title".into(),
            duration: None,
            allow_debt: false,
            reference: None,
        };
        let first = ledger
            .mark_in_flight(user, EntryKind::Consume, &key)
            .unwrap();
        assert!(matches!(
            ledger.consume(user, &request, &key).await,
            Err(LedgerError::IdempotencyInFlight)
        ));
        // Another user's same key is not in flight.
        let other = Uuid::new_v4();
        ledger.recharge(other, 10, in_a_day).await.unwrap();
        assert!(ledger.consume(other, &request, &key).await.is_ok());
        drop(first);
        let receipt = ledger.consume(user, &request, &key).await.unwrap();
        assert_eq!(
            (receipt.points, receipt.balance, receipt.replayed),
            (1, 9, false)
        );
        assert_eq!(ledger.summary(user).await.unwrap().balance, 9);
    }

    /// A database error with a SQLSTATE, as the server would send it.
    #[derive(Debug)]
    struct Sqlstate(&'static str);

    impl std::fmt::Display for Sqlstate {
        fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            write!(f, "SQLSTATE {}", self.0)
        }
    }

    impl std::error::Error for Sqlstate {}

    impl sqlx::error::DatabaseError for Sqlstate {
        fn message(&self) -> &str {
            "refused"
        }
        fn code(&self) -> Option<std::borrow::Cow<'_, str>> {
            Some(self.0.into())
        }
        fn as_error(&self) -> &(dyn std::error::Error + Send + Sync + 'static) {
            self
        }
        fn as_error_mut(&mut self) -> &mut (dyn std::error::Error + Send + Sync + 'static) {
            self
        }
        fn into_error(self: Box<Self>) -> Box<dyn std::error::Error + Send + Sync + 'static> {
            self
        }
        fn kind(&self) -> sqlx::error::ErrorKind {
            sqlx::error::ErrorKind::Other
        }
    }

    fn refused(code: &'static str) -> LedgerError {
        LedgerError::Database(sqlx::Error::Database(Box::new(Sqlstate(code))))
    }

    #[tokio::test]
    async fn serialization_failures_and_deadlocks_are_retried_a_bounded_number_of_times() {
        for code in ["40001", "40P01"] {
            let calls = std::sync::atomic::AtomicU32::new(0);
            let answer = retrying(|| async {
                match calls.fetch_add(1, std::sync::atomic::Ordering::SeqCst) {
                    0..=2 => Err(refused(code)),
                    n => Ok(n),
                }
            })
            .await;
            assert_eq!(answer.unwrap(), 3, "{code}: the fourth attempt succeeds");
        }
        let calls = std::sync::atomic::AtomicU32::new(0);
        let answer: Result<(), _> = retrying(|| async {
            calls.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            Err(refused("40001"))
        })
        .await;
        assert!(answer.unwrap_err().is_transient());
        assert_eq!(calls.into_inner(), TRANSIENT_RETRIES + 1, "bounded");
        // Any other failure is answered at once.
        let calls = std::sync::atomic::AtomicU32::new(0);
        let answer: Result<(), _> = retrying(|| async {
            calls.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            Err(refused("23505"))
        })
        .await;
        assert!(answer.is_err());
        assert_eq!(calls.into_inner(), 1);
    }

    #[test]
    fn idempotency_keys_are_printable_ascii_without_space() {
        assert!(IdempotencyKey::parse("a").is_some());
        assert!(IdempotencyKey::parse(&"~".repeat(255)).is_some());
        for bad in ["", " ", "a b", "é", "a\u{7f}", &"k".repeat(256)] {
            assert!(IdempotencyKey::parse(bad).is_none(), "{bad:?}");
        }
    }
}
