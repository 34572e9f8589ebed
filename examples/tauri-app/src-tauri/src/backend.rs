//! Where the points live: the reference ledger run in-process (the default), or an external
//! ledger named by the environment. Also "the app's backend": the calls a real app's server makes
//! itself (a video job it charges, a top-up), done here over HTTP against the same ledger.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{LazyLock, Mutex as SyncMutex};

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

/// The idempotency keys of the app's backend calls that the ledger has not answered for good
/// yet, by the request they carry. The same request made again after no answer (a timeout, a
/// dropped connection, a 5xx, a 409 while the first is in flight) is sent under the same key,
/// so the ledger replays the first charge or credit instead of applying a second one. A
/// definitive answer (2xx, or a 4xx that is not 408, 409 or 429) frees the request: the next
/// one is a new job with a new key.
static PENDING: LazyLock<PendingKeys> = LazyLock::new(PendingKeys::default);

/// See [`PENDING`].
#[derive(Default)]
struct PendingKeys(SyncMutex<HashMap<String, String>>);

impl PendingKeys {
    /// The job id of `request`: the one already pending for it, or a new one.
    fn job_for(&self, request: &str) -> String {
        self.0
            .lock()
            .expect("pending keys lock")
            .entry(request.to_owned())
            .or_insert_with(|| Uuid::new_v4().to_string())
            .clone()
    }

    /// Frees `request` when `status` is the ledger's definitive answer to it.
    fn settle(&self, request: &str, status: u16) {
        if is_definitive(status) {
            self.0.lock().expect("pending keys lock").remove(request);
        }
    }
}

/// Whether an HTTP status is the ledger's last word on a request: a success, or a refusal
/// that a retry would get again. Not 408, 409 (still in flight), 429 or 5xx.
fn is_definitive(status: u16) -> bool {
    (200..300).contains(&status)
        || ((400..500).contains(&status) && ![408, 409, 429].contains(&status))
}

/// The idempotency key of the video job `job_id`.
fn video_key(job_id: &str) -> String {
    format!("video-{job_id}")
}

/// The idempotency key of the top-up `request_id` (a payment's id on a real backend).
fn top_up_key(request_id: &str) -> String {
    format!("top-up-{request_id}")
}

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
        /// Its allowance keys, `(key_id, public key)`.
        allowance_keys: Vec<(String, String)>,
        base_url: String,
        admin_key: String,
        users: Vec<User>,
        bench_user: User,
    },
    /// A ledger named by `POINTS_API_URL` / `POINTS_TOKEN`.
    External {
        base_url: String,
        user: User,
        /// A second user to switch to (`POINTS_OTHER_TOKEN` / `POINTS_OTHER_ACCOUNT`), e.g. for
        /// the end-to-end test of a change of account while the ledger's stream is open.
        other: Option<User>,
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
    /// The ledger's allowance signing key, `KEY_ID:SEED` (made at the first start; an identity
    /// written before offline allowances gets one at its next start).
    #[serde(default)]
    allowance_key: Option<String>,
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
    let user = external_user(token, std::env::var("POINTS_ACCOUNT").ok(), "you");
    let other = match std::env::var("POINTS_OTHER_TOKEN") {
        Ok(token) => Some(external_user(
            token,
            std::env::var("POINTS_OTHER_ACCOUNT").ok(),
            "other",
        )),
        Err(_) => None,
    };
    Ok(Some(Backend::External {
        base_url: base_url.trim_end_matches('/').to_owned(),
        user,
        other,
        admin_key: std::env::var("POINTS_ADMIN_KEY").ok(),
    }))
}

/// A fresh allowance signing key, `KEY_ID:SEED` (base64url).
fn new_allowance_key() -> String {
    use base64::Engine;
    let (key_id, key) = points_ledger::allowance::random_key("example");
    format!(
        "{key_id}:{}",
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(key.to_bytes())
    )
}

fn write_identity(path: &Path, identity: &DemoIdentity) -> Result<(), StartError> {
    let temporary = path.with_extension("json.tmp");
    std::fs::write(&temporary, serde_json::to_vec_pretty(identity)?)?;
    std::fs::rename(&temporary, path)?;
    Ok(())
}

