//! A distributed run on processes standing in for pods: `aimate load --segment i/N
//! --start-at …` against one server, then `aimate report merge`: one record whose
//! schedule is the plan's and whose verdict is the verdict of the segments' union; a
//! late segment, a missing or repeated index and a different plan are named.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Stdio};
use std::time::{Duration, Instant, SystemTime};

use aimate_reports::RunRecord;
use aimate_reports::record::SegmentInfo;

use crate::common::{Reaped, aimate, read_json, run, send_signal, wait_exit};

const SEGMENTS: u32 = 4;
/// The plan's rate, all segments together, and its windows.
const RATE: &str = "400";
const WARMUP: &str = "1s";
const DURATION: &str = "5s";

/// A server whose per-key limit is out of the way (one tenant takes the whole rate) and
/// a tenant's key made beforehand, as a distributed run's prepare step would.
fn server(dir: &Path) -> (Reaped, String, String) {
    let (server, base) = crate::common::admin_server(
        dir,
        &[
            "--rate-limit-per-second",
            "100000",
            "--rate-limit-burst",
            "100000",
        ],
    );
    let tenant: serde_json::Value = reqwest::blocking::Client::new()
        .post(format!("{base}/api/admin/tenants"))
        .bearer_auth("e2e-admin")
        .json(&serde_json::json!({"name": "distributed"}))
        .send()
        .unwrap()
        .json()
        .unwrap();
    let key = tenant["api_key"].as_str().unwrap().to_owned();
    (server, base, key)
}

fn at(instant: SystemTime) -> String {
    humantime::format_rfc3339_millis(instant).to_string()
}

/// Starts segment `index` of [`SEGMENTS`] at `start_at`, writing `out`.
fn segment(dir: &Path, base: &str, key: &str, index: u32, start_at: &str, out: &Path) -> Child {
    aimate(dir)
        .args(["load", "--target", base, "--api-key", key])
        .args(["--stages", RATE, "--warmup", WARMUP, "--duration", DURATION])
        .args(["--seed-invoices", "50", "--seed-jobs", "10"])
        .args(["--segment", &format!("{index}/{SEGMENTS}")])
        // Debug builds of four generators and the server share the machine: the
        // tolerance is generous; a segment held past the start is late by seconds.
        .args(["--start-tolerance", "100ms"])
        .args(["--start-at", start_at, "--out"])
        .arg(out)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap()
}

fn finish(child: Child) -> String {
    let mut child = Reaped(child);
    let status = wait_exit(&mut child, Duration::from_secs(60));
    let mut stderr = String::new();
    if let Some(pipe) = child.0.stderr.as_mut() {
        use std::io::Read;
        let _ = pipe.read_to_string(&mut stderr);
    }
    assert_eq!(status.and_then(|s| s.code()), Some(0), "{stderr}");
    stderr
}

fn record(path: &Path) -> RunRecord {
    serde_json::from_slice(&std::fs::read(path).unwrap()).unwrap()
}

fn merge(dir: &Path, records: &[PathBuf], extra: &[&str]) -> (Option<i32>, String) {
    let output = run(aimate(dir)
        .args(["report", "merge"])
        .args(records)
        .args(["-o"])
        .arg(dir.join("merged.json"))
        .args(extra));
    (
        output.status.code(),
        String::from_utf8_lossy(&output.stderr).into_owned(),
    )
}

