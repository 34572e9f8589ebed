//! `app.points().run_charged(...)`: pre-check, work, charge on success only, journaled.

use std::sync::atomic::{AtomicBool, Ordering};

use serde_json::json;
use tauri::async_runtime::block_on;
use tauri_plugin_points::client::{account_of, ConsumeRequest, IdempotencyKey};
use tauri_plugin_points::events::{BALANCE_CHANGED, INSUFFICIENT, PENDING_CHANGED};
use tauri_plugin_points::journal::{Journal, PendingCharge};
use tauri_plugin_points::{ChargeOutcome, DesktopService, Error, PointsExt};

use crate::common::proxy::{Fault, FaultProxy};
use crate::harness::{ledger, signed_in_app, JobError, Setup, TestApp};

fn balance(app: &TestApp) -> i64 {
    app.invoke("get_balance", json!({})).unwrap()["balance"]
        .as_i64()
        .unwrap()
}

#[test]
fn too_few_points_refuse_the_job_before_it_starts() {
    let ledger = ledger(4);
    let app = signed_in_app(&ledger);
    let ran = AtomicBool::new(false);
    let result = block_on(
        app.app
            .points()
            .run_charged(DesktopService::Compose, None, || async {
                ran.store(true, Ordering::SeqCst);
                Ok::<_, JobError>(())
            }),
    );
    assert_eq!(
        result.unwrap_err(),
        JobError::Points(Error::InsufficientPoints {
            service: Some("compose".into()),
            required: Some(5),
            balance: Some(4),
        })
    );
    assert!(!ran.load(Ordering::SeqCst), "the work never started");
    app.wait_until("insufficient", || {
        !app.events_named(INSUFFICIENT).is_empty()
    });
    assert_eq!(
        app.events_named(INSUFFICIENT),
        [json!({"service": "compose", "required": 5, "balance": 4, "window": "main"})]
    );
    assert_eq!(balance(&app), 4);
}

#[test]
fn a_failed_job_is_not_charged() {
    let ledger = ledger(10);
    let app = signed_in_app(&ledger);
    let result = block_on(app.app.points().run_charged(
        DesktopService::SubtitleBurn,
        Some("burn-1"),
        || async { Err::<(), _>(JobError::Failed) },
    ));
    assert_eq!(result.unwrap_err(), JobError::Failed);
    assert_eq!(app.app.points().pending_count(), 0);
    assert_eq!(balance(&app), 10);
}

#[test]
fn a_finished_job_is_charged_once_per_job_key_with_debt_allowed() {
    let ledger = ledger(5);
    let app = signed_in_app(&ledger);
    let points = app.app.points();
    let charged = block_on(
        points.run_charged(DesktopService::Compose, Some("job-9"), || async {
            // Meanwhile another device spends 3 points: the finished job is charged anyway.
            points
                .client()
                .consume(
                    &ConsumeRequest::new("cover_design"),
                    &IdempotencyKey::random(),
                )
                .await
                .unwrap();
            points
                .client()
                .consume(&ConsumeRequest::new("title"), &IdempotencyKey::random())
                .await
                .unwrap();
            Ok::<_, JobError>("video.mp4")
        }),
    )
    .unwrap();
    assert_eq!(charged.output, "video.mp4");
    let receipt = charged.charge.receipt().expect("acknowledged").clone();
    assert_eq!(
        (receipt.points, receipt.balance, receipt.replayed),
        (5, -3, false)
    );
    assert_eq!(receipt.idempotency_key, "compose:job-9");
    assert_eq!(points.pending_count(), 0);
    app.wait_until("balance-changed", || {
        app.events_named(BALANCE_CHANGED)
            .iter()
            .any(|event| event["balance"] == -3 && event["summary"]["totalConsumed"] == 8)
    });
    app.wait_until("pending back to 0", || {
        app.events_named(PENDING_CHANGED).ends_with(&[
            json!({"count": 1, "session": 1}),
            json!({"count": 0, "session": 1}),
        ])
    });

    // The same job reported again (e.g. retried by the app) is not charged twice... but its
    // pre-check now fails: the user is in debt.
    let again = block_on(
        points.run_charged(DesktopService::Compose, Some("job-9"), || async {
            Ok::<_, JobError>(())
        }),
    );
    assert!(matches!(
        again,
        Err(JobError::Points(Error::InsufficientPoints { .. }))
    ));
    assert_eq!(balance(&app), -3);
}

#[test]
fn a_charge_not_acknowledged_survives_a_restart_and_is_applied_once() {
    let ledger = ledger(10);
    let proxy = block_on(FaultProxy::start(&ledger.ledger.base_url()));
    let journal_dir = tempfile::tempdir().unwrap();
    {
        let app = TestApp::start(Setup {
            journal_dir: Some(journal_dir.path().to_owned()),
            ..Setup::new(proxy.base_url.clone())
        });
        let points = app.app.points();
        points.set_session_token(ledger.token.clone()).unwrap();
        let charged =
            block_on(
                points.run_charged(DesktopService::CoverDesign, Some("cover-3"), || async {
                    // The network goes away while the job runs.
                    proxy.set(Fault::Refuse);
                    Ok::<_, JobError>(())
                }),
            )
            .unwrap();
        assert_eq!(
            charged.charge,
            ChargeOutcome::Pending {
                idempotency_key: "cover_design:cover-3".into()
            }
        );
        assert_eq!(points.pending_count(), 1);
        // The app quits here.
    }
    assert_eq!(Journal::open(journal_dir.path()).unwrap().len(), 1);

    proxy.set(Fault::Pass);
    let app = TestApp::start(Setup {
        token: Some(ledger.token.clone()),
        journal_dir: Some(journal_dir.path().to_owned()),
        ..Setup::new(proxy.base_url.clone())
    });
    app.wait_until("the sync at start", || {
        app.app.points().pending_count() == 0
    });
    let page = app.invoke("list_transactions", json!({})).unwrap();
    let consumes: Vec<_> = page["items"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|item| item["kind"] == "consume")
        .collect();
    assert_eq!(consumes.len(), 1);
    assert_eq!(consumes[0]["service"], "cover_design");
    assert_eq!(consumes[0]["idempotencyKey"], "cover_design:cover-3");
    assert_eq!(balance(&app), 8);
}

#[test]
fn setting_a_session_token_sends_that_accounts_pending_charges() {
    let ledger = ledger(10);
    let journal_dir = tempfile::tempdir().unwrap();
    Journal::open(journal_dir.path())
        .unwrap()
        .record(&PendingCharge::new(
            &account_of(&ledger.token),
            &IdempotencyKey::parse("left-over").unwrap(),
            ConsumeRequest {
                allow_debt: true,
                ..ConsumeRequest::new("compose")
            },
        ))
        .unwrap();
    let app = TestApp::start(Setup {
        journal_dir: Some(journal_dir.path().to_owned()),
        ..Setup::new(ledger.ledger.base_url())
    });
    assert_eq!(
        app.app.points().pending_count(),
        0,
        "signed out: none shown"
    );
    assert_eq!(
        app.invoke("get_pending", json!({})).unwrap()["count"],
        0,
        "signed out"
    );
    app.invoke("set_session_token", json!({"token": ledger.token}))
        .unwrap();
    app.wait_until("the sync", || app.app.points().sync().journal().is_empty());
    assert_eq!(balance(&app), 5);
}
