//! The stream of one request: the first events (a snapshot, or the replay after
//! `Last-Event-ID`), then one `balance` event per journal change, heartbeat comments, and an
//! `end` event before the server closes it.
//!
//! Invariants: the stream registers with the hub before it reads the journal, so no change
//! committed after that read is missed; an event is sent only for a `seq` above the last one
//! sent; a live notice that does not follow the last event (a jump, no entry, a resync) is filled
//! from the journal, bounded by the replay limit (past it, a snapshot of the summary now).

use std::collections::VecDeque;
use std::convert::Infallible;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use axum::http::{header, HeaderValue};
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use tokio::sync::watch;
use tokio::time::Sleep;
use uuid::Uuid;

use super::hub::{Notice, Subscription};
use super::{EndReason, StreamLimits};
use crate::http::Connection;
use crate::ledger::{BalanceEvent, Ledger, LedgerError, Summary};
use crate::problem::Problem;

/// The request header naming the last event a client received.
pub const LAST_EVENT_ID: &str = "last-event-id";

/// The longest single timer the stream arms for a token's expiry; a later `exp` re-arms it.
const MAX_EXPIRY_WAIT: Duration = Duration::from_secs(7 * 24 * 3600);

/// A `Last-Event-ID` value: a decimal sequence number, 0 to 2^63 − 1 (at most 19 digits).
pub fn parse_last_event_id(value: &[u8]) -> Option<i64> {
    if value.is_empty() || value.len() > 19 || !value.iter().all(u8::is_ascii_digit) {
        return None;
    }
    std::str::from_utf8(value).ok()?.parse().ok()
}

/// What a stream needs besides its user.
#[derive(Debug, Clone)]
pub struct StreamContext {
    /// The money rules (the journal and the hub).
    pub ledger: Arc<Ledger>,
    /// The stream's limits.
    pub limits: StreamLimits,
    /// Turns true when the server stops.
    pub stopped: watch::Receiver<bool>,
}

/// Opens the stream of `user` whose token expires at `expires_at` (Unix seconds), resuming
/// after `last_event_id` when given.
pub async fn open(
    context: &StreamContext,
    user: Uuid,
    expires_at: i64,
    last_event_id: Option<i64>,
    connection: Option<Connection>,
) -> Result<Response, Problem> {
    let subscription = context
        .ledger
        .hub()
        .subscribe(user, &context.limits.hub(), connection.clone())
        .map_err(|_| Problem::too_many_streams())?;
    let mut live = Live {
        ledger: context.ledger.clone(),
        subscription,
        // Below any seq: the first snapshot is always sent, seq 0 included.
        last: Summary {
            user_id: user,
            seq: -1,
            ..Summary::default()
        },
        pending: VecDeque::new(),
        replay_limit: context.limits.replay_limit,
        expires_at,
        expiry: Box::pin(tokio::time::sleep(until(expires_at))),
        stopped: context.stopped.clone(),
        done: false,
    };
    match last_event_id {
        None => {
            let summary = context.ledger.summary(user).await?;
            live.push(snapshot(summary));
        }
        Some(after) => {
            let changes = context
                .ledger
                .resume_changes(user, after, live.replay_limit)
                .await?;
            live.last.seq = after;
            match changes.events {
                Some(events) => events.into_iter().for_each(|event| live.push(event)),
                None => live.push(snapshot(changes.current)),
            }
            live.last = changes.current;
        }
    }
    if let Some(connection) = &connection {
        connection.mark_streaming();
    }
    let body = futures_util::stream::unfold(live, |mut live| async move {
        let event = live.next().await?;
        Some((Ok::<Event, Infallible>(event), live))
    });
    let mut response = Sse::new(body)
        .keep_alive(
            KeepAlive::new()
                .interval(context.limits.heartbeat)
                .text("ping"),
        )
        .into_response();
    let headers = response.headers_mut();
    headers.insert("x-accel-buffering", HeaderValue::from_static("no"));
    // A connection that carried a stream carries nothing else: it may be closed hard (a slow
    // reader, a stop), and no request should queue behind it.
    headers.insert(header::CONNECTION, HeaderValue::from_static("close"));
    Ok(response)
}

/// A snapshot event: the summary, no change.
fn snapshot(summary: Summary) -> BalanceEvent {
    BalanceEvent {
        summary,
        change: None,
    }
}