#[test]
fn four_segments_started_together_merge_into_the_plans_run_and_its_verdict() {
    let dir = tempfile::tempdir().unwrap();
    let (_server, base, key) = server(dir.path());
    let start = at(SystemTime::now() + Duration::from_secs(4));
    // The segments' records on one volume, as an Indexed Job's pods write them.
    let records = dir.path().join("records");
    std::fs::create_dir_all(&records).unwrap();
    let outs: Vec<PathBuf> = (0..SEGMENTS)
        .map(|i| records.join(format!("segment-{i}.json")))
        .collect();
    let children: Vec<Child> = (0..SEGMENTS)
        .map(|i| segment(dir.path(), &base, &key, i, &start, &outs[i as usize]))
        .collect();
    for child in children {
        finish(child);
    }
    let segments: Vec<RunRecord> = outs.iter().map(|p| record(p)).collect();
    for (i, seg) in segments.iter().enumerate() {
        let info: &SegmentInfo = seg.run.segment.as_ref().unwrap();
        assert_eq!((info.index, info.count), (i as u32, SEGMENTS));
        assert_eq!(info.start_at.as_deref(), Some(start.as_str()));
        let late = info.first_send_late_ms[0].unwrap();
        assert!(
            late <= info.tolerance_ms,
            "segment {i} started {late} ms late"
        );
        assert!(seg.stages[0].validity.valid, "{:?}", seg.stages[0].validity);
        // Each segment's windows are the plan's: the same in every record.
        assert_eq!(
            seg.stages[0].steady_start_ms,
            segments[0].stages[0].steady_start_ms
        );
    }

    // The directory stands for its records (the verdict job merges the volume).
    let (code, stderr) = merge(dir.path(), std::slice::from_ref(&records), &[]);
    assert_eq!(code, Some(0), "{stderr}");
    let from_dir = record(&dir.path().join("merged.json"));
    let (code, stderr) = merge(dir.path(), &outs, &[]);
    assert_eq!(code, Some(0), "{stderr}");
    let merged = record(&dir.path().join("merged.json"));
    assert_eq!(from_dir.stages[0].sent, merged.stages[0].sent);
    let stage = &merged.stages[0];
    assert!(stage.validity.valid, "{:?}", stage.validity);
    assert_eq!(stage.target_rps, 400.0);
    // The plan's rate, and every steady second the plan's count.
    assert!(
        (stage.achieved_rps - 400.0).abs() <= 4.0,
        "{}",
        stage.achieved_rps
    );
    for second in stage.timeline.iter().filter(|s| s.in_steady) {
        let sent = second.sent as f64;
        assert!(
            (sent - 400.0).abs() <= 4.0,
            "second at {} ms: {sent}",
            second.t_ms
        );
        assert_eq!(second.sent + second.unsent, 400, "{second:?}");
    }
    // The merged percentiles are the union's: every segment's histograms added.
    let mut union = aimate_reports::LatencyHistogram::new();
    for seg in &segments {
        union
            .add(&seg.stages[0].all_routes_latency().unwrap())
            .unwrap();
    }
    let merged_latency = stage.all_routes_latency().unwrap();
    for q in [0.5, 0.95, 0.99, 1.0] {
        assert_eq!(
            merged_latency.quantile_micros(q),
            union.quantile_micros(q),
            "q {q}"
        );
    }
    assert_eq!(merged_latency.count(), union.count());
    // The server's series are taken once (segment 0's), not four times.
    assert_eq!(merged.server.len(), segments[0].server.len());
    assert_eq!(merged.run.generators.len(), SEGMENTS as usize);

    // Graded like any run: the verdict is the one the union gets. The union, built
    // here by hand: segment 0's record with every other segment's stage added.
    let spec = aimate_reports::spec::SloSpec::load(&repo_file("slo.toml")).unwrap();
    let mut by_hand = segments[0].clone();
    by_hand.run.segment = None;
    for seg in &segments[1..] {
        let mine = &mut by_hand.stages[0];
        for (route, theirs) in &seg.stages[0].routes {
            let into = mine.routes.entry(route.clone()).or_default();
            into.latency_us.add(&theirs.latency_us).unwrap();
            into.service_us.add(&theirs.service_us).unwrap();
            for (outcome, n) in &theirs.outcomes {
                *into.outcomes.entry(outcome.clone()).or_default() += n;
            }
        }
        mine.sent += seg.stages[0].sent;
        mine.achieved_rps += seg.stages[0].achieved_rps;
        if let (Some(total), Some(theirs)) = (by_hand.writes.as_mut(), seg.writes.as_ref()) {
            total.add(theirs);
        }
    }
    by_hand.stages[0].target_rps = 400.0;
    let verdicts = |record: &RunRecord| -> Vec<(String, String, String)> {
        aimate_reports::grade::grade(record, &spec)
            .grades
            .iter()
            .filter(|g| !g.objective.contains("cache_hits"))
            .map(|g| {
                (
                    g.scope.clone(),
                    g.objective.clone(),
                    format!("{:?}", g.verdict),
                )
            })
            .collect()
    };
    assert_eq!(verdicts(&merged), verdicts(&by_hand));
    let output = run(aimate(dir.path())
        .args(["report"])
        .arg(dir.path().join("merged.json"))
        .arg("--out")
        .arg(dir.path().join("report")));
    assert!(
        matches!(output.status.code(), Some(0 | 1)),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );

    // A missing index and a repeated one are named; --allow-missing merges INVALID.
    let (code, stderr) = merge(dir.path(), &outs[..3], &[]);
    assert_eq!(code, Some(2), "{stderr}");
    assert!(stderr.contains("a segment is missing: 3/4"), "{stderr}");
    let repeated = [
        outs[0].clone(),
        outs[1].clone(),
        outs[1].clone(),
        outs[3].clone(),
    ];
    let (code, stderr) = merge(dir.path(), &repeated, &[]);
    assert_eq!(code, Some(2), "{stderr}");
    assert!(stderr.contains("segment 1/4 is given twice"), "{stderr}");
    let (code, stderr) = merge(dir.path(), &outs[..3], &["--allow-missing"]);
    assert_eq!(code, Some(0), "{stderr}");
    let partial = record(&dir.path().join("merged.json"));
    assert!(!partial.stages[0].validity.valid);
    assert!(
        partial.stages[0].validity.reasons.join(" ").contains("3/4"),
        "{:?}",
        partial.stages[0].validity
    );
}

