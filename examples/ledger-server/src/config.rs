//! How a ledger is set up: database, secrets, prices, address, sweep interval, clock and offline
//! allowances.

use std::net::{Ipv4Addr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use ed25519_dalek::SigningKey;

use crate::auth::JwtSettings;
use crate::clock::{Clock, SystemClock};
use crate::http::HttpLimits;
use crate::ledger::AllowancePolicy;
use crate::pricing::PriceTable;
use crate::stream::StreamLimits;

/// How often the expiry sweep runs by default (the seed's scheduler: every 5 minutes).
pub const DEFAULT_SWEEP_INTERVAL: Duration = Duration::from_secs(300);

/// Everything [`crate::serve`] needs. Its `Debug` output hides the secrets.
#[derive(Clone)]
pub struct LedgerConfig {
    /// `sqlite:PATH`, `sqlite::memory:` or `postgres://...`.
    pub database_url: String,
    /// The HS256 secret user tokens are signed with (at least 32 bytes), unless
    /// [`LedgerConfig::jwt`] names public keys.
    pub jwt_secret: String,
    /// Issuer, audience and public keys of user tokens.
    pub jwt: JwtSettings,
    /// The key that opens the admin routes.
    pub admin_key: String,
    /// The price table.
    pub pricing: PriceTable,
    /// Where to listen; port 0 picks a free port.
    pub bind: SocketAddr,
    /// How often due batches are swept (reads and writes expire them anyway).
    pub sweep_interval: Duration,
    /// The ledger's clock.
    pub clock: Arc<dyn Clock>,
    /// The most database connections to hold (SQLite in memory always uses one).
    pub max_connections: u32,
    /// Answer cross-origin requests from any origin (CORS), for a webview calling the ledger
    /// directly (the example app's benchmark). Off by default.
    pub cors_any_origin: bool,
    /// Timeouts and limits of the HTTP server (see [`HttpLimits`] for the defaults).
    pub http: HttpLimits,
    /// Limits and heartbeat of the balance stream (see [`StreamLimits`] for the defaults).
    pub stream: StreamLimits,
    /// The Ed25519 keys of offline allowances as (key id, key): the first signs, the others are
    /// only served (a client pins a new key before the ledger signs with it). Empty: `POST
    /// /points/allowance` answers 501 `allowance_unavailable`.
    pub allowance_keys: Vec<(String, SigningKey)>,
    /// Cap, window and grace period of offline allowances.
    pub allowance: AllowancePolicy,
}

impl std::fmt::Debug for LedgerConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LedgerConfig")
            .field("database_url", &redact_password(&self.database_url))
            .field("jwt_secret", &"<hidden>")
            .field("jwt", &self.jwt)
            .field("admin_key", &"<hidden>")
            .field("pricing", &self.pricing)
            .field("bind", &self.bind)
            .field("sweep_interval", &self.sweep_interval)
            .field("clock", &self.clock)
            .field("max_connections", &self.max_connections)
            .field("cors_any_origin", &self.cors_any_origin)
            .field("http", &self.http)
            .field("stream", &self.stream)
            .field(
                "allowance_keys",
                &self
                    .allowance_keys
                    .iter()
                    .map(|(id, _)| id.as_str())
                    .collect::<Vec<_>>(),
            )
            .field("allowance", &self.allowance)
            .finish()
    }
}

/// `scheme://user:<hidden>@host/...` for a URL with a password; other URLs unchanged.
fn redact_password(url: &str) -> String {
    if let Some((scheme, rest)) = url.split_once("://") {
        if let Some((credentials, host)) = rest.rsplit_once('@') {
            if let Some((user, _password)) = credentials.split_once(':') {
                return format!("{scheme}://{user}:<hidden>@{host}");
            }
        }
    }
    url.to_owned()
}

/// A random secret: 64 hex characters from the operating system's generator.
pub fn random_secret() -> String {
    format!(
        "{}{}",
        uuid::Uuid::new_v4().simple(),
        uuid::Uuid::new_v4().simple()
    )
}

