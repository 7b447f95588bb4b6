//! Disk pressure on a tmpfs of the test's own (mounting needs root; elsewhere the test
//! says it was skipped).

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use aimate_chaos::disk::{self, Volume};
use aimate_chaos::keeper::Keeper;

fn mounted(path: &std::path::Path) -> bool {
    std::fs::read_to_string("/proc/mounts")
        .unwrap()
        .lines()
        .any(|line| line.split(' ').nth(1) == Some(path.to_str().unwrap()))
}

#[test]
fn fills_to_the_target_frees_on_release_and_unmounts_on_drop() {
    if !disk::can_mount() {
        eprintln!("skipped: mounting a tmpfs needs root");
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("volume");
    let keeper = Arc::new(Keeper::in_process().unwrap());
    let volume = Volume::mount_tmpfs(&path, 8, keeper).unwrap();
    assert!(mounted(&path));
    let empty = volume.usage().unwrap();
    assert_eq!(empty.total_bytes, 8 << 20);
    assert!(empty.used_percent() < 1.0);

    let later = SystemTime::now() + Duration::from_secs(60);
    let half = volume.fill(50.0, later).unwrap();
    let used = volume.usage().unwrap().used_percent();
    assert!((49.0..=51.0).contains(&used), "filled to {used}%");
    half.free(&volume).unwrap();
    assert!(volume.usage().unwrap().used_percent() < 1.0);

    let full = volume.fill(100.0, later).unwrap();
    assert_eq!(
        volume.usage().unwrap().available_bytes,
        0,
        "a 100% fill leaves nothing"
    );
    assert!(
        std::fs::write(path.join("one-more"), b"x").is_err(),
        "the disk took a write"
    );
    full.free(&volume).unwrap();
    std::fs::write(path.join("one-more"), b"x").unwrap();

    assert!(volume.fill(150.0, later).is_err(), "150% is refused");
    drop(volume);
    assert!(!mounted(&path), "the volume is still mounted after drop");
}

#[test]
fn a_fill_is_freed_by_its_lease_when_nobody_frees_it() {
    if !disk::can_mount() {
        eprintln!("skipped: mounting a tmpfs needs root");
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let keeper = Arc::new(Keeper::in_process().unwrap());
    let volume = Volume::mount_tmpfs(&dir.path().join("volume"), 8, keeper).unwrap();
    let fill = volume
        .fill(100.0, SystemTime::now() + Duration::from_millis(300))
        .unwrap();
    std::mem::forget(fill); // the controller "forgets": only the lease is left
    let deadline = std::time::Instant::now() + Duration::from_secs(5);
    while volume.usage().unwrap().used_percent() > 1.0 && std::time::Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(50));
    }
    assert!(
        volume.usage().unwrap().used_percent() < 1.0,
        "the lease did not free the disk"
    );
}
