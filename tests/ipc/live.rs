//! The live balance through the plugin: a change made outside the app (a recharge, a backend's
//! consume) reaches the windows as a whole summary without any call from them; low-balance alerts
//! fire once per downward crossing, re-arm, and do not fire again after a restart.

use serde_json::{json, Value};
use tauri_plugin_points::client::{ConsumeRequest, IdempotencyKey};
use tauri_plugin_points::events::{BALANCE_CHANGED, LOW_BALANCE};

use crate::common::{client_for, in_days, TestLedger};
use crate::harness::{ledger, Setup, TestApp};

/// An app signed in as the ledger's user with `lowBalance: [50, 10]`, polling a backend without
/// the stream every second, on the journal in `journal_dir`.
fn app_with_alerts(ledger: &TestLedger, journal_dir: &std::path::Path) -> TestApp {
    TestApp::start(Setup {
        token: Some(ledger.token.clone()),
        plugin_config: Some(json!({"lowBalance": [50, 10], "pollIntervalMs": 1000})),
        journal_dir: Some(journal_dir.to_owned()),
        extra_windows: &["second"],
        ..Setup::new(ledger.ledger.base_url())
    })
}

/// Every summary the windows were sent, each checked whole.
fn summaries(app: &TestApp) -> Vec<Value> {
    app.events_named(BALANCE_CHANGED)
        .into_iter()
        .map(|event| {
            let summary = event["summary"].clone();
            let figure = |name: &str| summary[name].as_i64().expect(name);
            assert_eq!(event["balance"], summary["balance"]);
            assert_eq!(
                figure("balance"),
                figure("totalRecharged") - figure("totalConsumed") - figure("totalExpired"),
                "a whole summary: {summary}"
            );
            summary
        })
        .collect()
}

fn last_balance(app: &TestApp) -> Option<i64> {
    summaries(app)
        .last()
        .map(|s| s["balance"].as_i64().unwrap())
}

fn backend_spends(ledger: &TestLedger, points: i64, key: &str) {
    let backend = client_for(&ledger.ledger.base_url(), Some(&ledger.token));
    // `voice_clone`-like: a service the backend charges, priced per call by the ledger's table.
    let request = ConsumeRequest {
        duration: Some(points as f64),
        allow_debt: true,
        ..ConsumeRequest::new("tts")
    };
    tauri::async_runtime::block_on(backend.consume(&request, &IdempotencyKey::parse(key).unwrap()))
        .expect("the backend's consume");
}

fn thresholds_fired(app: &TestApp) -> Vec<i64> {
    app.events_named(LOW_BALANCE)
        .iter()
        .map(|event| event["threshold"].as_i64().unwrap())
        .collect()
}

#[test]
fn changes_made_elsewhere_reach_the_windows_whole_and_in_order() {
    let ledger = ledger(100);
    let journal = tempfile::tempdir().unwrap();
    let app = app_with_alerts(&ledger, journal.path());
    app.wait_until("the first figure, unasked", || {
        last_balance(&app) == Some(100)
    });

    tauri::async_runtime::block_on(ledger.ledger.recharge(ledger.user, 25, in_days(30))).unwrap();
    app.wait_until("the recharge made elsewhere", || {
        last_balance(&app) == Some(125)
    });
    backend_spends(&ledger, 4, "tts:backend-1");
    app.wait_until("the backend's consume", || {
        last_balance(&app).is_some_and(|balance| balance < 125)
    });
    let seqs: Vec<i64> = summaries(&app)
        .iter()
        .map(|s| s["seq"].as_i64().unwrap())
        .collect();
    assert!(seqs.windows(2).all(|w| w[0] < w[1]), "seq order: {seqs:?}");
    let last = summaries(&app).last().unwrap().clone();
    assert_eq!(
        last["totalRecharged"], 125,
        "the totals are today's: {last}"
    );
}

#[test]
fn low_balance_fires_once_per_crossing_rearms_and_survives_a_restart() {
    let ledger = ledger(100);
    let journal = tempfile::tempdir().unwrap();
    let app = app_with_alerts(&ledger, journal.path());
    app.wait_until("the first figure", || last_balance(&app) == Some(100));
    assert!(thresholds_fired(&app).is_empty(), "100 is above both");

    backend_spends(&ledger, 60, "tts:spend-1");
    app.wait_until("under 50", || thresholds_fired(&app) == [50]);
    let alert = app.events_named(LOW_BALANCE)[0].clone();
    assert_eq!(alert["balance"], last_balance(&app).unwrap());
    assert_eq!(alert["session"], 1);
    backend_spends(&ledger, 1, "tts:spend-2");
    let low = last_balance(&app).unwrap();
    app.wait_until("the next figure", || last_balance(&app) != Some(low));
    assert_eq!(thresholds_fired(&app), [50], "still under 50: not again");
    drop(app);

    // A restart on the same journal: the balance is still under 50, and nothing fires again.
    let app = app_with_alerts(&ledger, journal.path());
    app.wait_until("the first figure after the restart", || {
        last_balance(&app).is_some()
    });
    backend_spends(&ledger, 1, "tts:spend-3");
    let low = last_balance(&app).unwrap();
    app.wait_until("the figure after the restart's spend", || {
        last_balance(&app) != Some(low)
    });
    assert!(
        thresholds_fired(&app).is_empty(),
        "remembered across the restart: {:?}",
        app.events_named(LOW_BALANCE)
    );

    // Back above 50 re-arms it; the next crossing fires again.
    tauri::async_runtime::block_on(ledger.ledger.recharge(ledger.user, 100, in_days(30))).unwrap();
    app.wait_until("above 50 again", || last_balance(&app).unwrap() >= 50);
    let balance = last_balance(&app).unwrap();
    backend_spends(&ledger, balance - 5, "tts:spend-4");
    app.wait_until("both crossed at once", || {
        thresholds_fired(&app) == [50, 10]
    });
}
