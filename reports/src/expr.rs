//! The objective language, in the spirit of k6 thresholds: `METRIC OP THRESHOLD`.
//!
//! ```text
//! p(95) < 100ms          percentile of latency from the intended send time
//! rate(errors) < 1%      share of requests that failed (5xx, 429, transport errors)
//! ratio(cache_hits) > 80%         server: response-cache hits / lookups
//! ratio(db_connections) < 80%     server: pool connections in use / pool max (peak)
//! ratio(memory) < 85%             server: resident memory / the spec's memory limit (peak)
//! ratio(available) > 95%          share of requests answered 2xx or 4xx (availability)
//! time(recover) < 10s             from a fault's end until the steady state holds again
//! count(lost_writes) < 1          acknowledged writes that could not be read back
//! time(detect) < 10s              chaos: from a fault's start until its expected alert fired
//! count(healthy_pages) < 1        chaos: page-severity alerts fired while healthy (baseline)
//! ```

use std::fmt;

#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Metric {
    /// Latency percentile, 0–100 exclusive of 100.
    Percentile(f64),
    ErrorRate,
    CacheHitRatio,
    DbConnectionRatio,
    MemoryRatio,
    /// Requests answered 2xx/4xx over all requests.
    Availability,
    /// Chaos phases only: fault end until the steady state holds again.
    RecoveryTime,
    /// Acknowledged writes missing when read back after the run.
    LostWrites,
    /// Chaos faults: from the fault's start until the alert the experiment expects fired.
    DetectTime,
    /// Chaos baselines: page-severity alerts that fired while nothing was wrong.
    HealthyPages,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Op {
    Lt,
    Le,
    Gt,
    Ge,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Objective {
    pub metric: Metric,
    pub op: Op,
    /// Microseconds for percentiles, a fraction (0–1) for rates and ratios.
    pub threshold: f64,
    /// As written, for reports.
    pub text: String,
}

impl Op {
    pub fn holds(self, value: f64, threshold: f64) -> bool {
        match self {
            Self::Lt => value < threshold,
            Self::Le => value <= threshold,
            Self::Gt => value > threshold,
            Self::Ge => value >= threshold,
        }
    }

    pub fn is_upper_bound(self) -> bool {
        matches!(self, Self::Lt | Self::Le)
    }
}

impl fmt::Display for Op {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Lt => "<",
            Self::Le => "<=",
            Self::Gt => ">",
            Self::Ge => ">=",
        })
    }
}

impl Metric {
    pub fn is_latency(self) -> bool {
        matches!(self, Self::Percentile(_))
    }

    /// Thresholds in time units (`100ms`), stored in microseconds.
    pub fn is_duration(self) -> bool {
        matches!(
            self,
            Self::Percentile(_) | Self::RecoveryTime | Self::DetectTime
        )
    }

    /// Thresholds as plain counts (`< 1`).
    pub fn is_count(self) -> bool {
        matches!(self, Self::LostWrites | Self::HealthyPages)
    }

    /// Samples needed for the value to mean something: ten beyond a percentile.
    pub fn min_samples(self) -> u64 {
        match self {
            Self::Percentile(p) => (10.0 / (1.0 - p / 100.0)).ceil() as u64,
            Self::ErrorRate | Self::Availability => 100,
            // A run without writes lost none of them.
            Self::LostWrites | Self::HealthyPages => 0,
            _ => 1,
        }
    }
}

fn parse_metric(text: &str) -> Result<Metric, String> {
    let text = text.trim();
    if let Some(inner) = text.strip_prefix("p(").and_then(|t| t.strip_suffix(')')) {
        let p: f64 = inner
            .trim()
            .parse()
            .map_err(|_| format!("`{inner}` is not a percentile"))?;
        if !(p > 0.0 && p < 100.0) {
            return Err(format!("percentile {p} is outside (0, 100)"));
        }
        return Ok(Metric::Percentile(p));
    }
    match text {
        "rate(errors)" => Ok(Metric::ErrorRate),
        "ratio(cache_hits)" => Ok(Metric::CacheHitRatio),
        "ratio(db_connections)" => Ok(Metric::DbConnectionRatio),
        "ratio(memory)" => Ok(Metric::MemoryRatio),
        "ratio(available)" => Ok(Metric::Availability),
        "time(recover)" => Ok(Metric::RecoveryTime),
        "count(lost_writes)" => Ok(Metric::LostWrites),
        "time(detect)" => Ok(Metric::DetectTime),
        "count(healthy_pages)" => Ok(Metric::HealthyPages),
        other => Err(format!(
            "unknown metric `{other}` (known: p(N), rate(errors), ratio(cache_hits), ratio(db_connections), ratio(memory), ratio(available), time(recover), count(lost_writes), time(detect), count(healthy_pages))"
        )),
    }
}

