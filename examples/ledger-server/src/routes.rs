//! The HTTP surface: thin handlers that check who is calling, parse the request and hand it to
//! the [`Ledger`]. Checks run in the contract's order: token (401), request shape (400), key,
//! service and duration (422), idempotency (409/422), balance (402).

use std::sync::Arc;
use std::time::Instant;

use axum::body::Bytes;
use axum::extract::rejection::QueryRejection;
use axum::extract::{FromRequestParts, Query, Request, State};
use axum::http::request::Parts;
use axum::http::{header, HeaderMap};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde::{Deserialize, Serialize};
use time::OffsetDateTime;
use utoipa::{IntoParams, ToSchema};
use uuid::Uuid;

use crate::allowance::{AllowanceKey, AllowanceKeyList, AllowanceKeys, SignedAllowance};
use crate::auth::Auth;
use crate::ledger::{
    BatchList, ConsumeRequest, CostCheck, EntryPage, ExpiryReport, IdempotencyKey, Ledger, Receipt,
    RechargeReceipt, RechargeRequest, Summary, DEFAULT_PAGE, MAX_PAGE,
};
use crate::pricing::{Price, PricingMode};
use crate::problem::Problem;

/// The header that carries a consume's or a recharge's idempotency key.
pub const IDEMPOTENCY_KEY: &str = "idempotency-key";
/// The header that carries the admin key.
pub const ADMIN_KEY: &str = "x-admin-key";

/// What every handler shares.
#[derive(Debug, Clone)]
pub struct AppState {
    /// The money rules.
    pub ledger: Arc<Ledger>,
    /// Token and admin-key checks.
    pub auth: Arc<Auth>,
    /// The keys offline allowances are signed with.
    pub allowance_keys: Arc<AllowanceKeys>,
    /// The OpenAPI document served at `/openapi.json` (made by `openapi::document_for` for the
    /// price table in use; handed in, so that this module does not depend on the one that
    /// documents it).
    pub openapi: Arc<serde_json::Value>,
    /// What the balance streams share.
    pub stream: crate::stream::sse::StreamContext,
}

/// The whole API.
pub fn router(state: AppState) -> Router {
    Router::new()
        .route("/points/balance", get(balance))
        .route("/points/cost", get(cost))
        .route("/points/consume", post(consume))
        .route("/points/allowance", post(allowance))
        .route("/points/allowance-keys", get(allowance_keys))
        .route("/points/prices", get(prices))
        .route("/points/transactions", get(transactions))
        .route("/points/batches", get(batches))
        .route("/points/stream", get(stream))
        .route("/admin/recharge", post(admin_recharge))
        .route("/admin/expire", post(admin_expire))
        .route("/openapi.json", get(openapi))
        .fallback(|| async { Problem::not_found() })
        .layer(middleware::from_fn(log_request))
        .layer(middleware::from_fn(run_to_completion))
        .with_state(state)
}

/// Runs every request to its end even if the client goes away: hyper drops a request's future
/// when its connection closes, and a database call cut short can leave a connection inside a
/// transaction or close it (every later write then fails; an in-memory database is lost).
///
/// The body is read first, outside that task: a client that stops sending it holds nothing
/// once its request times out (no task waits for the rest of the body).
async fn run_to_completion(request: Request, next: Next) -> Response {
    let (parts, body) = request.into_parts();
    let body = match axum::body::to_bytes(body, usize::MAX).await {
        Ok(bytes) => bytes,
        Err(error) => return body_refusal(&error),
    };
    let request = Request::from_parts(parts, axum::body::Body::from(body));
    match tokio::spawn(next.run(request)).await {
        Ok(response) => response,
        Err(failure) => {
            tracing::error!(%failure, "a request's task failed");
            Problem::from(crate::LedgerError::Database(sqlx::Error::Protocol(
                failure.to_string(),
            )))
            .into_response()
        }
    }
}

