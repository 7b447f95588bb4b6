use reqwest::Method;
use serde_json::json;

use crate::backend_tests;
use crate::common::{Backend, TestServer};

backend_tests!(reads_are_cached_and_writes_invalidate);

async fn reads_are_cached_and_writes_invalidate(backend: Backend) {
    let Some(srv) = TestServer::start(backend, |_| {}).await else {
        return;
    };
    let key = srv.tenant("Acme").await;
    srv.invoice(
        &key,
        json!({"customer": "A", "amount_cents": 100, "status": "sent"}),
    )
    .await;

    let hits = |cache: &'static str| {
        let srv = &srv;
        async move {
            srv.metric(
                "cache_requests_total",
                &[&format!("cache=\"{cache}\""), "result=\"hit\""],
            )
            .await
        }
    };
    let (_, first) = srv.get("/api/dashboard", &key).await;
    let before = hits("dashboard").await;
    let (_, second) = srv.get("/api/dashboard", &key).await;
    assert_eq!(first, second, "a cached read returns the same body");
    assert_eq!(hits("dashboard").await, before + 1.0);

    // A write is visible in the very next list and dashboard read.
    srv.get("/api/invoices", &key).await;
    srv.invoice(
        &key,
        json!({"customer": "B", "amount_cents": 50, "status": "sent"}),
    )
    .await;
    let (_, list) = srv.get("/api/invoices", &key).await;
    assert_eq!(list["items"].as_array().unwrap().len(), 2);
    let (_, dashboard) = srv.get("/api/dashboard", &key).await;
    assert_eq!(dashboard["outstanding"][0]["amount_cents"], 150);

    // Patch and delete invalidate too.
    let id = list["items"][0]["id"].as_i64().unwrap();
    srv.send(
        Method::PATCH,
        &format!("/api/invoices/{id}"),
        &key,
        json!({"status": "paid"}),
    )
    .await;
    let (_, dashboard) = srv.get("/api/dashboard", &key).await;
    assert_eq!(dashboard["outstanding"][0]["amount_cents"], 100);
    srv.request(Method::DELETE, &format!("/api/invoices/{id}"), &key)
        .send()
        .await
        .unwrap();
    let (_, list) = srv.get("/api/invoices", &key).await;
    assert_eq!(list["items"].as_array().unwrap().len(), 1);

    // Jobs and preferences follow the same rule.
    srv.get("/api/jobs", &key).await;
    srv.send(
        Method::POST,
        "/api/jobs",
        &key,
        json!({"customer": "A", "title": "T", "scheduled_on": "2026-12-01"}),
    )
    .await;
    let (_, jobs) = srv.get("/api/jobs", &key).await;
    assert_eq!(jobs["items"].as_array().unwrap().len(), 1);
    let (_, dashboard) = srv.get("/api/dashboard", &key).await;
    assert_eq!(dashboard["jobs_by_status"]["scheduled"], 1);
    let list_hits = hits("invoice_list").await;
    srv.get("/api/invoices", &key).await;
    assert_eq!(
        hits("invoice_list").await,
        list_hits + 1.0,
        "an unchanged list is served from cache"
    );
    srv.stop().await.unwrap();
}
