//! A deployment aimate did not start, as Docker runs it: its containers are chosen by
//! label (a compose project and service, say) and broken through the Docker Engine API.
//!
//! - `kill-instance`: the container is killed (SIGKILL; SIGTERM is a `docker stop`), and
//!   after the step it is back: by its restart policy, or started here;
//! - `freeze-instance`: paused (the cgroup freezer: alive, answering nothing), unpaused;
//! - `redis-down`: the Redis container stopped and started again.
//!
//! Every change is leased with the keeper before it is made, so a container is unpaused
//! or started again even when aimate is killed mid-fault. Only the containers the
//! selector matched when the run began are ever touched.

use std::collections::BTreeMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};

use async_trait::async_trait;
use bollard::Docker;
use bollard::models::HealthStatusEnum;
use bollard::query_parameters::{
    KillContainerOptionsBuilder, ListContainersOptionsBuilder, StopContainerOptionsBuilder,
};
use serde::{Deserialize, Serialize};

use crate::instances::Instances;
use crate::keeper::{Grant, Keeper, Revert};
use crate::supervisor::Stop;

/// The engine's socket when `DOCKER_HOST` is unset.
pub const DEFAULT_ENGINE: &str = "unix:///var/run/docker.sock";

/// How long one Engine API call may take (a `docker stop` waits for its own timeout).
const API_TIMEOUT_SECS: u64 = 60;

/// Seconds a SIGTERM'd container gets to drain before the engine kills it.
const STOP_GRACE_SECS: i32 = 20;

/// Most time a container may take to be healthy (or running) again.
const READY_TIMEOUT: Duration = Duration::from_secs(90);

#[derive(Debug, thiserror::Error)]
pub enum DockerError {
    #[error(
        "DOCKER_HOST={0} is a remote engine: drilling its containers needs --allow-remote-docker"
    )]
    Remote(String),
    #[error("DOCKER_HOST={0}: {1}")]
    Unsupported(String, &'static str),
    #[error("cannot reach the Docker engine at {address}: {source}")]
    Connect {
        address: String,
        source: bollard::errors::Error,
    },
    #[error("the Docker engine at {address}: {source}")]
    Api {
        address: String,
        source: bollard::errors::Error,
    },
    #[error("no container matches {0}: nothing to drill (is the deployment up?)")]
    NoMatch(String),
    #[error(
        "{found} containers match {selector}, more than the experiment allows ({allowed}): \
         narrow the labels or raise `instances`"
    )]
    TooMany {
        selector: String,
        found: usize,
        allowed: usize,
    },
    #[error("{0}")]
    NotRunning(String),
}

impl DockerError {
    /// The experiment or the command line asks for something the deployment or the
    /// rules refuse (not a failure of the engine or of aimate).
    pub fn is_refusal(&self) -> bool {
        !matches!(self, Self::Connect { .. } | Self::Api { .. })
    }
}

/// Where the Docker engine is: a local socket, or a remote address the operator allowed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Engine {
    pub address: String,
}

impl Engine {
    /// The engine of `DOCKER_HOST` (or the default socket). A remote one is refused
    /// unless `allow_remote`: breaking another machine's containers must be asked for.
    pub fn from_env(allow_remote: bool) -> Result<Self, DockerError> {
        let address = std::env::var("DOCKER_HOST")
            .ok()
            .filter(|v| !v.trim().is_empty())
            .unwrap_or_else(|| DEFAULT_ENGINE.to_owned());
        Self::new(&address, allow_remote)
    }

