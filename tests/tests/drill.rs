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
        .arg(&out));
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
    // The drill's server is gone: its temporary directory was removed.
    assert!(!stderr.contains("did not stop"), "{stderr}");
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
