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
    let low = last_balance(&app).unwrap();
    backend_spends(&ledger, 1, "tts:spend-2");
    app.wait_until("the next figure", || last_balance(&app) == Some(low - 1));
    assert_eq!(thresholds_fired(&app), [50], "still under 50: not again");
    drop(app);

    // A restart on the same journal: the balance is still under 50, and nothing fires again.
    let app = app_with_alerts(&ledger, journal.path());
    app.wait_until("the first figure after the restart", || {
        last_balance(&app).is_some()
    });
    let low = last_balance(&app).unwrap();
    backend_spends(&ledger, 1, "tts:spend-3");
    app.wait_until("the figure after the restart's spend", || {
        last_balance(&app) == Some(low - 1)
    });
    assert!(
        thresholds_fired(&app).is_empty(),
        "remembered across the restart: {:?}",
        app.events_named(LOW_BALANCE)
    );
    let in_force = app.invoke("get_low_balance", json!({})).unwrap();
    assert_eq!(
        (
            &in_force["threshold"],
            &in_force["balance"],
            &in_force["session"]
        ),
        (&json!(50), &json!(low - 1), &json!(1)),
        "a window opened now shows the crossing in force: {in_force}"
    );

    // Back above 50 re-arms it; the next crossing fires again.
    tauri::async_runtime::block_on(ledger.ledger.recharge(ledger.user, 100, in_days(30))).unwrap();
    app.wait_until("above 50 again", || last_balance(&app).unwrap() >= 50);
    assert_eq!(
        app.invoke("get_low_balance", json!({})).unwrap(),
        Value::Null
    );
    let balance = last_balance(&app).unwrap();
    backend_spends(&ledger, balance - 5, "tts:spend-4");
    app.wait_until("both crossed at once", || {
        thresholds_fired(&app) == [50, 10]
    });
}

/// One change the driver made: its `seq`, the balance after it, and when its answer came.
struct Change {
    seq: i64,
    balance: i64,
    at: std::time::Instant,
}

