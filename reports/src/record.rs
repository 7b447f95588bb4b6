//! `RunRecord`: what one load run measured. Every measuring tool writes one, every
//! judging tool reads one; the JSON is versioned (`schema_version`) and its histograms
//! are lossless, so records of the same plan from several machines merge exactly.
//!
//! ```text
//! RunRecord ─ run (target, times, generator, config)
//!           ├ stages[] ─ steady window, target vs achieved rate, validity
//!           │          ├ routes{"GET /api/invoices"} ─ corrected + service histograms, outcomes
//!           │          └ timeline[] ─ one point per second: sent, outcomes, latency histogram
//!           ├ server[] ─ scraped /api/metrics samples, one per second
//!           └ events[] ─ chaos and lifecycle events on the same clock
//! ```
//!
//! Times are milliseconds since `run.started_at` unless a name says otherwise.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::histogram::{HistogramError, LatencyHistogram};

/// Version 2: server samples name their `instance` and `process` and mark failed
/// scrapes (`up: false`), the record says where they came from (`server_source`),
/// event kinds are a closed set (`EventKind`, with `alert_firing`/`alert_resolved`),
/// and `alerting` says how alerts were watched. Version 1 records still read (one
/// unnamed source, every sample answered).
pub const SCHEMA_VERSION: u32 = 2;

/// Record versions this build reads.
pub const READABLE_VERSIONS: std::ops::RangeInclusive<u32> = 1..=SCHEMA_VERSION;

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct RunRecord {
    pub schema_version: u32,
    pub run: RunMeta,
    pub stages: Vec<StageRecord>,
    /// Server-side samples: every instance's metrics once a second (see `server_source`).
    #[serde(default)]
    pub server: Vec<ServerSample>,
    /// Where `server` came from; records before version 2 scraped the target.
    #[serde(default)]
    pub server_source: ServerSource,
    #[serde(default)]
    pub events: Vec<Event>,
    /// Set when a guard stopped the run early.
    #[serde(default)]
    pub aborted: Option<Abort>,
    /// The read-back of every write the server acknowledged; absent when not checked.
    #[serde(default)]
    pub writes: Option<WriteCheck>,
    /// Set when a Prometheus with the generated alert rules watched the run (chaos
    /// experiments): its alerts are `alert_firing`/`alert_resolved` events.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub alerting: Option<Alerting>,
}

/// How alerts were watched during a run.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct Alerting {
    /// Every rule duration was multiplied by this (1/30: `for: 5m` became 10 s), since a
    /// drill's fault lasts seconds, not minutes.
    pub time_scale: f64,
    /// The alert the experiment's faults should fire; `None`: none is expected.
    #[serde(default)]
    pub expected: Option<String>,
}

/// An alert event's detail: `NAME severity=SEVERITY[ labels…]`.
pub fn alert_detail(name: &str, severity: &str, labels: &str) -> String {
    format!("{name} severity={severity} {labels}")
        .trim_end()
        .to_owned()
}

/// The alert name and severity of an `alert_firing`/`alert_resolved` event's detail.
pub fn alert_of(detail: &str) -> (&str, &str) {
    let mut words = detail.split_whitespace();
    let name = words.next().unwrap_or("");
    let severity = words
        .find_map(|w| w.strip_prefix("severity="))
        .unwrap_or("");
    (name, severity)
}

/// Were the acknowledged writes still there after the run?
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct WriteCheck {
    /// Writes the server acknowledged (a 2xx carrying the new row's id).
    pub acknowledged: u64,
    /// Read back and found as written.
    pub checked: u64,
    /// Acknowledged but not found (404) or not as written: lost.
    pub missing: u64,
    /// The read-back itself failed (not found, not missing): the check is incomplete.
    pub unverified: u64,
    /// Up to 20 of the missing, e.g. `invoice 1234`.
    #[serde(default)]
    pub missing_sample: Vec<String>,
}