/// 413 `payload_too_large` when the body went past the server's limit (see `http.rs`), else
/// 400 `invalid_request`.
fn body_refusal(error: &axum::Error) -> Response {
    let mut source: Option<&(dyn std::error::Error + 'static)> = Some(error);
    while let Some(cause) = source {
        if cause.is::<http_body_util::LengthLimitError>() {
            return Problem::new(
                axum::http::StatusCode::PAYLOAD_TOO_LARGE,
                "payload_too_large",
                "Payload too large",
                "the request body is larger than this ledger accepts",
            )
            .into_response();
        }
        source = cause.source();
    }
    Problem::invalid_request(format!("the request body could not be read: {error}")).into_response()
}

async fn log_request(request: Request, next: Next) -> Response {
    let method = request.method().clone();
    let path = request.uri().path().to_owned();
    let started = Instant::now();
    let response = next.run(request).await;
    tracing::debug!(%method, path, status = response.status().as_u16(), elapsed_us = started.elapsed().as_micros() as u64, "request");
    response
}

/// The user named by the request's bearer token.
#[derive(Debug, Clone, Copy)]
pub struct User(pub Uuid);

impl FromRequestParts<AppState> for User {
    type Rejection = Problem;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &AppState,
    ) -> Result<Self, Self::Rejection> {
        TokenUser::from_request_parts(parts, state)
            .await
            .map(|token| User(token.user))
    }
}

/// The user named by the request's bearer token, with the token's expiry.
#[derive(Debug, Clone, Copy)]
pub struct TokenUser {
    /// The token's `sub`.
    pub user: Uuid,
    /// The token's `exp`, in Unix seconds.
    pub expires_at: i64,
}

impl FromRequestParts<AppState> for TokenUser {
    type Rejection = Problem;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &AppState,
    ) -> Result<Self, Self::Rejection> {
        let header = parts
            .headers
            .get(header::AUTHORIZATION)
            .ok_or_else(|| Problem::unauthorized("an Authorization: Bearer token is required"))?;
        header
            .to_str()
            .ok()
            .and_then(|value| state.auth.user_and_expiry_of_header(value))
            .map(|(user, expires_at)| TokenUser { user, expires_at })
            .ok_or_else(|| Problem::unauthorized("the bearer token is invalid or expired"))
    }
}

/// A caller holding the admin key.
#[derive(Debug, Clone, Copy)]
pub struct Admin;

impl FromRequestParts<AppState> for Admin {
    type Rejection = Problem;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &AppState,
    ) -> Result<Self, Self::Rejection> {
        let key = parts
            .headers
            .get(ADMIN_KEY)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("");
        if state.auth.is_admin_key(key) {
            Ok(Admin)
        } else {
            Err(Problem::unauthorized(
                "the X-Admin-Key header is missing or wrong",
            ))
        }
    }
}

fn query<T>(parsed: Result<Query<T>, QueryRejection>) -> Result<T, Problem> {
    parsed
        .map(|Query(params)| params)
        .map_err(|e| Problem::invalid_request(e.body_text()))
}

fn json_body<T: serde::de::DeserializeOwned>(body: &Bytes) -> Result<T, Problem> {
    serde_json::from_slice(body).map_err(|e| Problem::invalid_request(format!("request body: {e}")))
}

/// The request's `Idempotency-Key`, or 422 `invalid_idempotency_key`.
fn idempotency_key(headers: &HeaderMap) -> Result<IdempotencyKey, Problem> {
    headers
        .get(IDEMPOTENCY_KEY)
        .and_then(|v| v.to_str().ok())
        .and_then(IdempotencyKey::parse)
        .ok_or_else(Problem::invalid_idempotency_key)
}

/// The user's summary row.
#[utoipa::path(get, path = "/points/balance", tag = "points", security(("bearer" = [])),
    responses(
        (status = 200, description = "The summary row", body = Summary),
        (status = 401, description = "`unauthorized`", body = Problem, content_type = "application/problem+json"),
    ))]
pub async fn balance(
    State(state): State<AppState>,
    User(user): User,
) -> Result<Json<Summary>, Problem> {
    Ok(Json(state.ledger.summary(user).await?))
}

/// Query of `GET /points/cost`.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct CostParams {
    /// The service to price (a name from `GET /points/prices`).
    #[param(min_length = 1, max_length = 64, pattern = "^[a-z0-9_]+$")]
    pub service: String,
    /// Seconds of media; required for `duration` services (finite, > 0, ≤ 86400), ignored for
    /// the others.
    pub duration: Option<f64>,
}

