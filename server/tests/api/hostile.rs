//! Hostile clients over raw sockets: sockets that never speak, idle keep-alive and h2c
//! connections, a client that never reads its responses, oversized and invalid headers.
//! Each must be cut off on its own, and a normal client must still be served.

use std::time::{Duration, Instant};

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::backend_tests;
use crate::common::{Backend, TestServer};

backend_tests!(
    silent_sockets_are_closed_and_a_full_cap_drains,
    idle_keep_alive_connections_are_closed,
    an_idle_keep_alive_connection_outlives_the_header_read_timeout,
    a_trickled_request_head_is_cut_off,
    idle_h2c_connections_are_closed,
    a_client_that_never_reads_its_responses_is_dropped,
    oversized_and_invalid_headers_get_a_4xx_and_the_server_stays_up
);

/// Reads until the server closes the connection; how long that took, or `None` if it
/// was still open after `limit`.
async fn closed_within(stream: &mut (impl AsyncRead + Unpin), limit: Duration) -> Option<Duration> {
    let started = Instant::now();
    let mut sink = vec![0_u8; 64 * 1024];
    let closed = tokio::time::timeout(limit, async {
        loop {
            match stream.read(&mut sink).await {
                Ok(0) | Err(_) => break,
                Ok(_) => {}
            }
        }
    })
    .await;
    closed.ok().map(|()| started.elapsed())
}

async fn health_status(srv: &TestServer, limit: Duration) -> Result<u16, String> {
    let response = srv
        .client
        .get(srv.url("/health"))
        .timeout(limit)
        .send()
        .await
        .map_err(|error| format!("GET /health failed: {error}"))?;
    Ok(response.status().as_u16())
}

async fn silent_sockets_are_closed_and_a_full_cap_drains(backend: Backend) {
    let Some(srv) = TestServer::start(backend, |c| {
        c.max_connections = 8;
        c.header_read_timeout = Duration::from_millis(500);
    })
    .await
    else {
        return;
    };
    // More silent sockets than the cap: the first 8 hold every slot, the rest wait in
    // the backlog and get their slot as the first ones are closed.
    let mut silent = Vec::new();
    for _ in 0..12 {
        silent.push(TcpStream::connect(srv.addr).await.unwrap());
    }
    // A real client queued behind them is served once the silent ones are cut off.
    let started = Instant::now();
    assert_eq!(health_status(&srv, Duration::from_secs(5)).await, Ok(200));
    assert!(
        started.elapsed() < Duration::from_secs(4),
        "{:?}",
        started.elapsed()
    );
    for (index, socket) in silent.iter_mut().enumerate() {
        let closed = closed_within(socket, Duration::from_secs(5)).await;
        assert!(closed.is_some(), "silent socket {index} was never closed");
    }
    srv.stop().await.unwrap();
}

