//! Key figures of each stage, shared by every renderer: what the run did, next to what
//! it was graded on.

use serde::Serialize;

use crate::histogram::LatencyHistogram;
use crate::record::{RunRecord, StageRecord, outcome_is_error};

#[derive(Debug, Clone, Serialize)]
pub struct StageSummary {
    pub name: String,
    pub target_rps: f64,
    pub achieved_rps: f64,
    pub valid: bool,
    pub reasons: Vec<String>,
    pub requests: u64,
    pub errors: u64,
    /// Latency from the intended send time, in milliseconds.
    pub p50_ms: Option<f64>,
    pub p95_ms: Option<f64>,
    pub p99_ms: Option<f64>,
    /// Service time (not corrected), in milliseconds.
    pub service_p50_ms: Option<f64>,
    pub service_p95_ms: Option<f64>,
    pub service_p99_ms: Option<f64>,
}

fn ms(histogram: &LatencyHistogram, q: f64) -> Option<f64> {
    histogram.quantile_micros(q).map(|us| us as f64 / 1000.0)
}

pub fn stage_summary(stage: &StageRecord) -> StageSummary {
    let mut latency = LatencyHistogram::new();
    let mut service = LatencyHistogram::new();
    let (mut requests, mut errors) = (0, 0);
    for route in stage.routes.values() {
        let _ = latency.add(&route.latency_us);
        let _ = service.add(&route.service_us);
        for (outcome, count) in &route.outcomes {
            requests += count;
            if outcome_is_error(outcome) {
                errors += count;
            }
        }
    }
    StageSummary {
        name: stage.name.clone(),
        target_rps: stage.target_rps,
        achieved_rps: stage.achieved_rps,
        valid: stage.validity.valid,
        reasons: {
            let mut reasons = stage.validity.reasons.clone();
            if stage.unsent > 0 {
                reasons.push(format!("{} intended requests never sent", stage.unsent));
            }
            reasons
        },
        requests,
        errors,
        p50_ms: ms(&latency, 0.5),
        p95_ms: ms(&latency, 0.95),
        p99_ms: ms(&latency, 0.99),
        service_p50_ms: ms(&service, 0.5),
        service_p95_ms: ms(&service, 0.95),
        service_p99_ms: ms(&service, 0.99),
    }
}

pub fn summaries(record: &RunRecord) -> Vec<StageSummary> {
    record.stages.iter().map(stage_summary).collect()
}

/// `12.34` or `-` for a missing figure.
pub fn figure(value: Option<f64>) -> String {
    value.map_or_else(|| "-".to_owned(), |v| format!("{v:.2}"))
}

/// A margin as a signed percentage, or `-`.
pub fn margin(value: Option<f64>) -> String {
    value.map_or_else(|| "-".to_owned(), |m| format!("{:+.1}%", m * 100.0))
}

/// One sentence on the read-back of acknowledged writes, for every renderer.
pub fn writes_sentence(record: &crate::record::RunRecord) -> Option<String> {
    let w = record.writes.as_ref()?;
    let mut text = format!(
        "Acknowledged writes: {} — {} read back as written, {} missing, {} could not be read back.",
        w.acknowledged,
        w.checked - w.missing,
        w.missing,
        w.unverified
    );
    if !w.missing_sample.is_empty() {
        text.push_str(&format!(" Missing: {}.", w.missing_sample.join("; ")));
    }
    Some(text)
}
