//! The one place where what the SDK reports becomes the plugin's events, sent to every window:
//! the sessions' and the journal's changes (watched by one task: reading a session or the
//! journal calls nothing), the sync's and the job flow's notifications ([`Notices`]), and the
//! figures `Points` reads.
//!
//! Events leave through one queue, in the order they were decided, by one task: a listener
//! never sees a `seq` or a session number go back, and no listener runs under a lock of the
//! plugin. Figures of a session not announced yet, or no longer current, are dropped.

use std::sync::{Arc, Mutex};

use serde::Serialize;
use tauri::{AppHandle, Emitter, Runtime};
use tokio::sync::{mpsc, watch};

use crate::session::Session;
use crate::sync::ChargeSync;

use crate::alerts::LowBalanceAlerts;
use crate::models::{
    BalanceChanged, ChargeReceipt, InsufficientPoints, LowBalance, OfflineStatus, PendingCharges,
    PointBalance, RefusedCharge, SessionChanged,
};

/// Payload [`BalanceChanged`]: after a balance fetch, a charge or a re-sent charge of the
/// signed-in account, and whenever its balance changes elsewhere (the ledger's stream, or polls
/// of a backend without it). Always a whole summary, in `seq` order.
pub const BALANCE_CHANGED: &str = "points://balance-changed";
/// Payload [`LowBalance`]: the signed-in account's balance fell below a threshold of
/// `plugins.points.lowBalance`; once per downward crossing, even across restarts.
pub const LOW_BALANCE: &str = "points://low-balance";
/// Payload [`InsufficientPoints`]: on every 402 and every failed pre-check, naming the window
/// whose action was refused.
pub const INSUFFICIENT: &str = "points://insufficient";
/// Payload [`PendingCharges`]: whenever the signed-in account's number of unacknowledged charges
/// changes, and at every change of session.
pub const PENDING_CHANGED: &str = "points://pending-changed";
/// Payload [`SessionChanged`]: on sign-in, sign-out and a change of account.
pub const SESSION_CHANGED: &str = "points://session-changed";
/// Payload [`RefusedCharge`]: the ledger refused a charge of the signed-in account for good.
pub const CHARGE_REFUSED: &str = "points://charge-refused";
/// Payload [`OfflineStatus`]: the ledger was found unreachable or reachable again, or what
/// offline work of the signed-in account may spend changed.
pub const OFFLINE_CHANGED: &str = "points://offline-changed";

/// Events waiting to be emitted, at most; past it new figures are dropped (a later one
/// supersedes them) and logged.
const QUEUE_CAPACITY: usize = 4096;

/// One event to emit.
#[derive(Debug)]
enum Event {
    Balance(BalanceChanged),
    LowBalance(LowBalance),
    Insufficient(InsufficientPoints),
    Pending(PendingCharges),
    Session(SessionChanged),
    Refused(RefusedCharge),
    Offline(OfflineStatus),
    /// Answered once every event queued before it was emitted.
    Flush(tokio::sync::oneshot::Sender<()>),
}

/// What the queue has let through so far.
struct Order {
    /// The session last announced.
    session: u64,
    /// The highest `seq` emitted in that session.
    seq: Option<i64>,
    /// The last summary emitted in that session (after a charge, the new one is derived from it).
    summary: Option<PointBalance>,
    /// The pending count last emitted in that session.
    pending: Option<u32>,
    /// The offline status last emitted in that session.
    offline: Option<OfflineStatus>,
}

/// The ordered event queue of the plugin.
pub(crate) struct EventQueue {
    order: Mutex<Order>,
    sender: mpsc::Sender<Event>,
    alerts: Arc<LowBalanceAlerts>,
}

