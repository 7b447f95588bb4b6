//! A Markdown summary for a CI job summary or a pull-request comment.

use std::io::{self, Write};

use crate::grade::{Report, Verdict};
use crate::record::{EventKind, RunRecord};
use crate::summary::{figure, margin, quantity, summaries};

pub(crate) fn verdict_word(verdict: Verdict) -> &'static str {
    match verdict {
        Verdict::Pass => "PASS",
        Verdict::Fail => "**FAIL**",
        Verdict::Invalid => "*INVALID*",
    }
}

/// The cells of a baseline comparison: scope, objective, baseline, now, worse by (with
/// its interval) and how it was judged, `|`-separated without the outer bars.
pub(crate) fn comparison_cells(c: &crate::regression::Comparison) -> String {
    format!(
        "{} | `{}` | {:.2} {} | {:.2} {} | {} | {}",
        cell(&c.scope),
        cell(&c.objective),
        c.baseline,
        c.unit,
        c.current,
        c.unit,
        c.effect(),
        c.basis.describe()
    )
}

/// Pipes and newlines would break a table cell.
pub(crate) fn cell(text: &str) -> String {
    text.replace('|', "\\|").replace('\n', " ")
}

pub fn render(report: &Report, record: &RunRecord, out: &mut impl Write) -> io::Result<()> {
    writeln!(
        out,
        "## aimate SLO report: {}",
        verdict_word(report.verdict)
    )?;
    writeln!(out)?;
    writeln!(
        out,
        "Target `{}`, {} → {}. {} passed, {} failed, {} invalid.",
        record.run.target,
        record.run.started_at,
        record.run.finished_at,
        report.count(Verdict::Pass),
        report.count(Verdict::Fail),
        report.count(Verdict::Invalid)
    )?;
    if let Some(abort) = &record.aborted {
        writeln!(out, "\n**Aborted early:** {}", cell(&abort.reason))?;
    }
    if let Some(writes) = crate::summary::writes_sentence(record) {
        writeln!(out, "\n{writes}")?;
    }
    writeln!(out, "\n### Stages\n")?;
    writeln!(
        out,
        "| Stage | Target req/s | Achieved req/s | Requests | Errors | P50 ms | P95 ms | P99 ms | Max ms | Valid |"
    )?;
    writeln!(out, "|---|---:|---:|---:|---:|---:|---:|---:|---:|---|")?;
    for s in summaries(record) {
        let valid = if s.valid {
            "yes".to_owned()
        } else {
            format!("no: {}", cell(&s.reasons.join("; ")))
        };
        writeln!(
            out,
            "| {} | {:.0} | {:.1} | {} | {} | {} | {} | {} | {} | {valid} |",
            cell(&s.name),
            s.target_rps,
            s.achieved_rps,
            s.requests,
            cell(&s.errors_text()),
            figure(s.p50_ms),
            figure(s.p95_ms),
            figure(s.p99_ms),
            figure(s.max_ms)
        )?;
    }
    for finding in crate::summary::rate_limit_findings(record) {
        writeln!(out, "\n**The target's own rate limit:** {}", cell(&finding))?;
    }
    let phases = crate::summary::phase_summaries(record);
    if !phases.is_empty() {
        writeln!(out, "\n### Phases\n")?;
        writeln!(
            out,
            "| Phase | Seconds | Requests | Errors | P95 ms | Max ms |"
        )?;
        writeln!(out, "|---|---:|---:|---:|---:|---:|")?;
        for p in phases {
            writeln!(
                out,
                "| {} | {} | {} | {} | {} | {} |",
                cell(&p.scope),
                p.seconds,
                p.requests,
                cell(&p.errors_text()),
                figure(p.p95_ms),
                figure(p.max_ms)
            )?;
        }
    }
    writeln!(out, "\n### Objectives\n")?;
    writeln!(
        out,
        "| Scope | Objective | Verdict | Value | Threshold | Margin | Samples | Note |"
    )?;
    writeln!(out, "|---|---|---|---:|---:|---:|---:|---|")?;
    for g in &report.grades {
        writeln!(
            out,
            "| {} | `{}` | {} | {} | {} | {} | {} | {} |",
            cell(&g.scope),
            cell(&g.objective),
            verdict_word(g.verdict),
            quantity(g.value, g.unit),
            quantity(Some(g.threshold), g.unit),
            margin(g.margin),
            g.samples,
            cell(g.note())
        )?;
    }
    if !report.baseline.is_empty() {
        writeln!(out, "\n### Against the baseline\n")?;
        writeln!(
            out,
            "Worse by: the change in the bad direction with its 95 % interval; a regression fails \
             the run only when the whole interval is beyond the allowed regression.\n"
        )?;
        writeln!(
            out,
            "| Scope | Objective | Baseline | Now | Worse by | Judged by | |"
        )?;
        writeln!(out, "|---|---|---:|---:|---:|---|---|")?;
        for c in &report.baseline {
            writeln!(
                out,
                "| {} | {} |",
                comparison_cells(c),
                if c.failed {
                    "**REGRESSION**"
                } else {
                    c.judgement()
                }
            )?;
        }
    }
    // What a chaos drill did, on the run's clock (stage starts are in the table above).
    let chaos: Vec<_> = record
        .events
        .iter()
        .filter(|e| e.kind != EventKind::Stage)
        .collect();
    if !chaos.is_empty() {
        writeln!(out, "\n### Events\n")?;
        for event in chaos {
            let until = event
                .end_ms
                .map(|end| format!("–{:.1}", end as f64 / 1000.0))
                .unwrap_or_default();
            writeln!(
                out,
                "- {:.1}{until} s **{}**: {}",
                event.t_ms as f64 / 1000.0,
                event.kind,
                event.detail.replace('\n', " ")
            )?;
        }
    }
    Ok(())
}
