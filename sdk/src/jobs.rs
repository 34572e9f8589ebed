//! The job flow, shared by the app's Rust jobs and the webview's charges: capture the session,
//! reserve the price on this machine and pre-check it with the ledger, run the work, and only if
//! it succeeds journal the charge and send it (see [`crate::sync`]).
//!
//! Rules:
//! - no session: [`Error::Unauthorized`], the work never starts;
//! - the pre-check counts what this machine already owes the account: the prices of its jobs
//!   still running and of its charges still pending. A job that would take the account below
//!   zero that way fails with [`Error::InsufficientPoints`] (and a notification naming its
//!   window) before its work starts;
//! - a failed job is never charged, and its reservation is released;
//! - the charge is bound to the account captured at the start (and to the ledger's account of
//!   its token, when the pre-check stated it), under one idempotency key;
//! - an ambiguous send (lost answer, timeout, 5xx) is [`ChargeOutcome::Pending`], never an
//!   error;
//! - [`Jobs::shutdown`] lets jobs past their pre-check finish and journal, for a bounded time;
//! - when the pre-check cannot reach the ledger (network, timeout, 5xx) and offline work is on
//!   ([`Jobs::with_offline`]), the job runs if the account's allowance covers its price (see
//!   [`crate::offline`]), else it fails with the `Offline…` error that says why; its charge is
//!   journaled under the allowance and settled when the ledger is back.
//!
//! Nothing here knows Tauri.

use std::collections::HashMap;
use std::future::Future;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::Notify;

use crate::client::{ConsumeRequest, IdempotencyKey, LedgerClient};
use crate::journal::PendingCharge;
use crate::models::{ChargeOutcome, InsufficientPoints};
use crate::offline::{self, Offline, OfflineReservation};
use crate::session::Session;
use crate::sync::{ChargeSync, FirstSend};
use crate::{Error, Result};

/// The outcome of a job: its output, and what became of its charge.
#[derive(Debug, Clone, PartialEq)]
pub struct Charged<T> {
    /// What the job returned.
    pub output: T,
    /// Acknowledged (with the ledger's receipt), pending (journaled; sent again by the
    /// background sync), or refused for good (with the ledger's error).
    pub charge: ChargeOutcome,
}

/// What the job flow tells its owner (the plugin turns it into `points://insufficient`).
pub trait JobListener: Send + Sync + 'static {
    /// A job or a charge was refused for too few points; `refusal.window` is the window the
    /// job named, if any.
    fn insufficient(&self, refusal: &InsufficientPoints) {
        let _ = refusal;
    }
}

impl JobListener for () {}

/// One job to charge: what it costs and under which key.
#[derive(Debug, Clone)]
pub struct JobSpec {
    /// The service it is charged as.
    pub service: String,
    /// Seconds of media, for services priced by duration.
    pub duration: Option<f64>,
    /// The idempotency key of its charge.
    pub key: IdempotencyKey,
    /// Whether the charge may take the balance below zero (work already done: yes).
    pub allow_debt: bool,
    /// The caller's reference, stored with the transaction.
    pub reference: Option<String>,
    /// The window that started it, named in a refusal.
    pub window: Option<String>,
}

impl JobSpec {
    /// The consume request its charge sends.
    pub fn request(&self) -> ConsumeRequest {
        ConsumeRequest {
            duration: self.duration,
            allow_debt: self.allow_debt,
            reference: self.reference.clone(),
            ..ConsumeRequest::new(self.service.clone())
        }
    }

    /// A job of `service` under `key`, charged with debt allowed.
    pub fn new(service: impl Into<String>, key: IdempotencyKey) -> Self {
        Self {
            service: service.into(),
            duration: None,
            key,
            allow_debt: true,
            reference: None,
            window: None,
        }
    }
}

/// The job runner. Cheap to clone.
#[derive(Clone)]
pub struct Jobs {
    inner: Arc<Inner>,
}

