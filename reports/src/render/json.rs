//! Machine-readable verdicts: overall verdict and exit code, stage figures, and every
//! grade with value, threshold, margin and samples.

use std::io::{self, Write};

use serde::Serialize;

use crate::grade::{Grade, Report, Verdict};
use crate::record::RunRecord;
use crate::regression::Comparison;
use crate::summary::{PhaseSummary, StageSummary, phase_summaries, summaries};

#[derive(Serialize)]
struct JsonReport<'a> {
    schema_version: u32,
    verdict: Verdict,
    exit_code: u8,
    target: &'a str,
    started_at: &'a str,
    finished_at: &'a str,
    aborted: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    writes: Option<&'a crate::record::WriteCheck>,
    stages: Vec<StageSummary>,
    /// What went wrong that the grades alone do not say (a target's own rate limit).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    findings: Vec<String>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    phases: Vec<PhaseSummary>,
    grades: &'a [Grade],
    #[serde(skip_serializing_if = "<[Comparison]>::is_empty")]
    baseline: &'a [Comparison],
}

pub fn render(report: &Report, record: &RunRecord, out: &mut impl Write) -> io::Result<()> {
    let json = JsonReport {
        schema_version: 1,
        verdict: report.verdict,
        exit_code: report.exit_code(),
        target: &record.run.target,
        started_at: &record.run.started_at,
        finished_at: &record.run.finished_at,
        aborted: record.aborted.as_ref().map(|a| a.reason.as_str()),
        writes: record.writes.as_ref(),
        stages: summaries(record),
        findings: crate::summary::rate_limit_findings(record),
        phases: phase_summaries(record),
        grades: &report.grades,
        baseline: &report.baseline,
    };
    serde_json::to_writer_pretty(&mut *out, &json).map_err(io::Error::other)?;
    writeln!(out)
}
