//! Prometheus recording and alerting rules: the guide's four alerts with its thresholds
//! and durations, instance down and readiness, and multi-window multi-burn-rate alerts
//! (the SRE workbook's) for every error and latency SLO of slo.toml.

use aimate_server::metric_catalogue::{
    CACHE_REDIS_UP, PROCESS_RESIDENT_MEMORY, REQUEST_DURATION, TARGET_INFO,
};
use serde_json::{Value, json};

use crate::promql;
use crate::slo::Slo;

/// The job name the generated Prometheus configuration scrapes the instances under;
/// `up{job=…}` alerts on it.
pub const JOB: &str = "aimate";

/// The guide's "Alert Configuration" (SCALING_GUIDE.md, Monitoring & Alerts).
pub const HIGH_ERROR_RATE: f64 = 0.05;
pub const SLOW_P95_SECONDS: f64 = 1.0;
pub const LOW_CACHE_HIT_RATE: f64 = 0.70;
pub const HIGH_MEMORY_SHARE: f64 = 0.85;

/// The windows SLO ratios are recorded over (the burn-rate pairs use them).
pub const SLO_WINDOWS: [&str; 5] = ["5m", "30m", "1h", "6h", "3d"];

/// A burn-rate condition: the budget burns `factor` times too fast over both windows.
pub struct Burn {
    pub factor: f64,
    pub long: &'static str,
    pub short: &'static str,
}

/// The SRE workbook's pages (2 % of a 30-day budget in 1 h, 5 % in 6 h) and ticket
/// (10 % in 3 days).
pub const PAGE_BURNS: [Burn; 2] = [
    Burn {
        factor: 14.4,
        long: "1h",
        short: "5m",
    },
    Burn {
        factor: 6.0,
        long: "6h",
        short: "30m",
    },
];
pub const TICKET_BURNS: [Burn; 1] = [Burn {
    factor: 1.0,
    long: "3d",
    short: "6h",
}];

/// One alerting rule, with what the runbook and the rule tests need to know about it.
#[derive(Debug, Clone)]
pub struct Alert {
    pub name: String,
    pub expr: String,
    pub for_: String,
    /// `page`, `warning` or `ticket`.
    pub severity: &'static str,
    /// Extra labels (the guide's `action`, an SLO's name).
    pub labels: Vec<(&'static str, String)>,
    pub summary: String,
    pub description: String,
    /// Section of RUNBOOK.md.
    pub runbook: String,
    /// What to check first, for RUNBOOK.md.
    pub check_first: &'static str,
}

impl Alert {
    pub fn runbook_url(&self) -> String {
        format!("RUNBOOK.md#{}", self.runbook)
    }

    /// The rule's own labels: severity and the extra ones.
    pub fn label_map(&self) -> serde_json::Map<String, Value> {
        let mut labels = serde_json::Map::new();
        labels.insert("severity".into(), self.severity.into());
        for (key, value) in &self.labels {
            labels.insert((*key).into(), value.clone().into());
        }
        labels
    }

    fn rule(&self) -> Value {
        json!({
            "alert": self.name,
            "expr": self.expr,
            "for": self.for_,
            "labels": self.label_map(),
            "annotations": self.annotations(),
        })
    }

