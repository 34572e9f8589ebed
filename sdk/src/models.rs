//! The TypeScript surface: every type that crosses IPC or rides on an event (camelCase, ts-rs).
//!
//! These types know nothing of HTTP; `client::wire` converts the ledger's answers into them.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};
#[cfg(feature = "ts")]
use ts_rs::TS;

/// A user's points summary.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
#[cfg_attr(feature = "ts", derive(TS), ts(export))]
pub struct PointBalance {
    /// Current balance; negative means arrears.
    pub balance: i64,
    /// Points recharged, ever.
    pub total_recharged: i64,
    /// Points consumed, ever.
    pub total_consumed: i64,
    /// Points that expired unused, ever.
    pub total_expired: i64,
    /// The ledger's ordering number for this figure (the user's journal `seq`): of two figures,
    /// the one with the higher `seq` is newer. Absent when the backend does not send it (optional
    /// in TypeScript, so a host's own `{ balance, totalRecharged, … }` still type-checks).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[cfg_attr(feature = "ts", ts(optional))]
    pub seq: Option<i64>,
}

/// How a service is priced.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[cfg_attr(feature = "ts", derive(TS), ts(export))]
#[non_exhaustive]
pub enum PricingMode {
    /// A fixed number of points per call.
    Fixed,
    /// Points per started second of media.
    Duration,
    /// Never charged.
    Free,
}

/// The services the desktop side charges itself.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[cfg_attr(feature = "ts", derive(TS), ts(export))]
#[non_exhaustive]
pub enum DesktopService {
    /// Composing the final video (5 points in the seed's price table).
    Compose,
    /// Burning subtitles into a video (2 points).
    SubtitleBurn,
    /// Designing a cover (2 points).
    CoverDesign,
}

impl DesktopService {
    /// Every desktop-charged service.
    pub const ALL: [DesktopService; 3] = [
        DesktopService::Compose,
        DesktopService::SubtitleBurn,
        DesktopService::CoverDesign,
    ];

    /// The service's name on the wire.
    pub fn as_str(self) -> &'static str {
        match self {
            DesktopService::Compose => "compose",
            DesktopService::SubtitleBurn => "subtitle_burn",
            DesktopService::CoverDesign => "cover_design",
        }
    }
}

impl fmt::Display for DesktopService {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for DesktopService {
    type Err = crate::Error;

