//! The OpenAPI 3.1 document of the whole API, generated from the handlers and types, with the
//! service names of the price table it serves: a request the document calls valid is one the
//! ledger accepts (balance and idempotency aside).

use serde_json::{json, Value};

use utoipa::openapi::security::{ApiKey, ApiKeyValue, HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::{Modify, OpenApi};

use crate::allowance::{AllowanceKey, AllowanceKeyList, SignedAllowance};
use crate::ledger::{
    BalanceEvent, Batch, BatchList, Change, CostCheck, Entry, EntryKind, EntryPage, ExpiryReport,
    Receipt, RechargeReceipt, Summary,
};
use crate::pricing::{PriceTable, PricingMode, MAX_DURATION_SECONDS};
use crate::problem::{Problem, ProblemExtensions};
use crate::routes::{self, AllowanceBody, ConsumeBody, PriceList, RechargeBody, ServicePrice};
use crate::stream::{EndReason, StreamEnd};

#[derive(OpenApi)]
#[openapi(
    info(
        title = "points-ledger",
        description = "The points ledger contract: balance, cost pre-check, idempotent consume, prices, history and batches. Errors are RFC 9457 problem details with a stable `code`.\n\nIdempotency keys are scoped to the user and to the route (consume and recharge keys are separate namespaces). A key is kept as long as the transaction it produced, which on this ledger is for ever: a client may re-send a charge after any time offline and gets the first answer back with `replayed: true`.\n\nLimits (defaults; the operator may change them): a request's head must arrive within 10 s (else the connection is closed); a request must be received and answered within 30 s (else 408 `request_timeout`); a body holds at most 65536 bytes (else 413 `payload_too_large`); at most 512 requests are handled at once (else 503 `overloaded`, try again shortly); a consume's `reference` holds at most 1024 characters (else 422 `reference_too_long`); an idempotency key 1 to 255 characters; amounts, balances and totals stay within ±(2^53 − 1) (else 422 `amount_out_of_range`); balance streams (`GET /points/stream`): at most 8 per user (a new one ends the oldest with `too_many_streams`), at most 512 in all (else 503 `too_many_streams`), a heartbeat every 10 s, at most 1000 entries replayed after `Last-Event-ID`, 64 unread events per stream before its reader is disconnected; offline allowances (`POST /points/allowance`): a `device_id` of 1 to 128 characters of `[A-Za-z0-9._:-]`, at most `min(balance, 100)` points (the cap), `not_after` 72 h (259200 s, the window) after issue, consumes under one accepted until 30 days (2592000 s, the grace period) after `not_after`. The request timeout and the in-flight limit apply to a stream until its response head only.\n\nOffline allowances: `POST /points/allowance` answers an Ed25519-signed promise of points to one device, verified with the keys of `GET /points/allowance-keys` pinned in the client; a consume naming its `allowance_id` is accepted with debt up to what is left of it, exactly once per key. The ledger risks at most each allowance's points. A ledger without an allowance key answers `POST /points/allowance` with 501 `allowance_unavailable`.\n\nA backend without the balance stream answers `GET /points/stream` with 404, 405 or 501: clients then poll `GET /points/balance`.",
        license(name = "MIT OR Apache-2.0"),
    ),
    paths(
        routes::balance,
        routes::cost,
        routes::consume,
        routes::allowance,
        routes::allowance_keys,
        routes::prices,
        routes::transactions,
        routes::batches,
        routes::stream,
        routes::admin_recharge,
        routes::admin_expire,
        routes::openapi,
    ),
    components(schemas(
        Summary, CostCheck, PricingMode, ConsumeBody, Receipt, ServicePrice, PriceList, Entry, EntryKind,
        EntryPage, Batch, BatchList, RechargeBody, RechargeReceipt, ExpiryReport, Problem, ProblemExtensions,
        BalanceEvent, Change, StreamEnd, EndReason, AllowanceBody, SignedAllowance, AllowanceKey,
        AllowanceKeyList,
    )),
    modifiers(&Security),
    tags(
        (name = "points", description = "A user's points; bearer token whose `sub` is the user's UUID"),
        (name = "admin", description = "Server to server; X-Admin-Key header"),
        (name = "meta", description = "About the API"),
    )
)]
struct ApiDoc;

struct Security;

impl Modify for Security {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "bearer",
            SecurityScheme::Http(
                HttpBuilder::new()
                    .scheme(HttpAuthScheme::Bearer)
                    .bearer_format("JWT")
                    .build(),
            ),
        );
        components.add_security_scheme(
            "admin_key",
            SecurityScheme::ApiKey(ApiKey::Header(ApiKeyValue::new("X-Admin-Key"))),
        );
    }
}

/// The OpenAPI document, without the price table's service names.
pub fn document() -> utoipa::openapi::OpenApi {
    let mut doc = ApiDoc::openapi();
    doc.info.version = env!("CARGO_PKG_VERSION").to_owned();
    doc
}

/// The OpenAPI document of a ledger serving `pricing`: `service` is one of its names, and a
/// consume of a `duration` service requires a valid `duration` (a `oneOf` by pricing mode).
pub fn document_for(pricing: &PriceTable) -> Value {
    let mut doc = serde_json::to_value(document()).expect("the OpenAPI document serialises");
    let names = |wanted: &dyn Fn(PricingMode) -> bool| -> Vec<&str> {
        pricing
            .iter()
            .filter(|(_, price)| wanted(price.mode()))
            .map(|(name, _)| name)
            .collect()
    };
    let all = names(&|_| true);
    let timed = names(&|mode| mode == PricingMode::Duration);
    let untimed = names(&|mode| mode != PricingMode::Duration);

    for param in doc["paths"]["/points/cost"]["get"]["parameters"]
        .as_array_mut()
        .into_iter()
        .flatten()
    {
        if param["name"] == "service" {
            param["schema"]["enum"] = json!(all);
        }
    }

    let body = &mut doc["components"]["schemas"]["ConsumeBody"];
    let properties = body["properties"].clone();
    let branch = |services: &[&str], duration: Value, required: Value| {
        let mut branch_properties = properties.clone();
        branch_properties["service"]["enum"] = json!(services);
        branch_properties["duration"] = duration;
        json!({"type": "object", "required": required, "properties": branch_properties})
    };
    let mut branches = Vec::new();
    if !timed.is_empty() {
        branches.push(branch(
            &timed,
            json!({
                "type": "number",
                "format": "double",
                "exclusiveMinimum": 0,
                "maximum": MAX_DURATION_SECONDS,
                "description": "Seconds of media (finite, > 0, ≤ 86400)."
            }),
            json!(["service", "duration"]),
        ));
    }
    if !untimed.is_empty() {
        branches.push(branch(
            &untimed,
            json!({
                "type": ["number", "null"],
                "format": "double",
                "description": "Ignored for `fixed` and `free` services."
            }),
            json!(["service"]),
        ));
    }
    let description = body["description"].clone();
    *body = json!({
        "description": description,
        "oneOf": branches,
    });
    doc
}

/// The OpenAPI document of a ledger with the shipped price table as pretty JSON with a final
/// newline, as committed in `docs/openapi.json`.
pub fn document_json() -> String {
    let mut text = serde_json::to_string_pretty(&document_for(&PriceTable::shipped()))
        .expect("the OpenAPI document serialises");
    text.push('\n');
    text
}
