//! The price table (`points-config.yaml`): what each service costs.

use std::collections::BTreeMap;
use std::path::Path;

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

/// The price table shipped with the ledger.
pub const SHIPPED_CONFIG: &str = include_str!("../points-config.yaml");

/// The longest media duration a charge may be for, in seconds (one day).
pub const MAX_DURATION_SECONDS: f64 = 86_400.0;

/// The highest `points_per_second` a duration service may have.
const MAX_RATE: f64 = 1_000_000.0;

/// How one service is priced.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "mode", rename_all = "snake_case")]
pub enum Price {
    /// A fixed number of points per call.
    Fixed {
        /// Points per call.
        points: i64,
    },
    /// Points per started second of media: `ceil(seconds * points_per_second)`.
    Duration {
        /// Points per second.
        points_per_second: f64,
    },
    /// Never charged; nothing is written.
    Free {},
}

/// The pricing mode of a service, as shown on the wire.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum PricingMode {
    /// A fixed number of points per call.
    Fixed,
    /// Points per started second of media.
    Duration,
    /// Never charged.
    Free,
}

impl Price {
    /// The wire name of this price's mode.
    pub fn mode(&self) -> PricingMode {
        match self {
            Price::Fixed { .. } => PricingMode::Fixed,
            Price::Duration { .. } => PricingMode::Duration,
            Price::Free {} => PricingMode::Free,
        }
    }
}

/// What a use of a service costs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Quote {
    /// How the service is priced.
    pub mode: PricingMode,
    /// Points to charge; 0 for a free service.
    pub points: i64,
}

/// Why a use of a service cannot be priced.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum PricingError {
    /// The service is not in the price table.
    #[error("unknown service `{0}`")]
    UnknownService(String),
    /// A duration service was asked for without a usable duration.
    #[error("`duration` must be a number of seconds, greater than 0 and at most 86400")]
    InvalidDuration,
}

/// Why a price table cannot be loaded. The message names the bad key.
#[derive(Debug, thiserror::Error)]
#[error("{source_name}: {message}")]
pub struct ConfigError {
    source_name: String,
    message: String,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ConfigFile {
    services: BTreeMap<String, Price>,
}

/// The services and their prices, by service name.
#[derive(Debug, Clone, PartialEq)]
pub struct PriceTable {
    services: BTreeMap<String, Price>,
}

impl PriceTable {
    /// The table shipped with the ledger (the seed's prices; tts 1/s, video 10/s).
    pub fn shipped() -> Self {
        Self::from_yaml(SHIPPED_CONFIG, "points-config.yaml")
            .expect("the shipped price table is valid")
    }

    /// Reads a price table from a YAML file.
    pub fn from_file(path: &Path) -> Result<Self, ConfigError> {
        let name = path.display().to_string();
        let text = std::fs::read_to_string(path).map_err(|e| ConfigError {
            source_name: name.clone(),
            message: e.to_string(),
        })?;
        Self::from_yaml(&text, &name)
    }

    /// Parses a price table; `source_name` is used in error messages.
    pub fn from_yaml(text: &str, source_name: &str) -> Result<Self, ConfigError> {
        let fail = |message: String| ConfigError {
            source_name: source_name.to_owned(),
            message,
        };
        let deserializer = serde_norway::Deserializer::from_str(text);
        let file: ConfigFile = serde_path_to_error::deserialize(deserializer).map_err(|e| {
            let path = e.path().to_string();
            fail(format!("bad key `{path}`: {}", e.inner()))
        })?;
        for (name, price) in &file.services {
            let valid_name = !name.is_empty()
                && name.len() <= 64
                && name
                    .bytes()
                    .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_');
            if !valid_name {
                return Err(fail(format!(
                    "bad key `services.{name}`: a service name is 1 to 64 of a-z, 0-9 and _"
                )));
            }
            match price {
                Price::Fixed { points } if !(0..=crate::amount::MAX_AMOUNT).contains(points) => {
                    return Err(fail(format!(
                        "bad key `services.{name}.points`: must be 0 to {}, got {points}",
                        crate::amount::MAX_AMOUNT
                    )))
                }
                Price::Duration { points_per_second: rate }
                    if !(rate.is_finite() && *rate > 0.0 && *rate <= MAX_RATE) =>
                {
                    return Err(fail(format!(
                        "bad key `services.{name}.points_per_second`: must be greater than 0 and at most {MAX_RATE}, got {rate}"
                    )))
                }
                _ => {}
            }
        }
        Ok(Self {
            services: file.services,
        })
    }

    /// The services, sorted by name.
    pub fn iter(&self) -> impl Iterator<Item = (&str, &Price)> {
        self.services
            .iter()
            .map(|(name, price)| (name.as_str(), price))
    }

