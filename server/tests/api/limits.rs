use std::time::{Duration, Instant};

use reqwest::Method;
use serde_json::json;

use crate::backend_tests;
use crate::common::{Backend, TestServer, error_code, json_of};

backend_tests!(
    slow_requests_time_out_with_503,
    slow_headers_are_cut_off,
    rate_limit_per_key,
    sheds_load_past_max_inflight,
    dry_pool_answers_503_fast_and_recovers,
    stuck_write_lock_starves_writes_not_reads,
    cors_allowlist
);

async fn rate_limit_per_key(backend: Backend) {
    let Some(srv) = TestServer::start(backend, |c| {
        c.rate_limit_per_second = 1;
        c.rate_limit_burst = 3;
    })
    .await
    else {
        return;
    };
    let (key, other) = (srv.tenant("A").await, srv.tenant("B").await);
    for expected_remaining in ["2", "1", "0"] {
        let response = srv
            .request(Method::GET, "/api/dashboard", &key)
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 200);
        assert_eq!(response.headers()["ratelimit-limit"], "3");
        // 3 at once, refilled in 3 s at 1 a second.
        assert_eq!(response.headers()["ratelimit-policy"], "3;w=3");
        assert_eq!(
            response.headers()["ratelimit-remaining"],
            expected_remaining
        );
    }
    let response = srv
        .request(Method::GET, "/api/dashboard", &key)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 429);
    let retry_after: u64 = response.headers()["retry-after"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!((1..=2).contains(&retry_after), "retry-after {retry_after}");
    assert_eq!(response.headers()["ratelimit-remaining"], "0");
    let (_, body) = json_of(response).await;
    assert_eq!(error_code(&body), "rate_limited");
    // Each key has its own budget.
    assert_eq!(srv.get("/api/dashboard", &other).await.0, 200);
    assert!(srv.metric("rate_limited_requests_total", &[]).await >= 1.0);
    // The budget refills at the sustained rate.
    tokio::time::sleep(Duration::from_millis(1100)).await;
    assert_eq!(srv.get("/api/dashboard", &key).await.0, 200);
    srv.stop().await.unwrap();
}

async fn sheds_load_past_max_inflight(backend: Backend) {
    let Some(srv) = TestServer::start(backend, |c| c.max_inflight = 1).await else {
        return;
    };
    let key = srv.tenant("A").await;
    assert_eq!(srv.get("/api/dashboard", &key).await.0, 200);
    let lock = srv.hold_write_lock().await;
    // This write waits behind the lock and holds the only in-flight slot.
    let stuck = srv
        .write_in_background(&key, json!({"customer": "A", "amount_cents": 1}))
        .await;

    let started = Instant::now();
    let response = srv
        .request(Method::GET, "/api/dashboard", &key)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 503);
    assert!(
        started.elapsed() < Duration::from_millis(500),
        "shedding must be fast: {:?}",
        started.elapsed()
    );
    assert_eq!(response.headers()["retry-after"], "1");
    assert_eq!(error_code(&json_of(response).await.1), "overloaded");
    // Probes are never shed.
    assert_eq!(
        srv.client
            .get(srv.url("/health"))
            .send()
            .await
            .unwrap()
            .status(),
        200
    );

    lock.release().await;
    assert_eq!(
        stuck.await.unwrap().0,
        201,
        "the queued write completes once the lock is gone"
    );
    assert!(srv.metric("http_server_shed_requests_total", &[]).await >= 1.0);
    assert_eq!(srv.get("/api/dashboard", &key).await.0, 200);
    srv.stop().await.unwrap();
}

