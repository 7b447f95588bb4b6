//! The system under a drill: built for it and owned by it ([`Target::start`]), or a
//! deployment that runs without it ([`Target::docker`]). Either way the method sees the
//! same seams: [`Instances`] to kill and freeze, [`FaultLink`]s to put toxics on.
//!
//! A target of its own:
//!
//! ```text
//! load ──▶ [fault proxy] ──▶ [HAProxy] ──▶ instance 0 … N-1 ──▶ one database
//!          (toxic steps)     (N ≥ 2)       (aimate serve)       (SQLite in the work dir,
//!                                               │                on a tmpfs for disk steps,
//!                                               │                or PostgreSQL by URL)
//!                                               └──▶ [Redis: shared cache and rate limit]
//! ```

use std::net::SocketAddr;
use std::path::PathBuf;

use aimate_reports::redact::redact_url;
use std::sync::Arc;
use std::time::Duration;

use crate::balancer::{self, Balancer, BalancerError};
use crate::disk::{DiskError, Volume};
use crate::docker::{Containers, DockerError, Engine, ServiceSwitch};
use crate::experiment::{DockerTarget, ProxyLink};
use crate::instances::{Instances, OwnInstances};
use crate::keeper::Keeper;
use crate::links::{FaultLink, RemoteAddress, RemoteProxy};
use crate::proxy::{Proxy, ProxyError};
use crate::supervisor::{InstanceSpec, Supervisor, SupervisorError};

#[derive(Debug, Clone)]
pub struct TargetOptions {
    /// The `aimate` binary (instances run `aimate serve`).
    pub program: PathBuf,
    pub instances: usize,
    /// PostgreSQL URL; `None`: SQLite in `work_dir`.
    pub database_url: Option<String>,
    /// Redis the instances share (cache L2, rate limiter), and their key prefix.
    pub redis: Option<(String, String)>,
    /// Put a fault proxy between the instances and that Redis (Redis faults).
    pub redis_proxy: bool,
    /// More environment for every instance (e.g. `AIMATE_DB_POOL_MAX`).
    pub env: Vec<(String, String)>,
    /// A directory the drill owns; data and logs go under it.
    pub work_dir: PathBuf,
    pub admin_token: String,
    /// Mount a tmpfs of this many MiB for the data directory (disk steps).
    pub volume_mib: Option<u64>,
    /// Put the fault proxy in front (toxic steps).
    pub proxy: bool,
}

