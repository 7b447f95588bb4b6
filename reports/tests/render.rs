//! Renderers on hand-built records: well-formed output, the charts present, nothing
//! fetched from the network, counts that match the grades.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use aimate_reports::grade::{Verdict, grade};
use aimate_reports::render;
use support::{long_run, spec};

fn rendered(renderer: impl FnOnce(&mut Vec<u8>) -> std::io::Result<()>) -> String {
    let mut out = Vec::new();
    renderer(&mut out).unwrap();
    String::from_utf8(out).unwrap()
}

#[test]
fn html_is_self_contained_with_well_formed_charts() {
    let record = long_run(&[("100", 100.0), ("1k", 1000.0)], 20);
    let spec = spec();
    let report = grade(&record, &spec);
    let html = rendered(|out| render::html::render(&report, &record, &spec, out));
    assert!(html.starts_with("<!DOCTYPE html>"));
    // The whole page is well-formed (XHTML-compatible markup), not just its charts.
    let page = roxmltree::Document::parse_with_options(
        &html,
        roxmltree::ParsingOptions {
            allow_dtd: true,
            ..roxmltree::ParsingOptions::default()
        },
    )
    .unwrap();
    assert_eq!(page.root_element().tag_name().name(), "html");
    assert!(html.contains(&format!(
        "badge {}",
        if report.verdict == Verdict::Pass {
            "PASS"
        } else {
            "FAIL"
        }
    )));
    // Every chart is an inline SVG that parses as XML.
    let mut charts = 0;
    let mut rest = html.as_str();
    while let Some(start) = rest.find("<svg") {
        let end = rest[start..].find("</svg>").unwrap() + start + "</svg>".len();
        roxmltree::Document::parse(&rest[start..end]).unwrap();
        charts += 1;
        rest = &rest[end..];
    }
    assert_eq!(charts, 5, "latency, rate, errors, distribution, server");
    assert!(html.contains("Latency from the intended send time"));
    // Nothing to fetch: no scripts, no external styles, fonts or images.
    let lower = html.to_lowercase();
    assert!(!lower.contains("<script") && !lower.contains("<link") && !lower.contains("@import"));
    for attribute in [
        "src=\"http",
        "href=\"http",
        "src=http",
        "href=http",
        "url(http",
    ] {
        assert!(!lower.contains(attribute), "{attribute}");
    }
    // Event text is escaped.
    assert!(html.contains("&lt;test &amp; &quot;quotes&quot;&gt;"));
    let phases = aimate_reports::summary::phase_summaries(&record).len();
    assert_eq!(
        html.matches("<tr><td").count(),
        report.grades.len() + record.stages.len() + record.events.len() + phases
    );
}

#[test]
fn junit_is_well_formed_and_counts_match() {
    let mut record = long_run(&[("100", 100.0)], 10);
    // Make one objective fail and one be invalid.
    record.server.clear();
    let report = grade(&record, &spec());
    let xml = rendered(|out| render::junit::render(&report, &record, out));
    let doc = roxmltree::Document::parse(&xml).unwrap();
    let root = doc.root_element();
    assert_eq!(root.tag_name().name(), "testsuites");
    let cases: Vec<_> = doc
        .descendants()
        .filter(|n| n.has_tag_name("testcase"))
        .collect();
    assert_eq!(cases.len(), report.grades.len());
    assert_eq!(
        root.attribute("tests").unwrap().parse::<usize>().unwrap(),
        report.grades.len()
    );
    let failures = doc
        .descendants()
        .filter(|n| n.has_tag_name("failure"))
        .count();
    let errors = doc
        .descendants()
        .filter(|n| n.has_tag_name("error"))
        .count();
    assert_eq!(failures, report.count(Verdict::Fail));
    assert_eq!(errors, report.count(Verdict::Invalid));
    assert!(errors >= 3, "server ratios without samples are errors");
    assert!(
        doc.descendants()
            .filter(|n| n.has_tag_name("error"))
            .any(|n| n
                .attribute("message")
                .unwrap()
                .contains("no server samples"))
    );
}

