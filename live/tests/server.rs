//! The live view over real sockets: what it serves, to whom, and what a page that stops
//! reading costs the run (nothing but being dropped).

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::{Duration, Instant};

use aimate_live::hub::{CHANNEL_CAPACITY, Key};
use aimate_live::{Hub, LiveServer, RunFeed};

/// Sends a raw request and reads the whole answer (the server closes or ends the body).
fn request(addr: SocketAddr, method: &str, path: &str, host: &str) -> (u16, String) {
    let mut stream = TcpStream::connect(addr).unwrap_or_else(|e| panic!("connect: {e}"));
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap_or_else(|e| panic!("{e}"));
    write!(
        stream,
        "{method} {path} HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n"
    )
    .unwrap_or_else(|e| panic!("write: {e}"));
    let mut answer = String::new();
    stream
        .read_to_string(&mut answer)
        .unwrap_or_else(|e| panic!("read {path}: {e}"));
    let status = answer
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    (status, answer)
}

fn loopback_view() -> (LiveServer, RunFeed) {
    let hub = Hub::new();
    let run = RunFeed::new(hub.clone(), "test run");
    let addr: SocketAddr = "127.0.0.1:0".parse().unwrap_or_else(|e| panic!("{e}"));
    let server = LiveServer::start(addr, hub).unwrap_or_else(|e| panic!("{e}"));
    (server, run)
}

#[test]
fn the_page_and_its_scripts_come_from_the_binary_with_a_strict_policy() {
    let (server, _run) = loopback_view();
    let host = server.addr().to_string();
    let (status, page) = request(server.addr(), "GET", "/", &host);
    assert_eq!(status, 200, "{page}");
    assert!(page.contains("assets/live.js") && page.contains("assets/uPlot.iife.min.js"));
    assert!(
        page.to_ascii_lowercase()
            .contains("content-security-policy: default-src 'self'"),
        "{page}"
    );
    let (status, script) = request(server.addr(), "GET", "/assets/uPlot.iife.min.js", &host);
    assert_eq!(status, 200);
    assert!(script.contains("uPlot"));
    let (status, licence) = request(server.addr(), "GET", "/assets/uPlot.LICENSE", &host);
    assert_eq!(status, 200);
    assert!(licence.contains("MIT"));
    assert_eq!(
        request(server.addr(), "GET", "/assets/nothing.js", &host).0,
        404
    );
    // Read-only.
    assert_eq!(request(server.addr(), "POST", "/events", &host).0, 405);
    assert_eq!(request(server.addr(), "DELETE", "/", &host).0, 405);
}

#[test]
fn on_loopback_only_loopback_hosts_are_answered() {
    let (server, _run) = loopback_view();
    let port = server.addr().port();
    for host in [format!("localhost:{port}"), format!("127.0.0.1:{port}")] {
        assert_eq!(request(server.addr(), "GET", "/", &host).0, 200, "{host}");
    }
    // A page elsewhere that rebinds its name to 127.0.0.1 still sends its own name.
    let (status, body) = request(server.addr(), "GET", "/events", "attacker.example");
    assert_eq!(status, 403);
    assert!(
        body.contains("\"error\":\"the live view answers only"),
        "{body}"
    );
    assert!(server.url().starts_with("http://127.0.0.1:") && !server.url().contains("token"));
}

#[test]
fn beyond_loopback_every_request_for_run_data_needs_the_token() {
    let hub = Hub::new();
    let _run = RunFeed::new(hub.clone(), "test run");
    let any: SocketAddr = "0.0.0.0:0".parse().unwrap_or_else(|e| panic!("{e}"));
    let server = LiveServer::start(any, hub).unwrap_or_else(|e| panic!("{e}"));
    let token = server
        .token()
        .unwrap_or_else(|| panic!("no token"))
        .to_owned();
    assert!(
        server.url().ends_with(&format!("/?token={token}")),
        "{}",
        server.url()
    );
    let local: SocketAddr = format!("127.0.0.1:{}", server.addr().port())
        .parse()
        .unwrap_or_else(|e| panic!("{e}"));
    let host = "monitor.example";
    for path in ["/", "/events", "/report/0/index.html"] {
        let (status, body) = request(local, "GET", path, host);
        assert_eq!(status, 401, "{path}: {body}");
        assert!(body.contains("token"), "{body}");
        let wrong = format!("{path}?token={}", "0".repeat(64));
        assert_eq!(request(local, "GET", &wrong, host).0, 401, "{path}");
    }
    assert_eq!(
        request(local, "GET", &format!("/?token={token}"), host).0,
        200
    );
    // The scripts carry no run data.
    assert_eq!(request(local, "GET", "/assets/live.js", host).0, 200);
}

