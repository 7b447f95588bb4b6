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
    // An unpredictable name, created (not reused) with mode 0700: nobody can plant a
    // symlink or a directory of theirs for root to mount over.
    let probe =
        std::env::temp_dir().join(format!("aimate-mount-probe-{:016x}", rand::random::<u64>()));
    {
        use std::os::unix::fs::DirBuilderExt;
        if std::fs::DirBuilder::new()
            .mode(0o700)
            .create(&probe)
            .is_err()
        {
            return false;
        }
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
    /// The tmpfs's device, read right after mounting: a fill writes only to a file on it.
    device: u64,
    keeper: Arc<Keeper>,
    unmount: Option<Grant>,
}

/// `statfs` magic of tmpfs (linux/magic.h).
const TMPFS_MAGIC: i64 = 0x0102_1994;

/// Whether the open `file` still lies on the drill's tmpfs (`device`): checked before
/// every write, so a path swapped for another filesystem (a symlink, a mount over it,
/// an unmount underneath) is never filled.
fn on_drill_tmpfs(file: &std::fs::File, device: u64) -> std::io::Result<()> {
    let fs = rustix::fs::fstatfs(file)?;
    let stat = rustix::fs::fstat(file)?;
    #[allow(clippy::useless_conversion)] // f_type's width differs between targets
    let kind = i64::from(fs.f_type);
    if kind == TMPFS_MAGIC && stat.st_dev == device {
        Ok(())
    } else {
        Err(std::io::Error::other(
            "the fill file is no longer on the drill's tmpfs; refusing to write",
        ))
    }
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
        let device = rustix::fs::stat(path).map(|stat| stat.st_dev);
        let mut volume = Self {
            path: path.to_owned(),
            device: device.as_ref().map_or(0, |d| *d),
            keeper,
            unmount: None,
        };
        // On error, dropping `volume` unmounts it.
        volume.unmount = Some(unmount?);
        volume.device = device.map_err(|errno| error(errno.into()))?;
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
        let mut file = {
            use std::os::unix::fs::OpenOptionsExt;
            std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                // Never through a symlink planted at the fill file's name.
                .custom_flags(rustix::fs::OFlags::NOFOLLOW.bits() as i32)
                .open(&path)
                .map_err(fill_error)?
        };
        // Plain writes, not fallocate: the same on every filesystem, and a write that
        // runs out of space simply stops where the disk is full.
        let chunk = vec![0u8; 1 << 20];
        let mut written = 0u64;
        while wanted > 0 {
            on_drill_tmpfs(&file, self.device).map_err(fill_error)?;
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_file_off_the_drill_tmpfs_is_never_written() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("elsewhere");
        let file = std::fs::File::create(&path).unwrap();
        let device = rustix::fs::fstat(&file).unwrap().st_dev;
        // Another device than the drill's: refused whatever the filesystem.
        assert!(on_drill_tmpfs(&file, device.wrapping_add(1)).is_err());
        // Its own device: refused unless that filesystem is a tmpfs.
        #[allow(clippy::useless_conversion)]
        let is_tmpfs = i64::from(rustix::fs::fstatfs(&file).unwrap().f_type) == TMPFS_MAGIC;
        assert_eq!(on_drill_tmpfs(&file, device).is_ok(), is_tmpfs);
    }
}
