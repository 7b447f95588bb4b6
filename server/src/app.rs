//! The router: every route, in one place, with its layers.
//!
//! ```text
//! request ─▶ set x-request-id ─▶ CORS ─▶ observe (metrics, access log) ─▶ route
//!   tenant routes: shed/timeout ─▶ auth + rate limit ─▶ handler
//!   admin routes:  shed/timeout ─▶ handler (checks the admin token)
//!   ops routes:    handler (never shed, never rate limited)
//! ```

use axum::extract::DefaultBodyLimit;
use axum::http::{HeaderName, Method, header};
use axum::middleware::from_fn_with_state;
use axum::{Extension, Router};
use tower::ServiceBuilder;
use tower_http::cors::{AllowOrigin, CorsLayer};
use tower_http::request_id::{MakeRequestUuid, PropagateRequestIdLayer, SetRequestIdLayer};
use utoipa::OpenApi;
use utoipa_axum::router::OpenApiRouter;

use crate::error::AppError;
use crate::openapi::{ApiDoc, OpenApiJson};
use crate::state::AppState;
use crate::{
    auth, dashboard, invoices, jobs, observe, openapi, ops, overload, preferences, tenants,
};

/// The full API as a `Router`, ready to serve (or to call with `oneshot` in tests).
pub fn app(state: AppState) -> Router {
    let (router, doc) = routes(&state).split_for_parts();
    let doc = match doc.to_json() {
        Ok(json) => OpenApiJson(json.into()),
        // The document is built from our own static annotations; should it ever fail
        // to serialize, the route answers 500 rather than the server refusing to start.
        Err(error) => {
            tracing::error!(%error, "cannot render the OpenAPI document");
            OpenApiJson(bytes::Bytes::new())
        }
    };
    let config = state.config.clone();
    // One `layer` call with the whole stack: axum boxes every route once per call.
    let outer = ServiceBuilder::new()
        .layer(SetRequestIdLayer::x_request_id(MakeRequestUuid))
        .layer(PropagateRequestIdLayer::x_request_id())
        // No allowed origins, no CORS layer: its `Vary` and expose headers would only
        // add bytes to every response.
        .option_layer((!config.cors_origins.is_empty()).then(|| cors(&config.cors_origins)))
        .layer(from_fn_with_state(state.metrics.clone(), observe::observe))
        .layer(DefaultBodyLimit::max(config.max_body_bytes))
        .layer(Extension(doc));
    router
        .fallback(route_not_found)
        .method_not_allowed_fallback(method_not_allowed)
        .layer(outer)
        .with_state(state)
}

/// All routes with their OpenAPI description, before the outer layers.
pub fn routes(state: &AppState) -> OpenApiRouter<AppState> {
    let config = &state.config;
    let tenant_api = OpenApiRouter::new()
        .merge(invoices::router(config.max_bulk_body_bytes))
        .merge(jobs::router())
        .merge(dashboard::router())
        .merge(preferences::router())
        .route_layer(from_fn_with_state(state.clone(), auth::require_tenant));
    let api = overload::protect(
        tenant_api.merge(tenants::router()),
        state,
        config.max_inflight,
        config.request_timeout,
    );
    OpenApiRouter::with_openapi(ApiDoc::openapi())
        .merge(api)
        .merge(ops::router())
        .merge(openapi::router())
}

fn cors(origins: &[axum::http::HeaderValue]) -> CorsLayer {
    CorsLayer::new()
        .allow_origin(AllowOrigin::list(origins.iter().cloned()))
        .allow_methods([
            Method::GET,
            Method::POST,
            Method::PUT,
            Method::PATCH,
            Method::DELETE,
        ])
        .allow_headers([
            header::AUTHORIZATION,
            header::CONTENT_TYPE,
            HeaderName::from_static("x-request-id"),
        ])
        .expose_headers([
            header::RETRY_AFTER,
            header::LOCATION,
            HeaderName::from_static("x-request-id"),
            HeaderName::from_static("ratelimit-limit"),
            HeaderName::from_static("ratelimit-remaining"),
            HeaderName::from_static("ratelimit-reset"),
        ])
        .max_age(std::time::Duration::from_secs(600))
}

async fn route_not_found() -> AppError {
    AppError::RouteNotFound
}

async fn method_not_allowed() -> AppError {
    AppError::MethodNotAllowed
}
