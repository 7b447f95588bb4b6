//! Regressions judged against noise: each graded figure of a run against the same
//! figure of one or more earlier runs, as an effect (relative change in the bad
//! direction) with a 95 % interval.
//!
//! **Why a bootstrap over seconds.** Latency percentiles and error rates are graded on a
//! window's pooled requests, and the question a CI gate asks is "did *that figure* get
//! worse?". Mann-Whitney U on per-second values would test a shift of per-second medians,
//! a different quantity, and gives no interval in the figure's own units. A bootstrap
//! recomputes the very figure graded (P95 of the pooled seconds, errors over requests)
//! from resampled seconds, so the interval is in percent of that figure and needs no
//! assumption about the latency distribution. The second is the unit resampled, not the
//! request: requests within a second share the server's state (a GC pause, a cold
//! cache), and a request-level bootstrap would call every small drift significant.
//!
//! With several baseline runs (a directory of main-branch records), each replicate first
//! draws runs with replacement, then seconds within them (a two-level bootstrap), so
//! run-to-run variation, the noise that dominates on shared CI machines, widens the
//! interval. Seconds are resampled within each stage, keeping a run scope's stage mix.
//!
//! Figures without per-second samples (routes, server ratios, recovery and detection
//! times) are judged against the spread of the figure across baseline runs (a t
//! prediction interval), which needs at least two; with one they are shown unjudged.
//!
//! **When it fails the run.** As Criterion.rs judges benchmarks: only when the whole
//! interval lies beyond the allowed regression (`--max-regression`), i.e. the regression
//! is significant at 95 % *and* larger than the budget. A significant change inside the
//! budget is reported, not failed.

use std::collections::HashMap;

use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};
use serde::Serialize;

use crate::expr::{Metric, Objective};
use crate::grade::{Grade, Report, Verdict};
use crate::record::{RunRecord, SecondRecord, outcome_is_error};
use crate::scopes::{self, Strata};
use crate::spec::SloSpec;

/// Bootstrap replicates per figure: enough for stable 2.5 % / 97.5 % quantiles.
const REPLICATES: usize = 1000;
/// Latency bins for the bootstrap: 0.2 % wide, well below any regression worth a gate.
const BIN_RATIO: f64 = 1.002;
/// Fixed, so the same records always give the same report.
const SEED: u64 = 0x5eed_a1a7;

/// How an effect's interval was found.
#[derive(Debug, Clone, Serialize, PartialEq)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Basis {
    /// Bootstrap over per-second samples of this run and the baseline runs.
    PerSecond {
        seconds: usize,
        baseline_seconds: usize,
        baseline_runs: usize,
    },
    /// The figure's spread across baseline runs.
    AcrossRuns { baseline_runs: usize },
    /// One baseline run and no per-second samples: its noise is unknown.
    Unjudged,
}

impl Basis {
    pub fn describe(&self) -> String {
        match self {
            Self::PerSecond {
                seconds,
                baseline_seconds,
                baseline_runs,
            } if *baseline_runs == 1 => format!(
                "bootstrap: {seconds} s against {baseline_seconds} s of 1 run \
                 (within-run noise only)"
            ),
            Self::PerSecond {
                seconds,
                baseline_seconds,
                baseline_runs,
            } => format!(
                "bootstrap: {seconds} s against {baseline_seconds} s of {baseline_runs} runs \
                 (run-to-run noise included)"
            ),
            Self::AcrossRuns { baseline_runs } => {
                format!("spread across {baseline_runs} baseline runs")
            }
            Self::Unjudged => "not judged: one baseline run, no per-second samples".into(),
        }
    }
}

/// One figure of this run against the baseline runs.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct Comparison {
    pub scope: String,
    pub objective: String,
    pub unit: &'static str,
    /// The baseline runs' figure (pooled seconds, or the mean across runs), in `unit`.
    pub baseline: f64,
    pub current: f64,
    /// Change in the bad direction, relative: +0.25 = 25 % worse, −0.1 = 10 % better.
    /// From a baseline of 0 (`from_zero`) there is no relative change: it is then the
    /// absolute change in `unit` (+12.5 for 0 % → 12.5 %).
    pub regression: f64,
    /// 95 % interval of `regression`; absent when the noise could not be estimated.
    pub interval: Option<[f64; 2]>,
    /// The baseline figure was 0: `regression` and `interval` are absolute, in `unit`.
    #[serde(default)]
    pub from_zero: bool,
    pub basis: Basis,
    /// The interval lies wholly on the bad side of zero.
    pub significant: bool,
    /// The interval lies wholly beyond the allowed regression: this fails the run.
    pub failed: bool,
}

