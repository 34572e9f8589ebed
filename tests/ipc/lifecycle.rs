//! The charge guarantee across a desktop app's lifecycle: sign-in, sign-out and another account
//! signing in; hours offline with the app open; restarts; several windows; a second instance.
//! Each test walks one of these against the real ledger, with a fault proxy for the network.

use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use serde_json::{json, Value};
use tauri::async_runtime::block_on;
use tauri_plugin_points::client::{ConsumeRequest, IdempotencyKey, LedgerClient};
use tauri_plugin_points::events::{
    BALANCE_CHANGED, CHARGE_REFUSED, INSUFFICIENT, PENDING_CHANGED, SESSION_CHANGED,
};
use tauri_plugin_points::journal::{Journal, PendingCharge};
use tauri_plugin_points::{ChargeOutcome, DesktopService, Error, PointsExt};
use uuid::Uuid;

use crate::common::proxy::{Fault, FaultProxy};
use crate::common::{client_for, in_days, TestLedger};
use crate::harness::{invoke_from, ledger, JobError, Setup, TestApp};

/// A second user of `ledger` holding `points`, and their token.
fn second_user(ledger: &TestLedger, points: i64) -> (Uuid, String) {
    let user = Uuid::new_v4();
    block_on(ledger.ledger.recharge(user, points, in_days(30))).unwrap();
    (user, ledger.ledger.token_for(user))
}

/// A client of the ledger itself (not through the app), signed in with `token`.
fn direct(ledger: &TestLedger, token: &str) -> LedgerClient {
    client_for(&ledger.ledger.base_url(), Some(token))
}

fn balance_of(ledger: &TestLedger, token: &str) -> i64 {
    block_on(direct(ledger, token).balance()).unwrap().balance
}

/// The consumes in `token`'s history: (service, idempotency key).
fn consumes_of(ledger: &TestLedger, token: &str) -> Vec<(String, String)> {
    block_on(direct(ledger, token).transactions(Some(100), None))
        .unwrap()
        .items
        .into_iter()
        .filter(|item| item.points < 0 && item.service.is_some())
        .map(|item| {
            (
                item.service.unwrap(),
                item.idempotency_key.unwrap_or_default(),
            )
        })
        .collect()
}

fn app_through(proxy: &FaultProxy) -> TestApp {
    TestApp::start(Setup::new(proxy.base_url.clone()))
}

async fn ok_job() -> Result<(), JobError> {
    Ok(())
}

// 1. A charge is bound to the account that ran the job.

#[test]
fn a_job_is_charged_to_the_account_that_started_it_when_another_signs_in_meanwhile() {
    let ledger = ledger(10);
    let (_, token_b) = second_user(&ledger, 10);
    let app = TestApp::start(Setup::new(ledger.ledger.base_url()));
    let points = app.app.points();
    points.set_session_token(ledger.token.clone()).unwrap();
    let charged = block_on(
        points.run_charged(DesktopService::Compose, Some("j1"), || async {
            // B signs in on the same machine while A's compose runs.
            points.set_session_token(token_b.clone()).unwrap();
            Ok::<_, JobError>(())
        }),
    )
    .unwrap();
    assert!(
        matches!(charged.charge, ChargeOutcome::Acknowledged { .. }),
        "{:?}",
        charged.charge
    );
    assert_eq!(balance_of(&ledger, &ledger.token), 5, "A pays");
    assert_eq!(balance_of(&ledger, &token_b), 10, "B does not");
    // B's windows never see A's figure.
    assert!(app
        .events_named(BALANCE_CHANGED)
        .iter()
        .all(|event| event["balance"] != 5));
}

