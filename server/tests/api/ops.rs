use std::collections::BTreeSet;

use reqwest::Method;
use serde_json::{Value, json};

use crate::backend_tests;
use crate::common::{Backend, TestServer, json_of};

backend_tests!(
    liveness_and_readiness,
    metrics_use_documented_names_and_route_templates,
    request_ids,
    openapi_matches_the_routes,
    made_up_methods_share_one_label
);

async fn liveness_and_readiness(backend: Backend) {
    let Some(srv) = TestServer::start(backend, |_| {}).await else {
        return;
    };
    let (status, live) = json_of(srv.client.get(srv.url("/health")).send().await.unwrap()).await;
    assert_eq!((status, live), (200, json!({"status": "ok"})));
    let (status, ready) =
        json_of(srv.client.get(srv.url("/api/health")).send().await.unwrap()).await;
    assert_eq!(status, 200, "{ready}");
    assert_eq!(ready["status"], "ready");
    assert_eq!(ready["draining"], false);
    assert_eq!(ready["database"]["status"], "up");
    let backend_name = if backend == Backend::Sqlite {
        "sqlite"
    } else {
        "postgres"
    };
    assert_eq!(ready["database"]["backend"], backend_name);
    assert!(ready["database"]["connections_max"].as_u64().unwrap() >= 1);
    assert_eq!(ready["cache"]["status"], "up");
    // Anyone may call readiness: a burst of callers shares one database check (its
    // measured latency is the same number in every answer within the second).
    let latencies: Vec<serde_json::Value> =
        futures_util::future::join_all((0..20).map(|_| async {
            let (_, ready) =
                json_of(srv.client.get(srv.url("/api/health")).send().await.unwrap()).await;
            ready["database"]["latency_ms"].clone()
        }))
        .await;
    let distinct: std::collections::HashSet<String> =
        latencies.iter().map(ToString::to_string).collect();
    assert!(
        distinct.len() <= 2,
        "{} database checks for 20 callers",
        distinct.len()
    );
    srv.stop().await.unwrap();
}

async fn metrics_use_documented_names_and_route_templates(backend: Backend) {
    let Some(srv) = TestServer::start(backend, |_| {}).await else {
        return;
    };
    let key = srv.tenant("A").await;
    let invoice = srv
        .invoice(&key, json!({"customer": "A", "amount_cents": 1}))
        .await;
    srv.get(&format!("/api/invoices/{}", invoice["id"]), &key)
        .await;
    srv.get("/api/invoices/987654", &key).await;
    srv.get("/api/dashboard", &key).await;
    srv.get("/no/such/path/12345", &key).await;

    let response = srv
        .client
        .get(srv.url("/api/metrics"))
        .send()
        .await
        .unwrap();
    assert!(
        response.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/plain")
    );
    let text = response.text().await.unwrap();
    for name in [
        "http_server_request_duration_seconds_bucket",
        "http_server_request_duration_seconds_sum",
        "http_server_request_duration_seconds_count",
        "http_server_active_requests",
        "cache_requests_total",
        "db_client_connection_count{state=\"idle\"}",
        "db_client_connection_count{state=\"used\"}",
        "db_client_connection_max",
        "rate_limited_requests_total",
        "http_server_shed_requests_total",
        "process_cpu_seconds_total",
        "process_resident_memory_bytes",
    ] {
        assert!(text.contains(name), "missing {name}");
    }
    let durations: Vec<&str> = text
        .lines()
        .filter(|l| l.starts_with("http_server_request_duration_seconds_count"))
        .collect();
    let has = |route: &str, status: &str| {
        durations.iter().any(|l| {
            l.contains(&format!("http_route=\"{route}\""))
                && l.contains(&format!("http_response_status_code=\"{status}\""))
        })
    };
    assert!(has("/api/invoices/{id}", "200"), "{durations:#?}");
    assert!(has("/api/invoices/{id}", "404"));
    assert!(has("unmatched", "404"));
    assert!(
        durations
            .iter()
            .all(|l| !l.contains("987654") && !l.contains("12345")),
        "raw paths leaked into labels"
    );
    assert!(
        durations
            .iter()
            .any(|l| l.contains("http_request_method=\"POST\""))
    );
    srv.stop().await.unwrap();
}

