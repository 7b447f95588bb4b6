//! The objectives of slo.toml that become SLOs with error budgets: the run's error rate
//! and availability (a share of failed requests) and its latency percentiles (a share
//! of requests slower than the threshold). Each has a bad-event ratio over any window,
//! and a budget: the share of bad events the objective allows.

use aimate_reports::expr::{Metric, Objective};
use aimate_reports::spec::SloSpec;
use aimate_server::metrics::LATENCY_BUCKETS;

use crate::promql;

#[derive(Debug, Clone, PartialEq)]
pub struct Slo {
    /// A label value and rule-name part: `errors`, `latency_p95_500ms`.
    pub name: String,
    /// The objective as slo.toml writes it.
    pub text: String,
    /// Allowed share of bad events (0.01 for `rate(errors) < 1%`).
    pub budget: f64,
    /// The latency threshold in seconds (a histogram bucket bound), for latency SLOs.
    pub latency_le: Option<f64>,
}

#[derive(Debug, thiserror::Error, PartialEq)]
pub enum SloError {
    #[error(
        "`{objective}`: {seconds} s is not a bucket bound of the server's latency histogram \
         ({bounds}); an alert could only approximate it"
    )]
    NotABucket {
        objective: String,
        seconds: f64,
        bounds: String,
    },
}

impl Slo {
    /// The bad-event ratio over `window`, `by` labels.
    pub fn bad_ratio(&self, by: &str, window: &str) -> String {
        match self.latency_le {
            None => promql::error_ratio(by, window),
            Some(le) => promql::slow_ratio(by, window, &promql::le_label(le)),
        }
    }

    /// The recording rule holding the bad-event ratio over `window`.
    pub fn ratio_rule(&self, window: &str) -> String {
        format!("aimate_slo:{}:ratio_rate{window}", self.name)
    }

    /// What a bad event is, in words.
    pub fn bad_events(&self) -> String {
        match self.latency_le {
            None => "requests that failed (5xx, 429)".to_owned(),
            Some(le) => format!("requests slower than {} ms", le * 1000.0),
        }
    }
}

/// The SLOs of the spec's `[run]` objectives.
pub fn slos(spec: &SloSpec) -> Result<Vec<Slo>, SloError> {
    let mut slos = Vec::new();
    for objective in &spec.run {
        if let Some(slo) = slo(objective)? {
            slos.push(slo);
        }
    }
    Ok(slos)
}

fn slo(objective: &Objective) -> Result<Option<Slo>, SloError> {
    let upper = objective.op.is_upper_bound();
    Ok(match (objective.metric, upper) {
        (Metric::ErrorRate, true) => Some(Slo {
            name: "errors".into(),
            text: objective.text.clone(),
            budget: objective.threshold,
            latency_le: None,
        }),
        (Metric::Availability, false) => Some(Slo {
            name: "availability".into(),
            text: objective.text.clone(),
            budget: 1.0 - objective.threshold,
            latency_le: None,
        }),
        (Metric::Percentile(p), true) => {
            // Thresholds are microseconds.
            let seconds = objective.threshold / 1e6;
            if !LATENCY_BUCKETS.iter().any(|b| (b - seconds).abs() < 1e-9) {
                return Err(SloError::NotABucket {
                    objective: objective.text.clone(),
                    seconds,
                    bounds: LATENCY_BUCKETS
                        .iter()
                        .map(|b| format!("{b}"))
                        .collect::<Vec<_>>()
                        .join(", "),
                });
            }
            Some(Slo {
                name: format!("latency_p{}_{}ms", p, (seconds * 1000.0).round()),
                text: objective.text.clone(),
                budget: 1.0 - p / 100.0,
                latency_le: Some(seconds),
            })
        }
        _ => None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn run_objectives_become_budgets() {
        let spec = SloSpec::parse(
            "[run]\nobjectives = [\"rate(errors) < 1%\", \"p(95) < 500ms\", \"p(99) < 500ms\", \"ratio(cache_hits) > 80%\"]\n",
            "slo.toml",
        )
        .unwrap();
        let slos = slos(&spec).unwrap();
        let names: Vec<&str> = slos.iter().map(|s| s.name.as_str()).collect();
        assert_eq!(names, ["errors", "latency_p95_500ms", "latency_p99_500ms"]);
        assert!((slos[0].budget - 0.01).abs() < 1e-12);
        assert!((slos[1].budget - 0.05).abs() < 1e-12);
        assert_eq!(slos[1].latency_le, Some(0.5));
    }

    #[test]
    fn a_threshold_between_buckets_is_refused() {
        let spec = SloSpec::parse("[run]\nobjectives = [\"p(95) < 300ms\"]\n", "slo.toml").unwrap();
        let error = slos(&spec).unwrap_err();
        assert!(error.to_string().contains("not a bucket bound"), "{error}");
    }
}
