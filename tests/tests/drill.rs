use std::path::Path;

use crate::common::{aimate, run};

fn repo_file(name: &str) -> std::path::PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..").join(name)
}

#[test]
fn quick_drill_grades_and_writes_every_report() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("out");
    let output = run(aimate(dir.path())
        .args(["drill", "--quick", "--no-chaos", "--slo"])
        .arg(repo_file("slo.toml"))
        .arg("--out-dir")
        .arg(&out)
        .arg("--summary")
        .arg(dir.path().join("summary.md")));
    let stderr = String::from_utf8_lossy(&output.stderr).into_owned();
    // Pass or an SLO miss are both honest outcomes on a shared machine; anything else is not.
    let code = output.status.code();
    assert!(matches!(code, Some(0 | 1)), "exit {code:?}: {stderr}");
    assert!(stderr.contains("verdict: "), "{stderr}");
    let runs: Vec<_> = std::fs::read_dir(&out)
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    assert_eq!(runs.len(), 1, "one directory per drill");
    for file in ["run.json", "report.json", "report.md", "junit.xml"] {
        assert!(runs[0].join(file).is_file(), "{file} missing");
    }
    let report: serde_json::Value =
        serde_json::from_slice(&std::fs::read(runs[0].join("report.json")).unwrap()).unwrap();
    assert_eq!(report["exit_code"].as_i64(), code.map(i64::from));
    assert_eq!(report["stages"].as_array().unwrap().len(), 2);
    let junit = std::fs::read_to_string(runs[0].join("junit.xml")).unwrap();
    let cases = junit.matches("<testcase ").count();
    assert_eq!(cases, report["grades"].as_array().unwrap().len());
    let summary = std::fs::read_to_string(dir.path().join("summary.md")).unwrap();
    assert!(
        summary.starts_with("### aimate drill --quick: ladder: "),
        "{summary}"
    );
    assert!(
        summary.contains(&format!("(exit {})", code.unwrap())),
        "{summary}"
    );
    // The drill's server is gone: its temporary directory was removed.
    assert!(!stderr.contains("did not stop"), "{stderr}");

    judged_against_a_directory_of_baselines(dir.path(), &runs[0].join("run.json"), code);
}

