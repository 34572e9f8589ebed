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

mod commands;
pub mod config;
pub mod events;
mod points;

pub use points_sdk::{
    alerts, allowance, client, jobs, journal, models, offline, policy, session, sync, timemark,
    watch,
};

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use tauri::{
    plugin::{Builder as PluginBuilder, TauriPlugin},
    Manager, Runtime,
};

pub use config::Config;
pub use points::{ChargedJob, Points};
pub use points_sdk::client::{LedgerClient, RetryPolicy, SessionToken, TokenProvider};
pub use points_sdk::jobs::{Charged, JobSpec, Jobs};
pub use points_sdk::models::{ChargeOutcome, DesktopService};
pub use points_sdk::session::{Session, Sessions};
pub use points_sdk::sync::{ChargeSync, SyncPolicy};
pub use points_sdk::watch::{BalanceWatch, WatchPolicy};
pub use points_sdk::{Error, PointsError, Result};

/// How long jobs past their pre-check may run on at exit to journal their charge, by default.
pub const DEFAULT_EXIT_GRACE: Duration = Duration::from_secs(10);
/// The longest exit grace accepted: an exit is never held back longer.
pub const MAX_EXIT_GRACE: Duration = Duration::from_secs(60);

/// The name of the journal directory inside the app's data directory.
const JOURNAL_DIR_NAME: &str = "points-journal";
/// The name of the low-balance alerts' folder inside the journal directory.
const ALERTS_DIR_NAME: &str = "alerts";
/// The name of the offline allowances' folder inside the journal directory.
pub(crate) const OFFLINE_DIR_NAME: &str = "offline";

/// Builds the `points` plugin. Values set here win over `tauri.conf.json > plugins.points`.
///
/// The ledger's base URL may be left out of both: the plugin then starts without one, every
/// ledger call answers [`Error::NotConfigured`] (a job is not run: its price cannot be checked),
/// and the app sets it from Rust when it knows it, with [`Points::set_base_url`]. Which URL is
/// used: the last one given to `set_base_url`; until then [`Builder::base_url`]; else
/// `plugins.points.baseUrl`.
#[derive(Default)]
pub struct Builder {
    base_url: Option<String>,
    connect_timeout: Option<Duration>,
    request_timeout: Option<Duration>,
    retry: Option<RetryPolicy>,
    tokens: Option<Arc<dyn TokenProvider>>,
    journal_dir: Option<PathBuf>,
    sync: Option<SyncPolicy>,
    exit_grace: Option<Duration>,
    low_balance: Option<Vec<i64>>,
    watch: Option<WatchPolicy>,
    live_balance: Option<bool>,
    offline: Option<offline::OfflineSettings>,
}

impl Builder {
    /// A builder with the configuration read from `tauri.conf.json > plugins.points`.
    pub fn new() -> Self {
        Self::default()
    }

    /// The ledger's base URL at start (https, or http on a loopback host); it wins over
    /// `plugins.points.baseUrl`, and [`Points::set_base_url`] replaces it later.
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

    /// How the background sync paces its re-sends of pending charges (default 5 s → 5 min).
    pub fn sync_policy(mut self, policy: SyncPolicy) -> Self {
        self.sync = Some(policy);
        self
    }

    /// Where the session comes from when none was set with `set_session_token` (a token set
    /// from the webview or with [`Points::sign_in`] wins; after a sign-out the provider is not
    /// asked until [`Points::follow_token_provider`]). Give the account id with
    /// [`TokenProvider::account`] for opaque tokens.
    pub fn token_provider(mut self, tokens: impl TokenProvider) -> Self {
        self.tokens = Some(Arc::new(tokens));
        self
    }

    /// Where pending charges are journaled (default: `points-journal` in the app's data directory).
    pub fn journal_dir(mut self, dir: impl Into<PathBuf>) -> Self {
        self.journal_dir = Some(dir.into());
        self
    }

    /// How long jobs already past their pre-check may run on when the app is asked to exit, to
    /// finish and journal their charge (default 10 s). The exit waits for them, then proceeds.
    pub fn exit_grace(mut self, grace: Duration) -> Self {
        self.exit_grace = Some(grace);
        self
    }

    /// Balances under which `points://low-balance` is sent, once per downward crossing; wins
    /// over `plugins.points.lowBalance` (at most 16 thresholds).
    pub fn low_balance(mut self, thresholds: impl IntoIterator<Item = i64>) -> Self {
        self.low_balance = Some(thresholds.into_iter().collect());
        self
    }

    /// How the live balance reconnects its stream and polls a backend without one; wins over
    /// `plugins.points.pollIntervalMs` and `hiddenPollIntervalMs`.
    pub fn watch_policy(mut self, policy: WatchPolicy) -> Self {
        self.watch = Some(policy);
        self
    }

    /// Whether the plugin follows the signed-in account's balance by itself (default `true`):
    /// the ledger's stream, or polls of a backend without it. Off, figures come only from the
    /// app's own fetches and charges. Wins over `plugins.points.liveBalance`.
    pub fn live_balance(mut self, live: bool) -> Self {
        self.live_balance = Some(live);
        self
    }

    /// Offline work: desktop jobs run while the ledger cannot be reached, under allowances signed
    /// with `settings.keys`; wins over `plugins.points.offline`. No key: off.
    pub fn offline(mut self, settings: offline::OfflineSettings) -> Self {
        self.offline = Some(settings);
        self
    }

