//! `Points<R>`: the plugin's state, reached with `app.points()`. It owns the ledger client, the
//! session, the charge sync (journal + sender), runs the charge-a-job flow, and emits the
//! plugin's events.

use std::future::Future;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use tauri::{AppHandle, Manager, Runtime};

use crate::client::{ConsumeRequest, IdempotencyKey, LedgerClient};
use crate::models::{
    BalanceChanged, Batch, ChargeOutcome, ChargeReceipt, CostCheck, DesktopService,
    InsufficientPoints, PendingStatus, PointBalance, PriceList, RefusedCharge, TransactionPage,
};
use crate::session::{Session, Sessions};
use crate::sync::{ChargeSync, SyncListener};
use crate::{events, Error, Result};

/// The outcome of [`Points::run_charged`]: the job's output, and what became of its charge.
#[derive(Debug, Clone, PartialEq)]
pub struct Charged<T> {
    /// What the job returned.
    pub output: T,
    /// Acknowledged (with the ledger's receipt), pending (journaled; the plugin sends it again
    /// by itself), or refused for good (with the ledger's error).
    pub charge: ChargeOutcome,
}

/// The plugin's state. Cheap to clone.
pub struct Points<R: Runtime> {
    shared: Arc<Shared<R>>,
}

struct Shared<R: Runtime> {
    app: AppHandle<R>,
    client: LedgerClient,
    sessions: Arc<Sessions>,
    sync: ChargeSync,
    /// Counts the receipts that moved the balance: a fetch that overlapped one may predate it
    /// (the rule used when the ledger sends no `seq`).
    balance_moves: AtomicU64,
    /// The session and `seq` of the last balance emitted: an older figure is never emitted.
    last_emitted: Mutex<(u64, Option<i64>)>,
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
        sessions: Arc<Sessions>,
        sync: ChargeSync,
    ) -> Self {
        Self {
            shared: Arc::new(Shared {
                app,
                client,
                sessions,
                sync,
                balance_moves: AtomicU64::new(0),
                last_emitted: Mutex::new((0, None)),
            }),
        }
    }

    /// The ledger client (signed in as the current session), for calls the plugin does not wrap.
    pub fn client(&self) -> &LedgerClient {
        &self.shared.client
    }

    /// The charge sender and background sync.
    pub fn sync(&self) -> &ChargeSync {
        &self.shared.sync
    }

    /// Signs in with `token`; its account is the JWT `sub` claim, else a hash of the token (use
    /// [`Points::sign_in`] with an account id for opaque tokens). Announced by
    /// `points://session-changed` when the account changes; pending charges of this account are
    /// sent at once.
    pub fn set_session_token(&self, token: impl Into<String>) -> Result<()> {
        self.sign_in(token, None)
    }

    /// Signs in with `token`, belonging to the host's account `account_id` when given (stable
    /// across sign-ins: pending charges are bound to it).
    pub fn sign_in(&self, token: impl Into<String>, account_id: Option<String>) -> Result<()> {
        let session = Session::new(token, account_id)?;
        self.shared.sessions.sign_in(session);
        self.shared.sync.wake();
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
        self.shared.sync.wake();
    }

    /// Stops the background sync and releases the journal; called when the app exits.
    pub fn shutdown(&self) {
        self.shared.sync.shutdown();
    }

    /// The balance summary; emits `points://balance-changed` with the details.
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
            let balance = self.observe(client.balance().await, None)?;
            fetches += 1;
            let overlapped =
                balance.seq.is_none() && self.shared.balance_moves.load(Ordering::SeqCst) != moves;
            if !overlapped || fetches == 2 {
                break (balance, overlapped);
            }
        };
        if !overlapped {
            self.emit_balance(
                generation,
                BalanceChanged {
                    balance: balance.balance,
                    details: Some(balance.clone()),
                    seq: balance.seq,
                    session: generation,
                },
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
        let result = self.shared.client.cost(service, duration).await;
        self.observe(result, window)
    }

    /// Charges one use of a desktop service, never with debt: too few points fail with
    /// [`Error::InsufficientPoints`] and nothing is written. Without a key, a random one is used.
    /// Not journaled: the caller sees any failure and may retry with the same key.
    pub async fn charge(
        &self,
        service: DesktopService,
        idempotency_key: Option<IdempotencyKey>,
        reference: Option<String>,
    ) -> Result<ChargeReceipt> {
        self.charge_in(service, idempotency_key, reference, None)
            .await
    }

    pub(crate) async fn charge_in(
        &self,
        service: DesktopService,
        idempotency_key: Option<IdempotencyKey>,
        reference: Option<String>,
        window: Option<&str>,
    ) -> Result<ChargeReceipt> {
        let session = self.session()?;
        let key = idempotency_key.unwrap_or_else(IdempotencyKey::random);
        let request = ConsumeRequest {
            reference,
            ..ConsumeRequest::new(service.as_str())
        };
        let client = self.shared.client.as_token(session.token());
        let receipt = self.observe(client.consume(&request, &key).await, window)?;
        self.receipt_acknowledged(session.account(), &receipt);
        Ok(receipt)
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
        self.observe(self.shared.client.prices().await, None)
    }

    /// A page of history, newest first.
    pub async fn transactions(
        &self,
        limit: Option<u32>,
        before: Option<&str>,
    ) -> Result<TransactionPage> {
        self.observe(self.shared.client.transactions(limit, before).await, None)
    }

    /// Live recharge batches, soonest expiry first.
    pub async fn batches(&self) -> Result<Vec<Batch>> {
        self.observe(self.shared.client.batches().await, None)
    }

    /// Charges of the signed-in account made but not yet acknowledged by the ledger (0 while
    /// signed out).
    pub fn pending_count(&self) -> usize {
        self.pending().count as usize
    }

    /// The signed-in account's pending and refused charges.
    pub fn pending(&self) -> PendingStatus {
        let (current, session) = self.shared.sessions.snapshot();
        let Some(current) = current else {
            return PendingStatus {
                count: 0,
                oldest_age_seconds: None,
                refused: Vec::new(),
                signed_in: false,
                session,
            };
        };
        let journal = self.shared.sync.journal();
        let pending = journal.pending_of(current.account());
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|since| since.as_secs())
            .unwrap_or_default();
        PendingStatus {
            count: u32::try_from(pending.len()).unwrap_or(u32::MAX),
            oldest_age_seconds: pending
                .first()
                .map(|oldest| now.saturating_sub(oldest.recorded_at)),
            refused: journal.refused_of(current.account()),
            signed_in: true,
            session,
        }
    }

    /// Sends the pending charges now (after a pass under way, if any) and reports what is left.
    pub async fn sync_pending(&self) -> PendingStatus {
        self.shared.sync.sync_now().await;
        self.pending()
    }

    /// The current session, or [`Error::Unauthorized`].
    fn session(&self) -> Result<Session> {
        self.shared.sessions.current().ok_or(Error::Unauthorized)
    }

    /// A receipt of `account` moved the balance: emits it when that account is signed in.
    fn receipt_acknowledged(&self, account: &str, receipt: &ChargeReceipt) {
        self.shared.balance_moves.fetch_add(1, Ordering::SeqCst);
        let generation = self.shared.sessions.generation();
        let current = self.shared.sessions.current();
        if current.as_ref().map(Session::account) != Some(account) {
            return;
        }
        if receipt.replayed {
            // A replay's balance is the historical one: fetch today's instead.
            let points = self.clone();
            tauri::async_runtime::spawn(async move {
                let _ = points.balance().await;
            });
            return;
        }
        self.emit_balance(
            generation,
            BalanceChanged {
                balance: receipt.balance,
                details: None,
                seq: receipt.seq,
                session: generation,
            },
        );
    }

    /// Emits a balance of session `generation`, unless the session changed since or a newer
    /// figure (higher `seq`) was already emitted.
    fn emit_balance(&self, generation: u64, payload: BalanceChanged) {
        {
            let mut last = self
                .shared
                .last_emitted
                .lock()
                .unwrap_or_else(|p| p.into_inner());
            if generation != self.shared.sessions.generation() {
                return;
            }
            if last.0 != generation {
                *last = (generation, None);
            }
            if let (Some(seq), Some(newest)) = (payload.seq, last.1) {
                if seq < newest {
                    return;
                }
            }
            if payload.seq.is_some() {
                last.1 = payload.seq;
            }
        }
        events::balance_changed(&self.shared.app, payload);
    }

    /// The label of the window a refusal belongs to: `given`, else the focused window, else the
    /// first window by label.
    fn refusal_window(&self, given: Option<&str>) -> Option<String> {
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

    /// Emits `points://insufficient` (for `window`) on an insufficient-points error, tells the
    /// sync on success that the ledger is reachable, and passes `result` on.
    fn observe<T>(&self, result: Result<T>, window: Option<&str>) -> Result<T> {
        match &result {
            Ok(_) => self.shared.sync.ledger_reachable(),
            Err(Error::InsufficientPoints {
                service,
                required,
                balance,
            }) => events::insufficient(
                &self.shared.app,
                InsufficientPoints {
                    service: service.clone(),
                    required: *required,
                    balance: *balance,
                    window: self.refusal_window(window),
                },
            ),
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

    /// Runs the job: captures the session, pre-checks the price (too few points fail with
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
        let points = self.points;
        let key = match &self.job_key {
            Some(job) => IdempotencyKey::parse(format!("{}:{job}", self.service.as_str()))?,
            None => IdempotencyKey::random(),
        };
        let session = points.session()?;
        let client = points.shared.client.as_token(session.token());
        let cost = points.observe(
            client.cost(self.service.as_str(), None).await,
            self.window.as_deref(),
        )?;
        if !cost.sufficient {
            let refused = Error::InsufficientPoints {
                service: Some(cost.service),
                required: Some(cost.required),
                balance: Some(cost.balance),
            };
            return Err(points
                .observe::<()>(Err(refused), self.window.as_deref())
                .unwrap_err()
                .into());
        }
        let output = work().await?;
        let request = ConsumeRequest {
            allow_debt: true,
            ..ConsumeRequest::new(self.service.as_str())
        };
        let charge = points.shared.sync.charge(&session, request, &key).await;
        if let ChargeOutcome::Pending { .. } = &charge {
            tracing::warn!(service = %self.service, "job done, its charge is not acknowledged yet");
        }
        Ok(Charged { output, charge })
    }
}

/// Tells the app about the sync's work through events.
pub(crate) struct EventsListener<R: Runtime> {
    pub(crate) app: AppHandle<R>,
}

impl<R: Runtime> SyncListener for EventsListener<R> {
    fn acknowledged(&self, account: &str, receipt: &ChargeReceipt, _first_send: bool) {
        if let Some(points) = self.app.try_state::<Points<R>>() {
            points.receipt_acknowledged(account, receipt);
        }
    }

    fn refused(&self, account: &str, refused: &RefusedCharge) {
        let Some(points) = self.app.try_state::<Points<R>>() else {
            return;
        };
        let current = points.shared.sessions.current();
        if current.as_ref().map(Session::account) == Some(account) {
            events::charge_refused(&self.app, refused.clone());
        }
    }
}
