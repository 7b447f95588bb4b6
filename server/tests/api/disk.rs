//! A full disk: the data directory on a small tmpfs of the test's own (mounting needs
//! root; elsewhere the test says it was skipped), filled to the last byte.

use std::path::{Path, PathBuf};
use std::process::Command;

use serde_json::json;

use crate::common::{Backend, TestServer, error_code, json_of};

/// A tmpfs mounted for one test, unmounted on drop.
struct Tmpfs(PathBuf);

impl Tmpfs {
    fn mount(path: &Path) -> Option<Self> {
        std::fs::create_dir_all(path).ok()?;
        let mounted = Command::new("mount")
            .args(["-t", "tmpfs", "-o", "size=16m", "aimate-test"])
            .arg(path)
            .output()
            .ok()?;
        mounted.status.success().then(|| Self(path.to_owned()))
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg("-l").arg(&self.0).status();
    }
}

/// Writes zeros until the filesystem refuses (ENOSPC).
fn fill(path: &Path) {
    use std::io::Write;
    let mut file = std::fs::File::create(path).unwrap();
    let chunk = vec![0u8; 1 << 20];
    while file.write_all(&chunk).is_ok() {}
    let _ = file.sync_all();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn full_disk_refuses_writes_with_507_keeps_reads_and_recovers() {
    let dir = tempfile::tempdir().unwrap();
    let Some(volume) = Tmpfs::mount(&dir.path().join("volume")) else {
        eprintln!("skipped: cannot mount a tmpfs here (needs root)");
        return;
    };
    let data_dir = volume.0.join("data");
    let Some(srv) = TestServer::start(Backend::Sqlite, |c| c.data_dir = data_dir.clone()).await
    else {
        return;
    };
    let key = srv.tenant("A").await;
    let kept = srv
        .invoice(&key, json!({"customer": "Kept", "amount_cents": 100}))
        .await;
    let filler = volume.0.join("filler");
    fill(&filler);

    // Many writes, so that SQLite's automatic rollback of a failed COMMIT is hit too:
    // every one is a clean 507, none a 500, and no connection is left broken.
    for i in 0..20 {
        let response = srv
            .request(reqwest::Method::POST, "/api/invoices", &key)
            .json(&json!({"customer": "Full", "amount_cents": i + 1}))
            .send()
            .await
            .unwrap();
        let (status, body) = json_of(response).await;
        assert_eq!(status, 507, "write {i} on a full disk: {body}");
        assert_eq!(error_code(&body), "insufficient_storage");
    }
    let (status, body) = srv
        .get(&format!("/api/invoices/{}", kept["id"]), &key)
        .await;
    assert_eq!((status, body["customer"].as_str()), (200, Some("Kept")));
    let ready = srv.client.get(srv.url("/api/health")).send().await.unwrap();
    assert_eq!(ready.status(), 200, "readiness must hold: reads still work");

    std::fs::remove_file(&filler).unwrap();
    srv.invoice(&key, json!({"customer": "After", "amount_cents": 5}))
        .await;
    let (_, page) = srv.get("/api/invoices?customer=Full", &key).await;
    assert_eq!(
        page["items"].as_array().unwrap().len(),
        0,
        "a refused write left a row"
    );
    srv.stop().await.unwrap();
}
