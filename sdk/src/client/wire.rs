//! The contract's wire format (snake_case JSON) and the one place that turns it into
//! [`crate::models`] types and typed [`Error`]s.
//!
//! Decoding is tolerant where the contract allows backends to differ (ids as numbers or strings,
//! a missing `replayed`, every shape of error body) and strict elsewhere: an answer that does not
//! fit is an [`Error::Protocol`], never a panic.

use serde::{Deserialize, Deserializer, Serialize};
use serde_json::Value;

use crate::models::{
    Batch, ChargeReceipt, CostCheck, PointBalance, PriceList, PricingMode, ServicePrice,
    Transaction, TransactionKind, TransactionPage,
};
use crate::Error;

/// `GET /points/balance`.
#[derive(Debug, Deserialize)]
pub struct WireBalance {
    pub balance: i64,
    pub total_recharged: i64,
    pub total_consumed: i64,
    pub total_expired: i64,
    /// The user's latest journal sequence number (contract v1.1; absent from older backends).
    #[serde(default)]
    pub seq: Option<i64>,
    /// The ledger's account of the token (contract v1.2; absent from older backends).
    #[serde(default, deserialize_with = "optional_id")]
    pub user_id: Option<String>,
}

impl From<WireBalance> for PointBalance {
    fn from(wire: WireBalance) -> Self {
        PointBalance {
            balance: wire.balance,
            total_recharged: wire.total_recharged,
            total_consumed: wire.total_consumed,
            total_expired: wire.total_expired,
            seq: wire.seq,
        }
    }
}

/// The largest magnitude of an amount the contract allows (2^53 − 1).
pub const MAX_AMOUNT: i64 = 9_007_199_254_740_991;

/// Checks that a summary is whole: amounts within ±[`MAX_AMOUNT`], totals not negative, and
/// `balance == total_recharged - total_consumed - total_expired`.
pub fn check_summary(summary: &PointBalance) -> Result<(), Error> {
    let totals = [
        summary.total_recharged,
        summary.total_consumed,
        summary.total_expired,
    ];
    if summary.balance.abs() > MAX_AMOUNT || totals.iter().any(|t| !(0..=MAX_AMOUNT).contains(t)) {
        return Err(Error::protocol("a summary amount is out of bounds".into()));
    }
    if summary.seq.is_some_and(|seq| seq < 0) {
        return Err(Error::protocol("a summary with a negative `seq`".into()));
    }
    let expected = summary.total_recharged - summary.total_consumed - summary.total_expired;
    if summary.balance != expected {
        return Err(Error::protocol(
            "a summary whose balance is not recharged - consumed - expired".into(),
        ));
    }
    Ok(())
}

/// `GET /points/cost`.
#[derive(Debug, Deserialize)]
pub struct WireCost {
    pub service: String,
    pub mode: PricingMode,
    pub required: i64,
    pub balance: i64,
    pub sufficient: bool,
    #[serde(default)]
    pub seq: Option<i64>,
    /// The ledger's account of the token (contract v1.2; absent from older backends).
    #[serde(default, deserialize_with = "optional_id")]
    pub user_id: Option<String>,
}

impl From<WireCost> for CostCheck {
    fn from(wire: WireCost) -> Self {
        CostCheck {
            service: wire.service,
            mode: wire.mode,
            required: wire.required,
            balance: wire.balance,
            sufficient: wire.sufficient,
            seq: wire.seq,
        }
    }
}

/// The body of `POST /points/consume`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ConsumeRequest {
    /// The service to charge.
    pub service: String,
    /// Seconds of media, for `duration` services.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub duration: Option<f64>,
    /// Apply even if the balance goes negative (work already done).
    #[serde(default)]
    pub allow_debt: bool,
    /// The caller's reference (a job id, a file name), stored with the transaction.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reference: Option<String>,
}

impl ConsumeRequest {
    /// A charge of one use of `service`, without debt, duration or reference.
    pub fn new(service: impl Into<String>) -> Self {
        Self {
            service: service.into(),
            duration: None,
            allow_debt: false,
            reference: None,
        }
    }
}

