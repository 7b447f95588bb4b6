//! Writes under concurrency: group commit on SQLite (many writes per transaction, each
//! failing alone), one transaction per write on PostgreSQL; every acknowledged write
//! reads back; the durability setting is visible in readiness.

use std::time::Duration;

use reqwest::Method;
use serde_json::{Value, json};

use crate::backend_tests;
use crate::common::{Backend, TestServer, json_of};

backend_tests!(
    concurrent_writers_are_all_acknowledged_and_read_back,
    a_failing_write_in_a_shared_batch_fails_alone,
    a_bulk_import_stays_all_or_nothing_inside_a_shared_batch,
    readiness_states_the_durability_setting,
);

/// Sends every (method, path, body) at once and returns (status, body) in order.
async fn all_at_once(
    srv: &TestServer,
    key: &str,
    writes: &[(Method, String, Value)],
) -> Vec<(u16, Value)> {
    let sent = writes.iter().map(|(method, path, body)| {
        let request = srv.request(method.clone(), path, key).json(body);
        async move { json_of(request.send().await.unwrap()).await }
    });
    futures_util::future::join_all(sent).await
}

async fn batches(srv: &TestServer) -> (f64, f64) {
    (
        srv.metric("db_client_write_batches_total", &[]).await,
        srv.metric("db_client_write_batch_writes_total", &[]).await,
    )
}

async fn concurrent_writers_are_all_acknowledged_and_read_back(backend: Backend) {
    let Some(srv) = TestServer::start(backend, |_| {}).await else {
        return;
    };
    let key = srv.tenant("Busy").await;
    let (batches_before, writes_before) = batches(&srv).await;
    let writes: Vec<(Method, String, Value)> = (0..160)
        .map(|i| {
            if i % 4 == 3 {
                let body = json!({"customer": format!("J{i}"), "title": "Visit", "scheduled_on": "2026-12-01"});
                (Method::POST, "/api/jobs".to_owned(), body)
            } else {
                let body = json!({"customer": format!("C{i}"), "amount_cents": 1000 + i, "status": "sent"});
                (Method::POST, "/api/invoices".to_owned(), body)
            }
        })
        .collect();
    let answers = all_at_once(&srv, &key, &writes).await;
    for ((_, path, sent), (status, stored)) in writes.iter().zip(&answers) {
        assert_eq!(*status, 201, "{stored}");
        let (status, read) = srv.get(&format!("{path}/{}", stored["id"]), &key).await;
        assert_eq!(status, 200);
        assert_eq!(
            &read, stored,
            "an acknowledged write reads back as acknowledged"
        );
        assert_eq!(read["customer"], sent["customer"]);
    }
    let (_, dashboard) = srv.get("/api/dashboard", &key).await;
    assert_eq!(dashboard["invoices_by_status"]["sent"], 120);
    assert_eq!(dashboard["jobs_by_status"]["scheduled"], 40);
    if backend == Backend::Sqlite {
        let (batches_after, writes_after) = batches(&srv).await;
        let (batches, writes) = (batches_after - batches_before, writes_after - writes_before);
        assert_eq!(writes, 160.0, "every write went through the writer");
        assert!(
            batches < writes,
            "160 concurrent writes took {batches} commits: no grouping"
        );
    }
    srv.stop().await.unwrap();
}

/// Holds the write lock while `writes` queue up, then lets them through together: on
/// SQLite the queue drains in one or two batches, so the writes share a transaction.
async fn queued_behind_the_lock(
    srv: &TestServer,
    key: &str,
    writes: &[(Method, String, Value)],
) -> Vec<(u16, Value)> {
    let lock = srv.hold_write_lock().await;
    let answers = all_at_once(srv, key, writes);
    let release = async {
        tokio::time::sleep(Duration::from_millis(400)).await;
        lock.release().await;
    };
    let (answers, ()) = tokio::join!(answers, release);
    answers
}

