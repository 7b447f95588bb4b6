//! The PromQL every generated file shares: selectors of the API's own traffic, the
//! error and latency SLIs, so a panel and the alert about it read the same series.

use aimate_server::metric_catalogue::{CACHE_REQUESTS, REQUEST_DURATION};

/// The server's operations routes as one regex alternation (health checks and scrapes
/// are the operators' traffic, not the users').
pub fn operations_routes() -> String {
    aimate_conventions::routes::OPERATIONS_ROUTES.join("|")
}

/// Statuses that count against the error objective: 5xx and 429 (the guide's rate
/// limiter answering instead of serving), as the grader counts them.
pub const ERROR_STATUSES: &str = "5..|429";

/// `name{matchers}` of the request histogram's `suffix` series over the API's routes,
/// plus `extra` matchers.
pub fn requests(suffix: &str, extra: &str) -> String {
    let extra = if extra.is_empty() {
        String::new()
    } else {
        format!(",{extra}")
    };
    format!(
        "{}{suffix}{{http_route!~\"{}\"{extra}}}",
        REQUEST_DURATION.name,
        operations_routes()
    )
}

/// `sum by (by) (inner)`, or a plain `sum(inner)` for the whole fleet (`by` empty).
pub fn sum_by(by: &str, inner: &str) -> String {
    if by.is_empty() {
        format!("sum({inner})")
    } else {
        format!("sum by ({by}) ({inner})")
    }
}

/// Requests per second over `window`, summed `by`.
pub fn request_rate(by: &str, window: &str, extra: &str) -> String {
    sum_by(
        by,
        &format!("rate({}[{window}])", requests("_count", extra)),
    )
}

/// The share of requests that failed over `window`, `by` labels. Written as one minus
/// the share that did not, so it reads 0 (not "no data") while nothing fails.
pub fn error_ratio(by: &str, window: &str) -> String {
    format!(
        "1 - (\n  {}\n/\n  {}\n)",
        request_rate(
            by,
            window,
            &format!("http_response_status_code!~\"{ERROR_STATUSES}\"")
        ),
        request_rate(by, window, "")
    )
}

/// The share of requests slower than `le_seconds` (a bucket bound) over `window`.
pub fn slow_ratio(by: &str, window: &str, le_seconds: &str) -> String {
    format!(
        "1 - (\n  {}\n/\n  {}\n)",
        sum_by(
            by,
            &format!(
                "rate({}[{window}])",
                requests("_bucket", &format!("le=\"{le_seconds}\""))
            )
        ),
        request_rate(by, window, "")
    )
}

/// The `q` quantile (0–1) of request latency in seconds over `window`, `by` labels.
pub fn latency_quantile(q: f64, by: &str, window: &str) -> String {
    let by = if by.is_empty() {
        "le".to_owned()
    } else {
        format!("le, {by}")
    };
    format!(
        "histogram_quantile({q}, sum by ({by}) (rate({}[{window}])))",
        requests("_bucket", "")
    )
}

/// The response cache's hit ratio over `window`, `by` labels (API-key lookups are
/// another cache, left out as the grader does).
pub fn cache_hit_ratio(by: &str, window: &str) -> String {
    let name = CACHE_REQUESTS.name;
    format!(
        "{}\n/\n{}",
        sum_by(
            by,
            &format!("rate({name}{{cache!=\"auth\",result=\"hit\"}}[{window}])")
        ),
        sum_by(by, &format!("rate({name}{{cache!=\"auth\"}}[{window}])"))
    )
}

/// A duration in seconds as Prometheus's `le` label writes it (`0.5`, `1`, `2.5`).
pub fn le_label(seconds: f64) -> String {
    let text = format!("{seconds}");
    text.strip_suffix(".0").map_or(text.clone(), str::to_owned)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bucket_bounds_read_as_prometheus_writes_them() {
        assert_eq!(le_label(0.5), "0.5");
        assert_eq!(le_label(1.0), "1");
        assert_eq!(le_label(2.5), "2.5");
    }

    #[test]
    fn the_error_ratio_reads_zero_while_nothing_fails() {
        let expr = error_ratio("instance", "5m");
        assert!(expr.starts_with("1 - ("), "{expr}");
        assert!(
            expr.contains(r#"http_response_status_code!~"5..|429""#),
            "{expr}"
        );
        assert!(
            expr.contains(r#"http_route!~"/health|/api/health"#),
            "{expr}"
        );
    }
}
