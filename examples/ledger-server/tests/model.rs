//! Property test: random recharges, consumes (with and without debt), replays, clock jumps,
//! sweeps, offline allowances issued to two users' devices and consumes settled under them,
//! against a small in-memory model with its own price list. After every step the ledger must
//! agree with the model (every answer, accepted or refused), the books must balance, and every
//! allowance's settled consumes must add up to its `spent`, within what it granted. On SQLite,
//! and on PostgreSQL (whose consume is one statement of its own) when `POINTS_LEDGER_PG_URL` is
//! set.

mod common;

use std::sync::Arc;

use points_ledger::db::Db;
use points_ledger::ledger::{AllowancePolicy, ConsumeRequest, IdempotencyKey, LedgerError};
use points_ledger::{Ledger, ManualClock, PriceTable};
use proptest::prelude::*;
use sqlx::Row;
use time::{Duration, OffsetDateTime};
use uuid::Uuid;

#[derive(Debug, Clone)]
enum Op {
    Recharge {
        points: i64,
        ttl_hours: i64,
    },
    Consume {
        service: &'static str,
        duration: Option<f64>,
        /// What the model's own price list says it costs.
        points: i64,
        allow_debt: bool,
    },
    ReplayLast,
    Jump {
        hours: i64,
    },
    Sweep,
    /// An allowance for a device of the first user (`other: false`) or of the second.
    Issue {
        other: bool,
        device: u8,
    },
    /// A consume by the first user (`other: false`) or the second, under one of the allowances
    /// issued so far (an index into them; `None`: the latest, which is the likeliest to cover
    /// something).
    ConsumeUnder {
        allowance: Option<prop::sample::Index>,
        other: bool,
        service: &'static str,
        points: i64,
        allow_debt: bool,
    },
}

/// Cap, window and grace of the model's allowances: short, so that the clock jumps reach them.
const POLICY: AllowancePolicy = AllowancePolicy {
    cap: 50,
    window_seconds: 24 * 3600,
    grace_seconds: 48 * 3600,
};

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        3 => (1i64..120, 1i64..240).prop_map(|(points, ttl_hours)| Op::Recharge { points, ttl_hours }),
        4 => (prop::sample::select(vec![("script", 5), ("title", 1), ("voice_clone", 200), ("caption", 0)]), any::<bool>())
            .prop_map(|((service, points), allow_debt)| Op::Consume { service, duration: None, points, allow_debt }),
        // tts is 1 point per started second: tenths of a second, rounded up to whole seconds.
        2 => (1u32..600, any::<bool>()).prop_map(|(tenths, allow_debt)| Op::Consume {
            service: "tts",
            duration: Some(f64::from(tenths) / 10.0),
            points: i64::from(tenths.div_ceil(10)),
            allow_debt,
        }),
        // Under two millionths of a second (where float noise is snapped) still costs one point.
        1 => (1u32..20, any::<bool>()).prop_map(|(n, allow_debt)| Op::Consume {
            service: "tts",
            duration: Some(f64::from(n) * 1e-7),
            points: 1,
            allow_debt,
        }),
        1 => Just(Op::ReplayLast),
        2 => (0i64..120).prop_map(|hours| Op::Jump { hours }),
        1 => Just(Op::Sweep),
        2 => (any::<bool>(), 0u8..2).prop_map(|(other, device)| Op::Issue { other: other && device == 0, device }),
        5 => (prop::option::weighted(0.3, any::<prop::sample::Index>()), prop::bool::weighted(0.15), prop::sample::select(vec![("script", 5), ("title", 1), ("voice_clone", 200), ("caption", 0)]), prop::bool::weighted(0.2))
            .prop_map(|(allowance, other, (service, points), allow_debt)| Op::ConsumeUnder { allowance, other, service, points, allow_debt }),
    ]
}

/// An allowance as the model sees it.
#[derive(Debug, Clone)]
struct Allowance {
    id: Uuid,
    /// Whose: the first user (`false`) or the second.
    other: bool,
    device: u8,
    granted: i64,
    points: i64,
    spent: i64,
    not_after: i64,
    live: bool,
}

