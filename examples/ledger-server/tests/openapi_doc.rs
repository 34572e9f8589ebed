//! `docs/openapi.json` is the generated document, never edited by hand: this test regenerates it
//! and fails when the committed file was out of date.

use std::path::PathBuf;

#[test]
fn committed_openapi_document_is_current() {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../docs/openapi.json");
    let generated = points_ledger::openapi::document_json();
    let committed = std::fs::read_to_string(&path).unwrap_or_default();
    if committed != generated {
        std::fs::write(&path, &generated).expect("write docs/openapi.json");
        panic!(
            "docs/openapi.json was out of date and has been regenerated from the code: review and commit it"
        );
    }
}

#[test]
fn document_is_openapi_3_1_with_both_security_schemes() {
    let doc: serde_json::Value =
        serde_json::from_str(&points_ledger::openapi::document_json()).unwrap();
    assert!(doc["openapi"].as_str().unwrap().starts_with("3.1"));
    assert_eq!(
        doc["components"]["securitySchemes"]["bearer"]["scheme"],
        "bearer"
    );
    assert_eq!(
        doc["components"]["securitySchemes"]["admin_key"]["name"],
        "X-Admin-Key"
    );
    let consume = &doc["paths"]["/points/consume"]["post"];
    for status in ["200", "400", "401", "402", "409", "422"] {
        assert!(
            consume["responses"][status].is_object(),
            "consume lacks {status}"
        );
    }
    assert!(doc["paths"]["/openapi.json"]["get"]["security"].is_null());
}

#[test]
fn balance_cost_and_receipt_name_the_account() {
    let doc: serde_json::Value =
        serde_json::from_str(&points_ledger::openapi::document_json()).unwrap();
    for schema in ["Summary", "CostCheck", "Receipt"] {
        let schema = &doc["components"]["schemas"][schema];
        assert_eq!(
            schema["properties"]["user_id"]["type"], "string",
            "{schema}"
        );
        assert_eq!(
            schema["properties"]["user_id"]["format"], "uuid",
            "{schema}"
        );
        assert!(
            schema["required"]
                .as_array()
                .unwrap()
                .contains(&serde_json::json!("user_id")),
            "{schema}"
        );
    }
}

#[test]
fn document_names_the_services_of_the_price_table_it_serves() {
    let table = points_ledger::PriceTable::from_yaml(
        "services:\n  dub: { mode: duration, points_per_second: 2 }\n  logo: { mode: fixed, points: 3 }\n  ping: { mode: free }\n",
        "t",
    )
    .unwrap();
    let doc = points_ledger::openapi::document_for(&table);
    let cost = doc["paths"]["/points/cost"]["get"]["parameters"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["name"] == "service")
        .unwrap()
        .clone();
    assert_eq!(
        cost["schema"]["enum"],
        serde_json::json!(["dub", "logo", "ping"])
    );
    let branches = doc["components"]["schemas"]["ConsumeBody"]["oneOf"]
        .as_array()
        .unwrap();
    assert_eq!(branches.len(), 2);
    assert_eq!(
        branches[0]["properties"]["service"]["enum"],
        serde_json::json!(["dub"])
    );
    assert_eq!(
        branches[0]["required"],
        serde_json::json!(["service", "duration"])
    );
    assert_eq!(branches[0]["properties"]["duration"]["maximum"], 86400.0);
    assert_eq!(
        branches[1]["properties"]["service"]["enum"],
        serde_json::json!(["logo", "ping"])
    );
}

#[test]
fn key_namespaces_and_retention_are_stated() {
    let doc: serde_json::Value =
        serde_json::from_str(&points_ledger::openapi::document_json()).unwrap();
    let overview = doc["info"]["description"].as_str().unwrap();
    assert!(overview.contains("for ever"), "{overview}");
    assert!(overview.contains("separate namespaces"), "{overview}");
    for (path, scope) in [
        ("/points/consume", "to consumes"),
        ("/admin/recharge", "to recharges"),
    ] {
        let key = doc["paths"][path]["post"]["parameters"]
            .as_array()
            .unwrap()
            .iter()
            .find(|p| p["name"] == "Idempotency-Key")
            .unwrap();
        let text = key["description"].as_str().unwrap();
        assert!(
            text.contains(scope) && text.contains("kept for ever"),
            "{path}: {text}"
        );
    }
}

#[test]
fn the_reference_limit_is_stated() {
    let doc: serde_json::Value =
        serde_json::from_str(&points_ledger::openapi::document_json()).unwrap();
    for branch in doc["components"]["schemas"]["ConsumeBody"]["oneOf"]
        .as_array()
        .unwrap()
    {
        let reference = &branch["properties"]["reference"];
        assert_eq!(
            reference["maxLength"].as_u64(),
            Some(points_ledger::ledger::MAX_REFERENCE_CHARS as u64),
            "{reference}"
        );
    }
    let consume = doc["paths"]["/points/consume"]["post"]["responses"]["422"]["description"]
        .as_str()
        .unwrap();
    assert!(consume.contains("reference_too_long"), "{consume}");
}

#[test]
fn the_allowance_routes_and_limits_are_stated() {
    let doc: serde_json::Value =
        serde_json::from_str(&points_ledger::openapi::document_json()).unwrap();
    let issue = &doc["paths"]["/points/allowance"]["post"];
    for status in ["200", "400", "401", "501"] {
        assert!(
            issue["responses"][status].is_object(),
            "allowance lacks {status}"
        );
    }
    assert!(doc["paths"]["/points/allowance-keys"]["get"]["responses"]["200"].is_object());
    let device = &doc["components"]["schemas"]["AllowanceBody"]["properties"]["device_id"];
    assert_eq!(device["maxLength"], 128);
    assert_eq!(device["pattern"], "^[A-Za-z0-9._:-]+$");
    let text = issue["description"].as_str().unwrap();
    for limit in ["cap 100", "259200 s", "2592000 s"] {
        assert!(text.contains(limit), "{limit}: {text}");
    }
    let consume = doc["paths"]["/points/consume"]["post"]["responses"]["422"]["description"]
        .as_str()
        .unwrap();
    for code in [
        "allowance_not_found",
        "allowance_expired",
        "allowance_exhausted",
    ] {
        assert!(consume.contains(code), "{consume}");
    }
    for branch in doc["components"]["schemas"]["ConsumeBody"]["oneOf"]
        .as_array()
        .unwrap()
    {
        assert_eq!(branch["properties"]["allowance_id"]["format"], "uuid");
    }
}
