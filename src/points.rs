//! `Points<R>`: the plugin's state, reached with `app.points()`. It owns the ledger client, the
//! session token and the journal, runs the charge-a-job flow, and emits the plugin's events.

use std::future::Future;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use tauri::{AppHandle, Runtime};

use crate::client::{ConsumeRequest, IdempotencyKey, LedgerClient, SessionToken};
use crate::journal::{Journal, ReplayReport};
use crate::models::{
    BalanceChanged, Batch, ChargeReceipt, CostCheck, DesktopService, InsufficientPoints,
    PointBalance, PriceList, TransactionPage,
};
use crate::{events, Error, Result};

/// The outcome of [`Points::run_charged`]: the job's output, and the ledger's receipt when the
/// charge was acknowledged at once.
#[derive(Debug, Clone, PartialEq)]
pub struct Charged<T> {
    /// What the job returned.
    pub output: T,
    /// `None` when the charge is still pending (kept in the journal and replayed later), or was
    /// refused by the ledger as impossible (logged).
    pub receipt: Option<ChargeReceipt>,
}

/// The plugin's state. Cheap to clone.
pub struct Points<R: Runtime> {
    app: AppHandle<R>,
    client: LedgerClient,
    session: SessionToken,
    journal: Arc<Journal>,
    /// Counts the receipts that moved the balance: a fetch that overlapped one may predate it.
    balance_moves: Arc<AtomicU64>,
}

impl<R: Runtime> Clone for Points<R> {
    fn clone(&self) -> Self {
        Self {
            app: self.app.clone(),
            client: self.client.clone(),
            session: self.session.clone(),
            journal: self.journal.clone(),
            balance_moves: self.balance_moves.clone(),
        }
    }
}

impl<R: Runtime> Points<R> {
    pub(crate) fn new(
        app: AppHandle<R>,
        client: LedgerClient,
        session: SessionToken,
        journal: Arc<Journal>,
    ) -> Self {
        Self {
            app,
            client,
            session,
            journal,
            balance_moves: Arc::default(),
        }
    }

    /// The ledger client, for calls the plugin does not wrap.
    pub fn client(&self) -> &LedgerClient {
        &self.client
    }

    /// Sets the session token the ledger calls are made with, and replays pending charges.
    pub fn set_session_token(&self, token: impl Into<String>) -> Result<()> {
        let token = token.into();
        if token.is_empty()
            || token.len() > 8192
            || !token.bytes().all(|byte| (0x21..=0x7e).contains(&byte))
        {
            return Err(Error::invalid_argument(
                "token",
                "must be 1 to 8192 printable ASCII characters without spaces",
            ));
        }
        self.session.set(token);
        let points = self.clone();
        tauri::async_runtime::spawn(async move {
            points.replay_pending().await;
        });
        Ok(())
    }

    /// Forgets the session token (sign-out).
    pub fn clear_session_token(&self) {
        self.session.clear();
    }

    /// The balance summary; emits `points://balance-changed` with the details.
    ///
    /// A charge acknowledged while the fetch was under way may be missing from its answer, which
    /// would then undo the charge's newer figure: such a fetch is made once more, and its details
    /// are emitted only when no charge overlapped it.
    pub async fn balance(&self) -> Result<PointBalance> {
        let mut fetches = 0;
        let (balance, overlapped) = loop {
            let moves = self.balance_moves.load(Ordering::SeqCst);
            let balance = self.observe(self.client.balance().await)?;
            fetches += 1;
            let overlapped = self.balance_moves.load(Ordering::SeqCst) != moves;
            if !overlapped || fetches == 2 {
                break (balance, overlapped);
            }
        };
        if overlapped {
            return Ok(balance);
        }
        events::balance_changed(
            &self.app,
            BalanceChanged {
                balance: balance.balance,
                details: Some(balance.clone()),
            },
        );
        Ok(balance)
    }