impl Comparison {
    /// The effect with its interval: `+12.3 % (95 %: +4.1 to +20.5 %)`; from a zero
    /// baseline, in the figure's unit: `0 % → 12.5 % (+12.5 points; 95 %: +8.0 to +17.0)`.
    pub fn effect(&self) -> String {
        if self.from_zero {
            let unit = self.absolute_unit();
            let shown = |x: f64| format!("{x:.1}");
            let change = format!("{:+.1} {unit}", self.regression);
            let interval = self.interval.map_or(String::new(), |[low, high]| {
                format!("; 95 %: {low:+.1} to {high:+.1}")
            });
            let figure = |x: f64| match self.unit {
                "%" => format!("{} %", shown(x)),
                "" => shown(x),
                unit => format!("{} {unit}", shown(x)),
            };
            return format!(
                "{} → {} ({change}{interval})",
                figure(self.baseline),
                figure(self.current)
            );
        }
        let pct = |x: f64| format!("{:+.1}", x * 100.0);
        match self.interval {
            Some([low, high]) => format!(
                "{} % (95 %: {} to {} %)",
                pct(self.regression),
                pct(low),
                pct(high)
            ),
            None => format!("{} %", pct(self.regression)),
        }
    }

    /// The unit of an absolute change: percentages change by points.
    fn absolute_unit(&self) -> &'static str {
        match self.unit {
            "%" => "points",
            unit => unit,
        }
    }

    /// What the comparison concluded, in a few words.
    pub fn judgement(&self) -> &'static str {
        match (self.failed, self.significant, self.interval) {
            (true, _, _) => "REGRESSION",
            (false, true, _) => "worse, within the allowed regression",
            (false, false, None) => "not judged (noise unknown)",
            (false, false, Some([_, high])) if high < 0.0 => "better",
            (false, false, Some(_)) => "no significant change",
        }
    }
}

/// An earlier run, read and graded once.
pub struct BaselineRun {
    pub record: RunRecord,
    pub report: Report,
}

impl BaselineRun {
    pub fn new(record: RunRecord, spec: &SloSpec) -> Self {
        let report = crate::grade::grade(&record, spec);
        Self { record, report }
    }
}

/// Compares every graded figure of `report` (the grades of `record`) with the same
/// scope and objective in `baselines`. With `max_regression` (a fraction, 0.1 = 10 %),
/// a figure whose whole interval is worse than that fails the report.
pub fn compare(
    report: &mut Report,
    record: &RunRecord,
    baselines: &[BaselineRun],
    spec: &SloSpec,
    max_regression: Option<f64>,
) {
    let objectives = objectives_by_text(spec);
    let current_seconds: HashMap<String, Strata<'_>> =
        scopes::per_second(record).into_iter().collect();
    let baseline_seconds: Vec<HashMap<String, Strata<'_>>> = baselines
        .iter()
        .map(|b| scopes::per_second(&b.record).into_iter().collect())
        .collect();
    for grade in &report.grades {
        let Some(current) = grade.value else { continue };
        let Some(objective) = objectives.get(grade.objective.as_str()) else {
            continue;
        };
        let earlier: Vec<f64> = baselines
            .iter()
            .filter_map(|b| same_figure(&b.report, grade).and_then(|g| g.value))
            .collect();
        if earlier.is_empty() {
            continue;
        }
        let bad_sign = if objective.op.is_upper_bound() {
            1.0
        } else {
            -1.0
        };
        let per_second = figure_of(objective.metric).and_then(|figure| {
            let current = current_seconds.get(&grade.scope)?;
            let earlier: Vec<&Strata<'_>> = baseline_seconds
                .iter()
                .filter_map(|b| b.get(&grade.scope))
                .collect();
            bootstrap(current, &earlier, figure)
        });
        let mut comparison = match per_second {
            Some(b) => {
                let scale = display_scale(grade);
                Comparison {
                    baseline: b.baseline * scale,
                    current: b.current * scale,
                    regression: change(bad_sign * (b.current - b.baseline), b.baseline, scale),
                    interval: Some(bad_interval(b.difference, bad_sign, b.baseline, scale)),
                    from_zero: b.baseline == 0.0,
                    basis: b.basis,
                    ..single_figure(grade, current, &earlier, bad_sign)
                }
            }
            None => across_runs(grade, current, &earlier, bad_sign),
        };
        comparison.significant = comparison.interval.is_some_and(|[low, _]| low > 0.0);
        // From zero the change is absolute: the budget is read in the figure's unit
        // (10 % allows 10 points, or 10 ms).
        let budget = |limit: f64| {
            if comparison.from_zero {
                limit * 100.0
            } else {
                limit
            }
        };
        comparison.failed = max_regression.is_some_and(|limit| {
            comparison
                .interval
                .is_some_and(|[low, _]| low > budget(limit))
        });
        report.baseline.push(comparison);
    }
    if report.baseline.iter().any(|c| c.failed) {
        report.verdict = Verdict::Fail;
    }
}