/// Prices one use of a service and says whether the balance covers it.
#[utoipa::path(get, path = "/points/cost", tag = "points", security(("bearer" = [])), params(CostParams),
    responses(
        (status = 200, description = "The price and the pre-check", body = CostCheck),
        (status = 400, description = "`invalid_request`", body = Problem, content_type = "application/problem+json"),
        (status = 401, description = "`unauthorized`", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "`unknown_service` or `invalid_duration`", body = Problem, content_type = "application/problem+json"),
    ))]
pub async fn cost(
    State(state): State<AppState>,
    User(user): User,
    params: Result<Query<CostParams>, QueryRejection>,
) -> Result<Json<CostCheck>, Problem> {
    let params = query(params)?;
    Ok(Json(
        state
            .ledger
            .cost(user, &params.service, params.duration)
            .await?,
    ))
}

/// Body of `POST /points/consume`.
#[derive(Debug, Deserialize, ToSchema)]
pub struct ConsumeBody {
    /// The service used (a name from `GET /points/prices`).
    #[schema(min_length = 1, max_length = 64, pattern = "^[a-z0-9_]+$")]
    pub service: String,
    /// Seconds of media; required for `duration` services (finite, > 0, ≤ 86400), ignored otherwise.
    #[serde(default)]
    pub duration: Option<f64>,
    /// Apply the charge even if the balance goes negative (for work already done). Default false.
    #[serde(default)]
    pub allow_debt: Option<bool>,
    /// The client's own reference, stored with the transaction: at most 1024 characters (so any
    /// reference of at most 1 KiB of UTF-8), else 422 `reference_too_long`.
    #[serde(default)]
    #[schema(max_length = 1024)]
    pub reference: Option<String>,
    /// The offline allowance (`POST /points/allowance`) this charge settles work done under.
    /// Not part of what "the same request" compares. A new charge naming one is applied with
    /// debt allowed up to what is left of it (whatever `allow_debt` says), also during the
    /// grace period after its `not_after` (30 days by default); else 422
    /// `allowance_not_found`, `allowance_expired` or `allowance_exhausted`, writing nothing.
    #[serde(default)]
    #[schema(
        value_type = Option<String>,
        format = Uuid,
        pattern = "^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$"
    )]
    pub allowance_id: Option<Uuid>,
}

/// Charges one use of a service, at most once per `Idempotency-Key`.
///
/// The same key with the same body returns the first answer with `replayed: true`; with another
/// body, 422 `idempotency_conflict`; while the first request is in flight, 409. A 402 writes
/// nothing and leaves the key unused. Free services write nothing (`transaction_id: null`).
///
/// With `allowance_id`, the charge settles work done under that offline allowance: after the key
/// checks (a replay is replayed whatever became of the allowance), the allowance must be the
/// user's (else 422 `allowance_not_found`), not past its `not_after` plus the grace period (30
/// days by default; else 422 `allowance_expired`), and cover the price with what is left of it
/// (else 422 `allowance_exhausted`); the charge is then applied with debt allowed. Nothing is
/// written on a refusal.
///
/// Keys are scoped to the user and to this route: the keys of `POST /admin/recharge` are
/// another namespace. A key is kept as long as the transaction it produced, which is for ever:
/// a client may re-send a charge after any time offline and gets its replay.
#[utoipa::path(post, path = "/points/consume", tag = "points", security(("bearer" = [])),
    params(("Idempotency-Key" = String, Header, description = "1 to 255 printable ASCII characters without space, scoped to the user and to consumes; kept for ever",
        min_length = 1, max_length = 255, pattern = "^[\\x21-\\x7E]+$")),
    request_body = ConsumeBody,
    responses(
        (status = 200, description = "Charged, replayed, or free", body = Receipt),
        (status = 400, description = "`invalid_request`", body = Problem, content_type = "application/problem+json"),
        (status = 401, description = "`unauthorized`", body = Problem, content_type = "application/problem+json"),
        (status = 402, description = "`insufficient_points`, with `service`, `required` and `balance`", body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "`idempotency_conflict`: the key is in flight", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "`invalid_idempotency_key`, `unknown_service`, `invalid_duration`, `idempotency_conflict` (key used with another body, also for a free service), `reference_too_long` (over 1024 characters), `amount_out_of_range` (the balance or a total would leave ±(2^53 − 1)), `allowance_not_found` (the `allowance_id` is not this user's), `allowance_expired` (past its `not_after` and the grace period) or `allowance_exhausted` (the price is more than what is left of the allowance)", body = Problem, content_type = "application/problem+json"),
    ))]
