//! The one error type of the SDK and the plugin, and its serialised form `{ kind, message, ...fields }`.

use serde::{Deserialize, Deserializer, Serialize, Serializer};
#[cfg(feature = "ts")]
use ts_rs::TS;

/// Everything that can go wrong when talking to the ledger or charging a job: the one
/// definition of the plugin's errors.
///
/// It serialises (for IPC) as `{ kind, message, ...fields }` (a [`PointsError`]): tagged by
/// `kind`, with a human-readable `message` and the variant's public fields in camelCase.
/// Internal details (transport errors, decode errors, the reason of a refused argument) stay in
/// `message`; nothing secret (the session token) is ever part of an error.
#[derive(Debug, Clone, PartialEq, thiserror::Error, Serialize, Deserialize)]
#[serde(remote = "Self")]
#[serde(
    tag = "kind",
    rename_all = "camelCase",
    rename_all_fields = "camelCase"
)]
#[cfg_attr(feature = "ts", derive(TS))]
#[non_exhaustive]
pub enum Error {
    /// Any 402 from the ledger, or a failed pre-check. Fields are `None` when the ledger did not say.
    #[error(
        "insufficient points{}",
        insufficient_detail(service, required, balance)
    )]
    InsufficientPoints {
        /// The service that was priced or charged.
        service: Option<String>,
        /// The points the service costs.
        required: Option<i64>,
        /// The balance when the ledger refused.
        balance: Option<i64>,
    },
    /// No session token, or the ledger refused it (401/403).
    #[error("not signed in, or the ledger refused the session token")]
    Unauthorized,
    /// The ledger does not price this service.
    #[error("the ledger does not know the service `{service}`")]
    UnknownService {
        /// The service name as given.
        service: String,
    },
    /// A duration that is missing, not finite, ≤ 0 or over 24 h.
    #[error("the duration is missing, not finite, not positive or over 24 hours")]
    InvalidDuration,
    /// A service that the backend charges itself: charging it here would bill the user twice.
    #[error("`{service}` cannot be charged from the desktop")]
    NotChargeableHere {
        /// The service name as given.
        service: String,
    },
    /// A malformed argument.
    #[error("invalid `{field}`: {reason}")]
    InvalidArgument {
        /// The argument's name (camelCase, as the webview passes it).
        field: String,
        /// Why it was refused (in `message`).
        #[serde(skip)]
        #[cfg_attr(feature = "ts", ts(skip))]
        reason: String,
    },
    /// The ledger could not be reached (DNS, refused or reset connection, TLS).
    #[error("the ledger could not be reached: {reason}")]
    Network {
        /// What the transport said (in `message`).
        #[serde(skip)]
        #[cfg_attr(feature = "ts", ts(skip))]
        reason: String,
    },
    /// The ledger did not answer in time.
    #[error("the ledger did not answer in time")]
    Timeout,
    /// Any other error answer of the ledger.
    #[error("the ledger answered {status}{}: {message}", code.as_deref().map(|c| format!(" ({c})")).unwrap_or_default())]
    Backend {
        /// The HTTP status.
        status: u16,
        /// The contract's stable `code`, when the body had one.
        code: Option<String>,
        /// The ledger's own words, or the status' reason (in `message`).
        #[serde(skip)]
        #[cfg_attr(feature = "ts", ts(skip))]
        message: String,
    },
    /// An answer that could not be decoded.
    #[error("the ledger's answer could not be decoded: {reason}")]
    Protocol {
        /// What did not fit (in `message`).
        #[serde(skip)]
        #[cfg_attr(feature = "ts", ts(skip))]
        reason: String,
    },
    /// The journal of pending charges could not be read or written.
    #[error("the pending-charges journal failed: {reason}")]
    Storage {
        /// What the file system said (in `message`).
        #[serde(skip)]
        #[cfg_attr(feature = "ts", ts(skip))]
        reason: String,
    },
    /// No ledger base URL is set yet (the app sets it at run time): nothing was sent.
    #[error("no ledger base URL is set yet")]
    NotConfigured,
    /// The ledger cannot be reached and no allowance is held for this account on this machine
    /// (or the service has no offline price): the job did not start.
    #[error("offline, and no allowance covers this job: {reason}")]
    OfflineAllowanceNone {
        /// Why (in `message`).
        #[serde(skip)]
        #[cfg_attr(feature = "ts", ts(skip))]
        reason: String,
    },
    /// The ledger cannot be reached and the allowance held was refused (a changed file, another
    /// account's or device's, a key that is not pinned): the job did not start.
    #[error("offline, and the allowance held is not trusted: {reason}")]
    OfflineAllowanceInvalid {
        /// Why (in `message`).
        #[serde(skip)]
        #[cfg_attr(feature = "ts", ts(skip))]
        reason: String,
    },
    /// The ledger cannot be reached and the allowance held covered new jobs only until `until`.
    #[error("offline, and the allowance expired at {until}")]
    OfflineAllowanceExpired {
        /// Its `not_after` (RFC 3339, UTC).
        until: String,
    },
    /// The ledger cannot be reached and what is left of the allowance on this machine does not
    /// cover the job's price.
    #[error("offline, and the allowance has {remaining} points left, {required} required for `{service}`")]
    OfflineAllowanceExhausted {
        /// The service refused.
        service: String,
        /// Its price.
        required: i64,
        /// Points left of the allowance on this machine (running jobs counted).
        remaining: i64,
    },
    /// The computer's clock reads earlier than a time already seen: offline jobs are refused
    /// until the ledger is reached again.
    #[error("the clock was turned back (earlier than {mark}): offline jobs wait for the ledger")]
    OfflineClockTurnedBack {
        /// The latest local time already used (RFC 3339, UTC).
        mark: String,
    },
}

