//! A misbehaving backend: every fault gives the right typed error or the right retry behaviour.

use std::time::{Duration, Instant};

use points_sdk::client::{ConsumeRequest, IdempotencyKey, LedgerClient, RetryPolicy, SessionToken};
use points_sdk::Error;

use crate::common::client_for;
use crate::common::stub::{Reply, Stub};

const BALANCE: &str = r#"{"balance":7,"total_recharged":10,"total_consumed":3,"total_expired":0}"#;
const RECEIPT: &str =
    r#"{"transaction_id":"t1","service":"compose","points":5,"balance":2,"replayed":false}"#;
const TOKEN: &str = "stub-token-1234";

fn client(stub: &Stub) -> LedgerClient {
    client_for(&stub.base_url, Some(TOKEN))
}

fn consume_request() -> ConsumeRequest {
    ConsumeRequest {
        allow_debt: true,
        reference: Some("job-1".into()),
        ..ConsumeRequest::new("compose")
    }
}

#[tokio::test]
async fn requests_carry_the_bearer_token_and_json_accept() {
    let stub = Stub::start(vec![Reply::json(200, BALANCE)]).await;
    assert_eq!(client(&stub).balance().await.unwrap().balance, 7);
    let request = &stub.received()[0];
    assert_eq!(request.request_line, "GET /points/balance HTTP/1.1");
    assert_eq!(
        request.header("authorization"),
        Some("Bearer stub-token-1234")
    );
    assert!(request
        .header("accept")
        .unwrap()
        .contains("application/json"));
}

#[tokio::test]
async fn an_html_502_is_a_backend_error_after_every_attempt() {
    let stub = Stub::start(vec![Reply::status(
        502,
        "text/html",
        "<html><body><h1>502 Bad Gateway</h1></body></html>",
    )])
    .await;
    let error = client(&stub).balance().await.unwrap_err();
    assert_eq!(
        error,
        Error::Backend {
            status: 502,
            code: None,
            message: "Bad Gateway".into()
        }
    );
    assert_eq!(stub.received().len(), 3, "502 is retried up to the maximum");
    assert!(!error.to_string().contains(TOKEN));
}

#[tokio::test]
async fn truncated_json_and_wrong_types_are_protocol_errors_without_retry() {
    for body in [
        r#"{"balance":7,"total_rech"#,
        r#"{"balance":"seven","total_recharged":10,"total_consumed":3,"total_expired":0}"#,
        r#"{"balance":1e400,"total_recharged":10,"total_consumed":3,"total_expired":0}"#,
        r#"[]"#,
        "",
    ] {
        let stub = Stub::start(vec![Reply::json(200, body)]).await;
        let result = client(&stub).balance().await;
        assert!(
            matches!(result, Err(Error::Protocol { .. })),
            "{body}: {result:?}"
        );
        assert_eq!(stub.received().len(), 1);
    }
}

#[tokio::test]
async fn a_body_cut_short_is_a_transport_failure() {
    let cut = format!(
        "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 500\r\n\r\n{}",
        &BALANCE[..20]
    );
    let stub = Stub::start(vec![Reply::Raw(cut.into_bytes())]).await;
    let result = client(&stub).balance().await;
    assert!(matches!(result, Err(Error::Network { .. })), "{result:?}");
}

#[tokio::test]
async fn a_slow_answer_past_the_timeout_is_a_timeout() {
    let stub = Stub::start(vec![Reply::After(
        Duration::from_secs(3),
        Box::new(Reply::json(200, BALANCE)),
    )])
    .await;
    let client = LedgerClient::builder(&stub.base_url)
        .request_timeout(Duration::from_millis(200))
        .retry(RetryPolicy::never())
        .token_provider(|| Some(TOKEN.to_owned()))
        .build()
        .unwrap();
    let started = Instant::now();
    assert_eq!(client.balance().await, Err(Error::Timeout));
    assert!(started.elapsed() < Duration::from_secs(2));
}

#[tokio::test]
async fn a_reset_connection_is_a_network_error_after_every_attempt() {
    let stub = Stub::start(vec![Reply::Reset]).await;
    let result = client(&stub).balance().await;
    assert!(matches!(result, Err(Error::Network { .. })), "{result:?}");
    assert_eq!(stub.received().len(), 3);
}

