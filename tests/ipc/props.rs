//! Whatever a webview sends as arguments, a command answers with a value or a typed
//! `PointsError`, never a panic and never an untyped refusal.

use proptest::prelude::*;
use proptest::test_runner::TestRunner;
use serde_json::{json, Map, Value};

use tauri_plugin_points::PointsExt;

use crate::harness::{ledger, signed_in_app};

const KINDS: &[&str] = &[
    "insufficientPoints",
    "unauthorized",
    "unknownService",
    "invalidDuration",
    "notChargeableHere",
    "invalidArgument",
    "network",
    "timeout",
    "backend",
    "protocol",
    "storage",
];

const COMMANDS: &[(&str, &[&str])] = &[
    ("get_balance", &[]),
    ("check_cost", &["service", "duration"]),
    ("charge", &["service", "idempotencyKey", "reference"]),
    ("get_prices", &[]),
    ("list_transactions", &["limit", "before"]),
    ("list_batches", &[]),
    ("set_session_token", &["token"]),
];

fn any_value() -> impl Strategy<Value = Value> {
    prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(Value::from),
        any::<u64>().prop_map(Value::from),
        any::<f64>().prop_map(Value::from), // NaN and ±inf become null, as in JSON.stringify
        prop_oneof![
            Just(1e308),
            Just(-1e308),
            Just(5e-324),
            Just(0.5),
            Just(86_400.5)
        ]
        .prop_map(Value::from),
        ".{0,40}".prop_map(Value::String),
        "[a-z_]{1,20}".prop_map(Value::String),
        prop_oneof![
            Just("compose"),
            Just("tts"),
            Just("subtitle_burn"),
            Just("caption")
        ]
        .prop_map(|s| Value::String(s.into())),
        (1usize..3000).prop_map(|len| Value::String("x".repeat(len))),
        prop::collection::vec(any::<i32>().prop_map(Value::from), 0..4).prop_map(Value::Array),
        Just(json!({"nested": {"deep": [1, 2, 3]}})),
    ]
}

fn arguments(names: &'static [&'static str]) -> impl Strategy<Value = Value> {
    let fields = prop::collection::vec((any::<bool>(), any_value()), names.len());
    (fields, prop::option::of(("[a-zA-Z]{1,10}", any_value()))).prop_map(move |(fields, extra)| {
        let mut args = Map::new();
        for (name, (present, value)) in names.iter().zip(fields) {
            if present {
                args.insert((*name).to_owned(), value);
            }
        }
        if let Some((name, value)) = extra {
            args.entry(name).or_insert(value);
        }
        Value::Object(args)
    })
}

fn command_and_arguments() -> impl Strategy<Value = (&'static str, Value)> {
    (0..COMMANDS.len()).prop_flat_map(|index| {
        let (command, names) = COMMANDS[index];
        arguments(names).prop_map(move |args| (command, args))
    })
}

#[test]
fn any_arguments_give_a_value_or_a_typed_error() {
    // One app for every case: building an app per case would dominate the run.
    let ledger = ledger(1_000_000);
    let app = signed_in_app(&ledger);
    let mut runner = TestRunner::new(ProptestConfig {
        cases: 300,
        ..ProptestConfig::default()
    });
    runner
        .run(&command_and_arguments(), |(command, args)| {
            let outcome = app.invoke(command, args.clone());
            if command == "set_session_token" {
                // Whatever was set, sign the shared app back in.
                app.app
                    .points()
                    .set_session_token(ledger.token.clone())
                    .unwrap();
            }
            if let Err(error) = outcome {
                let kind = error["kind"].as_str();
                prop_assert!(
                    kind.is_some_and(|kind| KINDS.contains(&kind)),
                    "{command} {args}: {error}"
                );
                prop_assert!(error["message"].is_string(), "{command} {args}: {error}");
            }
            Ok(())
        })
        .unwrap();
}
