//! The balance stream, `GET /points/stream`: Server-Sent Events of a user's journal changes.
//!
//! - [`hub`]: the open streams by user, and the notices writers publish to them.
//! - [`listen`]: on PostgreSQL, the `LISTEN` connection that hears every process's commits
//!   (the `journal` trigger of `migrations-postgres/1005_stream_notify.sql`) and publishes them.
//! - [`sse`]: the route: authentication, `Last-Event-ID` replay, the snapshot, live events,
//!   heartbeat and typed ends.
//!
//! Invariants: a stream's events have strictly increasing `seq` and none twice; a jump on the live
//! path, or a notice that may have been lost, is filled from the journal; everything a stream
//! holds is bounded (replay, channel, streams per user and in all).

pub mod hub;
pub mod listen;
pub mod sse;

use std::time::Duration;

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

pub use hub::{Hub, HubLimits, Notice};

/// Why the server ends a stream (the `reason` of its `end` event).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum EndReason {
    /// The bearer token reached its `exp`: reconnect with a new token.
    TokenExpired,
    /// The user opened more streams than allowed: this one was the oldest.
    TooManyStreams,
    /// The server is stopping.
    Shutdown,
    /// The reader fell too far behind (best effort: such a reader is usually just dropped).
    SlowReader,
}

/// The data of an `end` event.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct StreamEnd {
    /// Why the server ends the stream.
    pub reason: EndReason,
}

/// The stream's limits and timings. [`StreamLimits::default`] gives the documented defaults.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StreamLimits {
    /// Time between heartbeat comments (`: ping`) when no event was sent. Default 10 s.
    pub heartbeat: Duration,
    /// Streams one user may hold; a new one past it ends the oldest. Default 8.
    pub max_per_user: usize,
    /// Streams the ledger holds in all; past it, 503 `too_many_streams`. Each stream holds an
    /// HTTP connection: keep it below `HttpLimits::max_connections`. Default 512.
    pub max_streams: usize,
    /// Notices a stream may have queued before it is dropped as a slow reader. Default 64.
    pub buffer: usize,
    /// Most journal entries replayed after `Last-Event-ID` (more missed: a snapshot instead).
    /// Default 1000.
    pub replay_limit: u32,
}

/// Entries replayed at most after `Last-Event-ID`, by default.
pub const DEFAULT_REPLAY_LIMIT: u32 = 1000;

impl Default for StreamLimits {
    fn default() -> Self {
        Self {
            heartbeat: Duration::from_secs(10),
            max_per_user: 8,
            max_streams: 512,
            buffer: 64,
            replay_limit: DEFAULT_REPLAY_LIMIT,
        }
    }
}

impl StreamLimits {
    /// The hub's share of these limits.
    pub fn hub(&self) -> HubLimits {
        HubLimits {
            max_per_user: self.max_per_user,
            max_streams: self.max_streams,
            buffer: self.buffer,
        }
    }
}
