//! Regressions judged against noise, on synthetic records drawn from known
//! distributions: same distribution, a real +30 % shift, a +5 % shift lost in 20 % noise,
//! run-to-run noise seen through several baseline runs, error rates.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use aimate_reports::grade::{Report, Verdict, grade};
use aimate_reports::record::{RouteRecord, RunRecord, SecondRecord};
use aimate_reports::regression::{BaselineRun, Basis, Comparison, compare};
use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};
use support::{healthy_server, record, spec, stage};

/// How a synthetic run is drawn.
#[derive(Clone, Copy)]
struct Draw {
    /// Multiplies every latency of the run: the change under test.
    shift: f64,
    /// Standard deviation of a per-second log-normal factor (0.2 = "20 % noise").
    per_second: f64,
    /// Standard deviation of a per-run log-normal factor (a slower or faster CI runner).
    per_run: f64,
    /// Share of requests that fail with 503.
    errors: f64,
}

const NOISY: Draw = Draw {
    shift: 1.0,
    per_second: 0.2,
    per_run: 0.0,
    errors: 0.002,
};

const SECONDS: u64 = 60;
const PER_SECOND: u64 = 100;

fn normal(rng: &mut SmallRng) -> f64 {
    // Box-Muller.
    let (u, v): (f64, f64) = (rng.random_range(1e-12..1.0), rng.random());
    (-2.0 * u.ln()).sqrt() * (std::f64::consts::TAU * v).cos()
}

/// A 60 s stage at 100 req/s on one route: latencies log-normal around 20 ms (σ 0.4
/// within a second), scaled per second and per run by `draw`'s noise.
fn run(seed: u64, draw: Draw) -> RunRecord {
    let mut rng = SmallRng::seed_from_u64(seed);
    let run_factor = (draw.per_run * normal(&mut rng)).exp();
    let mut route = RouteRecord::default();
    let mut timeline = Vec::new();
    for second in 0..SECONDS {
        let second_factor = (draw.per_second * normal(&mut rng)).exp();
        let mut point = SecondRecord {
            t_ms: 1_000 + second * 1_000,
            in_steady: true,
            sent: PER_SECOND,
            started: PER_SECOND,
            ..SecondRecord::default()
        };
        for _ in 0..PER_SECOND {
            let micros =
                20_000.0 * draw.shift * run_factor * second_factor * (0.4 * normal(&mut rng)).exp();
            point.latency_us.record(micros as u64);
            route.latency_us.record(micros as u64);
            route.service_us.record(micros as u64);
            let outcome = if rng.random::<f64>() < draw.errors {
                "503"
            } else {
                "200"
            };
            *point.outcomes.entry(outcome.into()).or_default() += 1;
            *route.outcomes.entry(outcome.into()).or_default() += 1;
        }
        timeline.push(point);
    }
    let mut stage = stage("100", 100.0, vec![("GET /api/invoices", route)]);
    stage.timeline = timeline;
    record(vec![stage], healthy_server())
}

/// Grades `current` against `baselines` with `--max-regression` of `limit` percent.
fn judged(current: &RunRecord, baselines: &[RunRecord], limit: f64) -> Report {
    let spec = spec();
    let runs: Vec<BaselineRun> = baselines
        .iter()
        .map(|r| BaselineRun::new(r.clone(), &spec))
        .collect();
    let mut report = grade(current, &spec);
    compare(&mut report, current, &runs, &spec, Some(limit / 100.0));
    report
}

fn figure<'a>(report: &'a Report, scope: &str, objective: &str) -> &'a Comparison {
    report
        .baseline
        .iter()
        .find(|c| c.scope == scope && c.objective.starts_with(objective))
        .unwrap_or_else(|| {
            panic!(
                "no comparison of {scope} {objective}: {:#?}",
                report.baseline
            )
        })
}

fn stage_p95(report: &Report) -> &Comparison {
    figure(report, "stage 100", "p(95)")
}

