//! Grading: a pure function from what a run measured (`RunRecord`) and what it must meet
//! (`SloSpec`) to a verdict per objective and scope. Server-side figures are the fleet's
//! (see [`crate::fleet`]).
//!
//! Each grade is PASS, FAIL or INVALID, with the measured value, the threshold, the
//! margin and the sample count. A missing metric or too few samples is INVALID, never a
//! silent pass; so is any objective on a stage the load generator itself judged invalid
//! (target rate not reached, generator saturated).

use std::collections::BTreeMap;

use serde::Serialize;

use crate::confidence::{self, Decision};
use crate::expr::{Metric, Objective};
use crate::fleet::{self, Round};
use crate::histogram::LatencyHistogram;
use crate::record::{
    EventKind, RunRecord, SecondRecord, StageRecord, WriteCheck, outcome_is_error,
};
use crate::scopes::{self, Phase};
use crate::spec::SloSpec;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "UPPERCASE")]
pub enum Verdict {
    Pass,
    Fail,
    Invalid,
}

#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct Grade {
    /// `run`, `stage 1k` or `route GET /api/invoices`.
    pub scope: String,
    pub objective: String,
    pub verdict: Verdict,
    /// In `unit`; `None` when it could not be measured.
    pub value: Option<f64>,
    pub threshold: f64,
    /// `ms` for latencies, `%` for rates and ratios.
    pub unit: &'static str,
    /// Headroom as a fraction of the threshold: positive passes, negative fails by that much.
    pub margin: Option<f64>,
    pub samples: u64,
    /// Why a grade is INVALID.
    pub reason: Option<String>,
    /// For a share of events (latency percentiles, error and availability rates): what
    /// the binomial decided at 95 % confidence, with the counts.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub confidence: Option<String>,
    /// Where a figure came from, when that helps to read it (the instance whose memory
    /// peaked).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub detail: Option<String>,
}

impl Grade {
    /// What a report's note shows: why the grade is INVALID, else the evidence that
    /// decided it (for shares of events), else where the figure came from, else nothing.
    pub fn note(&self) -> &str {
        self.reason
            .as_deref()
            .or(self.confidence.as_deref())
            .or(self.detail.as_deref())
            .unwrap_or("")
    }
}

#[derive(Debug, Clone, Serialize)]
pub struct Report {
    pub verdict: Verdict,
    pub grades: Vec<Grade>,
    /// Each graded figure against the same figure of earlier runs, when given
    /// ([`crate::regression::compare`]).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub baseline: Vec<crate::regression::Comparison>,
}

impl Report {
    /// The CLI exit code (ARCHITECTURE.md): 0 all met, 1 an SLO failed, 3 not gradable.
    pub fn exit_code(&self) -> u8 {
        match self.verdict {
            Verdict::Pass => 0,
            Verdict::Fail => 1,
            Verdict::Invalid => 3,
        }
    }

    pub fn count(&self, verdict: Verdict) -> usize {
        self.grades.iter().filter(|g| g.verdict == verdict).count()
    }
}

/// What one scope measured.
#[derive(Default)]
struct Measured {
    latency: LatencyHistogram,
    requests: u64,
    errors: u64,
    /// Answered 2xx or 4xx: the service was there, whatever it said.
    available: u64,
    /// The fleet's scrape rounds in the scope's windows; increases count only between
    /// rounds of one window (see [`Measured::add_rounds`]).
    server: Vec<Round>,
    /// Why the server series cannot be trusted (several processes behind one scrape).
    server_problem: Option<String>,
    writes: Option<WriteCheck>,
}

fn outcome_is_available(label: &str) -> bool {
    label.parse::<u16>().is_ok_and(|code| code < 500)
}

impl Measured {
    fn add_route(&mut self, latency: &LatencyHistogram, outcomes: &BTreeMap<String, u64>) {
        let _ = self.latency.add(latency);
        for (outcome, count) in outcomes {
            self.requests += count;
            if outcome_is_error(outcome) {
                self.errors += count;
            }
            if outcome_is_available(outcome) {
                self.available += count;
            }
        }
    }

    fn add_stage(&mut self, stage: &StageRecord, server: &Server) {
        for route in stage.routes.values() {
            self.add_route(&route.latency_us, &route.outcomes);
        }
        self.add_rounds(server, |t| {
            t >= stage.steady_start_ms && t <= stage.steady_end_ms
        });
    }

