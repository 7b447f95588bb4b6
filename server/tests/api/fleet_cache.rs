//! The fleet's cache (`--redis-url`): instances share a Redis L2 and the generations
//! that make a write visible everywhere at once, and a Redis outage degrades the cache
//! without a single error or a stale read left behind. Two real servers on one
//! PostgreSQL schema and one Redis; needs `TEST_DATABASE_URL` and `TEST_REDIS_URL`
//! (set by `.ci/run`) and says so when skipped.

use std::net::SocketAddr;

use reqwest::Method;
use serde_json::{Value, json};

use crate::common::{Backend, TestServer, redis_url, unique_prefix};
use crate::tcp_gate::TcpGate;

/// Two servers on one database, each with its own Redis URL and a shared key prefix.
async fn pair(url_a: &str, url_b: &str) -> Option<(TestServer, TestServer)> {
    let prefix = unique_prefix();
    let (url, pre) = (url_a.to_owned(), prefix.clone());
    let a = TestServer::start(Backend::Postgres, move |c| {
        c.redis_url = Some(url);
        c.redis_prefix = pre;
    })
    .await?;
    let (url, database) = (url_b.to_owned(), a.config.database_url.clone());
    let b = TestServer::start(Backend::Postgres, move |c| {
        c.redis_url = Some(url);
        c.redis_prefix = prefix;
        c.database_url = database;
    })
    .await?;
    a.wait_for_cache("up").await;
    b.wait_for_cache("up").await;
    Some((a, b))
}

fn invoice(amount_cents: i64) -> Value {
    json!({"customer": "Fleet", "amount_cents": amount_cents, "status": "sent"})
}

