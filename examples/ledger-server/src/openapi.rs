//! The OpenAPI 3.1 document of the whole API, generated from the handlers and types.

use utoipa::openapi::security::{ApiKey, ApiKeyValue, HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::{Modify, OpenApi};

use crate::ledger::{
    Batch, BatchList, CostCheck, Entry, EntryKind, EntryPage, ExpiryReport, Receipt,
    RechargeReceipt, Summary,
};
use crate::pricing::PricingMode;
use crate::problem::{Problem, ProblemExtensions};
use crate::routes::{self, ConsumeBody, PriceList, RechargeBody, ServicePrice};

#[derive(OpenApi)]
#[openapi(
    info(
        title = "points-ledger",
        description = "The points ledger contract: balance, cost pre-check, idempotent consume, prices, history and batches. Errors are RFC 9457 problem details with a stable `code`.",
        license(name = "MIT OR Apache-2.0"),
    ),
    paths(
        routes::balance,
        routes::cost,
        routes::consume,
        routes::prices,
        routes::transactions,
        routes::batches,
        routes::admin_recharge,
        routes::admin_expire,
        routes::openapi,
    ),
    components(schemas(
        Summary, CostCheck, PricingMode, ConsumeBody, Receipt, ServicePrice, PriceList, Entry, EntryKind,
        EntryPage, Batch, BatchList, RechargeBody, RechargeReceipt, ExpiryReport, Problem, ProblemExtensions,
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

/// The OpenAPI document.
pub fn document() -> utoipa::openapi::OpenApi {
    let mut doc = ApiDoc::openapi();
    doc.info.version = env!("CARGO_PKG_VERSION").to_owned();
    doc
}

/// The OpenAPI document as pretty JSON with a final newline, as committed in `docs/openapi.json`.
pub fn document_json() -> String {
    let mut text = document()
        .to_pretty_json()
        .expect("the OpenAPI document serialises");
    text.push('\n');
    text
}