    /// The rounds of one window. The first one's increases cover time before the
    /// window, so they are dropped: counters count between rounds inside it.
    fn add_rounds(&mut self, server: &Server, in_window: impl Fn(u64) -> bool) {
        let mut first = true;
        for round in server.rounds.iter().filter(|r| in_window(r.t_ms)) {
            let mut round = round.clone();
            if std::mem::take(&mut first) {
                for point in round.instances.values_mut() {
                    (point.requests, point.cache_hits, point.cache_misses) = (None, None, None);
                }
            }
            self.server.push(round);
        }
        self.server_problem.clone_from(&server.problem);
    }
}

/// A record's server series, read once: the rounds, and whether they can be trusted.
struct Server {
    rounds: Vec<Round>,
    problem: Option<String>,
}

impl Server {
    fn of(record: &RunRecord) -> Self {
        Self {
            rounds: fleet::rounds(&record.server),
            problem: fleet::mixed_processes(&record.server),
        }
    }
}

/// (value, samples) or why there is none.
type Measurement = Result<(f64, u64), String>;

/// The largest of a per-round figure, with the round count it came from.
fn peak<T>(rounds: &[Round], figure: impl Fn(&Round) -> Option<(f64, T)>) -> Option<(f64, T, u64)> {
    let mut count = 0;
    let mut best: Option<(f64, T)> = None;
    for value in rounds.iter().filter_map(figure) {
        count += 1;
        if best.as_ref().is_none_or(|b| value.0 > b.0) {
            best = Some(value);
        }
    }
    best.map(|(value, at)| (value, at, count))
}

fn measure(metric: Metric, measured: &Measured, spec: &SloSpec, per_route: bool) -> Measurement {
    measure_with_detail(metric, measured, spec, per_route)
        .map(|(value, samples, _)| (value, samples))
}

/// A measurement and, where it helps to read it, a word on where it came from (the
/// instance whose memory peaked).
fn measure_with_detail(
    metric: Metric,
    measured: &Measured,
    spec: &SloSpec,
    per_route: bool,
) -> Result<(f64, u64, Option<String>), String> {
    let no_server = || "no server samples in the window (was /api/metrics reachable?)".to_owned();
    let plain = |m: Measurement| m.map(|(value, samples)| (value, samples, None));
    if per_route
        && !matches!(
            metric,
            Metric::Percentile(_) | Metric::ErrorRate | Metric::Availability
        )
    {
        return Err("only latency, errors and availability are measured per route".into());
    }
    let server_metric = matches!(
        metric,
        Metric::CacheHitRatio | Metric::DbConnectionRatio | Metric::MemoryRatio
    );
    if server_metric && let Some(problem) = &measured.server_problem {
        return Err(problem.clone());
    }
    match metric {
        Metric::Percentile(p) => {
            let samples = measured.latency.count();
            let value = measured
                .latency
                .quantile_micros(p / 100.0)
                .ok_or("no requests measured")?;
            plain(Ok((value as f64, samples)))
        }
        Metric::ErrorRate if measured.requests == 0 => Err("no requests measured".into()),
        Metric::ErrorRate => plain(Ok((
            measured.errors as f64 / measured.requests as f64,
            measured.requests,
        ))),
        Metric::CacheHitRatio => {
            let sum = |field: fn(&(f64, f64)) -> f64| -> Option<f64> {
                measured
                    .server
                    .iter()
                    .filter_map(Round::cache)
                    .map(|c| field(&c))
                    .fold(None, |total, v| Some(total.unwrap_or(0.0) + v))
            };
            let hits = sum(|c| c.0).ok_or_else(no_server)?;
            let misses = sum(|c| c.1).ok_or_else(no_server)?;
            let lookups = hits + misses;
            if lookups <= 0.0 {
                return Err("the server made no cache lookups in the window".into());
            }
            plain(Ok((hits / lookups, lookups as u64)))
        }
        Metric::DbConnectionRatio => {
            if measured.server.is_empty() {
                return Err(no_server());
            }
            let (ratio, (), rounds) = peak(&measured.server, |r| Some((r.db_ratio()?, ())))
                .ok_or("the server reported no pool size")?;
            plain(Ok((ratio, rounds)))
        }
        Metric::Availability if measured.requests == 0 => Err("no requests measured".into()),
        Metric::Availability => plain(Ok((
            measured.available as f64 / measured.requests as f64,
            measured.requests,
        ))),
        Metric::LostWrites => {
            let writes = measured
                .writes
                .as_ref()
                .ok_or("the run did not read back its acknowledged writes")?;
            if writes.unverified > 0 {
                return Err(format!(
                    "{} of {} acknowledged writes could not be read back",
                    writes.unverified, writes.acknowledged
                ));
            }
            plain(Ok((writes.missing as f64, writes.checked)))
        }
        Metric::RecoveryTime => Err("time(recover) is graded in a fault's recovery phase".into()),
        Metric::DetectTime => Err("time(detect) is graded in a fault's fault phase".into()),
        Metric::HealthyPages => {
            Err("count(healthy_pages) is graded in a fault's baseline phase".into())
        }
        Metric::MemoryRatio => {
            let (rss, instance, rounds) = peak(&measured.server, |r| {
                r.worst_memory()
                    .map(|(instance, rss)| (rss, instance.to_owned()))
            })
            .ok_or_else(no_server)?;
            let limit = spec
                .memory_limit_bytes
                .ok_or("no memory_limit in the spec")? as f64;
            let several = measured.server.iter().any(|r| r.instances.len() > 1);
            let detail = several.then(|| format!("peak on instance {instance}"));
            Ok((rss / limit, rounds, detail))
        }
    }
}