fn objectives_by_text(spec: &SloSpec) -> HashMap<&str, &Objective> {
    spec.stages
        .iter()
        .flat_map(|s| &s.objectives)
        .chain(&spec.run)
        .chain(&spec.route)
        .chain(&spec.phase)
        .map(|o| (o.text.as_str(), o))
        .collect()
}

fn same_figure<'a>(report: &'a Report, grade: &Grade) -> Option<&'a Grade> {
    report
        .grades
        .iter()
        .find(|g| g.scope == grade.scope && g.objective == grade.objective)
}

/// Raw figure (µs, fraction) to the grade's unit (ms, %).
fn display_scale(grade: &Grade) -> f64 {
    match grade.unit {
        "ms" => 1e-3,
        "%" => 100.0,
        _ => 1.0,
    }
}

/// `difference` against `base`: relative (`difference / base`), or, from a zero base
/// where nothing relative can be said, absolute in the display unit (`difference × scale`).
fn change(difference: f64, base: f64, scale: f64) -> f64 {
    if base != 0.0 {
        difference / base.abs()
    } else {
        difference * scale
    }
}

/// An interval of the raw difference (current − baseline) as an interval of the
/// regression (bad direction up), as [`change`] reads it.
fn bad_interval([low, high]: [f64; 2], bad_sign: f64, base: f64, scale: f64) -> [f64; 2] {
    let (a, b) = (
        change(bad_sign * low, base, scale),
        change(bad_sign * high, base, scale),
    );
    [a.min(b), a.max(b)]
}

/// The figure against the mean of its baseline values, with no interval (unjudged):
/// the base every other basis refines.
fn single_figure(grade: &Grade, current: f64, earlier: &[f64], bad_sign: f64) -> Comparison {
    let baseline = earlier.iter().sum::<f64>() / earlier.len() as f64;
    Comparison {
        scope: grade.scope.clone(),
        objective: grade.objective.clone(),
        unit: grade.unit,
        baseline,
        current,
        regression: change(bad_sign * (current - baseline), baseline, 1.0),
        interval: None,
        from_zero: baseline == 0.0,
        basis: Basis::Unjudged,
        significant: false,
        failed: false,
    }
}

/// A figure without per-second samples against the spread of the same figure across
/// the baseline runs: `current − mean ± t · s · √(1 + 1/k)`, the 95 % prediction
/// interval of one more run drawn like them.
fn across_runs(grade: &Grade, current: f64, earlier: &[f64], bad_sign: f64) -> Comparison {
    let base = single_figure(grade, current, earlier, bad_sign);
    let k = earlier.len();
    if k < 2 {
        return base;
    }
    let mean = base.baseline;
    let variance = earlier.iter().map(|v| (v - mean).powi(2)).sum::<f64>() / (k - 1) as f64;
    let half = t_975(k - 1) * variance.sqrt() * (1.0 + 1.0 / k as f64).sqrt();
    let difference = current - mean;
    Comparison {
        interval: Some(bad_interval(
            [difference - half, difference + half],
            bad_sign,
            mean,
            1.0,
        )),
        basis: Basis::AcrossRuns { baseline_runs: k },
        ..base
    }
}

