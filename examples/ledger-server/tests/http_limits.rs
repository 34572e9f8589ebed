//! What a client may hold of the server: a request's head within the header read timeout, a
//! whole request within the request timeout, a bounded body, a bounded number of requests in
//! flight. Each refusal is a problem document with a stable `code`.

use std::time::Duration;

use points_ledger::http::HttpLimits;
use points_ledger::{LedgerConfig, RunningLedger};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

async fn ledger(limits: HttpLimits) -> (RunningLedger, String) {
    let ledger = points_ledger::serve(LedgerConfig::ephemeral().with_http_limits(limits))
        .await
        .unwrap();
    let user = uuid::Uuid::new_v4();
    ledger
        .recharge(
            user,
            100,
            time::OffsetDateTime::now_utc() + time::Duration::days(1),
        )
        .await
        .unwrap();
    let token = ledger.token_for(user);
    (ledger, token)
}

fn short() -> HttpLimits {
    HttpLimits {
        header_read_timeout: Duration::from_millis(300),
        request_timeout: Duration::from_millis(300),
        ..HttpLimits::default()
    }
}

/// The head of a consume with `length` bytes of body announced.
fn consume_head(token: &str, key: &str, length: usize) -> String {
    format!(
        "POST /points/consume HTTP/1.1\r\nhost: ledger\r\nauthorization: Bearer {token}\r\n\
         idempotency-key: {key}\r\ncontent-type: application/json\r\ncontent-length: {length}\r\n\r\n"
    )
}

/// Reads what the server sends first, waiting at most `limit`; `None` if it sent nothing.
async fn read_answer(stream: &mut TcpStream, limit: Duration) -> Option<String> {
    let mut answer = vec![0; 4096];
    match tokio::time::timeout(limit, stream.read(&mut answer)).await {
        Ok(Ok(n)) if n > 0 => Some(String::from_utf8_lossy(&answer[..n]).into_owned()),
        _ => None,
    }
}

/// Reads until the server closes the connection, for at most `limit`; `None` if it did not.
async fn read_to_close(stream: &mut TcpStream, limit: Duration) -> Option<String> {
    let mut answer = Vec::new();
    match tokio::time::timeout(limit, stream.read_to_end(&mut answer)).await {
        Ok(_) => Some(String::from_utf8_lossy(&answer).into_owned()),
        Err(_) => None,
    }
}

#[tokio::test]
async fn a_client_trickling_its_headers_is_cut_off() {
    let (ledger, _) = ledger(short()).await;
    let mut stream = TcpStream::connect(ledger.addr()).await.unwrap();
    stream
        .write_all(b"GET /points/balance HTTP/1.1\r\nhost: ledger\r\n")
        .await
        .unwrap();
    let closed = read_to_close(&mut stream, Duration::from_secs(3)).await;
    assert!(
        closed.is_some(),
        "the connection is still open 3 s after a partial head"
    );
    ledger.shutdown().await;
}

