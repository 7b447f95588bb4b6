//! The instance supervisor: N `aimate serve` processes on their own ports, sharing one
//! database, that the drill can kill, stop, freeze and restart.
//!
//! ```text
//! start ─ spawn instance i on 127.0.0.1:port_i ─ poll GET /api/health until 200
//! kill(i, KILL|TERM)  ─ the process is gone; restart(i) ─ spawn again with back-off
//! freeze(i) (SIGSTOP) ─ alive but silent; thaw(i) (SIGCONT)
//! ```
//!
//! Every instance is registered with the [`Keeper`] while it runs, so a crashed
//! controller leaves no server behind, and a frozen instance is resumed at its lease's end.

use std::net::SocketAddr;
use std::os::fd::OwnedFd;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::process::{Child, Command};

use crate::keeper::{Grant, Keeper, KeeperError, Revert};

/// How an instance is started: `program args… --bind ADDR` with `env`.
#[derive(Debug, Clone)]
pub struct InstanceSpec {
    pub program: PathBuf,
    pub args: Vec<String>,
    pub env: Vec<(String, String)>,
    /// Most time an instance may take to answer its readiness probe.
    pub ready_timeout: Duration,
}

#[derive(Debug, thiserror::Error)]
pub enum SupervisorError {
    #[error("cannot start instance {index} ({program}): {source}")]
    Spawn {
        index: usize,
        program: String,
        source: std::io::Error,
    },
    #[error("instance {index} exited during start-up ({status})")]
    Exited { index: usize, status: String },
    #[error("instance {index} was not ready within {timeout:?}")]
    NotReady { index: usize, timeout: Duration },
    #[error("no instance {0}")]
    NoSuchInstance(usize),
    #[error("instance {index} {what}")]
    Unclean { index: usize, what: String },
    #[error("cannot find a free port: {0}")]
    Port(std::io::Error),
    #[error("cannot signal instance {index}: {source}")]
    Signal {
        index: usize,
        source: std::io::Error,
    },
    #[error(transparent)]
    Keeper(#[from] KeeperError),
}

/// How to take an instance down.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stop {
    /// SIGKILL: a crash, no drain.
    Kill,
    /// SIGTERM: a graceful stop (the server drains in-flight requests).
    Terminate,
}

struct Instance {
    addr: SocketAddr,
    child: Option<Child>,
    /// The child's pidfd, opened at spawn: every signal goes through it, so none can
    /// reach a process that later got the same PID.
    pidfd: Option<OwnedFd>,
    /// The keeper's promise to kill this process if the controller dies.
    reaper: Option<Grant>,
    /// The keeper's promise to resume it, while it is frozen.
    thaw: Option<Grant>,
}

/// N running instances. Dropping it kills whatever still runs.
pub struct Supervisor {
    spec: InstanceSpec,
    keeper: Arc<Keeper>,
    instances: Vec<Instance>,
}

/// A lease long enough for a whole drill: instances are removed by the controller, or
/// by the keeper when the controller dies.
const INSTANCE_LEASE: Duration = Duration::from_secs(24 * 3600);

fn free_port() -> Result<SocketAddr, SupervisorError> {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map_err(SupervisorError::Port)
}

/// `GET /api/health` answered 200, on a fresh connection.
pub async fn is_ready(addr: SocketAddr) -> bool {
    let probe = async {
        let mut stream = tokio::net::TcpStream::connect(addr).await.ok()?;
        let request =
            format!("GET /api/health HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n");
        stream.write_all(request.as_bytes()).await.ok()?;
        let mut head = [0u8; 12];
        stream.read_exact(&mut head).await.ok()?;
        Some(head.starts_with(b"HTTP/1.1 200"))
    };
    matches!(
        tokio::time::timeout(Duration::from_secs(1), probe).await,
        Ok(Some(true))
    )
}

impl Supervisor {
    /// Starts `count` instances one after the other, each ready before the next starts
    /// (the first one migrates the shared database; the others find it done).
    pub async fn start(
        spec: InstanceSpec,
        count: usize,
        keeper: Arc<Keeper>,
    ) -> Result<Self, SupervisorError> {
        let mut supervisor = Self {
            spec,
            keeper,
            instances: Vec::with_capacity(count),
        };
        for _ in 0..count {
            supervisor.instances.push(Instance {
                addr: free_port()?,
                child: None,
                pidfd: None,
                reaper: None,
                thaw: None,
            });
        }
        for index in 0..count {
            supervisor.spawn(index)?;
            supervisor.wait_ready(index).await?;
        }
        Ok(supervisor)
    }

