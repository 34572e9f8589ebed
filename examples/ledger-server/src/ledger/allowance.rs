//! Offline allowances: points the ledger promises to one device of a user for a bounded time,
//! so that work may go on while the ledger cannot be reached, and the consumes that settle that
//! work afterwards. The signature is [`crate::allowance`]'s; this module holds the money rules.
//!
//! Invariants:
//! - Issuing writes no journal entry and leaves the balance as it is; it runs in a write
//!   transaction holding the user's summary row lock (due batches expire first), supersedes the
//!   live allowance of the same (user, device), if any, and inserts the new one: at most one
//!   live allowance per (user, device) (a unique index).
//! - An allowance covers `points = clamp(min(balance, cap), 0, 2^53 − 1)`; `granted` keeps that
//!   figure for ever. Superseding lowers `points` to `spent`: what was not spent is released.
//! - For every allowance, `spent` is the sum of the consumes journaled under it, and
//!   `spent <= points <= granted` (a `CHECK` of the schema): the ledger risks at most each
//!   allowance's points.
//! - A consume naming an allowance is checked after its idempotency key (a replay is a replay
//!   whatever became of the allowance), then: the user's allowance, not past `not_after` +
//!   grace, not more than what is left of it; then it is charged with debt allowed.

use sqlx::Row;
use uuid::Uuid;

use super::expire::expire_due;
use super::write::{lock_user, save_account, to_micros, Locked, Tx};
use super::{retrying, EntryKind, IdempotencyKey, Ledger, LedgerError};
use crate::amount::MAX_AMOUNT;
use crate::db::Db;

/// The longest `device_id`.
pub const MAX_DEVICE_ID_LEN: usize = 128;
/// The default most points of one allowance.
pub const DEFAULT_CAP: i64 = 100;
/// The default seconds an allowance covers new work (72 hours).
pub const DEFAULT_WINDOW_SECONDS: i64 = 259_200;
/// The default seconds after `not_after` a consume under an allowance is still accepted (30
/// days): work done in the window may be settled late.
pub const DEFAULT_GRACE_SECONDS: i64 = 2_592_000;
/// The longest window or grace period, in seconds (ten years).
pub const MAX_PERIOD_SECONDS: i64 = 315_360_000;

/// Whether `id` is a device id: 1 to 128 characters of `[A-Za-z0-9._:-]`.
pub fn valid_device_id(id: &str) -> bool {
    (1..=MAX_DEVICE_ID_LEN).contains(&id.len())
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"._:-".contains(&b))
}

/// How much an allowance covers and for how long.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AllowancePolicy {
    /// The most points of one allowance (0 to 2^53 − 1).
    pub cap: i64,
    /// Seconds from issue to `not_after` (1 to [`MAX_PERIOD_SECONDS`]).
    pub window_seconds: i64,
    /// Seconds after `not_after` a consume under it is still accepted (0 to
    /// [`MAX_PERIOD_SECONDS`]).
    pub grace_seconds: i64,
}

impl Default for AllowancePolicy {
    fn default() -> Self {
        Self {
            cap: DEFAULT_CAP,
            window_seconds: DEFAULT_WINDOW_SECONDS,
            grace_seconds: DEFAULT_GRACE_SECONDS,
        }
    }
}

impl AllowancePolicy {
    /// Checks the bounds of each setting.
    pub fn check(&self) -> Result<(), String> {
        if !(0..=MAX_AMOUNT).contains(&self.cap) {
            return Err("the allowance cap must be 0 to 9007199254740991 points".into());
        }
        if !(1..=MAX_PERIOD_SECONDS).contains(&self.window_seconds) {
            return Err(format!(
                "the allowance window must be 1 to {MAX_PERIOD_SECONDS} seconds"
            ));
        }
        if !(0..=MAX_PERIOD_SECONDS).contains(&self.grace_seconds) {
            return Err(format!(
                "the allowance grace period must be 0 to {MAX_PERIOD_SECONDS} seconds"
            ));
        }
        Ok(())
    }
}

/// An allowance as issued, before it is signed: the fields of the signed message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AllowanceGrant {
    /// Its id.
    pub allowance_id: Uuid,
    /// The account it covers.
    pub user_id: Uuid,
    /// The device it covers.
    pub device_id: String,
    /// Points it covers at most.
    pub points: i64,
    /// When it was issued (Unix seconds).
    pub issued_at: i64,
    /// The last second it covers new work (Unix seconds).
    pub not_after: i64,
    /// The ledger's clock when it was issued (Unix seconds).
    pub server_time: i64,
    /// The key it is signed with.
    pub key_id: String,
}

/// The allowance a consume settles under, and how long past its `not_after` it is honoured.
#[derive(Debug, Clone, Copy)]
pub(super) struct Under {
    pub(super) allowance_id: Uuid,
    pub(super) grace_seconds: i64,
}

impl Ledger {
    /// Issues a new allowance to `device_id` of `user`, to be signed with `key_id`; supersedes
    /// the live one of that device, releasing its unspent points. Writes no journal entry.
    pub async fn issue_allowance(
        &self,
        user: Uuid,
        device_id: &str,
        key_id: &str,
        idempotency_key: Option<&IdempotencyKey>,
    ) -> Result<AllowanceGrant, LedgerError> {
        if !valid_device_id(device_id) {
            return Err(LedgerError::InvalidDeviceId);
        }
        retrying(|| self.issue_in_transaction(user, device_id, key_id, idempotency_key)).await
    }

