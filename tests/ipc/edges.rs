//! Exactly once at the edges, through IPC as a webview calls the plugin: a webview charge whose
//! answer is lost, refused charges listed, re-sent and dismissed, one account under the two
//! documented sign-in calls, charges waiting for other accounts, and events that never go back.

use std::time::Duration;

use serde_json::{json, Value};
use tauri::async_runtime::block_on;
use tauri_plugin_points::client::{ConsumeRequest, IdempotencyKey};
use tauri_plugin_points::events::{
    BALANCE_CHANGED, CHARGE_REFUSED, PENDING_CHANGED, SESSION_CHANGED,
};
use tauri_plugin_points::{ChargeOutcome, DesktopService, PointsExt};

use crate::common::client_for;
use crate::common::proxy::{Fault, FaultProxy};
use crate::harness::{ledger, JobError, Setup, TestApp};

fn consumes(base_url: &str, token: &str) -> Vec<String> {
    block_on(client_for(base_url, Some(token)).transactions(Some(200), None))
        .unwrap()
        .items
        .into_iter()
        .filter(|item| item.points < 0 && item.service.is_some())
        .map(|item| item.idempotency_key.unwrap_or_default())
        .collect()
}

// Item 1: a webview charge retried after a lost answer is one charge.

#[test]
fn a_webview_charge_whose_answer_is_lost_resolves_pending_and_its_retry_charges_nothing_more() {
    let ledger = ledger(10);
    let proxy = block_on(FaultProxy::start(&ledger.ledger.base_url()));
    let app = TestApp::start(Setup {
        token: Some(ledger.token.clone()),
        ..Setup::new(proxy.base_url.clone())
    });
    // The ledger applies the charge; its answer never comes back.
    proxy.fault_charges(Fault::DropAnswer);
    let args = json!({"service": "compose", "idempotencyKey": "webview:click-1"});
    let first = app.invoke("charge", args.clone());
    assert_eq!(
        first,
        Ok(json!({"status": "pending", "idempotencyKey": "webview:click-1"})),
        "pending, never a rejection that invites a second charge"
    );
    assert_eq!(app.invoke("get_pending", json!({})).unwrap()["count"], 1);
    // The user clicks again (the store passes the same key for the same action).
    let again = app.invoke("charge", args.clone()).unwrap();
    assert_eq!(again["status"], "pending");
    proxy.set(Fault::Pass);
    app.wait_until("the pending charge is settled", || {
        app.app.points().pending_count() == 0
    });
    let after = app.invoke("charge", args).unwrap();
    assert_eq!(after["status"], "acknowledged");
    assert_eq!(after["receipt"]["replayed"], true);
    assert_eq!(
        consumes(&ledger.ledger.base_url(), &ledger.token),
        ["webview:click-1"],
        "one charge in all"
    );
}

// Item 8: refused charges are listed, re-sent and dismissed; recorded and told once.