/// How long until the Unix second `at`, at most [`MAX_EXPIRY_WAIT`].
fn until(at: i64) -> Duration {
    let now = time::OffsetDateTime::now_utc().unix_timestamp_nanos();
    let left = i128::from(at) * 1_000_000_000 - now;
    if left <= 0 {
        Duration::ZERO
    } else {
        Duration::from_nanos(u64::try_from(left).unwrap_or(u64::MAX)).min(MAX_EXPIRY_WAIT)
    }
}

/// The `end` event for `reason`.
fn end_event(reason: EndReason) -> Event {
    let data = serde_json::to_string(&super::StreamEnd { reason }).expect("an end serialises");
    Event::default().event("end").data(data)
}

/// A stream once open.
struct Live {
    ledger: Arc<Ledger>,
    subscription: Subscription,
    /// The summary as of the last event sent (or the starting point).
    last: Summary,
    pending: VecDeque<Event>,
    replay_limit: u32,
    expires_at: i64,
    expiry: Pin<Box<Sleep>>,
    stopped: watch::Receiver<bool>,
    done: bool,
}

/// What woke a stream up.
enum Wake {
    End(EndReason),
    Notice(Notice),
    Nothing,
}

impl Live {
    /// Queues `event` when it is newer than the last one.
    fn push(&mut self, event: BalanceEvent) {
        if event.summary.seq <= self.last.seq {
            return;
        }
        let data = serde_json::to_string(&event).expect("an event serialises");
        self.pending.push_back(
            Event::default()
                .id(event.summary.seq.to_string())
                .event("balance")
                .data(data),
        );
        self.last = event.summary;
    }

    /// The next event to send, `None` once the stream is over.
    async fn next(&mut self) -> Option<Event> {
        loop {
            if let Some(event) = self.pending.pop_front() {
                return Some(event);
            }
            if self.done {
                return None;
            }
            let wake = tokio::select! {
                biased;
                _ = self.stopped.wait_for(|stop| *stop) => Wake::End(EndReason::Shutdown),
                reason = &mut self.subscription.end => {
                    // Closed without a reason: the hub dropped this stream as a slow reader.
                    Wake::End(reason.unwrap_or(EndReason::SlowReader))
                }
                () = &mut self.expiry => {
                    if time::OffsetDateTime::now_utc().unix_timestamp() >= self.expires_at {
                        Wake::End(EndReason::TokenExpired)
                    } else {
                        self.expiry = Box::pin(tokio::time::sleep(until(self.expires_at)));
                        Wake::Nothing
                    }
                }
                notice = self.subscription.notices.recv() => match notice {
                    Some(notice) => Wake::Notice(notice),
                    None => Wake::End(EndReason::SlowReader),
                },
            };
            match wake {
                Wake::End(reason) => {
                    self.done = true;
                    return Some(end_event(reason));
                }
                Wake::Notice(notice) => {
                    if let Err(error) = self.apply(notice).await {
                        // The client resumes with Last-Event-ID.
                        tracing::warn!(%error, "balance stream closed: the journal could not be read");
                        self.done = true;
                    }
                }
                Wake::Nothing => {}
            }
        }
    }

    /// Turns a notice into events: the entry itself when it follows the last event, else what
    /// the journal holds past the last event.
    async fn apply(&mut self, notice: Notice) -> Result<(), LedgerError> {
        if let Notice::Committed { seq, entry } = &notice {
            if *seq <= self.last.seq {
                return Ok(());
            }
            if let Some(entry) = entry.as_ref().filter(|entry| entry.seq == *seq) {
                if let Some(summary) = entry.after(&self.last) {
                    self.push(BalanceEvent {
                        summary,
                        change: Some(entry.change()),
                    });
                    return Ok(());
                }
            }
        }
        let user = self.last.user_id;
        let changes = self
            .ledger
            .changes_since(user, self.last.seq, self.replay_limit)
            .await?;
        match changes.events {
            Some(events) => events.into_iter().for_each(|event| self.push(event)),
            None => self.push(snapshot(changes.current)),
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn last_event_ids_are_decimal_sequence_numbers() {
        assert_eq!(parse_last_event_id(b"0"), Some(0));
        assert_eq!(parse_last_event_id(b"42"), Some(42));
        assert_eq!(parse_last_event_id(b"9223372036854775807"), Some(i64::MAX));
        for bad in [
            &b""[..],
            b"-1",
            b"+1",
            b" 1",
            b"1.0",
            b"9223372036854775808",
            b"00000000000000000001",
            b"abc",
        ] {
            assert_eq!(parse_last_event_id(bad), None, "{bad:?}");
        }
    }
}
