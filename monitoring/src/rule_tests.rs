//! promtool unit tests of the alert rules: one healthy fleet on which no alert fires,
//! and for every alert a series that breaks it, with the alert expected (labels and
//! annotations) at a time after its `for:` has passed.
//!
//! The series are one instance `a` at 100 requests per second, one point a minute over
//! four hours. Each scenario changes only what its alert watches.

use aimate_server::metric_catalogue::{
    CACHE_REDIS_UP, CACHE_REQUESTS, PROCESS_RESIDENT_MEMORY, REQUEST_DURATION, TARGET_INFO,
};
use aimate_server::metrics::LATENCY_BUCKETS;
use serde_json::{Value, json};

use crate::rules::{Alert, JOB};
use crate::slo::Slo;

/// Minutes of series.
const STEPS: u32 = 240;
/// Requests a minute (100 req/s).
const PER_MINUTE: u64 = 6000;
/// When a burn scenario's bad events start, and when its alerts are checked.
const BURN_FROM: u32 = 120;
const BURN_EVAL: &str = "235m";

fn labels(extra: &str) -> String {
    format!("job=\"{JOB}\",instance=\"a\"{extra}")
}

fn request_labels(route: &str, status: &str) -> String {
    labels(&format!(
        ",http_request_method=\"GET\",http_route=\"{route}\",http_response_status_code=\"{status}\""
    ))
}

/// A counter growing by `per_minute` throughout.
fn growing(per_minute: u64) -> String {
    format!("0+{per_minute}x{STEPS}")
}

/// A counter growing by `per_minute` until `from`, then flat.
fn stops_at(per_minute: u64, from: u32) -> String {
    format!(
        "0+{per_minute}x{from} {}x{}",
        per_minute * u64::from(from),
        STEPS - from
    )
}

/// A counter flat at zero until `from`, then growing by `per_minute`.
fn starts_at(per_minute: u64, from: u32) -> String {
    format!("0x{from} 0+{per_minute}x{}", STEPS - from)
}

/// How the requests of a status are distributed over the buckets.
enum Latency {
    /// Every request under 5 ms.
    Fast,
    /// Every request between 1 and 2 s.
    Between1And2s,
    /// Under 5 ms until `BURN_FROM`, then beyond every bucket.
    SlowFromBurn,
}

struct Series(Vec<(String, String)>);

impl Series {
    fn set(&mut self, series: String, values: String) {
        match self.0.iter_mut().find(|(s, _)| *s == series) {
            Some(entry) => entry.1 = values,
            None => self.0.push((series, values)),
        }
    }

    fn requests(&mut self, status: &str, count: &str, per_minute: u64, latency: &Latency) {
        let name = REQUEST_DURATION.name;
        let labels = request_labels("/api/invoices", status);
        self.set(format!("{name}_count{{{labels}}}"), count.to_owned());
        for bound in LATENCY_BUCKETS
            .iter()
            .map(|b| format!("{b}"))
            .chain(["+Inf".to_owned()])
        {
            let seconds: f64 = bound.parse().unwrap_or(f64::INFINITY);
            let values = match latency {
                Latency::Fast if seconds >= 0.005 => count.to_owned(),
                Latency::Between1And2s if seconds >= 2.0 => count.to_owned(),
                Latency::SlowFromBurn if seconds.is_infinite() => count.to_owned(),
                Latency::SlowFromBurn if seconds >= 0.005 => stops_at(per_minute, BURN_FROM),
                _ => format!("0x{STEPS}"),
            };
            self.set(format!("{name}_bucket{{{labels},le=\"{bound}\"}}"), values);
        }
    }

    fn to_json(&self) -> Value {
        Value::Array(
            self.0
                .iter()
                .map(|(series, values)| json!({"series": series, "values": values}))
                .collect(),
        )
    }
}