#[test]
fn markdown_and_json_carry_every_grade() {
    let record = long_run(&[("100", 100.0), ("1k", 1000.0)], 10);
    let report = grade(&record, &spec());
    let markdown = rendered(|out| render::markdown::render(&report, &record, out));
    assert!(markdown.starts_with("## aimate SLO report: "));
    let phases = aimate_reports::summary::phase_summaries(&record).len();
    assert_eq!(
        markdown.matches("\n| ").count(),
        2 + record.stages.len() + report.grades.len() + usize::from(phases > 0) + phases,
        "a header per table and a row each"
    );
    let json = rendered(|out| render::json::render(&report, &record, out));
    let value: serde_json::Value = serde_json::from_str(&json).unwrap();
    assert_eq!(
        value["grades"].as_array().unwrap().len(),
        report.grades.len()
    );
    assert_eq!(
        value["exit_code"].as_u64().unwrap(),
        u64::from(report.exit_code())
    );
    // The evidence behind a share objective, beside its grade.
    assert!(markdown.contains("holds at 95 %:"), "{markdown}");
    // The write read-back, in words and in figures.
    assert!(markdown.contains("Acknowledged writes: 120 — 120 read back as written, 0 missing"));
    assert_eq!(value["writes"]["checked"], 120);
    let html = rendered(|out| render::html::render(&report, &record, &spec(), out));
    assert!(html.contains("Acknowledged writes: 120"));
    let first = &value["grades"][0];
    for field in [
        "scope",
        "objective",
        "verdict",
        "value",
        "threshold",
        "unit",
        "margin",
        "samples",
    ] {
        assert!(first.get(field).is_some(), "{field}");
    }
}

#[test]
fn baseline_comparisons_show_in_every_format() {
    use aimate_reports::regression::{BaselineRun, compare};
    let spec = spec();
    let fast = long_run(&[("100", 100.0)], 10);
    let slow = long_run(&[("100", 100.0), ("1k", 1000.0)], 10);
    let baseline = BaselineRun::new(fast, &spec);
    let mut report = grade(&slow, &spec);
    compare(&mut report, &slow, &[baseline], &spec, Some(0.0));
    let failed = report.baseline.iter().find(|c| c.failed).unwrap();
    let effect = failed.effect();
    assert!(effect.contains("(95 %:"), "{effect}");
    let html = rendered(|out| render::html::render(&report, &slow, &spec, out));
    assert!(html.contains("Against the baseline") && html.contains("REGRESSION"));
    assert!(html.contains("within-run noise only"));
    let markdown = rendered(|out| render::markdown::render(&report, &slow, out));
    assert!(markdown.contains("### Against the baseline"));
    assert!(markdown.contains(&effect), "{markdown}");
    let xml = rendered(|out| render::junit::render(&report, &slow, out));
    let doc = roxmltree::Document::parse(&xml).unwrap();
    assert!(
        doc.descendants()
            .any(|n| n.has_tag_name("failure") && n.attribute("type") == Some("REGRESSION"))
    );
    let json = rendered(|out| render::json::render(&report, &slow, out));
    assert!(json.contains("\"baseline\""));
}

#[test]
fn markdown_lists_a_drills_events() {
    use aimate_reports::record::Event;
    let mut record = long_run(&[("100", 100.0)], 10);
    record.events.push(Event {
        t_ms: 3_000,
        kind: aimate_reports::record::EventKind::Fault,
        detail: "kill-instance 1 SIGKILL".into(),
        end_ms: Some(5_500),
    });
    record.events.push(Event {
        t_ms: 5_500,
        kind: aimate_reports::record::EventKind::Ready,
        detail: "instance 1 ready 30 ms after restart".into(),
        end_ms: None,
    });
    let report = grade(&record, &spec());
    let markdown = rendered(|out| render::markdown::render(&report, &record, out));
    assert!(markdown.contains("### Events"));
    assert!(markdown.contains("- 3.0–5.5 s **fault**: kill-instance 1 SIGKILL"));
    assert!(markdown.contains("- 5.5 s **ready**: instance 1 ready 30 ms after restart"));
}

