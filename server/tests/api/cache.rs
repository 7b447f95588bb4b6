use reqwest::Method;
use serde_json::json;

use crate::backend_tests;
use crate::common::{Backend, TestServer};

backend_tests!(
    reads_are_cached_and_writes_invalidate,
    list_pages_survive_unrelated_writes_and_stay_fresh,
    single_reads_are_cached_and_renewed_by_their_writes
);

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

    let (_, first) = srv.get("/api/dashboard", &key).await;
    let before = srv.cache_hits("dashboard").await;
    let (_, second) = srv.get("/api/dashboard", &key).await;
    assert_eq!(first, second, "a cached read returns the same body");
    assert_eq!(srv.cache_hits("dashboard").await, before + 1.0);

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
    let list_hits = srv.cache_hits("invoice_list").await;
    srv.get("/api/invoices", &key).await;
    assert_eq!(
        srv.cache_hits("invoice_list").await,
        list_hits + 1.0,
        "an unchanged list is served from cache"
    );
    srv.stop().await.unwrap();
}

/// Cached list pages: a write renews exactly the pages it can change. Every read below
/// is checked against the truth, and hits are counted to show which pages survived.
async fn list_pages_survive_unrelated_writes_and_stay_fresh(backend: Backend) {
    let Some(srv) = TestServer::start(backend, |_| {}).await else {
        return;
    };
    let key = srv.tenant("Pages").await;
    let items: Vec<_> = (0..60)
        .map(|i| json!({"customer": if i % 10 == 0 { "B" } else { "A" }, "amount_cents": i, "status": "sent"}))
        .collect();
    let (status, _) = srv
        .send(
            Method::POST,
            "/api/invoices/bulk",
            &key,
            json!({ "invoices": items }),
        )
        .await;
    assert_eq!(status, 201);
    let ids = |page: &serde_json::Value| -> Vec<i64> {
        page["items"]
            .as_array()
            .unwrap()
            .iter()
            .map(|i| i["id"].as_i64().unwrap())
            .collect()
    };
    let (_, first) = srv.get("/api/invoices?limit=20", &key).await;
    let cursor = first["next_cursor"].as_str().unwrap().to_owned();
    let second_path = format!("/api/invoices?limit=20&cursor={cursor}");
    let (_, second) = srv.get(&second_path, &key).await;
    let (_, only_b) = srv.get("/api/invoices?customer=B", &key).await;
    assert_eq!(ids(&only_b).len(), 6);

    // A new invoice for A: on the first page at once; B's list and (on SQLite, where
    // ids become visible in order) the page behind the cursor are still cached.
    let created = srv
        .invoice(
            &key,
            json!({"customer": "A", "amount_cents": 999, "status": "sent"}),
        )
        .await;
    let before = srv.cache_hits("invoice_list").await;
    let (_, fresh_first) = srv.get("/api/invoices?limit=20", &key).await;
    assert_eq!(fresh_first["items"][0], created);
    let (_, again_b) = srv.get("/api/invoices?customer=B", &key).await;
    assert_eq!(again_b, only_b);
    let (_, again_second) = srv.get(&second_path, &key).await;
    assert_eq!(again_second, second);
    let survived = srv.cache_hits("invoice_list").await - before;
    let expected = if backend == Backend::Sqlite { 2.0 } else { 1.0 };
    assert_eq!(
        survived, expected,
        "pages a create cannot change should stay cached"
    );

    // A change to a row on the second page shows there at once; a delete too.
    let on_second = ids(&second)[3];
    let (status, patched) = srv
        .send(
            Method::PATCH,
            &format!("/api/invoices/{on_second}"),
            &key,
            json!({"amount_cents": 4242}),
        )
        .await;
    assert_eq!(status, 200);
    let (_, after_patch) = srv.get(&second_path, &key).await;
    assert_eq!(after_patch["items"][3], patched);
    let gone = ids(&second)[5];
    srv.request(Method::DELETE, &format!("/api/invoices/{gone}"), &key)
        .send()
        .await
        .unwrap();
    let (_, after_delete) = srv.get(&second_path, &key).await;
    assert!(!ids(&after_delete).contains(&gone));
    assert_eq!(
        ids(&after_delete).len(),
        20,
        "the page refills from the next rows"
    );

    // A status change moves a row between filtered lists in both directions.
    let b_id = ids(&only_b)[0];
    srv.send(
        Method::PATCH,
        &format!("/api/invoices/{b_id}"),
        &key,
        json!({"status": "paid"}),
    )
    .await;
    let (_, b_sent) = srv.get("/api/invoices?customer=B&status=sent", &key).await;
    assert!(!ids(&b_sent).contains(&b_id));
    let (_, b_paid) = srv.get("/api/invoices?customer=B&status=paid", &key).await;
    assert_eq!(ids(&b_paid), [b_id]);
    srv.stop().await.unwrap();
}

/// `GET /api/invoices/{id}` and `GET /api/jobs/{id}`: the second read is a hit, and a
/// write to that row is visible in the very next read.
async fn single_reads_are_cached_and_renewed_by_their_writes(backend: Backend) {
    let Some(srv) = TestServer::start(backend, |_| {}).await else {
        return;
    };
    let key = srv.tenant("Items").await;
    let invoice = srv
        .invoice(&key, json!({"customer": "A", "amount_cents": 10}))
        .await;
    let path = format!("/api/invoices/{}", invoice["id"]);
    assert_eq!(srv.get(&path, &key).await, (200, invoice.clone()));
    let before = srv.cache_hits("invoice").await;
    assert_eq!(srv.get(&path, &key).await, (200, invoice.clone()));
    assert_eq!(srv.cache_hits("invoice").await, before + 1.0);

    let (_, patched) = srv
        .send(Method::PATCH, &path, &key, json!({"amount_cents": 11}))
        .await;
    assert_eq!(srv.get(&path, &key).await, (200, patched));
    srv.request(Method::DELETE, &path, &key)
        .send()
        .await
        .unwrap();
    assert_eq!(srv.get(&path, &key).await.0, 404);
    // Another tenant never sees it, cached or not.
    let other = srv.tenant("Other").await;
    let (_, job) = srv
        .send(
            Method::POST,
            "/api/jobs",
            &key,
            json!({"customer": "A", "title": "T", "scheduled_on": "2026-12-01"}),
        )
        .await;
    let job_path = format!("/api/jobs/{}", job["id"]);
    assert_eq!(srv.get(&job_path, &key).await, (200, job.clone()));
    assert_eq!(srv.get(&job_path, &other).await.0, 404);
    let (_, done) = srv
        .send(Method::PATCH, &job_path, &key, json!({"status": "done"}))
        .await;
    assert_eq!(srv.get(&job_path, &key).await, (200, done));
    srv.stop().await.unwrap();
}
