//! PostgreSQL over TLS: sqlx is built with rustls, so a `sslmode=require` URL (every managed
//! PostgreSQL) connects. Runs against `POINTS_LEDGER_PG_TLS_URL`, a server with TLS on (`.ci/ledger-live`
//! starts one with a self-signed certificate); skipped without it, unless
//! `POINTS_REQUIRE_PG_TLS=1`, when it fails.

mod common;

use serde_json::{json, Value};
use sqlx::Connection;

fn tls_url() -> Option<String> {
    match std::env::var("POINTS_LEDGER_PG_TLS_URL") {
        Ok(url) if !url.is_empty() => Some(url),
        _ => {
            if std::env::var("POINTS_REQUIRE_PG_TLS").as_deref() == Ok("1") {
                panic!("POINTS_REQUIRE_PG_TLS=1 but POINTS_LEDGER_PG_TLS_URL is not set");
            }
            eprintln!("skipped: POINTS_LEDGER_PG_TLS_URL not set");
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
