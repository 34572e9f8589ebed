//! Every command through the IPC path: the JSON the webview gets, and the events it hears.

use serde_json::{json, Value};
use tauri_plugin_points::events::{BALANCE_CHANGED, INSUFFICIENT};

use crate::harness::{invoke_from, ledger, signed_in_app, Setup, TestApp};

fn kind(error: &Value) -> &str {
    error["kind"]
        .as_str()
        .unwrap_or_else(|| panic!("not a PointsError: {error}"))
}

#[test]
fn get_balance_returns_the_summary_and_announces_it() {
    let ledger = ledger(100);
    let app = signed_in_app(&ledger);
    let balance = app.invoke("get_balance", json!({})).unwrap();
    let seq = balance["seq"]
        .as_i64()
        .expect("the reference ledger sends seq");
    assert_eq!(
        balance,
        json!({"balance": 100, "totalRecharged": 100, "totalConsumed": 0, "totalExpired": 0, "seq": seq})
    );
    app.wait_until("balance-changed", || {
        !app.events_named(BALANCE_CHANGED).is_empty()
    });
    assert_eq!(
        app.events_named(BALANCE_CHANGED),
        [json!({"balance": 100, "summary": balance, "seq": seq, "session": 1})],
        "one figure: the live balance's own figure of the same seq is not sent twice"
    );
}

#[test]
fn check_cost_prices_any_service_and_types_its_errors() {
    let ledger = ledger(3);
    let app = signed_in_app(&ledger);
    assert_eq!(
        app.invoke("check_cost", json!({"service": "video", "duration": 1.5}))
            .unwrap(),
        json!({"service": "video", "mode": "duration", "required": 15, "balance": 3, "sufficient": false, "seq": 1})
    );
    let unknown = app
        .invoke("check_cost", json!({"service": "nope"}))
        .unwrap_err();
    assert_eq!(unknown["kind"], "unknownService");
    assert_eq!(unknown["service"], "nope");
    assert!(unknown["message"].as_str().unwrap().contains("nope"));
    for duration in [json!(-1), json!(0), json!(1e9), json!("ten")] {
        let error = app
            .invoke(
                "check_cost",
                json!({"service": "tts", "duration": duration}),
            )
            .unwrap_err();
        assert_eq!(kind(&error), "invalidDuration", "{duration}");
    }
    let missing = app.invoke("check_cost", json!({})).unwrap_err();
    assert_eq!(
        (kind(&missing), &missing["field"]),
        ("invalidArgument", &json!("service"))
    );
    // A price check is not a refusal: no insufficient event.
    assert!(app.events_named(INSUFFICIENT).is_empty());
}

