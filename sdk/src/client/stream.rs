//! `GET /points/stream` (contract v1.2): the ledger's balance stream, Server-Sent Events read
//! with every line and every event bounded.
//!
//! The parser is written here rather than taken from a crate: the SSE crates buffer a line until
//! it ends, however long, and a stream is read for hours from a server this process does not
//! control.

use std::time::Duration;

use serde::Deserialize;

use super::wire::{self, WireBalance};
use super::Stated;
use crate::models::PointBalance;
use crate::{Error, Result};

/// The longest line of the stream; a longer one ends it with [`Error::Protocol`].
pub const MAX_LINE_BYTES: usize = 16 * 1024;
/// The largest `data` of one event; a larger one ends the stream with [`Error::Protocol`].
pub const MAX_EVENT_BYTES: usize = 64 * 1024;
/// The longest `end` reason kept (longer ones are cut).
const MAX_REASON_LEN: usize = 64;

/// What the stream said.
#[derive(Debug, Clone, PartialEq)]
pub enum StreamEvent {
    /// A summary of the user, with the ledger's account of the token.
    Balance(Stated<PointBalance>),
    /// The server ends the stream (`token_expired`, `too_many_streams`, `shutdown`, …).
    End {
        /// The server's reason, as sent (at most 64 characters).
        reason: String,
    },
}

/// An open balance stream.
pub struct BalanceStream {
    response: reqwest::Response,
    parser: SseParser,
}

impl std::fmt::Debug for BalanceStream {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BalanceStream").finish_non_exhaustive()
    }
}

impl BalanceStream {
    pub(super) fn new(response: reqwest::Response) -> Self {
        Self {
            response,
            parser: SseParser::default(),
        }
    }

    /// The next event; `Ok(None)` when the server closed the stream. Nothing at all received for
    /// `idle` (not even a heartbeat) is [`Error::Timeout`]: the connection is taken for dead.
    pub async fn next(&mut self, idle: Duration) -> Result<Option<StreamEvent>> {
        loop {
            if let Some(event) = self.parser.next_event()? {
                if let Some(event) = decode(event)? {
                    return Ok(Some(event));
                }
                continue;
            }
            let chunk = tokio::time::timeout(idle, self.response.chunk())
                .await
                .map_err(|_| Error::Timeout)?
                .map_err(|error| super::transport_error(&error))?;
            match chunk {
                Some(chunk) => self.parser.push(&chunk),
                None => return Ok(None),
            }
        }
    }
}

/// One dispatched event: its `event` name (`message` when absent), `id` and `data`.
#[derive(Debug, Clone, PartialEq, Eq)]
struct RawEvent {
    name: String,
    id: Option<String>,
    data: String,
}

/// The `end` event's data.
#[derive(Deserialize)]
struct WireEnd {
    #[serde(default)]
    reason: Option<String>,
}

fn decode(event: RawEvent) -> Result<Option<StreamEvent>> {
    match event.name.as_str() {
        "balance" => {
            let wire: WireBalance = wire::decode(event.data.as_bytes())?;
            if wire.seq.is_none() {
                return Err(Error::protocol("a stream event without `seq`".into()));
            }
            if let (Some(id), Some(seq)) = (event.id.as_deref(), wire.seq) {
                if id.parse::<i64>().ok() != Some(seq) {
                    return Err(Error::protocol(
                        "a stream event whose `id` is not its `seq`".into(),
                    ));
                }
            }
            let user_id = super::bounded_id(wire.user_id.clone());
            let value = PointBalance::from(wire);
            wire::check_summary(&value)?;
            Ok(Some(StreamEvent::Balance(Stated { user_id, value })))
        }
        "end" => {
            let end: WireEnd =
                serde_json::from_str(&event.data).unwrap_or(WireEnd { reason: None });
            let mut reason = end.reason.unwrap_or_else(|| "unknown".into());
            if reason.len() > MAX_REASON_LEN {
                let mut cut = MAX_REASON_LEN;
                while !reason.is_char_boundary(cut) {
                    cut -= 1;
                }
                reason.truncate(cut);
            }
            Ok(Some(StreamEvent::End { reason }))
        }
        // Events of later contract versions are skipped.
        _ => Ok(None),
    }
}

/// An incremental Server-Sent Events parser (the WHATWG event-stream format; lines end with
/// `\n`, `\r\n` or `\r`), bounded by [`MAX_LINE_BYTES`] and [`MAX_EVENT_BYTES`].
#[derive(Debug, Default)]
struct SseParser {
    /// Bytes received and not parsed yet (at most one line).
    pending: Vec<u8>,
    /// A `\r` ended the last line: a `\n` right after it belongs to it.
    after_cr: bool,
    /// The event being read.
    name: Option<String>,
    id: Option<String>,
    data: String,
    has_data: bool,
    /// Events complete and not taken yet.
    ready: std::collections::VecDeque<RawEvent>,
    /// A bound was crossed: the stream is unusable.
    failed: Option<String>,
}

