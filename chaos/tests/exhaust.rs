//! Connection exhaustion against the real server, in-process on an ephemeral port: fast
//! 503s while starved, readiness saying why, and full recovery when the lease ends, with
//! no call to undo the fault.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::time::{Duration, Instant};

use aimate_chaos::exhaust::{hold_postgres_sessions, hold_sqlite_writer, slowloris};
use serde_json::{Value, json};
use support::server::server;

/// The SQLite writer lock held by another process: the server's writes wait for it
/// (its writer has a connection of its own, so the readers' pool is untouched: even a
/// pool of one keeps serving), and when the fault's lease ends, unreleased by anyone,
/// the queued write commits.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_held_sqlite_writer_starves_writers_until_its_lease_ends() {
    let srv = server(|c| {
        c.db_pool_max = 1;
        c.db_acquire_timeout = Duration::from_millis(1800);
    })
    .await;
    let client = reqwest::Client::new();
    let base = format!("http://{}", srv.addr);
    let invoice: Value = client
        .post(format!("{base}/api/invoices"))
        .bearer_auth(&srv.key)
        .json(&json!({"customer": "A", "amount_cents": 1}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let read_path = format!("{base}/api/jobs?status=done");

    // Shorter than the server's 2 s busy timeout: the queued writer outlasts the lock.
    let lease = hold_sqlite_writer(&srv.data_dir.join("aimate.db"), Duration::from_millis(1500))
        .await
        .unwrap();
    let held_at = Instant::now();
    let writer = {
        let request = client
            .post(format!("{base}/api/invoices"))
            .bearer_auth(&srv.key)
            .json(&json!({"customer": "W", "amount_cents": 1}));
        tokio::spawn(async move { request.send().await.map(|r| r.status().as_u16()) })
    };
    tokio::time::sleep(Duration::from_millis(300)).await;

    // Reads go on, from the database (an uncached list), fast.
    let started = Instant::now();
    let read = client
        .get(&read_path)
        .bearer_auth(&srv.key)
        .send()
        .await
        .unwrap();
    assert_eq!(read.status(), 200);
    assert!(
        started.elapsed() < Duration::from_secs(1),
        "a read waited {:?}",
        started.elapsed()
    );
    let health = client
        .get(format!("{base}/api/health"))
        .send()
        .await
        .unwrap();
    assert_eq!(health.status(), 200);
    assert!(!writer.is_finished(), "the write did not wait for the lock");

    // Nobody releases the fault: its lease ends it, and the queued write commits.
    assert_eq!(writer.await.unwrap().unwrap(), 201);
    assert!(
        held_at.elapsed() >= Duration::from_millis(1400),
        "committed while the lock was held"
    );
    assert!(lease.is_over());
    let after: Value = client
        .get(format!("{base}/api/invoices/{}", invoice["id"]))
        .bearer_auth(&srv.key)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(after, invoice);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slowloris_connections_do_not_take_the_server_down() {
    let srv = server(|c| c.header_read_timeout = Duration::from_millis(300)).await;
    let lease = slowloris(
        srv.addr,
        200,
        Duration::from_millis(100),
        Duration::from_secs(2),
    )
    .await
    .unwrap();
    let client = reqwest::Client::new();
    for _ in 0..5 {
        let response = client
            .get(format!("http://{}/api/dashboard", srv.addr))
            .bearer_auth(&srv.key)
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 200);
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    lease.release().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_sessions_are_held_and_given_back() {
    let Some(url) = std::env::var("TEST_DATABASE_URL")
        .ok()
        .filter(|u| !u.is_empty())
    else {
        eprintln!(
            "skipped: TEST_DATABASE_URL is not set, so the PostgreSQL exhaustion test did not run"
        );
        return;
    };
    use sqlx::Connection;
    let count_sessions = || async {
        let mut conn = sqlx::PgConnection::connect(&url).await.unwrap();
        let n: i64 = sqlx::query_scalar(
            "SELECT COUNT(*) FROM pg_stat_activity WHERE datname = current_database()",
        )
        .fetch_one(&mut conn)
        .await
        .unwrap();
        n
    };
    let before = count_sessions().await;
    let (lease, held) = hold_postgres_sessions(&url, 5, Duration::from_secs(30))
        .await
        .unwrap();
    assert_eq!(held, 5);
    assert!(count_sessions().await >= before + 5);
    lease.release().await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(count_sessions().await < before + 5, "sessions given back");
}

#[tokio::test]
async fn a_failed_postgres_hold_does_not_reveal_the_password() {
    let password = "s3cr@t:pa/ss";
    let url = format!("postgres://app:{password}@127.0.0.1:1/aimate?password=Qu3ry-s3cret");
    let error = match hold_postgres_sessions(&url, 2, Duration::from_secs(5)).await {
        Ok(_) => panic!("nothing listens on port 1"),
        Err(error) => error.to_string(),
    };
    for secret in [password, "pa/ss", "Qu3ry-s3cret"] {
        assert!(!error.contains(secret), "`{secret}` in: {error}");
    }
    assert!(
        error.contains("postgres://app:***@127.0.0.1:1/aimate"),
        "{error}"
    );
}
