//! JUnit XML: one test case per objective and scope, so CI systems show SLO failures as
//! test failures. FAIL is a `<failure>`, INVALID an `<error>` (the run could not judge it).

use std::collections::BTreeMap;
use std::io::{self, Write};

use crate::grade::{Grade, Report, Verdict};
use crate::record::RunRecord;
use crate::summary::{ErrorKind, errors_by_scope, kinds_text, margin, quantity};

/// Escapes text for XML attributes and content.
pub fn escape(text: &str) -> String {
    let mut escaped = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => escaped.push_str("&amp;"),
            '<' => escaped.push_str("&lt;"),
            '>' => escaped.push_str("&gt;"),
            '"' => escaped.push_str("&quot;"),
            '\'' => escaped.push_str("&apos;"),
            // Characters XML 1.0 cannot carry at all.
            c if (c as u32) < 0x20 && !matches!(c, '\t' | '\n' | '\r') => escaped.push(' '),
            c => escaped.push(c),
        }
    }
    escaped
}

/// What a grade measured; for an error objective, the errors of its scope by kind and
/// any finding on their cause (a target's own rate limit).
fn message(grade: &Grade, errors: &ErrorsBy) -> String {
    let mut evidence = grade
        .confidence
        .as_deref()
        .map(|c| format!("; {c}"))
        .unwrap_or_default();
    if grade.objective.starts_with("rate(errors)")
        && let Some(kinds) = errors.scopes.get(&grade.scope)
    {
        evidence.push_str("; errors: ");
        evidence.push_str(&kinds_text(kinds));
        for finding in &errors.findings {
            evidence.push_str("; ");
            evidence.push_str(finding);
        }
    }
    format!(
        "measured {} against {} {} (margin {}, {} samples{evidence})",
        quantity(grade.value, grade.unit),
        grade.objective,
        quantity(Some(grade.threshold), grade.unit),
        margin(grade.margin),
        grade.samples
    )
}

/// The errors of every scope by kind, and the run's findings on their cause.
struct ErrorsBy {
    scopes: BTreeMap<String, Vec<ErrorKind>>,
    findings: Vec<String>,
}

pub fn render(report: &Report, record: &RunRecord, out: &mut impl Write) -> io::Result<()> {
    let mut suites: BTreeMap<&str, Vec<&Grade>> = BTreeMap::new();
    for grade in &report.grades {
        suites.entry(grade.scope.as_str()).or_default().push(grade);
    }
    let regressions = report.baseline.iter().filter(|c| c.failed).count();
    let errors_by_kind = ErrorsBy {
        scopes: errors_by_scope(record),
        findings: crate::summary::rate_limit_findings(record),
    };
    writeln!(out, r#"<?xml version="1.0" encoding="UTF-8"?>"#)?;
    writeln!(
        out,
        r#"<testsuites name="aimate SLOs" tests="{}" failures="{}" errors="{}">"#,
        report.grades.len() + report.baseline.len(),
        report.count(Verdict::Fail) + regressions,
        report.count(Verdict::Invalid)
    )?;
    for (scope, grades) in &suites {
        let failures = grades.iter().filter(|g| g.verdict == Verdict::Fail).count();
        let errors = grades
            .iter()
            .filter(|g| g.verdict == Verdict::Invalid)
            .count();
        writeln!(
            out,
            r#"  <testsuite name="{}" tests="{}" failures="{failures}" errors="{errors}" timestamp="{}">"#,
            escape(scope),
            grades.len(),
            escape(&record.run.started_at)
        )?;
        for grade in grades {
            let open = format!(
                r#"    <testcase classname="{}" name="{}""#,
                escape(scope),
                escape(&grade.objective)
            );
            match grade.verdict {
                Verdict::Pass => writeln!(out, "{open}/>")?,
                Verdict::Fail => {
                    let text = message(grade, &errors_by_kind);
                    writeln!(out, "{open}>")?;
                    writeln!(
                        out,
                        r#"      <failure message="{}" type="SLO">{}</failure>"#,
                        escape(&text),
                        escape(&text)
                    )?;
                    writeln!(out, "    </testcase>")?;
                }
                Verdict::Invalid => {
                    let text = grade
                        .reason
                        .clone()
                        .unwrap_or_else(|| "not gradable".into());
                    writeln!(out, "{open}>")?;
                    writeln!(
                        out,
                        r#"      <error message="{}" type="INVALID">{}</error>"#,
                        escape(&text),
                        escape(&message(grade, &errors_by_kind))
                    )?;
                    writeln!(out, "    </testcase>")?;
                }
            }
        }
        writeln!(out, "  </testsuite>")?;
    }
    if !report.baseline.is_empty() {
        writeln!(
            out,
            r#"  <testsuite name="baseline" tests="{}" failures="{regressions}" errors="0">"#,
            report.baseline.len()
        )?;
        for c in &report.baseline {
            let open = format!(
                r#"    <testcase classname="baseline {}" name="{}""#,
                escape(&c.scope),
                escape(&c.objective)
            );
            if c.failed {
                let text = format!(
                    "{:.2} {} now against {:.2} {} in the baseline: worse by {} ({})",
                    c.current,
                    c.unit,
                    c.baseline,
                    c.unit,
                    c.effect(),
                    c.basis.describe()
                );
                writeln!(out, "{open}>")?;
                writeln!(
                    out,
                    r#"      <failure message="{}" type="REGRESSION">{}</failure>"#,
                    escape(&text),
                    escape(&text)
                )?;
                writeln!(out, "    </testcase>")?;
            } else {
                writeln!(out, "{open}/>")?;
            }
        }
        writeln!(out, "  </testsuite>")?;
    }
    writeln!(out, "</testsuites>")
}

#[cfg(test)]
mod tests {
    use super::escape;

    #[test]
    fn escapes_markup() {
        assert_eq!(
            escape(r#"p(95) < 1s & "x" 'y' >"#),
            "p(95) &lt; 1s &amp; &quot;x&quot; &apos;y&apos; &gt;"
        );
        assert_eq!(escape("a\u{1}b"), "a b");
    }
}
