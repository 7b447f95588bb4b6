//! The server side of a run as one fleet: per-instance samples turned into figures per
//! scrape round.
//!
//! Counters become per-instance increases with reset detection, as Prometheus's `rate()`
//! reads them: a sample from a new process, or a counter that went down, started again
//! from zero. Increases then sum across instances. Gauges aggregate by what they mean:
//! pool use is the sum of used over the sum of max, memory is the worst instance. An
//! instance whose scrape failed contributes nothing that round and is listed as down: a
//! gap, never interpolated.

use std::collections::BTreeMap;

use crate::record::ServerSample;

/// One instance in one round.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct InstancePoint {
    /// The scrape answered.
    pub up: bool,
    /// A new process answered (or the counters went down) since its last answer.
    pub restarted: bool,
    /// Counter increases since this instance's previous answered scrape; `None` on its
    /// first answer (nothing to compare with) and while it is down.
    pub requests: Option<f64>,
    pub cache_hits: Option<f64>,
    pub cache_misses: Option<f64>,
    /// Gauges as scraped.
    pub db_used: Option<f64>,
    pub db_max: Option<f64>,
    pub memory: Option<f64>,
}

impl InstancePoint {
    /// This instance's cache hit ratio this round (0–1), when it made lookups.
    pub fn cache_hit_ratio(&self) -> Option<f64> {
        let (hits, misses) = (self.cache_hits?, self.cache_misses?);
        (hits + misses > 0.0).then(|| hits / (hits + misses))
    }
}

/// Every instance at one scrape time.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Round {
    pub t_ms: u64,
    /// By instance name (`""`: the target itself).
    pub instances: BTreeMap<String, InstancePoint>,
}

impl Round {
    fn sum(&self, field: fn(&InstancePoint) -> Option<f64>) -> Option<f64> {
        self.instances
            .values()
            .filter_map(field)
            .fold(None, |total, v| Some(total.unwrap_or(0.0) + v))
    }

    /// Requests the fleet served since the previous round.
    pub fn requests(&self) -> Option<f64> {
        self.sum(|p| p.requests)
    }

    /// Response-cache hits and misses across the fleet since the previous round.
    pub fn cache(&self) -> Option<(f64, f64)> {
        Some((self.sum(|p| p.cache_hits)?, self.sum(|p| p.cache_misses)?))
    }

    /// Pool connections in use over the pools' size, across the instances that said both.
    pub fn db_ratio(&self) -> Option<f64> {
        let (used, max) = self
            .instances
            .values()
            .filter_map(|p| Some((p.db_used?, p.db_max?)))
            .fold((0.0, 0.0), |(u, m), (pu, pm)| (u + pu, m + pm));
        (max > 0.0).then(|| used / max)
    }

    /// The instance with the most resident memory, and how much.
    pub fn worst_memory(&self) -> Option<(&str, f64)> {
        self.instances
            .iter()
            .filter_map(|(name, p)| Some((name.as_str(), p.memory?)))
            .max_by(|a, b| a.1.total_cmp(&b.1))
    }

    /// Instances whose scrape failed this round.
    pub fn down(&self) -> impl Iterator<Item = &str> {
        self.instances
            .iter()
            .filter(|(_, p)| !p.up)
            .map(|(name, _)| name.as_str())
    }
}

/// A counter's increase from `before` to `now`, reset-aware: after a restart, or when it
/// went down, it counted from zero.
fn increase(before: Option<f64>, now: Option<f64>, restarted: bool) -> Option<f64> {
    let now = now?;
    if restarted {
        return Some(now);
    }
    let before = before?;
    Some(if now < before { now } else { now - before })
}

/// Whether `now` comes from another process than `before`: the process id changed, or
/// (without ids) the request counter went down.
fn restarted(before: &ServerSample, now: &ServerSample) -> bool {
    match (&before.process, &now.process) {
        (Some(a), Some(b)) => a != b,
        _ => matches!(
            (before.requests_total, now.requests_total),
            (Some(a), Some(b)) if b < a
        ),
    }
}

/// The samples grouped into rounds by time, each instance compared with its own previous
/// answered sample.
pub fn rounds(samples: &[ServerSample]) -> Vec<Round> {
    let mut ordered: Vec<&ServerSample> = samples.iter().collect();
    ordered.sort_by_key(|s| s.t_ms);
    let mut last: BTreeMap<&str, &ServerSample> = BTreeMap::new();
    let mut rounds: Vec<Round> = Vec::new();
    for sample in ordered {
        if rounds.last().is_none_or(|r| r.t_ms != sample.t_ms) {
            rounds.push(Round {
                t_ms: sample.t_ms,
                instances: BTreeMap::new(),
            });
        }
        let point = if sample.up {
            let before = last.insert(sample.instance.as_str(), sample);
            let restarted = before.is_some_and(|b| restarted(b, sample));
            let counter = |field: fn(&ServerSample) -> Option<f64>| {
                before.and_then(|b| increase(field(b), field(sample), restarted))
            };
            InstancePoint {
                up: true,
                restarted,
                requests: counter(|s| s.requests_total),
                cache_hits: counter(|s| s.cache_hits_total),
                cache_misses: counter(|s| s.cache_misses_total),
                db_used: sample.db_connections_used,
                db_max: sample.db_connections_max,
                memory: sample.resident_memory_bytes,
            }
        } else {
            InstancePoint::default()
        };
        if let Some(round) = rounds.last_mut() {
            round.instances.insert(sample.instance.clone(), point);
        }
    }
    rounds
}

