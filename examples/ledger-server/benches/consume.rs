//! Consume throughput of the ledger over HTTP: N users recharged with plenty of points, C clients
//! each posting `POST /points/consume` (a fixed-price service, a fresh idempotency key each time)
//! as fast as answers come back, for a fixed time. Prints one Markdown table row.
//!
//! cargo bench -p points-ledger --bench consume -- --database-url URL --users 1000 --clients 32 --seconds 15 [--hot]
//!
//! `--hot` sends every request for one user (the row-lock worst case).

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use points_ledger::LedgerConfig;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use uuid::Uuid;

/// A minimal keep-alive HTTP/1.1 client, so that the load generator costs little next to the
/// server it measures (as pgbench's client does next to PostgreSQL).
struct Connection {
    stream: TcpStream,
    buffer: Vec<u8>,
}

impl Connection {
    async fn open(addr: std::net::SocketAddr) -> Self {
        let stream = TcpStream::connect(addr).await.expect("connect");
        stream.set_nodelay(true).unwrap();
        Self {
            stream,
            buffer: Vec::with_capacity(4096),
        }
    }

    /// Posts one consume; returns the response's status code.
    async fn consume(&mut self, token: &str, key: &str) -> u16 {
        const BODY: &str = r#"{"service":"title"}"#;
        let request = format!(
            "POST /points/consume HTTP/1.1\r\nhost: ledger\r\nauthorization: Bearer {token}\r\n\
             idempotency-key: {key}\r\ncontent-type: application/json\r\ncontent-length: {}\r\n\r\n{BODY}",
            BODY.len()
        );
        self.stream
            .write_all(request.as_bytes())
            .await
            .expect("send");
        self.buffer.clear();
        loop {
            if let Some(end) = find(&self.buffer, b"\r\n\r\n") {
                let head = std::str::from_utf8(&self.buffer[..end]).expect("ASCII head");
                let status: u16 = head[9..12].parse().expect("status");
                let length: usize = head
                    .lines()
                    .find_map(|l| {
                        let (name, value) = l.split_once(':')?;
                        name.eq_ignore_ascii_case("content-length")
                            .then(|| value.trim().parse().ok())?
                    })
                    .expect("content-length");
                while self.buffer.len() < end + 4 + length {
                    self.read_more().await;
                }
                return status;
            }
            self.read_more().await;
        }
    }

    async fn read_more(&mut self) {
        let mut chunk = [0u8; 4096];
        let n = self.stream.read(&mut chunk).await.expect("receive");
        assert!(n > 0, "the server closed the connection");
        self.buffer.extend_from_slice(&chunk[..n]);
    }
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|w| w == needle)
}

struct Args {
    database_url: String,
    users: usize,
    clients: usize,
    seconds: u64,
    hot: bool,
    max_connections: u32,
    label: String,
}

fn parse_args() -> Args {
    let mut args = Args {
        database_url: "sqlite::memory:".into(),
        users: 1000,
        clients: 32,
        seconds: 15,
        hot: false,
        max_connections: 16,
        label: String::new(),
    };
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        let mut value = || it.next().unwrap_or_else(|| panic!("{flag} needs a value"));
        match flag.as_str() {
            "--database-url" => args.database_url = value(),
            "--users" => args.users = value().parse().expect("--users"),
            "--clients" => args.clients = value().parse().expect("--clients"),
            "--seconds" => args.seconds = value().parse().expect("--seconds"),
            "--max-connections" => {
                args.max_connections = value().parse().expect("--max-connections")
            }
            "--label" => args.label = value(),
            "--hot" => args.hot = true,
            "--bench" => {}
            other => panic!("unknown flag {other}"),
        }
    }
    args
}

fn main() {
    let args = parse_args();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(run(args));
}

async fn run(args: Args) {
    let config = LedgerConfig::ephemeral()
        .with_database_url(args.database_url.clone())
        .with_max_connections(args.max_connections);
    let ledger = points_ledger::serve(config)
        .await
        .expect("start the ledger");
    let users: Vec<Uuid> = (0..if args.hot { 1 } else { args.users })
        .map(|_| Uuid::new_v4())
        .collect();
    let expires_at = time::OffsetDateTime::now_utc() + time::Duration::days(365);
    for user in &users {
        ledger
            .recharge(*user, 1_000_000_000, expires_at)
            .await
            .expect("recharge");
    }
    let tokens: Arc<Vec<String>> = Arc::new(users.iter().map(|u| ledger.token_for(*u)).collect());
    let addr = ledger.addr();

    let stop = Arc::new(AtomicBool::new(false));
    let started = Instant::now();
    let mut tasks = tokio::task::JoinSet::new();
    for client in 0..args.clients {
        let (tokens, stop) = (tokens.clone(), stop.clone());
        tasks.spawn(async move {
            let mut connection = Connection::open(addr).await;
            let mut latencies_us: Vec<u32> = Vec::with_capacity(1 << 16);
            let mut failures = 0u64;
            let mut n = client;
            while !stop.load(Ordering::Relaxed) {
                let token = &tokens[n % tokens.len()];
                n += 7919; // a prime stride spreads clients over users
                let sent = Instant::now();
                match connection
                    .consume(token, &Uuid::new_v4().simple().to_string())
                    .await
                {
                    200 => {
                        latencies_us.push(sent.elapsed().as_micros().min(u32::MAX as u128) as u32)
                    }
                    _ => failures += 1,
                }
            }
            (latencies_us, failures)
        });
    }
    let groups_before = ledger.ledger().group_stats();
    tokio::time::sleep(Duration::from_secs(args.seconds)).await;
    stop.store(true, Ordering::Relaxed);
    let groups_after = ledger.ledger().group_stats();
    let mut latencies = Vec::new();
    let mut failures = 0;
    for (l, f) in tasks.join_all().await {
        latencies.extend(l);
        failures += f;
    }
    let elapsed = started.elapsed().as_secs_f64();
    latencies.sort_unstable();
    let pct = |p: f64| {
        latencies
            .get(((latencies.len() as f64 * p) as usize).min(latencies.len().saturating_sub(1)))
            .copied()
            .unwrap_or(0) as f64
            / 1000.0
    };
    let tps = latencies.len() as f64 / elapsed;
    // The groups applied during the run: how many charges each held on average, and how long
    // one took to apply (the most a charge waits for the group ahead of it).
    let groups = groups_after.groups - groups_before.groups;
    let charges = groups_after.charges - groups_before.charges;
    let busy = groups_after.busy_micros - groups_before.busy_micros;
    let per_group = |n: u64| {
        if groups == 0 {
            0.0
        } else {
            n as f64 / groups as f64
        }
    };
    println!(
        "| {} | {} | {} | {:.0} | {:.2} | {:.2} | {} | {:.1} | {:.2} |",
        args.label,
        users.len(),
        args.clients,
        tps,
        pct(0.50),
        pct(0.99),
        failures,
        per_group(charges),
        per_group(busy) / 1000.0,
    );
    ledger.shutdown().await;
}
