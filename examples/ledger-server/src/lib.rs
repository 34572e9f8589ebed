//! `points-ledger`: the points ledger contract, implemented for real.
//!
//! An axum HTTP API over a ledger kept in SQLite (embedded default, file or in memory) or
//! PostgreSQL (a `postgres://` URL), with the same SQL and money rules on both. Embed it in
//! tests with [`LedgerConfig::ephemeral`] and [`serve`]:
//!
//! ```no_run
//! # async fn demo() -> Result<(), Box<dyn std::error::Error>> {
//! let ledger = points_ledger::serve(points_ledger::LedgerConfig::ephemeral()).await?;
//! let user = uuid::Uuid::new_v4();
//! ledger.recharge(user, 100, time::OffsetDateTime::now_utc() + time::Duration::days(30)).await?;
//! let (url, token) = (ledger.base_url(), ledger.token_for(user));
//! # let _ = (url, token);
//! ledger.shutdown().await;
//! # Ok(()) }
//! ```

pub mod allowance;
pub mod amount;
pub mod auth;
pub mod clock;
pub mod config;
pub mod db;
pub mod http;
pub mod ledger;
pub mod openapi;
pub mod pricing;
pub mod problem;
pub mod routes;
pub mod stream;

use std::net::SocketAddr;
use std::sync::Arc;

use tokio::sync::watch;
use tokio::task::JoinHandle;
use uuid::Uuid;

pub use crate::clock::{Clock, ManualClock, SystemClock};
pub use crate::config::LedgerConfig;
pub use crate::ledger::{Ledger, LedgerError};
pub use crate::pricing::PriceTable;

use crate::auth::Auth;
use crate::db::Db;
use crate::routes::AppState;

/// Why the ledger did not start.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    /// The database could not be opened or migrated.
    #[error("database: {0}")]
    Database(#[from] sqlx::Error),
    /// The token settings cannot be used (a short secret, a bad key file).
    #[error("authentication: {0}")]
    Auth(#[from] crate::auth::AuthError),
    /// The allowance keys or policy cannot be used (a bad key id, a key id twice, a setting out
    /// of bounds).
    #[error("allowances: {0}")]
    Allowance(String),
    /// The address could not be bound.
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        /// The address asked for.
        addr: SocketAddr,
        /// Why it failed.
        source: std::io::Error,
    },
}

/// A ledger serving HTTP in the background. Stop it with [`RunningLedger::shutdown`].
#[derive(Debug)]
pub struct RunningLedger {
    addr: SocketAddr,
    ledger: Arc<Ledger>,
    auth: Arc<Auth>,
    stop: watch::Sender<bool>,
    server: JoinHandle<std::io::Result<()>>,
    sweeper: JoinHandle<()>,
    listener: Option<stream::listen::Listener>,
    allowance_keys: Arc<allowance::AllowanceKeys>,
}

/// Opens the database (running migrations), binds the address and serves the API, with the
/// expiry sweep running every `config.sweep_interval`.
pub async fn serve(config: LedgerConfig) -> Result<RunningLedger, StartError> {
    let auth = Arc::new(Auth::configured(
        &config.jwt_secret,
        &config.admin_key,
        &config.jwt,
    )?);
    let allowance_keys = Arc::new(
        allowance::AllowanceKeys::new(config.allowance_keys).map_err(StartError::Allowance)?,
    );
    config.allowance.check().map_err(StartError::Allowance)?;
    let db = Db::connect(&config.database_url, config.max_connections).await?;
    let openapi = Arc::new(openapi::document_for(&config.pricing));
    let ledger = Arc::new(
        Ledger::new(db, config.pricing, config.clock).with_allowance_policy(config.allowance),
    );
    let listener = tokio::net::TcpListener::bind(config.bind)
        .await
        .map_err(|source| StartError::Bind {
            addr: config.bind,
            source,
        })?;
    let addr = listener.local_addr().map_err(|source| StartError::Bind {
        addr: config.bind,
        source,
    })?;
    let (stop, stopped) = watch::channel(false);
    // On PostgreSQL, listening before the first request: a stream never misses a commit.
    let journal_listener = match ledger.db().backend() {
        db::Backend::Postgres => Some(
            stream::listen::start(&config.database_url, ledger.hub().clone(), stopped.clone())
                .await?,
        ),
        db::Backend::Sqlite => None,
    };

    let mut app = routes::router(AppState {
        ledger: ledger.clone(),
        auth: auth.clone(),
        allowance_keys: allowance_keys.clone(),
        openapi,
        stream: stream::sse::StreamContext {
            ledger: ledger.clone(),
            limits: config.stream,
            stopped: stopped.clone(),
        },
    });
    if config.cors_any_origin {
        app = app.layer(tower_http::cors::CorsLayer::very_permissive());
    }
    let app = http::limited(app, &config.http);
    let server = tokio::spawn(http::serve(listener, app, config.http, stopped.clone()));
    let sweeper = tokio::spawn(sweep(ledger.clone(), config.sweep_interval, stopped));
    tracing::info!(%addr, backend = ?ledger.db().backend(), "points ledger listening");
    Ok(RunningLedger {
        addr,
        ledger,
        auth,
        stop,
        server,
        sweeper,
        listener: journal_listener,
        allowance_keys,
    })
}