impl LedgerConfig {
    /// In-memory SQLite, random JWT secret and admin key, the shipped price table, 127.0.0.1:0,
    /// a fresh random allowance key (key id `k-<8 random hex digits>`: no two ledgers share one)
    /// and the default allowance policy.
    pub fn ephemeral() -> Self {
        Self {
            database_url: "sqlite::memory:".to_owned(),
            jwt_secret: random_secret(),
            jwt: JwtSettings::default(),
            admin_key: random_secret(),
            pricing: PriceTable::shipped(),
            bind: SocketAddr::from((Ipv4Addr::LOCALHOST, 0)),
            sweep_interval: DEFAULT_SWEEP_INTERVAL,
            clock: Arc::new(SystemClock),
            max_connections: 16,
            cors_any_origin: false,
            http: HttpLimits::default(),
            stream: StreamLimits::default(),
            allowance_keys: vec![crate::allowance::random_key("k")],
            allowance: AllowancePolicy::default(),
        }
    }

    /// The same, with these allowance keys (the first signs; none: no allowance is issued).
    pub fn with_allowance_keys(mut self, keys: Vec<(String, SigningKey)>) -> Self {
        self.allowance_keys = keys;
        self
    }

    /// The same, with another cap, window or grace period for offline allowances.
    pub fn with_allowance_policy(mut self, policy: AllowancePolicy) -> Self {
        self.allowance = policy;
        self
    }

    /// The same, on another database.
    pub fn with_database_url(mut self, url: impl Into<String>) -> Self {
        self.database_url = url.into();
        self
    }

    /// The same, with another clock (a [`crate::ManualClock`] lets tests jump past expiry).
    pub fn with_clock(mut self, clock: Arc<dyn Clock>) -> Self {
        self.clock = clock;
        self
    }

    /// The same, with another price table.
    pub fn with_pricing(mut self, pricing: PriceTable) -> Self {
        self.pricing = pricing;
        self
    }

    /// The same, listening on `bind`.
    pub fn with_bind(mut self, bind: SocketAddr) -> Self {
        self.bind = bind;
        self
    }

    /// The same, sweeping every `interval`.
    pub fn with_sweep_interval(mut self, interval: Duration) -> Self {
        self.sweep_interval = interval;
        self
    }

    /// The same, with the given JWT secret and admin key.
    pub fn with_secrets(
        mut self,
        jwt_secret: impl Into<String>,
        admin_key: impl Into<String>,
    ) -> Self {
        self.jwt_secret = jwt_secret.into();
        self.admin_key = admin_key.into();
        self
    }

    /// The same, answering cross-origin requests from any origin (CORS) when `on`.
    pub fn with_cors_any_origin(mut self, on: bool) -> Self {
        self.cors_any_origin = on;
        self
    }

    /// The same, with another issuer, audience or public keys for user tokens.
    pub fn with_jwt_settings(mut self, jwt: JwtSettings) -> Self {
        self.jwt = jwt;
        self
    }

    /// The same, with other HTTP timeouts and limits.
    pub fn with_http_limits(mut self, limits: HttpLimits) -> Self {
        self.http = limits;
        self
    }

    /// The same, with other balance stream limits.
    pub fn with_stream_limits(mut self, limits: StreamLimits) -> Self {
        self.stream = limits;
        self
    }

    /// The same, with at most `max` database connections.
    pub fn with_max_connections(mut self, max: u32) -> Self {
        self.max_connections = max;
        self
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_output_hides_the_secrets() {
        let config = LedgerConfig::ephemeral().with_secrets("jwt-secret-value", "admin-key-value");
        let text = format!("{config:?}");
        assert!(
            !text.contains("jwt-secret-value") && !text.contains("admin-key-value"),
            "{text}"
        );
        assert!(text.contains("sqlite::memory:"));
        let seed = config.allowance_keys[0].1.to_bytes();
        assert!(!text.contains(&format!("{seed:?}")), "{text}");
        let pg = config.with_database_url("postgres://ledger:s3cret@db:5432/points");
        let text = format!("{pg:?}");
        assert!(
            !text.contains("s3cret") && text.contains("postgres://ledger:<hidden>@db:5432/points"),
            "{text}"
        );
    }
}
