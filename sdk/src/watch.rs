//! The live balance of the signed-in account: balance changes made anywhere (the backend's own
//! charges, payment webhooks, expiry, other devices) reach the app without it asking.
//!
//! [`BalanceWatch::run`] holds one ledger stream (`GET /points/stream`, contract v1.2) for the
//! session now: opened at sign-in, dropped at sign-out or a change of account, reopened after a
//! cut with capped, jittered backoff and resumed after the last `seq` it delivered (the ledger
//! replays what was missed). A backend without the stream (404, 405, 501) is polled instead
//! (`GET /points/balance`, slower while the host says nothing is shown) and asked for the stream
//! again now and then. Every figure goes to the [`WatchListener`] with the session number it
//! belongs to, in `seq` order, and only after it was checked whole and of the session's account.

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::{watch, Notify};
use tokio::time::Instant;

use crate::client::stream::StreamEvent;
use crate::client::{wire, LedgerClient, Stated};
use crate::models::PointBalance;
use crate::policy;
use crate::session::{Session, Sessions};
use crate::Error;

/// How the watch reconnects and polls.
#[derive(Debug, Clone)]
pub struct WatchPolicy {
    /// Between two polls of a backend without the stream, while the app is shown.
    pub poll_interval: Duration,
    /// Between two polls while the host says nothing of the app is shown.
    pub hidden_poll_interval: Duration,
    /// The first wait before reopening a stream that failed (doubling, jittered).
    pub reconnect_base: Duration,
    /// The longest wait before reopening a stream.
    pub reconnect_max: Duration,
    /// Nothing received for this long (not even the ledger's heartbeat, at least every 15 s):
    /// the connection is taken for dead and reopened.
    pub idle_timeout: Duration,
    /// How long a backend that answered 404/405/501 is polled before it is asked for the stream
    /// again (it may have been upgraded).
    pub stream_retry_interval: Duration,
}

impl Default for WatchPolicy {
    fn default() -> Self {
        Self {
            poll_interval: Duration::from_secs(30),
            hidden_poll_interval: Duration::from_secs(120),
            reconnect_base: Duration::from_millis(250),
            reconnect_max: Duration::from_secs(30),
            idle_timeout: Duration::from_secs(45),
            stream_retry_interval: Duration::from_secs(600),
        }
    }
}

/// A connection open this long (or that delivered a figure) worked: the next one is opened
/// after the first backoff step only.
const HEALTHY_AFTER: Duration = Duration::from_secs(5);

/// Where a figure came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FigureSource {
    /// An event of the ledger's stream.
    Stream,
    /// A poll of a backend without the stream.
    Poll,
}

/// What the watch reports to its host.
pub trait WatchListener: Send + Sync + 'static {
    /// A whole summary of `session`, the session numbered `generation` (see
    /// [`Sessions::snapshot`]); it may be current no more when it arrives.
    fn figure(
        &self,
        generation: u64,
        session: &Session,
        figure: &PointBalance,
        source: FigureSource,
    );

    /// Whether anything of the app is shown now (polls are slower otherwise). Called off the
    /// async workers: it may block briefly.
    fn foreground(&self) -> bool {
        true
    }

    /// The ledger answered (`true`: the stream opened, a poll was answered) or could not be
    /// reached (`false`: a network error, a timeout, a 5xx) for `session`.
    fn reachability(&self, session: &Session, reachable: bool) {
        let _ = (session, reachable);
    }
}

impl WatchListener for () {
    fn figure(&self, _: u64, _: &Session, _: &PointBalance, _: FigureSource) {}
}

/// The stream-or-poll loop of the signed-in account. Cheap to clone.
#[derive(Clone)]
pub struct BalanceWatch {
    inner: Arc<Inner>,
}

struct Inner {
    client: LedgerClient,
    sessions: Arc<Sessions>,
    policy: WatchPolicy,
    listener: Arc<dyn WatchListener>,
    /// Cuts a wait short (a new token, a new base URL, the network back).
    wake: Notify,
    stop: watch::Sender<bool>,
}

