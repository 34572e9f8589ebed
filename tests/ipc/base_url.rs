//! The ledger's base URL set at run time, from Rust only: an app registered before it knows the
//! URL answers `notConfigured` and runs no job; the URL set later (or changed) takes every call,
//! the background sync's included; charges pending when it changes are sent once, to the new
//! URL, with a token of their own account; the webview has no way to change it; and which URL
//! wins at start.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use serde_json::{json, Value};
use tauri::async_runtime::block_on;
use tauri_plugin_points::events::BALANCE_CHANGED;
use tauri_plugin_points::{ChargeOutcome, DesktopService, Error, PointsExt};
use uuid::Uuid;

use crate::common::client_for;
use crate::common::in_days;
use crate::common::proxy::{Fault, FaultProxy};
use crate::harness::{ledger, JobError, Setup, TestApp};

async fn ok_job() -> Result<(), JobError> {
    Ok(())
}

/// The idempotency keys of the account's consumes, sorted.
fn consumes(base_url: &str, token: &str) -> Vec<String> {
    let mut keys: Vec<String> =
        block_on(client_for(base_url, Some(token)).transactions(Some(200), None))
            .unwrap()
            .items
            .into_iter()
            .filter(|item| item.points < 0 && item.service.is_some())
            .map(|item| item.idempotency_key.unwrap_or_default())
            .collect();
    keys.sort();
    keys
}

fn balance_of(base_url: &str, token: &str) -> i64 {
    block_on(client_for(base_url, Some(token)).balance())
        .unwrap()
        .balance
}

#[test]
fn before_a_base_url_is_set_calls_answer_not_configured_and_no_job_runs() {
    let ledger = ledger(10);
    let app = TestApp::start(Setup {
        token: Some(ledger.token.clone()),
        ..Setup::without_base_url()
    });
    let points = app.app.points();
    assert_eq!(points.base_url(), None);
    for (command, args) in [
        ("get_balance", json!({})),
        ("check_cost", json!({"service": "compose"})),
        (
            "charge",
            json!({"service": "compose", "idempotencyKey": "webview:early"}),
        ),
        ("get_prices", json!({})),
        ("list_transactions", json!({})),
        ("list_batches", json!({})),
    ] {
        let answer = app.invoke(command, args);
        assert_eq!(
            answer.as_ref().err().map(|error| error["kind"].clone()),
            Some(json!("notConfigured")),
            "{command}: {answer:?}"
        );
    }
    // A job from Rust: its price cannot be checked, so its work never starts.
    let ran = Arc::new(AtomicBool::new(false));
    let early = block_on(
        points.run_charged(DesktopService::Compose, Some("early"), || {
            let ran = ran.clone();
            async move {
                ran.store(true, Ordering::SeqCst);
                Ok::<_, JobError>(())
            }
        }),
    );
    assert!(
        matches!(early, Err(JobError::Points(Error::NotConfigured))),
        "{early:?}"
    );
    assert!(!ran.load(Ordering::SeqCst), "the work ran without a ledger");
    let status = app.invoke("sync_pending", json!({})).unwrap();
    assert_eq!(status["count"], 0, "nothing was journaled: {status}");

    // The app learns the URL: every call reaches the ledger, and the balance is announced.
    app.clear_events();
    points.set_base_url(ledger.ledger.base_url()).unwrap();
    assert_eq!(
        points.base_url().map(String::from),
        Some(format!("{}/", ledger.ledger.base_url()))
    );
    app.wait_until("the balance is announced", || {
        !app.events_named(BALANCE_CHANGED).is_empty()
    });
    assert_eq!(app.events_named(BALANCE_CHANGED)[0]["balance"], 10);
    assert_eq!(app.invoke("get_balance", json!({})).unwrap()["balance"], 10);
    let charged =
        block_on(points.run_charged(DesktopService::Compose, Some("later"), ok_job)).unwrap();
    match charged.charge {
        ChargeOutcome::Acknowledged { receipt } => assert_eq!(receipt.balance, 5),
        other => panic!("{other:?}"),
    }
    assert_eq!(
        consumes(&ledger.ledger.base_url(), &ledger.token),
        ["compose:later"]
    );
}

#[test]
fn the_webview_cannot_set_the_base_url() {
    let ledger = ledger(10);
    let app = TestApp::start(Setup::new(ledger.ledger.base_url()));
    let before = app.app.points().base_url();
    for command in ["set_base_url", "setBaseUrl", "configure"] {
        let answer = app.invoke(
            command,
            json!({"baseUrl": "https://evil.example.com", "url": "https://evil.example.com"}),
        );
        // Tauri's own refusal (a plain string), not a command of the plugin's.
        assert!(
            matches!(answer, Err(Value::String(_))),
            "{command}: {answer:?}"
        );
    }
    assert_eq!(app.app.points().base_url(), before);
}

#[test]
fn a_base_url_set_at_run_time_keeps_the_https_and_loopback_rule() {
    let app = TestApp::start(Setup {
        base_url: Some("https://ledger.example.com/api".into()),
        ..Setup::without_base_url()
    });
    let points = app.app.points();
    for refused in [
        "http://ledger.example.com",
        "http://192.168.1.20:8080",
        "http://10.0.0.1",
        "http://localhost.evil.com",
        "ftp://127.0.0.1",
        "https://user:secret@ledger.example.com",
        "https://ledger.example.com/?next=1",
        "not a url",
    ] {
        match points.set_base_url(refused) {
            Err(Error::InvalidArgument { field, .. }) if field == "baseUrl" => {}
            other => panic!("{refused}: {other:?}"),
        }
        assert_eq!(
            points.base_url().map(String::from).as_deref(),
            Some("https://ledger.example.com/api/"),
            "a refused URL replaced the one in use"
        );
    }
    // A loopback ledger over plain http is accepted, and reached.
    let ledger = ledger(7);
    points.set_base_url(ledger.ledger.base_url()).unwrap();
    points.set_session_token(ledger.token.clone()).unwrap();
    assert_eq!(app.invoke("get_balance", json!({})).unwrap()["balance"], 7);
}

