//! The application: every route, in one place, and what wraps them.
//!
//! ```text
//! request ─▶ CORS (when origins are configured) ─▶ body limit
//!         ─▶ edge (request id, route template, admission for API routes, timeout,
//!                  metrics, access log)
//!         ─▶ router
//!              tenant routes: auth + rate limit ─▶ handler
//!              admin routes:  handler (checks the admin token)
//!              ops routes:    handler (never shed, never rate limited)
//! ```

use std::convert::Infallible;

use axum::Router;
use axum::body::Body;
use axum::extract::DefaultBodyLimit;
use axum::http::{HeaderName, Method, Request, header};
use axum::response::Response;
use tower::{Service, ServiceBuilder};
use tower_http::cors::{AllowOrigin, CorsLayer};
use utoipa::OpenApi;
use utoipa_axum::router::OpenApiRouter;

use crate::edge::{Edge, EdgeSettings};
use crate::error::AppError;
use crate::openapi::ApiDoc;
use crate::state::AppState;
use crate::{auth, dashboard, invoices, jobs, openapi, ops, preferences, tenants};

/// The whole application as one service, ready to serve.
pub fn app(
    state: AppState,
) -> impl Service<Request<Body>, Response = Response, Error = Infallible, Future = impl Send + 'static>
+ Clone
+ Send
+ Sync
+ 'static {
    let (router, doc) = routes(&state).split_for_parts();
    let templates: Vec<String> = doc.paths.paths.keys().cloned().collect();
    let rendered = serde_json::to_value(&doc).and_then(|mut json| {
        openapi::document_common_responses(&mut json, crate::edge::is_admitted);
        openapi::declare_servers_and_public_operations(&mut json);
        serde_json::to_vec(&json)
    });
    match rendered {
        Ok(json) => state.set_openapi(json.into()),
        // Built from our own static annotations; should it ever fail to serialize, its
        // route answers 404 rather than the server refusing to start.
        Err(error) => tracing::error!(%error, "cannot render the OpenAPI document"),
    }
    let config = state.config.clone();
    let metrics = state.metrics.clone();
    let router: Router = router
        .fallback(route_not_found)
        .method_not_allowed_fallback(method_not_allowed)
        .with_state(state)
        .layer(crate::panics::layer());
    let settings = EdgeSettings {
        max_inflight: config.max_inflight,
        request_timeout: config.request_timeout,
    };
    let edge = Edge::new(
        router,
        templates.iter().map(String::as_str),
        settings,
        metrics,
    );
    ServiceBuilder::new()
        // No allowed origins, no CORS layer: its `Vary` and expose headers would only
        // add bytes to every response.
        .option_layer((!config.cors_origins.is_empty()).then(|| cors(&config.cors_origins)))
        .layer(DefaultBodyLimit::max(config.max_body_bytes))
        .service(edge)
}

/// All routes with their OpenAPI description.
pub fn routes(state: &AppState) -> OpenApiRouter<AppState> {
    let tenant_api = OpenApiRouter::new()
        .merge(invoices::router(state.config.max_bulk_body_bytes))
        .merge(jobs::router())
        .merge(dashboard::router())
        .merge(preferences::router())
        .route_layer(auth::RequireTenantLayer::new(state.clone()));
    OpenApiRouter::with_openapi(ApiDoc::openapi())
        .merge(tenant_api)
        .merge(tenants::router())
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
            HeaderName::from_static("ratelimit-policy"),
        ])
        .max_age(std::time::Duration::from_secs(600))
}

async fn route_not_found() -> AppError {
    AppError::RouteNotFound
}

async fn method_not_allowed() -> AppError {
    AppError::MethodNotAllowed
}
