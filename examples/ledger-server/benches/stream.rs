//! Fan-out of the balance stream: one ledger process (the `points-ledger` binary, spawned) holds
//! many concurrent streams of many users while consumes come in at a fixed rate; each write is
//! for a user with an open stream, and each stream waits for its events. Prints Markdown rows.
//!
//! cargo bench -p points-ledger --bench stream -- --streams 10000 --rate 1000 [--writes-per-user 1]
//!     [--database-url URL] [--two-instances] [--label TEXT]
//!
//! - Delivery latency: from sending a consume to receiving its event (the commit is in between),
//!   p50/p99, against the consume's own round trip (send → answer) in the same run.
//! - Memory per idle stream: the ledger process's RSS after the streams are open and idle, minus
//!   its RSS before, divided by the streams.
//! - Starved: streams that did not get every event they should have; duplicates and events out of
//!   order are counted too.
//! - `--two-instances` (PostgreSQL): two ledger processes on the database, streams on one, writes
//!   through the other.

use std::net::SocketAddr;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

#[path = "../tests/common/sse.rs"]
mod sse;

const SECRET: &str = "a-bench-secret-of-at-least-32-bytes-long";
const ADMIN_KEY: &str = "a-bench-admin-key-long-enough";

struct Args {
    streams: usize,
    rate: u64,
    writes_per_user: u64,
    database_url: Option<String>,
    two_instances: bool,
    label: String,
}

fn args() -> Args {
    let mut args = Args {
        streams: 500,
        rate: 1000,
        writes_per_user: 1,
        database_url: None,
        two_instances: false,
        label: String::new(),
    };
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        let mut value = || it.next().unwrap_or_else(|| panic!("{flag} needs a value"));
        match flag.as_str() {
            "--streams" => args.streams = value().parse().expect("--streams N"),
            "--rate" => args.rate = value().parse().expect("--rate N"),
            "--writes-per-user" => {
                args.writes_per_user = value().parse().expect("--writes-per-user N")
            }
            "--database-url" => args.database_url = Some(value()),
            "--two-instances" => args.two_instances = true,
            "--label" => args.label = value(),
            "--bench" => {}
            other => panic!("unknown flag {other}"),
        }
    }
    args
}

/// A ledger process, killed on drop.
struct Ledger {
    child: Child,
    addr: SocketAddr,
}

impl Drop for Ledger {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Ledger {
    fn spawn(database_url: &str, streams: usize) -> Self {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let addr: SocketAddr = ([127, 0, 0, 1], port).into();
        let capacity = (streams + 256).to_string();
        let child = Command::new(env!("CARGO_BIN_EXE_points-ledger"))
            .args([
                "serve",
                "--database-url",
                database_url,
                "--bind",
                &addr.to_string(),
            ])
            .args(["--jwt-secret", SECRET, "--admin-key", ADMIN_KEY])
            .args([
                "--max-streams",
                &capacity,
                "--max-http-connections",
                &capacity,
            ])
            .args(["--max-in-flight", "4096", "--max-connections", "16"])
            .env("RUST_LOG", "warn")
            .stdout(Stdio::null())
            .spawn()
            .expect("start points-ledger");
        let ledger = Self { child, addr };
        let deadline = Instant::now() + Duration::from_secs(30);
        while std::net::TcpStream::connect(addr).is_err() {
            assert!(Instant::now() < deadline, "points-ledger did not start");
            std::thread::sleep(Duration::from_millis(50));
        }
        ledger
    }

    /// Resident memory of the process, in bytes.
    fn rss(&self) -> u64 {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.child.id()))
            .expect("/proc status");
        status
            .lines()
            .find_map(|l| l.strip_prefix("VmRSS:"))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
            .expect("VmRSS")
            * 1024
    }
}

fn token(user: uuid::Uuid) -> String {
    let now = time::OffsetDateTime::now_utc().unix_timestamp();
    jsonwebtoken::encode(
        &jsonwebtoken::Header::new(jsonwebtoken::Algorithm::HS256),
        &serde_json::json!({"sub": user.to_string(), "iat": now, "exp": now + 3600}),
        &jsonwebtoken::EncodingKey::from_secret(SECRET.as_bytes()),
    )
    .unwrap()
}

fn percentile(sorted: &[u64], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let at = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[at] as f64 / 1000.0
}

/// What one stream saw.
#[derive(Default)]
struct Seen {
    events: u64,
    duplicates_or_out_of_order: u64,
}

fn main() {
    let args = args();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(run(args));
}

