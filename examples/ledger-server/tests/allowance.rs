//! Offline allowances over HTTP, on SQLite and on PostgreSQL: the signature verifies with the
//! served key (the message built here on its own), `min(balance, cap)` and the window, one live
//! allowance per device (a new one releases the old one's rest), consumes under an allowance
//! into debt up to what is left of it and not a point further, replays whatever became of the
//! allowance, another user's allowance, the grace period, and 501 without a key. After each
//! case the books balance and every allowance's settled consumes add up to its `spent`, within
//! what it granted.

#[macro_use]
mod common;

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use common::{assert_books_balance, Backend, TestLedger};
use ed25519_dalek::{Signature, VerifyingKey};
use points_ledger::ledger::AllowancePolicy;
use serde_json::{json, Value};
use sqlx::Row;
use time::Duration;
use uuid::Uuid;

/// Asserts a problem with `status` and `code`.
async fn problem(response: reqwest::Response, status: u16, code: &str) -> Value {
    assert_eq!(response.status(), status, "status");
    assert_eq!(
        response.headers()["content-type"].to_str().unwrap(),
        "application/problem+json"
    );
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["code"], code, "{body}");
    body
}

async fn post_allowance(l: &TestLedger, token: &str, body: Value) -> reqwest::Response {
    l.http
        .post(l.url("/points/allowance"))
        .bearer_auth(token)
        .json(&body)
        .send()
        .await
        .expect("POST /points/allowance")
}

/// A new allowance for `device`, answered 200.
async fn issue(l: &TestLedger, token: &str, device: &str) -> Value {
    let response = post_allowance(l, token, json!({ "device_id": device })).await;
    assert_eq!(response.status(), 200, "POST /points/allowance");
    response.json().await.unwrap()
}

/// A consume of `service` under the allowance `id` with `key`.
async fn under(
    l: &TestLedger,
    token: &str,
    key: &str,
    service: &str,
    id: &Value,
) -> reqwest::Response {
    l.consume(
        token,
        key,
        json!({ "service": service, "allowance_id": id }),
    )
    .await
}

async fn summary(l: &TestLedger, token: &str) -> Value {
    l.get_json(token, "/points/balance").await
}

async fn journal_rows(l: &TestLedger) -> i64 {
    sqlx::query_scalar("SELECT COUNT(*) FROM journal")
        .fetch_one(l.running.ledger().db().pool())
        .await
        .unwrap()
}

/// The message the ledger signs, built from the answer's fields.
fn message(a: &Value) -> String {
    let text = |f: &str| a[f].as_str().unwrap().to_owned();
    let int = |f: &str| a[f].as_i64().unwrap().to_string();
    [
        "points-allowance/v1".to_owned(),
        text("allowance_id"),
        text("user_id"),
        text("device_id"),
        int("points"),
        int("issued_at"),
        int("not_after"),
        int("server_time"),
        text("key_id"),
    ]
    .join("\n")
}

fn verifies(a: &Value, message: &str, public_key: &str) -> bool {
    let key: [u8; 32] = URL_SAFE_NO_PAD
        .decode(public_key)
        .unwrap()
        .try_into()
        .unwrap();
    let signature: [u8; 64] = URL_SAFE_NO_PAD
        .decode(a["signature"].as_str().unwrap())
        .unwrap()
        .try_into()
        .unwrap();
    VerifyingKey::from_bytes(&key)
        .unwrap()
        .verify_strict(message.as_bytes(), &Signature::from_bytes(&signature))
        .is_ok()
}

/// Every allowance: the consumes journaled under it add up to `spent`, and `spent <= points
/// <= granted`; and the books balance.
async fn assert_allowances_add_up(l: &TestLedger) {
    let pool = l.running.ledger().db().pool();
    let rows = sqlx::query("SELECT allowance_id, granted, points, spent FROM allowances")
        .fetch_all(pool)
        .await
        .unwrap();
    for row in rows {
        let id: String = row.get(0);
        let (granted, points, spent): (i64, i64, i64) = (row.get(1), row.get(2), row.get(3));
        let settled: i64 = sqlx::query_scalar(
            "SELECT CAST(COALESCE(SUM(-points), 0) AS BIGINT) FROM journal \
             WHERE allowance_id = $1 AND kind = 'consume'",
        )
        .bind(&id)
        .fetch_one(pool)
        .await
        .unwrap();
        assert_eq!(settled, spent, "allowance {id}: spent");
        assert!(
            0 <= spent && spent <= points && points <= granted,
            "{id}: {spent} {points} {granted}"
        );
    }
    assert_books_balance(l.running.ledger()).await;
}