#[tokio::test]
async fn every_402_body_shape_is_insufficient_points_and_never_retried() {
    let shapes = [
        (
            Reply::status(
                402,
                "application/problem+json",
                r#"{"type":"about:blank","title":"Insufficient points","status":402,"code":"insufficient_points","service":"compose","required":5,"balance":1}"#,
            ),
            (Some("compose"), Some(5), Some(1)),
        ),
        (
            Reply::json(402, r#"{"detail":"Insufficient points balance"}"#),
            (None, None, None),
        ),
        (
            Reply::json(
                402,
                r#"{"detail":{"service":"compose","required":5,"balance":0}}"#,
            ),
            (Some("compose"), Some(5), Some(0)),
        ),
        (Reply::status(402, "text/plain", ""), (None, None, None)),
    ];
    for (reply, (service, required, balance)) in shapes {
        let stub = Stub::start(vec![reply, Reply::json(200, RECEIPT)]).await;
        let result = client(&stub)
            .consume(&consume_request(), &IdempotencyKey::random())
            .await;
        assert_eq!(
            result,
            Err(Error::InsufficientPoints {
                service: service.map(str::to_owned),
                required,
                balance
            })
        );
        assert_eq!(stub.received().len(), 1, "a 402 is never retried");
    }
}

#[tokio::test]
async fn a_5xx_then_success_retries_with_the_same_key_and_body() {
    let stub = Stub::start(vec![
        Reply::json(503, r#"{"detail":"busy"}"#),
        Reply::After(Duration::from_millis(10), Box::new(Reply::json(500, ""))),
        Reply::json(200, RECEIPT),
    ])
    .await;
    let key = IdempotencyKey::parse("job-42").unwrap();
    let receipt = client(&stub)
        .consume(&consume_request(), &key)
        .await
        .unwrap();
    assert_eq!(
        (receipt.points, receipt.idempotency_key.as_str()),
        (5, "job-42")
    );
    let received = stub.received();
    assert_eq!(received.len(), 3);
    for request in &received {
        assert_eq!(request.request_line, "POST /points/consume HTTP/1.1");
        assert_eq!(request.header("idempotency-key"), Some("job-42"));
        assert_eq!(request.body, received[0].body);
    }
    let body: serde_json::Value = serde_json::from_slice(&received[0].body).unwrap();
    assert_eq!(
        body,
        serde_json::json!({"service":"compose","allow_debt":true,"reference":"job-1"})
    );
}

#[tokio::test]
async fn a_random_key_is_also_kept_across_retries() {
    let stub = Stub::start(vec![Reply::Reset, Reply::json(200, RECEIPT)]).await;
    let key = IdempotencyKey::random();
    let receipt = client(&stub)
        .consume(&consume_request(), &key)
        .await
        .unwrap();
    assert_eq!(receipt.idempotency_key, key.as_str());
    let keys: Vec<_> = stub
        .received()
        .iter()
        .map(|request| request.header("idempotency-key").unwrap().to_owned())
        .collect();
    assert_eq!(keys, [key.as_str(), key.as_str()]);
}

#[tokio::test]
async fn a_429_waits_for_retry_after() {
    let stub = Stub::start(vec![
        Reply::with_headers(429, &[("Retry-After", "1")], ""),
        Reply::json(200, RECEIPT),
    ])
    .await;
    let started = Instant::now();
    let key = IdempotencyKey::random();
    client(&stub)
        .consume(&consume_request(), &key)
        .await
        .unwrap();
    assert!(
        started.elapsed() >= Duration::from_millis(950),
        "{:?}",
        started.elapsed()
    );
    assert_eq!(stub.received().len(), 2);
}

#[tokio::test]
async fn a_retry_after_beyond_the_cap_ends_the_retries() {
    let stub = Stub::start(vec![
        Reply::with_headers(503, &[("Retry-After", "3600")], ""),
        Reply::json(200, BALANCE),
    ])
    .await;
    let result = client(&stub).balance().await;
    assert!(
        matches!(result, Err(Error::Backend { status: 503, .. })),
        "{result:?}"
    );
    assert_eq!(stub.received().len(), 1);
}

#[tokio::test]
async fn a_409_in_flight_is_retried() {
    let stub = Stub::start(vec![
        Reply::status(
            409,
            "application/problem+json",
            r#"{"code":"idempotency_conflict","detail":"in flight"}"#,
        ),
        Reply::json(200, RECEIPT),
    ])
    .await;
    let receipt = client(&stub)
        .consume(&consume_request(), &IdempotencyKey::random())
        .await
        .unwrap();
    assert_eq!(receipt.balance, 2);
    assert_eq!(stub.received().len(), 2);
}

#[tokio::test]
async fn other_4xx_are_never_retried() {
    for (status, body, expected) in [
        (
            400,
            r#"{"code":"invalid_request"}"#,
            Some("invalid_request"),
        ),
        (404, "", None),
        (422, r#"{"detail":[{"msg":"field required"}]}"#, None),
    ] {
        let stub = Stub::start(vec![Reply::json(status, body), Reply::json(200, RECEIPT)]).await;
        let result = client(&stub)
            .consume(&consume_request(), &IdempotencyKey::random())
            .await;
        assert!(
            matches!(&result, Err(Error::Backend { status: got, code, .. }) if *got == status && code.as_deref() == expected),
            "{status}: {result:?}"
        );
        assert_eq!(stub.received().len(), 1, "{status}");
    }
    let stub = Stub::start(vec![Reply::json(401, ""), Reply::json(200, BALANCE)]).await;
    assert_eq!(client(&stub).balance().await, Err(Error::Unauthorized));
    assert_eq!(stub.received().len(), 1);
}

#[tokio::test]
async fn a_signed_out_client_sends_nothing() {
    let stub = Stub::start(vec![Reply::json(200, BALANCE)]).await;
    let session = SessionToken::new();
    let client = LedgerClient::builder(&stub.base_url)
        .token_provider(session.clone())
        .build()
        .unwrap();
    assert_eq!(client.balance().await, Err(Error::Unauthorized));
    assert!(stub.received().is_empty());
    session.set("late-token");
    assert!(client.balance().await.is_ok());
}

#[tokio::test]
async fn a_thousand_concurrent_balance_reads_make_one_request() {
    let stub = Stub::start(vec![Reply::After(
        Duration::from_millis(200),
        Box::new(Reply::json(200, BALANCE)),
    )])
    .await;
    let client = client(&stub);
    let reads = futures_util::future::join_all((0..1000).map(|_| client.balance())).await;
    assert!(reads.iter().all(|read| read.as_ref().unwrap().balance == 7));
    assert_eq!(stub.received().len(), 1);
    // The next read after the answer is a fresh request.
    client.balance().await.unwrap();
    assert_eq!(stub.received().len(), 2);
}

#[tokio::test]
async fn a_failed_shared_read_fails_every_waiter_once() {
    let stub = Stub::start(vec![Reply::After(
        Duration::from_millis(100),
        Box::new(Reply::json(404, "")),
    )])
    .await;
    let client = client(&stub);
    let reads = futures_util::future::join_all((0..50).map(|_| client.balance())).await;
    assert!(reads
        .iter()
        .all(|read| matches!(read, Err(Error::Backend { status: 404, .. }))));
    assert_eq!(stub.received().len(), 1);
}

#[tokio::test]
async fn a_balance_read_after_a_charge_never_joins_one_that_predates_it() {
    let before = r#"{"balance":7,"total_recharged":10,"total_consumed":3,"total_expired":0}"#;
    let after = r#"{"balance":2,"total_recharged":10,"total_consumed":8,"total_expired":0}"#;
    let stub = Stub::start(vec![
        Reply::After(
            Duration::from_millis(600),
            Box::new(Reply::json(200, before)),
        ),
        Reply::json(200, RECEIPT),
        Reply::json(200, after),
    ])
    .await;
    let client = client(&stub);
    let early = tokio::spawn({
        let client = client.clone();
        async move { client.balance().await }
    });
    while stub.received().is_empty() {
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let receipt = client
        .consume(&consume_request(), &IdempotencyKey::random())
        .await
        .unwrap();
    assert_eq!(receipt.balance, 2);
    assert_eq!(
        client.balance().await.unwrap().balance,
        2,
        "a read of its own"
    );
    assert_eq!(early.await.unwrap().unwrap().balance, 7);
    assert_eq!(stub.received().len(), 3);
}

#[tokio::test]
async fn a_huge_answer_is_a_protocol_error_with_or_without_its_length() {
    let limit = points_sdk::client::MAX_ANSWER_BYTES;
    // A JSON string padded past the limit, announced by Content-Length.
    let padded = format!(
        r#"{{"balance":7,"total_recharged":10,"total_consumed":3,"total_expired":0,"pad":"{}"}}"#,
        "x".repeat(limit)
    );
    // The same without a length: chunked, 64 KiB a chunk, past the limit.
    let mut chunked = b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n".to_vec();
    let chunk = "y".repeat(64 * 1024);
    for _ in 0..(limit / chunk.len() + 2) {
        chunked.extend_from_slice(format!("{:x}\r\n{chunk}\r\n", chunk.len()).as_bytes());
    }
    chunked.extend_from_slice(b"0\r\n\r\n");
    for reply in [Reply::json(200, &padded), Reply::Raw(chunked)] {
        let stub = Stub::start(vec![reply]).await;
        let answer = client(&stub).balance().await;
        assert!(
            matches!(answer, Err(Error::Protocol { ref reason }) if reason.contains("longer than")),
            "{answer:?}"
        );
    }
    // Just under the limit is read.
    let fits = format!(
        r#"{{"balance":7,"total_recharged":10,"total_consumed":3,"total_expired":0,"pad":"{}"}}"#,
        "x".repeat(limit - 200)
    );
    let stub = Stub::start(vec![Reply::json(200, &fits)]).await;
    assert_eq!(client(&stub).balance().await.unwrap().balance, 7);
}
