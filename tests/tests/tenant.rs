use std::time::Duration;

use crate::common::{Reaped, aimate, free_port, run, send_signal, wait_exit, wait_ready};

#[test]
fn tenant_create_prints_a_working_key() {
    let dir = tempfile::tempdir().unwrap();
    let output = run(aimate(dir.path()).args(["tenant", "create", "Acme Plumbing"]));
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let stdout = String::from_utf8(output.stdout).unwrap();
    let key = stdout.trim();
    assert_eq!(
        stdout.lines().count(),
        1,
        "the key alone on stdout: {stdout:?}"
    );
    assert!(key.starts_with("amk_"), "{key}");
    assert!(String::from_utf8_lossy(&output.stderr).contains("Acme Plumbing"));

    // The key authenticates against a server on the same data directory.
    let port = free_port();
    let mut server = Reaped(
        aimate(dir.path())
            .args(["serve", "--bind", &format!("127.0.0.1:{port}")])
            .stdout(std::process::Stdio::null())
            .spawn()
            .unwrap(),
    );
    wait_ready(
        &format!("http://127.0.0.1:{port}/api/health"),
        &mut server,
        Duration::from_secs(20),
    );
    let client = reqwest::blocking::Client::new();
    let ok = client
        .get(format!("http://127.0.0.1:{port}/api/dashboard"))
        .bearer_auth(key)
        .send()
        .unwrap();
    assert_eq!(ok.status(), 200);
    let bad = client
        .get(format!("http://127.0.0.1:{port}/api/dashboard"))
        .bearer_auth("amk_nope")
        .send()
        .unwrap();
    assert_eq!(bad.status(), 401);
    send_signal(&server, "TERM");
    assert!(wait_exit(&mut server, Duration::from_secs(15)).is_some_and(|s| s.success()));

    // The key is stored hashed: it appears nowhere in the database files.
    for entry in std::fs::read_dir(dir.path().join("data")).unwrap() {
        let bytes = std::fs::read(entry.unwrap().path()).unwrap();
        assert!(
            !bytes.windows(key.len()).any(|w| w == key.as_bytes()),
            "plaintext key stored"
        );
    }
}

#[test]
fn bad_tenant_input_is_a_one_line_error() {
    let dir = tempfile::tempdir().unwrap();
    let output = run(aimate(dir.path()).args(["tenant", "create", "   "]));
    assert_eq!(output.status.code(), Some(2));
    let stderr = String::from_utf8(output.stderr).unwrap();
    assert_eq!(stderr.trim().lines().count(), 1, "{stderr}");
    assert!(stderr.contains("`name` must not be empty"), "{stderr}");
    assert!(output.stdout.is_empty());

    let output =
        run(aimate(dir.path()).args(["tenant", "create", "X", "--database-url", "mysql://nope"]));
    assert_eq!(output.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&output.stderr).contains("unsupported database URL"));
}

#[test]
fn tenant_keys_rotate_and_revoke_from_the_command_line() {
    let dir = tempfile::tempdir().unwrap();
    let created = run(aimate(dir.path()).args(["tenant", "create", "Acme"]));
    assert!(created.status.success());
    let old_key = String::from_utf8(created.stdout).unwrap().trim().to_owned();
    let stderr = String::from_utf8_lossy(&created.stderr).into_owned();
    // "created tenant 1 (Acme)…"
    let id = stderr
        .split_whitespace()
        .nth(2)
        .and_then(|id| id.parse::<i64>().ok())
        .unwrap_or_else(|| panic!("no tenant id in {stderr:?}"));

    let rotated = run(aimate(dir.path()).args(["tenant", "rotate-key", &id.to_string()]));
    assert!(
        rotated.status.success(),
        "{}",
        String::from_utf8_lossy(&rotated.stderr)
    );
    let new_key = String::from_utf8(rotated.stdout).unwrap().trim().to_owned();
    assert!(
        new_key.starts_with("amk_") && new_key != old_key,
        "{new_key}"
    );

    let port = free_port();
    let mut server = Reaped(
        aimate(dir.path())
            .args(["serve", "--bind", &format!("127.0.0.1:{port}")])
            .stdout(std::process::Stdio::null())
            .spawn()
            .unwrap(),
    );
    wait_ready(
        &format!("http://127.0.0.1:{port}/api/health"),
        &mut server,
        Duration::from_secs(20),
    );
    let client = reqwest::blocking::Client::new();
    let status = |key: &str| {
        client
            .get(format!("http://127.0.0.1:{port}/api/dashboard"))
            .bearer_auth(key)
            .send()
            .unwrap()
            .status()
            .as_u16()
    };
    assert_eq!(status(&old_key), 401);
    assert_eq!(status(&new_key), 200);
    send_signal(&server, "TERM");
    wait_exit(&mut server, Duration::from_secs(20));

    let revoked = run(aimate(dir.path()).args(["tenant", "revoke-key", &id.to_string()]));
    assert!(
        revoked.status.success(),
        "{}",
        String::from_utf8_lossy(&revoked.stderr)
    );
    let missing = run(aimate(dir.path()).args(["tenant", "revoke-key", "999"]));
    assert!(!missing.status.success(), "unknown tenant");
    let said = String::from_utf8_lossy(&missing.stderr);
    assert!(
        said.contains("no tenant with id 999") && said.lines().count() == 1,
        "{said}"
    );

    let mut server = Reaped(
        aimate(dir.path())
            .args(["serve", "--bind", &format!("127.0.0.1:{port}")])
            .stdout(std::process::Stdio::null())
            .spawn()
            .unwrap(),
    );
    wait_ready(
        &format!("http://127.0.0.1:{port}/api/health"),
        &mut server,
        Duration::from_secs(20),
    );
    assert_eq!(status(&new_key), 401, "a revoked key still works");
    send_signal(&server, "TERM");
    wait_exit(&mut server, Duration::from_secs(20));
}