async fn the_signature_verifies_with_the_served_key(l: &TestLedger) {
    let (user, token) = l.user_with(40).await;
    let keys = l.get_json(&token, "/points/allowance-keys").await;
    let keys = keys["keys"].as_array().unwrap().clone();
    assert_eq!(keys.len(), 1);
    let served: Vec<(String, String)> = keys
        .iter()
        .map(|k| {
            (
                k["key_id"].as_str().unwrap().to_owned(),
                k["public_key"].as_str().unwrap().to_owned(),
            )
        })
        .collect();
    assert_eq!(served, l.running.allowance_public_keys());
    let (key_id, public_key) = &served[0];
    assert!(key_id.starts_with("k-") && key_id.len() == 10, "{key_id}");
    assert_eq!(public_key.len(), 43, "32 bytes, no padding");

    let before = summary(l, &token).await;
    let rows = journal_rows(l).await;
    let a = issue(l, &token, "desk-1").await;
    let id = a["allowance_id"].as_str().unwrap();
    assert_eq!(
        Uuid::parse_str(id).unwrap().to_string(),
        id,
        "lowercase, hyphenated"
    );
    assert_eq!(a["user_id"], user.to_string());
    assert_eq!(a["device_id"], "desk-1");
    assert_eq!(a["points"], 40, "min(balance, cap)");
    let now = common::start_time().unix_timestamp();
    assert_eq!(
        (a["issued_at"].as_i64(), a["server_time"].as_i64()),
        (Some(now), Some(now))
    );
    assert_eq!(a["not_after"].as_i64(), Some(now + 259_200), "72 hours");
    assert_eq!(a["key_id"], key_id.as_str());
    assert!(verifies(&a, &message(&a), public_key));
    let mut forged = a.clone();
    forged["points"] = json!(41);
    assert!(!verifies(&a, &message(&forged), public_key));
    // Issuing writes no journal entry and leaves the balance as it was.
    assert_eq!(summary(l, &token).await, before);
    assert_eq!(journal_rows(l).await, rows);

    // Keys of another ledger verify nothing of this one.
    let other = common::start(Backend::Sqlite).await.unwrap();
    let (_, other_token) = other.user_with(0).await;
    let foreign = other.get_json(&other_token, "/points/allowance-keys").await;
    let foreign_key = foreign["keys"][0]["public_key"]
        .as_str()
        .unwrap()
        .to_owned();
    assert_ne!(&foreign_key, public_key);
    assert!(!verifies(&a, &message(&a), &foreign_key));
    other.finish().await;
    assert_allowances_add_up(l).await;
}

async fn points_are_the_balance_up_to_the_cap(l: &TestLedger) {
    let (_, rich) = l.user_with(500).await;
    assert_eq!(issue(l, &rich, "desk-1").await["points"], 100, "capped");
    let (_, empty) = l.user_with(0).await;
    assert_eq!(
        issue(l, &empty, "desk-1").await["points"],
        0,
        "still issued"
    );
    let (_, indebted) = l.user_with(3).await;
    let debt = l
        .consume(
            &indebted,
            "d1",
            json!({"service": "script", "allow_debt": true}),
        )
        .await;
    assert_eq!(debt.status(), 200);
    assert_eq!(l.balance(&indebted).await, -2);
    assert_eq!(issue(l, &indebted, "desk-1").await["points"], 0);
    // A due batch expires before the allowance is measured.
    let user = Uuid::new_v4();
    let token = l.running.token_for(user);
    l.recharge(user, 60, 1).await;
    l.clock.advance(Duration::days(2));
    assert_eq!(issue(l, &token, "desk-1").await["points"], 0);
    assert_eq!(summary(l, &token).await["total_expired"], 60);
    assert_allowances_add_up(l).await;
}

