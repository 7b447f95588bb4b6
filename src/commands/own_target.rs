//! A target the command starts and owns (the drill's ladder, every experiment): a lease
//! keeper first, a work directory, then the instances (see `aimate_chaos::target`).
//! Dropping it stops everything and removes the directory.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use aimate_chaos::keeper::Keeper;
use aimate_chaos::run_store::RunStore;
use aimate_chaos::target::{Target, TargetOptions};
use anyhow::Context;

/// What to start, beyond the defaults (SQLite in the work directory, no proxy).
#[derive(Debug, Clone, Default)]
pub struct Shape {
    pub instances: usize,
    /// A database used as it is.
    pub database_url: Option<String>,
    pub volume_mib: Option<u64>,
    pub proxy: bool,
    /// A PostgreSQL to claim a schema of the run's own on, and a Redis to claim a key
    /// prefix on (both given back by [`OwnTarget::stop`]).
    pub store: Option<StoreShape>,
}

#[derive(Debug, Clone)]
pub struct StoreShape {
    pub postgres: Option<String>,
    pub redis: Option<String>,
    /// Each instance's pool size (checked against PostgreSQL's `max_connections`).
    pub pool_max: u32,
    /// Reach Redis through a fault proxy (for Redis faults).
    pub redis_proxy: bool,
}

pub struct OwnTarget {
    // Field order is drop order: the target stops before the keeper closes and the
    // directory goes.
    pub target: Arc<Target>,
    pub admin_token: String,
    store: Option<RunStore>,
    _keeper: ClosedOnDrop,
    _dir: TempDir,
}

/// Closes the keeper when dropped: as a field after `target`, only once the target
/// (instances and HAProxy) has stopped and released its leases, so the keeper never
/// finds a lease of a live controller's target and kills it as an orphan.
pub(super) struct ClosedOnDrop(pub(super) Arc<Keeper>);

impl Drop for ClosedOnDrop {
    fn drop(&mut self) {
        self.0.close();
    }
}

impl OwnTarget {
    pub async fn start(shape: Shape, name: &str) -> anyhow::Result<Self> {
        let exe = std::env::current_exe().context("cannot find the aimate binary")?;
        let keeper = Arc::new(Keeper::spawn(&exe, &["chaos", "keeper"])?);
        let dir =
            TempDir::new(&std::env::temp_dir().join(format!("aimate-{name}-{}", random_hex(6)?)))?;
        let admin_token = random_hex(16)?;
        let instances = shape.instances.max(1);
        let store = match &shape.store {
            Some(store) => Some(
                RunStore::claim(
                    store.postgres.as_deref(),
                    store.redis.as_deref(),
                    instances,
                    store.pool_max,
                    &random_hex(6)?,
                )
                .await?,
            ),
            None => None,
        };
        let claimed = store.as_ref();
        let mut env = Vec::new();
        if let Some(store) = &shape.store {
            env.push(("AIMATE_DB_POOL_MAX".to_owned(), store.pool_max.to_string()));
        }
        let options = TargetOptions {
            program: exe,
            instances,
            database_url: claimed
                .and_then(|s| s.database_url.clone())
                .or(shape.database_url),
            redis: claimed.and_then(|s| Some((s.redis_url.clone()?, s.redis_prefix.clone()?))),
            redis_proxy: shape.store.as_ref().is_some_and(|s| s.redis_proxy),
            env,
            work_dir: dir.path().to_owned(),
            admin_token: admin_token.clone(),
            volume_mib: shape.volume_mib,
            proxy: shape.proxy,
        };
        let target = match Target::start(&options, keeper.clone()).await {
            Ok(target) => Arc::new(target),
            Err(error) => {
                if let Some(store) = &store {
                    store.remove().await;
                }
                return Err(error.into());
            }
        };
        Ok(Self {
            target,
            admin_token,
            store,
            _keeper: ClosedOnDrop(keeper),
            _dir: dir,
        })
    }

    /// What the run borrowed and gives back at [`OwnTarget::stop`] (schema, key prefix),
    /// for a log line; `None` when nothing was claimed.
    pub fn claimed(&self) -> Option<String> {
        self.store.as_ref().map(RunStore::describe)
    }

    /// Each instance's own base URL: its series are scraped there, never through the
    /// balancer or the fault proxy.
    pub async fn instance_urls(&self) -> Vec<String> {
        instance_urls(&self.target).await
    }

    /// Stops the instances gracefully and gives back the run's schema and key prefix;
    /// returns what did not stop or go cleanly.
    pub async fn stop(&self) -> Vec<String> {
        let mut problems = self.target.shutdown().await;
        if let Some(store) = &self.store {
            problems.extend(store.remove().await);
        }
        problems
    }
}

/// Each instance's own base URL.
pub async fn instance_urls(target: &Target) -> Vec<String> {
    target
        .instance_addrs()
        .await
        .iter()
        .map(|addr| format!("http://{addr}"))
        .collect()
}

/// A directory removed on drop.
pub(super) struct TempDir(PathBuf);

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

pub(super) fn random_hex(bytes: usize) -> anyhow::Result<String> {
    use std::io::Read;
    let mut buffer = vec![0u8; bytes];
    std::fs::File::open("/dev/urandom")
        .and_then(|mut f| f.read_exact(&mut buffer))
        .context("cannot read /dev/urandom")?;
    Ok(buffer.iter().map(|b| format!("{b:02x}")).collect())
}
