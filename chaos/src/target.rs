//! The system under a drill, built for it and owned by it:
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
use crate::keeper::Keeper;
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

#[derive(Debug, Clone, PartialEq)]
pub enum Database {
    /// The SQLite file the instances share.
    Sqlite(PathBuf),
    Postgres(String),
}

pub struct Target {
    /// Where the load goes: the proxy, the balancer, or the only instance.
    pub url: String,
    pub supervisor: tokio::sync::Mutex<Supervisor>,
    pub balancer: Option<Balancer>,
    pub proxy: Option<Proxy>,
    /// Between the instances and Redis, when asked for.
    pub redis_proxy: Option<Proxy>,
    pub volume: Option<Volume>,
    pub database: Database,
    pub data_dir: PathBuf,
    pub keeper: Arc<Keeper>,
    /// What was adapted, for the report (e.g. no HAProxy installed).
    pub notes: Vec<String>,
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
        let proxy = if options.proxy {
            Some(Proxy::start("front", "127.0.0.1:0", &upstream.to_string()).await?)
        } else {
            None
        };
        let front = proxy.as_ref().map_or(upstream, Proxy::listen_addr);
        Ok(Self {
            url: format!("http://{front}"),
            supervisor: tokio::sync::Mutex::new(supervisor),
            balancer,
            proxy,
            redis_proxy,
            volume,
            database,
            data_dir,
            keeper,
            notes,
        })
    }

    /// Every instance's address (for faults aimed at instances directly).
    pub async fn instance_addrs(&self) -> Vec<std::net::SocketAddr> {
        self.supervisor.lock().await.addrs()
    }

    /// After a drill: is the database still sound? SQLite's `PRAGMA integrity_check`
    /// (read-only); PostgreSQL is trusted to its own crash safety.
    pub async fn check_database(&self) -> Result<(), String> {
        use sqlx::Connection;
        let Database::Sqlite(path) = &self.database else {
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
        self.supervisor.lock().await.shutdown().await
    }
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