async fn a_new_allowance_supersedes_the_last_and_releases_its_rest(l: &TestLedger) {
    let (_, token) = l.user_with(100).await;
    let first = issue(l, &token, "desk-1").await;
    let other_device = issue(l, &token, "desk-2").await;
    let charged = under(l, &token, "job-1", "script", &first["allowance_id"]).await;
    assert_eq!(charged.status(), 200);
    let receipt: Value = charged.json().await.unwrap();
    let second = issue(l, &token, "desk-1").await;
    assert_eq!(second["points"], 95);
    assert_ne!(second["allowance_id"], first["allowance_id"]);
    // The first one's unspent points are released.
    problem(
        under(l, &token, "job-2", "title", &first["allowance_id"]).await,
        422,
        "allowance_exhausted",
    )
    .await;
    // A charge settled under it still replays.
    let again = under(l, &token, "job-1", "script", &first["allowance_id"]).await;
    assert_eq!(again.status(), 200);
    let again: Value = again.json().await.unwrap();
    assert_eq!(again["replayed"], true);
    assert_eq!(again["transaction_id"], receipt["transaction_id"]);
    // The new one and the other device's are live.
    assert_eq!(
        under(l, &token, "job-3", "script", &second["allowance_id"])
            .await
            .status(),
        200
    );
    assert_eq!(
        under(l, &token, "job-4", "script", &other_device["allowance_id"])
            .await
            .status(),
        200
    );
    let row = sqlx::query(
        "SELECT granted, points, spent, superseded_at FROM allowances WHERE allowance_id = $1",
    )
    .bind(first["allowance_id"].as_str().unwrap())
    .fetch_one(l.running.ledger().db().pool())
    .await
    .unwrap();
    let (granted, points, spent): (i64, i64, i64) = (row.get(0), row.get(1), row.get(2));
    assert_eq!((granted, points, spent), (100, 5, 5));
    assert!(row.get::<Option<i64>, _>(3).is_some());
    assert_allowances_add_up(l).await;
}

async fn a_retried_request_answers_its_allowance_and_supersedes_nothing(l: &TestLedger) {
    let (_, token) = l.user_with(100).await;
    let asked = || async {
        let response = l
            .http
            .post(l.url("/points/allowance"))
            .bearer_auth(&token)
            .header("Idempotency-Key", "allowance-request-1")
            .json(&json!({ "device_id": "desk-1" }))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 200);
        response.json::<Value>().await.unwrap()
    };
    let first = asked().await;
    let charged = under(l, &token, "job-1", "script", &first["allowance_id"]).await;
    assert_eq!(charged.status(), 200);
    // The same request again (its first answer was lost, say): the same allowance, the same
    // signature, and the first one still covers what is left of it.
    let again = asked().await;
    assert_eq!(again, first);
    assert_eq!(
        under(l, &token, "job-2", "script", &first["allowance_id"])
            .await
            .status(),
        200,
        "not superseded by its own retry"
    );
    // The key for another device is a conflict; a new request supersedes as ever.
    let other = l
        .http
        .post(l.url("/points/allowance"))
        .bearer_auth(&token)
        .header("Idempotency-Key", "allowance-request-1")
        .json(&json!({ "device_id": "desk-2" }))
        .send()
        .await
        .unwrap();
    problem(other, 422, "idempotency_conflict").await;
    let newer = issue(l, &token, "desk-1").await;
    assert_ne!(newer["allowance_id"], first["allowance_id"]);
    problem(
        under(l, &token, "job-3", "script", &first["allowance_id"]).await,
        422,
        "allowance_exhausted",
    )
    .await;
    assert_allowances_add_up(l).await;
}