fn repo_file(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..").join(name)
}

#[test]
fn a_segment_that_starts_late_makes_its_stages_invalid_and_the_merge_names_it() {
    let dir = tempfile::tempdir().unwrap();
    let (_server, base, key) = server(dir.path());
    let start_at = SystemTime::now() + Duration::from_secs(4);
    let start = at(start_at);
    let outs: Vec<PathBuf> = (0..SEGMENTS)
        .map(|i| dir.path().join(format!("segment-{i}.json")))
        .collect();
    let mut children: Vec<Child> = (0..SEGMENTS)
        .map(|i| segment(dir.path(), &base, &key, i, &start, &outs[i as usize]))
        .collect();
    // Segment 2 is held (SIGSTOP) across the start instant once it waits for it, as a
    // pod scheduled late would be.
    let late = &mut children[2];
    let mut lines = BufReader::new(late.stderr.take().unwrap()).lines();
    let waited = Instant::now();
    loop {
        let line = lines.next().unwrap().unwrap();
        if line.contains("waits for its start") {
            break;
        }
        assert!(
            waited.elapsed() < Duration::from_secs(4),
            "never waited: {line}"
        );
    }
    send_signal(late, "STOP");
    while SystemTime::now() < start_at + Duration::from_millis(1500) {
        std::thread::sleep(Duration::from_millis(50));
    }
    send_signal(late, "CONT");
    // Its stderr is still read, so it never blocks on a full pipe.
    let drain = std::thread::spawn(move || lines.map_while(Result::ok).count());
    for (i, child) in children.into_iter().enumerate() {
        if i == 2 {
            let mut child = Reaped(child);
            let status = wait_exit(&mut child, Duration::from_secs(60));
            assert_eq!(status.and_then(|s| s.code()), Some(0));
        } else {
            finish(child);
        }
    }
    let _ = drain.join();
    let held = record(&outs[2]);
    let info = held.run.segment.as_ref().unwrap();
    assert!(info.first_send_late_ms[0].unwrap() > 500.0, "{info:?}");
    assert!(!held.stages[0].validity.valid);
    let (code, stderr) = merge(dir.path(), &outs, &[]);
    assert_eq!(code, Some(0), "{stderr}");
    let merged = record(&dir.path().join("merged.json"));
    let reasons = merged.stages[0].validity.reasons.join("; ");
    assert!(!merged.stages[0].validity.valid);
    assert!(
        reasons.contains("segment 2/4: its first request left"),
        "{reasons}"
    );
    let output = run(aimate(dir.path())
        .arg("report")
        .arg(dir.path().join("merged.json"))
        .arg("--out")
        .arg(dir.path().join("report")));
    assert_eq!(output.status.code(), Some(3), "an INVALID run is exit 3");
}

#[test]
fn records_of_different_plans_are_not_one_run() {
    let dir = tempfile::tempdir().unwrap();
    let (_server, base, key) = server(dir.path());
    let start = at(SystemTime::now() + Duration::from_secs(3));
    let a = dir.path().join("a.json");
    let b = dir.path().join("b.json");
    let first = segment(dir.path(), &base, &key, 0, &start, &a);
    let other = aimate(dir.path())
        .args(["load", "--target", &base, "--api-key", &key])
        .args([
            "--stages",
            "200",
            "--warmup",
            WARMUP,
            "--duration",
            DURATION,
        ])
        .args(["--seed-invoices", "50", "--seed-jobs", "10"])
        .args(["--segment", "1/4", "--start-at", &start, "--out"])
        .arg(&b)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    finish(first);
    finish(other);
    let (code, stderr) = merge(dir.path(), &[a.clone(), b], &[]);
    assert_eq!(code, Some(2), "{stderr}");
    assert!(stderr.contains("the plan differs"), "{stderr}");
    // A whole run is not a segment.
    let whole: serde_json::Value = read_json(&a);
    assert_eq!(whole["run"]["segment"]["count"], 4);
    // And a start instant already passed is refused before anything is sent.
    let output = run(aimate(dir.path())
        .args([
            "load",
            "--target",
            &base,
            "--api-key",
            &key,
            "--stages",
            "100",
        ])
        .args([
            "--segment",
            "0/2",
            "--start-at",
            "2020-01-01T00:00:00Z",
            "--out",
        ])
        .arg(dir.path().join("never.json")));
    assert_eq!(output.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&output.stderr).contains("passed"));
}

