//! Consume: one priced use of a service, charged at most once per idempotency key.
//!
//! Invariants: a charge is refused, writing nothing, when the balance (after expiry) does not
//! cover it and debt was not allowed, or when a total would leave ±(2^53 − 1); it burns the
//! soonest-expiring batches first (with debt, every batch ends empty and the balance goes below
//! zero); the same key with the same request answers the first receipt, with another request a
//! conflict; a free service writes nothing. Charges are applied in groups ([`super::batch`]):
//! each charge of a group gets the answer it would get alone, in the group's order, and none is
//! answered before the group is committed. The SQLite path ([`super::charge`]) and
//! PostgreSQL's `points_consume_batch` function (`migrations-postgres/`) follow the same rules, held
//! to the same model test.
//!
//! A consume naming an offline allowance ([`Ledger::consume_under`]) is rare (the settlement of
//! work done offline): it bypasses the groups and runs in a transaction of its own through the
//! Rust path ([`super::charge`]) on both databases, with the same key rules.

use uuid::Uuid;

use super::allowance::Under;
use super::charge::{charge_in_transaction, Charge};
use super::write::to_micros;
use super::{retrying, ConsumeRequest, EntryKind, IdempotencyKey, Ledger, LedgerError, Receipt};
use crate::amount::MAX_AMOUNT;

/// The longest `reference` a consume may carry, in characters (Unicode scalar values). A
/// reference of at most 1 KiB of UTF-8 always fits; the limit counts characters because that is
/// what the OpenAPI document's `maxLength` can state.
pub const MAX_REFERENCE_CHARS: usize = 1024;

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

    /// Charges one use of a service done under the offline allowance `allowance_id`, at most
    /// once per idempotency key (the allowance is not part of what "the same request" compares).
    ///
    /// Checks, in order: those of [`Self::consume`] up to the key (a replay or a conflict is
    /// answered as there, whatever became of the allowance); then the allowance: `user`'s
    /// (else [`LedgerError::AllowanceNotFound`]), not past `not_after` + the grace period (else
    /// [`LedgerError::AllowanceExpired`]), the price within what is left of it (else
    /// [`LedgerError::AllowanceExhausted`]); nothing is written on a refusal. The charge is
    /// then applied with debt allowed, whatever `allow_debt` says, and added to what was spent
    /// under the allowance in the same transaction. A free service writes nothing.
    pub async fn consume_under(
        &self,
        user: Uuid,
        request: &ConsumeRequest,
        key: &IdempotencyKey,
        allowance_id: Uuid,
    ) -> Result<Receipt, LedgerError> {
        let charge = match self.check(user, request, key)? {
            Checked::Free => return self.consume_free(user, request, key).await,
            Checked::Charge(charge) => charge,
        };
        let _in_flight = self.mark_in_flight(user, EntryKind::Consume, key)?;
        let under = Under {
            allowance_id,
            grace_seconds: self.allowance.grace_seconds,
        };
        let receipt = retrying(|| self.settle_alone(&charge, &under)).await?;
        if !receipt.replayed {
            self.committed(user, receipt.seq);
        }
        Ok(receipt)
    }

    /// One attempt at a charge under an allowance, in a write transaction of its own: committed
    /// when charged or replayed, rolled back on a refusal.
    async fn settle_alone(&self, charge: &Charge, under: &Under) -> Result<Receipt, LedgerError> {
        let now = to_micros(self.clock.now());
        let mut tx = self.db.begin_write(charge.user).await?;
        match charge_in_transaction(&mut tx, &self.db, now, charge, Some(under)).await? {
            Ok(receipt) => {
                tx.commit().await?;
                Ok(receipt)
            }
            Err(refusal) => {
                tx.rollback().await?;
                Err(refusal)
            }
        }
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
            let results = super::batch::apply(&self.db, &*self.clock, &self.hub, &list).await;
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
