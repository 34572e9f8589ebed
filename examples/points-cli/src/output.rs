//! What the commands print: one human line per item on stdout (errors on stderr), or one JSON
//! document on stdout with `--json`.

use std::time::{SystemTime, UNIX_EPOCH};

use points_sdk::journal::PendingCharge;
use points_sdk::models::{CostCheck, PendingStatus, PointBalance, RefusedCharge};
use points_sdk::sync::SyncReport;
use points_sdk::ChargeOutcome;
use serde_json::{json, Value};

use crate::commands::Failure;

fn print_json(value: &Value) {
    println!("{value:#}");
}

fn to_value(value: &impl serde::Serialize) -> Value {
    serde_json::to_value(value).unwrap_or(Value::Null)
}

pub fn balance(json: bool, balance: &PointBalance) {
    if json {
        return print_json(&to_value(balance));
    }
    println!(
        "balance: {} points (recharged {}, consumed {}, expired {}; seq {})",
        balance.balance,
        balance.total_recharged,
        balance.total_consumed,
        balance.total_expired,
        seq(balance.seq),
    );
}

pub fn cost(json: bool, cost: &CostCheck) {
    if json {
        return print_json(&to_value(cost));
    }
    let covers = if cost.sufficient {
        "covers it"
    } else {
        "does not cover it"
    };
    println!(
        "{}: {} points; the balance of {} {covers}",
        cost.service, cost.required, cost.balance
    );
}

pub fn charge(json: bool, service: &str, outcome: &ChargeOutcome) {
    if json {
        return print_json(&to_value(outcome));
    }
    // `if let` rather than `match`: an outcome the SDK adds later prints as JSON.
    if let ChargeOutcome::Acknowledged { receipt } = outcome {
        if receipt.replayed {
            println!(
                "acknowledged (replay, nothing charged again): {} {} points under {}; balance {}",
                receipt.service, receipt.points, receipt.idempotency_key, receipt.balance
            );
        } else {
            println!(
                "acknowledged: {} charged {} points under {}; balance {}",
                receipt.service, receipt.points, receipt.idempotency_key, receipt.balance
            );
        }
    } else if let ChargeOutcome::Pending { idempotency_key } = outcome {
        println!(
            "pending: {service} under {idempotency_key} is journaled; it will be sent by `points sync`"
        );
    } else if let ChargeOutcome::Refused {
        idempotency_key,
        error,
    } = outcome
    {
        println!(
            "refused: {service} under {idempotency_key}: {}",
            error_message(&to_value(error))
        );
    } else {
        println!("{service}: {}", to_value(outcome));
    }
}

pub fn pending(json: bool, status: &PendingStatus, charges: &[PendingCharge]) {
    if json {
        let mut value = to_value(status);
        if let Value::Object(map) = &mut value {
            map.insert(
                "charges".into(),
                Value::Array(charges.iter().map(pending_json).collect()),
            );
        }
        return print_json(&value);
    }
    let now = now_seconds();
    for charge in charges {
        println!(
            "pending: {} {}{}, {} points, recorded {} s ago",
            charge.idempotency_key,
            charge.request.service,
            charge
                .request
                .duration
                .map(|seconds| format!(" ({seconds} s)"))
                .unwrap_or_default(),
            charge
                .price
                .map(|price| price.to_string())
                .unwrap_or_else(|| "?".into()),
            now.saturating_sub(charge.recorded_at),
        );
    }
    for refused in &status.refused {
        refused_line(refused);
    }
    if !status.signed_in {
        println!(
            "not signed in: {} pending charge(s) on this machine",
            status.other_accounts
        );
        return;
    }
    println!(
        "{} pending charge(s) of this account{}; {} of other accounts",
        status.count,
        status
            .oldest_age_seconds
            .map(|age| format!(" (oldest {age} s)"))
            .unwrap_or_default(),
        status.other_accounts,
    );
}

pub fn sync(json: bool, report: &SyncReport, left: usize, others: usize) {
    if json {
        return print_json(&json!({
            "acknowledged": to_value(&report.acknowledged),
            "refused": to_value(&report.refused),
            "failed": report.failed,
            "waiting": report.waiting,
            "pending": left,
            "otherAccounts": others,
        }));
    }
    for receipt in &report.acknowledged {
        println!(
            "acknowledged: {} {} {} points{}; balance {}",
            receipt.idempotency_key,
            receipt.service,
            receipt.points,
            if receipt.replayed {
                " (already applied)"
            } else {
                ""
            },
            receipt.balance,
        );
    }
    for refused in &report.refused {
        refused_line(refused);
    }
    let failed = if report.failed > 0 {
        format!(" ({} sent but not acknowledged)", report.failed)
    } else {
        String::new()
    };
    println!("still pending: {left} of this account{failed}; {others} of other accounts");
}

pub fn failure(json: bool, failure: &Failure) {
    let (message, error) = match failure {
        Failure::Points(error) => (error.to_string(), to_value(error)),
        Failure::Usage(message) => (
            message.clone(),
            json!({ "kind": "usage", "message": message }),
        ),
        Failure::WorkFailed => {
            let message = "the work failed: nothing was charged".to_owned();
            let error = json!({ "kind": "workFailed", "message": message });
            (message, error)
        }
    };
    if json {
        print_json(&json!({ "error": error }));
    }
    eprintln!("error: {message}");
}

fn refused_line(refused: &RefusedCharge) {
    println!(
        "refused: {} {}: {}",
        refused.idempotency_key,
        refused.service,
        error_message(&to_value(&refused.error))
    );
}

fn pending_json(charge: &PendingCharge) -> Value {
    json!({
        "idempotencyKey": charge.idempotency_key,
        "service": charge.request.service,
        "duration": charge.request.duration,
        "price": charge.price,
        "recordedAt": charge.recorded_at,
        "ageSeconds": now_seconds().saturating_sub(charge.recorded_at),
    })
}

fn error_message(error: &Value) -> String {
    error
        .get("message")
        .and_then(Value::as_str)
        .unwrap_or("refused")
        .to_owned()
}

fn seq(seq: Option<i64>) -> String {
    seq.map(|seq| seq.to_string()).unwrap_or_else(|| "-".into())
}

fn now_seconds() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|since| since.as_secs())
        .unwrap_or_default()
}
