//! The ledger client SDK: one method per route of the points ledger contract.
//!
//! Nothing here knows Tauri; it runs in any tokio program. The session token is read from a
//! [`TokenProvider`] for every request and never logged.
//!
//! The base URL may be set after the client is made, and changed ([`LedgerClient::set_base_url`]):
//! every clone follows it. A call reads it once, when it starts: all attempts of one call go to
//! the same ledger, a call started after the change goes to the new one. Until a base URL is
//! set, every call fails with [`Error::NotConfigured`] (nothing is sent).

mod key;
pub mod retry;
pub mod stream;
mod token;
pub mod wire;

use std::net::IpAddr;
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, SystemTime};

use reqwest::header::{HeaderValue, ACCEPT, CONTENT_TYPE, RETRY_AFTER};
use reqwest::Method;
/// A parsed URL (the ledger's base URL).
pub use reqwest::Url;
use tokio::sync::OnceCell;

pub use key::IdempotencyKey;
pub use retry::RetryPolicy;
pub use token::{account_of, SessionToken, TokenProvider};
pub use wire::ConsumeRequest;

use crate::models::{Batch, ChargeReceipt, CostCheck, PointBalance, PriceList, TransactionPage};
use crate::{Error, Result};
use retry::Attempt;

/// The longest media duration the contract accepts, in seconds (24 h).
pub const MAX_DURATION_SECONDS: f64 = 86_400.0;

/// The header that carries a consume's idempotency key.
pub const IDEMPOTENCY_KEY_HEADER: &str = "Idempotency-Key";

/// A client of the points ledger. Cheap to clone: clones share the connection pool and the
/// in-flight balance request.
#[derive(Clone)]
pub struct LedgerClient {
    inner: Arc<Inner>,
    /// Where this client's bearer token comes from (see [`LedgerClient::as_token`]).
    tokens: Arc<dyn TokenProvider>,
    /// How this client's failed requests are retried (see [`LedgerClient::with_retry`]).
    retry: RetryPolicy,
}

/// The balance request in flight, the token it was sent with and the ledger it was sent to: only
/// calls made with the same token to the same ledger may share its answer.
type BalanceFlight = (
    String,
    Arc<Endpoint>,
    Arc<OnceCell<Result<Stated<PointBalance>>>>,
);

/// An answer, and the ledger's account of the token it was made with (`user_id`, contract
/// v1.2; `None` from backends that do not state it).
#[derive(Debug, Clone, PartialEq)]
pub struct Stated<T> {
    /// The answer.
    pub value: T,
    /// The ledger's account of the token.
    pub user_id: Option<String>,
}

struct Inner {
    /// How the HTTP client of each base URL is made.
    transport: Transport,
    /// The ledger requests go to now; `None` until a base URL is set.
    endpoint: RwLock<Option<Arc<Endpoint>>>,
    /// The balance request in flight, shared by every concurrent `balance()` call of one token.
    balance_in_flight: Mutex<Option<BalanceFlight>>,
}

/// One ledger base URL and the HTTP client made for it (its proxy rule depends on the scheme).
struct Endpoint {
    http: reqwest::Client,
    base_url: Url,
}

/// The transport settings every [`Endpoint`] of a client is made with.
#[derive(Clone, Copy)]
struct Transport {
    connect_timeout: Duration,
    request_timeout: Duration,
}