/// Student's t, 97.5th percentile, for `df` degrees of freedom.
fn t_975(df: usize) -> f64 {
    const TABLE: [f64; 30] = [
        12.706, 4.303, 3.182, 2.776, 2.571, 2.447, 2.365, 2.306, 2.262, 2.228, 2.201, 2.179, 2.160,
        2.145, 2.131, 2.120, 2.110, 2.101, 2.093, 2.086, 2.080, 2.074, 2.069, 2.064, 2.060, 2.056,
        2.052, 2.048, 2.045, 2.042,
    ];
    match df {
        0 => f64::INFINITY,
        1..=30 => TABLE[df - 1],
        31..=60 => 2.000,
        61..=120 => 1.980,
        _ => 1.960,
    }
}

/// A figure computed from additive per-second components.
#[derive(Debug, Clone, Copy)]
enum Figure {
    /// Latency quantile (0–1) over binned counts.
    Quantile(f64),
    /// `components[0] / components[1]`: a share of requests.
    Share(fn(&str) -> bool),
}

fn figure_of(metric: Metric) -> Option<Figure> {
    match metric {
        Metric::Percentile(p) => Some(Figure::Quantile(p / 100.0)),
        Metric::ErrorRate => Some(Figure::Share(outcome_is_error)),
        Metric::Availability => Some(Figure::Share(|label| {
            label.parse::<u16>().is_ok_and(|code| code < 500)
        })),
        _ => None,
    }
}

/// One second as sparse additive components: (latency bin, count) or (0, counted),
/// (1, requests).
type Components = Vec<(usize, f64)>;

fn bin_of(micros: u64) -> usize {
    ((micros.max(1) as f64).ln() / BIN_RATIO.ln()) as usize
}

fn bin_value(bin: usize) -> f64 {
    ((bin as f64 + 0.5) * BIN_RATIO.ln()).exp()
}

impl Figure {
    fn components(self, second: &SecondRecord) -> Components {
        match self {
            Self::Quantile(_) => second
                .latency_us
                .inner()
                .iter_recorded()
                .map(|v| (bin_of(v.value_iterated_to()), v.count_at_value() as f64))
                .collect(),
            Self::Share(counted) => {
                let (mut hits, mut requests) = (0.0, 0.0);
                for (label, count) in &second.outcomes {
                    requests += *count as f64;
                    if counted(label) {
                        hits += *count as f64;
                    }
                }
                vec![(0, hits), (1, requests)]
            }
        }
    }

    /// The figure of summed components; `None` when they hold no request.
    fn of(self, sums: &[f64]) -> Option<f64> {
        match self {
            Self::Quantile(q) => {
                let total: f64 = sums.iter().sum();
                if total <= 0.0 {
                    return None;
                }
                let rank = (q * total).ceil().max(1.0);
                let mut seen = 0.0;
                for (bin, count) in sums.iter().enumerate() {
                    seen += count;
                    if seen >= rank {
                        return Some(bin_value(bin));
                    }
                }
                None
            }
            Self::Share(_) => {
                (sums.get(1).copied().unwrap_or(0.0) > 0.0).then(|| sums[0] / sums[1])
            }
        }
    }
}

/// One run's seconds of a scope as components, by stratum.
struct RunSeconds(Vec<Vec<Components>>);

impl RunSeconds {
    fn of(strata: &Strata<'_>, figure: Figure) -> Self {
        Self(
            strata
                .iter()
                .map(|seconds| seconds.iter().map(|s| figure.components(s)).collect())
                .collect(),
        )
    }

    fn seconds(&self) -> usize {
        self.0.iter().map(Vec::len).sum()
    }

    fn width(&self) -> usize {
        self.0
            .iter()
            .flatten()
            .flatten()
            .map(|(i, _)| i + 1)
            .max()
            .unwrap_or(0)
    }

    fn add_all(&self, sums: &mut [f64]) {
        for (i, v) in self.0.iter().flatten().flatten() {
            sums[*i] += v;
        }
    }

    /// Adds as many seconds as each stratum has, drawn from it with replacement.
    fn add_resample(&self, sums: &mut [f64], rng: &mut SmallRng) {
        for stratum in &self.0 {
            for _ in 0..stratum.len() {
                for (i, v) in &stratum[rng.random_range(0..stratum.len())] {
                    sums[*i] += v;
                }
            }
        }
    }
}

struct Bootstrapped {
    current: f64,
    baseline: f64,
    /// 95 % interval of current − baseline, raw units.
    difference: [f64; 2],
    basis: Basis,
}

