//! `Points<R>`: the plugin's state, reached with `app.points()`. It holds the SDK's parts (the
//! ledger client, the sessions, the charge sync and the job runner) and adds what only the app
//! knows: windows, and the events of [`crate::events`].

use std::future::Future;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use tauri::{AppHandle, Manager, Runtime};

use crate::client::{IdempotencyKey, LedgerClient, Url};
use crate::events::{EventQueue, Watcher};
use crate::jobs::{JobSpec, Jobs};
use crate::journal::PendingCharge;
use crate::models::{
    BalanceChanged, Batch, ChargeOutcome, ChargeReceipt, CostCheck, DesktopService,
    InsufficientPoints, LowBalance, OfflineStatus, PendingStatus, PointBalance, PriceList,
    TransactionPage,
};
use crate::session::{Session, Sessions};
use crate::sync::ChargeSync;
use crate::watch::BalanceWatch;
use crate::{Error, Result};

pub use crate::jobs::Charged;

/// The plugin's state. Cheap to clone.
pub struct Points<R: Runtime> {
    shared: Arc<Shared<R>>,
}

struct Shared<R: Runtime> {
    app: AppHandle<R>,
    client: LedgerClient,
    sessions: Arc<Sessions>,
    jobs: Jobs,
    events: Arc<EventQueue>,
    watcher: Watcher,
    /// The live balance of the signed-in account (the ledger's stream, or polls).
    watch: BalanceWatch,
    /// How long jobs past their pre-check may run on at exit to journal their charge.
    exit_grace: Duration,
    /// Counts the receipts that moved the balance: a fetch that overlapped one may predate it
    /// (the rule used when the ledger sends no `seq`).
    balance_moves: AtomicU64,
}

impl<R: Runtime> Clone for Points<R> {
    fn clone(&self) -> Self {
        Self {
            shared: self.shared.clone(),
        }
    }
}

impl<R: Runtime> Points<R> {
    pub(crate) fn new(
        app: AppHandle<R>,
        client: LedgerClient,
        jobs: Jobs,
        events: Arc<EventQueue>,
        watcher: Watcher,
        watch: BalanceWatch,
        exit_grace: Duration,
    ) -> Self {
        Self {
            shared: Arc::new(Shared {
                app,
                client,
                sessions: jobs.sync().sessions().clone(),
                jobs,
                events,
                watcher,
                watch,
                exit_grace,
                balance_moves: AtomicU64::new(0),
            }),
        }
    }

    /// The ledger client, for calls the plugin does not wrap. It reads the session's token once
    /// per call (every retry of a call goes out for the same account); for a series of calls in
    /// one session, take [`LedgerClient::as_token`] of [`Points::session`]'s token.
    pub fn client(&self) -> &LedgerClient {
        &self.shared.client
    }

    /// The ledger's base URL now, `None` until one is set.
    pub fn base_url(&self) -> Option<Url> {
        self.shared.client.base_url()
    }

    /// Sets or changes the ledger's base URL, from Rust only (the webview has no command for
    /// it): https, or http on a loopback host, never through a proxy; an invalid URL is refused
    /// with [`Error::InvalidArgument`] and the one in use kept. Calls under way finish with the
    /// ledger they started with; every call from now on, the background sync's included, goes
    /// to `base_url`, and the sync sends the pending charges at once. When the URL changes while
    /// signed in, the balance is read from the new one and emitted (`points://balance-changed`),
    /// so that windows which met [`Error::NotConfigured`] show it. The URL must reach the same
    /// ledger service (see [`LedgerClient::set_base_url`]): pending charges go to it, under
    /// their own keys and only with a token of their account.
    pub fn set_base_url(&self, base_url: impl AsRef<str>) -> Result<()> {
        let before = self.base_url();
        self.shared.client.set_base_url(base_url.as_ref())?;
        if self.base_url() == before {
            return Ok(());
        }
        self.sync().wake();
        self.shared.watch.wake();
        if self.shared.sessions.current().is_some() {
            let points = self.clone();
            tauri::async_runtime::spawn(async move {
                let _ = points.balance().await;
            });
        }
        Ok(())
    }

