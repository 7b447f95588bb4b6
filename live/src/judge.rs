//! The objectives as the page shows them: each objective's line on the latency chart, and
//! each grade as a row that says how sure the verdict is so far.
//!
//! A verdict so far is the grader's own verdict on the seconds measured until now (the
//! same `grade` the report uses, on a record that ends now): a share of events decided at
//! 95 % confidence reads "holds at 95 % so far" or "broken", too few events "undecided".

use aimate_reports::expr::{Metric, Objective};
use aimate_reports::grade::{Grade, Report, Verdict};
use aimate_reports::spec::SloSpec;
use aimate_reports::summary::quantity;

use crate::frames::{Line, VerdictRow};

/// What a part is graded against.
#[derive(Debug, Clone)]
pub struct Judge {
    spec: SloSpec,
    /// A chaos experiment: its phases' objectives are drawn too.
    phases: bool,
}

impl Judge {
    pub fn new(spec: SloSpec, phases: bool) -> Self {
        Self { spec, phases }
    }

    pub fn spec(&self) -> &SloSpec {
        &self.spec
    }

    /// The latency objectives that bound a stage of `target_rps`: its own, the run's,
    /// and (in a chaos experiment) every phase's.
    pub fn lines(&self, target_rps: f64) -> Vec<Line> {
        let stage = self
            .spec
            .stages
            .iter()
            .filter(|s| (s.rate_per_second - target_rps).abs() < 1e-6)
            .flat_map(|s| s.objectives.iter().map(|o| (o, "stage")));
        let phases: &[Objective] = if self.phases { &self.spec.phase } else { &[] };
        let others = [(&self.spec.run[..], "run"), (phases, "each phase")]
            .into_iter()
            .flat_map(|(objectives, scope)| objectives.iter().map(move |o| (o, scope)));
        let mut lines: Vec<Line> = Vec::new();
        for line in stage
            .chain(others)
            .filter_map(|(objective, scope)| line(objective, scope))
        {
            // The same bound twice (the stage's and the run's p(95) < 500ms) is one line.
            if !lines
                .iter()
                .any(|l| l.percentile == line.percentile && l.threshold_us == line.threshold_us)
            {
                lines.push(line);
            }
        }
        lines
    }

    /// The grades of a record measured so far, for the page.
    pub fn rows_so_far(report: &Report) -> Vec<VerdictRow> {
        report.grades.iter().map(|g| row(g, so_far(g))).collect()
    }

    /// The report's grades as they are final.
    pub fn rows_final(report: &Report) -> Vec<VerdictRow> {
        report
            .grades
            .iter()
            .map(|g| row(g, verdict_name(g.verdict).to_owned()))
            .collect()
    }
}

fn line(objective: &Objective, scope: &str) -> Option<Line> {
    let Metric::Percentile(percentile) = objective.metric else {
        return None;
    };
    Some(Line {
        label: format!("{} ({scope})", objective.text),
        percentile,
        threshold_us: objective.threshold,
    })
}

fn verdict_name(verdict: Verdict) -> &'static str {
    match verdict {
        Verdict::Pass => "PASS",
        Verdict::Fail => "FAIL",
        Verdict::Invalid => "INVALID",
    }
}

/// How sure the verdict is while the run goes on.
/// Shares of events (percentiles, error rates) are decided at 95 % confidence; other
/// figures (cache hits, memory) are where they stand so far; lost writes are counted
/// when the run reads its writes back, at the end.
fn so_far(grade: &Grade) -> String {
    let decided = grade.confidence.as_deref().unwrap_or("");
    let status = match grade.verdict {
        Verdict::Fail if decided.starts_with("broken at 95 %") => "broken",
        Verdict::Fail => "failing so far",
        Verdict::Pass if decided.starts_with("holds at 95 %") => "holds at 95 % so far",
        Verdict::Pass => "holds so far",
        Verdict::Invalid if grade.objective.contains("lost_writes") => "checked after the run",
        Verdict::Invalid => "undecided",
    };
    status.to_owned()
}

fn row(grade: &Grade, status: String) -> VerdictRow {
    VerdictRow {
        scope: grade.scope.clone(),
        objective: grade.objective.clone(),
        verdict: grade.verdict,
        status,
        value: quantity(grade.value, grade.unit),
        threshold: quantity(Some(grade.threshold), grade.unit),
        note: grade.note().to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec() -> SloSpec {
        SloSpec::parse(
            "[[stage]]\nrate = \"100\"\nobjectives = [\"p(95) < 100ms\", \"p(95) < 500ms\"]\n\
             [run]\nobjectives = [\"p(95) < 500ms\", \"p(99) < 500ms\", \"rate(errors) < 1%\"]\n\
             [phase]\nobjectives = [\"p(95) < 1s\"]\n",
            "slo.toml",
        )
        .unwrap_or_else(|e| panic!("{e}"))
    }

    #[test]
    fn a_stage_is_drawn_against_its_own_and_the_runs_latency_lines_once_each() {
        let lines = Judge::new(spec(), true).lines(100.0);
        let drawn: Vec<(f64, f64)> = lines
            .iter()
            .map(|l| (l.percentile, l.threshold_us))
            .collect();
        // The stage's p(95) < 500ms repeats the run's: one line. No line for errors.
        assert_eq!(
            drawn,
            vec![
                (95.0, 100_000.0),
                (95.0, 500_000.0),
                (99.0, 500_000.0),
                (95.0, 1_000_000.0)
            ]
        );
        assert!(lines[0].label.ends_with("(stage)"), "{}", lines[0].label);
        assert!(
            lines[3].label.ends_with("(each phase)"),
            "{}",
            lines[3].label
        );
        // A stage the spec does not name gets only the run's (and the phases') lines.
        assert_eq!(Judge::new(spec(), true).lines(1000.0).len(), 3);
        // A load run has no phases.
        assert_eq!(Judge::new(spec(), false).lines(100.0).len(), 3);
    }

    fn grade(verdict: Verdict, confidence: Option<&str>) -> Grade {
        Grade {
            scope: "stage 100".into(),
            objective: "p(95) < 100ms".into(),
            verdict,
            value: Some(12.3),
            threshold: 100.0,
            unit: "ms",
            margin: None,
            samples: 10,
            reason: None,
            confidence: confidence.map(str::to_owned),
            detail: None,
        }
    }

    #[test]
    fn a_verdict_so_far_says_how_sure_it_is() {
        let holds = grade(Verdict::Pass, Some("holds at 95 %: 0 of 600 beyond"));
        assert_eq!(so_far(&holds), "holds at 95 % so far");
        assert_eq!(so_far(&grade(Verdict::Pass, None)), "holds so far");
        assert_eq!(so_far(&grade(Verdict::Fail, None)), "failing so far");
        let broken = grade(Verdict::Fail, Some("broken at 95 %: 40 of 100 beyond"));
        assert_eq!(so_far(&broken), "broken");
        assert_eq!(
            so_far(&grade(Verdict::Invalid, Some("undecided at 95 %"))),
            "undecided"
        );
        let final_row = row(&holds, "PASS".into());
        assert_eq!(
            (final_row.value.as_str(), final_row.threshold.as_str()),
            ("12.30 ms", "100.00 ms")
        );
    }
}
