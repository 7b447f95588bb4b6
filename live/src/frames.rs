//! What the stream carries: one JSON object per server-sent event, named by its `event:`
//! field. Every frame names what it describes (its part, stage, second…), so a page that
//! receives a frame twice (the snapshot after a reconnect) just puts it in place again.
//!
//! ```text
//! run ─ part (ladder, experiment…) ─┬ stage ─ second (one per stage second, revised
//!                                   │         until its last answer arrived)
//!                                   ├ server (one per instance per scrape)
//!                                   ├ event (faults, kills, alerts; a span first
//!                                   │        arrives open, then ended)
//!                                   ├ clock (where the run is now)
//!                                   └ verdicts (so far, then final)
//! ```
//!
//! Latencies are integer microseconds as the histograms hold them, so a page and a
//! test read the very numbers the record keeps.

use std::collections::BTreeMap;

use aimate_reports::grade::Verdict;
use serde::Serialize;

/// The run as a whole: what the page's title says.
#[derive(Debug, Clone, Serialize)]
pub struct RunFrame {
    pub title: String,
    /// RFC 3339, for the reader; the run's own clock is milliseconds since each part began.
    pub started_at: String,
    /// Every part is over: the stream ends and the page stops reconnecting.
    pub ended: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum PartState {
    Running,
    Done,
    /// Ended without a verdict (the target was unreachable, a step failed…).
    Failed,
}

/// One part of a run: `aimate load` is one, a drill is its ladder then each experiment.
#[derive(Debug, Clone, Serialize)]
pub struct PartFrame {
    pub part: usize,
    pub title: String,
    /// `load`, `ladder` or `experiment`.
    pub kind: &'static str,
    /// How long the part is planned to take (its stages' warm-up and steady windows).
    pub planned_ms: u64,
    pub state: PartState,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub verdict: Option<Verdict>,
    /// The part's HTML report, served by the live view (relative URL).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub report: Option<String>,
    /// Where the report and the record were written on the machine that ran it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub written_to: Option<String>,
    /// Why a part failed, or what else the reader should know.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub note: Option<String>,
}

/// An objective's line on the latency chart.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Line {
    /// As written in slo.toml, with its scope: `p(95) < 100ms (stage 100)`.
    pub label: String,
    /// 50, 95, 99: the percentile the line bounds.
    pub percentile: f64,
    pub threshold_us: f64,
}

#[derive(Debug, Clone, Serialize)]
pub struct StageFrame {
    pub part: usize,
    pub stage: usize,
    pub name: String,
    pub target_rps: f64,
    pub start_ms: u64,
    pub steady_start_ms: u64,
    pub steady_end_ms: u64,
    pub lines: Vec<Line>,
}

/// One stage second, as the record's timeline will hold it: requests are filed under the
/// second their schedule meant them for, so a second is revised until its slowest answer
/// arrived; the last revision equals the record.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct SecondFrame {
    pub part: usize,
    pub stage: usize,
    /// Start of the second on the part's clock.
    pub t_ms: u64,
    pub in_steady: bool,
    /// What the schedule meant to send in this second.
    pub target: u64,
    /// Requests meant for this second (answered or failed so far).
    pub sent: u64,
    /// Requests that actually left in this second.
    pub started: u64,
    pub errors: u64,
    /// Status codes and transport failures, by kind.
    pub outcomes: BTreeMap<String, u64>,
    pub p50_us: Option<u64>,
    pub p95_us: Option<u64>,
    pub p99_us: Option<u64>,
    pub max_us: Option<u64>,
}

/// One instance's scrape, reduced to what the page draws.
#[derive(Debug, Clone, Serialize)]
pub struct ServerFrame {
    pub part: usize,
    pub t_ms: u64,
    pub instance: String,
    pub up: bool,
    /// Cache hits over lookups since this instance's previous scrape.
    pub cache_hit_ratio: Option<f64>,
    pub db_connections_used: Option<f64>,
    pub db_connections_max: Option<f64>,
    pub resident_memory_bytes: Option<f64>,
}

/// A chaos step, an instance's kill or restart, an alert firing or resolved, an abort.
#[derive(Debug, Clone, Serialize)]
pub struct EventFrame {
    pub part: usize,
    /// Names the event: a span keeps its id from begun to ended.
    pub id: String,
    pub t_ms: u64,
    pub end_ms: Option<u64>,
    pub kind: &'static str,
    pub detail: String,
    /// A span that has begun and not ended yet.
    pub ongoing: bool,
}

/// Where the part is now.
#[derive(Debug, Clone, Serialize)]
pub struct ClockFrame {
    pub part: usize,
    pub t_ms: u64,
    pub stage: usize,
}

/// One objective's verdict so far (or final).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct VerdictRow {
    pub scope: String,
    pub objective: String,
    pub verdict: Verdict,
    /// For the reader: `holds at 95 % so far`, `undecided`, `broken` while the run goes;
    /// the verdict itself at the end.
    pub status: String,
    /// As the reports print it (`12.30 ms`, `0.25 %`, `3.92 s`); empty when unmeasured.
    pub value: String,
    pub threshold: String,
    pub note: String,
}

#[derive(Debug, Clone, Serialize)]
pub struct VerdictsFrame {
    pub part: usize,
    pub t_ms: u64,
    /// `true` once the part's report is written: the rows are the report's.
    pub r#final: bool,
    pub verdict: Verdict,
    pub grades: Vec<VerdictRow>,
}