    /// Prices one use of `service`. `duration` (seconds) is required for duration services and
    /// ignored for the others.
    pub fn quote(&self, service: &str, duration: Option<f64>) -> Result<Quote, PricingError> {
        let price = self
            .services
            .get(service)
            .ok_or_else(|| PricingError::UnknownService(service.to_owned()))?;
        let points = match price {
            Price::Fixed { points } => *points,
            Price::Free {} => 0,
            Price::Duration { points_per_second } => {
                let seconds = duration.ok_or(PricingError::InvalidDuration)?;
                if !(seconds.is_finite() && seconds > 0.0 && seconds <= MAX_DURATION_SECONDS) {
                    return Err(PricingError::InvalidDuration);
                }
                duration_points(seconds, *points_per_second)
            }
        };
        Ok(Quote {
            mode: price.mode(),
            points,
        })
    }
}

/// `max(1, ceil(seconds * rate))`, where a product within a millionth of a whole number counts
/// as that number (so 0.7 s at 10/s is 7 points, not 8 from binary rounding). Any positive
/// duration costs at least 1 point. See `docs/PRICING.md`.
fn duration_points(seconds: f64, rate: f64) -> i64 {
    let product = seconds * rate;
    let snapped = (product * 1e6).round() / 1e6;
    // seconds <= 86,400 and rate <= 1e6: the product is far below 2^53, the cast is exact.
    (snapped.ceil() as i64).max(1)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shipped_table_has_the_seed_prices() {
        let table = PriceTable::shipped();
        let points = |s: &str, d: Option<f64>| table.quote(s, d).unwrap().points;
        assert_eq!(points("script", None), 5);
        assert_eq!(points("polish", None), 1);
        assert_eq!(points("title", None), 1);
        assert_eq!(points("voice_clone", None), 200);
        assert_eq!(points("compose", None), 5);
        assert_eq!(points("subtitle_burn", None), 2);
        assert_eq!(points("cover_design", None), 2);
        assert_eq!(points("caption", None), 0);
        assert_eq!(points("auto_align", None), 0);
        assert_eq!(points("tts", Some(2.5)), 3);
        assert_eq!(points("video", Some(0.7)), 7);
        assert_eq!(points("video", Some(0.71)), 8);
        // Any positive duration costs at least one point.
        assert_eq!(points("tts", Some(4e-7)), 1);
        assert_eq!(points("tts", Some(f64::MIN_POSITIVE)), 1);
        assert_eq!(points("video", Some(1e-9)), 1);
        // 0.07 × 100 is 7.000000000000001 in doubles: snapped to 7 (docs/PRICING.md).
        let hundred = PriceTable::from_yaml(
            "services:\n  hd: { mode: duration, points_per_second: 100 }\n",
            "t",
        )
        .unwrap();
        assert_eq!(hundred.quote("hd", Some(0.07)).unwrap().points, 7);
        assert_eq!(table.iter().count(), 11);
    }

    #[test]
    fn durations_are_checked() {
        let table = PriceTable::shipped();
        for bad in [
            None,
            Some(0.0),
            Some(-1.0),
            Some(f64::NAN),
            Some(f64::INFINITY),
            Some(86_400.5),
        ] {
            assert_eq!(
                table.quote("tts", bad),
                Err(PricingError::InvalidDuration),
                "{bad:?}"
            );
        }
        assert_eq!(table.quote("tts", Some(86_400.0)).unwrap().points, 86_400);
        assert_eq!(table.quote("script", Some(-3.0)).unwrap().points, 5);
        assert_eq!(
            table.quote("nope", None),
            Err(PricingError::UnknownService("nope".into()))
        );
    }

    #[test]
    fn bad_config_names_the_bad_key() {
        let cases = [
            (
                "services:\n  tts: { mode: duration, points_per_second: 0 }\n",
                "services.tts.points_per_second",
            ),
            ("services:\n  tts: { mode: duration }\n", "services.tts"),
            (
                "services:\n  script: { mode: fixed, points: -1 }\n",
                "services.script.points",
            ),
            (
                "services:\n  script: { mode: fixed, points: five }\n",
                "services.script",
            ),
            (
                "services:\n  script: { mode: fixed, points: 9007199254740992 }\n",
                "services.script.points",
            ),
            ("services:\n  script: { mode: weird }\n", "services.script"),
            ("servics: {}\n", "servics"),
            (
                "services:\n  Bad-Name: { mode: free }\n",
                "services.Bad-Name",
            ),
        ];
        for (yaml, key) in cases {
            let err = PriceTable::from_yaml(yaml, "test.yaml")
                .unwrap_err()
                .to_string();
            assert!(err.contains(key), "{err:?} should name {key}");
            assert!(err.starts_with("test.yaml: "), "{err:?}");
        }
    }
}