impl Transport {
    /// Checks `base_url` (see [`parse_base_url`]) and makes its HTTP client.
    fn endpoint(&self, base_url: &str) -> Result<Endpoint> {
        let base_url = parse_base_url(base_url)?;
        let mut http = reqwest::Client::builder();
        if base_url.scheme() == "http" {
            // Plain http is allowed for loopback only, and never through a proxy: the bearer
            // token would leave the machine in clear text (HTTP_PROXY / ALL_PROXY).
            http = http.no_proxy();
        }
        let http = http
            .connect_timeout(self.connect_timeout)
            .timeout(self.request_timeout)
            // A redirect could carry the bearer token elsewhere; the ledger never redirects.
            .redirect(reqwest::redirect::Policy::none())
            .user_agent(concat!("tauri-plugin-points/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|error| Error::network(error_chain(&error)))?;
        Ok(Endpoint { http, base_url })
    }
}

/// A failed request: the error, and how long the ledger asked to wait before another attempt.
#[derive(Debug, Clone, PartialEq)]
pub struct Failure {
    /// What went wrong.
    pub error: Error,
    /// The ledger's `Retry-After`, when it sent one (however long: the retry policy caps only
    /// its own waits).
    pub retry_after: Option<Duration>,
}

impl From<Failure> for Error {
    fn from(failure: Failure) -> Self {
        failure.error
    }
}

impl From<Error> for Failure {
    fn from(error: Error) -> Self {
        Failure {
            error,
            retry_after: None,
        }
    }
}

/// Configures a [`LedgerClient`].
pub struct LedgerClientBuilder {
    base_url: Option<String>,
    connect_timeout: Duration,
    request_timeout: Duration,
    retry: RetryPolicy,
    tokens: Arc<dyn TokenProvider>,
}

impl Default for LedgerClientBuilder {
    fn default() -> Self {
        Self::new()
    }
}

impl LedgerClientBuilder {
    /// A builder with no base URL yet: the client it builds answers [`Error::NotConfigured`]
    /// until [`LedgerClient::set_base_url`].
    pub fn new() -> Self {
        Self {
            base_url: None,
            connect_timeout: Duration::from_secs(5),
            request_timeout: Duration::from_secs(15),
            retry: RetryPolicy::default(),
            tokens: Arc::new(|| None::<String>),
        }
    }

    /// The ledger's base URL: https, or http on a loopback host (checked by `build`).
    pub fn base_url(mut self, base_url: impl Into<String>) -> Self {
        self.base_url = Some(base_url.into());
        self
    }

    /// The longest wait for a connection (default 5 s).
    pub fn connect_timeout(mut self, timeout: Duration) -> Self {
        self.connect_timeout = timeout;
        self
    }

    /// The longest wait for a whole request, answer body included (default 15 s).
    pub fn request_timeout(mut self, timeout: Duration) -> Self {
        self.request_timeout = timeout;
        self
    }

    /// How failed requests are retried (default: 3 attempts).
    pub fn retry(mut self, retry: RetryPolicy) -> Self {
        self.retry = retry;
        self
    }

    /// Where the bearer token comes from (default: none, every call is `Unauthorized`).
    pub fn token_provider(mut self, tokens: impl TokenProvider) -> Self {
        self.tokens = Arc::new(tokens);
        self
    }

    /// Builds the client; the base URL, when given, must be https, or http on a loopback host.
    pub fn build(self) -> Result<LedgerClient> {
        let transport = Transport {
            connect_timeout: self.connect_timeout,
            request_timeout: self.request_timeout,
        };
        let endpoint = match &self.base_url {
            Some(base_url) => Some(Arc::new(transport.endpoint(base_url)?)),
            None => None,
        };
        Ok(LedgerClient {
            inner: Arc::new(Inner {
                transport,
                endpoint: RwLock::new(endpoint),
                balance_in_flight: Mutex::new(None),
            }),
            tokens: self.tokens,
            retry: self.retry,
        })
    }
}

/// Parses and checks a ledger base URL: `https`, or `http` only for a loopback host
/// (127.0.0.0/8, ::1, localhost). The result ends with `/` so routes join below its path.
pub fn parse_base_url(base_url: &str) -> Result<Url> {
    let invalid = |reason: &str| Error::invalid_argument("baseUrl", reason);
    let mut url = Url::parse(base_url).map_err(|error| invalid(&error.to_string()))?;
    let loopback = match url.host() {
        Some(url::Host::Domain(domain)) => {
            let domain = domain.trim_end_matches('.');
            domain.eq_ignore_ascii_case("localhost")
        }
        Some(url::Host::Ipv4(ip)) => IpAddr::V4(ip).is_loopback(),
        Some(url::Host::Ipv6(ip)) => IpAddr::V6(ip).is_loopback(),
        None => return Err(invalid("has no host")),
    };
    match url.scheme() {
        "https" => {}
        "http" if loopback => {}
        "http" => {
            return Err(invalid(
                "http is allowed only for a loopback host; use https",
            ))
        }
        _ => return Err(invalid("must be an https URL")),
    }
    if !url.username().is_empty() || url.password().is_some() {
        return Err(invalid("must not carry credentials"));
    }
    if url.query().is_some() || url.fragment().is_some() {
        return Err(invalid("must not have a query or a fragment"));
    }
    if !url.path().ends_with('/') {
        let path = format!("{}/", url.path());
        url.set_path(&path);
    }
    Ok(url)
}

/// Checks a service name before it goes on the wire (the ledger decides whether it exists).
pub fn check_service(service: &str) -> Result<()> {
    let valid = !service.is_empty()
        && service.len() <= 64
        && service
            .bytes()
            .all(|byte| byte.is_ascii_alphanumeric() || byte == b'_' || byte == b'-');
    if valid {
        Ok(())
    } else {
        Err(Error::UnknownService {
            service: service.chars().take(64).collect(),
        })
    }
}

/// Checks a media duration: finite, > 0 and at most 24 h.
pub fn check_duration(duration: Option<f64>) -> Result<()> {
    match duration {
        Some(seconds)
            if !(seconds.is_finite() && seconds > 0.0 && seconds <= MAX_DURATION_SECONDS) =>
        {
            Err(Error::InvalidDuration)
        }
        _ => Ok(()),
    }
}

/// One request to send, possibly several times.
struct Call<'a> {
    method: Method,
    path: &'static str,
    query: Vec<(&'static str, String)>,
    body: Option<Vec<u8>>,
    idempotency_key: Option<&'a IdempotencyKey>,
    /// The service the call is about, to name it in errors.
    service: Option<&'a str>,
    /// The token to send, when already read from the provider.
    token: Option<&'a str>,
    /// The ledger to send it to, when already chosen.
    endpoint: Option<Arc<Endpoint>>,
}

impl<'a> Call<'a> {
    fn get(path: &'static str) -> Self {
        Self {
            method: Method::GET,
            path,
            query: Vec::new(),
            body: None,
            idempotency_key: None,
            service: None,
            token: None,
            endpoint: None,
        }
    }
}

impl LedgerClient {
    /// Starts configuring a client of the ledger at `base_url` ([`LedgerClientBuilder::new`]
    /// for a client whose base URL is set later).
    pub fn builder(base_url: impl Into<String>) -> LedgerClientBuilder {
        LedgerClientBuilder::new().base_url(base_url)
    }

    /// The ledger's base URL now (always ending with `/`), `None` until one is set.
    pub fn base_url(&self) -> Option<Url> {
        self.current_endpoint()
            .map(|endpoint| endpoint.base_url.clone())
    }

    /// Sets or changes the ledger's base URL, for this client and every clone of it (the same
    /// rule as the builder's: https, or http on a loopback host, never through a proxy). Calls
    /// under way finish with the ledger they started with; calls started from now on go to
    /// `base_url`. An invalid URL is refused with [`Error::InvalidArgument`] and the current one
    /// is kept. Setting the URL in use again changes nothing (its connections are kept).
    ///
    /// The base URL says where the ledger is reached, not which ledger it is: pending charges
    /// are sent to the URL current when they are sent, under their own idempotency key and
    /// only with a token of their account. Point it only at the same ledger service (the same
    /// accounts and idempotency keys), never at another one.
    pub fn set_base_url(&self, base_url: &str) -> Result<()> {
        let url = parse_base_url(base_url)?;
        if self
            .current_endpoint()
            .is_some_and(|endpoint| endpoint.base_url == url)
        {
            return Ok(());
        }
        let endpoint = Arc::new(self.inner.transport.endpoint(base_url)?);
        *self
            .inner
            .endpoint
            .write()
            .unwrap_or_else(|poison| poison.into_inner()) = Some(endpoint);
        Ok(())
    }

    /// The endpoint requests go to now.
    fn current_endpoint(&self) -> Option<Arc<Endpoint>> {
        self.inner
            .endpoint
            .read()
            .unwrap_or_else(|poison| poison.into_inner())
            .clone()
    }

    /// The endpoint a call starting now goes to, or [`Error::NotConfigured`].
    fn endpoint(&self) -> Result<Arc<Endpoint>> {
        self.current_endpoint().ok_or(Error::NotConfigured)
    }

    /// The retry policy in use.
    pub fn retry_policy(&self) -> &RetryPolicy {
        &self.retry
    }

    /// The same client (pool, base URL, token source) retrying by `retry`.
    pub fn with_retry(&self, retry: RetryPolicy) -> LedgerClient {
        LedgerClient {
            retry,
            ..self.clone()
        }
    }

    /// The account the client is signed in as ([`account_of`] its token), `None` when signed out.
    pub fn account(&self) -> Option<String> {
        self.tokens.token().map(|token| account_of(&token))
    }

    /// The same client (pool, base URL, retry policy) sending every request with `token`,
    /// whatever the session holds: a charge is sent only with a token of the account that ran
    /// the job.
    pub fn as_token(&self, token: impl Into<String>) -> LedgerClient {
        let token = token.into();
        LedgerClient {
            inner: self.inner.clone(),
            tokens: Arc::new(move || Some(token.clone())),
            retry: self.retry.clone(),
        }
    }

    /// `GET /points/balance`. Concurrent calls made with the same token share one request.
    pub async fn balance(&self) -> Result<PointBalance> {
        self.balance_stated().await.map(|stated| stated.value)
    }

    /// [`LedgerClient::balance`], with the account the ledger states for the token.
    pub async fn balance_stated(&self) -> Result<Stated<PointBalance>> {
        let endpoint = self.endpoint()?;
        let token = self.tokens.token().ok_or(Error::Unauthorized)?;
        let flight = {
            let mut slot = self.balance_slot();
            match slot.as_ref() {
                Some((owner, ledger, flight))
                    if *owner == token && Arc::ptr_eq(ledger, &endpoint) =>
                {
                    flight.clone()
                }
                _ => {
                    let flight = Arc::new(OnceCell::new());
                    *slot = Some((token.clone(), endpoint.clone(), flight.clone()));
                    flight
                }
            }
        };
        let result = flight
            .get_or_init(|| async {
                let mut call = Call::get("points/balance");
                call.token = Some(&token);
                call.endpoint = Some(endpoint.clone());
                let body = self.send(call).await?;
                wire::decode::<wire::WireBalance>(&body).map(|wire| Stated {
                    user_id: bounded_id(wire.user_id.clone()),
                    value: PointBalance::from(wire),
                })
            })
            .await
            .clone();
        let mut slot = self.balance_slot();
        if slot
            .as_ref()
            .is_some_and(|(_, _, current)| Arc::ptr_eq(current, &flight))
        {
            *slot = None;
        }
        result
    }

    fn balance_slot(&self) -> std::sync::MutexGuard<'_, Option<BalanceFlight>> {
        self.inner
            .balance_in_flight
            .lock()
            .unwrap_or_else(|poison| poison.into_inner())
    }

    /// `GET /points/stream` (contract v1.2): the user's balance stream, resumed after `last_seq`
    /// when given (`Last-Event-ID`). Not retried: the caller reconnects. A backend without the
    /// stream answers [`Error::Backend`] with status 404, 405 or 501. An open stream lives at most
    /// [`MAX_STREAM_LIFETIME`], then ends as if the server had closed it.
    pub async fn open_stream(&self, last_seq: Option<i64>) -> Result<stream::BalanceStream> {
        let endpoint = self.endpoint()?;
        let token = self.tokens.token().ok_or(Error::Unauthorized)?;
        let url = endpoint
            .base_url
            .join("points/stream")
            .map_err(|error| Error::protocol(error.to_string()))?;
        let mut request = endpoint
            .http
            .get(url)
            .bearer_auth(&token)
            .timeout(MAX_STREAM_LIFETIME)
            .header(ACCEPT, HeaderValue::from_static("text/event-stream"));
        if let Some(seq) = last_seq {
            request = request.header("Last-Event-ID", seq.to_string());
        }
        let response = request
            .send()
            .await
            .map_err(|error| transport_error(&error))?;
        let status = response.status().as_u16();
        if !(200..300).contains(&status) {
            let body = read_bounded(response).await?;
            return Err(wire::error_from_answer(status, &body, None));
        }
        let event_stream = response
            .headers()
            .get(CONTENT_TYPE)
            .and_then(|value| value.to_str().ok())
            .is_some_and(|value| value.trim_start().starts_with("text/event-stream"));
        if !event_stream {
            return Err(Error::protocol(
                "the stream's answer is not text/event-stream".into(),
            ));
        }
        Ok(stream::BalanceStream::new(response))
    }

    /// `GET /points/cost`: the price of one use of `service` (for `duration` seconds of media,
    /// for services priced by duration) and whether the balance covers it.
    pub async fn cost(&self, service: &str, duration: Option<f64>) -> Result<CostCheck> {
        self.cost_stated(service, duration)
            .await
            .map(|stated| stated.value)
    }

    /// [`LedgerClient::cost`], with the account the ledger states for the token.
    pub async fn cost_stated(
        &self,
        service: &str,
        duration: Option<f64>,
    ) -> Result<Stated<CostCheck>> {
        check_service(service)?;
        check_duration(duration)?;
        let mut call = Call::get("points/cost");
        call.query.push(("service", service.to_owned()));
        if let Some(seconds) = duration {
            call.query.push(("duration", seconds.to_string()));
        }
        call.service = Some(service);
        let body = self.send(call).await?;
        wire::decode::<wire::WireCost>(&body).map(|wire| Stated {
            user_id: bounded_id(wire.user_id.clone()),
            value: CostCheck::from(wire),
        })
    }

    /// `POST /points/consume` with `key` as `Idempotency-Key`, reused on every retry.
    pub async fn consume(
        &self,
        request: &ConsumeRequest,
        key: &IdempotencyKey,
    ) -> Result<ChargeReceipt> {
        self.consume_detailed(request, key)
            .await
            .map_err(Error::from)
    }

    /// [`LedgerClient::consume`], telling on failure how long the ledger asked to wait.
    pub async fn consume_detailed(
        &self,
        request: &ConsumeRequest,
        key: &IdempotencyKey,
    ) -> std::result::Result<ChargeReceipt, Failure> {
        self.consume_under(request, key, None).await
    }

    /// [`LedgerClient::consume_detailed`] of a job that ran offline under the allowance
    /// `allowance_id` (contract v1.2): the ledger settles it under that allowance, or refuses it
    /// with 422 (`allowance_exhausted`, `allowance_expired`, `allowance_not_found`). The
    /// allowance is not part of the request's identity: the same charge re-sent without it is
    /// the same charge.
    pub async fn consume_under(
        &self,
        request: &ConsumeRequest,
        key: &IdempotencyKey,
        allowance_id: Option<&str>,
    ) -> std::result::Result<ChargeReceipt, Failure> {
        check_service(&request.service)?;
        check_duration(request.duration)?;
        let mut body =
            serde_json::to_value(request).map_err(|error| Error::protocol(error.to_string()))?;
        if let (Some(id), Some(fields)) = (allowance_id, body.as_object_mut()) {
            fields.insert("allowance_id".into(), id.into());
        }
        let body = serde_json::to_vec(&body).map_err(|error| Error::protocol(error.to_string()))?;
        let call = Call {
            method: Method::POST,
            path: "points/consume",
            query: Vec::new(),
            body: Some(body),
            idempotency_key: Some(key),
            service: Some(&request.service),
            token: None,
            endpoint: None,
        };
        let body = self.send(call).await?;
        let receipt = wire::decode::<wire::WireReceipt>(&body)
            .map(|receipt| receipt.into_receipt(key.as_str()))?;
        // A balance read already under way may predate this charge: later reads must not join it.
        *self.balance_slot() = None;
        Ok(receipt)
    }

    /// `GET /points/prices`: the price table.
    pub async fn prices(&self) -> Result<PriceList> {
        let body = self.send(Call::get("points/prices")).await?;
        wire::decode::<wire::WirePrices>(&body).map(PriceList::from)
    }

    /// `GET /points/transactions`: history, newest first; pass a page's `next_cursor` as `before`.
    pub async fn transactions(
        &self,
        limit: Option<u32>,
        before: Option<&str>,
    ) -> Result<TransactionPage> {
        let mut call = Call::get("points/transactions");
        if let Some(limit) = limit {
            call.query.push(("limit", limit.to_string()));
        }
        if let Some(cursor) = before {
            call.query.push(("before", cursor.to_owned()));
        }
        let body = self.send(call).await?;
        wire::decode::<wire::WireTransactions>(&body).map(TransactionPage::from)
    }

    /// `GET /points/batches`: live recharge batches, soonest expiry first.
    pub async fn batches(&self) -> Result<Vec<Batch>> {
        let body = self.send(Call::get("points/batches")).await?;
        wire::decode::<wire::WireBatches>(&body).map(Vec::<Batch>::from)
    }

    /// `POST /points/allowance` (contract v1.2): a signed offline allowance for `device_id`,
    /// superseding the device's previous one, under an idempotency key of its own (every retry
    /// of this call answers the same allowance). Check it with [`crate::allowance::Allowance::
    /// check_for`] against the app's pinned keys before trusting it.
    pub async fn allowance(&self, device_id: &str) -> Result<crate::allowance::Allowance> {
        crate::allowance::check_device_id(device_id)
            .map_err(|refusal| Error::invalid_argument("deviceId", refusal.to_string()))?;
        let body = serde_json::to_vec(&serde_json::json!({ "device_id": device_id }))
            .map_err(|error| Error::protocol(error.to_string()))?;
        // One key for every attempt of this call: a retry whose first attempt reached the
        // ledger is answered that attempt's allowance, and supersedes nothing.
        let key = IdempotencyKey::parse(format!("allowance:{}", uuid::Uuid::new_v4()))?;
        let call = Call {
            method: Method::POST,
            path: "points/allowance",
            query: Vec::new(),
            body: Some(body),
            idempotency_key: Some(&key),
            service: None,
            token: None,
            endpoint: None,
        };
        let body = self.send(call).await?;
        wire::decode(&body)
    }

    /// `GET /points/allowance-keys` (contract v1.2): the ledger's public keys, `(key_id, public
    /// key in base64url)`. For tooling: an app pins its keys in its configuration, never from
    /// the network.
    pub async fn allowance_keys(&self) -> Result<Vec<(String, String)>> {
        #[derive(serde::Deserialize)]
        struct Key {
            key_id: String,
            public_key: String,
        }
        #[derive(serde::Deserialize)]
        struct Keys {
            keys: Vec<Key>,
        }
        let body = self.send(Call::get("points/allowance-keys")).await?;
        let keys: Keys = wire::decode(&body)?;
        Ok(keys
            .keys
            .into_iter()
            .take(crate::allowance::MAX_PINNED_KEYS)
            .map(|key| (key.key_id, key.public_key))
            .collect())
    }

    /// Sends `call`, retrying as the policy allows; the success body. The ledger and the token
    /// are read once, before the first attempt: every retry of one call goes to the same ledger
    /// for the same account.
    async fn send(&self, call: Call<'_>) -> std::result::Result<Vec<u8>, Failure> {
        let endpoint = match &call.endpoint {
            Some(endpoint) => endpoint.clone(),
            None => self.endpoint()?,
        };
        let token = match call.token {
            Some(token) => token.to_owned(),
            None => self.tokens.token().ok_or(Error::Unauthorized)?,
        };
        let mut attempt = 1;
        loop {
            let (error, retry_after) = match self.attempt(&endpoint, &call, &token).await {
                Ok(body) => return Ok(body),
                Err(failure) => failure,
            };
            let delay = Attempt::of(&error)
                .and_then(|kind| self.retry.delay_before(attempt + 1, kind, retry_after));
            let Some(delay) = delay else {
                return Err(Failure { error, retry_after });
            };
            tracing::debug!(
                path = call.path,
                attempt,
                delay_ms = delay.as_millis() as u64,
                %error,
                "retrying a ledger request"
            );
            tokio::time::sleep(delay).await;
            attempt += 1;
        }
    }

    /// One attempt: the success body, or the error and the server's `Retry-After`.
    async fn attempt(
        &self,
        endpoint: &Endpoint,
        call: &Call<'_>,
        token: &str,
    ) -> std::result::Result<Vec<u8>, (Error, Option<Duration>)> {
        let url = endpoint
            .base_url
            .join(call.path)
            .map_err(|error| (Error::protocol(error.to_string()), None))?;
        let mut request = endpoint
            .http
            .request(call.method.clone(), url)
            .bearer_auth(token)
            .header(
                ACCEPT,
                HeaderValue::from_static("application/json, application/problem+json"),
            );
        if !call.query.is_empty() {
            request = request.query(&call.query);
        }
        if let Some(key) = call.idempotency_key {
            request = request.header(IDEMPOTENCY_KEY_HEADER, key.as_str());
        }
        if let Some(body) = &call.body {
            request = request
                .header(CONTENT_TYPE, HeaderValue::from_static("application/json"))
                .body(body.clone());
        }
        let response = request
            .send()
            .await
            .map_err(|error| (transport_error(&error), None))?;
        let status = response.status().as_u16();
        let retry_after = response
            .headers()
            .get(RETRY_AFTER)
            .and_then(|value| value.to_str().ok())
            .and_then(|value| retry::parse_retry_after(value, SystemTime::now()));
        let body = read_bounded(response)
            .await
            .map_err(|error| (error, retry_after))?;
        if (200..300).contains(&status) {
            Ok(body)
        } else {
            Err((
                wire::error_from_answer(status, &body, call.service),
                retry_after,
            ))
        }
    }
}

impl std::fmt::Debug for LedgerClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LedgerClient")
            .field("base_url", &self.base_url().map(String::from))
            .field("retry", &self.retry)
            .finish_non_exhaustive()
    }
}

