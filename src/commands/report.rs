//! `aimate report RECORD`: grade a RunRecord and write every report format;
//! `aimate report merge` lives in `merge.rs`.

use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use aimate_reports::RunRecord;
use aimate_reports::grade::{Report, Verdict, grade};
use aimate_reports::regression::{BaselineRun, compare};
use aimate_reports::render;
use aimate_reports::spec::SloSpec;
use aimate_reports::summary::{margin, quantity};
use anyhow::Context;

use crate::Failure;
use crate::cli::{BaselineArgs, ReportArgs, ReportCommand};

pub fn read_record(path: &Path) -> anyhow::Result<RunRecord> {
    let text = std::fs::read(path).with_context(|| format!("cannot read {}", path.display()))?;
    serde_json::from_slice(&text).with_context(|| format!("{} is not a RunRecord", path.display()))
}

/// Writes `path` through a temp file, so a reader never sees half a file.
pub fn write_atomically(
    path: &Path,
    write: impl FnOnce(&mut BufWriter<File>) -> std::io::Result<()>,
) -> anyhow::Result<()> {
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let temp = path.with_file_name(format!(".{name}.{}.tmp", std::process::id()));
    let result = File::create(&temp).and_then(|file| {
        let mut out = BufWriter::new(file);
        write(&mut out)?;
        out.flush()
    });
    let result = result.and_then(|()| std::fs::rename(&temp, path));
    if result.is_err() {
        let _ = std::fs::remove_file(&temp);
    }
    result.with_context(|| format!("cannot write {}", path.display()))
}

/// The baseline runs, graded, and the allowed regression: read before any work is done.
pub struct Baseline {
    runs: Vec<BaselineRun>,
    max_regression: Option<f64>,
}

impl Baseline {
    pub fn load(args: &BaselineArgs, spec: &SloSpec) -> anyhow::Result<Option<Self>> {
        let Some(path) = &args.baseline else {
            return Ok(None);
        };
        if let Some(percent) = args.max_regression
            && !(percent.is_finite() && percent >= 0.0)
        {
            anyhow::bail!("--max-regression is a percentage, 0 or more");
        }
        let runs = baseline_records(path)?
            .into_iter()
            .map(|record| BaselineRun::new(record, spec))
            .collect();
        Ok(Some(Self {
            runs,
            max_regression: args.max_regression.map(|p| p / 100.0),
        }))
    }
}

/// One record, or every `*.json` record in a directory (e.g. the main branch's last
/// runs), in name order.
fn baseline_records(path: &Path) -> anyhow::Result<Vec<RunRecord>> {
    if !path.is_dir() {
        return Ok(vec![read_record(path)?]);
    }
    json_files(path)?
        .iter()
        .map(|file| read_record(file))
        .collect()
}

/// The `*.json` files directly in `dir`, in name order; none is an error.
pub(super) fn json_files(dir: &Path) -> anyhow::Result<Vec<PathBuf>> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
        .with_context(|| format!("cannot read {}", dir.display()))?
        .filter_map(|entry| entry.ok().map(|e| e.path()))
        .filter(|p| p.is_file() && p.extension().is_some_and(|e| e == "json"))
        .collect();
    files.sort();
    if files.is_empty() {
        anyhow::bail!("{}: no RunRecord (*.json) in the directory", dir.display());
    }
    Ok(files)
}