    /// Builds the plugin.
    pub fn build<R: Runtime>(self) -> TauriPlugin<R, Option<Config>> {
        PluginBuilder::<R, Option<Config>>::new("points")
            .invoke_handler(tauri::generate_handler![
                commands::get_balance,
                commands::get_low_balance,
                commands::check_cost,
                commands::charge,
                commands::get_prices,
                commands::list_transactions,
                commands::list_batches,
                commands::set_session_token,
                commands::clear_session_token,
                commands::get_pending,
                commands::sync_pending,
                commands::retry_refused,
                commands::dismiss_refused,
                commands::get_offline,
            ])
            .setup(move |app, api| {
                let config = api.config().clone().unwrap_or_default();
                let live = self.live_balance.or(config.live_balance).unwrap_or(true);
                let points = self.into_points(app.clone(), config)?;
                let sync = points.sync().clone();
                let watch = points.watch().clone();
                app.manage(points);
                tauri::async_runtime::spawn(sync.run());
                if live {
                    tauri::async_runtime::spawn(watch.run());
                }
                Ok(())
            })
            .on_event(|app, event| match event {
                tauri::RunEvent::ExitRequested { api, code, .. } => {
                    let Some(points) = app.try_state::<Points<R>>() else {
                        return;
                    };
                    let jobs = points.jobs();
                    if jobs.running() > 0 && !jobs.is_closing() {
                        // Jobs past their pre-check finish and journal their charge first.
                        api.prevent_exit();
                        let points = points.inner().clone();
                        let app = app.clone();
                        let code = code.unwrap_or(0);
                        tauri::async_runtime::spawn(async move {
                            points.shutdown_gracefully().await;
                            app.exit(code);
                        });
                    }
                }
                tauri::RunEvent::Exit => {
                    if let Some(points) = app.try_state::<Points<R>>() {
                        points.shutdown();
                    }
                }
                _ => {}
            })
            .build()
    }

    fn into_points<R: Runtime>(
        self,
        app: tauri::AppHandle<R>,
        config: Config,
    ) -> std::result::Result<Points<R>, Box<dyn std::error::Error>> {
        let mut builder = client::LedgerClientBuilder::new();
        if let Some(base_url) = self.base_url.or(config.base_url) {
            builder = builder.base_url(base_url);
        }
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
        let sessions = Arc::new(Sessions::new(self.tokens));
        let client = builder
            .retry(retry)
            .token_provider({
                let sessions = sessions.clone();
                move || sessions.token()
            })
            .build()?;
        let journal_dir = match self.journal_dir {
            Some(dir) => dir,
            None => app.path().app_data_dir()?.join(JOURNAL_DIR_NAME),
        };
        let journal = Arc::new(journal::Journal::open(journal_dir)?);
        let thresholds = self.low_balance.or(config.low_balance).unwrap_or_default();
        let alerts = Arc::new(alerts::LowBalanceAlerts::open(
            journal.dir().join(ALERTS_DIR_NAME),
            &thresholds,
        )?);
        let events = Arc::new(events::EventQueue::start(app.clone(), alerts));
        let notices = Arc::new(events::Notices { app: app.clone() });
        let watch = watch::BalanceWatch::new(
            client.clone(),
            sessions.clone(),
            self.watch.unwrap_or_else(|| {
                watch_policy(config.poll_interval_ms, config.hidden_poll_interval_ms)
            }),
            notices.clone(),
        );
        let sync = ChargeSync::new(
            client.clone(),
            journal,
            sessions,
            self.sync.unwrap_or_default(),
            notices.clone(),
        );
        let watcher = events::Watcher::start(events.clone(), sync.clone());
        let mut jobs = Jobs::new(client.clone(), sync, notices.clone());
        let offline = match self.offline {
            Some(settings) => Some(settings),
            None => config.offline.as_ref().map(offline_settings).transpose()?,
        };
        if let Some(settings) = offline.filter(|settings| !settings.keys.is_empty()) {
            let offline = offline::Offline::open(
                jobs.sync().journal().dir().join(OFFLINE_DIR_NAME),
                settings,
            )?;
            offline.set_listener(notices);
            jobs = jobs.with_offline(offline);
        }
        Ok(Points::new(
            app,
            client,
            jobs,
            events,
            watcher,
            watch,
            self.exit_grace
                .or(config.exit_grace_ms.map(Duration::from_millis))
                .unwrap_or(DEFAULT_EXIT_GRACE)
                .min(MAX_EXIT_GRACE),
        ))
    }
}

/// The watch policy of `plugins.points` (poll intervals in milliseconds, at least 1 s).
fn watch_policy(poll_ms: Option<u64>, hidden_ms: Option<u64>) -> WatchPolicy {
    let default = WatchPolicy::default();
    let poll_interval = poll_ms
        .map(|ms| Duration::from_millis(ms.max(1000)))
        .unwrap_or(default.poll_interval);
    let hidden_poll_interval = hidden_ms
        .map(Duration::from_millis)
        .unwrap_or(default.hidden_poll_interval)
        .max(poll_interval);
    WatchPolicy {
        poll_interval,
        hidden_poll_interval,
        ..default
    }
}

/// The offline settings of `plugins.points.offline`.
fn offline_settings(
    config: &config::OfflineConfig,
) -> std::result::Result<offline::OfflineSettings, Box<dyn std::error::Error>> {
    let keys = allowance::PinnedKeys::from_base64(
        config
            .keys
            .iter()
            .map(|(id, key)| (id.as_str(), key.as_str())),
    )?;
    let mut settings = offline::OfflineSettings::new(keys);
    settings.device_id = config.device_id.clone();
    Ok(settings)
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
