//! The one place that decides what a failed ledger call means for a charge: retry it, hold it
//! (keep it journaled and send it again later, after a bounded wait), or refuse it for good.
//!
//! Only a definitive verdict of the ledger refuses a charge: a known contract `code` saying the
//! charge can never apply (`unknown_service`, `not_chargeable_here`, `idempotency_conflict`,
//! `amount_out_of_range`, `invalid_duration`, `invalid_idempotency_key`, `reference_too_long`),
//! a check made on this machine before anything was sent, or a 402 for a charge that may not
//! go into debt. Everything else holds the charge: a bare 400 or 422 without a known code (a WAF
//! page, a price table being redeployed), 401 and 403 (a token that may be refreshed), 404, 409,
//! 429, 5xx, transport failures and undecodable answers.
//!
//! Waits are bounded: a `Retry-After` is never honoured past the caller's cap, and never
//! computed with unchecked arithmetic, whatever the header says.

use std::time::Duration;

use crate::client::retry::Attempt;
use crate::Error;

/// The contract codes that prove a charge can never apply.
pub const DEFINITIVE_CODES: &[&str] = &[
    "unknown_service",
    "not_chargeable_here",
    "idempotency_conflict",
    "amount_out_of_range",
    "invalid_duration",
    "invalid_idempotency_key",
    "reference_too_long",
    // A charge made offline under an allowance the ledger will not settle it under (contract
    // v1.2): past its points, its grace period, or not this user's.
    "allowance_exhausted",
    "allowance_expired",
    "allowance_not_found",
];

/// The longest `Retry-After` the client ever reads from a header (a day); callers cap it further.
pub const MAX_RETRY_AFTER: Duration = Duration::from_secs(86_400);

/// What to do with a charge after a failed send.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Verdict {
    /// Keep it journaled and send it again later, not before `not_before` (already capped).
    Hold {
        /// The wait the ledger asked for, capped; `None` for the sync's own backoff.
        not_before: Option<Duration>,
        /// Whether the failure says the ledger cannot take requests now (down, overloaded,
        /// timing out): the rest of a pass would meet the same answer.
        unavailable: bool,
    },
    /// The ledger (or a check made before sending) proves it can never apply: move it to the
    /// refused record.
    Refuse,
}

/// The verdict on a charge whose send failed with `error`, the ledger having asked to wait
/// `retry_after`; the wait is capped at `cap`. `allow_debt` is the charge's own flag: a 402 for
/// a charge that may not go into debt is definitive.
pub fn charge_verdict(
    error: &Error,
    retry_after: Option<Duration>,
    allow_debt: bool,
    cap: Duration,
) -> Verdict {
    if refuses_for_good(error, allow_debt) {
        return Verdict::Refuse;
    }
    Verdict::Hold {
        not_before: retry_after.map(|wait| wait.min(cap)),
        unavailable: ledger_unavailable(error),
    }
}

/// Whether `error` proves a charge can never apply.
pub fn refuses_for_good(error: &Error, allow_debt: bool) -> bool {
    match error {
        Error::UnknownService { .. }
        | Error::InvalidDuration
        | Error::InvalidArgument { .. }
        | Error::NotChargeableHere { .. } => true,
        Error::InsufficientPoints { .. } => !allow_debt,
        // 409: a request with this key is still in flight at the ledger (it may yet apply): the
        // contract uses the code `idempotency_conflict` for it too, so the status decides.
        Error::Backend { status: 409, .. } => false,
        Error::Backend {
            code: Some(code), ..
        } => DEFINITIVE_CODES.contains(&code.as_str()),
        _ => false,
    }
}

/// Whether an error says the ledger cannot take requests now (down, overloaded, timing out, or
/// no base URL set yet).
pub fn ledger_unavailable(error: &Error) -> bool {
    match error {
        Error::Network { .. } | Error::Timeout | Error::NotConfigured => true,
        Error::Backend { status, .. } => *status >= 500 || *status == 429,
        _ => false,
    }
}

/// Whether a failure of this kind may be retried within one call (the client's own retries).
pub fn retryable(attempt: Attempt) -> bool {
    match attempt {
        Attempt::Transport => true,
        Attempt::Status(status) => status >= 500 || status == 429 || status == 409,
    }
}

/// A jittered exponential backoff: between half and all of `min(max, base * 2^doublings)`
/// (`doublings` capped at 20). The client's retries and the sync's passes both wait by it.
pub fn backoff(base: Duration, max: Duration, doublings: u32) -> Duration {
    let ceiling = base.saturating_mul(1 << doublings.min(20)).min(max);
    ceiling.mul_f64(0.5 + fastrand::f64() * 0.5)
}

/// `now + wait`, or `None` when it does not fit (a `Retry-After` of 10^20 seconds).
pub fn deadline_after(now: tokio::time::Instant, wait: Duration) -> Option<tokio::time::Instant> {
    now.checked_add(wait)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn backend(status: u16, code: Option<&str>) -> Error {
        Error::Backend {
            status,
            code: code.map(str::to_owned),
            message: String::new(),
        }
    }

    #[test]
    fn only_a_definitive_verdict_refuses_a_charge() {
        let cap = Duration::from_secs(300);
        for refused in [
            Error::UnknownService {
                service: "x".into(),
            },
            Error::InvalidDuration,
            Error::invalid_argument("idempotencyKey", "bad"),
            backend(422, Some("idempotency_conflict")),
            backend(422, Some("amount_out_of_range")),
            backend(422, Some("allowance_exhausted")),
            backend(400, Some("reference_too_long")),
        ] {
            assert_eq!(
                charge_verdict(&refused, None, true, cap),
                Verdict::Refuse,
                "{refused:?}"
            );
        }
        for held in [
            backend(400, None),
            backend(422, None),
            backend(422, Some("something_new")),
            backend(409, Some("idempotency_conflict")),
            backend(403, None),
            backend(404, None),
            backend(503, None),
            Error::Unauthorized,
            Error::network("reset".into()),
            Error::Timeout,
            Error::protocol("eof".into()),
            Error::storage("disk".into()),
            Error::NotConfigured,
        ] {
            assert!(
                matches!(charge_verdict(&held, None, true, cap), Verdict::Hold { .. }),
                "{held:?}"
            );
        }
        assert!(
            ledger_unavailable(&Error::NotConfigured),
            "no base URL yet: a pass stops early, like a ledger that is down"
        );
        let insufficient = Error::InsufficientPoints {
            service: None,
            required: None,
            balance: None,
        };
        assert!(matches!(
            charge_verdict(&insufficient, None, true, cap),
            Verdict::Hold { .. }
        ));
        assert_eq!(
            charge_verdict(&insufficient, None, false, cap),
            Verdict::Refuse,
            "a charge that may not go into debt is refused by a 402"
        );
    }

    #[test]
    fn a_hold_is_capped_whatever_the_ledger_asks() {
        let cap = Duration::from_secs(300);
        let held = charge_verdict(
            &backend(503, None),
            Some(Duration::from_secs(u64::MAX)),
            true,
            cap,
        );
        assert_eq!(
            held,
            Verdict::Hold {
                not_before: Some(cap),
                unavailable: true
            }
        );
        assert!(deadline_after(tokio::time::Instant::now(), Duration::MAX).is_none());
    }
}