async fn a_zero_balance_goes_into_debt_up_to_the_allowance_and_no_further(l: &TestLedger) {
    let (_, token) = l.user_with(10).await;
    let a = issue(l, &token, "desk-1").await;
    assert_eq!(a["points"], 10);
    for key in ["online-1", "online-2"] {
        let spent = l.consume(&token, key, json!({"service": "script"})).await;
        assert_eq!(spent.status(), 200);
    }
    assert_eq!(l.balance(&token).await, 0);
    // Debt is allowed under the allowance whatever `allow_debt` says.
    let first = under(l, &token, "offline-1", "script", &a["allowance_id"]).await;
    assert_eq!(first.status(), 200);
    let first: Value = first.json().await.unwrap();
    assert_eq!(
        (first["points"].as_i64(), first["balance"].as_i64()),
        (Some(5), Some(-5))
    );
    let body = json!({"service": "script", "allow_debt": false, "allowance_id": a["allowance_id"]});
    let second = l.consume(&token, "offline-2", body.clone()).await;
    assert_eq!(second.status(), 200);
    assert_eq!(l.balance(&token).await, -10);

    // Past what is left: refused, nothing written.
    let before = summary(l, &token).await;
    let rows = journal_rows(l).await;
    let refused = problem(
        under(l, &token, "offline-3", "title", &a["allowance_id"]).await,
        422,
        "allowance_exhausted",
    )
    .await;
    assert!(
        refused["detail"].as_str().unwrap().contains("0 left"),
        "{refused}"
    );
    assert_eq!(summary(l, &token).await, before);
    assert_eq!(journal_rows(l).await, rows);
    // The refused key is unused: the same charge without the allowance is an ordinary one (402:
    // no debt asked for).
    problem(
        l.consume(&token, "offline-3", json!({"service": "title"}))
            .await,
        402,
        "insufficient_points",
    )
    .await;

    // A replay after exhaustion replays; without `allowance_id` too (not in the fingerprint).
    let replay = l.consume(&token, "offline-2", body.clone()).await;
    assert_eq!(replay.status(), 200);
    let replay: Value = replay.json().await.unwrap();
    assert_eq!(replay["replayed"], true);
    let bare = l
        .consume(&token, "offline-1", json!({"service": "script"}))
        .await;
    let bare: Value = bare.json().await.unwrap();
    assert_eq!(
        (bare["replayed"].as_bool(), &bare["transaction_id"]),
        (Some(true), &first["transaction_id"])
    );
    // Another body under a used key is a conflict, allowance or not.
    problem(
        under(l, &token, "offline-1", "title", &a["allowance_id"]).await,
        422,
        "idempotency_conflict",
    )
    .await;
    // An ordinary charge's key named with an allowance replays it and spends nothing of it.
    let online = under(l, &token, "online-1", "script", &a["allowance_id"]).await;
    assert_eq!(online.json::<Value>().await.unwrap()["replayed"], true);
    // A free service under an allowance writes nothing.
    let free = under(l, &token, "free-1", "caption", &a["allowance_id"]).await;
    let free: Value = free.json().await.unwrap();
    assert_eq!(
        (free["points"].as_i64(), &free["transaction_id"]),
        (Some(0), &Value::Null)
    );
    let s = summary(l, &token).await;
    assert_eq!(
        (
            s["balance"].as_i64(),
            s["total_consumed"].as_i64(),
            s["total_recharged"].as_i64()
        ),
        (Some(-10), Some(20), Some(10))
    );
    assert_allowances_add_up(l).await;
}

async fn another_users_allowance_is_not_found(l: &TestLedger) {
    let (_, mine) = l.user_with(50).await;
    let (_, theirs) = l.user_with(50).await;
    let a = issue(l, &mine, "desk-1").await;
    let rows = journal_rows(l).await;
    problem(
        under(l, &theirs, "k1", "script", &a["allowance_id"]).await,
        422,
        "allowance_not_found",
    )
    .await;
    problem(
        under(l, &mine, "k2", "script", &json!(Uuid::new_v4())).await,
        422,
        "allowance_not_found",
    )
    .await;
    problem(
        under(l, &mine, "k3", "script", &json!("not-a-uuid")).await,
        400,
        "invalid_request",
    )
    .await;
    assert_eq!(journal_rows(l).await, rows);
    assert_eq!(l.balance(&theirs).await, 50);
    assert_allowances_add_up(l).await;
}

async fn the_grace_period_ends_the_settlement(l: &TestLedger) {
    let (_, token) = l.user_with(100).await;
    let a = issue(l, &token, "desk-1").await;
    let not_after = a["not_after"].as_i64().unwrap();
    let grace = 2_592_000;
    // Past `not_after`, within the grace period: accepted (the batch has expired meanwhile).
    l.clock.advance(Duration::seconds(259_200 + 86_400));
    assert_eq!(
        under(l, &token, "late-1", "script", &a["allowance_id"])
            .await
            .status(),
        200
    );
    // The last second of the grace period: accepted.
    l.clock
        .set(time::OffsetDateTime::from_unix_timestamp(not_after + grace).unwrap());
    assert_eq!(
        under(l, &token, "late-2", "script", &a["allowance_id"])
            .await
            .status(),
        200
    );
    l.clock.advance(Duration::seconds(1));
    let rows = journal_rows(l).await;
    let before = summary(l, &token).await;
    problem(
        under(l, &token, "late-3", "script", &a["allowance_id"]).await,
        422,
        "allowance_expired",
    )
    .await;
    assert_eq!(journal_rows(l).await, rows);
    assert_eq!(summary(l, &token).await, before);
    // Replays still replay.
    let replay = under(l, &token, "late-1", "script", &a["allowance_id"]).await;
    assert_eq!(replay.json::<Value>().await.unwrap()["replayed"], true);
    assert_allowances_add_up(l).await;
}