    /// The price of one use of any service (with `duration` seconds for services priced by
    /// duration), and whether the balance covers it.
    pub async fn check_cost(&self, service: &str, duration: Option<f64>) -> Result<CostCheck> {
        self.observe(self.client.cost(service, duration).await)
    }

    /// Charges one use of a desktop service, never with debt: too few points fail with
    /// [`Error::InsufficientPoints`] and nothing is written. Without a key, a random one is used.
    pub async fn charge(
        &self,
        service: DesktopService,
        idempotency_key: Option<IdempotencyKey>,
        reference: Option<String>,
    ) -> Result<ChargeReceipt> {
        let key = idempotency_key.unwrap_or_else(IdempotencyKey::random);
        let request = ConsumeRequest {
            reference,
            ..ConsumeRequest::new(service.as_str())
        };
        let receipt = self.observe(self.client.consume(&request, &key).await)?;
        self.receipt_changed_balance(&receipt);
        Ok(receipt)
    }

    /// Runs a job that costs `service`: pre-checks the price (too few points fail with
    /// [`Error::InsufficientPoints`] and `points://insufficient` before the work starts), runs
    /// `work`, and only if it succeeds charges it with debt allowed, under one idempotency key
    /// (`job_key`, or a random one) journaled until the ledger acknowledges it. A failed job is
    /// not charged.
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
        let key = match job_key {
            Some(key) => IdempotencyKey::parse(key)?,
            None => IdempotencyKey::random(),
        };
        let cost = self.check_cost(service.as_str(), None).await?;
        if !cost.sufficient {
            let error = Error::InsufficientPoints {
                service: Some(cost.service),
                required: Some(cost.required),
                balance: Some(cost.balance),
            };
            return Err(self.observe::<()>(Err(error)).unwrap_err().into());
        }
        let output = work().await?;
        let request = ConsumeRequest {
            allow_debt: true,
            ..ConsumeRequest::new(service.as_str())
        };
        let receipt = match self.journal.consume(&self.client, &request, &key).await {
            Ok(receipt) => {
                self.receipt_changed_balance(&receipt);
                Some(receipt)
            }
            Err(error) => {
                tracing::warn!(%error, service = %service, "job done, its charge is not acknowledged yet");
                None
            }
        };
        Ok(Charged { output, receipt })
    }

    /// The price table.
    pub async fn prices(&self) -> Result<PriceList> {
        self.observe(self.client.prices().await)
    }

    /// A page of history, newest first.
    pub async fn transactions(
        &self,
        limit: Option<u32>,
        before: Option<&str>,
    ) -> Result<TransactionPage> {
        self.observe(self.client.transactions(limit, before).await)
    }

    /// Live recharge batches, soonest expiry first.
    pub async fn batches(&self) -> Result<Vec<Batch>> {
        self.observe(self.client.batches().await)
    }

    /// Charges made but not yet acknowledged by the ledger.
    pub fn pending_count(&self) -> usize {
        self.journal.len()
    }

    /// Sends pending charges again (done at start and whenever a session token is set).
    pub async fn replay_pending(&self) -> ReplayReport {
        if self.journal.is_empty() {
            return ReplayReport::default();
        }
        let report = self.journal.replay(&self.client).await;
        if let Some(last) = report.acknowledged.last() {
            self.receipt_changed_balance(last);
        }
        report
    }

    fn receipt_changed_balance(&self, receipt: &ChargeReceipt) {
        self.balance_moves.fetch_add(1, Ordering::SeqCst);
        events::balance_changed(
            &self.app,
            BalanceChanged {
                balance: receipt.balance,
                details: None,
            },
        );
    }

    /// Emits `points://insufficient` for an insufficient-points error, and passes `result` on.
    fn observe<T>(&self, result: Result<T>) -> Result<T> {
        if let Err(Error::InsufficientPoints {
            service,
            required,
            balance,
        }) = &result
        {
            events::insufficient(
                &self.app,
                InsufficientPoints {
                    service: service.clone(),
                    required: *required,
                    balance: *balance,
                },
            );
        }
        result
    }
}