#[test]
fn a_pending_charge_is_sent_only_with_a_token_of_its_account() {
    let ledger = ledger(10);
    let (_, token_b) = second_user(&ledger, 10);
    let proxy = block_on(FaultProxy::start(&ledger.ledger.base_url()));
    let journal_dir = tempfile::tempdir().unwrap();
    {
        let app = TestApp::start(Setup {
            journal_dir: Some(journal_dir.path().to_owned()),
            ..Setup::new(proxy.base_url.clone())
        });
        let points = app.app.points();
        points.set_session_token(ledger.token.clone()).unwrap();
        let charged = block_on(
            points.run_charged(DesktopService::Compose, Some("j2"), || async {
                proxy.set(Fault::Refuse);
                Ok::<_, JobError>(())
            }),
        )
        .unwrap();
        assert!(charged.charge.is_pending());
        // The app quits: A's captured token is gone with it.
    }
    proxy.set(Fault::Pass);
    let app = TestApp::start(Setup {
        journal_dir: Some(journal_dir.path().to_owned()),
        ..Setup::new(proxy.base_url.clone())
    });
    app.invoke("set_session_token", json!({"token": token_b}))
        .unwrap();
    let status = app.invoke("sync_pending", json!({})).unwrap();
    assert_eq!(status["count"], 0, "B sees none of A's charges");
    assert_eq!(app.app.points().sync().journal().len(), 1, "A's waits");
    assert!(
        consumes_of(&ledger, &token_b).is_empty(),
        "B billed nothing"
    );
    app.invoke("set_session_token", json!({"token": ledger.token}))
        .unwrap();
    app.wait_until("A's charge is sent", || {
        app.app.points().sync().journal().is_empty()
    });
    assert_eq!(
        consumes_of(&ledger, &ledger.token),
        [("compose".to_owned(), "compose:j2".to_owned())]
    );
}

#[test]
fn without_a_session_no_job_starts_and_nothing_is_journaled() {
    let ledger = ledger(10);
    let app = TestApp::start(Setup::new(ledger.ledger.base_url()));
    let ran = AtomicBool::new(false);
    let result = block_on(app.app.points().run_charged(
        DesktopService::Compose,
        Some("j3"),
        || async {
            ran.store(true, Ordering::SeqCst);
            Ok::<_, JobError>(())
        },
    ));
    assert_eq!(result.unwrap_err(), JobError::Points(Error::Unauthorized));
    assert!(!ran.load(Ordering::SeqCst));
    assert!(app.app.points().sync().journal().is_empty());
}

// 2. An opaque token's charges are replayed at the same account's next sign-in.

#[test]
fn opaque_tokens_with_an_account_id_find_their_pending_charges_after_a_restart() {
    let ledger = ledger(10);
    let proxy = block_on(FaultProxy::start(&ledger.ledger.base_url()));
    // A gateway exchanging opaque session tokens: each sign-in gets a new one.
    proxy.exchange_token("session-one", &ledger.token);
    proxy.exchange_token("session-two", &ledger.token);
    let journal_dir = tempfile::tempdir().unwrap();
    {
        let app = TestApp::start(Setup {
            journal_dir: Some(journal_dir.path().to_owned()),
            ..Setup::new(proxy.base_url.clone())
        });
        app.invoke(
            "set_session_token",
            json!({"token": "session-one", "accountId": "user-42"}),
        )
        .unwrap();
        let charged = block_on(app.app.points().run_charged(
            DesktopService::SubtitleBurn,
            Some("j4"),
            || async {
                proxy.set(Fault::Refuse);
                Ok::<_, JobError>(())
            },
        ))
        .unwrap();
        assert!(charged.charge.is_pending());
    }
    proxy.set(Fault::Pass);
    let app = TestApp::start(Setup {
        journal_dir: Some(journal_dir.path().to_owned()),
        ..Setup::new(proxy.base_url.clone())
    });
    app.invoke(
        "set_session_token",
        json!({"token": "session-two", "accountId": "user-42"}),
    )
    .unwrap();
    app.wait_until("the pending charge is sent", || {
        app.app.points().sync().journal().is_empty()
    });
    assert_eq!(balance_of(&ledger, &ledger.token), 8);
}

// 3. The background sync sends pending charges while the app stays open.

#[test]
fn pending_charges_are_sent_by_themselves_when_the_network_comes_back() {
    let ledger = ledger(10);
    let proxy = block_on(FaultProxy::start(&ledger.ledger.base_url()));
    let app = app_through(&proxy);
    let points = app.app.points();
    points.set_session_token(ledger.token.clone()).unwrap();
    // Price checks get through, charges do not (the network fails as each job ends).
    proxy.fault_charges(Fault::Refuse);
    for job in ["a", "b", "c"] {
        let charged =
            block_on(points.run_charged(DesktopService::CoverDesign, Some(job), ok_job)).unwrap();
        assert!(charged.charge.is_pending(), "{job}");
    }
    assert_eq!(app.invoke("get_pending", json!({})).unwrap()["count"], 3);
    std::thread::sleep(Duration::from_millis(500));
    assert_eq!(points.pending_count(), 3, "still offline");
    proxy.set(Fault::Pass);
    // No call from the app: the sync notices by itself.
    app.wait_until("every pending charge is acknowledged", || {
        points.pending_count() == 0
    });
    assert_eq!(balance_of(&ledger, &ledger.token), 4);
    assert_eq!(consumes_of(&ledger, &ledger.token).len(), 3);
    assert!(app
        .events_named(PENDING_CHANGED)
        .ends_with(&[json!({"count": 0, "session": 1})]));
}