    pub fn new(address: &str, allow_remote: bool) -> Result<Self, DockerError> {
        let address = address.trim().to_owned();
        if address.starts_with("unix://") || address.starts_with('/') {
            return Ok(Self { address });
        }
        if address.starts_with("ssh://") {
            return Err(DockerError::Unsupported(
                address,
                "SSH is not supported; forward the remote socket (ssh -L) and point DOCKER_HOST at it",
            ));
        }
        if std::env::var_os("DOCKER_TLS_VERIFY").is_some_and(|v| !v.is_empty()) {
            return Err(DockerError::Unsupported(
                address,
                "TLS to the engine is not supported; use a local socket or a tunnel",
            ));
        }
        if address.starts_with("tcp://") || address.starts_with("http://") {
            return if allow_remote {
                Ok(Self { address })
            } else {
                Err(DockerError::Remote(address))
            };
        }
        Err(DockerError::Unsupported(
            address,
            "expected unix://PATH or tcp://HOST:PORT",
        ))
    }

    /// A client at the engine's own API version (Debian's 20.10 speaks 1.41).
    pub async fn connect(&self) -> Result<Docker, DockerError> {
        let connect_error = |source| DockerError::Connect {
            address: self.address.clone(),
            source,
        };
        let docker = if self.address.starts_with("tcp://") || self.address.starts_with("http://") {
            Docker::connect_with_http(
                &self.address,
                API_TIMEOUT_SECS,
                bollard::API_DEFAULT_VERSION,
            )
        } else {
            Docker::connect_with_socket(
                &self.address,
                API_TIMEOUT_SECS,
                bollard::API_DEFAULT_VERSION,
            )
        }
        .map_err(connect_error)?;
        docker.negotiate_version().await.map_err(connect_error)
    }

    fn api_error(&self, source: bollard::errors::Error) -> DockerError {
        DockerError::Api {
            address: self.address.clone(),
            source,
        }
    }

    /// The keeper's undo of a pause: unpause if it is still paused.
    pub fn blocking_unpause(&self, id: &str) -> std::io::Result<()> {
        self.blocking_restore(id, false)
    }

    /// The keeper's undo of a kill or stop: unpaused and started if it is not running.
    pub fn blocking_start(&self, id: &str) -> std::io::Result<()> {
        self.blocking_restore(id, true)
    }

    fn blocking_restore(&self, id: &str, start: bool) -> std::io::Result<()> {
        let (engine, id) = (self.clone(), id.to_owned());
        on_own_runtime(async move {
            let docker = engine.connect().await.map_err(|e| e.to_string())?;
            let state = inspect(&docker, &id).await.map_err(|e| e.to_string())?;
            if state.paused {
                docker
                    .unpause_container(&id)
                    .await
                    .map_err(|e| e.to_string())?;
            }
            if start && !state.running {
                docker
                    .start_container(&id, None)
                    .await
                    .map_err(|e| e.to_string())?;
            }
            Ok(())
        })
    }
}

/// Runs `work` on a thread and runtime of its own and waits for it: the keeper's undo is
/// synchronous, and may be called from inside the controller's runtime too.
pub fn on_own_runtime<F>(work: F) -> std::io::Result<()>
where
    F: Future<Output = Result<(), String>> + Send + 'static,
{
    std::thread::spawn(move || {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()?;
        runtime.block_on(work).map_err(std::io::Error::other)
    })
    .join()
    .map_err(|_| std::io::Error::other("the undo thread panicked"))?
}

/// `k=v, k=v`: a selector as the record and errors show it.
pub fn describe_labels(labels: &BTreeMap<String, String>) -> String {
    labels
        .iter()
        .map(|(k, v)| format!("{k}={v}"))
        .collect::<Vec<_>>()
        .join(", ")
}

/// A container the selector matched when the run began.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Selected {
    pub id: String,
    /// Without Docker's leading `/`.
    pub name: String,
    /// Its address on its first network, where the host can reach it.
    pub ip: Option<IpAddr>,
}

/// A container's state, as far as the faults care.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct State {
    pub running: bool,
    pub paused: bool,
    /// `None`: the container has no health check.
    pub healthy: Option<bool>,
}

