//! A tiny HTTP server that misbehaves on purpose: it answers each request with the next scripted
//! reply (the last one repeats) and records what it received. Only for faults the real ledger
//! never makes.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

/// What the stub does with one request.
#[derive(Clone, Debug)]
pub enum Reply {
    /// Writes these bytes (a whole HTTP response, or part of one) and closes.
    Raw(Vec<u8>),
    /// Waits, then replies.
    After(Duration, Box<Reply>),
    /// Resets the connection without answering.
    Reset,
}

impl Reply {
    /// A complete response with a body and `Content-Length`.
    pub fn status(status: u16, content_type: &str, body: &str) -> Self {
        Self::with_headers(status, &[("Content-Type", content_type)], body)
    }

    /// A JSON response.
    pub fn json(status: u16, body: &str) -> Self {
        Self::status(status, "application/json", body)
    }

    /// A complete response with extra headers.
    pub fn with_headers(status: u16, headers: &[(&str, &str)], body: &str) -> Self {
        let mut head = format!(
            "HTTP/1.1 {status} X\r\nContent-Length: {}\r\nConnection: close\r\n",
            body.len()
        );
        for (name, value) in headers {
            head.push_str(&format!("{name}: {value}\r\n"));
        }
        head.push_str("\r\n");
        Self::Raw([head.as_bytes(), body.as_bytes()].concat())
    }
}

/// One request as received.
#[derive(Clone, Debug)]
pub struct Received {
    pub request_line: String,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl Received {
    /// A header's value (names compared case-insensitively).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(key, _)| key.eq_ignore_ascii_case(name))
            .map(|(_, value)| value.as_str())
    }
}

/// A running stub.
pub struct Stub {
    pub base_url: String,
    received: Arc<Mutex<Vec<Received>>>,
}

impl Stub {
    /// Serves `replies` in order on a loopback port.
    pub async fn start(replies: Vec<Reply>) -> Self {
        assert!(!replies.is_empty());
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let base_url = format!("http://{}", listener.local_addr().unwrap());
        let received = Arc::new(Mutex::new(Vec::new()));
        let script = Arc::new(Mutex::new(replies));
        let log = received.clone();
        tokio::spawn(async move {
            let mut served = 0usize;
            loop {
                let Ok((stream, _)) = listener.accept().await else {
                    return;
                };
                let reply = {
                    let script = script.lock().unwrap();
                    script[served.min(script.len() - 1)].clone()
                };
                served += 1;
                tokio::spawn(serve(stream, reply, log.clone()));
            }
        });
        Self { base_url, received }
    }

    /// Every request received so far.
    pub fn received(&self) -> Vec<Received> {
        self.received.lock().unwrap().clone()
    }
}

async fn serve(mut stream: TcpStream, reply: Reply, log: Arc<Mutex<Vec<Received>>>) {
    let Some(request) = read_request(&mut stream).await else {
        return;
    };
    log.lock().unwrap().push(request);
    let mut reply = reply;
    loop {
        match reply {
            Reply::After(wait, next) => {
                tokio::time::sleep(wait).await;
                reply = *next;
            }
            Reply::Reset => {
                let _ = stream.set_zero_linger();
                drop(stream);
                return;
            }
            Reply::Raw(bytes) => {
                let _ = stream.write_all(&bytes).await;
                let _ = stream.shutdown().await;
                return;
            }
        }
    }
}

async fn read_request(stream: &mut TcpStream) -> Option<Received> {
    let mut buffer = Vec::new();
    let mut chunk = [0u8; 4096];
    let head_end = loop {
        if let Some(end) = buffer.windows(4).position(|window| window == b"\r\n\r\n") {
            break end;
        }
        let read = stream.read(&mut chunk).await.ok()?;
        if read == 0 {
            return None;
        }
        buffer.extend_from_slice(&chunk[..read]);
    };
    let head = String::from_utf8_lossy(&buffer[..head_end]).to_string();
    let mut lines = head.split("\r\n");
    let request_line = lines.next()?.to_owned();
    let headers: Vec<(String, String)> = lines
        .filter_map(|line| line.split_once(':'))
        .map(|(name, value)| (name.trim().to_owned(), value.trim().to_owned()))
        .collect();
    let length: usize = headers
        .iter()
        .find(|(name, _)| name.eq_ignore_ascii_case("content-length"))
        .and_then(|(_, value)| value.parse().ok())
        .unwrap_or(0);
    let mut body = buffer[head_end + 4..].to_vec();
    while body.len() < length {
        let read = stream.read(&mut chunk).await.ok()?;
        if read == 0 {
            break;
        }
        body.extend_from_slice(&chunk[..read]);
    }
    Some(Received {
        request_line,
        headers,
        body,
    })
}