/// `--baseline DIR`: the same run against two copies of itself is no regression; the run
/// with every latency doubled is one, named on stderr and in the report; an empty
/// directory is a usage error.
fn judged_against_a_directory_of_baselines(dir: &Path, record: &Path, code: Option<i32>) {
    let baselines = dir.join("main-branch");
    std::fs::create_dir_all(&baselines).unwrap();
    for name in ["a.json", "b.json"] {
        std::fs::copy(record, baselines.join(name)).unwrap();
    }
    let report = |current: &Path, out: &str| {
        run(aimate(dir)
            .arg("report")
            .arg(current)
            .arg("--slo")
            .arg(repo_file("slo.toml"))
            .arg("--baseline")
            .arg(&baselines)
            .args(["--max-regression", "10", "--out", out]))
    };
    let same = report(record, "same");
    assert_eq!(
        same.status.code(),
        code,
        "{}",
        String::from_utf8_lossy(&same.stderr)
    );
    let markdown = std::fs::read_to_string(dir.join("same/report.md")).unwrap();
    assert!(markdown.contains("### Against the baseline"), "{markdown}");
    assert!(
        markdown.contains("of 2 runs (run-to-run noise included)"),
        "{markdown}"
    );
    assert!(!markdown.contains("**REGRESSION**"), "{markdown}");

    let mut slow: aimate_reports::RunRecord =
        serde_json::from_slice(&std::fs::read(record).unwrap()).unwrap();
    for stage in &mut slow.stages {
        for second in &mut stage.timeline {
            second.latency_us = doubled(&second.latency_us);
        }
        for route in stage.routes.values_mut() {
            route.latency_us = doubled(&route.latency_us);
        }
    }
    let slow_path = dir.join("slow.json");
    std::fs::write(&slow_path, serde_json::to_vec(&slow).unwrap()).unwrap();
    let slower = run(aimate(dir)
        .arg("report")
        .arg(&slow_path)
        .arg("--slo")
        .arg(repo_file("slo.toml"))
        .arg("--baseline")
        .arg(&baselines)
        .args(["--max-regression", "10", "--out", "slow", "--summary", "-"]));
    let stderr = String::from_utf8_lossy(&slower.stderr);
    assert_eq!(slower.status.code(), Some(1), "{stderr}");
    let summary = String::from_utf8_lossy(&slower.stdout);
    assert!(
        summary.contains("| **REGRESSION** | stage 100 |"),
        "{summary}"
    );
    assert!(stderr.contains("REGRESSION stage 100"), "{stderr}");
    let junit = std::fs::read_to_string(dir.join("slow/junit.xml")).unwrap();
    assert!(junit.contains(r#"type="REGRESSION""#), "{junit}");

    let empty = dir.join("empty");
    std::fs::create_dir_all(&empty).unwrap();
    let refused = run(aimate(dir)
        .arg("report")
        .arg(record)
        .arg("--baseline")
        .arg(&empty));
    assert_eq!(refused.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&refused.stderr);
    assert!(
        stderr.contains("no RunRecord (*.json) in the directory"),
        "{stderr}"
    );
}

fn doubled(histogram: &aimate_reports::LatencyHistogram) -> aimate_reports::LatencyHistogram {
    let mut twice = aimate_reports::LatencyHistogram::new();
    for value in histogram.inner().iter_recorded() {
        twice.record_n(value.value_iterated_to() * 2, value.count_at_value());
    }
    twice
}

#[test]
fn malformed_slo_is_exit_2_with_the_line() {
    let dir = tempfile::tempdir().unwrap();
    let slo = dir.path().join("slo.toml");
    std::fs::write(&slo, "[run]\nobjectives = [\"p(95) < quickly\"]\n").unwrap();
    let output = run(aimate(dir.path())
        .args(["drill", "--quick", "--slo"])
        .arg(&slo));
    assert_eq!(output.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("slo.toml:2:"), "{stderr}");
    // Also for `aimate report`.
    let output = run(aimate(dir.path())
        .args(["report", "nothing.json", "--slo"])
        .arg(&slo));
    assert_eq!(output.status.code(), Some(2));
}

/// An installed binary has no checkout beside it: from an empty directory it drills
/// with the built-in objectives and the quick experiment, grades the record, prints
/// and writes what is built in, and refuses a named file that is missing.
#[test]
fn the_binary_works_outside_the_checkout() {
    let dir = tempfile::tempdir().unwrap();
    let started = std::time::Instant::now();
    let output = run(aimate(dir.path()).args(["drill", "--quick", "--out-dir", "out"]));
    let took = started.elapsed();
    let stderr = String::from_utf8_lossy(&output.stderr).into_owned();
    let code = output.status.code();
    assert!(matches!(code, Some(0 | 1)), "exit {code:?}: {stderr}");
    assert!(stderr.contains("using the built-in slo.toml"), "{stderr}");
    assert!(
        stderr.contains("chaos experiment quick-kill-instance"),
        "{stderr}"
    );
    eprintln!("drill --quick took {:.1} s", took.as_secs_f64());
    let runs: Vec<_> = std::fs::read_dir(dir.path().join("out"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    assert_eq!(runs.len(), 1);
    assert!(
        runs[0]
            .join("chaos-quick-kill-instance/report.json")
            .is_file()
    );

    let graded = run(aimate(dir.path())
        .arg("report")
        .arg(runs[0].join("run.json"))
        .args(["--out", "graded"]));
    assert!(
        matches!(graded.status.code(), Some(0 | 1)),
        "{}",
        String::from_utf8_lossy(&graded.stderr)
    );
    assert!(dir.path().join("graded/report.json").is_file());

    let printed = run(aimate(dir.path()).args(["slo", "print"]));
    assert_eq!(
        String::from_utf8_lossy(&printed.stdout),
        std::fs::read_to_string(repo_file("slo.toml")).unwrap()
    );
    // Every drill of the checkout's chaos/experiments/ is built in.
    let shipped = std::fs::read_dir(repo_file("chaos/experiments"))
        .unwrap()
        .filter(|e| {
            e.as_ref()
                .unwrap()
                .path()
                .extension()
                .is_some_and(|x| x == "toml")
        })
        .count();
    assert_eq!(shipped, 9);
    let listed = run(aimate(dir.path()).args(["chaos", "experiments"]));
    assert_eq!(
        String::from_utf8_lossy(&listed.stdout).lines().count(),
        shipped
    );
    let written = run(aimate(dir.path()).args(["chaos", "experiments", "--out", "mine"]));
    assert!(written.status.success());
    assert_eq!(
        std::fs::read_dir(dir.path().join("mine")).unwrap().count(),
        shipped
    );

    let missing = run(aimate(dir.path()).args(["report", "x.json", "--slo", "nope.toml"]));
    assert_eq!(missing.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&missing.stderr);
    assert!(stderr.contains("nope.toml: cannot read"), "{stderr}");

    // Every exit code of the contract: met, failed, and ungradable (the same record with
    // its stages marked invalid, as when the generator could not reach the rate).
    let record = runs[0].join("run.json");
    let mut invalid: serde_json::Value =
        serde_json::from_slice(&std::fs::read(&record).unwrap()).unwrap();
    for stage in invalid["stages"].as_array_mut().unwrap() {
        stage["validity"] =
            serde_json::json!({"valid": false, "reasons": ["reached 50 % of the target rate"]});
    }
    let invalid_record = dir.path().join("invalid.json");
    std::fs::write(&invalid_record, invalid.to_string()).unwrap();
    for (record, objectives, code) in [
        (&record, "p(99) < 60s", 0),
        (&record, "p(50) < 1us", 1),
        (&invalid_record, "p(99) < 60s", 3),
    ] {
        let slo = dir.path().join("exit.toml");
        std::fs::write(&slo, format!("[run]\nobjectives = [\"{objectives}\"]\n")).unwrap();
        let graded = run(aimate(dir.path())
            .arg("report")
            .arg(record)
            .arg("--slo")
            .arg(&slo)
            .args(["--out", "exit"]));
        assert_eq!(
            graded.status.code(),
            Some(code),
            "{objectives}: {}",
            String::from_utf8_lossy(&graded.stderr)
        );
    }
}