struct Inner {
    client: LedgerClient,
    sync: ChargeSync,
    listener: Arc<dyn JobListener>,
    /// Account → the prices of its jobs past their pre-check and not yet journaled.
    reserved: Mutex<HashMap<String, i64>>,
    /// Jobs past their pre-check whose charge is not journaled yet.
    running: Mutex<usize>,
    /// Signalled when `running` drops.
    finished: Notify,
    /// Set by [`Jobs::shutdown`]: no job starts any more.
    closing: AtomicBool,
    /// Offline work under allowances, when on.
    offline: std::sync::OnceLock<Offline>,
}

impl Jobs {
    /// A runner charging through `sync` (whose sessions and journal it uses), pre-checking with
    /// `client`.
    pub fn new(client: LedgerClient, sync: ChargeSync, listener: Arc<dyn JobListener>) -> Self {
        Self {
            inner: Arc::new(Inner {
                client,
                sync,
                listener,
                reserved: Mutex::default(),
                running: Mutex::new(0),
                finished: Notify::new(),
                closing: AtomicBool::new(false),
                offline: std::sync::OnceLock::new(),
            }),
        }
    }

    /// Lets jobs run under `offline`'s allowances while the ledger cannot be reached (the sync
    /// settles their charges under them). Set once, before the first job.
    pub fn with_offline(self, offline: Offline) -> Self {
        self.inner.sync.set_offline(offline.clone());
        let _ = self.inner.offline.set(offline);
        self
    }

    /// [`Jobs::with_offline`] on a runner already shared: whether offline work was off until now
    /// (it is set once).
    pub fn set_offline(&self, offline: Offline) -> bool {
        if self.inner.offline.set(offline.clone()).is_err() {
            return false;
        }
        self.inner.sync.set_offline(offline);
        true
    }

    /// Offline work, when on.
    pub fn offline(&self) -> Option<&Offline> {
        self.inner.offline.get()
    }

    /// The charge sender.
    pub fn sync(&self) -> &ChargeSync {
        &self.inner.sync
    }

    /// Runs `work` as the job `spec` in the current session; see the module's rules.
    pub async fn run<T, E, F, Fut>(
        &self,
        spec: JobSpec,
        work: F,
    ) -> std::result::Result<Charged<T>, E>
    where
        F: FnOnce() -> Fut,
        Fut: Future<Output = std::result::Result<T, E>>,
        E: From<Error>,
    {
        let session = self.session()?;
        let started = self.start(&session, &spec).await?;
        let output = work().await?;
        let charge = self.finish(&session, &spec, started).await?;
        Ok(Charged { output, charge })
    }

    /// Charges one use of `spec.service` now, with no work attached (a webview's charge): the
    /// same flow, and the same key again while its charge is pending answers
    /// [`ChargeOutcome::Pending`] without a second charge. A charge that may not go into debt
    /// and meets too few points fails with [`Error::InsufficientPoints`], nothing charged.
    pub async fn charge(&self, spec: JobSpec) -> Result<ChargeOutcome> {
        let session = self.session()?;
        let journal = self.inner.sync.journal();
        if let Some(pending) = journal.get(session.account(), spec.key.as_str()) {
            if pending.request == spec.request() {
                return Ok(ChargeOutcome::Pending {
                    idempotency_key: spec.key.as_str().to_owned(),
                });
            }
            // Another charge is pending under this key: the first send refuses this one.
        }
        let started = self.start(&session, &spec).await?;
        self.finish(&session, &spec, started).await
    }

    /// The session now, or [`Error::Unauthorized`].
    fn session(&self) -> Result<Session> {
        self.inner
            .sync
            .sessions()
            .current()
            .ok_or(Error::Unauthorized)
    }

