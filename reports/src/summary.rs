//! Key figures of each stage, shared by every renderer: what the run did, next to what
//! it was graded on.

use std::collections::BTreeMap;

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
    /// The errors by kind (an HTTP status, `timeout`, `connect_error`…), most first.
    pub errors_by_kind: Vec<ErrorKind>,
    /// Latency from the intended send time, in milliseconds.
    pub p50_ms: Option<f64>,
    pub p95_ms: Option<f64>,
    pub p99_ms: Option<f64>,
    /// The slowest request, from its intended send time.
    pub max_ms: Option<f64>,
    /// Service time (not corrected), in milliseconds.
    pub service_p50_ms: Option<f64>,
    pub service_p95_ms: Option<f64>,
    pub service_p99_ms: Option<f64>,
    pub service_max_ms: Option<f64>,
}

/// How many errors of one kind a stage had.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ErrorKind {
    /// The outcome label of the record: `429`, `503`, `timeout`, `connect_error`.
    pub kind: String,
    pub count: u64,
}

impl ErrorKind {
    /// `4,000 × 429 rate limited`.
    pub fn describe(&self) -> String {
        format!("{} × {}", thousands(self.count), kind_name(&self.kind))
    }
}

/// An outcome label as a reader knows it: a status with its meaning where the status
/// alone says little to most readers.
fn kind_name(kind: &str) -> String {
    let meaning = match kind {
        "429" => "rate limited",
        "500" => "internal error",
        "502" => "bad gateway",
        "503" => "unavailable",
        "504" => "gateway timeout",
        "connect_error" => return "connection failed".to_owned(),
        other => return other.replace('_', " "),
    };
    format!("{kind} {meaning}")
}

/// `12,345`.
pub fn thousands(n: u64) -> String {
    let digits = n.to_string();
    let mut out = String::with_capacity(digits.len() + digits.len() / 3);
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

/// Errors with their kinds: `0`, or `4,000 (4,000 × 429 rate limited)`, or
/// `16 (12 × timeout, 3 × connection failed, 1 × 503 unavailable)`.
fn errors_with_kinds(errors: u64, kinds: &[ErrorKind]) -> String {
    if kinds.is_empty() {
        return thousands(errors);
    }
    format!("{} ({})", thousands(errors), kinds_text(kinds))
}

impl StageSummary {
    /// The stage's errors with their kinds (see [`errors_with_kinds`]).
    pub fn errors_text(&self) -> String {
        errors_with_kinds(self.errors, &self.errors_by_kind)
    }
}

fn ms(histogram: &LatencyHistogram, q: f64) -> Option<f64> {
    histogram.quantile_micros(q).map(|us| us as f64 / 1000.0)
}

pub fn stage_summary(stage: &StageRecord) -> StageSummary {
    let mut latency = LatencyHistogram::new();
    let mut service = LatencyHistogram::new();
    let mut requests = 0;
    for route in stage.routes.values() {
        let _ = latency.add(&route.latency_us);
        let _ = service.add(&route.service_us);
        requests += route.outcomes.values().sum::<u64>();
    }
    let errors_by_kind = kinds_of(stage.routes.values().flat_map(|r| &r.outcomes));
    let errors = errors_by_kind.iter().map(|k| k.count).sum();
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
        errors_by_kind,
        p50_ms: ms(&latency, 0.5),
        p95_ms: ms(&latency, 0.95),
        p99_ms: ms(&latency, 0.99),
        max_ms: latency.max_micros().map(|us| us as f64 / 1000.0),
        service_p50_ms: ms(&service, 0.5),
        service_p95_ms: ms(&service, 0.95),
        service_p99_ms: ms(&service, 0.99),
        service_max_ms: service.max_micros().map(|us| us as f64 / 1000.0),
    }
}

/// The error outcomes among `outcomes`, summed by kind, most first.
fn kinds_of<'a>(outcomes: impl Iterator<Item = (&'a String, &'a u64)>) -> Vec<ErrorKind> {
    let mut kinds: BTreeMap<&str, u64> = BTreeMap::new();
    for (outcome, count) in outcomes {
        if outcome_is_error(outcome) && *count > 0 {
            *kinds.entry(outcome).or_default() += count;
        }
    }
    let mut kinds: Vec<ErrorKind> = kinds
        .into_iter()
        .map(|(kind, count)| ErrorKind {
            kind: kind.to_owned(),
            count,
        })
        .collect();
    kinds.sort_by(|a, b| b.count.cmp(&a.count).then_with(|| a.kind.cmp(&b.kind)));
    kinds
}

