//! Sends journaled charges: the first send of a finished job's charge, and the background sync
//! that sends whatever is still pending again until the ledger acknowledges it.
//!
//! Rules (the money rules of the plugin):
//! - a charge is journaled before it is sent, and only removed on the ledger's acknowledgement
//!   (or moved to the refused record on a definitive verdict, see [`crate::policy`]);
//! - every attempt is sent with the same idempotency key and body, and **only with a token of
//!   the account that ran the job**: the token captured when the job started (kept in memory,
//!   never on disk, until that account has nothing pending), else the signed-in session's token
//!   when the session owns the charge, else a token the host's provider hands for that account;
//!   where the ledger stated the job's account, a token the ledger knows as another account is
//!   never used;
//! - the background sync re-sends with capped, jittered backoff (5 s → 5 min by default); it is
//!   woken at once by [`ChargeSync::wake`] (a sign-in), by [`ChargeSync::sync_now`], and by a
//!   successful ledger call after a pass that found the ledger unreachable; a `Retry-After` is
//!   waited out up to the policy's `max_delay`, and [`ChargeSync::shutdown`] interrupts it;
//!   passes never overlap, a request for one made while one runs is served by a pass that starts
//!   after it, and a pass sends only charges still journaled when their turn comes; a pass
//!   serves up to `accounts_at_once` accounts at once, one charge of an account at a time;
//!   charges with no token at hand are looked at again every `max_delay`, and a token the ledger
//!   could not be asked about is a failure (backoff), not a charge waiting for a token.
//!
//! Nothing here knows Tauri: [`ChargeSync`] runs in any tokio program.

use std::collections::hash_map::Entry;
use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures_util::StreamExt;
use tokio::sync::Notify;
use tokio::time::Instant;

use crate::client::{ConsumeRequest, Failure, IdempotencyKey, LedgerClient, RetryPolicy};
use crate::journal::{Journal, PendingCharge};
use crate::models::{ChargeOutcome, ChargeReceipt, PendingStatus, RefusedCharge};
use crate::policy::{self, Verdict};
use crate::session::{Session, Sessions};
use crate::{Error, Result};

/// How the background sync paces its re-sends.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SyncPolicy {
    /// The wait after the first failed pass, before jitter.
    pub min_delay: Duration,
    /// The longest wait between two passes while charges are pending, and the longest
    /// `Retry-After` honoured.
    pub max_delay: Duration,
    /// How many accounts a pass sends charges for at once (each account's charges go one at a
    /// time, in journal order).
    pub accounts_at_once: usize,
}

impl Default for SyncPolicy {
    fn default() -> Self {
        Self {
            min_delay: Duration::from_secs(5),
            max_delay: Duration::from_secs(300),
            accounts_at_once: 8,
        }
    }
}

impl SyncPolicy {
    /// The jittered wait after `failures` failed passes in a row (1 for the first): between half
    /// and all of `min(max_delay, min_delay * 2^(failures - 1))`.
    pub fn delay_after(&self, failures: u32) -> Duration {
        policy::backoff(self.min_delay, self.max_delay, failures.saturating_sub(1))
    }
}

/// Failures in a row saying the ledger cannot take requests (down, overloaded, timing out) after
/// which a pass sends nothing more.
pub const UNAVAILABLE_STOPS_A_PASS: usize = 3;

/// What the sync tells its owner (the plugin turns these into events).
pub trait SyncListener: Send + Sync + 'static {
    /// The ledger acknowledged `charge`; `first_send` is false for a re-send.
    fn acknowledged(&self, charge: &PendingCharge, receipt: &ChargeReceipt, first_send: bool) {
        let _ = (charge, receipt, first_send);
    }
    /// The ledger refused `charge` for good; called once per charge.
    fn refused(&self, charge: &PendingCharge, refused: &RefusedCharge) {
        let _ = (charge, refused);
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
    /// The longest `Retry-After` the ledger asked for during the pass, capped.
    pub retry_after: Option<Duration>,
    /// Whether a failure said the ledger cannot take requests now (down, overloaded).
    pub unavailable: bool,
}