/// A `user_id` the ledger stated, kept only when it is a usable account id (1 to 255 printable
/// ASCII characters without spaces).
fn bounded_id(id: Option<String>) -> Option<String> {
    id.filter(|id| {
        !id.is_empty() && id.len() <= 255 && id.bytes().all(|byte| (0x21..=0x7e).contains(&byte))
    })
}

/// The longest an open balance stream is read before it is opened again (a bound on any one
/// request, as every request of the client has).
pub const MAX_STREAM_LIFETIME: Duration = Duration::from_secs(3600);

/// The largest answer body read from the ledger; a longer one is a [`Error::Protocol`] error.
pub const MAX_ANSWER_BYTES: usize = 1 << 20;

/// Reads an answer's body, at most [`MAX_ANSWER_BYTES`] of it.
async fn read_bounded(mut response: reqwest::Response) -> Result<Vec<u8>> {
    if response
        .content_length()
        .is_some_and(|length| length > MAX_ANSWER_BYTES as u64)
    {
        return Err(Error::protocol(format!(
            "the answer is longer than {MAX_ANSWER_BYTES} bytes"
        )));
    }
    let mut body = Vec::new();
    while let Some(chunk) = response
        .chunk()
        .await
        .map_err(|error| transport_error(&error))?
    {
        if body.len() + chunk.len() > MAX_ANSWER_BYTES {
            return Err(Error::protocol(format!(
                "the answer is longer than {MAX_ANSWER_BYTES} bytes"
            )));
        }
        body.extend_from_slice(&chunk);
    }
    Ok(body)
}

