//! Helpers: the built binary, a temp working directory, free ports, waiting for HTTP.

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

pub fn aimate_bin() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_aimate-e2e"))
}

/// A command for `aimate` running in `dir`, isolated from the developer's environment:
/// no inherited AIMATE_*, nor the platform variables the server honours (DATABASE_URL,
/// REDIS_URL, PORT). A test that wants one sets it.
pub fn aimate(dir: &Path) -> Command {
    let mut command = Command::new(aimate_bin());
    command.current_dir(dir);
    for (key, _) in std::env::vars() {
        if key.starts_with("AIMATE_")
            || ["DATABASE_URL", "REDIS_URL", "PORT"].contains(&key.as_str())
        {
            command.env_remove(key);
        }
    }
    command.env("AIMATE_LOG", "info");
    command
}

/// A child process killed and reaped when dropped: a test that fails half-way leaves no
/// server behind (nor a pipe held open by one).
pub struct Reaped(pub Child);

impl std::ops::Deref for Reaped {
    type Target = Child;
    fn deref(&self) -> &Child {
        &self.0
    }
}

impl std::ops::DerefMut for Reaped {
    fn deref_mut(&mut self) -> &mut Child {
        &mut self.0
    }
}

impl Drop for Reaped {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

pub fn run(command: &mut Command) -> Output {
    command.stdin(Stdio::null()).output().expect("run aimate")
}

/// Where `program` is on PATH, if it is installed.
pub fn find_on_path(program: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .map(|dir| dir.join(program))
        .find(|p| p.is_file())
}

/// A port that was free a moment ago.
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("free port")
}

/// Polls `url` until it answers 200 or `timeout` passes.
pub fn wait_ready(url: &str, child: &mut Child, timeout: Duration) {
    let client = reqwest::blocking::Client::builder()
        .timeout(Duration::from_millis(500))
        .build()
        .unwrap();
    let started = Instant::now();
    while started.elapsed() < timeout {
        if let Some(status) = child.try_wait().unwrap() {
            panic!("aimate exited early with {status}");
        }
        if client.get(url).send().is_ok_and(|r| r.status() == 200) {
            return;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    panic!("{url} not ready after {timeout:?}");
}

/// Spawns `command`, an `aimate serve` listening on 127.0.0.1:`port`, and waits until its
/// readiness answers 200: the running server and its base URL.
pub fn serve_ready(command: &mut Command, port: u16) -> (Reaped, String) {
    let mut server = Reaped(command.spawn().expect("spawn aimate serve"));
    let base = format!("http://127.0.0.1:{port}");
    wait_ready(
        &format!("{base}/api/health"),
        &mut server,
        Duration::from_secs(20),
    );
    (server, base)
}

/// `aimate serve` on a free port with the admin token `e2e-admin` and `extra` flags,
/// ready: the server and its base URL.
pub fn admin_server(dir: &Path, extra: &[&str]) -> (Reaped, String) {
    let port = free_port();
    serve_ready(
        aimate(dir)
            .args([
                "serve",
                "--bind",
                &format!("127.0.0.1:{port}"),
                "--log-dir",
                "-",
            ])
            .args(extra)
            .env("AIMATE_ADMIN_TOKEN", "e2e-admin")
            .env("AIMATE_LOG", "warn")
            .stdout(Stdio::null()),
        port,
    )
}

/// Waits for the child to exit, killing it after `timeout`.
pub fn wait_exit(child: &mut Child, timeout: Duration) -> Option<std::process::ExitStatus> {
    let started = Instant::now();
    while started.elapsed() < timeout {
        if let Some(status) = child.try_wait().unwrap() {
            return Some(status);
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let _ = child.kill();
    None
}

pub fn send_signal(child: &Child, signal: &str) {
    let status = Command::new("kill")
        .arg(format!("-{signal}"))
        .arg(child.id().to_string())
        .status()
        .expect("kill");
    assert!(status.success());
}

/// A JSON file the run wrote.
pub fn read_json(path: &Path) -> serde_json::Value {
    serde_json::from_slice(
        &std::fs::read(path).unwrap_or_else(|e| panic!("{}: {e}", path.display())),
    )
    .unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// The first run directory under `out` and its `run.json`.
pub fn first_run(out: &Path) -> (PathBuf, serde_json::Value) {
    let run_dir = std::fs::read_dir(out)
        .unwrap()
        .next()
        .unwrap()
        .unwrap()
        .path();
    let record = read_json(&run_dir.join("run.json"));
    (run_dir, record)
}

/// A Prometheus scraping `instances` (host:port) every second, or `None` when none is
/// installed.
pub fn start_prometheus(dir: &Path, instances: &[String]) -> Option<(Reaped, String)> {
    let prometheus = find_on_path("prometheus")?;
    let config = dir.join("prometheus.yml");
    std::fs::write(
        &config,
        format!(
            "global:\n  scrape_interval: 1s\nscrape_configs:\n  - job_name: aimate\n    \
             metrics_path: /api/metrics\n    static_configs:\n      - targets: [{}]\n",
            instances
                .iter()
                .map(|i| format!("'{i}'"))
                .collect::<Vec<_>>()
                .join(", ")
        ),
    )
    .unwrap();
    let listen = format!("127.0.0.1:{}", free_port());
    let child = Command::new(prometheus)
        .arg(format!("--config.file={}", config.display()))
        .arg(format!(
            "--storage.tsdb.path={}",
            dir.join("tsdb").display()
        ))
        .arg(format!("--web.listen-address={listen}"))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .ok()?;
    Some((Reaped(child), format!("http://{listen}")))
}
