use std::time::Duration;

use crate::common::{aimate, free_port, run, send_signal, serve_ready, wait_exit};

#[test]
fn sigterm_drains_and_flushes_logs() {
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let (mut server, base) = serve_ready(
        aimate(dir.path())
            .args([
                "serve",
                "--bind",
                &format!("127.0.0.1:{port}"),
                "--shutdown-delay",
                "300ms",
            ])
            .env("AIMATE_ADMIN_TOKEN", "secret-admin-token")
            .stdout(std::process::Stdio::piped()),
        port,
    );
    let client = reqwest::blocking::Client::new();
    let tenant: serde_json::Value = client
        .post(format!("{base}/api/admin/tenants"))
        .bearer_auth("secret-admin-token")
        .json(&serde_json::json!({"name": "Acme"}))
        .send()
        .unwrap()
        .json()
        .unwrap();
    let key = tenant["api_key"].as_str().unwrap().to_owned();
    let response = client
        .get(format!("{base}/api/dashboard"))
        .bearer_auth(&key)
        .header("x-request-id", "e2e-req-1")
        .send()
        .unwrap();
    assert_eq!(response.status(), 200);

    send_signal(&server, "TERM");
    let status = wait_exit(&mut server, Duration::from_secs(15)).expect("exits after SIGTERM");
    assert!(status.success(), "{status}");

    // One JSON object per line, on stdout and in logs/ai-mate-YYYY-MM-DD.log.
    let stdout = std::io::read_to_string(server.stdout.take().unwrap()).unwrap();
    let logs: Vec<_> = std::fs::read_dir(dir.path().join("logs"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    assert_eq!(logs.len(), 1);
    let name = logs[0].file_name().unwrap().to_str().unwrap().to_owned();
    assert!(
        name.starts_with("ai-mate-")
            && name.ends_with(".log")
            && name.len() == "ai-mate-2026-11-28.log".len(),
        "{name}"
    );
    let file = std::fs::read_to_string(&logs[0]).unwrap();
    for text in [&stdout, &file] {
        for line in text.lines() {
            serde_json::from_str::<serde_json::Value>(line)
                .unwrap_or_else(|e| panic!("not JSON ({e}): {line}"));
        }
        assert!(
            text.contains("\"request_id\":\"e2e-req-1\""),
            "request id logged"
        );
        assert!(text.contains("shutdown complete"), "last line flushed");
        // No secrets in logs.
        assert!(
            !text.contains(&key) && !text.contains("secret-admin-token"),
            "secret leaked into logs"
        );
    }
}

#[test]
fn usage_and_config_errors_exit_2() {
    let dir = tempfile::tempdir().unwrap();
    let output = run(aimate(dir.path()).args(["serve", "--db-acquire-timeout", "soon"]));
    assert_eq!(output.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&output.stderr).contains("--db-acquire-timeout"));
    let output = run(aimate(dir.path()).args(["serve", "--cors-origins", "example.com"]));
    assert_eq!(output.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&output.stderr).contains("not an origin"));
    let output = run(aimate(dir.path()).args(["frobnicate"]));
    assert_eq!(output.status.code(), Some(2));

    // A port already taken: a one-line error, exit 2.
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = taken.local_addr().unwrap().to_string();
    let output = run(aimate(dir.path()).args(["serve", "--bind", &addr]));
    assert_eq!(output.status.code(), Some(2));
    let stderr = String::from_utf8(output.stderr).unwrap();
    assert!(stderr.contains("cannot listen on"), "{stderr}");
}

/// A password with `@`, `:` and `/` (raw, as people paste it) and a secret query value.
const PASSWORD: &str = "s3cr@t:pa/ss";
const QUERY_SECRET: &str = "Qu3ry-s3cret";

fn secret_url() -> String {
    // Port 1: nothing listens, so connecting fails and the error is shown.
    format!("postgres://app:{PASSWORD}@127.0.0.1:1/aimate?sslpassword={QUERY_SECRET}")
}

fn assert_no_secret(what: &str, text: &str) {
    for secret in [PASSWORD, "pa/ss", QUERY_SECRET] {
        assert!(!text.contains(secret), "{what} shows `{secret}`:\n{text}");
    }
}

#[test]
fn no_database_password_reaches_an_error_or_help_text() {
    let dir = tempfile::tempdir().unwrap();
    // The server refuses to start, saying why, without the password.
    let output = run(aimate(dir.path())
        .args([
            "serve",
            "--bind",
            "127.0.0.1:0",
            "--db-acquire-timeout",
            "1s",
        ])
        .env("DATABASE_URL", secret_url()));
    assert_ne!(output.status.code(), Some(0));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("cannot connect"), "{stderr}");
    assert_no_secret(
        "serve's error",
        &format!("{stderr}{}", String::from_utf8_lossy(&output.stdout)),
    );
    // Help never prints the values of the secret-holding variables.
    for args in [&["serve", "--help"][..], &["chaos", "run", "--help"][..]] {
        let output = run(aimate(dir.path())
            .args(args)
            .env("DATABASE_URL", secret_url())
            .env("AIMATE_CHAOS_DATABASE_URL", secret_url())
            .env("AIMATE_ADMIN_TOKEN", QUERY_SECRET));
        assert_eq!(output.status.code(), Some(0), "{args:?}");
        assert_no_secret(
            &format!("{args:?}"),
            &String::from_utf8_lossy(&output.stdout),
        );
    }
}

