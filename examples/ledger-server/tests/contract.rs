//! The wire contract over HTTP: every route and every error code, on SQLite and on PostgreSQL.

#[macro_use]
mod common;

use common::{assert_books_balance, ClockExt, TestLedger};
use serde_json::{json, Value};
use time::Duration;
use uuid::Uuid;

/// Asserts an RFC 9457 problem with `status` and `code`; returns its body.
async fn problem(response: reqwest::Response, status: u16, code: &str) -> Value {
    assert_eq!(response.status(), status, "status");
    let content_type = response.headers()["content-type"]
        .to_str()
        .unwrap()
        .to_owned();
    assert_eq!(content_type, "application/problem+json");
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["code"], code, "{body}");
    assert_eq!(body["status"], status, "{body}");
    assert!(body["title"].is_string() && body["detail"].is_string() && body["type"].is_string());
    body
}

async fn history(l: &TestLedger, token: &str) -> Vec<Value> {
    l.get_json(token, "/points/transactions?limit=200").await["items"]
        .as_array()
        .unwrap()
        .clone()
}

async fn user_routes_require_a_token(l: &TestLedger) {
    let paths = [
        "/points/balance",
        "/points/cost?service=script",
        "/points/prices",
        "/points/transactions",
        "/points/batches",
    ];
    let user = Uuid::new_v4();
    let foreign = points_ledger::auth::Auth::new("another-secret", "x").token_for(user);
    for path in paths {
        let none = l.http.get(l.url(path)).send().await.unwrap();
        problem(none, 401, "unauthorized").await;
        let garbage = l.get("not-a-jwt", path).await;
        problem(garbage, 401, "unauthorized").await;
        let signed_elsewhere = l.get(&foreign, path).await;
        problem(signed_elsewhere, 401, "unauthorized").await;
        let basic = l
            .http
            .get(l.url(path))
            .header(
                "Authorization",
                format!("Basic {}", l.running.token_for(user)),
            )
            .send()
            .await
            .unwrap();
        problem(basic, 401, "unauthorized").await;
    }
    // 401 comes before every other check, and writes nothing.
    let response = l
        .http
        .post(l.url("/points/consume"))
        .header("Idempotency-Key", "bad key")
        .body("{not json")
        .send()
        .await
        .unwrap();
    problem(response, 401, "unauthorized").await;
}

async fn balance_is_the_summary_row(l: &TestLedger) {
    let (fresh_user, fresh) = l.user_with(0).await;
    let summary = l.get_json(&fresh, "/points/balance").await;
    assert_eq!(
        summary,
        json!({"user_id": fresh_user.to_string(), "balance": 0, "total_recharged": 0, "total_consumed": 0, "total_expired": 0, "seq": 0})
    );
    let (user, token) = l.user_with(100).await;
    let receipt: Value = l
        .consume(&token, "k1", json!({"service": "script"}))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(receipt["user_id"], user.to_string(), "{receipt}");
    let summary = l.get_json(&token, "/points/balance").await;
    assert_eq!(
        summary,
        json!({"user_id": user.to_string(), "balance": 95, "total_recharged": 100, "total_consumed": 5, "total_expired": 0, "seq": 2})
    );
}

/// `user_id` is the account of the token (its `sub`, lowercase and hyphenated), in balance and
/// cost answers alike, for every user.
async fn answers_name_the_account_of_the_token(l: &TestLedger) {
    let (user, token) = l.user_with(10).await;
    let (other, other_token) = l.user_with(10).await;
    for (user, token) in [(user, &token), (other, &other_token)] {
        let balance = l.get_json(token, "/points/balance").await;
        assert_eq!(balance["user_id"], user.to_string(), "{balance}");
        let cost = l.get_json(token, "/points/cost?service=title").await;
        assert_eq!(cost["user_id"], user.to_string(), "{cost}");
        let free = l.get_json(token, "/points/cost?service=caption").await;
        assert_eq!(free["user_id"], user.to_string(), "{free}");
    }
}

async fn cost_prices_and_prechecks(l: &TestLedger) {
    let (user, token) = l.user_with(7).await;
    let fixed = l.get_json(&token, "/points/cost?service=script").await;
    assert_eq!(
        fixed,
        json!({"user_id": user.to_string(), "service": "script", "mode": "fixed", "required": 5, "balance": 7, "sufficient": true, "seq": 1})
    );
    let dear = l.get_json(&token, "/points/cost?service=voice_clone").await;
    assert_eq!(dear["required"], 200);
    assert_eq!(dear["sufficient"], false);
    let video = l
        .get_json(&token, "/points/cost?service=video&duration=2.5")
        .await;
    assert_eq!(video["mode"], "duration");
    assert_eq!(video["required"], 25);
    let tts = l
        .get_json(&token, "/points/cost?service=tts&duration=6.2")
        .await;
    assert_eq!(tts["required"], 7);
    assert_eq!(tts["sufficient"], true);
    let (broke_user, broke) = l.user_with(0).await;
    let free = l.get_json(&broke, "/points/cost?service=caption").await;
    assert_eq!(
        free,
        json!({"user_id": broke_user.to_string(), "service": "caption", "mode": "free", "required": 0, "balance": 0, "sufficient": true, "seq": 0})
    );
    // A duration is ignored for fixed services.
    let ignored = l
        .get_json(&token, "/points/cost?service=script&duration=-4")
        .await;
    assert_eq!(ignored["required"], 5);
}

