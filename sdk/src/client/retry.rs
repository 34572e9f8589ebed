//! The retry policy, as a value: which failures are retried, how long to wait, how many attempts.
//!
//! Retried: transport failures (network, timeout), 5xx, 429 and 409 (the same idempotency key is
//! still in flight). Never any other 4xx. A `Retry-After` header is honoured up to
//! [`RetryPolicy::max_retry_after`]; otherwise the wait is a jittered exponential backoff capped at
//! [`RetryPolicy::max_delay`]. Retries of a consume always reuse the same idempotency key.

use std::time::{Duration, SystemTime};

use crate::Error;

/// How failed requests are retried.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RetryPolicy {
    /// Attempts in all, the first one included (1 means no retry).
    pub max_attempts: u32,
    /// The backoff before the first retry, before jitter.
    pub base_delay: Duration,
    /// The longest backoff between two attempts.
    pub max_delay: Duration,
    /// The longest `Retry-After` that is waited for; a longer one ends the retries.
    pub max_retry_after: Duration,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        Self {
            max_attempts: 3,
            base_delay: Duration::from_millis(200),
            max_delay: Duration::from_secs(5),
            max_retry_after: Duration::from_secs(30),
        }
    }
}

/// What one attempt ended with, as far as retrying is concerned.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Attempt {
    /// No answer: the connection failed, was reset, or timed out.
    Transport,
    /// An HTTP answer with this status.
    Status(u16),
}

impl RetryPolicy {
    /// A policy that never retries.
    pub fn never() -> Self {
        Self {
            max_attempts: 1,
            ..Self::default()
        }
    }

    /// Whether a failure of this kind may be retried at all.
    pub fn is_retryable(attempt: Attempt) -> bool {
        crate::policy::retryable(attempt)
    }

    /// The wait before attempt number `next` (2 for the first retry), or `None` to stop retrying.
    ///
    /// `retry_after` is the server's `Retry-After`, when it sent one.
    pub fn delay_before(
        &self,
        next: u32,
        attempt: Attempt,
        retry_after: Option<Duration>,
    ) -> Option<Duration> {
        if next > self.max_attempts || !Self::is_retryable(attempt) {
            return None;
        }
        if let Some(wait) = retry_after {
            return (wait <= self.max_retry_after).then_some(wait);
        }
        Some(self.backoff(next))
    }

    /// Jittered exponential backoff before attempt `next`: between half and all of
    /// `min(max_delay, base_delay * 2^(next - 2))`.
    pub fn backoff(&self, next: u32) -> Duration {
        crate::policy::backoff(self.base_delay, self.max_delay, next.saturating_sub(2))
    }
}

impl Attempt {
    /// The attempt outcome an error stands for, when it came from the wire.
    pub fn of(error: &Error) -> Option<Attempt> {
        match error {
            Error::Network { .. } | Error::Timeout => Some(Attempt::Transport),
            Error::Backend { status, .. } => Some(Attempt::Status(*status)),
            Error::InsufficientPoints { .. } => Some(Attempt::Status(402)),
            Error::Unauthorized => Some(Attempt::Status(401)),
            _ => None,
        }
    }
}

/// Parses a `Retry-After` value: delay seconds or an HTTP date (a date in the past means now).
/// The result is at most [`crate::policy::MAX_RETRY_AFTER`], however large the value: digits
/// past `u64` or a date centuries ahead are read as that cap, and never overflow.
pub fn parse_retry_after(value: &str, now: SystemTime) -> Option<Duration> {
    let cap = crate::policy::MAX_RETRY_AFTER;
    let value = value.trim();
    if value.len() > 64 {
        return None;
    }
    if !value.is_empty() && value.bytes().all(|byte| byte.is_ascii_digit()) {
        let seconds = value.parse::<u64>().unwrap_or(u64::MAX);
        return Some(Duration::from_secs(seconds).min(cap));
    }
    let date =
        time::OffsetDateTime::parse(value, &time::format_description::well_known::Rfc2822).ok()?;
    let when = SystemTime::from(date);
    Some(when.duration_since(now).unwrap_or(Duration::ZERO).min(cap))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_transport_5xx_429_and_409_are_retried() {
        assert!(RetryPolicy::is_retryable(Attempt::Transport));
        for status in [500, 502, 503, 504, 429, 409] {
            assert!(
                RetryPolicy::is_retryable(Attempt::Status(status)),
                "{status}"
            );
        }
        for status in [400, 401, 402, 403, 404, 408, 410, 422] {
            assert!(
                !RetryPolicy::is_retryable(Attempt::Status(status)),
                "{status}"
            );
        }
    }

    #[test]
    fn attempts_stop_at_the_maximum() {
        let policy = RetryPolicy::default();
        assert!(policy.delay_before(2, Attempt::Transport, None).is_some());
        assert!(policy.delay_before(3, Attempt::Transport, None).is_some());
        assert!(policy.delay_before(4, Attempt::Transport, None).is_none());
        assert!(RetryPolicy::never()
            .delay_before(2, Attempt::Transport, None)
            .is_none());
    }

    #[test]
    fn backoff_grows_is_jittered_and_capped() {
        let policy = RetryPolicy {
            max_attempts: 10,
            base_delay: Duration::from_millis(100),
            max_delay: Duration::from_millis(350),
            max_retry_after: Duration::from_secs(1),
        };
        for _ in 0..100 {
            let first = policy.backoff(2);
            assert!(first >= Duration::from_millis(50) && first <= Duration::from_millis(100));
            let second = policy.backoff(3);
            assert!(second >= Duration::from_millis(100) && second <= Duration::from_millis(200));
            let capped = policy.backoff(9);
            assert!(capped >= Duration::from_millis(175) && capped <= Duration::from_millis(350));
        }
    }

    #[test]
    fn retry_after_is_honoured_up_to_its_cap() {
        let policy = RetryPolicy::default();
        assert_eq!(
            policy.delay_before(2, Attempt::Status(429), Some(Duration::from_secs(2))),
            Some(Duration::from_secs(2))
        );
        assert_eq!(
            policy.delay_before(2, Attempt::Status(503), Some(Duration::from_secs(31))),
            None
        );
    }

    #[test]
    fn retry_after_parses_seconds_and_http_dates() {
        let now = SystemTime::UNIX_EPOCH + Duration::from_secs(784_111_770);
        assert_eq!(parse_retry_after("7", now), Some(Duration::from_secs(7)));
        // 784111777 is Sun, 06 Nov 1994 08:49:37 GMT.
        assert_eq!(
            parse_retry_after("Sun, 06 Nov 1994 08:49:37 GMT", now),
            Some(Duration::from_secs(7))
        );
        assert_eq!(
            parse_retry_after("Sun, 06 Nov 1994 08:49:00 GMT", now),
            Some(Duration::ZERO)
        );
        assert_eq!(parse_retry_after("soon", now), None);
        let day = crate::policy::MAX_RETRY_AFTER;
        assert_eq!(parse_retry_after("86400000", now), Some(day));
        assert_eq!(parse_retry_after("10000000000000000000", now), Some(day));
        assert_eq!(parse_retry_after("100000000000000000000", now), Some(day));
        assert_eq!(
            parse_retry_after("Fri, 31 Dec 9999 23:59:59 GMT", now),
            Some(day)
        );
        assert_eq!(parse_retry_after(&"9".repeat(100), now), None);
        assert_eq!(parse_retry_after("-1", now), None);
    }
}
