//! The load plan as the user gives it: stage rates ("100,1k,10k"), warm-up and steady
//! durations. Parsing only; bad input is a [`PlanError`] that names what is wrong.

use std::time::Duration;

#[derive(Debug, Clone, PartialEq)]
pub struct Stage {
    /// As given ("1k"), for reports.
    pub name: String,
    pub rate_per_second: f64,
}

#[derive(Debug, Clone, PartialEq)]
pub struct LoadPlan {
    pub stages: Vec<Stage>,
    /// Not graded: lets connections, caches and the server's pool settle.
    pub warmup: Duration,
    /// The graded window of each stage.
    pub duration: Duration,
}

#[derive(Debug, thiserror::Error, PartialEq)]
pub enum PlanError {
    #[error("stage list is empty; give rates such as `100,1k,10k`")]
    NoStages,
    #[error("`{0}` is not a request rate; use a positive number such as 250, 1k or 2.5k")]
    BadRate(String),
    #[error("`{0}` is not a duration; use e.g. 30s, 500ms or 2m")]
    BadDuration(String),
    #[error("the steady window must be at least 1s (got {0:?})")]
    TooShort(Duration),
}

/// Highest rate one generator process is asked for: beyond it the plan is a typo, not
/// a load test (use several generators and merge their records).
const MAX_RATE: f64 = 1_000_000.0;

pub fn parse_rate(text: &str) -> Result<f64, PlanError> {
    let trimmed = text.trim();
    let bad = || PlanError::BadRate(trimmed.to_owned());
    let (number, multiplier) = match trimmed.strip_suffix(['k', 'K']) {
        Some(number) => (number, 1_000.0),
        None => (trimmed, 1.0),
    };
    let value: f64 = number.parse().map_err(|_| bad())?;
    let rate = value * multiplier;
    if !rate.is_finite() || rate <= 0.0 || rate > MAX_RATE {
        return Err(bad());
    }
    Ok(rate)
}

pub fn parse_stages(text: &str) -> Result<Vec<Stage>, PlanError> {
    let stages = text
        .split(',')
        .filter(|part| !part.trim().is_empty())
        .map(|part| {
            Ok(Stage {
                name: part.trim().to_owned(),
                rate_per_second: parse_rate(part)?,
            })
        })
        .collect::<Result<Vec<_>, PlanError>>()?;
    if stages.is_empty() {
        Err(PlanError::NoStages)
    } else {
        Ok(stages)
    }
}

pub fn parse_duration(text: &str) -> Result<Duration, PlanError> {
    aimate_reports::duration::parse(text)
        .map_err(|_| PlanError::BadDuration(text.trim().to_owned()))
}

impl LoadPlan {
    pub fn parse(stages: &str, warmup: &str, duration: &str) -> Result<Self, PlanError> {
        let duration = parse_duration(duration)?;
        if duration < Duration::from_secs(1) {
            return Err(PlanError::TooShort(duration));
        }
        Ok(Self {
            stages: parse_stages(stages)?,
            warmup: parse_duration(warmup)?,
            duration,
        })
    }

    /// Runtime workers the generator needs for this plan's fastest stage, at most
    /// `cores`. One worker sends ~10k req/s for ~20 ms CPU per 1,000 requests; two
    /// spend ~27, because every wake-up between workers is a futex call and a context
    /// switch on a machine the server under test shares (scripts/bench-loadgen.sh). So
    /// one worker per [`RATE_PER_WORKER`], which keeps each below ~40 % busy.
    pub fn generator_workers(&self, cores: usize) -> usize {
        let fastest = self
            .stages
            .iter()
            .map(|stage| stage.rate_per_second)
            .fold(0.0, f64::max);
        let wanted = (fastest / RATE_PER_WORKER).ceil() as usize;
        wanted.clamp(1, cores.max(1))
    }
}

/// Requests per second one generator worker is given (see [`LoadPlan::generator_workers`]).
pub const RATE_PER_WORKER: f64 = 20_000.0;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rates_with_k_suffix() {
        assert_eq!(parse_rate("100").unwrap(), 100.0);
        assert_eq!(parse_rate("1k").unwrap(), 1000.0);
        assert_eq!(parse_rate(" 2.5K ").unwrap(), 2500.0);
        for bad in ["", "k", "-5", "0", "abc", "1m", "NaN", "inf", "5000k"] {
            assert_eq!(
                parse_rate(bad),
                Err(PlanError::BadRate(bad.trim().to_owned())),
                "{bad}"
            );
        }
    }

    #[test]
    fn stage_lists() {
        let stages = parse_stages("100,1k, 10k").unwrap();
        let rates: Vec<f64> = stages.iter().map(|s| s.rate_per_second).collect();
        assert_eq!(rates, vec![100.0, 1000.0, 10_000.0]);
        assert_eq!(stages[1].name, "1k");
        assert_eq!(parse_stages(" , "), Err(PlanError::NoStages));
        assert!(parse_stages("100,fast").is_err());
    }

    #[test]
    fn plans() {
        let plan = LoadPlan::parse("100", "5s", "30s").unwrap();
        assert_eq!(
            (plan.warmup, plan.duration),
            (Duration::from_secs(5), Duration::from_secs(30))
        );
        assert_eq!(
            LoadPlan::parse("100", "5s", "500ms"),
            Err(PlanError::TooShort(Duration::from_millis(500)))
        );
        assert_eq!(
            LoadPlan::parse("100", "soon", "30s"),
            Err(PlanError::BadDuration("soon".into()))
        );
    }

    #[test]
    fn one_generator_worker_per_20k_of_the_fastest_stage_at_most_one_per_core() {
        let workers = |stages: &str, cores| {
            LoadPlan::parse(stages, "1s", "1s")
                .unwrap()
                .generator_workers(cores)
        };
        assert_eq!(workers("100,1k,10k", 2), 1);
        assert_eq!(workers("20k", 8), 1);
        assert_eq!(workers("100,20001", 8), 2);
        assert_eq!(workers("100k,1k", 8), 5);
        assert_eq!(workers("100k", 2), 2);
        assert_eq!(workers("100k", 0), 1);
    }
}