/// Grades `record` (against `baseline` too, if any) and writes the reports into
/// `out_dir`. Returns the report and the files written.
pub fn write_reports(
    record: &RunRecord,
    spec: &SloSpec,
    baseline: Option<&Baseline>,
    out_dir: &Path,
) -> anyhow::Result<(Report, Vec<PathBuf>)> {
    std::fs::create_dir_all(out_dir)
        .with_context(|| format!("cannot create {}", out_dir.display()))?;
    let mut report = grade(record, spec);
    if let Some(baseline) = baseline {
        compare(
            &mut report,
            record,
            &baseline.runs,
            spec,
            baseline.max_regression,
        );
    }
    let files = [
        (
            "report.json",
            render::json::render
                as fn(&Report, &RunRecord, &mut BufWriter<File>) -> std::io::Result<()>,
        ),
        ("report.md", render::markdown::render),
        ("junit.xml", render::junit::render),
    ];
    let index = out_dir.join("index.html");
    write_atomically(&index, |out| {
        render::html::render(&report, record, spec, out)
    })?;
    let mut written = vec![index];
    for (name, renderer) in files {
        let path = out_dir.join(name);
        write_atomically(&path, |out| renderer(&report, record, out))?;
        written.push(path);
    }
    Ok((report, written))
}

/// Appends one part of a CI job summary to `path` (`-`: stdout). Appended, never
/// replaced: `$GITHUB_STEP_SUMMARY` collects every step's part, and a drill writes one
/// part for its ladder and one per chaos experiment.
pub fn append_summary(
    path: &Path,
    title: &str,
    report: &Report,
    record: &RunRecord,
) -> anyhow::Result<()> {
    let mut text = Vec::new();
    render::summary::render(title, report, record, &mut text)?;
    let written = if path == Path::new("-") {
        std::io::stdout().lock().write_all(&text)
    } else {
        std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(path)
            .and_then(|mut file| file.write_all(&text))
    };
    written.with_context(|| format!("cannot write the summary to {}", path.display()))
}

/// The short verdict table printed at the end of a report or drill.
pub fn print_verdicts(report: &Report) {
    for g in &report.grades {
        let verdict = match g.verdict {
            Verdict::Pass => "PASS",
            Verdict::Fail => "FAIL",
            Verdict::Invalid => "INVALID",
        };
        let note = g
            .reason
            .as_deref()
            .map(|r| format!("  ({r})"))
            .unwrap_or_default();
        eprintln!(
            "  {verdict:<7} {:<40} {:<28} {:>13} margin {:>8}{note}",
            g.scope,
            g.objective,
            quantity(g.value, g.unit),
            margin(g.margin)
        );
    }
    for c in report.baseline.iter().filter(|c| c.failed) {
        eprintln!(
            "  REGRESSION {:<37} {:<28} {:.2} {} now, {:.2} {} before: worse by {}",
            c.scope,
            c.objective,
            c.current,
            c.unit,
            c.baseline,
            c.unit,
            c.effect()
        );
    }
    let overall = match report.verdict {
        Verdict::Pass => "PASS: every objective met",
        Verdict::Fail => {
            "FAIL: an objective was missed (or a figure regressed past --max-regression)"
        }
        Verdict::Invalid => "INVALID: the run could not be graded",
    };
    eprintln!("verdict: {overall}");
}

pub fn run(args: &ReportArgs) -> Result<ExitCode, Failure> {
    if let Some(ReportCommand::Merge {
        records,
        out,
        allow_missing,
        prometheus,
        prometheus_selector,
    }) = &args.command
    {
        return super::merge::run(&super::merge::MergeArgs {
            records,
            out,
            allow_missing: *allow_missing,
            prometheus: prometheus.as_deref(),
            prometheus_selector,
        });
    }
    let Some(path) = &args.record else {
        return Err(anyhow::anyhow!("give the RunRecord to grade").into());
    };
    let spec = crate::builtin::slo(args.slo.as_deref())?;
    let baseline = Baseline::load(&args.baseline, &spec)?;
    let record = read_record(path)?;
    let (report, files) = write_reports(&record, &spec, baseline.as_ref(), &args.out)?;
    print_verdicts(&report);
    for file in files {
        eprintln!("wrote {}", file.display());
    }
    if let Some(summary) = &args.summary {
        append_summary(
            summary,
            &format!("aimate report {}", path.display()),
            &report,
            &record,
        )?;
    }
    Ok(ExitCode::from(report.exit_code()))
}