pub async fn consume(
    State(state): State<AppState>,
    User(user): User,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Json<Receipt>, Problem> {
    let body: ConsumeBody = json_body(&body)?;
    let key = idempotency_key(&headers)?;
    let request = ConsumeRequest {
        service: body.service,
        duration: body.duration,
        allow_debt: body.allow_debt.unwrap_or(false),
        reference: body.reference,
    };
    Ok(Json(match body.allowance_id {
        None => state.ledger.consume(user, &request, &key).await?,
        Some(allowance) => {
            state
                .ledger
                .consume_under(user, &request, &key, allowance)
                .await?
        }
    }))
}

/// Body of `POST /points/allowance`.
#[derive(Debug, Deserialize, ToSchema)]
pub struct AllowanceBody {
    /// The device the allowance is for: 1 to 128 characters of `[A-Za-z0-9._:-]` (else 400
    /// `invalid_request`).
    #[schema(min_length = 1, max_length = 128, pattern = "^[A-Za-z0-9._:-]+$")]
    pub device_id: String,
}

/// Issues a signed offline allowance to one device of the user: points the ledger promises to
/// accept for work done while it cannot be reached.
///
/// The allowance covers `min(balance, cap)` points (cap 100 by default; 0 when the balance is 0
/// or less, still issued) until `not_after` = `issued_at` + the window (72 h = 259200 s by
/// default); consumes naming its `allowance_id` are accepted until `not_after` plus the grace
/// period (30 days = 2592000 s by default). One live allowance per (user, device): a new one
/// supersedes the last, whose unspent points are released (a further charge under it is 422
/// `allowance_exhausted`; replays of charges settled under it are still replayed). Issuing
/// writes no journal entry and does not change the balance.
///
/// `signature` is the Ed25519 signature, base64url without padding, of the UTF-8 of these
/// lines joined by `\n` (no trailing newline): `points-allowance/v1`, `allowance_id`, `user_id`,
/// `device_id`, `points`, `issued_at`, `not_after`, `server_time`, `key_id` (integers in
/// decimal). Verify it with a key of `GET /points/allowance-keys` pinned in the client's
/// configuration.
#[utoipa::path(post, path = "/points/allowance", tag = "points", security(("bearer" = [])),
    params(("Idempotency-Key" = Option<String>, Header, description = "Optional; 1 to 255 printable ASCII characters without space, scoped to the user and to allowances; kept for ever. The same key again answers the allowance it issued (re-signed, the same bytes), superseding nothing: a client retrying a request whose answer was lost never has the allowance it holds released by its own retry. Used for another device: 422 `idempotency_conflict`",
        min_length = 1, max_length = 255, pattern = "^[\\x21-\\x7E]+$")),
    request_body = AllowanceBody,
    responses(
        (status = 200, description = "The signed allowance", body = SignedAllowance),
        (status = 400, description = "`invalid_request` (unparseable body, or a `device_id` that is not 1 to 128 of `[A-Za-z0-9._:-]`)", body = Problem, content_type = "application/problem+json"),
        (status = 401, description = "`unauthorized`", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "`invalid_idempotency_key` (an `Idempotency-Key` that is not 1 to 255 printable ASCII characters without space) or `idempotency_conflict` (the key was used for another device)", body = Problem, content_type = "application/problem+json"),
        (status = 501, description = "`allowance_unavailable`: this ledger has no allowance key and issues no allowance", body = Problem, content_type = "application/problem+json"),
    ))]
