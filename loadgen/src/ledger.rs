//! No acknowledged write may be lost: every write the server answered 2xx for is
//! remembered (its id and what was written) and read back after the run.
//!
//! ```text
//! user ─ POST /api/invoices ─ 201 {"id": 42, …} ─▶ ledger: invoice 42, customer …
//! after the run: GET /api/invoices/42 ─ 200 and as written ─ checked
//!                                     ─ 404 or different    ─ missing (lost)
//!                                     ─ 5xx/transport ×3    ─ unverified
//! ```

//!
//! A run at 10k req/s for an hour acknowledges millions of writes, so each is kept in
//! 24 bytes (kind, id, a 32-bit fingerprint per checked field; `Ack`), in chunks that
//! never reallocate, and read back by a fixed number of workers (no task per write).
//! `cargo run --release -p aimate-loadgen --example ledger_memory` prints the figures.

use std::hash::{DefaultHasher, Hasher};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use aimate_reports::record::WriteCheck;
use serde_json::Value;

use crate::api::Api;
use crate::scenarios::Action;

/// What kind of row a write created: where to read it back, which fields to compare.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WriteKind {
    Invoice,
    Job,
}

impl WriteKind {
    fn route(self) -> &'static str {
        match self {
            Self::Invoice => "/api/invoices",
            Self::Job => "/api/jobs",
        }
    }

    fn name(self) -> &'static str {
        match self {
            Self::Invoice => "invoice",
            Self::Job => "job",
        }
    }

    /// The fields written and compared on read-back.
    fn fields(self) -> [&'static str; 2] {
        match self {
            Self::Invoice => ["customer", "amount_cents"],
            Self::Job => ["customer", "title"],
        }
    }
}

/// One acknowledged write, in 24 bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Ack {
    pub kind: WriteKind,
    /// Which of the run's tenants wrote it (index into their keys): it reads back only
    /// with that tenant's key.
    pub tenant: u16,
    pub id: i64,
    /// Of each of `kind.fields()`, as written (a changed value fails to match but for a
    /// one-in-four-billion chance; a lost row is a 404 anyway).
    fingerprints: [u32; 2],
}

impl Ack {
    fn new(kind: WriteKind, tenant: u16, id: i64, written: &Value) -> Self {
        let [a, b] = kind.fields();
        Self {
            kind,
            tenant,
            id,
            fingerprints: [fingerprint(written.get(a)), fingerprint(written.get(b))],
        }
    }

    pub fn path(&self) -> String {
        format!("{}/{}", self.kind.route(), self.id)
    }

    fn label(&self) -> String {
        format!("{} {}", self.kind.name(), self.id)
    }

    /// The fields of `body` (the row read back) that differ from what was written.
    fn differences(&self, body: &Value) -> Vec<&'static str> {
        self.kind
            .fields()
            .into_iter()
            .zip(self.fingerprints)
            .filter(|(name, expected)| fingerprint(body.get(*name)) != *expected)
            .map(|(name, _)| name)
            .collect()
    }
}

/// A 32-bit digest of a JSON value (its canonical text); an absent field has its own.
fn fingerprint(value: Option<&Value>) -> u32 {
    let mut hasher = DefaultHasher::new();
    match value {
        Some(value) => hasher.write(value.to_string().as_bytes()),
        None => hasher.write_u8(0xff),
    }
    let hash = hasher.finish();
    (hash ^ (hash >> 32)) as u32
}

/// Acks per chunk: chunks are filled and never reallocated, so the ledger's peak memory
/// is its size, not twice it (as a doubling `Vec` would be while it grows).
const CHUNK: usize = 64 * 1024;

/// The writes of a run, shared by all users.
#[derive(Debug, Clone, Default)]
pub struct Ledger(Arc<Mutex<Vec<Vec<Ack>>>>);

/// What `action` acknowledged, from its request body and the 2xx response body.
pub fn acks(action: Action, tenant: u16, request: &Value, response: &Value) -> Vec<Ack> {
    let single = |kind| {
        response["id"]
            .as_i64()
            .map(|id| Ack::new(kind, tenant, id, request))
            .into_iter()
            .collect()
    };
    match action {
        Action::CreateInvoice => single(WriteKind::Invoice),
        Action::CreateJob => single(WriteKind::Job),
        Action::BulkInvoices => {
            let written = request["invoices"]
                .as_array()
                .map_or(&[][..], Vec::as_slice);
            let ids = response["ids"].as_array().map_or(&[][..], Vec::as_slice);
            // Ids come back in request order.
            ids.iter()
                .zip(written)
                .filter_map(|(id, invoice)| {
                    Some(Ack::new(WriteKind::Invoice, tenant, id.as_i64()?, invoice))
                })
                .collect()
        }
        _ => Vec::new(),
    }
}

impl Ledger {
    pub fn extend(&self, acks: Vec<Ack>) {
        let Ok(mut chunks) = self.0.lock() else {
            return;
        };
        for ack in acks {
            match chunks.last_mut() {
                Some(chunk) if chunk.len() < CHUNK => chunk.push(ack),
                _ => {
                    let mut chunk = Vec::with_capacity(CHUNK);
                    chunk.push(ack);
                    chunks.push(chunk);
                }
            }
        }
    }

