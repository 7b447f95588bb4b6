//! One self-contained HTML file: verdicts first, then the stage figures and the charts
//! (inline SVG), then the events. No scripts, no external fonts or styles: it opens
//! offline from a CI artifact.

use std::io::{self, Write};

use crate::expr::Metric;
use crate::grade::{Report, Verdict};
use crate::record::RunRecord;
use crate::render::charts;
use crate::render::junit::escape;
use crate::spec::SloSpec;
use crate::summary::{figure, margin, quantity, summaries};

const STYLE: &str = "body{font-family:system-ui,-apple-system,'Segoe UI',sans-serif;margin:2rem auto;max-width:min(1400px,94vw);color:#222}\
h1{font-size:1.6rem}h2{font-size:1.2rem;margin-top:2rem;border-bottom:1px solid #ddd}\
table{border-collapse:collapse;width:100%;font-size:.9rem}th,td{padding:.3rem .5rem;border-bottom:1px solid #eee;text-align:left}\
td.n{text-align:right;font-variant-numeric:tabular-nums;white-space:nowrap}.PASS{color:#137333;font-weight:600}.FAIL{color:#c5221f;font-weight:700}\
.INVALID{color:#b06000;font-weight:600}.badge{display:inline-block;padding:.2rem .7rem;border-radius:.3rem;color:#fff}\
.badge.PASS{background:#137333}.badge.FAIL{background:#c5221f}.badge.INVALID{background:#b06000}\
figure{margin:1rem 0}figure svg{width:100%;height:auto}.note{color:#555;font-size:.85rem}.finding{border-left:4px solid #c0392b;padding:.4rem .8rem;background:#fdf2f0}\
td:last-child{min-width:15rem}tr.scope th{background:#f6f6f6;font-weight:600;padding-top:.6rem}";

fn word(verdict: Verdict) -> &'static str {
    match verdict {
        Verdict::Pass => "PASS",
        Verdict::Fail => "FAIL",
        Verdict::Invalid => "INVALID",
    }
}

fn chart(out: &mut impl Write, svg: Result<String, String>) -> io::Result<()> {
    match svg {
        Ok(svg) => writeln!(out, "<figure>{svg}</figure>"),
        Err(error) => writeln!(
            out,
            "<p class=\"note\">chart unavailable: {}</p>",
            escape(&error)
        ),
    }
}