impl EventQueue {
    /// A queue whose events `app` emits, from a task on Tauri's async runtime.
    pub(crate) fn start<R: Runtime>(app: AppHandle<R>, alerts: Arc<LowBalanceAlerts>) -> Self {
        let (sender, mut receiver) = mpsc::channel(QUEUE_CAPACITY);
        tauri::async_runtime::spawn(async move {
            while let Some(event) = receiver.recv().await {
                match event {
                    Event::Balance(payload) => emit(&app, BALANCE_CHANGED, payload),
                    Event::LowBalance(payload) => emit(&app, LOW_BALANCE, payload),
                    Event::Insufficient(payload) => emit(&app, INSUFFICIENT, payload),
                    Event::Pending(payload) => emit(&app, PENDING_CHANGED, payload),
                    Event::Session(payload) => emit(&app, SESSION_CHANGED, payload),
                    Event::Refused(payload) => emit(&app, CHARGE_REFUSED, payload),
                    Event::Offline(payload) => emit(&app, OFFLINE_CHANGED, payload),
                    Event::Flush(done) => {
                        let _ = done.send(());
                    }
                }
            }
        });
        Self {
            order: Mutex::new(Order {
                session: 0,
                seq: None,
                summary: None,
                pending: None,
                offline: None,
            }),
            sender,
            alerts,
        }
    }

    fn order(&self) -> std::sync::MutexGuard<'_, Order> {
        self.order.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn queue(&self, event: Event) {
        if let Err(error) = self.sender.try_send(event) {
            tracing::warn!(%error, "the points event queue is full: an event is dropped");
        }
    }

    /// Announces session `session` (`signed_in` or not) with its pending count.
    pub(crate) fn session_changed(&self, session: u64, signed_in: bool, pending: usize) {
        let mut order = self.order();
        if session < order.session {
            return;
        }
        let payload = pending_charges(pending, session);
        *order = Order {
            session,
            seq: None,
            summary: None,
            pending: Some(payload.count),
            offline: None,
        };
        self.queue(Event::Session(SessionChanged { signed_in, session }));
        self.queue(Event::Pending(payload));
    }

    /// Emits a whole summary of session `payload.session` (of `account`), unless another session
    /// is announced or a newer figure (higher `seq`) of it was emitted already; then emits
    /// `points://low-balance` for every threshold it has just fallen below.
    pub(crate) fn balance_changed(&self, payload: BalanceChanged, account: &str) {
        let mut order = self.order();
        if payload.session != order.session {
            return;
        }
        if let (Some(seq), Some(newest)) = (payload.seq, order.seq) {
            if seq < newest || (seq == newest && order.summary.as_ref() == Some(&payload.summary)) {
                return;
            }
        }
        if payload.seq.is_some() {
            order.seq = payload.seq;
        }
        order.summary = Some(payload.summary.clone());
        let (balance, session) = (payload.balance, payload.session);
        self.queue(Event::Balance(payload));
        for threshold in self.alerts.observe(account, balance) {
            self.queue(Event::LowBalance(LowBalance {
                threshold,
                balance,
                session,
            }));
        }
    }

    /// A charge of session `session` (of `account`) was acknowledged with `receipt`: emits the
    /// whole summary after it when the last one emitted is the one just before it (same totals
    /// but the consumed points). `false` when it cannot be derived: the caller fetches it.
    pub(crate) fn charge_acknowledged(
        &self,
        session: u64,
        account: &str,
        receipt: &ChargeReceipt,
    ) -> bool {
        let derived = {
            let order = self.order();
            if session != order.session {
                return true;
            }
            let (Some(last), Some(seq)) = (order.summary.as_ref(), receipt.seq) else {
                return false;
            };
            match last.seq {
                // The stream or a fetch already showed this charge or a later figure.
                Some(last_seq) if seq <= last_seq => return true,
                Some(last_seq) if seq == last_seq + 1 => {}
                _ => return false,
            }
            let consumed = last.total_consumed.checked_add(receipt.points);
            let balance = last.balance.checked_sub(receipt.points);
            match (consumed, balance) {
                (Some(total_consumed), Some(balance)) if balance == receipt.balance => {
                    PointBalance {
                        balance,
                        total_consumed,
                        seq: Some(seq),
                        ..last.clone()
                    }
                }
                _ => return false,
            }
        };
        self.balance_changed(
            BalanceChanged {
                balance: derived.balance,
                seq: derived.seq,
                summary: derived,
                session,
            },
            account,
        );
        true
    }