    pub fn len(&self) -> usize {
        self.0
            .lock()
            .map_or(0, |chunks| chunks.iter().map(Vec::len).sum())
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    fn take(&self) -> Vec<Vec<Ack>> {
        self.0
            .lock()
            .map(|mut chunks| std::mem::take(&mut *chunks))
            .unwrap_or_default()
    }

    /// Reads every acknowledged write back through `api`, each with the key of the
    /// tenant that wrote it (`keys[ack.tenant]`), with `concurrency` workers.
    pub async fn verify(&self, api: &Api, keys: &[String], concurrency: usize) -> WriteCheck {
        let chunks = Arc::new(self.take());
        let total: usize = chunks.iter().map(Vec::len).sum();
        let next = Arc::new(AtomicUsize::new(0));
        let mut workers = tokio::task::JoinSet::new();
        for _ in 0..concurrency.clamp(1, total.max(1)) {
            let (api, keys, chunks, next) = (
                api.clone(),
                Arc::new(keys.to_vec()),
                chunks.clone(),
                next.clone(),
            );
            workers.spawn(async move {
                let mut check = WriteCheck::default();
                loop {
                    let index = next.fetch_add(1, Ordering::Relaxed);
                    let Some(ack) = chunks
                        .get(index / CHUNK)
                        .and_then(|chunk| chunk.get(index % CHUNK))
                    else {
                        return check;
                    };
                    let Some(key) = keys.get(usize::from(ack.tenant)) else {
                        check.unverified += 1;
                        continue;
                    };
                    match read_back(&api, key, ack).await {
                        ReadBack::AsWritten => check.checked += 1,
                        ReadBack::Missing(why) => {
                            check.checked += 1;
                            check.missing += 1;
                            if check.missing_sample.len() < MISSING_SAMPLE {
                                check.missing_sample.push(format!("{}: {why}", ack.label()));
                            }
                        }
                        ReadBack::Unverified => check.unverified += 1,
                    }
                }
            });
        }
        let mut check = WriteCheck {
            acknowledged: total as u64,
            ..WriteCheck::default()
        };
        while let Some(joined) = workers.join_next().await {
            let Ok(part) = joined else { continue };
            check.checked += part.checked;
            check.missing += part.missing;
            check.unverified += part.unverified;
            for sample in part.missing_sample {
                if check.missing_sample.len() < MISSING_SAMPLE {
                    check.missing_sample.push(sample);
                }
            }
        }
        // A worker that died took its count with it: whatever was not counted is unverified.
        let counted = check.checked + check.unverified;
        check.unverified += (total as u64).saturating_sub(counted);
        check
    }
}

/// Lost writes named in the record (the count is always complete).
const MISSING_SAMPLE: usize = 20;

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
        match api.get(api_key, &ack.path()).await {
            Ok((200, body)) => {
                let differs = ack.differences(&body);
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
            0,
            &request,
            &json!({"id": 7, "customer": "Acme"}),
        );
        assert_eq!(acked.len(), 1);
        assert_eq!(
            (acked[0].path(), acked[0].label()),
            ("/api/invoices/7".into(), "invoice 7".into())
        );
        // Read back as written (other fields may differ), or not.
        let stored = json!({"id": 7, "customer": "Acme", "amount_cents": 1200, "status": "paid"});
        assert!(acked[0].differences(&stored).is_empty());
        let changed = json!({"id": 7, "customer": "Acme", "amount_cents": 1201});
        assert_eq!(acked[0].differences(&changed), vec!["amount_cents"]);
        assert_eq!(
            acked[0].differences(&json!({})),
            vec!["customer", "amount_cents"]
        );

        let job = acks(
            Action::CreateJob,
            0,
            &json!({"customer": "B", "title": "Fix"}),
            &json!({"id": 3}),
        );
        assert_eq!(job[0].path(), "/api/jobs/3");
        assert_eq!(
            job[0].differences(&json!({"customer": "B", "title": "Fixed"})),
            vec!["title"]
        );
        let bulk = acks(
            Action::BulkInvoices,
            0,
            &json!({"invoices": [{"customer": "X", "amount_cents": 1}, {"customer": "Y", "amount_cents": 2}]}),
            &json!({"created": 2, "ids": [10, 11]}),
        );
        assert_eq!(bulk.len(), 2);
        assert!(
            bulk[1]
                .differences(&json!({"customer": "Y", "amount_cents": 2}))
                .is_empty()
        );
        assert!(acks(Action::Dashboard, 0, &json!(null), &json!({"id": 1})).is_empty());
        assert!(acks(Action::CreateInvoice, 0, &request, &json!({"error": {}})).is_empty());
    }

    #[test]
    fn an_ack_is_24_bytes_and_chunks_hold_them_all() {
        assert_eq!(std::mem::size_of::<Ack>(), 24);
        let ledger = Ledger::default();
        let one = acks(
            Action::CreateJob,
            0,
            &json!({"customer": "B", "title": "Fix"}),
            &json!({"id": 3}),
        );
        for _ in 0..(CHUNK + 10) {
            ledger.extend(one.clone());
        }
        assert_eq!(ledger.len(), CHUNK + 10);
        let chunks = ledger.take();
        assert_eq!(chunks.len(), 2);
        assert_eq!(
            chunks[0].capacity(),
            CHUNK,
            "a full chunk never grew past its size"
        );
    }
}
