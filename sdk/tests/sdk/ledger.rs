//! Every route and every error kind of the client against the real reference ledger.

use points_sdk::client::{ConsumeRequest, IdempotencyKey};
use points_sdk::models::{PricingMode, TransactionKind};
use points_sdk::Error;

use crate::common::{client_for, in_days, TestLedger};

#[tokio::test]
async fn balance_reads_the_summary_row() {
    let test = TestLedger::start(100).await;
    let balance = test.client().balance().await.unwrap();
    assert_eq!(balance.balance, 100);
    assert_eq!(balance.total_recharged, 100);
    assert_eq!(balance.total_consumed, 0);
    assert_eq!(balance.total_expired, 0);
    test.ledger.shutdown().await;
}

#[tokio::test]
async fn cost_prices_fixed_duration_and_free_services() {
    let test = TestLedger::start(3).await;
    let client = test.client();

    let compose = client.cost("compose", None).await.unwrap();
    assert_eq!(
        (
            compose.mode,
            compose.required,
            compose.balance,
            compose.sufficient
        ),
        (PricingMode::Fixed, 5, 3, false)
    );
    let tts = client.cost("tts", Some(2.5)).await.unwrap();
    assert_eq!(
        (tts.mode, tts.required, tts.sufficient),
        (PricingMode::Duration, 3, true)
    );
    let caption = client.cost("caption", None).await.unwrap();
    assert_eq!(
        (caption.mode, caption.required, caption.sufficient),
        (PricingMode::Free, 0, true)
    );
    test.ledger.shutdown().await;
}

#[tokio::test]
async fn consume_charges_once_per_key_and_replays_the_first_answer() {
    let test = TestLedger::start(10).await;
    let client = test.client();
    let key = IdempotencyKey::random();
    let request = ConsumeRequest::new("compose");

    let first = client.consume(&request, &key).await.unwrap();
    assert_eq!((first.points, first.balance, first.replayed), (5, 5, false));
    assert_eq!(first.idempotency_key, key.as_str());
    assert!(first.transaction_id.is_some());

    let again = client.consume(&request, &key).await.unwrap();
    assert!(again.replayed);
    assert_eq!(again.transaction_id, first.transaction_id);
    assert_eq!(again.balance, 5);

    let balance = client.balance().await.unwrap();
    assert_eq!((balance.balance, balance.total_consumed), (5, 5));
    test.ledger.shutdown().await;
}

#[tokio::test]
async fn consume_of_a_free_service_stores_nothing() {
    let test = TestLedger::start(1).await;
    let receipt = test
        .client()
        .consume(&ConsumeRequest::new("caption"), &IdempotencyKey::random())
        .await
        .unwrap();
    assert_eq!(
        (receipt.points, receipt.balance, receipt.transaction_id),
        (0, 1, None)
    );
    test.ledger.shutdown().await;
}

#[tokio::test]
async fn debt_is_allowed_only_when_asked() {
    let test = TestLedger::start(2).await;
    let client = test.client();
    let refused = client
        .consume(&ConsumeRequest::new("compose"), &IdempotencyKey::random())
        .await;
    assert_eq!(
        refused,
        Err(Error::InsufficientPoints {
            service: Some("compose".into()),
            required: Some(5),
            balance: Some(2),
        })
    );
    let in_debt = client
        .consume(
            &ConsumeRequest {
                allow_debt: true,
                ..ConsumeRequest::new("compose")
            },
            &IdempotencyKey::random(),
        )
        .await
        .unwrap();
    assert_eq!(in_debt.balance, -3);
    test.ledger.shutdown().await;
}

#[tokio::test]
async fn a_402_does_not_use_up_the_key() {
    let test = TestLedger::start(0).await;
    let client = test.client();
    let key = IdempotencyKey::parse("job-7").unwrap();
    let request = ConsumeRequest::new("cover_design");
    assert!(matches!(
        client.consume(&request, &key).await,
        Err(Error::InsufficientPoints { .. })
    ));
    test.ledger
        .recharge(test.user, 2, in_days(1))
        .await
        .unwrap();
    let receipt = client.consume(&request, &key).await.unwrap();
    assert_eq!(
        (receipt.points, receipt.balance, receipt.replayed),
        (2, 0, false)
    );
    test.ledger.shutdown().await;
}

