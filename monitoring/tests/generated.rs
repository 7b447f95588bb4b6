//! The committed dashboards/ tree against what slo.toml generates, promtool on it, every
//! metric a panel or rule reads on a live server's page, and every panel query run
//! through a real Prometheus scraping a live server. Without promtool or prometheus on
//! PATH those parts say they were skipped.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use aimate_monitoring::{GeneratedFile, generate, grafana};
use aimate_reports::spec::SloSpec;

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

fn files() -> Vec<GeneratedFile> {
    let spec = SloSpec::load(&repo().join("slo.toml")).unwrap();
    generate(&spec).unwrap()
}

fn find(program: &str) -> Option<PathBuf> {
    std::env::var_os("PATH")
        .into_iter()
        .flat_map(|p| std::env::split_paths(&p).collect::<Vec<_>>())
        .map(|dir| dir.join(program))
        .find(|p| p.is_file())
}

#[test]
fn the_committed_tree_is_what_slo_toml_generates() {
    let drifted = aimate_monitoring::drifted(&repo().join("dashboards"), &files());
    assert!(
        drifted.is_empty(),
        "dashboards/ differs from slo.toml in {drifted:?}: run `aimate dashboards generate` and commit"
    );
}

#[test]
fn the_committed_deploy_files_are_what_slo_toml_generates() {
    let spec = SloSpec::load(&repo().join("slo.toml")).unwrap();
    let files = aimate_monitoring::generate_deploy(&spec).unwrap();
    assert!(
        files
            .iter()
            .any(|f| f.path.ends_with("prometheusrule.yaml"))
    );
    let drifted = aimate_monitoring::drifted(&repo().join("deploy"), &files);
    assert!(
        drifted.is_empty(),
        "deploy/ differs from slo.toml in {drifted:?}: run `aimate dashboards generate --deploy deploy` and commit"
    );
}