    pub fn annotations(&self) -> Value {
        json!({
            "summary": self.summary,
            "description": self.description,
            "runbook_url": self.runbook_url(),
        })
    }
}

fn percent(share: f64) -> String {
    let value = share * 100.0;
    if (value - value.round()).abs() < 1e-9 {
        format!("{value:.0} %")
    } else {
        format!("{value} %")
    }
}

/// Memory of AI Mate processes only (Prometheus and HAProxy export the same name).
fn aimate_memory() -> String {
    format!(
        "{} and on (instance, job) {}{{service_name=\"aimate\"}}",
        PROCESS_RESIDENT_MEMORY.name, TARGET_INFO.name
    )
}

/// Every alert, guide's first.
pub fn alerts(slos: &[Slo], memory_limit_bytes: Option<u64>) -> Vec<Alert> {
    let mut alerts = vec![
        Alert {
            name: "AimateHighErrorRate".into(),
            expr: format!("{}\n> {HIGH_ERROR_RATE}", promql::error_ratio("", "5m")),
            for_: "5m".into(),
            severity: "page",
            labels: vec![("action", "page_oncall".into())],
            summary: format!(
                "More than {} of API requests fail",
                percent(HIGH_ERROR_RATE)
            ),
            description: format!(
                "The share of API requests answered 5xx or 429 has been over {} for 5 minutes \
                 (the guide's High Error Rate).",
                percent(HIGH_ERROR_RATE)
            ),
            runbook: "aimatehigherrorrate".into(),
            check_first: "Which routes and statuses fail (dashboard: Errors by route); \
                          `GET /api/health` of each instance (database reachable?); \
                          `http_server_shed_requests_total` (503s from load shedding: \
                          the instances are saturated) and `rate_limited_requests_total` \
                          (429s: one client over its limit?).",
        },
        Alert {
            name: "AimateSlowResponses".into(),
            expr: format!(
                "{}\n> {SLOW_P95_SECONDS}",
                promql::latency_quantile(0.95, "", "5m")
            ),
            for_: "10m".into(),
            severity: "warning",
            labels: vec![("action", "notify_slack".into())],
            summary: format!("P95 latency above {} ms", SLOW_P95_SECONDS * 1000.0),
            description: format!(
                "The 95th percentile of API request latency has been over {} ms for 10 \
                 minutes (the guide's Slow Response Time).",
                SLOW_P95_SECONDS * 1000.0
            ),
            runbook: "aimateslowresponses".into(),
            check_first: "Latency by route (one slow endpoint, or all?); DB pool in use \
                          against its max (requests queue for connections); cache hit \
                          ratio (a cold or flushed cache sends reads to the database); \
                          CPU of the instances.",
        },
        Alert {
            name: "AimateLowCacheHitRate".into(),
            expr: format!(
                "{}\n< {LOW_CACHE_HIT_RATE}",
                promql::cache_hit_ratio("", "5m")
            ),
            for_: "15m".into(),
            severity: "warning",
            labels: vec![("action", "notify_email".into())],
            summary: format!("Cache hit rate below {}", percent(LOW_CACHE_HIT_RATE)),
            description: format!(
                "Under {} of response-cache lookups have hit for 15 minutes (the guide's \
                 Low Cache Hit Rate): reads fall through to the database.",
                percent(LOW_CACHE_HIT_RATE)
            ),
            runbook: "aimatelowcachehitrate".into(),
            check_first: "Cache hit ratio by cache (dashboard): one cache or all? A \
                          write-heavy burst invalidates lists and dashboards; restarted \
                          instances start cold; a new traffic pattern (many tenants, \
                          many distinct pages) may outgrow the cache.",
        },
        Alert {
            name: "AimateInstanceDown".into(),
            expr: format!("up{{job=\"{JOB}\"}} == 0"),
            for_: "1m".into(),
            severity: "page",
            labels: Vec::new(),
            summary: "An AI Mate instance is not answering scrapes".into(),
            description: "Prometheus could not scrape an instance's /api/metrics for a \
                          minute: the process is down, frozen, or unreachable."
                .into(),
            runbook: "aimateinstancedown".into(),
            check_first: "Is the process running (systemd, `kubectl get pods`)? Its last \
                          log lines (a panic, an out-of-memory kill); the load balancer's \
                          health checks; whether the other instances absorb its traffic \
                          (error rate).",
        },
        Alert {
            name: "AimateCacheDegraded".into(),
            expr: format!("{}{{job=\"{JOB}\"}} == 0", CACHE_REDIS_UP.name),
            for_: "1m".into(),
            severity: "warning",
            labels: vec![("action", "notify_slack".into())],
            summary: "An AI Mate instance serves without its Redis".into(),
            description: "The instance's cache has not reached Redis for a minute. It \
                          still answers everything, from memory and the database, but \
                          sees other instances' writes up to 1 s late, limits each key \
                          on its own, and sends the database the reads Redis served."
                .into(),
            runbook: "aimatecachedegraded".into(),
            check_first: "Is Redis up (`redis-cli ping`) and reachable from the \
                          instance? `GET /api/health` shows `cache.status`; \
                          `cache_redis_errors_total` rising means calls fail or take \
                          over 50 ms (a slow Redis); database pool use and latency \
                          (the reads Redis no longer absorbs).",
        },
        Alert {
            name: "AimateNotReady".into(),
            expr: format!(
                "{}\n> 0\nunless\n{}\n> 0",
                promql::sum_by(
                    "instance",
                    &format!(
                        "rate({}_count{{http_route=\"/api/health\",http_response_status_code=\"503\"}}[1m])",
                        REQUEST_DURATION.name
                    )
                ),
                promql::sum_by(
                    "instance",
                    &format!(
                        "rate({}_count{{http_route=\"/api/health\",http_response_status_code=\"200\"}}[1m])",
                        REQUEST_DURATION.name
                    )
                ),
            ),
            for_: "1m".into(),
            severity: "page",
            labels: Vec::new(),
            summary: "An AI Mate instance answers its readiness probe with 503".into(),
            description: "Every readiness check of the instance has failed for a minute: \
                          it is alive but cannot reach its database, so the balancer \
                          sends it nothing."
                .into(),
            runbook: "aimatenotready".into(),
            check_first: "`GET /api/health` on the instance: its `database` field says \
                          why. Database up and accepting connections? Connection limit \
                          reached (`max_connections`)? Disk full?",
        },
    ];
    if let Some(limit) = memory_limit_bytes {
        alerts.insert(
            3,
            Alert {
                name: "AimateHighMemoryUsage".into(),
                expr: format!("({})\n/ {limit}\n> {HIGH_MEMORY_SHARE}", aimate_memory()),
                for_: "5m".into(),
                severity: "warning",
                labels: vec![("action", "auto_scale".into())],
                summary: format!(
                    "An instance uses over {} of its memory limit",
                    percent(HIGH_MEMORY_SHARE)
                ),
                description: format!(
                    "Resident memory of an instance has been over {} of the {} MiB limit \
                     for 5 minutes (the guide's High Memory Usage): scale out before it \
                     is killed.",
                    percent(HIGH_MEMORY_SHARE),
                    limit / (1024 * 1024)
                ),
                runbook: "aimatehighmemoryusage".into(),
                check_first: "Memory by instance (dashboard): one instance growing (a \
                              leak: restart it and keep its metrics) or all (load: add \
                              instances)? Requests in flight and the cache's size.",
            },
        );
    }
    for slo in slos {
        for (severity, burns, for_) in [
            ("page", &PAGE_BURNS[..], "2m"),
            ("ticket", &TICKET_BURNS[..], "15m"),
        ] {
            let conditions: Vec<String> = burns
                .iter()
                .map(|b| {
                    let limit = b.factor * slo.budget;
                    format!(
                        "(\n  {} > {limit:.6}\nand\n  {} > {limit:.6}\n)",
                        slo.ratio_rule(b.long),
                        slo.ratio_rule(b.short)
                    )
                })
                .collect();
            let windows: Vec<String> = burns
                .iter()
                .map(|b| format!("{}× over {} and {}", b.factor, b.long, b.short))
                .collect();
            alerts.push(Alert {
                name: "AimateErrorBudgetBurn".into(),
                expr: conditions.join("\nor\n"),
                for_: for_.into(),
                severity,
                labels: vec![("slo", slo.name.clone())],
                summary: format!("`{}` burns its error budget too fast", slo.text),
                description: format!(
                    "The share of {} burns the {} budget of `{}` at {}.",
                    slo.bad_events(),
                    percent(slo.budget),
                    slo.text,
                    windows.join(", or ")
                ),
                runbook: "aimateerrorbudgetburn".into(),
                check_first: "Which SLO (the `slo` label) and since when (dashboard: SLO \
                              burn rate); then as for a high error rate or slow responses. \
                              A page means the month's budget goes in days at this pace; \
                              a ticket, within the month.",
            });
        }
    }
    alerts
}

/// Recording rules: what the dashboard's heavier panels and the burn-rate alerts read.
fn recording(slos: &[Slo]) -> Vec<Value> {
    let mut rules = vec![
        json!({"record": "instance_route:aimate_http_requests:rate5m", "expr": promql::request_rate("instance, http_route", "5m", "")}),
        json!({"record": "instance:aimate_http_errors:ratio_rate5m", "expr": promql::error_ratio("instance", "5m")}),
        json!({"record": "route:aimate_http_errors:ratio_rate5m", "expr": promql::error_ratio("http_route", "5m")}),
        json!({"record": "cache:aimate_cache_hits:ratio_rate5m", "expr": promql::cache_hit_ratio("cache", "5m")}),
    ];
    for (name, q) in [("p50", 0.5), ("p95", 0.95), ("p99", 0.99)] {
        rules.push(json!({
            "record": format!("route:aimate_http_latency_seconds:{name}_5m"),
            "expr": promql::latency_quantile(q, "http_route", "5m"),
        }));
    }
    for slo in slos {
        for window in SLO_WINDOWS {
            rules.push(json!({
                "record": slo.ratio_rule(window),
                "expr": slo.bad_ratio("", window),
                "labels": {"slo": slo.name},
            }));
        }
    }
    rules
}

/// rules.yml.
pub fn rules_file(slos: &[Slo], alerts: &[Alert]) -> String {
    let value = json!({ "groups": groups(slos, alerts) });
    crate::yaml::document(
        "Generated by `aimate dashboards generate` from slo.toml and the server's metric\n\
         catalogue: edit those, not this file.",
        &value,
    )
}

/// The rule groups of rules.yml: also the `spec.groups` of the Kubernetes PrometheusRule.
pub fn groups(slos: &[Slo], alerts: &[Alert]) -> serde_json::Value {
    json!([
        {"name": "aimate-recording", "rules": recording(slos)},
        {"name": "aimate-alerts", "rules": alerts.iter().map(Alert::rule).collect::<Vec<_>>()},
    ])
}

/// Shortest range a scaled rule reads: a few 1 s scrapes, so `rate()` has points.
const MIN_SCALED_RANGE_MS: f64 = 4000.0;

/// `duration` (Prometheus syntax) times `scale`, written in milliseconds.
fn scale_duration(duration: &str, scale: f64, floor_ms: f64) -> String {
    match aimate_reports::duration::parse(duration) {
        Ok(d) => format!(
            "{}ms",
            (d.as_secs_f64() * 1000.0 * scale).max(floor_ms).round()
        ),
        Err(_) => duration.to_owned(),
    }
}

/// Every range selector (`[5m]`) of `expr` scaled.
fn scale_ranges(expr: &str, scale: f64) -> String {
    let mut out = String::with_capacity(expr.len());
    let mut rest = expr;
    while let Some(open) = rest.find('[') {
        let Some(close) = rest[open..].find(']') else {
            break;
        };
        out.push_str(&rest[..=open]);
        out.push_str(&scale_duration(
            &rest[open + 1..open + close],
            scale,
            MIN_SCALED_RANGE_MS,
        ));
        out.push(']');
        rest = &rest[open + close + 1..];
    }
    out.push_str(rest);
    out
}

/// The rules with every window and `for:` multiplied by `scale` (1/30: `for: 5m`
/// becomes 10 s), for a chaos drill whose faults last seconds. Rule names keep their
/// nominal windows, so the alerts read the same recording rules.
pub fn scaled_rules_file(slos: &[Slo], alerts: &[Alert], scale: f64) -> String {
    let recording: Vec<Value> = recording(slos)
        .into_iter()
        .map(|mut rule| {
            if let Some(expr) = rule["expr"].as_str() {
                rule["expr"] = scale_ranges(expr, scale).into();
            }
            rule
        })
        .collect();
    let alerts: Vec<Value> = alerts
        .iter()
        .map(|alert| {
            Alert {
                expr: scale_ranges(&alert.expr, scale),
                for_: scale_duration(&alert.for_, scale, 0.0),
                ..alert.clone()
            }
            .rule()
        })
        .collect();
    let value = json!({
        "groups": [
            {"name": "aimate-recording", "rules": recording},
            {"name": "aimate-alerts", "rules": alerts},
        ]
    });
    crate::yaml::document(
        &format!(
            "The generated rules with every window and `for:` scaled by {scale} for a chaos\n\
             drill. Not for production."
        ),
        &value,
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scaling_shrinks_windows_and_waits_but_keeps_rule_names() {
        assert_eq!(
            scale_ranges(
                "rate(x[5m]) / rate(y[1h]) and aimate_slo:errors:ratio_rate5m",
                1.0 / 30.0
            ),
            "rate(x[10000ms]) / rate(y[120000ms]) and aimate_slo:errors:ratio_rate5m"
        );
        // Never below a few scrapes.
        assert_eq!(scale_ranges("rate(x[1m])", 1.0 / 30.0), "rate(x[4000ms])");
        assert_eq!(scale_duration("5m", 1.0 / 30.0, 0.0), "10000ms");
    }
}