#[tokio::test]
async fn prices_list_every_service_with_its_mode() {
    let test = TestLedger::start(0).await;
    let prices = test.client().prices().await.unwrap();
    let find = |name: &str| {
        prices
            .services
            .iter()
            .find(|price| price.service == name)
            .unwrap_or_else(|| panic!("{name} is priced"))
    };
    assert_eq!(
        (find("compose").mode, find("compose").points),
        (PricingMode::Fixed, Some(5))
    );
    assert_eq!(find("subtitle_burn").points, Some(2));
    assert_eq!(find("cover_design").points, Some(2));
    assert_eq!(find("video").mode, PricingMode::Duration);
    assert_eq!(find("video").points_per_second, Some(10.0));
    assert_eq!(find("auto_align").mode, PricingMode::Free);
    test.ledger.shutdown().await;
}

#[tokio::test]
async fn transactions_page_newest_first_with_a_cursor() {
    let test = TestLedger::start(20).await;
    let client = test.client();
    for service in ["compose", "subtitle_burn", "cover_design"] {
        client
            .consume(&ConsumeRequest::new(service), &IdempotencyKey::random())
            .await
            .unwrap();
    }
    let first = client.transactions(Some(2), None).await.unwrap();
    assert_eq!(first.items.len(), 2);
    assert_eq!(first.items[0].kind, TransactionKind::Consume);
    assert_eq!(first.items[0].service.as_deref(), Some("cover_design"));
    assert_eq!(
        (first.items[0].points, first.items[0].balance_after),
        (-2, 11)
    );
    let cursor = first.next_cursor.clone().expect("more pages");
    let second = client.transactions(Some(2), Some(&cursor)).await.unwrap();
    let kinds: Vec<_> = second.items.iter().map(|item| item.kind).collect();
    assert_eq!(kinds, [TransactionKind::Consume, TransactionKind::Recharge]);
    assert_eq!(second.items[1].points, 20);
    test.ledger.shutdown().await;
}

#[tokio::test]
async fn batches_are_listed_soonest_expiry_first() {
    let test = TestLedger::start(10).await;
    test.ledger
        .recharge(test.user, 4, in_days(2))
        .await
        .unwrap();
    let client = test.client();
    client
        .consume(
            &ConsumeRequest::new("cover_design"),
            &IdempotencyKey::random(),
        )
        .await
        .unwrap();
    let batches = client.batches().await.unwrap();
    let remaining: Vec<_> = batches
        .iter()
        .map(|batch| (batch.points, batch.remaining))
        .collect();
    // The soonest-expiring batch is burnt first; empty batches are not live.
    assert_eq!(remaining, [(4, 2), (10, 10)]);
    assert!(batches[0].expires_at < batches[1].expires_at);
    test.ledger.shutdown().await;
}

#[tokio::test]
async fn ledger_refusals_become_typed_errors() {
    let test = TestLedger::start(10).await;
    let client = test.client();

    assert_eq!(
        client.cost("no_such_service", None).await,
        Err(Error::UnknownService {
            service: "no_such_service".into()
        })
    );
    assert_eq!(client.cost("tts", None).await, Err(Error::InvalidDuration));
    assert_eq!(
        client
            .consume(&ConsumeRequest::new("video"), &IdempotencyKey::random())
            .await,
        Err(Error::InvalidDuration)
    );

    // The same key with a different body: a conflict the ledger refuses, not retried.
    let key = IdempotencyKey::random();
    client
        .consume(&ConsumeRequest::new("compose"), &key)
        .await
        .unwrap();
    let conflict = client
        .consume(&ConsumeRequest::new("cover_design"), &key)
        .await;
    assert!(
        matches!(conflict, Err(Error::Backend { status: 422, ref code, .. }) if code.as_deref() == Some("idempotency_conflict")),
        "{conflict:?}"
    );

    let stranger = client_for(&test.ledger.base_url(), Some("not-a-token"));
    assert_eq!(stranger.balance().await, Err(Error::Unauthorized));
    let signed_out = client_for(&test.ledger.base_url(), None);
    assert_eq!(signed_out.balance().await, Err(Error::Unauthorized));
    test.ledger.shutdown().await;
}

#[tokio::test]
async fn a_stopped_ledger_is_a_network_error() {
    let test = TestLedger::start(0).await;
    let client = test.client();
    test.ledger.shutdown().await;
    assert!(matches!(client.balance().await, Err(Error::Network { .. })));
}

#[tokio::test]
async fn concurrent_balance_reads_share_one_answer() {
    let test = TestLedger::start(42).await;
    let client = test.client();
    let reads = (0..200).map(|_| client.balance());
    let balances = futures_util::future::join_all(reads).await;
    assert!(balances
        .iter()
        .all(|balance| balance.as_ref().unwrap().balance == 42));
    test.ledger.shutdown().await;
}
