//! Server-side objectives on fleet records: per-instance samples summed with reset
//! detection, gauges aggregated by meaning, and a balancer's mix refused.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use aimate_reports::grade::{Grade, Verdict, grade};
use aimate_reports::record::{ServerSample, ServerSource};
use support::{record, route, spec, stage};

/// One instance's sample: `lookups` cache lookups so far at `hit_share`.
fn sample(t_ms: u64, instance: &str, process: &str, lookups: f64, hit_share: f64) -> ServerSample {
    ServerSample {
        t_ms,
        instance: instance.into(),
        process: Some(process.into()),
        requests_total: Some(lookups),
        cache_hits_total: Some(lookups * hit_share),
        cache_misses_total: Some(lookups * (1.0 - hit_share)),
        db_connections_used: Some(if instance == "b" { 6.0 } else { 2.0 }),
        db_connections_max: Some(8.0),
        resident_memory_bytes: Some(if instance == "b" { 300e6 } else { 100e6 }),
        ..ServerSample::default()
    }
}

fn server_grade<'a>(grades: &'a [Grade], metric: &str) -> &'a Grade {
    grades
        .iter()
        .find(|g| g.scope == "run" && g.objective.contains(metric))
        .unwrap()
}

fn run_with(server: Vec<ServerSample>) -> Vec<Grade> {
    let run = record(
        vec![stage(
            "100",
            100.0,
            vec![("GET /api/dashboard", route(3000, 5, 0))],
        )],
        server,
    );
    grade(&run, &spec()).grades
}

#[test]
fn two_instances_are_summed_and_aggregated_by_what_their_figures_mean() {
    // a: 50 lookups/s at 90 % hits; b: 150 lookups/s at 70 % hits → fleet 75 %.
    let mut server = Vec::new();
    for i in 0..31 {
        let t = 1_000 + i * 1_000;
        server.push(sample(t, "a", "pa", 50.0 * i as f64, 0.9));
        server.push(sample(t, "b", "pb", 150.0 * i as f64, 0.7));
    }
    let grades = run_with(server);
    let cache = server_grade(&grades, "cache_hits");
    assert!((cache.value.unwrap() - 75.0).abs() < 1e-6, "{cache:?}");
    assert_eq!(cache.verdict, Verdict::Fail);
    // Pool: (2 + 6) of (8 + 8) in use, not b's 6 of 8 nor the sum of maxima's peak.
    let pool = server_grade(&grades, "db_connections");
    assert!((pool.value.unwrap() - 50.0).abs() < 1e-6, "{pool:?}");
    let memory = server_grade(&grades, "memory");
    assert!((memory.value.unwrap() - 100.0 * 300e6 / 1_073_741_824.0).abs() < 1e-6);
    assert_eq!(memory.detail.as_deref(), Some("peak on instance b"));
    assert_eq!(memory.note(), "peak on instance b");
}

#[test]
fn a_restart_mid_window_counts_from_zero_and_its_gap_contributes_nothing() {
    let mut server = Vec::new();
    for i in 0..31 {
        let t = 1_000 + i * 1_000;
        server.push(sample(t, "a", "pa", 100.0 * i as f64, 0.9));
        match i {
            // b is down for two seconds, then comes back as a new process at zero.
            0..=9 => server.push(sample(t, "b", "pb1", 1000.0 + 100.0 * i as f64, 0.9)),
            10 | 11 => server.push(ServerSample::down("b", t)),
            _ => server.push(sample(t, "b", "pb2", 100.0 * (i - 11) as f64, 0.9)),
        }
    }
    let grades = run_with(server);
    let cache = server_grade(&grades, "cache_hits");
    // Every second's lookups count once: nothing negative, nothing double.
    assert!((cache.value.unwrap() - 90.0).abs() < 1e-6, "{cache:?}");
    assert_eq!(cache.samples, 30 * 100 + (9 + 19) * 100, "{cache:?}");
    assert_eq!(cache.verdict, Verdict::Pass);
}