/// A transport failure as a typed error (the URL holds no secret; the token is in a header).
fn transport_error(error: &reqwest::Error) -> Error {
    if error.is_timeout() {
        Error::Timeout
    } else {
        Error::network(error_chain(error))
    }
}

/// An error and its sources, on one line.
fn error_chain(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base_url_is_https_or_loopback_http() {
        for ok in [
            "https://ledger.example.com",
            "https://ledger.example.com/api",
            "http://127.0.0.1:8080",
            "http://127.1.2.3",
            "http://[::1]:9000/",
            "http://localhost:3000",
            "http://LOCALHOST.",
        ] {
            let url = parse_base_url(ok).unwrap_or_else(|error| panic!("{ok}: {error}"));
            assert!(url.path().ends_with('/'), "{url}");
        }
        for bad in [
            "http://ledger.example.com",
            "http://192.168.1.2",
            "http://localhost.evil.com",
            "http://128.0.0.1",
            "ftp://127.0.0.1",
            "https://user:pw@ledger.example.com",
            "https://ledger.example.com/?a=1",
            "not a url",
            "",
        ] {
            assert!(
                matches!(parse_base_url(bad), Err(Error::InvalidArgument { ref field, .. }) if field == "baseUrl"),
                "{bad}"
            );
        }
    }

    #[test]
    fn routes_join_below_the_base_path() {
        let url = parse_base_url("https://example.com/api").unwrap();
        assert_eq!(
            url.join("points/balance").unwrap().as_str(),
            "https://example.com/api/points/balance"
        );
    }

    #[test]
    fn durations_must_be_finite_positive_and_at_most_a_day() {
        assert!(check_duration(None).is_ok());
        assert!(check_duration(Some(0.5)).is_ok());
        assert!(check_duration(Some(86_400.0)).is_ok());
        for bad in [
            0.0,
            -1.0,
            86_400.1,
            f64::NAN,
            f64::INFINITY,
            f64::NEG_INFINITY,
        ] {
            assert_eq!(
                check_duration(Some(bad)),
                Err(Error::InvalidDuration),
                "{bad}"
            );
        }
    }

    #[test]
    fn service_names_are_short_identifiers() {
        assert!(check_service("subtitle_burn").is_ok());
        for bad in ["", "a b", "../x", "é", &"x".repeat(65)] {
            assert!(
                matches!(check_service(bad), Err(Error::UnknownService { .. })),
                "{bad}"
            );
        }
    }
}