/// A tenant's invoices and jobs, from its dashboard.
fn holdings(base: &str, key: &str) -> (u64, u64) {
    let dashboard: serde_json::Value = reqwest::blocking::Client::new()
        .get(format!("{base}/api/dashboard"))
        .bearer_auth(key)
        .send()
        .unwrap()
        .json()
        .unwrap();
    let count = |field: &str| -> u64 {
        dashboard[field]
            .as_object()
            .unwrap()
            .values()
            .filter_map(serde_json::Value::as_u64)
            .sum()
    };
    (count("invoices_by_status"), count("jobs_by_status"))
}

#[test]
fn prepared_tenants_are_seeded_once_and_every_segment_drives_them() {
    let dir = tempfile::tempdir().unwrap();
    let (_server, base, _) = server(dir.path());
    let keys_file = dir.path().join("keys");
    let output = run(aimate(dir.path())
        .args([
            "load",
            "prepare",
            "--target",
            &base,
            "--admin-token",
            "e2e-admin",
        ])
        .args([
            "--tenants",
            "2",
            "--seed-invoices",
            "30",
            "--seed-jobs",
            "5",
            "--out",
        ])
        .arg(&keys_file));
    assert_eq!(
        output.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let text = std::fs::read_to_string(&keys_file).unwrap();
    let keys: Vec<&str> = text.lines().filter(|l| !l.starts_with('#')).collect();
    assert_eq!(keys.len(), 2, "{text}");
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&keys_file).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600, "the keys are secrets");
    }
    for key in &keys {
        assert_eq!(holdings(&base, key), (30, 5));
    }

    // Two segments take the keys: nothing is seeded again; the only writes are the
    // run's own invoices, each acknowledged one read back by the segment that made it.
    let start = at(SystemTime::now() + Duration::from_secs(3));
    let outs: Vec<PathBuf> = (0..2)
        .map(|i| dir.path().join(format!("segment-{i}.json")))
        .collect();
    let keys_path = keys_file.to_str().unwrap();
    let mix = "dashboard=2,get_invoice=2,create_invoice=1";
    two_segments(
        dir.path(),
        &[
            "--target",
            &base,
            "--keys",
            keys_path,
            "--stages",
            "200",
            "--warmup",
            WARMUP,
            "--duration",
            "3s",
            "--weights",
            mix,
        ],
        &start,
        &outs,
    );
    let mut acknowledged = 0;
    for out in &outs {
        let seg = record(out);
        assert_eq!(seg.run.config["tenants"], 2);
        assert_eq!(seg.run.config["tenants_prepared"], true);
        let writes = seg.writes.as_ref().unwrap();
        assert_eq!(writes.checked, writes.acknowledged, "{writes:?}");
        assert_eq!(writes.missing, 0);
        acknowledged += writes.acknowledged;
    }
    let after: Vec<(u64, u64)> = keys.iter().map(|k| holdings(&base, k)).collect();
    // Both tenants were driven (each got writes), none was seeded twice.
    for (invoices, jobs) in &after {
        assert!(*invoices > 30, "{after:?}");
        assert_eq!(*jobs, 5, "{after:?}");
    }
    assert_eq!(
        after.iter().map(|(i, _)| i).sum::<u64>(),
        2 * 30 + acknowledged,
        "{after:?}"
    );
    let (code, stderr) = merge(dir.path(), &outs, &[]);
    assert_eq!(code, Some(0), "{stderr}");
    assert!(
        record(&dir.path().join("merged.json")).stages[0]
            .validity
            .valid
    );

    // What cannot work says why, before anything is sent.
    let refused = |args: &[&str]| {
        let output = run(aimate(dir.path()).args(args));
        assert_eq!(output.status.code(), Some(2), "{args:?}");
        String::from_utf8_lossy(&output.stderr).into_owned()
    };
    let stderr = refused(&[
        "load",
        "--target",
        &base,
        "--keys",
        keys_path,
        "--tenants",
        "3",
    ]);
    assert!(stderr.contains("drop --tenants"), "{stderr}");
    std::fs::write(dir.path().join("stray"), "amk_1\n").unwrap();
    let stray = dir.path().join("stray");
    let stderr = refused(&["load", "--target", &base, "--keys", stray.to_str().unwrap()]);
    assert!(
        stderr.contains("not written by `aimate load prepare`"),
        "{stderr}"
    );
    let stderr = refused(&["load", "prepare", "--target", &base]);
    assert!(stderr.contains("give --admin-token"), "{stderr}");
}

