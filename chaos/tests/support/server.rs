//! The real server, in-process on an ephemeral port, with a tenant: what the chaos
//! tests aim their faults at.

use std::net::SocketAddr;

use aimate_server::ServerConfig;
use serde_json::{Value, json};

pub struct Server {
    pub addr: SocketAddr,
    pub key: String,
    pub data_dir: std::path::PathBuf,
    _running: aimate_server::Running,
    _dir: tempfile::TempDir,
}

pub async fn server(tweak: impl FnOnce(&mut ServerConfig)) -> Server {
    let dir = tempfile::tempdir().unwrap();
    let mut config = ServerConfig::with_data_dir(dir.path().join("data"));
    config.bind = Some("127.0.0.1:0".parse().unwrap());
    config.log_dir = dir.path().join("logs");
    config.database_url = None;
    config.admin_token = Some("admin".into());
    config.rate_limit_per_second = 0;
    tweak(&mut config);
    let data_dir = config.data_dir.clone();
    let running = aimate_server::spawn(config).await.unwrap();
    let addr = running.addr;
    let created: Value = reqwest::Client::new()
        .post(format!("http://{addr}/api/admin/tenants"))
        .bearer_auth("admin")
        .json(&json!({"name": "chaos"}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    Server {
        addr,
        key: created["api_key"].as_str().unwrap().to_owned(),
        data_dir,
        _running: running,
        _dir: dir,
    }
}
