//! HTTP-aware toxics on the real server through the proxy: a share of matching requests
//! answered by the proxy (never reaching the server), one route delayed, a response cut
//! mid-way; keep-alive and pipelined requests kept in order; non-HTTP bytes untouched.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::time::{Duration, Instant};

use aimate_chaos::proxy::Proxy;
use aimate_chaos::toxic::{HttpMatch, Stream, Toxic, ToxicKind};
use serde_json::{Value, json};
use support::echo_server;
use support::server::{Server, server};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

fn matching(method: &str, path_prefix: &str, share: f64) -> HttpMatch {
    HttpMatch {
        method: method.into(),
        path_prefix: path_prefix.into(),
        share,
    }
}

fn toxic(name: &str, kind: ToxicKind) -> Toxic {
    Toxic {
        name: name.into(),
        kind,
        // Given as downstream, as a Toxiproxy client would by default: normalized.
        stream: Stream::Downstream,
        toxicity: 1.0,
    }
}

fn unavailable(share: f64) -> Toxic {
    toxic(
        "fail_invoice_writes",
        ToxicKind::HttpStatus {
            matching: matching("POST", "/api/invoices", share),
            status: 503,
            body: r#"{"error":"injected"}"#.into(),
            retry_after: Some(7),
        },
    )
}

async fn setup() -> (Server, Proxy, String) {
    let server = server(|_| {}).await;
    let proxy = Proxy::start("api", "127.0.0.1:0", &server.addr.to_string())
        .await
        .unwrap();
    let base = format!("http://{}", proxy.listen_addr());
    (server, proxy, base)
}

fn invoice(n: usize) -> Value {
    json!({"customer": format!("c{n}"), "amount_cents": 100, "status": "draft", "due_on": "2027-01-01"})
}

