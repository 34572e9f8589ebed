//! Where the points live: the reference ledger run in-process (the default), or an external
//! ledger named by the environment. Also "the app's backend": the calls a real app's server makes
//! itself (a video job it charges, a top-up), done here over HTTP against the same ledger.

use std::path::{Path, PathBuf};

use points_ledger::{LedgerConfig, RunningLedger};
use serde::{Deserialize, Serialize};
use tokio::sync::Mutex;
use uuid::Uuid;

use crate::StartError;

/// Points given to each demo user on the first start, expiring in [`DEMO_DAYS`] days.
pub const DEMO_POINTS: i64 = 20;
/// Days until the demo users' first batch expires.
pub const DEMO_DAYS: i64 = 30;
/// Points of the benchmark user (`POINTS_EXAMPLE_BENCH=1`): enough for thousands of charges.
const BENCH_POINTS: i64 = 1_000_000;

/// A user the app can sign in as. The token never leaves the Rust side (except the bench user's,
/// in benchmark mode only).
#[derive(Clone)]
pub struct User {
    pub name: String,
    /// The ledger's user id, when known (needed for top-ups).
    pub id: Option<Uuid>,
    /// The host's account id: pending charges belong to it (`None`: the plugin derives it).
    pub account: Option<String>,
    pub(crate) token: String,
}

/// The ledger the app talks to.
pub enum Backend {
    /// The reference ledger, in this process.
    Embedded {
        ledger: Mutex<Option<RunningLedger>>,
        base_url: String,
        admin_key: String,
        users: Vec<User>,
        bench_user: User,
    },
    /// A ledger named by `POINTS_API_URL` / `POINTS_TOKEN`.
    External {
        base_url: String,
        user: User,
        /// `POINTS_ADMIN_KEY`, which enables "Top up" when the user's id is known.
        admin_key: Option<String>,
    },
}

/// What is kept in the data directory so the demo users keep their tokens across restarts.
#[derive(Serialize, Deserialize)]
struct DemoIdentity {
    jwt_secret: String,
    admin_key: String,
    users: Vec<DemoUserRecord>,
    bench_user: Uuid,
}

#[derive(Serialize, Deserialize)]
struct DemoUserRecord {
    name: String,
    id: Uuid,
}

/// The external backend named by the environment, or `None` when `POINTS_API_URL` is unset.
pub fn external_from_env() -> Result<Option<Backend>, StartError> {
    let Ok(base_url) = std::env::var("POINTS_API_URL") else {
        return Ok(None);
    };
    let token = std::env::var("POINTS_TOKEN")
        .map_err(|_| "POINTS_API_URL is set but POINTS_TOKEN is not: both are needed")?;
    let account = std::env::var("POINTS_ACCOUNT").ok();
    let id = account.as_deref().and_then(|a| Uuid::parse_str(a).ok());
    Ok(Some(Backend::External {
        base_url: base_url.trim_end_matches('/').to_owned(),
        user: User {
            name: account.clone().unwrap_or_else(|| "you".to_owned()),
            id,
            // Without POINTS_ACCOUNT, the plugin's own rule applies (the token's JWT subject).
            account,
            token,
        },
        admin_key: std::env::var("POINTS_ADMIN_KEY").ok(),
    }))
}

impl Backend {
    /// Starts the reference ledger on loopback with its SQLite file in `data_dir`; on the first
    /// start, creates the demo users with [`DEMO_POINTS`] points each. `bench` lets the webview
    /// call it directly (CORS), for the benchmark's `fetch()`.
    pub async fn embedded(data_dir: &Path, bench: bool) -> Result<Self, StartError> {
        std::fs::create_dir_all(data_dir)?;
        let identity_path = data_dir.join("demo-users.json");
        let (identity, first_start) = match std::fs::read(&identity_path) {
            Ok(bytes) => (serde_json::from_slice::<DemoIdentity>(&bytes)?, false),
            Err(error) if error.kind() == std::io::ErrorKind::NotFound => {
                let identity = DemoIdentity {
                    jwt_secret: points_ledger::config::random_secret(),
                    admin_key: points_ledger::config::random_secret(),
                    users: ["Ada", "Grace"]
                        .into_iter()
                        .map(|name| DemoUserRecord {
                            name: name.to_owned(),
                            id: Uuid::new_v4(),
                        })
                        .collect(),
                    bench_user: Uuid::new_v4(),
                };
                (identity, true)
            }
            Err(error) => return Err(error.into()),
        };
        let database: PathBuf = data_dir.join("ledger.sqlite");
        let config = LedgerConfig::ephemeral()
            .with_database_url(format!("sqlite:{}?mode=rwc", database.display()))
            .with_secrets(identity.jwt_secret.clone(), identity.admin_key.clone())
            .with_cors_any_origin(bench);
        let ledger = points_ledger::serve(config).await?;
        if first_start {
            let expires_at = time::OffsetDateTime::now_utc() + time::Duration::days(DEMO_DAYS);
            for user in &identity.users {
                ledger.recharge(user.id, DEMO_POINTS, expires_at).await?;
            }
            ledger
                .recharge(identity.bench_user, BENCH_POINTS, expires_at)
                .await?;
            // Written last: a start that failed before this point starts afresh next time.
            let temporary = identity_path.with_extension("json.tmp");
            std::fs::write(&temporary, serde_json::to_vec_pretty(&identity)?)?;
            std::fs::rename(&temporary, &identity_path)?;
        }
        let user = |name: &str, id: Uuid| User {
            name: name.to_owned(),
            id: Some(id),
            account: Some(id.to_string()),
            token: ledger.token_for(id),
        };
        let users = identity
            .users
            .iter()
            .map(|record| user(&record.name, record.id))
            .collect();
        let bench_user = user("bench", identity.bench_user);
        Ok(Backend::Embedded {
            base_url: ledger.base_url(),
            admin_key: ledger.admin_key().to_owned(),
            ledger: Mutex::new(Some(ledger)),
            users,
            bench_user,
        })
    }