/// The healthy fleet: every alert silent.
fn healthy() -> Series {
    let mut series = Series(Vec::new());
    series.set(format!("up{{{}}}", labels("")), format!("1x{STEPS}"));
    series.set(
        format!(
            "{}{{{}}}",
            TARGET_INFO.name,
            labels(",service_name=\"aimate\",service_version=\"0\",service_instance_id=\"p\"")
        ),
        format!("1x{STEPS}"),
    );
    series.set(
        format!("{}{{{}}}", PROCESS_RESIDENT_MEMORY.name, labels("")),
        format!("100000000x{STEPS}"),
    );
    series.requests("200", &growing(PER_MINUTE), PER_MINUTE, &Latency::Fast);
    series.set(
        format!(
            "{}_count{{{}}}",
            REQUEST_DURATION.name,
            request_labels("/api/health", "200")
        ),
        growing(60),
    );
    for (result, per_minute) in [("hit", PER_MINUTE * 9 / 10), ("miss", PER_MINUTE / 10)] {
        series.set(
            format!(
                "{}{{{}}}",
                CACHE_REQUESTS.name,
                labels(&format!(",cache=\"dashboard\",result=\"{result}\""))
            ),
            growing(per_minute),
        );
    }
    series
}

/// The scenario that breaks `alert`, and when to look; `None` for an alert this file
/// does not know (a test then fails: every alert must be tested).
fn breaking(alert: &Alert, slo: Option<&Slo>) -> Option<(Series, &'static str)> {
    let mut series = healthy();
    let health = format!(
        "{}_count{{{}}}",
        REQUEST_DURATION.name,
        request_labels("/api/health", "200")
    );
    match (alert.name.as_str(), slo) {
        ("AimateHighErrorRate", _) => {
            // 20 of every 120 requests fail: 17 %.
            series.requests("500", &growing(1200), 1200, &Latency::Fast);
            Some((series, "30m"))
        }
        ("AimateSlowResponses", _) => {
            series.requests(
                "200",
                &growing(PER_MINUTE),
                PER_MINUTE,
                &Latency::Between1And2s,
            );
            Some((series, "30m"))
        }
        ("AimateLowCacheHitRate", _) => {
            for result in ["hit", "miss"] {
                series.set(
                    format!(
                        "{}{{{}}}",
                        CACHE_REQUESTS.name,
                        labels(&format!(",cache=\"dashboard\",result=\"{result}\""))
                    ),
                    growing(PER_MINUTE / 2),
                );
            }
            Some((series, "30m"))
        }
        ("AimateHighMemoryUsage", _) => {
            series.set(
                format!("{}{{{}}}", PROCESS_RESIDENT_MEMORY.name, labels("")),
                format!("1000000000x{STEPS}"),
            );
            Some((series, "30m"))
        }
        ("AimateInstanceDown", _) => {
            series.set(format!("up{{{}}}", labels("")), format!("0x{STEPS}"));
            Some((series, "30m"))
        }
        ("AimateCacheDegraded", _) => {
            series.set(
                format!("{}{{{}}}", CACHE_REDIS_UP.name, labels("")),
                format!("0x{STEPS}"),
            );
            Some((series, "30m"))
        }
        ("AimateNotReady", _) => {
            series.0.retain(|(s, _)| *s != health);
            series.set(
                format!(
                    "{}_count{{{}}}",
                    REQUEST_DURATION.name,
                    request_labels("/api/health", "503")
                ),
                growing(60),
            );
            Some((series, "30m"))
        }
        ("AimateErrorBudgetBurn", Some(slo)) if slo.latency_le.is_none() => {
            // Every request fails from BURN_FROM on (fast, so no latency SLO burns).
            series.requests(
                "200",
                &stops_at(PER_MINUTE, BURN_FROM),
                PER_MINUTE,
                &Latency::Fast,
            );
            series.requests(
                "500",
                &starts_at(PER_MINUTE, BURN_FROM),
                PER_MINUTE,
                &Latency::Fast,
            );
            Some((series, BURN_EVAL))
        }
        ("AimateErrorBudgetBurn", Some(_)) => {
            // Every request slower than any bucket from BURN_FROM on.
            series.requests(
                "200",
                &growing(PER_MINUTE),
                PER_MINUTE,
                &Latency::SlowFromBurn,
            );
            Some((series, BURN_EVAL))
        }
        _ => None,
    }
}

