//! Offline work against the real reference ledger: a proxy refuses every connection to make it
//! unreachable; jobs run on the allowance it signed, their charges are journaled under it and
//! settled exactly once when it is back; restarts, exhaustion, expiry during a job, a clock set
//! back, tampered and foreign allowances.

use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::Arc;

use points_sdk::allowance::PinnedKeys;
use points_sdk::client::IdempotencyKey;
use points_sdk::journal::Journal;
use points_sdk::offline::{Offline, OfflineSettings};
use points_sdk::timemark::Clock;
use points_sdk::{
    ChargeOutcome, ChargeSync, Error, JobSpec, Jobs, LedgerClient, Session, Sessions,
};
use uuid::Uuid;

use crate::common::proxy::{Fault, FaultProxy};
use crate::common::{client_for, fast_sync, in_days, TestLedger};

/// A clock the test sets.
struct ManualClock(AtomicI64);

impl Clock for ManualClock {
    fn now(&self) -> i64 {
        self.0.load(Ordering::SeqCst)
    }
}

impl ManualClock {
    fn advance(&self, seconds: i64) {
        self.0.fetch_add(seconds, Ordering::SeqCst);
    }
}

/// The ledger behind a proxy, and the folder the desktop's state lives in.
struct Rig {
    ledger: TestLedger,
    proxy: FaultProxy,
    dir: tempfile::TempDir,
    clock: Arc<ManualClock>,
    keys: Vec<(String, String)>,
}

/// One run of the desktop side (dropped and opened again: a restart).
struct Desk {
    sessions: Arc<Sessions>,
    client: LedgerClient,
    journal: Arc<Journal>,
    sync: ChargeSync,
    jobs: Jobs,
    offline: Offline,
}

impl Rig {
    async fn start(points: i64) -> Self {
        let ledger = TestLedger::start(points).await;
        let proxy = FaultProxy::start(&ledger.ledger.base_url()).await;
        let keys = ledger.ledger.allowance_public_keys();
        Self {
            ledger,
            proxy,
            dir: tempfile::tempdir().unwrap(),
            clock: Arc::new(ManualClock(AtomicI64::new(
                time::OffsetDateTime::now_utc().unix_timestamp(),
            ))),
            keys,
        }
    }

    fn pinned(&self) -> PinnedKeys {
        PinnedKeys::from_base64(
            self.keys
                .iter()
                .map(|(id, key)| (id.as_str(), key.as_str())),
        )
        .unwrap()
    }

    /// The desktop side signed in as `token`, pinning `keys`.
    async fn open_with(&self, token: &str, keys: PinnedKeys) -> Desk {
        let sessions = Arc::new(Sessions::new(None));
        sessions.sign_in(Session::new(token, None).unwrap());
        let client = client_for(&self.proxy.base_url, None);
        // The journal of the previous run may still be held for a moment by a task it spawned.
        let mut journal = Journal::open(self.dir.path().join("journal"));
        for _ in 0..100 {
            if journal.is_ok() {
                break;
            }
            tokio::time::sleep(std::time::Duration::from_millis(20)).await;
            journal = Journal::open(self.dir.path().join("journal"));
        }
        let journal = Arc::new(journal.unwrap());
        let sync = ChargeSync::new(
            client.clone(),
            journal.clone(),
            sessions.clone(),
            fast_sync(),
            Arc::new(()),
        );
        let mut settings = OfflineSettings::new(keys);
        settings.device_id = Some("desk-1".into());
        settings.clock = self.clock.clone();
        let offline = Offline::open(self.dir.path().join("offline"), settings).unwrap();
        let jobs =
            Jobs::new(client.clone(), sync.clone(), Arc::new(())).with_offline(offline.clone());
        Desk {
            sessions,
            client,
            journal,
            sync,
            jobs,
            offline,
        }
    }

    async fn open(&self) -> Desk {
        self.open_with(&self.ledger.token, self.pinned()).await
    }

