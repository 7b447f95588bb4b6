//! Benchmark: grade and render every format for a RunRecord of a one-hour run at 10k
//! req/s (3 600 timeline points, per-second and per-route histograms).
//!
//! Run with: `cargo run --release -p aimate-reports --example bench_reports`
//! Goal (reports issue): under 2 s for all of it, HTML under 2 MB.

use std::time::Instant;

use aimate_reports::grade::grade;
use aimate_reports::render;
use aimate_reports::spec::SloSpec;

#[path = "../tests/support/mod.rs"]
mod support;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let built = Instant::now();
    let record = support::long_run(&[("10k", 10_000.0)], 3600);
    let json = serde_json::to_vec(&record)?;
    println!(
        "fixture: {} timeline points, record JSON {:.1} MB (built in {:.2} s)",
        record.stages[0].timeline.len(),
        json.len() as f64 / 1e6,
        built.elapsed().as_secs_f64()
    );
    let spec =
        SloSpec::load(&std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../slo.toml"))?;

    let started = Instant::now();
    let parsed: aimate_reports::RunRecord = serde_json::from_slice(&json)?;
    let parse_s = started.elapsed().as_secs_f64();
    let report = grade(&parsed, &spec);
    let grade_s = started.elapsed().as_secs_f64() - parse_s;
    let (mut html, mut md, mut junit, mut out_json) =
        (Vec::new(), Vec::new(), Vec::new(), Vec::new());
    render::html::render(&report, &parsed, &spec, &mut html)?;
    render::markdown::render(&report, &parsed, &mut md)?;
    render::junit::render(&report, &parsed, &mut junit)?;
    render::json::render(&report, &parsed, &mut out_json)?;
    let total_s = started.elapsed().as_secs_f64();
    println!("read record      : {parse_s:.3} s");
    println!(
        "grade            : {grade_s:.3} s ({} grades, verdict {:?})",
        report.grades.len(),
        report.verdict
    );
    println!("render all       : {:.3} s", total_s - parse_s - grade_s);
    println!("total            : {total_s:.3} s (goal < 2 s)");
    println!(
        "index.html       : {:.2} MB (goal < 2 MB)",
        html.len() as f64 / 1e6
    );
    println!(
        "report.md / junit.xml / report.json: {} / {} / {} bytes",
        md.len(),
        junit.len(),
        out_json.len()
    );
    Ok(())
}