pub async fn allowance(
    State(state): State<AppState>,
    User(user): User,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Json<SignedAllowance>, Problem> {
    let key = match headers.get(IDEMPOTENCY_KEY) {
        Some(_) => Some(idempotency_key(&headers)?),
        None => None,
    };
    let key_id = state
        .allowance_keys
        .signing_key_id()
        .ok_or(crate::LedgerError::AllowanceUnavailable)?;
    let body: AllowanceBody = json_body(&body)?;
    let grant = state
        .ledger
        .issue_allowance(user, &body.device_id, key_id, key.as_ref())
        .await?;
    let signed = state
        .allowance_keys
        .sign(grant)
        .ok_or(crate::LedgerError::AllowanceUnavailable)?;
    Ok(Json(signed))
}

/// The public keys of offline allowances, by `key_id`, the one signing now first. A client
/// pins the keys it trusts in its configuration; this list tells an operator what to pin (a
/// new key is served before the ledger signs with it).
#[utoipa::path(get, path = "/points/allowance-keys", tag = "points", security(("bearer" = [])),
    responses(
        (status = 200, description = "Every key (empty when the ledger issues no allowance)", body = AllowanceKeyList),
        (status = 401, description = "`unauthorized`", body = Problem, content_type = "application/problem+json"),
    ))]
pub async fn allowance_keys(State(state): State<AppState>, _user: User) -> Json<AllowanceKeyList> {
    let keys = state
        .allowance_keys
        .public_keys()
        .into_iter()
        .map(|(key_id, public_key)| AllowanceKey { key_id, public_key })
        .collect();
    Json(AllowanceKeyList { keys })
}

/// One service of the price table.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct ServicePrice {
    /// The service's name.
    pub service: String,
    /// How it is priced.
    pub mode: PricingMode,
    /// Points per call, for `fixed` services.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub points: Option<i64>,
    /// Points per started second, for `duration` services.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub points_per_second: Option<f64>,
}

/// The price table.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct PriceList {
    /// One entry per service, by name.
    pub services: Vec<ServicePrice>,
}

/// The price table, for display.
#[utoipa::path(get, path = "/points/prices", tag = "points", security(("bearer" = [])),
    responses(
        (status = 200, description = "Every service with its mode and rate", body = PriceList),
        (status = 401, description = "`unauthorized`", body = Problem, content_type = "application/problem+json"),
    ))]
pub async fn prices(State(state): State<AppState>, _user: User) -> Json<PriceList> {
    let services = state
        .ledger
        .pricing()
        .iter()
        .map(|(service, price)| ServicePrice {
            service: service.to_owned(),
            mode: price.mode(),
            points: match price {
                Price::Fixed { points } => Some(*points),
                _ => None,
            },
            points_per_second: match price {
                Price::Duration { points_per_second } => Some(*points_per_second),
                _ => None,
            },
        })
        .collect();
    Json(PriceList { services })
}

/// Query of `GET /points/transactions`.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct TransactionParams {
    /// Entries per page, 1 to 200 (default 50).
    #[param(minimum = 1, maximum = 200)]
    pub limit: Option<u32>,
    /// `next_cursor` of the previous page.
    #[param(min_length = 1, max_length = 18, pattern = "^[1-9][0-9]{0,17}$")]
    pub before: Option<String>,
}

/// The user's history, newest first.
#[utoipa::path(get, path = "/points/transactions", tag = "points", security(("bearer" = [])), params(TransactionParams),
    responses(
        (status = 200, description = "A page of recharge, consume and expire entries", body = EntryPage),
        (status = 400, description = "`invalid_request` (bad limit or cursor)", body = Problem, content_type = "application/problem+json"),
        (status = 401, description = "`unauthorized`", body = Problem, content_type = "application/problem+json"),
    ))]
pub async fn transactions(
    State(state): State<AppState>,
    User(user): User,
    params: Result<Query<TransactionParams>, QueryRejection>,
) -> Result<Json<EntryPage>, Problem> {
    let params = query(params)?;
    let limit = params.limit.unwrap_or(DEFAULT_PAGE);
    if !(1..=MAX_PAGE).contains(&limit) {
        return Err(Problem::invalid_request(format!(
            "limit must be 1 to {MAX_PAGE}"
        )));
    }
    Ok(Json(
        state
            .ledger
            .transactions(user, limit, params.before.as_deref())
            .await?,
    ))
}

/// The user's live recharge batches, soonest expiry first.
#[utoipa::path(get, path = "/points/batches", tag = "points", security(("bearer" = [])),
    responses(
        (status = 200, description = "Batches with points left that have not expired", body = BatchList),
        (status = 401, description = "`unauthorized`", body = Problem, content_type = "application/problem+json"),
    ))]
pub async fn batches(
    State(state): State<AppState>,
    User(user): User,
) -> Result<Json<BatchList>, Problem> {
    Ok(Json(state.ledger.batches(user).await?))
}

