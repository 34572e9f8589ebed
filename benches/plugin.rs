//! The plugin and client SDK against a loopback reference ledger, each figure against a baseline
//! measured in the same run:
//! 1. consume through `LedgerClient` vs a hand-written reqwest request (p50 ratio);
//! 2. `check_cost` invoked through the mock runtime's IPC path (ACL included) vs the SDK call
//!    (p50 added, in µs);
//! 3. 1,000 concurrent balance reads: requests that reach the ledger (single-flight), vs the same
//!    reads hand-written.
//!
//! Run: `cargo bench -p tauri-plugin-points --bench plugin` (plain harness, prints a table).

#[path = "../tests/common/mod.rs"]
mod common;
#[allow(dead_code)]
#[path = "../tests/ipc/harness.rs"]
mod harness;

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::json;
use tauri::async_runtime::block_on;
use tauri_plugin_points::client::{ConsumeRequest, IdempotencyKey};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

const ROUNDS: usize = 2_000;
const WARMUP: usize = 200;

fn main() {
    let ledger = harness::ledger(1_000_000_000);
    let client = ledger.client();
    let token = ledger.token.clone();
    let base = ledger.ledger.base_url();

    // 1. consume: SDK vs hand-written, interleaved so both see the same ledger state.
    let raw = reqwest::Client::builder()
        .timeout(Duration::from_secs(15))
        .build()
        .unwrap();
    let (mut sdk, mut hand) = (Vec::new(), Vec::new());
    let sdk_consume = || {
        let started = Instant::now();
        block_on(client.consume(&ConsumeRequest::new("compose"), &IdempotencyKey::random()))
            .unwrap();
        started.elapsed()
    };
    let hand_consume = || {
        let started = Instant::now();
        block_on(async {
            let response = raw
                .post(format!("{base}/points/consume"))
                .bearer_auth(&token)
                .header("Idempotency-Key", uuid::Uuid::new_v4().to_string())
                .header("Content-Type", "application/json")
                .body(r#"{"service":"compose"}"#)
                .send()
                .await
                .unwrap();
            assert!(response.status().is_success());
            let body: serde_json::Value =
                serde_json::from_slice(&response.bytes().await.unwrap()).unwrap();
            assert!(body["balance"].is_i64());
        });
        started.elapsed()
    };
    for round in 0..WARMUP + ROUNDS {
        // Alternate which goes first, so neither always follows the other.
        let (sdk_time, hand_time) = if round % 2 == 0 {
            let sdk_time = sdk_consume();
            (sdk_time, hand_consume())
        } else {
            let hand_time = hand_consume();
            (sdk_consume(), hand_time)
        };
        if round >= WARMUP {
            sdk.push(sdk_time);
            hand.push(hand_time);
        }
    }
    let (sdk50, hand50) = (percentile(&mut sdk, 50.0), percentile(&mut hand, 50.0));
    println!(
        "consume, LedgerClient      p50 {:>8.1} µs  p90 {:>8.1} µs",
        micros(sdk50),
        micros(percentile(&mut sdk, 90.0))
    );
    println!(
        "consume, hand-written      p50 {:>8.1} µs  p90 {:>8.1} µs",
        micros(hand50),
        micros(percentile(&mut hand, 90.0))
    );
    println!(
        "consume p50 ratio (SDK / hand-written): {:.3}",
        micros(sdk50) / micros(hand50)
    );

    // 2. invoke through the mock runtime (IPC + ACL + command) vs the SDK call it wraps.
    let app = harness::signed_in_app(&ledger);
    let (mut invoked, mut direct) = (Vec::new(), Vec::new());
    let invoke = || {
        let started = Instant::now();
        app.invoke("check_cost", json!({"service": "compose"}))
            .unwrap();
        started.elapsed()
    };
    let call_directly = || {
        let started = Instant::now();
        block_on(client.cost("compose", None)).unwrap();
        started.elapsed()
    };
    for round in 0..WARMUP + ROUNDS {
        let (invoke_time, direct_time) = if round % 2 == 0 {
            let invoke_time = invoke();
            (invoke_time, call_directly())
        } else {
            let direct_time = call_directly();
            (invoke(), direct_time)
        };
        if round >= WARMUP {
            invoked.push(invoke_time);
            direct.push(direct_time);
        }
    }
    let (invoke50, direct50) = (
        percentile(&mut invoked, 50.0),
        percentile(&mut direct, 50.0),
    );
    println!(
        "check_cost, invoke (mock)  p50 {:>8.1} µs",
        micros(invoke50)
    );
    println!(
        "check_cost, SDK direct     p50 {:>8.1} µs",
        micros(direct50)
    );
    println!(
        "IPC added at p50: {:.1} µs",
        micros(invoke50) - micros(direct50)
    );

    // 3. 1,000 concurrent balance reads through a proxy that counts the requests it forwards.
    let proxy = block_on(CountingProxy::start(ledger.ledger.addr()));
    let through_proxy = common::client_for(&proxy.base_url, Some(&token));
    let reads = block_on(futures_util::future::join_all(
        (0..1000).map(|_| through_proxy.balance()),
    ));
    assert!(reads.iter().all(Result::is_ok));
    let sdk_requests = proxy.requests();
    let hand_reads = block_on(futures_util::future::join_all((0..1000).map(|_| async {
        raw.get(format!("{}/points/balance", proxy.base_url))
            .bearer_auth(&token)
            .send()
            .await
    })));
    // The ledger sheds load past its in-flight limit (503 `overloaded`): each read is answered.
    assert!(hand_reads
        .iter()
        .all(|read| read.as_ref().is_ok_and(|response| {
            response.status().is_success() || response.status().as_u16() == 503
        })));
    let shed = hand_reads
        .iter()
        .filter(|read| read.as_ref().is_ok_and(|r| r.status().as_u16() == 503))
        .count();
    println!(
        "1,000 concurrent balance reads -> ledger requests: SDK {sdk_requests}, hand-written {} ({shed} shed by the ledger with 503)",
        proxy.requests() - sdk_requests
    );
}

fn percentile(samples: &mut [Duration], p: f64) -> Duration {
    samples.sort();
    let index = ((samples.len() - 1) as f64 * p / 100.0).round() as usize;
    samples[index]
}

fn micros(duration: Duration) -> f64 {
    duration.as_secs_f64() * 1e6
}

/// A TCP proxy in front of the ledger that counts the `GET /points/balance` requests it forwards.
struct CountingProxy {
    base_url: String,
    count: Arc<AtomicUsize>,
}

impl CountingProxy {
    async fn start(target: std::net::SocketAddr) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let base_url = format!("http://{}", listener.local_addr().unwrap());
        let count = Arc::new(AtomicUsize::new(0));
        let counter = count.clone();
        tokio::spawn(async move {
            while let Ok((inbound, _)) = listener.accept().await {
                tokio::spawn(forward(inbound, target, counter.clone()));
            }
        });
        Self { base_url, count }
    }

    fn requests(&self) -> usize {
        self.count.load(Ordering::SeqCst)
    }
}