fn insufficient_detail(
    service: &Option<String>,
    required: &Option<i64>,
    balance: &Option<i64>,
) -> String {
    let mut parts = Vec::new();
    if let Some(service) = service {
        parts.push(format!("for `{service}`"));
    }
    if let Some(required) = required {
        parts.push(format!("{required} required"));
    }
    if let Some(balance) = balance {
        parts.push(format!("balance {balance}"));
    }
    if parts.is_empty() {
        String::new()
    } else {
        format!(" ({})", parts.join(", "))
    }
}

/// A `Result` with the plugin's [`Error`].
pub type Result<T> = std::result::Result<T, Error>;

impl Error {
    /// The `kind` tag of the serialised form.
    pub fn kind(&self) -> &'static str {
        match self {
            Error::InsufficientPoints { .. } => "insufficientPoints",
            Error::Unauthorized => "unauthorized",
            Error::UnknownService { .. } => "unknownService",
            Error::InvalidDuration => "invalidDuration",
            Error::NotChargeableHere { .. } => "notChargeableHere",
            Error::InvalidArgument { .. } => "invalidArgument",
            Error::Network { .. } => "network",
            Error::Timeout => "timeout",
            Error::Backend { .. } => "backend",
            Error::Protocol { .. } => "protocol",
            Error::Storage { .. } => "storage",
            Error::NotConfigured => "notConfigured",
            Error::OfflineAllowanceNone { .. } => "offlineAllowanceNone",
            Error::OfflineAllowanceInvalid { .. } => "offlineAllowanceInvalid",
            Error::OfflineAllowanceExpired { .. } => "offlineAllowanceExpired",
            Error::OfflineAllowanceExhausted { .. } => "offlineAllowanceExhausted",
            Error::OfflineClockTurnedBack { .. } => "offlineClockTurnedBack",
        }
    }

    /// An [`Error::InvalidArgument`] for `field`.
    pub fn invalid_argument(field: impl Into<String>, reason: impl Into<String>) -> Self {
        Error::InvalidArgument {
            field: field.into(),
            reason: reason.into(),
        }
    }

    /// An [`Error::Network`].
    pub fn network(reason: String) -> Self {
        Error::Network { reason }
    }

    /// An [`Error::Protocol`].
    pub fn protocol(reason: String) -> Self {
        Error::Protocol { reason }
    }

    /// An [`Error::Storage`].
    pub fn storage(reason: String) -> Self {
        Error::Storage { reason }
    }

    /// The serialised form, as the webview receives it.
    pub fn to_points_error(&self) -> PointsError {
        PointsError {
            message: self.to_string(),
            error: self.clone(),
        }
    }
}

