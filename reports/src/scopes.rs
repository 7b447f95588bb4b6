//! The scopes a run is graded in (`stage 1k`, `run`, `phase 1k fault (kill)`) and the
//! seconds of timeline each one covers. Grading and the baseline comparison both name
//! scopes through here, so a figure and its per-second samples always agree.

use crate::record::{Event, EventKind, RunRecord, SecondRecord, ServerSource, StageRecord};

pub fn stage(stage: &StageRecord) -> String {
    format!("stage {}", stage.name)
}

/// The stages the run scope covers: the valid ones.
pub fn valid_stages(record: &RunRecord) -> Vec<&StageRecord> {
    record.stages.iter().filter(|s| s.validity.valid).collect()
}

/// With a stage left out, the scope says so: a PASS over the valid stages must never be
/// read as covering an INVALID one. Route scopes carry the same suffix.
pub fn some_stages_left_out(record: &RunRecord) -> bool {
    let valid = valid_stages(record).len();
    valid < record.stages.len() && valid > 0
}

pub fn run(record: &RunRecord) -> &'static str {
    if some_stages_left_out(record) {
        "run (valid stages)"
    } else {
        "run"
    }
}

/// The Stage 2 scope: present when the run's server metrics came from two or more
/// instances scraped one by one (a fleet), over the valid stages like `run`.
pub fn fleet(record: &RunRecord) -> Option<&'static str> {
    let instances = match &record.server_source {
        ServerSource::Instances { urls } => urls.len(),
        _ => 0,
    };
    (instances >= 2).then(|| {
        if some_stages_left_out(record) {
            "fleet (valid stages)"
        } else {
            "fleet"
        }
    })
}

pub fn route(record: &RunRecord, name: &str) -> String {
    let suffix = if some_stages_left_out(record) {
        " (valid stages)"
    } else {
        ""
    };
    format!("route {name}{suffix}")
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Phase {
    Baseline,
    Fault,
    Recovery,
}

impl Phase {
    pub fn name(self) -> &'static str {
        match self {
            Self::Baseline => "baseline",
            Self::Fault => "fault",
            Self::Recovery => "recovery",
        }
    }
}

/// One phase around one fault: `[from, to)` of a stage's steady window.
pub struct PhaseWindow<'a> {
    pub stage: &'a StageRecord,
    pub fault: &'a Event,
    pub phase: Phase,
    pub from: u64,
    pub to: u64,
    /// The fault's end, clamped to the stage.
    pub fault_end: u64,
}

impl<'a> PhaseWindow<'a> {
    pub fn scope(&self) -> String {
        format!(
            "phase {} {} ({})",
            self.stage.name,
            self.phase.name(),
            self.fault.detail
        )
    }

    /// A second that straddles the fault's start or end belongs to the fault: the
    /// baseline holds only seconds wholly before it, the recovery only seconds wholly
    /// after it.
    pub fn contains(&self, second: &SecondRecord) -> bool {
        let (from, to, t) = (self.from, self.to, second.t_ms);
        match self.phase {
            Phase::Baseline => t >= from && t + 1000 <= to,
            Phase::Fault => t + 1000 > from && t < to,
            Phase::Recovery => t >= from && t < to,
        }
    }

    pub fn seconds(&self) -> impl Iterator<Item = &'a SecondRecord> + '_ {
        self.stage.timeline.iter().filter(|s| self.contains(s))
    }
}

/// Baseline, fault and recovery around each fault (an event with an end) that starts
/// inside a stage's steady window, in stage order.
pub fn phases(record: &RunRecord) -> Vec<PhaseWindow<'_>> {
    let mut windows = Vec::new();
    for stage in &record.stages {
        let faults = record.events.iter().filter(|e| {
            e.kind == EventKind::Fault
                && e.end_ms.is_some()
                && e.t_ms >= stage.steady_start_ms
                && e.t_ms < stage.steady_end_ms
        });
        for fault in faults {
            let end = fault.end_ms.unwrap_or(fault.t_ms).min(stage.steady_end_ms);
            let spans = [
                (Phase::Baseline, stage.steady_start_ms, fault.t_ms),
                (Phase::Fault, fault.t_ms, end),
                (Phase::Recovery, end, stage.steady_end_ms),
            ];
            for (phase, from, to) in spans {
                windows.push(PhaseWindow {
                    stage,
                    fault,
                    phase,
                    from,
                    to,
                    fault_end: end,
                });
            }
        }
    }
    windows
}

/// Seconds of one scope, grouped by the stage they came from (strata: a resample keeps
/// each stage's share of the scope).
pub type Strata<'a> = Vec<Vec<&'a SecondRecord>>;

/// Every scope with a per-second timeline (stages, the run, phases) and its seconds.
/// Routes have none: the timeline is not split by route.
pub fn per_second(record: &RunRecord) -> Vec<(String, Strata<'_>)> {
    fn steady(stage: &StageRecord) -> Vec<&SecondRecord> {
        stage.timeline.iter().filter(|p| p.in_steady).collect()
    }
    let mut scopes: Vec<(String, Strata<'_>)> = record
        .stages
        .iter()
        .map(|s| (stage(s), vec![steady(s)]))
        .collect();
    let valid = valid_stages(record);
    if !valid.is_empty() {
        scopes.push((
            run(record).to_owned(),
            valid.iter().map(|s| steady(s)).collect(),
        ));
    }
    for window in phases(record) {
        scopes.push((window.scope(), vec![window.seconds().collect()]));
    }
    scopes.retain(|(_, strata)| strata.iter().any(|s| !s.is_empty()));
    scopes
}