    async fn issue_in_transaction(
        &self,
        user: Uuid,
        device_id: &str,
        key_id: &str,
        idempotency_key: Option<&IdempotencyKey>,
    ) -> Result<AllowanceGrant, LedgerError> {
        let at = self.clock.now();
        let (now, seconds) = (to_micros(at), at.unix_timestamp());
        let mut tx = self.db.begin_write(user).await?;
        let Locked {
            mut account,
            mut live,
            ..
        } = lock_user(&mut tx, &self.db, user, None, EntryKind::Consume).await?;
        if let Some(key) = idempotency_key {
            let issued: Option<(String, String, i64, i64, i64, i64, String)> = sqlx::query_as(
                "SELECT allowance_id, device_id, granted, issued_at, not_after, server_time, \
                 key_id FROM allowances WHERE user_id = $1 AND idempotency_key = $2",
            )
            .bind(user.to_string())
            .bind(key.as_str())
            .fetch_optional(&mut *tx)
            .await?;
            if let Some((id, device, points, issued_at, not_after, server_time, key_id)) = issued {
                if device != device_id {
                    return Err(LedgerError::IdempotencyMismatch);
                }
                return Ok(AllowanceGrant {
                    allowance_id: Uuid::parse_str(&id).map_err(|_| {
                        LedgerError::InvalidRecharge("a stored allowance id is not a UUID".into())
                    })?,
                    user_id: user,
                    device_id: device,
                    points,
                    issued_at,
                    not_after,
                    server_time,
                    key_id,
                });
            }
        }
        let (expired, _) = expire_due(&mut tx, user, &mut account, &mut live, now).await?;
        if expired > 0 {
            save_account(&mut tx, user, &account).await?;
        }
        sqlx::query(
            "UPDATE allowances SET points = spent, superseded_at = $1 \
             WHERE user_id = $2 AND device_id = $3 AND superseded_at IS NULL",
        )
        .bind(seconds)
        .bind(user.to_string())
        .bind(device_id)
        .execute(&mut *tx)
        .await?;
        let grant = AllowanceGrant {
            allowance_id: Uuid::new_v4(),
            user_id: user,
            device_id: device_id.to_owned(),
            points: account
                .summary
                .balance
                .min(self.allowance.cap)
                .clamp(0, MAX_AMOUNT),
            issued_at: seconds,
            not_after: seconds + self.allowance.window_seconds,
            server_time: seconds,
            key_id: key_id.to_owned(),
        };
        sqlx::query(
            "INSERT INTO allowances (allowance_id, user_id, device_id, granted, points, spent, \
             issued_at, not_after, server_time, key_id, idempotency_key) \
             VALUES ($1, $2, $3, $4, $5, 0, $6, $7, $8, $9, $10)",
        )
        .bind(grant.allowance_id.to_string())
        .bind(user.to_string())
        .bind(&grant.device_id)
        .bind(grant.points)
        .bind(grant.points)
        .bind(grant.issued_at)
        .bind(grant.not_after)
        .bind(grant.server_time)
        .bind(&grant.key_id)
        .bind(idempotency_key.map(IdempotencyKey::as_str))
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        if expired > 0 {
            self.committed(user, account.summary.seq);
        }
        Ok(grant)
    }
}

/// Reads the allowance a consume of `required` points names, under the user's row lock (and,
/// on PostgreSQL, takes the allowance's row lock), and says whether it covers the charge at
/// `now` (microseconds): the user's, not past `not_after` + grace, `required` within what is
/// left. Writes nothing.
pub(super) async fn check_under(
    tx: &mut Tx,
    db: &Db,
    user: Uuid,
    under: &Under,
    now: i64,
    required: i64,
) -> Result<Result<(), LedgerError>, LedgerError> {
    let sql = format!(
        "SELECT points, spent, not_after FROM allowances \
         WHERE allowance_id = $1 AND user_id = $2{}",
        db.row_lock_clause()
    );
    let Some(row) = sqlx::query(&sql)
        .bind(under.allowance_id.to_string())
        .bind(user.to_string())
        .fetch_optional(&mut **tx)
        .await?
    else {
        return Ok(Err(LedgerError::AllowanceNotFound));
    };
    let (points, spent, not_after): (i64, i64, i64) =
        (row.try_get(0)?, row.try_get(1)?, row.try_get(2)?);
    if now.div_euclid(1_000_000) > not_after.saturating_add(under.grace_seconds) {
        return Ok(Err(LedgerError::AllowanceExpired));
    }
    let left = points - spent;
    if required > left {
        return Ok(Err(LedgerError::AllowanceExhausted { required, left }));
    }
    Ok(Ok(()))
}

/// Adds `required` to what was spent under the allowance (in the transaction of the charge's
/// journal entry).
pub(super) async fn spend(tx: &mut Tx, under: &Under, required: i64) -> Result<(), LedgerError> {
    sqlx::query("UPDATE allowances SET spent = spent + $1 WHERE allowance_id = $2")
        .bind(required)
        .bind(under.allowance_id.to_string())
        .execute(&mut **tx)
        .await?;
    Ok(())
}