    /// The charge sender and background sync.
    pub fn sync(&self) -> &ChargeSync {
        self.shared.jobs.sync()
    }

    /// The job runner (the flow behind [`Points::job`] and the webview's `charge`).
    pub fn jobs(&self) -> &Jobs {
        &self.shared.jobs
    }

    /// The session now, or [`Error::Unauthorized`].
    pub fn session(&self) -> Result<Session> {
        self.shared.sessions.current().ok_or(Error::Unauthorized)
    }

    /// Signs in with `token`; its account is the JWT `sub` claim, else a hash of the token (use
    /// [`Points::sign_in`] with an account id for opaque tokens). Announced by
    /// `points://session-changed` when the account changes; pending charges of this account are
    /// sent at once.
    pub fn set_session_token(&self, token: impl Into<String>) -> Result<()> {
        self.sign_in(token, None)
    }

    /// Signs in with `token`, belonging to the host's account `account_id` when given (stable
    /// across sign-ins: pending charges are bound to it when the token is not a JWT).
    pub fn sign_in(&self, token: impl Into<String>, account_id: Option<String>) -> Result<()> {
        let session = Session::new(token, account_id)?;
        self.shared.sessions.sign_in(session);
        self.sync().wake();
        self.shared.watch.wake();
        Ok(())
    }

    /// Signs out: no ledger call is made until the next sign-in (a `TokenProvider` is not asked
    /// either). Pending charges stay journaled for their own account.
    pub fn clear_session_token(&self) {
        self.shared.sessions.sign_out();
    }

    /// Goes back to the `TokenProvider` given to the builder, after a sign-out.
    pub fn follow_token_provider(&self) {
        self.shared.sessions.follow_provider();
        self.sync().wake();
        self.shared.watch.wake();
    }

    /// Stops the background sync and releases the journal at once; called when the app exits.
    /// [`Points::shutdown_gracefully`] lets running jobs journal their charge first.
    pub fn shutdown(&self) {
        self.shared.watch.shutdown();
        self.sync().shutdown();
        self.shared.events.save_alerts();
        if let Some(offline) = self.shared.jobs.offline() {
            offline.save_now();
        }
    }

    /// Offline work of the signed-in account: `offline` is `null` while the ledger is reachable
    /// (or offline work is off), else what jobs may still spend under its allowance.
    pub fn offline(&self) -> OfflineStatus {
        let (session, generation) = self.shared.sessions.snapshot();
        let offline = match (self.shared.jobs.offline(), session) {
            (Some(offline), Some(session)) => offline.status(&session, self.sync().journal()),
            _ => None,
        };
        OfflineStatus {
            offline,
            session: generation,
        }
    }

    /// Turns offline work on at run time, for an app that learns its ledger's allowance keys only
    /// once it runs (as [`Points::set_base_url`] for the URL): the same as
    /// `plugins.points.offline` or [`crate::Builder::offline`]. Refused when it is on already or
    /// no key is given. The folder is `offline/` in the journal's.
    pub fn enable_offline(&self, settings: crate::offline::OfflineSettings) -> Result<()> {
        if settings.keys.is_empty() {
            return Err(Error::invalid_argument("keys", "no allowance key is given"));
        }
        if self.shared.jobs.offline().is_some() {
            return Err(Error::invalid_argument(
                "offline",
                "offline work is on already",
            ));
        }
        let offline = crate::offline::Offline::open(
            self.sync().journal().dir().join(crate::OFFLINE_DIR_NAME),
            settings,
        )?;
        offline.set_listener(Arc::new(crate::events::Notices {
            app: self.shared.app.clone(),
        }));
        if !self.shared.jobs.set_offline(offline) {
            return Err(Error::invalid_argument(
                "offline",
                "offline work is on already",
            ));
        }
        if let Ok(session) = self.session() {
            self.sync().refresh_allowance(session, None);
        }
        Ok(())
    }

    /// The offline state of `account` changed: emitted when it is the signed-in account's.
    pub(crate) fn offline_changed(&self, account: &str) {
        let (session, _) = self.shared.sessions.snapshot();
        if session.is_some_and(|session| session.owns(account, None)) {
            self.shared.events.offline_changed(self.offline());
        }
    }

