//! Consume: one priced use of a service, charged at most once per idempotency key.
//!
//! Invariants: a charge is refused, writing nothing, when the balance (after expiry) does not
//! cover it and debt was not allowed, or when a total would leave ±(2^53 − 1); it burns the
//! soonest-expiring batches first (with debt, every batch ends empty and the balance goes below
//! zero); the same key with the same request answers the first receipt, with another request a
//! conflict; a free service writes nothing. Charges are applied in groups ([`super::batch`]):
//! each charge of a group gets the answer it would get alone, in the group's order, and none is
//! answered before the group is committed. The SQLite path below ([`charge_in_transaction`])
//! and PostgreSQL's `points_consume` function (`migrations-postgres/`) follow the same rules,
//! held to the same model test.

use uuid::Uuid;

use super::expire::expire_due;
use super::write::{append_entry, lock_user, save_account, Locked, NewEntry, Tx};
use super::{ConsumeRequest, EntryKind, IdempotencyKey, Ledger, LedgerError, Receipt};
use crate::amount::{bounded, MAX_AMOUNT};
use crate::db::Db;

/// The longest `reference` a consume may carry, in characters (Unicode scalar values). A
/// reference of at most 1 KiB of UTF-8 always fits; the limit counts characters because that is
/// what the OpenAPI document's `maxLength` can state.
pub const MAX_REFERENCE_CHARS: usize = 1024;

/// A consume ready to be applied: priced (not free), its reference and price within bounds.
#[derive(Debug, Clone)]
pub(super) struct Charge {
    pub(super) user: Uuid,
    pub(super) request: ConsumeRequest,
    pub(super) key: IdempotencyKey,
    /// Points it costs.
    pub(super) required: i64,
    /// What "the same request" compares, stored with the journal entry.
    pub(super) fingerprint: String,
}

/// What the checks before any database work make of a consume.
enum Checked {
    /// A free service: nothing to write.
    Free,
    /// A charge to apply.
    Charge(Charge),
}

impl Ledger {
    /// Charges one use of a service, at most once per idempotency key.
    ///
    /// Checks, in order: the service and duration, the reference's length, the key (in flight:
    /// 409; used with another request: 422; used with this request: the first receipt,
    /// replayed), then the balance (short and no debt allowed: nothing written). A free service
    /// writes nothing. The charge is applied in a group with the other consumes queued at the
    /// same time (one transaction, one commit) and answered once that group is committed.
    pub async fn consume(
        &self,
        user: Uuid,
        request: &ConsumeRequest,
        key: &IdempotencyKey,
    ) -> Result<Receipt, LedgerError> {
        let charge = match self.check(user, request, key)? {
            Checked::Free => return self.consume_free(user, request, key).await,
            Checked::Charge(charge) => charge,
        };
        let in_flight = self.mark_in_flight(user, EntryKind::Consume, key)?;
        self.batcher.submit(charge, in_flight).await
    }

    /// Charges several consumes together, in groups of at most [`super::batch::MAX_GROUP`]
    /// (one transaction and, on PostgreSQL, one round trip each): the answers, in the order of
    /// `consumes`, are each what [`Self::consume`] would have answered for it alone, one after
    /// the other. The same key twice is charged once (the second is its replay, or a conflict).
    pub async fn consume_many(
        &self,
        consumes: &[(Uuid, ConsumeRequest, IdempotencyKey)],
    ) -> Vec<Result<Receipt, LedgerError>> {
        let mut answers: Vec<Option<Result<Receipt, LedgerError>>> =
            (0..consumes.len()).map(|_| None).collect();
        let mut charges = Vec::new();
        let mut marks = Vec::new();
        for (i, (user, request, key)) in consumes.iter().enumerate() {
            match self.check(*user, request, key) {
                Err(error) => answers[i] = Some(Err(error)),
                Ok(Checked::Free) => {
                    answers[i] = Some(self.consume_free(*user, request, key).await)
                }
                Ok(Checked::Charge(charge)) => {
                    let repeated = charges
                        .iter()
                        .any(|(_, c): &(usize, Charge)| c.user == *user && c.key == *key);
                    if !repeated {
                        match self.mark_in_flight(*user, EntryKind::Consume, key) {
                            Ok(mark) => marks.push(mark),
                            Err(error) => {
                                answers[i] = Some(Err(error));
                                continue;
                            }
                        }
                    }
                    charges.push((i, charge));
                }
            }
        }
        for group in charges.chunks(super::batch::MAX_GROUP) {
            let list: Vec<&Charge> = group.iter().map(|(_, c)| c).collect();
            let results = super::batch::apply(&self.db, &*self.clock, &list).await;
            for ((i, _), result) in group.iter().zip(results) {
                answers[*i] = Some(result);
            }
        }
        drop(marks);
        answers
            .into_iter()
            .map(|a| a.expect("every consume answered"))
            .collect()
    }