#[test]
fn charge_takes_only_desktop_services_and_never_debt() {
    let ledger = ledger(6);
    let app = signed_in_app(&ledger);

    let outcome = app
        .invoke(
            "charge",
            json!({"service": "compose", "idempotencyKey": "job-1", "reference": "a.mp4"}),
        )
        .unwrap();
    assert_eq!(outcome["status"], "acknowledged", "{outcome}");
    let receipt = &outcome["receipt"];
    assert_eq!(receipt["service"], "compose");
    assert_eq!(receipt["points"], 5);
    assert_eq!(receipt["balance"], 1);
    assert_eq!(receipt["replayed"], false);
    assert_eq!(receipt["idempotencyKey"], "job-1");
    assert!(receipt["transactionId"].is_string());
    let keys: Vec<_> = receipt.as_object().unwrap().keys().cloned().collect();
    assert_eq!(keys.len(), 7, "{keys:?}");
    assert_eq!(receipt["seq"], 2, "the recharge was 1");
    let whole = json!({
        "balance": 1,
        "summary": {"balance": 1, "totalRecharged": 6, "totalConsumed": 5, "totalExpired": 0, "seq": 2},
        "seq": 2,
        "session": 1
    });
    app.wait_until("the whole summary after the charge", || {
        app.events_named(BALANCE_CHANGED).last() == Some(&whole)
    });

    let again = app
        .invoke(
            "charge",
            json!({"service": "compose", "idempotencyKey": "job-1", "reference": "a.mp4"}),
        )
        .unwrap();
    assert_eq!(again["receipt"]["replayed"], true);

    let refused = app
        .invoke("charge", json!({"service": "cover_design"}))
        .unwrap_err();
    assert_eq!(
        refused,
        json!({
            "kind": "insufficientPoints",
            "message": "insufficient points (for `cover_design`, 2 required, balance 1)",
            "service": "cover_design", "required": 2, "balance": 1,
        })
    );
    app.wait_until("insufficient", || {
        !app.events_named(INSUFFICIENT).is_empty()
    });
    assert_eq!(
        app.events_named(INSUFFICIENT),
        [json!({"service": "cover_design", "required": 2, "balance": 1, "window": "main"})]
    );

    for service in ["tts", "video", "script", "caption", "anything"] {
        let error = app
            .invoke("charge", json!({"service": service}))
            .unwrap_err();
        assert_eq!(
            (kind(&error), &error["service"]),
            ("notChargeableHere", &json!(service))
        );
    }
    let bad_key = app
        .invoke(
            "charge",
            json!({"service": "compose", "idempotencyKey": "has space"}),
        )
        .unwrap_err();
    assert_eq!(
        (kind(&bad_key), &bad_key["field"]),
        ("invalidArgument", &json!("idempotencyKey"))
    );
    let balance = app.invoke("get_balance", json!({})).unwrap();
    assert_eq!(balance["balance"], 1, "refused charges wrote nothing");
}

#[test]
fn prices_transactions_and_batches_reach_the_webview_in_camel_case() {
    let ledger = ledger(10);
    let app = signed_in_app(&ledger);
    let prices = app.invoke("get_prices", json!({})).unwrap();
    let compose = prices["services"]
        .as_array()
        .unwrap()
        .iter()
        .find(|price| price["service"] == "compose")
        .unwrap()
        .clone();
    assert_eq!(
        compose,
        json!({"service": "compose", "mode": "fixed", "points": 5, "pointsPerSecond": null})
    );

    app.invoke("charge", json!({"service": "subtitle_burn"}))
        .unwrap();
    let page = app
        .invoke("list_transactions", json!({"limit": 1}))
        .unwrap();
    let item = &page["items"][0];
    assert_eq!(item["kind"], "consume");
    assert_eq!(item["points"], -2);
    assert_eq!(item["balanceAfter"], 8);
    assert_eq!(item["service"], "subtitle_burn");
    assert!(item["createdAt"].is_string() && item["id"].is_string());
    let cursor = page["nextCursor"]
        .as_str()
        .expect("a second page")
        .to_owned();
    let next = app
        .invoke("list_transactions", json!({"limit": 10, "before": cursor}))
        .unwrap();
    assert_eq!(next["items"][0]["kind"], "recharge");
    assert_eq!(next["nextCursor"], Value::Null);
    for limit in [json!(0), json!(2.5), json!(-1), json!("5")] {
        let error = app
            .invoke("list_transactions", json!({"limit": limit}))
            .unwrap_err();
        assert_eq!(
            (kind(&error), &error["field"]),
            ("invalidArgument", &json!("limit"))
        );
    }

    let batches = app.invoke("list_batches", json!({})).unwrap();
    assert_eq!(batches.as_array().unwrap().len(), 1);
    assert_eq!(batches[0]["points"], 10);
    assert_eq!(batches[0]["remaining"], 8);
    assert!(batches[0]["expiresAt"].is_string() && batches[0]["createdAt"].is_string());
}