    /// The ledger's base URL.
    pub fn base_url(&self) -> String {
        match self {
            Backend::Embedded { base_url, .. } | Backend::External { base_url, .. } => {
                base_url.clone()
            }
        }
    }

    /// `embedded` or `external`.
    pub fn mode(&self) -> &'static str {
        match self {
            Backend::Embedded { .. } => "embedded",
            Backend::External { .. } => "external",
        }
    }

    /// The users one can sign in as, the first one signed in at start.
    pub fn users(&self) -> Vec<User> {
        match self {
            Backend::Embedded { users, .. } => users.clone(),
            Backend::External { user, .. } => vec![user.clone()],
        }
    }

    /// The benchmark user (embedded mode only).
    pub fn bench_user(&self) -> Option<&User> {
        match self {
            Backend::Embedded { bench_user, .. } => Some(bench_user),
            Backend::External { .. } => None,
        }
    }

    /// Whether "Top up" can work: the admin key and the user's id are known.
    pub fn can_top_up(&self, user: &User) -> bool {
        user.id.is_some()
            && match self {
                Backend::Embedded { .. } => true,
                Backend::External { admin_key, .. } => admin_key.is_some(),
            }
    }

    fn admin_key(&self) -> Option<&str> {
        match self {
            Backend::Embedded { admin_key, .. } => Some(admin_key),
            Backend::External { admin_key, .. } => admin_key.as_deref(),
        }
    }

    /// Stops the in-process ledger (nothing for an external one).
    pub async fn shutdown(&self) {
        if let Backend::Embedded { ledger, .. } = self {
            if let Some(ledger) = ledger.lock().await.take() {
                ledger.shutdown().await;
            }
        }
    }

    /// What the app's backend does for a video job: consumes `video` for `duration` seconds on
    /// the user's behalf, as the host's own server would, and hands its answer back unchanged.
    pub async fn submit_video(
        &self,
        http: &reqwest::Client,
        user: &User,
        duration: f64,
    ) -> Result<BackendAnswer, reqwest::Error> {
        let body = serde_json::json!({ "service": "video", "duration": duration });
        let response = http
            .post(format!("{}/points/consume", self.base_url()))
            .bearer_auth(&user.token)
            .header("Idempotency-Key", Uuid::new_v4().to_string())
            .header("Content-Type", "application/json")
            .body(body.to_string())
            .send()
            .await?;
        BackendAnswer::read(response).await
    }

    /// Adds `points` expiring in [`DEMO_DAYS`] days to `user` through the ledger's admin route
    /// (what a payment webhook does on a real backend; the plugin itself never recharges).
    pub async fn top_up(
        &self,
        http: &reqwest::Client,
        user: &User,
        points: i64,
    ) -> Result<BackendAnswer, TopUpError> {
        let (Some(admin_key), Some(id)) = (self.admin_key(), user.id) else {
            return Err(TopUpError::Unavailable);
        };
        let expires_at = time::OffsetDateTime::now_utc() + time::Duration::days(DEMO_DAYS);
        let expires_at = expires_at
            .format(&time::format_description::well_known::Rfc3339)
            .map_err(|_| TopUpError::Unavailable)?;
        let body = serde_json::json!({ "user_id": id, "points": points, "expires_at": expires_at });
        let response = http
            .post(format!("{}/admin/recharge", self.base_url()))
            .header("X-Admin-Key", admin_key)
            .header("Idempotency-Key", Uuid::new_v4().to_string())
            .header("Content-Type", "application/json")
            .body(body.to_string())
            .send()
            .await
            .map_err(TopUpError::Http)?;
        BackendAnswer::read(response)
            .await
            .map_err(TopUpError::Http)
    }
}

/// Why a top-up could not be sent.
#[derive(Debug)]
pub enum TopUpError {
    /// No admin key, or the user's id is unknown (external mode).
    Unavailable,
    Http(reqwest::Error),
}

/// An HTTP answer as the webview gets it: the status and the body (JSON when it is JSON).
#[derive(Debug, Serialize)]
pub struct BackendAnswer {
    pub status: u16,
    pub body: serde_json::Value,
}

impl BackendAnswer {
    async fn read(response: reqwest::Response) -> Result<Self, reqwest::Error> {
        let status = response.status().as_u16();
        let bytes = response.bytes().await?;
        let body = serde_json::from_slice(&bytes).unwrap_or_else(|_| {
            serde_json::Value::String(String::from_utf8_lossy(&bytes).into_owned())
        });
        Ok(Self { status, body })
    }
}
