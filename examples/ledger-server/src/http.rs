//! The HTTP server around the API: limits on what a client may hold, and a graceful stop.
//!
//! - A connection must send a request's head within [`HttpLimits::header_read_timeout`] (hyper's
//!   header read timeout): a client that trickles its headers (slowloris) is cut off.
//! - A request, its body included, must be answered within [`HttpLimits::request_timeout`],
//!   else 408 `request_timeout`; a handler's database work still runs to its end (see
//!   `routes::run_to_completion`).
//! - At most [`HttpLimits::max_in_flight`] requests are handled at once; past it, 503
//!   `overloaded` at once (no queue to grow).
//! - At most [`HttpLimits::max_connections`] connections are open at once; past it, new
//!   connections wait in the listen backlog until one closes.
//! - A body holds at most [`HttpLimits::max_body_bytes`], else 413 `payload_too_large`.
//!
//! The request timeout and the in-flight limit cover a request until its response's head is
//! sent: a balance stream (`GET /points/stream`) answers its head at once and then streams its
//! body for as long as it is open, so it is neither cut by the timeout nor counted in flight. That
//! is deliberate, not an oversight: streams have limits of their own (`StreamLimits`: per user,
//! in all, per-stream buffer), and each holds one connection of [`HttpLimits::max_connections`].
//!
//! On stop the listener closes at once, idle connections close, and requests in flight finish
//! (each within its request timeout). Streams send their `end` event and finish; a connection
//! still carrying a stream [`STREAM_STOP_GRACE`] after the stop (a reader that does not read) is
//! closed, so no stream holds the stop.

use std::sync::Arc;
use std::time::Duration;

use axum::error_handling::HandleErrorLayer;
use axum::extract::Request;
use axum::http::StatusCode;
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::Router;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::server::graceful::GracefulShutdown;
use hyper_util::service::TowerToHyperService;
use tokio::net::TcpListener;
use tokio::sync::{watch, Notify, Semaphore};
use tower::ServiceBuilder;

use crate::problem::Problem;

/// How long after a stop a connection still carrying a stream may stay open.
pub const STREAM_STOP_GRACE: Duration = Duration::from_secs(1);

/// The connection a request came on (a request extension), so that a stream can have it closed.
#[derive(Debug, Clone, Default)]
pub struct Connection(Arc<ConnectionState>);

#[derive(Debug, Default)]
struct ConnectionState {
    close: Notify,
    streaming: std::sync::atomic::AtomicBool,
}

impl Connection {
    /// Closes the connection now, whatever it is sending (a stream whose reader fell behind).
    pub fn close(&self) {
        self.0.close.notify_one();
    }

    /// Marks the connection as carrying a stream: it is closed [`STREAM_STOP_GRACE`] after a
    /// stop if still open.
    pub fn mark_streaming(&self) {
        self.0
            .streaming
            .store(true, std::sync::atomic::Ordering::Relaxed);
    }

    fn is_streaming(&self) -> bool {
        self.0.streaming.load(std::sync::atomic::Ordering::Relaxed)
    }
}

/// Resolves when `connection` should be closed: on [`Connection::close`], or once the server
/// stopped [`STREAM_STOP_GRACE`] ago while the connection still carries a stream.
async fn closing(connection: &Connection, mut stopped: watch::Receiver<bool>) {
    let stop_grace = async {
        stop_signal(&mut stopped).await;
        tokio::time::sleep(STREAM_STOP_GRACE).await;
        if !connection.is_streaming() {
            std::future::pending::<()>().await;
        }
    };
    tokio::select! {
        _ = connection.0.close.notified() => {}
        _ = stop_grace => {}
    }
}

/// What one client may hold of the server. [`HttpLimits::default`] gives the documented
/// defaults.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HttpLimits {
    /// Time to receive a request's head (request line and headers). Default 10 s.
    pub header_read_timeout: Duration,
    /// Time to receive a request's body and answer it. Default 30 s.
    pub request_timeout: Duration,
    /// Requests handled at once; past it, 503 `overloaded`. Default 512.
    pub max_in_flight: usize,
    /// Connections open at once; past it, new ones wait to be accepted. Default 1024.
    pub max_connections: usize,
    /// Largest request body, in bytes; past it, 413 `payload_too_large`. Default 64 KiB.
    pub max_body_bytes: usize,
}

impl Default for HttpLimits {
    fn default() -> Self {
        Self {
            header_read_timeout: Duration::from_secs(10),
            request_timeout: Duration::from_secs(30),
            max_in_flight: 512,
            max_connections: 1024,
            max_body_bytes: 64 * 1024,
        }
    }
}