    /// Parses a desktop service; anything else is [`crate::Error::NotChargeableHere`].
    fn from_str(service: &str) -> Result<Self, Self::Err> {
        DesktopService::ALL
            .into_iter()
            .find(|known| known.as_str() == service)
            .ok_or_else(|| crate::Error::NotChargeableHere {
                service: service.to_owned(),
            })
    }
}

/// Every service of the seed's price table (the ledger may know more).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[cfg_attr(feature = "ts", derive(TS), ts(export))]
#[non_exhaustive]
pub enum KnownService {
    /// Script writing (backend-charged).
    Script,
    /// Script polishing (backend-charged).
    Polish,
    /// Title generation (backend-charged).
    Title,
    /// Voice cloning (backend-charged).
    VoiceClone,
    /// Text to speech, per second (backend-charged).
    Tts,
    /// Video generation, per second (backend-charged).
    Video,
    /// See [`DesktopService::Compose`].
    Compose,
    /// See [`DesktopService::SubtitleBurn`].
    SubtitleBurn,
    /// See [`DesktopService::CoverDesign`].
    CoverDesign,
    /// Captioning (free).
    Caption,
    /// Subtitle alignment (free).
    AutoAlign,
}

/// The answer of a price check.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
#[cfg_attr(feature = "ts", derive(TS), ts(export))]
pub struct CostCheck {
    /// The service priced.
    pub service: String,
    /// How it is priced.
    pub mode: PricingMode,
    /// Points it costs (for the given duration).
    pub required: i64,
    /// The user's balance now.
    pub balance: i64,
    /// Whether the balance covers it.
    pub sufficient: bool,
    /// The ledger's ordering number for this figure (the user's journal `seq`): of two figures,
    /// the one with the higher `seq` is newer. Absent when the backend does not send it (optional
    /// in TypeScript, so a host's own `{ balance, totalRecharged, … }` still type-checks).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[cfg_attr(feature = "ts", ts(optional))]
    pub seq: Option<i64>,
}

/// The ledger's acknowledgement of a charge.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
#[cfg_attr(feature = "ts", derive(TS), ts(export))]
pub struct ChargeReceipt {
    /// The ledger's transaction; `null` for a free service (nothing stored).
    pub transaction_id: Option<String>,
    /// The service charged.
    pub service: String,
    /// Points charged.
    pub points: i64,
    /// The balance after the charge.
    pub balance: i64,
    /// `true` when the ledger had already applied this key: nothing was charged again.
    pub replayed: bool,
    /// The idempotency key the charge was made with.
    pub idempotency_key: String,
    /// The ledger's ordering number of `balance` (for a replay, the original charge's).
    pub seq: Option<i64>,
}

/// One service of the price table.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
#[cfg_attr(feature = "ts", derive(TS), ts(export))]
pub struct ServicePrice {
    /// The service's name.
    pub service: String,
    /// How it is priced.
    pub mode: PricingMode,
    /// Points per call, for `fixed` services.
    pub points: Option<i64>,
    /// Points per started second, for `duration` services.
    pub points_per_second: Option<f64>,
}

/// The ledger's price table.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
#[cfg_attr(feature = "ts", derive(TS), ts(export))]
pub struct PriceList {
    /// One entry per service.
    pub services: Vec<ServicePrice>,
}

/// What a history entry records.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[cfg_attr(feature = "ts", derive(TS), ts(export))]
#[non_exhaustive]
pub enum TransactionKind {
    /// Points added.
    Recharge,
    /// Points spent.
    Consume,
    /// Points that expired.
    Expire,
}

/// One history entry.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
#[cfg_attr(feature = "ts", derive(TS), ts(export))]
pub struct Transaction {
    /// The ledger's id.
    pub id: String,
    /// What happened.
    pub kind: TransactionKind,
    /// Signed: positive for a recharge, negative for a consume or an expiry.
    pub points: i64,
    /// The balance right after.
    pub balance_after: i64,
    /// The service, for a consume.
    pub service: Option<String>,
    /// The idempotency key the entry was made with, when the ledger reports it.
    pub idempotency_key: Option<String>,
    /// The caller's reference stored with the entry, when the ledger reports it.
    pub reference: Option<String>,
    /// When (RFC 3339, UTC).
    pub created_at: String,
}

/// A page of history, newest first.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
#[cfg_attr(feature = "ts", derive(TS), ts(export))]
pub struct TransactionPage {
    /// The entries.
    pub items: Vec<Transaction>,
    /// Pass as `before` for the next page; `null` on the last page.
    pub next_cursor: Option<String>,
}

/// A live recharge batch.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
#[cfg_attr(feature = "ts", derive(TS), ts(export))]
pub struct Batch {
    /// The ledger's id.
    pub id: String,
    /// Points recharged in this batch.
    pub points: i64,
    /// Points left in it.
    pub remaining: i64,
    /// When the remaining points expire (RFC 3339, UTC).
    pub expires_at: String,
    /// When it was recharged (RFC 3339, UTC).
    pub created_at: String,
}

/// Payload of `points://balance-changed`: always about the account signed in now.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
#[cfg_attr(feature = "ts", derive(TS), ts(export))]
pub struct BalanceChanged {
    /// The new balance (`summary.balance`).
    pub balance: i64,
    /// The whole summary the balance belongs to: balance and totals of one moment, never a new
    /// balance beside old totals (after a fetch, a charge, a stream event or a poll alike).
    pub summary: PointBalance,
    /// The ledger's ordering number of `balance`; a figure with a lower `seq` than one already
    /// shown is older and must not replace it. `null` when the backend does not send it.
    pub seq: Option<i64>,
    /// The session the figure belongs to (see [`SessionChanged::session`]).
    pub session: u64,
}

/// Payload of `points://low-balance`: the balance of the account signed in now has fallen below
/// a configured threshold. Sent once per downward crossing (the threshold re-arms when a balance
/// at or above it is seen), remembered per account across restarts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
#[cfg_attr(feature = "ts", derive(TS), ts(export))]
pub struct LowBalance {
    /// The threshold crossed.
    pub threshold: i64,
    /// The balance that crossed it.
    pub balance: i64,
    /// The session the figure belongs to (see [`SessionChanged::session`]).
    pub session: u64,
}

/// What offline work may still spend: the points left of the signed allowance on this machine,
/// and the last moment it covers a new job (RFC 3339, UTC), `null` when no usable allowance is held.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
#[cfg_attr(feature = "ts", derive(TS), ts(export))]
pub struct OfflineAllowance {
    /// Points left (jobs running on it and charges not yet settled counted).
    pub remaining: i64,
    /// Its `not_after`, when an allowance is usable.
    pub until: Option<String>,
}

/// Payload of `points://offline-changed` and answer of `get_offline`: `offline` is `null` while the
/// ledger is reachable, else what offline work may still spend.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
#[cfg_attr(feature = "ts", derive(TS), ts(export))]
pub struct OfflineStatus {
    /// `null` while the ledger is reachable.
    pub offline: Option<OfflineAllowance>,
    /// The session it belongs to (see [`SessionChanged::session`]).
    pub session: u64,
}

/// Payload of `points://insufficient`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
#[cfg_attr(feature = "ts", derive(TS), ts(export))]
pub struct InsufficientPoints {
    /// The service refused, when known.
    pub service: Option<String>,
    /// The points it costs, when known.
    pub required: Option<i64>,
    /// The balance, when known.
    pub balance: Option<i64>,
    /// The label of the window whose action was refused: only that window opens the recharge
    /// dialog. `null` when the app has no window.
    pub window: Option<String>,
}

/// Payload of `points://pending-changed`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
#[cfg_attr(feature = "ts", derive(TS), ts(export))]
pub struct PendingCharges {
    /// Charges of the signed-in account made but not yet acknowledged by the ledger (0 while
    /// signed out).
    pub count: u32,
    /// The session the count belongs to.
    pub session: u64,
}

/// Payload of `points://session-changed`: someone signed in, out, or another account in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
#[cfg_attr(feature = "ts", derive(TS), ts(export))]
pub struct SessionChanged {
    /// Whether an account is signed in now.
    pub signed_in: bool,
    /// A number that grows with every sign-in and sign-out: figures carrying an older one
    /// belong to a previous session.
    pub session: u64,
}

/// What `get_pending` and `sync_pending` answer: the signed-in account's unacknowledged charges.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
#[cfg_attr(feature = "ts", derive(TS), ts(export))]
pub struct PendingStatus {
    /// Charges made but not yet acknowledged (0 while signed out).
    pub count: u32,
    /// Seconds since the oldest of them was made; `null` when none is pending.
    pub oldest_age_seconds: Option<u64>,
    /// Charges the ledger refused for good (newest last): the work was done but is not paid.
    pub refused: Vec<RefusedCharge>,
    /// Whether an account is signed in.
    pub signed_in: bool,
    /// The session this answer belongs to.
    pub session: u64,
    /// Charges pending on this machine for other accounts than the signed-in one: sent when
    /// their account signs in again.
    pub other_accounts: u32,
}

/// A charge the ledger refused for good; kept on record, and announced by
/// `points://charge-refused`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
#[cfg_attr(feature = "ts", derive(TS), ts(export))]
pub struct RefusedCharge {
    /// The key it was sent with.
    pub idempotency_key: String,
    /// The service it was for.
    pub service: String,
    /// When the charge was made (seconds since the Unix epoch).
    pub recorded_at: u64,
    /// When the ledger refused it (seconds since the Unix epoch).
    pub refused_at: u64,
    /// Why, in the plugin's error form.
    pub error: crate::PointsError,
}

/// What became of the charge of a finished job (see `Points::run_charged`).
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(
    tag = "status",
    rename_all = "camelCase",
    rename_all_fields = "camelCase"
)]
#[cfg_attr(feature = "ts", derive(TS), ts(export))]
#[non_exhaustive]
pub enum ChargeOutcome {
    /// The ledger applied it (or had already applied this key: `receipt.replayed`).
    Acknowledged {
        /// The ledger's receipt.
        receipt: ChargeReceipt,
    },
    /// Not acknowledged yet (offline, 5xx, signed out): it stays journaled and the plugin's
    /// background sync sends it again, only with a token of the account that ran the job.
    Pending {
        /// The key it will be sent with.
        idempotency_key: String,
    },
    /// The ledger refused it for good (e.g. the key was used for another charge): the work was
    /// done but is not paid. Also emitted as `points://charge-refused` and kept on record.
    Refused {
        /// The key it was sent with.
        idempotency_key: String,
        /// The ledger's answer.
        error: crate::PointsError,
    },
}

