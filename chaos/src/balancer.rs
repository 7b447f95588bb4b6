//! A real load balancer in front of the instances: HAProxy, with a configuration written
//! for the drill. Health checks on `/api/health` take a dead or frozen instance out of
//! rotation; retries on another instance hide the requests that were in flight to it.

use std::fmt::Write as _;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use tokio::process::{Child, Command};

use crate::keeper::{Grant, Keeper, KeeperError, Revert};

/// How the Debian package is installed, for the message when HAProxy is missing.
pub const INSTALL_HINT: &str = "apt-get install -y haproxy";

#[derive(Debug, thiserror::Error)]
pub enum BalancerError {
    #[error("cannot write the HAProxy configuration {path}: {source}")]
    Config {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("cannot start HAProxy: {0}")]
    Spawn(std::io::Error),
    #[error("HAProxy rejected its configuration: {0}")]
    Rejected(String),
    #[error("HAProxy did not accept connections on {addr} within {timeout:?}")]
    NotListening { addr: SocketAddr, timeout: Duration },
    #[error("HAProxy exited at start-up: {0}")]
    Exited(String),
    #[error("cannot find a free port: {0}")]
    Port(std::io::Error),
    #[error(transparent)]
    Keeper(#[from] KeeperError),
}

/// Finds the `haproxy` binary: on `PATH`, or where Debian puts it (`/usr/sbin`, which a
/// non-root `PATH` often lacks).
pub fn find_haproxy() -> Option<PathBuf> {
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .chain([PathBuf::from("/usr/sbin"), PathBuf::from("/usr/local/sbin")])
        .map(|dir| dir.join("haproxy"))
        .find(|candidate| candidate.is_file())
}

/// The configuration: round robin over `backends`, checked every 250 ms with a 200 ms
/// timeout (down after 2 failures, up after 2 successes), connection failures retried on
/// another instance, and idempotent requests also retried when an instance dies
/// mid-response or hangs (a frozen instance: a GET unanswered after 1 s, the guide's
/// "slow response" line, goes to another instance). A POST is never sent twice: a retried write could be applied twice.
pub fn config(listen: SocketAddr, backends: &[SocketAddr]) -> String {
    let mut text = String::from(
        "# Written by aimate chaos for one drill; removed with it.\n\
         global\n    # Each connection takes two descriptors; this fits a 20 000 descriptor limit.\n    maxconn 8000\n\n\
         defaults\n    mode http\n    timeout connect 1s\n    timeout client 30s\n    \
         timeout server 15s\n    timeout check 200ms\n    timeout http-keep-alive 10s\n    \
         retries 3\n    \
         option redispatch 1\n    retry-on conn-failure empty-response response-timeout\n\n",
    );
    let _ = write!(
        text,
        "frontend api\n    bind {listen}\n    \
         http-request disable-l7-retry if !METH_GET !METH_HEAD\n    \
         default_backend instances\n\n\
         backend instances\n    balance roundrobin\n    \
         http-request set-timeout server 1s if METH_GET || METH_HEAD\n    \
         option httpchk GET /api/health\n    http-check expect status 200\n    \
         default-server inter 250ms fall 2 rise 2\n"
    );
    for (index, backend) in backends.iter().enumerate() {
        let _ = writeln!(text, "    server instance{index} {backend} check");
    }
    text
}

/// A running HAProxy. Dropping it stops it.
pub struct Balancer {
    pub addr: SocketAddr,
    child: Child,
    keeper: Arc<Keeper>,
    reaper: Option<Grant>,
    config_path: PathBuf,
}

impl Balancer {
    /// Writes the configuration into `dir`, checks it (`haproxy -c`), starts HAProxy in
    /// the foreground and waits until it accepts connections.
    pub async fn start(
        haproxy: &Path,
        dir: &Path,
        backends: &[SocketAddr],
        keeper: Arc<Keeper>,
    ) -> Result<Self, BalancerError> {
        let addr = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .map_err(BalancerError::Port)?;
        let config_path = dir.join("haproxy.cfg");
        std::fs::write(&config_path, config(addr, backends)).map_err(|source| {
            BalancerError::Config {
                path: config_path.clone(),
                source,
            }
        })?;
        let check = Command::new(haproxy)
            .arg("-c")
            .arg("-f")
            .arg(&config_path)
            .output()
            .await
            .map_err(BalancerError::Spawn)?;
        if !check.status.success() {
            let said = String::from_utf8_lossy(&check.stderr);
            let alert = said
                .lines()
                .find(|l| l.contains("ALERT"))
                .unwrap_or_else(|| said.trim());
            return Err(BalancerError::Rejected(alert.trim().to_owned()));
        }
        let log_path = dir.join("haproxy.log");
        let log = std::fs::File::create(&log_path).map_err(|source| BalancerError::Config {
            path: log_path.clone(),
            source,
        })?;
        let mut child = Command::new(haproxy)
            .arg("-db")
            .arg("-f")
            .arg(&config_path)
            .stdin(std::process::Stdio::null())
            .stdout(std::process::Stdio::null())
            .stderr(log)
            .kill_on_drop(true)
            .spawn()
            .map_err(BalancerError::Spawn)?;
        let reaper = match child.id() {
            Some(pid) => Some(keeper.grant(
                Revert::Kill { pid },
                SystemTime::now() + Duration::from_secs(24 * 3600),
            )?),
            None => None,
        };
        let timeout = Duration::from_secs(10);
        let started = Instant::now();
        while tokio::net::TcpStream::connect(addr).await.is_err() {
            if let Ok(Some(_)) = child.try_wait() {
                let said = std::fs::read_to_string(&log_path).unwrap_or_default();
                let last = said.lines().rfind(|l| !l.trim().is_empty()).unwrap_or("");
                if let Some(reaper) = reaper {
                    let _ = keeper.release(reaper);
                }
                return Err(BalancerError::Exited(last.trim().to_owned()));
            }
            if started.elapsed() > timeout {
                return Err(BalancerError::NotListening { addr, timeout });
            }
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
        Ok(Self {
            addr,
            child,
            keeper,
            reaper,
            config_path,
        })
    }

    /// Waits until HAProxy routes a readiness probe (its first health checks passed).
    pub async fn wait_routing(&self, timeout: Duration) -> bool {
        let started = Instant::now();
        while started.elapsed() < timeout {
            if crate::supervisor::is_ready(self.addr).await {
                return true;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        false
    }
}

impl Drop for Balancer {
    fn drop(&mut self) {
        let _ = self.child.start_kill();
        if let Some(reaper) = self.reaper.take() {
            let _ = self.keeper.release(reaper);
        }
        let _ = std::fs::remove_file(&self.config_path);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_configuration_checks_every_backend_and_retries_only_what_is_safe() {
        let listen: SocketAddr = "127.0.0.1:8000".parse().unwrap();
        let backends: Vec<SocketAddr> = vec![
            "127.0.0.1:9001".parse().unwrap(),
            "127.0.0.1:9002".parse().unwrap(),
        ];
        let text = config(listen, &backends);
        assert!(text.contains("bind 127.0.0.1:8000"));
        assert!(text.contains("server instance0 127.0.0.1:9001 check"));
        assert!(text.contains("server instance1 127.0.0.1:9002 check"));
        assert!(text.contains("option httpchk GET /api/health"));
        assert!(text.contains("disable-l7-retry if !METH_GET !METH_HEAD"));
    }

    #[tokio::test]
    async fn haproxy_accepts_the_configuration() {
        let Some(haproxy) = find_haproxy() else {
            eprintln!("skipped: haproxy is not installed ({INSTALL_HINT})");
            return;
        };
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("haproxy.cfg");
        let backends = ["127.0.0.1:9001".parse().unwrap()];
        // `-c` checks without binding; HAProxy refuses port 0, so name a real one.
        std::fs::write(&path, config("127.0.0.1:18999".parse().unwrap(), &backends)).unwrap();
        let check = std::process::Command::new(haproxy)
            .arg("-c")
            .arg("-f")
            .arg(&path)
            .output()
            .unwrap();
        assert!(
            check.status.success(),
            "{}",
            String::from_utf8_lossy(&check.stderr)
        );
    }
}