/// A user of an external ledger: named by its account (else `fallback`), with the ledger's user
/// id when the account is one.
fn external_user(token: String, account: Option<String>, fallback: &str) -> User {
    User {
        name: account.clone().unwrap_or_else(|| fallback.to_owned()),
        id: account.as_deref().and_then(|a| Uuid::parse_str(a).ok()),
        // Without an account, the plugin's own rule applies (the token's JWT subject).
        account,
        token,
    }
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
                    allowance_key: Some(new_allowance_key()),
                };
                (identity, true)
            }
            Err(error) => return Err(error.into()),
        };
        let mut identity = identity;
        let rewrite = identity.allowance_key.is_none();
        let allowance_key = identity
            .allowance_key
            .get_or_insert_with(new_allowance_key)
            .clone();
        let database: PathBuf = data_dir.join("ledger.sqlite");
        let config = LedgerConfig::ephemeral()
            .with_database_url(format!("sqlite:{}?mode=rwc", database.display()))
            .with_secrets(identity.jwt_secret.clone(), identity.admin_key.clone())
            .with_cors_any_origin(bench)
            .with_allowance_keys(points_ledger::allowance::parse_keys(&allowance_key)?);
        let ledger = points_ledger::serve(config).await?;
        if rewrite && !first_start {
            write_identity(&identity_path, &identity)?;
        }
        if first_start {
            let expires_at = time::OffsetDateTime::now_utc() + time::Duration::days(DEMO_DAYS);
            for user in &identity.users {
                ledger.recharge(user.id, DEMO_POINTS, expires_at).await?;
            }
            ledger
                .recharge(identity.bench_user, BENCH_POINTS, expires_at)
                .await?;
            // Written last: a start that failed before this point starts afresh next time.
            write_identity(&identity_path, &identity)?;
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
            allowance_keys: ledger.allowance_public_keys(),
            ledger: Mutex::new(Some(ledger)),
            users,
            bench_user,
        })
    }

    /// The ledger's allowance keys to pin, `(key_id, public key)`: the embedded ledger's own, or
    /// `POINTS_OFFLINE_KEYS` (`KEY_ID:PUBLIC_KEY,...`) for an external one.
    pub fn allowance_keys(&self) -> Vec<(String, String)> {
        match self {
            Backend::Embedded { allowance_keys, .. } => allowance_keys.clone(),
            Backend::External { .. } => std::env::var("POINTS_OFFLINE_KEYS")
                .unwrap_or_default()
                .split(',')
                .filter_map(|item| item.trim().split_once(':'))
                .map(|(id, key)| (id.to_owned(), key.to_owned()))
                .collect(),
        }
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
            Backend::External { user, other, .. } => {
                std::iter::once(user).chain(other).cloned().collect()
            }
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
    ///
    /// The job's id (and so its idempotency key) is kept until the ledger answers it for good:
    /// the same video submitted again after no answer is the same job, charged once. Callers
    /// that have a job id of their own use [`Backend::submit_video_job`].
    pub async fn submit_video(
        &self,
        http: &reqwest::Client,
        user: &User,
        duration: f64,
    ) -> Result<BackendAnswer, reqwest::Error> {
        let request = format!("video:{}:{}", user_key(user), duration.to_bits());
        let job_id = PENDING.job_for(&request);
        let answer = self.submit_video_job(http, user, &job_id, duration).await;
        if let Ok(answer) = &answer {
            PENDING.settle(&request, answer.status);
        }
        answer
    }

    /// [`Backend::submit_video`] for the caller's job `job_id` (printable ASCII, no space, at
    /// most 240 characters): the ledger charges each job once, however often it is sent.
    pub async fn submit_video_job(
        &self,
        http: &reqwest::Client,
        user: &User,
        job_id: &str,
        duration: f64,
    ) -> Result<BackendAnswer, reqwest::Error> {
        let body = serde_json::json!({ "service": "video", "duration": duration });
        let response = http
            .post(format!("{}/points/consume", self.base_url()))
            .bearer_auth(&user.token)
            .header("Idempotency-Key", video_key(job_id))
            .header("Content-Type", "application/json")
            .body(body.to_string())
            .send()
            .await?;
        BackendAnswer::read(response).await
    }

    /// Adds `points` expiring in [`DEMO_DAYS`] days to `user` through the ledger's admin route
    /// (what a payment webhook does on a real backend; the plugin itself never recharges).
    ///
    /// Like [`Backend::submit_video`], the top-up's id is kept until the ledger answers it for
    /// good: a top-up re-sent after no answer credits once. Callers with a request id of their
    /// own (a payment's id) use [`Backend::top_up_request`].
    pub async fn top_up(
        &self,
        http: &reqwest::Client,
        user: &User,
        points: i64,
    ) -> Result<BackendAnswer, TopUpError> {
        let request = format!("top-up:{}:{points}", user_key(user));
        let request_id = PENDING.job_for(&request);
        let answer = self.top_up_request(http, user, &request_id, points).await;
        if let Ok(answer) = &answer {
            PENDING.settle(&request, answer.status);
        }
        answer
    }

    /// [`Backend::top_up`] for the caller's request `request_id` (printable ASCII, no space, at
    /// most 240 characters): the ledger credits each request once, however often it is sent.
    /// The batch's expiry is fixed when the request is first seen, so that a retry is the same
    /// request.
    pub async fn top_up_request(
        &self,
        http: &reqwest::Client,
        user: &User,
        request_id: &str,
        points: i64,
    ) -> Result<BackendAnswer, TopUpError> {
        let (Some(admin_key), Some(id)) = (self.admin_key(), user.id) else {
            return Err(TopUpError::Unavailable);
        };
        let expires_at = top_up_expiry(request_id)
            .format(&time::format_description::well_known::Rfc3339)
            .map_err(|_| TopUpError::Unavailable)?;
        let body = serde_json::json!({ "user_id": id, "points": points, "expires_at": expires_at });
        let response = http
            .post(format!("{}/admin/recharge", self.base_url()))
            .header("X-Admin-Key", admin_key)
            .header("Idempotency-Key", top_up_key(request_id))
            .header("Content-Type", "application/json")
            .body(body.to_string())
            .send()
            .await
            .map_err(TopUpError::Http)?;
        let answer = BackendAnswer::read(response)
            .await
            .map_err(TopUpError::Http)?;
        if is_definitive(answer.status) {
            TOP_UP_EXPIRY
                .lock()
                .expect("top-up expiry lock")
                .remove(request_id);
        }
        Ok(answer)
    }
}

