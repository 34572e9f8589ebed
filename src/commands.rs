//! The IPC commands (`plugin:points|<name>`): read the arguments, call [`Points`], return.
//!
//! Every command is async: none runs on the main thread (Tauri runs synchronous commands
//! there), so no window waits for the plugin.
//!
//! Arguments arrive as raw JSON and are checked here, so that whatever a webview sends (a wrong
//! type, a huge number, a long string) is answered with a typed `invalidArgument` rather than
//! Tauri's untyped refusal.

use serde_json::Value;
use tauri::{command, AppHandle, Runtime, Webview};

use crate::client::IdempotencyKey;
use crate::models::{
    Batch, ChargeOutcome, CostCheck, DesktopService, LowBalance, OfflineStatus, PendingStatus,
    PointBalance, PriceList, TransactionPage,
};
use crate::session::{MAX_ACCOUNT_LEN, MAX_TOKEN_LEN};
use crate::{Error, PointsExt, Result};

/// The longest string argument accepted (service names, references, cursors).
const MAX_STRING_LEN: usize = 1024;
/// The largest `limit` accepted for a history page.
const MAX_PAGE_LIMIT: u32 = 1000;

#[command]
pub(crate) async fn get_balance<R: Runtime>(app: AppHandle<R>) -> Result<PointBalance> {
    app.points().balance().await
}

#[command]
pub(crate) async fn get_low_balance<R: Runtime>(app: AppHandle<R>) -> Result<Option<LowBalance>> {
    Ok(app.points().low_balance())
}

#[command]
pub(crate) async fn get_offline<R: Runtime>(app: AppHandle<R>) -> Result<OfflineStatus> {
    Ok(app.points().offline())
}

#[command]
pub(crate) async fn check_cost<R: Runtime>(
    app: AppHandle<R>,
    webview: Webview<R>,
    service: Option<Value>,
    duration: Option<Value>,
) -> Result<CostCheck> {
    let service = required_string("service", service)?;
    let duration = optional_number("duration", duration).map_err(|_| Error::InvalidDuration)?;
    app.points()
        .check_cost_in(&service, duration, Some(webview.label()))
        .await
}

#[command]
pub(crate) async fn charge<R: Runtime>(
    app: AppHandle<R>,
    webview: Webview<R>,
    service: Option<Value>,
    idempotency_key: Option<Value>,
    reference: Option<Value>,
) -> Result<ChargeOutcome> {
    let service: DesktopService = required_string("service", service)?.parse()?;
    let key = optional_string("idempotencyKey", idempotency_key)?
        .map(IdempotencyKey::parse)
        .transpose()?;
    let reference = optional_string("reference", reference)?;
    app.points()
        .charge_in(service, key, reference, Some(webview.label()))
        .await
}

#[command]
pub(crate) async fn get_prices<R: Runtime>(app: AppHandle<R>) -> Result<PriceList> {
    app.points().prices().await
}

#[command]
pub(crate) async fn list_transactions<R: Runtime>(
    app: AppHandle<R>,
    limit: Option<Value>,
    before: Option<Value>,
) -> Result<TransactionPage> {
    let limit = optional_limit("limit", limit)?;
    let before = optional_string("before", before)?;
    app.points().transactions(limit, before.as_deref()).await
}

#[command]
pub(crate) async fn list_batches<R: Runtime>(app: AppHandle<R>) -> Result<Vec<Batch>> {
    app.points().batches().await
}

#[command]
pub(crate) async fn set_session_token<R: Runtime>(
    app: AppHandle<R>,
    token: Option<Value>,
    account_id: Option<Value>,
) -> Result<()> {
    let token = bounded_string("token", token, MAX_TOKEN_LEN)?
        .ok_or_else(|| Error::invalid_argument("token", "is required"))?;
    let account_id = bounded_string("accountId", account_id, MAX_ACCOUNT_LEN)?;
    app.points().sign_in(token, account_id)
}

