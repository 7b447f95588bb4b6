//! `aimate drill --live` watched in a real browser (Debian's Chromium, driven headless
//! through chromedriver over WebDriver): the page updates while the drill runs, every
//! second it shows at the end is that second of the record, and its verdict panel is
//! the report's. Screenshots of both parts are saved beside the test output.
//!
//! Needs `chromium` and `chromium-driver` (apt); skipped without them unless
//! `AIMATE_REQUIRE_BROWSER` is set (`.ci/run` sets it).

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use fantoccini::{Client, ClientBuilder, Locator};
use serde_json::{Value, json};

use crate::common::{Reaped, aimate, free_port, read_json, wait_exit, wait_ready};

const EXPERIMENT: &str = r#"
title = "Latency for the live view"
description = "150 ms on every response for 3 s"
instances = 1
rollbacks = ["reset-toxics"]

[load]
rate = "50"
warmup = "1s"
duration = "10s"

[[method]]
fault = "toxic"
type = "latency"
stream = "downstream"
toxicity = 1.0
attributes = { latency = 150, jitter = 0 }
at = "3s"
duration = "3s"
"#;

fn browser() -> Option<(PathBuf, PathBuf)> {
    let found = (
        crate::common::find_on_path("chromedriver"),
        crate::common::find_on_path("chromium"),
    );
    match found {
        (Some(driver), Some(chromium)) => Some((driver, chromium)),
        _ if std::env::var_os("AIMATE_REQUIRE_BROWSER").is_some() => {
            panic!("AIMATE_REQUIRE_BROWSER is set but chromium/chromedriver are not installed")
        }
        _ => None,
    }
}

/// As the page prints a latency (live.js `fmtUs`).
fn shown_latency(us: Option<u64>) -> String {
    match us {
        None => "–".to_owned(),
        Some(us) if us < 1_000_000 => format!("{:.2} ms", us as f64 / 1000.0),
        Some(us) => format!("{:.2} s", us as f64 / 1e6),
    }
}

