//! A small Server-Sent Events client over a raw TCP connection (HTTP/1.1, chunked bodies), for
//! the balance stream's tests and benchmark: it reads exactly what the server sends.
#![allow(dead_code)]

use std::net::SocketAddr;
use std::time::Duration;

use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpStream;

/// One frame of the stream.
#[derive(Debug, Clone, PartialEq)]
pub enum Frame {
    /// `event: balance` with its `id` and JSON `data`.
    Balance { id: i64, data: serde_json::Value },
    /// `event: end` with its `reason`.
    End(String),
    /// A comment line (`: ping`).
    Comment(String),
}

impl Frame {
    /// The event's `seq`, for a balance event.
    pub fn seq(&self) -> Option<i64> {
        match self {
            Frame::Balance { data, .. } => data["seq"].as_i64(),
            _ => None,
        }
    }
}

/// An open stream.
pub struct SseClient {
    reader: BufReader<TcpStream>,
    /// The status code of the answer.
    pub status: u16,
    /// The answer's head, lowercased.
    pub head: String,
    /// The body when it is not a stream (a problem document).
    pub body: String,
    decoded: Vec<u8>,
    chunk_left: usize,
    finished: bool,
}

/// Opens `GET /points/stream` on `addr` with `token` and, when given, `Last-Event-ID`.
pub async fn open(addr: SocketAddr, token: &str, last_event_id: Option<&str>) -> SseClient {
    open_with(addr, token, last_event_id, None).await
}

/// [`open`], with the client's receive buffer set to `recv_buffer` bytes when given.
pub async fn open_with(
    addr: SocketAddr,
    token: &str,
    last_event_id: Option<&str>,
    recv_buffer: Option<u32>,
) -> SseClient {
    let socket = tokio::net::TcpSocket::new_v4().expect("socket");
    if let Some(size) = recv_buffer {
        socket.set_recv_buffer_size(size).expect("SO_RCVBUF");
    }
    let mut stream = socket.connect(addr).await.expect("connect to the ledger");
    let mut request = format!(
        "GET /points/stream HTTP/1.1\r\nhost: ledger\r\naccept: text/event-stream\r\n\
         authorization: Bearer {token}\r\n"
    );
    if let Some(id) = last_event_id {
        request.push_str(&format!("last-event-id: {id}\r\n"));
    }
    request.push_str("\r\n");
    stream
        .write_all(request.as_bytes())
        .await
        .expect("send the request");
    let mut reader = BufReader::new(stream);
    let mut head = String::new();
    loop {
        let mut line = String::new();
        let n = reader.read_line(&mut line).await.expect("read the head");
        assert!(n > 0, "connection closed in the head: {head}");
        if line == "\r\n" {
            break;
        }
        head.push_str(&line.to_ascii_lowercase());
    }
    let status: u16 = head
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .expect("a status line");
    let mut client = SseClient {
        reader,
        status,
        head,
        body: String::new(),
        decoded: Vec::new(),
        chunk_left: 0,
        finished: false,
    };
    if status != 200 {
        let length = client
            .header("content-length")
            .and_then(|v| v.parse::<usize>().ok())
            .unwrap_or(0);
        let mut body = vec![0; length];
        client
            .reader
            .read_exact(&mut body)
            .await
            .expect("read the body");
        client.body = String::from_utf8_lossy(&body).into_owned();
    }
    client
}

impl SseClient {
    /// A header of the answer (name lowercase).
    pub fn header(&self, name: &str) -> Option<String> {
        self.head.lines().find_map(|line| {
            let (key, value) = line.split_once(':')?;
            (key.trim() == name).then(|| value.trim().to_owned())
        })
    }