#[test]
fn a_page_gets_what_happened_before_it_came_then_the_rest_and_the_stream_ends_with_the_run() {
    let (server, run) = loopback_view();
    let part = run.part("ladder", "ladder", 10_000, Default::default());
    part.clock(1_000, 0);
    let addr = server.addr();
    let host = addr.to_string();
    let reader = std::thread::spawn(move || request(addr, "GET", "/events", &host));
    // Published while the page reads, then the end: its stream must end by itself.
    std::thread::sleep(Duration::from_millis(300));
    part.clock(2_000, 0);
    run.end();
    let (status, body) = reader.join().unwrap_or_else(|_| panic!("reader panicked"));
    assert_eq!(status, 200);
    assert!(body.contains("content-type: text/event-stream"), "{body}");
    let events: Vec<&str> = body
        .lines()
        .filter_map(|l| l.strip_prefix("event: "))
        .collect();
    assert_eq!(events, ["run", "part", "clock", "clock", "run"], "{body}");
    assert!(body.contains("\"ended\":true"), "{body}");
    assert!(body.contains("retry: 1000"), "{body}");
}

#[test]
fn a_finished_parts_report_is_served_and_nothing_beside_it() {
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    std::fs::write(dir.path().join("index.html"), "<h1>report</h1>")
        .unwrap_or_else(|e| panic!("{e}"));
    let secret = dir
        .path()
        .parent()
        .unwrap_or(dir.path())
        .join("aimate-live-secret.txt");
    let (server, run) = loopback_view();
    let host = server.addr().to_string();
    let part = run.part("ladder", "ladder", 1_000, Default::default());
    assert_eq!(
        request(server.addr(), "GET", "/report/0/index.html", &host).0,
        404
    );
    let report = aimate_reports::grade::Report {
        verdict: aimate_reports::grade::Verdict::Pass,
        grades: Vec::new(),
        baseline: Vec::new(),
    };
    part.finish(&report, Some(dir.path()), Some("there".into()));
    let (status, body) = request(server.addr(), "GET", "/report/0/index.html", &host);
    assert_eq!(status, 200);
    assert!(body.contains("<h1>report</h1>"));
    assert_eq!(request(server.addr(), "GET", "/report/0/", &host).0, 200);
    for path in [
        "/report/0/..%2Faimate-live-secret.txt".to_owned(),
        "/report/0/.hidden".to_owned(),
        format!("/report/0/{}", secret.display()),
        "/report/1/index.html".to_owned(),
    ] {
        assert_eq!(request(server.addr(), "GET", &path, &host).0, 404, "{path}");
    }
}

#[test]
fn a_page_that_stops_reading_is_dropped_and_never_slows_the_run() {
    let (server, run) = loopback_view();
    let hub = server.hub.clone();
    let _part = run.part("ladder", "ladder", 1_000, Default::default());
    // A page that connects and then never reads.
    let mut stalled = TcpStream::connect(server.addr()).unwrap_or_else(|e| panic!("{e}"));
    write!(
        stalled,
        "GET /events HTTP/1.1\r\nHost: {}\r\n\r\n",
        server.addr()
    )
    .unwrap_or_else(|e| panic!("{e}"));
    let connected = Instant::now();
    while hub.clients() == 0 {
        assert!(
            connected.elapsed() < Duration::from_secs(5),
            "never connected"
        );
        std::thread::sleep(Duration::from_millis(10));
    }
    // Far more than the socket buffers and the channel hold: 100 KiB frames.
    let big = "x".repeat(100 * 1024);
    for i in 0..(2 * CHANNEL_CAPACITY as u64) {
        hub.publish(Key::Second(0, 0, i * 1000), "second", &big);
    }
    // Publishing returned (the run did not wait); the page fell behind and is dropped.
    let published = Instant::now();
    while hub.clients() > 0 {
        assert!(
            published.elapsed() < Duration::from_secs(10),
            "a page that stopped reading was never dropped"
        );
        std::thread::sleep(Duration::from_millis(20));
        // The server notices only when it writes again.
        hub.publish(Key::Clock(0), "clock", &0);
    }
    drop(stalled);
}
