//! RFC 9457 problem details (`application/problem+json`) with a stable `code`.

use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::ledger::LedgerError;
use crate::pricing::PricingError;

/// An error answer. `code` is the stable field clients match on.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct Problem {
    /// A URI naming the problem type.
    #[serde(rename = "type")]
    pub type_uri: String,
    /// A short summary of the problem type.
    pub title: String,
    /// The HTTP status code.
    pub status: u16,
    /// What went wrong with this request.
    pub detail: String,
    /// Stable machine-readable code: `insufficient_points`, `unauthorized`, `invalid_request`,
    /// `unknown_service`, `invalid_duration`, `invalid_idempotency_key`, `idempotency_conflict`,
    /// `amount_out_of_range`, `reference_too_long`, `allowance_not_found`, `allowance_expired`,
    /// `allowance_exhausted`, `allowance_unavailable` (501), `request_timeout` (408),
    /// `payload_too_large` (413), `overloaded` (503), `not_found` or `internal`.
    pub code: String,
    /// Extension members of some codes.
    #[serde(flatten)]
    pub extensions: Box<ProblemExtensions>,
}

/// Extension members: `insufficient_points` has all three.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct ProblemExtensions {
    /// The service asked for.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub service: Option<String>,
    /// Its price.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub required: Option<i64>,
    /// The user's balance.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub balance: Option<i64>,
}

impl Problem {
    /// A problem with `status`, stable `code`, `title` and `detail`.
    pub fn new(status: StatusCode, code: &str, title: &str, detail: impl Into<String>) -> Self {
        Self {
            type_uri: format!("urn:points-ledger:problem:{code}"),
            title: title.to_owned(),
            status: status.as_u16(),
            detail: detail.into(),
            code: code.to_owned(),
            extensions: Box::default(),
        }
    }

    /// 401 `unauthorized`.
    pub fn unauthorized(detail: impl Into<String>) -> Self {
        Self::new(
            StatusCode::UNAUTHORIZED,
            "unauthorized",
            "Unauthorized",
            detail,
        )
    }

    /// 400 `invalid_request`.
    pub fn invalid_request(detail: impl Into<String>) -> Self {
        Self::new(
            StatusCode::BAD_REQUEST,
            "invalid_request",
            "Invalid request",
            detail,
        )
    }

    /// 422 `invalid_idempotency_key`.
    pub fn invalid_idempotency_key() -> Self {
        Self::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid_idempotency_key",
            "Invalid idempotency key",
            "the Idempotency-Key header is required: 1 to 255 printable ASCII characters without space",
        )
    }

    /// 503 `too_many_streams`: the ledger holds as many balance streams as it may.
    pub fn too_many_streams() -> Self {
        Self::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "too_many_streams",
            "Too many streams",
            "this ledger holds as many balance streams as it may: try again shortly, or poll GET /points/balance",
        )
    }

    /// 400 `invalid_last_event_id`: a `Last-Event-ID` that is not a sequence number.
    pub fn invalid_last_event_id() -> Self {
        Self::new(
            StatusCode::BAD_REQUEST,
            "invalid_last_event_id",
            "Invalid Last-Event-ID",
            "Last-Event-ID must be a decimal sequence number from 0 to 2^63 - 1",
        )
    }

    /// 404 `not_found`.
    pub fn not_found() -> Self {
        Self::new(
            StatusCode::NOT_FOUND,
            "not_found",
            "Not found",
            "no such route",
        )
    }
}

impl IntoResponse for Problem {
    fn into_response(self) -> Response {
        let status = StatusCode::from_u16(self.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        let mut response = (status, axum::Json(self)).into_response();
        response.headers_mut().insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/problem+json"),
        );
        response
    }
}

impl From<PricingError> for Problem {
    fn from(error: PricingError) -> Self {
        let code = match error {
            PricingError::UnknownService(_) => "unknown_service",
            PricingError::InvalidDuration => "invalid_duration",
        };
        let title = match error {
            PricingError::UnknownService(_) => "Unknown service",
            PricingError::InvalidDuration => "Invalid duration",
        };
        Self::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            code,
            title,
            error.to_string(),
        )
    }
}

