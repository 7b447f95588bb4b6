//! `aimate drill --fleet N`: the guide's Stage 2 on the real pieces (N instances behind
//! HAProxy, PostgreSQL, Redis), graded on slo.toml's `[fleet]` objectives, in a schema
//! and key prefix of its own that are gone afterwards. Needs `TEST_DATABASE_URL`,
//! `TEST_REDIS_URL` and HAProxy (all set up by `.ci/run`); says so when skipped.

use std::path::Path;

use crate::common::{aimate, find_on_path, first_run, read_json, run};

fn services() -> Option<(String, String)> {
    let var = |name: &str| std::env::var(name).ok().filter(|v| !v.is_empty());
    match (
        var("TEST_DATABASE_URL"),
        var("TEST_REDIS_URL"),
        find_on_path("haproxy"),
    ) {
        (Some(pg), Some(redis), Some(_)) => Some((pg, redis)),
        _ => {
            eprintln!(
                "skipped: the fleet drill needs TEST_DATABASE_URL, TEST_REDIS_URL and haproxy"
            );
            None
        }
    }
}

fn slo() -> std::path::PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../slo.toml")
}

/// What is left of the schema and key prefix a run named on stderr ("PostgreSQL schema
/// aimate_run_…, Redis prefix aimate-run:…:"): schemas found, keys found.
fn leftovers(stderr: &str, pg: &str, redis: &str) -> (usize, usize) {
    let after = |marker: &str| {
        let start = stderr
            .find(marker)
            .unwrap_or_else(|| panic!("no {marker:?} in {stderr}"))
            + marker.len();
        stderr[start..]
            .split([',', ' ', ';', ')'])
            .next()
            .unwrap()
            .to_owned()
    };
    let (schema, prefix) = (after("PostgreSQL schema "), after("Redis prefix "));
    assert!(schema.starts_with("aimate_run_") && prefix.starts_with("aimate-run:"));
    let psql = std::process::Command::new("psql")
        .args([pg, "-tAc"])
        .arg(format!(
            "SELECT count(*) FROM information_schema.schemata WHERE schema_name = '{schema}'"
        ))
        .output()
        .expect("psql");
    let schemas = String::from_utf8_lossy(&psql.stdout)
        .trim()
        .parse()
        .unwrap();
    let keys = std::process::Command::new("redis-cli")
        .args(["-u", redis, "--scan", "--pattern"])
        .arg(format!("{prefix}*"))
        .output()
        .expect("redis-cli");
    (
        schemas,
        String::from_utf8_lossy(&keys.stdout).lines().count(),
    )
}

#[test]
fn a_fleet_drill_is_graded_on_stage_2_and_leaves_nothing_behind() {
    let Some((pg, redis)) = services() else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("out");
    let output = run(aimate(dir.path())
        .args(["drill", "--fleet", "2", "--no-chaos"])
        .args(["--stages", "200", "--warmup", "2s", "--duration", "6s"])
        .arg("--slo")
        .arg(slo())
        .arg("--out-dir")
        .arg(&out)
        .env("DATABASE_URL", &pg)
        .env("AIMATE_REDIS_URL", &redis));
    let stderr = String::from_utf8_lossy(&output.stderr).into_owned();
    let code = output.status.code();
    assert!(matches!(code, Some(0 | 1)), "exit {code:?}: {stderr}");
    assert!(
        stderr.contains("fleet of 2 instances behind HAProxy"),
        "{stderr}"
    );
    let (run_dir, record) = first_run(&out);
    let report = read_json(&run_dir.join("report.json"));
    let fleet: Vec<&serde_json::Value> = report["grades"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|g| g["scope"] == "fleet")
        .collect();
    assert_eq!(fleet.len(), 3, "{report}");
    for grade in &fleet {
        assert!(
            grade["verdict"] == "PASS" || grade["verdict"] == "FAIL",
            "{grade}"
        );
        assert!(grade["value"].is_number(), "{grade}");
    }
    // Both instances served, and their caches went through Redis.
    let source = &record["server_source"];
    assert_eq!(source["kind"], "instances", "{source}");
    assert_eq!(source["urls"].as_array().unwrap().len(), 2, "{source}");
    assert!(
        !stderr.contains("was not dropped") && !stderr.contains("were not deleted"),
        "{stderr}"
    );
    assert_eq!(
        leftovers(&stderr, &pg, &redis),
        (0, 0),
        "schema or keys left behind"
    );
}