/// Why the samples are not one process per instance name, if they are not: a process
/// that answers again after another one did. A restart never brings an old process back;
/// a load balancer handing each scrape to another instance does. Without process ids,
/// counters that went down again and again say the same.
pub fn mixed_processes(samples: &[ServerSample]) -> Option<String> {
    let mut by_instance: BTreeMap<&str, Vec<&ServerSample>> = BTreeMap::new();
    for sample in samples.iter().filter(|s| s.up) {
        by_instance
            .entry(&sample.instance)
            .or_default()
            .push(sample);
    }
    for (instance, mut series) in by_instance {
        series.sort_by_key(|s| s.t_ms);
        let place = if instance.is_empty() {
            "through the target".to_owned()
        } else {
            format!("at {instance}")
        };
        let advice = "a load balancer in front of several instances? Scrape each instance \
                      (--scrape URL, once per instance) or read them from Prometheus \
                      (--prometheus URL)";
        let mut seen: Vec<&str> = Vec::new();
        let mut returned = false;
        for process in series.iter().filter_map(|s| s.process.as_deref()) {
            match seen.iter().position(|p| *p == process) {
                Some(index) if index + 1 != seen.len() => returned = true,
                Some(_) => {}
                None => seen.push(process),
            }
        }
        if returned {
            return Some(format!(
                "the server metrics scraped {place} came from {} processes in turn ({advice})",
                seen.len()
            ));
        }
        if series.iter().all(|s| s.process.is_none()) {
            let drops = series
                .windows(2)
                .filter(|w| matches!((w[0].requests_total, w[1].requests_total), (Some(a), Some(b)) if b < a))
                .count();
            if drops >= 3 {
                return Some(format!(
                    "the request counter scraped {place} went down {drops} times ({advice})"
                ));
            }
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample(t_ms: u64, instance: &str, process: &str, requests: f64) -> ServerSample {
        ServerSample {
            t_ms,
            instance: instance.into(),
            process: Some(process.into()),
            requests_total: Some(requests),
            cache_hits_total: Some(requests * 0.9),
            cache_misses_total: Some(requests * 0.1),
            db_connections_used: Some(2.0),
            db_connections_max: Some(8.0),
            resident_memory_bytes: Some(requests),
            ..ServerSample::default()
        }
    }

    #[test]
    fn increases_sum_across_instances_and_gauges_aggregate_by_meaning() {
        let samples = [
            sample(0, "a", "pa", 100.0),
            sample(0, "b", "pb", 1000.0),
            sample(1000, "a", "pa", 150.0),
            sample(1000, "b", "pb", 1070.0),
        ];
        let rounds = rounds(&samples);
        assert_eq!(rounds.len(), 2);
        assert_eq!(
            rounds[0].requests(),
            None,
            "nothing to compare the first with"
        );
        assert_eq!(rounds[1].requests(), Some(120.0));
        let (hits, misses) = rounds[1].cache().unwrap();
        assert!((hits - 108.0).abs() < 1e-9 && (misses - 12.0).abs() < 1e-9);
        assert_eq!(rounds[1].db_ratio(), Some(0.25));
        assert_eq!(rounds[1].worst_memory(), Some(("b", 1070.0)));
    }

    #[test]
    fn a_restarted_instance_counts_from_zero_never_negative() {
        let samples = [
            sample(0, "a", "p1", 500.0),
            sample(1000, "a", "p1", 600.0),
            ServerSample::down("a", 2000),
            sample(3000, "a", "p2", 40.0),
            sample(4000, "a", "p2", 90.0),
        ];
        let rounds = rounds(&samples);
        let requests: Vec<Option<f64>> = rounds.iter().map(Round::requests).collect();
        assert_eq!(
            requests,
            vec![None, Some(100.0), None, Some(40.0), Some(50.0)]
        );
        assert_eq!(rounds[2].down().collect::<Vec<_>>(), vec!["a"]);
        assert!(rounds[3].instances["a"].restarted);
        assert!(!rounds[4].instances["a"].restarted);
    }

    #[test]
    fn without_process_ids_a_counter_that_went_down_was_reset() {
        let mut samples = [
            sample(0, "", "", 500.0),
            sample(1000, "", "", 30.0),
            sample(2000, "", "", 50.0),
        ];
        for s in &mut samples {
            s.process = None;
        }
        let requests: Vec<Option<f64>> = rounds(&samples).iter().map(Round::requests).collect();
        assert_eq!(requests, vec![None, Some(30.0), Some(20.0)]);
        assert_eq!(mixed_processes(&samples), None, "one reset is a restart");
    }

    #[test]
    fn a_balancer_alternating_processes_is_detected_and_a_restart_is_not() {
        let balanced: Vec<ServerSample> = (0..6)
            .map(|i| {
                sample(
                    i * 1000,
                    "",
                    if i % 2 == 0 { "pa" } else { "pb" },
                    10.0 * i as f64,
                )
            })
            .collect();
        let reason = mixed_processes(&balanced).unwrap();
        assert!(reason.contains("2 processes in turn"), "{reason}");
        assert!(reason.contains("--scrape"), "{reason}");

        let restarted = [
            sample(0, "", "pa", 10.0),
            sample(1000, "", "pa", 20.0),
            sample(2000, "", "pb", 1.0),
            sample(3000, "", "pb", 5.0),
        ];
        assert_eq!(mixed_processes(&restarted), None);
    }
}