/// The alerts of `alerts` expected firing in `scenario`'s name: the alert itself, and
/// for a burn scenario every burn alert of the SLOs it breaks.
fn expected(alert: &Alert, all: &[Alert], slos: &[Slo]) -> Vec<Value> {
    let broken = |a: &Alert| -> bool {
        if a.name != alert.name {
            return false;
        }
        match (slo_of(alert, slos), slo_of(a, slos)) {
            (Some(mine), Some(theirs)) => mine.latency_le.is_some() == theirs.latency_le.is_some(),
            _ => std::ptr::eq(a, alert),
        }
    };
    all.iter()
        .filter(|a| broken(a))
        .map(|a| {
            // The rule's labels, and those its series carry.
            let mut labels = a.label_map();
            match a.name.as_str() {
                "AimateInstanceDown" | "AimateHighMemoryUsage" | "AimateCacheDegraded" => {
                    labels.insert("instance".into(), "a".into());
                    labels.insert("job".into(), JOB.into());
                }
                "AimateNotReady" => {
                    labels.insert("instance".into(), "a".into());
                }
                _ => {}
            }
            json!({"exp_labels": labels, "exp_annotations": a.annotations()})
        })
        .collect()
}

fn slo_of<'a>(alert: &Alert, slos: &'a [Slo]) -> Option<&'a Slo> {
    alert
        .labels
        .iter()
        .find(|(k, _)| *k == "slo")
        .and_then(|(_, v)| slos.iter().find(|s| s.name == *v))
}

/// Names of the alerts no scenario breaks (should be none).
pub fn untested(alerts: &[Alert], slos: &[Slo]) -> Vec<String> {
    alerts
        .iter()
        .filter(|a| breaking(a, slo_of(a, slos)).is_none())
        .map(|a| a.name.clone())
        .collect()
}

/// tests/alerts.test.yml.
pub fn rule_tests_file(alerts: &[Alert], slos: &[Slo]) -> String {
    let mut names: Vec<&str> = alerts.iter().map(|a| a.name.as_str()).collect();
    names.dedup();
    let mut tests = vec![json!({
        "name": "a healthy fleet pages nobody",
        "interval": "1m",
        "input_series": healthy().to_json(),
        "alert_rule_test": names.iter().map(|name| json!({
            "eval_time": BURN_EVAL,
            "alertname": name,
            "exp_alerts": [],
        })).collect::<Vec<_>>(),
    })];
    for alert in alerts {
        let slo = slo_of(alert, slos);
        let Some((series, at)) = breaking(alert, slo) else {
            continue;
        };
        // One scenario per burn SLO kind is enough; its alerts are all expected.
        if alert.name == "AimateErrorBudgetBurn" && alert.severity != "page" {
            continue;
        }
        let what = slo.map_or_else(
            || alert.name.clone(),
            |s| format!("{} ({})", alert.name, s.text),
        );
        tests.push(json!({
            "name": format!("{what} fires when broken"),
            "interval": "1m",
            "input_series": series.to_json(),
            "alert_rule_test": [{
                "eval_time": at,
                "alertname": alert.name,
                "exp_alerts": expected(alert, alerts, slos),
            }],
        }));
    }
    let value = json!({
        "rule_files": ["../rules.yml"],
        "evaluation_interval": "1m",
        "tests": tests,
    });
    crate::yaml::document(
        "promtool unit tests of rules.yml (`promtool test rules alerts.test.yml`), generated\n\
         with it by `aimate dashboards generate`: every alert silent on a healthy fleet and\n\
         firing on a series that breaks it.",
        &value,
    )
}