#[test]
fn runs_drawn_from_one_distribution_are_not_flagged_in_19_of_20() {
    let mut failed_runs = 0;
    let mut significant = 0;
    for pair in 0..20 {
        let baseline = run(1_000 + pair, NOISY);
        let current = run(2_000 + pair, NOISY);
        let report = judged(&current, std::slice::from_ref(&baseline), 10.0);
        assert!(!report.baseline.is_empty());
        if report.verdict == Verdict::Fail {
            failed_runs += 1;
        }
        // The harshest budget: any significant worsening of P95 would fail.
        let strict = judged(&current, &[baseline], 0.0);
        let p95 = stage_p95(&strict);
        assert!(matches!(
            p95.basis,
            Basis::PerSecond {
                baseline_runs: 1,
                ..
            }
        ));
        if p95.failed {
            significant += 1;
        }
    }
    eprintln!("same distribution: {failed_runs} of 20 failed, P95 significant in {significant}");
    assert!(
        failed_runs <= 1,
        "{failed_runs} of 20 same-distribution runs failed"
    );
    // One-sided 2.5 % risk: about 0.5 of 20 expected.
    assert!(
        significant <= 2,
        "P95 significantly worse in {significant} of 20"
    );
}

#[test]
fn a_30_percent_slower_run_is_flagged() {
    for pair in 0..5 {
        let baseline = run(3_000 + pair, NOISY);
        let slower = run(
            4_000 + pair,
            Draw {
                shift: 1.3,
                ..NOISY
            },
        );
        let report = judged(&slower, &[baseline], 10.0);
        let p95 = stage_p95(&report);
        assert!(p95.failed && p95.significant, "{p95:#?}");
        let [low, high] = p95.interval.unwrap();
        assert!(low > 0.1 && low < 0.3 && high > 0.3, "{p95:#?}");
        assert_eq!(report.verdict, Verdict::Fail, "a regression fails the run");
        assert!(p95.effect().starts_with('+'), "{}", p95.effect());
        assert_eq!(p95.judgement(), "REGRESSION");
    }
}

#[test]
fn a_5_percent_shift_under_20_percent_noise_is_not_flagged() {
    let mut flagged = 0;
    for pair in 0..20 {
        let baseline = run(5_000 + pair, NOISY);
        let current = run(
            6_000 + pair,
            Draw {
                shift: 1.05,
                ..NOISY
            },
        );
        if judged(&current, &[baseline], 10.0).verdict == Verdict::Fail {
            flagged += 1;
        }
    }
    eprintln!("+5 % under 20 % noise: flagged {flagged} of 20");
    assert!(flagged <= 1, "flagged {flagged} of 20");
}

#[test]
fn several_baseline_runs_bring_run_to_run_noise_into_the_interval() {
    // A CI runner is sometimes 15 % slower for a whole run: one baseline run cannot
    // know that, five can.
    let runner_noise = Draw {
        per_run: 0.15,
        ..NOISY
    };
    let (mut flagged_against_five, mut flagged_against_one) = (0, 0);
    let (mut width_five, mut width_one) = (0.0, 0.0);
    for trial in 0..20 {
        let baselines: Vec<RunRecord> = (0..5)
            .map(|i| run(7_000 + trial * 10 + i, runner_noise))
            .collect();
        let current = run(8_000 + trial, runner_noise);
        let five = judged(&current, &baselines, 10.0);
        let one = judged(&current, &baselines[..1], 10.0);
        let p95 = stage_p95(&five);
        assert!(
            matches!(
                p95.basis,
                Basis::PerSecond {
                    baseline_runs: 5,
                    baseline_seconds: 300,
                    ..
                }
            ),
            "{p95:#?}"
        );
        let width = |c: &Comparison| c.interval.map_or(0.0, |[l, h]| h - l);
        width_five += width(p95);
        width_one += width(stage_p95(&one));
        flagged_against_five += usize::from(five.verdict == Verdict::Fail);
        flagged_against_one += usize::from(one.verdict == Verdict::Fail);
    }
    eprintln!(
        "15 % run-to-run noise: flagged {flagged_against_five} of 20 against 5 runs, \
         {flagged_against_one} against 1; mean interval width {:.1} % vs {:.1} %",
        width_five * 5.0,
        width_one * 5.0
    );
    assert!(
        flagged_against_five <= 1,
        "against 5 runs: flagged {flagged_against_five} of 20 (against 1: {flagged_against_one})"
    );
    assert!(
        width_five > width_one * 1.5,
        "intervals: {width_five:.2} against 5 runs, {width_one:.2} against 1"
    );

    // Without run-to-run noise, five runs still see a real +30 %.
    let mut seen = 0;
    for trial in 0..5 {
        let baselines: Vec<RunRecord> =
            (0..5).map(|i| run(9_000 + trial * 10 + i, NOISY)).collect();
        let slower = run(
            9_100 + trial,
            Draw {
                shift: 1.3,
                ..NOISY
            },
        );
        let p95 = stage_p95(&judged(&slower, &baselines, 10.0)).clone();
        seen += usize::from(p95.failed);
    }
    eprintln!("+30 % against 5 runs: flagged {seen} of 5");
    assert!(seen >= 4, "a real +30 % flagged in {seen} of 5");
}