/// The expiry each top-up request was first sent with, until the ledger answers it: the
/// ledger compares a retry's body with the first one's, `expires_at` included.
static TOP_UP_EXPIRY: LazyLock<SyncMutex<HashMap<String, time::OffsetDateTime>>> =
    LazyLock::new(Default::default);

/// [`DEMO_DAYS`] days from when the top-up `request_id` was first sent (to the second).
fn top_up_expiry(request_id: &str) -> time::OffsetDateTime {
    *TOP_UP_EXPIRY
        .lock()
        .expect("top-up expiry lock")
        .entry(request_id.to_owned())
        .or_insert_with(|| {
            let at = time::OffsetDateTime::now_utc() + time::Duration::days(DEMO_DAYS);
            at.replace_nanosecond(0).unwrap_or(at)
        })
}

/// Who a pending request belongs to: the ledger's user id, else the account, else the name.
fn user_key(user: &User) -> String {
    match (&user.id, &user.account) {
        (Some(id), _) => id.to_string(),
        (None, Some(account)) => account.clone(),
        (None, None) => user.name.clone(),
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

#[cfg(test)]
mod tests {
    use super::*;

    /// An external backend on a reference ledger in this process, and a user with points.
    async fn backend() -> (RunningLedger, Backend, User) {
        let ledger = points_ledger::serve(LedgerConfig::ephemeral())
            .await
            .unwrap();
        let id = Uuid::new_v4();
        let expires_at = time::OffsetDateTime::now_utc() + time::Duration::days(1);
        ledger.recharge(id, 1000, expires_at).await.unwrap();
        let user = User {
            name: "test".into(),
            id: Some(id),
            account: Some(id.to_string()),
            token: ledger.token_for(id),
        };
        let backend = Backend::External {
            base_url: ledger.base_url(),
            user: user.clone(),
            other: None,
            admin_key: Some(ledger.admin_key().to_owned()),
        };
        (ledger, backend, user)
    }

    async fn balance(ledger: &RunningLedger, user: &User) -> i64 {
        ledger
            .ledger()
            .summary(user.id.unwrap())
            .await
            .unwrap()
            .balance
    }

    #[tokio::test]
    async fn a_video_job_sent_twice_is_charged_once() {
        let (ledger, backend, user) = backend().await;
        let http = reqwest::Client::new();
        let first = backend
            .submit_video_job(&http, &user, "job-1", 2.0)
            .await
            .unwrap();
        let again = backend
            .submit_video_job(&http, &user, "job-1", 2.0)
            .await
            .unwrap();
        assert_eq!((first.status, again.status), (200, 200));
        assert_eq!(again.body["replayed"], true, "{:?}", again.body);
        assert_eq!(balance(&ledger, &user).await, 1000 - 20);
        // Another job is another charge.
        backend
            .submit_video_job(&http, &user, "job-2", 2.0)
            .await
            .unwrap();
        assert_eq!(balance(&ledger, &user).await, 1000 - 40);
        ledger.shutdown().await;
    }

    #[tokio::test]
    async fn a_top_up_sent_twice_credits_once() {
        let (ledger, backend, user) = backend().await;
        let http = reqwest::Client::new();
        // The expiry the first send fixes for the request.
        let expiry = top_up_expiry("pay-1");
        let first = backend
            .top_up_request(&http, &user, "pay-1", 50)
            .await
            .unwrap();
        assert_eq!(first.status, 200, "{:?}", first.body);
        // The answer was lost on its way (the request is still pending): the same payment is
        // sent again and replayed.
        TOP_UP_EXPIRY.lock().unwrap().insert("pay-1".into(), expiry);
        let again = backend
            .top_up_request(&http, &user, "pay-1", 50)
            .await
            .unwrap();
        assert_eq!(again.status, 200, "{:?}", again.body);
        assert_eq!(again.body["replayed"], true);
        // Sent once more after a definitive answer: refused as a conflict, never credited.
        let late = backend
            .top_up_request(&http, &user, "pay-1", 50)
            .await
            .unwrap();
        assert!([200, 422].contains(&late.status), "{:?}", late.body);
        assert_eq!(balance(&ledger, &user).await, 1050);
        ledger.shutdown().await;
    }

    /// With no answer from the ledger, the same request keeps its job id (and key); a
    /// definitive answer frees it, and the next request is a new job.
    #[tokio::test]
    async fn a_request_keeps_its_key_until_the_ledger_answers() {
        let (ledger, backend, user) = backend().await;
        let http = reqwest::Client::new();
        // A ledger that accepts the connection and closes it without an answer.
        let silent = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let silent_url = format!("http://{}", silent.local_addr().unwrap());
        tokio::spawn(async move {
            while let Ok((stream, _)) = silent.accept().await {
                drop(stream);
            }
        });
        let unreachable = Backend::External {
            base_url: silent_url,
            user: user.clone(),
            other: None,
            admin_key: None,
        };
        let request = format!("video:{}:{}", user_key(&user), 3.0f64.to_bits());
        assert!(unreachable.submit_video(&http, &user, 3.0).await.is_err());
        let pending = PENDING.job_for(&request);
        assert!(unreachable.submit_video(&http, &user, 3.0).await.is_err());
        assert_eq!(PENDING.job_for(&request), pending, "a retry got a new key");
        // The ledger answers the retry: charged once, under the pending job's key.
        let answer = backend.submit_video(&http, &user, 3.0).await.unwrap();
        assert_eq!(answer.status, 200);
        let history = ledger
            .ledger()
            .transactions(user.id.unwrap(), 10, None)
            .await
            .unwrap();
        assert_eq!(
            history.items[0].idempotency_key.as_deref(),
            Some(video_key(&pending).as_str())
        );
        // Answered: the next video of that length is a new job.
        assert_ne!(PENDING.job_for(&request), pending);
        assert!(
            is_definitive(402) && is_definitive(422) && !is_definitive(409) && !is_definitive(503)
        );
        ledger.shutdown().await;
    }
}
