//! A TCP proxy between the plugin and the real reference ledger that injects the faults a
//! network and a gateway make: the ledger unreachable, an answer lost after the ledger committed,
//! a reset connection, a stall past the client's timeout, an answer held back after the ledger
//! committed, and 503 with `Retry-After`. It can also stand for a gateway that exchanges opaque
//! session tokens for the ledger's JWTs.
//!
//! One request per connection (it answers with `Connection: close`), so each request meets its
//! own fault.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

/// What the proxy does with one request.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Fault {
    /// Forwards it and returns the ledger's answer.
    Pass,
    /// Resets the connection without forwarding the request: the ledger looks unreachable.
    Refuse,
    /// Reads the request and closes without forwarding it.
    Reset,
    /// Forwards it, lets the ledger commit, and drops the answer.
    DropAnswer,
    /// Reads the request and holds the connection for this long without answering.
    Stall(Duration),
    /// Answers 503 with `Retry-After: <seconds>` without forwarding.
    Unavailable { retry_after_secs: u64 },
    /// Answers this status, `Retry-After` header (any text) and body without forwarding: a
    /// gateway's or a WAF's page, a maintenance answer, a definitive refusal.
    Answer {
        status: u16,
        retry_after: Option<&'static str>,
        body: &'static str,
    },
    /// Forwards it, lets the ledger commit, and holds the answer this long before returning it
    /// (past the client's timeout, the answer is lost after the commit).
    Delay(Duration),
    /// Forwards it and passes the answer on as it comes (a long-lived stream), cutting both
    /// connections after this long (`None`: never).
    Stream { cut_after: Option<Duration> },
}

type Chooser = Box<dyn FnMut(&str) -> Fault + Send>;

/// Counts of what the proxy did: requests seen, requests faulted, and faults of each kind.
#[derive(Debug, Default)]
pub struct ProxyStats {
    pub requests: AtomicU64,
    pub faulted: AtomicU64,
    pub refused: AtomicU64,
    pub reset: AtomicU64,
    pub dropped_answers: AtomicU64,
    pub stalled: AtomicU64,
    pub unavailable: AtomicU64,
    pub delayed: AtomicU64,
    /// Streams cut.
    pub cut: AtomicU64,
    /// Charges (`POST`s) forwarded to the ledger and not answered yet, at most, all tokens
    /// together and per bearer token.
    pub charges_at_once: Mutex<AtOnce>,
}

/// Requests under way now and at their most.
#[derive(Debug, Default)]
pub struct AtOnce {
    now: u64,
    pub peak: u64,
    now_per_token: HashMap<String, u64>,
    pub peak_per_token: HashMap<String, u64>,
}

impl AtOnce {
    fn start(&mut self, token: &str) {
        self.now += 1;
        self.peak = self.peak.max(self.now);
        let now = self.now_per_token.entry(token.to_owned()).or_default();
        *now += 1;
        let now = *now;
        let peak = self.peak_per_token.entry(token.to_owned()).or_default();
        *peak = (*peak).max(now);
    }

    fn end(&mut self, token: &str) {
        self.now -= 1;
        if let Some(now) = self.now_per_token.get_mut(token) {
            *now -= 1;
        }
    }
}

impl ProxyStats {
    fn count(&self, fault: Fault) {
        let kind = match fault {
            Fault::Pass | Fault::Stream { .. } => return,
            Fault::Refuse => &self.refused,
            Fault::Reset => &self.reset,
            Fault::DropAnswer => &self.dropped_answers,
            Fault::Stall(_) => &self.stalled,
            Fault::Unavailable { .. } | Fault::Answer { .. } => &self.unavailable,
            Fault::Delay(_) => &self.delayed,
        };
        self.faulted.fetch_add(1, Ordering::SeqCst);
        kind.fetch_add(1, Ordering::SeqCst);
    }
}

/// A running proxy.
pub struct FaultProxy {
    pub base_url: String,
    chooser: Arc<Mutex<Chooser>>,
    tokens: Arc<Mutex<HashMap<String, String>>>,
    pub stats: Arc<ProxyStats>,
    task: tokio::task::JoinHandle<()>,
}