#[test]
fn error_rates_are_compared_per_second_too() {
    let baseline = run(10_000, NOISY);
    let same = run(10_001, NOISY);
    let erring = run(
        10_002,
        Draw {
            errors: 0.008,
            ..NOISY
        },
    );
    let errors = |r: &Report| figure(r, "run", "rate(errors)").clone();
    let quiet = errors(&judged(&same, std::slice::from_ref(&baseline), 10.0));
    assert!(!quiet.failed, "{quiet:#?}");
    let worse = errors(&judged(&erring, &[baseline], 10.0));
    assert!(worse.failed && worse.regression > 1.0, "{worse:#?}");
    assert!(matches!(worse.basis, Basis::PerSecond { .. }));
}

#[test]
fn figures_without_seconds_are_judged_across_runs_or_not_at_all() {
    let slower = run(
        11_000,
        Draw {
            shift: 1.6,
            ..NOISY
        },
    );
    let baselines: Vec<RunRecord> = (0..3).map(|i| run(11_100 + i, NOISY)).collect();
    // Routes have no per-second timeline: one baseline run cannot tell noise from change.
    let against_one = judged(&slower, &baselines[..1], 10.0);
    let route = figure(&against_one, "route GET /api/invoices", "p(95)");
    assert_eq!(route.basis, Basis::Unjudged);
    assert!(route.regression > 0.3 && !route.failed && route.interval.is_none());
    assert_eq!(route.judgement(), "not judged (noise unknown)");
    // Three can: the spread of the route's P95 across them.
    let against_three = judged(&slower, &baselines, 10.0);
    let route = figure(&against_three, "route GET /api/invoices", "p(95)");
    assert_eq!(route.basis, Basis::AcrossRuns { baseline_runs: 3 });
    assert!(route.failed, "{route:#?}");
    // A cache hit ratio as good as before is no regression.
    let cache = figure(&against_three, "run", "ratio(cache_hits)");
    assert!(!cache.failed && cache.regression.abs() < 1e-9, "{cache:#?}");
}

#[test]
fn without_a_limit_changes_are_reported_but_fail_nothing() {
    let spec = spec();
    let baseline = BaselineRun::new(run(12_000, NOISY), &spec);
    let slower = run(
        12_001,
        Draw {
            shift: 1.6,
            ..NOISY
        },
    );
    let mut report = grade(&slower, &spec);
    assert_eq!(report.verdict, Verdict::Pass);
    compare(&mut report, &slower, &[baseline], &spec, None);
    let p95 = stage_p95(&report);
    assert!(p95.significant && !p95.failed, "{p95:#?}");
    assert_eq!(p95.judgement(), "worse, within the allowed regression");
    assert_eq!(report.verdict, Verdict::Pass);
}

#[test]
fn the_same_records_always_give_the_same_intervals() {
    let baseline = run(13_000, NOISY);
    let current = run(13_001, NOISY);
    let a = judged(&current, std::slice::from_ref(&baseline), 10.0);
    let b = judged(&current, &[baseline], 10.0);
    assert_eq!(a.baseline, b.baseline);
}

#[test]
fn a_change_from_zero_reads_in_points_and_is_judged_in_them() {
    let clean = run(
        13_000,
        Draw {
            errors: 0.0,
            ..NOISY
        },
    );
    let erring = run(
        13_001,
        Draw {
            errors: 0.008,
            ..NOISY
        },
    );
    let errors = |r: &Report| figure(r, "run", "rate(errors)").clone();
    // Within a 10 % budget (10 points from zero): reported as worse, not failed.
    let within = errors(&judged(&erring, std::slice::from_ref(&clean), 10.0));
    assert!(
        within.from_zero && within.significant && !within.failed,
        "{within:#?}"
    );
    assert!((within.regression - 0.8).abs() < 0.3, "{within:#?}");
    let effect = within.effect();
    assert!(
        effect.starts_with("0.0 % → 0.") && effect.contains(" points; 95 %: +"),
        "{effect}"
    );
    assert!(!effect.contains('∞') && !effect.contains("inf"), "{effect}");
    // A budget of 0.2 % is 0.2 points from zero: the whole interval is beyond it.
    let beyond = errors(&judged(&erring, &[clean], 0.2));
    assert!(beyond.failed, "{beyond:#?}");
}
