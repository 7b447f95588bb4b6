//! Server series from an existing Prometheus: what a real deployment behind a load
//! balancer has. After the run, the series the SLOs need are read per instance over the
//! run's window (`/api/v1/query_range`, one point per second) and filed as the same
//! per-instance samples a direct scrape gives, so grading treats both alike.
//!
//! Only AI Mate processes count: every query is joined on `target_info{service_name=
//! "aimate"}`, which the server exports, plus any matchers the user adds (`job="…"`).

use std::collections::BTreeMap;
use std::time::{Duration, SystemTime};

use aimate_reports::record::ServerSample;
use serde::Deserialize;

use crate::api::Api;

#[derive(Debug, thiserror::Error)]
pub enum PrometheusError {
    #[error("Prometheus at {url}: {reason}")]
    Failed { url: String, reason: String },
    #[error("Prometheus at {url} refused `{query}`: {reason}")]
    Query {
        url: String,
        query: String,
        reason: String,
    },
}

#[derive(Deserialize)]
struct Answer {
    status: String,
    #[serde(default)]
    data: Option<Data>,
    #[serde(default)]
    error: Option<String>,
}

#[derive(Deserialize)]
struct Data {
    result: Vec<Series>,
}

#[derive(Deserialize)]
struct Series {
    metric: BTreeMap<String, String>,
    /// Range queries: `[[unix seconds, "value"], …]`.
    #[serde(default)]
    values: Vec<(f64, String)>,
    /// Instant queries: one point.
    #[serde(default)]
    value: Option<(f64, String)>,
}

/// Where to read and what to add to every selector.
pub struct Prometheus<'a> {
    pub api: &'a Api,
    pub url: &'a str,
    /// Extra label matchers (`job="aimate"`), or empty.
    pub selector: &'a str,
}

/// The API's own routes: health checks and scrapes are the harness's traffic (the same
/// routes `scrape` leaves out).
fn api_routes() -> String {
    format!(
        r#"http_route!~"{}""#,
        crate::scrape::OPERATIONS_ROUTES.join("|")
    )
}

/// A sample field that a query fills.
type Setter = fn(&mut ServerSample, f64);

