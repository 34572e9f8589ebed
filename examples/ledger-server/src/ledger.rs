//! The money rules: recharge, consume, expire, and the reads that show them. Every write runs in
//! one transaction holding the user's summary row, expires the user's due batches first, burns
//! the soonest-expiring batch first and appends to the journal. Nothing here knows HTTP.

use std::collections::HashSet;
use std::sync::{Arc, Mutex};

use serde::{Deserialize, Serialize};
use sqlx::{Any, Row};
use time::OffsetDateTime;
use utoipa::ToSchema;
use uuid::Uuid;

use crate::clock::Clock;
use crate::db::{Backend, Db};
use crate::pricing::{PriceTable, PricingError, PricingMode};

type Tx = sqlx::Transaction<'static, Any>;

/// The most history entries one page may hold.
pub const MAX_PAGE: u32 = 200;
/// History entries per page when the client does not say.
pub const DEFAULT_PAGE: u32 = 50;
/// Due users the sweep reads per page.
pub const SWEEP_PAGE: i64 = 500;
/// The PostgreSQL advisory lock key held by the instance that sweeps (one at a time per
/// database): "points-ledger sweep" in ASCII, truncated to eight bytes.
pub const SWEEP_LOCK: i64 = 0x706f_696e_7473_7377;
/// The longest `reference` a consume may carry, in characters (Unicode scalar values). A
/// reference of at most 1 KiB of UTF-8 always fits; the limit counts characters because that is
/// what the OpenAPI document's `maxLength` can state.
pub const MAX_REFERENCE_CHARS: usize = 1024;
pub use crate::amount::MAX_AMOUNT;

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
async fn retrying<T, F, Fut>(mut attempt: F) -> Result<T, LedgerError>
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
    fn as_str(self) -> &'static str {
        match self {
            EntryKind::Recharge => "recharge",
            EntryKind::Consume => "consume",
            EntryKind::Expire => "expire",
        }
    }

    fn parse(text: &str) -> Option<Self> {
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

/// The summary row as held in a write transaction.
#[derive(Debug, Clone, Copy)]
struct Account {
    /// The totals, with `seq` the newest journal entry's sequence number.
    summary: Summary,
}

/// A batch with points left, as held in a write transaction.
#[derive(Debug, Clone)]
struct LiveBatch {
    id: String,
    remaining: i64,
    expires_at: i64,
}

/// The journal entry already written under the request's idempotency key.
#[derive(Debug)]
struct Earlier {
    transaction_id: String,
    kind: String,
    request_fingerprint: Option<String>,
    service: Option<String>,
    points: i64,
    balance_after: i64,
    seq: i64,
    batch_id: Option<String>,
}

impl Earlier {
    /// The earlier answer when it was a request of this kind with this fingerprint, else a
    /// conflict.
    fn matching(self, kind: EntryKind, fingerprint: &str) -> Result<Self, LedgerError> {
        if self.kind == kind.as_str() && self.request_fingerprint.as_deref() == Some(fingerprint) {
            Ok(self)
        } else {
            Err(LedgerError::IdempotencyMismatch)
        }
    }
}

/// What a write transaction holds about a user.
#[derive(Debug)]
struct Locked {
    account: Account,
    live: Vec<LiveBatch>,
    earlier: Option<Earlier>,
}

/// Reads a user's summary row, live batches and the journal entry of kind `$3` written under a
/// key (`$2`, may be null), in one round trip, once the user's row lock is held. Each kind of
/// write (consume, recharge) has its own keys: a consume under a payment's id does not stand in
/// the way of that payment's recharge.
const READ_LOCKED_USER_SQL: &str =
    "SELECT a.balance, a.total_recharged, a.total_consumed, a.total_expired, a.last_seq, \
     j.id, j.request_fingerprint, j.service, j.points, j.balance_after, j.seq, j.kind, j.batch_id, \
     b.id, b.remaining, b.expires_at \
     FROM accounts a \
     LEFT JOIN journal j ON j.user_id = a.user_id AND j.kind = $3 AND j.idempotency_key = $2 \
     LEFT JOIN batches b ON b.user_id = a.user_id AND b.remaining > 0 \
     WHERE a.user_id = $1 \
     ORDER BY b.expires_at, b.created_at, b.id";

/// A journal entry to append.
struct NewEntry<'a> {
    kind: EntryKind,
    points: i64,
    service: Option<&'a str>,
    batch_id: Option<&'a str>,
    idempotency_key: Option<&'a str>,
    request_fingerprint: Option<&'a str>,
    reference: Option<&'a str>,
}

