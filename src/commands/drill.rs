//! `aimate drill`: the main job, in one command.
//!
//! ```text
//! start `aimate serve` (SQLite in a temp dir) ─ wait for readiness ─ load ladder
//!   ─ stop the server (SIGTERM, bounded) ─ grade against slo.toml
//!   ─ reports/out/<UTC time>/{run.json, report.json, report.md, junit.xml} ─ exit code
//! ```

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitCode, Stdio};
use std::time::{Duration, Instant, SystemTime};

use aimate_loadgen::plan::{LoadPlan, parse_duration};
use aimate_loadgen::scenarios::Mix;
use aimate_loadgen::{AbortGuard, Credentials, LoadOptions};
use aimate_reports::spec::SloSpec;
use anyhow::{Context, anyhow};

use super::experiment::{experiment_files, run_and_report};
use super::load::print_stage;
use super::report::{Baseline, print_verdicts, write_atomically, write_reports};
use crate::Failure;
use crate::cli::DrillArgs;
use aimate_chaos::experiment::Experiment;

/// A server started for the drill; stopped (and killed if it will not stop) on drop.
struct ChildServer {
    child: Child,
    url: String,
    _dir: TempDir,
}

/// A directory removed on drop.
pub struct TempDir(PathBuf);

impl TempDir {
    pub fn new(path: &Path) -> anyhow::Result<Self> {
        std::fs::create_dir_all(path)
            .with_context(|| format!("cannot create {}", path.display()))?;
        Ok(Self(path.to_owned()))
    }