    /// Reads more of the chunked body into `decoded`; `false` at its end or on a closed
    /// connection.
    async fn fill(&mut self) -> bool {
        if self.finished {
            return false;
        }
        if self.chunk_left == 0 {
            let mut size = String::new();
            match self.reader.read_line(&mut size).await {
                Ok(0) | Err(_) => {
                    self.finished = true;
                    return false;
                }
                Ok(_) => {}
            }
            let size = size.trim();
            if size.is_empty() {
                // The CRLF after a chunk.
                return true;
            }
            let size = usize::from_str_radix(size.split(';').next().unwrap_or(""), 16)
                .expect("a chunk size");
            if size == 0 {
                self.finished = true;
                return false;
            }
            self.chunk_left = size;
        }
        let mut buf = vec![0; self.chunk_left.min(16 * 1024)];
        match self.reader.read(&mut buf).await {
            Ok(0) | Err(_) => {
                self.finished = true;
                false
            }
            Ok(n) => {
                self.chunk_left -= n;
                self.decoded.extend_from_slice(&buf[..n]);
                true
            }
        }
    }

    /// The next frame, `None` once the server closed the stream.
    pub async fn next(&mut self) -> Option<Frame> {
        loop {
            if let Some(at) = self.decoded.windows(2).position(|w| w == b"\n\n") {
                let block: Vec<u8> = self.decoded.drain(..at + 2).collect();
                let block = String::from_utf8(block).expect("UTF-8 events");
                return Some(parse(&block));
            }
            if !self.fill().await {
                return None;
            }
        }
    }

    /// The next frame within `wait`, `None` when none came (or the stream ended).
    pub async fn next_within(&mut self, wait: Duration) -> Option<Frame> {
        tokio::time::timeout(wait, self.next()).await.ok().flatten()
    }

    /// The next frame that is not a comment, within `wait`; panics when none came.
    pub async fn event(&mut self, wait: Duration) -> Frame {
        let deadline = tokio::time::Instant::now() + wait;
        loop {
            let left = deadline.saturating_duration_since(tokio::time::Instant::now());
            match tokio::time::timeout(left, self.next()).await {
                Ok(Some(Frame::Comment(_))) => continue,
                Ok(Some(frame)) => return frame,
                Ok(None) => panic!("the stream ended"),
                Err(_) => panic!("no event within {wait:?}"),
            }
        }
    }

    /// The next balance event within `wait`: its `data`; panics on anything else.
    pub async fn balance(&mut self, wait: Duration) -> serde_json::Value {
        match self.event(wait).await {
            Frame::Balance { id, data } => {
                assert_eq!(Some(id), data["seq"].as_i64(), "the id is the seq");
                data
            }
            other => panic!("expected a balance event, got {other:?}"),
        }
    }

    /// Whether the server sends no event (a comment aside) within `wait`.
    pub async fn quiet_for(&mut self, wait: Duration) -> Result<(), Frame> {
        let deadline = tokio::time::Instant::now() + wait;
        loop {
            let left = deadline.saturating_duration_since(tokio::time::Instant::now());
            match tokio::time::timeout(left, self.next()).await {
                Ok(Some(Frame::Comment(_))) => continue,
                Ok(Some(frame)) => return Err(frame),
                Ok(None) | Err(_) => return Ok(()),
            }
        }
    }
}

fn parse(block: &str) -> Frame {
    let (mut id, mut event, mut data, mut comment) = (None, None, String::new(), None);
    for line in block.lines() {
        if let Some(text) = line.strip_prefix(':') {
            comment = Some(text.trim_start().to_owned());
        } else if let Some(value) = line.strip_prefix("id: ") {
            id = Some(value.parse::<i64>().expect("a numeric id"));
        } else if let Some(value) = line.strip_prefix("event: ") {
            event = Some(value.to_owned());
        } else if let Some(value) = line.strip_prefix("data: ") {
            data.push_str(value);
        } else if !line.is_empty() {
            panic!("unexpected line {line:?} in {block:?}");
        }
    }
    match event.as_deref() {
        Some("balance") => Frame::Balance {
            id: id.expect("a balance event has an id"),
            data: serde_json::from_str(&data).expect("JSON data"),
        },
        Some("end") => {
            let data: serde_json::Value = serde_json::from_str(&data).expect("JSON data");
            Frame::End(data["reason"].as_str().expect("a reason").to_owned())
        }
        None => Frame::Comment(comment.expect("a comment")),
        Some(other) => panic!("unexpected event {other:?}"),
    }
}