/// `beyond` of `n` events past an objective's limit, against the share `alpha` it allows
/// (see [`crate::confidence`]); `limit` names the limit in words.
#[derive(Debug, Clone, Copy)]
struct Evidence {
    beyond: u64,
    n: u64,
    alpha: f64,
}

/// The binomial evidence of an objective, where it is a share of events past a limit:
/// `p(N) < T` (requests slower than T, allowed 100−N %), `rate(errors) < X` (failed
/// requests, allowed X), `ratio(available) > X` (unavailable answers, allowed 1−X).
fn evidence(objective: &Objective, measured: &Measured) -> Option<Evidence> {
    let upper = objective.op.is_upper_bound();
    match (objective.metric, upper) {
        (Metric::Percentile(p), true) => {
            let n = measured.latency.count();
            let limit = objective.threshold.max(0.0) as u64;
            let within = measured.latency.inner().count_between(0, limit);
            Some(Evidence {
                beyond: n.saturating_sub(within),
                n,
                alpha: 1.0 - p / 100.0,
            })
        }
        (Metric::ErrorRate, true) => Some(Evidence {
            beyond: measured.errors,
            n: measured.requests,
            alpha: objective.threshold,
        }),
        (Metric::Availability, false) => Some(Evidence {
            beyond: measured.requests.saturating_sub(measured.available),
            n: measured.requests,
            alpha: 1.0 - objective.threshold,
        }),
        _ => None,
    }
}

/// Measures `objective` on `measured` and grades it, with confidence bounds where the
/// objective is a share of events.
fn grade_measured(
    scope: &str,
    objective: &Objective,
    measured: &Measured,
    spec: &SloSpec,
    per_route: bool,
    invalid_because: Option<&str>,
) -> Grade {
    let (measurement, detail) =
        match measure_with_detail(objective.metric, measured, spec, per_route) {
            Ok((value, samples, detail)) => (Ok((value, samples)), detail),
            Err(reason) => (Err(reason), None),
        };
    let evidence = measurement
        .is_ok()
        .then(|| evidence(objective, measured))
        .flatten();
    Grade {
        detail,
        ..grade_with(scope, objective, measurement, invalid_because, evidence)
    }
}

fn grade_one(
    scope: &str,
    objective: &Objective,
    measurement: Measurement,
    invalid_because: Option<&str>,
) -> Grade {
    grade_with(scope, objective, measurement, invalid_because, None)
}

fn grade_with(
    scope: &str,
    objective: &Objective,
    measurement: Measurement,
    invalid_because: Option<&str>,
    evidence: Option<Evidence>,
) -> Grade {
    let (unit, scale) = if objective.metric.is_duration() {
        ("ms", 1e-3)
    } else if objective.metric == Metric::HealthyPages {
        ("pages", 1.0)
    } else if objective.metric.is_count() {
        ("writes", 1.0)
    } else {
        ("%", 100.0)
    };
    let threshold = objective.threshold * scale;
    let base = Grade {
        scope: scope.to_owned(),
        objective: objective.text.clone(),
        verdict: Verdict::Invalid,
        value: None,
        threshold,
        unit,
        margin: None,
        samples: 0,
        reason: None,
        confidence: None,
        detail: None,
    };
    match measurement {
        Err(reason) => Grade {
            reason: Some(reason),
            ..base
        },
        Ok((raw, samples)) => {
            let value = raw * scale;
            let margin = if objective.threshold == 0.0 {
                None
            } else if objective.op.is_upper_bound() {
                Some((objective.threshold - raw) / objective.threshold)
            } else {
                Some((raw - objective.threshold) / objective.threshold)
            };
            let measured = Grade {
                value: Some(value),
                margin,
                samples,
                ..base
            };
            if let Some(reason) = invalid_because {
                return Grade {
                    reason: Some(reason.to_owned()),
                    ..measured
                };
            }
            if let Some(evidence) = evidence {
                return decided(objective, evidence, measured);
            }
            if samples < objective.metric.min_samples() {
                return Grade {
                    reason: Some(format!(
                        "{samples} samples; at least {} are needed",
                        objective.metric.min_samples()
                    )),
                    ..measured
                };
            }
            let verdict = if objective.op.holds(raw, objective.threshold) {
                Verdict::Pass
            } else {
                Verdict::Fail
            };
            Grade {
                verdict,
                ..measured
            }
        }
    }
}

