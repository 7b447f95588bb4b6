use reqwest::Method;
use serde_json::{Value, json};

use crate::backend_tests;
use crate::common::{Backend, TestServer, error_code};

backend_tests!(
    invoice_crud,
    invoice_filters_and_pagination,
    bulk_is_all_or_nothing
);

async fn invoice_crud(backend: Backend) {
    let Some(srv) = TestServer::start(backend, |_| {}).await else {
        return;
    };
    let key = srv.tenant("Acme").await;

    let response = srv
        .request(Method::POST, "/api/invoices", &key)
        .json(&json!({"customer": " ABC Ltd ", "amount_cents": 12_500, "currency": "EUR", "status": "sent",
                      "issued_on": "2026-11-01", "due_on": "2026-12-01"}))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 201);
    let location = response.headers()["location"].to_str().unwrap().to_owned();
    let created: Value = response.json().await.unwrap();
    let id = created["id"].as_i64().unwrap();
    assert_eq!(location, format!("/api/invoices/{id}"));
    assert_eq!(created["customer"], "ABC Ltd", "customer is trimmed");
    assert_eq!(created["amount_cents"], 12_500);
    assert_eq!(created["paid_at"], Value::Null);

    let (status, fetched) = srv.get(&location, &key).await;
    assert_eq!(status, 200);
    assert_eq!(fetched, created);

    // Paying sets paid_at; a later unrelated change keeps it.
    let (status, paid) = srv
        .send(Method::PATCH, &location, &key, json!({"status": "paid"}))
        .await;
    assert_eq!(status, 200, "{paid}");
    assert_eq!(paid["status"], "paid");
    let paid_at = paid["paid_at"].as_str().expect("paid_at set").to_owned();
    let (_, renamed) = srv
        .send(
            Method::PATCH,
            &location,
            &key,
            json!({"customer": "ABC Limited"}),
        )
        .await;
    assert_eq!(renamed["paid_at"], paid_at.as_str());
    assert_eq!(renamed["amount_cents"], 12_500, "untouched fields stay");

    // Defaults: USD, draft, due 30 days after issue.
    let defaults = srv
        .invoice(
            &key,
            json!({"customer": "XYZ", "amount_cents": 0, "issued_on": "2026-01-31"}),
        )
        .await;
    assert_eq!(
        (defaults["currency"].as_str(), defaults["status"].as_str()),
        (Some("USD"), Some("draft"))
    );
    assert_eq!(defaults["due_on"], "2026-03-02");

    let response = srv
        .request(Method::DELETE, &location, &key)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 204);
    let (status, body) = srv.get(&location, &key).await;
    assert_eq!((status, error_code(&body)), (404, "not_found"));
    let response = srv
        .request(Method::DELETE, &location, &key)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 404);

    // A deleted id is never reused.
    let next = srv
        .invoice(&key, json!({"customer": "New", "amount_cents": 1}))
        .await;
    assert!(next["id"].as_i64().unwrap() > defaults["id"].as_i64().unwrap());
    srv.stop().await.unwrap();
}