    /// The live balance: the ledger's stream of the signed-in account, or polls of a backend
    /// without it. Call [`BalanceWatch::wake`] when the network is back to reconnect at once.
    pub fn watch(&self) -> &BalanceWatch {
        &self.shared.watch
    }

    /// Stops new jobs, lets the running ones finish and journal their charge (up to the
    /// builder's exit grace), then stops the sync and releases the journal.
    pub async fn shutdown_gracefully(&self) -> bool {
        self.shared.jobs.shutdown(self.shared.exit_grace).await
    }

    /// The balance summary of the session now; emits `points://balance-changed` with it.
    ///
    /// Without a `seq` from the ledger, a charge acknowledged while the fetch was under way may
    /// be missing from its answer: such a fetch is made once more, and its details are emitted
    /// only when no charge overlapped it.
    pub async fn balance(&self) -> Result<PointBalance> {
        let (session, generation) = self.shared.sessions.snapshot();
        let session = session.ok_or(Error::Unauthorized)?;
        let client = self.shared.client.as_token(session.token());
        let mut fetches = 0;
        let (balance, overlapped) = loop {
            let moves = self.shared.balance_moves.load(Ordering::SeqCst);
            let stated = self.observe(client.balance_stated().await, None)?;
            session.learn_ledger_user(stated.user_id.as_deref());
            let balance = stated.value;
            fetches += 1;
            let overlapped =
                balance.seq.is_none() && self.shared.balance_moves.load(Ordering::SeqCst) != moves;
            if !overlapped || fetches == 2 {
                break (balance, overlapped);
            }
        };
        if !overlapped {
            self.shared.events.balance_changed(
                BalanceChanged {
                    balance: balance.balance,
                    summary: balance.clone(),
                    seq: balance.seq,
                    session: generation,
                },
                session.account(),
            );
        }
        Ok(balance)
    }

    /// The price of one use of any service (with `duration` seconds for services priced by
    /// duration), and whether the balance covers it.
    pub async fn check_cost(&self, service: &str, duration: Option<f64>) -> Result<CostCheck> {
        self.check_cost_in(service, duration, None).await
    }

    pub(crate) async fn check_cost_in(
        &self,
        service: &str,
        duration: Option<f64>,
        window: Option<&str>,
    ) -> Result<CostCheck> {
        let session = self.session()?;
        let client = self.shared.client.as_token(session.token());
        let stated = self.observe(client.cost_stated(service, duration).await, window)?;
        session.learn_ledger_user(stated.user_id.as_deref());
        Ok(stated.value)
    }

    /// Charges one use of a desktop service now, never with debt, as a job with no work: the
    /// price is pre-checked (and what this machine already owes counted), the charge journaled
    /// before it is sent, and sent under `idempotency_key` (a random one when `None`: give one
    /// per user action, so that a retry of the action is never a second charge).
    ///
    /// Too few points fail with [`Error::InsufficientPoints`] and nothing is charged. A lost
    /// answer, a timeout or a 5xx after the send is [`ChargeOutcome::Pending`]: the background
    /// sync sends it again under the same key. The same key again while pending is `Pending`.
    pub async fn charge(
        &self,
        service: DesktopService,
        idempotency_key: Option<IdempotencyKey>,
        reference: Option<String>,
    ) -> Result<ChargeOutcome> {
        self.charge_in(service, idempotency_key, reference, None)
            .await
    }

    pub(crate) async fn charge_in(
        &self,
        service: DesktopService,
        idempotency_key: Option<IdempotencyKey>,
        reference: Option<String>,
        window: Option<&str>,
    ) -> Result<ChargeOutcome> {
        let mut spec = JobSpec::new(
            service.as_str(),
            idempotency_key.unwrap_or_else(IdempotencyKey::random),
        );
        spec.allow_debt = false;
        spec.reference = reference;
        spec.window = window.map(str::to_owned);
        self.shared.jobs.charge(spec).await
    }