#[test]
fn a_retry_after_of_a_day_is_capped_and_one_of_1e20_panics_nothing() {
    // Item 2: a CDN's `Retry-After: 86400` parked every re-send for a day, and a value of about
    // 1e19 panicked on `Instant + Duration` in the sync (or in the host's job).
    let ledger = ledger(10);
    let proxy = block_on(FaultProxy::start(&ledger.ledger.base_url()));
    let app = app_through(&proxy);
    let points = app.app.points();
    points.set_session_token(ledger.token.clone()).unwrap();
    for (job, retry_after) in [
        ("day", "86400"),
        ("huge", "100000000000000000000"),
        ("u64", "18446744073709551615"),
    ] {
        proxy.fault_charges(Fault::Answer {
            status: 503,
            retry_after: Some(retry_after),
            body: "{\"code\":\"maintenance\"}",
        });
        let charged =
            block_on(points.run_charged(DesktopService::CoverDesign, Some(job), ok_job)).unwrap();
        assert!(charged.charge.is_pending(), "{job}: {:?}", charged.charge);
    }
    proxy.set(Fault::Pass);
    // The hold is capped at the sync policy's max_delay (400 ms here), not a day.
    app.wait_until("sent after the capped wait", || points.pending_count() == 0);
    assert_eq!(balance_of(&ledger, &ledger.token), 4);
    // The background task survived: a new pending charge is still sent by itself.
    proxy.fault_charges(Fault::Refuse);
    let charged =
        block_on(points.run_charged(DesktopService::CoverDesign, Some("after"), ok_job)).unwrap();
    assert!(charged.charge.is_pending());
    proxy.set(Fault::Pass);
    app.wait_until("the sync still runs", || points.pending_count() == 0);
    assert_eq!(balance_of(&ledger, &ledger.token), 2);
}

// 4. One job key for two services makes two charges; a refusal is an outcome of its own.

#[test]
fn one_job_key_for_two_services_charges_both() {
    let ledger = ledger(10);
    let proxy = block_on(FaultProxy::start(&ledger.ledger.base_url()));
    let app = app_through(&proxy);
    let points = app.app.points();
    points.set_session_token(ledger.token.clone()).unwrap();
    proxy.fault_charges(Fault::Refuse);
    for service in [DesktopService::Compose, DesktopService::CoverDesign] {
        let charged = block_on(points.run_charged(service, Some("job-7"), ok_job)).unwrap();
        assert!(charged.charge.is_pending(), "{service}");
    }
    assert_eq!(points.pending_count(), 2, "neither replaced the other");
    proxy.set(Fault::Pass);
    app.wait_until("both sent", || points.pending_count() == 0);
    assert_eq!(balance_of(&ledger, &ledger.token), 3);
}

#[test]
fn a_charge_refused_for_good_is_reported_as_refused_and_kept_on_record() {
    let ledger = ledger(20);
    let app = TestApp::start(Setup::new(ledger.ledger.base_url()));
    let points = app.app.points();
    points.set_session_token(ledger.token.clone()).unwrap();
    // The key the job will use was already spent on another charge.
    app.invoke(
        "charge",
        json!({"service": "compose", "idempotencyKey": "compose:job-8", "reference": "other"}),
    )
    .unwrap();
    let charged =
        block_on(points.run_charged(DesktopService::Compose, Some("job-8"), ok_job)).unwrap();
    let ChargeOutcome::Refused {
        idempotency_key,
        error,
    } = &charged.charge
    else {
        panic!("{:?}", charged.charge);
    };
    assert_eq!(idempotency_key, "compose:job-8");
    assert_eq!(
        serde_json::to_value(error).unwrap()["code"],
        "idempotency_conflict"
    );
    app.wait_until("charge-refused", || {
        !app.events_named(CHARGE_REFUSED).is_empty()
    });
    let status = app.invoke("get_pending", json!({})).unwrap();
    assert_eq!(status["count"], 0);
    assert_eq!(status["refused"][0]["idempotencyKey"], "compose:job-8");
    assert_eq!(status["refused"][0]["service"], "compose");
    assert_eq!(status["refused"][0]["error"]["kind"], "backend");
    assert_eq!(
        balance_of(&ledger, &ledger.token),
        15,
        "charged once, not twice"
    );
}