/// The answer of `POST /points/consume`.
#[derive(Debug, Deserialize)]
pub struct WireReceipt {
    #[serde(default, deserialize_with = "optional_id")]
    pub transaction_id: Option<String>,
    pub service: String,
    pub points: i64,
    pub balance: i64,
    #[serde(default)]
    pub replayed: bool,
    #[serde(default)]
    pub seq: Option<i64>,
}

impl WireReceipt {
    /// The receipt of a charge made with `idempotency_key`.
    pub fn into_receipt(self, idempotency_key: &str) -> ChargeReceipt {
        ChargeReceipt {
            transaction_id: self.transaction_id,
            service: self.service,
            points: self.points,
            balance: self.balance,
            replayed: self.replayed,
            idempotency_key: idempotency_key.to_owned(),
            seq: self.seq,
        }
    }
}

/// `GET /points/prices`.
#[derive(Debug, Deserialize)]
pub struct WirePrices {
    pub services: Vec<WirePrice>,
}

/// One entry of `GET /points/prices`.
#[derive(Debug, Deserialize)]
pub struct WirePrice {
    pub service: String,
    pub mode: PricingMode,
    #[serde(default)]
    pub points: Option<i64>,
    #[serde(default)]
    pub points_per_second: Option<f64>,
}

impl From<WirePrices> for PriceList {
    fn from(wire: WirePrices) -> Self {
        PriceList {
            services: wire
                .services
                .into_iter()
                .map(|price| ServicePrice {
                    service: price.service,
                    mode: price.mode,
                    points: price.points,
                    points_per_second: price.points_per_second,
                })
                .collect(),
        }
    }
}

/// `GET /points/transactions`.
#[derive(Debug, Deserialize)]
pub struct WireTransactions {
    pub items: Vec<WireTransaction>,
    #[serde(default)]
    pub next_cursor: Option<String>,
}

/// One entry of `GET /points/transactions`.
#[derive(Debug, Deserialize)]
pub struct WireTransaction {
    #[serde(deserialize_with = "id")]
    pub id: String,
    pub kind: TransactionKind,
    pub points: i64,
    pub balance_after: i64,
    #[serde(default)]
    pub service: Option<String>,
    #[serde(default)]
    pub idempotency_key: Option<String>,
    #[serde(default)]
    pub reference: Option<String>,
    pub created_at: String,
}

impl From<WireTransactions> for TransactionPage {
    fn from(wire: WireTransactions) -> Self {
        TransactionPage {
            items: wire
                .items
                .into_iter()
                .map(|item| Transaction {
                    id: item.id,
                    kind: item.kind,
                    points: item.points,
                    balance_after: item.balance_after,
                    service: item.service,
                    idempotency_key: item.idempotency_key,
                    reference: item.reference,
                    created_at: item.created_at,
                })
                .collect(),
            next_cursor: wire.next_cursor,
        }
    }
}

/// `GET /points/batches`.
#[derive(Debug, Deserialize)]
pub struct WireBatches {
    pub items: Vec<WireBatch>,
}

/// One entry of `GET /points/batches`.
#[derive(Debug, Deserialize)]
pub struct WireBatch {
    #[serde(deserialize_with = "id")]
    pub id: String,
    pub points: i64,
    pub remaining: i64,
    pub expires_at: String,
    pub created_at: String,
}

impl From<WireBatches> for Vec<Batch> {
    fn from(wire: WireBatches) -> Self {
        wire.items
            .into_iter()
            .map(|batch| Batch {
                id: batch.id,
                points: batch.points,
                remaining: batch.remaining,
                expires_at: batch.expires_at,
                created_at: batch.created_at,
            })
            .collect()
    }
}

/// An id sent as a string or as an integer.
#[derive(Deserialize)]
#[serde(untagged)]
enum StringOrInteger {
    String(String),
    Integer(i64),
}

impl From<StringOrInteger> for String {
    fn from(id: StringOrInteger) -> Self {
        match id {
            StringOrInteger::String(id) => id,
            StringOrInteger::Integer(id) => id.to_string(),
        }
    }
}

fn id<'de, D: Deserializer<'de>>(deserializer: D) -> Result<String, D::Error> {
    StringOrInteger::deserialize(deserializer).map(String::from)
}

fn optional_id<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Option<String>, D::Error> {
    Option::<StringOrInteger>::deserialize(deserializer).map(|id| id.map(String::from))
}

