//! Per-request observation: the latency histogram, the in-flight gauge, and one JSON
//! access-log line with the request id. Runs after routing so the `http_route` label is
//! the route template (`/api/invoices/{id}`), never the raw path.

use std::time::Instant;

use axum::extract::{MatchedPath, Request, State};
use axum::middleware::Next;
use axum::response::Response;

use crate::error::InternalErrorDetail;
use crate::metrics::Metrics;
use std::sync::Arc;

/// Label for requests that matched no route, so probes of random paths cannot grow the
/// label set without bound.
const UNMATCHED_ROUTE: &str = "unmatched";

/// Decrements the in-flight gauge even if the request future is dropped mid-way.
struct InFlight<'a>(&'a Metrics);

impl Drop for InFlight<'_> {
    fn drop(&mut self) {
        self.0.active_requests.dec();
    }
}

pub async fn observe(
    State(metrics): State<Arc<Metrics>>,
    request: Request,
    next: Next,
) -> Response {
    let started = Instant::now();
    let method = request.method().clone();
    let route = request
        .extensions()
        .get::<MatchedPath>()
        .map(|p| p.as_str().to_owned());
    let request_id = request
        .headers()
        .get("x-request-id")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_owned();
    metrics.active_requests.inc();
    let in_flight = InFlight(&metrics);
    let response = next.run(request).await;
    drop(in_flight);

    let elapsed = started.elapsed();
    let status = response.status();
    let route = route.as_deref().unwrap_or(UNMATCHED_ROUTE);
    metrics
        .request_duration
        .with_label_values(&[method.as_str(), route, status.as_str()])
        .observe(elapsed.as_secs_f64());

    let latency_ms = elapsed.as_secs_f64() * 1000.0;
    let status = status.as_u16();
    match response.extensions().get::<InternalErrorDetail>() {
        Some(InternalErrorDetail(detail)) => {
            tracing::error!(target: "access", %method, route, status, latency_ms, request_id, error = %detail, "request failed");
        }
        None if status >= 500 => {
            tracing::warn!(target: "access", %method, route, status, latency_ms, request_id, "request");
        }
        None => {
            tracing::info!(target: "access", %method, route, status, latency_ms, request_id, "request")
        }
    }
    response
}
