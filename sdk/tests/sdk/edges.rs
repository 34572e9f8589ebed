//! Exactly once at the edges of the charge path, without Tauri: retries that could switch
//! accounts, the ledger's word on who a token is, passes over charges settled meanwhile, reads
//! that would cut a backoff short, a host provider that blocks, concurrent jobs on one balance,
//! and exit while a job runs. Each test names the item of the issue it proves.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use points_sdk::client::{ConsumeRequest, IdempotencyKey, LedgerClient};
use points_sdk::journal::{Journal, PendingCharge};
use points_sdk::models::{ChargeReceipt, RefusedCharge, TransactionKind};
use points_sdk::sync::SyncListener;
use points_sdk::{
    ChargeOutcome, ChargeSync, Error, JobSpec, Jobs, Session, Sessions, SyncPolicy, TokenProvider,
};
use uuid::Uuid;

use crate::common::proxy::{Fault, FaultProxy};
use crate::common::{client_for, fast_retry, fast_sync, in_days, TestLedger};

/// The SDK's parts as the plugin wires them.
struct Stack {
    sessions: Arc<Sessions>,
    sync: ChargeSync,
    jobs: Jobs,
    listener: Arc<Recorder>,
}

/// Code run when a charge is acknowledged.
type AckHook = Box<dyn Fn(&PendingCharge) + Send>;

/// What the sync told its owner.
#[derive(Default)]
struct Recorder {
    acknowledged: Mutex<Vec<String>>,
    refused: Mutex<Vec<String>>,
    /// Called when a charge is acknowledged (to act in the middle of a pass).
    on_ack: Mutex<Option<AckHook>>,
}

impl SyncListener for Recorder {
    fn acknowledged(&self, charge: &PendingCharge, _receipt: &ChargeReceipt, _first: bool) {
        self.acknowledged
            .lock()
            .unwrap()
            .push(charge.idempotency_key.clone());
        if let Some(hook) = &*self.on_ack.lock().unwrap() {
            hook(charge);
        }
    }

    fn refused(&self, charge: &PendingCharge, _refused: &RefusedCharge) {
        self.refused
            .lock()
            .unwrap()
            .push(charge.idempotency_key.clone());
    }
}

impl Stack {
    fn new(base_url: &str, dir: &std::path::Path, policy: SyncPolicy) -> Self {
        Self::with_provider(base_url, dir, policy, None)
    }

    fn with_provider(
        base_url: &str,
        dir: &std::path::Path,
        policy: SyncPolicy,
        provider: Option<Arc<dyn TokenProvider>>,
    ) -> Self {
        let sessions = Arc::new(Sessions::new(provider));
        let client = LedgerClient::builder(base_url)
            .retry(fast_retry())
            .request_timeout(Duration::from_secs(2))
            .token_provider({
                let sessions = sessions.clone();
                move || sessions.token()
            })
            .build()
            .unwrap();
        let journal = Arc::new(Journal::open(dir).unwrap());
        let listener = Arc::new(Recorder::default());
        let sync = ChargeSync::new(
            client.clone(),
            journal,
            sessions.clone(),
            policy,
            listener.clone(),
        );
        let jobs = Jobs::new(client, sync.clone(), Arc::new(()));
        Self {
            sessions,
            sync,
            jobs,
            listener,
        }
    }

    fn sign_in(&self, token: &str, account: Option<&str>) {
        self.sessions
            .sign_in(Session::new(token, account.map(str::to_owned)).unwrap());
    }
}

fn spec(service: &str, key: &str) -> JobSpec {
    JobSpec::new(service, IdempotencyKey::parse(key).unwrap())
}

async fn ok() -> Result<(), Error> {
    Ok(())
}

/// The consumes in `token`'s history: (idempotency key, points).
async fn consumes(base_url: &str, token: &str) -> Vec<(Option<String>, i64)> {
    client_for(base_url, Some(token))
        .transactions(Some(200), None)
        .await
        .unwrap()
        .items
        .into_iter()
        .filter(|item| item.kind == TransactionKind::Consume)
        .map(|item| (item.idempotency_key, item.points))
        .collect()
}

// Item 4: a retry never changes account.