    /// Emits the pending count of session `session`, computed by `count` in order with the
    /// other events (and dropped when that session is no longer the announced one).
    pub(crate) fn pending_changed(&self, session: u64, count: impl FnOnce() -> usize) {
        let mut order = self.order();
        if session != order.session {
            return;
        }
        let payload = pending_charges(count(), session);
        if order.pending == Some(payload.count) {
            return;
        }
        order.pending = Some(payload.count);
        self.queue(Event::Pending(payload));
    }

    /// Emits the offline status `payload` of its session, when that session is the announced
    /// one and the status changed.
    pub(crate) fn offline_changed(&self, payload: OfflineStatus) {
        let mut order = self.order();
        if payload.session != order.session || order.offline.as_ref() == Some(&payload) {
            return;
        }
        order.offline = Some(payload.clone());
        self.queue(Event::Offline(payload));
    }

    /// The crossing in force for `account` in session `session`, if any.
    pub(crate) fn low_balance_in_force(&self, account: &str, session: u64) -> Option<LowBalance> {
        let (threshold, balance) = self.alerts.in_force(account)?;
        Some(LowBalance {
            threshold,
            balance,
            session,
        })
    }

    /// Saves the low-balance state now (at exit).
    pub(crate) fn save_alerts(&self) {
        if let Err(error) = self.alerts.save_now() {
            tracing::warn!(%error, "the low-balance state could not be saved");
        }
    }

    /// Returns once every event queued so far was emitted.
    pub(crate) async fn flush(&self) {
        let (done, flushed) = tokio::sync::oneshot::channel();
        if self.sender.send(Event::Flush(done)).await.is_ok() {
            let _ = flushed.await;
        }
    }

    /// Emits `points://insufficient`.
    pub(crate) fn insufficient(&self, payload: InsufficientPoints) {
        let _order = self.order();
        self.queue(Event::Insufficient(payload));
    }

    /// Emits `points://charge-refused` for session `session`, when it is still the announced one.
    pub(crate) fn charge_refused(&self, session: u64, payload: RefusedCharge) {
        let order = self.order();
        if session != order.session {
            return;
        }
        self.queue(Event::Refused(payload));
    }
}

fn pending_charges(count: usize, session: u64) -> PendingCharges {
    PendingCharges {
        count: u32::try_from(count).unwrap_or(u32::MAX),
        session,
    }
}

fn emit<R: Runtime, T: Serialize + Clone>(app: &AppHandle<R>, event: &str, payload: T) {
    if let Err(error) = app.emit(event, payload) {
        tracing::debug!(event, %error, "could not emit a points event");
    }
}

/// Watches the sessions and the journal from one task, announcing every change of session (with
/// its pending count) and every change of the pending count; answers flush requests once the
/// changes made before them are queued.
pub(crate) struct Watcher {
    flush: mpsc::Sender<tokio::sync::oneshot::Sender<()>>,
}