impl SseParser {
    fn push(&mut self, mut bytes: &[u8]) {
        if self.failed.is_some() {
            return;
        }
        while !bytes.is_empty() {
            if self.after_cr {
                self.after_cr = false;
                if bytes[0] == b'\n' {
                    bytes = &bytes[1..];
                    continue;
                }
            }
            match bytes.iter().position(|&b| b == b'\n' || b == b'\r') {
                Some(end) => {
                    if self.pending.len() + end > MAX_LINE_BYTES {
                        self.failed = Some(format!("a stream line is over {MAX_LINE_BYTES} bytes"));
                        return;
                    }
                    self.pending.extend_from_slice(&bytes[..end]);
                    self.after_cr = bytes[end] == b'\r';
                    bytes = &bytes[end + 1..];
                    let line = std::mem::take(&mut self.pending);
                    self.line(&line);
                    if self.failed.is_some() {
                        return;
                    }
                }
                None => {
                    if self.pending.len() + bytes.len() > MAX_LINE_BYTES {
                        self.failed = Some(format!("a stream line is over {MAX_LINE_BYTES} bytes"));
                        return;
                    }
                    self.pending.extend_from_slice(bytes);
                    bytes = &[];
                }
            }
        }
    }

    fn line(&mut self, line: &[u8]) {
        if line.is_empty() {
            let name = self.name.take();
            let id = self.id.take();
            if std::mem::take(&mut self.has_data) {
                let data = std::mem::take(&mut self.data);
                self.ready.push_back(RawEvent {
                    name: name.unwrap_or_else(|| "message".into()),
                    id,
                    data,
                });
            }
            return;
        }
        if line[0] == b':' {
            return; // a comment: the heartbeat
        }
        let Ok(line) = std::str::from_utf8(line) else {
            self.failed = Some("a stream line is not UTF-8".into());
            return;
        };
        let (field, value) = match line.split_once(':') {
            Some((field, value)) => (field, value.strip_prefix(' ').unwrap_or(value)),
            None => (line, ""),
        };
        match field {
            "event" => self.name = Some(value.to_owned()),
            "id" if !value.contains('\0') => self.id = Some(value.to_owned()),
            "data" => {
                if self.data.len() + value.len() + 1 > MAX_EVENT_BYTES {
                    self.failed = Some(format!("a stream event is over {MAX_EVENT_BYTES} bytes"));
                    return;
                }
                if self.has_data {
                    self.data.push('\n');
                }
                self.data.push_str(value);
                self.has_data = true;
            }
            _ => {}
        }
    }

    fn next_event(&mut self) -> Result<Option<RawEvent>> {
        if let Some(event) = self.ready.pop_front() {
            return Ok(Some(event));
        }
        match &self.failed {
            Some(reason) => Err(Error::protocol(reason.clone())),
            None => Ok(None),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn events(parser: &mut SseParser) -> Vec<RawEvent> {
        std::iter::from_fn(|| parser.next_event().unwrap()).collect()
    }

    #[test]
    fn parses_events_split_anywhere_with_any_line_end() {
        let text = ": ping\r\nid: 3\r\nevent: balance\r\ndata: {\"a\":\rdata: 1}\r\r\n\nevent: end\ndata: {}\n\n";
        for split in 0..text.len() {
            let mut parser = SseParser::default();
            parser.push(&text.as_bytes()[..split]);
            parser.push(&text.as_bytes()[split..]);
            let got = events(&mut parser);
            assert_eq!(
                got,
                vec![
                    RawEvent {
                        name: "balance".into(),
                        id: Some("3".into()),
                        data: "{\"a\":\n1}".into()
                    },
                    RawEvent {
                        name: "end".into(),
                        id: None,
                        data: "{}".into()
                    }
                ],
                "split at {split}"
            );
        }
    }

    #[test]
    fn a_line_or_an_event_over_its_bound_fails_the_stream() {
        let mut parser = SseParser::default();
        parser.push(&vec![b'x'; MAX_LINE_BYTES + 1]);
        assert!(parser.next_event().is_err());
        assert!(parser.pending.len() <= MAX_LINE_BYTES);

        let mut parser = SseParser::default();
        let line = format!("data: {}\n", "y".repeat(MAX_LINE_BYTES - 10));
        for _ in 0..(MAX_EVENT_BYTES / MAX_LINE_BYTES + 1) {
            parser.push(line.as_bytes());
        }
        assert!(parser.next_event().is_err());
        assert!(parser.data.len() <= MAX_EVENT_BYTES);
    }

    #[test]
    fn balance_events_need_a_seq_matching_their_id() {
        let data = r#"{"user_id":"u","seq":4,"balance":1,"total_recharged":1,"total_consumed":0,"total_expired":0,"change":null}"#;
        let event = |id: Option<&str>, data: &str| RawEvent {
            name: "balance".into(),
            id: id.map(str::to_owned),
            data: data.into(),
        };
        assert!(matches!(
            decode(event(Some("4"), data)),
            Ok(Some(StreamEvent::Balance(_)))
        ));
        assert!(decode(event(Some("5"), data)).is_err());
        assert!(decode(event(None, &data.replace("\"seq\":4,", ""))).is_err());
        assert_eq!(
            decode(RawEvent {
                name: "end".into(),
                id: None,
                data: format!("{{\"reason\":\"{}\"}}", "é".repeat(100)),
            })
            .unwrap(),
            Some(StreamEvent::End {
                reason: "é".repeat(32)
            })
        );
        assert_eq!(
            decode(RawEvent {
                name: "later".into(),
                id: None,
                data: "{}".into()
            })
            .unwrap(),
            None
        );
    }
}
