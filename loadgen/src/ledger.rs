//! No acknowledged write may be lost: every write the server answered 2xx for is
//! remembered (its id and what was written) and read back after the run.
//!
//! ```text
//! user ─ POST /api/invoices ─ 201 {"id": 42, …} ─▶ ledger: invoice 42, customer …
//! after the run: GET /api/invoices/42 ─ 200 and as written ─ checked
//!                                     ─ 404 or different    ─ missing (lost)
//!                                     ─ 5xx/transport ×3    ─ unverified
//! ```

use std::sync::{Arc, Mutex};
use std::time::Duration;

use aimate_reports::record::WriteCheck;
use serde_json::Value;

use crate::api::Api;
use crate::scenarios::Action;

/// One acknowledged write: where to read it back and which fields it must show.
#[derive(Debug, Clone, PartialEq)]
pub struct Ack {
    pub path: String,
    pub label: String,
    pub fields: Vec<(&'static str, Value)>,
}

/// The writes of a run, shared by all users.
#[derive(Debug, Clone, Default)]
pub struct Ledger(Arc<Mutex<Vec<Ack>>>);

fn pick_fields(body: &Value, names: &[&'static str]) -> Vec<(&'static str, Value)> {
    names
        .iter()
        .filter_map(|name| body.get(*name).map(|v| (*name, v.clone())))
        .collect()
}

/// What `action` acknowledged, from its request body and the 2xx response body.
pub fn acks(action: Action, request: &Value, response: &Value) -> Vec<Ack> {
    let single = |kind: &str, route: &str, fields: &[&'static str]| {
        response["id"]
            .as_i64()
            .map(|id| Ack {
                path: format!("{route}/{id}"),
                label: format!("{kind} {id}"),
                fields: pick_fields(request, fields),
            })
            .into_iter()
            .collect()
    };
    match action {
        Action::CreateInvoice => single("invoice", "/api/invoices", &["customer", "amount_cents"]),
        Action::CreateJob => single("job", "/api/jobs", &["customer", "title"]),
        Action::BulkInvoices => {
            let written = request["invoices"].as_array().cloned().unwrap_or_default();
            let ids = response["ids"].as_array().cloned().unwrap_or_default();
            // Ids come back in request order.
            ids.iter()
                .zip(written)
                .filter_map(|(id, invoice)| {
                    let id = id.as_i64()?;
                    Some(Ack {
                        path: format!("/api/invoices/{id}"),
                        label: format!("invoice {id}"),
                        fields: pick_fields(&invoice, &["customer", "amount_cents"]),
                    })
                })
                .collect()
        }
        _ => Vec::new(),
    }
}

impl Ledger {
    pub fn extend(&self, acks: Vec<Ack>) {
        if let Ok(mut ledger) = self.0.lock() {
            ledger.extend(acks);
        }
    }

    pub fn len(&self) -> usize {
        self.0.lock().map_or(0, |l| l.len())
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    fn take(&self) -> Vec<Ack> {
        self.0
            .lock()
            .map(|mut l| std::mem::take(&mut *l))
            .unwrap_or_default()
    }

    /// Reads every acknowledged write back through `api`, `concurrency` at a time.
    pub async fn verify(&self, api: &Api, api_key: &str, concurrency: usize) -> WriteCheck {
        let acks = self.take();
        let mut check = WriteCheck {
            acknowledged: acks.len() as u64,
            ..WriteCheck::default()
        };
        let limit = Arc::new(tokio::sync::Semaphore::new(concurrency.max(1)));
        let mut reads = tokio::task::JoinSet::new();
        for ack in acks {
            let (api, key, limit) = (api.clone(), api_key.to_owned(), limit.clone());
            reads.spawn(async move {
                let _permit = limit.acquire_owned().await;
                let verdict = read_back(&api, &key, &ack).await;
                (ack.label, verdict)
            });
        }
        while let Some(joined) = reads.join_next().await {
            match joined {
                Ok((_, ReadBack::AsWritten)) => check.checked += 1,
                Ok((label, ReadBack::Missing(why))) => {
                    check.checked += 1;
                    check.missing += 1;
                    if check.missing_sample.len() < 20 {
                        check.missing_sample.push(format!("{label}: {why}"));
                    }
                }
                Ok((_, ReadBack::Unverified)) | Err(_) => check.unverified += 1,
            }
        }
        check
    }
}

enum ReadBack {
    AsWritten,
    Missing(String),
    Unverified,
}

async fn read_back(api: &Api, api_key: &str, ack: &Ack) -> ReadBack {
    for attempt in 0..4u32 {
        if attempt > 0 {
            tokio::time::sleep(Duration::from_millis(250 * u64::from(attempt))).await;
        }
        match api.get(api_key, &ack.path).await {
            Ok((200, body)) => {
                let differs: Vec<&str> = ack
                    .fields
                    .iter()
                    .filter(|(name, value)| body.get(*name) != Some(value))
                    .map(|(name, _)| *name)
                    .collect();
                return if differs.is_empty() {
                    ReadBack::AsWritten
                } else {
                    ReadBack::Missing(format!("{} not as written", differs.join(", ")))
                };
            }
            Ok((404, _)) => return ReadBack::Missing("not found".into()),
            // 5xx, 429 or transport: the read failed, not the write; try again.
            Ok(_) | Err(_) => {}
        }
    }
    ReadBack::Unverified
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn each_write_kind_is_remembered_with_what_was_written() {
        let request = json!({"customer": "Acme", "amount_cents": 1200, "status": "sent"});
        let acked = acks(
            Action::CreateInvoice,
            &request,
            &json!({"id": 7, "customer": "Acme"}),
        );
        assert_eq!(
            acked,
            vec![Ack {
                path: "/api/invoices/7".into(),
                label: "invoice 7".into(),
                fields: vec![("customer", json!("Acme")), ("amount_cents", json!(1200))],
            }]
        );
        let job = acks(
            Action::CreateJob,
            &json!({"customer": "B", "title": "Fix"}),
            &json!({"id": 3}),
        );
        assert_eq!(job[0].path, "/api/jobs/3");
        let bulk = acks(
            Action::BulkInvoices,
            &json!({"invoices": [{"customer": "X", "amount_cents": 1}, {"customer": "Y", "amount_cents": 2}]}),
            &json!({"created": 2, "ids": [10, 11]}),
        );
        assert_eq!(bulk.len(), 2);
        assert_eq!(bulk[1].fields[0], ("customer", json!("Y")));
        assert!(acks(Action::Dashboard, &json!(null), &json!({"id": 1})).is_empty());
        assert!(acks(Action::CreateInvoice, &request, &json!({"error": {}})).is_empty());
    }
}
