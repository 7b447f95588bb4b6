//! Hand-built records for the grading and renderer tests.

#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)]

use std::collections::BTreeMap;

use aimate_reports::LatencyHistogram;
use aimate_reports::record::{
    Event, GeneratorInfo, RouteRecord, RunMeta, RunRecord, SCHEMA_VERSION, SecondRecord,
    ServerSample, StageRecord, Validity, WriteCheck,
};
use aimate_reports::spec::SloSpec;

pub fn route(samples: u64, latency_ms: u64, errors: u64) -> RouteRecord {
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

pub fn stage(name: &str, rate: f64, routes: Vec<(&str, RouteRecord)>) -> StageRecord {
    StageRecord {
        unsent: 0,
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
            held_back_by_server: false,
        },
    }
}

pub fn healthy_server() -> Vec<ServerSample> {
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

pub fn record(stages: Vec<StageRecord>, server: Vec<ServerSample>) -> RunRecord {
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
            segment: None,
        },
        stages,
        server,
        server_source: aimate_reports::record::ServerSource::default(),
        events: Vec::new(),
        aborted: None,
        alerting: None,
        writes: Some(WriteCheck {
            acknowledged: 120,
            checked: 120,
            ..WriteCheck::default()
        }),
    }
}

pub fn spec() -> SloSpec {
    SloSpec::load(&std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../slo.toml")).unwrap()
}

/// A realistic record: `stages` of `seconds` each at `rate`, latency growing with the
/// rate, a few errors, timeline and server samples every second.
pub fn long_run(stages: &[(&str, f64)], seconds: u64) -> RunRecord {
    let mut built = Vec::new();
    let mut server = Vec::new();
    let mut clock = 0u64;
    for (index, (name, rate)) in stages.iter().enumerate() {
        let start = clock;
        let mut routes: BTreeMap<String, RouteRecord> = BTreeMap::new();
        let mut timeline = Vec::new();
        for second in 0..seconds {
            let mut point = SecondRecord {
                t_ms: start + second * 1000,
                in_steady: true,
                ..SecondRecord::default()
            };
            let per_second = *rate as u64;
            for (route_index, route_name) in [
                "GET /api/dashboard",
                "GET /api/invoices",
                "POST /api/invoices",
            ]
            .iter()
            .enumerate()
            {
                let count = per_second / 3;
                let route = routes.entry((*route_name).to_owned()).or_default();
                for bucket in 0..20u64 {
                    let micros = 300
                        + (bucket * bucket * 90) * (index as u64 + 1)
                        + route_index as u64 * 200
                        + second % 7 * 13;
                    let n = count / 20;
                    route.latency_us.record_n(micros + 150, n);
                    route.service_us.record_n(micros, n);
                    point.latency_us.record_n(micros + 150, n);
                }
                *route.outcomes.entry("200".into()).or_default() += count - count / 500;
                *route.outcomes.entry("503".into()).or_default() += count / 500;
                point.sent += count;
                *point.outcomes.entry("200".into()).or_default() += count - count / 500;
                *point.outcomes.entry("503".into()).or_default() += count / 500;
            }
            timeline.push(point);
            server.push(ServerSample {
                t_ms: start + second * 1000,
                requests_total: Some((clock / 1000 + second) as f64 * rate),
                cache_hits_total: Some(((clock / 1000 + second) as f64) * rate * 0.9),
                cache_misses_total: Some(((clock / 1000 + second) as f64) * rate * 0.1),
                db_connections_used: Some((second % 5) as f64),
                db_connections_max: Some(8.0),
                resident_memory_bytes: Some(40e6 + second as f64 * 1000.0),
                active_requests: Some(3.0),
                latency_buckets: vec![(0.001, 100.0), (0.01, 200.0)],
                ..ServerSample::default()
            });
        }
        clock += seconds * 1000;
        built.push(StageRecord {
            unsent: 0,
            name: (*name).to_owned(),
            target_rps: *rate,
            started_ms: start,
            steady_start_ms: start,
            steady_end_ms: clock,
            sent: (*rate as u64) * seconds,
            achieved_rps: *rate,
            routes,
            timeline,
            validity: Validity {
                valid: true,
                reasons: Vec::new(),
                held_back_by_server: false,
            },
        });
    }
    let mut run = record(built, server);
    run.events.push(Event {
        t_ms: 5_000,
        kind: aimate_reports::record::EventKind::Fault,
        detail: "latency 100ms <test & \"quotes\">".into(),
        end_ms: Some(9_000),
    });
    run
}
