//! `aimate report merge A B… | DIR -o OUT`: merge the records of several generators
//! (a distributed run's segments, checked as one run, or whole runs of one plan) into
//! the record one generator would have written; with `--prometheus`, the server's series
//! for the run's window are read once from Prometheus.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use aimate_reports::RunRecord;
use aimate_reports::segments;
use anyhow::Context;

use super::report::{json_files, read_record, write_atomically};
use crate::Failure;

/// What `aimate report merge` was given.
pub struct MergeArgs<'a> {
    pub records: &'a [PathBuf],
    pub out: &'a Path,
    pub allow_missing: bool,
    pub prometheus: Option<&'a str>,
    pub prometheus_selector: &'a str,
}

pub fn run(args: &MergeArgs<'_>) -> Result<ExitCode, Failure> {
    // A directory stands for the records in it (a distributed run's volume).
    let mut paths = Vec::new();
    for path in args.records {
        if path.is_dir() {
            paths.extend(json_files(path)?);
        } else {
            paths.push(path.clone());
        }
    }
    let records = paths
        .iter()
        .map(|path| read_record(path))
        .collect::<anyhow::Result<Vec<_>>>()?;
    let mut merged = if records.iter().any(|r| r.run.segment.is_some()) {
        let named: Vec<segments::Named<'_>> = paths
            .iter()
            .zip(&records)
            .map(|(path, record)| segments::Named {
                name: path.display().to_string(),
                record,
            })
            .collect();
        segments::merge(&named, args.allow_missing)?
    } else if records.len() < 2 {
        return Err(anyhow::anyhow!(
            "give two records or more to merge (or the segments of a distributed run)"
        )
        .into());
    } else {
        RunRecord::merge(&records)?
    };
    if let Some(url) = args.prometheus {
        server_series_from_prometheus(&mut merged, url, args.prometheus_selector)
            .map_err(Failure::ungradable)?;
    }
    let out = args.out;
    if let Some(parent) = out.parent().filter(|p| !p.as_os_str().is_empty()) {
        std::fs::create_dir_all(parent)
            .with_context(|| format!("cannot create {}", parent.display()))?;
    }
    write_atomically(out, |w| {
        serde_json::to_writer_pretty(&mut *w, &merged).map_err(std::io::Error::other)
    })?;
    eprintln!("merged {} records into {}", records.len(), out.display());
    Ok(ExitCode::SUCCESS)
}

/// How long a merge right after the run waits for Prometheus to scrape past its end.
const PROMETHEUS_PATIENCE: std::time::Duration = std::time::Duration::from_secs(15);

/// Replaces the merged record's server series with what Prometheus recorded over the
/// run's window (read once, for every instance), as `aimate load --prometheus` would.
fn server_series_from_prometheus(
    merged: &mut RunRecord,
    url: &str,
    selector: &str,
) -> anyhow::Result<()> {
    use aimate_loadgen::prometheus::Prometheus;
    let instant = |what: &str, text: &str| {
        humantime::parse_rfc3339_weak(text)
            .with_context(|| format!("the merged record's {what} `{text}` is not a time"))
    };
    let start = instant("start", &merged.run.started_at)?;
    let end = instant("end", &merged.run.finished_at)?;
    let api = aimate_loadgen::api::Api::new(url)?;
    let prometheus = Prometheus {
        api: &api,
        url,
        selector,
    };
    let samples = super::runtime()?.block_on(async {
        // Right after the run, Prometheus may not have scraped its last seconds yet.
        if !prometheus.wait_for(end, PROMETHEUS_PATIENCE).await {
            eprintln!(
                "warning: Prometheus has not scraped past the run's end after {PROMETHEUS_PATIENCE:?}; reading what it has"
            );
        }
        prometheus.samples(start, end, start).await
    })?;
    let source = aimate_loadgen::ServerSeries::Prometheus {
        url: url.to_owned(),
        selector: selector.to_owned(),
    }
    .source();
    if samples.iter().all(|s| !s.up) {
        anyhow::bail!(
            "Prometheus at {} has no AI Mate series from {} to {} (is it the one that scrapes the target? --prometheus-selector narrows, never widens)",
            aimate_reports::redact::redact_url(url),
            merged.run.started_at,
            merged.run.finished_at
        );
    }
    eprintln!(
        "server series: {} samples of {} instance(s) from Prometheus",
        samples.len(),
        samples
            .iter()
            .map(|s| s.instance.as_str())
            .collect::<std::collections::BTreeSet<_>>()
            .len()
    );
    merged.server = samples;
    merged.server_source = source;
    if let Some(segments) = merged
        .run
        .config
        .get_mut("segments")
        .and_then(|s| s.as_object_mut())
    {
        segments.insert(
            "server_series_from".into(),
            serde_json::Value::String("Prometheus, at merge time".into()),
        );
    }
    Ok(())
}