#[tokio::test]
async fn a_retried_consume_goes_out_for_the_account_of_its_first_attempt() {
    let test = TestLedger::start(10).await;
    let other = Uuid::new_v4();
    test.ledger.recharge(other, 10, in_days(30)).await.unwrap();
    let other_token = test.ledger.token_for(other);
    let proxy = FaultProxy::start(&test.ledger.base_url()).await;
    // The first answer is lost after the ledger applied it; the user switches before the retry.
    let switched = Arc::new(AtomicUsize::new(0));
    let tokens = {
        let (first, second) = (test.token.clone(), other_token.clone());
        let switched = switched.clone();
        move || {
            Some(if switched.fetch_add(1, Ordering::SeqCst) == 0 {
                first.clone()
            } else {
                second.clone()
            })
        }
    };
    let client = LedgerClient::builder(&proxy.base_url)
        .retry(fast_retry())
        .token_provider(tokens)
        .build()
        .unwrap();
    let mut faults = vec![Fault::DropAnswer, Fault::Pass].into_iter();
    proxy.choose(move |_| faults.next().unwrap_or(Fault::Pass));
    let receipt = client
        .consume(
            &ConsumeRequest::new("compose"),
            &IdempotencyKey::parse("switch-1").unwrap(),
        )
        .await
        .unwrap();
    assert!(receipt.replayed, "the retry is the first account's replay");
    assert_eq!(
        consumes(&test.ledger.base_url(), &other_token).await,
        [],
        "the second account is never charged for the first one's retry"
    );
    assert_eq!(
        consumes(&test.ledger.base_url(), &test.token).await.len(),
        1
    );
    test.ledger.shutdown().await;
}

// Item 5: the ledger's account decides who a pending charge is sent for.

#[tokio::test]
async fn a_pending_charge_is_never_sent_with_a_token_the_ledger_knows_as_another_account() {
    let test = TestLedger::start(10).await;
    let other = Uuid::new_v4();
    test.ledger.recharge(other, 10, in_days(30)).await.unwrap();
    let proxy = FaultProxy::start(&test.ledger.base_url()).await;
    // Opaque tokens behind a gateway; the host gives both users the same account id (a bug).
    proxy.exchange_token("opaque-ada", &test.token);
    proxy.exchange_token("opaque-bob", &test.ledger.token_for(other));
    let dir = tempfile::tempdir().unwrap();
    let stack = Stack::new(&proxy.base_url, dir.path(), fast_sync());
    stack.sign_in("opaque-ada", Some("shared"));
    proxy.fault_charges(Fault::Refuse);
    let charged = stack
        .jobs
        .run(spec("compose", "ada-job"), ok)
        .await
        .unwrap();
    assert!(charged.charge.is_pending());
    assert_eq!(
        stack.sync.journal().pending()[0].ledger_user.as_deref(),
        Some(test.user.to_string().as_str()),
        "the pre-check's user_id is journaled with the charge"
    );
    // The app restarts: the captured token is gone; Bob signs in under the same host id.
    drop(stack);
    proxy.set(Fault::Pass);
    let stack = Stack::new(&proxy.base_url, dir.path(), fast_sync());
    stack.sign_in("opaque-bob", Some("shared"));
    let report = stack.sync.sync_now().await;
    assert!(report.acknowledged.is_empty(), "{report:?}");
    assert_eq!(stack.sync.journal().len(), 1, "still Ada's, still pending");
    assert_eq!(
        consumes(&test.ledger.base_url(), &test.ledger.token_for(other)).await,
        [],
        "Bob is never billed for Ada's job"
    );
    // Ada signs in again (any label): it is sent, once.
    stack.sign_in("opaque-ada", Some("shared"));
    stack.sync.sync_now().await;
    assert!(stack.sync.journal().is_empty());
    assert_eq!(
        consumes(&test.ledger.base_url(), &test.token).await,
        [(Some("ada-job".into()), -5)]
    );
    test.ledger.shutdown().await;
}

