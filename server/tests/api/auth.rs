use reqwest::Method;
use serde_json::json;

use crate::backend_tests;
use crate::common::{ADMIN_TOKEN, Backend, TestServer, error_code, json_of};

backend_tests!(
    api_keys_are_required,
    admin_endpoint_guards,
    tenants_cannot_see_each_other,
    an_address_sending_unknown_keys_is_cut_off_from_new_lookups,
    keys_rotate_and_revoke_at_once_on_this_instance
);

async fn api_keys_are_required(backend: Backend) {
    let Some(srv) = TestServer::start(backend, |_| {}).await else {
        return;
    };
    let (status, body) = json_of(
        srv.client
            .get(srv.url("/api/invoices"))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!((status, error_code(&body)), (401, "unauthorized"));
    for path in [
        "/api/invoices",
        "/api/jobs",
        "/api/dashboard",
        "/api/users/u1/preferences",
    ] {
        let (status, body) = srv.get(path, "amk_not-a-real-key").await;
        assert_eq!((status, error_code(&body)), (401, "unauthorized"), "{path}");
    }
    let response = srv
        .client
        .get(srv.url("/api/invoices"))
        .header("authorization", "Basic abc")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 401);
    // Health and metrics need no key.
    for path in [
        "/health",
        "/api/health",
        "/api/metrics",
        "/api/openapi.json",
    ] {
        assert_eq!(
            srv.client.get(srv.url(path)).send().await.unwrap().status(),
            200,
            "{path}"
        );
    }
    srv.stop().await.unwrap();
}

async fn admin_endpoint_guards(backend: Backend) {
    let Some(srv) = TestServer::start(backend, |c| c.admin_token = None).await else {
        return;
    };
    let create = |token: &'static str| {
        srv.client
            .post(srv.url("/api/admin/tenants"))
            .bearer_auth(token)
            .json(&json!({"name": "X"}))
            .send()
    };
    let (status, body) = json_of(create(ADMIN_TOKEN).await.unwrap()).await;
    assert_eq!(
        (status, error_code(&body)),
        (403, "forbidden"),
        "disabled without AIMATE_ADMIN_TOKEN"
    );
    srv.stop().await.unwrap();

    let Some(srv) = TestServer::start(backend, |_| {}).await else {
        return;
    };
    let (status, body) = json_of(
        srv.client
            .post(srv.url("/api/admin/tenants"))
            .bearer_auth("wrong")
            .json(&json!({"name": "X"}))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!((status, error_code(&body)), (401, "unauthorized"));
    let (status, body) = srv
        .send(
            Method::POST,
            "/api/admin/tenants",
            ADMIN_TOKEN,
            json!({"name": ""}),
        )
        .await;
    assert_eq!((status, error_code(&body)), (422, "validation_failed"));
    let (status, body) = srv
        .send(
            Method::POST,
            "/api/admin/tenants",
            ADMIN_TOKEN,
            json!({"name": "Acme"}),
        )
        .await;
    assert_eq!(status, 201);
    assert_eq!(body["name"], "Acme");
    assert!(body["id"].as_i64().is_some());
    // The key works straight away, and a second tenant gets a different key.
    let key = body["api_key"].as_str().unwrap();
    assert_eq!(srv.get("/api/dashboard", key).await.0, 200);
    assert_ne!(srv.tenant("Other").await, key);
    srv.stop().await.unwrap();
}

async fn tenants_cannot_see_each_other(backend: Backend) {
    let Some(srv) = TestServer::start(backend, |_| {}).await else {
        return;
    };
    let (alice, bob) = (srv.tenant("Alice").await, srv.tenant("Bob").await);
    let invoice = srv
        .invoice(
            &alice,
            json!({"customer": "A", "amount_cents": 999, "status": "sent"}),
        )
        .await;
    let (_, job) = srv
        .send(
            Method::POST,
            "/api/jobs",
            &alice,
            json!({"customer": "A", "title": "T", "scheduled_on": "2026-12-01"}),
        )
        .await;
    srv.send(Method::PUT, "/api/users/u1/preferences", &alice, json!({"theme": "dark", "locale": "en-GB", "currency": "GBP", "notifications": {"email": false, "sms": true, "push": false}})).await;
    let invoice_path = format!("/api/invoices/{}", invoice["id"]);
    let job_path = format!("/api/jobs/{}", job["id"]);

    // Another tenant's ids answer 404, never 403, for every verb.
    assert_eq!(
        error_code(&srv.get(&invoice_path, &bob).await.1),
        "not_found"
    );
    assert_eq!(srv.get(&invoice_path, &bob).await.0, 404);
    assert_eq!(
        srv.send(
            Method::PATCH,
            &invoice_path,
            &bob,
            json!({"amount_cents": 1})
        )
        .await
        .0,
        404
    );
    assert_eq!(
        srv.request(Method::DELETE, &invoice_path, &bob)
            .send()
            .await
            .unwrap()
            .status(),
        404
    );
    assert_eq!(srv.get(&job_path, &bob).await.0, 404);
    assert_eq!(
        srv.send(Method::PATCH, &job_path, &bob, json!({"title": "mine"}))
            .await
            .0,
        404
    );

    // Lists, dashboard and preferences are per tenant.
    assert_eq!(srv.get("/api/invoices", &bob).await.1["items"], json!([]));
    assert_eq!(srv.get("/api/jobs", &bob).await.1["items"], json!([]));
    assert_eq!(
        srv.get("/api/dashboard", &bob).await.1["outstanding"],
        json!([])
    );
    assert_eq!(
        srv.get("/api/users/u1/preferences", &bob).await.1["theme"],
        "system"
    );

    // Alice's data is untouched by Bob's attempts.
    let (status, still) = srv.get(&invoice_path, &alice).await;
    assert_eq!((status, &still["amount_cents"]), (200, &json!(999)));
    srv.stop().await.unwrap();
}

