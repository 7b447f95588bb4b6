//! A CI job summary (`$GITHUB_STEP_SUMMARY`, a merge-request note): what a reviewer
//! needs first, and nothing that points elsewhere. The verdict and exit code, then what
//! failed or could not be graded, then the regressions against the baseline, the
//! stages in one table, and every grade folded away. No links: a job summary outlives
//! the artifacts and servers a link would point at.

use std::io::{self, Write};

use crate::grade::{Grade, Report, Verdict};
use crate::record::RunRecord;
use crate::regression::Comparison;
use crate::render::markdown::{cell, comparison_cells, verdict_word};
use crate::summary::{figure, margin, quantity, summaries};

/// One part of a CI summary, headed `title` (e.g. `drill --quick: ladder`).
pub fn render(
    title: &str,
    report: &Report,
    record: &RunRecord,
    out: &mut impl Write,
) -> io::Result<()> {
    let exit = report.exit_code();
    writeln!(
        out,
        "### {}: {} (exit {exit})\n",
        cell(title),
        verdict_word(report.verdict)
    )?;
    writeln!(
        out,
        "{} passed, {} failed, {} invalid{}.",
        report.count(Verdict::Pass),
        report.count(Verdict::Fail),
        report.count(Verdict::Invalid),
        match report.baseline.iter().filter(|c| c.failed).count() {
            0 => String::new(),
            n => format!("; {n} regressed past the allowed regression"),
        }
    )?;
    if let Some(abort) = &record.aborted {
        writeln!(out, "\n**Aborted early:** {}", cell(&abort.reason))?;
    }

    let mut attention: Vec<&Grade> = report
        .grades
        .iter()
        .filter(|g| g.verdict != Verdict::Pass)
        .collect();
    // Failures first, then what could not be graded.
    attention.sort_by_key(|g| g.verdict != Verdict::Fail);
    if !attention.is_empty() {
        writeln!(out, "\n| | Scope | Objective | Value | Threshold | Note |")?;
        writeln!(out, "|---|---|---|---:|---:|---|")?;
        for g in attention {
            writeln!(
                out,
                "| {} | {} | `{}` | {} | {} | {} |",
                verdict_word(g.verdict),
                cell(&g.scope),
                cell(&g.objective),
                quantity(g.value, g.unit),
                quantity(Some(g.threshold), g.unit),
                cell(g.note())
            )?;
        }
    }

    regressions(report, out)?;

    for finding in crate::summary::rate_limit_findings(record) {
        writeln!(out, "\n**The target's own rate limit:** {}", cell(&finding))?;
    }

    writeln!(
        out,
        "\n| Stage | Target req/s | Achieved req/s | P95 ms | P99 ms | Max ms | Errors | Valid |"
    )?;
    writeln!(out, "|---|---:|---:|---:|---:|---:|---:|---|")?;
    for s in summaries(record) {
        writeln!(
            out,
            "| {} | {:.0} | {:.1} | {} | {} | {} | {} of {} | {} |",
            cell(&s.name),
            s.target_rps,
            s.achieved_rps,
            figure(s.p95_ms),
            figure(s.p99_ms),
            figure(s.max_ms),
            cell(&s.errors_text()),
            crate::summary::thousands(s.requests),
            if s.valid {
                "yes".to_owned()
            } else {
                format!("no: {}", cell(&s.reasons.join("; ")))
            }
        )?;
    }
    let phases = crate::summary::phase_summaries(record);
    if !phases.is_empty() {
        writeln!(out, "\n| Phase | Errors | P95 ms | Max ms |")?;
        writeln!(out, "|---|---:|---:|---:|")?;
        for p in phases {
            writeln!(
                out,
                "| {} | {} of {} | {} | {} |",
                cell(&p.scope),
                cell(&p.errors_text()),
                crate::summary::thousands(p.requests),
                figure(p.p95_ms),
                figure(p.max_ms)
            )?;
        }
    }

    writeln!(
        out,
        "\n<details><summary>All {} grades</summary>\n",
        report.grades.len()
    )?;
    writeln!(out, "| Verdict | Scope | Objective | Value | Margin |")?;
    writeln!(out, "|---|---|---|---:|---:|")?;
    for g in &report.grades {
        writeln!(
            out,
            "| {} | {} | `{}` | {} | {} |",
            verdict_word(g.verdict),
            cell(&g.scope),
            cell(&g.objective),
            quantity(g.value, g.unit),
            margin(g.margin)
        )?;
    }
    writeln!(out, "\n</details>\n")
}

/// The figures that got worse (failed first), and how many did not.
fn regressions(report: &Report, out: &mut impl Write) -> io::Result<()> {
    if report.baseline.is_empty() {
        return Ok(());
    }
    let mut worse: Vec<&Comparison> = report
        .baseline
        .iter()
        .filter(|c| c.failed || c.significant)
        .collect();
    worse.sort_by_key(|c| !c.failed);
    let rest = report.baseline.len() - worse.len();
    writeln!(
        out,
        "\n**Against the baseline:** {} significantly worse, {rest} without a significant \
         worsening (95 % intervals; a regression fails only beyond the allowed regression).",
        worse.len()
    )?;
    if worse.is_empty() {
        return Ok(());
    }
    writeln!(
        out,
        "\n| | Scope | Objective | Baseline | Now | Worse by | Judged by |"
    )?;
    writeln!(out, "|---|---|---|---:|---:|---:|---|")?;
    for c in worse {
        writeln!(
            out,
            "| {} | {} |",
            if c.failed { "**REGRESSION**" } else { "worse" },
            comparison_cells(c)
        )?;
    }
    Ok(())
}
