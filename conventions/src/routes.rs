//! Routes the harness must tell apart from the API's traffic.

/// The operators' routes (probes, scrapes, the API document). The server never sheds
/// nor times them out, so they work while the API is saturated; the load generator's
/// request series, the dashboards and the alerts leave them out of the API's traffic.
pub const OPERATIONS_ROUTES: &[&str] = &[
    "/health",
    "/api/health",
    "/api/metrics",
    "/api/openapi.json",
];