#[test]
fn a_refused_charge_is_recorded_once_and_can_be_sent_again_or_dismissed() {
    let ledger = ledger(20);
    let proxy = block_on(FaultProxy::start(&ledger.ledger.base_url()));
    let app = TestApp::start(Setup {
        token: Some(ledger.token.clone()),
        ..Setup::new(proxy.base_url.clone())
    });
    let points = app.app.points();
    // A definitive verdict: the ledger's known code.
    proxy.fault_charges(Fault::Answer {
        status: 422,
        retry_after: None,
        body: "{\"code\":\"unknown_service\",\"detail\":\"no such service\"}",
    });
    let refused =
        block_on(points.run_charged(DesktopService::CoverDesign, Some("gone"), ok_job)).unwrap();
    assert!(
        matches!(refused.charge, ChargeOutcome::Refused { .. }),
        "{:?}",
        refused.charge
    );
    // A price table being redeployed answers a bare 422: held, not refused.
    proxy.fault_charges(Fault::Answer {
        status: 422,
        retry_after: None,
        body: "{\"detail\":\"service temporarily unavailable\"}",
    });
    let held = block_on(points.run_charged(DesktopService::Compose, Some("held"), ok_job)).unwrap();
    assert!(held.charge.is_pending(), "{:?}", held.charge);
    // Passes while the answers stay: held stays pending, no second record, no second event.
    for _ in 0..3 {
        app.invoke("sync_pending", json!({})).unwrap();
    }
    let status = app.invoke("get_pending", json!({})).unwrap();
    assert_eq!(status["count"], 1, "{status}");
    assert_eq!(status["refused"].as_array().unwrap().len(), 1, "{status}");
    assert_eq!(status["refused"][0]["idempotencyKey"], "cover_design:gone");
    assert_eq!(app.events_named(CHARGE_REFUSED).len(), 1);
    // The service is back: the user sends it again.
    proxy.set(Fault::Pass);
    let retried = app
        .invoke(
            "retry_refused",
            json!({"idempotencyKey": "cover_design:gone"}),
        )
        .unwrap();
    assert!(retried["refused"].as_array().unwrap().is_empty());
    app.wait_until("both are charged", || points.pending_count() == 0);
    let mut charged = consumes(&ledger.ledger.base_url(), &ledger.token);
    charged.sort();
    assert_eq!(charged, ["compose:held", "cover_design:gone"]);
    // Another refusal, dismissed by the user.
    proxy.fault_charges(Fault::Answer {
        status: 422,
        retry_after: None,
        body: "{\"code\":\"not_chargeable_here\"}",
    });
    block_on(points.run_charged(DesktopService::SubtitleBurn, Some("x"), ok_job)).unwrap();
    let unknown = app
        .invoke("dismiss_refused", json!({"idempotencyKey": "nope"}))
        .unwrap();
    assert_eq!(unknown["refused"].as_array().unwrap().len(), 1);
    let dismissed = app
        .invoke(
            "dismiss_refused",
            json!({"idempotencyKey": "subtitle_burn:x"}),
        )
        .unwrap();
    assert!(dismissed["refused"].as_array().unwrap().is_empty());
    assert!(app
        .invoke(
            "retry_refused",
            json!({"idempotencyKey": "subtitle_burn:x"})
        )
        .is_err());
}

// Item 8: a different charge under a pending key is refused with a record and an event.

#[test]
fn a_second_charge_under_a_pending_key_is_refused_on_record() {
    let ledger = ledger(20);
    let proxy = block_on(FaultProxy::start(&ledger.ledger.base_url()));
    let app = TestApp::start(Setup {
        token: Some(ledger.token.clone()),
        ..Setup::new(proxy.base_url.clone())
    });
    let points = app.app.points();
    proxy.fault_charges(Fault::Refuse);
    let charged = block_on(points.charge(
        DesktopService::Compose,
        Some(IdempotencyKey::parse("dup").unwrap()),
        None,
    ))
    .unwrap();
    assert!(charged.is_pending());
    let session = points.session().unwrap();
    let mut other = tauri_plugin_points::journal::PendingCharge::new(
        session.account(),
        &IdempotencyKey::parse("dup").unwrap(),
        ConsumeRequest::new("cover_design"),
    );
    other.price = Some(2);
    let outcome = block_on(points.sync().charge(&session, other));
    assert!(
        matches!(outcome.outcome(), Some(ChargeOutcome::Refused { .. })),
        "{outcome:?}"
    );
    assert_eq!(
        app.invoke("get_pending", json!({})).unwrap()["refused"]
            .as_array()
            .unwrap()
            .len(),
        1
    );
    assert_eq!(app.events_named(CHARGE_REFUSED).len(), 1);
}

// Item 5: one account under both documented sign-in calls; others' charges are counted.

#[test]
fn one_user_has_one_label_whichever_sign_in_call_the_host_uses() {
    let ledger = ledger(20);
    let proxy = block_on(FaultProxy::start(&ledger.ledger.base_url()));
    let app = TestApp::start(Setup::new(proxy.base_url.clone()));
    let points = app.app.points();
    points
        .sign_in(ledger.token.clone(), Some("host-42".into()))
        .unwrap();
    proxy.fault_charges(Fault::Refuse);
    block_on(points.run_charged(DesktopService::Compose, Some("a"), ok_job)).unwrap();
    points.clear_session_token();
    // The same user, signed in through the webview's call without an account id.
    app.invoke("set_session_token", json!({"token": ledger.token}))
        .unwrap();
    assert_eq!(app.invoke("get_pending", json!({})).unwrap()["count"], 1);
    proxy.set(Fault::Pass);
    app.wait_until("sent under the other call", || points.pending_count() == 0);
    assert_eq!(
        consumes(&ledger.ledger.base_url(), &ledger.token),
        ["compose:a"]
    );
}