#[test]
fn the_ci_summary_puts_failures_first_and_links_nowhere() {
    use aimate_reports::regression::{BaselineRun, compare};
    use aimate_reports::spec::SloSpec;
    let spec = SloSpec::parse(
        "[run]\nobjectives = [\"p(99) < 60s\", \"ratio(cache_hits) > 80%\", \"p(50) < 1us\"]\n",
        "ci.toml",
    )
    .unwrap();
    let mut record = long_run(&[("100", 100.0)], 10);
    record.server.clear(); // the cache ratio cannot be graded: INVALID
    let fast = BaselineRun::new(long_run(&[("100", 100.0)], 10), &spec);
    let slow = long_run(&[("100", 100.0), ("1k", 1000.0)], 10);
    let mut report = grade(&record, &spec);
    assert_eq!(report.verdict, Verdict::Fail);
    let text =
        rendered(|out| render::summary::render("drill --quick: ladder", &report, &record, out));
    assert!(
        text.starts_with("### drill --quick: ladder: **FAIL** (exit 1)"),
        "{text}"
    );
    let fail = text.find("| **FAIL** | run | `p(50) < 1us`").unwrap();
    let invalid = text
        .find("| *INVALID* | run | `ratio(cache_hits) > 80%`")
        .unwrap();
    let passed = text.find("| PASS | run | `p(99) < 60s`").unwrap();
    assert!(fail < invalid && invalid < passed, "{text}");
    assert!(text.contains("<details><summary>All 3 grades</summary>"));
    for link in ["http", "](", "<a "] {
        assert!(!text.contains(link), "{link} in {text}");
    }
    assert!(!text.contains("Against the baseline"));

    report = grade(&slow, &spec);
    compare(&mut report, &slow, &[fast], &spec, Some(0.1));
    let text = rendered(|out| render::summary::render("report", &report, &slow, out));
    assert!(
        text.contains("regressed past the allowed regression"),
        "{text}"
    );
    let regression = text.find("| **REGRESSION** | run | `p(99) < 60s`").unwrap();
    assert!(regression < text.find("<details>").unwrap(), "{text}");
    assert!(text.contains("(95 %:"), "{text}");
}

#[test]
fn errors_by_kind_and_the_slowest_request_show_in_every_format() {
    let mut record = long_run(&[("1k", 1000.0)], 10);
    // A target's own rate limit: a quarter of every second answered 429, and one
    // request that took 4.2 s.
    let stage = &mut record.stages[0];
    for second in &mut stage.timeline {
        *second.outcomes.entry("429".into()).or_default() += 250;
    }
    let route = stage.routes.get_mut("GET /api/dashboard").unwrap();
    *route.outcomes.entry("429".into()).or_default() += 2500;
    route.latency_us.record(4_200_000);
    let report = grade(&record, &spec());
    assert_eq!(report.verdict, Verdict::Fail);

    let markdown = rendered(|out| render::markdown::render(&report, &record, out));
    assert!(markdown.contains("| Max ms |"), "{markdown}");
    // HDR keeps three significant digits: 4.2 s reads 4202.49 ms.
    assert!(markdown.contains("| 4202.49 |"), "{markdown}");
    assert!(
        markdown.contains("| 2,500 (2,500 × 429 rate limited) |"),
        "{markdown}"
    );
    let html = rendered(|out| render::html::render(&report, &record, &spec(), out));
    assert!(html.contains("<th>Max ms</th>") && html.contains("4202.49"));
    assert!(html.contains("2,500 × 429 rate limited"));
    let summary = rendered(|out| render::summary::render("drill", &report, &record, out));
    assert!(
        summary.contains("2,500 × 429 rate limited") && summary.contains("4202.49"),
        "{summary}"
    );
    let json: serde_json::Value =
        serde_json::from_str(&rendered(|out| render::json::render(&report, &record, out))).unwrap();
    let stage = &json["stages"][0];
    assert!(
        (stage["max_ms"].as_f64().unwrap() - 4200.0).abs() < 5.0,
        "{stage}"
    );
    assert_eq!(stage["errors_by_kind"][0]["kind"], "429");
    assert_eq!(stage["errors_by_kind"][0]["count"], 2500);
    assert!(
        json["findings"][0]
            .as_str()
            .unwrap()
            .contains("refused with 429 by the target's own rate limit"),
        "{json}"
    );
    // The cause and the remedy, in every human format.
    let finding = "2,500 of 12,490 requests were refused with 429 by the target's own rate limit";
    assert!(
        markdown.contains(finding) && markdown.contains("--tenants auto"),
        "{markdown}"
    );
    assert!(summary.contains(finding), "{summary}");
    assert!(
        html.contains(&finding.replace('\'', "&apos;")),
        "the HTML names the finding"
    );
    let xml = rendered(|out| render::junit::render(&report, &record, out));
    let failure = xml
        .lines()
        .find(|l| l.contains("<failure") && l.contains("rate(errors)"))
        .or_else(|| {
            let at = xml.find("name=\"rate(errors) &lt; 1%\"")?;
            xml[at..].lines().find(|l| l.contains("<failure"))
        })
        .unwrap_or_else(|| panic!("no failed error objective:\n{xml}"));
    assert!(
        failure.contains("errors: ")
            && failure.contains("× 429 rate limited")
            && failure.contains("--tenants auto"),
        "{failure}"
    );
}