#[test]
fn a_fleet_postgresql_cannot_hold_is_refused_before_it_starts() {
    let Some((pg, redis)) = services() else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let output = run(aimate(dir.path())
        .args([
            "drill",
            "--fleet",
            "16",
            "--db-pool-max",
            "1000",
            "--no-chaos",
        ])
        .args(["--database-url", &pg, "--redis-url", &redis])
        .arg("--slo")
        .arg(slo()));
    let stderr = String::from_utf8_lossy(&output.stderr).into_owned();
    assert_eq!(output.status.code(), Some(2), "{stderr}");
    assert_eq!(stderr.lines().count(), 1, "{stderr}");
    assert!(
        stderr.contains("16 instances × a pool of 1000 needs 16000 PostgreSQL connections"),
        "{stderr}"
    );
    assert!(stderr.contains("max_connections allows"), "{stderr}");
}

#[test]
fn a_fleet_without_its_stores_is_a_one_line_usage_error() {
    let dir = tempfile::tempdir().unwrap();
    let output = run(aimate(dir.path())
        .args(["drill", "--fleet", "3", "--no-chaos", "--slo"])
        .arg(slo()));
    let stderr = String::from_utf8_lossy(&output.stderr).into_owned();
    assert_eq!(output.status.code(), Some(2), "{stderr}");
    assert_eq!(
        stderr.trim(),
        "aimate: error: --fleet runs on PostgreSQL: pass --database-url or set DATABASE_URL"
    );
    let one = run(aimate(dir.path()).args(["drill", "--fleet", "1"]));
    assert_eq!(one.status.code(), Some(2));
}

const REDIS_OUTAGE: &str = r#"
title = "Redis outage, short"
rollbacks = ["reset-toxics"]
[target]
instances = 2
database = "postgres"
redis = true
[load]
rate = "200"
warmup = "2s"
duration = "12s"
# 600 requests in the fault: enough to decide 99 % at 95 % confidence.
[hypothesis]
objectives = ["ratio(available) > 99%", "rate(errors) < 5%"]
[[method]]
fault = "redis-down"
at = "4s"
duration = "3s"
"#;

/// A Redis outage under a PostgreSQL fleet, end to end through `aimate chaos run`: the
/// instances reach Redis through the run's fault proxy, which cuts them off for 3 s;
/// every request is still answered, no write is lost, and nothing is left behind.
#[test]
fn a_redis_outage_experiment_answers_everything_and_cleans_up() {
    let Some((pg, redis)) = services() else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("outage.toml");
    std::fs::write(&file, REDIS_OUTAGE).unwrap();
    let out = dir.path().join("out");
    let output = run(aimate(dir.path())
        .args(["chaos", "run"])
        .arg(&file)
        .arg("--slo")
        .arg(slo())
        .arg("--out-dir")
        .arg(&out)
        .args(["--database-url", &pg, "--redis-url", &redis]));
    let stderr = String::from_utf8_lossy(&output.stderr).into_owned();
    assert_eq!(output.status.code(), Some(0), "{stderr}");
    assert!(stderr.contains("fault: redis-down"), "{stderr}");
    let (run_dir, record) = first_run(&out);
    let report = read_json(&run_dir.join("report.json"));
    let available = report["grades"]
        .as_array()
        .unwrap()
        .iter()
        .find(|g| {
            g["scope"].as_str().unwrap().contains("fault")
                && g["objective"] == "ratio(available) > 99%"
        })
        .unwrap();
    assert_eq!(available["verdict"], "PASS", "{available}");
    assert_eq!(
        available["value"], 100.0,
        "every request answered: {available}"
    );
    assert_eq!(record["writes"]["missing"], 0, "{}", record["writes"]);
    assert!(record["writes"]["acknowledged"].as_u64().unwrap() > 0);
    assert_eq!(
        leftovers(&stderr, &pg, &redis),
        (0, 0),
        "schema or keys left behind"
    );
}
