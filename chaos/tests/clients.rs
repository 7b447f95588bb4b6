//! The fault proxy driven by published Toxiproxy clients from two ecosystems, through
//! every call each offers, with the effect of each checked on real traffic (the scripts
//! in tests/clients/). The clients come from `scripts/install-toxiproxy-clients.sh`
//! (which `.ci/run` runs); without them these tests say they were skipped.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::path::{Path, PathBuf};

use aimate_chaos::api::{ApiState, router};
use support::echo_server;
use tokio::net::TcpListener;
use tokio::process::Command;

fn clients_dir() -> PathBuf {
    std::env::var_os("AIMATE_TOXIPROXY_CLIENTS").map_or_else(
        || {
            Path::new(&std::env::var_os("HOME").unwrap_or_default())
                .join(".cache/aimate/toxiproxy-clients")
        },
        PathBuf::from,
    )
}

fn script(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/clients")
        .join(name)
}

/// A control API on a free port, and two echo upstreams.
async fn setup() -> (std::net::SocketAddr, String, String) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let app = router(ApiState::new(None, addr));
    tokio::spawn(async move { axum::serve(listener, app).await });
    (addr, echo_server().await, echo_server().await)
}

/// Runs a client script; asserts it passed every check, and says how many.
async fn passes(command: &mut Command, client: &str) {
    let output = command.output().await.unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        output.status.success(),
        "{client} failed:\n{stdout}\n{stderr}"
    );
    assert!(stdout.starts_with("ok: "), "{stdout}");
    eprintln!("{client}: {}", stdout.trim());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_node_client_drives_every_call() {
    let modules = clients_dir().join("node/node_modules");
    if !modules.join("toxiproxy-node-client").is_dir() {
        eprintln!(
            "skipped: toxiproxy-node-client is not installed (scripts/install-toxiproxy-clients.sh)"
        );
        return;
    }
    let (api, upstream, other) = setup().await;
    passes(
        Command::new("node")
            .arg(script("node-client.js"))
            .env("NODE_PATH", &modules)
            .env("TOXIPROXY_URL", format!("http://{api}"))
            .env("UPSTREAM", &upstream)
            .env("OTHER_UPSTREAM", &other),
        "toxiproxy-node-client 4.1.0",
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_python_client_drives_every_call() {
    let python = clients_dir().join("python/bin/python");
    if !python.is_file() {
        eprintln!(
            "skipped: toxiproxy-python is not installed (scripts/install-toxiproxy-clients.sh)"
        );
        return;
    }
    let (api, upstream, other) = setup().await;
    passes(
        Command::new(python)
            .arg(script("python-client.py"))
            .env("TOXIPROXY_HOST", api.ip().to_string())
            .env("TOXIPROXY_PORT", api.port().to_string())
            .env("UPSTREAM", &upstream)
            .env("OTHER_UPSTREAM", &other),
        "toxiproxy-python 0.1.1",
    )
    .await;
}
