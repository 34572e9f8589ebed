//! Recharge: a batch of points with its own expiry, at most once per idempotency key.
//!
//! Invariants: the points are 1 or more and the totals stay within ±(2^53 − 1) (else nothing is
//! written); debt is paid first (the batch keeps only what is left above zero); a retried
//! recharge is answered its first receipt however late it comes (the key is looked up before the
//! expiry is checked); a recharge never shares keys with a consume.

use time::OffsetDateTime;
use uuid::Uuid;

use super::expire::expire_due;
use super::write::{append_entry, lock_user, save_account, to_micros, Locked, NewEntry};
use super::{
    retrying, EntryKind, IdempotencyKey, Ledger, LedgerError, RechargeReceipt, RechargeRequest,
};
use crate::amount::{bounded, MAX_AMOUNT};

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

impl Ledger {
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
        } = lock_user(&mut tx, &self.db, user, key, EntryKind::Recharge).await?;
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
        expire_due(&mut tx, user, &mut account, &mut live, now).await?;

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
        // Time-ordered (UUIDv7, monotonic in this process): batches of one user with the same
        // expiry and the same creation instant burn in recharge order.
        let batch_id = Uuid::now_v7().to_string();
        sqlx::query(
            "INSERT INTO batches (id, user_id, points, remaining, expires_at, created_at, \
             emptied_at) VALUES ($1, $2, $3, $4, $5, $6, $7)",
        )
        .bind(&batch_id)
        .bind(user.to_string())
        .bind(points)
        .bind(remaining)
        .bind(to_micros(expires_at))
        .bind(now)
        // A batch that only paid a debt is empty from the start.
        .bind((remaining == 0).then_some(now))
        .execute(&mut *tx)
        .await?;
        let transaction_id = append_entry(
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
                allowance_id: None,
            },
        )
        .await?;
        save_account(&mut tx, user, &account).await?;
        tx.commit().await?;
        self.committed(user, account.summary.seq);
        Ok(RechargeReceipt {
            transaction_id,
            batch_id,
            balance: account.summary.balance,
            replayed: false,
            seq: account.summary.seq,
        })
    }
}