/// Expires due batches every `interval` until told to stop. Reads and writes enforce expiry on
/// their own; this only tidies.
async fn sweep(
    ledger: Arc<Ledger>,
    interval: std::time::Duration,
    mut stopped: watch::Receiver<bool>,
) {
    let mut ticks = tokio::time::interval(interval);
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    ticks.tick().await;
    loop {
        tokio::select! {
            _ = ticks.tick() => {}
            _ = stopped.wait_for(|stop| *stop) => return,
        }
        match ledger.expire_all().await {
            Ok(report) if report.skipped => {
                tracing::debug!("expiry sweep skipped: another sweep is running")
            }
            Ok(report) if report.batches > 0 || report.failed_users > 0 => {
                tracing::info!(
                    users = report.users,
                    batches = report.batches,
                    points = report.points,
                    failed_users = report.failed_users,
                    "expired batches"
                )
            }
            Ok(_) => {}
            Err(error) => tracing::warn!(%error, "expiry sweep failed"),
        }
    }
}

impl RunningLedger {
    /// The address the API listens on.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// `http://IP:PORT`, without a trailing slash.
    pub fn base_url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// A bearer token (HS256 JWT, `sub` = `user`, with the configured issuer and audience),
    /// valid for a year: this ledger accepts it unless it verifies tokens with public keys.
    pub fn token_for(&self, user: Uuid) -> String {
        self.auth.token_for(user)
    }

    /// The key that opens the admin routes (`X-Admin-Key` header).
    pub fn admin_key(&self) -> &str {
        self.auth.admin_key()
    }

    /// Adds a batch of `points` expiring at `expires_at` to `user` (debt is paid first).
    pub async fn recharge(
        &self,
        user: Uuid,
        points: i64,
        expires_at: time::OffsetDateTime,
    ) -> Result<(), LedgerError> {
        self.ledger
            .recharge(user, points, expires_at)
            .await
            .map(|_| ())
    }

    /// Adds a batch at most once per idempotency `key` (1 to 255 printable ASCII characters
    /// without space), as `POST /admin/recharge` does: the same key and request again answer
    /// the first receipt with `replayed: true`.
    pub async fn recharge_once(
        &self,
        user: Uuid,
        points: i64,
        expires_at: time::OffsetDateTime,
        key: &str,
    ) -> Result<crate::ledger::RechargeReceipt, LedgerError> {
        let key =
            crate::ledger::IdempotencyKey::parse(key).ok_or(LedgerError::InvalidIdempotencyKey)?;
        let request = crate::ledger::RechargeRequest { points, expires_at };
        self.ledger.recharge_once(user, &request, &key).await
    }

    /// The public keys of offline allowances as (key id, Ed25519 public key in base64url
    /// without padding), the signing key first: what `GET /points/allowance-keys` serves.
    pub fn allowance_public_keys(&self) -> Vec<(String, String)> {
        self.allowance_keys.public_keys()
    }

    /// The server process id of the PostgreSQL connection the balance streams listen on
    /// (`None` on SQLite, 0 while it reconnects).
    pub fn stream_listener_pid(&self) -> Option<i32> {
        self.listener.as_ref().map(|l| l.backend_pid())
    }

    /// Balance streams open now.
    pub fn open_streams(&self) -> usize {
        self.ledger.hub().len()
    }

    /// The ledger itself, for direct calls.
    pub fn ledger(&self) -> &Arc<Ledger> {
        &self.ledger
    }

    /// Stops accepting connections, ends the balance streams (`end` event `shutdown`), lets
    /// in-flight requests finish, stops the sweep and closes the database.
    pub async fn shutdown(self) {
        let _ = self.stop.send(true);
        if let Some(listener) = self.listener {
            listener.join().await;
        }
        match self.server.await {
            Ok(Ok(())) => {}
            Ok(Err(error)) => tracing::warn!(%error, "server stopped with an error"),
            Err(error) => tracing::warn!(%error, "server task failed"),
        }
        let _ = self.sweeper.await;
        self.ledger.db().close().await;
        tracing::info!("points ledger stopped");
    }
}