    pub fn addrs(&self) -> Vec<SocketAddr> {
        self.instances.iter().map(|i| i.addr).collect()
    }

    pub fn len(&self) -> usize {
        self.instances.len()
    }

    pub fn is_empty(&self) -> bool {
        self.instances.is_empty()
    }

    /// The process id of instance `index`, while it runs.
    pub fn pid(&self, index: usize) -> Option<u32> {
        self.instances
            .get(index)
            .and_then(|i| i.child.as_ref())
            .and_then(Child::id)
    }

    fn instance(&mut self, index: usize) -> Result<&mut Instance, SupervisorError> {
        self.instances
            .get_mut(index)
            .ok_or(SupervisorError::NoSuchInstance(index))
    }

    fn spawn(&mut self, index: usize) -> Result<(), SupervisorError> {
        let spec = self.spec.clone();
        let keeper = self.keeper.clone();
        let instance = self.instance(index)?;
        let child = Command::new(&spec.program)
            .args(&spec.args)
            .arg("--bind")
            .arg(instance.addr.to_string())
            // The database and Redis are the spec's choice, never the caller's
            // environment's (a platform's REDIS_URL included).
            .env_remove("DATABASE_URL")
            .env_remove("AIMATE_REDIS_URL")
            .env_remove("REDIS_URL")
            .envs(spec.env.iter().map(|(k, v)| (k.as_str(), v.as_str())))
            .stdin(std::process::Stdio::null())
            .stdout(std::process::Stdio::null())
            .kill_on_drop(true)
            .spawn()
            .map_err(|source| SupervisorError::Spawn {
                index,
                program: spec.program.display().to_string(),
                source,
            })?;
        if let Some(pid) = child.id() {
            // Unreaped until we wait for it: the PID is this child's while we pin it.
            instance.pidfd = pidfd_of(pid);
            instance.reaper =
                Some(keeper.grant(Revert::Kill { pid }, SystemTime::now() + INSTANCE_LEASE)?);
        }
        instance.child = Some(child);
        Ok(())
    }

