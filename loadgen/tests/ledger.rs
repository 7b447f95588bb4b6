//! The acknowledged-write ledger read back against the real server: writes that exist
//! and match are checked, a row that is gone or changed is missing, all with a fixed
//! number of workers.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use aimate_loadgen::api::Api;
use aimate_loadgen::ledger::{Ledger, acks};
use aimate_loadgen::scenarios::Action;
use aimate_server::ServerConfig;
use serde_json::json;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn read_back_finds_every_write_and_names_the_lost_ones() {
    let dir = tempfile::tempdir().unwrap();
    let mut config = ServerConfig::with_data_dir(dir.path().join("data"));
    config.bind = "127.0.0.1:0".parse().unwrap();
    config.log_dir = dir.path().join("logs");
    config.database_url = None;
    config.admin_token = Some("ledger-admin".into());
    config.rate_limit_per_second = 1_000_000;
    config.rate_limit_burst = 1_000_000;
    let server = aimate_server::spawn(config).await.unwrap();
    let api = Api::new(&format!("http://{}", server.addr)).unwrap();
    let key = api.create_tenant("ledger-admin", "ledger").await.unwrap();
    let client = reqwest::Client::new();

    let ledger = Ledger::default();
    for i in 0..150 {
        let request = json!({"customer": format!("C{i}"), "amount_cents": i});
        let response: serde_json::Value = client
            .post(format!("http://{}/api/invoices", server.addr))
            .bearer_auth(&key)
            .json(&request)
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        ledger.extend(acks(Action::CreateInvoice, &request, &response));
    }
    // Two writes the server never kept: one that does not exist, one that says otherwise.
    ledger.extend(acks(
        Action::CreateInvoice,
        &json!({"customer": "Ghost", "amount_cents": 1}),
        &json!({"id": 987_654}),
    ));
    ledger.extend(acks(
        Action::CreateInvoice,
        &json!({"customer": "C7", "amount_cents": 8}),
        &json!({"id": 8}),
    ));

    let check = ledger.verify(&api, &key, 4).await;
    assert_eq!(check.acknowledged, 152);
    assert_eq!(check.checked, 152, "{check:?}");
    assert_eq!(check.missing, 2, "{check:?}");
    assert_eq!(check.unverified, 0);
    let sample = check.missing_sample.join("; ");
    assert!(sample.contains("invoice 987654: not found"), "{sample}");
    assert!(
        sample.contains("invoice 8: amount_cents not as written"),
        "{sample}"
    );
    server.stop().await.unwrap();
}
