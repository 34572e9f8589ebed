//! One charge applied inside a write transaction, by the rules of [`super::consume`]: the SQLite
//! path of a group of consumes ([`super::batch`]); PostgreSQL's `points_consume_batch`
//! function (`migrations-postgres/`) is the same rules in PL/pgSQL.
//!
//! Invariants: a refusal (a short balance, a total out of range, a key used for another
//! request) is decided before the first write and writes nothing; the due batches expire
//! before the charge; the soonest-expiring batches burn first; the journal entry carries the
//! key and the request's fingerprint. A charge under an offline allowance ([`super::allowance`])
//! is checked against the allowance after its key, is applied with debt allowed, and adds its
//! points to what was spent under it in the same transaction as its journal entry.

use uuid::Uuid;

use super::allowance::{check_under, spend, Under};
use super::expire::expire_due;
use super::write::{append_entry, lock_user, save_account, Locked, NewEntry, Tx};
use super::{ConsumeRequest, EntryKind, IdempotencyKey, LedgerError, Receipt};
use crate::amount::bounded;
use crate::db::Db;

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

/// Applies `charge` inside `tx` (SQLite: the group's transaction, which holds the database's
/// write lock). The outer error is a database failure (the group is rolled back); the inner
/// result is the charge's own answer. A refusal (a short balance, a total out of range, a key
/// used for another request, an allowance that does not cover it) writes nothing: it is
/// decided before the first write. `under`: the allowance the charge settles under, if any.
pub(super) async fn charge_in_transaction(
    tx: &mut Tx,
    db: &Db,
    now: i64,
    charge: &Charge,
    under: Option<&Under>,
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

    if let Some(under) = under {
        if let Err(refusal) = check_under(tx, db, user, under, now, required).await? {
            return Ok(Err(refusal));
        }
    }
    // Work done under an allowance was promised: it is charged whatever the balance.
    let allow_debt = request.allow_debt || under.is_some();

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
    if !allow_debt && available < required {
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
        let left_over = batch.remaining - burn;
        sqlx::query("UPDATE batches SET remaining = $1, emptied_at = $2 WHERE id = $3")
            .bind(left_over)
            .bind((left_over == 0).then_some(now))
            .bind(&batch.id)
            .execute(&mut **tx)
            .await?;
    }
    let allowance_id = under.map(|under| under.allowance_id.to_string());
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
            allowance_id: allowance_id.as_deref(),
        },
    )
    .await?;
    if let Some(under) = under {
        spend(tx, under, required).await?;
    }
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