/// How one connection ended.
enum Ended {
    /// Reopen after the backoff of `failures` failures in a row.
    Retry,
    /// The backend has no stream: poll it.
    Unsupported,
    /// The token was refused or expired: wait for another (or the longest backoff).
    Token,
    /// No base URL yet: wait for one.
    NotConfigured,
}

impl BalanceWatch {
    /// A watch of `sessions`' account through `client` (its token source is not used: every
    /// request goes out with the token of the session it is about).
    pub fn new(
        client: LedgerClient,
        sessions: Arc<Sessions>,
        policy: WatchPolicy,
        listener: Arc<dyn WatchListener>,
    ) -> Self {
        Self {
            inner: Arc::new(Inner {
                client,
                sessions,
                policy,
                listener,
                wake: Notify::new(),
                stop: watch::Sender::new(false),
            }),
        }
    }

    /// Cuts the wait before the next connection or poll short: call it when a new token or a
    /// new base URL was set, or the network is back.
    pub fn wake(&self) {
        self.inner.wake.notify_one();
    }

    /// Stops [`BalanceWatch::run`] (and closes its stream).
    pub fn shutdown(&self) {
        self.inner.stop.send_replace(true);
    }

    /// Follows the session until [`BalanceWatch::shutdown`]: streams or polls its account's
    /// balance, and starts over at every change of account.
    pub async fn run(self) {
        let mut stop = self.inner.stop.subscribe();
        let mut sessions = self.inner.sessions.subscribe();
        loop {
            if *stop.borrow_and_update() {
                return;
            }
            sessions.borrow_and_update();
            let (session, generation) = self.inner.sessions.snapshot();
            let follow = async {
                match session {
                    Some(_) => self.follow(generation).await,
                    None => std::future::pending().await,
                }
            };
            tokio::select! {
                _ = follow => {}
                changed = sessions.changed() => if changed.is_err() { return },
                _ = stop.changed() => return,
            }
        }
    }

    /// Streams (or polls) the balance of session `generation` for as long as it is current.
    async fn follow(&self, generation: u64) {
        let policy = &self.inner.policy;
        let mut last_seq: Option<i64> = None;
        let mut failures = 0u32;
        let mut polling_since: Option<Instant> = None;
        loop {
            // The token now: the host may have refreshed it for the same account.
            let (current, now) = self.inner.sessions.snapshot();
            let session = match current {
                Some(current) if now == generation => current,
                _ => return,
            };
            if let Some(since) = polling_since {
                if since.elapsed() < policy.stream_retry_interval {
                    self.poll(&session, generation, &mut last_seq).await;
                    let listener = self.inner.listener.clone();
                    // The host may ask its windows (a round trip to its main thread).
                    let shown = tokio::task::spawn_blocking(move || listener.foreground())
                        .await
                        .unwrap_or(true);
                    let interval = if shown {
                        policy.poll_interval
                    } else {
                        policy.hidden_poll_interval
                    };
                    self.pause(interval).await;
                    continue;
                }
            }
            let wait = match self
                .connection(&session, generation, &mut last_seq, &mut failures)
                .await
            {
                Ended::Retry => {
                    polling_since = None;
                    policy::backoff(policy.reconnect_base, policy.reconnect_max, failures)
                }
                Ended::Unsupported => {
                    tracing::info!("the ledger has no balance stream: polling it");
                    polling_since = Some(Instant::now());
                    continue;
                }
                Ended::Token => policy.reconnect_max,
                Ended::NotConfigured => Duration::MAX,
            };
            self.pause(wait).await;
        }
    }