#[test]
fn metrics_scraped_through_a_balancer_make_server_objectives_invalid_with_the_reason() {
    // The target's metrics, answered by two processes in turn.
    let server: Vec<ServerSample> = (0..31)
        .map(|i| {
            let (process, base) = if i % 2 == 0 {
                ("pa", 0.0)
            } else {
                ("pb", 5000.0)
            };
            let mut s = sample(1_000 + i * 1_000, "", process, base + 40.0 * i as f64, 0.9);
            s.instance = String::new();
            s
        })
        .collect();
    let run = record(
        vec![stage(
            "100",
            100.0,
            vec![("GET /api/dashboard", route(3000, 5, 0))],
        )],
        server,
    );
    let report = grade(&run, &spec());
    for metric in ["cache_hits", "db_connections", "memory"] {
        let g = server_grade(&report.grades, metric);
        assert_eq!(g.verdict, Verdict::Invalid, "{g:?}");
        let reason = g.reason.as_deref().unwrap();
        assert!(reason.contains("2 processes in turn"), "{reason}");
        assert!(reason.contains("--scrape"), "{reason}");
    }
    // The client's own measurements are still graded.
    let p95 = report
        .grades
        .iter()
        .find(|g| g.scope == "stage 100")
        .unwrap();
    assert_eq!(p95.verdict, Verdict::Pass);
    assert_eq!(report.verdict, Verdict::Invalid);
}

#[test]
fn a_version_1_record_still_reads_and_grades() {
    let run = record(
        vec![stage(
            "100",
            100.0,
            vec![("GET /api/dashboard", route(3000, 5, 0))],
        )],
        support::healthy_server(),
    );
    let mut json = serde_json::to_value(&run).unwrap();
    json["schema_version"] = 1.into();
    json.as_object_mut().unwrap().remove("server_source");
    for sample in json["server"].as_array_mut().unwrap() {
        let sample = sample.as_object_mut().unwrap();
        assert!(
            !sample.contains_key("up"),
            "an answered scrape writes no `up`"
        );
        sample.remove("instance");
        sample.remove("process");
    }
    let old: aimate_reports::RunRecord = serde_json::from_value(json).unwrap();
    assert!(old.server.iter().all(|s| s.up));
    let merged = aimate_reports::RunRecord::merge(&[old.clone(), old.clone()]).unwrap();
    assert_eq!(merged.schema_version, aimate_reports::SCHEMA_VERSION);
    assert_eq!(grade(&old, &spec()).verdict, Verdict::Pass);
}

#[test]
fn a_fleet_run_is_also_graded_on_the_guides_stage_2_objectives() {
    // Two instances scraped one by one: cache 90 %, pool (2 + 6) / 16, P95 5 ms.
    let mut server = Vec::new();
    for i in 0..31 {
        let t = 1_000 + i * 1_000;
        server.push(sample(t, "a", "pa", 50.0 * i as f64, 0.9));
        server.push(sample(t, "b", "pb", 150.0 * i as f64, 0.9));
    }
    let mut run = record(
        vec![stage(
            "100",
            100.0,
            vec![("GET /api/dashboard", route(3000, 5, 0))],
        )],
        server,
    );
    // Scraped through one target: not a fleet, no Stage 2 scope.
    let plain = grade(&run, &spec());
    assert!(plain.grades.iter().all(|g| g.scope != "fleet"));

    run.server_source = ServerSource::Instances {
        urls: vec!["http://a".into(), "http://b".into()],
    };
    let fleet = grade(&run, &spec());
    let stage_2: Vec<&Grade> = fleet.grades.iter().filter(|g| g.scope == "fleet").collect();
    let objectives: Vec<&str> = stage_2.iter().map(|g| g.objective.as_str()).collect();
    assert_eq!(
        objectives,
        [
            "ratio(cache_hits) > 80%",
            "p(95) < 200ms",
            "ratio(db_connections) < 80%"
        ]
    );
    assert!(
        stage_2.iter().all(|g| g.verdict == Verdict::Pass),
        "{stage_2:?}"
    );
    assert!((stage_2[2].value.unwrap() - 50.0).abs() < 1e-6);

    // Stage 2's P95 bar is lower than Stage 1's: 300 ms passes the run, fails the fleet.
    run.stages = vec![stage(
        "100",
        100.0,
        vec![("GET /api/dashboard", route(3000, 300, 0))],
    )];
    let slow = grade(&run, &spec());
    let verdict = |scope: &str, objective: &str| {
        slow.grades
            .iter()
            .find(|g| g.scope == scope && g.objective == objective)
            .map(|g| g.verdict)
    };
    assert_eq!(verdict("run", "p(95) < 500ms"), Some(Verdict::Pass));
    assert_eq!(verdict("fleet", "p(95) < 200ms"), Some(Verdict::Fail));
    assert_eq!(slow.verdict, Verdict::Fail);
}