/// A stage that missed its rate only because the server was slow: its latencies count
/// from the intended send time, so the requests it never sent would only have been
/// later still, and what was measured is a lower bound. When that bound already breaks
/// a latency objective (at 95 % confidence), the stage FAILs; why, in words.
fn lower_bound_failure(
    stage: &StageRecord,
    objective: &Objective,
    measured: &Measured,
) -> Option<String> {
    // Records written before the flag existed said it in words, as their only reason.
    let said_so = stage.validity.reasons.len() == 1
        && stage.validity.reasons[0].contains("the generator was not CPU-bound");
    if stage.validity.valid || !(stage.validity.held_back_by_server || said_so) {
        return None;
    }
    let intended = (stage.target_rps
        * (stage.steady_end_ms.saturating_sub(stage.steady_start_ms)) as f64
        / 1000.0)
        .round() as u64;
    let unsent = stage.unsent.max(intended.saturating_sub(stage.sent));
    let Metric::Percentile(p) = objective.metric else {
        return None;
    };
    let e = evidence(objective, measured)?;
    if confidence::decide(e.beyond, e.n, e.alpha) != Decision::Broken {
        return None;
    }
    let value = measured.latency.quantile_micros(p / 100.0)? as f64 / 1000.0;
    Some(format!(
        "P{p} ≥ {value:.0} ms even before counting {} intended requests that were never sent \
         (the server held the rate back to {:.0} req/s; {} of {} measured beyond the limit)",
        unsent, stage.achieved_rps, e.beyond, e.n
    ))
}

/// The verdict the binomial gives, with the counts that decided it.
fn decided(objective: &Objective, e: Evidence, measured: Grade) -> Grade {
    let (low, high) = confidence::interval(e.beyond, e.n);
    let counts = format!("{} of {} beyond the limit", e.beyond, e.n);
    match confidence::decide(e.beyond, e.n, e.alpha) {
        Decision::Holds => Grade {
            verdict: Verdict::Pass,
            confidence: Some(format!("holds at 95 %: {counts} (share {})", at_most(high))),
            ..measured
        },
        Decision::Broken => Grade {
            verdict: Verdict::Fail,
            confidence: Some(format!(
                "broken at 95 %: {counts} (share ≥ {})",
                percent(low)
            )),
            ..measured
        },
        Decision::Undecided => {
            let needed = if e.beyond == 0 {
                format!(
                    "; at least {} with none beyond are needed",
                    confidence::needed_with_none_beyond(e.alpha)
                )
            } else {
                String::new()
            };
            let share = format!("share {}–{}", percent(low), percent(high));
            Grade {
                reason: Some(format!(
                    "`{}` cannot be decided at 95 % confidence: {counts} ({share}, allowed < {}){needed}",
                    objective.text,
                    percent(e.alpha)
                )),
                confidence: Some(format!("undecided at 95 %: {counts} ({share})")),
                ..measured
            }
        }
    }
}

/// "≤ 0.26 %", or "< 0.01 %" for a bound too small to print.
fn at_most(share: f64) -> String {
    let text = percent(share);
    if text.starts_with('<') {
        text
    } else {
        format!("≤ {text}")
    }
}

/// A share as a percentage, precise enough to tell small ones apart.
fn percent(share: f64) -> String {
    let value = share * 100.0;
    if value > 0.0 && value < 0.01 {
        "< 0.01 %".to_owned()
    } else {
        format!("{value:.2} %")
    }
}

