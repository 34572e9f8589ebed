//! The events the plugin emits to every window, and their names.

use serde::Serialize;
use tauri::{AppHandle, Emitter, Runtime};

use crate::models::{BalanceChanged, InsufficientPoints, PendingCharges};

/// Payload [`BalanceChanged`]: after a balance fetch, a charge or a replayed charge.
pub const BALANCE_CHANGED: &str = "points://balance-changed";
/// Payload [`InsufficientPoints`]: on every 402 and every failed pre-check.
pub const INSUFFICIENT: &str = "points://insufficient";
/// Payload [`PendingCharges`]: whenever the number of unacknowledged charges changes.
pub const PENDING_CHANGED: &str = "points://pending-changed";

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
pub(crate) fn pending_changed<R: Runtime>(app: &AppHandle<R>, count: usize) {
    let count = u32::try_from(count).unwrap_or(u32::MAX);
    emit(app, PENDING_CHANGED, PendingCharges { count });
}
