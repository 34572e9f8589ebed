//! Shutdown lets a request that is already being received finish before the server stops.

use std::time::Duration;

use points_ledger::LedgerConfig;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

#[tokio::test]
async fn shutdown_finishes_in_flight_requests() {
    let ledger = points_ledger::serve(LedgerConfig::ephemeral())
        .await
        .unwrap();
    let user = uuid::Uuid::new_v4();
    ledger
        .recharge(
            user,
            10,
            time::OffsetDateTime::now_utc() + time::Duration::days(1),
        )
        .await
        .unwrap();
    let addr = ledger.addr();
    let body = r#"{"service":"title"}"#;
    let head = format!(
        "POST /points/consume HTTP/1.1\r\nhost: ledger\r\nauthorization: Bearer {}\r\n\
         idempotency-key: during-shutdown\r\ncontent-type: application/json\r\n\
         content-length: {}\r\nconnection: close\r\n\r\n",
        ledger.token_for(user),
        body.len()
    );
    let mut stream = tokio::net::TcpStream::connect(addr).await.unwrap();
    stream.write_all(head.as_bytes()).await.unwrap();
    stream.flush().await.unwrap();
    tokio::time::sleep(Duration::from_millis(50)).await;

    // The request's head is in; its body is not. Shutdown must wait for it.
    let mut shutdown = tokio::spawn(ledger.shutdown());
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert!(
        !shutdown.is_finished(),
        "shutdown did not wait for the request in flight"
    );
    assert!(
        tokio::net::TcpStream::connect(addr).await.is_err(),
        "new connections are still accepted during shutdown"
    );

    stream.write_all(body.as_bytes()).await.unwrap();
    let mut response = String::new();
    stream.read_to_string(&mut response).await.unwrap();
    assert!(response.starts_with("HTTP/1.1 200"), "{response}");
    assert!(response.contains(r#""balance":9"#), "{response}");
    tokio::time::timeout(Duration::from_secs(5), &mut shutdown)
        .await
        .expect("shutdown finishes once the request is answered")
        .unwrap();
}
