use chrono::{Days, Utc};
use reqwest::Method;
use serde_json::json;

use crate::backend_tests;
use crate::common::{Backend, TestServer};

backend_tests!(dashboard_totals);

async fn dashboard_totals(backend: Backend) {
    let Some(srv) = TestServer::start(backend, |_| {}).await else {
        return;
    };
    let key = srv.tenant("Acme").await;
    let today = Utc::now().date_naive();
    let past = (today - Days::new(40)).to_string();
    let future = (today + Days::new(10)).to_string();

    // Sent and not yet due; sent and past due (overdue by date); marked overdue; paid; draft.
    srv.invoice(&key, json!({"customer": "A", "amount_cents": 1000, "status": "sent", "issued_on": past, "due_on": future})).await;
    srv.invoice(&key, json!({"customer": "B", "amount_cents": 2000, "status": "sent", "issued_on": past, "due_on": past})).await;
    srv.invoice(&key, json!({"customer": "C", "amount_cents": 4000, "status": "overdue", "issued_on": past, "due_on": past})).await;
    srv.invoice(
        &key,
        json!({"customer": "D", "amount_cents": 8000, "status": "paid"}),
    )
    .await;
    srv.invoice(
        &key,
        json!({"customer": "E", "amount_cents": 300, "currency": "EUR", "status": "sent"}),
    )
    .await;
    srv.invoice(&key, json!({"customer": "F", "amount_cents": 16000}))
        .await;
    srv.send(
        Method::POST,
        "/api/jobs",
        &key,
        json!({"customer": "A", "title": "T", "scheduled_on": future}),
    )
    .await;

    let (status, dashboard) = srv.get("/api/dashboard", &key).await;
    assert_eq!(status, 200, "{dashboard}");
    assert_eq!(
        dashboard["outstanding"],
        json!([{"currency": "EUR", "amount_cents": 300, "count": 1}, {"currency": "USD", "amount_cents": 7000, "count": 3}])
    );
    assert_eq!(
        dashboard["overdue"],
        json!([{"currency": "USD", "amount_cents": 6000, "count": 2}])
    );
    assert_eq!(
        dashboard["revenue_this_month"],
        json!([{"currency": "USD", "amount_cents": 8000, "count": 1}])
    );
    assert_eq!(
        dashboard["invoices_by_status"],
        json!({"draft": 1, "sent": 3, "paid": 1, "overdue": 1})
    );
    assert_eq!(
        dashboard["jobs_by_status"],
        json!({"scheduled": 1, "in_progress": 0, "done": 0, "cancelled": 0})
    );
    assert!(dashboard["generated_at"].as_str().is_some());
    srv.stop().await.unwrap();
}
