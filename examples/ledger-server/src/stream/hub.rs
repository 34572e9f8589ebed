//! Commit notices by user: every open balance stream registers here, and every writer (this
//! process after a commit on SQLite; the PostgreSQL listener for every process on the database)
//! publishes the user's new journal sequence number here.
//!
//! Invariants: each stream has a bounded channel, and a notice never waits: a stream whose
//! channel is full is dropped (its connection closed), never buffered without bound. A user holds
//! at most `max_per_user` streams (a new one ends the oldest with `too_many_streams`), the hub at
//! most `max_streams` (a new one past it is refused). Nothing is called under the lock but
//! non-blocking channel sends.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use tokio::sync::{mpsc, oneshot};
use uuid::Uuid;

use super::EndReason;
use crate::http::Connection;
use crate::ledger::JournalEntry;

/// What a stream is told.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Notice {
    /// The user's journal reached `seq`; `entry` is that entry when the notifier knows it (the
    /// stream reads the journal otherwise).
    Committed {
        /// The user's newest sequence number.
        seq: i64,
        /// The entry at `seq`, if known.
        entry: Option<JournalEntry>,
    },
    /// Notices may have been lost (the listener's connection dropped): read the journal again.
    Resync,
}

/// How many streams the hub holds and how much each may queue.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HubLimits {
    /// Streams of one user; a new one past it ends the oldest.
    pub max_per_user: usize,
    /// Streams in all; a new one past it is refused.
    pub max_streams: usize,
    /// Notices one stream may have queued; past it the stream is dropped.
    pub buffer: usize,
}

/// Refused: the hub holds `max_streams` streams.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("the ledger holds as many streams as it may")]
pub struct HubFull;

struct Slot {
    id: u64,
    notices: mpsc::Sender<Notice>,
    end: Option<oneshot::Sender<EndReason>>,
    connection: Option<Connection>,
}

#[derive(Default)]
struct Streams {
    by_user: HashMap<Uuid, Vec<Slot>>,
    total: usize,
}

/// The open streams, by user.
#[derive(Default)]
pub struct Hub {
    streams: Mutex<Streams>,
    next_id: AtomicU64,
    dropped_slow: AtomicU64,
}

impl std::fmt::Debug for Hub {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Hub").field("streams", &self.len()).finish()
    }
}

/// A stream's registration; dropping it leaves the hub.
#[derive(Debug)]
pub struct Subscription {
    hub: Arc<Hub>,
    user: Uuid,
    id: u64,
    /// The notices for this stream, in the order published.
    pub notices: mpsc::Receiver<Notice>,
    /// Why the hub ended this stream (`too_many_streams`); closed without a value when it was
    /// dropped as a slow reader.
    pub end: oneshot::Receiver<EndReason>,
}

impl Drop for Subscription {
    fn drop(&mut self) {
        let mut streams = self.hub.streams.lock().expect("stream hub lock");
        let streams = &mut *streams;
        if let Some(slots) = streams.by_user.get_mut(&self.user) {
            if let Some(at) = slots.iter().position(|slot| slot.id == self.id) {
                slots.remove(at);
                streams.total -= 1;
            }
            if slots.is_empty() {
                streams.by_user.remove(&self.user);
            }
        }
    }
}

impl Hub {
    /// Registers a stream of `user`. Past `limits.max_per_user` the user's oldest stream is
    /// told `too_many_streams` and leaves the hub; past `limits.max_streams`, [`HubFull`].
    pub fn subscribe(
        self: &Arc<Self>,
        user: Uuid,
        limits: &HubLimits,
        connection: Option<Connection>,
    ) -> Result<Subscription, HubFull> {
        let (notices_tx, notices) = mpsc::channel(limits.buffer.max(1));
        let (end_tx, end) = oneshot::channel();
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        let mut evicted = Vec::new();
        {
            let mut streams = self.streams.lock().expect("stream hub lock");
            if streams.total >= limits.max_streams.max(1) {
                return Err(HubFull);
            }
            let slots = streams.by_user.entry(user).or_default();
            while slots.len() >= limits.max_per_user.max(1) {
                evicted.push(slots.remove(0));
            }
            slots.push(Slot {
                id,
                notices: notices_tx,
                end: Some(end_tx),
                connection,
            });
            streams.total = streams.total + 1 - evicted.len();
        }
        for mut slot in evicted {
            if let Some(end) = slot.end.take() {
                let _ = end.send(EndReason::TooManyStreams);
            }
        }
        Ok(Subscription {
            hub: self.clone(),
            user,
            id,
            notices,
            end,
        })
    }