#[tokio::test]
async fn a_provider_hands_the_token_of_another_account_for_its_pending_charges() {
    let test = TestLedger::start(10).await;
    let other = Uuid::new_v4();
    test.ledger.recharge(other, 10, in_days(30)).await.unwrap();
    let other_token = test.ledger.token_for(other);
    let proxy = FaultProxy::start(&test.ledger.base_url()).await;
    let dir = tempfile::tempdir().unwrap();
    {
        let stack = Stack::new(&proxy.base_url, dir.path(), fast_sync());
        stack.sign_in(&test.token, None);
        proxy.fault_charges(Fault::Refuse);
        let charged = stack.jobs.run(spec("compose", "left"), ok).await.unwrap();
        assert!(charged.charge.is_pending());
    }
    proxy.set(Fault::Pass);
    struct PerAccount {
        current: String,
        others: Vec<(String, String)>,
    }
    impl TokenProvider for PerAccount {
        fn token(&self) -> Option<String> {
            Some(self.current.clone())
        }
        fn token_for(&self, account: &str) -> Option<String> {
            self.others
                .iter()
                .find(|(label, _)| label == account)
                .map(|(_, token)| token.clone())
        }
    }
    let first_label = Session::new(test.token.clone(), None)
        .unwrap()
        .account()
        .to_owned();
    let provider = PerAccount {
        current: other_token.clone(),
        others: vec![(first_label, test.token.clone())],
    };
    let stack = Stack::with_provider(
        &proxy.base_url,
        dir.path(),
        fast_sync(),
        Some(Arc::new(provider)),
    );
    stack.sync.sync_now().await;
    assert!(stack.sync.journal().is_empty(), "sent for its own account");
    assert_eq!(
        consumes(&test.ledger.base_url(), &test.token).await.len(),
        1
    );
    assert_eq!(consumes(&test.ledger.base_url(), &other_token).await, []);
    test.ledger.shutdown().await;
}

// Item 6: a pass sends only what is still journaled when its turn comes.

#[tokio::test]
async fn a_pass_skips_a_charge_settled_since_it_took_its_list() {
    let test = TestLedger::start(20).await;
    let dir = tempfile::tempdir().unwrap();
    let account = Session::new(test.token.clone(), None)
        .unwrap()
        .account()
        .to_owned();
    let stack = Stack::new(&test.ledger.base_url(), dir.path(), fast_sync());
    let journal = stack.sync.journal().clone();
    let charge = |key: &str| {
        let mut charge = PendingCharge::new(
            &account,
            &IdempotencyKey::parse(key).unwrap(),
            ConsumeRequest {
                allow_debt: true,
                ..ConsumeRequest::new("compose")
            },
        );
        charge.recorded_at = if key == "first" { 1 } else { 2 };
        charge
    };
    journal.record(&charge("first")).unwrap();
    journal.record(&charge("second")).unwrap();
    // While the pass sends the first, something else settles the second.
    *stack.listener.on_ack.lock().unwrap() = Some(Box::new({
        let journal = journal.clone();
        let account = account.clone();
        move |settled: &PendingCharge| {
            if settled.idempotency_key == "first" {
                journal.remove(&account, "second").unwrap();
            }
        }
    }));
    stack.sign_in(&test.token, None);
    let report = stack.sync.sync_now().await;
    assert_eq!(report.acknowledged.len(), 1, "{report:?}");
    assert_eq!(
        consumes(&test.ledger.base_url(), &test.token).await,
        [(Some("first".into()), -5)],
        "the settled charge is not sent again"
    );
    test.ledger.shutdown().await;
}

// Item 7: the host's provider is never called under the session lock.

#[test]
fn a_slow_token_provider_does_not_hold_up_sign_out() {
    let entered = Arc::new(std::sync::Barrier::new(2));
    let provider = {
        let entered = entered.clone();
        let calls = AtomicUsize::new(0);
        move || {
            if calls.fetch_add(1, Ordering::SeqCst) == 0 {
                entered.wait();
                std::thread::sleep(Duration::from_millis(1500));
            }
            Some("provided".to_owned())
        }
    };
    let sessions = Arc::new(Sessions::new(Some(Arc::new(provider))));
    let reader = {
        let sessions = sessions.clone();
        std::thread::spawn(move || sessions.current())
    };
    entered.wait();
    let started = Instant::now();
    sessions.sign_out();
    let waited = started.elapsed();
    assert!(
        waited < Duration::from_millis(500),
        "sign-out waited {waited:?} for the provider"
    );
    assert_eq!(
        reader.join().unwrap(),
        None,
        "a sign-out during the provider's call wins"
    );
}

// Item 9: successful reads do not cut the backoff of charges the ledger refuses to take.