    async fn balance(&self) -> points_sdk::models::PointBalance {
        let balance = self.ledger.client().balance().await.unwrap();
        assert_eq!(
            balance.balance,
            balance.total_recharged - balance.total_consumed - balance.total_expired,
            "the ledger's invariant"
        );
        balance
    }
}

impl Desk {
    fn session(&self) -> Session {
        self.sessions.current().unwrap()
    }

    async fn refresh(&self) -> bool {
        self.offline
            .refresh_if_due(&self.client, &self.session(), &self.journal, None)
            .await
            .expect("an allowance")
    }

    async fn job(&self, service: &str, key: &str) -> Result<ChargeOutcome, Error> {
        self.jobs
            .run(
                JobSpec::new(service, IdempotencyKey::parse(key).unwrap()),
                || async { Ok::<_, Error>(()) },
            )
            .await
            .map(|charged| charged.charge)
    }

    /// One sync pass, which must settle exactly one charge and refuse none.
    async fn settle_one(&self) {
        let report = self.sync.sync_now().await;
        assert_eq!(
            (report.acknowledged.len(), report.refused.len()),
            (1, 0),
            "one charge settles under its allowance: {report:?}"
        );
    }

    /// Saves what is held and releases the journal (the app quits).
    fn close(self) {
        self.offline.save_now();
        self.sync.shutdown();
    }
}

