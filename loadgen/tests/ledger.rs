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
    config.bind = Some("127.0.0.1:0".parse().unwrap());
    config.log_dir = dir.path().join("logs");
    config.database_url = None;
    config.admin_token = Some("ledger-admin".into());
    config.rate_limit_per_second = 1_000_000;
    config.rate_limit_burst = 1_000_000;
    let server = aimate_server::spawn(config).await.unwrap();
    let api = Api::new(&format!("http://{}", server.addr)).unwrap();
    // Two tenants: each write reads back only with its own tenant's key.
    let keys = [
        api.create_tenant("ledger-admin", "ledger A").await.unwrap(),
        api.create_tenant("ledger-admin", "ledger B").await.unwrap(),
    ];
    let client = reqwest::Client::new();

    let ledger = Ledger::default();
    let mut last_of_b = serde_json::Value::Null;
    for i in 0..150 {
        let tenant = (i % 2) as u16;
        let request = json!({"customer": format!("C{i}"), "amount_cents": i});
        let response: serde_json::Value = client
            .post(format!("http://{}/api/invoices", server.addr))
            .bearer_auth(&keys[usize::from(tenant)])
            .json(&request)
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        ledger.extend(acks(Action::CreateInvoice, tenant, &request, &response));
        if tenant == 1 {
            last_of_b = response;
        }
    }
    // Two writes the server never kept: one that does not exist, one that says otherwise.
    ledger.extend(acks(
        Action::CreateInvoice,
        0,
        &json!({"customer": "Ghost", "amount_cents": 1}),
        &json!({"id": 987_654}),
    ));
    ledger.extend(acks(
        Action::CreateInvoice,
        0,
        &json!({"customer": "C6", "amount_cents": 7}),
        &json!({"id": 7}),
    ));
    // B's write, claimed for A: A cannot see it.
    ledger.extend(acks(
        Action::CreateInvoice,
        0,
        &json!({"customer": "C149", "amount_cents": 149}),
        &last_of_b,
    ));

    let check = ledger.verify(&api, &keys, 4).await;
    assert_eq!(check.acknowledged, 153);
    assert_eq!(check.checked, 153, "{check:?}");
    assert_eq!(check.missing, 3, "{check:?}");
    assert_eq!(check.unverified, 0);
    let sample = check.missing_sample.join("; ");
    assert!(sample.contains("invoice 987654: not found"), "{sample}");
    assert!(
        sample.contains("invoice 7: amount_cents not as written"),
        "{sample}"
    );
    let of_b = last_of_b["id"].as_i64().unwrap();
    assert!(
        sample.contains(&format!("invoice {of_b}: not found")),
        "{sample}"
    );
    server.stop().await.unwrap();
}