/// The ledger: prices, the database and the clock.
#[derive(Debug)]
pub struct Ledger {
    db: Db,
    pricing: PriceTable,
    clock: Arc<dyn Clock>,
    in_flight: Mutex<HashSet<(Uuid, EntryKind, String)>>,
    /// Held by the sweep running in this instance.
    sweeping: tokio::sync::Mutex<()>,
}

/// Marks an idempotency key as being applied until dropped.
struct InFlight<'a> {
    set: &'a Mutex<HashSet<(Uuid, EntryKind, String)>>,
    entry: (Uuid, EntryKind, String),
}

impl Drop for InFlight<'_> {
    fn drop(&mut self) {
        self.set.lock().expect("in-flight lock").remove(&self.entry);
    }
}

/// Microseconds since the Unix epoch, the database's time unit.
fn to_micros(at: OffsetDateTime) -> i64 {
    (at.unix_timestamp_nanos() / 1_000) as i64
}

/// `value` when it is within ±[`MAX_AMOUNT`].
fn bounded(value: Option<i64>) -> Option<i64> {
    value.filter(|v| (-MAX_AMOUNT..=MAX_AMOUNT).contains(v))
}

/// A recharge whose batch would be born expired.
fn past_expiry() -> LedgerError {
    LedgerError::InvalidRecharge("expires_at must be in the future".into())
}

/// What "the same recharge" compares: the points and the expiry instant (to the microsecond
/// the database keeps), whatever offset the caller wrote it with.
fn recharge_fingerprint(request: &RechargeRequest) -> String {
    serde_json::json!({
        "recharge": {"points": request.points, "expires_at_us": to_micros(request.expires_at)}
    })
    .to_string()
}

fn from_micros(micros: i64) -> OffsetDateTime {
    OffsetDateTime::from_unix_timestamp_nanos(i128::from(micros) * 1_000)
        .unwrap_or(OffsetDateTime::UNIX_EPOCH)
}