#[test]
fn the_merge_takes_the_server_series_once_from_prometheus() {
    let dir = tempfile::tempdir().unwrap();
    let (_server, base, key) = server(dir.path());
    let address = base.trim_start_matches("http://").to_owned();
    let Some((_prometheus, url)) =
        crate::common::start_prometheus(dir.path(), std::slice::from_ref(&address))
    else {
        eprintln!("skipped: prometheus is not installed (apt-get install -y prometheus)");
        return;
    };
    let ready = Instant::now();
    while reqwest::blocking::get(format!("{url}/-/ready"))
        .map_or(true, |r| !r.status().is_success())
    {
        assert!(
            ready.elapsed() < Duration::from_secs(30),
            "Prometheus never got ready"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    let start = at(SystemTime::now() + Duration::from_secs(3));
    let outs: Vec<PathBuf> = (0..2)
        .map(|i| dir.path().join(format!("segment-{i}.json")))
        .collect();
    two_segments(
        dir.path(),
        &[
            "--target",
            &base,
            "--api-key",
            &key,
            "--stages",
            "200",
            "--warmup",
            WARMUP,
            "--duration",
            "4s",
            "--seed-invoices",
            "20",
            "--seed-jobs",
            "5",
        ],
        &start,
        &outs,
    );
    let (code, stderr) = merge(
        dir.path(),
        &outs,
        &[
            "--prometheus",
            &url,
            "--prometheus-selector",
            "job=\"aimate\"",
        ],
    );
    assert_eq!(code, Some(0), "{stderr}");
    let merged = record(&dir.path().join("merged.json"));
    assert_eq!(
        merged.server_source,
        aimate_reports::record::ServerSource::Prometheus { url: url.clone() }
    );
    assert_eq!(
        merged.run.config["segments"]["server_series_from"],
        "Prometheus, at merge time"
    );
    // Prometheus's series of the one instance, over the run's steady window.
    let stage = &merged.stages[0];
    let up: Vec<_> = merged.server.iter().filter(|s| s.up).collect();
    assert!(up.iter().all(|s| s.instance == address), "{up:?}");
    assert!(
        up.iter()
            .any(|s| s.t_ms >= stage.steady_start_ms && s.t_ms <= stage.steady_end_ms),
        "no sample in the steady window: {:?}",
        up.iter().map(|s| s.t_ms).collect::<Vec<_>>()
    );
    assert!(up.iter().any(|s| s.requests_total.is_some_and(|n| n > 0.0)));

    // A Prometheus that is not there is named; nothing is written in its place.
    std::fs::remove_file(dir.path().join("merged.json")).unwrap();
    let nowhere = format!("http://127.0.0.1:{}", crate::common::free_port());
    let (code, stderr) = merge(dir.path(), &outs, &["--prometheus", &nowhere]);
    assert_eq!(code, Some(3), "{stderr}");
    assert!(stderr.contains("Prometheus at"), "{stderr}");
    assert!(!dir.path().join("merged.json").exists());
}

/// Runs segments 0/2 and 1/2 of the load `plan` (its flags but the segment's own) from
/// `start`, writing `outs`, and waits for both to succeed.
fn two_segments(dir: &Path, plan: &[&str], start: &str, outs: &[PathBuf]) {
    let children: Vec<Child> = (0..2)
        .map(|i| {
            aimate(dir)
                .arg("load")
                .args(plan)
                .args(["--segment", &format!("{i}/2"), "--start-tolerance", "100ms"])
                .args(["--start-at", start, "--out"])
                .arg(&outs[i])
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(Stdio::piped())
                .spawn()
                .unwrap()
        })
        .collect();
    for child in children {
        finish(child);
    }
}