async fn device_ids_are_checked(l: &TestLedger) {
    let (_, token) = l.user_with(10).await;
    for bad in [
        json!({"device_id": "desk 1"}),
        json!({"device_id": ""}),
        json!({"device_id": "d".repeat(129)}),
        json!({"device_id": "é"}),
        json!({"device_id": 7}),
        json!({}),
    ] {
        problem(post_allowance(l, &token, bad).await, 400, "invalid_request").await;
    }
    issue(l, &token, &"d".repeat(128)).await;
    issue(l, &token, "Desk_1.a:b-c").await;
    let none = l
        .http
        .post(l.url("/points/allowance"))
        .json(&json!({"device_id": "desk-1"}))
        .send()
        .await
        .unwrap();
    problem(none, 401, "unauthorized").await;
    let keys = l
        .http
        .get(l.url("/points/allowance-keys"))
        .send()
        .await
        .unwrap();
    problem(keys, 401, "unauthorized").await;
    assert_allowances_add_up(l).await;
}

on_both_backends!(
    the_signature_verifies_with_the_served_key,
    points_are_the_balance_up_to_the_cap,
    a_new_allowance_supersedes_the_last_and_releases_its_rest,
    a_retried_request_answers_its_allowance_and_supersedes_nothing,
    a_zero_balance_goes_into_debt_up_to_the_allowance_and_no_further,
    another_users_allowance_is_not_found,
    the_grace_period_ends_the_settlement,
    device_ids_are_checked,
);

#[tokio::test]
async fn without_a_key_no_allowance_is_issued() {
    let l =
        common::start_configured("sqlite::memory:".into(), |c| c.with_allowance_keys(vec![])).await;
    let (_, token) = l.user_with(10).await;
    problem(
        post_allowance(&l, &token, json!({"device_id": "desk-1"})).await,
        501,
        "allowance_unavailable",
    )
    .await;
    assert_eq!(
        l.get_json(&token, "/points/allowance-keys").await,
        json!({"keys": []})
    );
    assert!(l.running.allowance_public_keys().is_empty());
    l.finish().await;
}

#[tokio::test]
async fn the_first_key_signs_the_others_are_served() {
    let (old, new) = (
        points_ledger::allowance::random_key("old"),
        points_ledger::allowance::random_key("new"),
    );
    let policy = AllowancePolicy {
        cap: 7,
        window_seconds: 60,
        grace_seconds: 0,
    };
    let l = common::start_configured("sqlite::memory:".into(), |c| {
        c.with_allowance_keys(vec![old.clone(), new.clone()])
            .with_allowance_policy(policy)
    })
    .await;
    let (_, token) = l.user_with(50).await;
    let keys = l.get_json(&token, "/points/allowance-keys").await;
    let ids: Vec<&str> = keys["keys"]
        .as_array()
        .unwrap()
        .iter()
        .map(|k| k["key_id"].as_str().unwrap())
        .collect();
    assert_eq!(ids, [old.0.as_str(), new.0.as_str()]);
    let a = issue(&l, &token, "desk-1").await;
    assert_eq!(a["key_id"], old.0.as_str());
    assert_eq!(a["points"], 7, "the configured cap");
    assert_eq!(
        a["not_after"].as_i64().unwrap() - a["issued_at"].as_i64().unwrap(),
        60
    );
    let public = |k: &(String, ed25519_dalek::SigningKey)| {
        URL_SAFE_NO_PAD.encode(k.1.verifying_key().to_bytes())
    };
    assert!(verifies(&a, &message(&a), &public(&old)));
    assert!(!verifies(&a, &message(&a), &public(&new)));
    // No grace: one second past `not_after` is too late.
    l.clock.advance(Duration::seconds(61));
    problem(
        under(&l, &token, "late", "title", &a["allowance_id"]).await,
        422,
        "allowance_expired",
    )
    .await;
    l.finish().await;
}

#[tokio::test]
async fn bad_keys_or_settings_stop_the_start() {
    let key = points_ledger::allowance::random_key("k");
    let twice = points_ledger::LedgerConfig::ephemeral()
        .with_allowance_keys(vec![key.clone(), key.clone()]);
    assert!(matches!(
        points_ledger::serve(twice).await,
        Err(points_ledger::StartError::Allowance(_))
    ));
    let bad_id = points_ledger::LedgerConfig::ephemeral()
        .with_allowance_keys(vec![("bad id".into(), key.1.clone())]);
    assert!(points_ledger::serve(bad_id).await.is_err());
    let no_window =
        points_ledger::LedgerConfig::ephemeral().with_allowance_policy(AllowancePolicy {
            window_seconds: 0,
            ..AllowancePolicy::default()
        });
    assert!(points_ledger::serve(no_window).await.is_err());
}