    /// The checks of a consume that need no database: its price, its reference, its bounds.
    fn check(
        &self,
        user: Uuid,
        request: &ConsumeRequest,
        key: &IdempotencyKey,
    ) -> Result<Checked, LedgerError> {
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
            return Ok(Checked::Free);
        }
        Ok(Checked::Charge(Charge {
            user,
            request: request.clone(),
            key: key.clone(),
            required: quote.points,
            fingerprint: serde_json::to_string(request).expect("a consume request serialises"),
        }))
    }

    /// The answer to a free service: nothing is written, but a key already spent on another
    /// request is still refused.
    async fn consume_free(
        &self,
        user: Uuid,
        request: &ConsumeRequest,
        key: &IdempotencyKey,
    ) -> Result<Receipt, LedgerError> {
        if self.key_was_used(user, key).await? {
            return Err(LedgerError::IdempotencyMismatch);
        }
        let summary = self.summary(user).await?;
        Ok(Receipt {
            user_id: user,
            transaction_id: None,
            service: request.service.clone(),
            points: 0,
            balance: summary.balance,
            replayed: false,
            seq: summary.seq,
        })
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
}

/// Applies `charge` inside `tx` (SQLite: the group's transaction, which holds the database's
/// write lock). The outer error is a database failure (the group is rolled back); the inner
/// result is the charge's own answer. A refusal (a short balance, a total out of range, a key
/// used for another request) writes nothing: it is decided before the first write.
pub(super) async fn charge_in_transaction(
    tx: &mut Tx,
    db: &Db,
    now: i64,
    charge: &Charge,
) -> Result<Result<Receipt, LedgerError>, LedgerError> {
    let Charge {
        user,
        request,
        key,
        required,
        fingerprint,
    } = charge;
    let (user, required) = (*user, *required);
    let Locked {
        mut account,
        mut live,
        earlier,
    } = lock_user(tx, db, user, Some(key), EntryKind::Consume).await?;
    if let Some(earlier) = earlier {
        return Ok(earlier
            .matching(EntryKind::Consume, fingerprint)
            .map(|earlier| Receipt {
                user_id: user,
                transaction_id: Some(earlier.transaction_id),
                service: earlier.service.unwrap_or_default(),
                points: -earlier.points,
                balance: earlier.balance_after,
                replayed: true,
                seq: earlier.seq,
            }));
    }

    // What expiry would take first: a refusal writes nothing, expiry included. The due batches'
    // remaining points are parts of a non-negative balance: their sum stays in range.
    let due = live
        .iter()
        .filter(|b| b.expires_at <= now)
        .try_fold(0i64, |sum, b| bounded(sum.checked_add(b.remaining)));
    let Some(available) = due.and_then(|due| bounded(account.summary.balance.checked_sub(due)))
    else {
        return Ok(Err(LedgerError::AmountOutOfRange));
    };
    if !request.allow_debt && available < required {
        return Ok(Err(LedgerError::InsufficientPoints {
            service: request.service.clone(),
            required,
            balance: available,
        }));
    }
    let in_range = bounded(available.checked_sub(required)).is_some()
        && bounded(account.summary.total_consumed.checked_add(required)).is_some()
        && due
            .and_then(|due| bounded(account.summary.total_expired.checked_add(due)))
            .is_some();
    if !in_range {
        return Ok(Err(LedgerError::AmountOutOfRange));
    }

    expire_due(tx, user, &mut account, &mut live, now).await?;
    // Burn the soonest-expiring batches first; with debt allowed, whatever is left over takes
    // the balance below zero and every batch ends empty.
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
            .execute(&mut **tx)
            .await?;
    }
    account.summary.balance -= required;
    account.summary.total_consumed += required;
    let transaction_id = append_entry(
        tx,
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
    save_account(tx, user, &account).await?;
    Ok(Ok(Receipt {
        user_id: user,
        transaction_id: Some(transaction_id),
        service: request.service.clone(),
        points: required,
        balance: account.summary.balance,
        replayed: false,
        seq: account.summary.seq,
    }))
}
