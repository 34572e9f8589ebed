//! The charge sync without Tauri: crashes (a charge journaled but never acknowledged is sent
//! again with the same key after a restart, and the ledger holds exactly one charge), accounts,
//! refusals, and passes that never overlap nor drop a request.

use std::sync::Arc;
use std::time::Duration;

use points_sdk::client::{account_of, ConsumeRequest, IdempotencyKey, LedgerClient};
use points_sdk::journal::{Journal, PendingCharge};
use points_sdk::models::TransactionKind;
use points_sdk::{ChargeOutcome, ChargeSync, Session, Sessions, TokenProvider};

use crate::common::proxy::{Fault, FaultProxy};
use crate::common::{client_for, fast_retry, fast_sync, in_days, TestLedger};

fn debt_charge(service: &str) -> ConsumeRequest {
    ConsumeRequest {
        allow_debt: true,
        ..ConsumeRequest::new(service)
    }
}

/// A sync of the journal in `dir` through the ledger at `base_url`, signed in with `token`.
fn sync_for(
    base_url: &str,
    dir: &std::path::Path,
    token: Option<&str>,
) -> (ChargeSync, Arc<Sessions>) {
    let sessions = Arc::new(Sessions::new(None));
    if let Some(token) = token {
        sessions.sign_in(Session::new(token, None).unwrap());
    }
    let client = LedgerClient::builder(base_url)
        .retry(fast_retry())
        .request_timeout(Duration::from_secs(5))
        .token_provider({
            let sessions = sessions.clone();
            move || sessions.token()
        })
        .build()
        .unwrap();
    let journal = Arc::new(Journal::open(dir).unwrap());
    let sync = ChargeSync::new(client, journal, sessions.clone(), fast_sync(), Arc::new(()));
    (sync, sessions)
}

fn record(dir: &std::path::Path, token: &str, key: &str, service: &str) {
    Journal::open(dir)
        .unwrap()
        .record(&PendingCharge::new(
            &account_of(token),
            &IdempotencyKey::parse(key).unwrap(),
            debt_charge(service),
        ))
        .unwrap();
}

async fn consumes(client: &LedgerClient) -> Vec<(Option<String>, i64)> {
    client
        .transactions(Some(100), None)
        .await
        .unwrap()
        .items
        .into_iter()
        .filter(|item| item.kind == TransactionKind::Consume)
        .map(|item| (item.service, item.points))
        .collect()
}

#[tokio::test]
async fn a_crash_before_the_consume_was_sent_is_charged_once_after_restart() {
    let test = TestLedger::start(10).await;
    let dir = tempfile::tempdir().unwrap();
    record(dir.path(), &test.token, "render-17", "compose");
    // The process died here: the consume was never sent.
    let (sync, _) = sync_for(&test.ledger.base_url(), dir.path(), Some(&test.token));
    let report = sync.sync_now().await;
    assert_eq!(report.acknowledged.len(), 1);
    assert!(!report.acknowledged[0].replayed);
    assert_eq!(report.acknowledged[0].idempotency_key, "render-17");
    assert!(sync.journal().is_empty());
    assert_eq!(
        consumes(&test.client()).await,
        [(Some("compose".into()), -5)]
    );
    test.ledger.shutdown().await;
}

#[tokio::test]
async fn a_crash_after_the_ledger_applied_it_is_not_charged_twice() {
    let test = TestLedger::start(3).await;
    let dir = tempfile::tempdir().unwrap();
    record(dir.path(), &test.token, "k", "compose");
    test.client()
        .consume(
            &debt_charge("compose"),
            &IdempotencyKey::parse("k").unwrap(),
        )
        .await
        .unwrap();
    // The process died before removing the acknowledged charge.
    let (sync, _) = sync_for(&test.ledger.base_url(), dir.path(), Some(&test.token));
    let report = sync.sync_now().await;
    assert_eq!(report.acknowledged.len(), 1);
    assert!(
        report.acknowledged[0].replayed,
        "the ledger recognised the key"
    );
    assert!(sync.journal().is_empty());
    assert_eq!(
        consumes(&test.client()).await,
        [(Some("compose".into()), -5)]
    );
    assert_eq!(test.client().balance().await.unwrap().balance, -2);
    test.ledger.shutdown().await;
}

