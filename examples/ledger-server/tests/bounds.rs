//! Every amount, balance and total stays within ±(2^53 − 1): a write that would leave the range
//! is refused with 422 `amount_out_of_range` and writes nothing. On SQLite and PostgreSQL.

mod common;

use common::{assert_books_balance, Backend, TestLedger};
use points_ledger::ledger::MAX_AMOUNT;
use points_ledger::PriceTable;
use serde_json::{json, Value};
use uuid::Uuid;

async fn problem_code(response: reqwest::Response) -> (u16, String) {
    let status = response.status().as_u16();
    let body: Value = response.json().await.unwrap();
    (status, body["code"].as_str().unwrap_or_default().to_owned())
}

async fn history_len(l: &TestLedger, token: &str) -> usize {
    l.get_json(token, "/points/transactions?limit=200").await["items"]
        .as_array()
        .unwrap()
        .len()
}

async fn start(backend: Backend) -> Option<TestLedger> {
    let pricing = PriceTable::from_yaml(
        &format!("services:\n  huge: {{ mode: fixed, points: {MAX_AMOUNT} }}\n  title: {{ mode: fixed, points: 1 }}\n"),
        "bounds.yaml",
    )
    .unwrap();
    let url = common::database_url(backend).await?;
    Some(common::start_with_pricing(url, pricing).await)
}

async fn recharges_stay_within_the_range(l: &TestLedger) {
    let user = Uuid::new_v4();
    let token = l.running.token_for(user);
    let recharge = |key: &'static str, points: Value| {
        l.admin_recharge(
            key,
            json!({"user_id": user, "points": points, "expires_at": "2026-06-01T00:00:00Z"}),
        )
    };
    // Beyond the range in one request, whatever the balance: 422, nothing written.
    for (key, points) in [
        ("over-1", json!(MAX_AMOUNT + 1)),
        ("over-62", json!(1i64 << 62)),
        ("over-max", json!(i64::MAX)),
    ] {
        assert_eq!(
            problem_code(recharge(key, points).await).await,
            (422, "amount_out_of_range".into())
        );
    }
    // Exactly the largest amount is accepted.
    assert_eq!(recharge("max", json!(MAX_AMOUNT)).await.status(), 200);
    assert_eq!(l.balance(&token).await, MAX_AMOUNT);
    // One more point would take the balance past it: refused, nothing written.
    assert_eq!(
        problem_code(recharge("one-more", json!(1)).await).await,
        (422, "amount_out_of_range".into())
    );
    assert_eq!(l.balance(&token).await, MAX_AMOUNT);
    assert_eq!(history_len(l, &token).await, 1);
    // After a spend the balance has room, but the total recharged is at the edge: still refused.
    l.consume(&token, "spend", json!({"service": "title"}))
        .await;
    assert_eq!(
        problem_code(recharge("one-more", json!(1)).await).await,
        (422, "amount_out_of_range".into())
    );
    let summary = l.get_json(&token, "/points/balance").await;
    assert_eq!(
        (
            summary["balance"].as_i64(),
            summary["total_recharged"].as_i64()
        ),
        (Some(MAX_AMOUNT - 1), Some(MAX_AMOUNT))
    );
    assert_eq!(history_len(l, &token).await, 2);
    assert_books_balance(l.running.ledger()).await;
}

async fn debt_stays_within_the_range(l: &TestLedger) {
    let (_, token) = l.user_with(0).await;
    let charge =
        |key: &'static str| l.consume(&token, key, json!({"service": "huge", "allow_debt": true}));
    let first: Value = charge("debt-1").await.json().await.unwrap();
    assert_eq!(first["balance"], -MAX_AMOUNT);
    assert_eq!(
        problem_code(charge("debt-2").await).await,
        (422, "amount_out_of_range".into())
    );
    assert_eq!(
        problem_code(
            l.consume(
                &token,
                "debt-3",
                json!({"service": "title", "allow_debt": true})
            )
            .await
        )
        .await,
        (422, "amount_out_of_range".into())
    );
    let summary = l.get_json(&token, "/points/balance").await;
    assert_eq!(
        (
            summary["balance"].as_i64(),
            summary["total_consumed"].as_i64()
        ),
        (Some(-MAX_AMOUNT), Some(MAX_AMOUNT))
    );
    assert_eq!(history_len(l, &token).await, 1);
    assert_books_balance(l.running.ledger()).await;
}

macro_rules! on_both_backends {
    ($($case:ident),* $(,)?) => {
        mod sqlite {
            $(
                #[tokio::test]
                async fn $case() {
                    let l = super::start(crate::Backend::Sqlite).await.expect("SQLite");
                    super::$case(&l).await;
                    l.finish().await;
                }
            )*
        }
        mod postgres {
            $(
                #[tokio::test]
                async fn $case() {
                    let Some(l) = super::start(crate::Backend::Postgres).await else { return };
                    super::$case(&l).await;
                    l.finish().await;
                }
            )*
        }
    };
}

on_both_backends!(recharges_stay_within_the_range, debt_stays_within_the_range);