#[command]
pub(crate) async fn clear_session_token<R: Runtime>(app: AppHandle<R>) {
    app.points().clear_session_token();
}

#[command]
pub(crate) async fn get_pending<R: Runtime>(app: AppHandle<R>) -> PendingStatus {
    app.points().pending()
}

#[command]
pub(crate) async fn sync_pending<R: Runtime>(app: AppHandle<R>) -> PendingStatus {
    app.points().sync_pending().await
}

#[command]
pub(crate) async fn retry_refused<R: Runtime>(
    app: AppHandle<R>,
    idempotency_key: Option<Value>,
) -> Result<PendingStatus> {
    let key = required_string("idempotencyKey", idempotency_key)?;
    app.points().retry_refused(&key).await
}

#[command]
pub(crate) async fn dismiss_refused<R: Runtime>(
    app: AppHandle<R>,
    idempotency_key: Option<Value>,
) -> Result<PendingStatus> {
    let key = required_string("idempotencyKey", idempotency_key)?;
    app.points().dismiss_refused(&key).await
}

/// A string argument that must be present.
fn required_string(field: &str, value: Option<Value>) -> Result<String> {
    optional_string(field, value)?.ok_or_else(|| Error::invalid_argument(field, "is required"))
}

/// A string argument; `null` or absent is `None`.
fn optional_string(field: &str, value: Option<Value>) -> Result<Option<String>> {
    bounded_string(field, value, MAX_STRING_LEN)
}

/// A string argument of at most `max_len` bytes; `null` or absent is `None`.
fn bounded_string(field: &str, value: Option<Value>, max_len: usize) -> Result<Option<String>> {
    match value {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(text)) if text.len() <= max_len => Ok(Some(text)),
        Some(Value::String(_)) => Err(Error::invalid_argument(
            field,
            format!("is longer than {max_len} bytes"),
        )),
        Some(_) => Err(Error::invalid_argument(field, "must be a string")),
    }
}

/// A number argument; `null` or absent is `None`.
fn optional_number(field: &str, value: Option<Value>) -> Result<Option<f64>> {
    match value {
        None | Some(Value::Null) => Ok(None),
        Some(Value::Number(number)) => number
            .as_f64()
            .filter(|number| number.is_finite())
            .map(Some)
            .ok_or_else(|| Error::invalid_argument(field, "must be a finite number")),
        Some(_) => Err(Error::invalid_argument(field, "must be a number")),
    }
}

/// A page size: a whole number from 1 to [`MAX_PAGE_LIMIT`]; `null` or absent is `None`.
fn optional_limit(field: &str, value: Option<Value>) -> Result<Option<u32>> {
    let Some(number) = optional_number(field, value)? else {
        return Ok(None);
    };
    if number.fract() != 0.0 || number < 1.0 || number > f64::from(MAX_PAGE_LIMIT) {
        return Err(Error::invalid_argument(
            field,
            format!("must be a whole number from 1 to {MAX_PAGE_LIMIT}"),
        ));
    }
    Ok(Some(number as u32))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn limits_are_whole_numbers_in_range() {
        assert_eq!(optional_limit("limit", None), Ok(None));
        assert_eq!(optional_limit("limit", Some(Value::Null)), Ok(None));
        assert_eq!(optional_limit("limit", Some(json!(20))), Ok(Some(20)));
        for bad in [
            json!(0),
            json!(1.5),
            json!(-3),
            json!(1001),
            json!(1e300),
            json!("20"),
        ] {
            assert!(
                matches!(optional_limit("limit", Some(bad.clone())), Err(Error::InvalidArgument { ref field, .. }) if field == "limit"),
                "{bad}"
            );
        }
    }

    #[test]
    fn strings_are_typed_and_bounded() {
        assert_eq!(
            optional_string("before", Some(json!("c1"))),
            Ok(Some("c1".into()))
        );
        assert!(optional_string("before", Some(json!(1))).is_err());
        assert!(optional_string("before", Some(json!("x".repeat(1025)))).is_err());
        assert!(required_string("service", None).is_err());
    }
}
