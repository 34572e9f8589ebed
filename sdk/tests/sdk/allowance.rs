//! Offline allowances against the real reference ledger: the keys it serves verify what it signs
//! (the ledger and this SDK each build the signed message on their own), a changed field or
//! another account's grant is refused, and a bad device id is refused before anything is sent.

use points_sdk::allowance::{AllowanceRefusal, PinnedKeys};
use points_sdk::Error;
use uuid::Uuid;

use crate::common::{client_for, in_days, TestLedger};

async fn pinned_keys(ledger: &TestLedger) -> PinnedKeys {
    let keys = ledger.client().allowance_keys().await.expect("the keys");
    assert!(!keys.is_empty());
    PinnedKeys::from_base64(keys.iter().map(|(id, key)| (id.as_str(), key.as_str())))
        .expect("the served keys are well formed")
}

#[tokio::test]
async fn the_ledgers_allowance_verifies_with_its_key_and_nothing_else_does() {
    let ledger = TestLedger::start(40).await;
    let keys = pinned_keys(&ledger).await;
    let allowance = ledger
        .client()
        .allowance("desk-1")
        .await
        .expect("an allowance");
    let user = ledger.user.to_string();
    let now = allowance.server_time;
    assert_eq!(allowance.check_for(&keys, &user, "desk-1", now), Ok(()));
    assert_eq!(allowance.points, 40, "min(balance, cap)");
    assert!(allowance.not_after > allowance.issued_at);

    let mut more = allowance.clone();
    more.points = 1_000;
    assert_eq!(more.verify(&keys), Err(AllowanceRefusal::BadSignature));
    let mut later = allowance.clone();
    later.not_after += 3600;
    assert_eq!(later.verify(&keys), Err(AllowanceRefusal::BadSignature));
    assert_eq!(
        allowance.check_for(&keys, &user, "desk-2", now),
        Err(AllowanceRefusal::OtherDevice)
    );
    assert_eq!(
        allowance.check_for(&keys, &user, "desk-1", allowance.not_after + 1),
        Err(AllowanceRefusal::Expired)
    );

    // Another user's allowance is not this account's, however well signed.
    let other = Uuid::new_v4();
    ledger
        .ledger
        .recharge(other, 500, in_days(30))
        .await
        .unwrap();
    let theirs = client_for(
        &ledger.ledger.base_url(),
        Some(&ledger.ledger.token_for(other)),
    )
    .allowance("desk-1")
    .await
    .unwrap();
    assert_eq!(theirs.verify(&keys), Ok(()));
    assert_eq!(theirs.points, 100, "capped");
    assert_eq!(
        theirs.check_for(&keys, &user, "desk-1", now),
        Err(AllowanceRefusal::OtherAccount)
    );

    // Keys of another ledger verify nothing of this one.
    let elsewhere = TestLedger::start(0).await;
    let foreign = pinned_keys(&elsewhere).await;
    assert!(matches!(
        allowance.verify(&foreign),
        Err(AllowanceRefusal::BadSignature | AllowanceRefusal::UnknownKey)
    ));
}

#[tokio::test]
async fn a_bad_device_id_is_refused_before_it_is_sent() {
    let ledger = TestLedger::start(10).await;
    assert!(matches!(
        ledger.client().allowance("desk 1").await,
        Err(Error::InvalidArgument { .. })
    ));
}