async fn forward(inbound: TcpStream, target: std::net::SocketAddr, counter: Arc<AtomicUsize>) {
    let outbound = TcpStream::connect(target).await.unwrap();
    let (mut in_read, mut in_write) = inbound.into_split();
    let (mut out_read, mut out_write) = outbound.into_split();
    let upstream = async move {
        const PATTERN: &[u8] = b"GET /points/balance ";
        // The tail of the previous read, so a request line split across reads is still seen.
        let mut window: Vec<u8> = Vec::new();
        let mut buffer = [0u8; 16 * 1024];
        loop {
            let read = match in_read.read(&mut buffer).await {
                Ok(0) | Err(_) => break,
                Ok(read) => read,
            };
            window.extend_from_slice(&buffer[..read]);
            let found = window
                .windows(PATTERN.len())
                .filter(|candidate| *candidate == PATTERN)
                .count();
            counter.fetch_add(found, Ordering::SeqCst);
            let keep = window.len().min(PATTERN.len() - 1);
            window.drain(..window.len() - keep);
            if out_write.write_all(&buffer[..read]).await.is_err() {
                break;
            }
        }
        let _ = out_write.shutdown().await;
    };
    let downstream = async move {
        let _ = tokio::io::copy(&mut out_read, &mut in_write).await;
        let _ = in_write.shutdown().await;
    };
    tokio::join!(upstream, downstream);
}