async fn a_failing_write_in_a_shared_batch_fails_alone(backend: Backend) {
    let Some(srv) = TestServer::start(backend, |_| {}).await else {
        return;
    };
    let key = srv.tenant("Mixed").await;
    let target = srv
        .invoice(&key, json!({"customer": "T", "amount_cents": 5, "issued_on": "2026-06-01", "due_on": "2026-07-01"}))
        .await;
    let target_path = format!("/api/invoices/{}", target["id"]);
    let (batches_before, _) = batches(&srv).await;
    let mut writes = Vec::new();
    for i in 0..24 {
        let write = match i % 4 {
            // Fails inside the transaction, after the row was locked: due before issue.
            0 => (
                Method::PATCH,
                target_path.clone(),
                json!({"due_on": "2026-01-01", "amount_cents": 999}),
            ),
            // Fails inside the transaction: no such invoice.
            1 => (
                Method::PATCH,
                "/api/invoices/987654".to_owned(),
                json!({"amount_cents": 1}),
            ),
            _ => (
                Method::POST,
                "/api/invoices".to_owned(),
                json!({"customer": format!("G{i}"), "amount_cents": i}),
            ),
        };
        writes.push(write);
    }
    let answers = queued_behind_the_lock(&srv, &key, &writes).await;
    for (i, (status, body)) in answers.iter().enumerate() {
        let expected = match i % 4 {
            0 => 422,
            1 => 404,
            _ => 201,
        };
        assert_eq!(*status, expected, "write {i}: {body}");
        if expected == 201 {
            let (status, read) = srv
                .get(&format!("/api/invoices/{}", body["id"]), &key)
                .await;
            assert_eq!((status, &read), (200, body));
        }
    }
    let (_, unchanged) = srv.get(&target_path, &key).await;
    assert_eq!(unchanged, target, "a refused patch changed its row");
    let (_, dashboard) = srv.get("/api/dashboard", &key).await;
    assert_eq!(dashboard["invoices_by_status"]["draft"], 13);
    if backend == Backend::Sqlite {
        let (batches_after, _) = batches(&srv).await;
        assert!(
            batches_after - batches_before <= 3.0,
            "24 queued writes took {} batches: they did not share a transaction",
            batches_after - batches_before
        );
    }
    srv.stop().await.unwrap();
}

async fn a_bulk_import_stays_all_or_nothing_inside_a_shared_batch(backend: Backend) {
    let Some(srv) = TestServer::start(backend, |_| {}).await else {
        return;
    };
    let pool = srv.database().await;
    let key = srv.tenant("Bulk").await;
    srv.invoice(
        &key,
        json!({"customer": "seed", "amount_cents": 1, "currency": "EUR"}),
    )
    .await;
    // EUR totals one step from full: an import with EUR in it fails after its rows were
    // inserted, when the totals are applied, inside the shared transaction.
    sqlx::query("UPDATE invoice_totals SET amount_cents = 9223372036854775800 WHERE currency = 'EUR' AND kind = 'all'")
        .execute(&pool)
        .await
        .unwrap();
    let bulk = |tag: &str, currency: &str| {
        let items: Vec<Value> = (0..30)
            .map(|i| json!({"customer": tag, "amount_cents": 100 + i, "currency": if i == 29 { currency } else { "USD" }}))
            .collect();
        (
            Method::POST,
            "/api/invoices/bulk".to_owned(),
            json!({ "invoices": items }),
        )
    };
    let writes = vec![
        bulk("good-1", "USD"),
        bulk("doomed", "EUR"),
        bulk("good-2", "USD"),
        bulk("good-3", "USD"),
    ];
    let answers = queued_behind_the_lock(&srv, &key, &writes).await;
    let statuses: Vec<u16> = answers.iter().map(|(status, _)| *status).collect();
    assert_eq!(statuses, [201, 422, 201, 201], "{answers:?}");
    for (tag, expected) in [
        ("good-1", 30),
        ("doomed", 0),
        ("good-2", 30),
        ("good-3", 30),
    ] {
        let (_, list) = srv
            .get(&format!("/api/invoices?customer={tag}&limit=200"), &key)
            .await;
        assert_eq!(list["items"].as_array().unwrap().len(), expected, "{tag}");
    }
    srv.stop().await.unwrap();
}

async fn readiness_states_the_durability_setting(backend: Backend) {
    for (setting, expected) in [
        (aimate_server::db::Synchronous::Full, "full"),
        (aimate_server::db::Synchronous::Normal, "normal"),
    ] {
        let Some(srv) = TestServer::start(backend, |c| c.sqlite_synchronous = setting).await else {
            return;
        };
        let (status, ready) =
            json_of(srv.client.get(srv.url("/api/health")).send().await.unwrap()).await;
        assert_eq!(status, 200);
        match backend {
            Backend::Sqlite => assert_eq!(ready["database"]["synchronous"], expected, "{ready}"),
            Backend::Postgres => assert!(ready["database"].get("synchronous").is_none(), "{ready}"),
        }
        srv.stop().await.unwrap();
    }
    // The default is the durable one.
    let config = aimate_server::ServerConfig::with_data_dir("unused");
    assert_eq!(
        config.sqlite_synchronous,
        aimate_server::db::Synchronous::Full
    );
}