#[test]
fn the_distribution_chart_ends_each_stage_at_its_slowest_request() {
    let mut record = long_run(&[("1k", 1000.0)], 10);
    let route = record.stages[0]
        .routes
        .get_mut("GET /api/dashboard")
        .unwrap();
    route.latency_us.record(4_200_000);
    let svg = aimate_reports::render::charts::distribution(&record).unwrap();
    assert!(
        svg.contains("stage 1k (max 4202.5 ms)"),
        "legend names the max"
    );
    assert!(svg.contains("its slowest request"));
}

#[test]
fn each_phase_shows_its_errors_and_its_slowest_request() {
    use aimate_reports::record::{Event, EventKind};
    let mut record = long_run(&[("1k", 1000.0)], 12);
    record.events.retain(|e| e.kind != EventKind::Fault);
    let stage = &mut record.stages[0];
    let (start, end) = (stage.steady_start_ms + 4_000, stage.steady_start_ms + 7_000);
    // During the fault: connections refused and one request held up 1.5 s.
    for second in &mut stage.timeline {
        if second.t_ms >= start && second.t_ms < end {
            *second.outcomes.entry("connect_error".into()).or_default() += 40;
            second.latency_us.record(1_500_000);
        }
    }
    record.events.push(Event {
        t_ms: start,
        kind: EventKind::Fault,
        detail: "kill instance 1".into(),
        end_ms: Some(end),
    });
    let phases = aimate_reports::summary::phase_summaries(&record);
    assert_eq!(phases.len(), 3, "{phases:#?}");
    let fault = &phases[1];
    assert!(
        fault.scope.contains("fault (kill instance 1)"),
        "{fault:#?}"
    );
    assert_eq!(fault.seconds, 3);
    assert!((fault.max_ms.unwrap() - 1500.0).abs() < 2.0, "{fault:#?}");
    assert!(
        fault.errors_text().contains("120 × connection failed"),
        "{}",
        fault.errors_text()
    );
    assert!(phases[0].max_ms.unwrap() < 100.0 && phases[2].max_ms.unwrap() < 100.0);

    let report = grade(&record, &spec());
    let markdown = rendered(|out| render::markdown::render(&report, &record, out));
    assert!(
        markdown.contains("### Phases") && markdown.contains("120 × connection failed"),
        "{markdown}"
    );
    let html = rendered(|out| render::html::render(&report, &record, &spec(), out));
    assert!(html.contains("<h2>Phases</h2>"));
    let summary = rendered(|out| render::summary::render("chaos", &report, &record, out));
    assert!(
        summary.contains("| Phase | Errors | P95 ms | Max ms |"),
        "{summary}"
    );
    let json: serde_json::Value =
        serde_json::from_str(&rendered(|out| render::json::render(&report, &record, out))).unwrap();
    assert_eq!(json["phases"].as_array().unwrap().len(), 3);
    assert!(json["phases"][1]["max_ms"].as_f64().unwrap() > 1400.0);
}