async fn an_address_sending_unknown_keys_is_cut_off_from_new_lookups(backend: Backend) {
    // 2 failures a second, 20 at once.
    let Some(srv) = TestServer::start(backend, |c| c.auth_failures_per_second = 2).await else {
        return;
    };
    let known = srv.tenant("Known").await;
    assert_eq!(srv.get("/api/dashboard", &known).await.0, 200);
    let misses_before = srv
        .metric(
            "cache_requests_total",
            &["cache=\"auth\"", "result=\"miss\""],
        )
        .await;

    let mut statuses = Vec::new();
    for i in 0..40 {
        let (status, body) = srv.get("/api/dashboard", &format!("amk_guess_{i}")).await;
        if status == 429 {
            assert_eq!(error_code(&body), "rate_limited");
        }
        statuses.push(status);
    }
    let unauthorized = statuses.iter().filter(|&&s| s == 401).count();
    assert!((20..=22).contains(&unauthorized), "{statuses:?}");
    assert!(
        statuses[unauthorized..].iter().all(|&s| s == 429),
        "{statuses:?}"
    );
    // Only the failures before the cut-off cost a database lookup.
    let misses = srv
        .metric(
            "cache_requests_total",
            &["cache=\"auth\"", "result=\"miss\""],
        )
        .await
        - misses_before;
    assert!(misses <= 22.0, "{misses} lookups");

    // A key the server already knows keeps working from the same address; a new one
    // waits for the budget (Retry-After says how long).
    assert_eq!(srv.get("/api/dashboard", &known).await.0, 200);
    let newcomer = srv.tenant("Newcomer").await;
    let response = srv
        .request(Method::GET, "/api/dashboard", &newcomer)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 429);
    let retry_after: u64 = response.headers()["retry-after"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!((1..=2).contains(&retry_after), "{retry_after}");
    tokio::time::sleep(std::time::Duration::from_secs(retry_after)).await;
    assert_eq!(srv.get("/api/dashboard", &newcomer).await.0, 200);
    srv.stop().await.unwrap();
}

async fn keys_rotate_and_revoke_at_once_on_this_instance(backend: Backend) {
    let Some(srv) = TestServer::start(backend, |_| {}).await else {
        return;
    };
    let admin = |method: Method, path: &str| {
        srv.client
            .request(method, srv.url(path))
            .bearer_auth(ADMIN_TOKEN)
    };
    let created: serde_json::Value = admin(Method::POST, "/api/admin/tenants")
        .json(&json!({"name": "Rotating"}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let (id, old_key) = (
        created["id"].as_i64().unwrap(),
        created["api_key"].as_str().unwrap().to_owned(),
    );
    // Known to this instance's auth cache before the rotation.
    assert_eq!(srv.get("/api/dashboard", &old_key).await.0, 200);

    let (status, rotated) = json_of(
        admin(Method::POST, &format!("/api/admin/tenants/{id}/key"))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(status, 200, "{rotated}");
    assert_eq!(rotated["id"], id);
    let new_key = rotated["api_key"].as_str().unwrap().to_owned();
    assert_ne!(new_key, old_key);
    assert_eq!(
        srv.get("/api/dashboard", &old_key).await.0,
        401,
        "the old key still works"
    );
    assert_eq!(srv.get("/api/dashboard", &new_key).await.0, 200);

    let revoked = admin(Method::DELETE, &format!("/api/admin/tenants/{id}/key"))
        .send()
        .await
        .unwrap();
    assert_eq!(revoked.status(), 204);
    assert_eq!(
        srv.get("/api/dashboard", &new_key).await.0,
        401,
        "a revoked key still works"
    );
    // Revoking twice is fine; a rotation brings the tenant back with a fresh key.
    let again = admin(Method::DELETE, &format!("/api/admin/tenants/{id}/key"))
        .send()
        .await
        .unwrap();
    assert_eq!(again.status(), 204);
    let (_, back) = json_of(
        admin(Method::POST, &format!("/api/admin/tenants/{id}/key"))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(
        srv.get("/api/dashboard", back["api_key"].as_str().unwrap())
            .await
            .0,
        200
    );

    // Unknown tenant, no admin token, a tenant's own key: refused.
    let (status, body) = json_of(
        admin(Method::POST, "/api/admin/tenants/987654/key")
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!((status, error_code(&body)), (404, "not_found"));
    let anonymous = srv
        .client
        .delete(srv.url(&format!("/api/admin/tenants/{id}/key")))
        .bearer_auth(back["api_key"].as_str().unwrap())
        .send()
        .await
        .unwrap();
    assert_eq!(anonymous.status(), 401);
    srv.stop().await.unwrap();
}
