//! A target the command starts and owns (the drill's ladder, every experiment): a lease
//! keeper first, a work directory, then the instances (see `aimate_chaos::target`).
//! Dropping it stops everything and removes the directory.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use aimate_chaos::keeper::Keeper;
use aimate_chaos::target::{Target, TargetOptions};
use anyhow::Context;

/// What to start, beyond the defaults (SQLite in the work directory, no proxy).
#[derive(Debug, Clone, Default)]
pub struct Shape {
    pub instances: usize,
    pub database_url: Option<String>,
    pub volume_mib: Option<u64>,
    pub proxy: bool,
}

pub struct OwnTarget {
    // Field order is drop order: the target stops before the keeper closes and the
    // directory goes.
    pub target: Arc<Target>,
    pub admin_token: String,
    keeper: Arc<Keeper>,
    _dir: TempDir,
}

impl OwnTarget {
    pub async fn start(shape: Shape, name: &str) -> anyhow::Result<Self> {
        let exe = std::env::current_exe().context("cannot find the aimate binary")?;
        let keeper = Arc::new(Keeper::spawn(&exe, &["chaos", "keeper"])?);
        let dir =
            TempDir::new(&std::env::temp_dir().join(format!("aimate-{name}-{}", random_hex(6)?)))?;
        let admin_token = random_hex(16)?;
        let options = TargetOptions {
            program: exe,
            instances: shape.instances.max(1),
            database_url: shape.database_url,
            work_dir: dir.path().to_owned(),
            admin_token: admin_token.clone(),
            volume_mib: shape.volume_mib,
            proxy: shape.proxy,
        };
        let target = Arc::new(Target::start(&options, keeper.clone()).await?);
        Ok(Self {
            target,
            admin_token,
            keeper,
            _dir: dir,
        })
    }

    /// Each instance's own base URL: its series are scraped there, never through the
    /// balancer or the fault proxy.
    pub async fn instance_urls(&self) -> Vec<String> {
        instance_urls(&self.target).await
    }

    /// Stops the instances gracefully; returns what did not stop cleanly.
    pub async fn stop(&self) -> Vec<String> {
        self.target.shutdown().await
    }
}

impl Drop for OwnTarget {
    fn drop(&mut self) {
        self.keeper.close();
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
