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
//! On stop the listener closes at once, idle connections close, and requests in flight finish
//! (each within its request timeout).

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
use tokio::sync::{watch, Semaphore};
use tower::ServiceBuilder;

use crate::problem::Problem;

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
        let service = TowerToHyperService::new(app.clone());
        let connection = graceful.watch(http.serve_connection(TokioIo::new(stream), service));
        tokio::spawn(async move {
            if let Err(error) = connection.await {
                tracing::debug!(%error, "connection ended with an error");
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
