//! A client that goes away while its write is under way (a desktop app killed mid-request) must
//! not cut the write short: later writes still succeed and the charge is either whole or absent.

use std::time::Duration;

use points_ledger::LedgerConfig;
use tokio::io::AsyncWriteExt;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn writes_survive_clients_that_disconnect_mid_request() {
    let ledger = points_ledger::serve(LedgerConfig::ephemeral())
        .await
        .unwrap();
    let user = uuid::Uuid::new_v4();
    let expires = time::OffsetDateTime::now_utc() + time::Duration::days(1);
    ledger.recharge(user, 10_000, expires).await.unwrap();
    let token = ledger.token_for(user);
    let body = r#"{"service":"compose","allow_debt":true}"#;
    for attempt in 0..200u64 {
        // Writes and reads alike: a read cut short could close the (only) connection.
        let head = if attempt % 2 == 0 {
            format!(
                "POST /points/consume HTTP/1.1\r\nhost: ledger\r\nauthorization: Bearer {token}\r\n\
                 idempotency-key: gone-{attempt}\r\ncontent-type: application/json\r\n\
                 content-length: {}\r\n\r\n{body}",
                body.len()
            )
        } else {
            format!(
                "GET /points/cost?service=compose HTTP/1.1\r\nhost: ledger\r\n\
                 authorization: Bearer {token}\r\n\r\n"
            )
        };
        let mut stream = tokio::net::TcpStream::connect(ledger.addr()).await.unwrap();
        stream.write_all(head.as_bytes()).await.unwrap();
        // Gone at a random moment of the write.
        tokio::time::sleep(Duration::from_micros((attempt * 397) % 2000)).await;
        drop(stream);
    }
    tokio::time::sleep(Duration::from_millis(200)).await;
    let client = reqwest::Client::new();
    let answer = client
        .post(format!("{}/points/consume", ledger.base_url()))
        .bearer_auth(&token)
        .header("Idempotency-Key", "after")
        .json(&serde_json::json!({"service": "compose"}))
        .send()
        .await
        .unwrap();
    assert_eq!(answer.status(), 200, "{}", answer.text().await.unwrap());
    let balance: serde_json::Value = client
        .get(format!("{}/points/balance", ledger.base_url()))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let consumed = balance["total_consumed"].as_i64().unwrap();
    assert_eq!(consumed % 5, 0, "whole charges only: {balance}");
    assert_eq!(
        balance["balance"].as_i64().unwrap(),
        balance["total_recharged"].as_i64().unwrap() - consumed
    );
    ledger.shutdown().await;
}
