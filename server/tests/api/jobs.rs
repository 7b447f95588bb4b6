use reqwest::Method;
use serde_json::json;

use crate::backend_tests;
use crate::common::{Backend, TestServer, error_code};

backend_tests!(job_crud_and_filters);

async fn job_crud_and_filters(backend: Backend) {
    let Some(srv) = TestServer::start(backend, |_| {}).await else {
        return;
    };
    let key = srv.tenant("Acme").await;
    let (status, job) = srv
        .send(
            Method::POST,
            "/api/jobs",
            &key,
            json!({"customer": "ABC", "title": "Fix boiler", "scheduled_on": "2026-12-01"}),
        )
        .await;
    assert_eq!(status, 201, "{job}");
    assert_eq!(job["status"], "scheduled");
    let path = format!("/api/jobs/{}", job["id"]);
    let (status, fetched) = srv.get(&path, &key).await;
    assert_eq!((status, &fetched), (200, &job));

    let (status, moved) = srv
        .send(
            Method::PATCH,
            &path,
            &key,
            json!({"status": "in_progress", "scheduled_on": "2026-12-03"}),
        )
        .await;
    assert_eq!(status, 200, "{moved}");
    assert_eq!(
        (moved["status"].as_str(), moved["scheduled_on"].as_str()),
        (Some("in_progress"), Some("2026-12-03"))
    );
    assert_eq!(moved["title"], "Fix boiler");

    for (day, status) in [
        ("2026-11-20", "done"),
        ("2026-12-10", "scheduled"),
        ("2027-01-05", "cancelled"),
    ] {
        let (code, _) = srv
            .send(
                Method::POST,
                "/api/jobs",
                &key,
                json!({"customer": "C", "title": "T", "scheduled_on": day, "status": status}),
            )
            .await;
        assert_eq!(code, 201);
    }
    let count = |body: serde_json::Value| body["items"].as_array().unwrap().len();
    assert_eq!(count(srv.get("/api/jobs", &key).await.1), 4);
    assert_eq!(
        count(srv.get("/api/jobs?status=scheduled", &key).await.1),
        1
    );
    assert_eq!(
        count(
            srv.get("/api/jobs?from=2026-12-01&to=2026-12-31", &key)
                .await
                .1
        ),
        2
    );
    assert_eq!(count(srv.get("/api/jobs?from=2027-01-01", &key).await.1), 1);
    assert_eq!(count(srv.get("/api/jobs?limit=1", &key).await.1), 1);

    let (status, body) = srv
        .get("/api/jobs?from=2026-12-31&to=2026-12-01", &key)
        .await;
    assert_eq!((status, error_code(&body)), (400, "invalid_range"));
    let (status, body) = srv.get("/api/jobs?status=lost", &key).await;
    assert_eq!((status, error_code(&body)), (400, "invalid_query"));
    let (status, body) = srv
        .send(Method::PATCH, &path, &key, json!({"title": "   "}))
        .await;
    assert_eq!((status, error_code(&body)), (422, "validation_failed"));
    let (status, body) = srv.get("/api/jobs/999999", &key).await;
    assert_eq!((status, error_code(&body)), (404, "not_found"));
    srv.stop().await.unwrap();
}
