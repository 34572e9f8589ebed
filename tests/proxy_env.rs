//! A loopback `http://` ledger never goes through a proxy, whatever `HTTP_PROXY` / `ALL_PROXY`
//! say: the bearer token would leave the machine in clear text. An `https://` ledger goes through
//! the system's proxy (a corporate network may have no other way out), in a `CONNECT` tunnel the
//! proxy cannot read. Its own test binary, since proxy variables are read from the process
//! environment when a client is built.

#[path = "common/mod.rs"]
mod common;

use std::sync::{Arc, Mutex};

use tokio::io::{AsyncReadExt, AsyncWriteExt};

#[tokio::test]
async fn proxy_variables_apply_to_https_and_never_to_a_loopback_ledger() {
    // A "corporate proxy" that records the first line of every request and answers 502.
    let proxy = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let proxy_url = format!("http://{}", proxy.local_addr().unwrap());
    let seen: Arc<Mutex<Vec<String>>> = Arc::default();
    tokio::spawn({
        let seen = seen.clone();
        async move {
            while let Ok((mut stream, _)) = proxy.accept().await {
                let mut buffer = [0u8; 4096];
                let read = stream.read(&mut buffer).await.unwrap_or(0);
                let head = String::from_utf8_lossy(&buffer[..read]);
                seen.lock()
                    .unwrap()
                    .push(head.lines().next().unwrap_or_default().to_owned());
                let _ = stream
                    .write_all(b"HTTP/1.1 502 Bad Gateway\r\nContent-Length: 0\r\nConnection: close\r\n\r\n")
                    .await;
            }
        }
    });
    for name in ["NO_PROXY", "no_proxy"] {
        std::env::remove_var(name);
    }
    for name in [
        "HTTP_PROXY",
        "http_proxy",
        "ALL_PROXY",
        "all_proxy",
        "HTTPS_PROXY",
        "https_proxy",
    ] {
        std::env::set_var(name, &proxy_url);
    }
    let test = common::TestLedger::start(10).await;
    let balance = test.client().balance().await;
    assert_eq!(
        *seen.lock().unwrap(),
        Vec::<String>::new(),
        "the request (and its token) went to the proxy"
    );
    assert_eq!(balance.unwrap().balance, 10);

    // A base URL set at run time gets its own client: an https ledger goes through the proxy
    // (the proxy sees its CONNECT), a loopback http one set afterwards does not.
    let session = points_sdk::client::SessionToken::new();
    session.set(test.token.clone());
    let client = points_sdk::client::LedgerClientBuilder::new()
        .retry(points_sdk::RetryPolicy::never())
        .token_provider(session)
        .build()
        .unwrap();
    client.set_base_url("https://ledger.example.com").unwrap();
    assert!(client.balance().await.is_err(), "the proxy answered 502");
    let through_proxy = seen.lock().unwrap().clone();
    assert!(
        through_proxy.len() == 1 && through_proxy[0].starts_with("CONNECT ledger.example.com:443 "),
        "an https ledger uses the system's proxy, as a tunnel the proxy cannot read: {through_proxy:?}"
    );
    client.set_base_url(&test.ledger.base_url()).unwrap();
    let balance = client.balance().await;
    assert_eq!(
        seen.lock().unwrap().len(),
        1,
        "a loopback ledger set at run time went through the proxy"
    );
    assert_eq!(balance.unwrap().balance, 10);
    test.ledger.shutdown().await;
}