/// What the first send of a charge ended with.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub enum FirstSend {
    /// Acknowledged, pending (journaled, sent again by the sync) or refused for good.
    Outcome(ChargeOutcome),
    /// A charge that may not go into debt met too few points: it was not applied, and is no
    /// longer journaled.
    Declined(Error),
}

impl FirstSend {
    /// The outcome, unless the charge was declined.
    pub fn outcome(&self) -> Option<&ChargeOutcome> {
        match self {
            FirstSend::Outcome(outcome) => Some(outcome),
            FirstSend::Declined(_) => None,
        }
    }

    /// The receipt, when the charge was acknowledged.
    pub fn receipt(&self) -> Option<&ChargeReceipt> {
        self.outcome().and_then(ChargeOutcome::receipt)
    }

    /// Whether the charge is pending.
    pub fn is_pending(&self) -> bool {
        self.outcome().is_some_and(ChargeOutcome::is_pending)
    }
}

/// The charge sender and background sync. Cheap to clone.
#[derive(Clone)]
pub struct ChargeSync {
    inner: Arc<Inner>,
}

/// A token captured when a job started, and the ledger account it was known as then.
#[derive(Clone)]
struct Captured {
    token: String,
    ledger_user: Option<String>,
}

struct Inner {
    client: LedgerClient,
    journal: Arc<Journal>,
    sessions: Arc<Sessions>,
    policy: SyncPolicy,
    listener: Arc<dyn SyncListener>,
    /// Account → the token captured when one of its jobs started (memory only).
    captured: Mutex<HashMap<String, Captured>>,
    /// Charges being sent right now (by their first send or a pass): never sent twice at once.
    /// (account, key) → the request being sent under it.
    in_flight: Mutex<HashMap<(String, String), ConsumeRequest>>,
    /// Serialises passes.
    pass_lock: tokio::sync::Mutex<()>,
    /// Passes started so far.
    passes_started: AtomicU64,
    /// The report of the last pass.
    last_report: Mutex<SyncReport>,
    /// Wakes the background loop (a permit is kept when it is busy: "run again").
    wake: Notify,
    /// Ends the background loop's waits (shutdown).
    stop: Notify,
    /// Whether the last pass found the ledger unreachable or overloaded.
    unreachable: AtomicBool,
    /// When a successful ledger call last cut the backoff short.
    last_reachable_wake: Mutex<Option<Instant>>,
    /// No automatic pass before this instant (the ledger's `Retry-After`, capped).
    retry_until: Mutex<Option<Instant>>,
    /// Set by [`ChargeSync::shutdown`]: the background loop ends.
    stopped: AtomicBool,
    /// The offline allowances charges may have been made under.
    offline: std::sync::OnceLock<crate::offline::Offline>,
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
                stop: Notify::new(),
                unreachable: AtomicBool::new(false),
                last_reachable_wake: Mutex::new(None),
                retry_until: Mutex::new(None),
                stopped: AtomicBool::new(false),
                offline: std::sync::OnceLock::new(),
            }),
        }
    }

    /// The journal the charges are kept in.
    pub fn journal(&self) -> &Arc<Journal> {
        &self.inner.journal
    }

    /// The sessions the sync takes tokens from.
    pub fn sessions(&self) -> &Arc<Sessions> {
        &self.inner.sessions
    }

    /// Settles charges made under `offline`'s allowances: what each cost is kept as spent under
    /// its allowance before it leaves the journal, and a new allowance is asked for once the
    /// ledger took them. Set once.
    pub fn set_offline(&self, offline: crate::offline::Offline) {
        let _ = self.inner.offline.set(offline);
    }

    /// Asks, in a task of its own, for a new allowance of `session` when one is due (see
    /// [`crate::offline::Offline::refresh_if_due`]); `balance`: its balance, when known. Nothing
    /// when offline work is off.
    pub fn refresh_allowance(&self, session: Session, balance: Option<i64>) {
        let Some(offline) = self.inner.offline.get().cloned() else {
            return;
        };
        if !offline.due(&session, &self.inner.journal, balance) {
            return; // Most calls (one per pre-check and per charge): nothing to spawn.
        }
        let (client, journal) = (self.inner.client.clone(), self.inner.journal.clone());
        tokio::spawn(async move {
            if let Err(error) = offline
                .refresh_if_due(&client, &session, &journal, balance)
                .await
            {
                tracing::debug!(%error, "no new offline allowance");
            }
        });
    }

    /// The offline allowances, when set.
    pub fn offline(&self) -> Option<&crate::offline::Offline> {
        self.inner.offline.get()
    }

    /// The pacing policy.
    pub fn policy(&self) -> &SyncPolicy {
        &self.inner.policy
    }

    /// Journals `charge` (of a finished job run in `session`) and sends it once.
    ///
    /// If the journal cannot be written (disk full, read-only), the charge is still sent once,
    /// unjournaled: the work it pays for is done. If that send fails too, the charge is kept
    /// in the refused record (in memory) and the outcome is `Refused` with the storage error,
    /// since nothing will send it again by itself.
    pub async fn charge(&self, session: &Session, charge: PendingCharge) -> FirstSend {
        let idempotency_key = charge.idempotency_key.clone();
        // Claimed before it is journaled, so that a pass never takes this first send over, and
        // before the token is captured, so that a settling charge of the same account never
        // forgets it meanwhile (see `forget`).
        let claimed = InFlight::claim(&self.inner, &charge);
        self.capture(session);
        let sending = match claimed {
            Ok(sending) => sending,
            Err(being_sent) => return self.already_sending(charge, being_sent).await,
        };
        let recorded = {
            let journal = self.inner.journal.clone();
            let charge = charge.clone();
            blocking(move || journal.record(&charge)).await
        };
        let client = self.inner.client.as_token(session.token());
        match recorded {
            Ok(()) => {}
            Err(error @ Error::InvalidArgument { .. }) => {
                // Another charge is pending under this key: this one can never apply.
                self.record_refusal(&charge, &error).await;
                return FirstSend::Outcome(ChargeOutcome::Refused {
                    idempotency_key,
                    error: error.to_points_error(),
                });
            }
            Err(error) => {
                tracing::error!(%error, "could not journal a charge; sending it once, unjournaled");
                return match send_with(&client, &charge).await {
                    Ok(receipt) => {
                        self.inner.listener.acknowledged(&charge, &receipt, true);
                        FirstSend::Outcome(ChargeOutcome::Acknowledged { receipt })
                    }
                    Err(failure) if declines(&charge, &failure.error) => {
                        FirstSend::Declined(failure.error)
                    }
                    Err(send_error) => {
                        tracing::error!(error = %send_error.error, "an unjournaled charge was not acknowledged");
                        self.record_refusal(&charge, &error).await;
                        FirstSend::Outcome(ChargeOutcome::Refused {
                            idempotency_key,
                            error: error.to_points_error(),
                        })
                    }
                };
            }
        }
        match send_with(&client, &charge).await {
            Ok(receipt) => {
                self.acknowledge(&charge, &receipt, true).await;
                FirstSend::Outcome(ChargeOutcome::Acknowledged { receipt })
            }
            Err(failure) if declines(&charge, &failure.error) => {
                // Not applied, and no work is waiting for it: not pending, not refused.
                self.forget(&charge).await;
                FirstSend::Declined(failure.error)
            }
            Err(failure) => match self.verdict(&charge, &failure) {
                Verdict::Refuse => {
                    let error = failure.error.to_points_error();
                    self.refuse(&charge, &failure.error).await;
                    FirstSend::Outcome(ChargeOutcome::Refused {
                        idempotency_key,
                        error,
                    })
                }
                Verdict::Hold {
                    not_before,
                    unavailable,
                } => {
                    tracing::info!(error = %failure.error, "charge kept for the background sync");
                    if unavailable {
                        self.inner.unreachable.store(true, Ordering::SeqCst);
                    }
                    if not_before.is_some() {
                        self.hold(not_before);
                    }
                    drop(sending);
                    self.wake();
                    FirstSend::Outcome(ChargeOutcome::Pending { idempotency_key })
                }
            },
        }
    }

    /// The first send of `charge` while a charge under its key is being sent (`being_sent` is
    /// that one's request): the same job reported twice is settled by that send; a different
    /// charge under the key can never apply.
    async fn already_sending(
        &self,
        charge: PendingCharge,
        being_sent: ConsumeRequest,
    ) -> FirstSend {
        let idempotency_key = charge.idempotency_key.clone();
        if being_sent != charge.request {
            let error = conflict();
            self.record_refusal(&charge, &error).await;
            return FirstSend::Outcome(ChargeOutcome::Refused {
                idempotency_key,
                error: error.to_points_error(),
            });
        }
        FirstSend::Outcome(ChargeOutcome::Pending { idempotency_key })
    }

    /// Stops the background loop (interrupting any wait) and releases the journal (the app is
    /// quitting): pending charges stay on disk for the next start.
    pub fn shutdown(&self) {
        self.inner.stopped.store(true, Ordering::SeqCst);
        self.inner.stop.notify_one();
        self.inner.wake.notify_one();
        self.inner.journal.close();
    }

    /// Whether [`ChargeSync::shutdown`] was called.
    pub fn is_stopped(&self) -> bool {
        self.inner.stopped.load(Ordering::SeqCst)
    }

    /// Asks the background loop for a pass as soon as it may (a `Retry-After` still applies).
    pub fn wake(&self) {
        self.inner.wake.notify_one();
    }

    /// A ledger call succeeded: if the last pass found the ledger unreachable, try again now
    /// (at most once per `min_delay`). Failures of another kind (a refused token) keep their
    /// backoff.
    pub fn ledger_reachable(&self) {
        if !self.inner.unreachable.load(Ordering::SeqCst) {
            return;
        }
        let now = Instant::now();
        {
            let mut last = self
                .inner
                .last_reachable_wake
                .lock()
                .unwrap_or_else(|p| p.into_inner());
            if last.is_some_and(|last| now.duration_since(last) < self.inner.policy.min_delay) {
                return;
            }
            *last = Some(now);
        }
        if self.inner.unreachable.swap(false, Ordering::SeqCst) {
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
            .unreachable
            .store(report.unavailable, Ordering::SeqCst);
        report
    }

    /// The background loop: a pass at start, then after every wake, and while charges fail,
    /// after a jittered backoff. A `Retry-After` from the ledger (capped at the policy's
    /// `max_delay`) is waited out first; wakes do not cut it short, a shutdown does. Spawn it
    /// once on the app's runtime.
    pub async fn run(self) {
        let mut failures = 0u32;
        // A sign-in (or any change of account) wakes the loop: its charges are sent at once.
        let mut sessions = self.inner.sessions.subscribe();
        while !self.is_stopped() {
            let until = *self
                .inner
                .retry_until
                .lock()
                .unwrap_or_else(|p| p.into_inner());
            if let Some(until) = until {
                tokio::select! {
                    _ = tokio::time::sleep_until(until) => {}
                    _ = self.inner.stop.notified() => {}
                }
            }
            if self.is_stopped() {
                break;
            }
            let report = self.sync_now().await;
            self.hold(report.retry_after);
            let delay = if report.failed > 0 {
                failures += 1;
                Some(self.inner.policy.delay_after(failures))
            } else {
                failures = 0;
                if report.busy > 0 {
                    // Charges being sent by their first send are looked at again soon.
                    Some(self.inner.policy.min_delay)
                } else {
                    // Charges with no token at hand are looked at again now and then: the
                    // host's provider may hand one later.
                    (report.waiting > 0).then_some(self.inner.policy.max_delay)
                }
            };
            let sleep = async {
                match delay {
                    Some(delay) => tokio::time::sleep(delay).await,
                    None => std::future::pending().await,
                }
            };
            tokio::select! {
                _ = self.inner.wake.notified() => {}
                _ = sleep => {}
                _ = self.inner.stop.notified() => {}
                changed = sessions.changed() => {
                    if changed.is_err() {
                        break;
                    }
                }
            }
        }
    }

    /// Holds automatic passes back for the ledger's `Retry-After`, capped at the policy's
    /// `max_delay` (`None` lifts the hold).
    fn hold(&self, wait: Option<Duration>) {
        let until = wait.and_then(|wait| {
            policy::deadline_after(Instant::now(), wait.min(self.inner.policy.max_delay))
        });
        *self
            .inner
            .retry_until
            .lock()
            .unwrap_or_else(|p| p.into_inner()) = until;
    }

    /// The pending charges of `account`.
    pub fn pending_of(&self, account: &str) -> Vec<PendingCharge> {
        self.inner.journal.pending_of(account)
    }

    /// The number of `session`'s pending charges (0 while signed out).
    pub fn pending_count(&self, session: Option<&Session>) -> usize {
        session.map_or(0, |session| {
            self.inner
                .journal
                .tally_where(|charge| session.owns(&charge.account, charge.ledger_user.as_deref()))
                .0
        })
    }

    /// The signed-in account's pending and refused charges, and how many wait for others.
    /// Reads memory only.
    pub fn status(&self) -> PendingStatus {
        let (current, session) = self.inner.sessions.snapshot();
        let journal = &self.inner.journal;
        let Some(current) = current else {
            return PendingStatus {
                count: 0,
                oldest_age_seconds: None,
                refused: Vec::new(),
                signed_in: false,
                session,
                other_accounts: count(journal.len()),
            };
        };
        let pending = journal
            .pending_where(|charge| current.owns(&charge.account, charge.ledger_user.as_deref()));
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|since| since.as_secs())
            .unwrap_or_default();
        PendingStatus {
            count: count(pending.len()),
            oldest_age_seconds: pending
                .first()
                .map(|oldest| now.saturating_sub(oldest.recorded_at)),
            refused: journal.refused_where(|account, user| current.owns(account, user)),
            signed_in: true,
            session,
            other_accounts: count(journal.len().saturating_sub(pending.len())),
        }
    }

    /// Moves the signed-in account's refused charge under `key` back to the pending charges and
    /// wakes the sync to send it.
    pub async fn retry_refused(&self, key: &str) -> Result<PendingStatus> {
        let session = self.inner.sessions.current().ok_or(Error::Unauthorized)?;
        let journal = self.inner.journal.clone();
        let key = key.to_owned();
        let moved = blocking(move || {
            journal.retry_refused(&key, |account, user| session.owns(account, user))
        })
        .await?;
        if moved.is_none() {
            return Err(Error::invalid_argument(
                "idempotencyKey",
                "no refused charge of the signed-in account has this key",
            ));
        }
        self.wake();
        Ok(self.status())
    }

    /// Removes the signed-in account's refused charge under `key` from the record.
    pub async fn dismiss_refused(&self, key: &str) -> Result<PendingStatus> {
        let session = self.inner.sessions.current().ok_or(Error::Unauthorized)?;
        let journal = self.inner.journal.clone();
        let key = key.to_owned();
        blocking(move || {
            journal.dismiss_refused(&key, |account, user| session.owns(account, user))
        })
        .await?;
        Ok(self.status())
    }

    fn last_report(&self) -> SyncReport {
        self.inner
            .last_report
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    fn verdict(&self, charge: &PendingCharge, failure: &Failure) -> Verdict {
        policy::charge_verdict(
            &failure.error,
            failure.retry_after,
            charge.request.allow_debt,
            self.inner.policy.max_delay,
        )
    }

    /// One pass over every pending charge whose account has a token at hand: one attempt
    /// each (the loop's backoff paces retries), none more after
    /// [`UNAVAILABLE_STOPS_A_PASS`] answers in a row saying the ledger is unreachable or
    /// overloaded, and none for a charge settled since the pass began. Up to the policy's
    /// `accounts_at_once` accounts are served at once; one account's charges go one after the
    /// other, in the order they were journaled.
    async fn pass(&self) -> SyncReport {
        let state = PassState::default();
        let mut by_account: Vec<(String, Vec<PendingCharge>)> = Vec::new();
        let mut index: HashMap<String, usize> = HashMap::new();
        for charge in self.inner.journal.pending() {
            let slot = *index.entry(charge.account.clone()).or_insert_with(|| {
                by_account.push((charge.account.clone(), Vec::new()));
                by_account.len() - 1
            });
            by_account[slot].1.push(charge);
        }
        let at_once = self.inner.policy.accounts_at_once.max(1);
        futures_util::stream::iter(by_account)
            .for_each_concurrent(at_once, |(_, charges)| async {
                // What the ledger said of each token asked, for this account's charges.
                let mut verified = HashMap::new();
                for charge in charges {
                    if self.is_stopped() {
                        break;
                    }
                    self.pass_one(&charge, &mut verified, &state).await;
                }
            })
            .await;
        state.report.into_inner().unwrap_or_else(|p| p.into_inner())
    }

    /// Sends one charge of a pass, unless it is being sent, settled, or the pass has stopped.
    async fn pass_one(
        &self,
        charge: &PendingCharge,
        verified: &mut HashMap<String, Option<String>>,
        state: &PassState,
    ) {
        let Ok(_sending) = InFlight::claim(&self.inner, charge) else {
            // Being sent by its first send: if that fails, it wakes the loop again.
            state.update(|report| report.busy += 1);
            return;
        };
        if !self
            .inner
            .journal
            .contains(&charge.account, &charge.idempotency_key)
        {
            // Acknowledged or refused since the pass took its list.
            return;
        }
        if state.unavailable_in_a_row.load(Ordering::SeqCst) >= UNAVAILABLE_STOPS_A_PASS {
            state.update(|report| report.failed += 1);
            return;
        }
        let tokens = match self.tokens_for(charge, verified).await {
            Ok(tokens) if tokens.is_empty() => {
                state.update(|report| report.waiting += 1);
                return;
            }
            Ok(tokens) => tokens,
            Err(failure) => {
                // The ledger could not say whose a token is: tried again after the backoff.
                state.held(None, policy::ledger_unavailable(&failure));
                return;
            }
        };
        match self.send(charge, tokens).await {
            Ok(receipt) => {
                state.unavailable_in_a_row.store(0, Ordering::SeqCst);
                self.acknowledge(charge, &receipt, false).await;
                state.update(|report| report.acknowledged.push(receipt));
            }
            Err(failure) => match self.verdict(charge, &failure) {
                Verdict::Refuse => {
                    if let Some(refused) = self.refuse(charge, &failure.error).await {
                        state.update(|report| report.refused.push(refused));
                    }
                }
                Verdict::Hold {
                    not_before,
                    unavailable,
                } => state.held(not_before, unavailable),
            },
        }
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

    /// The tokens `charge` may be sent with, best first: the token captured when its job
    /// started, the signed-in session's when the session owns it, and one the host's provider
    /// hands for its account. Where the charge carries the ledger's account, a token is used
    /// only once the ledger has stated the same account for it (`verified` remembers, per pass,
    /// what the ledger said of each token asked).
    ///
    /// An error when no token is usable yet because the ledger could not be asked about one.
    async fn tokens_for(
        &self,
        charge: &PendingCharge,
        verified: &mut HashMap<String, Option<String>>,
    ) -> Result<Vec<String>> {
        let mut candidates = Vec::new();
        let captured = self
            .inner
            .captured
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(&charge.account)
            .cloned();
        if let Some(captured) = captured {
            if let Some(user) = &captured.ledger_user {
                verified.insert(captured.token.clone(), Some(user.clone()));
            }
            candidates.push(captured.token);
        }
        if let Some(session) = self.inner.sessions.current() {
            if charge.ledger_user.is_some() && session.ledger_user().is_none() {
                // Ask the ledger once who this session is.
                let stated = self
                    .inner
                    .client
                    .with_retry(RetryPolicy::never())
                    .as_token(session.token())
                    .balance_stated()
                    .await;
                if let Ok(stated) = stated {
                    session.learn_ledger_user(stated.user_id.as_deref());
                }
            }
            if session.owns(&charge.account, charge.ledger_user.as_deref()) {
                if let Some(user) = session.ledger_user() {
                    verified.insert(session.token().to_owned(), Some(user.to_owned()));
                }
                candidates.push(session.token().to_owned());
            }
        }
        if candidates.is_empty() {
            let sessions = self.inner.sessions.clone();
            let account = charge.account.clone();
            if let Ok(Some(token)) =
                tokio::task::spawn_blocking(move || sessions.token_for(&account)).await
            {
                candidates.push(token);
            }
        }
        let mut tokens: Vec<String> = Vec::new();
        let mut unasked = None;
        for token in candidates {
            if tokens.contains(&token) {
                continue;
            }
            if let Some(expected) = &charge.ledger_user {
                if !verified.contains_key(&token) {
                    let stated = self
                        .inner
                        .client
                        .with_retry(RetryPolicy::never())
                        .as_token(token.clone())
                        .balance_stated()
                        .await;
                    match stated {
                        Ok(stated) => {
                            verified.insert(token.clone(), stated.user_id);
                        }
                        // Not known yet: try again next pass.
                        Err(error) => {
                            unasked = Some(error);
                            continue;
                        }
                    }
                }
                match verified.get(&token) {
                    Some(Some(stated)) if stated != expected => {
                        tracing::warn!(
                            "a token of another ledger account is not used for a pending charge"
                        );
                        continue;
                    }
                    _ => {}
                }
            }
            tokens.push(token);
        }
        match unasked {
            Some(error) if tokens.is_empty() => Err(error),
            _ => Ok(tokens),
        }
    }

    /// Whether a charge of `account` other than the one settling now is being sent.
    fn sending_for(&self, account: &str) -> bool {
        self.inner
            .in_flight
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .keys()
            .filter(|(owner, _)| owner == account)
            .count()
            > 1
    }

    fn capture(&self, session: &Session) {
        self.inner
            .captured
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(
                session.account().to_owned(),
                Captured {
                    token: session.token().to_owned(),
                    ledger_user: session.ledger_user().map(str::to_owned),
                },
            );
    }

    async fn acknowledge(&self, charge: &PendingCharge, receipt: &ChargeReceipt, first: bool) {
        let offline = self.inner.offline.get().cloned();
        if let Some(offline) = offline.clone().filter(|_| charge.allowance_id.is_some()) {
            // Kept as spent before the charge leaves the journal: a crash in between counts it
            // twice on this machine (less offline work), never not at all.
            let settled = charge.clone();
            let _ = blocking(move || {
                offline.settled(&settled);
                Ok(())
            })
            .await;
        }
        self.forget(charge).await;
        self.inner.listener.acknowledged(charge, receipt, first);
        if let Some(offline) = offline {
            offline.set_reachable(Some(&charge.account), true);
            if let Some(session) = self
                .inner
                .sessions
                .current()
                .filter(|s| s.owns(&charge.account, charge.ledger_user.as_deref()))
            {
                self.refresh_allowance(session, Some(receipt.balance));
            }
        }
    }

    /// Removes `charge` from the journal, and its account's captured token when nothing of it
    /// is pending or being sent any more.
    async fn forget(&self, charge: &PendingCharge) {
        let journal = self.inner.journal.clone();
        let (account, key) = (charge.account.clone(), charge.idempotency_key.clone());
        let removed = blocking(move || {
            journal.remove(&account, &key)?;
            Ok(journal.count_of(&account) == 0)
        })
        .await;
        match removed {
            Ok(true) => {
                // Checked under the captured lock: a charge claimed before it captures.
                let mut captured = self
                    .inner
                    .captured
                    .lock()
                    .unwrap_or_else(|p| p.into_inner());
                if !self.sending_for(&charge.account)
                    && self.inner.journal.count_of(&charge.account) == 0
                {
                    captured.remove(&charge.account);
                }
            }
            Ok(false) => {}
            Err(error) => {
                tracing::error!(%error, "could not remove a settled charge from the journal")
            }
        }
    }

    async fn refuse(&self, charge: &PendingCharge, error: &Error) -> Option<RefusedCharge> {
        tracing::warn!(%error, service = %charge.request.service, "the ledger refused a charge for good");
        let journal = self.inner.journal.clone();
        let (moved, error) = (charge.clone(), error.clone());
        match blocking(move || journal.refuse(&moved, &error)).await {
            Ok(Some(refused)) => {
                self.inner.listener.refused(charge, &refused);
                Some(refused)
            }
            Ok(None) => None,
            Err(error) => {
                tracing::error!(%error, "could not record a refused charge; it stays pending");
                None
            }
        }
    }

    /// Records the refusal of a charge that is not pending, and tells the listener once.
    async fn record_refusal(&self, charge: &PendingCharge, error: &Error) {
        let journal = self.inner.journal.clone();
        let (moved, error) = (charge.clone(), error.clone());
        if let Ok(Some(refused)) =
            tokio::task::spawn_blocking(move || journal.record_refusal(&moved, &error)).await
        {
            self.inner.listener.refused(charge, &refused);
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
    /// The claim, or the request of the charge being sent under the same key.
    fn claim(
        inner: &'a Inner,
        charge: &PendingCharge,
    ) -> std::result::Result<Self, ConsumeRequest> {
        let id = (charge.account.clone(), charge.idempotency_key.clone());
        let mut in_flight = inner.in_flight.lock().unwrap_or_else(|p| p.into_inner());
        match in_flight.entry(id.clone()) {
            Entry::Occupied(being_sent) => Err(being_sent.get().clone()),
            Entry::Vacant(free) => {
                free.insert(charge.request.clone());
                Ok(Self { inner, id })
            }
        }
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

/// What the accounts served at once by one pass share.
#[derive(Default)]
struct PassState {
    report: Mutex<SyncReport>,
    /// Failures in a row that said the ledger cannot take requests: a flaky network lets the
    /// pass go on, a ledger that is down stops it after a few.
    unavailable_in_a_row: AtomicUsize,
}

impl PassState {
    fn update(&self, change: impl FnOnce(&mut SyncReport)) {
        change(&mut self.report.lock().unwrap_or_else(|p| p.into_inner()));
    }

    /// A charge kept for a later pass: `unavailable` when the failure said the ledger cannot
    /// take requests, `not_before` the ledger's `Retry-After` (capped).
    fn held(&self, not_before: Option<Duration>, unavailable: bool) {
        if unavailable {
            self.unavailable_in_a_row.fetch_add(1, Ordering::SeqCst);
        } else {
            self.unavailable_in_a_row.store(0, Ordering::SeqCst);
        }
        self.update(|report| {
            report.failed += 1;
            report.retry_after = report.retry_after.max(not_before);
            report.unavailable |= unavailable;
        });
    }
}

/// The error of a charge made under a key that another pending charge holds.
fn conflict() -> Error {
    Error::invalid_argument(
        "idempotencyKey",
        "is already used by a different pending charge",
    )
}

/// Whether the ledger declined a charge that may not go into debt for too few points: it was
/// not applied, and the caller is told so.
fn declines(charge: &PendingCharge, error: &Error) -> bool {
    !charge.request.allow_debt && matches!(error, Error::InsufficientPoints { .. })
}

/// Sends `charge` through `client` (signed in as the charge's account).
async fn send_with(
    client: &LedgerClient,
    charge: &PendingCharge,
) -> std::result::Result<ChargeReceipt, Failure> {
    let key = IdempotencyKey::parse(charge.idempotency_key.clone())?;
    client
        .consume_under(&charge.request, &key, charge.allowance_id.as_deref())
        .await
}

fn count(n: usize) -> u32 {
    u32::try_from(n).unwrap_or(u32::MAX)
}

/// Runs blocking file I/O off the async workers.
pub(crate) async fn blocking<T: Send + 'static>(
    work: impl FnOnce() -> Result<T> + Send + 'static,
) -> Result<T> {
    tokio::task::spawn_blocking(work)
        .await
        .unwrap_or_else(|error| Err(Error::storage(format!("journal task failed: {error}"))))
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