#[tokio::test]
async fn a_body_that_never_comes_is_408() {
    let (ledger, token) = ledger(short()).await;
    let mut stream = TcpStream::connect(ledger.addr()).await.unwrap();
    stream
        .write_all(consume_head(&token, "slow-body", 20).as_bytes())
        .await
        .unwrap();
    let answer = read_answer(&mut stream, Duration::from_secs(3)).await;
    let answer = answer.expect("no answer 3 s after the head of a request with no body");
    assert!(answer.starts_with("HTTP/1.1 408"), "{answer}");
    assert!(answer.contains(r#""code":"request_timeout""#), "{answer}");
    // The connection closes: the unread body holds neither it nor the server's shutdown.
    assert!(
        read_to_close(&mut stream, Duration::from_secs(3))
            .await
            .is_some(),
        "the connection stays open after the 408"
    );
    tokio::time::timeout(Duration::from_secs(5), ledger.shutdown())
        .await
        .expect("shutdown waits for nothing");
}

#[tokio::test]
async fn a_body_past_the_limit_is_413() {
    let limits = HttpLimits {
        max_body_bytes: 1024,
        ..HttpLimits::default()
    };
    let (ledger, token) = ledger(limits).await;
    let http = reqwest::Client::new();
    let reference = "r".repeat(2000);
    let response = http
        .post(format!("{}/points/consume", ledger.base_url()))
        .bearer_auth(&token)
        .header("Idempotency-Key", "big-body")
        .json(&serde_json::json!({"service": "title", "reference": reference}))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 413);
    let body: serde_json::Value = response.json().await.unwrap();
    assert_eq!(body["code"], "payload_too_large", "{body}");
    // The same without a length announced (chunked): refused once the limit is read past.
    let mut stream = TcpStream::connect(ledger.addr()).await.unwrap();
    let chunk = format!(
        r#"{{"service":"title","reference":"{}"}}"#,
        "r".repeat(2000)
    );
    let request = format!(
        "POST /points/consume HTTP/1.1\r\nhost: ledger\r\nauthorization: Bearer {token}\r\n\
         idempotency-key: chunked\r\ncontent-type: application/json\r\n\
         transfer-encoding: chunked\r\n\r\n{:x}\r\n{chunk}\r\n0\r\n\r\n",
        chunk.len()
    );
    stream.write_all(request.as_bytes()).await.unwrap();
    let answer = read_answer(&mut stream, Duration::from_secs(3))
        .await
        .expect("an answer");
    assert!(answer.starts_with("HTTP/1.1 413"), "{answer}");
    assert!(answer.contains(r#""code":"payload_too_large""#), "{answer}");
    // A body within the limit goes through.
    let response = http
        .post(format!("{}/points/consume", ledger.base_url()))
        .bearer_auth(&token)
        .header("Idempotency-Key", "small-body")
        .json(&serde_json::json!({"service": "title"}))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    ledger.shutdown().await;
}

#[tokio::test]
async fn requests_past_the_in_flight_limit_are_503() {
    let limits = HttpLimits {
        max_in_flight: 1,
        ..HttpLimits::default()
    };
    let (ledger, token) = ledger(limits).await;
    // A request whose body is still coming holds the one slot.
    let body = r#"{"service":"title"}"#;
    let mut held = TcpStream::connect(ledger.addr()).await.unwrap();
    held.write_all(consume_head(&token, "held", body.len()).as_bytes())
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_millis(100)).await;
    let http = reqwest::Client::new();
    let refused = http
        .get(format!("{}/points/balance", ledger.base_url()))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    assert_eq!(refused.status(), 503);
    let problem: serde_json::Value = refused.json().await.unwrap();
    assert_eq!(problem["code"], "overloaded", "{problem}");
    // Once it is answered, the slot is free again.
    held.write_all(body.as_bytes()).await.unwrap();
    let mut answer = vec![0; 4096];
    let n = held.read(&mut answer).await.unwrap();
    assert!(String::from_utf8_lossy(&answer[..n]).starts_with("HTTP/1.1 200"));
    let served = http
        .get(format!("{}/points/balance", ledger.base_url()))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    assert_eq!(served.status(), 200);
    ledger.shutdown().await;
}

#[test]
fn the_defaults_are_the_documented_ones() {
    let doc: serde_json::Value =
        serde_json::from_str(&points_ledger::openapi::document_json()).unwrap();
    let stated = doc["info"]["description"].as_str().unwrap();
    for fact in [
        "within 10 s",
        "within 30 s (else 408 `request_timeout`)",
        "at most 65536 bytes (else 413 `payload_too_large`)",
        "at most 512 requests are handled at once (else 503 `overloaded`",
    ] {
        assert!(
            stated.contains(fact),
            "the document does not state {fact:?}"
        );
    }
    let limits = HttpLimits::default();
    assert_eq!(limits.header_read_timeout, Duration::from_secs(10));
    assert_eq!(limits.request_timeout, Duration::from_secs(30));
    assert_eq!(limits.max_in_flight, 512);
    assert_eq!(limits.max_connections, 1024);
    assert_eq!(limits.max_body_bytes, 64 * 1024);
}