    async fn wait_ready(&mut self, index: usize) -> Result<Duration, SupervisorError> {
        let started = Instant::now();
        let timeout = self.spec.ready_timeout;
        let instance = self.instance(index)?;
        let addr = instance.addr;
        while started.elapsed() < timeout {
            if let Some(child) = instance.child.as_mut()
                && let Ok(Some(status)) = child.try_wait()
            {
                instance.child = None;
                instance.pidfd = None;
                return Err(SupervisorError::Exited {
                    index,
                    status: status.to_string(),
                });
            }
            if is_ready(addr).await {
                return Ok(started.elapsed());
            }
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
        Err(SupervisorError::NotReady { index, timeout })
    }

    /// Takes instance `index` down and waits until its process is gone.
    pub async fn stop(&mut self, index: usize, how: Stop) -> Result<(), SupervisorError> {
        let keeper = self.keeper.clone();
        let instance = self.instance(index)?;
        let Some(mut child) = instance.child.take() else {
            return Ok(());
        };
        // A frozen process cannot drain: thaw it first.
        if let Some(thaw) = instance.thaw.take() {
            let _ = keeper.release(thaw);
        }
        match how {
            Stop::Kill => {
                let _ = child.start_kill();
            }
            Stop::Terminate => {
                if let Some(pidfd) = &instance.pidfd {
                    signal(pidfd, rustix::process::Signal::TERM)
                        .map_err(|source| SupervisorError::Signal { index, source })?;
                }
            }
        }
        // A drain is bounded by the server (15 s); past that, kill.
        let outcome = match tokio::time::timeout(Duration::from_secs(20), child.wait()).await {
            Ok(Ok(status)) if how == Stop::Terminate && !status.success() => {
                Err(format!("stopped with {status} after SIGTERM"))
            }
            Ok(_) => Ok(()),
            Err(_) => {
                let _ = child.start_kill();
                let _ = child.wait().await;
                Err("did not stop within 20 s of SIGTERM; killed".to_owned())
            }
        };
        instance.pidfd = None;
        // Pinned to the process just reaped: releasing cannot signal anything else.
        if let Some(reaper) = instance.reaper.take() {
            let _ = keeper.release(reaper);
        }
        outcome.map_err(|what| SupervisorError::Unclean { index, what })
    }

    /// Starts instance `index` again on its port; retries with exponential back-off
    /// (0.2 s, 0.4 s … capped at 5 s) until it is ready or `attempts` ran out. Returns
    /// the time from the first attempt until it answered ready.
    pub async fn restart(
        &mut self,
        index: usize,
        attempts: u32,
    ) -> Result<Duration, SupervisorError> {
        let started = Instant::now();
        let mut backoff = Duration::from_millis(200);
        let mut last_error = None;
        for _ in 0..attempts.max(1) {
            self.stop(index, Stop::Kill).await?;
            self.spawn(index)?;
            match self.wait_ready(index).await {
                Ok(_) => return Ok(started.elapsed()),
                Err(error) => last_error = Some(error),
            }
            tokio::time::sleep(backoff).await;
            backoff = (backoff * 2).min(Duration::from_secs(5));
        }
        Err(last_error.unwrap_or(SupervisorError::NoSuchInstance(index)))
    }

    /// Freezes instance `index` (SIGSTOP) until `until` at the latest: the keeper resumes
    /// it then even if the controller is gone.
    pub fn freeze(&mut self, index: usize, until: SystemTime) -> Result<(), SupervisorError> {
        let keeper = self.keeper.clone();
        let instance = self.instance(index)?;
        let Some(pid) = instance.child.as_ref().and_then(Child::id) else {
            return Ok(());
        };
        let Some(pidfd) = &instance.pidfd else {
            return Ok(());
        };
        instance.thaw = Some(keeper.grant(Revert::Resume { pid }, until)?);
        signal(pidfd, rustix::process::Signal::STOP)
            .map_err(|source| SupervisorError::Signal { index, source })
    }

    /// Resumes a frozen instance (SIGCONT).
    pub fn thaw(&mut self, index: usize) -> Result<(), SupervisorError> {
        let keeper = self.keeper.clone();
        let instance = self.instance(index)?;
        if let Some(thaw) = instance.thaw.take() {
            keeper
                .release(thaw)
                .map_err(|source| SupervisorError::Signal { index, source })?;
        }
        Ok(())
    }

    /// Waits until instance `index` answers ready again (after a thaw, say).
    pub async fn await_ready(&mut self, index: usize) -> Result<Duration, SupervisorError> {
        self.wait_ready(index).await
    }

    /// Whether instance `index` has a live process (not whether it answers).
    pub fn is_running(&mut self, index: usize) -> bool {
        self.instances
            .get_mut(index)
            .and_then(|i| i.child.as_mut())
            .is_some_and(|child| matches!(child.try_wait(), Ok(None)))
    }

    /// Stops every instance gracefully (SIGTERM, bounded), thawing frozen ones first;
    /// returns what did not stop cleanly.
    pub async fn shutdown(&mut self) -> Vec<String> {
        let mut unclean = Vec::new();
        for index in 0..self.instances.len() {
            if let Err(error) = self.stop(index, Stop::Terminate).await {
                unclean.push(error.to_string());
            }
        }
        unclean
    }
}

/// A pidfd for `pid`; call only while that process is an unreaped child of ours.
fn pidfd_of(pid: u32) -> Option<OwnedFd> {
    let pid = rustix::process::Pid::from_raw(i32::try_from(pid).ok()?)?;
    rustix::process::pidfd_open(pid, rustix::process::PidfdFlags::empty()).ok()
}

fn signal(pidfd: &OwnedFd, signal: rustix::process::Signal) -> std::io::Result<()> {
    rustix::process::pidfd_send_signal(pidfd, signal).map_err(std::io::Error::from)
}

impl Drop for Supervisor {
    fn drop(&mut self) {
        for instance in &mut self.instances {
            // Releasing applies the revert: resume, then kill. The keeper then forgets
            // the pids, so it never signals a reused one.
            if let Some(thaw) = instance.thaw.take() {
                let _ = self.keeper.release(thaw);
            }
            if let Some(reaper) = instance.reaper.take() {
                let _ = self.keeper.release(reaper);
            }
        }
    }
}
