//! The server's own view during a run: `/api/metrics` scraped once a second, reduced to
//! the series the SLOs need.

use aimate_reports::record::ServerSample;

/// Balancers' health checks and scrapers call these; they are left out of the request
/// series.
pub use aimate_conventions::routes::OPERATIONS_ROUTES;

/// One parsed sample line: name, labels, value.
fn parse_line(line: &str) -> Option<(&str, &str, f64)> {
    if line.starts_with('#') || line.trim().is_empty() {
        return None;
    }
    let (series, value) = line.rsplit_once(' ')?;
    let value: f64 = value.parse().ok()?;
    match series.split_once('{') {
        Some((name, labels)) => Some((name, labels.trim_end_matches('}'), value)),
        None => Some((series, "", value)),
    }
}

fn label<'a>(labels: &'a str, key: &str) -> Option<&'a str> {
    labels.split(',').find_map(|pair| {
        let (k, v) = pair.split_once('=')?;
        (k.trim() == key).then(|| v.trim().trim_matches('"'))
    })
}

/// Reduces a Prometheus text exposition to a [`ServerSample`] at `t_ms`.
pub fn sample_from_text(text: &str, t_ms: u64) -> ServerSample {
    let mut sample = ServerSample {
        t_ms,
        ..ServerSample::default()
    };
    let mut buckets: Vec<(f64, f64)> = Vec::new();
    let add = |slot: &mut Option<f64>, value: f64| *slot = Some(slot.unwrap_or(0.0) + value);
    for (name, labels, value) in text.lines().filter_map(parse_line) {
        // The API's traffic only: health checks and scrapes are the harness's own.
        if name.starts_with("http_server_request_duration_seconds")
            && label(labels, "http_route").is_some_and(|r| OPERATIONS_ROUTES.contains(&r))
        {
            continue;
        }
        match name {
            "http_server_request_duration_seconds_count" => add(&mut sample.requests_total, value),
            "http_server_request_duration_seconds_bucket" => {
                // The +Inf bucket equals the count; JSON cannot carry infinity anyway.
                let Some(le) = label(labels, "le").filter(|le| *le != "+Inf") else {
                    continue;
                };
                let bound: f64 = le.parse().unwrap_or(f64::NAN);
                match buckets.iter_mut().find(|(b, _)| *b == bound) {
                    Some((_, count)) => *count += value,
                    None => buckets.push((bound, value)),
                }
            }
            // The response cache's hit ratio: API-key lookups are a different cache.
            "cache_requests_total" if label(labels, "cache") != Some("auth") => {
                match label(labels, "result") {
                    Some("hit") => add(&mut sample.cache_hits_total, value),
                    Some("miss") => add(&mut sample.cache_misses_total, value),
                    _ => {}
                }
            }
            "db_client_connection_count" if label(labels, "state") == Some("used") => {
                add(&mut sample.db_connections_used, value);
            }
            "db_client_connection_max" => add(&mut sample.db_connections_max, value),
            "process_resident_memory_bytes" => add(&mut sample.resident_memory_bytes, value),
            "http_server_active_requests" => add(&mut sample.active_requests, value),
            // The process's identity: a new id is a restart (counters began at zero).
            "target_info" if label(labels, "service_name") == Some("aimate") => {
                sample.process = label(labels, "service_instance_id").map(str::to_owned);
            }
            _ => {}
        }
    }
    buckets.retain(|(bound, _)| !bound.is_nan());
    buckets.sort_by(|a, b| a.0.total_cmp(&b.0));
    sample.latency_buckets = buckets;
    sample
}

/// Whether a metrics page is the AI Mate server's (it exports these names).
pub fn looks_like_aimate(text: &str) -> bool {
    text.contains("http_server_request_duration_seconds")
        && text.contains("db_client_connection_max")
}

#[cfg(test)]
mod tests {
    use super::*;

    const PAGE: &str = r#"# HELP cache_requests_total Cache lookups
# TYPE cache_requests_total counter
cache_requests_total{cache="auth",result="hit"} 1000
cache_requests_total{cache="dashboard",result="hit"} 80
cache_requests_total{cache="dashboard",result="miss"} 5
cache_requests_total{cache="invoice_list",result="hit"} 10
cache_requests_total{cache="invoice_list",result="miss"} 5
db_client_connection_count{state="idle"} 3
db_client_connection_count{state="used"} 2
db_client_connection_max 8
http_server_active_requests 4
http_server_request_duration_seconds_bucket{http_request_method="GET",http_response_status_code="200",http_route="/a",le="0.001"} 5
http_server_request_duration_seconds_bucket{http_request_method="GET",http_response_status_code="200",http_route="/a",le="+Inf"} 7
http_server_request_duration_seconds_bucket{http_request_method="POST",http_response_status_code="201",http_route="/b",le="0.001"} 1
http_server_request_duration_seconds_bucket{http_request_method="POST",http_response_status_code="201",http_route="/b",le="+Inf"} 2
http_server_request_duration_seconds_count{http_request_method="GET",http_response_status_code="200",http_route="/a"} 7
http_server_request_duration_seconds_count{http_request_method="POST",http_response_status_code="201",http_route="/b"} 2
http_server_request_duration_seconds_count{http_request_method="GET",http_response_status_code="200",http_route="/api/health"} 40
http_server_request_duration_seconds_bucket{http_request_method="GET",http_response_status_code="200",http_route="/api/health",le="0.001"} 40
process_resident_memory_bytes 3.5e7
target_info{service_instance_id="0d5c2f7e-1",service_name="aimate",service_version="0.1.0"} 1
"#;

    #[test]
    fn reduces_the_page_to_the_slo_series() {
        assert!(looks_like_aimate(PAGE));
        let sample = sample_from_text(PAGE, 1000);
        assert_eq!(sample.requests_total, Some(9.0));
        assert_eq!(
            (sample.cache_hits_total, sample.cache_misses_total),
            (Some(90.0), Some(10.0))
        );
        assert_eq!(
            (sample.db_connections_used, sample.db_connections_max),
            (Some(2.0), Some(8.0))
        );
        assert_eq!(sample.resident_memory_bytes, Some(3.5e7));
        assert_eq!(sample.active_requests, Some(4.0));
        assert_eq!(sample.latency_buckets, vec![(0.001, 6.0)]);
        assert_eq!(sample.process.as_deref(), Some("0d5c2f7e-1"));
    }

    #[test]
    fn other_pages_are_not_aimate() {
        assert!(!looks_like_aimate("<html>hello</html>"));
        let sample = sample_from_text("garbage\nmore garbage 1 2", 0);
        assert_eq!(sample.requests_total, None);
    }
}