impl Ledger {
    /// A ledger over a migrated database.
    pub fn new(db: Db, pricing: PriceTable, clock: Arc<dyn Clock>) -> Self {
        Self {
            db,
            pricing,
            clock,
            in_flight: Mutex::new(HashSet::new()),
            sweeping: tokio::sync::Mutex::new(()),
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

    /// The ledger's current time.
    pub fn now(&self) -> OffsetDateTime {
        self.clock.now()
    }

    /// The user's summary, after expiring any batch that is due.
    pub async fn summary(&self, user: Uuid) -> Result<Summary, LedgerError> {
        self.expire_user_if_due(user).await?;
        let row = sqlx::query(
            "SELECT balance, total_recharged, total_consumed, total_expired, last_seq FROM accounts WHERE user_id = $1",
        )
        .bind(user.to_string())
        .fetch_optional(self.db.pool())
        .await?;
        Ok(match row {
            Some(row) => Summary {
                user_id: user,
                balance: row.try_get(0)?,
                total_recharged: row.try_get(1)?,
                total_consumed: row.try_get(2)?,
                total_expired: row.try_get(3)?,
                seq: row.try_get(4)?,
            },
            None => Summary {
                user_id: user,
                ..Summary::default()
            },
        })
    }

    /// Prices one use of `service` and says whether the balance covers it.
    pub async fn cost(
        &self,
        user: Uuid,
        service: &str,
        duration: Option<f64>,
    ) -> Result<CostCheck, LedgerError> {
        let quote = self.pricing.quote(service, duration)?;
        let summary = self.summary(user).await?;
        let balance = summary.balance;
        Ok(CostCheck {
            user_id: user,
            service: service.to_owned(),
            mode: quote.mode,
            required: quote.points,
            balance,
            sufficient: quote.points == 0 || balance >= quote.points,
            seq: summary.seq,
        })
    }

    /// The user's live batches, soonest expiry first.
    pub async fn batches(&self, user: Uuid) -> Result<BatchList, LedgerError> {
        self.expire_user_if_due(user).await?;
        let now = to_micros(self.clock.now());
        let rows = sqlx::query(
            "SELECT id, points, remaining, expires_at, created_at FROM batches \
             WHERE user_id = $1 AND remaining > 0 AND expires_at > $2 \
             ORDER BY expires_at, created_at, id",
        )
        .bind(user.to_string())
        .bind(now)
        .fetch_all(self.db.pool())
        .await?;
        let items = rows
            .iter()
            .map(|row| {
                Ok(Batch {
                    id: row.try_get(0)?,
                    points: row.try_get(1)?,
                    remaining: row.try_get(2)?,
                    expires_at: from_micros(row.try_get(3)?),
                    created_at: from_micros(row.try_get(4)?),
                })
            })
            .collect::<Result<_, sqlx::Error>>()?;
        Ok(BatchList { items })
    }

    /// A page of the user's history, newest first. `before` is a cursor from an earlier page.
    pub async fn transactions(
        &self,
        user: Uuid,
        limit: u32,
        before: Option<&str>,
    ) -> Result<EntryPage, LedgerError> {
        let limit = limit.clamp(1, MAX_PAGE);
        let before = match before {
            None => i64::MAX,
            // Exactly what `next_cursor` hands out: a positive decimal without sign or leading
            // zero, at most 18 digits (always an i64).
            Some(cursor)
                if (1..=18).contains(&cursor.len())
                    && !cursor.starts_with('0')
                    && cursor.bytes().all(|b| b.is_ascii_digit()) =>
            {
                cursor
                    .parse::<i64>()
                    .map_err(|_| LedgerError::InvalidCursor)?
            }
            Some(_) => return Err(LedgerError::InvalidCursor),
        };
        self.expire_user_if_due(user).await?;
        let rows = sqlx::query(
            "SELECT id, kind, points, balance_after, service, created_at, seq, idempotency_key, reference \
             FROM journal \
             WHERE user_id = $1 AND seq < $2 ORDER BY seq DESC LIMIT $3",
        )
        .bind(user.to_string())
        .bind(before)
        .bind(i64::from(limit) + 1)
        .fetch_all(self.db.pool())
        .await?;
        let more = rows.len() > limit as usize;
        let mut items = Vec::with_capacity(rows.len().min(limit as usize));
        let mut last_seq = None;
        for row in rows.iter().take(limit as usize) {
            let kind: String = row.try_get(1)?;
            items.push(Entry {
                id: row.try_get(0)?,
                kind: EntryKind::parse(&kind).ok_or_else(|| {
                    sqlx::Error::Decode(format!("unknown journal kind `{kind}`").into())
                })?,
                points: row.try_get(2)?,
                balance_after: row.try_get(3)?,
                service: row.try_get(4)?,
                created_at: from_micros(row.try_get(5)?),
                idempotency_key: row.try_get(7)?,
                reference: row.try_get(8)?,
            });
            last_seq = Some(row.try_get::<i64, _>(6)?);
        }
        Ok(EntryPage {
            items,
            next_cursor: if more {
                last_seq.map(|seq| seq.to_string())
            } else {
                None
            },
        })
    }

    /// Adds a batch of `points` that expire at `expires_at`. Debt is paid first. No idempotency
    /// key: every call is a new recharge (see [`Self::recharge_once`]).
    pub async fn recharge(
        &self,
        user: Uuid,
        points: i64,
        expires_at: OffsetDateTime,
    ) -> Result<RechargeReceipt, LedgerError> {
        self.apply_recharge(user, &RechargeRequest { points, expires_at }, None)
            .await
    }

    /// Adds a batch, at most once per idempotency key (the key of a retried payment webhook).
    ///
    /// Checks, in order: the points, the key (in flight: 409; used with another request: 422;
    /// used with this request: the first receipt, replayed), the expiry (in the future: a retry
    /// of a recharge already applied gets its replay however late it comes), then the bounds
    /// (nothing written when a total would leave ±(2^53 − 1)).
    pub async fn recharge_once(
        &self,
        user: Uuid,
        request: &RechargeRequest,
        key: &IdempotencyKey,
    ) -> Result<RechargeReceipt, LedgerError> {
        self.apply_recharge(user, request, Some(key)).await
    }

    async fn apply_recharge(
        &self,
        user: Uuid,
        request: &RechargeRequest,
        key: Option<&IdempotencyKey>,
    ) -> Result<RechargeReceipt, LedgerError> {
        let RechargeRequest { points, expires_at } = *request;
        if points <= 0 {
            return Err(LedgerError::InvalidRecharge(
                "points must be 1 or more".into(),
            ));
        }
        if points > MAX_AMOUNT {
            return Err(LedgerError::AmountOutOfRange);
        }
        // Without a key there is nothing to replay: a past expiry is refused before any work.
        // With one, the key is looked up first, so that a retry after the expiry gets its
        // replay (see `recharge_in_transaction`).
        if key.is_none() && expires_at <= self.clock.now() {
            return Err(past_expiry());
        }
        let _in_flight = key
            .map(|key| self.mark_in_flight(user, EntryKind::Recharge, key))
            .transpose()?;
        let fingerprint = key.map(|_| recharge_fingerprint(request));
        retrying(|| self.recharge_in_transaction(user, request, key, fingerprint.as_deref())).await
    }

    /// The transaction of [`Self::apply_recharge`], once the request is valid and its key marked
    /// in flight.
    async fn recharge_in_transaction(
        &self,
        user: Uuid,
        request: &RechargeRequest,
        key: Option<&IdempotencyKey>,
        fingerprint: Option<&str>,
    ) -> Result<RechargeReceipt, LedgerError> {
        let RechargeRequest { points, expires_at } = *request;
        let now = to_micros(self.clock.now());
        let mut tx = self.db.begin_write(user).await?;
        let Locked {
            mut account,
            mut live,
            earlier,
        } = self
            .lock_user(&mut tx, user, key, EntryKind::Recharge)
            .await?;
        if let (Some(earlier), Some(fingerprint)) = (earlier, fingerprint) {
            tx.rollback().await?;
            let earlier = earlier.matching(EntryKind::Recharge, fingerprint)?;
            return Ok(RechargeReceipt {
                transaction_id: earlier.transaction_id,
                batch_id: earlier.batch_id.unwrap_or_default(),
                balance: earlier.balance_after,
                replayed: true,
                seq: earlier.seq,
            });
        }
        if to_micros(expires_at) <= now {
            tx.rollback().await?;
            return Err(past_expiry());
        }
        self.expire_due(&mut tx, user, &mut account, &mut live, now)
            .await?;

        let old_balance = account.summary.balance;
        let (Some(balance), Some(total_recharged)) = (
            bounded(old_balance.checked_add(points)),
            bounded(account.summary.total_recharged.checked_add(points)),
        ) else {
            tx.rollback().await?;
            return Err(LedgerError::AmountOutOfRange);
        };
        account.summary.balance = balance;
        account.summary.total_recharged = total_recharged;
        let remaining = balance.clamp(0, points);
        let batch_id = Uuid::new_v4().to_string();
        sqlx::query(
            "INSERT INTO batches (id, user_id, points, remaining, expires_at, created_at) \
             VALUES ($1, $2, $3, $4, $5, $6)",
        )
        .bind(&batch_id)
        .bind(user.to_string())
        .bind(points)
        .bind(remaining)
        .bind(to_micros(expires_at))
        .bind(now)
        .execute(&mut *tx)
        .await?;
        let transaction_id = self
            .append_entry(
                &mut tx,
                user,
                &mut account,
                now,
                NewEntry {
                    kind: EntryKind::Recharge,
                    points,
                    service: None,
                    batch_id: Some(&batch_id),
                    idempotency_key: key.map(IdempotencyKey::as_str),
                    request_fingerprint: fingerprint,
                    reference: None,
                },
            )
            .await?;
        self.save_account(&mut tx, user, &account).await?;
        tx.commit().await?;
        Ok(RechargeReceipt {
            transaction_id,
            batch_id,
            balance: account.summary.balance,
            replayed: false,
            seq: account.summary.seq,
        })
    }

    /// Charges one use of a service, at most once per idempotency key.
    ///
    /// Checks, in order: the service and duration, the reference's length, the key (in flight: 409; used with another
    /// request: 422; used with this request: the first receipt, replayed), then the balance
    /// (short and no debt allowed: nothing written). A free service writes nothing.
    pub async fn consume(
        &self,
        user: Uuid,
        request: &ConsumeRequest,
        key: &IdempotencyKey,
    ) -> Result<Receipt, LedgerError> {
        let quote = self.pricing.quote(&request.service, request.duration)?;
        if let Some(reference) = &request.reference {
            // Counting stops at the first character past the limit: bounded work whatever the
            // length.
            if reference.chars().nth(MAX_REFERENCE_CHARS).is_some() {
                return Err(LedgerError::ReferenceTooLong);
            }
        }
        if quote.points > MAX_AMOUNT {
            return Err(LedgerError::AmountOutOfRange);
        }
        if quote.points == 0 {
            // Nothing is written, but a key already spent on another request is still refused.
            if self.key_was_used(user, key).await? {
                return Err(LedgerError::IdempotencyMismatch);
            }
            let summary = self.summary(user).await?;
            return Ok(Receipt {
                user_id: user,
                transaction_id: None,
                service: request.service.clone(),
                points: 0,
                balance: summary.balance,
                replayed: false,
                seq: summary.seq,
            });
        }
        let _in_flight = self.mark_in_flight(user, EntryKind::Consume, key)?;
        let fingerprint = serde_json::to_string(request).expect("a consume request serialises");
        retrying(|| async {
            if self.db.backend() == Backend::Postgres {
                self.consume_in_one_statement(user, request, key, quote.points, &fingerprint)
                    .await
            } else {
                self.consume_in_transaction(user, request, key, quote.points, &fingerprint)
                    .await
            }
        })
        .await
    }

    /// The transaction of [`Self::consume`] after the pricing and in-flight checks (SQLite).
    async fn consume_in_transaction(
        &self,
        user: Uuid,
        request: &ConsumeRequest,
        key: &IdempotencyKey,
        required: i64,
        fingerprint: &str,
    ) -> Result<Receipt, LedgerError> {
        let mut tx = self.db.begin_write(user).await?;
        let Locked {
            mut account,
            mut live,
            earlier,
        } = self
            .lock_user(&mut tx, user, Some(key), EntryKind::Consume)
            .await?;
        if let Some(earlier) = earlier {
            tx.rollback().await?;
            let earlier = earlier.matching(EntryKind::Consume, fingerprint)?;
            return Ok(Receipt {
                user_id: user,
                transaction_id: Some(earlier.transaction_id),
                service: earlier.service.unwrap_or_default(),
                points: -earlier.points,
                balance: earlier.balance_after,
                replayed: true,
                seq: earlier.seq,
            });
        }

        let now = to_micros(self.clock.now());
        self.expire_due(&mut tx, user, &mut account, &mut live, now)
            .await?;
        if !request.allow_debt && account.summary.balance < required {
            tx.rollback().await?;
            return Err(LedgerError::InsufficientPoints {
                service: request.service.clone(),
                required,
                balance: account.summary.balance,
            });
        }

        let (Some(balance), Some(total_consumed)) = (
            bounded(account.summary.balance.checked_sub(required)),
            bounded(account.summary.total_consumed.checked_add(required)),
        ) else {
            tx.rollback().await?;
            return Err(LedgerError::AmountOutOfRange);
        };

        // Burn the soonest-expiring batches first; with debt allowed, whatever is left over
        // takes the balance below zero and every batch ends empty.
        let mut left = required;
        for batch in &live {
            if left == 0 {
                break;
            }
            let burn = batch.remaining.min(left);
            left -= burn;
            sqlx::query("UPDATE batches SET remaining = $1 WHERE id = $2")
                .bind(batch.remaining - burn)
                .bind(&batch.id)
                .execute(&mut *tx)
                .await?;
        }
        account.summary.balance = balance;
        account.summary.total_consumed = total_consumed;
        let transaction_id = self
            .append_entry(
                &mut tx,
                user,
                &mut account,
                now,
                NewEntry {
                    kind: EntryKind::Consume,
                    points: -required,
                    service: Some(&request.service),
                    batch_id: None,
                    idempotency_key: Some(key.as_str()),
                    request_fingerprint: Some(fingerprint),
                    reference: request.reference.as_deref(),
                },
            )
            .await?;
        self.save_account(&mut tx, user, &account).await?;
        let receipt = Receipt {
            user_id: user,
            transaction_id: Some(transaction_id.clone()),
            service: request.service.clone(),
            points: required,
            balance: account.summary.balance,
            replayed: false,
            seq: account.summary.seq,
        };
        tx.commit().await?;
        Ok(receipt)
    }

    /// The whole of [`Self::consume`] after the pricing and in-flight checks, on PostgreSQL, in
    /// one round trip: the `points_consume` function (`migrations-postgres/`) follows the same
    /// rules as the code above.
    async fn consume_in_one_statement(
        &self,
        user: Uuid,
        request: &ConsumeRequest,
        key: &IdempotencyKey,
        required: i64,
        fingerprint: &str,
    ) -> Result<Receipt, LedgerError> {
        let Some(statements) = self.db.statements() else {
            return Err(sqlx::Error::Configuration("no PostgreSQL statement pool".into()).into());
        };
        let query = sqlx::query::<sqlx::Postgres>(
            "SELECT outcome, transaction_id, service, points, balance, seq \
             FROM points_consume($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)",
        )
        .bind(user.to_string())
        .bind(key.as_str())
        .bind(fingerprint)
        .bind(&request.service)
        .bind(required)
        .bind(request.allow_debt)
        .bind(request.reference.as_deref())
        .bind(to_micros(self.clock.now()))
        .bind(Uuid::new_v4().to_string())
        .bind(MAX_AMOUNT);
        let row = statements.fetch_one(query).await?;
        let outcome: String = row.try_get(0)?;
        let receipt = |replayed: bool| -> Result<Receipt, LedgerError> {
            Ok(Receipt {
                user_id: user,
                transaction_id: row.try_get(1)?,
                service: row.try_get::<Option<String>, _>(2)?.unwrap_or_default(),
                points: row.try_get(3)?,
                balance: row.try_get(4)?,
                replayed,
                seq: row.try_get(5)?,
            })
        };
        match outcome.as_str() {
            "charged" => receipt(false),
            "replayed" => receipt(true),
            "mismatch" => Err(LedgerError::IdempotencyMismatch),
            "out_of_range" => Err(LedgerError::AmountOutOfRange),
            "insufficient" => Err(LedgerError::InsufficientPoints {
                service: request.service.clone(),
                required,
                balance: row.try_get(4)?,
            }),
            other => {
                Err(sqlx::Error::Decode(format!("points_consume answered `{other}`").into()).into())
            }
        }
    }

    /// Expires every due batch of every user now (the sweep). Each user is handled in a
    /// transaction of its own, and a user whose expiry fails is logged, counted in
    /// `failed_users` and passed over: the others are swept all the same.
    ///
    /// One sweep at a time: within this instance (a mutex), and across instances on one
    /// PostgreSQL database (a session advisory lock, [`SWEEP_LOCK`]); a run that finds another
    /// running does nothing and answers `skipped: true`. The due users are read in pages of
    /// [`SWEEP_PAGE`] in user order from a cursor, so a run reads each due batch once and holds
    /// one page in memory.
    pub async fn expire_all(&self) -> Result<ExpiryReport, LedgerError> {
        let Ok(_one_here) = self.sweeping.try_lock() else {
            return Ok(ExpiryReport {
                skipped: true,
                ..ExpiryReport::default()
            });
        };
        let lock = match self.db.backend() {
            Backend::Postgres => {
                // A connection of its own: the session holds the lock while the pool's
                // connections expire users, and closing it releases the lock whatever happens.
                let mut conn = self.db.dedicated_connection().await?;
                let locked: bool = sqlx::query_scalar("SELECT pg_try_advisory_lock($1)")
                    .bind(SWEEP_LOCK)
                    .fetch_one(&mut conn)
                    .await?;
                if !locked {
                    let _ = sqlx::Connection::close(conn).await;
                    return Ok(ExpiryReport {
                        skipped: true,
                        ..ExpiryReport::default()
                    });
                }
                Some(conn)
            }
            Backend::Sqlite => None,
        };
        let report = self.sweep_pass().await;
        if let Some(conn) = lock {
            let _ = sqlx::Connection::close(conn).await;
        }
        report
    }

    /// One pass of [`Self::expire_all`], once this instance holds the sweep.
    async fn sweep_pass(&self) -> Result<ExpiryReport, LedgerError> {
        let mut report = ExpiryReport::default();
        let now = to_micros(self.clock.now());
        // User ids are UUID text: every one sorts after the empty string.
        let mut after = String::new();
        loop {
            let users: Vec<String> = sqlx::query_scalar(
                "SELECT DISTINCT user_id FROM batches \
                 WHERE remaining > 0 AND expires_at <= $1 AND user_id > $2 \
                 ORDER BY user_id LIMIT $3",
            )
            .bind(now)
            .bind(&after)
            .bind(SWEEP_PAGE)
            .fetch_all(self.db.pool())
            .await?;
            let Some(last) = users.last() else {
                return Ok(report);
            };
            after = last.clone();
            let full_page = users.len() as i64 == SWEEP_PAGE;
            for user in users {
                let expired = match Uuid::parse_str(&user) {
                    Ok(id) => self.expire_user(id).await,
                    Err(e) => Err(sqlx::Error::Decode(Box::new(e)).into()),
                };
                match expired {
                    Ok((0, _)) => {}
                    Ok((batches, points)) => {
                        report.users += 1;
                        report.batches += batches;
                        report.points += points;
                    }
                    Err(error) => {
                        tracing::warn!(%error, user, "expiry of one user failed; the sweep goes on");
                        report.failed_users += 1;
                    }
                }
            }
            if !full_page {
                return Ok(report);
            }
        }
    }

    /// Expires the user's due batches, in a write transaction of their own.
    async fn expire_user(&self, user: Uuid) -> Result<(u64, i64), LedgerError> {
        retrying(|| self.expire_user_once(user)).await
    }

    /// One attempt of [`Self::expire_user`].
    async fn expire_user_once(&self, user: Uuid) -> Result<(u64, i64), LedgerError> {
        let now = to_micros(self.clock.now());
        let mut tx = self.db.begin_write(user).await?;
        let Locked {
            mut account,
            mut live,
            ..
        } = self
            .lock_user(&mut tx, user, None, EntryKind::Expire)
            .await?;
        let expired = self
            .expire_due(&mut tx, user, &mut account, &mut live, now)
            .await?;
        if expired.0 > 0 {
            self.save_account(&mut tx, user, &account).await?;
        }
        tx.commit().await?;
        Ok(expired)
    }

    /// Runs [`Self::expire_user`] when the user has a batch past its expiry, so that reads never
    /// show expired points even between sweeps.
    async fn expire_user_if_due(&self, user: Uuid) -> Result<(), LedgerError> {
        let now = to_micros(self.clock.now());
        let due: Option<String> = sqlx::query_scalar(
            "SELECT id FROM batches WHERE user_id = $1 AND remaining > 0 AND expires_at <= $2 LIMIT 1",
        )
        .bind(user.to_string())
        .bind(now)
        .fetch_optional(self.db.pool())
        .await?;
        if due.is_some() {
            self.expire_user(user).await?;
        }
        Ok(())
    }

    /// Whether a consume of `user` was journalled under `key`.
    async fn key_was_used(&self, user: Uuid, key: &IdempotencyKey) -> Result<bool, LedgerError> {
        let used: Option<String> = sqlx::query_scalar(
            "SELECT id FROM journal WHERE user_id = $1 AND kind = 'consume' AND idempotency_key = $2",
        )
        .bind(user.to_string())
        .bind(key.as_str())
        .fetch_optional(self.db.pool())
        .await?;
        Ok(used.is_some())
    }

    /// Marks `key` of `user` as being applied by a write of `kind` (keys of each kind are
    /// separate), or answers that it already is.
    fn mark_in_flight(
        &self,
        user: Uuid,
        kind: EntryKind,
        key: &IdempotencyKey,
    ) -> Result<InFlight<'_>, LedgerError> {
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
            set: &self.in_flight,
            entry,
        })
    }

    /// Reads, under the user's row lock, in one query, their summary row, their batches with
    /// points left (soonest expiry first) and the entry of `kind` journalled under `key`, if
    /// any. Creates the summary row first for a new user.
    async fn lock_user(
        &self,
        tx: &mut Tx,
        user: Uuid,
        key: Option<&IdempotencyKey>,
        kind: EntryKind,
    ) -> Result<Locked, LedgerError> {
        let user_text = user.to_string();
        for attempt in 0..3 {
            // The first attempt runs under the lock taken by `begin_write`; later ones follow
            // the creation of the user's row, and lock it first.
            let exists = match self.db.row_lock_sql().filter(|_| attempt > 0) {
                Some(lock) => sqlx::query(lock)
                    .bind(&user_text)
                    .fetch_optional(&mut **tx)
                    .await?
                    .is_some(),
                None => true,
            };
            let rows = if exists {
                sqlx::query(READ_LOCKED_USER_SQL)
                    .bind(&user_text)
                    .bind(key.map(IdempotencyKey::as_str))
                    .bind(kind.as_str())
                    .fetch_all(&mut **tx)
                    .await?
            } else {
                Vec::new()
            };
            let Some(first) = rows.first() else {
                sqlx::query(
                    "INSERT INTO accounts (user_id) VALUES ($1) ON CONFLICT (user_id) DO NOTHING",
                )
                .bind(&user_text)
                .execute(&mut **tx)
                .await?;
                continue;
            };
            let account = Account {
                summary: Summary {
                    user_id: user,
                    balance: first.try_get(0)?,
                    total_recharged: first.try_get(1)?,
                    total_consumed: first.try_get(2)?,
                    total_expired: first.try_get(3)?,
                    seq: first.try_get(4)?,
                },
            };
            let earlier = match first.try_get::<Option<String>, _>(5)? {
                None => None,
                Some(transaction_id) => Some(Earlier {
                    transaction_id,
                    request_fingerprint: first.try_get(6)?,
                    service: first.try_get(7)?,
                    points: first.try_get(8)?,
                    balance_after: first.try_get(9)?,
                    seq: first.try_get(10)?,
                    kind: first.try_get(11)?,
                    batch_id: first.try_get(12)?,
                }),
            };
            let mut live = Vec::with_capacity(rows.len());
            for row in &rows {
                if let Some(id) = row.try_get::<Option<String>, _>(13)? {
                    live.push(LiveBatch {
                        id,
                        remaining: row.try_get(14)?,
                        expires_at: row.try_get(15)?,
                    });
                }
            }
            return Ok(Locked {
                account,
                live,
                earlier,
            });
        }
        Err(sqlx::Error::RowNotFound.into())
    }

    /// Expires the batches of `live` that are due at `now`: their remaining points leave the
    /// balance and join `total_expired`, one journal entry each. Leaves only the unexpired ones
    /// in `live`. Returns the batches and points expired.
    async fn expire_due(
        &self,
        tx: &mut Tx,
        user: Uuid,
        account: &mut Account,
        live: &mut Vec<LiveBatch>,
        now: i64,
    ) -> Result<(u64, i64), LedgerError> {
        let (due, keep): (Vec<_>, Vec<_>) = live.drain(..).partition(|b| b.expires_at <= now);
        *live = keep;
        let mut points = 0;
        for batch in &due {
            sqlx::query("UPDATE batches SET remaining = 0 WHERE id = $1")
                .bind(&batch.id)
                .execute(&mut **tx)
                .await?;
            // A batch's remaining points are part of a non-negative balance, and expired points
            // were recharged first: neither total can leave the range.
            account.summary.balance = bounded(account.summary.balance.checked_sub(batch.remaining))
                .ok_or(LedgerError::AmountOutOfRange)?;
            account.summary.total_expired =
                bounded(account.summary.total_expired.checked_add(batch.remaining))
                    .ok_or(LedgerError::AmountOutOfRange)?;
            points += batch.remaining;
            self.append_entry(
                tx,
                user,
                account,
                now,
                NewEntry {
                    kind: EntryKind::Expire,
                    points: -batch.remaining,
                    service: None,
                    batch_id: Some(&batch.id),
                    idempotency_key: None,
                    request_fingerprint: None,
                    reference: None,
                },
            )
            .await?;
        }
        Ok((due.len() as u64, points))
    }

    /// Appends a journal entry with the account's balance as `balance_after`.
    async fn append_entry(
        &self,
        tx: &mut Tx,
        user: Uuid,
        account: &mut Account,
        now: i64,
        entry: NewEntry<'_>,
    ) -> Result<String, LedgerError> {
        account.summary.seq += 1;
        let id = Uuid::new_v4().to_string();
        sqlx::query(
            "INSERT INTO journal (id, user_id, seq, kind, points, balance_after, service, batch_id, \
             idempotency_key, request_fingerprint, reference, created_at) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12)",
        )
        .bind(&id)
        .bind(user.to_string())
        .bind(account.summary.seq)
        .bind(entry.kind.as_str())
        .bind(entry.points)
        .bind(account.summary.balance)
        .bind(entry.service)
        .bind(entry.batch_id)
        .bind(entry.idempotency_key)
        .bind(entry.request_fingerprint)
        .bind(entry.reference)
        .bind(now)
        .execute(&mut **tx)
        .await?;
        Ok(id)
    }

    async fn save_account(
        &self,
        tx: &mut Tx,
        user: Uuid,
        account: &Account,
    ) -> Result<(), LedgerError> {
        let s = account.summary;
        sqlx::query(
            "UPDATE accounts SET balance = $1, total_recharged = $2, total_consumed = $3, \
             total_expired = $4, last_seq = $5 WHERE user_id = $6",
        )
        .bind(s.balance)
        .bind(s.total_recharged)
        .bind(s.total_consumed)
        .bind(s.total_expired)
        .bind(s.seq)
        .bind(user.to_string())
        .execute(&mut **tx)
        .await?;
        Ok(())
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
