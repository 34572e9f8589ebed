//! The steps every write transaction shares: lock the user's summary row and read what the write
//! needs under it, append a journal entry, save the summary row.
//!
//! Invariants: the reads of [`lock_user`] come after the row lock, in statements of
//! their own, so they see what the previous holder of the lock committed; each journal entry
//! takes the next `seq` and the account's balance as `balance_after`; the summary row is saved
//! once per transaction, with the totals the entries add up to.

use sqlx::{Any, Row};
use time::OffsetDateTime;
use uuid::Uuid;

use super::{EntryKind, IdempotencyKey, LedgerError, Summary};
use crate::db::Db;

pub(super) type Tx = sqlx::Transaction<'static, Any>;

/// The summary row as held in a write transaction.
#[derive(Debug, Clone, Copy)]
pub(super) struct Account {
    /// The totals, with `seq` the newest journal entry's sequence number.
    pub(super) summary: Summary,
}

/// A batch with points left, as held in a write transaction.
#[derive(Debug, Clone)]
pub(super) struct LiveBatch {
    pub(super) id: String,
    pub(super) remaining: i64,
    pub(super) expires_at: i64,
}

/// The journal entry already written under the request's idempotency key.
#[derive(Debug)]
pub(super) struct Earlier {
    pub(super) transaction_id: String,
    pub(super) kind: String,
    pub(super) request_fingerprint: Option<String>,
    pub(super) service: Option<String>,
    pub(super) points: i64,
    pub(super) balance_after: i64,
    pub(super) seq: i64,
    pub(super) batch_id: Option<String>,
}

impl Earlier {
    /// The earlier answer when it was a request of this kind with this fingerprint, else a
    /// conflict.
    pub(super) fn matching(self, kind: EntryKind, fingerprint: &str) -> Result<Self, LedgerError> {
        if self.kind == kind.as_str() && self.request_fingerprint.as_deref() == Some(fingerprint) {
            Ok(self)
        } else {
            Err(LedgerError::IdempotencyMismatch)
        }
    }
}

/// What a write transaction holds about a user.
#[derive(Debug)]
pub(super) struct Locked {
    pub(super) account: Account,
    pub(super) live: Vec<LiveBatch>,
    pub(super) earlier: Option<Earlier>,
}

/// Reads a user's summary row, live batches and the journal entry of kind `$3` written under a
/// key (`$2`, may be null), in one round trip, once the user's row lock is held. Each kind of
/// write (consume, recharge) has its own keys: a consume under a payment's id does not stand in
/// the way of that payment's recharge.
pub(super) const READ_LOCKED_USER_SQL: &str =
    "SELECT a.balance, a.total_recharged, a.total_consumed, a.total_expired, a.last_seq, \
     j.id, j.request_fingerprint, j.service, j.points, j.balance_after, j.seq, j.kind, j.batch_id, \
     b.id, b.remaining, b.expires_at \
     FROM accounts a \
     LEFT JOIN journal j ON j.user_id = a.user_id AND j.kind = $3 AND j.idempotency_key = $2 \
     LEFT JOIN batches b ON b.user_id = a.user_id AND b.emptied_at IS NULL \
     WHERE a.user_id = $1 \
     ORDER BY b.expires_at, b.created_at, b.id";

/// A journal entry to append.
pub(super) struct NewEntry<'a> {
    pub(super) kind: EntryKind,
    pub(super) points: i64,
    pub(super) service: Option<&'a str>,
    pub(super) batch_id: Option<&'a str>,
    pub(super) idempotency_key: Option<&'a str>,
    pub(super) request_fingerprint: Option<&'a str>,
    pub(super) reference: Option<&'a str>,
    /// The offline allowance a consume settles under.
    pub(super) allowance_id: Option<&'a str>,
}

/// Microseconds since the Unix epoch, the database's time unit.
pub(super) fn to_micros(at: OffsetDateTime) -> i64 {
    (at.unix_timestamp_nanos() / 1_000) as i64
}

/// The instant of `micros` microseconds since the Unix epoch.
pub(super) fn from_micros(micros: i64) -> OffsetDateTime {
    OffsetDateTime::from_unix_timestamp_nanos(i128::from(micros) * 1_000)
        .unwrap_or(OffsetDateTime::UNIX_EPOCH)
}

/// Reads, under the user's row lock, in one query, their summary row, their batches with
/// points left (soonest expiry first) and the entry of `kind` journalled under `key`, if
/// any. Creates the summary row first for a new user.
pub(super) async fn lock_user(
    tx: &mut Tx,
    db: &Db,
    user: Uuid,
    key: Option<&IdempotencyKey>,
    kind: EntryKind,
) -> Result<Locked, LedgerError> {
    let user_text = user.to_string();
    for attempt in 0..3 {
        // The first attempt runs under the lock taken by `begin_write`; later ones follow
        // the creation of the user's row, and lock it first.
        let exists = match db.row_lock_sql().filter(|_| attempt > 0) {
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

/// Appends a journal entry with the account's balance as `balance_after`.
pub(super) async fn append_entry(
    tx: &mut Tx,
    user: Uuid,
    account: &mut Account,
    now: i64,
    entry: NewEntry<'_>,
) -> Result<String, LedgerError> {
    account.summary.seq += 1;
    // Time-ordered (UUIDv7): new entries go to the end of the primary key index.
    let id = Uuid::now_v7().to_string();
    sqlx::query(
        "INSERT INTO journal (id, user_id, seq, kind, points, balance_after, service, batch_id, \
         idempotency_key, request_fingerprint, reference, allowance_id, created_at) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13)",
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
    .bind(entry.allowance_id)
    .bind(now)
    .execute(&mut **tx)
    .await?;
    Ok(id)
}

pub(super) async fn save_account(
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
