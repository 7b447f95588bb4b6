//! The guide's objectives and the shipped experiments, built into the binary: an
//! installed `aimate` (no checkout beside it, as in a CI job) grades and drills with
//! them. A file given on the command line, or `slo.toml` / `chaos/experiments/` in the
//! working directory, takes precedence.

use std::path::{Path, PathBuf};

use aimate_chaos::experiment::Experiment;
use aimate_reports::spec::SloSpec;

use crate::Failure;

pub const SLO_TOML: &str = include_str!("../slo.toml");

/// The drills of `chaos/experiments/`, by file name, in the order they run.
pub const EXPERIMENTS: [(&str, &str); 9] = [
    (
        "1-kill-instance.toml",
        include_str!("../chaos/experiments/1-kill-instance.toml"),
    ),
    (
        "2-network-latency.toml",
        include_str!("../chaos/experiments/2-network-latency.toml"),
    ),
    (
        "3-disk-full.toml",
        include_str!("../chaos/experiments/3-disk-full.toml"),
    ),
    (
        "4-exhaust-db-connections.toml",
        include_str!("../chaos/experiments/4-exhaust-db-connections.toml"),
    ),
    (
        "5-freeze-instance.toml",
        include_str!("../chaos/experiments/5-freeze-instance.toml"),
    ),
    (
        "6-fail-invoice-writes.toml",
        include_str!("../chaos/experiments/6-fail-invoice-writes.toml"),
    ),
    (
        "7-fleet-kill-instance.toml",
        include_str!("../chaos/experiments/7-fleet-kill-instance.toml"),
    ),
    (
        "8-redis-outage.toml",
        include_str!("../chaos/experiments/8-redis-outage.toml"),
    ),
    (
        "9-redis-latency.toml",
        include_str!("../chaos/experiments/9-redis-latency.toml"),
    ),
];

/// The one experiment of `drill --quick`.
pub const QUICK_EXPERIMENT: (&str, &str) = (
    "quick-kill-instance.toml",
    include_str!("../chaos/experiments/quick/kill-instance.toml"),
);

/// The objectives: `given`, else `./slo.toml`, else the built-in ones (said on stderr).
pub fn slo(given: Option<&Path>) -> Result<SloSpec, Failure> {
    if let Some(path) = given {
        return Ok(SloSpec::load(path)?);
    }
    let local = Path::new("slo.toml");
    if local.is_file() {
        return Ok(SloSpec::load(local)?);
    }
    eprintln!(
        "aimate: using the built-in slo.toml (the guide's objectives; `aimate slo print` shows it)"
    );
    Ok(SloSpec::parse(SLO_TOML, "built-in slo.toml")?)
}

/// Experiments by name: every `*.toml` of `given`, else of `./chaos/experiments/`, else
/// the built-in ones. Every file is checked before any runs.
pub fn experiments(given: Option<&Path>) -> Result<Vec<(String, Experiment)>, Failure> {
    let local = PathBuf::from("chaos/experiments");
    let dir = match given {
        Some(dir) => Some(dir.to_owned()),
        None => local.is_dir().then_some(local),
    };
    let Some(dir) = dir else {
        eprintln!("aimate: using the built-in experiments (`aimate chaos experiments` lists them)");
        return EXPERIMENTS
            .iter()
            .map(|(name, text)| parsed(name, text))
            .collect();
    };
    let mut found = Vec::new();
    for file in crate::commands::experiment_files(&dir)? {
        let name = file
            .file_stem()
            .map_or_else(String::new, |s| s.to_string_lossy().into_owned());
        found.push((name, Experiment::load(&file)?));
    }
    Ok(found)
}

/// A built-in experiment, named by its file stem.
pub fn parsed(name: &str, text: &str) -> Result<(String, Experiment), Failure> {
    let experiment = Experiment::parse(text, &format!("built-in {name}"))?;
    Ok((name.trim_end_matches(".toml").to_owned(), experiment))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_built_in_file_parses() {
        SloSpec::parse(SLO_TOML, "slo.toml").unwrap();
        for (name, text) in EXPERIMENTS.iter().chain([&QUICK_EXPERIMENT]) {
            parsed(name, text).unwrap();
        }
        let (_, quick) = parsed(QUICK_EXPERIMENT.0, QUICK_EXPERIMENT.1).unwrap();
        // The quick drill must stay quick: warm-up and window under 15 s.
        assert!(quick.warmup + quick.duration <= std::time::Duration::from_secs(15));
    }

    #[test]
    fn the_built_in_drills_are_the_shipped_files() {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("chaos/experiments");
        let mut shipped: Vec<String> = std::fs::read_dir(&dir)
            .unwrap()
            .filter_map(|e| e.ok().map(|e| e.file_name().to_string_lossy().into_owned()))
            .filter(|n| n.ends_with(".toml"))
            .collect();
        shipped.sort();
        let built_in: Vec<&str> = EXPERIMENTS.iter().map(|(n, _)| *n).collect();
        assert_eq!(shipped, built_in, "add the new experiment to builtin.rs");
    }
}