#[tokio::test]
async fn reads_do_not_resend_a_charge_whose_token_is_refused() {
    let test = TestLedger::start(10).await;
    let proxy = FaultProxy::start(&test.ledger.base_url()).await;
    let dir = tempfile::tempdir().unwrap();
    let policy = SyncPolicy {
        min_delay: Duration::from_secs(2),
        max_delay: Duration::from_secs(4),
        ..SyncPolicy::default()
    };
    let stack = Stack::new(&proxy.base_url, dir.path(), policy);
    stack.sign_in(&test.token, None);
    tokio::spawn(stack.sync.clone().run());
    // Charges answer 401 (a revoked token), reads succeed.
    proxy.fault_charges(Fault::Answer {
        status: 401,
        retry_after: None,
        body: "{\"code\":\"unauthorized\"}",
    });
    let charged = stack
        .jobs
        .run(spec("compose", "revoked"), ok)
        .await
        .unwrap();
    assert!(charged.charge.is_pending());
    tokio::time::sleep(Duration::from_millis(100)).await;
    let before = proxy.stats.unavailable.load(Ordering::SeqCst);
    // The UI polls the balance every 20 ms for a second.
    for _ in 0..50 {
        client_for(&proxy.base_url, Some(&test.token))
            .balance()
            .await
            .unwrap();
        stack.sync.ledger_reachable();
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let resent = proxy.stats.unavailable.load(Ordering::SeqCst) - before;
    assert!(
        resent <= 1,
        "{resent} re-sends during one second of reads: the backoff was cut short"
    );
    stack.sync.shutdown();
    test.ledger.shutdown().await;
}

// Item 11: jobs started together on one balance do not overdraw it.

#[tokio::test]
async fn concurrent_jobs_reserve_their_price_before_their_work() {
    let test = TestLedger::start(5).await;
    let dir = tempfile::tempdir().unwrap();
    let stack = Stack::new(&test.ledger.base_url(), dir.path(), fast_sync());
    stack.sign_in(&test.token, None);
    let worked = Arc::new(AtomicUsize::new(0));
    let job = |key: &'static str| {
        let jobs = stack.jobs.clone();
        let worked = worked.clone();
        async move {
            jobs.run(spec("compose", key), || async move {
                worked.fetch_add(1, Ordering::SeqCst);
                tokio::time::sleep(Duration::from_millis(300)).await;
                Ok::<_, Error>(())
            })
            .await
        }
    };
    let (first, second) = tokio::join!(job("window-1"), job("window-2"));
    let refused = [&first, &second]
        .iter()
        .filter(|outcome| matches!(outcome, Err(Error::InsufficientPoints { .. })))
        .count();
    assert_eq!(refused, 1, "{first:?} {second:?}");
    assert_eq!(
        worked.load(Ordering::SeqCst),
        1,
        "the refused job never ran"
    );
    let balance = client_for(&test.ledger.base_url(), Some(&test.token))
        .balance()
        .await
        .unwrap();
    assert_eq!(balance.balance, 0, "no debt");
    // A pending charge counts too: with it, the next job is refused before its work.
    test.ledger
        .recharge(test.user, 5, in_days(30))
        .await
        .unwrap();
    let proxied = FaultProxy::start(&test.ledger.base_url()).await;
    let dir = tempfile::tempdir().unwrap();
    let stack = Stack::new(&proxied.base_url, dir.path(), fast_sync());
    stack.sign_in(&test.token, None);
    proxied.fault_charges(Fault::Refuse);
    let pending = stack
        .jobs
        .run(spec("compose", "offline"), ok)
        .await
        .unwrap();
    assert!(pending.charge.is_pending());
    let next = stack.jobs.run(spec("compose", "next"), ok).await;
    assert!(
        matches!(
            next,
            Err(Error::InsufficientPoints {
                balance: Some(0),
                ..
            })
        ),
        "{next:?}"
    );
    test.ledger.shutdown().await;
}

// Item 12: exit lets a running job journal its charge.

#[tokio::test]
async fn shutdown_lets_a_running_job_journal_its_charge_and_starts_no_new_one() {
    let test = TestLedger::start(10).await;
    let dir = tempfile::tempdir().unwrap();
    let stack = Stack::new(&test.ledger.base_url(), dir.path(), fast_sync());
    stack.sign_in(&test.token, None);
    let running = {
        let jobs = stack.jobs.clone();
        tokio::spawn(async move {
            jobs.run(spec("compose", "exiting"), || async {
                tokio::time::sleep(Duration::from_millis(400)).await;
                Ok::<_, Error>("rendered")
            })
            .await
        })
    };
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert_eq!(stack.jobs.running(), 1);
    assert!(stack.jobs.shutdown(Duration::from_secs(5)).await);
    let charged = running.await.unwrap().unwrap();
    assert_eq!(charged.output, "rendered");
    assert!(
        !matches!(charged.charge, ChargeOutcome::Refused { .. }),
        "{:?}",
        charged.charge
    );
    assert_eq!(
        consumes(&test.ledger.base_url(), &test.token).await,
        [(Some("exiting".into()), -5)]
    );
    let late = stack.jobs.run(spec("compose", "late"), ok).await;
    assert!(matches!(late, Err(Error::Storage { .. })), "{late:?}");
    assert!(stack.sync.journal().is_closed());
    test.ledger.shutdown().await;
}