async fn request_ids(backend: Backend) {
    let Some(srv) = TestServer::start(backend, |_| {}).await else {
        return;
    };
    let given = srv
        .client
        .get(srv.url("/health"))
        .header("x-request-id", "trace-me-42")
        .send()
        .await
        .unwrap();
    assert_eq!(given.headers()["x-request-id"], "trace-me-42");
    let generated = srv.client.get(srv.url("/health")).send().await.unwrap();
    let id = generated.headers()["x-request-id"]
        .to_str()
        .unwrap()
        .to_owned();
    assert_eq!(id.len(), 36, "a UUID is generated: {id}");
    let again = srv.client.get(srv.url("/health")).send().await.unwrap();
    assert_ne!(again.headers()["x-request-id"].to_str().unwrap(), id);
    // An absurdly long client id is replaced, not echoed into logs and responses.
    let long = "x".repeat(500);
    let replaced = srv
        .client
        .get(srv.url("/health"))
        .header("x-request-id", &long)
        .send()
        .await
        .unwrap();
    assert_eq!(
        replaced.headers()["x-request-id"].to_str().unwrap().len(),
        36
    );
    // Error responses carry it too.
    let missing = srv
        .client
        .get(srv.url("/nope"))
        .header("x-request-id", "err-7")
        .send()
        .await
        .unwrap();
    assert_eq!(
        (
            missing.status().as_u16(),
            missing.headers()["x-request-id"].to_str().unwrap()
        ),
        (404, "err-7")
    );
    srv.stop().await.unwrap();
}

/// The documented contract of the API (the server issue's list of endpoints).
const EXPECTED_ROUTES: &[(&str, &str)] = &[
    ("GET", "/health"),
    ("GET", "/api/health"),
    ("GET", "/api/metrics"),
    ("GET", "/api/openapi.json"),
    ("POST", "/api/admin/tenants"),
    ("POST", "/api/admin/tenants/{id}/key"),
    ("DELETE", "/api/admin/tenants/{id}/key"),
    ("GET", "/api/invoices"),
    ("POST", "/api/invoices"),
    ("POST", "/api/invoices/bulk"),
    ("GET", "/api/invoices/{id}"),
    ("PATCH", "/api/invoices/{id}"),
    ("DELETE", "/api/invoices/{id}"),
    ("GET", "/api/jobs"),
    ("POST", "/api/jobs"),
    ("GET", "/api/jobs/{id}"),
    ("PATCH", "/api/jobs/{id}"),
    ("GET", "/api/dashboard"),
    ("GET", "/api/users/{user_id}/preferences"),
    ("PUT", "/api/users/{user_id}/preferences"),
];