impl Serialize for Error {
    fn serialize<S: Serializer>(&self, serializer: S) -> std::result::Result<S::Ok, S::Error> {
        self.to_points_error().serialize(serializer)
    }
}

impl<'de> Deserialize<'de> for Error {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> std::result::Result<Self, D::Error> {
        PointsError::deserialize(deserializer).map(|points| points.error)
    }
}

/// The serialised form of an [`Error`]: what a failed command rejects with in the webview, and
/// what a refused charge keeps on record. Its TypeScript type is the union of the kinds, each
/// with `message`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "ts", derive(TS), ts(export))]
pub struct PointsError {
    /// The human-readable message (kept as it was said, also after a restart).
    pub message: String,
    /// The error: its `kind` and typed fields.
    #[serde(flatten)]
    #[serde(
        serialize_with = "Error::serialize",
        deserialize_with = "Error::deserialize"
    )]
    pub error: Error,
}

impl From<Error> for PointsError {
    fn from(error: Error) -> Self {
        error.to_points_error()
    }
}

impl PointsError {
    /// The `kind` tag.
    pub fn kind(&self) -> &'static str {
        self.error.kind()
    }
}

/// The message, as it was said (a refused charge read back after a restart keeps its words).
impl std::fmt::Display for PointsError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for PointsError {}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn insufficient_points_serialises_with_kind_message_and_camel_case_fields() {
        let error = Error::InsufficientPoints {
            service: Some("compose".into()),
            required: Some(5),
            balance: Some(3),
        };
        assert_eq!(
            serde_json::to_value(&error).unwrap(),
            json!({
                "kind": "insufficientPoints",
                "message": "insufficient points (for `compose`, 5 required, balance 3)",
                "service": "compose",
                "required": 5,
                "balance": 3,
            })
        );
    }

    #[test]
    fn every_kind_tag_matches_the_serialised_kind() {
        let errors = [
            Error::InsufficientPoints {
                service: None,
                required: None,
                balance: None,
            },
            Error::Unauthorized,
            Error::UnknownService {
                service: "x".into(),
            },
            Error::InvalidDuration,
            Error::NotChargeableHere {
                service: "tts".into(),
            },
            Error::invalid_argument("idempotencyKey", "contains a space"),
            Error::network("reset".into()),
            Error::Timeout,
            Error::Backend {
                status: 500,
                code: None,
                message: "boom".into(),
            },
            Error::protocol("eof".into()),
            Error::storage("disk full".into()),
            Error::NotConfigured,
            Error::OfflineAllowanceNone {
                reason: "none".into(),
            },
            Error::OfflineAllowanceInvalid {
                reason: "bad signature".into(),
            },
            Error::OfflineAllowanceExpired {
                until: "2026-12-02T00:00:00Z".into(),
            },
            Error::OfflineAllowanceExhausted {
                service: "compose".into(),
                required: 5,
                remaining: 2,
            },
            Error::OfflineClockTurnedBack {
                mark: "2026-12-02T00:00:00Z".into(),
            },
        ];
        for error in errors {
            let value = serde_json::to_value(&error).unwrap();
            assert_eq!(value["kind"], error.kind(), "{value}");
            assert_eq!(value["message"], error.to_string(), "{value}");
        }
    }

    #[test]
    fn points_error_displays_its_message() {
        let refused = Error::UnknownService {
            service: "upscale".into(),
        }
        .to_points_error();
        assert_eq!(
            refused.to_string(),
            "the ledger does not know the service `upscale`"
        );
        let kept: PointsError = serde_json::from_value(json!({
            "kind": "timeout",
            "message": "said before a restart",
        }))
        .unwrap();
        assert_eq!(format!("{kept}"), "said before a restart");
        let boxed: Box<dyn std::error::Error> = Box::new(kept);
        assert_eq!(boxed.to_string(), "said before a restart");
    }

    #[test]
    fn backend_error_keeps_status_and_code() {
        let error = Error::Backend {
            status: 422,
            code: Some("idempotency_conflict".into()),
            message: "key reused".into(),
        };
        let value = serde_json::to_value(&error).unwrap();
        assert_eq!(value["status"], 422);
        assert_eq!(value["code"], "idempotency_conflict");
        assert_eq!(value["kind"], "backend");
    }
}
