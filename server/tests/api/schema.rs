//! The OpenAPI document states the rules the API applies: a request valid by the
//! document is accepted and one it rules out is refused, for the constraints JSON
//! Schema can express (text fields, user ids, page sizes, cursors, bulk sizes).
//! Cross-field rules (`due_on` not before `issued_on`) are stated in descriptions.

use regex::Regex;
use reqwest::Method;
use serde_json::{Value, json};

use crate::common::{Backend, TestServer};

/// Strings on both sides of the text rule: control characters (C0, DEL, C1) anywhere,
/// white space only, and ordinary text with inner and outer spaces.
const TEXT_PROBES: &[&str] = &[
    "Acme",
    "  Acme Ltd  ",
    "Müller & Söhne",
    "",
    "   ",
    "\t",
    "a\u{7}b",
    "line\nbreak",
    "x\u{7f}",
    "\u{90}x",
    "\u{85}",
    "\u{a0}x",
];

/// What the document says of a schema's property (`components.schemas.NAME`).
fn property<'a>(doc: &'a Value, schema: &str, name: &str) -> &'a Value {
    &doc["components"]["schemas"][schema]["properties"][name]
}

/// The schema of `operation`'s parameter `name` (e.g. `paths./api/jobs.get`).
fn parameter<'a>(doc: &'a Value, path: &str, method: &str, name: &str) -> &'a Value {
    doc["paths"][path][method]["parameters"]
        .as_array()
        .and_then(|params| params.iter().find(|p| p["name"] == name))
        .map(|param| &param["schema"])
        .unwrap_or(&Value::Null)
}

fn regex_of(schema: &Value) -> Regex {
    let pattern = schema["pattern"]
        .as_str()
        .unwrap_or_else(|| panic!("no pattern in {schema}"));
    Regex::new(pattern).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_documented_constraints_are_the_ones_the_api_applies() {
    let Some(srv) = TestServer::start(Backend::Sqlite, |_| {}).await else {
        return;
    };
    let key = srv.tenant("Schema").await;
    let (status, doc) = srv.get("/api/openapi.json", &key).await;
    assert_eq!(status, 200);

    // Every free-text field of every request body carries one and the same pattern.
    let text_fields = [
        ("NewInvoice", "customer"),
        ("InvoicePatch", "customer"),
        ("NewJob", "customer"),
        ("NewJob", "title"),
        ("JobPatch", "customer"),
        ("JobPatch", "title"),
    ];
    let patterns: Vec<&str> = text_fields
        .iter()
        .map(|(schema, name)| {
            property(&doc, schema, name)["pattern"]
                .as_str()
                .unwrap_or_else(|| panic!("{schema}.{name} has no pattern"))
        })
        .collect();
    assert!(
        patterns.windows(2).all(|pair| pair[0] == pair[1]),
        "{patterns:?}"
    );
    let text = regex_of(property(&doc, "NewJob", "title"));
    for probe in TEXT_PROBES {
        let (job, _) = srv
            .send(
                Method::POST,
                "/api/jobs",
                &key,
                json!({"customer": "C", "title": probe, "scheduled_on": "2026-12-01"}),
            )
            .await;
        let (invoice, _) = srv
            .send(
                Method::POST,
                "/api/invoices",
                &key,
                json!({"customer": probe, "amount_cents": 100}),
            )
            .await;
        let documented = text.is_match(probe);
        assert_eq!(job == 201, documented, "job title {probe:?}: {job}");
        assert_eq!(
            invoice == 201,
            documented,
            "invoice customer {probe:?}: {invoice}"
        );
    }

    // User ids in the preferences path.
    let user_id = regex_of(parameter(
        &doc,
        "/api/users/{user_id}/preferences",
        "get",
        "user_id",
    ));
    let long = "u".repeat(65);
    for probe in [
        "alice",
        "bob.smith@example.com",
        "a-b_c",
        "é",
        "a%20b",
        &long,
    ] {
        let (status, _) = srv
            .get(&format!("/api/users/{probe}/preferences"), &key)
            .await;
        // `a%20b` reaches the server as "a b".
        let decoded = probe.replace("%20", " ");
        assert_eq!(
            status == 200,
            user_id.is_match(&decoded),
            "user id {probe:?}: {status}"
        );
    }

    // Page sizes and cursors of both lists.
    for list in ["/api/invoices", "/api/jobs"] {
        let limit = parameter(&doc, list, "get", "limit");
        let (low, high) = (limit["minimum"].as_i64(), limit["maximum"].as_i64());
        assert_eq!((low, high), (Some(1), Some(200)), "{list} limit: {limit}");
        for (size, documented) in [(0, false), (1, true), (200, true), (201, false)] {
            let (status, _) = srv.get(&format!("{list}?limit={size}"), &key).await;
            assert_eq!(status == 200, documented, "{list}?limit={size}: {status}");
        }
        let cursor = regex_of(parameter(&doc, list, "get", "cursor"));
        let (_, page) = srv.get(&format!("{list}?limit=1"), &key).await;
        let next = page["next_cursor"]
            .as_str()
            .expect("two rows, so a next page");
        assert!(cursor.is_match(next), "{list}: {next:?} is not documented");
        assert!(!cursor.is_match(""));
    }

    // Bulk sizes.
    let invoices = property(&doc, "BulkInvoices", "invoices");
    let (min, max) = (invoices["minItems"].as_u64(), invoices["maxItems"].as_u64());
    assert_eq!((min, max), (Some(1), Some(1000)), "{invoices}");
    let item = json!({"customer": "C", "amount_cents": 1});
    for (count, documented) in [(0, false), (1, true), (1000, true), (1001, false)] {
        let body = json!({ "invoices": vec![item.clone(); count] });
        let (status, answer) = srv
            .send(Method::POST, "/api/invoices/bulk", &key, body)
            .await;
        assert_eq!(
            status == 201,
            documented,
            "{count} invoices: {status} {answer}"
        );
    }
    srv.stop().await.unwrap();
}
