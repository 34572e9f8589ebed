//! Tauri v2 plugin to charge, check and show a user's prepaid points against a backend ledger,
//! with the ledger client SDK it is built on ([`client`], usable without Tauri).
//!
//! ```no_run
//! # fn main() {
//! tauri::Builder::default()
//!     .plugin(tauri_plugin_points::Builder::new().build())
//! #   ;
//! # }
//! ```
//! The app's own Rust commands charge finished jobs with
//! `app.points().run_charged(DesktopService::Compose, Some(job_id), || async { ... })`.

pub mod client;
mod commands;
pub mod config;
mod error;
pub mod events;
pub mod journal;
pub mod models;
mod points;

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use tauri::{
    plugin::{Builder as PluginBuilder, TauriPlugin},
    Manager, Runtime,
};

pub use client::{LedgerClient, RetryPolicy, SessionToken, TokenProvider};
pub use config::Config;
pub use error::{Error, PointsError, Result};
pub use models::DesktopService;
pub use points::{Charged, Points};

/// The name of the journal directory inside the app's data directory.
const JOURNAL_DIR_NAME: &str = "points-journal";

/// Builds the `points` plugin. Values set here win over `tauri.conf.json > plugins.points`.
#[derive(Default)]
pub struct Builder {
    base_url: Option<String>,
    connect_timeout: Option<Duration>,
    request_timeout: Option<Duration>,
    retry: Option<RetryPolicy>,
    tokens: Option<Arc<dyn TokenProvider>>,
    journal_dir: Option<PathBuf>,
}

impl Builder {
    /// A builder with the configuration read from `tauri.conf.json > plugins.points`.
    pub fn new() -> Self {
        Self::default()
    }

    /// The ledger's base URL: https, or http on a loopback host.
    pub fn base_url(mut self, base_url: impl Into<String>) -> Self {
        self.base_url = Some(base_url.into());
        self
    }

    /// The longest wait for a connection.
    pub fn connect_timeout(mut self, timeout: Duration) -> Self {
        self.connect_timeout = Some(timeout);
        self
    }

    /// The longest wait for a whole request.
    pub fn request_timeout(mut self, timeout: Duration) -> Self {
        self.request_timeout = Some(timeout);
        self
    }

    /// How failed requests are retried.
    pub fn retry(mut self, retry: RetryPolicy) -> Self {
        self.retry = Some(retry);
        self
    }

    /// Where the session token comes from when none was set with `set_session_token`
    /// (a token set from the webview or with [`Points::set_session_token`] wins).
    pub fn token_provider(mut self, tokens: impl TokenProvider) -> Self {
        self.tokens = Some(Arc::new(tokens));
        self
    }

    /// Where pending charges are journaled (default: `points-journal` in the app's data directory).
    pub fn journal_dir(mut self, dir: impl Into<PathBuf>) -> Self {
        self.journal_dir = Some(dir.into());
        self
    }

    /// Builds the plugin.
    pub fn build<R: Runtime>(self) -> TauriPlugin<R, Option<Config>> {
        PluginBuilder::<R, Option<Config>>::new("points")
            .invoke_handler(tauri::generate_handler![
                commands::get_balance,
                commands::check_cost,
                commands::charge,
                commands::get_prices,
                commands::list_transactions,
                commands::list_batches,
                commands::set_session_token,
                commands::clear_session_token,
            ])
            .setup(move |app, api| {
                let config = api.config().clone().unwrap_or_default();
                let points = self.into_points(app.clone(), config)?;
                let replay = points.clone();
                app.manage(points);
                tauri::async_runtime::spawn(async move {
                    replay.replay_pending().await;
                });
                Ok(())
            })
            .build()
    }

    fn into_points<R: Runtime>(
        self,
        app: tauri::AppHandle<R>,
        config: Config,
    ) -> std::result::Result<Points<R>, Box<dyn std::error::Error>> {
        let base_url = self.base_url.or(config.base_url).ok_or(
            "no ledger base URL: set plugins.points.baseUrl in tauri.conf.json or Builder::base_url",
        )?;
        let mut builder = LedgerClient::builder(base_url);
        if let Some(timeout) = self
            .connect_timeout
            .or(config.connect_timeout_ms.map(Duration::from_millis))
        {
            builder = builder.connect_timeout(timeout);
        }
        if let Some(timeout) = self
            .request_timeout
            .or(config.request_timeout_ms.map(Duration::from_millis))
        {
            builder = builder.request_timeout(timeout);
        }
        let retry = self.retry.unwrap_or_else(|| RetryPolicy {
            max_attempts: config.max_attempts.unwrap_or(3).max(1),
            ..RetryPolicy::default()
        });
        let session = SessionToken::new();
        let fallback = self.tokens;
        let client = builder
            .retry(retry)
            .token_provider({
                let session = session.clone();
                move || {
                    session
                        .token()
                        .or_else(|| fallback.as_ref().and_then(|tokens| tokens.token()))
                }
            })
            .build()?;
        let journal_dir = match self.journal_dir {
            Some(dir) => dir,
            None => app.path().app_data_dir()?.join(JOURNAL_DIR_NAME),
        };
        let journal = journal::Journal::open(journal_dir)?.with_observer({
            let app = app.clone();
            move |count| events::pending_changed(&app, count)
        });
        Ok(Points::new(app, client, session, Arc::new(journal)))
    }
}

/// Builds the plugin with the configuration from `tauri.conf.json > plugins.points`.
pub fn init<R: Runtime>() -> TauriPlugin<R, Option<Config>> {
    Builder::new().build()
}

/// `app.points()`: the plugin's state from an `App`, `AppHandle`, window or webview.
pub trait PointsExt<R: Runtime> {
    /// The plugin's state; panics if the plugin was not registered.
    fn points(&self) -> &Points<R>;
}

impl<R: Runtime, T: Manager<R>> PointsExt<R> for T {
    fn points(&self) -> &Points<R> {
        self.state::<Points<R>>().inner()
    }
}