async fn cost_errors(l: &TestLedger) {
    let (_, token) = l.user_with(10).await;
    problem(
        l.get(&token, "/points/cost?service=nope").await,
        422,
        "unknown_service",
    )
    .await;
    for bad in [
        "",
        "&duration=0",
        "&duration=-1",
        "&duration=86400.01",
        "&duration=NaN",
        "&duration=inf",
    ] {
        let response = l
            .get(&token, &format!("/points/cost?service=video{bad}"))
            .await;
        problem(response, 422, "invalid_duration").await;
    }
    assert_eq!(
        l.get(&token, "/points/cost?service=video&duration=86400")
            .await
            .status(),
        200
    );
    problem(l.get(&token, "/points/cost").await, 400, "invalid_request").await;
    problem(
        l.get(&token, "/points/cost?service=video&duration=abc")
            .await,
        400,
        "invalid_request",
    )
    .await;
}

async fn consume_charges_and_journals(l: &TestLedger) {
    let (_, token) = l.user_with(100).await;
    let response = l
        .consume(
            &token,
            "job-1",
            json!({"service": "compose", "reference": "job 1"}),
        )
        .await;
    assert_eq!(response.status(), 200);
    let receipt: Value = response.json().await.unwrap();
    assert_eq!(receipt["service"], "compose");
    assert_eq!(receipt["points"], 5);
    assert_eq!(receipt["balance"], 95);
    assert_eq!(receipt["replayed"], false);
    let id = receipt["transaction_id"].as_str().unwrap().to_owned();
    let entries = history(l, &token).await;
    assert_eq!(entries.len(), 2);
    assert_eq!(entries[0]["id"], id.as_str());
    assert_eq!(entries[0]["kind"], "consume");
    assert_eq!(entries[0]["points"], -5);
    assert_eq!(entries[0]["balance_after"], 95);
    assert_eq!(entries[0]["service"], "compose");
    assert_eq!(entries[0]["idempotency_key"], "job-1");
    assert_eq!(entries[0]["reference"], "job 1");
    assert_eq!(entries[1]["kind"], "recharge");
    assert_eq!(entries[1]["points"], 100);
    assert_eq!(entries[1]["balance_after"], 100);
    assert!(entries[1]["service"].is_null());
    assert!(entries[1]["idempotency_key"].is_null() && entries[1]["reference"].is_null());
    let created = entries[0]["created_at"].as_str().unwrap();
    assert!(created.ends_with('Z'), "{created}");
    time::OffsetDateTime::parse(created, &time::format_description::well_known::Rfc3339).unwrap();

    let tts: Value = l
        .consume(&token, "job-2", json!({"service": "tts", "duration": 2.5}))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(tts["points"], 3);
    assert_eq!(tts["balance"], 92);
    assert_books_balance(l.running.ledger()).await;
}

async fn insufficient_balance_is_402_and_writes_nothing(l: &TestLedger) {
    let (user, token) = l.user_with(4).await;
    let body = json!({"service": "script"});
    let refused = l.consume(&token, "retry-me", body.clone()).await;
    let body_402 = problem(refused, 402, "insufficient_points").await;
    assert_eq!(body_402["service"], "script");
    assert_eq!(body_402["required"], 5);
    assert_eq!(body_402["balance"], 4);
    assert_eq!(l.balance(&token).await, 4);
    assert_eq!(
        history(l, &token).await.len(),
        1,
        "a 402 wrote to the journal"
    );
    // The key was not used up: after a top-up the same key charges.
    l.recharge(user, 10, 5).await;
    let retried: Value = l
        .consume(&token, "retry-me", body)
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(retried["replayed"], false);
    assert_eq!(retried["balance"], 9);
    assert_books_balance(l.running.ledger()).await;
}

async fn debt_is_allowed_on_request_and_repaid_first(l: &TestLedger) {
    let (user, token) = l.user_with(3).await;
    let receipt: Value = l
        .consume(
            &token,
            "done-work",
            json!({"service": "compose", "allow_debt": true}),
        )
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(receipt["points"], 5);
    assert_eq!(receipt["balance"], -2);
    let batches = l.get_json(&token, "/points/batches").await;
    assert_eq!(batches["items"], json!([]), "batches left while in debt");
    let cost = l.get_json(&token, "/points/cost?service=title").await;
    assert_eq!(cost["sufficient"], false);
    problem(
        l.consume(&token, "more", json!({"service": "title"})).await,
        402,
        "insufficient_points",
    )
    .await;
    assert_books_balance(l.running.ledger()).await;

    l.recharge(user, 10, 3).await;
    assert_eq!(l.balance(&token).await, 8);
    let batches = l.get_json(&token, "/points/batches").await;
    assert_eq!(batches["items"][0]["points"], 10);
    assert_eq!(batches["items"][0]["remaining"], 8);
    assert_books_balance(l.running.ledger()).await;
}

