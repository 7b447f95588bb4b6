//! Operational endpoints, outside authentication, rate limiting and load shedding so
//! probes and scrapers keep working while the API is saturated:
//! `/health` (liveness), `/api/health` (readiness), `/api/metrics` (Prometheus).

use axum::extract::State;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Serialize;
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::error::AppJson;
use crate::state::AppState;

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(liveness))
        .routes(routes!(readiness))
        .routes(routes!(metrics))
}

#[derive(Debug, Serialize, ToSchema)]
pub struct Liveness {
    pub status: &'static str,
}

/// Liveness: 200 while the process serves requests.
#[utoipa::path(get, path = "/health", tag = "operations", responses((status = 200, body = Liveness)))]
async fn liveness() -> AppJson<Liveness> {
    AppJson(Liveness { status: "ok" })
}

#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct ComponentHealth {
    /// `up` or `down`.
    pub status: &'static str,
    pub latency_ms: Option<f64>,
    /// Why the component is down, in words safe to show anyone (details go to the log).
    pub error: Option<String>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct DatabaseHealth {
    #[serde(flatten)]
    pub check: ComponentHealth,
    pub backend: &'static str,
    /// SQLite's `synchronous` setting (`full`: an acknowledged write survives power
    /// loss; `normal`: it survives a crash of the process). Absent on PostgreSQL.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub synchronous: Option<&'static str>,
    pub connections_open: u32,
    pub connections_idle: u32,
    pub connections_max: u32,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct CacheHealth {
    pub status: &'static str,
    pub kind: &'static str,
    pub entries: u64,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct Readiness {
    /// `ready`, `draining` or `unavailable`.
    pub status: &'static str,
    pub draining: bool,
    pub database: DatabaseHealth,
    pub cache: CacheHealth,
}

/// Readiness: 503 while the database is unreachable or the server is draining.
#[utoipa::path(
    get,
    path = "/api/health",
    tag = "operations",
    responses(
        (status = 200, description = "Ready for traffic", body = Readiness),
        (status = 503, description = "Not ready: database down or server draining", body = Readiness),
    )
)]
async fn readiness(State(state): State<AppState>) -> Response {
    let draining = state.lifecycle.is_draining();
    let check = state.database_probe.check(&state.db).await;
    let (open, idle) = state.db.connection_counts();
    let database_up = check.error.is_none();
    let status = match (draining, database_up) {
        (true, _) => "draining",
        (false, false) => "unavailable",
        (false, true) => "ready",
    };
    let body = Readiness {
        status,
        draining,
        database: DatabaseHealth {
            check,
            backend: state.db.backend.name(),
            synchronous: state.db.synchronous.map(crate::db::Synchronous::as_str),
            connections_open: open,
            connections_idle: idle,
            connections_max: state.db.max_connections,
        },
        cache: {
            let health = state.cache.health();
            CacheHealth {
                status: health.status,
                kind: health.kind,
                entries: state.cache.entry_count(),
            }
        },
    };
    let code = if status == "ready" {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    let mut response = (code, AppJson(body)).into_response();
    if code != StatusCode::OK {
        response
            .headers_mut()
            .insert(header::RETRY_AFTER, HeaderValue::from(1));
    }
    response
}

/// Prometheus metrics in the text exposition format.
#[utoipa::path(
    get,
    path = "/api/metrics",
    tag = "operations",
    responses((status = 200, description = "Prometheus text format", content_type = "text/plain", body = String))
)]
async fn metrics(State(state): State<AppState>) -> Response {
    let (open, idle) = state.db.connection_counts();
    let (write_batches, write_batch_writes) = state.db.write_batches();
    let snapshot = crate::metrics::DbSnapshot {
        open,
        idle,
        max: state.db.max_connections,
        write_batches,
        write_batch_writes,
    };
    match state.metrics.render(snapshot) {
        Ok(text) => (
            [(
                header::CONTENT_TYPE,
                "text/plain; version=0.0.4; charset=utf-8",
            )],
            text,
        )
            .into_response(),
        Err(error) => crate::error::AppError::internal(error).into_response(),
    }
}