impl WriteCheck {
    pub fn add(&mut self, other: &WriteCheck) {
        self.acknowledged += other.acknowledged;
        self.checked += other.checked;
        self.missing += other.missing;
        self.unverified += other.unverified;
        for item in &other.missing_sample {
            if self.missing_sample.len() < 20 {
                self.missing_sample.push(item.clone());
            }
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct RunMeta {
    pub target: String,
    /// RFC 3339 UTC.
    pub started_at: String,
    pub finished_at: String,
    /// One entry per load-generator machine (several after a merge).
    pub generators: Vec<GeneratorInfo>,
    /// The plan and options the run was started with, as given.
    pub config: serde_json::Value,
    /// One segment of a distributed run (`aimate load --segment I/N`); absent for a run
    /// of the whole plan and for a merged record.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub segment: Option<SegmentInfo>,
}

/// What a segment's record says about its place in a distributed run: the merge checks
/// that the records it is given are one plan's segments, each once, started together.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct SegmentInfo {
    pub index: u32,
    pub count: u32,
    /// The shared start instant (RFC 3339, ms), when one was given.
    #[serde(default)]
    pub start_at: Option<String>,
    /// The plan: stage rates, warm-up and steady window (`100,1k; 5s; 30s`).
    pub plan: String,
    /// How late each stage's first request left against its planned instant.
    #[serde(default)]
    pub first_send_late_ms: Vec<Option<f64>>,
    /// The lateness beyond which a stage is INVALID.
    pub tolerance_ms: f64,
    /// The wall clock against the monotonic clock over the run: a clock that stepped
    /// cannot place the segment's sends on the shared timeline.
    pub clock_drift_ms: f64,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct GeneratorInfo {
    pub host: String,
    pub cpu_seconds: f64,
    pub peak_rss_bytes: u64,
    /// Share of its CPU budget the generator used (1.0 = all cores busy).
    pub cpu_utilization: f64,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct StageRecord {
    /// As given on the command line: "100", "1k", "10k".
    pub name: String,
    pub target_rps: f64,
    /// Warm-up start: the stage's first intended send.
    pub started_ms: u64,
    /// The graded window (after warm-up).
    pub steady_start_ms: u64,
    pub steady_end_ms: u64,
    /// Requests whose intended send time fell in the steady window.
    pub sent: u64,
    /// Requests the schedule intended in the steady window that were never sent (the
    /// rate's shortfall); 0 in records written before this was recorded.
    #[serde(default)]
    pub unsent: u64,
    pub achieved_rps: f64,
    /// Per route label (`GET /api/invoices/{id}`), steady window only.
    pub routes: BTreeMap<String, RouteRecord>,
    /// One point per second of the whole stage, warm-up included (`in_steady` marks which).
    pub timeline: Vec<SecondRecord>,
    pub validity: Validity,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct RouteRecord {
    /// From the intended send time: coordinated-omission corrected.
    pub latency_us: LatencyHistogram,
    /// From the actual send time: what the server took.
    pub service_us: LatencyHistogram,
    /// Outcome counts: an HTTP status ("200", "503"), "timeout" or "connect_error".
    pub outcomes: BTreeMap<String, u64>,
}

/// Whether an outcome label counts against the error-rate SLO: 5xx, 429, and every
/// transport failure (`timeout`, `connect_error`, …). Other 4xx are the client's doing.
pub fn outcome_is_error(label: &str) -> bool {
    label
        .parse::<u16>()
        .map_or(true, |code| code >= 500 || code == 429)
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct SecondRecord {
    /// Start of this second since the run started. Seconds count from the stage start.
    pub t_ms: u64,
    /// Whether this second starts inside the steady window.
    pub in_steady: bool,
    /// Requests whose intended send time fell in this second (the schedule).
    pub sent: u64,
    /// Requests actually sent in this second: below `sent` when the generator fell behind.
    #[serde(default)]
    pub started: u64,
    /// Requests the schedule intended in this second that were never sent at all (the
    /// rate's shortfall, second by second); 0 in older records.
    #[serde(default)]
    pub unsent: u64,
    pub outcomes: BTreeMap<String, u64>,
    pub latency_us: LatencyHistogram,
}

/// Whether a stage's numbers can be graded at all: the run is judged before the service.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct Validity {
    pub valid: bool,
    pub reasons: Vec<String>,
    /// The stage missed its rate only because the server was slow (the generator was
    /// neither CPU-bound nor failing to connect): its latencies, measured from the
    /// intended send time, are then a lower bound, and a bound that already breaks an
    /// objective is a FAIL. `false` in records written before this was recorded.
    #[serde(default)]
    pub held_back_by_server: bool,
}

/// Where a run's server-side series came from.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "snake_case", tag = "kind")]
pub enum ServerSource {
    /// `/api/metrics` through the load's own target: one process, unless a balancer
    /// stands in front (the grader detects that from `ServerSample::process`).
    #[default]
    Target,
    /// Each instance's metrics endpoint, scraped directly once a second.
    Instances { urls: Vec<String> },
    /// An existing Prometheus, queried over the run's window after it ended.
    Prometheus { url: String },
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ServerSample {
    /// When the scrape round started; every instance of one round has the same time.
    pub t_ms: u64,
    /// Which instance: the address scraped (`127.0.0.1:8081`) or Prometheus's `instance`
    /// label. Empty for the target itself (and in version 1 records).
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub instance: String,
    /// The process that answered (`target_info`'s `service_instance_id`): new at every
    /// start, so a change is a restart (its counters began again at zero).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub process: Option<String>,
    /// `false`: the scrape failed (instance down or unreachable). The sample is a gap:
    /// every series below is empty, and nothing is interpolated across it.
    #[serde(default = "answered", skip_serializing_if = "is_answered")]
    pub up: bool,
    /// Counters are cumulative as scraped; graders take differences.
    pub requests_total: Option<f64>,
    pub cache_hits_total: Option<f64>,
    pub cache_misses_total: Option<f64>,
    pub db_connections_used: Option<f64>,
    pub db_connections_max: Option<f64>,
    pub resident_memory_bytes: Option<f64>,
    pub active_requests: Option<f64>,
    /// Cumulative server latency histogram: upper bound (seconds) → count.
    #[serde(default)]
    pub latency_buckets: Vec<(f64, f64)>,
}

fn answered() -> bool {
    true
}

#[expect(
    clippy::trivially_copy_pass_by_ref,
    reason = "serde's skip_serializing_if signature"
)]
fn is_answered(up: &bool) -> bool {
    *up
}

impl Default for ServerSample {
    fn default() -> Self {
        Self {
            t_ms: 0,
            instance: String::new(),
            process: None,
            up: true,
            requests_total: None,
            cache_hits_total: None,
            cache_misses_total: None,
            db_connections_used: None,
            db_connections_max: None,
            resident_memory_bytes: None,
            active_requests: None,
            latency_buckets: Vec::new(),
        }
    }
}

impl ServerSample {
    /// A failed scrape of `instance` at `t_ms`: a gap in its series.
    pub fn down(instance: &str, t_ms: u64) -> Self {
        Self {
            t_ms,
            instance: instance.to_owned(),
            up: false,
            ..Self::default()
        }
    }
}

/// What happened. The JSON form is the snake_case name (`"kill"`, `"alert_firing"`);
/// a kind this build does not know reads as `Other`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum EventKind {
    /// A load stage (a span: warm-up start to steady end).
    Stage,
    /// A chaos fault (a span).
    Fault,
    Kill,
    Restart,
    Ready,
    Freeze,
    Thaw,
    /// A guard stopped the run.
    Abort,
    /// The server series could not be read (e.g. Prometheus refused a query).
    ServerSeries,
    /// A Prometheus alert started firing (detail: name and severity).
    AlertFiring,
    AlertResolved,
    #[serde(other)]
    Other,
}

impl EventKind {
    /// As the JSON writes it.
    pub fn name(self) -> &'static str {
        match self {
            Self::Stage => "stage",
            Self::Fault => "fault",
            Self::Kill => "kill",
            Self::Restart => "restart",
            Self::Ready => "ready",
            Self::Freeze => "freeze",
            Self::Thaw => "thaw",
            Self::Abort => "abort",
            Self::ServerSeries => "server_series",
            Self::AlertFiring => "alert_firing",
            Self::AlertResolved => "alert_resolved",
            Self::Other => "other",
        }
    }
}

impl std::fmt::Display for EventKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Event {
    pub t_ms: u64,
    pub kind: EventKind,
    pub detail: String,
    /// For spans (a fault): when it ended.
    #[serde(default)]
    pub end_ms: Option<u64>,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Abort {
    pub t_ms: u64,
    pub reason: String,
}

#[derive(Debug, thiserror::Error)]
pub enum MergeError {
    #[error("no records to merge")]
    Empty,
    #[error(
        "record {index} has schema version {found}; this build reads versions 1 to {SCHEMA_VERSION}"
    )]
    Version { index: usize, found: u32 },
    #[error("records ran different plans: stage {stage} is `{a}` in one and `{b}` in another")]
    DifferentPlans { stage: usize, a: String, b: String },
    #[error("records ran different plans: {a} stages against {b}")]
    StageCount { a: usize, b: usize },
    #[error(transparent)]
    Histogram(#[from] HistogramError),
}

impl RunRecord {
    /// Merges records of the same plan run from several machines against one target:
    /// counts and histograms add, rates add, timelines add second by second.
    pub fn merge(records: &[RunRecord]) -> Result<RunRecord, MergeError> {
        let (first, rest) = records.split_first().ok_or(MergeError::Empty)?;
        for (index, record) in records.iter().enumerate() {
            if !READABLE_VERSIONS.contains(&record.schema_version) {
                return Err(MergeError::Version {
                    index,
                    found: record.schema_version,
                });
            }
        }
        let mut merged = first.clone();
        merged.schema_version = SCHEMA_VERSION;
        for other in rest {
            if other.stages.len() != merged.stages.len() {
                return Err(MergeError::StageCount {
                    a: merged.stages.len(),
                    b: other.stages.len(),
                });
            }
            for (index, (mine, theirs)) in merged.stages.iter_mut().zip(&other.stages).enumerate() {
                if mine.name != theirs.name {
                    return Err(MergeError::DifferentPlans {
                        stage: index,
                        a: mine.name.clone(),
                        b: theirs.name.clone(),
                    });
                }
                mine.merge(theirs)?;
            }
            merged
                .run
                .generators
                .extend(other.run.generators.iter().cloned());
            merged.run.started_at = merged
                .run
                .started_at
                .clone()
                .min(other.run.started_at.clone());
            merged.run.finished_at = merged
                .run
                .finished_at
                .clone()
                .max(other.run.finished_at.clone());
            merged.events.extend(other.events.iter().cloned());
            if merged.aborted.is_none() {
                merged.aborted.clone_from(&other.aborted);
            }
            match (&mut merged.writes, &other.writes) {
                (Some(mine), Some(theirs)) => mine.add(theirs),
                (None, Some(theirs)) => merged.writes = Some(theirs.clone()),
                _ => {}
            }
        }
        merged.events.sort_by_key(|event| event.t_ms);
        Ok(merged)
    }
}

fn add_counts(into: &mut BTreeMap<String, u64>, from: &BTreeMap<String, u64>) {
    for (key, count) in from {
        *into.entry(key.clone()).or_default() += count;
    }
}

impl StageRecord {
    fn merge(&mut self, other: &StageRecord) -> Result<(), MergeError> {
        self.target_rps += other.target_rps;
        self.sent += other.sent;
        self.achieved_rps += other.achieved_rps;
        for (route, theirs) in &other.routes {
            let mine = self.routes.entry(route.clone()).or_default();
            mine.latency_us.add(&theirs.latency_us)?;
            mine.service_us.add(&theirs.service_us)?;
            add_counts(&mut mine.outcomes, &theirs.outcomes);
        }
        for (index, theirs) in other.timeline.iter().enumerate() {
            match self.timeline.get_mut(index) {
                Some(mine) => {
                    mine.sent += theirs.sent;
                    mine.started += theirs.started;
                    add_counts(&mut mine.outcomes, &theirs.outcomes);
                    mine.latency_us.add(&theirs.latency_us)?;
                }
                None => self.timeline.push(theirs.clone()),
            }
        }
        self.validity.valid &= other.validity.valid;
        for reason in &other.validity.reasons {
            if !self.validity.reasons.contains(reason) {
                self.validity.reasons.push(reason.clone());
            }
        }
        Ok(())
    }

    /// All routes' corrected latencies in one histogram.
    pub fn all_routes_latency(&self) -> Result<LatencyHistogram, HistogramError> {
        let mut all = LatencyHistogram::new();
        for route in self.routes.values() {
            all.add(&route.latency_us)?;
        }
        Ok(all)
    }
}