#[test]
fn charges_pending_when_the_url_changes_go_to_the_new_url_once_with_their_own_token() {
    let ledger = ledger(20);
    let direct = ledger.ledger.base_url();
    let other = Uuid::new_v4();
    block_on(ledger.ledger.recharge(other, 20, in_days(30))).unwrap();
    let other_token = ledger.ledger.token_for(other);
    // The same ledger, at its old address and at its new one.
    let old = block_on(FaultProxy::start(&direct));
    let new = block_on(FaultProxy::start(&direct));
    let app = TestApp::start(Setup {
        token: Some(ledger.token.clone()),
        ..Setup::new(old.base_url.clone())
    });
    let points = app.app.points();
    // One charge applied whose answer was lost, one that never reached the ledger.
    old.fault_charges(Fault::DropAnswer);
    let lost = block_on(points.run_charged(DesktopService::Compose, Some("lost"), ok_job)).unwrap();
    assert!(lost.charge.is_pending(), "{:?}", lost.charge);
    old.fault_charges(Fault::Refuse);
    let unsent =
        block_on(points.run_charged(DesktopService::SubtitleBurn, Some("unsent"), ok_job)).unwrap();
    assert!(unsent.charge.is_pending(), "{:?}", unsent.charge);
    assert_eq!(points.pending_count(), 2);
    // The old address is gone; another account signs in; then the URL changes.
    old.set(Fault::Refuse);
    points
        .sign_in(other_token.clone(), Some(other.to_string()))
        .unwrap();
    points.set_base_url(&new.base_url).unwrap();
    app.wait_until("the pending charges are settled", || {
        points.jobs().sync().journal().pending().is_empty()
    });
    assert_eq!(
        consumes(&direct, &ledger.token),
        ["compose:lost", "subtitle_burn:unsent"],
        "each charge once, to the account that ran its job"
    );
    assert_eq!(balance_of(&direct, &ledger.token), 20 - 5 - 2);
    assert_eq!(
        consumes(&direct, &other_token),
        Vec::<String>::new(),
        "a charge went out with the other account's token"
    );
    assert_eq!(balance_of(&direct, &other_token), 20);
    // From now on the old address is never asked again.
    let asked_old = old.stats.requests.load(Ordering::SeqCst);
    assert_eq!(app.invoke("get_balance", json!({})).unwrap()["balance"], 20);
    app.invoke("sync_pending", json!({})).unwrap();
    assert_eq!(old.stats.requests.load(Ordering::SeqCst), asked_old);
    assert!(new.stats.requests.load(Ordering::SeqCst) > 0);
}

#[test]
fn charges_journaled_before_a_restart_wait_for_the_url_and_are_sent_once() {
    let ledger = ledger(10);
    let direct = ledger.ledger.base_url();
    let proxy = block_on(FaultProxy::start(&direct));
    let journal = tempfile::tempdir().unwrap();
    {
        let app = TestApp::start(Setup {
            token: Some(ledger.token.clone()),
            journal_dir: Some(journal.path().to_owned()),
            ..Setup::new(proxy.base_url.clone())
        });
        proxy.fault_charges(Fault::DropAnswer);
        let charged = block_on(app.app.points().run_charged(
            DesktopService::Compose,
            Some("before-restart"),
            ok_job,
        ))
        .unwrap();
        assert!(charged.charge.is_pending(), "{:?}", charged.charge);
    }
    // The app starts again, registered before it knows the URL.
    let app = TestApp::start(Setup {
        token: Some(ledger.token.clone()),
        journal_dir: Some(journal.path().to_owned()),
        ..Setup::without_base_url()
    });
    let points = app.app.points();
    let status = app.invoke("sync_pending", json!({})).unwrap();
    assert_eq!(
        status["count"], 1,
        "kept while no ledger is known: {status}"
    );
    assert!(status["refused"].as_array().unwrap().is_empty(), "{status}");
    points.set_base_url(&direct).unwrap();
    app.wait_until("the pending charge is settled", || {
        points.pending_count() == 0
    });
    assert_eq!(consumes(&direct, &ledger.token), ["compose:before-restart"]);
    assert_eq!(balance_of(&direct, &ledger.token), 5);
}

#[test]
fn the_builder_base_url_wins_over_tauri_conf_and_a_run_time_one_over_both() {
    let ledger = ledger(10);
    let direct = ledger.ledger.base_url();
    {
        let from_config = TestApp::start(Setup {
            plugin_config: Some(json!({ "baseUrl": direct })),
            ..Setup::without_base_url()
        });
        assert_eq!(
            from_config.app.points().base_url().map(String::from),
            Some(format!("{direct}/"))
        );
    }
    let proxy = block_on(FaultProxy::start(&direct));
    let app = TestApp::start(Setup {
        token: Some(ledger.token.clone()),
        plugin_config: Some(json!({ "baseUrl": "https://from-config.example.com" })),
        ..Setup::new(direct.clone())
    });
    let points = app.app.points();
    assert_eq!(
        points.base_url().map(String::from),
        Some(format!("{direct}/")),
        "the builder's URL"
    );
    points.set_base_url(&proxy.base_url).unwrap();
    assert_eq!(
        points.base_url().map(String::from),
        Some(format!("{}/", proxy.base_url))
    );
    assert_eq!(app.invoke("get_balance", json!({})).unwrap()["balance"], 10);
    assert!(proxy.stats.requests.load(Ordering::SeqCst) > 0);
}
