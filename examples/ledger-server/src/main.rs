//! `points-ledger`: run the reference points ledger.
//!
//! `points-ledger dev` starts on loopback with a fresh SQLite file and a demo user;
//! `points-ledger serve` takes its configuration from flags or the environment.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use clap::{Parser, Subcommand};
use points_ledger::{LedgerConfig, PriceTable, RunningLedger};
use tracing_subscriber::EnvFilter;

#[derive(Parser)]
#[command(
    name = "points-ledger",
    version,
    about = "The reference points ledger (HTTP + SQLite or PostgreSQL)"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

// Parsed once at start: the size of the `serve` arguments does not matter.
#[allow(clippy::large_enum_variant)]
#[derive(Subcommand)]
enum Command {
    /// Runs on loopback with a fresh SQLite file and a demo user; prints the URL, a token and the admin key.
    Dev {
        /// Port on 127.0.0.1 (0 picks a free one).
        #[arg(long, default_value_t = 8787)]
        port: u16,
        /// Points recharged to the demo user.
        #[arg(long, default_value_t = 1000)]
        demo_points: i64,
    },
    /// Runs with the configuration from flags or the environment.
    Serve(ServeArgs),
    /// Prints the OpenAPI document.
    Openapi,
}

#[derive(clap::Args)]
struct ServeArgs {
    /// `sqlite:PATH?mode=rwc`, `sqlite::memory:` or `postgres://USER@HOST/DB`.
    #[arg(
        long,
        env = "POINTS_LEDGER_DATABASE_URL",
        default_value = "sqlite:points-ledger.sqlite?mode=rwc"
    )]
    database_url: String,
    /// Address to listen on.
    #[arg(long, env = "POINTS_LEDGER_BIND", default_value = "127.0.0.1:8787")]
    bind: SocketAddr,
    /// HS256 secret of the users' bearer tokens (32 bytes or more); not needed with
    /// --jwt-public-key or --jwt-jwks.
    #[arg(long, env = "POINTS_LEDGER_JWT_SECRET", hide_env_values = true)]
    jwt_secret: Option<String>,
    /// PEM public key of the host's auth server (Ed25519: EdDSA, RSA: RS256); tokens are
    /// verified with it instead of the secret.
    #[arg(long, env = "POINTS_LEDGER_JWT_PUBLIC_KEY")]
    jwt_public_key: Option<PathBuf>,
    /// JWKS file of the host's auth server (Ed25519 or RSA keys, chosen by `kid`).
    #[arg(long, env = "POINTS_LEDGER_JWT_JWKS")]
    jwt_jwks: Option<PathBuf>,
    /// Required `iss` of user tokens.
    #[arg(long, env = "POINTS_LEDGER_JWT_ISSUER")]
    jwt_issuer: Option<String>,
    /// Required `aud` of user tokens.
    #[arg(long, env = "POINTS_LEDGER_JWT_AUDIENCE")]
    jwt_audience: Option<String>,
    /// Key of the admin routes (X-Admin-Key header).
    #[arg(long, env = "POINTS_LEDGER_ADMIN_KEY", hide_env_values = true)]
    admin_key: String,
    /// Price table (YAML); the shipped one when not given.
    #[arg(long, env = "POINTS_LEDGER_PRICES")]
    prices: Option<PathBuf>,
    /// Seconds between expiry sweeps.
    #[arg(long, env = "POINTS_LEDGER_SWEEP_SECONDS", default_value_t = 300)]
    sweep_seconds: u64,
    /// Most database connections.
    #[arg(long, env = "POINTS_LEDGER_MAX_CONNECTIONS", default_value_t = 16)]
    max_connections: u32,
    /// Seconds a client has to send a request's head (request line and headers).
    #[arg(
        long,
        env = "POINTS_LEDGER_HEADER_READ_TIMEOUT_SECONDS",
        default_value_t = 10.0
    )]
    header_read_timeout_seconds: f64,
    /// Seconds a client has to send a request's body and get its answer (then 408).
    #[arg(
        long,
        env = "POINTS_LEDGER_REQUEST_TIMEOUT_SECONDS",
        default_value_t = 30.0
    )]
    request_timeout_seconds: f64,
    /// Requests handled at once (past it, 503 `overloaded`).
    #[arg(long, env = "POINTS_LEDGER_MAX_IN_FLIGHT", default_value_t = 512)]
    max_in_flight: usize,
    /// HTTP connections open at once (past it, new ones wait to be accepted).
    #[arg(
        long,
        env = "POINTS_LEDGER_MAX_HTTP_CONNECTIONS",
        default_value_t = 1024
    )]
    max_http_connections: usize,
    /// Largest request body in bytes (past it, 413 `payload_too_large`).
    #[arg(long, env = "POINTS_LEDGER_MAX_BODY_BYTES", default_value_t = 65536)]
    max_body_bytes: usize,
    /// Seconds between heartbeat comments of a balance stream without events (at most 15).
    #[arg(
        long,
        env = "POINTS_LEDGER_STREAM_HEARTBEAT_SECONDS",
        default_value_t = 10.0
    )]
    stream_heartbeat_seconds: f64,
    /// Balance streams one user may hold (a new one past it ends the oldest).
    #[arg(long, env = "POINTS_LEDGER_MAX_STREAMS_PER_USER", default_value_t = 8)]
    max_streams_per_user: usize,
    /// Balance streams held in all (past it, 503 `too_many_streams`); each holds one HTTP
    /// connection.
    #[arg(long, env = "POINTS_LEDGER_MAX_STREAMS", default_value_t = 512)]
    max_streams: usize,
    /// Events a balance stream may leave unread before it is dropped as a slow reader.
    #[arg(long, env = "POINTS_LEDGER_STREAM_BUFFER", default_value_t = 64)]
    stream_buffer: usize,
    /// Journal entries a balance stream replays at most after Last-Event-ID.
    #[arg(
        long,
        env = "POINTS_LEDGER_STREAM_REPLAY_LIMIT",
        default_value_t = 1000
    )]
    stream_replay_limit: u32,
    /// Keys of offline allowances, `KEY_ID:SEED,KEY_ID:SEED` (SEED: the 32-byte Ed25519 secret
    /// seed in base64url); the first signs, the others are only served. None: no allowance is
    /// issued (501).
    #[arg(long, env = "POINTS_LEDGER_ALLOWANCE_KEYS", hide_env_values = true)]
    allowance_keys: Option<String>,
    /// Most points of one offline allowance.
    #[arg(long, env = "POINTS_LEDGER_ALLOWANCE_CAP", default_value_t = 100)]
    allowance_cap: i64,
    /// Seconds an offline allowance covers new work (its `not_after` after issue).
    #[arg(
        long,
        env = "POINTS_LEDGER_ALLOWANCE_WINDOW_SECONDS",
        default_value_t = 259_200
    )]
    allowance_window_seconds: i64,
    /// Seconds after an allowance's `not_after` that consumes under it are still accepted.
    #[arg(
        long,
        env = "POINTS_LEDGER_ALLOWANCE_GRACE_SECONDS",
        default_value_t = 2_592_000
    )]
    allowance_grace_seconds: i64,
}

