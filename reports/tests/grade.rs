//! Grading on hand-built records: pass, fail, invalid, the per-route case, a missing metric.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::BTreeMap;

use aimate_reports::LatencyHistogram;
use aimate_reports::grade::{Verdict, grade};
use aimate_reports::record::{
    GeneratorInfo, RouteRecord, RunMeta, RunRecord, SCHEMA_VERSION, ServerSample, StageRecord,
    Validity,
};
use aimate_reports::spec::SloSpec;

fn route(samples: u64, latency_ms: u64, errors: u64) -> RouteRecord {
    let mut latency = LatencyHistogram::new();
    latency.record_n(latency_ms * 1000, samples);
    let mut outcomes = BTreeMap::new();
    outcomes.insert("200".to_owned(), samples - errors);
    if errors > 0 {
        outcomes.insert("503".to_owned(), errors);
    }
    RouteRecord {
        service_us: latency.clone(),
        latency_us: latency,
        outcomes,
    }
}

fn stage(name: &str, rate: f64, routes: Vec<(&str, RouteRecord)>) -> StageRecord {
    StageRecord {
        name: name.into(),
        target_rps: rate,
        started_ms: 0,
        steady_start_ms: 1_000,
        steady_end_ms: 31_000,
        sent: routes.iter().map(|(_, r)| r.latency_us.count()).sum(),
        achieved_rps: rate,
        routes: routes.into_iter().map(|(n, r)| (n.to_owned(), r)).collect(),
        timeline: Vec::new(),
        validity: Validity {
            valid: true,
            reasons: Vec::new(),
        },
    }
}

fn healthy_server() -> Vec<ServerSample> {
    (0..31)
        .map(|i| ServerSample {
            t_ms: 1_000 + i * 1_000,
            cache_hits_total: Some(90.0 * i as f64),
            cache_misses_total: Some(10.0 * i as f64),
            db_connections_used: Some(2.0),
            db_connections_max: Some(8.0),
            resident_memory_bytes: Some(100e6),
            ..ServerSample::default()
        })
        .collect()
}

fn record(stages: Vec<StageRecord>, server: Vec<ServerSample>) -> RunRecord {
    RunRecord {
        schema_version: SCHEMA_VERSION,
        run: RunMeta {
            target: "http://127.0.0.1:8080".into(),
            started_at: "2026-11-28T00:00:00Z".into(),
            finished_at: "2026-11-28T00:01:00Z".into(),
            generators: vec![GeneratorInfo {
                host: "test".into(),
                cpu_seconds: 1.0,
                peak_rss_bytes: 1,
                cpu_utilization: 0.1,
            }],
            config: serde_json::Value::Null,
        },
        stages,
        server,
        events: Vec::new(),
        aborted: None,
    }
}

