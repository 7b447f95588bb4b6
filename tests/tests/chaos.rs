use std::process::Stdio;
use std::time::Duration;

use crate::common::{Reaped, aimate, free_port, run, send_signal, wait_exit};

#[test]
fn chaos_proxy_serves_the_control_api_and_stops_on_sigterm() {
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let mut proxy = Reaped(
        aimate(dir.path())
            .args(["chaos", "proxy", "--api", &format!("127.0.0.1:{port}")])
            .stdout(Stdio::null())
            .spawn()
            .unwrap(),
    );
    let client = reqwest::blocking::Client::new();
    let url = format!("http://127.0.0.1:{port}/version");
    let mut answered = false;
    for _ in 0..100 {
        if client.get(&url).send().is_ok_and(|r| r.status() == 200) {
            answered = true;
            break;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    assert!(answered, "control API never answered");
    send_signal(&proxy, "TERM");
    assert!(wait_exit(&mut proxy, Duration::from_secs(10)).is_some_and(|s| s.success()));

    // Exposed without a token, or on a port in use: one line, exit 2.
    let output = run(aimate(dir.path()).args(["chaos", "proxy", "--api", "0.0.0.0:0"]));
    assert_eq!(output.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&output.stderr).contains("needs a token"));
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let output = run(aimate(dir.path()).args([
        "chaos",
        "proxy",
        "--api",
        &taken.local_addr().unwrap().to_string(),
    ]));
    assert_eq!(output.status.code(), Some(2));
    assert_eq!(
        String::from_utf8_lossy(&output.stderr)
            .trim()
            .lines()
            .count(),
        1
    );
}