impl Prometheus<'_> {
    fn matchers(&self, own: &str) -> String {
        match (own.is_empty(), self.selector.trim().is_empty()) {
            (_, true) => format!("{{{own}}}"),
            (true, false) => format!("{{{}}}", self.selector.trim()),
            (false, false) => format!("{{{own},{}}}", self.selector.trim()),
        }
    }

    /// The AI Mate processes Prometheus knows (`target_info` of the server).
    fn aimate(&self) -> String {
        format!("target_info{}", self.matchers(r#"service_name="aimate""#))
    }

    /// `sum by (instance[, extra]) (metric{matchers})`, only where an AI Mate process runs.
    fn per_instance(&self, metric: &str, own: &str, extra_by: &str) -> String {
        format!(
            "sum by (instance{extra_by}) ({metric}{}) and on (instance) {}",
            self.matchers(own),
            self.aimate()
        )
    }

    async fn query(
        &self,
        path: &str,
        params: &[(&str, String)],
    ) -> Result<Vec<Series>, PrometheusError> {
        let base = self.url.trim_end_matches('/');
        let mut url =
            url::Url::parse(&format!("{base}{path}")).map_err(|e| PrometheusError::Failed {
                url: aimate_reports::redact::redact_url(self.url),
                reason: format!("not a URL: {e}"),
            })?;
        url.query_pairs_mut()
            .extend_pairs(params.iter().map(|(k, v)| (*k, v.as_str())));
        let query = params
            .iter()
            .find(|(k, _)| *k == "query")
            .map_or_else(String::new, |(_, q)| q.clone());
        let refused = |reason: String| PrometheusError::Query {
            url: aimate_reports::redact::redact_url(self.url),
            query: query.clone(),
            reason,
        };
        let text = self
            .api
            .fetch_text(url.as_str())
            .await
            .map_err(|e| refused(e.to_string()))?;
        let answer: Answer = serde_json::from_str(&text)
            .map_err(|e| refused(format!("not a Prometheus answer: {e}")))?;
        if answer.status != "success" {
            return Err(refused(answer.error.unwrap_or(answer.status)));
        }
        Ok(answer.data.map(|d| d.result).unwrap_or_default())
    }

    /// Waits (up to `patience`) until Prometheus has scraped past `end`, so the run's
    /// last seconds are in what it returns.
    pub async fn wait_for(&self, end: SystemTime, patience: Duration) -> bool {
        let end = unix_seconds(end);
        let query = format!("max(timestamp({}))", self.aimate());
        let deadline = tokio::time::Instant::now() + patience;
        loop {
            let latest = self
                .query("/api/v1/query", &[("query", query.clone())])
                .await
                .ok()
                .and_then(|result| result.into_iter().next())
                .and_then(|series| series.value)
                .and_then(|(_, value)| value.parse::<f64>().ok());
            if latest.is_some_and(|t| t >= end) {
                return true;
            }
            if tokio::time::Instant::now() >= deadline {
                return false;
            }
            tokio::time::sleep(Duration::from_millis(500)).await;
        }
    }

    /// The run's server samples, per instance and second, from `start` to `end`;
    /// `run_start` is the run's clock zero. A second in which an instance has no
    /// series is a gap (`up: false`).
    pub async fn samples(
        &self,
        start: SystemTime,
        end: SystemTime,
        run_start: SystemTime,
    ) -> Result<Vec<ServerSample>, PrometheusError> {
        let (from, to, zero) = (
            unix_seconds(start),
            unix_seconds(end),
            unix_seconds(run_start),
        );
        // query_range answers at most 11,000 points per series.
        let step = ((to - from) / 10_000.0).ceil().max(1.0);
        let range = |query: String| {
            vec![
                ("query", query),
                ("start", format!("{from:.3}")),
                ("end", format!("{to:.3}")),
                ("step", format!("{step}")),
            ]
        };
        let api_routes = api_routes();
        let plain: [(&str, &str, Setter); 7] = [
            (
                "http_server_request_duration_seconds_count",
                &api_routes,
                |s, v| {
                    s.requests_total = Some(v);
                },
            ),
            (
                "cache_requests_total",
                r#"cache!="auth",result="hit""#,
                |s, v| {
                    s.cache_hits_total = Some(v);
                },
            ),
            (
                "cache_requests_total",
                r#"cache!="auth",result="miss""#,
                |s, v| {
                    s.cache_misses_total = Some(v);
                },
            ),
            ("db_client_connection_count", r#"state="used""#, |s, v| {
                s.db_connections_used = Some(v);
            }),
            ("db_client_connection_max", "", |s, v| {
                s.db_connections_max = Some(v)
            }),
            ("process_resident_memory_bytes", "", |s, v| {
                s.resident_memory_bytes = Some(v)
            }),
            ("http_server_active_requests", "", |s, v| {
                s.active_requests = Some(v)
            }),
        ];
        let mut by_point: BTreeMap<(String, u64), ServerSample> = BTreeMap::new();
        let t_ms = |at: f64| ((at - zero) * 1000.0).round().max(0.0) as u64;
        for (metric, own, set) in plain {
            let query = self.per_instance(metric, own, "");
            for series in self.query("/api/v1/query_range", &range(query)).await? {
                let instance = series.metric.get("instance").cloned().unwrap_or_default();
                for (at, value) in &series.values {
                    if let Ok(value) = value.parse::<f64>() {
                        set(entry(&mut by_point, &instance, t_ms(*at)), value);
                    }
                }
            }
        }
        let identity = format!("max by (instance, service_instance_id) ({})", self.aimate());
        for series in self.query("/api/v1/query_range", &range(identity)).await? {
            let instance = series.metric.get("instance").cloned().unwrap_or_default();
            let process = series.metric.get("service_instance_id").cloned();
            for (at, _) in &series.values {
                entry(&mut by_point, &instance, t_ms(*at))
                    .process
                    .clone_from(&process);
            }
        }
        let buckets = self.per_instance(
            "http_server_request_duration_seconds_bucket",
            &api_routes,
            ", le",
        );
        for series in self.query("/api/v1/query_range", &range(buckets)).await? {
            let instance = series.metric.get("instance").cloned().unwrap_or_default();
            let Some(le) = series
                .metric
                .get("le")
                .and_then(|le| le.parse::<f64>().ok())
            else {
                continue;
            };
            if !le.is_finite() {
                continue;
            }
            for (at, value) in &series.values {
                if let Ok(value) = value.parse::<f64>() {
                    entry(&mut by_point, &instance, t_ms(*at))
                        .latency_buckets
                        .push((le, value));
                }
            }
        }
        // Every instance seen, at every step: where it has no requests series it was down.
        let instances: Vec<String> = by_point.keys().map(|(i, _)| i.clone()).collect();
        let steps: Vec<u64> = by_point.keys().map(|(_, t)| *t).collect();
        let mut samples: Vec<ServerSample> = Vec::new();
        for instance in dedup(instances) {
            for t in dedup(steps.clone()) {
                match by_point.remove(&(instance.clone(), t)) {
                    Some(mut sample) if sample.requests_total.is_some() => {
                        sample.latency_buckets.sort_by(|a, b| a.0.total_cmp(&b.0));
                        samples.push(sample);
                    }
                    _ => samples.push(ServerSample::down(&instance, t)),
                }
            }
        }
        samples.sort_by(|a, b| (a.t_ms, &a.instance).cmp(&(b.t_ms, &b.instance)));
        Ok(samples)
    }
}

/// The sample of `instance` at `t_ms`, created empty on first use.
fn entry<'a>(
    by_point: &'a mut BTreeMap<(String, u64), ServerSample>,
    instance: &str,
    t_ms: u64,
) -> &'a mut ServerSample {
    by_point
        .entry((instance.to_owned(), t_ms))
        .or_insert_with(|| ServerSample {
            t_ms,
            instance: instance.to_owned(),
            ..ServerSample::default()
        })
}

fn dedup<T: Ord>(mut items: Vec<T>) -> Vec<T> {
    items.sort();
    items.dedup();
    items
}

fn unix_seconds(at: SystemTime) -> f64 {
    at.duration_since(SystemTime::UNIX_EPOCH)
        .map_or(0.0, |d| d.as_secs_f64())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_query_is_limited_to_aimate_processes_and_the_users_matchers() {
        let api = Api::new("http://127.0.0.1:1").unwrap();
        let prometheus = Prometheus {
            api: &api,
            url: "http://127.0.0.1:9090",
            selector: r#"job="aimate""#,
        };
        assert_eq!(
            prometheus.per_instance("db_client_connection_count", r#"state="used""#, ""),
            r#"sum by (instance) (db_client_connection_count{state="used",job="aimate"}) and on (instance) target_info{service_name="aimate",job="aimate"}"#
        );
        let bare = Prometheus {
            selector: "",
            ..prometheus
        };
        assert_eq!(
            bare.per_instance("process_resident_memory_bytes", "", ""),
            r#"sum by (instance) (process_resident_memory_bytes{}) and on (instance) target_info{service_name="aimate"}"#
        );
    }
}