/// `router` with the request limits of `limits` (timeout, concurrency, body size), every
/// refusal a problem document with a stable `code`.
pub fn limited(router: Router, limits: &HttpLimits) -> Router {
    // Innermost first: the body limit, the timeout, the concurrency limit, the typed refusals.
    router
        .layer(axum::extract::DefaultBodyLimit::disable())
        .layer(tower_http::limit::RequestBodyLimitLayer::new(
            limits.max_body_bytes,
        ))
        .layer(tower_http::timeout::TimeoutLayer::with_status_code(
            StatusCode::REQUEST_TIMEOUT,
            limits.request_timeout,
        ))
        .layer(
            ServiceBuilder::new()
                .layer(HandleErrorLayer::new(|_: tower::BoxError| async {
                    Problem::new(
                        StatusCode::SERVICE_UNAVAILABLE,
                        "overloaded",
                        "Overloaded",
                        "too many requests in flight: try again shortly",
                    )
                }))
                .load_shed()
                // Global: `Router::layer` wraps each route, and the limit is the server's.
                .layer(tower::limit::GlobalConcurrencyLimitLayer::new(
                    limits.max_in_flight.max(1),
                )),
        )
        .layer(middleware::from_fn(typed_refusals))
}

/// Turns the bare refusals of the limit layers (408, 413) into problem documents.
async fn typed_refusals(request: Request, next: Next) -> Response {
    let response = next.run(request).await;
    let is_problem = response
        .headers()
        .get(axum::http::header::CONTENT_TYPE)
        .is_some_and(|v| v.as_bytes() == b"application/problem+json");
    if is_problem {
        return response;
    }
    let mut refusal = match response.status() {
        StatusCode::REQUEST_TIMEOUT => Problem::new(
            StatusCode::REQUEST_TIMEOUT,
            "request_timeout",
            "Request timeout",
            "the request was not received and answered in time",
        )
        .into_response(),
        StatusCode::PAYLOAD_TOO_LARGE => Problem::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            "payload_too_large",
            "Payload too large",
            "the request body is larger than this ledger accepts",
        )
        .into_response(),
        _ => return response,
    };
    // The body was not read to its end: the connection cannot carry another request.
    refusal.headers_mut().insert(
        axum::http::header::CONNECTION,
        axum::http::HeaderValue::from_static("close"),
    );
    refusal
}

/// Serves `app` on `listener` until `stopped` turns true, then stops accepting, closes idle
/// connections and waits for the requests in flight.
pub async fn serve(
    listener: TcpListener,
    app: Router,
    limits: HttpLimits,
    mut stopped: watch::Receiver<bool>,
) -> std::io::Result<()> {
    let graceful = GracefulShutdown::new();
    let connections = Arc::new(Semaphore::new(limits.max_connections.max(1)));
    let mut http = hyper::server::conn::http1::Builder::new();
    http.timer(TokioTimer::new())
        .header_read_timeout(limits.header_read_timeout)
        .keep_alive(true);
    loop {
        let permit = tokio::select! {
            permit = connections.clone().acquire_owned() => match permit {
                Ok(permit) => permit,
                Err(_) => break,
            },
            _ = stop_signal(&mut stopped) => break,
        };
        let accepted = tokio::select! {
            accepted = listener.accept() => accepted,
            _ = stop_signal(&mut stopped) => break,
        };
        let stream = match accepted {
            Ok((stream, _peer)) => stream,
            Err(error) => {
                // Out of file descriptors and the like: wait a little rather than spin.
                tracing::warn!(%error, "accept failed");
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            }
        };
        let _ = stream.set_nodelay(true);
        let handle = Connection::default();
        let service = ServiceBuilder::new()
            .map_request({
                let handle = handle.clone();
                move |mut request: Request<hyper::body::Incoming>| {
                    request.extensions_mut().insert(handle.clone());
                    request
                }
            })
            .service(app.clone());
        let service = TowerToHyperService::new(service);
        let connection = graceful.watch(http.serve_connection(TokioIo::new(stream), service));
        let stopped = stopped.clone();
        tokio::spawn(async move {
            tokio::select! {
                result = connection => {
                    if let Err(error) = result {
                        tracing::debug!(%error, "connection ended with an error");
                    }
                }
                // Dropping the connection closes it (and counts it out of the graceful stop).
                _ = closing(&handle, stopped) => tracing::debug!("connection closed by its stream"),
            }
            drop(permit);
        });
    }
    drop(listener);
    graceful.shutdown().await;
    Ok(())
}

/// Resolves once `stopped` holds `true` (or its sender is gone).
async fn stop_signal(stopped: &mut watch::Receiver<bool>) {
    let _ = stopped.wait_for(|stop| *stop).await;
}
