//! Merging the segments of a distributed run (`aimate load --segment I/N`) into the
//! record one generator would have written: the same plan, the same target and start
//! instant, each index exactly once. Counts and histograms add exactly (HDR), seconds
//! add by their instant, and a stage any segment could not vouch for (late start, a
//! saturated generator, a missing segment, a clock that stepped) is INVALID in the
//! merged record, naming the segment.
//!
//! ```text
//! segment 0/N ─┐
//! segment 1/N ─┼─ checks (one run, each index once) ─ stages by position,
//!      …       │    seconds by t_ms, routes by name ─ validity per stage
//! segment N−1 ─┘                                   ─▶ RunRecord (graded as any run)
//! ```

use std::collections::BTreeMap;

use crate::histogram::HistogramError;
use crate::record::{RunRecord, SCHEMA_VERSION, SecondRecord, SegmentInfo, StageRecord};

#[derive(Debug, thiserror::Error, PartialEq)]
pub enum SegmentMergeError {
    #[error("no records to merge")]
    Empty,
    #[error(
        "record {position} ({source_name}) is not a segment of a distributed run: merge whole runs without segments"
    )]
    NotASegment {
        position: usize,
        source_name: String,
    },
    #[error(
        "the records are not one distributed run: {what} differs ({a} in {a_name}, {b} in {b_name})"
    )]
    NotOneRun {
        what: &'static str,
        a: String,
        a_name: String,
        b: String,
        b_name: String,
    },
    #[error("segment {index}/{count} is given twice: {first} and {second}")]
    Duplicate {
        index: u32,
        count: u32,
        first: String,
        second: String,
    },
    #[error(
        "{} missing: {} (--allow-missing merges without them; their stages are then INVALID)",
        if missing.len() == 1 { "a segment is" } else { "segments are" },
        missing.iter().map(|i| format!("{i}/{count}")).collect::<Vec<_>>().join(", ")
    )]
    Missing { missing: Vec<u32>, count: u32 },
    #[error("cannot merge histograms: {0}")]
    Histogram(String),
}

impl From<HistogramError> for SegmentMergeError {
    fn from(error: HistogramError) -> Self {
        Self::Histogram(error.to_string())
    }
}

/// A record and what to call it in an error (its file name).
pub struct Named<'a> {
    pub name: String,
    pub record: &'a RunRecord,
}

/// The plan's stage rates from a segment's plan text (`10000,1000; 5s; 30s`).
fn plan_rates(plan: &str) -> Vec<f64> {
    plan.split(';')
        .next()
        .unwrap_or("")
        .split(',')
        .filter_map(|rate| rate.trim().parse().ok())
        .collect()
}

/// A record's segment, or why it is not one.
fn info_of<'a>(position: usize, named: &Named<'a>) -> Result<&'a SegmentInfo, SegmentMergeError> {
    named
        .record
        .run
        .segment
        .as_ref()
        .ok_or_else(|| SegmentMergeError::NotASegment {
            position,
            source_name: named.name.clone(),
        })
}