/// Decodes a success body.
pub fn decode<T: for<'de> Deserialize<'de>>(body: &[u8]) -> Result<T, Error> {
    serde_json::from_slice(body).map_err(|error| Error::protocol(error.to_string()))
}

/// The typed error for a non-success answer, whatever its body: RFC 9457 problem+json with the
/// contract's `code`, FastAPI's `{"detail": ...}` (a string, an object or a list), anything else,
/// or nothing. `service` is the service the request was about, for errors that name it.
pub fn error_from_answer(status: u16, body: &[u8], service: Option<&str>) -> Error {
    let parsed = ErrorBody::parse(body);
    if status == 402 {
        return Error::InsufficientPoints {
            service: parsed.string("service"),
            required: parsed.integer("required"),
            balance: parsed.integer("balance"),
        };
    }
    if status == 401 || status == 403 {
        return Error::Unauthorized;
    }
    match parsed.code().as_deref() {
        Some("insufficient_points") => Error::InsufficientPoints {
            service: parsed.string("service"),
            required: parsed.integer("required"),
            balance: parsed.integer("balance"),
        },
        Some("unauthorized") => Error::Unauthorized,
        Some("unknown_service") => Error::UnknownService {
            service: parsed
                .string("service")
                .or_else(|| service.map(str::to_owned))
                .unwrap_or_default(),
        },
        Some("invalid_duration") => Error::InvalidDuration,
        Some("invalid_idempotency_key") => {
            Error::invalid_argument("idempotencyKey", parsed.message(status))
        }
        code => Error::Backend {
            status,
            code: code.map(str::to_owned),
            message: parsed.message(status),
        },
    }
}

/// An error body, read as far as it can be: the fields of problem+json at the top level, or
/// inside FastAPI's `detail` object.
struct ErrorBody {
    /// The object holding the fields, if the body was a JSON object.
    fields: Option<serde_json::Map<String, Value>>,
    /// A free-text message (`detail` as a string, `title`, `message`).
    text: Option<String>,
}

impl ErrorBody {
    fn parse(body: &[u8]) -> Self {
        let Ok(Value::Object(top)) = serde_json::from_slice::<Value>(body) else {
            let text = std::str::from_utf8(body)
                .ok()
                .map(str::trim)
                .filter(|text| !text.is_empty() && !text.starts_with('<'))
                .map(|text| truncate(text, 200));
            return Self { fields: None, text };
        };
        match top.get("detail") {
            // FastAPI: `{"detail": {...}}` carries the fields one level down.
            Some(Value::Object(inner)) if !top.contains_key("code") => Self {
                text: text_of(inner),
                fields: Some(inner.clone()),
            },
            // FastAPI validation errors: `{"detail": [{"msg": ...}, ...]}`.
            Some(Value::Array(items)) if !top.contains_key("code") => Self {
                text: items
                    .iter()
                    .filter_map(|item| item.get("msg").and_then(Value::as_str))
                    .next()
                    .map(str::to_owned),
                fields: Some(top),
            },
            _ => Self {
                text: text_of(&top),
                fields: Some(top),
            },
        }
    }

    fn code(&self) -> Option<String> {
        self.string("code")
    }

    fn string(&self, key: &str) -> Option<String> {
        match self.fields.as_ref()?.get(key)? {
            Value::String(value) => Some(value.clone()),
            _ => None,
        }
    }

    /// An integer field; integral floats and numeric strings are accepted, anything else is `None`.
    fn integer(&self, key: &str) -> Option<i64> {
        match self.fields.as_ref()?.get(key)? {
            Value::Number(number) => number.as_i64().or_else(|| {
                number
                    .as_f64()
                    .filter(|value| value.fract() == 0.0 && value.abs() < 9.0e15)
                    .map(|value| value as i64)
            }),
            Value::String(text) => text.trim().parse().ok(),
            _ => None,
        }
    }

    fn message(&self, status: u16) -> String {
        self.text.clone().unwrap_or_else(|| {
            reqwest::StatusCode::from_u16(status)
                .ok()
                .and_then(|status| status.canonical_reason())
                .unwrap_or("error")
                .to_owned()
        })
    }
}

