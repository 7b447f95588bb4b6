//! Server-side series of a fleet the harness does not own: two `aimate serve` instances
//! behind HAProxy, loaded with `aimate load --target` through the balancer, their
//! series scraped through it (refused), per instance (`--scrape`), and from a real
//! Prometheus (`--prometheus`).

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use aimate_chaos::balancer::{Balancer, find_haproxy};
use aimate_chaos::keeper::Keeper;
use aimate_chaos::supervisor::{InstanceSpec, Supervisor};
use aimate_reports::fleet;
use aimate_reports::record::RunRecord;

use crate::common::{aimate, aimate_bin, run, start_prometheus};

const ADMIN: &str = "fleet-test-admin-token";

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap()
}

/// `aimate load` through `target` at 300 req/s for 10 s, extra flags appended; the record.
fn load(dir: &Path, target: &str, name: &str, extra: &[String]) -> RunRecord {
    let out = dir.join(format!("{name}.json"));
    let output = run(aimate(dir)
        .args(["load", "--target", target, "--stages", "300"])
        .args(["--warmup", "2s", "--duration", "10s"])
        .args(["--seed-invoices", "50", "--seed-jobs", "10"])
        .arg("--out")
        .arg(&out)
        .args(extra)
        .env("AIMATE_ADMIN_TOKEN", ADMIN));
    assert!(
        output.status.success(),
        "{name}: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    serde_json::from_slice(&std::fs::read(&out).unwrap()).unwrap()
}

/// `aimate report` of `record`'s file; the report.json's grades.
fn report(dir: &Path, name: &str) -> Vec<serde_json::Value> {
    let out = dir.join(format!("{name}-report"));
    let slo = Path::new(env!("CARGO_MANIFEST_DIR")).join("../slo.toml");
    let output = run(aimate(dir)
        .arg("report")
        .arg(dir.join(format!("{name}.json")))
        .arg("--slo")
        .arg(slo)
        .arg("--out")
        .arg(&out));
    assert!(output.status.code().is_some_and(|c| c <= 3), "{output:?}");
    let report: serde_json::Value =
        serde_json::from_slice(&std::fs::read(out.join("report.json")).unwrap()).unwrap();
    report["grades"].as_array().unwrap().clone()
}

fn run_grade<'a>(grades: &'a [serde_json::Value], metric: &str) -> &'a serde_json::Value {
    grades
        .iter()
        .find(|g| {
            g["scope"].as_str().unwrap().starts_with("run")
                && g["objective"].as_str().unwrap().contains(metric)
        })
        .unwrap()
}

/// The fleet's requests per second over the steady window, from the server's side.
fn server_rate(record: &RunRecord) -> f64 {
    let stage = &record.stages[0];
    let rounds: Vec<fleet::Round> = fleet::rounds(&record.server)
        .into_iter()
        .filter(|r| r.t_ms >= stage.steady_start_ms && r.t_ms <= stage.steady_end_ms)
        .collect();
    let (first, last) = (rounds.first().unwrap(), rounds.last().unwrap());
    let served: f64 = rounds[1..].iter().filter_map(fleet::Round::requests).sum();
    served / ((last.t_ms - first.t_ms) as f64 / 1000.0)
}

