//! `SloSpec`: what a run must meet, read from `slo.toml`. A malformed file is a
//! [`SpecError`] that names the line and what is wrong.

use std::ops::Range;

use serde::Deserialize;
use toml::Spanned;

use crate::expr::{self, Objective};

#[derive(Debug, Clone, PartialEq)]
pub struct StageSpec {
    /// As written (`"1k"`).
    pub name: String,
    pub rate_per_second: f64,
    pub objectives: Vec<Objective>,
}

#[derive(Debug, Clone, PartialEq, Default)]
pub struct SloSpec {
    /// Per load stage, matched to a run's stage by its target rate.
    pub stages: Vec<StageSpec>,
    /// For the whole run.
    pub run: Vec<Objective>,
    /// For every route on its own: one slow endpoint cannot hide behind a fast average.
    pub route: Vec<Objective>,
    /// For each phase around a fault (baseline, fault, recovery) of a chaos drill.
    pub phase: Vec<Objective>,
    /// For a run against a fleet (its metrics scraped from two or more instances): the
    /// guide's Stage 2, 2–3 instances behind a balancer.
    pub fleet: Vec<Objective>,
    /// What `ratio(memory)` divides by.
    pub memory_limit_bytes: Option<u64>,
}

/// `FILE:LINE: message`, or `FILE: message` when no line is at fault (unreadable).
#[derive(Debug, thiserror::Error, PartialEq)]
#[error("{file}{}: {message}", if *line == 0 { String::new() } else { format!(":{line}") })]
pub struct SpecError {
    pub file: String,
    pub line: usize,
    pub message: String,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawSpec {
    memory_limit: Option<Spanned<String>>,
    run: Option<RawScope>,
    route: Option<RawScope>,
    phase: Option<RawScope>,
    fleet: Option<RawScope>,
    #[serde(default)]
    stage: Vec<RawStage>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawScope {
    objectives: Vec<Spanned<String>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawStage {
    rate: Spanned<String>,
    objectives: Vec<Spanned<String>>,
}

fn line_of(text: &str, span: Option<Range<usize>>) -> usize {
    span.map_or(1, |span| {
        text[..span.start.min(text.len())].matches('\n').count() + 1
    })
}

/// Parses a size such as `512MiB`, `1GiB`, `2GB` or plain bytes.
fn parse_bytes(text: &str) -> Result<u64, String> {
    let text = text.trim();
    let units: [(&str, f64); 7] = [
        ("GiB", 1024.0 * 1024.0 * 1024.0),
        ("MiB", 1024.0 * 1024.0),
        ("KiB", 1024.0),
        ("GB", 1e9),
        ("MB", 1e6),
        ("kB", 1e3),
        ("B", 1.0),
    ];
    let (number, scale) = units
        .iter()
        .find_map(|(unit, scale)| text.strip_suffix(unit).map(|n| (n, *scale)))
        .unwrap_or((text, 1.0));
    let value: f64 = number
        .trim()
        .parse()
        .map_err(|_| format!("`{text}` is not a size such as 1GiB"))?;
    if !value.is_finite() || value <= 0.0 {
        return Err(format!("`{text}` is not a positive size"));
    }
    Ok((value * scale) as u64)
}

/// Parses a stage rate such as `100`, `1k`, `2.5k`.
pub fn parse_rate(text: &str) -> Result<f64, String> {
    let text = text.trim();
    let (number, scale) = text
        .strip_suffix(['k', 'K'])
        .map_or((text, 1.0), |n| (n, 1000.0));
    let value: f64 = number
        .parse()
        .map_err(|_| format!("`{text}` is not a rate such as 100 or 1k"))?;
    if !value.is_finite() || value <= 0.0 {
        return Err(format!("`{text}` is not a positive rate"));
    }
    Ok(value * scale)
}

impl SloSpec {
    /// Parses `text`; `file` names it in errors.
    pub fn parse(text: &str, file: &str) -> Result<Self, SpecError> {
        let error = |span: Option<Range<usize>>, message: String| SpecError {
            file: file.to_owned(),
            line: line_of(text, span),
            message,
        };
        let raw: RawSpec =
            toml::from_str(text).map_err(|e| error(e.span(), e.message().to_owned()))?;
        let objectives = |list: &[Spanned<String>]| -> Result<Vec<Objective>, SpecError> {
            list.iter()
                .map(|o| expr::parse(o.get_ref()).map_err(|m| error(Some(o.span()), m)))
                .collect()
        };
        let mut stages = Vec::new();
        for stage in &raw.stage {
            stages.push(StageSpec {
                name: stage.rate.get_ref().trim().to_owned(),
                rate_per_second: parse_rate(stage.rate.get_ref())
                    .map_err(|m| error(Some(stage.rate.span()), m))?,
                objectives: objectives(&stage.objectives)?,
            });
        }
        let memory_limit_bytes = match &raw.memory_limit {
            Some(limit) => {
                Some(parse_bytes(limit.get_ref()).map_err(|m| error(Some(limit.span()), m))?)
            }
            None => None,
        };
        let spec = Self {
            stages,
            run: raw
                .run
                .as_ref()
                .map(|s| objectives(&s.objectives))
                .transpose()?
                .unwrap_or_default(),
            route: raw
                .route
                .as_ref()
                .map(|s| objectives(&s.objectives))
                .transpose()?
                .unwrap_or_default(),
            phase: raw
                .phase
                .as_ref()
                .map(|s| objectives(&s.objectives))
                .transpose()?
                .unwrap_or_default(),
            fleet: raw
                .fleet
                .as_ref()
                .map(|s| objectives(&s.objectives))
                .transpose()?
                .unwrap_or_default(),
            memory_limit_bytes,
        };
        let uses_memory = spec
            .run
            .iter()
            .chain(&spec.route)
            .chain(&spec.phase)
            .chain(&spec.fleet)
            .any(|o| o.metric == expr::Metric::MemoryRatio);
        if uses_memory && spec.memory_limit_bytes.is_none() {
            return Err(error(
                None,
                "`ratio(memory)` needs `memory_limit = \"…\"` at the top".into(),
            ));
        }
        Ok(spec)
    }

    pub fn load(path: &std::path::Path) -> Result<Self, SpecError> {
        let file = path.display().to_string();
        let text = std::fs::read_to_string(path).map_err(|e| SpecError {
            file: file.clone(),
            line: 0,
            message: format!("cannot read: {e}"),
        })?;
        Self::parse(&text, &file)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const GOOD: &str = r#"
memory_limit = "1GiB"

[[stage]]
rate = "1k"
objectives = ["p(95) < 500ms"]

[run]
objectives = ["rate(errors) < 1%", "ratio(memory) < 85%"]

[route]
objectives = ["p(95) < 500ms"]
"#;

    #[test]
    fn parses_a_spec() {
        let spec = SloSpec::parse(GOOD, "slo.toml").unwrap();
        assert_eq!(spec.stages[0].rate_per_second, 1000.0);
        assert_eq!(spec.run.len(), 2);
        assert_eq!(spec.memory_limit_bytes, Some(1 << 30));
    }

    #[test]
    fn errors_name_the_line() {
        let bad_objective =
            GOOD.replace("\"p(95) < 500ms\"]\n\n[run]", "\"p(95) < soon\"]\n\n[run]");
        let error = SloSpec::parse(&bad_objective, "slo.toml").unwrap_err();
        assert_eq!(error.line, 6, "{error}");
        assert!(error.to_string().starts_with("slo.toml:6: "), "{error}");
        assert!(error.message.contains("soon"));

        let bad_key = GOOD.replace("[route]", "[route]\ncolour = 3");
        let error = SloSpec::parse(&bad_key, "slo.toml").unwrap_err();
        assert_eq!(error.line, 12, "{error}");
        assert!(error.message.contains("colour"), "{error}");

        let bad_syntax = "[[stage]\nrate = 1";
        assert_eq!(SloSpec::parse(bad_syntax, "s").unwrap_err().line, 1);
        let bad_rate = GOOD.replace("rate = \"1k\"", "rate = \"fast\"");
        assert_eq!(SloSpec::parse(&bad_rate, "s").unwrap_err().line, 5);
        let no_limit = GOOD.replace("memory_limit = \"1GiB\"", "");
        assert!(
            SloSpec::parse(&no_limit, "s")
                .unwrap_err()
                .message
                .contains("memory_limit")
        );
    }

    #[test]
    fn the_repository_slo_toml_parses() {
        let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../slo.toml");
        let spec = SloSpec::load(&path).unwrap();
        let rates: Vec<f64> = spec.stages.iter().map(|s| s.rate_per_second).collect();
        assert_eq!(rates, vec![100.0, 1000.0, 10_000.0]);
        assert!(!spec.run.is_empty() && !spec.route.is_empty() && !spec.phase.is_empty());
        assert_eq!(spec.fleet.len(), 3, "the guide's Stage 2 objectives");
    }
}