fn spec() -> SloSpec {
    SloSpec::load(&std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../slo.toml")).unwrap()
}

#[test]
fn a_healthy_run_passes_everything() {
    let run = record(
        vec![stage(
            "100",
            100.0,
            vec![("GET /api/dashboard", route(3000, 5, 0))],
        )],
        healthy_server(),
    );
    let report = grade(&run, &spec());
    assert_eq!(report.verdict, Verdict::Pass, "{:#?}", report.grades);
    assert_eq!(report.exit_code(), 0);
    let p95 = report
        .grades
        .iter()
        .find(|g| g.scope == "stage 100")
        .unwrap();
    assert_eq!(p95.unit, "ms");
    assert!((p95.value.unwrap() - 5.0).abs() < 0.01);
    assert!(
        (p95.margin.unwrap() - 0.95).abs() < 0.001,
        "5 ms under a 100 ms limit leaves 95%"
    );
    assert_eq!(p95.samples, 3000);
    let cache = report
        .grades
        .iter()
        .find(|g| g.objective.contains("cache_hits"))
        .unwrap();
    assert!((cache.value.unwrap() - 90.0).abs() < 1e-9);
}

#[test]
fn a_slow_stage_fails_with_its_numbers() {
    let run = record(
        vec![stage(
            "100",
            100.0,
            vec![("GET /api/dashboard", route(3000, 150, 0))],
        )],
        healthy_server(),
    );
    let report = grade(&run, &spec());
    assert_eq!((report.verdict, report.exit_code()), (Verdict::Fail, 1));
    let p95 = report
        .grades
        .iter()
        .find(|g| g.scope == "stage 100")
        .unwrap();
    assert_eq!(p95.verdict, Verdict::Fail);
    assert!((p95.threshold - 100.0).abs() < 1e-9);
    assert!(p95.margin.unwrap() < -0.49, "{:?}", p95.margin);
}

#[test]
fn an_invalid_stage_is_not_passed_or_failed() {
    let mut slow_generator = stage(
        "1k",
        1000.0,
        vec![("GET /api/dashboard", route(3000, 5, 0))],
    );
    slow_generator.validity = Validity {
        valid: false,
        reasons: vec!["achieved 600 req/s, under 95% of the 1000 req/s target".into()],
    };
    let run = record(vec![slow_generator], healthy_server());
    let report = grade(&run, &spec());
    assert_eq!((report.verdict, report.exit_code()), (Verdict::Invalid, 3));
    let stage_grade = report
        .grades
        .iter()
        .find(|g| g.scope == "stage 1k")
        .unwrap();
    assert_eq!(stage_grade.verdict, Verdict::Invalid);
    assert!(stage_grade.reason.as_deref().unwrap().contains("under 95%"));
}

#[test]
fn one_slow_route_is_not_hidden_by_a_fast_average() {
    // 3% of requests take 900 ms: the run's P95 is fine, that route's is not.
    let run = record(
        vec![stage(
            "100",
            100.0,
            vec![
                ("GET /api/dashboard", route(9700, 5, 0)),
                ("POST /api/invoices/bulk", route(300, 900, 0)),
            ],
        )],
        healthy_server(),
    );
    let report = grade(&run, &spec());
    let run_p95 = report
        .grades
        .iter()
        .find(|g| g.scope == "run" && g.objective == "p(95) < 500ms")
        .unwrap();
    assert_eq!(run_p95.verdict, Verdict::Pass);
    let slow = report
        .grades
        .iter()
        .find(|g| g.scope == "route POST /api/invoices/bulk")
        .unwrap();
    assert_eq!(slow.verdict, Verdict::Fail);
    assert_eq!(report.verdict, Verdict::Fail);
}

#[test]
fn a_missing_metric_is_never_a_silent_pass() {
    let run = record(
        vec![stage(
            "100",
            100.0,
            vec![("GET /api/dashboard", route(3000, 5, 0))],
        )],
        Vec::new(),
    );
    let report = grade(&run, &spec());
    assert_eq!(report.verdict, Verdict::Invalid);
    for metric in ["cache_hits", "db_connections", "memory"] {
        let g = report
            .grades
            .iter()
            .find(|g| g.objective.contains(metric))
            .unwrap();
        assert_eq!(g.verdict, Verdict::Invalid, "{metric}");
        assert!(
            g.reason.as_deref().unwrap().contains("no server samples"),
            "{g:?}"
        );
    }
}

#[test]
fn too_few_samples_and_errors() {
    let few = record(
        vec![stage(
            "100",
            100.0,
            vec![("GET /api/dashboard", route(50, 5, 0))],
        )],
        healthy_server(),
    );
    let report = grade(&few, &spec());
    let p95 = report
        .grades
        .iter()
        .find(|g| g.scope == "stage 100")
        .unwrap();
    assert_eq!(p95.verdict, Verdict::Invalid);
    assert!(p95.reason.as_deref().unwrap().contains("50 samples"));

    let failing = record(
        vec![stage(
            "100",
            100.0,
            vec![("GET /api/dashboard", route(3000, 5, 90))],
        )],
        healthy_server(),
    );
    let report = grade(&failing, &spec());
    let errors = report
        .grades
        .iter()
        .find(|g| g.scope == "run" && g.objective.starts_with("rate(errors)"))
        .unwrap();
    assert_eq!(errors.verdict, Verdict::Fail);
    assert!((errors.value.unwrap() - 3.0).abs() < 1e-9, "{errors:?}");
}

#[test]
fn a_rare_route_is_invalid_on_its_own_line_only() {
    let run = record(
        vec![stage(
            "100",
            100.0,
            vec![
                ("GET /api/dashboard", route(3000, 5, 0)),
                ("POST /api/invoices/bulk", route(8, 30, 0)),
            ],
        )],
        healthy_server(),
    );
    let report = grade(&run, &spec());
    let rare = report
        .grades
        .iter()
        .find(|g| g.scope == "route POST /api/invoices/bulk")
        .unwrap();
    assert_eq!(rare.verdict, Verdict::Invalid);
    assert_eq!(report.verdict, Verdict::Pass);
}