/// A dry pool (PostgreSQL: a write stuck on a lock holds the only connection) answers
/// 503 within the acquire timeout, readiness says why, and it recovers by itself.
async fn dry_pool_answers_503_fast_and_recovers(backend: Backend) {
    let Some(srv) = TestServer::start(backend, |c| {
        c.db_pool_min = 1;
        c.db_pool_max = 1;
        c.db_acquire_timeout = Duration::from_millis(300);
    })
    .await
    else {
        return;
    };
    let key = srv.tenant("A").await;
    let invoice = srv
        .invoice(&key, json!({"customer": "A", "amount_cents": 5}))
        .await;
    let path = format!("/api/invoices/{}", invoice["id"]);
    let lock = srv.hold_write_lock().await;
    let stuck = srv
        .write_in_background(&key, json!({"customer": "B", "amount_cents": 1}))
        .await;

    let started = Instant::now();
    if backend == Backend::Sqlite {
        // SQLite's writer has a connection of its own, outside the pool: a stuck write
        // cannot dry the pool, so even a pool of one keeps serving reads.
        let (status, body) = srv.get(&path, &key).await;
        assert_eq!((status, body), (200, invoice));
        assert!(started.elapsed() < Duration::from_secs(1));
        let health = srv.client.get(srv.url("/api/health")).send().await.unwrap();
        assert_eq!(health.status(), 200);
        lock.release().await;
        assert_eq!(stuck.await.unwrap().0, 201);
        srv.stop().await.unwrap();
        return;
    }
    let (status, body) = srv.get(&path, &key).await;
    assert_eq!((status, error_code(&body)), (503, "db_pool_exhausted"));
    assert!(
        started.elapsed() < Duration::from_secs(2),
        "answered within the acquire timeout: {:?}",
        started.elapsed()
    );
    let (status, health) =
        json_of(srv.client.get(srv.url("/api/health")).send().await.unwrap()).await;
    assert_eq!(status, 503);
    assert_eq!(health["database"]["status"], "down");
    assert!(
        health["database"]["error"]
            .as_str()
            .unwrap()
            .contains("pool exhausted"),
        "{health}"
    );

    lock.release().await;
    assert_eq!(stuck.await.unwrap().0, 201);
    // Recovered without a restart; readiness reuses a probe result for up to a second.
    assert_eq!(srv.get(&path, &key).await.0, 200);
    let recovered = Instant::now();
    loop {
        let health = srv.client.get(srv.url("/api/health")).send().await.unwrap();
        if health.status() == 200 {
            break;
        }
        assert!(
            recovered.elapsed() < Duration::from_secs(3),
            "readiness still {} after the pool recovered",
            health.status()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    srv.stop().await.unwrap();
}

/// A write lock held elsewhere (another process, a stuck transaction) starves writers
/// only: they get 503s with Retry-After within about the acquire timeout plus the busy
/// timeout, while reads keep their connections and stay fast.
async fn stuck_write_lock_starves_writes_not_reads(backend: Backend) {
    if backend == Backend::Postgres {
        // PostgreSQL writers wait on the row lock with their own connection; the writer
        // gate is SQLite's (one writer per database).
        return;
    }
    let Some(srv) = TestServer::start(backend, |c| {
        c.db_pool_max = 4;
        c.db_acquire_timeout = Duration::from_millis(500);
    })
    .await
    else {
        return;
    };
    let key = srv.tenant("A").await;
    let invoice = srv
        .invoice(&key, json!({"customer": "A", "amount_cents": 5}))
        .await;
    let lock = srv.hold_write_lock().await;
    let started = Instant::now();
    let mut writers = Vec::new();
    for i in 0..10 {
        let request = srv
            .request(Method::POST, "/api/invoices", &key)
            .json(&json!({"customer": "W", "amount_cents": i + 1}));
        writers.push(tokio::spawn(async move {
            let response = request.send().await.unwrap();
            let retry_after = response.headers().get("retry-after").cloned();
            (response.status().as_u16(), retry_after, started.elapsed())
        }));
    }
    tokio::time::sleep(Duration::from_millis(100)).await;
    // Ten writers queued, a pool of four: reads still get a connection at once.
    for _ in 0..20 {
        let read_started = Instant::now();
        let (status, _) = srv
            .get(&format!("/api/invoices/{}", invoice["id"]), &key)
            .await;
        assert_eq!(status, 200);
        assert!(
            read_started.elapsed() < Duration::from_millis(400),
            "a read waited {:?} behind starved writers",
            read_started.elapsed()
        );
    }
    for writer in writers {
        let (status, retry_after, took) = writer.await.unwrap();
        assert_eq!(status, 503, "a starved writer must be refused");
        assert!(retry_after.is_some(), "503 without Retry-After");
        assert!(took < Duration::from_secs(4), "a writer hung for {took:?}");
    }
    lock.release().await;
    // Writes resume once the lock is gone (`invoice` asserts the 201).
    srv.invoice(&key, json!({"customer": "A", "amount_cents": 7}))
        .await;
    srv.stop().await.unwrap();
}

async fn cors_allowlist(backend: Backend) {
    let Some(srv) = TestServer::start(backend, |c| {
        c.cors_origins = vec!["https://app.example.com".parse().unwrap()]
    })
    .await
    else {
        return;
    };
    let key = srv.tenant("A").await;
    let allowed = srv
        .request(Method::GET, "/api/dashboard", &key)
        .header("origin", "https://app.example.com")
        .send()
        .await
        .unwrap();
    assert_eq!(
        allowed.headers()["access-control-allow-origin"],
        "https://app.example.com"
    );
    let denied = srv
        .request(Method::GET, "/api/dashboard", &key)
        .header("origin", "https://evil.example")
        .send()
        .await
        .unwrap();
    assert!(
        denied
            .headers()
            .get("access-control-allow-origin")
            .is_none()
    );
    let preflight = srv
        .client
        .request(Method::OPTIONS, srv.url("/api/invoices"))
        .header("origin", "https://app.example.com")
        .header("access-control-request-method", "POST")
        .header(
            "access-control-request-headers",
            "authorization, content-type",
        )
        .send()
        .await
        .unwrap();
    assert!(preflight.status().is_success(), "{}", preflight.status());
    let methods = preflight.headers()["access-control-allow-methods"]
        .to_str()
        .unwrap()
        .to_owned();
    assert!(methods.contains("POST"), "{methods}");
    srv.stop().await.unwrap();
}

async fn slow_requests_time_out_with_503(backend: Backend) {
    let Some(srv) =
        TestServer::start(backend, |c| c.request_timeout = Duration::from_millis(400)).await
    else {
        return;
    };
    let key = srv.tenant("A").await;
    let lock = srv.hold_write_lock().await;
    let started = Instant::now();
    let (status, body) = srv
        .send(
            Method::POST,
            "/api/invoices",
            &key,
            json!({"customer": "A", "amount_cents": 1}),
        )
        .await;
    let waited = started.elapsed();
    assert_eq!((status, error_code(&body)), (503, "request_timeout"));
    assert!(
        waited >= Duration::from_millis(350) && waited < Duration::from_secs(3),
        "{waited:?}"
    );
    lock.release().await;
    // The cancelled write left nothing behind, and the server serves on.
    let (_, list) = srv.get("/api/invoices", &key).await;
    assert_eq!(list["items"], json!([]));
    assert_eq!(
        srv.send(
            Method::POST,
            "/api/invoices",
            &key,
            json!({"customer": "A", "amount_cents": 1})
        )
        .await
        .0,
        201
    );
    srv.stop().await.unwrap();
}

async fn slow_headers_are_cut_off(backend: Backend) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    let Some(srv) = TestServer::start(backend, |c| {
        c.header_read_timeout = Duration::from_millis(300)
    })
    .await
    else {
        return;
    };
    // A slowloris client: half a request line, then silence.
    let mut stream = tokio::net::TcpStream::connect(srv.addr).await.unwrap();
    stream
        .write_all(b"GET /health HTTP/1.1\r\nHost: x\r\n")
        .await
        .unwrap();
    let started = Instant::now();
    let mut buffer = Vec::new();
    let read = tokio::time::timeout(Duration::from_secs(5), stream.read_to_end(&mut buffer)).await;
    assert!(
        read.is_ok(),
        "the server kept a header-less connection open"
    );
    assert!(
        started.elapsed() < Duration::from_secs(3),
        "{:?}",
        started.elapsed()
    );
    // Well-behaved clients are unaffected.
    assert_eq!(
        srv.client
            .get(srv.url("/health"))
            .send()
            .await
            .unwrap()
            .status(),
        200
    );
    srv.stop().await.unwrap();
}