/// A duration in microseconds, in the one grammar of every input
/// ([`crate::duration`]): `250us`, `100ms`, `1.5s`, `1m`.
pub fn parse_duration_micros(text: &str) -> Result<f64, String> {
    crate::duration::parse(text)
        .map(|duration| duration.as_secs_f64() * 1e6)
        .map_err(|error| error.to_string())
}

fn parse_fraction(text: &str) -> Result<f64, String> {
    let text = text.trim();
    let number = text
        .strip_suffix('%')
        .ok_or_else(|| format!("`{text}` needs a %"))?;
    let value: f64 = number
        .trim()
        .parse()
        .map_err(|_| format!("`{text}` is not a percentage"))?;
    if !(0.0..=100.0).contains(&value) {
        return Err(format!("`{text}` is outside 0–100%"));
    }
    Ok(value / 100.0)
}

/// Parses one objective.
pub fn parse(text: &str) -> Result<Objective, String> {
    let (at, op, width) = ["<=", ">=", "<", ">"]
        .iter()
        .find_map(|sym| text.find(sym).map(|at| (at, *sym, sym.len())))
        .ok_or_else(|| format!("`{text}` has no comparison (<, <=, >, >=)"))?;
    let op = match op {
        "<=" => Op::Le,
        ">=" => Op::Ge,
        "<" => Op::Lt,
        _ => Op::Gt,
    };
    let metric = parse_metric(&text[..at])?;
    let threshold_text = &text[at + width..];
    let threshold = if metric.is_duration() {
        parse_duration_micros(threshold_text)?
    } else if metric.is_count() {
        let text = threshold_text.trim();
        text.parse::<u64>()
            .map_err(|_| format!("`{text}` is not a count such as 1"))? as f64
    } else {
        parse_fraction(threshold_text)?
    };
    Ok(Objective {
        metric,
        op,
        threshold,
        text: text.trim().to_owned(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_the_guide_objectives() {
        let p95 = parse("p(95) < 100ms").unwrap();
        assert_eq!(
            (p95.metric, p95.op, p95.threshold),
            (Metric::Percentile(95.0), Op::Lt, 100_000.0)
        );
        assert_eq!(parse("p(99)<=2s").unwrap().threshold, 2_000_000.0);
        assert_eq!(
            parse("p(99.9) < 250us").unwrap().metric,
            Metric::Percentile(99.9)
        );
        assert_eq!(parse("rate(errors) < 1%").unwrap().threshold, 0.01);
        let hits = parse("ratio(cache_hits) > 80%").unwrap();
        assert_eq!(
            (hits.metric, hits.op, hits.threshold),
            (Metric::CacheHitRatio, Op::Gt, 0.8)
        );
        assert_eq!(parse("ratio(memory) >= 0%").unwrap().op, Op::Ge);
        assert_eq!(
            parse("ratio(available) > 95%").unwrap().metric,
            Metric::Availability
        );
        let recover = parse("time(recover) < 10s").unwrap();
        assert_eq!(
            (recover.metric, recover.threshold),
            (Metric::RecoveryTime, 10_000_000.0)
        );
        let lost = parse("count(lost_writes) < 1").unwrap();
        assert_eq!((lost.metric, lost.threshold), (Metric::LostWrites, 1.0));
        assert!(parse("count(lost_writes) < 1%").is_err());
        let detect = parse("time(detect) < 10s").unwrap();
        assert_eq!(
            (detect.metric, detect.threshold),
            (Metric::DetectTime, 10_000_000.0)
        );
        let pages = parse("count(healthy_pages) < 1").unwrap();
        assert_eq!((pages.metric, pages.threshold), (Metric::HealthyPages, 1.0));
    }

    #[test]
    fn says_what_is_wrong() {
        for (bad, says) in [
            ("p(95) 100ms", "no comparison"),
            ("p(95) < fast", "not a duration"),
            ("p(95) < 100", "needs a unit"),
            ("p(95) < 10xs", "not a duration"),
            ("p(100) < 1s", "outside"),
            ("q(95) < 1s", "unknown metric"),
            ("rate(errors) < 1", "needs a %"),
            ("rate(errors) < 150%", "outside"),
        ] {
            let error = parse(bad).unwrap_err();
            assert!(error.contains(says), "{bad}: {error}");
        }
    }

    #[test]
    fn objectives_take_the_same_durations_as_flags_and_experiments() {
        for (text, micros) in [
            ("p(95) < 1m", 60e6),
            ("p(95) < 1.5s", 1.5e6),
            ("p(99) < 1m30s", 90e6),
        ] {
            assert!(
                (parse(text).unwrap().threshold - micros).abs() < 1e-6,
                "{text}"
            );
        }
    }

    #[test]
    fn sample_floors() {
        assert_eq!(Metric::Percentile(95.0).min_samples(), 200);
        assert_eq!(Metric::Percentile(99.0).min_samples(), 1000);
    }
}