#[test]
fn fleet_series_are_scraped_per_instance_and_a_balancer_mix_is_refused() {
    let Some(haproxy) = find_haproxy() else {
        eprintln!("skipped: haproxy is not installed (apt-get install -y haproxy)");
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let rt = runtime();
    let keeper = Arc::new(Keeper::spawn(&aimate_bin(), &["chaos", "keeper"]).unwrap());
    let spec = InstanceSpec {
        program: aimate_bin(),
        args: vec![
            "serve".into(),
            "--data-dir".into(),
            dir.path().join("data").display().to_string(),
            "--log-dir".into(),
            dir.path().join("logs").display().to_string(),
        ],
        env: vec![
            ("AIMATE_LOG".into(), "warn".into()),
            ("AIMATE_ADMIN_TOKEN".into(), ADMIN.into()),
            ("AIMATE_RATE_LIMIT_PER_SECOND".into(), "0".into()),
        ],
        ready_timeout: Duration::from_secs(30),
    };
    let mut supervisor = rt
        .block_on(Supervisor::start(spec, 2, keeper.clone()))
        .unwrap();
    let instances: Vec<String> = supervisor.addrs().iter().map(ToString::to_string).collect();
    let balancer = rt
        .block_on(Balancer::start(
            &haproxy,
            dir.path(),
            &supervisor.addrs(),
            keeper.clone(),
        ))
        .unwrap();
    assert!(rt.block_on(balancer.wait_routing(Duration::from_secs(10))));
    let target = format!("http://{}", balancer.addr);
    let prometheus = start_prometheus(dir.path(), &instances);

    // Through the balancer only: the scrapes alternate between processes, detected.
    load(dir.path(), &target, "mixed", &[]);
    let grades = report(dir.path(), "mixed");
    for metric in ["cache_hits", "db_connections", "memory"] {
        let grade = run_grade(&grades, metric);
        assert_eq!(grade["verdict"], "INVALID", "{grade}");
        let reason = grade["reason"].as_str().unwrap();
        assert!(reason.contains("processes in turn"), "{reason}");
    }

    // Each instance on its own address: per-instance series, graded.
    let scrape: Vec<String> = instances
        .iter()
        .flat_map(|i| ["--scrape".to_owned(), format!("http://{i}")])
        .collect();
    let record = load(dir.path(), &target, "scraped", &scrape);
    let names: std::collections::BTreeSet<&str> =
        record.server.iter().map(|s| s.instance.as_str()).collect();
    assert_eq!(names.len(), 2, "{names:?}");
    for round in fleet::rounds(&record.server) {
        if let Some((hits, misses)) = round.cache()
            && hits + misses > 0.0
        {
            let ratio = 100.0 * hits / (hits + misses);
            assert!(
                (0.0..=100.0).contains(&ratio),
                "{ratio} % at {}",
                round.t_ms
            );
        }
        for point in round.instances.values() {
            assert!(point.requests.is_none_or(|r| r >= 0.0), "{point:?}");
        }
    }
    let (generated, served) = (record.stages[0].achieved_rps, server_rate(&record));
    eprintln!("fleet: generator {generated:.1} req/s, instances served {served:.1} req/s");
    assert!(
        (served - generated).abs() <= 0.02 * generated,
        "the instances served {served:.1} req/s, the generator sent {generated:.1}"
    );
    let grades = report(dir.path(), "scraped");
    for metric in ["cache_hits", "db_connections", "memory"] {
        let grade = run_grade(&grades, metric);
        assert_ne!(grade["verdict"], "INVALID", "{grade}");
    }
    assert!(
        run_grade(&grades, "memory")["detail"]
            .as_str()
            .unwrap()
            .starts_with("peak on instance 127.0.0.1:")
    );

    // From a Prometheus that scrapes both instances.
    match prometheus {
        None => eprintln!("skipped the Prometheus part: prometheus is not installed"),
        Some((child, url)) => {
            let record = load(
                dir.path(),
                &target,
                "prometheus",
                &[
                    "--prometheus".into(),
                    url,
                    "--prometheus-selector".into(),
                    "job=\"aimate\"".into(),
                ],
            );
            drop(child);
            let names: std::collections::BTreeSet<&str> =
                record.server.iter().map(|s| s.instance.as_str()).collect();
            assert_eq!(names.len(), 2, "{names:?}");
            let grades = report(dir.path(), "prometheus");
            for metric in ["cache_hits", "db_connections", "memory"] {
                let grade = run_grade(&grades, metric);
                assert_ne!(grade["verdict"], "INVALID", "{grade}");
            }
        }
    }
    rt.block_on(supervisor.shutdown());
    drop(balancer);
}
