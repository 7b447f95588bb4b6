//! What happens when the API is saturated: past `max_inflight` concurrent requests the
//! server answers a fast 503 with `Retry-After` (load shedding) rather than queueing
//! without bound, and a request that runs past the timeout is cut off with a 503.

use std::time::Duration;

use axum::BoxError;
use axum::error_handling::HandleErrorLayer;
use axum::response::IntoResponse;
use tower::ServiceBuilder;
use tower::limit::GlobalConcurrencyLimitLayer;
use tower::load_shed::LoadShedLayer;
use tower::load_shed::error::Overloaded;
use tower::timeout::TimeoutLayer;
use tower::timeout::error::Elapsed;

use crate::error::AppError;
use utoipa_axum::router::OpenApiRouter;

use crate::state::AppState;

/// Wraps `router` in, outermost first: error-to-response, shed when the shared
/// semaphore has no permit, hold a permit per request, time the request out.
///
/// `GlobalConcurrencyLimitLayer` (not `ConcurrencyLimitLayer`) because axum applies a
/// layer to each route separately; the global variant shares one semaphore across them.
pub fn protect(
    router: OpenApiRouter<AppState>,
    state: &AppState,
    max_inflight: usize,
    timeout: Duration,
) -> OpenApiRouter<AppState> {
    let metrics = state.metrics.clone();
    let handle = move |error: BoxError| {
        let response = if error.is::<Overloaded>() {
            metrics.shed_requests.inc();
            AppError::unavailable("overloaded", "the server is at capacity; retry shortly")
                .into_response()
        } else if error.is::<Elapsed>() {
            AppError::unavailable(
                "request_timeout",
                "the request took too long and was cancelled",
            )
            .into_response()
        } else {
            AppError::internal(anyhow::anyhow!("middleware error: {error}")).into_response()
        };
        std::future::ready(response)
    };
    router.layer(
        ServiceBuilder::new()
            .layer(HandleErrorLayer::new(handle))
            .layer(LoadShedLayer::new())
            .layer(GlobalConcurrencyLimitLayer::new(max_inflight))
            .layer(TimeoutLayer::new(timeout)),
    )
}
