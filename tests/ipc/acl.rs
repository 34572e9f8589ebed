//! The capability decides: commands it does not grant are refused before they run.

use serde_json::{json, Value};

use crate::harness::{ledger, Setup, TestApp};

#[test]
fn a_command_not_granted_is_refused_and_a_granted_one_runs() {
    let ledger = ledger(10);
    let app = TestApp::start(Setup {
        permissions: &["points:allow-get-balance"],
        token: Some(ledger.token.clone()),
        ..Setup::new(ledger.ledger.base_url())
    });
    assert_eq!(app.invoke("get_balance", json!({})).unwrap()["balance"], 10);
    for (command, args) in [
        ("charge", json!({"service": "compose"})),
        ("set_session_token", json!({"token": "x"})),
        ("list_batches", json!({})),
    ] {
        let refusal = app.invoke(command, args).unwrap_err();
        let Value::String(text) = &refusal else {
            panic!("tauri's refusal is a plain string: {refusal}");
        };
        assert!(text.contains("not allowed"), "{command}: {text}");
    }
    let balance = app.invoke("get_balance", json!({})).unwrap();
    assert_eq!(balance["balance"], 10, "the refused charge did not run");
}

#[test]
fn the_default_set_reads_and_signs_in_but_charging_is_opt_in() {
    let ledger = ledger(10);
    let app = TestApp::start(Setup {
        permissions: &["points:default"],
        token: Some(ledger.token.clone()),
        ..Setup::new(ledger.ledger.base_url())
    });
    for (command, args) in [
        ("get_balance", json!({})),
        ("check_cost", json!({"service": "compose"})),
        ("get_prices", json!({})),
        ("list_transactions", json!({})),
        ("list_batches", json!({})),
        ("get_pending", json!({})),
        ("sync_pending", json!({})),
        ("set_session_token", json!({"token": ledger.token})),
        ("clear_session_token", json!({})),
    ] {
        assert!(app.invoke(command, args).is_ok(), "{command}");
    }
    let refusal = app
        .invoke("charge", json!({"service": "cover_design"}))
        .unwrap_err();
    assert!(
        refusal
            .as_str()
            .is_some_and(|text| text.contains("not allowed")),
        "{refusal}"
    );
    let granted = TestApp::start(Setup {
        permissions: &["points:default", "points:allow-charge"],
        token: Some(ledger.token.clone()),
        ..Setup::new(ledger.ledger.base_url())
    });
    assert_eq!(
        granted
            .invoke("charge", json!({"service": "cover_design"}))
            .unwrap()["receipt"]["balance"],
        8
    );
}

#[test]
fn a_deny_permission_wins_over_a_grant() {
    let ledger = ledger(10);
    let app = TestApp::start(Setup {
        permissions: &[
            "points:default",
            "points:allow-charge",
            "points:deny-charge",
        ],
        token: Some(ledger.token.clone()),
        ..Setup::new(ledger.ledger.base_url())
    });
    assert!(app.invoke("get_balance", json!({})).is_ok());
    assert!(app
        .invoke("charge", json!({"service": "compose"}))
        .unwrap_err()
        .is_string());
}