    /// Tells every stream of `user` about `notice`; a stream whose channel is full is dropped.
    pub fn publish(&self, user: Uuid, notice: Notice) {
        let mut dropped = Vec::new();
        {
            let mut streams = self.streams.lock().expect("stream hub lock");
            let Some(slots) = streams.by_user.get_mut(&user) else {
                return;
            };
            let mut at = 0;
            while at < slots.len() {
                if slots[at].notices.try_send(notice.clone()).is_ok() {
                    at += 1;
                } else {
                    dropped.push(slots.remove(at));
                }
            }
            if slots.is_empty() {
                streams.by_user.remove(&user);
            }
            streams.total -= dropped.len();
        }
        self.close_slow(dropped);
    }

    /// Tells every stream to read the journal again (notices may have been lost).
    pub fn resync_all(&self) {
        let mut dropped = Vec::new();
        {
            let mut streams = self.streams.lock().expect("stream hub lock");
            for slots in streams.by_user.values_mut() {
                let mut at = 0;
                while at < slots.len() {
                    if slots[at].notices.try_send(Notice::Resync).is_ok() {
                        at += 1;
                    } else {
                        dropped.push(slots.remove(at));
                    }
                }
            }
            streams.by_user.retain(|_, slots| !slots.is_empty());
            streams.total -= dropped.len();
        }
        self.close_slow(dropped);
    }

    /// Closes the connections of streams dropped as slow readers (their channel and end signal
    /// close with the slot).
    fn close_slow(&self, dropped: Vec<Slot>) {
        for slot in dropped {
            self.dropped_slow.fetch_add(1, Ordering::Relaxed);
            tracing::debug!(stream = slot.id, "stream dropped: its reader is too slow");
            if let Some(connection) = &slot.connection {
                connection.close();
            }
        }
    }

    /// Streams registered now.
    pub fn len(&self) -> usize {
        self.streams.lock().expect("stream hub lock").total
    }

    /// Whether no stream is registered.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Streams dropped so far because their channel was full.
    pub fn dropped_slow_readers(&self) -> u64 {
        self.dropped_slow.load(Ordering::Relaxed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const LIMITS: HubLimits = HubLimits {
        max_per_user: 2,
        max_streams: 3,
        buffer: 2,
    };

    fn committed(seq: i64) -> Notice {
        Notice::Committed { seq, entry: None }
    }

    #[tokio::test]
    async fn caps_end_the_oldest_and_refuse_past_the_total() {
        let hub = Arc::new(Hub::default());
        let user = Uuid::new_v4();
        let mut first = hub.subscribe(user, &LIMITS, None).unwrap();
        let _second = hub.subscribe(user, &LIMITS, None).unwrap();
        let _third = hub.subscribe(user, &LIMITS, None).unwrap();
        assert_eq!(first.end.try_recv(), Ok(EndReason::TooManyStreams));
        assert_eq!(hub.len(), 2);
        let _other = hub.subscribe(Uuid::new_v4(), &LIMITS, None).unwrap();
        assert!(hub.subscribe(Uuid::new_v4(), &LIMITS, None).is_err());
        drop(first);
        assert_eq!(hub.len(), 3, "the evicted stream was already gone");
    }

    #[tokio::test]
    async fn a_full_channel_drops_the_stream() {
        let hub = Arc::new(Hub::default());
        let user = Uuid::new_v4();
        let mut slow = hub.subscribe(user, &LIMITS, None).unwrap();
        for seq in 1..=3 {
            hub.publish(user, committed(seq));
        }
        assert!(hub.is_empty());
        assert_eq!(hub.dropped_slow_readers(), 1);
        assert_eq!(slow.notices.recv().await, Some(committed(1)));
        assert_eq!(slow.notices.recv().await, Some(committed(2)));
        assert_eq!(slow.notices.recv().await, None);
        assert!(slow.end.try_recv().is_err());
    }
}