#[test]
fn a_drill_watched_live_in_chromium_shows_the_records_seconds_and_the_reports_verdicts() {
    let Some((driver_bin, chromium)) = browser() else {
        eprintln!(
            "skipped: chromium and chromium-driver are not installed (apt-get install -y chromium chromium-driver)"
        );
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let experiments = dir.path().join("experiments");
    std::fs::create_dir_all(&experiments).unwrap();
    std::fs::write(experiments.join("latency.toml"), EXPERIMENT).unwrap();
    let out = dir.path().join("out");
    let live_port = free_port();
    let live_url = format!("http://127.0.0.1:{live_port}/");

    let driver_port = free_port();
    let mut driver = Reaped(
        Command::new(&driver_bin)
            .arg(format!("--port={driver_port}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap(),
    );
    let driver_url = format!("http://127.0.0.1:{driver_port}");
    wait_ready(
        &format!("{driver_url}/status"),
        &mut driver,
        Duration::from_secs(20),
    );

    let slo = Path::new(env!("CARGO_MANIFEST_DIR")).join("../slo.toml");
    let mut drill = Reaped(
        aimate(dir.path())
            .args([
                "drill",
                "--stages",
                "100",
                "--warmup",
                "1s",
                "--duration",
                "8s",
            ])
            .arg("--slo")
            .arg(&slo)
            .arg("--experiments")
            .arg(&experiments)
            .arg("--out-dir")
            .arg(&out)
            .arg(format!("--live=127.0.0.1:{live_port}"))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap(),
    );
    wait_ready(&live_url, &mut drill, Duration::from_secs(30));
    let runtime = tokio::runtime::Runtime::new().unwrap();
    runtime.block_on(watch(
        &driver_url,
        &chromium,
        &live_url,
        &mut drill,
        &out,
        live_port,
    ));
}

/// Watches the drill in the browser from its start to its end, then checks each part.
async fn watch(
    driver_url: &str,
    chromium: &Path,
    live_url: &str,
    drill: &mut Reaped,
    out: &Path,
    live_port: u16,
) {
    let capabilities = json!({
        "goog:chromeOptions": {
            "binary": chromium,
            "args": ["--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                     "--window-size=1400,2600", "--no-first-run", "--disable-background-networking"],
        }
    });
    let browser = ClientBuilder::new(hyper_util::client::legacy::connect::HttpConnector::new())
        .capabilities(capabilities.as_object().unwrap().clone())
        .connect(driver_url)
        .await
        .unwrap();
    browser.goto(live_url).await.unwrap();

    // While the ladder runs, the page fills and keeps updating.
    let seen_running = wait_for(&browser, Duration::from_secs(30), "a second shown while the ladder runs",
        "return document.querySelectorAll('#seconds tr.second').length > 0 \
         && document.querySelector('nav#parts button[data-part=\"0\"]').textContent.includes('running') \
         ? Number(document.body.dataset.frames) : null").await;
    let later = wait_for(
        &browser,
        Duration::from_secs(10),
        "more frames a second later",
        &format!(
            "const n = Number(document.body.dataset.frames); return n > {seen_running} ? n : null"
        ),
    )
    .await;
    assert!(later.as_f64() > seen_running.as_f64());

    // The drill ends: the page says so and stops reconnecting.
    wait_for(
        &browser,
        Duration::from_secs(120),
        "the run to end",
        "return document.getElementById('connection').dataset.state === 'ended' ? true : null",
    )
    .await;
    let status = wait_exit(drill, Duration::from_secs(30));
    let stderr = {
        use std::io::Read;
        let mut text = String::new();
        if let Some(pipe) = drill.0.stderr.as_mut() {
            let _ = pipe.read_to_string(&mut text);
        }
        text
    };
    assert!(
        matches!(status.and_then(|s| s.code()), Some(0 | 1)),
        "{status:?}: {stderr}"
    );
    assert!(
        stderr.contains(&format!("live view on http://127.0.0.1:{live_port}/")),
        "{stderr}"
    );

    let (run_dir, _) = crate::common::first_run(out);
    let parts = [
        (0, run_dir.clone(), "ladder"),
        (1, run_dir.join("chaos-latency"), "experiment"),
    ];
    let screenshots = PathBuf::from(env!("CARGO_TARGET_TMPDIR"));
    for (part, reports, name) in parts {
        browser
            .find(Locator::Css(&format!(
                "nav#parts button[data-part=\"{part}\"]"
            )))
            .await
            .unwrap()
            .click()
            .await
            .unwrap();
        wait_for(
            &browser,
            Duration::from_secs(5),
            "the part on show",
            &format!(
                "return document.querySelector('#seconds tr.second[data-part=\"{part}\"]') \
                      && document.getElementById('overall').dataset.final === 'true' ? true : null"
            ),
        )
        .await;
        same_seconds_as_the_record(&browser, &reports.join("run.json"), part).await;
        same_verdicts_as_the_report(&browser, &reports.join("report.json")).await;
        let png = browser.screenshot().await.unwrap();
        let path = screenshots.join(format!("live-view-{name}.png"));
        std::fs::write(&path, png).unwrap();
        eprintln!("screenshot: {}", path.display());
    }
    // The experiment's fault is on the page as an event.
    let events: Value = browser
        .execute("return [...document.querySelectorAll('#events li[data-kind=\"fault\"]')].map(li => li.textContent)", vec![])
        .await
        .unwrap();
    assert!(
        events.as_array().is_some_and(|e| e
            .iter()
            .any(|t| t.as_str().is_some_and(|t| t.contains("latency")))),
        "{events}"
    );
    // The finished part links its report, served by the live view while it ran.
    let href: Value = browser
        .execute("const a = document.getElementById('report-href'); return a ? a.getAttribute('href') : null", vec![])
        .await
        .unwrap();
    assert_eq!(href.as_str(), Some("report/1/index.html"));
    browser.close().await.unwrap();
}

/// Runs `script` every 200 ms until it returns something other than null.
async fn wait_for(browser: &Client, timeout: Duration, what: &str, script: &str) -> Value {
    let started = Instant::now();
    loop {
        let value = browser.execute(script, vec![]).await.unwrap();
        if !value.is_null() {
            return value;
        }
        assert!(started.elapsed() < timeout, "waited {timeout:?} for {what}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// Every second the page shows is that second of the record, to the microsecond.
async fn same_seconds_as_the_record(browser: &Client, record: &Path, part: usize) {
    let record: aimate_reports::RunRecord =
        serde_json::from_slice(&std::fs::read(record).unwrap()).unwrap();
    let shown = browser
        .execute(
            "return [...document.querySelectorAll('#seconds tr.second')].map(r => ({ \
               part: Number(r.dataset.part), stage: Number(r.dataset.stage), t_ms: Number(r.dataset.tMs), \
               sent: r.querySelector('.c-sent').textContent, started: r.querySelector('.c-started').textContent, \
               p50: r.querySelector('.c-p50').textContent, p95: r.querySelector('.c-p95').textContent, \
               p99: r.querySelector('.c-p99').textContent, max: r.querySelector('.c-max').textContent, \
               errors: r.querySelector('.c-errors').textContent }))",
            vec![],
        )
        .await
        .unwrap();
    let shown = shown.as_array().unwrap();
    let in_record: usize = record.stages.iter().map(|s| s.timeline.len()).sum();
    assert_eq!(
        shown.len(),
        in_record,
        "part {part}: every second of the record is shown"
    );
    for row in shown {
        assert_eq!(row["part"], part);
        let stage = &record.stages[row["stage"].as_u64().unwrap() as usize];
        let second = stage
            .timeline
            .iter()
            .find(|s| s.t_ms == row["t_ms"].as_u64().unwrap())
            .unwrap_or_else(|| panic!("part {part}: {row} is not in the record"));
        let errors: u64 = second
            .outcomes
            .iter()
            .filter(|(outcome, _)| aimate_reports::record::outcome_is_error(outcome))
            .map(|(_, n)| n)
            .sum();
        let expected = json!({
            "part": part, "stage": row["stage"], "t_ms": second.t_ms,
            "sent": second.sent.to_string(), "started": second.started.to_string(),
            "p50": shown_latency(second.latency_us.quantile_micros(0.50)),
            "p95": shown_latency(second.latency_us.quantile_micros(0.95)),
            "p99": shown_latency(second.latency_us.quantile_micros(0.99)),
            "max": shown_latency(second.latency_us.max_micros()),
            "errors": errors.to_string(),
        });
        assert_eq!(row, &expected, "part {part}");
    }
}

/// The verdict panel at the end is the report's, objective by objective.
async fn same_verdicts_as_the_report(browser: &Client, report: &Path) {
    let report = read_json(report);
    let shown = browser
        .execute(
            "return { verdict: document.getElementById('overall').dataset.verdict, \
               grades: [...document.querySelectorAll('#verdicts tr.grade')].map(r => \
                 [r.dataset.scope, r.dataset.objective, r.dataset.verdict]) }",
            vec![],
        )
        .await
        .unwrap();
    let expected: Vec<Value> = report["grades"]
        .as_array()
        .unwrap()
        .iter()
        .map(|g| json!([g["scope"], g["objective"], g["verdict"]]))
        .collect();
    assert!(!expected.is_empty());
    assert_eq!(shown["grades"], Value::Array(expected));
    assert_eq!(shown["verdict"], report["verdict"]);
}