    pub fn path(&self) -> &Path {
        &self.0
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

pub fn random_hex(bytes: usize) -> anyhow::Result<String> {
    use std::io::Read;
    let mut buffer = vec![0u8; bytes];
    std::fs::File::open("/dev/urandom")
        .and_then(|mut f| f.read_exact(&mut buffer))
        .context("cannot read /dev/urandom")?;
    Ok(buffer.iter().map(|b| format!("{b:02x}")).collect())
}

impl ChildServer {
    fn start(admin_token: &str) -> anyhow::Result<Self> {
        let dir =
            TempDir::new(&std::env::temp_dir().join(format!("aimate-drill-{}", random_hex(6)?)))?;
        let port = TcpListener::bind("127.0.0.1:0")?.local_addr()?.port();
        let exe = std::env::current_exe().context("cannot find the aimate binary")?;
        let child = Command::new(exe)
            .args(["serve", "--bind", &format!("127.0.0.1:{port}")])
            .arg("--data-dir")
            .arg(dir.0.join("data"))
            .arg("--log-dir")
            .arg(dir.0.join("logs"))
            .env("AIMATE_ADMIN_TOKEN", admin_token)
            // One drill tenant sends up to 10k req/s: the per-key limit would only
            // measure itself.
            .env("AIMATE_RATE_LIMIT_PER_SECOND", "0")
            .env("AIMATE_LOG", "warn")
            .env_remove("DATABASE_URL")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .spawn()
            .context("cannot start the server")?;
        Ok(Self {
            child,
            url: format!("http://127.0.0.1:{port}"),
            _dir: dir,
        })
    }

    fn wait_ready(&mut self, timeout: Duration) -> anyhow::Result<()> {
        let started = Instant::now();
        let addr = self.url.trim_start_matches("http://").to_owned();
        while started.elapsed() < timeout {
            if let Some(status) = self.child.try_wait()? {
                return Err(anyhow!("the server exited during start-up ({status})"));
            }
            if health_ok(&addr) {
                return Ok(());
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        Err(anyhow!("the server was not ready after {timeout:?}"))
    }

    /// SIGTERM, then up to 15 s for the drain, then SIGKILL.
    fn stop(&mut self) -> anyhow::Result<()> {
        let _ = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status();
        let deadline = Instant::now() + Duration::from_secs(15);
        while Instant::now() < deadline {
            if let Some(status) = self.child.try_wait()? {
                return if status.success() {
                    Ok(())
                } else {
                    Err(anyhow!("the server stopped with {status}"))
                };
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let _ = self.child.kill();
        Err(anyhow!("the server did not stop within 15 s of SIGTERM"))
    }
}

impl Drop for ChildServer {
    fn drop(&mut self) {
        if matches!(self.child.try_wait(), Ok(None)) {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

/// A plain HTTP/1.1 readiness probe, so start-up needs no runtime.
fn health_ok(addr: &str) -> bool {
    use std::io::{Read, Write};
    let Ok(mut stream) = std::net::TcpStream::connect(addr) else {
        return false;
    };
    let _ = stream.set_read_timeout(Some(Duration::from_secs(1)));
    let request = format!("GET /api/health HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n");
    if stream.write_all(request.as_bytes()).is_err() {
        return false;
    }
    let mut head = [0u8; 12];
    stream.read_exact(&mut head).is_ok() && head.starts_with(b"HTTP/1.1 200")
}

pub fn timestamp_dir(parent: &Path) -> PathBuf {
    let now = humantime::format_rfc3339_seconds(SystemTime::now()).to_string();
    parent.join(now.replace(':', "-"))
}

pub fn run(args: &DrillArgs) -> Result<ExitCode, Failure> {
    let spec = SloSpec::load(&args.slo)?;
    let baseline = Baseline::load(&args.baseline, &spec)?;
    let (stages, warmup, duration) = if args.quick {
        ("100,1k", "2s", "5s")
    } else {
        ("100,1k,10k", "5s", "30s")
    };
    let plan = LoadPlan::parse(
        args.stages.as_deref().unwrap_or(stages),
        args.warmup.as_deref().unwrap_or(warmup),
        args.duration.as_deref().unwrap_or(duration),
    )?;
    let out_dir = timestamp_dir(&args.out_dir);
    std::fs::create_dir_all(&out_dir)
        .with_context(|| format!("cannot create {}", out_dir.display()))?;

    let (mut server, target, credentials) = match &args.target {
        Some(target) => {
            let credentials = match (&args.api_key, &args.admin_token) {
                (Some(key), _) => Credentials::ApiKey(key.clone()),
                (None, Some(token)) => Credentials::AdminToken(token.clone()),
                (None, None) => {
                    return Err(anyhow!("--target needs --api-key or --admin-token").into());
                }
            };
            (None, target.clone(), credentials)
        }
        None => {
            let token = random_hex(16)?;
            let mut server = ChildServer::start(&token).map_err(Failure::ungradable)?;
            eprintln!(
                "aimate drill: server on {} (SQLite in a temporary directory)",
                server.url
            );
            server
                .wait_ready(Duration::from_secs(30))
                .map_err(Failure::ungradable)?;
            let url = server.url.clone();
            (Some(server), url, Credentials::AdminToken(token))
        }
    };

    let options = LoadOptions {
        target,
        plan,
        credentials,
        seed_invoices: 500,
        seed_jobs: 100,
        max_users: 2000,
        latency_budget: parse_duration("100ms")?,
        request_timeout: parse_duration("10s")?,
        guard: AbortGuard {
            max_error_rate: 0.05,
            max_latency: None,
            for_seconds: 10,
        },
        mix: Mix::standard(),
        progress: true,
        on_stage: None,
        verify_writes: true,
    };
    let outcome = super::runtime()?.block_on(aimate_loadgen::run(options));
    if let Some(Err(error)) = server.as_mut().map(ChildServer::stop) {
        eprintln!("aimate drill: warning: {error:#}");
    }
    let record = outcome.map_err(Failure::ungradable)?;
    for stage in &record.stages {
        print_stage(stage);
    }
    let record_path = out_dir.join("run.json");
    write_atomically(&record_path, |w| {
        serde_json::to_writer_pretty(&mut *w, &record).map_err(std::io::Error::other)
    })?;
    let (report, _) = write_reports(&record, &spec, baseline.as_ref(), &out_dir)?;
    print_verdicts(&report);
    eprintln!("reports: {}", out_dir.display());
    eprintln!("open:    {}", out_dir.join("index.html").display());
    let mut code = report.exit_code();
    if !args.no_chaos && args.target.is_none() {
        code = code.max(run_experiments(&args.experiments, &spec, &out_dir)?);
    }
    Ok(ExitCode::from(code))
}

/// Each experiment of `dir` against a target of its own; reports in
/// `out_dir/chaos-<name>/`. Returns the worst exit code. An experiment this machine
/// cannot run (a disk drill without root) is skipped with a line saying why.
fn run_experiments(dir: &Path, spec: &SloSpec, out_dir: &Path) -> Result<u8, Failure> {
    let files = experiment_files(dir)?;
    // Check every file before running any: a typo in the fourth should not cost three.
    let mut experiments = Vec::new();
    for file in &files {
        experiments.push((file, Experiment::load(file)?));
    }
    let mut worst = 0;
    for (file, experiment) in experiments {
        let name = file
            .file_stem()
            .map_or_else(String::new, |s| s.to_string_lossy().into_owned());
        eprintln!(
            "\naimate drill: chaos experiment {name}: {}",
            experiment.title
        );
        if experiment.needs_volume() && !aimate_chaos::disk::can_mount() {
            eprintln!(
                "aimate drill: skipped {name}: the disk drill mounts a tmpfs, which needs root"
            );
            continue;
        }
        let code = run_and_report(
            &experiment,
            spec,
            None,
            &out_dir.join(format!("chaos-{name}")),
        )?;
        worst = worst.max(code);
    }
    Ok(worst)
}