/// Grades `record` against `spec`.
pub fn grade(record: &RunRecord, spec: &SloSpec) -> Report {
    let mut grades = Vec::new();
    let valid = scopes::valid_stages(record);
    let run_invalid = if record.stages.is_empty() {
        Some("the run has no stages".to_owned())
    } else if valid.is_empty() {
        Some("no stage of the run was valid".to_owned())
    } else {
        None
    };

    let server = Server::of(record);
    for stage_spec in &spec.stages {
        let Some(stage) = record
            .stages
            .iter()
            .find(|s| (s.target_rps - stage_spec.rate_per_second).abs() < 1e-6)
        else {
            continue;
        };
        let mut measured = Measured::default();
        measured.add_stage(stage, &server);
        let invalid = (!stage.validity.valid).then(|| stage.validity.reasons.join("; "));
        for objective in &stage_spec.objectives {
            let scope = scopes::stage(stage);
            let grade = grade_measured(
                &scope,
                objective,
                &measured,
                spec,
                false,
                invalid.as_deref(),
            );
            grades.push(match lower_bound_failure(stage, objective, &measured) {
                Some(reason) if grade.verdict == Verdict::Invalid => Grade {
                    verdict: Verdict::Fail,
                    reason: Some(reason),
                    ..grade
                },
                _ => grade,
            });
        }
    }

    let mut whole = Measured {
        writes: record.writes.clone(),
        ..Measured::default()
    };
    for stage in &valid {
        whole.add_stage(stage, &server);
    }
    for objective in &spec.run {
        grades.push(grade_measured(
            scopes::run(record),
            objective,
            &whole,
            spec,
            false,
            run_invalid.as_deref(),
        ));
    }

    if let Some(scope) = scopes::fleet(record) {
        for objective in &spec.fleet {
            grades.push(grade_measured(
                scope,
                objective,
                &whole,
                spec,
                false,
                run_invalid.as_deref(),
            ));
        }
    }

    if !spec.phase.is_empty() {
        grade_phases(record, &server, spec, &mut grades);
    }

    let mut routes: BTreeMap<&str, Measured> = BTreeMap::new();
    for stage in &valid {
        for (name, route) in &stage.routes {
            routes
                .entry(name)
                .or_default()
                .add_route(&route.latency_us, &route.outcomes);
        }
    }
    for (name, measured) in &routes {
        for objective in &spec.route {
            grades.push(grade_measured(
                &scopes::route(record, name),
                objective,
                measured,
                spec,
                true,
                None,
            ));
        }
    }

    // A route too rare to grade is reported INVALID on its own line, but does not make
    // the whole run ungradable: a short run rarely sees 200 bulk imports.
    let verdict = if grades.iter().any(|g| g.verdict == Verdict::Fail) {
        Verdict::Fail
    } else if grades.is_empty()
        || run_invalid.is_some()
        || grades
            .iter()
            .any(|g| g.verdict == Verdict::Invalid && !g.scope.starts_with("route "))
    {
        Verdict::Invalid
    } else {
        Verdict::Pass
    };
    Report {
        verdict,
        grades,
        baseline: Vec::new(),
    }
}

/// Phases around each fault (an event with an end inside a stage's steady window):
/// `baseline` before it, `fault` during it, `recovery` after it, each graded on the
/// per-second timeline and the server samples of its span. `ratio(available)` is graded
/// in the fault phase only (availability *during* the fault), `time(recover)` in the
/// recovery phase only; every other objective in all three.
fn grade_phases(record: &RunRecord, server: &Server, spec: &SloSpec, grades: &mut Vec<Grade>) {
    for window in scopes::phases(record) {
        let (stage, from, to) = (window.stage, window.from, window.to);
        let invalid = (!stage.validity.valid).then(|| stage.validity.reasons.join("; "));
        let mut measured = Measured::default();
        for point in window.seconds() {
            measured.add_route(&point.latency_us, &point.outcomes);
        }
        measured.add_rounds(server, |t| t >= from && t < to);
        let scope = window.scope();
        for objective in &spec.phase {
            let grade = match (objective.metric, window.phase) {
                (Metric::LostWrites, _) => continue,
                (Metric::Availability, Phase::Baseline | Phase::Recovery) => continue,
                (Metric::RecoveryTime, Phase::Recovery) => grade_recovery(
                    &scope,
                    objective,
                    recovery_time(stage, window.fault_end, spec),
                    invalid.as_deref(),
                ),
                (Metric::RecoveryTime, _) => continue,
                // Alerts are graded only where a Prometheus watched them.
                (Metric::DetectTime | Metric::HealthyPages, _) if record.alerting.is_none() => {
                    continue;
                }
                (Metric::DetectTime, Phase::Fault) => {
                    match detection(record, window.fault.t_ms, stage.steady_end_ms) {
                        None => continue,
                        Some(found) => grade_detection(&scope, objective, found),
                    }
                }
                (Metric::HealthyPages, Phase::Baseline) => {
                    let pages = pages_between(record, from, to);
                    grade_one(&scope, objective, Ok((pages as f64, 1)), None)
                }
                (Metric::DetectTime | Metric::HealthyPages, _) => continue,
                _ => grade_measured(
                    &scope,
                    objective,
                    &measured,
                    spec,
                    false,
                    invalid.as_deref(),
                ),
            };
            grades.push(grade);
        }
    }
}

