//! aimate-monitoring: the `dashboards/` tree, generated from slo.toml (thresholds, SLOs
//! and their budgets) and the server's metric catalogue (names, types, labels):
//!
//! ```text
//! dashboards/grafana/aimate-service.json              the dashboard
//! dashboards/grafana/provisioning/{datasources,dashboards}/aimate.yaml
//! dashboards/prometheus/prometheus.yml                scrape config, rules referenced
//! dashboards/prometheus/rules.yml                     recording rules and alerts
//! dashboards/prometheus/tests/alerts.test.yml         promtool unit tests of the alerts
//! dashboards/RUNBOOK.md                               what to check first, per alert
//! ```
//!
//! The files are committed; a test regenerates them and fails on any difference.

pub mod grafana;
pub mod promql;
pub mod rule_tests;
pub mod rules;
pub mod runbook;
pub mod slo;
mod yaml;

use std::path::{Path, PathBuf};

use aimate_reports::spec::SloSpec;
use serde_json::json;

/// One generated file, its path relative to the output directory.
#[derive(Debug, Clone, PartialEq)]
pub struct GeneratedFile {
    pub path: PathBuf,
    pub contents: String,
}

#[derive(Debug, thiserror::Error)]
pub enum GenerateError {
    #[error(transparent)]
    Slo(#[from] slo::SloError),
    #[error("no scenario in the rule tests breaks the alert(s) {0}: add one")]
    Untested(String),
    #[error("cannot write {path}: {source}")]
    Write {
        path: PathBuf,
        source: std::io::Error,
    },
}

fn prometheus_config() -> String {
    yaml::document(
        "Prometheus for AI Mate: scrapes every instance's /api/metrics (list yours under\n\
         `targets`) and evaluates the generated rules. Job name `aimate`: the instance-down\n\
         alert watches `up{job=\"aimate\"}`.",
        &json!({
            "global": {"scrape_interval": "15s", "evaluation_interval": "15s"},
            "rule_files": ["rules.yml"],
            "scrape_configs": [{
                "job_name": rules::JOB,
                "metrics_path": "/api/metrics",
                "static_configs": [{"targets": ["127.0.0.1:8080"]}],
            }],
        }),
    )
}

/// Everything under `dashboards/`.
pub fn generate(spec: &SloSpec) -> Result<Vec<GeneratedFile>, GenerateError> {
    let slos = slo::slos(spec)?;
    let alerts = rules::alerts(&slos, spec.memory_limit_bytes);
    let untested = rule_tests::untested(&alerts, &slos);
    if !untested.is_empty() {
        return Err(GenerateError::Untested(untested.join(", ")));
    }
    let file = |path: &str, contents: String| GeneratedFile {
        path: PathBuf::from(path),
        contents,
    };
    Ok(vec![
        file(
            "grafana/aimate-service.json",
            grafana::dashboard(&slos, spec.memory_limit_bytes),
        ),
        file(
            "grafana/provisioning/datasources/aimate.yaml",
            grafana::datasource_provisioning(),
        ),
        file(
            "grafana/provisioning/dashboards/aimate.yaml",
            grafana::dashboard_provisioning(),
        ),
        file("prometheus/prometheus.yml", prometheus_config()),
        file("prometheus/rules.yml", rules::rules_file(&slos, &alerts)),
        file(
            "prometheus/tests/alerts.test.yml",
            rule_tests::rule_tests_file(&alerts, &slos),
        ),
        file("RUNBOOK.md", runbook::runbook(&alerts)),
    ])
}

/// Writes `files` under `out`.
pub fn write(out: &Path, files: &[GeneratedFile]) -> Result<(), GenerateError> {
    for file in files {
        let path = out.join(&file.path);
        let failed = |source| GenerateError::Write {
            path: path.clone(),
            source,
        };
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent).map_err(failed)?;
        }
        std::fs::write(&path, &file.contents).map_err(failed)?;
    }
    Ok(())
}

/// The generated files whose copy under `out` is missing or different.
pub fn drifted(out: &Path, files: &[GeneratedFile]) -> Vec<PathBuf> {
    files
        .iter()
        .filter(|f| std::fs::read_to_string(out.join(&f.path)).ok().as_deref() != Some(&f.contents))
        .map(|f| f.path.clone())
        .collect()
}