fn text_of(object: &serde_json::Map<String, Value>) -> Option<String> {
    ["detail", "message", "title"]
        .iter()
        .find_map(|key| object.get(*key).and_then(Value::as_str))
        .map(|text| truncate(text, 200))
}

fn truncate(text: &str, max_chars: usize) -> String {
    text.chars().take(max_chars).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn insufficient(service: Option<&str>, required: Option<i64>, balance: Option<i64>) -> Error {
        Error::InsufficientPoints {
            service: service.map(str::to_owned),
            required,
            balance,
        }
    }

    #[test]
    fn any_402_is_insufficient_points_whatever_the_body() {
        let problem = br#"{"type":"about:blank","title":"Insufficient points","status":402,
            "code":"insufficient_points","service":"compose","required":5,"balance":3}"#;
        assert_eq!(
            error_from_answer(402, problem, None),
            insufficient(Some("compose"), Some(5), Some(3))
        );
        let fastapi_object = br#"{"detail":{"service":"tts","required":"12","balance":2.0}}"#;
        assert_eq!(
            error_from_answer(402, fastapi_object, None),
            insufficient(Some("tts"), Some(12), Some(2))
        );
        let fastapi_string = br#"{"detail":"Insufficient points"}"#;
        assert_eq!(
            error_from_answer(402, fastapi_string, Some("compose")),
            insufficient(None, None, None)
        );
        for body in [&b""[..], b"<html>402</html>", b"{", b"[1,2]", b"null"] {
            assert_eq!(
                error_from_answer(402, body, None),
                insufficient(None, None, None)
            );
        }
    }

    #[test]
    fn contract_codes_become_typed_errors() {
        assert_eq!(
            error_from_answer(401, b"", None),
            Error::Unauthorized,
            "401"
        );
        assert_eq!(error_from_answer(403, b"{}", None), Error::Unauthorized);
        assert_eq!(
            error_from_answer(
                422,
                br#"{"code":"unknown_service","detail":"no"}"#,
                Some("x")
            ),
            Error::UnknownService {
                service: "x".into()
            }
        );
        assert_eq!(
            error_from_answer(422, br#"{"detail":{"code":"invalid_duration"}}"#, None),
            Error::InvalidDuration
        );
        assert!(matches!(
            error_from_answer(422, br#"{"code":"invalid_idempotency_key"}"#, None),
            Error::InvalidArgument { field, .. } if field == "idempotencyKey"
        ));
    }

    #[test]
    fn other_answers_are_backend_errors_with_a_message() {
        assert_eq!(
            error_from_answer(502, b"<html><body>Bad gateway</body></html>", None),
            Error::Backend {
                status: 502,
                code: None,
                message: "Bad Gateway".into()
            }
        );
        assert_eq!(
            error_from_answer(
                422,
                br#"{"detail":[{"loc":["body"],"msg":"field required"}]}"#,
                None
            ),
            Error::Backend {
                status: 422,
                code: None,
                message: "field required".into()
            }
        );
        assert_eq!(
            error_from_answer(
                409,
                br#"{"code":"idempotency_conflict","title":"Conflict","detail":"in flight"}"#,
                None
            ),
            Error::Backend {
                status: 409,
                code: Some("idempotency_conflict".into()),
                message: "in flight".into()
            }
        );
    }

    #[test]
    fn ids_may_be_strings_or_integers() {
        let receipt: WireReceipt =
            decode(br#"{"transaction_id":42,"service":"compose","points":5,"balance":0}"#).unwrap();
        assert_eq!(receipt.transaction_id.as_deref(), Some("42"));
        assert!(!receipt.replayed);
        let free: WireReceipt = decode(
            br#"{"transaction_id":null,"service":"caption","points":0,"balance":7,"replayed":false}"#,
        )
        .unwrap();
        assert_eq!(free.transaction_id, None);
    }

    #[test]
    fn undecodable_bodies_are_protocol_errors() {
        for body in [
            &b"{\"balance\": 1"[..],
            b"{\"balance\":\"1\",\"total_recharged\":1,\"total_consumed\":0,\"total_expired\":0}",
            b"",
        ] {
            assert!(matches!(
                decode::<WireBalance>(body),
                Err(Error::Protocol { .. })
            ));
        }
    }
}