/// `seconds` as a duration, when it is finite, positive and at most a day.
fn seconds(flag: &str, seconds: f64) -> Result<Duration, String> {
    if seconds.is_finite() && seconds > 0.0 && seconds <= 86_400.0 {
        Ok(Duration::from_secs_f64(seconds))
    } else {
        Err(format!("--{flag} must be more than 0 and at most 86400"))
    }
}

#[tokio::main]
async fn main() -> ExitCode {
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_env_filter(
            EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info")),
        )
        .init();
    match run(Cli::parse()).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(message) => {
            eprintln!("points-ledger: {message}");
            ExitCode::from(2)
        }
    }
}

async fn run(cli: Cli) -> Result<(), String> {
    match cli.command {
        Command::Openapi => {
            print!("{}", points_ledger::openapi::document_json());
            Ok(())
        }
        Command::Serve(args) => serve(args).await,
        Command::Dev { port, demo_points } => dev(port, demo_points).await,
    }
}

async fn serve(args: ServeArgs) -> Result<(), String> {
    let jwt = points_ledger::auth::JwtSettings {
        issuer: args.jwt_issuer,
        audience: args.jwt_audience,
        public_key_pem: args.jwt_public_key,
        jwks: args.jwt_jwks,
    };
    let public_keys = jwt.public_key_pem.is_some() || jwt.jwks.is_some();
    let jwt_secret = match args.jwt_secret {
        Some(secret) if secret.len() < points_ledger::auth::MIN_SECRET_BYTES => {
            return Err(format!(
                "--jwt-secret must be at least {} bytes",
                points_ledger::auth::MIN_SECRET_BYTES
            ))
        }
        Some(secret) => secret,
        // Only signs the tokens `token_for` makes, which public-key verification refuses.
        None if public_keys => points_ledger::config::random_secret(),
        None => return Err("--jwt-secret (or --jwt-public-key / --jwt-jwks) is required".into()),
    };
    if args.admin_key.len() < 16 {
        return Err("--admin-key must be at least 16 characters".into());
    }
    if args.sweep_seconds == 0 {
        return Err("--sweep-seconds must be 1 or more".into());
    }
    if args.max_in_flight == 0 || args.max_http_connections == 0 || args.max_body_bytes == 0 {
        return Err(
            "--max-in-flight, --max-http-connections and --max-body-bytes must be 1 or more".into(),
        );
    }
    let http = points_ledger::http::HttpLimits {
        header_read_timeout: seconds(
            "header-read-timeout-seconds",
            args.header_read_timeout_seconds,
        )?,
        request_timeout: seconds("request-timeout-seconds", args.request_timeout_seconds)?,
        max_in_flight: args.max_in_flight,
        max_connections: args.max_http_connections,
        max_body_bytes: args.max_body_bytes,
    };
    if args.stream_heartbeat_seconds > 15.0 {
        return Err("--stream-heartbeat-seconds must be at most 15".into());
    }
    if args.max_streams_per_user == 0
        || args.max_streams == 0
        || args.stream_buffer == 0
        || args.stream_replay_limit == 0
    {
        return Err("--max-streams-per-user, --max-streams, --stream-buffer and --stream-replay-limit must be 1 or more".into());
    }
    let stream = points_ledger::stream::StreamLimits {
        heartbeat: seconds("stream-heartbeat-seconds", args.stream_heartbeat_seconds)?,
        max_per_user: args.max_streams_per_user,
        max_streams: args.max_streams,
        buffer: args.stream_buffer,
        replay_limit: args.stream_replay_limit,
    };
    let allowance_keys =
        points_ledger::allowance::parse_keys(args.allowance_keys.as_deref().unwrap_or_default())
            .map_err(|e| format!("--allowance-keys: {e}"))?;
    let allowance = points_ledger::ledger::AllowancePolicy {
        cap: args.allowance_cap,
        window_seconds: args.allowance_window_seconds,
        grace_seconds: args.allowance_grace_seconds,
    };
    allowance.check()?;
    let pricing = match &args.prices {
        Some(path) => PriceTable::from_file(path).map_err(|e| e.to_string())?,
        None => PriceTable::shipped(),
    };
    let config = LedgerConfig::ephemeral()
        .with_database_url(args.database_url)
        .with_bind(args.bind)
        .with_secrets(jwt_secret, args.admin_key)
        .with_jwt_settings(jwt)
        .with_pricing(pricing)
        .with_sweep_interval(Duration::from_secs(args.sweep_seconds))
        .with_max_connections(args.max_connections)
        .with_http_limits(http)
        .with_stream_limits(stream)
        .with_allowance_keys(allowance_keys)
        .with_allowance_policy(allowance);
    let running = points_ledger::serve(config)
        .await
        .map_err(|e| e.to_string())?;
    run_until_signal(running).await
}