#[tokio::test]
async fn an_unreachable_ledger_keeps_the_charge_pending() {
    let test = TestLedger::start(10).await;
    let dir = tempfile::tempdir().unwrap();
    let (sync, sessions) = sync_for("http://127.0.0.1:9", dir.path(), Some(&test.token));
    let session = sessions.current().unwrap();
    let outcome = sync
        .charge(
            &session,
            PendingCharge::new(
                session.account(),
                &IdempotencyKey::random(),
                debt_charge("subtitle_burn"),
            ),
        )
        .await;
    assert!(outcome.is_pending(), "{outcome:?}");
    assert_eq!(sync.journal().len(), 1);
    sessions.sign_out();
    drop(sync);
    // After a restart with no token at hand, the charge waits.
    let (sync, sessions) = sync_for(&test.ledger.base_url(), dir.path(), None);
    assert_eq!(sync.sync_now().await.waiting, 1);
    sessions.sign_in(Session::new(test.token.clone(), None).unwrap());
    let report = sync.sync_now().await;
    assert_eq!((report.acknowledged.len(), report.waiting), (1, 0));
    assert_eq!(test.client().balance().await.unwrap().balance, 8);
    test.ledger.shutdown().await;
}

#[tokio::test]
async fn a_pending_charge_is_never_billed_to_another_account() {
    let test = TestLedger::start(10).await;
    let other_user = uuid::Uuid::new_v4();
    test.ledger
        .recharge(other_user, 10, in_days(30))
        .await
        .unwrap();
    let other_token = test.ledger.token_for(other_user);
    let other = client_for(&test.ledger.base_url(), Some(&other_token));
    let dir = tempfile::tempdir().unwrap();
    record(dir.path(), &test.token, "a-job", "compose");

    // Another user signs in on the same machine: the charge is not theirs to pay.
    let (sync, sessions) = sync_for(&test.ledger.base_url(), dir.path(), Some(&other_token));
    let report = sync.sync_now().await;
    assert_eq!((report.acknowledged.len(), report.waiting), (0, 1));
    assert_eq!(other.balance().await.unwrap().balance, 10);
    assert!(consumes(&other).await.is_empty());

    // Its own user signs in again: the charge is sent, once.
    sessions.sign_in(Session::new(test.token.clone(), None).unwrap());
    let report = sync.sync_now().await;
    assert_eq!(report.acknowledged.len(), 1);
    assert!(sync.journal().is_empty());
    assert_eq!(
        consumes(&test.client()).await,
        [(Some("compose".into()), -5)]
    );
    test.ledger.shutdown().await;
}

#[tokio::test]
async fn a_charge_the_ledger_can_never_apply_moves_to_the_refused_record() {
    let test = TestLedger::start(10).await;
    let dir = tempfile::tempdir().unwrap();
    record(dir.path(), &test.token, "k1", "retired_service");
    record(dir.path(), &test.token, "k2", "cover_design");
    let (sync, _) = sync_for(&test.ledger.base_url(), dir.path(), Some(&test.token));
    let report = sync.sync_now().await;
    assert_eq!(report.acknowledged.len(), 1);
    assert_eq!(report.refused.len(), 1);
    assert_eq!(
        report.refused[0].error.clone(),
        points_sdk::Error::UnknownService {
            service: "retired_service".into()
        }
        .to_points_error()
    );
    assert!(sync.journal().is_empty());
    assert_eq!(sync.journal().refused_of(&account_of(&test.token)).len(), 1);
    assert_eq!(test.client().balance().await.unwrap().balance, 8);
    test.ledger.shutdown().await;
}

