//! The plugin's configuration: `tauri.conf.json > plugins.points`.
//!
//! ```json
//! { "plugins": { "points": { "baseUrl": "https://api.example.com", "requestTimeoutMs": 15000,
//!                             "lowBalance": [50, 10], "pollIntervalMs": 30000 } } }
//! ```
//! Values given to [`crate::Builder`] win over the file, and a base URL set at run time with
//! [`crate::Points::set_base_url`] wins over both. The base URL must be https, or http on a
//! loopback host; the webview can never change it.

use serde::Deserialize;

/// `plugins.points` in `tauri.conf.json`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Config {
    /// The ledger's base URL (the routes are `<baseUrl>/points/...`); optional when the app sets
    /// it at run time.
    pub base_url: Option<String>,
    /// The longest wait for a connection, in milliseconds (default 5000).
    pub connect_timeout_ms: Option<u64>,
    /// The longest wait for a whole request, in milliseconds (default 15000).
    pub request_timeout_ms: Option<u64>,
    /// Attempts per request, the first included (default 3).
    pub max_attempts: Option<u32>,
    /// How long jobs past their pre-check may run on when the app is asked to exit, to journal
    /// their charge, in milliseconds (default 10000; at most 60000).
    pub exit_grace_ms: Option<u64>,
    /// Balances under which `points://low-balance` is sent, once per downward crossing (e.g.
    /// `[50, 10]`; at most 16).
    pub low_balance: Option<Vec<i64>>,
    /// Between two balance polls of a backend without the balance stream, in milliseconds
    /// (default 30000; at least 1000).
    pub poll_interval_ms: Option<u64>,
    /// Between two polls while every window is hidden or minimised, in milliseconds (default
    /// 120000; at least the poll interval).
    pub hidden_poll_interval_ms: Option<u64>,
    /// Whether the plugin follows the balance by itself (the ledger's stream, or polls; default
    /// `true`).
    pub live_balance: Option<bool>,
    /// Offline work under signed allowances (off when absent or without keys).
    pub offline: Option<OfflineConfig>,
}

/// `plugins.points.offline`: `{ "keys": { "<keyId>": "<Ed25519 public key, base64url>" },
/// "deviceId": "..." }`. The keys are the ledger's allowance keys (`GET /points/allowance-keys`),
/// pinned here, never taken from the network; at most 16.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct OfflineConfig {
    /// The public keys allowances must be signed with, by `key_id`.
    #[serde(default)]
    pub keys: std::collections::BTreeMap<String, String>,
    /// This device's id (1-128 of `[A-Za-z0-9._:-]`); default: a random one made at first start
    /// and kept beside the journal.
    pub device_id: Option<String>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_camel_case_and_refuses_unknown_keys() {
        let config: Config = serde_json::from_str(
            r#"{"baseUrl":"http://127.0.0.1:9","connectTimeoutMs":100,"maxAttempts":2,"lowBalance":[50,10],"pollIntervalMs":5000}"#,
        )
        .unwrap();
        assert_eq!(config.base_url.as_deref(), Some("http://127.0.0.1:9"));
        assert_eq!(config.connect_timeout_ms, Some(100));
        assert_eq!(config.max_attempts, Some(2));
        assert_eq!(config.low_balance, Some(vec![50, 10]));
        assert_eq!(config.poll_interval_ms, Some(5000));
        assert!(serde_json::from_str::<Config>(r#"{"token":"x"}"#).is_err());
    }
}