/// The errors of every graded scope by kind: the per-second scopes (stages, the run,
/// phases) from their seconds, routes from their outcomes. Scopes without errors are
/// left out.
pub fn errors_by_scope(record: &RunRecord) -> BTreeMap<String, Vec<ErrorKind>> {
    let mut scopes: BTreeMap<String, Vec<ErrorKind>> = crate::scopes::per_second(record)
        .into_iter()
        .map(|(scope, strata)| {
            let seconds = strata.into_iter().flatten();
            (scope, kinds_of(seconds.flat_map(|s| &s.outcomes)))
        })
        .collect();
    let valid = crate::scopes::valid_stages(record);
    let mut routes: BTreeMap<&str, Vec<&crate::record::RouteRecord>> = BTreeMap::new();
    for stage in &valid {
        for (name, route) in &stage.routes {
            routes.entry(name).or_default().push(route);
        }
    }
    for (name, records) in routes {
        let kinds = kinds_of(records.into_iter().flat_map(|r| &r.outcomes));
        scopes.insert(crate::scopes::route(record, name), kinds);
    }
    scopes.retain(|_, kinds| !kinds.is_empty());
    scopes
}

/// `4,000 × 429 rate limited, 12 × timeout`.
pub fn kinds_text(kinds: &[ErrorKind]) -> String {
    kinds
        .iter()
        .map(ErrorKind::describe)
        .collect::<Vec<_>>()
        .join(", ")
}

/// A target's advertised per-key limit in words: `` `RateLimit-Policy: 400;w=2`, 200 req/s
/// per key ``, or as much of it as is known.
pub fn describe_limit(limit: Option<u64>, policy: Option<&str>, per_second: Option<f64>) -> String {
    match (policy, per_second, limit) {
        (Some(policy), Some(rate), _) => {
            format!("`RateLimit-Policy: {policy}`, {rate:.0} req/s per key")
        }
        (Some(policy), None, _) => format!("`RateLimit-Policy: {policy}`"),
        (None, _, Some(limit)) => format!("`RateLimit-Limit: {limit}` per key"),
        (None, _, None) => "a per-key limit".to_owned(),
    }
}

/// Errors above this share of a stage's requests are worth explaining.
const NOTABLE_ERRORS: f64 = 0.01;

/// For each stage whose errors are mostly 429s from the target: the cause and the remedy,
/// in one line. A target's own rate limit is the commonest reason a drill against a
/// deployment fails, and nothing else in a report says it.
pub fn rate_limit_findings(record: &RunRecord) -> Vec<String> {
    let config = &record.run.config;
    let tenants = config["tenants"].as_u64().unwrap_or(1).max(1);
    let advertised = &config["target_rate_limit"];
    let limit = describe_limit(
        advertised["limit"].as_u64(),
        advertised["policy"].as_str(),
        advertised["sustained_per_second"].as_f64(),
    );
    summaries(record)
        .into_iter()
        .filter_map(|s| {
            let refused = s
                .errors_by_kind
                .iter()
                .find(|k| k.kind == "429")
                .map_or(0, |k| k.count);
            let notable = s.errors as f64 > NOTABLE_ERRORS * s.requests.max(1) as f64;
            (notable && refused * 2 >= s.errors).then(|| {
                format!(
                    "stage {}: {} of {} requests were refused with 429 by the target's own rate \
                     limit ({limit}) at {:.0} req/s over {tenants} tenant{}: spread the load over \
                     more tenants (`--tenants N`, or `--tenants auto` with an admin token), or \
                     raise the target's limit.",
                    s.name,
                    thousands(refused),
                    thousands(s.requests),
                    s.target_rps,
                    if tenants == 1 { "" } else { "s" }
                )
            })
        })
        .collect()
}

/// Key figures of one phase around a chaos fault (baseline, fault, recovery), from the
/// seconds it covers: what a drill's reader looks for first, the errors it caused and
/// the slowest request it held up.
#[derive(Debug, Clone, Serialize)]
pub struct PhaseSummary {
    /// The grading scope: `phase 1k fault (kill instance 1)`.
    pub scope: String,
    pub seconds: usize,
    pub requests: u64,
    pub errors: u64,
    pub errors_by_kind: Vec<ErrorKind>,
    /// From the intended send time, in milliseconds.
    pub p95_ms: Option<f64>,
    pub max_ms: Option<f64>,
}