async fn inspect(docker: &Docker, id: &str) -> Result<State, bollard::errors::Error> {
    let details = docker.inspect_container(id, None).await?;
    let state = details.state.unwrap_or_default();
    let healthy = state
        .health
        .as_ref()
        .and_then(|h| h.status)
        .filter(|s| !matches!(s, HealthStatusEnum::EMPTY | HealthStatusEnum::NONE))
        .map(|s| s == HealthStatusEnum::HEALTHY);
    Ok(State {
        running: state.running.unwrap_or(false),
        paused: state.paused.unwrap_or(false),
        healthy,
    })
}

/// Every container (running or not) that carries all of `labels`, in name order, so
/// that `instance = 1` means the same container on every run. At most `allowed`.
pub async fn select(
    engine: &Engine,
    docker: &Docker,
    labels: &BTreeMap<String, String>,
    allowed: usize,
) -> Result<Vec<Selected>, DockerError> {
    let filter: Vec<String> = labels.iter().map(|(k, v)| format!("{k}={v}")).collect();
    let filters = std::collections::HashMap::from([("label", filter)]);
    let options = ListContainersOptionsBuilder::new()
        .all(true)
        .filters(&filters)
        .build();
    let found = docker
        .list_containers(Some(options))
        .await
        .map_err(|e| engine.api_error(e))?;
    let mut selected: Vec<Selected> = found
        .into_iter()
        .filter_map(|summary| {
            let id = summary.id?;
            let name = summary
                .names
                .and_then(|names| names.into_iter().next())
                .map_or_else(
                    || id.chars().take(12).collect(),
                    |n| n.trim_start_matches('/').to_owned(),
                );
            let ip = summary
                .network_settings
                .and_then(|n| n.networks)
                .and_then(|networks| {
                    let mut networks: Vec<_> = networks.into_iter().collect();
                    networks.sort_by(|a, b| a.0.cmp(&b.0));
                    networks
                        .into_iter()
                        .find_map(|(_, endpoint)| endpoint.ip_address?.parse().ok())
                });
            Some(Selected { id, name, ip })
        })
        .collect();
    selected.sort_by(|a, b| a.name.cmp(&b.name));
    let selector = describe_labels(labels);
    if selected.is_empty() {
        return Err(DockerError::NoMatch(selector));
    }
    if selected.len() > allowed {
        return Err(DockerError::TooMany {
            selector,
            found: selected.len(),
            allowed,
        });
    }
    Ok(selected)
}