/// The ledger's rules, written as plainly as possible.
#[derive(Debug, Default)]
struct Model {
    /// (expires_at, remaining), in recharge order.
    batches: Vec<(OffsetDateTime, i64)>,
    balance: i64,
    recharged: i64,
    consumed: i64,
    expired: i64,
    /// Journal entries written: one per recharge, charge and expired batch.
    seq: i64,
}

impl Model {
    fn expire(&mut self, now: OffsetDateTime) {
        for (expires_at, remaining) in &mut self.batches {
            if *expires_at <= now && *remaining > 0 {
                self.balance -= *remaining;
                self.expired += *remaining;
                *remaining = 0;
                self.seq += 1;
            }
        }
    }

    fn recharge(&mut self, now: OffsetDateTime, points: i64, expires_at: OffsetDateTime) {
        self.expire(now);
        let remaining = (self.balance + points).clamp(0, points);
        self.balance += points;
        self.recharged += points;
        self.batches.push((expires_at, remaining));
        self.seq += 1;
    }

    /// `Some(balance)` when charged, `None` when refused.
    fn consume(&mut self, now: OffsetDateTime, points: i64, allow_debt: bool) -> Option<i64> {
        self.expire(now);
        if points == 0 {
            return Some(self.balance);
        }
        if !allow_debt && self.balance < points {
            return None;
        }
        let mut order: Vec<usize> = (0..self.batches.len()).collect();
        order.sort_by_key(|i| self.batches[*i].0);
        let mut left = points;
        for i in order {
            let burn = self.batches[i].1.min(left);
            self.batches[i].1 -= burn;
            left -= burn;
        }
        self.balance -= points;
        self.consumed += points;
        self.seq += 1;
        Some(self.balance)
    }

    /// Remaining points by expiry date (batches sharing a date burn in an unspecified order).
    fn remaining_by_expiry(&self) -> Vec<(OffsetDateTime, i64)> {
        let mut sums: std::collections::BTreeMap<OffsetDateTime, i64> = Default::default();
        for (expires_at, remaining) in &self.batches {
            if *remaining > 0 {
                *sums.entry(*expires_at).or_default() += remaining;
            }
        }
        sums.into_iter().collect()
    }
}

