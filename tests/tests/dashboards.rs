//! `aimate dashboards generate`: writes the tree, `--check` passes on it and fails
//! (exit 1, naming the file) once a file is edited by hand.

use std::path::Path;

use crate::common::{aimate, run};

#[test]
fn generate_writes_the_tree_and_check_catches_a_hand_edit() {
    let dir = tempfile::tempdir().unwrap();
    let slo = Path::new(env!("CARGO_MANIFEST_DIR")).join("../slo.toml");
    let generate = |check: bool| {
        let mut command = aimate(dir.path());
        command
            .args(["dashboards", "generate", "--out", "out", "--slo"])
            .arg(&slo);
        if check {
            command.arg("--check");
        }
        run(&mut command)
    };
    let written = generate(false);
    assert!(written.status.success(), "{written:?}");
    let rules = dir.path().join("out/prometheus/rules.yml");
    assert!(
        std::fs::read_to_string(&rules)
            .unwrap()
            .contains("AimateHighErrorRate")
    );
    assert!(dir.path().join("out/grafana/aimate-service.json").is_file());
    assert_eq!(generate(true).status.code(), Some(0));

    let edited = std::fs::read_to_string(&rules)
        .unwrap()
        .replace("> 0.05", "> 0.5");
    std::fs::write(&rules, edited).unwrap();
    let checked = generate(true);
    assert_eq!(checked.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&checked.stderr);
    assert!(
        stderr.contains("rules.yml: differs from slo.toml"),
        "{stderr}"
    );
}

#[test]
fn deploy_writes_the_deployments_copies_and_check_catches_their_drift() {
    let dir = tempfile::tempdir().unwrap();
    let slo = Path::new(env!("CARGO_MANIFEST_DIR")).join("../slo.toml");
    let generate = |check: bool| {
        let mut command = aimate(dir.path());
        command
            .args([
                "dashboards",
                "generate",
                "--out",
                "out",
                "--deploy",
                "deploy",
                "--slo",
            ])
            .arg(&slo);
        if check {
            command.arg("--check");
        }
        run(&mut command)
    };
    assert!(generate(false).status.success());
    let rule = dir
        .path()
        .join("deploy/kubernetes/base/prometheusrule.yaml");
    let text = std::fs::read_to_string(&rule).unwrap();
    assert!(text.contains("kind: PrometheusRule") && text.contains("AimateHighErrorRate"));
    assert!(dir.path().join("deploy/compose/prometheus.yml").is_file());
    assert_eq!(generate(true).status.code(), Some(0));

    // The cluster's copy of the rules edited by hand: --check names it, exit 1.
    std::fs::write(&rule, text.replace("> 0.05", "> 0.5")).unwrap();
    let checked = generate(true);
    assert_eq!(checked.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&checked.stderr);
    assert!(
        stderr.contains("prometheusrule.yaml: differs from slo.toml"),
        "{stderr}"
    );
    assert!(stderr.contains("out: up to date"), "{stderr}");
}