async fn run(args: Args) {
    let dir = tempfile::tempdir().unwrap();
    let url = args.database_url.clone().unwrap_or_else(|| {
        format!(
            "sqlite:{}?mode=rwc",
            dir.path().join("stream.sqlite").display()
        )
    });
    let streamer = Ledger::spawn(&url, args.streams);
    let writer = if args.two_instances {
        Some(Ledger::spawn(&url, 16))
    } else {
        None
    };
    let write_addr = writer.as_ref().map_or(streamer.addr, |w| w.addr);
    let users: Vec<uuid::Uuid> = (0..args.streams).map(|_| uuid::Uuid::new_v4()).collect();
    let tokens: Arc<Vec<String>> = Arc::new(users.iter().map(|u| token(*u)).collect());

    // Warm up the ledger (one stream, one write) before the baseline RSS.
    {
        let warm = uuid::Uuid::new_v4();
        let mut stream = sse::open(streamer.addr, &token(warm), None).await;
        stream.balance(Duration::from_secs(10)).await;
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
    let rss_before = streamer.rss();

    // Open every stream, 200 at a time; each reads its snapshot, then waits for its events.
    let started = Instant::now();
    let received: Arc<Vec<AtomicU64>> = Arc::new(
        (0..args.streams * args.writes_per_user as usize)
            .map(|_| AtomicU64::new(0))
            .collect(),
    );
    let (opened_tx, mut opened_rx) = tokio::sync::mpsc::channel::<()>(args.streams.max(1));
    let gate = Arc::new(tokio::sync::Semaphore::new(200));
    let mut readers = Vec::with_capacity(args.streams);
    for i in 0..args.streams {
        let tokens = tokens.clone();
        let received = received.clone();
        let opened = opened_tx.clone();
        let gate = gate.clone();
        let addr = streamer.addr;
        let k = args.writes_per_user;
        readers.push(tokio::spawn(async move {
            let permit = gate.acquire_owned().await.unwrap();
            let mut stream = sse::open(addr, &tokens[i], None).await;
            assert_eq!(stream.status, 200, "stream {i}: {}", stream.body);
            let first = stream.balance(Duration::from_secs(60)).await;
            assert_eq!(first["seq"], 0);
            drop(permit);
            let _ = opened.send(()).await;
            let mut seen = Seen::default();
            let mut last = 0;
            while seen.events < k {
                match stream.next().await {
                    Some(sse::Frame::Balance { id, .. }) => {
                        let at = started.elapsed().as_nanos() as u64;
                        if id != last + 1 {
                            seen.duplicates_or_out_of_order += 1;
                        } else if id >= 1 && id <= k as i64 {
                            received[i * k as usize + id as usize - 1].store(at, Ordering::Relaxed);
                        }
                        last = id.max(last);
                        seen.events += 1;
                    }
                    Some(_) => {}
                    None => break,
                }
            }
            seen
        }));
    }
    drop(opened_tx);
    let mut opened = 0;
    while opened < args.streams {
        if opened_rx.recv().await.is_none() {
            break;
        }
        opened += 1;
    }
    let open_seconds = started.elapsed().as_secs_f64();
    tokio::time::sleep(Duration::from_secs(2)).await;
    let rss_streams = streamer.rss();
    let per_stream = rss_streams.saturating_sub(rss_before) as f64 / args.streams as f64;

    // Writes at a fixed rate: user i's k-th consume, round robin over the users.
    let total_writes = args.streams as u64 * args.writes_per_user;
    let sent_at: Arc<Vec<AtomicU64>> =
        Arc::new((0..total_writes).map(|_| AtomicU64::new(0)).collect());
    let round_trips: Arc<std::sync::Mutex<Vec<u64>>> = Arc::default();
    let http = reqwest::Client::builder()
        .pool_max_idle_per_host(512)
        .build()
        .unwrap();
    let in_flight = Arc::new(tokio::sync::Semaphore::new(512));
    let write_start = Instant::now();
    let mut writes = Vec::with_capacity(total_writes as usize);
    let interval = Duration::from_secs_f64(1.0 / args.rate as f64);
    for n in 0..total_writes {
        let due = write_start + interval.mul_f64(n as f64);
        tokio::time::sleep_until(due.into()).await;
        let round = n / args.streams as u64;
        let i = (n % args.streams as u64) as usize;
        let permit = in_flight.clone().acquire_owned().await.unwrap();
        let (http, tokens, sent_at, round_trips) = (
            http.clone(),
            tokens.clone(),
            sent_at.clone(),
            round_trips.clone(),
        );
        let k = args.writes_per_user;
        writes.push(tokio::spawn(async move {
            // A user's writes are `streams` apart: the previous one is answered by then.
            let sent = Instant::now();
            sent_at[i * k as usize + round as usize]
                .store(started.elapsed().as_nanos() as u64, Ordering::Relaxed);
            let response = http
                .post(format!("http://{write_addr}/points/consume"))
                .bearer_auth(&tokens[i])
                .header("idempotency-key", format!("bench-{round}"))
                .json(&serde_json::json!({"service": "title", "allow_debt": true}))
                .send()
                .await
                .expect("consume");
            assert_eq!(response.status(), 200);
            round_trips
                .lock()
                .unwrap()
                .push(sent.elapsed().as_micros() as u64);
            drop(permit);
        }));
    }
    for write in writes {
        write.await.unwrap();
    }
    let write_seconds = write_start.elapsed().as_secs_f64();

    // Every stream should now get its events.
    let mut starved = 0;
    let mut disorder = 0;
    for reader in readers {
        match tokio::time::timeout(Duration::from_secs(30), reader).await {
            Ok(Ok(seen)) => disorder += seen.duplicates_or_out_of_order,
            _ => starved += 1,
        }
    }
    let mut latencies: Vec<u64> = (0..total_writes as usize)
        .filter_map(|n| {
            let got = received[n].load(Ordering::Relaxed);
            let sent = sent_at[n].load(Ordering::Relaxed);
            (got > 0 && sent > 0).then(|| got.saturating_sub(sent) / 1000)
        })
        .collect();
    let missing = total_writes as usize - latencies.len();
    latencies.sort_unstable();
    let mut trips = round_trips.lock().unwrap().clone();
    trips.sort_unstable();
    let (e50, e99) = (percentile(&latencies, 0.5), percentile(&latencies, 0.99));
    let (r50, r99) = (percentile(&trips, 0.5), percentile(&trips, 0.99));
    println!(
        "| {} | {} | {:.0} | {:.1} | {:.2} / {:.2} | {:.2} / {:.2} | {:.2} / {:.2} | {:.1} | {} | {} | {} |",
        args.label,
        args.streams,
        total_writes as f64 / write_seconds,
        open_seconds,
        e50,
        e99,
        r50,
        r99,
        e50 / r50,
        e99 / r99,
        per_stream / 1024.0,
        starved,
        missing,
        disorder,
    );
    drop(writer);
    drop(streamer);
}