/// The 95 % interval of (current − baseline) for a per-second figure.
///
/// One baseline run: both runs' seconds are resampled; the interval holds the
/// within-run noise only (run-to-run noise cannot be seen in one run).
///
/// Several: under "nothing changed" this run is one more draw like the baseline runs,
/// so the spread of (one run − the others' pooled figure) is measured on the baselines
/// themselves: each replicate picks one baseline run as "the new one", draws k−1 runs
/// with replacement from the others, resamples every run's seconds, and takes the
/// difference. That spread, centred on the observed difference, is the interval: a
/// prediction interval holding both within-run and run-to-run noise. (Leaving the
/// picked run out of the pool errs wide, never narrow.)
fn bootstrap(
    current: &Strata<'_>,
    baselines: &[&Strata<'_>],
    figure: Figure,
) -> Option<Bootstrapped> {
    let current = RunSeconds::of(current, figure);
    let baselines: Vec<RunSeconds> = baselines
        .iter()
        .map(|s| RunSeconds::of(s, figure))
        .filter(|r| r.seconds() > 0)
        .collect();
    if current.seconds() < 2 || baselines.is_empty() {
        return None;
    }
    let width = baselines
        .iter()
        .map(RunSeconds::width)
        .chain([current.width(), 2])
        .max()
        .unwrap_or(2);
    let mut sums = vec![0.0; width];
    let mut measure = |add: &mut dyn FnMut(&mut [f64])| {
        sums.iter_mut().for_each(|s| *s = 0.0);
        add(&mut sums);
        figure.of(&sums)
    };
    let current_point = measure(&mut |s| current.add_all(s))?;
    let baseline_point = measure(&mut |s| baselines.iter().for_each(|b| b.add_all(s)))?;
    let observed = current_point - baseline_point;

    let mut rng = SmallRng::seed_from_u64(SEED);
    let k = baselines.len();
    let mut replicates = Vec::with_capacity(REPLICATES);
    for _ in 0..REPLICATES {
        let (now, before) = if k == 1 {
            (
                measure(&mut |s| current.add_resample(s, &mut rng)),
                measure(&mut |s| baselines[0].add_resample(s, &mut rng)),
            )
        } else {
            let new = rng.random_range(0..k);
            let now = measure(&mut |s| baselines[new].add_resample(s, &mut rng));
            let before = measure(&mut |s| {
                for _ in 1..k {
                    // One of the other k−1 runs, uniformly.
                    let pick = (new + 1 + rng.random_range(0..k - 1)) % k;
                    baselines[pick].add_resample(s, &mut rng);
                }
            });
            (now, before)
        };
        if let (Some(now), Some(before)) = (now, before) {
            replicates.push(now - before);
        }
    }
    if replicates.len() < REPLICATES / 2 {
        return None;
    }
    replicates.sort_by(f64::total_cmp);
    let at = |q: f64| replicates[((replicates.len() - 1) as f64 * q).round() as usize];
    let difference = if k == 1 {
        [at(0.025), at(0.975)]
    } else {
        let centre = at(0.5);
        [observed + at(0.025) - centre, observed + at(0.975) - centre]
    };
    Some(Bootstrapped {
        current: current_point,
        baseline: baseline_point,
        difference,
        basis: Basis::PerSecond {
            seconds: current.seconds(),
            baseline_seconds: baselines.iter().map(RunSeconds::seconds).sum(),
            baseline_runs: k,
        },
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn t_quantiles_fall_towards_the_normal() {
        assert!((t_975(1) - 12.706).abs() < 1e-9);
        assert!(t_975(4) > t_975(10) && t_975(10) > t_975(100));
        assert!((t_975(1000) - 1.96).abs() < 1e-9);
    }

    #[test]
    fn bins_are_finer_than_half_a_percent() {
        for micros in [1, 999, 1_000, 123_456, 600_000_000] {
            let back = bin_value(bin_of(micros));
            assert!(
                (back / micros as f64 - 1.0).abs() < 0.005,
                "{micros} → {back}"
            );
        }
    }

    #[test]
    fn a_change_from_zero_is_absolute_in_the_display_unit() {
        // 0 → 12.5 % read as a fraction, shown in points.
        assert_eq!(change(0.125, 0.0, 100.0), 12.5);
        assert_eq!(change(0.0, 0.0, 100.0), 0.0);
        assert_eq!(change(0.05, 0.5, 100.0), 0.1);
        assert_eq!(bad_interval([-0.1, 0.2], -1.0, 1.0, 1.0), [-0.2, 0.1]);
    }
}