async fn run(ops: Vec<Op>, database_url: &str) -> Result<(), TestCaseError> {
    let clock = ManualClock::new(common::start_time());
    let db = Db::connect(database_url, 1).await.unwrap();
    // A database shared by the cases starts each one empty (the sweep sees every user).
    for table in ["journal", "allowances", "batches", "accounts"] {
        sqlx::query(&format!("DELETE FROM {table}"))
            .execute(db.pool())
            .await
            .unwrap();
    }
    let ledger = Ledger::new(db, PriceTable::shipped(), Arc::new(clock.clone()))
        .with_allowance_policy(POLICY);
    let user = Uuid::new_v4();
    // Never recharged: its allowances are worth 0, and it tries the first user's.
    let second = Uuid::new_v4();
    let mut model = Model::default();
    let mut allowances: Vec<Allowance> = Vec::new();
    let mut last: Option<(
        ConsumeRequest,
        IdempotencyKey,
        points_ledger::ledger::Receipt,
        Option<Uuid>,
    )> = None;
    let now = |clock: &ManualClock| points_ledger::Clock::now(clock);

    for (step, op) in ops.into_iter().enumerate() {
        match op {
            Op::Recharge { points, ttl_hours } => {
                let expires_at = now(&clock) + Duration::hours(ttl_hours);
                let receipt = ledger.recharge(user, points, expires_at).await.unwrap();
                model.recharge(now(&clock), points, expires_at);
                prop_assert_eq!(receipt.balance, model.balance, "step {}: recharge", step);
                prop_assert_eq!(receipt.seq, model.seq, "step {}: recharge seq", step);
            }
            Op::Consume {
                service,
                duration,
                points,
                allow_debt,
            } => {
                let request = ConsumeRequest {
                    service: service.to_owned(),
                    duration,
                    allow_debt,
                    reference: None,
                };
                let key = IdempotencyKey::parse(&format!("step-{step}")).unwrap();
                let expected = model.consume(now(&clock), points, allow_debt);
                match (ledger.consume(user, &request, &key).await, expected) {
                    (Ok(receipt), Some(balance)) => {
                        prop_assert_eq!(receipt.balance, balance, "step {}: consume", step);
                        prop_assert_eq!(receipt.points, points);
                        prop_assert_eq!(receipt.seq, model.seq, "step {}: consume seq", step);
                        prop_assert!(!receipt.replayed);
                        if points > 0 {
                            last = Some((request, key, receipt, None));
                        }
                    }
                    (
                        Err(LedgerError::InsufficientPoints {
                            required, balance, ..
                        }),
                        None,
                    ) => {
                        prop_assert_eq!(required, points);
                        prop_assert_eq!(balance, model.balance);
                    }
                    (got, expected) => {
                        return Err(TestCaseError::fail(format!(
                            "step {step}: got {got:?}, expected {expected:?}"
                        )))
                    }
                }
            }
            Op::ReplayLast => {
                if let Some((request, key, receipt, allowance)) = &last {
                    // A replay is a replay whatever became of the allowance it was settled under.
                    let again = match allowance {
                        Some(id) => ledger.consume_under(user, request, key, *id).await,
                        None => ledger.consume(user, request, key).await,
                    }
                    .unwrap();
                    prop_assert!(again.replayed);
                    prop_assert_eq!(&again.transaction_id, &receipt.transaction_id);
                    prop_assert_eq!(again.balance, receipt.balance);
                    prop_assert_eq!(again.seq, receipt.seq);
                }
            }
            Op::Jump { hours } => clock.advance(Duration::hours(hours)),
            Op::Issue { other, device } => {
                let at = now(&clock);
                let balance = if other {
                    0
                } else {
                    model.expire(at);
                    model.balance
                };
                let whose = if other { second } else { user };
                let grant = ledger
                    .issue_allowance(whose, &format!("device-{device}"), "k1", None)
                    .await
                    .unwrap();
                for a in allowances.iter_mut() {
                    if a.live && a.other == other && a.device == device {
                        a.live = false;
                        a.points = a.spent;
                    }
                }
                let points = balance.clamp(0, POLICY.cap);
                prop_assert_eq!(grant.points, points, "step {}: issue", step);
                prop_assert_eq!(grant.not_after, at.unix_timestamp() + POLICY.window_seconds);
                allowances.push(Allowance {
                    id: grant.allowance_id,
                    other,
                    device,
                    granted: points,
                    points,
                    spent: 0,
                    not_after: grant.not_after,
                    live: true,
                });
            }
            Op::ConsumeUnder {
                allowance,
                other,
                service,
                points,
                allow_debt,
            } => {
                if allowances.is_empty() {
                    continue;
                }
                let i = allowance.map_or(allowances.len() - 1, |i| i.index(allowances.len()));
                let a = allowances[i].clone();
                let request = ConsumeRequest {
                    service: service.to_owned(),
                    duration: None,
                    allow_debt,
                    reference: None,
                };
                let key = IdempotencyKey::parse(&format!("under-{step}")).unwrap();
                let at = now(&clock);
                let whose = if other { second } else { user };
                // The model's prediction: `Ok(balance)` or the refusal's name.
                let expected: Result<Option<i64>, &str> = if points == 0 {
                    Ok(None)
                } else if a.other != other {
                    Err("not found")
                } else if at.unix_timestamp() > a.not_after + POLICY.grace_seconds {
                    Err("expired")
                } else if points > a.points - a.spent {
                    Err("exhausted")
                } else {
                    // Only the first user's allowances cover anything (the second's are 0).
                    allowances[i].spent += points;
                    Ok(model.consume(at, points, true))
                };
                let got = ledger.consume_under(whose, &request, &key, a.id).await;
                match (&got, expected) {
                    (Ok(receipt), Ok(None)) => {
                        prop_assert_eq!(receipt.points, 0);
                        prop_assert!(receipt.transaction_id.is_none());
                    }
                    (Ok(receipt), Ok(Some(balance))) => {
                        prop_assert_eq!(receipt.balance, balance, "step {}: under", step);
                        prop_assert_eq!(receipt.points, points);
                        prop_assert_eq!(receipt.seq, model.seq, "step {}: under seq", step);
                        last = Some((request, key, receipt.clone(), Some(a.id)));
                    }
                    (Err(LedgerError::AllowanceNotFound), Err("not found"))
                    | (Err(LedgerError::AllowanceExpired), Err("expired"))
                    | (Err(LedgerError::AllowanceExhausted { .. }), Err("exhausted")) => {}
                    (got, expected) => {
                        return Err(TestCaseError::fail(format!(
                            "step {step}: under allowance {i}: got {got:?}, expected {expected:?}"
                        )))
                    }
                }
            }
            Op::Sweep => {
                let report = ledger.expire_all().await.unwrap();
                let before = model.expired;
                model.expire(now(&clock));
                prop_assert_eq!(
                    report.points,
                    model.expired - before,
                    "step {}: sweep",
                    step
                );
            }
        }

        // The stored books balance after every step, even before expiry is applied.
        common::assert_books_balance(&ledger).await;
        // What a reader sees agrees with the model.
        let summary = ledger.summary(user).await.unwrap();
        model.expire(now(&clock));
        prop_assert_eq!(
            (
                summary.balance,
                summary.total_recharged,
                summary.total_consumed,
                summary.total_expired,
                summary.seq
            ),
            (
                model.balance,
                model.recharged,
                model.consumed,
                model.expired,
                model.seq
            ),
            "step {}: summary",
            step
        );
        let batches = ledger.batches(user).await.unwrap();
        let mut seen: Vec<(OffsetDateTime, i64)> = Vec::new();
        for batch in &batches.items {
            prop_assert!(batch.expires_at > now(&clock), "an expired batch is listed");
            match seen.last_mut() {
                Some((at, sum)) if *at == batch.expires_at => *sum += batch.remaining,
                _ => seen.push((batch.expires_at, batch.remaining)),
            }
        }
        prop_assert_eq!(seen, model.remaining_by_expiry(), "step {}: batches", step);
        let live: i64 = batches.items.iter().map(|b| b.remaining).sum();
        prop_assert_eq!(live, model.balance.max(0));
        let second_summary = ledger.summary(second).await.unwrap();
        prop_assert_eq!(
            (second_summary.balance, second_summary.seq),
            (0, 0),
            "step {}: the second user is never charged",
            step
        );
        // Every allowance: what the model expects, and its settled consumes add up to `spent`
        // within what it granted.
        for a in &allowances {
            let row = sqlx::query(
                "SELECT granted, points, spent, CAST(CASE WHEN superseded_at IS NULL THEN 1 ELSE 0 END AS BIGINT) \
                 FROM allowances WHERE allowance_id = $1",
            )
            .bind(a.id.to_string())
            .fetch_one(ledger.db().pool())
            .await
            .unwrap();
            let stored: (i64, i64, i64, bool) = (
                row.get(0),
                row.get(1),
                row.get(2),
                row.get::<i64, _>(3) == 1,
            );
            prop_assert_eq!(
                stored,
                (a.granted, a.points, a.spent, a.live),
                "step {}: allowance {}",
                step,
                a.id
            );
            let settled: i64 = sqlx::query_scalar(
                "SELECT CAST(COALESCE(SUM(-points), 0) AS BIGINT) FROM journal WHERE allowance_id = $1",
            )
            .bind(a.id.to_string())
            .fetch_one(ledger.db().pool())
            .await
            .unwrap();
            prop_assert_eq!(settled, a.spent, "step {}: settled under {}", step, a.id);
            prop_assert!(settled <= a.granted);
        }
    }
    ledger.db().close().await;
    Ok(())
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 48, ..ProptestConfig::default() })]

    #[test]
    fn ledger_matches_the_model(ops in prop::collection::vec(op(), 1..40)) {
        runtime().block_on(run(ops, "sqlite::memory:"))?;
    }
}

/// The same on PostgreSQL: one database, emptied before every case.
#[test]
fn ledger_matches_the_model_on_postgres() {
    let Some(base) = common::pg_url() else { return };
    let url = runtime().block_on(common::fresh_pg_database(&base));
    let mut runner = proptest::test_runner::TestRunner::new(ProptestConfig {
        cases: 48,
        ..ProptestConfig::default()
    });
    let result = runner.run(&prop::collection::vec(op(), 1..40), |ops| {
        runtime().block_on(run(ops, &url))
    });
    runtime().block_on(common::drop_pg_database(&url));
    if let Err(error) = result {
        panic!("{error}");
    }
}
