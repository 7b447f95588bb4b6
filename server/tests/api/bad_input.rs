//! No client input may produce a 500 or a panic: each bad request gets its 4xx and a
//! JSON error saying what is wrong.

use reqwest::Method;
use serde_json::json;

use crate::backend_tests;
use crate::common::{Backend, TestServer, error_code, json_of};

backend_tests!(
    bad_requests_get_clear_4xx,
    a_nul_in_a_filter_is_not_a_busy_database
);

async fn bad_requests_get_clear_4xx(backend: Backend) {
    let Some(srv) = TestServer::start(backend, |_| {}).await else {
        return;
    };
    let key = srv.tenant("A").await;
    let invoice = srv.invoice(&key, json!({"customer": "A", "amount_cents": 1, "issued_on": "2026-11-01", "due_on": "2026-11-30"})).await;
    let invoice_path = format!("/api/invoices/{}", invoice["id"]);

    let raw = |method: Method, path: &str, content_type: Option<&str>, body: String| {
        let mut request = srv.request(method, path, &key).body(body);
        if let Some(content_type) = content_type {
            request = request.header("content-type", content_type);
        }
        async move { json_of(request.send().await.unwrap()).await }
    };
    let json_ct = Some("application/json");
    let cases: Vec<(&str, (u16, serde_json::Value), u16, &str)> = vec![
        (
            "malformed JSON",
            raw(
                Method::POST,
                "/api/invoices",
                json_ct,
                "{\"customer\": ".into(),
            )
            .await,
            400,
            "malformed_json",
        ),
        (
            "wrong type",
            raw(
                Method::POST,
                "/api/invoices",
                json_ct,
                r#"{"customer":"A","amount_cents":"ten"}"#.into(),
            )
            .await,
            422,
            "validation_failed",
        ),
        (
            "missing field",
            raw(
                Method::POST,
                "/api/invoices",
                json_ct,
                r#"{"customer":"A"}"#.into(),
            )
            .await,
            422,
            "validation_failed",
        ),
        (
            "unknown field",
            raw(
                Method::POST,
                "/api/invoices",
                json_ct,
                r#"{"customer":"A","amount_cents":1,"tax":3}"#.into(),
            )
            .await,
            422,
            "validation_failed",
        ),
        (
            "unknown enum",
            raw(
                Method::POST,
                "/api/invoices",
                json_ct,
                r#"{"customer":"A","amount_cents":1,"status":"lost"}"#.into(),
            )
            .await,
            422,
            "validation_failed",
        ),
        (
            "negative amount",
            raw(
                Method::POST,
                "/api/invoices",
                json_ct,
                r#"{"customer":"A","amount_cents":-1}"#.into(),
            )
            .await,
            422,
            "validation_failed",
        ),
        (
            "huge amount",
            raw(
                Method::POST,
                "/api/invoices",
                json_ct,
                r#"{"customer":"A","amount_cents":99999999999999999999}"#.into(),
            )
            .await,
            422,
            "validation_failed",
        ),
        (
            "bad date",
            raw(
                Method::POST,
                "/api/invoices",
                json_ct,
                r#"{"customer":"A","amount_cents":1,"due_on":"2026-02-30"}"#.into(),
            )
            .await,
            422,
            "validation_failed",
        ),
        (
            "empty customer",
            raw(
                Method::POST,
                "/api/invoices",
                json_ct,
                r#"{"customer":" ","amount_cents":1}"#.into(),
            )
            .await,
            422,
            "validation_failed",
        ),
        (
            "bad currency",
            raw(
                Method::POST,
                "/api/invoices",
                json_ct,
                r#"{"customer":"A","amount_cents":1,"currency":"usd"}"#.into(),
            )
            .await,
            422,
            "validation_failed",
        ),
        (
            "no content type",
            raw(
                Method::POST,
                "/api/invoices",
                None,
                r#"{"customer":"A","amount_cents":1}"#.into(),
            )
            .await,
            415,
            "unsupported_media_type",
        ),
        (
            "wrong content type",
            raw(
                Method::POST,
                "/api/invoices",
                Some("text/plain"),
                "hello".into(),
            )
            .await,
            415,
            "unsupported_media_type",
        ),
        (
            "oversized body",
            raw(
                Method::POST,
                "/api/invoices",
                json_ct,
                format!(
                    r#"{{"customer":"{}","amount_cents":1}}"#,
                    "x".repeat(1_100_000)
                ),
            )
            .await,
            413,
            "payload_too_large",
        ),
        (
            "body is an array",
            raw(Method::POST, "/api/jobs", json_ct, "[1,2]".into()).await,
            422,
            "validation_failed",
        ),
        (
            "due before issued",
            raw(
                Method::PATCH,
                &invoice_path,
                json_ct,
                r#"{"due_on":"2026-10-01"}"#.into(),
            )
            .await,
            422,
            "validation_failed",
        ),
        (
            "non-numeric id",
            raw(Method::GET, "/api/invoices/abc", None, String::new()).await,
            400,
            "invalid_path",
        ),
        (
            "id overflow",
            raw(
                Method::GET,
                "/api/invoices/99999999999999999999999",
                None,
                String::new(),
            )
            .await,
            400,
            "invalid_path",
        ),
        (
            "unknown id",
            raw(Method::GET, "/api/invoices/424242", None, String::new()).await,
            404,
            "not_found",
        ),
        (
            "negative id",
            raw(Method::GET, "/api/jobs/-3", None, String::new()).await,
            404,
            "not_found",
        ),
        (
            "bad cursor",
            raw(
                Method::GET,
                "/api/invoices?cursor=%FF%FE",
                None,
                String::new(),
            )
            .await,
            400,
            "invalid_cursor",
        ),
        (
            "unknown query param",
            raw(Method::GET, "/api/invoices?colour=red", None, String::new()).await,
            400,
            "invalid_query",
        ),
        (
            "bad limit type",
            raw(Method::GET, "/api/jobs?limit=many", None, String::new()).await,
            400,
            "invalid_query",
        ),
        (
            "bad date filter",
            raw(Method::GET, "/api/jobs?from=yesterday", None, String::new()).await,
            400,
            "invalid_query",
        ),
        (
            "a date filter past the year 9999",
            raw(
                Method::GET,
                "/api/jobs?to=%2B10000-01-01",
                None,
                String::new(),
            )
            .await,
            400,
            "invalid_query",
        ),
        (
            // chrono parses it; deriving due_on from it used to panic and drop the
            // connection with no answer.
            "an issue date in the year 262142",
            raw(
                Method::POST,
                "/api/invoices",
                json_ct,
                r#"{"customer":"A","amount_cents":1,"issued_on":"+262142-12-31"}"#.into(),
            )
            .await,
            422,
            "validation_failed",
        ),
        (
            "a derived due date past the year 9999",
            raw(
                Method::POST,
                "/api/invoices",
                json_ct,
                r#"{"customer":"A","amount_cents":1,"issued_on":"9999-12-20"}"#.into(),
            )
            .await,
            422,
            "validation_failed",
        ),
        (
            "a year 0 due date in a patch",
            raw(
                Method::PATCH,
                &invoice_path,
                json_ct,
                r#"{"due_on":"0000-06-01"}"#.into(),
            )
            .await,
            422,
            "validation_failed",
        ),
        (
            "a job scheduled in the year 10000",
            raw(
                Method::POST,
                "/api/jobs",
                json_ct,
                r#"{"customer":"A","title":"T","scheduled_on":"+10000-01-01"}"#.into(),
            )
            .await,
            422,
            "validation_failed",
        ),
        (
            "unknown route",
            raw(Method::GET, "/api/nothing", None, String::new()).await,
            404,
            "route_not_found",
        ),
        (
            "wrong method",
            raw(Method::PUT, "/api/invoices", json_ct, "{}".into()).await,
            405,
            "method_not_allowed",
        ),
    ];
    for (what, (status, body), expected_status, expected_code) in cases {
        assert_eq!(status, expected_status, "{what}: {body}");
        assert_eq!(error_code(&body), expected_code, "{what}");
    }
    // None of that changed the stored invoice.
    let (_, stored) = srv.get(&invoice_path, &key).await;
    assert_eq!(stored, invoice);
    srv.stop().await.unwrap();
}

async fn a_nul_in_a_filter_is_not_a_busy_database(backend: Backend) {
    let Some(srv) = TestServer::start(backend, |_| {}).await else {
        return;
    };
    let key = srv.tenant("A").await;
    srv.invoice(&key, json!({"customer": "A", "amount_cents": 1}))
        .await;
    let (status, body) = srv.get("/api/invoices?customer=%00", &key).await;
    match backend {
        // SQLite stores and compares NUL like any character: no invoice has it.
        Backend::Sqlite => {
            assert_eq!(status, 200, "{body}");
            assert_eq!(body["items"], json!([]));
        }
        // PostgreSQL refuses it with SQLSTATE 22021, which the SQLite reading of error
        // codes took for SQLITE_BUSY (503 db_busy).
        Backend::Postgres => {
            assert_eq!(status, 400, "{body}");
            assert_eq!(error_code(&body), "invalid_value");
        }
    }
    srv.stop().await.unwrap();
}
