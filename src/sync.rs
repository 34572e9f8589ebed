//! Sends journaled charges: the first send of a finished job's charge, and the background sync
//! that sends whatever is still pending again until the ledger acknowledges it.
//!
//! Rules (the money rules of the plugin):
//! - a charge is journaled before it is sent, and only removed on the ledger's acknowledgement
//!   (or moved to the refused record when the ledger proves it can never apply);
//! - every attempt is sent with the same idempotency key and body, and **only with a token of
//!   the account that ran the job**: the token captured when the job started (kept in memory,
//!   never on disk, until that account has nothing pending), else the signed-in session's token
//!   when its account is the same; a charge of another account waits;
//! - the background sync re-sends with capped, jittered backoff (5 s → 5 min by default); it is
//!   woken at once by [`ChargeSync::wake`] (a sign-in, a successful ledger call) and by
//!   [`ChargeSync::sync_now`]; a `Retry-After` is waited out however long it is; passes never
//!   overlap, and a request for one made while one runs is served by a pass that starts after it.
//!
//! Nothing here knows Tauri: [`ChargeSync`] runs in any tokio program.

use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::Notify;
use tokio::time::Instant;

use crate::client::{ConsumeRequest, Failure, IdempotencyKey, LedgerClient, RetryPolicy};
use crate::journal::{proves_never_applicable, Journal, PendingCharge};
use crate::models::{ChargeOutcome, ChargeReceipt, RefusedCharge};
use crate::session::{Session, Sessions};
use crate::{Error, Result};

/// How the background sync paces its re-sends.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SyncPolicy {
    /// The wait after the first failed pass, before jitter.
    pub min_delay: Duration,
    /// The longest wait between two passes while charges are pending (a `Retry-After` may be
    /// longer: it is honoured).
    pub max_delay: Duration,
}

impl Default for SyncPolicy {
    fn default() -> Self {
        Self {
            min_delay: Duration::from_secs(5),
            max_delay: Duration::from_secs(300),
        }
    }
}

impl SyncPolicy {
    /// The jittered wait after `failures` failed passes in a row (1 for the first): between half
    /// and all of `min(max_delay, min_delay * 2^(failures - 1))`.
    pub fn delay_after(&self, failures: u32) -> Duration {
        let exponent = failures.saturating_sub(1).min(20);
        let ceiling = self
            .min_delay
            .saturating_mul(1 << exponent)
            .min(self.max_delay);
        ceiling.mul_f64(0.5 + fastrand::f64() * 0.5)
    }
}

/// What the sync tells its owner (the plugin emits events from these).
pub trait SyncListener: Send + Sync + 'static {
    /// The ledger acknowledged a charge of `account`; `first_send` is false for a re-send.
    fn acknowledged(&self, account: &str, receipt: &ChargeReceipt, first_send: bool) {
        let _ = (account, receipt, first_send);
    }
    /// The ledger refused a charge of `account` for good.
    fn refused(&self, account: &str, refused: &RefusedCharge) {
        let _ = (account, refused);
    }
}

impl SyncListener for () {}

/// What one pass of the sync did.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct SyncReport {
    /// Charges the ledger acknowledged (applied now, or found already applied).
    pub acknowledged: Vec<ChargeReceipt>,
    /// Charges the ledger refused for good.
    pub refused: Vec<RefusedCharge>,
    /// Charges sent but not acknowledged (unreachable, 5xx, 401, ...): sent again later.
    pub failed: usize,
    /// Charges not sent because no token of their account is at hand.
    pub waiting: usize,
    /// Charges skipped because they were being sent at that moment.
    pub busy: usize,
    /// The longest `Retry-After` the ledger asked for during the pass.
    pub retry_after: Option<Duration>,
}

/// The charge sender and background sync. Cheap to clone.
#[derive(Clone)]
pub struct ChargeSync {
    inner: Arc<Inner>,
}

struct Inner {
    client: LedgerClient,
    journal: Arc<Journal>,
    sessions: Arc<Sessions>,
    policy: SyncPolicy,
    listener: Arc<dyn SyncListener>,
    /// Account → the token captured when one of its jobs started (memory only).
    captured: Mutex<HashMap<String, String>>,
    /// Charges being sent right now (by their first send or a pass): never sent twice at once.
    in_flight: Mutex<HashSet<(String, String)>>,
    /// Serialises passes.
    pass_lock: tokio::sync::Mutex<()>,
    /// Passes started so far.
    passes_started: AtomicU64,
    /// The report of the last pass.
    last_report: Mutex<SyncReport>,
    /// Wakes the background loop (a permit is kept when it is busy: "run again").
    wake: Notify,
    /// Whether the last pass failed to reach the ledger.
    failing: AtomicBool,
    /// No automatic pass before this instant (the ledger's `Retry-After`).
    retry_until: Mutex<Option<Instant>>,
    /// Set by [`ChargeSync::shutdown`]: the background loop ends.
    stopped: AtomicBool,
}