/// Merges the segments; `allow_missing`: merge what is there and mark every stage
/// INVALID, naming the missing segments.
pub fn merge(records: &[Named<'_>], allow_missing: bool) -> Result<RunRecord, SegmentMergeError> {
    let mut by_index: BTreeMap<u32, (&Named<'_>, &SegmentInfo)> = BTreeMap::new();
    let first = records.first().ok_or(SegmentMergeError::Empty)?;
    let reference = info_of(0, first)?;
    for (position, named) in records.iter().enumerate() {
        let info = info_of(position, named)?;
        let differs = |what: &'static str, a: String, b: String| SegmentMergeError::NotOneRun {
            what,
            a,
            a_name: first.name.clone(),
            b,
            b_name: named.name.clone(),
        };
        if info.count != reference.count {
            return Err(differs(
                "the segment count",
                reference.count.to_string(),
                info.count.to_string(),
            ));
        }
        if info.plan != reference.plan {
            return Err(differs(
                "the plan",
                reference.plan.clone(),
                info.plan.clone(),
            ));
        }
        if info.start_at != reference.start_at {
            let show = |at: &Option<String>| at.clone().unwrap_or_else(|| "none".into());
            return Err(differs(
                "the start instant",
                show(&reference.start_at),
                show(&info.start_at),
            ));
        }
        if named.record.run.target != first.record.run.target {
            return Err(differs(
                "the target",
                first.record.run.target.clone(),
                named.record.run.target.clone(),
            ));
        }
        if let Some((earlier, _)) = by_index.insert(info.index, (named, info)) {
            return Err(SegmentMergeError::Duplicate {
                index: info.index,
                count: info.count,
                first: earlier.name.clone(),
                second: named.name.clone(),
            });
        }
    }
    let count = reference.count;
    let missing: Vec<u32> = (0..count).filter(|i| !by_index.contains_key(i)).collect();
    if !missing.is_empty() && !allow_missing {
        return Err(SegmentMergeError::Missing { missing, count });
    }

    let segments: Vec<(&Named<'_>, &SegmentInfo)> = by_index.values().copied().collect();
    let (lead, lead_info) = segments[0];
    let mut merged = lead.record.clone();
    merged.schema_version = SCHEMA_VERSION;
    merged.run.segment = None;
    let rates = plan_rates(&lead_info.plan);
    for (position, stage) in merged.stages.iter_mut().enumerate() {
        stage.timeline.clear();
        stage.routes.clear();
        (stage.sent, stage.unsent, stage.achieved_rps) = (0, 0, 0.0);
        stage.validity.reasons.clear();
        stage.validity.valid = true;
        // Set below: only if every segment that fell short was held back by the server.
        stage.validity.held_back_by_server = true;
        if let Some(rate) = rates.get(position) {
            stage.target_rps = *rate;
        }
    }
    let mut seconds: Vec<BTreeMap<u64, SecondRecord>> = vec![BTreeMap::new(); merged.stages.len()];
    for (index, (named, info)) in segments.iter().enumerate() {
        let record = named.record;
        if record.stages.len() != merged.stages.len() {
            return Err(SegmentMergeError::NotOneRun {
                what: "the number of stages",
                a: merged.stages.len().to_string(),
                a_name: lead.name.clone(),
                b: record.stages.len().to_string(),
                b_name: named.name.clone(),
            });
        }
        let clock_stepped = info.clock_drift_ms > info.tolerance_ms;
        for (position, theirs) in record.stages.iter().enumerate() {
            let mine = &mut merged.stages[position];
            add_stage(mine, &mut seconds[position], theirs)?;
            let name = format!("segment {}/{}", info.index, info.count);
            if !theirs.validity.valid {
                mine.validity.valid = false;
                mine.validity.held_back_by_server &= theirs.validity.held_back_by_server;
                for reason in &theirs.validity.reasons {
                    mine.validity.reasons.push(format!("{name}: {reason}"));
                }
            }
            if clock_stepped {
                mine.validity.valid = false;
                mine.validity.held_back_by_server = false;
                mine.validity.reasons.push(format!(
                    "{name}: its wall clock moved {:.1} ms against its monotonic clock during the run (tolerance {:.1} ms): its sends cannot be placed on the shared timeline",
                    info.clock_drift_ms, info.tolerance_ms
                ));
            }
        }
        if index > 0 {
            merged
                .run
                .generators
                .extend(record.run.generators.iter().cloned());
            merged.run.started_at = merged
                .run
                .started_at
                .clone()
                .min(record.run.started_at.clone());
            merged.run.finished_at = merged
                .run
                .finished_at
                .clone()
                .max(record.run.finished_at.clone());
            merged.events.extend(record.events.iter().cloned());
            if merged.aborted.is_none() {
                merged.aborted.clone_from(&record.aborted);
            }
            match (&mut merged.writes, &record.writes) {
                (Some(mine), Some(theirs)) => mine.add(theirs),
                (None, Some(theirs)) => merged.writes = Some(theirs.clone()),
                _ => {}
            }
        }
    }
    for (stage, seconds) in merged.stages.iter_mut().zip(seconds) {
        stage.timeline = seconds.into_values().collect();
        if !missing.is_empty() {
            stage.validity.valid = false;
            stage.validity.held_back_by_server = false;
            stage.validity.reasons.push(format!(
                "{} of the run's {count} segments missing ({}): the stage is not the plan's load",
                missing.len(),
                missing
                    .iter()
                    .map(|i| format!("{i}/{count}"))
                    .collect::<Vec<_>>()
                    .join(", ")
            ));
        }
        if stage.validity.valid {
            stage.validity.held_back_by_server = false;
        }
    }
    merged.events.sort_by_key(|event| event.t_ms);
    // The server's series are taken once: from the lowest segment present.
    if let Some(config) = merged.run.config.as_object_mut() {
        config.insert(
            "segments".into(),
            serde_json::json!({
                "count": count,
                "merged": segments.iter().map(|(_, info)| info.index).collect::<Vec<_>>(),
                "missing": missing,
                "start_at": lead_info.start_at,
                "plan": lead_info.plan,
                "first_send_late_ms": segments.iter().map(|(_, info)| &info.first_send_late_ms).collect::<Vec<_>>(),
                "server_series_from": format!("segment {}/{count}", lead_info.index),
            }),
        );
    }
    Ok(merged)
}

/// Adds one segment's stage: counts, routes, and its seconds by their instant.
fn add_stage(
    mine: &mut StageRecord,
    seconds: &mut BTreeMap<u64, SecondRecord>,
    theirs: &StageRecord,
) -> Result<(), SegmentMergeError> {
    mine.sent += theirs.sent;
    mine.unsent += theirs.unsent;
    mine.achieved_rps += theirs.achieved_rps;
    for (route, record) in &theirs.routes {
        let into = mine.routes.entry(route.clone()).or_default();
        into.latency_us.add(&record.latency_us)?;
        into.service_us.add(&record.service_us)?;
        for (outcome, n) in &record.outcomes {
            *into.outcomes.entry(outcome.clone()).or_default() += n;
        }
    }
    for second in &theirs.timeline {
        match seconds.get_mut(&second.t_ms) {
            Some(into) => {
                into.sent += second.sent;
                into.started += second.started;
                into.unsent += second.unsent;
                into.in_steady |= second.in_steady;
                for (outcome, n) in &second.outcomes {
                    *into.outcomes.entry(outcome.clone()).or_default() += n;
                }
                into.latency_us.add(&second.latency_us)?;
            }
            None => {
                seconds.insert(second.t_ms, second.clone());
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_plans_rates_come_from_its_text() {
        assert_eq!(plan_rates("10000,1000; 5s; 30s"), vec![10000.0, 1000.0]);
        assert_eq!(plan_rates("333.5; 1s; 2s"), vec![333.5]);
    }
}