async fn idle_keep_alive_connections_are_closed(backend: Backend) {
    let Some(srv) = TestServer::start(backend, |c| {
        c.keep_alive_timeout = Duration::from_millis(600);
    })
    .await
    else {
        return;
    };
    let mut stream = TcpStream::connect(srv.addr).await.unwrap();
    // Two requests on one connection, a pause shorter than the timeout between them:
    // activity keeps it open.
    for _ in 0..2 {
        stream
            .write_all(b"GET /health HTTP/1.1\r\nHost: test\r\n\r\n")
            .await
            .unwrap();
        let mut response = [0_u8; 1024];
        let read = stream.read(&mut response).await.unwrap();
        assert!(
            response[..read].starts_with(b"HTTP/1.1 200"),
            "{}",
            String::from_utf8_lossy(&response[..read])
        );
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
    // Then silence: closed after the keep-alive timeout, not before.
    let closed = closed_within(&mut stream, Duration::from_secs(5)).await;
    let closed = closed.expect("an idle keep-alive connection was never closed");
    assert!(
        closed >= Duration::from_millis(150),
        "closed too early: {closed:?}"
    );
    srv.stop().await.unwrap();
}

/// Sends `GET /health` on `stream` and checks the answer is a 200.
async fn health_on(stream: &mut TcpStream) {
    stream
        .write_all(b"GET /health HTTP/1.1\r\nHost: test\r\n\r\n")
        .await
        .unwrap();
    let mut response = [0_u8; 1024];
    let read = stream.read(&mut response).await.unwrap();
    assert!(
        response[..read].starts_with(b"HTTP/1.1 200"),
        "{:?}",
        String::from_utf8_lossy(&response[..read])
    );
}

async fn an_idle_keep_alive_connection_outlives_the_header_read_timeout(backend: Backend) {
    let Some(srv) = TestServer::start(backend, |c| {
        c.header_read_timeout = Duration::from_millis(300);
        c.keep_alive_timeout = Duration::from_millis(1500);
    })
    .await
    else {
        return;
    };
    let mut stream = TcpStream::connect(srv.addr).await.unwrap();
    health_on(&mut stream).await;
    // Idle for three header timeouts, well within keep-alive: the connection is still
    // there (the header timeout is for a head once it started, not for waiting for one).
    tokio::time::sleep(Duration::from_millis(900)).await;
    health_on(&mut stream).await;
    let closed = closed_within(&mut stream, Duration::from_secs(6)).await;
    let closed = closed.expect("an idle keep-alive connection was never closed");
    assert!(
        closed >= Duration::from_millis(1000),
        "closed too early: {closed:?}"
    );
    srv.stop().await.unwrap();
}

async fn a_trickled_request_head_is_cut_off(backend: Backend) {
    let Some(srv) = TestServer::start(backend, |c| {
        c.header_read_timeout = Duration::from_millis(400);
        c.keep_alive_timeout = Duration::from_secs(30);
    })
    .await
    else {
        return;
    };
    let stream = TcpStream::connect(srv.addr).await.unwrap();
    let (mut reader, mut writer) = stream.into_split();
    // A slowloris head: a byte every 50 ms, never finished. Bytes keep moving, so only
    // the head's own deadline can end it.
    let trickle = tokio::spawn(async move {
        writer
            .write_all(b"GET /health HTTP/1.1\r\nX-Slow: ")
            .await?;
        loop {
            writer.write_all(b"a").await?;
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        #[allow(unreachable_code)]
        Ok::<(), std::io::Error>(())
    });
    let closed = closed_within(&mut reader, Duration::from_secs(5)).await;
    trickle.abort();
    let closed = closed.expect("a trickled head kept its connection for 5 s");
    assert!(
        closed < Duration::from_millis(1500),
        "cut off only after {closed:?}"
    );
    assert_eq!(health_status(&srv, Duration::from_secs(5)).await, Ok(200));
    srv.stop().await.unwrap();
}

async fn idle_h2c_connections_are_closed(backend: Backend) {
    let Some(srv) = TestServer::start(backend, |c| {
        c.keep_alive_timeout = Duration::from_millis(600);
        // This client never acknowledges the server's PING after GOAWAY, so the close
        // is only finished by the grace that follows it.
        c.header_read_timeout = Duration::from_millis(500);
    })
    .await
    else {
        return;
    };
    let mut stream = TcpStream::connect(srv.addr).await.unwrap();
    // h2 with prior knowledge: the preface, then an empty SETTINGS frame, then nothing.
    stream
        .write_all(b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n")
        .await
        .unwrap();
    stream
        .write_all(&[0, 0, 0, 0x4, 0, 0, 0, 0, 0])
        .await
        .unwrap();
    let mut received = Vec::new();
    let started = Instant::now();
    let read =
        tokio::time::timeout(Duration::from_secs(5), stream.read_to_end(&mut received)).await;
    assert!(read.is_ok(), "an idle h2c connection was never closed");
    assert!(
        started.elapsed() >= Duration::from_millis(400),
        "{:?}",
        started.elapsed()
    );
    // The server spoke h2 (its SETTINGS frame, type 0x4) and said goodbye (GOAWAY, 0x7).
    let frame_types = h2_frame_types(&received);
    assert_eq!(frame_types.first(), Some(&0x4), "{frame_types:?}");
    assert!(frame_types.contains(&0x7), "no GOAWAY: {frame_types:?}");
    srv.stop().await.unwrap();
}

/// The type of each h2 frame in `bytes` (9-byte headers: 24-bit length, type, flags, id).
fn h2_frame_types(mut bytes: &[u8]) -> Vec<u8> {
    let mut types = Vec::new();
    while bytes.len() >= 9 {
        let length =
            usize::from(bytes[0]) << 16 | usize::from(bytes[1]) << 8 | usize::from(bytes[2]);
        types.push(bytes[3]);
        bytes = &bytes[(9 + length).min(bytes.len())..];
    }
    types
}

async fn a_client_that_never_reads_its_responses_is_dropped(backend: Backend) {
    let Some(srv) = TestServer::start(backend, |c| {
        c.max_connections = 1;
        c.keep_alive_timeout = Duration::from_millis(500);
        c.header_read_timeout = Duration::from_millis(500);
    })
    .await
    else {
        return;
    };
    // Pipelined requests for a large document, never read: the server's writes fill
    // both socket buffers and stall. The connection holds the only slot.
    let stream = TcpStream::connect(srv.addr).await.unwrap();
    let (_unread, mut writer) = stream.into_split();
    let flood = tokio::spawn(async move {
        let request = b"GET /api/openapi.json HTTP/1.1\r\nHost: test\r\n\r\n";
        for _ in 0..5_000 {
            if writer.write_all(request).await.is_err() {
                return;
            }
        }
        // Keep the write half open (no FIN) so only the server can end it.
        std::future::pending::<()>().await;
    });
    tokio::time::sleep(Duration::from_millis(200)).await;
    let started = Instant::now();
    assert_eq!(
        health_status(&srv, Duration::from_secs(8)).await,
        Ok(200),
        "the stalled connection kept the only slot"
    );
    assert!(
        started.elapsed() < Duration::from_secs(6),
        "{:?}",
        started.elapsed()
    );
    flood.abort();
    srv.stop().await.unwrap();
}

async fn oversized_and_invalid_headers_get_a_4xx_and_the_server_stays_up(backend: Backend) {
    let Some(srv) = TestServer::start(backend, |_| {}).await else {
        return;
    };
    let huge_value = "x".repeat(1024 * 1024);
    let many_headers: String = (0..500).map(|i| format!("X-Header-{i}: {i}\r\n")).collect();
    let cases: [(&str, Vec<u8>); 4] = [
        (
            "a 1 MiB header",
            format!("GET /health HTTP/1.1\r\nHost: test\r\nX-Big: {huge_value}\r\n\r\n")
                .into_bytes(),
        ),
        (
            "500 headers",
            format!("GET /health HTTP/1.1\r\nHost: test\r\n{many_headers}\r\n").into_bytes(),
        ),
        (
            "a control byte in a header value",
            b"GET /health HTTP/1.1\r\nHost: test\r\nX-Bad: a\x01b\r\n\r\n".to_vec(),
        ),
        (
            "a space inside a header name",
            b"GET /health HTTP/1.1\r\nHost: test\r\nX Bad: 1\r\n\r\n".to_vec(),
        ),
    ];
    for (what, request) in cases {
        let mut stream = TcpStream::connect(srv.addr).await.unwrap();
        // The server may answer and close before it read everything: a write error is
        // expected for the largest case.
        let _ = stream.write_all(&request).await;
        let mut response = Vec::new();
        let read =
            tokio::time::timeout(Duration::from_secs(5), stream.read_to_end(&mut response)).await;
        assert!(read.is_ok(), "{what}: the connection was left open");
        let head = String::from_utf8_lossy(&response[..response.len().min(40)]).into_owned();
        assert!(
            head.starts_with("HTTP/1.1 4"),
            "{what}: expected a 4xx status line, got {head:?}"
        );
    }
    assert_eq!(health_status(&srv, Duration::from_secs(5)).await, Ok(200));
    srv.stop().await.unwrap();
}