impl ChargeOutcome {
    /// The receipt, when the charge was acknowledged.
    pub fn receipt(&self) -> Option<&ChargeReceipt> {
        match self {
            ChargeOutcome::Acknowledged { receipt } => Some(receipt),
            _ => None,
        }
    }

    /// Whether the charge is waiting to be sent again.
    pub fn is_pending(&self) -> bool {
        matches!(self, ChargeOutcome::Pending { .. })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn desktop_services_parse_and_everything_else_is_not_chargeable_here() {
        for service in DesktopService::ALL {
            assert_eq!(service.as_str().parse::<DesktopService>(), Ok(service));
        }
        for other in ["tts", "script", "Compose", "", "compose "] {
            assert_eq!(
                other.parse::<DesktopService>(),
                Err(crate::Error::NotChargeableHere {
                    service: other.into()
                })
            );
        }
    }

    #[test]
    fn point_balance_has_the_four_camel_case_fields_and_seq() {
        let value = serde_json::to_value(PointBalance {
            balance: -3,
            total_recharged: 10,
            total_consumed: 13,
            total_expired: 0,
            seq: Some(4),
        })
        .unwrap();
        let mut keys: Vec<_> = value.as_object().unwrap().keys().cloned().collect();
        keys.sort();
        assert_eq!(
            keys,
            [
                "balance",
                "seq",
                "totalConsumed",
                "totalExpired",
                "totalRecharged"
            ]
        );
    }
}