/// The user's balance as Server-Sent Events: one event per journal change, resumable.
///
/// Answers `200 text/event-stream` (`Cache-Control: no-cache`, `X-Accel-Buffering: no`).
/// Events (UTF-8, `\n` line ends), the SSE `id` being the `seq`:
///
/// ```text
/// id: 42
/// event: balance
/// data: {"user_id":"…","balance":10,"total_recharged":100,"total_consumed":85,"total_expired":5,"seq":42,"change":{"kind":"consume","points":5,"service":"tts"}}
/// ```
///
/// `data` is a `BalanceEvent`: the summary of `GET /points/balance` as of `seq`, and `change`, the
/// journal entry that produced `seq` (`points` its magnitude, `service` for a consume), or `null`
/// for a snapshot.
///
/// - First events: without `Last-Event-ID`, one snapshot (`change: null`, id = the current seq;
///   seq 0 and zeros for a user without an entry). With `Last-Event-ID: s`, every entry with
///   `seq > s` in order, each with the summary as of it, at most 1000 (the replay limit); if more
///   were missed, one snapshot of the current summary instead (a seq jump: the figure is whole).
///   If `s` is the current seq or later, nothing is replayed.
/// - Then one `balance` event per journal change of the user from any writer (this process,
///   another ledger process on the same database, the expiry sweep), strictly increasing `seq`,
///   never twice.
/// - Heartbeat: a comment line `: ping` after 10 s without an event (configurable; at most 15 s).
/// - `event: end` with `data: {"reason": R}`, then the server closes: `token_expired` at the
///   token's `exp` (reconnect with a new token); `too_many_streams` to the oldest stream of a user
///   who opens more than 8 (configurable); `shutdown` when the server stops; `slow_reader`, best
///   effort: a reader that leaves 64 events unread is simply disconnected. Clients reconnect with
///   `Last-Event-ID` after any end but `token_expired`.
/// - Limits: at most 512 streams in all (configurable; past it 503 `too_many_streams`, try again
///   later or poll); `Last-Event-ID` at most 19 digits.
///
/// A backend without this route answers 404, 405 or 501: clients then poll `GET /points/balance`.
#[utoipa::path(get, path = "/points/stream", tag = "points", security(("bearer" = [])),
    params(("Last-Event-ID" = Option<String>, Header, description = "The `id` (seq) of the last event received: resume after it. A decimal integer 0 to 2^63 − 1; anything else is 400 `invalid_last_event_id`",
        min_length = 1, max_length = 19, pattern = "^[0-9]{1,19}$")),
    responses(
        (status = 200, description = "The stream: `balance` events (data: `BalanceEvent`), `: ping` heartbeats, an `end` event (data: `StreamEnd`) before the server closes", content_type = "text/event-stream", body = String,
            headers(("Cache-Control" = String, description = "`no-cache`"), ("X-Accel-Buffering" = String, description = "`no`"))),
        (status = 400, description = "`invalid_last_event_id`", body = Problem, content_type = "application/problem+json"),
        (status = 401, description = "`unauthorized`", body = Problem, content_type = "application/problem+json"),
        (status = 503, description = "`too_many_streams`: the ledger holds as many streams as it may; retry later or poll `GET /points/balance`", body = Problem, content_type = "application/problem+json"),
    ))]
pub async fn stream(
    State(state): State<AppState>,
    token: TokenUser,
    headers: HeaderMap,
    connection: Option<axum::Extension<crate::http::Connection>>,
) -> Result<Response, Problem> {
    let last_event_id = match headers.get(crate::stream::sse::LAST_EVENT_ID) {
        None => None,
        Some(value) => Some(
            crate::stream::sse::parse_last_event_id(value.as_bytes())
                .ok_or_else(Problem::invalid_last_event_id)?,
        ),
    };
    crate::stream::sse::open(
        &state.stream,
        token.user,
        token.expires_at,
        last_event_id,
        connection.map(|axum::Extension(connection)| connection),
    )
    .await
}

