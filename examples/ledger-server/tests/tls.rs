//! PostgreSQL over TLS: sqlx is built with rustls, so a `sslmode=require` URL (every managed
//! PostgreSQL) connects, and `sslmode=verify-full` (the deployment setting) checks the server's
//! certificate and name. Runs against `POINTS_LEDGER_PG_TLS_URL`, a server with TLS on (`.ci/ledger-live`
//! starts one with a self-signed certificate); skipped without it, unless
//! `POINTS_REQUIRE_PG_TLS=1`, when it fails.

mod common;

use serde_json::{json, Value};
use sqlx::Connection;

fn tls_url() -> Option<String> {
    env_url("POINTS_LEDGER_PG_TLS_URL")
}

/// The URL of a server whose certificate names `localhost` and chains to the CA the URL's
/// `sslrootcert` names, with `sslmode=verify-full`.
fn verify_full_url() -> Option<String> {
    env_url("POINTS_LEDGER_PG_TLS_VERIFY_URL")
}

fn env_url(name: &str) -> Option<String> {
    match std::env::var(name) {
        Ok(url) if !url.is_empty() => Some(url),
        _ => {
            if std::env::var("POINTS_REQUIRE_PG_TLS").as_deref() == Ok("1") {
                panic!("POINTS_REQUIRE_PG_TLS=1 but {name} is not set");
            }
            eprintln!("skipped: {name} not set");
            None
        }
    }
}

#[tokio::test]
async fn ledger_runs_on_postgres_with_sslmode_require() {
    let Some(base) = tls_url() else { return };
    assert!(base.contains("sslmode=require"), "{base}");
    let url = common::fresh_pg_database(&base).await;
    let l = common::start_with_url(url.clone()).await;
    let (_, token) = l.user_with(10).await;
    let receipt: Value = l
        .consume(&token, "over-tls", json!({"service": "title"}))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(receipt["balance"], 9);
    // Every connection the ledger holds to its database is encrypted.
    let encrypted: bool =
        sqlx::query_scalar("SELECT ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()")
            .fetch_one(l.running.ledger().db().pool())
            .await
            .unwrap();
    assert!(encrypted, "the ledger's connection is not TLS");
    let plain: i64 = sqlx::query_scalar(
        "SELECT COUNT(*) FROM pg_stat_ssl s JOIN pg_stat_activity a USING (pid) \
         WHERE a.datname = current_database() AND NOT s.ssl",
    )
    .fetch_one(l.running.ledger().db().pool())
    .await
    .unwrap();
    assert_eq!(plain, 0, "unencrypted connections to the ledger's database");
    l.running.shutdown().await;
    // Drop the test database over the same TLS URL.
    let name = url
        .split('?')
        .next()
        .unwrap()
        .rsplit('/')
        .next()
        .unwrap()
        .to_owned();
    let mut conn = sqlx::PgConnection::connect(&base).await.unwrap();
    sqlx::query(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
        .execute(&mut conn)
        .await
        .unwrap();
    conn.close().await.ok();
}

/// `sslmode=verify-full`: the ledger runs over a certificate that chains to the given root and
/// names the host; the same server is refused when the root is not trusted or the name differs.
#[tokio::test]
async fn ledger_runs_on_postgres_with_sslmode_verify_full() {
    let Some(base) = verify_full_url() else {
        return;
    };
    assert!(
        base.contains("sslmode=verify-full") && base.contains("@localhost:"),
        "{base}"
    );
    let url = common::fresh_pg_database(&base).await;
    let l = common::start_with_url(url.clone()).await;
    let (_, token) = l.user_with(10).await;
    let receipt: Value = l
        .consume(&token, "verified", json!({"service": "title"}))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(receipt["balance"], 9);
    let encrypted: bool =
        sqlx::query_scalar("SELECT ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()")
            .fetch_one(l.running.ledger().db().pool())
            .await
            .unwrap();
    assert!(encrypted);
    l.running.shutdown().await;

    // The checks bite: without the CA (the webpki roots only), or under another name for the
    // same server, the connection is refused.
    let untrusted = base
        .split('&')
        .filter(|p| !p.starts_with("sslrootcert="))
        .collect::<Vec<_>>()
        .join("&");
    assert!(
        sqlx::PgConnection::connect(&untrusted).await.is_err(),
        "{untrusted}"
    );
    let renamed = base.replace("@localhost:", "@127.0.0.1:");
    assert!(
        sqlx::PgConnection::connect(&renamed).await.is_err(),
        "{renamed}"
    );

    let name = url
        .split('?')
        .next()
        .unwrap()
        .rsplit('/')
        .next()
        .unwrap()
        .to_owned();
    let mut conn = sqlx::PgConnection::connect(&base).await.unwrap();
    sqlx::query(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
        .execute(&mut conn)
        .await
        .unwrap();
    conn.close().await.ok();
}