impl FaultProxy {
    /// Starts a proxy to the ledger at `upstream` (`http://127.0.0.1:port`), passing everything.
    pub async fn start(upstream: &str) -> Self {
        let upstream = upstream
            .trim_start_matches("http://")
            .trim_end_matches('/')
            .to_owned();
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let base_url = format!("http://{}", listener.local_addr().unwrap());
        let chooser: Arc<Mutex<Chooser>> = Arc::new(Mutex::new(Box::new(|_| Fault::Pass)));
        let tokens = Arc::new(Mutex::new(HashMap::new()));
        let stats = Arc::new(ProxyStats::default());
        let task = tokio::spawn({
            let (chooser, tokens, stats) = (chooser.clone(), tokens.clone(), stats.clone());
            async move {
                while let Ok((client, _)) = listener.accept().await {
                    let (chooser, tokens, stats) = (chooser.clone(), tokens.clone(), stats.clone());
                    let upstream = upstream.clone();
                    tokio::spawn(async move {
                        let _ = serve(client, &upstream, &chooser, &tokens, &stats).await;
                    });
                }
            }
        });
        Self {
            base_url,
            chooser,
            tokens,
            stats,
            task,
        }
    }

    /// Every request from now on meets `fault`.
    pub fn set(&self, fault: Fault) {
        self.choose(move |_| fault);
    }

    /// Each request meets the fault `chooser` picks (given the request line).
    pub fn choose(&self, chooser: impl FnMut(&str) -> Fault + Send + 'static) {
        *self.chooser.lock().unwrap() = Box::new(chooser);
    }

    /// Every charge (`POST`) from now on meets `fault`; every other request passes.
    pub fn fault_charges(&self, fault: Fault) {
        self.choose(move |line| {
            if line.starts_with("POST") {
                fault
            } else {
                Fault::Pass
            }
        });
    }

    /// Requests bearing `opaque` reach the ledger with `real` instead (a token-exchanging gateway).
    pub fn exchange_token(&self, opaque: &str, real: &str) {
        self.tokens
            .lock()
            .unwrap()
            .insert(opaque.to_owned(), real.to_owned());
    }
}

impl Drop for FaultProxy {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// Drops the connection with a reset (RST) rather than an orderly close.
#[allow(deprecated)] // SO_LINGER 0 resets at once; it never blocks.
fn reset(client: &TcpStream) {
    let _ = client.set_linger(Some(Duration::ZERO));
}

async fn serve(
    mut client: TcpStream,
    upstream: &str,
    chooser: &Mutex<Chooser>,
    tokens: &Mutex<HashMap<String, String>>,
    stats: &ProxyStats,
) -> std::io::Result<()> {
    let request = match read_request(&mut client).await? {
        Some(request) => request,
        None => return Ok(()),
    };
    let request_line = String::from_utf8_lossy(&request.head)
        .lines()
        .next()
        .unwrap_or_default()
        .to_owned();
    stats.requests.fetch_add(1, Ordering::SeqCst);
    let fault = (chooser.lock().unwrap())(&request_line);
    stats.count(fault);
    match fault {
        Fault::Refuse | Fault::Reset => {
            reset(&client);
            return Ok(());
        }
        Fault::Stall(duration) => {
            tokio::time::sleep(duration).await;
            return Ok(());
        }
        Fault::Unavailable { retry_after_secs } => {
            let body = "{\"code\":\"unavailable\"}";
            let answer = format!(
                "HTTP/1.1 503 Service Unavailable\r\nContent-Type: application/json\r\nRetry-After: {retry_after_secs}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                body.len()
            );
            client.write_all(answer.as_bytes()).await?;
            return client.shutdown().await;
        }
        Fault::Answer {
            status,
            retry_after,
            body,
        } => {
            let retry_after = retry_after
                .map(|value| format!("Retry-After: {value}\r\n"))
                .unwrap_or_default();
            let kind = if body.starts_with('<') {
                "text/html"
            } else {
                "application/problem+json"
            };
            let answer = format!(
                "HTTP/1.1 {status} Refused\r\nContent-Type: {kind}\r\n{retry_after}Content-Length: {}\r\nConnection: close\r\n\r\n{body}",
                body.len()
            );
            client.write_all(answer.as_bytes()).await?;
            return client.shutdown().await;
        }
        Fault::Stream { cut_after } => {
            let head = rewrite_head(&request.head, tokens);
            let mut ledger = TcpStream::connect(upstream).await?;
            ledger.write_all(&head).await?;
            ledger.write_all(&request.body).await?;
            let copy = tokio::io::copy(&mut ledger, &mut client);
            match cut_after {
                Some(after) => {
                    if tokio::time::timeout(after, copy).await.is_err() {
                        stats.cut.fetch_add(1, Ordering::SeqCst);
                        reset(&client);
                    }
                }
                None => {
                    copy.await?;
                }
            }
            return Ok(());
        }
        Fault::Pass | Fault::DropAnswer | Fault::Delay(_) => {}
    }
    let head = rewrite_head(&request.head, tokens);
    let charge = request_line
        .starts_with("POST")
        .then(|| bearer(&request.head).unwrap_or_default());
    // Counted until its answer is written (or dropped).
    let _under_way = charge.map(|token| UnderWay::start(stats, token));
    let answer = forward(upstream, &head, &request.body).await?;
    match fault {
        Fault::DropAnswer => {
            reset(&client);
            return Ok(());
        }
        Fault::Delay(duration) => tokio::time::sleep(duration).await,
        _ => {}
    }
    client.write_all(&answer).await?;
    client.shutdown().await
}

/// A charge counted in [`ProxyStats::charges_at_once`] while it lives.
struct UnderWay<'a> {
    stats: &'a ProxyStats,
    token: String,
}