/// Waits (up to 5 s) for `found` to find something.
async fn wait_for<T>(mut found: impl FnMut() -> Option<T>) -> T {
    for _ in 0..250 {
        if let Some(value) = found() {
            return value;
        }
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    panic!("not found in time");
}

fn assert_pending(outcome: Result<ChargeOutcome, Error>) {
    assert!(
        matches!(outcome, Ok(ChargeOutcome::Pending { .. })),
        "an offline job's charge is pending: {outcome:?}"
    );
}

#[tokio::test]
async fn offline_jobs_run_on_the_allowance_and_settle_exactly_once_when_the_ledger_is_back() {
    let rig = Rig::start(12).await;
    let desk = rig.open().await;
    assert!(
        matches!(
            desk.job("compose", "before").await,
            Ok(ChargeOutcome::Acknowledged { .. })
        ),
        "online, the job runs on the ledger"
    );
    // Online: the job's pre-check and its charge each ask for an allowance; the last one is
    // of what is left (7), superseding one of 12.
    let allowance = wait_for(|| {
        desk.offline
            .allowance_of(desk.session().account())
            .filter(|allowance| allowance.points == 7)
    })
    .await;

    rig.proxy.set(Fault::Refuse);
    assert_pending(desk.job("compose", "off-1").await);
    let status = desk.offline.status(&desk.session(), &desk.journal).unwrap();
    assert_eq!(status.remaining, 2);
    assert!(status.until.is_some());
    match desk.job("compose", "off-2").await {
        Err(Error::OfflineAllowanceExhausted {
            required,
            remaining,
            ..
        }) => assert_eq!((required, remaining), (5, 2)),
        other => panic!("past the allowance: {other:?}"),
    }
    assert_pending(desk.job("cover_design", "off-3").await);
    assert!(matches!(
        desk.job("subtitle_burn", "off-4").await,
        Err(Error::OfflineAllowanceExhausted { remaining: 0, .. })
    ));
    assert_eq!(
        desk.journal.len(),
        2,
        "the two offline charges are journaled"
    );
    assert!(desk
        .journal
        .pending()
        .iter()
        .all(|charge| charge.allowance_id.as_deref() == Some(allowance.allowance_id.as_str())));

    // Back: both settle under the allowance, once, even when the sync runs again.
    rig.proxy.set(Fault::Pass);
    let report = desk.sync.sync_now().await;
    assert_eq!(report.acknowledged.len(), 2, "{report:?}");
    assert!(desk.sync.sync_now().await.acknowledged.is_empty());
    let balance = rig.balance().await;
    assert_eq!(balance.balance, 0, "12 - 5 online - 5 - 2 offline");
    assert_eq!(balance.total_consumed, 12);
    let history = rig.ledger.client().transactions(None, None).await.unwrap();
    let consumes = history
        .items
        .iter()
        .filter(|t| t.kind == points_sdk::models::TransactionKind::Consume)
        .count();
    assert_eq!(consumes, 3, "no charge doubled");
}

#[tokio::test]
async fn what_was_spent_offline_is_counted_across_restarts() {
    let rig = Rig::start(8).await;
    let desk = rig.open().await;
    desk.refresh().await;
    rig.proxy.set(Fault::Refuse);
    assert_pending(desk.job("compose", "first-run").await);
    desk.close();

    let desk = rig.open().await;
    assert_eq!(
        desk.journal.len(),
        1,
        "the offline charge is still journaled"
    );
    assert!(
        matches!(
            desk.job("compose", "second-run").await,
            Err(Error::OfflineAllowanceExhausted { remaining: 3, .. })
        ),
        "5 of 8 already spent before the restart"
    );
    assert_pending(desk.job("cover_design", "second-run-cover").await);

    // Settled, the charges still count after another restart (the allowance is not renewed
    // while the ledger stays away).
    rig.proxy.set(Fault::Pass);
    assert_eq!(desk.sync.sync_now().await.acknowledged.len(), 2);
    rig.proxy.set(Fault::Refuse);
    desk.close();
    let desk = rig.open().await;
    assert!(desk.journal.is_empty());
    // Either still the first allowance (7 of 8 spent) or the one taken once both settled (of
    // the balance left, 1): one point either way.
    assert!(matches!(
        desk.job("cover_design", "third-run").await,
        Err(Error::OfflineAllowanceExhausted { remaining: 1, .. })
    ));
    rig.proxy.set(Fault::Pass);
    assert_eq!(rig.balance().await.balance, 1);
}

#[tokio::test]
async fn a_job_running_when_the_allowance_expires_is_still_settled_and_the_next_is_refused() {
    let rig = Rig::start(20).await;
    let desk = rig.open().await;
    desk.refresh().await;
    let allowance = desk.offline.allowance_of(desk.session().account()).unwrap();
    rig.proxy.set(Fault::Refuse);
    let clock = rig.clock.clone();
    let past = allowance.not_after + 60 - clock.now();
    let charged = desk
        .jobs
        .run(
            JobSpec::new("compose", IdempotencyKey::parse("long-job").unwrap()),
            || async move {
                clock.advance(past);
                Ok::<_, Error>(())
            },
        )
        .await
        .unwrap();
    assert!(charged.charge.is_pending());
    assert!(matches!(
        desk.job("cover_design", "after-expiry").await,
        Err(Error::OfflineAllowanceExpired { .. })
    ));
    rig.proxy.set(Fault::Pass);
    // The ledger's own clock is still within the window: the charge settles under it.
    assert_eq!(desk.sync.sync_now().await.acknowledged.len(), 1);
    assert_eq!(rig.balance().await.balance, 15);
}

#[tokio::test]
async fn a_clock_set_back_refuses_offline_jobs_until_the_ledger_is_reached() {
    let rig = Rig::start(20).await;
    let desk = rig.open().await;
    desk.refresh().await;
    rig.proxy.set(Fault::Refuse);
    assert_pending(desk.job("cover_design", "on-time").await);
    rig.clock.advance(-86_400);
    assert!(matches!(
        desk.job("cover_design", "set-back").await,
        Err(Error::OfflineClockTurnedBack { .. })
    ));
    // Across a restart too.
    desk.close();
    let desk = rig.open().await;
    assert!(matches!(
        desk.job("cover_design", "set-back-2").await,
        Err(Error::OfflineClockTurnedBack { .. })
    ));
    // The ledger reached again (the pending charge settles, a new allowance is taken): offline
    // jobs run again, judged by the ledger's time.
    rig.proxy.set(Fault::Pass);
    assert_eq!(desk.sync.sync_now().await.acknowledged.len(), 1);
    desk.refresh().await;
    wait_for(|| desk.offline.time_mark().peek().ok()).await;
    rig.proxy.set(Fault::Refuse);
    assert_pending(desk.job("cover_design", "after-reach").await);
}

#[tokio::test]
async fn tampered_foreign_and_unknown_key_allowances_run_nothing() {
    let rig = Rig::start(50).await;

    // Never online: no allowance.
    rig.proxy.set(Fault::Refuse);
    let desk = rig.open().await;
    assert!(matches!(
        desk.job("compose", "none").await,
        Err(Error::OfflineAllowanceNone { .. })
    ));
    rig.proxy.set(Fault::Pass);
    desk.refresh().await;
    desk.close();

    // A changed file: more points written into it.
    let file = rig.dir.path().join("offline").join("allowances.json");
    let original = std::fs::read(&file).unwrap();
    let mut saved: serde_json::Value = serde_json::from_slice(&original).unwrap();
    saved["accounts"][0]["held"]["allowance"]["points"] = 5_000.into();
    std::fs::write(&file, serde_json::to_vec(&saved).unwrap()).unwrap();
    rig.proxy.set(Fault::Refuse);
    let desk = rig.open().await;
    assert!(matches!(
        desk.job("compose", "tampered").await,
        Err(Error::OfflineAllowanceInvalid { .. })
    ));
    desk.close();

    // Another account's allowance in this account's place.
    rig.proxy.set(Fault::Pass);
    std::fs::write(&file, &original).unwrap();
    let other = Uuid::new_v4();
    rig.ledger
        .ledger
        .recharge(other, 50, in_days(30))
        .await
        .unwrap();
    let other_token = rig.ledger.ledger.token_for(other);
    let theirs = rig.open_with(&other_token, rig.pinned()).await;
    theirs.refresh().await;
    theirs.close();
    let mut saved: serde_json::Value =
        serde_json::from_slice(&std::fs::read(&file).unwrap()).unwrap();
    let accounts = saved["accounts"].as_array_mut().unwrap();
    assert_eq!(accounts.len(), 2);
    let their_held = accounts[1]["held"].clone();
    accounts[0]["held"] = their_held;
    std::fs::write(&file, serde_json::to_vec(&saved).unwrap()).unwrap();
    rig.proxy.set(Fault::Refuse);
    let desk = rig.open().await;
    assert!(matches!(
        desk.job("compose", "foreign").await,
        Err(Error::OfflineAllowanceInvalid { .. })
    ));
    desk.close();

    // A key that is not pinned (another ledger's): the ledger's own allowance is refused.
    std::fs::write(&file, &original).unwrap();
    let elsewhere = TestLedger::start(0).await;
    let foreign_keys = elsewhere.ledger.allowance_public_keys();
    let foreign = PinnedKeys::from_base64(
        foreign_keys
            .iter()
            .map(|(id, key)| (id.as_str(), key.as_str())),
    )
    .unwrap();
    let desk = rig.open_with(&rig.ledger.token, foreign).await;
    assert!(matches!(
        desk.job("compose", "unknown-key").await,
        Err(Error::OfflineAllowanceInvalid { .. })
    ));
    assert!(desk.journal.is_empty(), "nothing ran, nothing is charged");
    rig.proxy.set(Fault::Pass);
    assert_eq!(rig.balance().await.balance, 50);
}

#[tokio::test]
async fn only_an_unreachable_ledger_falls_back_to_the_allowance() {
    let rig = Rig::start(20).await;
    let desk = rig.open().await;
    desk.refresh().await;
    rig.proxy.set(Fault::Answer {
        status: 401,
        retry_after: None,
        body: "{}",
    });
    assert!(matches!(
        desk.job("compose", "refused-token").await,
        Err(Error::Unauthorized)
    ));
    rig.proxy.set(Fault::Answer {
        status: 503,
        retry_after: None,
        body: "{}",
    });
    assert_pending(desk.job("compose", "a-5xx").await);
    assert!(desk.journal.len() == 1);
}

#[tokio::test]
async fn an_allowance_request_whose_answer_was_lost_runs_nothing_on_the_allowance_it_may_have_superseded(
) {
    let rig = Rig::start(30).await;
    let desk = rig.open().await;
    desk.refresh().await;
    // The ledger issues a new allowance (releasing the held one's points), and the answer is
    // lost; then the network goes.
    rig.proxy.choose(|line| {
        if line.starts_with("POST /points/allowance") {
            Fault::DropAnswer
        } else {
            Fault::Pass
        }
    });
    assert!(desk
        .offline
        .refresh_if_due(&desk.client, &desk.session(), &desk.journal, Some(1))
        .await
        .is_err());
    desk.close();
    rig.proxy.set(Fault::Refuse);
    let desk = rig.open().await;
    assert!(
        matches!(
            desk.job("cover_design", "after-a-lost-answer").await,
            Err(Error::OfflineAllowanceNone { .. })
        ),
        "the held allowance may be released: a charge under it would be refused for good"
    );
    // An answer again: offline work resumes on the new allowance.
    rig.proxy.set(Fault::Pass);
    assert!(desk.refresh().await);
    rig.proxy.set(Fault::Refuse);
    assert_pending(desk.job("cover_design", "on-the-new-one").await);
    rig.proxy.set(Fault::Pass);
    assert_eq!(desk.sync.sync_now().await.acknowledged.len(), 1);
    assert_eq!(rig.balance().await.balance, 28);
}

#[tokio::test]
async fn an_account_put_aside_for_others_asks_for_no_allowance_while_its_offline_charges_wait() {
    let rig = Rig::start(30).await;
    let desk = rig.open().await;
    let first = desk.session();
    desk.refresh().await;
    rig.proxy.set(Fault::Refuse);
    assert_pending(desk.job("cover_design", "offline-then-put-aside").await);
    // The network is back but the charge waits (no sync pass yet); more accounts than the
    // machine keeps allowances for take one each, putting the first account's entry aside.
    rig.proxy.set(Fault::Pass);
    for _ in 0..points_sdk::offline::MAX_ACCOUNTS {
        let user = Uuid::new_v4();
        rig.ledger
            .ledger
            .recharge(user, 10, in_days(30))
            .await
            .unwrap();
        desk.sessions
            .sign_in(Session::new(rig.ledger.ledger.token_for(user), None).unwrap());
        assert!(desk.refresh().await, "another account's allowance");
    }
    assert!(desk.offline.allowance_of(first.account()).is_none());
    // The first account again: a new allowance would release the points its charge is owed.
    desk.sessions.sign_in(first.clone());
    assert!(
        !desk.refresh().await,
        "no allowance is asked for while a charge made under the last one waits"
    );
    desk.settle_one().await;
    assert_eq!(rig.balance().await.balance, 28);
    // Settled: now one is asked for (by the sync after the charge, or here).
    desk.refresh().await;
    wait_for(|| desk.offline.allowance_of(first.account())).await;
}

#[tokio::test]
async fn one_ledger_account_signed_in_under_two_labels_holds_one_allowance() {
    let rig = Rig::start(30).await;
    let desk = rig.open().await;
    let by_jwt = desk.session();
    desk.refresh().await;
    rig.proxy.set(Fault::Refuse);
    assert_pending(desk.job("cover_design", "under-the-jwt-label").await);
    rig.proxy.set(Fault::Pass);
    // The same account through a gateway's opaque token: another label on this machine.
    rig.proxy
        .exchange_token("opaque-of-the-same-user", &rig.ledger.token);
    let by_gateway = Session::new("opaque-of-the-same-user", Some("acct-7".into())).unwrap();
    assert_ne!(by_gateway.account(), by_jwt.account());
    desk.sessions.sign_in(by_gateway.clone());
    assert!(
        !desk.refresh().await,
        "no allowance while a charge of this ledger account under the other label waits"
    );
    desk.sessions.sign_in(by_jwt.clone());
    desk.settle_one().await;
    // Now the gateway label takes one: the allowance held under the other label is superseded
    // and runs nothing more.
    desk.sessions.sign_in(by_gateway.clone());
    desk.refresh().await;
    wait_for(|| desk.offline.allowance_of(by_gateway.account())).await;
    assert!(desk.offline.allowance_of(by_jwt.account()).is_none());
    desk.sessions.sign_in(by_jwt);
    rig.proxy.set(Fault::Refuse);
    assert!(
        matches!(
            desk.job("cover_design", "on-a-superseded-one").await,
            Err(Error::OfflineAllowanceNone { .. })
        ),
        "the superseded allowance runs nothing"
    );
    assert_eq!(rig.balance().await.balance, 28);
}

#[tokio::test]
async fn an_app_quitting_while_a_job_runs_offline_journals_its_charge_and_counts_it_after_restart()
{
    let rig = Rig::start(8).await;
    let desk = rig.open().await;
    desk.refresh().await;
    rig.proxy.set(Fault::Refuse);
    let (started_tx, started_rx) = tokio::sync::oneshot::channel();
    let running = tokio::spawn({
        let jobs = desk.jobs.clone();
        async move {
            jobs.run(
                JobSpec::new("compose", IdempotencyKey::parse("running-at-exit").unwrap()),
                || async move {
                    let _ = started_tx.send(());
                    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
                    Ok::<_, Error>(())
                },
            )
            .await
            .map(|charged| charged.charge)
        }
    });
    started_rx.await.expect("the job runs offline");
    // The app quits: the running job finishes and its charge is journaled; no new job starts.
    let quitting = {
        let jobs = desk.jobs.clone();
        tokio::spawn(async move { jobs.shutdown(std::time::Duration::from_secs(5)).await })
    };
    while !desk.jobs.is_closing() {
        tokio::task::yield_now().await;
    }
    assert!(
        desk.job("cover_design", "started-while-quitting")
            .await
            .is_err(),
        "no job starts while the app quits"
    );
    assert!(
        quitting.await.unwrap(),
        "the running job finished before exit"
    );
    assert_pending(running.await.unwrap());
    desk.close();

    let desk = rig.open().await;
    assert_eq!(desk.journal.len(), 1, "the charge survived the exit");
    assert!(
        matches!(
            desk.job("compose", "after-the-restart").await,
            Err(Error::OfflineAllowanceExhausted { remaining: 3, .. })
        ),
        "what the job spent before the exit is counted"
    );
    rig.proxy.set(Fault::Pass);
    desk.settle_one().await;
    assert_eq!(rig.balance().await.balance, 3);
}

#[tokio::test]
async fn no_allowance_is_asked_for_while_a_job_runs_on_the_last_one() {
    let rig = Rig::start(30).await;
    let desk = rig.open().await;
    desk.refresh().await;
    rig.proxy.set(Fault::Refuse);
    let (started_tx, started_rx) = tokio::sync::oneshot::channel();
    let (finish_tx, finish_rx) = tokio::sync::oneshot::channel::<()>();
    let running = tokio::spawn({
        let jobs = desk.jobs.clone();
        async move {
            jobs.run(
                JobSpec::new("compose", IdempotencyKey::parse("running-offline").unwrap()),
                || async move {
                    let _ = started_tx.send(());
                    let _ = finish_rx.await;
                    Ok::<_, Error>(())
                },
            )
            .await
            .map(|charged| charged.charge)
        }
    });
    started_rx.await.expect("the job runs offline");
    // The ledger is back and a new allowance would be due (a balance below what is left), but
    // the job's charge will be made under the one it runs on.
    rig.proxy.set(Fault::Pass);
    assert!(
        !desk
            .offline
            .refresh_if_due(&desk.client, &desk.session(), &desk.journal, Some(1))
            .await
            .unwrap(),
        "no allowance is asked for while a job runs on the last one"
    );
    finish_tx.send(()).unwrap();
    let outcome = running.await.unwrap();
    assert!(
        matches!(
            outcome,
            Ok(ChargeOutcome::Acknowledged { .. } | ChargeOutcome::Pending { .. })
        ),
        "{outcome:?}"
    );
    let report = desk.sync.sync_now().await;
    assert!(report.refused.is_empty(), "{report:?}");
    assert_eq!(rig.balance().await.balance, 25);
}