#[tokio::test]
async fn the_journal_is_written_before_the_consume_is_sent() {
    // A ledger that never answers: the entry must already be on disk while the request hangs.
    let stub = crate::common::stub::Stub::start(vec![crate::common::stub::Reply::After(
        Duration::from_secs(30),
        Box::new(crate::common::stub::Reply::json(500, "")),
    )])
    .await;
    let dir = tempfile::tempdir().unwrap();
    let (sync, sessions) = sync_for(&stub.base_url, dir.path(), Some("t"));
    let session = sessions.current().unwrap();
    let key = IdempotencyKey::random();
    let charge = sync.charge(
        &session,
        PendingCharge::new(session.account(), &key, debt_charge("compose")),
    );
    let probe = async {
        while stub.received().is_empty() {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        std::fs::read_dir(dir.path())
            .unwrap()
            .filter_map(|entry| {
                let text = std::fs::read_to_string(entry.unwrap().path()).ok()?;
                text.contains(key.as_str()).then_some(())
            })
            .count()
    };
    tokio::select! {
        _ = charge => panic!("the stub never answers"),
        on_disk = probe => assert_eq!(on_disk, 1),
    }
}

#[tokio::test]
async fn a_journal_that_cannot_be_written_still_sends_the_charge_once() {
    let test = TestLedger::start(10).await;
    let dir = tempfile::tempdir().unwrap();
    let (sync, sessions) = sync_for(
        &test.ledger.base_url(),
        &dir.path().join("gone"),
        Some(&test.token),
    );
    std::fs::remove_dir_all(dir.path().join("gone")).unwrap();
    let session = sessions.current().unwrap();
    let outcome = sync
        .charge(
            &session,
            PendingCharge::new(
                session.account(),
                &IdempotencyKey::random(),
                debt_charge("compose"),
            ),
        )
        .await;
    assert_eq!(outcome.receipt().map(|receipt| receipt.balance), Some(5));
    assert!(sync.journal().is_empty());
    test.ledger.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sync_asked_for_during_a_pass_is_served_by_a_later_pass() {
    let test = TestLedger::start(10).await;
    let proxy = FaultProxy::start(&test.ledger.base_url()).await;
    let dir = tempfile::tempdir().unwrap();
    record(dir.path(), &test.token, "first", "compose");
    let (sync, sessions) = sync_for(&proxy.base_url, dir.path(), Some(&test.token));
    // The first pass is slow: its one request stalls until the client gives up.
    let stalled = std::sync::Mutex::new(false);
    proxy.choose(move |_| {
        let mut once = stalled.lock().unwrap();
        if *once {
            Fault::Pass
        } else {
            *once = true;
            Fault::Stall(Duration::from_millis(1500))
        }
    });
    let first_pass = tokio::spawn({
        let sync = sync.clone();
        async move { sync.sync_now().await }
    });
    while proxy
        .stats
        .requests
        .load(std::sync::atomic::Ordering::SeqCst)
        == 0
    {
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    // A new charge is recorded while the pass runs, and a sync is asked for.
    let session = sessions.current().unwrap();
    let late = PendingCharge::new(
        session.account(),
        &IdempotencyKey::parse("second").unwrap(),
        debt_charge("cover_design"),
    );
    sync.journal().record(&late).unwrap();
    let second = sync.sync_now().await;
    let mut sent: Vec<&str> = second
        .acknowledged
        .iter()
        .map(|receipt| receipt.idempotency_key.as_str())
        .collect();
    sent.sort();
    assert_eq!(
        sent,
        ["first", "second"],
        "the request made during the first pass was served by a pass after it"
    );
    let first = first_pass.await.unwrap();
    assert_eq!((first.acknowledged.len(), first.failed), (0, 1));
    assert!(sync.journal().is_empty());
    assert_eq!(test.client().balance().await.unwrap().balance, 3);
    test.ledger.shutdown().await;
}

#[tokio::test]
async fn a_charge_made_twice_with_one_key_is_charged_once() {
    let test = TestLedger::start(10).await;
    let dir = tempfile::tempdir().unwrap();
    let (sync, sessions) = sync_for(&test.ledger.base_url(), dir.path(), Some(&test.token));
    let session = sessions.current().unwrap();
    let key = IdempotencyKey::parse("compose:same-job").unwrap();
    let first = sync
        .charge(
            &session,
            PendingCharge::new(session.account(), &key, debt_charge("compose")),
        )
        .await;
    let second = sync
        .charge(
            &session,
            PendingCharge::new(session.account(), &key, debt_charge("compose")),
        )
        .await;
    assert!(!first.receipt().unwrap().replayed);
    assert!(second.receipt().unwrap().replayed);
    assert!(matches!(
        second.outcome(),
        Some(ChargeOutcome::Acknowledged { .. })
    ));
    assert_eq!(test.client().balance().await.unwrap().balance, 5);
    test.ledger.shutdown().await;
}

/// The host's tokens for accounts not signed in.
struct TokensOf(std::collections::HashMap<String, String>);

impl TokenProvider for TokensOf {
    fn token(&self) -> Option<String> {
        None
    }
    fn token_for(&self, account: &str) -> Option<String> {
        self.0.get(account).cloned()
    }
}

#[tokio::test]
async fn a_pass_serves_several_accounts_at_once_and_one_account_at_a_time() {
    const ACCOUNTS: usize = 10;
    const EACH: usize = 3;
    const AT_ONCE: usize = 4;
    let test = TestLedger::start(0).await;
    let proxy = FaultProxy::start(&test.ledger.base_url()).await;
    // Every charge is applied, and its answer held a while: charges sent one after the other
    // never overlap, charges sent at once do.
    proxy.fault_charges(Fault::Delay(Duration::from_millis(150)));
    let dir = tempfile::tempdir().unwrap();
    let mut tokens = std::collections::HashMap::new();
    for _ in 0..ACCOUNTS {
        let token = test.ledger.token_for(uuid::Uuid::new_v4());
        for n in 0..EACH {
            record(dir.path(), &token, &format!("job-{n}"), "compose");
        }
        tokens.insert(account_of(&token), token);
    }
    let sessions = Arc::new(Sessions::new(Some(Arc::new(TokensOf(tokens.clone())))));
    let client = LedgerClient::builder(&proxy.base_url)
        .retry(fast_retry())
        .request_timeout(Duration::from_secs(5))
        .build()
        .unwrap();
    let policy = points_sdk::SyncPolicy {
        accounts_at_once: AT_ONCE,
        ..fast_sync()
    };
    let journal = Arc::new(Journal::open(dir.path()).unwrap());
    let sync = ChargeSync::new(client, journal, sessions, policy, Arc::new(()));

    let report = sync.sync_now().await;
    assert_eq!(report.acknowledged.len(), ACCOUNTS * EACH, "{report:?}");
    assert!(sync.journal().is_empty());
    let (peak, peak_per_token) = {
        let at_once = proxy.stats.charges_at_once.lock().unwrap();
        (at_once.peak, at_once.peak_per_token.clone())
    };
    assert!(
        peak > 1 && peak <= AT_ONCE as u64,
        "charges under way at once, at most: {peak} (accounts at once: {AT_ONCE})"
    );
    assert_eq!(peak_per_token.len(), ACCOUNTS);
    assert!(
        peak_per_token.values().all(|&peak| peak == 1),
        "one account's charges go one after the other: {:?}",
        peak_per_token.values().collect::<Vec<_>>()
    );
    for token in tokens.values() {
        let client = client_for(&test.ledger.base_url(), Some(token));
        assert_eq!(
            consumes(&client).await,
            vec![(Some("compose".into()), -5); EACH],
            "each job charged once"
        );
        assert_eq!(client.balance().await.unwrap().balance, -15);
    }
    test.ledger.shutdown().await;
}

#[tokio::test]
async fn a_token_the_ledger_could_not_be_asked_about_is_a_failure_tried_again() {
    let test = TestLedger::start(10).await;
    let proxy = FaultProxy::start(&test.ledger.base_url()).await;
    let dir = tempfile::tempdir().unwrap();
    // A charge bound to its ledger account, of an account not signed in: the host hands its
    // token, and the ledger must say whose it is before it is used.
    let mut charge = PendingCharge::new(
        &account_of(&test.token),
        &IdempotencyKey::parse("bound-job").unwrap(),
        debt_charge("compose"),
    );
    charge.ledger_user = Some(test.user.to_string());
    Journal::open(dir.path()).unwrap().record(&charge).unwrap();
    let tokens = std::collections::HashMap::from([(account_of(&test.token), test.token.clone())]);
    let sessions = Arc::new(Sessions::new(Some(Arc::new(TokensOf(tokens)))));
    let client = LedgerClient::builder(&proxy.base_url)
        .retry(fast_retry())
        .request_timeout(Duration::from_secs(5))
        .build()
        .unwrap();
    let journal = Arc::new(Journal::open(dir.path()).unwrap());
    let sync = ChargeSync::new(client, journal, sessions, fast_sync(), Arc::new(()));

    // The balance read that would say whose the token is cannot reach the ledger.
    proxy.choose(|line| {
        if line.starts_with("GET") {
            Fault::Refuse
        } else {
            Fault::Pass
        }
    });
    let report = sync.sync_now().await;
    assert_eq!(
        (report.failed, report.waiting, report.acknowledged.len()),
        (1, 0, 0),
        "a failure (the loop's backoff tries again), not a charge waiting for a token: {report:?}"
    );
    proxy.set(Fault::Pass);
    let report = sync.sync_now().await;
    assert_eq!(report.acknowledged.len(), 1, "{report:?}");
    assert_eq!(test.client().balance().await.unwrap().balance, 5);
    test.ledger.shutdown().await;
}

/// A host whose tokens for other accounts become available later (a refresh it makes).
struct LaterTokens {
    account: String,
    token: String,
    ready: std::sync::atomic::AtomicBool,
    asked: std::sync::atomic::AtomicUsize,
}

impl TokenProvider for LaterTokens {
    fn token(&self) -> Option<String> {
        None
    }
    fn token_for(&self, account: &str) -> Option<String> {
        use std::sync::atomic::Ordering;
        self.asked.fetch_add(1, Ordering::SeqCst);
        (account == self.account && self.ready.load(Ordering::SeqCst)).then(|| self.token.clone())
    }
}

#[tokio::test]
async fn a_charge_waiting_for_a_token_is_looked_at_again_without_a_wake() {
    use std::sync::atomic::Ordering;
    let test = TestLedger::start(10).await;
    let dir = tempfile::tempdir().unwrap();
    record(dir.path(), &test.token, "later-job", "compose");
    let provider = Arc::new(LaterTokens {
        account: account_of(&test.token),
        token: test.token.clone(),
        ready: Default::default(),
        asked: Default::default(),
    });
    let sessions = Arc::new(Sessions::new(Some(provider.clone())));
    let client = LedgerClient::builder(test.ledger.base_url())
        .retry(fast_retry())
        .build()
        .unwrap();
    let journal = Arc::new(Journal::open(dir.path()).unwrap());
    let sync = ChargeSync::new(client, journal, sessions, fast_sync(), Arc::new(()));
    let looping = tokio::spawn(sync.clone().run());
    // The first pass finds no token for it.
    tokio::time::timeout(Duration::from_secs(5), async {
        while provider.asked.load(Ordering::SeqCst) == 0 {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    })
    .await
    .expect("the first pass asked the host for a token");
    assert_eq!(sync.journal().len(), 1);
    // The host has one now; nothing wakes the sync.
    provider.ready.store(true, Ordering::SeqCst);
    let sent = tokio::time::timeout(Duration::from_secs(10), async {
        while !sync.journal().is_empty() {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    })
    .await;
    assert!(
        sent.is_ok(),
        "a charge waiting for a token was never looked at again (asked {} times)",
        provider.asked.load(Ordering::SeqCst)
    );
    assert_eq!(test.client().balance().await.unwrap().balance, 5);
    sync.shutdown();
    looping.await.unwrap();
    test.ledger.shutdown().await;
}

#[tokio::test]
async fn another_charge_under_a_key_being_sent_is_refused_not_left_pending() {
    let test = TestLedger::start(10).await;
    let proxy = FaultProxy::start(&test.ledger.base_url()).await;
    // The first charge's answer is held a while: it is being sent when the second one comes.
    proxy.fault_charges(Fault::Delay(Duration::from_millis(500)));
    let dir = tempfile::tempdir().unwrap();
    let (sync, sessions) = sync_for(&proxy.base_url, dir.path(), Some(&test.token));
    let session = sessions.current().unwrap();
    let key = IdempotencyKey::parse("job-1").unwrap();
    let first = tokio::spawn({
        let (sync, session, key) = (sync.clone(), session.clone(), key.clone());
        async move {
            let charge = PendingCharge::new(session.account(), &key, debt_charge("compose"));
            sync.charge(&session, charge).await
        }
    });
    tokio::time::timeout(Duration::from_secs(5), async {
        while proxy.stats.charges_at_once.lock().unwrap().peak == 0 {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    })
    .await
    .expect("the first charge is under way");

    // Another job's charge under the same key, with another service: it can never apply.
    let second = sync
        .charge(
            &session,
            PendingCharge::new(session.account(), &key, debt_charge("cover_design")),
        )
        .await;
    assert!(
        matches!(second.outcome(), Some(ChargeOutcome::Refused { .. })),
        "refused, not pending (nothing would ever send it): {second:?}"
    );
    let refused = sync.journal().refused_of(session.account());
    assert_eq!(refused.len(), 1, "on record once: {refused:?}");
    assert_eq!(refused[0].service, "cover_design");

    let first = first.await.unwrap();
    assert!(first.receipt().is_some(), "{first:?}");
    assert!(sync.journal().is_empty());
    assert_eq!(
        consumes(&test.client()).await,
        [(Some("compose".into()), -5)]
    );
    test.ledger.shutdown().await;
}