async fn openapi_matches_the_routes(backend: Backend) {
    let Some(srv) = TestServer::start(backend, |_| {}).await else {
        return;
    };
    let key = srv.tenant("A").await;
    let (status, doc) = json_of(
        srv.client
            .get(srv.url("/api/openapi.json"))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(status, 200);
    assert!(doc["openapi"].as_str().unwrap().starts_with("3."));

    let mut documented = BTreeSet::new();
    for (path, item) in doc["paths"].as_object().unwrap() {
        for method in item.as_object().unwrap().keys() {
            if ["get", "post", "put", "patch", "delete"].contains(&method.as_str()) {
                documented.insert((method.to_uppercase(), path.clone()));
            }
        }
    }
    let expected: BTreeSet<(String, String)> = EXPECTED_ROUTES
        .iter()
        .map(|(m, p)| ((*m).to_owned(), (*p).to_owned()))
        .collect();
    assert_eq!(
        documented, expected,
        "the document lists exactly the API's routes"
    );

    // Every answer the layers around a handler can give is documented, with the error
    // body: the key check and rate limit on tenant routes, body extraction on writes,
    // shedding on everything but the operational routes.
    let responses = |method: &str, path: &str| doc["paths"][path][method]["responses"].clone();
    let statuses = |method: &str, path: &str| -> BTreeSet<String> {
        responses(method, path)
            .as_object()
            .unwrap()
            .keys()
            .cloned()
            .collect()
    };
    let has = |method: &str, path: &str, wanted: &[&str]| {
        let got = statuses(method, path);
        for status in wanted {
            assert!(
                got.contains(*status),
                "{method} {path} lacks {status}: {got:?}"
            );
        }
    };
    has(
        "post",
        "/api/invoices",
        &[
            "201", "400", "401", "413", "415", "422", "429", "500", "503",
        ],
    );
    has(
        "get",
        "/api/invoices/{id}",
        &["200", "400", "401", "404", "429", "503"],
    );
    has(
        "put",
        "/api/users/{user_id}/preferences",
        &["400", "401", "415", "422", "429"],
    );
    has(
        "post",
        "/api/admin/tenants",
        &["201", "401", "403", "415", "422", "503"],
    );
    assert!(
        !statuses("get", "/health").contains("503"),
        "liveness is never shed"
    );
    assert_eq!(
        responses("post", "/api/invoices")["415"]["content"]["application/json"]["schema"]["$ref"],
        "#/components/schemas/ErrorResponse"
    );
    assert!(responses("get", "/api/dashboard")["429"]["headers"]["Retry-After"].is_object());
    assert_eq!(
        doc["components"]["securitySchemes"]["api_key"]["scheme"], "bearer",
        "{}",
        doc["components"]
    );

    // Every documented route is served: the router knows it (no route_not_found, no 405).
    for (method, path) in &documented {
        let concrete = path.replace("{id}", "1").replace("{user_id}", "u1");
        let method = Method::from_bytes(method.as_bytes()).unwrap();
        let (status, body) = json_of(
            srv.request(method.clone(), &concrete, &key)
                .json(&json!({}))
                .send()
                .await
                .unwrap(),
        )
        .await;
        let code = body["error"]["code"].as_str().unwrap_or_default();
        assert!(
            status != 405 && code != "route_not_found",
            "{method} {concrete}: {status} {body}"
        );
    }
    // And routes outside the document are not served.
    for (method, path) in [
        (Method::DELETE, "/api/jobs/1"),
        (Method::DELETE, "/api/dashboard"),
        (Method::GET, "/api/tenants"),
    ] {
        let status = srv
            .request(method.clone(), path, &key)
            .send()
            .await
            .unwrap()
            .status()
            .as_u16();
        assert!(
            status == 404 || status == 405,
            "{method} {path} answered {status}"
        );
    }

    // Every schema a route refers to is defined, with its real fields.
    let schemas = &doc["components"]["schemas"];
    for name in [
        "Invoice",
        "NewInvoice",
        "InvoicePatch",
        "Job",
        "NewJob",
        "Dashboard",
        "Preferences",
        "ErrorResponse",
    ] {
        assert!(schemas[name].is_object(), "schema {name} missing");
    }
    let invoice_fields: BTreeSet<&str> = schemas["Invoice"]["properties"]
        .as_object()
        .unwrap()
        .keys()
        .map(String::as_str)
        .collect();
    let invoice = srv
        .invoice(&key, json!({"customer": "A", "amount_cents": 1}))
        .await;
    let actual: BTreeSet<&str> = invoice
        .as_object()
        .unwrap()
        .keys()
        .map(String::as_str)
        .collect();
    assert_eq!(
        invoice_fields, actual,
        "the Invoice schema matches a real invoice"
    );
    let refs = collect_refs(&doc);
    for reference in refs {
        let name = reference.trim_start_matches("#/components/schemas/");
        assert!(schemas[name].is_object(), "dangling $ref {reference}");
    }
    srv.stop().await.unwrap();
}

fn collect_refs(value: &Value) -> Vec<String> {
    match value {
        Value::Object(map) => map
            .iter()
            .flat_map(|(k, v)| {
                if k == "$ref" {
                    v.as_str().map(str::to_owned).into_iter().collect()
                } else {
                    collect_refs(v)
                }
            })
            .collect(),
        Value::Array(items) => items.iter().flat_map(collect_refs).collect(),
        _ => Vec::new(),
    }
}

/// OpenTelemetry's rule for `http_request_method`: known methods by name, any other
/// `_OTHER`, so a client inventing methods cannot grow the metric's series.
async fn made_up_methods_share_one_label(backend: Backend) {
    let Some(srv) = TestServer::start(backend, |_| {}).await else {
        return;
    };
    let series = |text: &str| {
        text.lines()
            .filter(|l| l.starts_with("http_server_request_duration_seconds_count"))
            .count()
    };
    // Warm up the labels a normal request creates.
    srv.client.get(srv.url("/nope")).send().await.unwrap();
    let before = series(&srv.metrics().await);
    for i in 0..50 {
        let method = reqwest::Method::from_bytes(format!("M{i}X").as_bytes()).unwrap();
        let response = srv
            .client
            .request(method, srv.url("/nope"))
            .send()
            .await
            .unwrap();
        assert!(response.status().is_client_error());
    }
    let text = srv.metrics().await;
    assert!(text.contains("http_request_method=\"_OTHER\""), "{text}");
    assert!(!text.contains("M7X"));
    assert!(series(&text) <= before + 2, "made-up methods added series");
    srv.stop().await.unwrap();
}