    /// One connection of the stream, until it ends.
    async fn connection(
        &self,
        session: &Session,
        generation: u64,
        last_seq: &mut Option<i64>,
        failures: &mut u32,
    ) -> Ended {
        let client = self.inner.client.as_token(session.token());
        let mut stream = match client.open_stream(*last_seq).await {
            Ok(stream) => {
                self.inner.listener.reachability(session, true);
                stream
            }
            Err(Error::Backend {
                status: 404 | 405 | 501,
                ..
            }) => {
                return Ended::Unsupported;
            }
            Err(Error::Unauthorized) => return Ended::Token,
            Err(Error::NotConfigured) => return Ended::NotConfigured,
            Err(error) => {
                if crate::offline::unreachable(&error) {
                    self.inner.listener.reachability(session, false);
                }
                tracing::debug!(%error, "the balance stream could not be opened");
                *failures = failures.saturating_add(1);
                return Ended::Retry;
            }
        };
        let opened = Instant::now();
        let mut delivered = false;
        let ended = loop {
            match stream.next(self.inner.policy.idle_timeout).await {
                Ok(Some(StreamEvent::Balance(stated))) => {
                    if !self.deliver(session, generation, stated, last_seq, FigureSource::Stream) {
                        delivered = false;
                        break Ended::Retry;
                    }
                    delivered = true;
                }
                Ok(Some(StreamEvent::End { reason })) => {
                    tracing::debug!(%reason, "the ledger ended the balance stream");
                    if reason == "token_expired" {
                        return Ended::Token;
                    }
                    break Ended::Retry;
                }
                Ok(None) => break Ended::Retry,
                Err(error) => {
                    tracing::debug!(%error, "the balance stream broke");
                    break Ended::Retry;
                }
            }
        };
        // A connection that worked is reopened at once (after the first backoff step); one that
        // failed at once backs off further, so a server that accepts and closes is not hammered.
        *failures = if delivered || opened.elapsed() >= HEALTHY_AFTER {
            1
        } else {
            failures.saturating_add(1)
        };
        ended
    }

    /// One poll of a backend without the stream.
    async fn poll(&self, session: &Session, generation: u64, last_seq: &mut Option<i64>) {
        let client = self.inner.client.as_token(session.token());
        match client.balance_stated().await {
            Ok(stated) => {
                self.inner.listener.reachability(session, true);
                self.deliver(session, generation, stated, last_seq, FigureSource::Poll);
            }
            Err(error) => {
                if crate::offline::unreachable(&error) {
                    self.inner.listener.reachability(session, false);
                }
                tracing::debug!(%error, "a balance poll failed");
            }
        }
    }

    /// Checks a figure (whole, of the session's account, newer than the last) and reports it;
    /// `false` when it is unusable (the connection is dropped).
    fn deliver(
        &self,
        session: &Session,
        generation: u64,
        stated: Stated<PointBalance>,
        last_seq: &mut Option<i64>,
        source: FigureSource,
    ) -> bool {
        if let Err(error) = wire::check_summary(&stated.value) {
            tracing::warn!(%error, "a balance figure is not whole: dropped");
            return false;
        }
        if let (Some(known), Some(stated)) = (session.ledger_user(), stated.user_id.as_deref()) {
            if known != stated {
                tracing::warn!("a balance figure of another account: dropped");
                return false;
            }
        }
        session.learn_ledger_user(stated.user_id.as_deref());
        let figure = stated.value;
        if let (Some(seq), Some(last)) = (figure.seq, *last_seq) {
            if seq <= last {
                return true;
            }
        }
        if figure.seq.is_some() {
            *last_seq = figure.seq;
        }
        self.inner
            .listener
            .figure(generation, session, &figure, source);
        true
    }

    /// Waits `wait` (or until woken; `Duration::MAX`: only until woken).
    async fn pause(&self, wait: Duration) {
        match Instant::now().checked_add(wait) {
            Some(deadline) => {
                tokio::select! {
                    _ = tokio::time::sleep_until(deadline) => {}
                    _ = self.inner.wake.notified() => {}
                }
            }
            None => self.inner.wake.notified().await,
        }
    }
}

impl std::fmt::Debug for BalanceWatch {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BalanceWatch")
            .field("policy", &self.inner.policy)
            .finish_non_exhaustive()
    }
}
