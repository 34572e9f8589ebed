//! A client whose base URL is set after it is made, and changed: without one every call fails
//! with `NotConfigured` and nothing is lost; every clone (the sync's, the job runner's) follows a
//! change; a call under way finishes with the ledger it started with.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use points_sdk::client::{ConsumeRequest, IdempotencyKey, LedgerClientBuilder};
use points_sdk::journal::Journal;
use points_sdk::{ChargeSync, Error, JobSpec, Jobs, Session, Sessions, TokenProvider};

use crate::common::proxy::{Fault, FaultProxy};
use crate::common::{client_for, fast_retry, fast_sync, TestLedger};

#[tokio::test]
async fn without_a_base_url_nothing_is_sent_nothing_is_lost_and_every_clone_follows_the_url() {
    let test = TestLedger::start(10).await;
    let sessions = Arc::new(Sessions::new(None));
    sessions.sign_in(Session::new(test.token.clone(), None).unwrap());
    let client = LedgerClientBuilder::new()
        .retry(fast_retry())
        .token_provider({
            let sessions = sessions.clone();
            move || sessions.token()
        })
        .build()
        .unwrap();
    assert_eq!(client.base_url(), None);
    let key = IdempotencyKey::parse("compose:no-url").unwrap();
    assert_eq!(client.balance().await, Err(Error::NotConfigured));
    assert_eq!(
        client.cost("compose", None).await.map(|cost| cost.required),
        Err(Error::NotConfigured)
    );
    assert_eq!(
        client
            .consume(&ConsumeRequest::new("compose"), &key)
            .await
            .map(|receipt| receipt.balance),
        Err(Error::NotConfigured)
    );
    assert_eq!(client.prices().await.map(|_| ()), Err(Error::NotConfigured));

    let dir = tempfile::tempdir().unwrap();
    let journal = Arc::new(Journal::open(dir.path()).unwrap());
    let sync = ChargeSync::new(
        client.clone(),
        journal.clone(),
        sessions.clone(),
        fast_sync(),
        Arc::new(()),
    );
    let jobs = Jobs::new(client.clone(), sync.clone(), Arc::new(()));
    // A job's price cannot be checked: its work never starts.
    let ran = Arc::new(AtomicBool::new(false));
    let job = jobs
        .run(JobSpec::new("compose", key.clone()), || {
            let ran = ran.clone();
            async move {
                ran.store(true, Ordering::SeqCst);
                Ok::<_, Error>(())
            }
        })
        .await;
    assert_eq!(job.map(|charged| charged.output), Err(Error::NotConfigured));
    assert!(!ran.load(Ordering::SeqCst), "the work ran without a ledger");

    // A charge journaled earlier (a previous run) is held by a pass without a ledger.
    journal
        .record(&points_sdk::journal::PendingCharge::new(
            &points_sdk::client::account_of(&test.token),
            &IdempotencyKey::parse("compose:earlier").unwrap(),
            ConsumeRequest {
                allow_debt: true,
                ..ConsumeRequest::new("compose")
            },
        ))
        .unwrap();
    let report = sync.sync_now().await;
    assert_eq!(report.failed, 1, "{report:?}");
    assert!(report.refused.is_empty(), "{report:?}");
    assert_eq!(journal.pending().len(), 1, "nothing is lost");

    // The URL set on one clone: the sync's and the runner's clones follow it.
    client.set_base_url(&test.ledger.base_url()).unwrap();
    let report = sync.sync_now().await;
    assert_eq!(report.acknowledged.len(), 1, "{report:?}");
    assert!(journal.pending().is_empty());
    let charged = jobs
        .run(
            JobSpec::new("compose", IdempotencyKey::parse("compose:now").unwrap()),
            || async { Ok::<_, Error>(()) },
        )
        .await
        .unwrap();
    assert!(
        matches!(charged.charge, points_sdk::ChargeOutcome::Acknowledged { ref receipt } if receipt.balance == 0),
        "{:?}",
        charged.charge
    );
    sync.shutdown();
}

#[tokio::test]
async fn a_call_under_way_finishes_with_its_ledger_and_the_next_goes_to_the_new_one() {
    let test = TestLedger::start(10).await;
    let direct = test.ledger.base_url();
    let old = FaultProxy::start(&direct).await;
    let new = FaultProxy::start(&direct).await;
    old.set(Fault::Delay(Duration::from_millis(800)));
    let client = client_for(&old.base_url, Some(&test.token));
    let slow = tokio::spawn({
        let client = client.clone();
        async move { client.balance().await }
    });
    while old.stats.requests.load(Ordering::SeqCst) == 0 {
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    client.set_base_url(&new.base_url).unwrap();
    // Not joined to the balance read still under way at the old address.
    let fast = client.balance().await.unwrap();
    assert_eq!(fast.balance, 10);
    assert!(!slow.is_finished(), "the new read waited for the old one");
    assert_eq!(new.stats.requests.load(Ordering::SeqCst), 1);
    assert_eq!(slow.await.unwrap().unwrap().balance, 10);
    assert_eq!(
        old.stats.requests.load(Ordering::SeqCst),
        1,
        "no retry moved"
    );
    assert_eq!(
        client.base_url().map(String::from),
        Some(format!("{}/", new.base_url))
    );
}
