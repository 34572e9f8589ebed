//! The events the plugin emits to every window, and their names.

use serde::Serialize;
use tauri::{AppHandle, Emitter, Runtime};

use crate::models::{
    BalanceChanged, InsufficientPoints, PendingCharges, RefusedCharge, SessionChanged,
};

/// Payload [`BalanceChanged`]: after a balance fetch, a charge or a re-sent charge of the
/// signed-in account.
pub const BALANCE_CHANGED: &str = "points://balance-changed";
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

fn emit<R: Runtime, T: Serialize + Clone>(app: &AppHandle<R>, event: &str, payload: T) {
    if let Err(error) = app.emit(event, payload) {
        tracing::debug!(event, %error, "could not emit a points event");
    }
}

/// Emits `points://balance-changed`.
pub(crate) fn balance_changed<R: Runtime>(app: &AppHandle<R>, payload: BalanceChanged) {
    emit(app, BALANCE_CHANGED, payload);
}

/// Emits `points://insufficient`.
pub(crate) fn insufficient<R: Runtime>(app: &AppHandle<R>, payload: InsufficientPoints) {
    emit(app, INSUFFICIENT, payload);
}

/// Emits `points://pending-changed`.
pub(crate) fn pending_changed<R: Runtime>(app: &AppHandle<R>, count: usize, session: u64) {
    let count = u32::try_from(count).unwrap_or(u32::MAX);
    emit(app, PENDING_CHANGED, PendingCharges { count, session });
}

/// Emits `points://session-changed`.
pub(crate) fn session_changed<R: Runtime>(app: &AppHandle<R>, payload: SessionChanged) {
    emit(app, SESSION_CHANGED, payload);
}

/// Emits `points://charge-refused`.
pub(crate) fn charge_refused<R: Runtime>(app: &AppHandle<R>, payload: RefusedCharge) {
    emit(app, CHARGE_REFUSED, payload);
}