impl PhaseSummary {
    /// The phase's errors with their kinds (see [`errors_with_kinds`]).
    pub fn errors_text(&self) -> String {
        errors_with_kinds(self.errors, &self.errors_by_kind)
    }
}

/// Every phase of the run's faults, in stage order; empty without faults.
pub fn phase_summaries(record: &RunRecord) -> Vec<PhaseSummary> {
    crate::scopes::phases(record)
        .iter()
        .map(|window| {
            let mut latency = LatencyHistogram::new();
            let (mut seconds, mut requests) = (0, 0);
            for second in window.seconds() {
                seconds += 1;
                let _ = latency.add(&second.latency_us);
                requests += second.outcomes.values().sum::<u64>();
            }
            let errors_by_kind = kinds_of(window.seconds().flat_map(|s| &s.outcomes));
            PhaseSummary {
                scope: window.scope(),
                seconds,
                requests,
                errors: errors_by_kind.iter().map(|k| k.count).sum(),
                errors_by_kind,
                p95_ms: ms(&latency, 0.95),
                max_ms: latency.max_micros().map(|us| us as f64 / 1000.0),
            }
        })
        .collect()
}

pub fn summaries(record: &RunRecord) -> Vec<StageSummary> {
    record.stages.iter().map(stage_summary).collect()
}

/// `12.34` or `-` for a missing figure.
pub fn figure(value: Option<f64>) -> String {
    value.map_or_else(|| "-".to_owned(), |v| format!("{v:.2}"))
}

/// A figure with its unit, in the unit that reads best: a duration of a second or more
/// in seconds (`78.21 s`, not `78208.00 ms`), a count whole (`0 writes`), anything else
/// as it is (`334.30 ms`, `99.71 %`); `-` for a missing figure.
pub fn quantity(value: Option<f64>, unit: &str) -> String {
    match value {
        None => "-".to_owned(),
        Some(v) if unit == "ms" && v.abs() >= 1000.0 => format!("{:.2} s", v / 1000.0),
        // Counts (writes, pages) are whole.
        Some(v) if !matches!(unit, "ms" | "%") && v.fract() == 0.0 => format!("{v:.0} {unit}"),
        Some(v) => format!("{v:.2} {unit}"),
    }
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_read_in_seconds_from_a_second_on() {
        assert_eq!(quantity(Some(78208.0), "ms"), "78.21 s");
        assert_eq!(quantity(Some(1000.0), "ms"), "1.00 s");
        assert_eq!(quantity(Some(999.99), "ms"), "999.99 ms");
        assert_eq!(quantity(Some(0.93), "ms"), "0.93 ms");
        assert_eq!(quantity(Some(99.71), "%"), "99.71 %");
        assert_eq!(quantity(Some(2500.0), "writes"), "2500 writes");
        assert_eq!(quantity(Some(0.0), "%"), "0.00 %");
        assert_eq!(quantity(None, "ms"), "-");
    }

    #[test]
    fn errors_read_by_kind_most_first() {
        let summary = |kinds: &[(&str, u64)]| StageSummary {
            name: "1k".into(),
            target_rps: 1000.0,
            achieved_rps: 1000.0,
            valid: true,
            reasons: vec![],
            requests: 5000,
            errors: kinds.iter().map(|(_, n)| n).sum(),
            errors_by_kind: kinds
                .iter()
                .map(|(kind, count)| ErrorKind {
                    kind: (*kind).into(),
                    count: *count,
                })
                .collect(),
            p50_ms: None,
            p95_ms: None,
            p99_ms: None,
            max_ms: None,
            service_p50_ms: None,
            service_p95_ms: None,
            service_p99_ms: None,
            service_max_ms: None,
        };
        assert_eq!(summary(&[]).errors_text(), "0");
        assert_eq!(
            summary(&[("429", 4000)]).errors_text(),
            "4,000 (4,000 × 429 rate limited)"
        );
        assert_eq!(
            summary(&[("timeout", 12), ("connect_error", 3), ("503", 1)]).errors_text(),
            "16 (12 × timeout, 3 × connection failed, 1 × 503 unavailable)"
        );
        assert_eq!(thousands(1_234_567), "1,234,567");
        assert_eq!(thousands(999), "999");
    }
}