#[test]
fn the_session_token_is_set_and_cleared_but_never_returned() {
    let ledger = ledger(4);
    let app = TestApp::start(Setup::new(ledger.ledger.base_url()));
    let signed_out = app.invoke("get_balance", json!({})).unwrap_err();
    assert_eq!(kind(&signed_out), "unauthorized");

    let set = app
        .invoke("set_session_token", json!({"token": ledger.token}))
        .unwrap();
    assert_eq!(set, Value::Null);
    assert_eq!(app.invoke("get_balance", json!({})).unwrap()["balance"], 4);

    assert_eq!(
        app.invoke("clear_session_token", json!({})).unwrap(),
        Value::Null
    );
    assert_eq!(
        kind(&app.invoke("get_balance", json!({})).unwrap_err()),
        "unauthorized"
    );

    for token in [json!(""), json!("two words"), json!(42), Value::Null] {
        let error = app
            .invoke("set_session_token", json!({"token": token}))
            .unwrap_err();
        assert_eq!(
            (kind(&error), &error["field"]),
            ("invalidArgument", &json!("token")),
            "{token}"
        );
        assert!(!error.to_string().contains(&ledger.token));
    }
    let refused = app
        .invoke("set_session_token", json!({"token": "wrong"}))
        .unwrap();
    assert_eq!(refused, Value::Null);
    assert_eq!(
        kind(&app.invoke("get_balance", json!({})).unwrap_err()),
        "unauthorized"
    );
}

#[test]
fn an_unreachable_ledger_is_a_network_error() {
    let app = TestApp::start(Setup {
        token: Some("t".into()),
        ..Setup::new("http://127.0.0.1:9".into())
    });
    let error = app.invoke("get_balance", json!({})).unwrap_err();
    assert_eq!(kind(&error), "network");
}

#[test]
fn a_balance_fetch_overlapping_a_charge_never_undoes_its_figure() {
    use crate::common::stub::{Reply, Stub};
    let summary = |balance: i64, consumed: i64| {
        json!({"balance": balance, "total_recharged": 10, "total_consumed": consumed, "total_expired": 0})
            .to_string()
    };
    let receipt = json!({"transaction_id": "t1", "service": "compose", "points": 5, "balance": 5, "replayed": false});
    // The first fetch answers late, with the figure from before the charge that overtakes it.
    let stub = tauri::async_runtime::block_on(Stub::start(vec![
        Reply::After(
            std::time::Duration::from_millis(600),
            Box::new(Reply::json(200, &summary(10, 0))),
        ),
        Reply::json(
            200,
            &json!({"service": "compose", "mode": "fixed", "required": 5, "balance": 10, "sufficient": true})
                .to_string(),
        ),
        Reply::json(200, &receipt.to_string()),
        Reply::json(200, &summary(5, 5)),
    ]));
    let app = TestApp::start(Setup {
        token: Some("token".into()),
        // The stub answers in a set order: nothing but the test's own calls may reach it.
        plugin_config: Some(json!({"liveBalance": false})),
        ..Setup::new(stub.base_url.clone())
    });
    let fetch = {
        let window = app.window.clone();
        std::thread::spawn(move || invoke_from(&window, "get_balance", json!({})))
    };
    app.wait_until("the fetch reaches the ledger", || {
        stub.received().len() == 1
    });
    let charged = app.invoke("charge", json!({"service": "compose"})).unwrap();
    assert_eq!(charged["receipt"]["balance"], 5);

    let fetched = fetch.join().unwrap().unwrap();
    assert_eq!(
        fetched["balance"], 5,
        "the overlapped answer is fetched again"
    );
    // The receipt has no `seq`: the whole summary after it is fetched (that fetch may share the
    // request of the one fetched again).
    app.wait_until("the summary after the charge", || {
        app.events_named(BALANCE_CHANGED).len() >= 2
    });
    let requests = stub.received().len();
    assert!(
        (4..=5).contains(&requests),
        "fetch, pre-check, charge, fetch again, the summary after the charge: {requests}"
    );
    let figures: Vec<Value> = app
        .events_named(BALANCE_CHANGED)
        .iter()
        .map(|event| event["summary"].clone())
        .collect();
    assert!(
        figures.iter().all(|figure| *figure
            == json!({"balance": 5, "totalRecharged": 10, "totalConsumed": 5, "totalExpired": 0})),
        "no event goes back to 10, and every one is whole: {figures:?}"
    );
}
