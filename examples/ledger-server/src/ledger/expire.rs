//! Expiry: the remaining points of a batch past its `expires_at` leave the balance and join
//! `total_expired`, one journal entry per batch.
//!
//! Invariants: every write expires the user's due batches first, and every read before it
//! answers, so no answer shows expired points; the sweep tidies the rest, one user per
//! transaction (a failing user does not stop it), one sweep at a time across instances, reading
//! each due batch once in bounded pages.

use uuid::Uuid;

use super::write::{
    append_entry, lock_user, save_account, to_micros, Account, LiveBatch, Locked, NewEntry, Tx,
};
use super::{retrying, EntryKind, ExpiryReport, Ledger, LedgerError};
use crate::amount::bounded;
use crate::db::Backend;

/// Due users the sweep reads per page.
pub const SWEEP_PAGE: i64 = 500;
/// The PostgreSQL advisory lock key held by the instance that sweeps (one at a time per
/// database): "points-ledger sweep" in ASCII, truncated to eight bytes.
pub const SWEEP_LOCK: i64 = 0x706f_696e_7473_7377;

impl Ledger {
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
                 WHERE emptied_at IS NULL AND expires_at <= $1 AND user_id > $2 \
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
    pub(super) async fn expire_user(&self, user: Uuid) -> Result<(u64, i64), LedgerError> {
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
        } = lock_user(&mut tx, &self.db, user, None, EntryKind::Expire).await?;
        let expired = expire_due(&mut tx, user, &mut account, &mut live, now).await?;
        if expired.0 > 0 {
            save_account(&mut tx, user, &account).await?;
        }
        tx.commit().await?;
        if expired.0 > 0 {
            self.committed(user, account.summary.seq);
        }
        Ok(expired)
    }

    /// Runs [`Self::expire_user`] when the user has a batch past its expiry, so that reads never
    /// show expired points even between sweeps.
    pub(super) async fn expire_user_if_due(&self, user: Uuid) -> Result<(), LedgerError> {
        let now = to_micros(self.clock.now());
        let due: Option<String> = sqlx::query_scalar(
            "SELECT id FROM batches WHERE user_id = $1 AND emptied_at IS NULL AND expires_at <= $2 LIMIT 1",
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
}

/// Expires the batches of `live` that are due at `now`: their remaining points leave the
/// balance and join `total_expired`, one journal entry each. Leaves only the unexpired ones
/// in `live`. Returns the batches and points expired.
pub(super) async fn expire_due(
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
        sqlx::query("UPDATE batches SET remaining = 0, emptied_at = $1 WHERE id = $2")
            .bind(now)
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
        append_entry(
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
                allowance_id: None,
            },
        )
        .await?;
    }
    Ok((due.len() as u64, points))
}