impl ChargeSync {
    /// A sender of `journal`'s charges through `client`, using `sessions` for the signed-in
    /// account's token.
    pub fn new(
        client: LedgerClient,
        journal: Arc<Journal>,
        sessions: Arc<Sessions>,
        policy: SyncPolicy,
        listener: Arc<dyn SyncListener>,
    ) -> Self {
        Self {
            inner: Arc::new(Inner {
                client,
                journal,
                sessions,
                policy,
                listener,
                captured: Mutex::default(),
                in_flight: Mutex::default(),
                pass_lock: tokio::sync::Mutex::new(()),
                passes_started: AtomicU64::new(0),
                last_report: Mutex::default(),
                wake: Notify::new(),
                failing: AtomicBool::new(false),
                retry_until: Mutex::new(None),
                stopped: AtomicBool::new(false),
            }),
        }
    }

    /// The journal the charges are kept in.
    pub fn journal(&self) -> &Arc<Journal> {
        &self.inner.journal
    }

    /// Journals and sends the charge of a finished job run in `session`: acknowledged, pending
    /// (journaled; the background sync sends it again), or refused for good.
    ///
    /// If the journal cannot be written (disk full, read-only), the charge is still sent once,
    /// unjournaled: the work it pays for is done. If that send fails too, the outcome is
    /// `Refused` with the storage error, since nothing will send it again.
    pub async fn charge(
        &self,
        session: &Session,
        request: ConsumeRequest,
        key: &IdempotencyKey,
    ) -> ChargeOutcome {
        self.capture(session);
        let charge = PendingCharge::new(session.account(), key, request);
        let idempotency_key = charge.idempotency_key.clone();
        // Claimed before it is journaled, so that a pass never takes this first send over.
        let Some(sending) = InFlight::claim(&self.inner, &charge) else {
            // This very charge is being sent (the same job reported twice): that send settles it.
            return ChargeOutcome::Pending { idempotency_key };
        };
        let recorded = {
            let journal = self.inner.journal.clone();
            let charge = charge.clone();
            blocking(move || journal.record(&charge)).await
        };
        match recorded {
            Ok(()) => {}
            Err(error @ Error::InvalidArgument { .. }) => {
                return ChargeOutcome::Refused {
                    idempotency_key,
                    error: error.to_points_error(),
                }
            }
            Err(error) => {
                tracing::error!(%error, "could not journal a charge; sending it once, unjournaled");
                let client = self.inner.client.as_token(session.token());
                return match client.consume(&charge.request, key).await {
                    Ok(receipt) => {
                        self.inner
                            .listener
                            .acknowledged(session.account(), &receipt, true);
                        ChargeOutcome::Acknowledged { receipt }
                    }
                    Err(send_error) => {
                        tracing::error!(%send_error, "an unjournaled charge was not acknowledged and may be lost");
                        ChargeOutcome::Refused {
                            idempotency_key,
                            error: error.to_points_error(),
                        }
                    }
                };
            }
        }
        let client = self.inner.client.as_token(session.token());
        match send_with(&client, &charge).await {
            Ok(receipt) => {
                self.acknowledge(&charge, &receipt, true).await;
                ChargeOutcome::Acknowledged { receipt }
            }
            Err(failure) if proves_never_applicable(&failure.error) => {
                let error = failure.error.to_points_error();
                self.refuse(&charge, &failure.error).await;
                ChargeOutcome::Refused {
                    idempotency_key,
                    error,
                }
            }
            Err(failure) => {
                tracing::info!(error = %failure.error, "charge kept for the background sync");
                self.inner.failing.store(true, Ordering::SeqCst);
                if failure.retry_after.is_some() {
                    self.retry_after(failure.retry_after);
                }
                drop(sending);
                self.wake();
                ChargeOutcome::Pending { idempotency_key }
            }
        }
    }

    /// Stops the background loop and releases the journal (the app is quitting): pending
    /// charges stay on disk for the next start.
    pub fn shutdown(&self) {
        self.inner.stopped.store(true, Ordering::SeqCst);
        self.inner.wake.notify_one();
        self.inner.journal.close();
    }

    /// Asks the background loop for a pass as soon as it may (a `Retry-After` still applies).
    pub fn wake(&self) {
        self.inner.wake.notify_one();
    }

    /// A ledger call succeeded: if the last pass could not reach the ledger, try again now.
    pub fn ledger_reachable(&self) {
        if self.inner.failing.swap(false, Ordering::SeqCst) {
            self.wake();
        }
    }