/// Waits until the container is running and, if it has a health check, healthy.
async fn wait_ready(docker: &Docker, container: &Selected) -> Result<Duration, String> {
    let started = Instant::now();
    loop {
        match inspect(docker, &container.id).await {
            Ok(state) if state.running && !state.paused && state.healthy != Some(false) => {
                if state.healthy.is_none_or(|healthy| healthy) {
                    return Ok(started.elapsed());
                }
            }
            Ok(_) => {}
            Err(error) => return Err(format!("container {}: {error}", container.name)),
        }
        if started.elapsed() > READY_TIMEOUT {
            return Err(format!(
                "container {} was not ready within {READY_TIMEOUT:?}",
                container.name
            ));
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

/// What a lease undoes, per container.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
enum Held {
    Down,
    Paused,
}

/// The containers of a deployment, as the experiment's instances.
pub struct Containers {
    engine: Engine,
    docker: Docker,
    list: Vec<Selected>,
    /// The port each container serves on (for its own series).
    port: u16,
    keeper: Arc<Keeper>,
    leases: Mutex<Vec<(usize, Held, Grant)>>,
}

impl Containers {
    /// Selects the containers and checks that each is running now: a drill starts
    /// from a healthy deployment or not at all.
    pub async fn select(
        engine: Engine,
        labels: &BTreeMap<String, String>,
        allowed: usize,
        port: u16,
        keeper: Arc<Keeper>,
    ) -> Result<Self, DockerError> {
        let docker = engine.connect().await?;
        let list = select(&engine, &docker, labels, allowed).await?;
        for container in &list {
            let state = inspect(&docker, &container.id)
                .await
                .map_err(|e| engine.api_error(e))?;
            if !state.running || state.paused {
                return Err(DockerError::NotRunning(format!(
                    "container {} is {}: start the deployment before drilling it",
                    container.name,
                    if state.paused {
                        "paused"
                    } else {
                        "not running"
                    }
                )));
            }
        }
        Ok(Self {
            engine,
            docker,
            list,
            port,
            keeper,
            leases: Mutex::new(Vec::new()),
        })
    }

    pub fn selected(&self) -> &[Selected] {
        &self.list
    }

    fn container(&self, index: usize) -> Result<&Selected, String> {
        self.list.get(index).ok_or_else(|| {
            format!(
                "instance {index} does not exist: the selector matched {} container(s)",
                self.list.len()
            )
        })
    }

    fn lease(&self, index: usize, held: Held, until: SystemTime) -> Result<(), String> {
        let container = self.container(index)?;
        let revert = match held {
            Held::Down => Revert::StartContainer {
                engine: self.engine.clone(),
                id: container.id.clone(),
            },
            Held::Paused => Revert::UnpauseContainer {
                engine: self.engine.clone(),
                id: container.id.clone(),
            },
        };
        let grant = self
            .keeper
            .grant(revert, until)
            .map_err(|e| e.to_string())?;
        if let Ok(mut leases) = self.leases.lock() {
            leases.push((index, held, grant));
        }
        Ok(())
    }

    /// The fault is undone (here): the keeper forgets its lease.
    fn forget(&self, index: usize, held: Held) {
        let gone: Vec<Grant> = match self.leases.lock() {
            Ok(mut leases) => {
                let (gone, kept): (Vec<_>, Vec<_>) = leases
                    .drain(..)
                    .partition(|(i, h, _)| *i == index && *h == held);
                *leases = kept;
                gone.into_iter().map(|(_, _, grant)| grant).collect()
            }
            Err(_) => Vec::new(),
        };
        for grant in gone {
            self.keeper.forget(grant);
        }
    }

    async fn unpause(&self, index: usize) -> Result<(), String> {
        let container = self.container(index)?;
        let state = inspect(&self.docker, &container.id)
            .await
            .map_err(|e| e.to_string())?;
        if state.paused {
            self.docker
                .unpause_container(&container.id)
                .await
                .map_err(|e| format!("cannot unpause {}: {e}", container.name))?;
        }
        self.forget(index, Held::Paused);
        Ok(())
    }

    async fn start_again(&self, index: usize) -> Result<Duration, String> {
        let container = self.container(index)?;
        let started = Instant::now();
        let state = inspect(&self.docker, &container.id)
            .await
            .map_err(|e| e.to_string())?;
        if !state.running {
            self.docker
                .start_container(&container.id, None)
                .await
                .map_err(|e| format!("cannot start {}: {e}", container.name))?;
        }
        wait_ready(&self.docker, container).await?;
        self.forget(index, Held::Down);
        Ok(started.elapsed())
    }
}

#[async_trait]
impl Instances for Containers {
    async fn count(&self) -> usize {
        self.list.len()
    }

    fn describe(&self, index: usize) -> String {
        self.list.get(index).map_or_else(
            || format!("instance {index}"),
            |c| format!("container {}", c.name),
        )
    }

    async fn kill(&self, index: usize, how: Stop, until: SystemTime) -> Result<(), String> {
        let container = self.container(index)?.clone();
        self.lease(index, Held::Down, until)?;
        let result = match how {
            Stop::Kill => {
                let options = KillContainerOptionsBuilder::new().signal("SIGKILL").build();
                self.docker
                    .kill_container(&container.id, Some(options))
                    .await
            }
            Stop::Terminate => {
                let options = StopContainerOptionsBuilder::new()
                    .t(STOP_GRACE_SECS)
                    .build();
                self.docker
                    .stop_container(&container.id, Some(options))
                    .await
            }
        };
        result.map_err(|e| format!("cannot stop {}: {e}", container.name))
    }

    async fn bring_back(&self, index: usize) -> Result<Duration, String> {
        self.start_again(index).await
    }

    async fn freeze(&self, index: usize, until: SystemTime) -> Result<(), String> {
        let container = self.container(index)?.clone();
        self.lease(index, Held::Paused, until)?;
        if let Err(error) = self.docker.pause_container(&container.id).await {
            self.forget(index, Held::Paused);
            return Err(format!("cannot pause {}: {error}", container.name));
        }
        Ok(())
    }

    async fn thaw(&self, index: usize) -> Result<(), String> {
        self.unpause(index).await
    }

    async fn restore(&self) -> Vec<String> {
        let mut failures = Vec::new();
        for index in 0..self.list.len() {
            if let Err(error) = self.unpause(index).await {
                failures.push(error);
            }
            if let Err(error) = self.start_again(index).await {
                failures.push(error);
            }
        }
        failures
    }

    async fn addrs(&self) -> Vec<SocketAddr> {
        self.list
            .iter()
            .filter_map(|c| c.ip.map(|ip| SocketAddr::new(ip, self.port)))
            .collect()
    }

    async fn shutdown(&self) -> Vec<String> {
        // A deployment's containers keep running; only a fault still held is undone.
        self.restore().await
    }
}

/// One service's container (Redis) that `redis-down` stops and starts.
pub struct ServiceSwitch {
    containers: Containers,
}

impl ServiceSwitch {
    pub async fn select(
        engine: Engine,
        labels: &BTreeMap<String, String>,
        keeper: Arc<Keeper>,
    ) -> Result<Self, DockerError> {
        Ok(Self {
            containers: Containers::select(engine, labels, 1, 0, keeper).await?,
        })
    }

    pub fn describe(&self) -> String {
        self.containers.describe(0)
    }

    /// Stops it (SIGTERM, as `docker stop`); the keeper starts it by `until`.
    pub async fn down(&self, until: SystemTime) -> Result<(), String> {
        self.containers.kill(0, Stop::Terminate, until).await
    }

    pub async fn up(&self) -> Result<Duration, String> {
        self.containers.start_again(0).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_local_socket_is_the_default_and_a_remote_engine_must_be_allowed() {
        assert!(Engine::new(DEFAULT_ENGINE, false).is_ok());
        assert!(Engine::new("/run/user/1000/docker.sock", false).is_ok());
        let refused = Engine::new("tcp://10.1.2.3:2375", false).unwrap_err();
        assert!(matches!(refused, DockerError::Remote(_)), "{refused}");
        assert!(refused.is_refusal());
        assert!(refused.to_string().contains("--allow-remote-docker"));
        assert_eq!(
            Engine::new("tcp://10.1.2.3:2375", true).unwrap().address,
            "tcp://10.1.2.3:2375"
        );
        let ssh = Engine::new("ssh://ops@build", true)
            .unwrap_err()
            .to_string();
        assert!(ssh.contains("forward the remote socket"), "{ssh}");
        let odd = Engine::new("npipe:////./pipe/docker", true)
            .unwrap_err()
            .to_string();
        assert!(
            odd.contains("expected unix://PATH or tcp://HOST:PORT"),
            "{odd}"
        );
    }

    #[test]
    fn a_selector_is_shown_as_its_labels() {
        let labels = BTreeMap::from([
            ("com.docker.compose.service".to_owned(), "aimate".to_owned()),
            ("com.docker.compose.project".to_owned(), "shop".to_owned()),
        ]);
        assert_eq!(
            describe_labels(&labels),
            "com.docker.compose.project=shop, com.docker.compose.service=aimate"
        );
    }
}