async fn dev(port: u16, demo_points: i64) -> Result<(), String> {
    let path = std::env::temp_dir().join(format!(
        "points-ledger-dev-{}.sqlite",
        uuid::Uuid::new_v4().simple()
    ));
    let config = LedgerConfig::ephemeral()
        .with_database_url(format!("sqlite:{}?mode=rwc", path.display()))
        .with_bind(SocketAddr::from(([127, 0, 0, 1], port)))
        .with_allowance_keys(vec![points_ledger::allowance::random_key("dev")]);
    let running = points_ledger::serve(config)
        .await
        .map_err(|e| e.to_string())?;
    let user = uuid::Uuid::new_v4();
    let expires_at = time::OffsetDateTime::now_utc() + time::Duration::days(30);
    running
        .recharge(user, demo_points, expires_at)
        .await
        .map_err(|e| e.to_string())?;
    println!("points-ledger dev");
    println!("  database:  {}", path.display());
    println!("  base URL:  {}", running.base_url());
    println!("  user:      {user} ({demo_points} points, expiring in 30 days)");
    let token = running.token_for(user);
    println!("  token:     {token}");
    println!("  admin key: {}", running.admin_key());
    for (key_id, public_key) in running.allowance_public_keys() {
        println!("  allowance key: {key_id}:{public_key}");
    }
    println!(
        "  try:       curl -H 'Authorization: Bearer {token}' {}/points/balance",
        running.base_url()
    );
    run_until_signal(running).await
}

/// Serves until SIGINT or SIGTERM, then lets in-flight requests finish.
async fn run_until_signal(running: RunningLedger) -> Result<(), String> {
    let interrupt = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        let mut terminate =
            tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
                .map_err(|e| format!("cannot listen for SIGTERM: {e}"))?;
        tokio::select! {
            _ = interrupt => {}
            _ = terminate.recv() => {}
        }
    }
    #[cfg(not(unix))]
    let _ = interrupt.await;
    tracing::info!("shutting down: finishing in-flight requests");
    running.shutdown().await;
    Ok(())
}
