//! The reads: a user's summary, a priced cost check, their live batches and their history.
//!
//! Invariants: a read never shows expired points (it expires the user's due batches first, in a
//! write transaction of their own, see [`super::expire`]); a read writes nothing else; a history
//! page is bounded by [`MAX_PAGE`] and its cursor is only what an earlier page handed out.

use sqlx::Row;
use uuid::Uuid;

use super::write::{from_micros, to_micros};
use super::{
    Batch, BatchList, CostCheck, Entry, EntryKind, EntryPage, Ledger, LedgerError, Summary,
};

/// The most history entries one page may hold.
pub const MAX_PAGE: u32 = 200;
/// History entries per page when the client does not say.
pub const DEFAULT_PAGE: u32 = 50;

impl Ledger {
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
             WHERE user_id = $1 AND emptied_at IS NULL AND expires_at > $2 \
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
}