/// The expected alert's first firing after `fault_start` (before `until`): `None` when
/// the experiment expects no alert, `Some(Err(name))` when the expected one never fired.
fn detection(record: &RunRecord, fault_start: u64, until: u64) -> Option<Result<u64, String>> {
    let expected = record.alerting.as_ref()?.expected.as_deref()?;
    let fired = record.events.iter().find(|e| {
        e.kind == EventKind::AlertFiring
            && e.t_ms >= fault_start
            && e.t_ms <= until
            && crate::record::alert_of(&e.detail).0 == expected
    });
    Some(match fired {
        Some(event) => Ok(event.t_ms - fault_start),
        None => Err(expected.to_owned()),
    })
}

fn grade_detection(scope: &str, objective: &Objective, found: Result<u64, String>) -> Grade {
    match found {
        Ok(ms) => grade_one(scope, objective, Ok((ms as f64 * 1000.0, 1)), None),
        Err(name) => Grade {
            verdict: Verdict::Fail,
            reason: Some(format!("`{name}` never fired before the stage ended")),
            ..grade_one(scope, objective, Err(String::new()), None)
        },
    }
}

/// Page-severity alerts that started firing in `[from, to)`.
fn pages_between(record: &RunRecord, from: u64, to: u64) -> usize {
    record
        .events
        .iter()
        .filter(|e| {
            e.kind == EventKind::AlertFiring
                && e.t_ms >= from
                && e.t_ms < to
                && crate::record::alert_of(&e.detail).1 == "page"
        })
        .count()
}

/// Seconds of timeline a steady state must hold for to count as back.
const STEADY_SECONDS: usize = 3;

/// Time from `fault_end` until the request objectives of `spec.phase` (latency, errors,
/// availability) hold over [`STEADY_SECONDS`] consecutive seconds of the stage;
/// `Ok(None)` when they never do before the stage ends.
fn recovery_time(
    stage: &StageRecord,
    fault_end: u64,
    spec: &SloSpec,
) -> Result<Option<f64>, String> {
    let steady: Vec<&Objective> = spec
        .phase
        .iter()
        .filter(|o| {
            matches!(
                o.metric,
                Metric::Percentile(_) | Metric::ErrorRate | Metric::Availability
            )
        })
        .collect();
    if steady.is_empty() {
        return Err(
            "the phase objectives have no latency, error or availability objective to recover to"
                .into(),
        );
    }
    let points: Vec<&SecondRecord> = stage
        .timeline
        .iter()
        .filter(|p| p.t_ms + 1000 > fault_end && p.t_ms < stage.steady_end_ms)
        .collect();
    for window in points.windows(STEADY_SECONDS) {
        let mut measured = Measured::default();
        for point in window {
            measured.add_route(&point.latency_us, &point.outcomes);
        }
        let holds = steady.iter().all(|objective| {
            measure(objective.metric, &measured, spec, false)
                .is_ok_and(|(value, _)| objective.op.holds(value, objective.threshold))
        });
        if holds {
            return Ok(Some(
                window[0].t_ms.saturating_sub(fault_end) as f64 * 1000.0,
            ));
        }
    }
    Ok(None)
}

fn grade_recovery(
    scope: &str,
    objective: &Objective,
    recovered: Result<Option<f64>, String>,
    invalid_because: Option<&str>,
) -> Grade {
    match recovered {
        Ok(Some(micros)) => grade_one(scope, objective, Ok((micros, 1)), invalid_because),
        Ok(None) => Grade {
            verdict: Verdict::Fail,
            reason: Some("the steady state did not return before the stage ended".into()),
            ..grade_one(scope, objective, Err(String::new()), None)
        },
        Err(reason) => grade_one(scope, objective, Err(reason), invalid_because),
    }
}