    /// A job that costs `service`, to configure and [`ChargedJob::run`].
    pub fn job(&self, service: DesktopService) -> ChargedJob<'_, R> {
        ChargedJob {
            points: self,
            service,
            job_key: None,
            window: None,
        }
    }

    /// Runs a job that costs `service`; see [`ChargedJob::run`]. `job_key` identifies the job
    /// (the same job reported twice is charged once); `None` makes every call a new job.
    pub async fn run_charged<T, E, F, Fut>(
        &self,
        service: DesktopService,
        job_key: Option<&str>,
        work: F,
    ) -> std::result::Result<Charged<T>, E>
    where
        F: FnOnce() -> Fut,
        Fut: Future<Output = std::result::Result<T, E>>,
        E: From<Error>,
    {
        let mut job = self.job(service);
        job.job_key = job_key.map(str::to_owned);
        job.run(work).await
    }

    /// The price table.
    pub async fn prices(&self) -> Result<PriceList> {
        let client = self.shared.client.as_token(self.session()?.token());
        self.observe(client.prices().await, None)
    }

    /// A page of history of the session now, newest first.
    pub async fn transactions(
        &self,
        limit: Option<u32>,
        before: Option<&str>,
    ) -> Result<TransactionPage> {
        let client = self.shared.client.as_token(self.session()?.token());
        self.observe(client.transactions(limit, before).await, None)
    }

    /// Live recharge batches of the session now, soonest expiry first.
    pub async fn batches(&self) -> Result<Vec<Batch>> {
        let client = self.shared.client.as_token(self.session()?.token());
        self.observe(client.batches().await, None)
    }

    /// The signed-in account's low-balance crossing in force (its lowest threshold the balance is
    /// below, with the last balance seen), for a window opened after `points://low-balance`
    /// fired or an app started while below. `None` signed out or above every threshold.
    pub fn low_balance(&self) -> Option<LowBalance> {
        let (session, generation) = self.shared.sessions.snapshot();
        self.shared
            .events
            .low_balance_in_force(session?.account(), generation)
    }

    /// Charges of the signed-in account made but not yet acknowledged by the ledger (0 while
    /// signed out).
    pub fn pending_count(&self) -> usize {
        self.pending().count as usize
    }

    /// The signed-in account's pending and refused charges, and how many wait for others.
    pub fn pending(&self) -> PendingStatus {
        self.sync().status()
    }

    /// Sends the pending charges now (after a pass under way, if any) and reports what is left.
    pub async fn sync_pending(&self) -> PendingStatus {
        self.sync().sync_now().await;
        self.pending()
    }

    /// Moves the signed-in account's refused charge under `idempotency_key` back to the pending
    /// charges and asks the sync to send it now.
    pub async fn retry_refused(&self, idempotency_key: &str) -> Result<PendingStatus> {
        self.sync().retry_refused(idempotency_key).await
    }

    /// Removes the signed-in account's refused charge under `idempotency_key` from the record.
    pub async fn dismiss_refused(&self, idempotency_key: &str) -> Result<PendingStatus> {
        self.sync().dismiss_refused(idempotency_key).await
    }

    /// A receipt of `charge` moved the balance: emits it when the charge's account is signed in.
    pub(crate) fn receipt_acknowledged(&self, charge: &PendingCharge, receipt: &ChargeReceipt) {
        self.shared.balance_moves.fetch_add(1, Ordering::SeqCst);
        let (Some(session), generation) = self.shared.sessions.snapshot() else {
            return;
        };
        if !session.owns(&charge.account, charge.ledger_user.as_deref()) {
            return;
        }
        // A replay's balance is the historical one; a receipt that does not follow the last
        // summary shown cannot be made whole: fetch the summary instead.
        if receipt.replayed
            || !self
                .shared
                .events
                .charge_acknowledged(generation, session.account(), receipt)
        {
            let points = self.clone();
            tauri::async_runtime::spawn(async move {
                let _ = points.balance().await;
            });
        }
    }

    /// Whether the session now owns `charge`, and its number.
    pub(crate) fn owner_session(&self, charge: &PendingCharge) -> Option<u64> {
        let (current, generation) = self.shared.sessions.snapshot();
        current
            .is_some_and(|session| session.owns(&charge.account, charge.ledger_user.as_deref()))
            .then_some(generation)
    }

    /// The label of the window a refusal belongs to: `given`, else the focused window, else the
    /// first window by label.
    pub(crate) fn refusal_window(&self, given: Option<&str>) -> Option<String> {
        if let Some(label) = given {
            return Some(label.to_owned());
        }
        let windows = self.shared.app.webview_windows();
        windows
            .iter()
            .find(|(_, window)| window.is_focused().unwrap_or(false))
            .map(|(label, _)| label.clone())
            .or_else(|| windows.keys().min().cloned())
    }

    /// Emits `points://insufficient` for `refusal`, naming its window (or the default one).
    pub(crate) fn insufficient(&self, refusal: &InsufficientPoints) {
        self.shared.events.insufficient(InsufficientPoints {
            window: self.refusal_window(refusal.window.as_deref()),
            ..refusal.clone()
        });
    }

    /// Returns once every event decided so far has been emitted to the windows (events leave
    /// through one ordered queue).
    pub async fn flush_events(&self) {
        self.shared.watcher.flush().await;
    }

    /// The events queue.
    pub(crate) fn events(&self) -> &EventQueue {
        &self.shared.events
    }

    /// Emits `points://insufficient` (for `window`) on an insufficient-points error, tells the
    /// sync on success that the ledger is reachable, and passes `result` on.
    fn observe<T>(&self, result: Result<T>, window: Option<&str>) -> Result<T> {
        match &result {
            Ok(_) => self.sync().ledger_reachable(),
            Err(Error::InsufficientPoints {
                service,
                required,
                balance,
            }) => self.insufficient(&InsufficientPoints {
                service: service.clone(),
                required: *required,
                balance: *balance,
                window: window.map(str::to_owned),
            }),
            Err(_) => {}
        }
        result
    }
}