#[tokio::test]
async fn shutdown_interrupts_a_retry_after_hold() {
    let test = TestLedger::start(10).await;
    let proxy = FaultProxy::start(&test.ledger.base_url()).await;
    let dir = tempfile::tempdir().unwrap();
    let policy = SyncPolicy {
        min_delay: Duration::from_secs(1),
        max_delay: Duration::from_secs(600),
        ..SyncPolicy::default()
    };
    let stack = Stack::new(&proxy.base_url, dir.path(), policy);
    stack.sign_in(&test.token, None);
    let looping = tokio::spawn(stack.sync.clone().run());
    proxy.fault_charges(Fault::Unavailable {
        retry_after_secs: 500,
    });
    let charged = stack.jobs.run(spec("compose", "held"), ok).await.unwrap();
    assert!(charged.charge.is_pending());
    tokio::time::sleep(Duration::from_millis(200)).await;
    let started = Instant::now();
    stack.sync.shutdown();
    tokio::time::timeout(Duration::from_secs(2), looping)
        .await
        .expect("the loop ends at once, not after the hold")
        .unwrap();
    assert!(started.elapsed() < Duration::from_secs(2));
    test.ledger.shutdown().await;
}

// Items 1 and 8 (SDK side): a webview-style charge is pending on ambiguity, never an error,
// and a bare 400/422 holds a charge while a known code refuses it once.

#[tokio::test]
async fn a_no_debt_charge_is_pending_when_its_answer_is_lost_and_the_same_key_is_not_charged_twice()
{
    let test = TestLedger::start(7).await;
    let proxy = FaultProxy::start(&test.ledger.base_url()).await;
    let dir = tempfile::tempdir().unwrap();
    let stack = Stack::new(&proxy.base_url, dir.path(), fast_sync());
    stack.sign_in(&test.token, None);
    proxy.fault_charges(Fault::DropAnswer);
    let mut once = spec("compose", "click-1");
    once.allow_debt = false;
    let first = stack.jobs.charge(once.clone()).await.unwrap();
    assert!(first.is_pending(), "{first:?}");
    let again = stack.jobs.charge(once.clone()).await.unwrap();
    assert!(again.is_pending(), "the same key while pending: {again:?}");
    proxy.set(Fault::Pass);
    stack.sync.sync_now().await;
    assert!(stack.sync.journal().is_empty());
    let after = stack.jobs.charge(once).await.unwrap();
    assert!(
        after.receipt().is_some_and(|receipt| receipt.replayed),
        "{after:?}"
    );
    assert_eq!(
        consumes(&test.ledger.base_url(), &test.token).await.len(),
        1
    );
    // Too few points: refused, nothing pending.
    let mut big = spec("compose", "click-2");
    big.allow_debt = false;
    let refused = stack.jobs.charge(big).await;
    assert!(
        matches!(refused, Err(Error::InsufficientPoints { .. })),
        "{refused:?}"
    );
    assert!(stack.sync.journal().is_empty());
    test.ledger.shutdown().await;
}

#[tokio::test]
async fn another_webview_charge_under_a_pending_key_is_refused_not_pending() {
    let test = TestLedger::start(20).await;
    let proxy = FaultProxy::start(&test.ledger.base_url()).await;
    let dir = tempfile::tempdir().unwrap();
    let stack = Stack::new(&proxy.base_url, dir.path(), fast_sync());
    stack.sign_in(&test.token, None);
    proxy.fault_charges(Fault::DropAnswer);
    let mut first = spec("compose", "click-1");
    first.allow_debt = false;
    assert!(stack.jobs.charge(first).await.unwrap().is_pending());
    let mut other = spec("cover_design", "click-1");
    other.allow_debt = false;
    let conflicting = stack.jobs.charge(other).await.unwrap();
    assert!(
        matches!(conflicting, ChargeOutcome::Refused { .. }),
        "another charge under a pending key can never apply: {conflicting:?}"
    );
    proxy.set(Fault::Pass);
    stack.sync.sync_now().await;
    assert!(stack.sync.journal().is_empty());
    let charged = consumes(&test.ledger.base_url(), &test.token).await;
    assert_eq!(charged.len(), 1, "{charged:?}");
    test.ledger.shutdown().await;
}