/// Body of `POST /admin/recharge`.
#[derive(Debug, Deserialize, ToSchema)]
pub struct RechargeBody {
    /// The user to recharge.
    pub user_id: Uuid,
    /// Points to add: 1 to 2^53 − 1, and the user's balance and total recharged must stay within
    /// 2^53 − 1 (else 422 `amount_out_of_range`).
    #[schema(minimum = 1, maximum = 9_007_199_254_740_991_i64)]
    #[serde(deserialize_with = "whole_number")]
    pub points: i64,
    /// When the batch's remaining points expire (RFC 3339, in the future).
    #[serde(with = "time::serde::rfc3339")]
    #[schema(value_type = String, format = DateTime)]
    pub expires_at: OffsetDateTime,
}

/// A JSON integer: `40`, or a number with no fractional part such as `40.0` or `4e1` (JSON Schema
/// calls those integers too).
fn whole_number<'de, D: serde::Deserializer<'de>>(deserializer: D) -> Result<i64, D::Error> {
    use serde::de::Error;
    match serde_json::Number::deserialize(deserializer)? {
        n if n.is_i64() => Ok(n.as_i64().unwrap_or_default()),
        n => match n.as_f64() {
            // 2^63 is the first float past i64::MAX; the cast of a smaller whole float is exact.
            Some(f) if f.fract() == 0.0 && f.abs() < 9_223_372_036_854_775_808.0 => Ok(f as i64),
            _ => Err(D::Error::custom(format!(
                "expected a whole number of points from -2^63 to 2^63 - 1, got {n}"
            ))),
        },
    }
}

/// Recharges a user with a new batch, at most once per `Idempotency-Key`. Server to server, with
/// the admin key.
///
/// The key follows the rules of `POST /points/consume`, scoped to the user and to recharges (a
/// consume's keys are another namespace): the same key with the same body (same points, same
/// expiry instant) returns the first answer with `replayed: true`, however late it comes; with
/// another body, 422 `idempotency_conflict`; while the first request is in flight, 409. A key is
/// kept as long as the transaction it produced, which is for ever.
#[utoipa::path(post, path = "/admin/recharge", tag = "admin", security(("admin_key" = [])),
    params(("Idempotency-Key" = String, Header, description = "1 to 255 printable ASCII characters without space, scoped to the user and to recharges (e.g. the payment's id); kept for ever",
        min_length = 1, max_length = 255, pattern = "^[\\x21-\\x7E]+$")),
    request_body = RechargeBody,
    responses(
        (status = 200, description = "The batch was added (debt is paid first), or the replayed answer", body = RechargeReceipt),
        (status = 400, description = "`invalid_request` (unparseable body, points below 1, `expires_at` not in the future; the expiry is checked after the key, so a retry of a recharge already applied is replayed however late it comes)", body = Problem, content_type = "application/problem+json"),
        (status = 401, description = "`unauthorized`", body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "`idempotency_conflict`: the key is in flight", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "`invalid_idempotency_key`, `idempotency_conflict` (key used with another body) or `amount_out_of_range`", body = Problem, content_type = "application/problem+json"),
    ))]
pub async fn admin_recharge(
    State(state): State<AppState>,
    _admin: Admin,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Json<RechargeReceipt>, Problem> {
    let body: RechargeBody = json_body(&body)?;
    let key = idempotency_key(&headers)?;
    let request = RechargeRequest {
        points: body.points,
        expires_at: body.expires_at,
    };
    Ok(Json(
        state
            .ledger
            .recharge_once(body.user_id, &request, &key)
            .await?,
    ))
}

/// Expires every due batch now, as the scheduled sweep does.
#[utoipa::path(post, path = "/admin/expire", tag = "admin", security(("admin_key" = [])),
    responses(
        (status = 200, description = "What was reclaimed", body = ExpiryReport),
        (status = 401, description = "`unauthorized`", body = Problem, content_type = "application/problem+json"),
    ))]
pub async fn admin_expire(
    State(state): State<AppState>,
    _admin: Admin,
) -> Result<Json<ExpiryReport>, Problem> {
    Ok(Json(state.ledger.expire_all().await?))
}

/// This API's OpenAPI 3.1 document.
#[utoipa::path(get, path = "/openapi.json", tag = "meta",
    responses((status = 200, description = "The OpenAPI document", content_type = "application/json")))]
pub async fn openapi(State(state): State<AppState>) -> impl IntoResponse {
    Json(state.openapi.as_ref().clone())
}