/// A job that costs a desktop service: [`Points::job`], then [`ChargedJob::run`].
pub struct ChargedJob<'a, R: Runtime> {
    points: &'a Points<R>,
    service: DesktopService,
    job_key: Option<String>,
    window: Option<String>,
}

impl<R: Runtime> ChargedJob<'_, R> {
    /// The job's own key (e.g. its id): the same job reported twice is charged once. The
    /// idempotency key sent is `<service>:<job key>`, so one job key used for two services
    /// makes two charges.
    pub fn key(mut self, job_key: impl Into<String>) -> Self {
        self.job_key = Some(job_key.into());
        self
    }

    /// The label of the window that started the job: a refusal opens the recharge dialog there
    /// (default: the focused window).
    pub fn window(mut self, label: impl Into<String>) -> Self {
        self.window = Some(label.into());
        self
    }

    /// Runs the job (see [`crate::jobs`]): captures the session, pre-checks the price counting
    /// this machine's running jobs and pending charges of the account (too few points fail with
    /// [`Error::InsufficientPoints`] and `points://insufficient` before the work starts; no
    /// session fails with [`Error::Unauthorized`]), runs `work`, and only if it succeeds charges
    /// it with debt allowed, to the account captured at the start, under one idempotency key
    /// journaled until the ledger acknowledges it. A failed job is not charged.
    pub async fn run<T, E, F, Fut>(self, work: F) -> std::result::Result<Charged<T>, E>
    where
        F: FnOnce() -> Fut,
        Fut: Future<Output = std::result::Result<T, E>>,
        E: From<Error>,
    {
        let key = match &self.job_key {
            Some(job) => IdempotencyKey::parse(format!("{}:{job}", self.service.as_str()))?,
            None => IdempotencyKey::random(),
        };
        let mut spec = JobSpec::new(self.service.as_str(), key);
        spec.window = self.window;
        self.points.shared.jobs.run(spec, work).await
    }
}

/// Whether the app's points state is registered (events may arrive before setup ends).
pub(crate) fn points_of<R: Runtime>(app: &AppHandle<R>) -> Option<Points<R>> {
    app.try_state::<Points<R>>()
        .map(|state| state.inner().clone())
}