/// What readiness says, as JSON (200 or 503).
fn readiness(base: &str) -> serde_json::Value {
    reqwest::blocking::get(format!("{base}/api/health"))
        .unwrap()
        .json()
        .unwrap()
}

#[test]
fn a_platforms_port_and_redis_url_are_honoured() {
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    // Nothing listens on port 1: the server must still come up, its cache degraded,
    // which shows it took the platform's REDIS_URL.
    let (mut server, base) = serve_ready(
        aimate(dir.path())
            .args(["serve", "--log-dir", "-"])
            .env("PORT", port.to_string())
            .env("REDIS_URL", "redis://127.0.0.1:1")
            .stdout(std::process::Stdio::piped()),
        port,
    );
    let health = readiness(&base);
    assert_eq!(health["cache"]["kind"], "memory+redis", "{health}");

    // `aimate probe` finds the same server through PORT, and a 404 is unhealthy.
    let probe = |target: &str| {
        run(aimate(dir.path())
            .args(["probe", target])
            .env("PORT", port.to_string()))
    };
    let output = probe("/health");
    assert_eq!(output.status.code(), Some(0), "{output:?}");
    assert!(
        String::from_utf8_lossy(&output.stdout).contains(&format!("127.0.0.1:{port}/health: 200"))
    );
    let output = probe("/no-such-route");
    assert_eq!(output.status.code(), Some(1), "{output:?}");
    assert!(
        String::from_utf8_lossy(&output.stderr).contains("404"),
        "{output:?}"
    );

    send_signal(&server, "TERM");
    let status = wait_exit(&mut server, Duration::from_secs(15)).expect("exits after SIGTERM");
    assert!(status.success(), "{status}");
    // Bound to every interface, as a container needs, and no log files with `-`.
    let stdout = std::io::read_to_string(server.stdout.take().unwrap()).unwrap();
    assert!(
        stdout.contains(&format!("\"addr\":\"0.0.0.0:{port}\"")),
        "{stdout}"
    );
    assert!(!dir.path().join("logs").exists() && !dir.path().join("-").exists());
}

#[test]
fn aimate_redis_url_wins_over_the_platforms_and_bind_over_port() {
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    // A REDIS_URL that is not even a Redis URL is never looked at, nor a PORT beside --bind.
    let (_server, base) = serve_ready(
        aimate(dir.path())
            .args([
                "serve",
                "--log-dir",
                "-",
                "--bind",
                &format!("127.0.0.1:{port}"),
            ])
            .env("PORT", "not-a-port")
            .env("AIMATE_REDIS_URL", "redis://127.0.0.1:1")
            .env("REDIS_URL", "mysql://elsewhere")
            .stdout(std::process::Stdio::null()),
        port,
    );
    assert_eq!(readiness(&base)["cache"]["kind"], "memory+redis");
}

#[test]
fn a_bad_port_or_redis_url_from_the_platform_is_one_line_and_exit_2() {
    let dir = tempfile::tempdir().unwrap();
    for (name, value, expected) in [
        (
            "PORT",
            "eighty",
            "aimate: error: PORT=`eighty` is not a port number (1-65535)",
        ),
        (
            "PORT",
            "70000",
            "aimate: error: PORT=`70000` is not a port number (1-65535)",
        ),
        (
            "REDIS_URL",
            "http://u:pw@cache",
            "aimate: error: REDIS_URL: `http://u:***@cache` is not a Redis URL",
        ),
    ] {
        let output = run(aimate(dir.path()).arg("serve").env(name, value));
        assert_eq!(output.status.code(), Some(2), "{name}={value}: {output:?}");
        let stderr = String::from_utf8(output.stderr).unwrap();
        assert_eq!(stderr.lines().count(), 1, "{stderr}");
        assert!(stderr.starts_with(expected), "{stderr}");
    }
}

#[test]
fn probe_of_a_server_that_is_not_there_is_unhealthy() {
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let output = run(aimate(dir.path()).args([
        "probe",
        &format!("http://127.0.0.1:{port}/api/health"),
        "--timeout",
        "1s",
    ]));
    assert_eq!(output.status.code(), Some(1), "{output:?}");
    let stderr = String::from_utf8(output.stderr).unwrap();
    assert!(stderr.contains("no answer"), "{stderr}");
    let output = run(aimate(dir.path()).args(["probe", "health"]));
    assert_eq!(output.status.code(), Some(2), "{output:?}");
}