async fn same_key_same_body_replays(l: &TestLedger) {
    let (_, token) = l.user_with(50).await;
    let first: Value = l
        .consume(&token, "once", json!({"service": "cover_design"}))
        .await
        .json()
        .await
        .unwrap();
    // The same request after defaults: explicit false and nulls.
    let again: Value = l
        .consume(
            &token,
            "once",
            json!({"service": "cover_design", "allow_debt": false, "duration": null, "reference": null}),
        )
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(again["replayed"], true);
    assert_eq!(again["transaction_id"], first["transaction_id"]);
    assert_eq!(again["balance"], first["balance"]);
    assert_eq!(again["points"], 2);
    assert_eq!(l.balance(&token).await, 48, "a replay charged again");
    assert_eq!(history(l, &token).await.len(), 2);
}

async fn same_key_other_body_is_422(l: &TestLedger) {
    let (_, token) = l.user_with(50).await;
    l.consume(&token, "k", json!({"service": "cover_design"}))
        .await;
    for other in [
        json!({"service": "subtitle_burn"}),
        json!({"service": "cover_design", "allow_debt": true}),
        json!({"service": "cover_design", "reference": "x"}),
    ] {
        problem(
            l.consume(&token, "k", other).await,
            422,
            "idempotency_conflict",
        )
        .await;
    }
    assert_eq!(l.balance(&token).await, 48);
    // Keys belong to a user: another user's same key is a new charge.
    let (_, other_user) = l.user_with(50).await;
    let theirs: Value = l
        .consume(&other_user, "k", json!({"service": "subtitle_burn"}))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(theirs["replayed"], false);
    assert_eq!(theirs["balance"], 48);
}

async fn idempotency_key_is_checked(l: &TestLedger) {
    let (_, token) = l.user_with(1000).await;
    let body = json!({"service": "title"});
    let missing = l
        .http
        .post(l.url("/points/consume"))
        .bearer_auth(&token)
        .json(&body)
        .send()
        .await
        .unwrap();
    problem(missing, 422, "invalid_idempotency_key").await;
    let too_long = "k".repeat(256);
    for bad in ["", "has space", too_long.as_str(), "tab\there"] {
        problem(
            l.consume(&token, bad, body.clone()).await,
            422,
            "invalid_idempotency_key",
        )
        .await;
    }
    let non_ascii = l
        .http
        .post(l.url("/points/consume"))
        .bearer_auth(&token)
        .header(
            "Idempotency-Key",
            reqwest::header::HeaderValue::from_bytes("clé".as_bytes()).unwrap(),
        )
        .json(&body)
        .send()
        .await
        .unwrap();
    problem(non_ascii, 422, "invalid_idempotency_key").await;
    assert_eq!(l.balance(&token).await, 1000, "an invalid key charged");
    let longest = "~".repeat(255);
    assert_eq!(
        l.consume(&token, &longest, body.clone()).await.status(),
        200
    );
    assert_eq!(
        l.consume(&token, "!#$%&'()*+,-./:;<=>?@[]^_`{|}", body)
            .await
            .status(),
        200
    );
}

/// A consume's `reference` holds at most 1024 characters (any 1 KiB of UTF-8 fits): a longer
/// one is 422 `reference_too_long` and writes nothing, even with debt allowed.
async fn reference_is_bounded(l: &TestLedger) {
    let (_, token) = l.user_with(10).await;
    for (i, reference) in ["r".repeat(1024), "é".repeat(1024)].into_iter().enumerate() {
        let response = l
            .consume(
                &token,
                &format!("ref-ok-{i}"),
                json!({"service": "title", "reference": reference}),
            )
            .await;
        assert_eq!(response.status(), 200);
    }
    let entries = history(l, &token).await;
    assert_eq!(entries[0]["reference"], "é".repeat(1024));
    for (i, reference) in ["r".repeat(1025), "é".repeat(1025), "x".repeat(1 << 20)]
        .into_iter()
        .enumerate()
    {
        let response = l
            .consume(
                &token,
                &format!("ref-long-{i}"),
                json!({"service": "title", "allow_debt": true, "reference": reference}),
            )
            .await;
        let status = response.status().as_u16();
        if status == 413 {
            // Past the body limit: refused before the ledger reads it.
            continue;
        }
        problem(response, 422, "reference_too_long").await;
    }
    assert_eq!(history(l, &token).await.len(), entries.len());
    assert_eq!(l.balance(&token).await, 8);
}