// 5. Real-world tokens (several kilobytes) pass over IPC.

#[test]
fn a_token_of_several_kilobytes_is_accepted_over_ipc() {
    let ledger = ledger(7);
    let proxy = block_on(FaultProxy::start(&ledger.ledger.base_url()));
    let long = format!("eyJ{}", "x".repeat(5000));
    proxy.exchange_token(&long, &ledger.token);
    let app = app_through(&proxy);
    app.invoke(
        "set_session_token",
        json!({"token": long, "accountId": "u"}),
    )
    .unwrap();
    assert_eq!(app.invoke("get_balance", json!({})).unwrap()["balance"], 7);
    let too_long = app
        .invoke("set_session_token", json!({"token": "x".repeat(8193)}))
        .unwrap_err();
    assert_eq!(too_long["field"], "token");
}

// 6. Figures are ordered: a replayed receipt never shows its historical balance.

#[test]
fn a_replayed_receipt_never_puts_an_old_balance_on_screen() {
    let ledger = ledger(10);
    let proxy = block_on(FaultProxy::start(&ledger.ledger.base_url()));
    let app = app_through(&proxy);
    let points = app.app.points();
    points.set_session_token(ledger.token.clone()).unwrap();
    // The ledger applies the charge but its answers are lost.
    proxy.fault_charges(Fault::DropAnswer);
    let charged =
        block_on(points.run_charged(DesktopService::Compose, Some("r1"), ok_job)).unwrap();
    assert!(charged.charge.is_pending());
    // Meanwhile the user spends elsewhere: 5 → 3.
    block_on(direct(&ledger, &ledger.token).consume(
        &ConsumeRequest::new("cover_design"),
        &IdempotencyKey::random(),
    ))
    .unwrap();
    app.clear_events();
    proxy.set(Fault::Pass);
    app.wait_until("the replay and the fresh figure", || {
        points.pending_count() == 0
            && app
                .events_named(BALANCE_CHANGED)
                .iter()
                .any(|event| event["balance"] == 3)
    });
    std::thread::sleep(Duration::from_millis(200));
    let figures: Vec<Value> = app
        .events_named(BALANCE_CHANGED)
        .iter()
        .map(|event| event["balance"].clone())
        .collect();
    assert!(figures.iter().all(|figure| figure == 3), "{figures:?}");
    assert_eq!(consumes_of(&ledger, &ledger.token).len(), 2, "charged once");
}

#[test]
fn balance_events_never_go_back_in_seq() {
    let ledger = ledger(50);
    let app = TestApp::start(Setup::new(ledger.ledger.base_url()));
    let points = app.app.points();
    points.set_session_token(ledger.token.clone()).unwrap();
    let windows: Vec<_> = (0..4)
        .map(|i| {
            let window = app.window.clone();
            std::thread::spawn(move || {
                for _ in 0..5 {
                    if i % 2 == 0 {
                        invoke_from(&window, "get_balance", json!({})).unwrap();
                    } else {
                        invoke_from(&window, "charge", json!({"service": "cover_design"})).unwrap();
                    }
                }
            })
        })
        .collect();
    for handle in windows {
        handle.join().unwrap();
    }
    let seqs: Vec<i64> = app
        .events_named(BALANCE_CHANGED)
        .iter()
        .map(|event| event["seq"].as_i64().unwrap())
        .collect();
    assert!(seqs.windows(2).all(|pair| pair[0] <= pair[1]), "{seqs:?}");
    let last = app.events_named(BALANCE_CHANGED).last().unwrap().clone();
    assert_eq!(last["balance"], 30, "10 charges of 2");
}

// 7. Sign-out clears the screen and really signs out.

