//! Crashes: a charge journaled but never acknowledged is replayed with the same key after a
//! restart, and the ledger holds exactly one charge.

use tauri_plugin_points::client::{ConsumeRequest, IdempotencyKey, LedgerClient};
use tauri_plugin_points::journal::Journal;
use tauri_plugin_points::models::TransactionKind;
use tauri_plugin_points::Error;

use crate::common::{client_for, TestLedger};

fn debt_charge(service: &str) -> ConsumeRequest {
    ConsumeRequest {
        allow_debt: true,
        ..ConsumeRequest::new(service)
    }
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
async fn a_crash_before_the_consume_was_sent_is_charged_once_on_replay() {
    let test = TestLedger::start(10).await;
    let dir = tempfile::tempdir().unwrap();
    let key = IdempotencyKey::parse("render-17").unwrap();
    {
        let journal = Journal::open(dir.path()).unwrap();
        let account = test.client().account();
        journal
            .record(account.as_deref(), &key, &debt_charge("compose"))
            .unwrap();
        // The process dies here: the consume was never sent.
    }
    let client = test.client();
    let journal = Journal::open(dir.path()).unwrap();
    assert_eq!(journal.len(), 1);
    let report = journal.replay(&client).await;
    assert_eq!(report.acknowledged.len(), 1);
    assert!(!report.acknowledged[0].replayed);
    assert_eq!(report.acknowledged[0].idempotency_key, "render-17");
    assert!(journal.is_empty());
    assert!(Journal::open(dir.path()).unwrap().is_empty());
    assert_eq!(consumes(&client).await, [(Some("compose".into()), -5)]);
    test.ledger.shutdown().await;
}

#[tokio::test]
async fn a_crash_after_the_ledger_applied_it_is_not_charged_twice() {
    let test = TestLedger::start(3).await;
    let dir = tempfile::tempdir().unwrap();
    let key = IdempotencyKey::random();
    {
        let client = test.client();
        let journal = Journal::open(dir.path()).unwrap();
        journal
            .record(client.account().as_deref(), &key, &debt_charge("compose"))
            .unwrap();
        client.consume(&debt_charge("compose"), &key).await.unwrap();
        // The process dies before removing the acknowledged charge.
    }
    let client = test.client();
    let journal = Journal::open(dir.path()).unwrap();
    let report = journal.replay(&client).await;
    assert_eq!(report.acknowledged.len(), 1);
    assert!(
        report.acknowledged[0].replayed,
        "the ledger recognised the key"
    );
    assert!(journal.is_empty());
    assert_eq!(consumes(&client).await, [(Some("compose".into()), -5)]);
    assert_eq!(client.balance().await.unwrap().balance, -2);
    test.ledger.shutdown().await;
}

#[tokio::test]
async fn an_unreachable_ledger_keeps_the_charge_for_later() {
    let test = TestLedger::start(10).await;
    let dir = tempfile::tempdir().unwrap();
    let journal = Journal::open(dir.path()).unwrap();
    let nowhere = client_for("http://127.0.0.1:9", Some(&test.token));
    let result = journal
        .consume(
            &nowhere,
            &debt_charge("subtitle_burn"),
            &IdempotencyKey::random(),
        )
        .await;
    assert!(matches!(result, Err(Error::Network(_))), "{result:?}");
    assert_eq!(journal.len(), 1);
    let signed_out = client_for(&test.ledger.base_url(), None);
    assert_eq!(journal.replay(&signed_out).await.kept, 1);
    assert_eq!(journal.len(), 1);

    let report = journal.replay(&test.client()).await;
    assert_eq!((report.acknowledged.len(), report.kept), (1, 0));
    assert!(journal.is_empty());
    assert_eq!(test.client().balance().await.unwrap().balance, 8);
    test.ledger.shutdown().await;
}

#[tokio::test]
async fn a_pending_charge_is_never_billed_to_another_account() {
    let test = TestLedger::start(10).await;
    let other_user = uuid::Uuid::new_v4();
    test.ledger
        .recharge(other_user, 10, crate::common::in_days(30))
        .await
        .unwrap();
    let other = client_for(
        &test.ledger.base_url(),
        Some(&test.ledger.token_for(other_user)),
    );
    let dir = tempfile::tempdir().unwrap();
    let journal = Journal::open(dir.path()).unwrap();
    let nowhere = client_for("http://127.0.0.1:9", Some(&test.token));
    let result = journal
        .consume(&nowhere, &debt_charge("compose"), &IdempotencyKey::random())
        .await;
    assert!(matches!(result, Err(Error::Network(_))), "{result:?}");

    // Another user signs in on the same machine: the charge is not theirs to pay.
    let report = journal.replay(&other).await;
    assert_eq!((report.acknowledged.len(), report.kept), (0, 1));
    assert_eq!(other.balance().await.unwrap().balance, 10);
    assert!(consumes(&other).await.is_empty());

    // Its own user signs in again: the charge is sent, once.
    let report = journal.replay(&test.client()).await;
    assert_eq!((report.acknowledged.len(), report.kept), (1, 0));
    assert!(journal.is_empty());
    assert_eq!(
        consumes(&test.client()).await,
        [(Some("compose".into()), -5)]
    );
    test.ledger.shutdown().await;
}

#[tokio::test]
async fn a_charge_the_ledger_can_never_apply_is_dropped() {
    let test = TestLedger::start(10).await;
    let dir = tempfile::tempdir().unwrap();
    let journal = Journal::open(dir.path()).unwrap();
    journal
        .record(
            None,
            &IdempotencyKey::random(),
            &debt_charge("retired_service"),
        )
        .unwrap();
    journal
        .record(
            None,
            &IdempotencyKey::random(),
            &debt_charge("cover_design"),
        )
        .unwrap();
    let report = journal.replay(&test.client()).await;
    assert_eq!(report.acknowledged.len(), 1);
    assert_eq!(report.dropped.len(), 1);
    assert!(matches!(report.dropped[0].1, Error::UnknownService { .. }));
    assert!(journal.is_empty());
    assert_eq!(test.client().balance().await.unwrap().balance, 8);
    test.ledger.shutdown().await;
}

#[tokio::test]
async fn the_journal_is_written_before_the_consume_is_sent() {
    // A ledger that never answers: the entry must already be on disk while the request hangs.
    let stub = crate::common::stub::Stub::start(vec![crate::common::stub::Reply::After(
        std::time::Duration::from_secs(30),
        Box::new(crate::common::stub::Reply::json(500, "")),
    )])
    .await;
    let dir = tempfile::tempdir().unwrap();
    let journal = Journal::open(dir.path()).unwrap();
    let client = client_for(&stub.base_url, Some("t"));
    let key = IdempotencyKey::random();
    let request = debt_charge("compose");
    let charge = journal.consume(&client, &request, &key);
    let probe = async {
        while stub.received().is_empty() {
            tokio::time::sleep(std::time::Duration::from_millis(5)).await;
        }
        Journal::open(dir.path()).unwrap().pending()
    };
    tokio::select! {
        _ = charge => panic!("the stub never answers"),
        pending = probe => {
            assert_eq!(pending.len(), 1);
            assert_eq!(pending[0].idempotency_key, key.as_str());
        }
    }
}

#[tokio::test]
async fn a_journal_that_cannot_be_written_still_sends_the_charge_once() {
    let test = TestLedger::start(10).await;
    let dir = tempfile::tempdir().unwrap();
    let journal = Journal::open(dir.path().join("gone")).unwrap();
    std::fs::remove_dir_all(dir.path().join("gone")).unwrap();
    let receipt = journal
        .consume(
            &test.client(),
            &debt_charge("compose"),
            &IdempotencyKey::random(),
        )
        .await
        .unwrap();
    assert_eq!(receipt.balance, 5);
    assert!(journal.is_empty());
    test.ledger.shutdown().await;
}