pub fn render(
    report: &Report,
    record: &RunRecord,
    spec: &SloSpec,
    out: &mut impl Write,
) -> io::Result<()> {
    let verdict = word(report.verdict);
    writeln!(
        out,
        "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\"/>"
    )?;
    writeln!(
        out,
        "<title>aimate SLO report: {verdict}</title><style>{STYLE}</style></head><body>"
    )?;
    writeln!(
        out,
        "<h1>aimate SLO report <span class=\"badge {verdict}\">{verdict}</span></h1>"
    )?;
    writeln!(
        out,
        "<p>Target <code>{}</code>, {} → {}. {} passed, {} failed, {} invalid.</p>",
        escape(&record.run.target),
        escape(&record.run.started_at),
        escape(&record.run.finished_at),
        report.count(Verdict::Pass),
        report.count(Verdict::Fail),
        report.count(Verdict::Invalid)
    )?;
    if let Some(abort) = &record.aborted {
        writeln!(
            out,
            "<p class=\"FAIL\">Aborted early: {}</p>",
            escape(&abort.reason)
        )?;
    }
    if let Some(writes) = crate::summary::writes_sentence(record) {
        let class = if record.writes.as_ref().is_some_and(|w| w.missing > 0) {
            "FAIL"
        } else {
            "PASS"
        };
        writeln!(out, "<p class=\"{class}\">{}</p>", escape(&writes))?;
    }

    writeln!(
        out,
        "<h2>Objectives</h2><table><tr><th>Objective</th><th>Verdict</th><th>Value</th><th>Threshold</th><th>Margin</th><th>Samples</th><th>Note</th></tr>"
    )?;
    // Rows grouped under their scope (a phase's name is long): one line each, and the
    // columns keep their width for the figures.
    let mut scope = None;
    for g in &report.grades {
        if scope != Some(&g.scope) {
            writeln!(
                out,
                "<tr class=\"scope\"><th colspan=\"7\">{}</th></tr>",
                escape(&g.scope)
            )?;
            scope = Some(&g.scope);
        }
        writeln!(
            out,
            "<tr><td><code>{}</code></td><td class=\"{v}\">{v}</td><td class=\"n\">{}</td><td class=\"n\">{}</td><td class=\"n\">{}</td><td class=\"n\">{}</td><td>{}</td></tr>",
            escape(&g.objective),
            quantity(g.value, g.unit),
            quantity(Some(g.threshold), g.unit),
            margin(g.margin),
            g.samples,
            escape(g.note()),
            v = word(g.verdict)
        )?;
    }
    writeln!(out, "</table>")?;

    if !report.baseline.is_empty() {
        writeln!(
            out,
            "<h2>Against the baseline</h2><p>Effect: change in the bad direction, with its 95 % interval. A regression fails the run only when the whole interval is beyond the allowed regression.</p><table><tr><th>Scope</th><th>Objective</th><th>Baseline</th><th>Now</th><th>Worse by</th><th>Judged by</th><th></th></tr>"
        )?;
        for c in &report.baseline {
            writeln!(
                out,
                "<tr><td>{}</td><td><code>{}</code></td><td class=\"n\">{:.2} {}</td><td class=\"n\">{:.2} {}</td><td class=\"n\">{}</td><td>{}</td><td class=\"{}\">{}</td></tr>",
                escape(&c.scope),
                escape(&c.objective),
                c.baseline,
                c.unit,
                c.current,
                c.unit,
                escape(&c.effect()),
                escape(&c.basis.describe()),
                if c.failed { "FAIL" } else { "PASS" },
                escape(c.judgement())
            )?;
        }
        writeln!(out, "</table>")?;
    }
    writeln!(
        out,
        "<h2>Stages</h2><table><tr><th>Stage</th><th>Target req/s</th><th>Achieved req/s</th><th>Requests</th><th>Errors</th><th>P50 ms</th><th>P95 ms</th><th>P99 ms</th><th>Max ms</th><th>Service P95 ms</th><th>Valid</th></tr>"
    )?;
    for s in summaries(record) {
        let valid = if s.valid {
            "yes".to_owned()
        } else {
            format!("no: {}", escape(&s.reasons.join("; ")))
        };
        writeln!(
            out,
            "<tr><td>{}</td><td class=\"n\">{:.0}</td><td class=\"n\">{:.1}</td><td class=\"n\">{}</td><td class=\"n\">{}</td><td class=\"n\">{}</td><td class=\"n\">{}</td><td class=\"n\">{}</td><td class=\"n\">{}</td><td class=\"n\">{}</td><td>{valid}</td></tr>",
            escape(&s.name),
            s.target_rps,
            s.achieved_rps,
            s.requests,
            escape(&s.errors_text()),
            figure(s.p50_ms),
            figure(s.p95_ms),
            figure(s.p99_ms),
            figure(s.max_ms),
            figure(s.service_p95_ms)
        )?;
    }
    writeln!(out, "</table>")?;
    for finding in crate::summary::rate_limit_findings(record) {
        writeln!(
            out,
            "<p class=\"finding\"><strong>The target's own rate limit:</strong> {}</p>",
            code_spans(&escape(&finding))
        )?;
    }
    let phases = crate::summary::phase_summaries(record);
    if !phases.is_empty() {
        writeln!(
            out,
            "<h2>Phases</h2><table><tr><th>Phase</th><th>Seconds</th><th>Requests</th><th>Errors</th><th>P95 ms</th><th>Max ms</th></tr>"
        )?;
        for p in phases {
            writeln!(
                out,
                "<tr><td>{}</td><td class=\"n\">{}</td><td class=\"n\">{}</td><td class=\"n\">{}</td><td class=\"n\">{}</td><td class=\"n\">{}</td></tr>",
                escape(&p.scope),
                p.seconds,
                p.requests,
                escape(&p.errors_text()),
                figure(p.p95_ms),
                figure(p.max_ms)
            )?;
        }
        writeln!(out, "</table>")?;
    }
    writeln!(
        out,
        "<p class=\"note\">Latency counts from each request's intended send time (coordinated omission corrected); service time from when it was actually sent. Shaded spans: stages (grey) and faults (red); marks: alerts firing (orange) and resolved (green).</p>"
    )?;

    writeln!(out, "<h2>Charts</h2>")?;
    let thresholds: Vec<(String, f64)> = spec
        .stages
        .iter()
        .filter_map(|stage| {
            let p95 = stage
                .objectives
                .iter()
                .find(|o| o.metric == Metric::Percentile(95.0))?;
            Some((stage.name.clone(), p95.threshold / 1000.0))
        })
        .collect();
    chart(out, charts::latency_over_time(record, &thresholds))?;
    chart(out, charts::rate_over_time(record))?;
    chart(out, charts::errors_over_time(record))?;
    chart(out, charts::distribution(record))?;
    chart(
        out,
        charts::server_over_time(record, spec.memory_limit_bytes),
    )?;
    if let Some(svg) = charts::by_instance(record, "Server: cache hit ratio by instance (%)", |p| {
        p.cache_hit_ratio().map(|r| 100.0 * r)
    }) {
        chart(out, svg)?;
    }
    if let Some(limit) = spec.memory_limit_bytes
        && let Some(svg) =
            charts::by_instance(record, "Server: memory by instance (% of limit)", |p| {
                p.memory.map(|rss| 100.0 * rss / limit as f64)
            })
    {
        chart(out, svg)?;
    }

    writeln!(
        out,
        "<h2>Events</h2><table><tr><th>At (s)</th><th>Until (s)</th><th>Kind</th><th>Detail</th></tr>"
    )?;
    for event in &record.events {
        writeln!(
            out,
            "<tr><td class=\"n\">{:.1}</td><td class=\"n\">{}</td><td>{}</td><td>{}</td></tr>",
            event.t_ms as f64 / 1000.0,
            event
                .end_ms
                .map_or("-".to_owned(), |e| format!("{:.1}", e as f64 / 1000.0)),
            event.kind,
            escape(&event.detail)
        )?;
    }
    writeln!(out, "</table>")?;
    let generators: Vec<String> = record
        .run
        .generators
        .iter()
        .map(|g| {
            format!(
                "{} ({:.1} CPU s, {:.0} MB peak)",
                escape(&g.host),
                g.cpu_seconds,
                g.peak_rss_bytes as f64 / 1e6
            )
        })
        .collect();
    writeln!(
        out,
        "<p class=\"note\">Load generators: {}.</p></body></html>",
        generators.join(", ")
    )
}

/// Markdown's `code` spans of an escaped text as `<code>` elements (a finding is written
/// once for every format); an unpaired backtick stays as it is.
fn code_spans(escaped: &str) -> String {
    let parts: Vec<&str> = escaped.split('`').collect();
    if parts.len().is_multiple_of(2) {
        return escaped.to_owned();
    }
    let mut out = String::with_capacity(escaped.len() + 16);
    for (i, part) in parts.iter().enumerate() {
        if i % 2 == 1 {
            out.push_str("<code>");
            out.push_str(part);
            out.push_str("</code>");
        } else {
            out.push_str(part);
        }
    }
    out
}

#[cfg(test)]
mod code_span_tests {
    use super::code_spans;

    #[test]
    fn backtick_pairs_become_code_and_a_stray_one_stays() {
        assert_eq!(
            code_spans("use `--tenants auto` now"),
            "use <code>--tenants auto</code> now"
        );
        assert_eq!(code_spans("a ` b"), "a ` b");
    }
}
