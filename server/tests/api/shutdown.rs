use std::time::Duration;

use serde_json::json;

use crate::backend_tests;
use crate::common::{Backend, TestServer, json_of};

backend_tests!(drains_in_flight_requests);

async fn drains_in_flight_requests(backend: Backend) {
    let Some(mut srv) = TestServer::start(backend, |c| {
        c.shutdown_delay = Duration::from_millis(1500);
        c.drain_timeout = Duration::from_secs(10);
    })
    .await
    else {
        return;
    };
    let key = srv.tenant("A").await;
    assert_eq!(srv.get("/api/dashboard", &key).await.0, 200);
    let lock = srv.hold_write_lock().await;
    let in_flight = srv
        .write_in_background(&key, json!({"customer": "Last", "amount_cents": 7}))
        .await;

    srv.begin_shutdown();
    tokio::time::sleep(Duration::from_millis(200)).await;
    // Readiness flips at once, while the listener still accepts (shutdown_delay).
    let (status, ready) =
        json_of(srv.client.get(srv.url("/api/health")).send().await.unwrap()).await;
    assert_eq!(
        (status, &ready["status"], &ready["draining"]),
        (503, &json!("draining"), &json!(true))
    );
    assert_eq!(
        srv.client
            .get(srv.url("/health"))
            .send()
            .await
            .unwrap()
            .status(),
        200,
        "still alive while draining"
    );

    lock.release().await;
    let (status, created) = in_flight.await.unwrap();
    assert_eq!(
        status, 201,
        "the in-flight write finished during the drain: {created}"
    );
    srv.finish().await.unwrap();
    // Gone for good: new connections are refused.
    let refused = reqwest::Client::new()
        .get(srv.url("/health"))
        .timeout(Duration::from_secs(2))
        .send()
        .await;
    assert!(refused.is_err(), "server still answering after shutdown");
}