fn ids(list: &Value) -> Vec<i64> {
    list["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|item| item["id"].as_i64().unwrap())
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_write_on_one_instance_is_read_at_once_on_another() {
    let Some(url) = redis_url() else { return };
    let Some((a, b)) = pair(&url, &url).await else {
        return;
    };
    let key = a.tenant("Acme").await;
    for round in 1..=20_i64 {
        // B has the list and the dashboard cached...
        b.get("/api/invoices", &key).await;
        b.get("/api/dashboard", &key).await;
        let (_, cached) = b.get("/api/invoices", &key).await;
        assert_eq!(ids(&cached).len() as i64, round - 1);
        // ...A takes a write, and B's very next reads show it.
        let created = a.invoice(&key, invoice(100)).await;
        let (_, list) = b.get("/api/invoices", &key).await;
        assert_eq!(
            ids(&list).first(),
            created["id"].as_i64().as_ref(),
            "round {round}: B served a list without A's write"
        );
        let (_, dashboard) = b.get("/api/dashboard", &key).await;
        assert_eq!(dashboard["outstanding"][0]["amount_cents"], 100 * round);
    }
    // The other way round, on a single invoice A has cached.
    let (_, list) = a.get("/api/invoices", &key).await;
    let id = ids(&list)[0];
    let path = format!("/api/invoices/{id}");
    a.get(&path, &key).await;
    let (status, _) = b
        .send(Method::PATCH, &path, &key, json!({"status": "paid"}))
        .await;
    assert_eq!(status, 200);
    let (_, read) = a.get(&path, &key).await;
    assert_eq!(read["status"], "paid", "A served the invoice as it was");

    // The caches were really used: B served hits, and A found in Redis an entry B put
    // there (the first read of an invoice B had read).
    assert!(b.cache_hits("invoice_list").await >= 20.0);
    let (_, list) = b.get("/api/invoices", &key).await;
    let other = format!("/api/invoices/{}", ids(&list)[1]);
    b.get(&other, &key).await;
    let before = a
        .metric("cache_redis_lookups_total", &["result=\"hit\""])
        .await;
    a.get(&other, &key).await;
    assert_eq!(
        a.metric("cache_redis_lookups_total", &["result=\"hit\""])
            .await,
        before + 1.0
    );
    assert_eq!(a.metric("cache_redis_up", &[]).await, 1.0);
}

/// The host and port of a `redis://` URL.
fn address_of(url: &str) -> SocketAddr {
    let info = redis::Client::open(url)
        .unwrap()
        .get_connection_info()
        .clone();
    match info.addr {
        redis::ConnectionAddr::Tcp(host, port) => {
            let host = if host == "localhost" {
                "127.0.0.1".into()
            } else {
                host
            };
            format!("{host}:{port}").parse().unwrap()
        }
        other => panic!("TEST_REDIS_URL must be TCP, not {other:?}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_redis_outage_degrades_without_errors_and_leaves_nothing_stale() {
    let Some(url) = redis_url() else { return };
    // A reaches Redis through a gate we can shut; B directly.
    let gate = TcpGate::start(address_of(&url)).await;
    let Some((a, b)) = pair(&format!("redis://{}", gate.addr), &url).await else {
        return;
    };
    let key = a.tenant("Acme").await;
    a.invoice(&key, invoice(100)).await;
    b.get("/api/invoices", &key).await;
    b.get("/api/invoices", &key).await;

    gate.close();
    a.wait_for_cache("degraded").await;
    let (status, ready) = a.readiness().await;
    assert_eq!(
        (status, &ready["status"]),
        (200, &json!("ready")),
        "{ready}"
    );
    assert_eq!(ready["cache"]["kind"], "memory+redis");
    assert_eq!(a.metric("cache_redis_up", &[]).await, 0.0);
    // Everything is still served, from memory and the database.
    for path in [
        "/api/invoices",
        "/api/dashboard",
        "/api/jobs",
        "/api/invoices",
    ] {
        let (status, body) = a.get(path, &key).await;
        assert_eq!(status, 200, "{path}: {body}");
    }
    // A write made while Redis is away is read back at once on its instance...
    let created = a.invoice(&key, invoice(50)).await;
    let (_, list) = a.get("/api/invoices", &key).await;
    assert_eq!(ids(&list).first(), created["id"].as_i64().as_ref());
    let (_, dashboard) = a.get("/api/dashboard", &key).await;
    assert_eq!(dashboard["outstanding"][0]["amount_cents"], 150);

    // ...and once Redis is back, nothing cached before it is served anywhere: B's
    // list predates the write, whose invalidation never reached Redis.
    gate.open();
    a.wait_for_cache("up").await;
    let (_, list) = b.get("/api/invoices", &key).await;
    assert_eq!(
        ids(&list).first(),
        created["id"].as_i64().as_ref(),
        "B still served the list from before the outage"
    );
    let (_, dashboard) = b.get("/api/dashboard", &key).await;
    assert_eq!(dashboard["outstanding"][0]["amount_cents"], 150);
}

/// No Redis at all behind the URL (nothing listens): the server starts, is ready with
/// its cache degraded, and answers everything. Needs no services.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unreachable_redis_leaves_the_server_ready_and_serving() {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let dead = format!("redis://{}", listener.local_addr().unwrap());
    drop(listener);
    let srv = TestServer::start(Backend::Sqlite, move |c| c.redis_url = Some(dead))
        .await
        .unwrap();
    let (status, ready) = srv.readiness().await;
    assert_eq!(status, 200, "{ready}");
    assert_eq!(ready["cache"]["status"], "degraded");
    let key = srv.tenant("Acme").await;
    for amount in [100, 200] {
        srv.invoice(&key, invoice(amount)).await;
        let (status, dashboard) = srv.get("/api/dashboard", &key).await;
        assert_eq!(status, 200);
        let (status, list) = srv.get("/api/invoices", &key).await;
        assert_eq!(status, 200);
        assert_eq!(ids(&list).len(), if amount == 100 { 1 } else { 2 });
        assert_eq!(
            dashboard["outstanding"][0]["amount_cents"],
            if amount == 100 { 100 } else { 300 }
        );
    }
    // Served from memory in the meantime.
    srv.get("/api/invoices", &key).await;
    assert!(srv.cache_hits("invoice_list").await >= 1.0);
    assert_eq!(srv.metric("cache_redis_up", &[]).await, 0.0);
}