/// The stream cut by a proxy every 0.5 to 4 s (seeded) while the balance wanders around a
/// low-balance threshold, for `POINTS_LIVE_FAULT_SECS` (default 15; the long run: 600): every
/// change reaches the windows, in `seq` order, within the stated bound, and the alert fires once
/// per downward crossing of the ledger's own sequence of balances.
#[test]
fn a_stream_cut_every_few_seconds_loses_no_figure_shows_none_out_of_order_and_fires_no_alert_twice()
{
    use std::sync::{Arc, Mutex};
    use std::time::{Duration, Instant};
    use tauri::Listener;

    use crate::common::proxy::{Fault, FaultProxy};

    /// The longest a committed change may take to reach the windows across a cut: the first
    /// reconnect backoff (at most 500 ms), a second one if that reconnection fails too (at most
    /// 1 s), the reconnections and the replay.
    const BOUND: Duration = Duration::from_secs(3);
    const THRESHOLD: i64 = 500;

    if let Ok(filter) = std::env::var("POINTS_LIVE_LOG") {
        let _ = tracing_subscriber::fmt()
            .with_env_filter(tracing_subscriber::EnvFilter::new(filter))
            .try_init();
    }
    let seconds: u64 = std::env::var("POINTS_LIVE_FAULT_SECS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(15);
    let seed: u64 = std::env::var("POINTS_LIVE_SEED")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| fastrand::u64(..));
    let ledger = ledger(THRESHOLD + 100);
    let proxy = tauri::async_runtime::block_on(FaultProxy::start(&ledger.ledger.base_url()));
    let mut rng = fastrand::Rng::with_seed(seed);
    proxy.choose(move |line| {
        if line.starts_with("GET /points/stream") {
            Fault::Stream {
                cut_after: Some(Duration::from_millis(rng.u64(500..4000))),
            }
        } else {
            Fault::Pass
        }
    });
    let app = TestApp::start(Setup {
        token: Some(ledger.token.clone()),
        plugin_config: Some(json!({"lowBalance": [THRESHOLD]})),
        ..Setup::new(proxy.base_url.clone())
    });
    let seen: Arc<Mutex<Vec<(Instant, i64)>>> = Arc::default();
    {
        let seen = seen.clone();
        app.app.listen_any(BALANCE_CHANGED, move |event| {
            let payload: Value = serde_json::from_str(event.payload()).unwrap();
            let seq = payload["seq"]
                .as_i64()
                .expect("the reference ledger sends seq");
            seen.lock().unwrap().push((Instant::now(), seq));
        });
    }
    app.wait_until("the first figure", || !seen.lock().unwrap().is_empty());

    // The driver: the balance wanders between 350 and 650, crossing the threshold often.
    let backend = client_for(&ledger.ledger.base_url(), Some(&ledger.token));
    let mut walk = fastrand::Rng::with_seed(seed ^ 0x5eed);
    let mut changes: Vec<Change> = Vec::new();
    let mut balance = THRESHOLD + 100;
    let started = Instant::now();
    tauri::async_runtime::block_on(async {
        let mut n = 0;
        while started.elapsed() < Duration::from_secs(seconds) {
            n += 1;
            let step = walk.i64(5..60);
            let down = balance - step >= 350 && (balance + step > 650 || walk.bool());
            let (seq, after) = if down {
                let request = ConsumeRequest {
                    duration: Some(step as f64),
                    allow_debt: true,
                    ..ConsumeRequest::new("tts")
                };
                let key = IdempotencyKey::parse(format!("tts:walk-{n}")).unwrap();
                let receipt = backend.consume(&request, &key).await.expect("consume");
                (receipt.seq.unwrap(), receipt.balance)
            } else {
                let receipt = ledger
                    .ledger
                    .recharge_once(ledger.user, step, in_days(30), &format!("walk-{n}"))
                    .await
                    .expect("recharge");
                (receipt.seq, receipt.balance)
            };
            balance = after;
            changes.push(Change {
                seq,
                balance: after,
                at: Instant::now(),
            });
            tokio::time::sleep(Duration::from_millis(walk.u64(5..40))).await;
        }
    });
    let last_seq = changes.last().unwrap().seq;
    app.wait_until("the last change", || {
        seen.lock()
            .unwrap()
            .last()
            .is_some_and(|(_, seq)| *seq >= last_seq)
    });
    app.flush_events();

    let seen = seen.lock().unwrap().clone();
    let seqs: Vec<i64> = seen.iter().map(|(_, seq)| *seq).collect();
    assert!(
        seqs.windows(2).all(|w| w[0] < w[1]),
        "no figure out of order (nor twice)"
    );
    let mut delays: Vec<Duration> = changes
        .iter()
        .map(|change| {
            let (shown, _) = seen
                .iter()
                .find(|(_, seq)| *seq >= change.seq)
                .expect("every change is shown");
            shown.saturating_duration_since(change.at)
        })
        .collect();
    for (change, delay) in changes.iter().zip(&delays) {
        if *delay > BOUND / 2 {
            tracing::warn!(seq = change.seq, ?delay, "a slow change");
        }
    }
    let every_seq = changes.iter().all(|change| seqs.contains(&change.seq));
    delays.sort();
    let p = |q: f64| delays[((delays.len() - 1) as f64 * q) as usize];
    let worst = *delays.last().unwrap();

    // The ledger's own sequence of balances decides the crossings.
    let mut crossings = 0;
    let mut previous = THRESHOLD + 100;
    for change in &changes {
        if change.balance < THRESHOLD && previous >= THRESHOLD {
            crossings += 1;
        }
        previous = change.balance;
    }
    let alerts = app.events_named(LOW_BALANCE).len();
    let cuts = proxy.stats.cut.load(std::sync::atomic::Ordering::SeqCst);
    println!(
        "live faults: seed {seed}, {seconds} s, {} changes, {cuts} cuts, every seq shown: \
         {every_seq}, delay p50 {:?} p99 {:?} max {worst:?} (bound {BOUND:?}), \
         {crossings} crossings, {alerts} alerts",
        changes.len(),
        p(0.5),
        p(0.99),
    );
    assert!(cuts >= seconds / 4, "the stream was cut every few seconds");
    assert!(
        every_seq,
        "every change was shown (the replay fills each cut)"
    );
    assert!(
        worst <= BOUND,
        "no change shown later than {BOUND:?}: {worst:?}"
    );
    assert_eq!(alerts, crossings, "one alert per downward crossing");
}