async fn invoices_on_server(server: &Server) -> usize {
    let listed: Value = reqwest::Client::new()
        .get(format!("http://{}/api/invoices?limit=200", server.addr))
        .bearer_auth(&server.key)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    listed["items"].as_array().map_or(0, Vec::len)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn http_status_answers_matching_requests_without_the_server() {
    let (server, proxy, base) = setup().await;
    // One keep-alive client for everything: the toxic acts on an open connection.
    let client = reqwest::Client::new();
    let created = client
        .post(format!("{base}/api/invoices"))
        .bearer_auth(&server.key)
        .json(&invoice(0))
        .send()
        .await
        .unwrap();
    assert_eq!(created.status(), 201);

    proxy.add_toxic(unavailable(1.0)).unwrap();
    assert_eq!(proxy.toxics()[0].stream, Stream::Upstream, "normalized");
    let refused = client
        .post(format!("{base}/api/invoices"))
        .bearer_auth(&server.key)
        .json(&invoice(1))
        .send()
        .await
        .unwrap();
    assert_eq!(refused.status(), 503);
    assert_eq!(refused.headers()["retry-after"], "7");
    assert_eq!(refused.text().await.unwrap(), r#"{"error":"injected"}"#);
    // Reads on the same connection still reach the server.
    let listed = client
        .get(format!("{base}/api/invoices"))
        .bearer_auth(&server.key)
        .send()
        .await
        .unwrap();
    assert_eq!(listed.status(), 200);
    assert_eq!(
        invoices_on_server(&server).await,
        1,
        "the 503'd write never arrived"
    );

    // A share: 10 % of 200 writes.
    proxy.remove_toxic("fail_invoice_writes").unwrap();
    proxy.add_toxic(unavailable(0.1)).unwrap();
    let mut failed = 0;
    for n in 0..200 {
        let status = client
            .post(format!("{base}/api/invoices"))
            .bearer_auth(&server.key)
            .json(&invoice(n + 10))
            .send()
            .await
            .unwrap()
            .status();
        match status.as_u16() {
            201 => {}
            503 => failed += 1,
            other => panic!("unexpected {other}"),
        }
    }
    // Binomial(200, 0.1): 20 expected; 8–35 holds with a probability above 99.9 %.
    assert!(
        (8..=35).contains(&failed),
        "{failed} of 200 failed at a 10 % share"
    );
    assert_eq!(invoices_on_server(&server).await, 1 + 200 - failed);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn http_delay_slows_only_the_matching_route() {
    let (server, proxy, base) = setup().await;
    proxy
        .add_toxic(toxic(
            "slow_dashboard",
            ToxicKind::HttpDelay {
                matching: matching("GET", "/api/dashboard", 1.0),
                delay: 300,
            },
        ))
        .unwrap();
    let client = reqwest::Client::new();
    let timed = |path: &'static str| {
        let (client, base, key) = (client.clone(), base.clone(), server.key.clone());
        async move {
            let started = Instant::now();
            let response = client
                .get(format!("{base}{path}"))
                .bearer_auth(key)
                .send()
                .await
                .unwrap();
            assert_eq!(response.status(), 200, "{path}");
            response.bytes().await.unwrap();
            started.elapsed()
        }
    };
    let dashboard = timed("/api/dashboard").await;
    let jobs = timed("/api/jobs").await;
    assert!(dashboard >= Duration::from_millis(300), "{dashboard:?}");
    assert!(jobs < Duration::from_millis(150), "{jobs:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn http_abort_cuts_the_matching_response_mid_way() {
    let (server, proxy, base) = setup().await;
    proxy
        .add_toxic(toxic(
            "cut_lists",
            ToxicKind::HttpAbort {
                matching: matching("GET", "/api/invoices", 1.0),
                after_bytes: 5,
            },
        ))
        .unwrap();
    let client = reqwest::Client::new();
    let cut = client
        .get(format!("{base}/api/invoices"))
        .bearer_auth(&server.key)
        .send()
        .await;
    // The head arrived; the body was cut after 5 bytes by a reset.
    let body = match cut {
        Ok(response) => {
            assert_eq!(response.status(), 200);
            response.bytes().await.map(|b| b.len())
        }
        Err(error) => Err(error),
    };
    assert!(body.is_err(), "the body should have failed, got {body:?}");
    let other = client
        .get(format!("{base}/api/jobs"))
        .bearer_auth(&server.key)
        .send()
        .await
        .unwrap();
    assert_eq!(other.status(), 200);
    assert!(other.bytes().await.is_ok());
}

/// Reads `count` HTTP/1.1 responses with a Content-Length from `stream`; returns their
/// status codes in order.
async fn read_statuses(stream: &mut TcpStream, count: usize) -> Vec<u16> {
    let mut buffer = Vec::new();
    let mut statuses = Vec::new();
    let mut chunk = [0u8; 16 * 1024];
    while statuses.len() < count {
        let mut headers = [httparse::EMPTY_HEADER; 32];
        let mut response = httparse::Response::new(&mut headers);
        if let Ok(httparse::Status::Complete(head)) = response.parse(&buffer) {
            let length: usize = response
                .headers
                .iter()
                .find(|h| h.name.eq_ignore_ascii_case("content-length"))
                .map_or(0, |h| {
                    std::str::from_utf8(h.value).unwrap().parse().unwrap()
                });
            if buffer.len() >= head + length {
                statuses.push(response.code.unwrap());
                buffer.drain(..head + length);
                continue;
            }
        }
        let n = tokio::time::timeout(Duration::from_secs(5), stream.read(&mut chunk))
            .await
            .unwrap()
            .unwrap();
        assert!(n > 0, "closed after {statuses:?}");
        buffer.extend_from_slice(&chunk[..n]);
    }
    statuses
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pipelined_requests_get_their_answers_in_order() {
    let (server, proxy, _) = setup().await;
    proxy.add_toxic(unavailable(1.0)).unwrap();
    let key = &server.key;
    let body = invoice(1).to_string();
    let get = format!("GET /api/jobs HTTP/1.1\r\nhost: x\r\nauthorization: Bearer {key}\r\n\r\n");
    let post = format!(
        "POST /api/invoices HTTP/1.1\r\nhost: x\r\nauthorization: Bearer {key}\r\n\
         content-type: application/json\r\ncontent-length: {}\r\n\r\n{body}",
        body.len()
    );
    // The very first request of a fresh connection, answered here before the response
    // side of the link has even started.
    for _ in 0..20 {
        let mut fresh = TcpStream::connect(proxy.listen_addr()).await.unwrap();
        fresh.write_all(post.as_bytes()).await.unwrap();
        assert_eq!(read_statuses(&mut fresh, 1).await, [503]);
    }
    let mut stream = TcpStream::connect(proxy.listen_addr()).await.unwrap();
    // Three requests in one write: the 503 must come between the two 200s.
    stream
        .write_all(format!("{get}{post}{get}").as_bytes())
        .await
        .unwrap();
    assert_eq!(read_statuses(&mut stream, 3).await, [200, 503, 200]);
    // The same connection goes on: a matching request alone is answered at once.
    stream.write_all(post.as_bytes()).await.unwrap();
    assert_eq!(read_statuses(&mut stream, 1).await, [503]);
    stream.write_all(get.as_bytes()).await.unwrap();
    assert_eq!(read_statuses(&mut stream, 1).await, [200]);
}

#[tokio::test]
async fn non_http_traffic_passes_untouched() {
    let proxy = Proxy::start("echo", "127.0.0.1:0", &echo_server().await)
        .await
        .unwrap();
    proxy
        .add_toxic(toxic(
            "everything",
            ToxicKind::HttpStatus {
                matching: matching("", "", 1.0),
                status: 503,
                body: String::new(),
                retry_after: None,
            },
        ))
        .unwrap();
    let mut stream = TcpStream::connect(proxy.listen_addr()).await.unwrap();
    let message: Vec<u8> = (0..=255u8).cycle().take(10_000).collect();
    stream.write_all(&message).await.unwrap();
    let mut back = vec![0u8; message.len()];
    stream.read_exact(&mut back).await.unwrap();
    assert_eq!(back, message);
}
