//! Offline work through the plugin: the allowance taken at sign-in, desktop jobs run with the
//! ledger unreachable (Rust jobs and the webview's charges), `get_offline` and
//! `points://offline-changed`, the typed refusal past the allowance, a restart offline, and every
//! offline charge settled exactly once when the ledger is back.

use serde_json::{json, Value};
use tauri::async_runtime::block_on;
use tauri_plugin_points::events::OFFLINE_CHANGED;
use tauri_plugin_points::{DesktopService, Error, PointsExt};

use crate::common::proxy::{Fault, FaultProxy};
use crate::common::{client_for, TestLedger};
use crate::harness::{ledger, JobError, Setup, TestApp};

fn offline_config(ledger: &TestLedger) -> Value {
    let keys: serde_json::Map<String, Value> = ledger
        .ledger
        .allowance_public_keys()
        .into_iter()
        .map(|(id, key)| (id, Value::String(key)))
        .collect();
    json!({ "offline": { "keys": keys, "deviceId": "desk-ipc" } })
}

fn app(ledger: &TestLedger, proxy: &FaultProxy, journal: &std::path::Path) -> TestApp {
    TestApp::start(Setup {
        token: Some(ledger.token.clone()),
        plugin_config: Some(offline_config(ledger)),
        journal_dir: Some(journal.to_owned()),
        ..Setup::new(proxy.base_url.clone())
    })
}

async fn ok_job() -> Result<(), JobError> {
    Ok(())
}

fn held_points(app: &TestApp) -> Option<i64> {
    let points = app.app.points();
    let session = points.session().ok()?;
    points
        .jobs()
        .offline()?
        .allowance_of(session.account())
        .map(|allowance| allowance.points)
}

#[test]
fn desktop_jobs_run_offline_on_the_allowance_and_settle_once_when_the_ledger_is_back() {
    let ledger = ledger(12);
    let proxy = block_on(FaultProxy::start(&ledger.ledger.base_url()));
    let journal = tempfile::tempdir().unwrap();
    let app = app(&ledger, &proxy, journal.path());
    app.wait_until("an allowance is taken at sign-in", || {
        held_points(&app) == Some(12)
    });
    assert_eq!(
        app.invoke("get_offline", json!({})).unwrap()["offline"],
        Value::Null,
        "online"
    );

    proxy.set(Fault::Refuse);
    let points = app.app.points();
    let charged =
        block_on(points.run_charged(DesktopService::Compose, Some("offline-1"), ok_job)).unwrap();
    assert!(charged.charge.is_pending());
    // The webview's own charge runs on it too.
    let charged = app
        .invoke(
            "charge",
            json!({ "service": "cover_design", "idempotencyKey": "offline-2" }),
        )
        .unwrap();
    assert_eq!(charged["status"], "pending", "{charged}");
    let status = app.invoke("get_offline", json!({})).unwrap();
    assert_eq!(status["offline"]["remaining"], 5, "{status}");
    assert!(status["offline"]["until"].is_string());
    let announced = app.events_named(OFFLINE_CHANGED);
    assert_eq!(
        announced.last().unwrap()["offline"]["remaining"],
        5,
        "{announced:?}"
    );

    let charged =
        block_on(points.run_charged(DesktopService::Compose, Some("offline-3"), ok_job)).unwrap();
    assert!(charged.charge.is_pending(), "exactly what is left");
    drop(app);

    // A restart, still offline: what was spent is still counted; past the allowance, a typed
    // refusal, not a 402 (no recharge dialog).
    let app = self::app(&ledger, &proxy, journal.path());
    let points = app.app.points();
    // No job yet: the live balance's failed connections tell the offline state by themselves.
    app.wait_until("the offline state, from the live balance", || {
        app.invoke("get_offline", json!({})).unwrap()["offline"]["remaining"] == 0
    });
    assert!(app
        .events_named(OFFLINE_CHANGED)
        .iter()
        .any(|status| status["offline"]["remaining"] == 0));
    let refused = app
        .invoke(
            "charge",
            json!({ "service": "cover_design", "idempotencyKey": "offline-4" }),
        )
        .unwrap_err();
    assert_eq!(refused["kind"], "offlineAllowanceExhausted", "{refused}");
    assert_eq!(refused["remaining"], 0);
    assert_eq!(refused["required"], 2);
    let outcome = block_on(points.run_charged(DesktopService::Compose, Some("offline-5"), ok_job));
    assert!(
        matches!(
            outcome,
            Err(JobError::Points(Error::OfflineAllowanceExhausted {
                remaining: 0,
                ..
            }))
        ),
        "{outcome:?}"
    );
    assert_eq!(points.pending_count(), 3);
    let spent_now = 12;

    // Back: every offline charge settles once, and the offline state is cleared.
    proxy.set(Fault::Pass);
    app.wait_until("every offline charge is settled", || {
        points.pending_count() == 0
    });
    let direct = client_for(&ledger.ledger.base_url(), Some(&ledger.token));
    let balance = block_on(direct.balance()).unwrap();
    assert_eq!(balance.balance, 12 - spent_now);
    assert_eq!(
        balance.balance,
        balance.total_recharged - balance.total_consumed - balance.total_expired
    );
    app.wait_until("the offline state is cleared", || {
        app.invoke("get_offline", json!({})).unwrap()["offline"].is_null()
    });
}