#[test]
fn pending_charges_of_other_accounts_are_counted_and_sent_when_they_return() {
    let ledger = ledger(20);
    let (_, token_b) = {
        let user = uuid::Uuid::new_v4();
        block_on(ledger.ledger.recharge(user, 20, crate::common::in_days(30))).unwrap();
        (user, ledger.ledger.token_for(user))
    };
    let proxy = block_on(FaultProxy::start(&ledger.ledger.base_url()));
    let app = TestApp::start(Setup::new(proxy.base_url.clone()));
    let points = app.app.points();
    points.set_session_token(ledger.token.clone()).unwrap();
    proxy.fault_charges(Fault::Refuse);
    block_on(points.run_charged(DesktopService::Compose, Some("a1"), ok_job)).unwrap();
    block_on(points.run_charged(DesktopService::Compose, Some("a2"), ok_job)).unwrap();
    points.set_session_token(token_b.clone()).unwrap();
    let status = app.invoke("get_pending", json!({})).unwrap();
    assert_eq!(
        (status["count"].clone(), status["otherAccounts"].clone()),
        (json!(0), json!(2))
    );
    proxy.set(Fault::Pass);
    // A's captured tokens are still in memory: sent for A, never for B.
    app.wait_until("A's charges are sent", || {
        points.sync().journal().is_empty()
    });
    assert_eq!(
        consumes(&ledger.ledger.base_url(), &token_b),
        Vec::<String>::new()
    );
    assert_eq!(consumes(&ledger.ledger.base_url(), &ledger.token).len(), 2);
}

// Item 10: balance and session events never go back for any listener.

#[test]
fn balance_and_session_events_never_go_back() {
    let ledger = ledger(100);
    let (token_b, _) = {
        let user = uuid::Uuid::new_v4();
        block_on(
            ledger
                .ledger
                .recharge(user, 100, crate::common::in_days(30)),
        )
        .unwrap();
        (ledger.ledger.token_for(user), user)
    };
    let app = TestApp::start(Setup {
        token: Some(ledger.token.clone()),
        ..Setup::new(ledger.ledger.base_url())
    });
    let points = app.app.points();
    let workers: Vec<_> = (0..4)
        .map(|worker| {
            let points = points.clone();
            std::thread::spawn(move || {
                for n in 0..10 {
                    let key = format!("w{worker}-{n}");
                    let _ = block_on(points.run_charged(
                        DesktopService::CoverDesign,
                        Some(&key),
                        ok_job,
                    ));
                    let _ = block_on(points.balance());
                }
            })
        })
        .collect();
    let switcher = {
        let points = points.clone();
        let (a, b) = (ledger.token.clone(), token_b.clone());
        std::thread::spawn(move || {
            for n in 0..20 {
                let token = if n % 2 == 0 { &b } else { &a };
                points.set_session_token(token.clone()).unwrap();
                std::thread::sleep(Duration::from_millis(5));
            }
        })
    };
    for worker in workers {
        worker.join().unwrap();
    }
    switcher.join().unwrap();
    app.flush_events();
    let mut session = 0;
    let mut seq = None;
    let events = app.all_events();
    for (name, payload) in &events {
        let of = payload["session"].as_u64().unwrap();
        if name == SESSION_CHANGED {
            assert!(of > session, "session went back: {events:?}");
            session = of;
            seq = None;
            continue;
        }
        if name == BALANCE_CHANGED || name == PENDING_CHANGED {
            assert_eq!(
                of, session,
                "{name} of session {of} after session {session}"
            );
        }
        if name == BALANCE_CHANGED {
            let this = payload["seq"].as_i64();
            if let (Some(this), Some(last)) = (this, seq) {
                assert!(this >= last, "seq went back: {last} then {this}");
            }
            seq = this.or(seq);
        }
    }
    let _: Vec<Value> = app.events_named(BALANCE_CHANGED);
}

async fn ok_job() -> Result<(), JobError> {
    Ok(())
}