#[test]
fn promtool_accepts_the_config_and_rules_and_their_unit_tests_pass() {
    let Some(promtool) = find("promtool") else {
        eprintln!("skipped: promtool is not installed (apt-get install -y prometheus)");
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    aimate_monitoring::write(dir.path(), &files()).unwrap();
    let prometheus = dir.path().join("prometheus");
    for args in [
        vec!["check", "config", "prometheus.yml"],
        vec!["check", "rules", "rules.yml"],
        vec!["test", "rules", "tests/alerts.test.yml"],
    ] {
        let output = Command::new(&promtool)
            .args(&args)
            .current_dir(&prometheus)
            .output()
            .unwrap();
        assert!(
            output.status.success(),
            "promtool {args:?}:\n{}{}",
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        );
    }
}

#[test]
fn a_broken_alert_fails_its_promtool_test() {
    let Some(promtool) = find("promtool") else {
        eprintln!("skipped: promtool is not installed (apt-get install -y prometheus)");
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let mut files = files();
    // An error-rate alert that would wait for half of all requests to fail.
    let rules = files
        .iter_mut()
        .find(|f| f.path.ends_with("rules.yml"))
        .unwrap();
    rules.contents = rules.contents.replace("> 0.05\n", "> 0.5\n");
    aimate_monitoring::write(dir.path(), &files).unwrap();
    let output = Command::new(&promtool)
        .args(["test", "rules", "tests/alerts.test.yml"])
        .current_dir(dir.path().join("prometheus"))
        .output()
        .unwrap();
    let said = format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(!output.status.success(), "{said}");
    assert!(
        said.contains("AimateHighErrorRate fires when broken"),
        "{said}"
    );
}

/// PromQL words that are not metric names.
const PROMQL_WORDS: &[&str] = &[
    "sum",
    "rate",
    "by",
    "and",
    "or",
    "unless",
    "on",
    "histogram_quantile",
    "max",
    "min",
    "label_values",
    "up",
    "ignoring",
    "group_left",
    "without",
    "bool",
    "offset",
];

/// The metric names an expression reads: identifiers outside label matchers and
/// grouping clauses, that are not PromQL words or recording rules (which hold a colon).
fn metric_names(expr: &str) -> BTreeSet<String> {
    let mut names = BTreeSet::new();
    let mut depth_braces = 0;
    let mut chars = expr.char_indices().peekable();
    let mut after_grouping = false;
    while let Some((start, c)) = chars.next() {
        match c {
            '{' => depth_braces += 1,
            '}' => depth_braces -= 1,
            '"' | '[' => {
                let close = if c == '"' { '"' } else { ']' };
                for (_, c) in chars.by_ref() {
                    if c == close {
                        break;
                    }
                }
            }
            '(' if after_grouping => {
                for (_, c) in chars.by_ref() {
                    if c == ')' {
                        break;
                    }
                }
                after_grouping = false;
            }
            c if depth_braces == 0 && (c.is_ascii_alphabetic() || c == '_') => {
                let mut end = start + c.len_utf8();
                while let Some((i, c)) = chars.peek().copied() {
                    if c.is_ascii_alphanumeric() || c == '_' || c == ':' {
                        end = i + 1;
                        chars.next();
                    } else {
                        break;
                    }
                }
                let word = &expr[start..end];
                after_grouping =
                    matches!(word, "by" | "on" | "without" | "ignoring" | "group_left");
                if !PROMQL_WORDS.contains(&word) && !word.contains(':') {
                    names.insert(word.to_owned());
                }
            }
            _ => {}
        }
    }
    names
}

/// Every expression of the generated rules and dashboard.
fn expressions(files: &[GeneratedFile]) -> Vec<String> {
    let mut exprs = Vec::new();
    for file in files {
        if file.path.ends_with("rules.yml") {
            let docs = yaml_exprs(&file.contents);
            exprs.extend(docs);
        }
        if file.path.ends_with("aimate-service.json") {
            exprs.extend(grafana::queries(&file.contents));
        }
    }
    exprs
}

fn yaml_exprs(text: &str) -> Vec<String> {
    // The rules file is the generator's own YAML: an `expr` is a one-line quoted string
    // or a literal block.
    let mut exprs = Vec::new();
    let mut lines = text.lines().peekable();
    while let Some(line) = lines.next() {
        let trimmed = line.trim_start().trim_start_matches("- ");
        let Some(rest) = trimmed.strip_prefix("expr: ") else {
            continue;
        };
        if rest.starts_with('|') {
            let indent = line.len() - line.trim_start().len() + 2;
            let mut block = String::new();
            while let Some(next) = lines.peek() {
                if next.len() - next.trim_start().len() <= indent && !next.trim().is_empty() {
                    break;
                }
                block.push_str(next.trim());
                block.push('\n');
                lines.next();
            }
            exprs.push(block);
        } else {
            exprs.push(serde_json::from_str::<String>(rest).unwrap_or_else(|_| rest.to_owned()));
        }
    }
    exprs
}

#[test]
fn the_metric_name_reader_skips_labels_groupings_and_functions() {
    let names = metric_names(
        r#"histogram_quantile(0.95, sum by (le, http_route) (rate(x_bucket{a="b",c!~"d"}[5m]))) / sum(rate(y_total{}[1m])) and on (instance, job) z{w="v"} > 0.5 unless aimate_slo:errors:ratio_rate5m"#,
    );
    assert_eq!(
        names.into_iter().collect::<Vec<_>>(),
        ["x_bucket", "y_total", "z"]
    );
}

async fn live_server(dir: &Path) -> aimate_server::Running {
    let mut config = aimate_server::ServerConfig::with_data_dir(dir.join("data"));
    config.bind = Some("127.0.0.1:0".parse().unwrap());
    config.log_dir = dir.join("logs");
    config.database_url = None;
    config.admin_token = Some("monitoring-admin".into());
    // Small enough that the test's bursts get 429s: the error panels need errors.
    config.rate_limit_per_second = 20;
    config.rate_limit_burst = 20;
    // A fleet's configuration, so the Redis cache's series are on the page too: the
    // Redis of `TEST_REDIS_URL`, else a port nothing listens on (the cache then serves
    // degraded and says so in `cache_redis_up`).
    let redis = std::env::var("TEST_REDIS_URL")
        .ok()
        .filter(|url| !url.is_empty())
        .unwrap_or_else(|| {
            let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
            format!("redis://{}", closed.local_addr().unwrap())
        });
    config.redis_url = Some(redis);
    config.redis_prefix = format!(
        "aimate-monitoring-test:{}:{}:",
        std::process::id(),
        dir.display()
    );
    aimate_server::spawn(config).await.unwrap()
}

/// Reads, writes, cache hits and misses, and a burst over the rate limit.
async fn traffic(base: &str, seconds: u64) {
    let client = reqwest::Client::new();
    let created: serde_json::Value = client
        .post(format!("{base}/api/admin/tenants"))
        .bearer_auth("monitoring-admin")
        .json(&serde_json::json!({"name": "monitoring test"}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let key = created["api_key"].as_str().unwrap().to_owned();
    let until = Instant::now() + Duration::from_secs(seconds);
    while Instant::now() < until {
        let _ = client
            .post(format!("{base}/api/invoices"))
            .bearer_auth(&key)
            .json(&serde_json::json!({"customer": "Ada", "amount_cents": 1200, "currency": "EUR"}))
            .send()
            .await;
        for path in [
            "/api/dashboard",
            "/api/invoices",
            "/api/jobs",
            "/api/dashboard",
        ] {
            let _ = client
                .get(format!("{base}{path}"))
                .bearer_auth(&key)
                .send()
                .await;
        }
        // Over the limit: some of these are 429s.
        for _ in 0..30 {
            let _ = client
                .get(format!("{base}/api/dashboard"))
                .bearer_auth(&key)
                .send()
                .await;
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_metric_a_panel_or_rule_reads_is_on_a_live_servers_page() {
    let dir = tempfile::tempdir().unwrap();
    let server = live_server(dir.path()).await;
    let base = format!("http://{}", server.addr);
    traffic(&base, 1).await;
    let page = reqwest::get(format!("{base}/api/metrics"))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let exported: BTreeSet<&str> = page
        .lines()
        .filter(|l| !l.starts_with('#'))
        .filter_map(|l| l.split(['{', ' ']).next())
        .collect();
    let exprs = expressions(&files());
    assert!(exprs.len() > 30, "only {} expressions found", exprs.len());
    let mut read = BTreeSet::new();
    for expr in &exprs {
        read.extend(metric_names(expr));
    }
    // `up` is Prometheus's own; everything else must be the server's.
    let missing: Vec<&String> = read
        .iter()
        .filter(|name| !exported.contains(name.as_str()))
        .collect();
    assert!(missing.is_empty(), "read but not exported: {missing:?}");
    assert!(read.contains("cache_requests_total") && read.contains("target_info"));
    server.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_panel_query_returns_data_from_a_real_prometheus() {
    let Some(prometheus) = find("prometheus") else {
        eprintln!("skipped: prometheus is not installed (apt-get install -y prometheus)");
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let server = live_server(dir.path()).await;
    let base = format!("http://{}", server.addr);
    // The generated configuration, scraping this server every second.
    let files = files();
    aimate_monitoring::write(&dir.path().join("dashboards"), &files).unwrap();
    let prom_dir = dir.path().join("dashboards/prometheus");
    let config = std::fs::read_to_string(prom_dir.join("prometheus.yml"))
        .unwrap()
        .replace("scrape_interval: 15s", "scrape_interval: 1s")
        .replace("evaluation_interval: 15s", "evaluation_interval: 1s")
        .replace("127.0.0.1:8080", &server.addr.to_string());
    std::fs::write(prom_dir.join("prometheus.yml"), config).unwrap();
    let listen = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap();
    let mut child = Command::new(prometheus)
        .arg(format!(
            "--config.file={}",
            prom_dir.join("prometheus.yml").display()
        ))
        .arg(format!(
            "--storage.tsdb.path={}",
            dir.path().join("tsdb").display()
        ))
        .arg(format!("--web.listen-address={listen}"))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    traffic(&base, 15).await;
    let client = reqwest::Client::new();
    let mut failures = Vec::new();
    let queries = grafana::queries(
        &files
            .iter()
            .find(|f| f.path.ends_with("aimate-service.json"))
            .unwrap()
            .contents,
    );
    assert!(queries.len() >= 15, "{} panel queries", queries.len());
    for query in &queries {
        let answer: serde_json::Value = client
            .get(format!("http://{listen}/api/v1/query"))
            .query(&[("query", query.as_str())])
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        let results = answer["data"]["result"].as_array().map_or(0, Vec::len);
        if answer["status"] != "success" || results == 0 {
            failures.push(format!("{query}\n  → {answer}"));
        }
    }
    let _ = child.kill();
    let _ = child.wait();
    server.stop().await.unwrap();
    assert!(
        failures.is_empty(),
        "queries without data:\n{}",
        failures.join("\n")
    );
}