    /// Runs a pass now (waiting for one under way to end first) and reports it. Two requests
    /// made while a pass runs are both served by the next one.
    pub async fn sync_now(&self) -> SyncReport {
        let ticket = self.inner.passes_started.load(Ordering::SeqCst);
        let _pass = self.inner.pass_lock.lock().await;
        if self.inner.passes_started.load(Ordering::SeqCst) > ticket {
            // A pass that started after this request has run to its end meanwhile.
            return self.last_report();
        }
        self.inner.passes_started.fetch_add(1, Ordering::SeqCst);
        let report = self.pass().await;
        *self
            .inner
            .last_report
            .lock()
            .unwrap_or_else(|p| p.into_inner()) = report.clone();
        self.inner
            .failing
            .store(report.failed > 0, Ordering::SeqCst);
        report
    }

    /// The background loop: a pass at start, then after every wake, and while charges fail,
    /// after a jittered backoff. A `Retry-After` from the ledger is waited out first, however
    /// long (wakes do not cut it short). Spawn it once on the app's runtime.
    pub async fn run(self) {
        let mut failures = 0u32;
        while !self.inner.stopped.load(Ordering::SeqCst) {
            let until = *self
                .inner
                .retry_until
                .lock()
                .unwrap_or_else(|p| p.into_inner());
            if let Some(until) = until {
                tokio::time::sleep_until(until).await;
            }
            if self.inner.stopped.load(Ordering::SeqCst) {
                break;
            }
            let report = self.sync_now().await;
            self.retry_after(report.retry_after);
            let delay = if report.failed > 0 {
                failures += 1;
                Some(self.inner.policy.delay_after(failures))
            } else {
                failures = 0;
                // Charges being sent by their first send are looked at again soon.
                (report.busy > 0).then_some(self.inner.policy.min_delay)
            };
            if let Some(delay) = delay {
                tokio::select! {
                    _ = self.inner.wake.notified() => {}
                    _ = tokio::time::sleep(delay) => {}
                }
            } else {
                self.inner.wake.notified().await;
            }
        }
    }

    /// Holds automatic passes back for the ledger's `Retry-After` (`None` lifts the hold).
    fn retry_after(&self, wait: Option<Duration>) {
        *self
            .inner
            .retry_until
            .lock()
            .unwrap_or_else(|p| p.into_inner()) = wait.map(|wait| Instant::now() + wait);
    }

    /// The pending charges of `account`.
    pub fn pending_of(&self, account: &str) -> Vec<PendingCharge> {
        self.inner.journal.pending_of(account)
    }