impl From<LedgerError> for Problem {
    fn from(error: LedgerError) -> Self {
        let detail = error.to_string();
        match error {
            LedgerError::Pricing(e) => e.into(),
            LedgerError::InsufficientPoints {
                service,
                required,
                balance,
            } => Self {
                extensions: Box::new(ProblemExtensions {
                    service: Some(service),
                    required: Some(required),
                    balance: Some(balance),
                }),
                ..Self::new(
                    StatusCode::PAYMENT_REQUIRED,
                    "insufficient_points",
                    "Insufficient points",
                    detail,
                )
            },
            LedgerError::IdempotencyInFlight => Self::new(
                StatusCode::CONFLICT,
                "idempotency_conflict",
                "Idempotency conflict",
                detail,
            ),
            LedgerError::IdempotencyMismatch => Self::new(
                StatusCode::UNPROCESSABLE_ENTITY,
                "idempotency_conflict",
                "Idempotency conflict",
                detail,
            ),
            LedgerError::AmountOutOfRange => Self::new(
                StatusCode::UNPROCESSABLE_ENTITY,
                "amount_out_of_range",
                "Amount out of range",
                detail,
            ),
            LedgerError::InvalidIdempotencyKey => Self::invalid_idempotency_key(),
            LedgerError::ReferenceTooLong => Self::new(
                StatusCode::UNPROCESSABLE_ENTITY,
                "reference_too_long",
                "Reference too long",
                detail,
            ),
            LedgerError::InvalidRecharge(_)
            | LedgerError::InvalidCursor
            | LedgerError::InvalidDeviceId => Self::invalid_request(detail),
            LedgerError::AllowanceUnavailable => Self::new(
                StatusCode::NOT_IMPLEMENTED,
                "allowance_unavailable",
                "Allowances unavailable",
                detail,
            ),
            LedgerError::AllowanceNotFound => Self::new(
                StatusCode::UNPROCESSABLE_ENTITY,
                "allowance_not_found",
                "Allowance not found",
                detail,
            ),
            LedgerError::AllowanceExpired => Self::new(
                StatusCode::UNPROCESSABLE_ENTITY,
                "allowance_expired",
                "Allowance expired",
                detail,
            ),
            LedgerError::AllowanceExhausted { .. } => Self::new(
                StatusCode::UNPROCESSABLE_ENTITY,
                "allowance_exhausted",
                "Allowance exhausted",
                detail,
            ),
            LedgerError::Database(e) => {
                tracing::error!(error = %e, "database error");
                Self::new(
                    StatusCode::INTERNAL_SERVER_ERROR,
                    "internal",
                    "Internal error",
                    "the ledger could not complete the request",
                )
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ledger_errors_map_to_the_contract_codes() {
        let cases: Vec<(LedgerError, u16, &str)> = vec![
            (
                LedgerError::IdempotencyInFlight,
                409,
                "idempotency_conflict",
            ),
            (
                LedgerError::IdempotencyMismatch,
                422,
                "idempotency_conflict",
            ),
            (
                PricingError::InvalidDuration.into(),
                422,
                "invalid_duration",
            ),
            (
                PricingError::UnknownService("x".into()).into(),
                422,
                "unknown_service",
            ),
            (LedgerError::InvalidCursor, 400, "invalid_request"),
            (LedgerError::AmountOutOfRange, 422, "amount_out_of_range"),
            (LedgerError::ReferenceTooLong, 422, "reference_too_long"),
            (
                LedgerError::InvalidIdempotencyKey,
                422,
                "invalid_idempotency_key",
            ),
            (LedgerError::InvalidDeviceId, 400, "invalid_request"),
            (
                LedgerError::AllowanceUnavailable,
                501,
                "allowance_unavailable",
            ),
            (LedgerError::AllowanceNotFound, 422, "allowance_not_found"),
            (LedgerError::AllowanceExpired, 422, "allowance_expired"),
            (
                LedgerError::AllowanceExhausted {
                    required: 5,
                    left: 2,
                },
                422,
                "allowance_exhausted",
            ),
            (sqlx::Error::PoolTimedOut.into(), 500, "internal"),
        ];
        for (error, status, code) in cases {
            let problem = Problem::from(error);
            assert_eq!((problem.status, problem.code.as_str()), (status, code));
        }
        let short = Problem::from(LedgerError::InsufficientPoints {
            service: "compose".into(),
            required: 5,
            balance: 2,
        });
        let body = serde_json::to_value(&short).unwrap();
        assert_eq!(body["status"], 402);
        assert_eq!(body["code"], "insufficient_points");
        assert_eq!(
            (
                body["service"].as_str(),
                body["required"].as_i64(),
                body["balance"].as_i64()
            ),
            (Some("compose"), Some(5), Some(2))
        );
        let plain = serde_json::to_value(Problem::unauthorized("no")).unwrap();
        assert!(plain.get("balance").is_none());
    }
}