#[tokio::test]
async fn bare_4xx_pages_hold_a_charge_and_a_known_code_refuses_it_once() {
    let test = TestLedger::start(40).await;
    let proxy = FaultProxy::start(&test.ledger.base_url()).await;
    let dir = tempfile::tempdir().unwrap();
    let stack = Stack::new(&proxy.base_url, dir.path(), fast_sync());
    stack.sign_in(&test.token, None);
    for (key, status, body) in [
        ("waf", 400, "<html>request blocked</html>"),
        ("empty", 422, "{}"),
        ("forbidden", 403, "<html>forbidden</html>"),
    ] {
        proxy.fault_charges(Fault::Answer {
            status,
            retry_after: None,
            body,
        });
        let charged = stack.jobs.run(spec("compose", key), ok).await.unwrap();
        assert!(charged.charge.is_pending(), "{key}: {:?}", charged.charge);
    }
    proxy.set(Fault::Pass);
    stack.sync.sync_now().await;
    assert!(
        stack.sync.journal().is_empty(),
        "sent once the page is gone"
    );
    assert!(stack.listener.refused.lock().unwrap().is_empty());
    // A key the ledger already holds for another body: 422 idempotency_conflict, for good.
    client_for(&test.ledger.base_url(), Some(&test.token))
        .consume(
            &ConsumeRequest::new("cover_design"),
            &IdempotencyKey::parse("taken").unwrap(),
        )
        .await
        .unwrap();
    let charged = stack.jobs.run(spec("compose", "taken"), ok).await.unwrap();
    assert!(
        matches!(charged.charge, ChargeOutcome::Refused { .. }),
        "{:?}",
        charged.charge
    );
    stack.sync.sync_now().await;
    assert_eq!(
        *stack.listener.refused.lock().unwrap(),
        ["taken"],
        "recorded and told once"
    );
    assert_eq!(
        stack
            .sync
            .journal()
            .refused_of(stack.sessions.current().unwrap().account())
            .len(),
        1
    );
    test.ledger.shutdown().await;
}

// A pass goes on through a flaky network and stops at a ledger that is down.

#[tokio::test]
async fn a_pass_goes_on_after_one_failure_and_stops_after_three_in_a_row() {
    let test = TestLedger::start(100).await;
    let proxy = FaultProxy::start(&test.ledger.base_url()).await;
    let dir = tempfile::tempdir().unwrap();
    let stack = Stack::new(&proxy.base_url, dir.path(), fast_sync());
    let account = Session::new(test.token.clone(), None)
        .unwrap()
        .account()
        .to_owned();
    for n in 0..6 {
        let mut charge = PendingCharge::new(
            &account,
            &IdempotencyKey::parse(format!("flaky-{n}")).unwrap(),
            ConsumeRequest {
                allow_debt: true,
                ..ConsumeRequest::new("cover_design")
            },
        );
        charge.recorded_at = n;
        stack.sync.journal().record(&charge).unwrap();
    }
    stack.sign_in(&test.token, None);
    // One lost connection, then a working network.
    let mut faults = vec![Fault::Refuse].into_iter();
    proxy.choose(move |_| faults.next().unwrap_or(Fault::Pass));
    let report = stack.sync.sync_now().await;
    assert_eq!(
        (report.acknowledged.len(), report.failed),
        (5, 1),
        "{report:?}"
    );
    // A ledger that is down: three attempts, then the pass stops.
    for n in 6..12 {
        let mut charge = PendingCharge::new(
            &account,
            &IdempotencyKey::parse(format!("down-{n}")).unwrap(),
            ConsumeRequest::new("cover_design"),
        );
        charge.recorded_at = n;
        stack.sync.journal().record(&charge).unwrap();
    }
    proxy.set(Fault::Refuse);
    let before = proxy.stats.requests.load(Ordering::SeqCst);
    let report = stack.sync.sync_now().await;
    let sent = proxy.stats.requests.load(Ordering::SeqCst) - before;
    assert_eq!(sent, 3, "{report:?}");
    assert_eq!(report.failed, 7);
    test.ledger.shutdown().await;
}