async fn invoice_filters_and_pagination(backend: Backend) {
    let Some(srv) = TestServer::start(backend, |_| {}).await else {
        return;
    };
    let key = srv.tenant("Acme").await;
    let mut ids = Vec::new();
    for i in 0..7 {
        let customer = if i % 2 == 0 { "Even Co" } else { "Odd Co" };
        let status = if i < 3 { "paid" } else { "sent" };
        let invoice = srv
            .invoice(
                &key,
                json!({"customer": customer, "amount_cents": 100 * i, "status": status}),
            )
            .await;
        ids.push(invoice["id"].as_i64().unwrap());
    }

    let (_, page) = srv.get("/api/invoices?customer=Even%20Co", &key).await;
    assert_eq!(page["items"].as_array().unwrap().len(), 4);
    assert!(
        page["items"]
            .as_array()
            .unwrap()
            .iter()
            .all(|i| i["customer"] == "Even Co")
    );
    let (_, page) = srv
        .get("/api/invoices?status=paid&customer=Odd%20Co", &key)
        .await;
    assert_eq!(page["items"].as_array().unwrap().len(), 1);

    // Walk all pages of 3: newest first, each id exactly once, then no cursor.
    let mut seen = Vec::new();
    let mut path = "/api/invoices?limit=3".to_owned();
    for _ in 0..10 {
        let (status, page) = srv.get(&path, &key).await;
        assert_eq!(status, 200, "{page}");
        seen.extend(
            page["items"]
                .as_array()
                .unwrap()
                .iter()
                .map(|i| i["id"].as_i64().unwrap()),
        );
        match page["next_cursor"].as_str() {
            Some(cursor) => path = format!("/api/invoices?limit=3&cursor={cursor}"),
            None => break,
        }
    }
    ids.reverse();
    assert_eq!(seen, ids);

    for bad in [
        "/api/invoices?cursor=nonsense",
        "/api/invoices?limit=201",
        "/api/invoices?limit=0",
    ] {
        let (status, body) = srv.get(bad, &key).await;
        assert_eq!(status, 400, "{bad}: {body}");
        error_code(&body);
    }
    srv.stop().await.unwrap();
}

async fn bulk_is_all_or_nothing(backend: Backend) {
    let Some(srv) = TestServer::start(backend, |_| {}).await else {
        return;
    };
    let key = srv.tenant("Acme").await;
    let good = |i: usize| json!({"customer": format!("C{i}"), "amount_cents": i});

    let mut items: Vec<Value> = (0..3).map(good).collect();
    items.push(json!({"customer": "Bad", "amount_cents": -5}));
    let (status, body) = srv
        .send(
            Method::POST,
            "/api/invoices/bulk",
            &key,
            json!({"invoices": items}),
        )
        .await;
    assert_eq!((status, error_code(&body)), (422, "validation_failed"));
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("invoices[3].amount_cents"),
        "{body}"
    );
    let (_, page) = srv.get("/api/invoices", &key).await;
    assert_eq!(
        page["items"].as_array().unwrap().len(),
        0,
        "a rejected bulk request writes nothing"
    );

    let items: Vec<Value> = (0..1000).map(good).collect();
    let (status, body) = srv
        .send(
            Method::POST,
            "/api/invoices/bulk",
            &key,
            json!({"invoices": items}),
        )
        .await;
    assert_eq!(status, 201, "{body}");
    assert_eq!(body["created"], 1000);
    assert_eq!(body["ids"].as_array().unwrap().len(), 1000);
    let (_, dashboard) = srv.get("/api/dashboard", &key).await;
    assert_eq!(dashboard["invoices_by_status"]["draft"], 1000);

    let items: Vec<Value> = (0..1001).map(good).collect();
    let (status, body) = srv
        .send(
            Method::POST,
            "/api/invoices/bulk",
            &key,
            json!({"invoices": items}),
        )
        .await;
    assert_eq!((status, error_code(&body)), (422, "validation_failed"));
    let (status, body) = srv
        .send(
            Method::POST,
            "/api/invoices/bulk",
            &key,
            json!({"invoices": []}),
        )
        .await;
    assert_eq!((status, error_code(&body)), (422, "validation_failed"));

    // Over the bulk body limit (4 MiB by default): 413, nothing written.
    let huge: Vec<Value> = (0..900)
        .map(|i| json!({"customer": "x".repeat(5000), "amount_cents": i}))
        .collect();
    let (status, body) = srv
        .send(
            Method::POST,
            "/api/invoices/bulk",
            &key,
            json!({"invoices": huge}),
        )
        .await;
    assert_eq!((status, error_code(&body)), (413, "payload_too_large"));
    let (_, dashboard) = srv.get("/api/dashboard", &key).await;
    assert_eq!(dashboard["invoices_by_status"]["draft"], 1000);
    srv.stop().await.unwrap();
}