#[test]
fn sign_out_is_announced_and_wins_over_the_token_provider() {
    let ledger = ledger(10);
    let (_, token_b) = second_user(&ledger, 3);
    let app = TestApp::start(Setup {
        token: Some(ledger.token.clone()),
        ..Setup::new(ledger.ledger.base_url())
    });
    assert_eq!(app.invoke("get_balance", json!({})).unwrap()["balance"], 10);
    app.clear_events();
    app.invoke("clear_session_token", json!({})).unwrap();
    assert_eq!(
        app.events_named(SESSION_CHANGED),
        [json!({"signedIn": false, "session": 2})]
    );
    assert_eq!(
        app.events_named(PENDING_CHANGED),
        [json!({"count": 0, "session": 2})]
    );
    let refused = app.invoke("get_balance", json!({})).unwrap_err();
    assert_eq!(
        refused["kind"], "unauthorized",
        "the provider's token is not used"
    );
    app.invoke("set_session_token", json!({"token": token_b}))
        .unwrap();
    assert_eq!(
        app.events_named(SESSION_CHANGED).last().unwrap(),
        &json!({"signedIn": true, "session": 3})
    );
    let balance = app.invoke("get_balance", json!({})).unwrap();
    assert_eq!(balance["balance"], 3);
    let last = app.events_named(BALANCE_CHANGED).last().unwrap().clone();
    assert_eq!(
        (last["balance"].clone(), last["session"].clone()),
        (json!(3), json!(3))
    );
}

// 8. One refusal opens one dialog: the event names the refused window.

#[test]
fn a_refusal_names_the_window_whose_action_was_refused() {
    let ledger = ledger(1);
    let app = TestApp::start(Setup {
        token: Some(ledger.token.clone()),
        extra_windows: &["second"],
        ..Setup::new(ledger.ledger.base_url())
    });
    invoke_from(
        &app.window("second"),
        "charge",
        json!({"service": "compose"}),
    )
    .unwrap_err();
    let points = app.app.points();
    block_on(
        points
            .job(DesktopService::CoverDesign)
            .window("second")
            .run(ok_job),
    )
    .unwrap_err();
    block_on(points.run_charged(DesktopService::Compose, None, ok_job)).unwrap_err();
    let windows: Vec<Value> = app
        .events_named(INSUFFICIENT)
        .iter()
        .map(|event| event["window"].clone())
        .collect();
    assert_eq!(windows, [json!("second"), json!("second"), json!("main")]);
}

// 9. After a restart the pending count is there at once.

#[test]
fn pending_charges_are_counted_at_start() {
    let ledger = ledger(10);
    let proxy = block_on(FaultProxy::start(&ledger.ledger.base_url()));
    proxy.set(Fault::Refuse);
    let journal_dir = tempfile::tempdir().unwrap();
    {
        let journal = Journal::open(journal_dir.path()).unwrap();
        for key in ["k1", "k2"] {
            journal
                .record(&PendingCharge::new(
                    &tauri_plugin_points::client::account_of(&ledger.token),
                    &IdempotencyKey::parse(key).unwrap(),
                    ConsumeRequest {
                        allow_debt: true,
                        ..ConsumeRequest::new("compose")
                    },
                ))
                .unwrap();
        }
    }
    let app = TestApp::start(Setup {
        token: Some(ledger.token.clone()),
        journal_dir: Some(journal_dir.path().to_owned()),
        ..Setup::new(proxy.base_url.clone())
    });
    let status = app.invoke("get_pending", json!({})).unwrap();
    assert_eq!(status["count"], 2);
    assert!(status["oldestAgeSeconds"].as_u64().is_some());
    proxy.set(Fault::Pass);
    let status = app.invoke("sync_pending", json!({})).unwrap();
    assert_eq!(status["count"], 0);
    assert_eq!(balance_of(&ledger, &ledger.token), 0);
}

// 10. A second instance of the app cannot take over the journal.

#[test]
fn a_second_instance_on_the_same_journal_fails_to_start_with_a_clear_error() {
    let ledger = ledger(10);
    let journal_dir = tempfile::tempdir().unwrap();
    let _first = TestApp::start(Setup {
        journal_dir: Some(journal_dir.path().to_owned()),
        ..Setup::new(ledger.ledger.base_url())
    });
    let second = tauri::test::mock_builder()
        .plugin(
            tauri_plugin_points::Builder::new()
                .base_url(ledger.ledger.base_url())
                .journal_dir(journal_dir.path())
                .build(),
        )
        .build(tauri::test::mock_context(tauri::test::noop_assets()));
    let Err(error) = second else {
        panic!("the second instance started");
    };
    assert!(
        error.to_string().contains("another running instance"),
        "{error}"
    );
}