    /// The number of jobs past their pre-check whose charge is not journaled yet.
    pub fn running(&self) -> usize {
        *self.inner.running.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Stops new jobs, gives the running ones up to `grace` to finish and journal their charge,
    /// then stops the sync and releases the journal. Whether every job finished in time.
    pub async fn shutdown(&self, grace: Duration) -> bool {
        self.inner.closing.store(true, Ordering::SeqCst);
        let drained = tokio::time::timeout(grace, async {
            loop {
                let finished = self.inner.finished.notified();
                if self.running() == 0 {
                    break;
                }
                finished.await;
            }
        })
        .await
        .is_ok();
        if !drained {
            tracing::warn!(
                running = self.running(),
                "jobs still running at exit: their charges are not journaled"
            );
        }
        self.inner.sync.shutdown();
        drained
    }

    /// Whether [`Jobs::shutdown`] was called.
    pub fn is_closing(&self) -> bool {
        self.inner.closing.load(Ordering::SeqCst)
    }

    /// The pre-check and the reservation.
    async fn start(&self, session: &Session, spec: &JobSpec) -> Result<Started> {
        self.refuse_when_closing()?;
        let client = self.inner.client.as_token(session.token());
        let stated = match client.cost_stated(&spec.service, spec.duration).await {
            Ok(stated) => stated,
            Err(error) => {
                if let Some(offline) = self.offline().filter(|_| offline::unreachable(&error)) {
                    offline.set_reachable(Some(session.account()), false);
                    return self.start_offline(offline, session, spec);
                }
                return Err(self.refused(spec, error));
            }
        };
        self.inner.sync.ledger_reachable();
        session.learn_ledger_user(stated.user_id.as_deref());
        let cost = stated.value;
        if let Some(offline) = self.offline() {
            offline.set_reachable(Some(session.account()), true);
            offline.learn_price(
                session.account(),
                &cost.service,
                spec.duration,
                cost.required,
            );
            self.inner
                .sync
                .refresh_allowance(session.clone(), Some(cost.balance));
        }
        let reservation = {
            let mut reserved = self
                .inner
                .reserved
                .lock()
                .unwrap_or_else(|p| p.into_inner());
            let running = reserved.get(session.account()).copied().unwrap_or(0);
            let (_, pending) =
                self.inner.sync.journal().tally_where(|charge| {
                    session.owns(&charge.account, charge.ledger_user.as_deref())
                });
            let available = cost.balance.saturating_sub(running).saturating_sub(pending);
            let required = cost.required.max(0);
            // A charge that may not go into debt is decided by the ledger itself when its
            // balance is short: a replay of this key is answered as such, else a 402.
            let ledger_decides = !spec.allow_debt && !cost.sufficient;
            let short = !cost.sufficient || (required > 0 && available < required);
            if short && !ledger_decides {
                drop(reserved);
                self.notify_insufficient(
                    spec,
                    Some(cost.service.clone()),
                    Some(cost.required),
                    Some(available.min(cost.balance)),
                );
                return Err(Error::InsufficientPoints {
                    service: Some(cost.service),
                    required: Some(cost.required),
                    balance: Some(available.min(cost.balance)),
                });
            }
            let entry = reserved.entry(session.account().to_owned()).or_insert(0);
            *entry = entry.saturating_add(required);
            Reservation {
                inner: self.inner.clone(),
                account: session.account().to_owned(),
                points: required,
            }
        };
        *self.inner.running.lock().unwrap_or_else(|p| p.into_inner()) += 1;
        let running = Running {
            inner: self.inner.clone(),
        };
        if let Err(error) = self.refuse_when_closing() {
            drop((reservation, running));
            return Err(error);
        }
        Ok(Started {
            ledger_user: stated.user_id,
            price: cost.required,
            allowance: None,
            _reservation: Some(reservation),
            _running: running,
        })
    }

    /// The pre-check of a job while the ledger cannot be reached: its price reserved under the
    /// account's allowance, or the `Offline…` error that says why not.
    fn start_offline(
        &self,
        offline: &Offline,
        session: &Session,
        spec: &JobSpec,
    ) -> Result<Started> {
        let allowance = offline.reserve(
            session,
            self.inner.sync.journal(),
            &spec.service,
            spec.duration,
        )?;
        *self.inner.running.lock().unwrap_or_else(|p| p.into_inner()) += 1;
        let running = Running {
            inner: self.inner.clone(),
        };
        self.refuse_when_closing()?;
        tracing::info!(service = %spec.service, "the ledger is unreachable: the job runs on the offline allowance");
        Ok(Started {
            ledger_user: Some(allowance.ledger_user.clone()),
            price: allowance.price,
            allowance: Some(allowance),
            _reservation: None,
            _running: running,
        })
    }

    /// Journals and sends the charge of a finished job.
    async fn finish(
        &self,
        session: &Session,
        spec: &JobSpec,
        started: Started,
    ) -> Result<ChargeOutcome> {
        let mut charge = PendingCharge::new(session.account(), &spec.key, spec.request());
        charge.ledger_user = started.ledger_user.clone();
        charge.price = Some(started.price);
        charge.allowance_id = started.allowance.as_ref().map(|a| a.allowance_id.clone());
        let first = self.inner.sync.charge(session, charge).await;
        // Journaled (or settled) now: the pending charge counts instead of the reservation.
        drop(started);
        match first {
            FirstSend::Outcome(outcome) => {
                if outcome.is_pending() {
                    tracing::warn!(service = %spec.service, "job done, its charge is not acknowledged yet");
                }
                Ok(outcome)
            }
            FirstSend::Declined(error) => Err(self.refused(spec, error)),
        }
    }

    fn refuse_when_closing(&self) -> Result<()> {
        if self.is_closing() {
            Err(Error::storage(
                "the app is quitting: no new job is started".into(),
            ))
        } else {
            Ok(())
        }
    }

    /// Passes `error` on, telling the listener first when it is a refusal for too few points.
    fn refused(&self, spec: &JobSpec, error: Error) -> Error {
        if let Error::InsufficientPoints {
            service,
            required,
            balance,
        } = &error
        {
            self.notify_insufficient(spec, service.clone(), *required, *balance);
        }
        error
    }

    fn notify_insufficient(
        &self,
        spec: &JobSpec,
        service: Option<String>,
        required: Option<i64>,
        balance: Option<i64>,
    ) {
        self.inner.listener.insufficient(&InsufficientPoints {
            service: service.or_else(|| Some(spec.service.clone())),
            required,
            balance,
            window: spec.window.clone(),
        });
    }
}

impl std::fmt::Debug for Jobs {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Jobs")
            .field("running", &self.running())
            .finish_non_exhaustive()
    }
}

/// A job past its pre-check: its reservation and its place among the running jobs.
struct Started {
    ledger_user: Option<String>,
    price: i64,
    /// The allowance reserved for a job run offline.
    allowance: Option<OfflineReservation>,
    _reservation: Option<Reservation>,
    _running: Running,
}

/// Points reserved for a running job; released when dropped.
struct Reservation {
    inner: Arc<Inner>,
    account: String,
    points: i64,
}

impl Drop for Reservation {
    fn drop(&mut self) {
        let mut reserved = self
            .inner
            .reserved
            .lock()
            .unwrap_or_else(|p| p.into_inner());
        if let Some(entry) = reserved.get_mut(&self.account) {
            *entry = entry.saturating_sub(self.points);
            if *entry <= 0 {
                reserved.remove(&self.account);
            }
        }
    }
}

/// One running job; counted down when dropped.
struct Running {
    inner: Arc<Inner>,
}

impl Drop for Running {
    fn drop(&mut self) {
        let mut running = self.inner.running.lock().unwrap_or_else(|p| p.into_inner());
        *running = running.saturating_sub(1);
        drop(running);
        self.inner.finished.notify_waiters();
    }
}