    fn last_report(&self) -> SyncReport {
        self.inner
            .last_report
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    /// One pass over every pending charge whose account has a token at hand: one attempt
    /// each (the loop's backoff paces retries), and none more once the ledger proves
    /// unreachable or overloaded.
    async fn pass(&self) -> SyncReport {
        let mut report = SyncReport::default();
        let mut unreachable = false;
        for charge in self.inner.journal.pending() {
            let tokens = self.tokens_for(&charge.account);
            if tokens.is_empty() {
                report.waiting += 1;
                continue;
            }
            if unreachable {
                report.failed += 1;
                continue;
            }
            let Some(_sending) = InFlight::claim(&self.inner, &charge) else {
                // Being sent by its first send: if that fails, it wakes the loop again.
                report.busy += 1;
                continue;
            };
            match self.send(&charge, tokens).await {
                Ok(receipt) => {
                    self.acknowledge(&charge, &receipt, false).await;
                    report.acknowledged.push(receipt);
                }
                Err(failure) if proves_never_applicable(&failure.error) => {
                    if let Some(refused) = self.refuse(&charge, &failure.error).await {
                        report.refused.push(refused);
                    }
                }
                Err(failure) => {
                    report.failed += 1;
                    report.retry_after = report.retry_after.max(failure.retry_after);
                    unreachable = ledger_unavailable(&failure.error);
                }
            }
        }
        report
    }

    /// Sends `charge` once with each of `tokens` (all of its own account) until one is not
    /// refused as unauthorized.
    async fn send(
        &self,
        charge: &PendingCharge,
        tokens: Vec<String>,
    ) -> std::result::Result<ChargeReceipt, Failure> {
        let client = self.inner.client.with_retry(RetryPolicy::never());
        let mut outcome = Err(Failure::from(Error::Unauthorized));
        for token in tokens {
            outcome = send_with(&client.as_token(token), charge).await;
            match &outcome {
                Err(failure) if failure.error == Error::Unauthorized => continue,
                _ => break,
            }
        }
        outcome
    }

    /// The tokens a charge of `account` may be sent with, best first.
    fn tokens_for(&self, account: &str) -> Vec<String> {
        let mut tokens = Vec::new();
        if let Some(token) = self
            .inner
            .captured
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(account)
        {
            tokens.push(token.clone());
        }
        if let Some(session) = self.inner.sessions.current() {
            if session.account() == account && !tokens.iter().any(|t| t == session.token()) {
                tokens.push(session.token().to_owned());
            }
        }
        tokens
    }

    /// Whether a charge of `account` other than the one settling now is being sent.
    fn sending_for(&self, account: &str) -> bool {
        self.inner
            .in_flight
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .iter()
            .filter(|(owner, _)| owner == account)
            .count()
            > 1
    }

    fn capture(&self, session: &Session) {
        self.inner
            .captured
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(session.account().to_owned(), session.token().to_owned());
    }

    async fn acknowledge(&self, charge: &PendingCharge, receipt: &ChargeReceipt, first: bool) {
        let journal = self.inner.journal.clone();
        let (account, key) = (charge.account.clone(), charge.idempotency_key.clone());
        let removed = blocking(move || {
            journal.remove(&account, &key)?;
            Ok(journal.count_of(&account) == 0)
        })
        .await;
        match removed {
            Ok(true) if !self.sending_for(&charge.account) => {
                // Nothing of this account is pending or being sent: forget its captured token.
                self.inner
                    .captured
                    .lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .remove(&charge.account);
            }
            Ok(_) => {}
            Err(error) => {
                tracing::error!(%error, "could not remove an acknowledged charge from the journal")
            }
        }
        self.inner
            .listener
            .acknowledged(&charge.account, receipt, first);
    }

    async fn refuse(&self, charge: &PendingCharge, error: &Error) -> Option<RefusedCharge> {
        tracing::warn!(%error, service = %charge.request.service, "the ledger refused a charge for good");
        let journal = self.inner.journal.clone();
        let (moved, error) = (charge.clone(), error.clone());
        match blocking(move || journal.refuse(&moved, &error)).await {
            Ok(refused) => {
                self.inner.listener.refused(&charge.account, &refused);
                Some(refused)
            }
            Err(error) => {
                tracing::error!(%error, "could not record a refused charge; it stays pending");
                None
            }
        }
    }
}

impl std::fmt::Debug for ChargeSync {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ChargeSync")
            .field("journal", &self.inner.journal)
            .finish_non_exhaustive()
    }
}

/// A claim on sending one charge; released when dropped.
struct InFlight<'a> {
    inner: &'a Inner,
    id: (String, String),
}

impl<'a> InFlight<'a> {
    fn claim(inner: &'a Inner, charge: &PendingCharge) -> Option<Self> {
        let id = (charge.account.clone(), charge.idempotency_key.clone());
        let fresh = inner
            .in_flight
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(id.clone());
        fresh.then_some(Self { inner, id })
    }
}

impl Drop for InFlight<'_> {
    fn drop(&mut self) {
        self.inner
            .in_flight
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(&self.id);
    }
}

/// Sends `charge` through `client` (signed in as the charge's account).
async fn send_with(
    client: &LedgerClient,
    charge: &PendingCharge,
) -> std::result::Result<ChargeReceipt, Failure> {
    let key = IdempotencyKey::parse(charge.idempotency_key.clone())?;
    client.consume_detailed(&charge.request, &key).await
}

/// Whether an error says the ledger cannot take requests now (down, overloaded, timing out):
/// sending more in the same pass would only wait for the same answer.
fn ledger_unavailable(error: &Error) -> bool {
    match error {
        Error::Network(_) | Error::Timeout => true,
        Error::Backend { status, .. } => *status >= 500 || *status == 429,
        _ => false,
    }
}

/// Runs blocking file I/O off the async workers.
async fn blocking<T: Send + 'static>(
    work: impl FnOnce() -> Result<T> + Send + 'static,
) -> Result<T> {
    tokio::task::spawn_blocking(work)
        .await
        .unwrap_or_else(|error| Err(Error::Storage(format!("journal task failed: {error}"))))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_grows_from_five_seconds_to_five_minutes_with_jitter() {
        let policy = SyncPolicy::default();
        for _ in 0..100 {
            let first = policy.delay_after(1);
            assert!(first >= Duration::from_millis(2500) && first <= Duration::from_secs(5));
            let fourth = policy.delay_after(4);
            assert!(fourth >= Duration::from_secs(20) && fourth <= Duration::from_secs(40));
            let late = policy.delay_after(30);
            assert!(late >= Duration::from_secs(150) && late <= Duration::from_secs(300));
        }
    }
}