#[derive(Debug, thiserror::Error)]
pub enum TargetError {
    #[error(transparent)]
    Supervisor(#[from] SupervisorError),
    #[error(transparent)]
    Balancer(#[from] BalancerError),
    #[error(transparent)]
    Disk(#[from] DiskError),
    #[error(transparent)]
    Proxy(#[from] ProxyError),
    #[error("cannot create {path}: {source}")]
    Dir {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("HAProxy did not route to a ready instance within {0:?}")]
    NotRouting(Duration),
    #[error("cannot put a fault proxy in front of Redis: {0}")]
    RedisUrl(String),
    #[error(transparent)]
    Docker(#[from] DockerError),
    #[error("{0}")]
    Deployment(String),
}

/// The `host:port` of a `redis://` URL, and a function giving the same URL (user,
/// password, database) with another address in its place.
pub fn via_proxy(url: &str) -> Result<(String, impl Fn(SocketAddr) -> String), TargetError> {
    let bad = || {
        TargetError::RedisUrl(format!(
            "`{}` is not a redis://host:port URL",
            redact_url(url)
        ))
    };
    let (scheme, rest) = url.split_once("://").ok_or_else(bad)?;
    let (authority, path) = rest.split_at(rest.find(['/', '?']).unwrap_or(rest.len()));
    let (user, address) = match authority.rsplit_once('@') {
        Some((user, address)) => (format!("{user}@"), address),
        None => (String::new(), authority),
    };
    if address.is_empty() {
        return Err(bad());
    }
    let address = if address.contains(':') {
        address.to_owned()
    } else {
        format!("{address}:6379")
    };
    let (scheme, path) = (scheme.to_owned(), path.to_owned());
    Ok((address, move |proxy: SocketAddr| {
        format!("{scheme}://{user}{proxy}{path}")
    }))
}

/// How a drill reaches a deployment it did not start.
#[derive(Debug, Clone)]
pub struct Reach {
    pub engine: Engine,
    /// Where the load goes (the deployment's balancer).
    pub url: String,
    /// Its PostgreSQL, for exhaust-db.
    pub database_url: Option<String>,
    /// Bearer token of its fault proxy API.
    pub proxy_token: Option<String>,
}

#[derive(Debug, Clone, PartialEq)]
pub enum Database {
    /// The SQLite file the instances share.
    Sqlite(PathBuf),
    Postgres(String),
}

pub struct Target {
    /// Where the load goes: the proxy, the balancer, or the only instance.
    pub url: String,
    /// What kill and freeze act on.
    pub instances: Arc<dyn Instances>,
    pub balancer: Option<Balancer>,
    /// The fault proxies toxics go on, by link.
    pub links: std::collections::BTreeMap<ProxyLink, Arc<dyn FaultLink>>,
    /// A deployment's Redis container, for `redis-down` (else the Redis link is cut).
    pub redis_service: Option<ServiceSwitch>,
    pub volume: Option<Volume>,
    /// The database the instances use, where the drill can reach it (exhaust-db).
    pub database: Option<Database>,
    pub keeper: Arc<Keeper>,
    /// What was adapted, for the report (e.g. no HAProxy installed).
    pub notes: Vec<String>,
    /// What the drill may touch, named before any fault: for the record.
    pub touched: Vec<String>,
}

impl Target {
    pub async fn start(options: &TargetOptions, keeper: Arc<Keeper>) -> Result<Self, TargetError> {
        let mut notes = Vec::new();
        let dir = |path: PathBuf| -> Result<PathBuf, TargetError> {
            std::fs::create_dir_all(&path).map_err(|source| TargetError::Dir {
                path: path.clone(),
                source,
            })?;
            Ok(path)
        };
        let data_dir = options.work_dir.join("data");
        let volume = match options.volume_mib {
            Some(mib) => Some(Volume::mount_tmpfs(&data_dir, mib, keeper.clone())?),
            None => None,
        };
        let data_dir = dir(data_dir)?;
        // Logs stay off the drill's small volume: a full disk must not take them too.
        let log_dir = dir(options.work_dir.join("logs"))?;

        let haproxy = balancer::find_haproxy();
        let instances = if options.instances >= 2 && haproxy.is_none() {
            notes.push(format!(
                "HAProxy is not installed ({}): ran one instance instead of {}, so \
                 availability drops while it is down",
                balancer::INSTALL_HINT,
                options.instances
            ));
            1
        } else {
            options.instances
        };

        let mut env = vec![
            ("AIMATE_ADMIN_TOKEN".to_owned(), options.admin_token.clone()),
            // One drill tenant sends all the traffic: the per-key limit would only
            // measure itself.
            ("AIMATE_RATE_LIMIT_PER_SECOND".to_owned(), "0".to_owned()),
            ("AIMATE_LOG".to_owned(), "warn".to_owned()),
        ];
        env.extend(options.env.iter().cloned());
        let mut redis_proxy = None;
        if let Some((url, prefix)) = &options.redis {
            let url = if options.redis_proxy {
                let (upstream, through) = via_proxy(url)?;
                let proxy = Proxy::start("redis", "127.0.0.1:0", &upstream).await?;
                let url = through(proxy.listen_addr());
                redis_proxy = Some(proxy);
                url
            } else {
                url.clone()
            };
            env.push(("AIMATE_REDIS_URL".to_owned(), url));
            env.push(("AIMATE_REDIS_PREFIX".to_owned(), prefix.clone()));
        }
        let database = match &options.database_url {
            Some(url) => {
                env.push(("DATABASE_URL".to_owned(), url.clone()));
                Database::Postgres(url.clone())
            }
            None => Database::Sqlite(data_dir.join("aimate.db")),
        };
        let spec = InstanceSpec {
            program: options.program.clone(),
            args: vec![
                "serve".into(),
                "--data-dir".into(),
                data_dir.display().to_string(),
                "--log-dir".into(),
                log_dir.display().to_string(),
            ],
            env,
            ready_timeout: Duration::from_secs(30),
        };
        let supervisor = Supervisor::start(spec, instances, keeper.clone()).await?;
        let addrs = supervisor.addrs();

        let balancer = match (&haproxy, instances >= 2) {
            (Some(haproxy), true) => {
                let balancer =
                    Balancer::start(haproxy, &options.work_dir, &addrs, keeper.clone()).await?;
                let timeout = Duration::from_secs(10);
                if !balancer.wait_routing(timeout).await {
                    return Err(TargetError::NotRouting(timeout));
                }
                Some(balancer)
            }
            _ => None,
        };
        let upstream = balancer.as_ref().map_or(addrs[0], |b| b.addr);
        let mut links: std::collections::BTreeMap<ProxyLink, Arc<dyn FaultLink>> =
            std::collections::BTreeMap::new();
        let mut front = upstream;
        if options.proxy {
            let proxy = Proxy::start("front", "127.0.0.1:0", &upstream.to_string()).await?;
            front = proxy.listen_addr();
            links.insert(ProxyLink::Front, Arc::new(proxy));
        }
        if let Some(proxy) = redis_proxy {
            links.insert(ProxyLink::Redis, Arc::new(proxy));
        }
        let touched = (0..instances)
            .map(|index| format!("instance {index} (started by the drill)"))
            .collect();
        Ok(Self {
            url: format!("http://{front}"),
            instances: Arc::new(OwnInstances(tokio::sync::Mutex::new(supervisor))),
            balancer,
            links,
            redis_service: None,
            volume,
            database: Some(database),
            keeper,
            notes,
            touched,
        })
    }

    /// A deployment's containers, selected by the experiment's labels; the proxies
    /// `steps` use checked on their API; nothing is changed yet.
    pub async fn docker(
        spec: &DockerTarget,
        allowed: usize,
        steps: &[crate::experiment::Step],
        reach: Reach,
        keeper: Arc<Keeper>,
    ) -> Result<Self, TargetError> {
        let Reach {
            engine,
            url,
            database_url,
            proxy_token,
        } = reach;
        let containers = Containers::select(
            engine.clone(),
            &spec.labels,
            allowed,
            spec.port,
            keeper.clone(),
        )
        .await?;
        let mut touched: Vec<String> = containers
            .selected()
            .iter()
            .map(|c| format!("container {} ({})", c.name, short_id(&c.id)))
            .collect();
        let redis_service = match &spec.redis_labels {
            Some(labels) => {
                let switch = ServiceSwitch::select(engine, labels, keeper.clone()).await?;
                touched.push(format!("{} (redis-down)", switch.describe()));
                Some(switch)
            }
            None => None,
        };
        let mut links: std::collections::BTreeMap<ProxyLink, Arc<dyn FaultLink>> =
            std::collections::BTreeMap::new();
        // Only the links the method acts on are connected (and named as touched).
        let used: Vec<ProxyLink> = ProxyLink::ALL
            .into_iter()
            .filter(|link| {
                steps.iter().any(|step| match &step.fault {
                    crate::experiment::Fault::Toxic { on, .. } => on == link,
                    crate::experiment::Fault::RedisDown => {
                        *link == ProxyLink::Redis && spec.redis_labels.is_none()
                    }
                    _ => false,
                })
            })
            .collect();
        if let Some(api) = &spec.proxy_api {
            for link in used {
                let address = RemoteAddress {
                    api: api.clone(),
                    proxy: spec.proxy_name(link),
                    token: proxy_token.clone(),
                };
                // A link the deployment has no proxy for is simply absent: a step that
                // needs it fails before the load starts (see [`Target::missing`]).
                if let Ok(proxy) = RemoteProxy::connect(address.clone(), keeper.clone()).await {
                    touched.push(format!(
                        "proxy {} on {api} ({} link)",
                        address.proxy,
                        link.name()
                    ));
                    links.insert(link, Arc::new(proxy));
                }
            }
        }
        Ok(Self {
            url,
            instances: Arc::new(containers),
            balancer: None,
            links,
            redis_service,
            volume: None,
            database: database_url.map(Database::Postgres),
            keeper,
            notes: Vec::new(),
            touched,
        })
    }

    /// Every instance's address (for faults aimed at instances directly).
    pub async fn instance_addrs(&self) -> Vec<std::net::SocketAddr> {
        self.instances.addrs().await
    }

    /// What `steps` need that this target lacks (a proxy link, a database URL), checked
    /// before the load starts.
    pub fn missing(&self, steps: &[crate::experiment::Step]) -> Option<String> {
        use crate::experiment::Fault;
        steps.iter().find_map(|step| match &step.fault {
            Fault::Toxic { on, .. } if !self.links.contains_key(on) => Some(format!(
                "{}: the target has no fault proxy on its {} link",
                step.fault.name(),
                on.name()
            )),
            Fault::RedisDown
                if self.redis_service.is_none() && !self.links.contains_key(&ProxyLink::Redis) =>
            {
                Some("redis-down: the target has no Redis container or Redis proxy".into())
            }
            Fault::ExhaustDb { .. } if self.database.is_none() => {
                Some("exhaust-db on a deployment needs its PostgreSQL: pass --database-url".into())
            }
            _ => None,
        })
    }

    /// After a drill: is the database still sound? SQLite's `PRAGMA integrity_check`
    /// (read-only); PostgreSQL is trusted to its own crash safety.
    pub async fn check_database(&self) -> Result<(), String> {
        use sqlx::Connection;
        let Some(Database::Sqlite(path)) = &self.database else {
            return Ok(());
        };
        let url = format!("sqlite://{}?mode=ro", path.display());
        let mut conn = sqlx::SqliteConnection::connect(&url)
            .await
            .map_err(|e| format!("cannot open {} to check it: {e}", path.display()))?;
        let verdict: String = sqlx::query_scalar("PRAGMA integrity_check")
            .fetch_one(&mut conn)
            .await
            .map_err(|e| format!("integrity check of {} failed: {e}", path.display()))?;
        if verdict == "ok" {
            Ok(())
        } else {
            Err(format!(
                "the database {} is damaged: {verdict}",
                path.display()
            ))
        }
    }

    /// Stops the instances gracefully (the rest stops on drop); returns what did not
    /// stop cleanly.
    pub async fn shutdown(&self) -> Vec<String> {
        self.instances.shutdown().await
    }
}

fn short_id(id: &str) -> &str {
    id.get(..12).unwrap_or(id)
}

#[cfg(test)]
mod tests {
    use super::via_proxy;

    #[test]
    fn a_redis_url_keeps_everything_but_its_address_through_the_proxy() {
        let proxy = "127.0.0.1:4000".parse().unwrap();
        let (upstream, through) = via_proxy("redis://:secret@cache.local:6380/2").unwrap();
        assert_eq!(upstream, "cache.local:6380");
        assert_eq!(through(proxy), "redis://:secret@127.0.0.1:4000/2");
        let (upstream, through) = via_proxy("redis://127.0.0.1").unwrap();
        assert_eq!(upstream, "127.0.0.1:6379", "Redis' default port");
        assert_eq!(through(proxy), "redis://127.0.0.1:4000");
        let error = via_proxy("redis://:pw@/0").err().unwrap().to_string();
        assert!(error.contains("not a redis://host:port URL"), "{error}");
        assert!(!error.contains("pw"), "the password stays out: {error}");
    }
}
