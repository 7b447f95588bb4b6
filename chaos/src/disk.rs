//! Disk pressure, on a filesystem the drill owns and never on the machine's real disk:
//! a small tmpfs mounted for the drill holds the server's data directory, and a fill
//! file takes it to a target percentage. The only way to fill is through a [`Volume`],
//! so the fault cannot touch any other filesystem.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::SystemTime;

use crate::keeper::{Grant, Keeper, KeeperError, Revert};

#[derive(Debug, thiserror::Error)]
pub enum DiskError {
    #[error(
        "cannot mount a {size_mib} MiB tmpfs at {path} for the disk drill ({source}); \
         mounting needs root (CAP_SYS_ADMIN)"
    )]
    Mount {
        path: PathBuf,
        size_mib: u64,
        source: std::io::Error,
    },
    #[error("cannot read the usage of {path}: {source}")]
    Usage {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("cannot fill {path}: {source}")]
    Fill {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("fill target {0}% is outside 0..=100")]
    Percent(f64),
    #[error(transparent)]
    Keeper(#[from] KeeperError),
}

/// Space on a filesystem, as `df` shows it.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Usage {
    pub total_bytes: u64,
    pub available_bytes: u64,
}

impl Usage {
    pub fn used_percent(&self) -> f64 {
        if self.total_bytes == 0 {
            return 100.0;
        }
        100.0 * (self.total_bytes - self.available_bytes.min(self.total_bytes)) as f64
            / self.total_bytes as f64
    }
}

pub fn usage(path: &Path) -> Result<Usage, DiskError> {
    let stat = rustix::fs::statvfs(path).map_err(|errno| DiskError::Usage {
        path: path.to_owned(),
        source: errno.into(),
    })?;
    Ok(Usage {
        total_bytes: stat.f_blocks * stat.f_frsize,
        available_bytes: stat.f_bavail * stat.f_frsize,
    })
}

/// Whether this process may mount the drill's tmpfs: tried for real on a scratch
/// directory (root is not enough in a container without CAP_SYS_ADMIN).
pub fn can_mount() -> bool {
    if !rustix::process::geteuid().is_root() {
        return false;
    }
    let probe = std::env::temp_dir().join(format!("aimate-mount-probe-{}", std::process::id()));
    if std::fs::create_dir_all(&probe).is_err() {
        return false;
    }
    let mounted = rustix::mount::mount(
        "aimate-probe",
        &probe,
        "tmpfs",
        rustix::mount::MountFlags::NOSUID | rustix::mount::MountFlags::NODEV,
        Some(c"size=1m"),
    )
    .is_ok();
    if mounted {
        let _ = rustix::mount::unmount(&probe, rustix::mount::UnmountFlags::DETACH);
    }
    let _ = std::fs::remove_dir(&probe);
    mounted
}

/// A tmpfs mounted for the drill; unmounted (lazily) on drop, or by the keeper if the
/// controller dies.
pub struct Volume {
    path: PathBuf,
    keeper: Arc<Keeper>,
    unmount: Option<Grant>,
}

/// The fill file's name: hidden, and obviously the drill's.
const FILL_FILE: &str = ".aimate-disk-fill";

impl Volume {
    /// Mounts a tmpfs of `size_mib` MiB at `path` (created if missing).
    pub fn mount_tmpfs(path: &Path, size_mib: u64, keeper: Arc<Keeper>) -> Result<Self, DiskError> {
        let error = |source: std::io::Error| DiskError::Mount {
            path: path.to_owned(),
            size_mib,
            source,
        };
        std::fs::create_dir_all(path).map_err(error)?;
        let options = std::ffi::CString::new(format!("size={size_mib}m,mode=0700"))
            .map_err(|e| error(std::io::Error::other(e)))?;
        rustix::mount::mount(
            "aimate-drill",
            path,
            "tmpfs",
            rustix::mount::MountFlags::NOSUID | rustix::mount::MountFlags::NODEV,
            Some(options.as_c_str()),
        )
        .map_err(|errno| error(errno.into()))?;
        let unmount = keeper.grant(
            Revert::Unmount {
                path: path.to_owned(),
            },
            SystemTime::now() + std::time::Duration::from_secs(24 * 3600),
        );
        let mut volume = Self {
            path: path.to_owned(),
            keeper,
            unmount: None,
        };
        // On error, dropping `volume` unmounts it.
        volume.unmount = Some(unmount?);
        Ok(volume)
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    pub fn usage(&self) -> Result<Usage, DiskError> {
        usage(&self.path)
    }

    /// Deletes the fill file if one is left (a rollback after an aborted step).
    pub fn free(&self) -> std::io::Result<()> {
        Revert::RemoveFile {
            path: self.path.join(FILL_FILE),
        }
        .apply()
    }

    /// Fills the volume to `percent` used (100 = no byte left) with one file, registered
    /// with the keeper so it is deleted at `until` even if the controller dies.
    pub fn fill(&self, percent: f64, until: SystemTime) -> Result<Fill, DiskError> {
        let keeper = &self.keeper;
        if !(0.0..=100.0).contains(&percent) {
            return Err(DiskError::Percent(percent));
        }
        let path = self.path.join(FILL_FILE);
        let grant = keeper.grant(Revert::RemoveFile { path: path.clone() }, until)?;
        let fill_error = |source| DiskError::Fill {
            path: path.clone(),
            source,
        };
        let now = self.usage()?;
        let target_used = (now.total_bytes as f64 * percent / 100.0) as u64;
        let used = now.total_bytes - now.available_bytes.min(now.total_bytes);
        let mut wanted = target_used.saturating_sub(used);
        let mut file = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&path)
            .map_err(fill_error)?;
        // Plain writes, not fallocate: the same on every filesystem, and a write that
        // runs out of space simply stops where the disk is full.
        let chunk = vec![0u8; 1 << 20];
        let mut written = 0u64;
        while wanted > 0 {
            let n = wanted.min(chunk.len() as u64) as usize;
            match file.write(&chunk[..n]) {
                Ok(0) => break,
                Ok(n) => {
                    written += n as u64;
                    wanted -= n as u64;
                }
                Err(error) if error.raw_os_error() == Some(28) => break, // ENOSPC
                Err(error) => return Err(fill_error(error)),
            }
        }
        let _ = file.sync_all();
        Ok(Fill {
            grant,
            written_bytes: written,
        })
    }
}

impl Drop for Volume {
    fn drop(&mut self) {
        match self.unmount.take() {
            Some(grant) => {
                let _ = self.keeper.release(grant);
            }
            None => {
                let _ = Revert::Unmount {
                    path: self.path.clone(),
                }
                .apply();
            }
        }
        let _ = std::fs::remove_dir(&self.path);
    }
}

/// A filled disk; [`Fill::free`] gives the space back.
#[derive(Debug)]
pub struct Fill {
    grant: Grant,
    pub written_bytes: u64,
}

impl Fill {
    pub fn free(self, volume: &Volume) -> std::io::Result<()> {
        volume.keeper.release(self.grant)
    }
}
