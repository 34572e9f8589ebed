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