impl Watcher {
    /// Starts watching `sync`'s sessions and journal, queuing into `events`.
    pub(crate) fn start(events: Arc<EventQueue>, sync: ChargeSync) -> Self {
        let (flush, mut requests) = mpsc::channel::<tokio::sync::oneshot::Sender<()>>(64);
        let sessions = sync.sessions().clone();
        let mut session_changes = sessions.subscribe();
        let mut journal_changes = sync.journal().subscribe();
        tauri::async_runtime::spawn(async move {
            let announce_session = |changes: &mut watch::Receiver<(Option<Session>, u64)>| {
                let (session, generation) = changes.borrow_and_update().clone();
                events.session_changed(
                    generation,
                    session.is_some(),
                    sync.pending_count(session.as_ref()),
                );
                if let Some(session) = session {
                    // A sign-in: an allowance for offline work, while the ledger answers.
                    sync.refresh_allowance(session, None);
                }
            };
            let announce_pending = |changes: &mut watch::Receiver<u64>| {
                changes.borrow_and_update();
                let (session, generation) = sessions.snapshot();
                events.pending_changed(generation, || sync.pending_count(session.as_ref()));
            };
            loop {
                tokio::select! {
                    biased;
                    changed = session_changes.changed() => {
                        if changed.is_err() { break; }
                        announce_session(&mut session_changes);
                    }
                    changed = journal_changes.changed() => {
                        if changed.is_err() { break; }
                        announce_pending(&mut journal_changes);
                    }
                    request = requests.recv() => {
                        let Some(done) = request else { break };
                        if session_changes.has_changed().unwrap_or(false) {
                            announce_session(&mut session_changes);
                        }
                        if journal_changes.has_changed().unwrap_or(false) {
                            announce_pending(&mut journal_changes);
                        }
                        events.flush().await;
                        let _ = done.send(());
                    }
                }
            }
        });
        Self { flush }
    }

    /// Returns once every change made before the call has been emitted.
    pub(crate) async fn flush(&self) {
        let (done, flushed) = tokio::sync::oneshot::channel();
        if self.flush.send(done).await.is_ok() {
            let _ = flushed.await;
        }
    }
}

/// Turns the SDK's notifications (charge sync, job flow) into the plugin's events.
pub(crate) struct Notices<R: Runtime> {
    pub(crate) app: AppHandle<R>,
}

impl<R: Runtime> crate::sync::SyncListener for Notices<R> {
    fn acknowledged(
        &self,
        charge: &crate::journal::PendingCharge,
        receipt: &crate::models::ChargeReceipt,
        _first_send: bool,
    ) {
        if let Some(points) = crate::points::points_of(&self.app) {
            points.receipt_acknowledged(charge, receipt);
        }
    }

    fn refused(&self, charge: &crate::journal::PendingCharge, refused: &RefusedCharge) {
        if let Some(points) = crate::points::points_of(&self.app) {
            if let Some(session) = points.owner_session(charge) {
                points.events().charge_refused(session, refused.clone());
            }
        }
    }
}

impl<R: Runtime> crate::offline::OfflineListener for Notices<R> {
    fn offline_changed(&self, account: &str) {
        if let Some(points) = crate::points::points_of(&self.app) {
            points.offline_changed(account);
        }
    }
}

impl<R: Runtime> crate::jobs::JobListener for Notices<R> {
    fn insufficient(&self, refusal: &InsufficientPoints) {
        if let Some(points) = crate::points::points_of(&self.app) {
            points.insufficient(refusal);
        }
    }
}

impl<R: Runtime> crate::watch::WatchListener for Notices<R> {
    fn figure(
        &self,
        generation: u64,
        session: &Session,
        figure: &PointBalance,
        _source: crate::watch::FigureSource,
    ) {
        if let Some(points) = crate::points::points_of(&self.app) {
            points.events().balance_changed(
                BalanceChanged {
                    balance: figure.balance,
                    summary: figure.clone(),
                    seq: figure.seq,
                    session: generation,
                },
                session.account(),
            );
        }
    }

    fn reachability(&self, session: &Session, reachable: bool) {
        if let Some(points) = crate::points::points_of(&self.app) {
            if let Some(offline) = points.jobs().offline() {
                offline.set_reachable(Some(session.account()), reachable);
            }
        }
    }

    fn foreground(&self) -> bool {
        use tauri::Manager;
        let windows = self.app.webview_windows();
        windows.is_empty()
            || windows.values().any(|window| {
                window.is_visible().unwrap_or(true) && !window.is_minimized().unwrap_or(false)
            })
    }
}
