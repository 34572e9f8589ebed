//! The journal read back as a user's changes: each entry past a sequence number with the
//! summary as of that entry, for the balance stream's replay and for filling a gap in its live
//! path.
//!
//! Invariants: the summary row and the entries come from one statement (one snapshot on both
//! databases), so the entries end exactly at the row's `last_seq`; a summary as of an entry is
//! the row's totals with the later entries taken back out, its balance the entry's
//! `balance_after`; a read is bounded by its `limit`.

use serde::{Deserialize, Serialize};
use sqlx::Row;
use utoipa::ToSchema;
use uuid::Uuid;

use super::{EntryKind, Ledger, LedgerError, Summary};

/// The journal entry that produced a sequence number.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct Change {
    /// What happened.
    pub kind: EntryKind,
    /// The magnitude of the change, always > 0.
    #[schema(minimum = 1, maximum = 9_007_199_254_740_991_i64)]
    pub points: i64,
    /// The service, for a consume; else `null`.
    pub service: Option<String>,
}

/// One event of the balance stream: the summary as of `seq`, and the change that produced it
/// (`null` for a snapshot).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct BalanceEvent {
    /// The summary as of this event's `seq`.
    #[serde(flatten)]
    pub summary: Summary,
    /// The journal entry of `seq`; `null` when the event is a snapshot of the current summary.
    pub change: Option<Change>,
}

/// A journal entry as the stream needs it: signed points as the journal holds them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JournalEntry {
    /// The entry's sequence number.
    pub seq: i64,
    /// What happened.
    pub kind: EntryKind,
    /// Signed: + recharge, − consume and expire.
    pub points: i64,
    /// The balance right after.
    pub balance_after: i64,
    /// The service, for a consume.
    pub service: Option<String>,
}

impl JournalEntry {
    /// The summary after this entry, given the summary as of the entry before it; `None` when
    /// the entry does not follow `before` (another seq, or a balance that does not add up).
    pub fn after(&self, before: &Summary) -> Option<Summary> {
        if self.seq != before.seq + 1
            || before.balance.checked_add(self.points)? != self.balance_after
        {
            return None;
        }
        let mut summary = *before;
        let magnitude = self.points.checked_abs()?;
        match self.kind {
            EntryKind::Recharge => summary.total_recharged += magnitude,
            EntryKind::Consume => summary.total_consumed += magnitude,
            EntryKind::Expire => summary.total_expired += magnitude,
        }
        summary.balance = self.balance_after;
        summary.seq = self.seq;
        Some(summary)
    }

    /// The summary before this entry, given the summary as of it.
    fn before(&self, after: &Summary) -> Summary {
        let mut summary = *after;
        let magnitude = self.points.saturating_abs();
        match self.kind {
            EntryKind::Recharge => summary.total_recharged -= magnitude,
            EntryKind::Consume => summary.total_consumed -= magnitude,
            EntryKind::Expire => summary.total_expired -= magnitude,
        }
        summary.balance = after.balance - self.points;
        summary.seq = self.seq - 1;
        summary
    }

    /// The stream's view of this entry.
    pub fn change(&self) -> Change {
        Change {
            kind: self.kind,
            points: self.points.saturating_abs(),
            service: self.service.clone(),
        }
    }
}

/// What the journal holds past a sequence number.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Changes {
    /// The user's summary now (zeros and seq 0 for a user without an entry).
    pub current: Summary,
    /// Every entry past the sequence number asked for, oldest first, each with the summary as of
    /// it; `None` when there were more than the limit.
    pub events: Option<Vec<BalanceEvent>>,
}

const CHANGES_SQL: &str =
    "SELECT a.balance, a.total_recharged, a.total_consumed, a.total_expired, \
     a.last_seq, j.seq, j.kind, j.points, j.balance_after, j.service \
     FROM accounts a \
     LEFT JOIN (SELECT seq, kind, points, balance_after, service FROM journal \
                WHERE user_id = $1 AND seq > $2 ORDER BY seq LIMIT $3) j ON TRUE \
     WHERE a.user_id = $1 \
     ORDER BY j.seq";

impl Ledger {
    /// The user's entries with a sequence number above `after`, oldest first, each with the
    /// summary as of it, if there are at most `limit` of them; and the summary now. Writes
    /// nothing (due batches are not expired here).
    pub async fn changes_since(
        &self,
        user: Uuid,
        after: i64,
        limit: u32,
    ) -> Result<Changes, LedgerError> {
        let rows = sqlx::query(CHANGES_SQL)
            .bind(user.to_string())
            .bind(after)
            .bind(i64::from(limit) + 1)
            .fetch_all(self.db.pool())
            .await?;
        let Some(first) = rows.first() else {
            return Ok(Changes {
                current: Summary {
                    user_id: user,
                    ..Summary::default()
                },
                events: Some(Vec::new()),
            });
        };
        let current = Summary {
            user_id: user,
            balance: first.try_get(0)?,
            total_recharged: first.try_get(1)?,
            total_consumed: first.try_get(2)?,
            total_expired: first.try_get(3)?,
            seq: first.try_get(4)?,
        };
        let mut entries = Vec::with_capacity(rows.len());
        for row in &rows {
            let Some(seq) = row.try_get::<Option<i64>, _>(5)? else {
                continue;
            };
            let kind: String = row.try_get(6)?;
            entries.push(JournalEntry {
                seq,
                kind: EntryKind::parse(&kind).ok_or_else(|| {
                    sqlx::Error::Decode(format!("unknown journal kind `{kind}`").into())
                })?,
                points: row.try_get(7)?,
                balance_after: row.try_get(8)?,
                service: row.try_get(9)?,
            });
        }
        if entries.len() > limit as usize {
            return Ok(Changes {
                current,
                events: None,
            });
        }
        // Walk back from the summary now: each entry's summary is the next one's, undone.
        let mut events = Vec::with_capacity(entries.len());
        let mut summary = current;
        for entry in entries.iter().rev() {
            if entry.seq != summary.seq {
                return Err(sqlx::Error::Protocol(format!(
                    "journal of {user} has no entry {} (found {})",
                    summary.seq, entry.seq
                ))
                .into());
            }
            summary.balance = entry.balance_after;
            events.push(BalanceEvent {
                summary,
                change: Some(entry.change()),
            });
            summary = entry.before(&summary);
        }
        events.reverse();
        Ok(Changes {
            current,
            events: Some(events),
        })
    }

    /// [`Self::changes_since`] after expiring the user's due batches (as a read does), for the
    /// start of a stream.
    pub async fn resume_changes(
        &self,
        user: Uuid,
        after: i64,
        limit: u32,
    ) -> Result<Changes, LedgerError> {
        self.expire_user_if_due(user).await?;
        self.changes_since(user, after, limit).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_entry_moves_the_summary_forward_and_back() {
        let before = Summary {
            user_id: Uuid::nil(),
            balance: 10,
            total_recharged: 20,
            total_consumed: 5,
            total_expired: 5,
            seq: 3,
        };
        let entry = JournalEntry {
            seq: 4,
            kind: EntryKind::Consume,
            points: -4,
            balance_after: 6,
            service: Some("tts".into()),
        };
        let after = entry.after(&before).unwrap();
        assert_eq!((after.balance, after.total_consumed, after.seq), (6, 9, 4));
        assert_eq!(entry.before(&after), before);
        // Not the next entry, or a balance that does not add up: no summary.
        assert!(JournalEntry {
            seq: 5,
            ..entry.clone()
        }
        .after(&before)
        .is_none());
        assert!(JournalEntry {
            balance_after: 7,
            ..entry
        }
        .after(&before)
        .is_none());
    }
}