impl<'a> UnderWay<'a> {
    fn start(stats: &'a ProxyStats, token: String) -> Self {
        stats.charges_at_once.lock().unwrap().start(&token);
        Self { stats, token }
    }
}

impl Drop for UnderWay<'_> {
    fn drop(&mut self) {
        self.stats.charges_at_once.lock().unwrap().end(&self.token);
    }
}

/// Sends one request to the ledger and reads its whole answer.
async fn forward(upstream: &str, head: &[u8], body: &[u8]) -> std::io::Result<Vec<u8>> {
    let mut ledger = TcpStream::connect(upstream).await?;
    ledger.write_all(head).await?;
    ledger.write_all(body).await?;
    let mut answer = Vec::new();
    ledger.read_to_end(&mut answer).await?;
    Ok(answer)
}

/// The bearer token of a request head.
fn bearer(head: &[u8]) -> Option<String> {
    String::from_utf8_lossy(head)
        .split("\r\n")
        .find_map(|line| {
            let (name, value) = line.split_once(':')?;
            let token = value.trim().strip_prefix("Bearer ")?;
            name.eq_ignore_ascii_case("authorization")
                .then(|| token.trim().to_owned())
        })
}

struct Request {
    head: Vec<u8>,
    body: Vec<u8>,
}

/// Reads one request (head and `Content-Length` body); `None` if the client went away.
async fn read_request(client: &mut TcpStream) -> std::io::Result<Option<Request>> {
    let mut buffer = Vec::new();
    let mut chunk = [0u8; 4096];
    let head_end = loop {
        if let Some(at) = buffer.windows(4).position(|w| w == b"\r\n\r\n") {
            break at + 4;
        }
        let read = client.read(&mut chunk).await?;
        if read == 0 {
            return Ok(None);
        }
        buffer.extend_from_slice(&chunk[..read]);
    };
    let head = buffer[..head_end].to_vec();
    let length = String::from_utf8_lossy(&head)
        .lines()
        .find_map(|line| {
            let (name, value) = line.split_once(':')?;
            name.trim()
                .eq_ignore_ascii_case("content-length")
                .then(|| value.trim().parse::<usize>().ok())?
        })
        .unwrap_or(0);
    let mut body = buffer[head_end..].to_vec();
    while body.len() < length {
        let read = client.read(&mut chunk).await?;
        if read == 0 {
            return Ok(None);
        }
        body.extend_from_slice(&chunk[..read]);
    }
    Ok(Some(Request { head, body }))
}

/// The request head with `Connection: close` and any exchanged bearer token.
fn rewrite_head(head: &[u8], tokens: &Mutex<HashMap<String, String>>) -> Vec<u8> {
    let text = String::from_utf8_lossy(head);
    let tokens = tokens.lock().unwrap();
    let mut out = String::new();
    for line in text.split("\r\n").filter(|line| !line.is_empty()) {
        let lower = line.to_ascii_lowercase();
        if lower.starts_with("connection:") {
            continue;
        }
        if lower.starts_with("authorization:") {
            if let Some(token) = line.split_once("Bearer ").map(|(_, token)| token.trim()) {
                if let Some(real) = tokens.get(token) {
                    out.push_str(&format!("authorization: Bearer {real}\r\n"));
                    continue;
                }
            }
        }
        out.push_str(line);
        out.push_str("\r\n");
    }
    out.push_str("connection: close\r\n\r\n");
    out.into_bytes()
}