async fn checks_run_in_contract_order(l: &TestLedger) {
    let (_, token) = l.user_with(1).await;
    let post = |key: Option<&'static str>, body: &'static str| {
        let mut request = l
            .http
            .post(l.url("/points/consume"))
            .bearer_auth(&token)
            .header("content-type", "application/json")
            .body(body);
        if let Some(key) = key {
            request = request.header("Idempotency-Key", key);
        }
        request.send()
    };
    // 400 before 422: unparseable JSON and wrong types, with a bad key.
    problem(post(None, "{").await.unwrap(), 400, "invalid_request").await;
    problem(
        post(None, r#"{"service": 5}"#).await.unwrap(),
        400,
        "invalid_request",
    )
    .await;
    problem(
        post(None, r#"{"service": "title", "allow_debt": "yes"}"#)
            .await
            .unwrap(),
        400,
        "invalid_request",
    )
    .await;
    problem(
        post(None, r#"{"service": "tts", "duration": "long"}"#)
            .await
            .unwrap(),
        400,
        "invalid_request",
    )
    .await;
    problem(
        post(None, r#"{"duration": 3}"#).await.unwrap(),
        400,
        "invalid_request",
    )
    .await;
    // The key before the service and the duration.
    problem(
        post(None, r#"{"service": "nope"}"#).await.unwrap(),
        422,
        "invalid_idempotency_key",
    )
    .await;
    problem(
        post(Some("a"), r#"{"service": "nope"}"#).await.unwrap(),
        422,
        "unknown_service",
    )
    .await;
    problem(
        post(Some("a"), r#"{"service": "video"}"#).await.unwrap(),
        422,
        "invalid_duration",
    )
    .await;
    problem(
        post(Some("a"), r#"{"service": "video", "duration": 0}"#)
            .await
            .unwrap(),
        422,
        "invalid_duration",
    )
    .await;
    problem(
        post(Some("a"), r#"{"service": "video", "duration": 86401}"#)
            .await
            .unwrap(),
        422,
        "invalid_duration",
    )
    .await;
    // Idempotency before balance: a used key with another body is 422 even when short of points.
    assert_eq!(
        post(Some("b"), r#"{"service": "title"}"#)
            .await
            .unwrap()
            .status(),
        200
    );
    problem(
        post(Some("b"), r#"{"service": "script"}"#).await.unwrap(),
        422,
        "idempotency_conflict",
    )
    .await;
    problem(
        post(Some("c"), r#"{"service": "script"}"#).await.unwrap(),
        402,
        "insufficient_points",
    )
    .await;
    assert_eq!(l.balance(&token).await, 0);
}

async fn free_services_write_nothing(l: &TestLedger) {
    let (user, token) = l.user_with(0).await;
    let response = l
        .consume(&token, "free-1", json!({"service": "auto_align"}))
        .await;
    assert_eq!(response.status(), 200);
    let receipt: Value = response.json().await.unwrap();
    assert_eq!(
        receipt,
        json!({"user_id": user.to_string(), "transaction_id": null, "service": "auto_align", "points": 0, "balance": 0, "replayed": false, "seq": 0})
    );
    assert_eq!(history(l, &token).await.len(), 0);
    // No idempotency record either: the key is still free for a paid charge.
    let paid = l
        .consume(
            &token,
            "free-1",
            json!({"service": "title", "allow_debt": true}),
        )
        .await;
    assert_eq!(paid.status(), 200);
    assert_eq!(paid.json::<Value>().await.unwrap()["replayed"], false);
}

/// `seq` is the user's latest journal sequence number: it grows with every entry, a consume
/// answers its own entry's, a replay the original's, a free service the latest.
async fn seq_orders_every_figure(l: &TestLedger) {
    let (user, token) = l.user_with(100).await;
    let seq_of = |v: &Value| v["seq"].as_i64().expect("seq");
    assert_eq!(seq_of(&l.get_json(&token, "/points/balance").await), 1);
    let mut seqs = Vec::new();
    for i in 0..3 {
        let receipt: Value = l
            .consume(&token, &format!("seq-{i}"), json!({"service": "title"}))
            .await
            .json()
            .await
            .unwrap();
        seqs.push(seq_of(&receipt));
    }
    assert_eq!(seqs, vec![2, 3, 4], "consumes answer their own entry's seq");
    let replay: Value = l
        .consume(&token, "seq-0", json!({"service": "title"}))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(
        (replay["replayed"].as_bool(), seq_of(&replay)),
        (Some(true), 2)
    );
    assert_eq!(
        replay["balance"], 99,
        "a replay pairs the original seq and balance"
    );
    let free: Value = l
        .consume(&token, "seq-free", json!({"service": "caption"}))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(seq_of(&free), 4);
    l.recharge(user, 10, 5).await;
    assert_eq!(seq_of(&l.get_json(&token, "/points/balance").await), 5);
    let cost = l.get_json(&token, "/points/cost?service=title").await;
    assert_eq!((seq_of(&cost), cost["balance"].as_i64()), (5, Some(107)));
    // An expiry is an entry too.
    l.clock.advance(Duration::days(6));
    let after = l.get_json(&token, "/points/balance").await;
    assert_eq!((seq_of(&after), after["balance"].as_i64()), (6, Some(97)));
    let newest = &history(l, &token).await[0];
    assert_eq!(newest["kind"], "expire");
    // The entries' keys are the ones sent.
    let keys: Vec<Value> = history(l, &token)
        .await
        .iter()
        .map(|e| e["idempotency_key"].clone())
        .collect();
    assert_eq!(
        keys,
        vec![
            Value::Null,
            Value::Null,
            json!("seq-2"),
            json!("seq-1"),
            json!("seq-0"),
            Value::Null
        ]
    );
}

async fn prices_list_every_service(l: &TestLedger) {
    let (_, token) = l.user_with(0).await;
    let prices = l.get_json(&token, "/points/prices").await;
    let services = prices["services"].as_array().unwrap();
    assert_eq!(services.len(), 11);
    let find = |name: &str| {
        services
            .iter()
            .find(|s| s["service"] == name)
            .cloned()
            .unwrap()
    };
    assert_eq!(
        find("script"),
        json!({"service": "script", "mode": "fixed", "points": 5})
    );
    assert_eq!(find("voice_clone")["points"], 200);
    assert_eq!(
        find("tts"),
        json!({"service": "tts", "mode": "duration", "points_per_second": 1.0})
    );
    assert_eq!(find("video")["points_per_second"], 10.0);
    assert_eq!(
        find("caption"),
        json!({"service": "caption", "mode": "free"})
    );
}

async fn transactions_page_newest_first(l: &TestLedger) {
    let (_, token) = l.user_with(100).await;
    for i in 0..4 {
        l.consume(&token, &format!("page-{i}"), json!({"service": "title"}))
            .await;
    }
    let mut seen = Vec::new();
    let mut path = "/points/transactions?limit=2".to_owned();
    loop {
        let page = l.get_json(&token, &path).await;
        let items = page["items"].as_array().unwrap();
        assert!(items.len() <= 2);
        seen.extend(items.iter().map(|e| e["balance_after"].as_i64().unwrap()));
        match page["next_cursor"].as_str() {
            Some(cursor) => path = format!("/points/transactions?limit=2&before={cursor}"),
            None => break,
        }
    }
    assert_eq!(seen, vec![96, 97, 98, 99, 100]);
    let default = l.get_json(&token, "/points/transactions").await;
    assert_eq!(default["items"].as_array().unwrap().len(), 5);
    assert!(default["next_cursor"].is_null());
    for bad in [
        "limit=0",
        "limit=201",
        "limit=-1",
        "limit=x",
        "before=abc",
        "before=-3",
        "before=%2B3",
        "before=03",
        "before=1234567890123456789",
    ] {
        let response = l.get(&token, &format!("/points/transactions?{bad}")).await;
        problem(response, 400, "invalid_request").await;
    }
}

async fn batches_burn_soonest_expiry_first(l: &TestLedger) {
    let (user, token) = l.user_with(0).await;
    l.recharge(user, 10, 20).await;
    l.recharge(user, 10, 5).await;
    l.recharge(user, 10, 10).await;
    l.consume(
        &token,
        "a",
        json!({"service": "voice_clone", "allow_debt": true}),
    )
    .await;
    l.recharge(user, 300, 10).await;
    // After the debt of 170: one batch of 300 with 130 left.
    let batches = l.get_json(&token, "/points/batches").await;
    let items = batches["items"].as_array().unwrap();
    assert_eq!(items.len(), 1);
    assert_eq!(items[0]["remaining"], 130);

    let (user, token) = l.user_with(0).await;
    l.recharge(user, 10, 20).await;
    l.recharge(user, 10, 5).await;
    l.recharge(user, 10, 10).await;
    l.consume(&token, "b", json!({"service": "tts", "duration": 12}))
        .await;
    let items = l.get_json(&token, "/points/batches").await["items"]
        .as_array()
        .unwrap()
        .clone();
    let shape: Vec<(i64, i64)> = items
        .iter()
        .map(|b| {
            (
                b["points"].as_i64().unwrap(),
                b["remaining"].as_i64().unwrap(),
            )
        })
        .collect();
    // The 5-day batch is gone, the 10-day one is down to 8, the 20-day one untouched.
    assert_eq!(shape, vec![(10, 8), (10, 10)]);
    let first = time::OffsetDateTime::parse(
        items[0]["expires_at"].as_str().unwrap(),
        &time::format_description::well_known::Rfc3339,
    )
    .unwrap();
    assert_eq!(first, l.clock.now_plus_days(10));
    assert!(items[0]["id"].is_string() && items[0]["created_at"].is_string());
    assert_books_balance(l.running.ledger()).await;
}

async fn expired_batches_are_never_spendable(l: &TestLedger) {
    let (user, token) = l.user_with(0).await;
    l.recharge(user, 30, 1).await;
    l.recharge(user, 50, 10).await;
    l.clock.advance(Duration::days(2));
    // No sweep has run: reads and writes expire the due batch themselves.
    let refused = l
        .consume(&token, "big", json!({"service": "video", "duration": 6}))
        .await;
    let body = problem(refused, 402, "insufficient_points").await;
    assert_eq!(body["balance"], 50);
    let summary = l.get_json(&token, "/points/balance").await;
    assert_eq!(
        summary,
        json!({"user_id": user.to_string(), "balance": 50, "total_recharged": 80, "total_consumed": 0, "total_expired": 30, "seq": 3})
    );
    let entries = history(l, &token).await;
    assert_eq!(entries[0]["kind"], "expire");
    assert_eq!(entries[0]["points"], -30);
    assert_eq!(entries[0]["balance_after"], 50);
    let batches = l.get_json(&token, "/points/batches").await;
    assert_eq!(batches["items"].as_array().unwrap().len(), 1);
    assert_books_balance(l.running.ledger()).await;
}

async fn admin_routes_need_the_key(l: &TestLedger) {
    let user = Uuid::new_v4();
    let body = json!({"user_id": user, "points": 40, "expires_at": "2026-06-01T00:00:00Z"});
    let admin = |key: Option<&str>, path: &str, body: Value| {
        let mut request = l
            .http
            .post(l.url(path))
            .header("Idempotency-Key", format!("pay-{}", Uuid::new_v4()))
            .json(&body);
        if let Some(key) = key {
            request = request.header("X-Admin-Key", key);
        }
        request.send()
    };
    problem(
        admin(None, "/admin/recharge", body.clone()).await.unwrap(),
        401,
        "unauthorized",
    )
    .await;
    problem(
        admin(Some("wrong"), "/admin/recharge", body.clone())
            .await
            .unwrap(),
        401,
        "unauthorized",
    )
    .await;
    problem(
        admin(None, "/admin/expire", json!({})).await.unwrap(),
        401,
        "unauthorized",
    )
    .await;
    // A user's token is not the admin key.
    let as_user = l
        .http
        .post(l.url("/admin/recharge"))
        .bearer_auth(l.running.token_for(user))
        .json(&body)
        .send()
        .await
        .unwrap();
    problem(as_user, 401, "unauthorized").await;

    let key = l.running.admin_key().to_owned();
    let done = admin(Some(&key), "/admin/recharge", body).await.unwrap();
    assert_eq!(done.status(), 200);
    let receipt: Value = done.json().await.unwrap();
    assert_eq!(receipt["balance"], 40);
    assert!(receipt["transaction_id"].is_string() && receipt["batch_id"].is_string());
    assert_eq!(l.balance(&l.running.token_for(user)).await, 40);

    for bad in [
        json!({"user_id": user, "points": 0, "expires_at": "2026-06-01T00:00:00Z"}),
        json!({"user_id": user, "points": 5, "expires_at": "2026-04-01T00:00:00Z"}),
        json!({"user_id": "bob", "points": 5, "expires_at": "2026-06-01T00:00:00Z"}),
        json!({"user_id": user, "points": 5, "expires_at": "next week"}),
        json!({"user_id": user, "points": 5}),
        json!({"user_id": user, "points": 5.5, "expires_at": "2026-06-01T00:00:00Z"}),
        json!({"user_id": user, "points": 1e300, "expires_at": "2026-06-01T00:00:00Z"}),
    ] {
        problem(
            admin(Some(&key), "/admin/recharge", bad).await.unwrap(),
            400,
            "invalid_request",
        )
        .await;
    }
    assert_eq!(l.balance(&l.running.token_for(user)).await, 40);
}

/// A retried payment webhook credits once: `POST /admin/recharge` follows the consume rules for
/// its `Idempotency-Key`.
/// A payment webhook retried after the batch's expiry date gets its first answer back, not
/// a 400 that invites a second, manual credit.
async fn a_retried_recharge_after_its_expiry_is_replayed(l: &TestLedger) {
    let user = Uuid::new_v4();
    let body = json!({"user_id": user, "points": 40, "expires_at": "2026-05-02T12:00:00Z"});
    let first: Value = l
        .admin_recharge("late-webhook", body.clone())
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(first["replayed"], false, "{first}");
    l.clock.advance(Duration::days(3));
    let again = l.admin_recharge("late-webhook", body.clone()).await;
    assert_eq!(again.status(), 200);
    let again: Value = again.json().await.unwrap();
    assert_eq!(again["replayed"], true, "{again}");
    assert_eq!(again["transaction_id"], first["transaction_id"]);
    assert_eq!(again["balance"], 40);
    // Another body under that key is still a conflict; a new key with a past date is refused.
    let other = json!({"user_id": user, "points": 41, "expires_at": "2026-05-02T12:00:00Z"});
    problem(
        l.admin_recharge("late-webhook", other).await,
        422,
        "idempotency_conflict",
    )
    .await;
    problem(
        l.admin_recharge("new-payment", body).await,
        400,
        "invalid_request",
    )
    .await;
    let token = l.running.token_for(user);
    let summary = l.get_json(&token, "/points/balance").await;
    assert_eq!(
        (
            summary["total_recharged"].as_i64(),
            summary["total_expired"].as_i64()
        ),
        (Some(40), Some(40))
    );
    assert_books_balance(l.running.ledger()).await;
}

/// Consume keys and recharge keys are separate namespaces per user: a consume sent under a
/// payment's id (a client bug, or a coincidence) never stops that payment from being credited,
/// and each namespace still replays its own request.
async fn consume_and_recharge_keys_are_separate(l: &TestLedger) {
    let (user, token) = l.user_with(10).await;
    let charged = l
        .consume(&token, "pay-77", json!({"service": "script"}))
        .await;
    assert_eq!(charged.status(), 200);
    let body = json!({"user_id": user, "points": 40, "expires_at": "2026-06-01T00:00:00Z"});
    let credited = l.admin_recharge("pay-77", body.clone()).await;
    assert_eq!(credited.status(), 200, "the payment was not credited");
    let credited: Value = credited.json().await.unwrap();
    assert_eq!(
        (credited["replayed"].as_bool(), credited["balance"].as_i64()),
        (Some(false), Some(45))
    );
    // The other way round: a recharge's key does not block a consume.
    l.admin_recharge("job-9", body.clone()).await;
    let spent = l
        .consume(&token, "job-9", json!({"service": "title"}))
        .await;
    assert_eq!(spent.status(), 200);
    // Each replays in its own namespace.
    let replayed: Value = l.admin_recharge("pay-77", body).await.json().await.unwrap();
    assert_eq!(replayed["transaction_id"], credited["transaction_id"]);
    let again: Value = l
        .consume(&token, "pay-77", json!({"service": "script"}))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(again["replayed"], true, "{again}");
    assert_eq!(l.balance(&token).await, 10 - 5 + 40 + 40 - 1);
    // A free service checks the consume namespace only.
    let free = l
        .consume(&token, "job-9", json!({"service": "caption"}))
        .await;
    problem(free, 422, "idempotency_conflict").await;
    l.admin_recharge(
        "only-a-payment",
        json!({"user_id": user, "points": 1, "expires_at": "2026-06-01T00:00:00Z"}),
    )
    .await;
    let free = l
        .consume(&token, "only-a-payment", json!({"service": "caption"}))
        .await;
    assert_eq!(free.status(), 200);
    assert_books_balance(l.running.ledger()).await;
}

async fn admin_recharge_is_idempotent(l: &TestLedger) {
    let user = Uuid::new_v4();
    let token = l.running.token_for(user);
    let body = json!({"user_id": user, "points": 40, "expires_at": "2026-06-01T00:00:00Z"});
    let first = l.admin_recharge("payment-1", body.clone()).await;
    assert_eq!(first.status(), 200);
    let first: Value = first.json().await.unwrap();
    assert_eq!(
        (first["replayed"].as_bool(), first["balance"].as_i64()),
        (Some(false), Some(40))
    );
    l.consume(&token, "spend", json!({"service": "script"}))
        .await;
    // The same instant written with another offset is the same request.
    let same = json!({"user_id": user, "points": 40, "expires_at": "2026-06-01T02:00:00+02:00"});
    for retry in [body.clone(), same] {
        let again = l.admin_recharge("payment-1", retry).await;
        assert_eq!(again.status(), 200);
        let again: Value = again.json().await.unwrap();
        assert_eq!(again["replayed"], true);
        assert_eq!(again["transaction_id"], first["transaction_id"]);
        assert_eq!(again["batch_id"], first["batch_id"]);
        assert_eq!(
            (again["balance"].as_i64(), again["seq"].as_i64()),
            (Some(40), Some(1))
        );
    }
    assert_eq!(
        l.balance(&token).await,
        35,
        "a retried recharge credited twice"
    );
    for other in [
        json!({"user_id": user, "points": 41, "expires_at": "2026-06-01T00:00:00Z"}),
        json!({"user_id": user, "points": 40, "expires_at": "2026-06-02T00:00:00Z"}),
    ] {
        problem(
            l.admin_recharge("payment-1", other).await,
            422,
            "idempotency_conflict",
        )
        .await;
    }
    // The key is required and checked, and nothing is written without it.
    let missing = l
        .http
        .post(l.url("/admin/recharge"))
        .header("X-Admin-Key", l.running.admin_key())
        .json(&body)
        .send()
        .await
        .unwrap();
    problem(missing, 422, "invalid_idempotency_key").await;
    problem(
        l.admin_recharge("has space", body.clone()).await,
        422,
        "invalid_idempotency_key",
    )
    .await;
    assert_eq!(l.balance(&token).await, 35);
    // Keys are scoped to the user recharged.
    let other_user = Uuid::new_v4();
    let theirs: Value = l
        .admin_recharge(
            "payment-1",
            json!({"user_id": other_user, "points": 40, "expires_at": "2026-06-01T00:00:00Z"}),
        )
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(theirs["replayed"], false);
    // A whole number written as a float is an integer (JSON Schema says so).
    let floaty = l
        .http
        .post(l.url("/admin/recharge"))
        .header("X-Admin-Key", l.running.admin_key())
        .header("Idempotency-Key", "floaty")
        .header("content-type", "application/json")
        .body(format!(
            r#"{{"user_id": "{other_user}", "points": 4e1, "expires_at": "2026-06-01T00:00:00Z"}}"#
        ))
        .send()
        .await
        .unwrap();
    assert_eq!(floaty.status(), 200);
    assert_eq!(floaty.json::<Value>().await.unwrap()["balance"], 80);
    // The key is stored with the recharge's journal row.
    let entries = history(l, &token).await;
    assert_eq!(entries.len(), 2);
    assert_eq!(entries[1]["kind"], "recharge");
    assert_eq!(entries[1]["idempotency_key"], "payment-1");
    assert_books_balance(l.running.ledger()).await;
}

/// Any positive duration of a priced service costs at least one point, and is journalled.
async fn sub_point_durations_cost_one_point(l: &TestLedger) {
    let (_, token) = l.user_with(10).await;
    let cost = l
        .get_json(&token, "/points/cost?service=tts&duration=4e-7")
        .await;
    assert_eq!(cost["required"], 1);
    let receipt: Value = l
        .consume(&token, "tiny", json!({"service": "tts", "duration": 4e-7}))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(
        (receipt["points"].as_i64(), receipt["balance"].as_i64()),
        (Some(1), Some(9))
    );
    assert!(receipt["transaction_id"].is_string(), "{receipt}");
    assert_eq!(history(l, &token).await.len(), 2);
}

/// A free service writes nothing, but a key already spent on a charge is still refused.
async fn free_service_under_a_used_key_is_422(l: &TestLedger) {
    let (_, token) = l.user_with(10).await;
    l.consume(&token, "used", json!({"service": "title"})).await;
    problem(
        l.consume(&token, "used", json!({"service": "caption"}))
            .await,
        422,
        "idempotency_conflict",
    )
    .await;
    for _ in 0..2 {
        let free = l
            .consume(&token, "unused", json!({"service": "caption"}))
            .await;
        assert_eq!(free.status(), 200);
    }
    assert_eq!(l.balance(&token).await, 9);
    assert_eq!(history(l, &token).await.len(), 2);
}

async fn admin_expire_runs_the_sweep_now(l: &TestLedger) {
    let (a, token_a) = l.user_with(0).await;
    let (b, _) = l.user_with(0).await;
    l.recharge(a, 10, 1).await;
    l.recharge(a, 20, 9).await;
    l.recharge(b, 5, 1).await;
    let key = l.running.admin_key().to_owned();
    let run = || {
        l.http
            .post(l.url("/admin/expire"))
            .header("X-Admin-Key", &key)
            .send()
    };
    let nothing: Value = run().await.unwrap().json().await.unwrap();
    assert_eq!(
        nothing,
        json!({"users": 0, "batches": 0, "points": 0, "failed_users": 0, "skipped": false})
    );
    l.clock.advance(Duration::days(2));
    let report: Value = run().await.unwrap().json().await.unwrap();
    assert_eq!(
        report,
        json!({"users": 2, "batches": 2, "points": 15, "failed_users": 0, "skipped": false})
    );
    let again: Value = run().await.unwrap().json().await.unwrap();
    assert_eq!(again["batches"], 0);
    assert_eq!(l.balance(&token_a).await, 20);
    assert_books_balance(l.running.ledger()).await;
}

async fn openapi_and_unknown_routes(l: &TestLedger) {
    let response = l.http.get(l.url("/openapi.json")).send().await.unwrap();
    assert_eq!(response.status(), 200);
    let doc: Value = response.json().await.unwrap();
    assert!(doc["openapi"].as_str().unwrap().starts_with("3.1"));
    for path in [
        "/points/balance",
        "/points/cost",
        "/points/consume",
        "/points/prices",
        "/points/transactions",
        "/points/batches",
        "/admin/recharge",
        "/admin/expire",
        "/openapi.json",
    ] {
        assert!(
            doc["paths"][path].is_object(),
            "{path} missing from the OpenAPI document"
        );
    }
    let (_, token) = l.user_with(0).await;
    problem(
        l.get(&token, "/points/nothing-here").await,
        404,
        "not_found",
    )
    .await;
}

on_both_backends!(
    user_routes_require_a_token,
    balance_is_the_summary_row,
    answers_name_the_account_of_the_token,
    cost_prices_and_prechecks,
    cost_errors,
    consume_charges_and_journals,
    insufficient_balance_is_402_and_writes_nothing,
    debt_is_allowed_on_request_and_repaid_first,
    same_key_same_body_replays,
    same_key_other_body_is_422,
    idempotency_key_is_checked,
    checks_run_in_contract_order,
    reference_is_bounded,
    free_services_write_nothing,
    seq_orders_every_figure,
    prices_list_every_service,
    transactions_page_newest_first,
    batches_burn_soonest_expiry_first,
    expired_batches_are_never_spendable,
    admin_routes_need_the_key,
    admin_recharge_is_idempotent,
    consume_and_recharge_keys_are_separate,
    a_retried_recharge_after_its_expiry_is_replayed,
    sub_point_durations_cost_one_point,
    free_service_under_a_used_key_is_422,
    admin_expire_runs_the_sweep_now,
    openapi_and_unknown_routes,
);
