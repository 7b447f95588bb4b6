//! The OpenAPI 3 document. Paths and schemas are generated from the same handler
//! annotations and types the router is built from (utoipa-axum), so they cannot drift;
//! a test also checks every documented route against the running server.

use axum::extract::State;
use axum::response::{IntoResponse, Response};
use serde::Serialize;
use utoipa::openapi::security::{Http, HttpAuthScheme, SecurityScheme};
use utoipa::{Modify, OpenApi, ToSchema};

use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::error::AppError;
use crate::respond::json_response;
use crate::state::AppState;

#[derive(OpenApi)]
#[openapi(
    info(title = "AI Mate API", description = "Invoices, jobs, a dashboard and user preferences for small trade businesses."),
    modifiers(&SecuritySchemes),
    components(schemas(ErrorResponse, ErrorDetail))
)]
pub struct ApiDoc;

struct SecuritySchemes;

impl Modify for SecuritySchemes {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "api_key",
            SecurityScheme::Http(Http::new(HttpAuthScheme::Bearer)),
        );
        components.add_security_scheme(
            "admin_token",
            SecurityScheme::Http(Http::new(HttpAuthScheme::Bearer)),
        );
    }
}

/// Every error body: `{"error":{"code":"…","message":"…"}}`.
#[derive(Debug, Serialize, ToSchema)]
pub struct ErrorResponse {
    pub error: ErrorDetail,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct ErrorDetail {
    /// Stable, machine-readable: `validation_failed`, `not_found`, `rate_limited`, …
    pub code: String,
    /// What is wrong, for a person.
    pub message: String,
}

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(get_openapi))
}

/// This OpenAPI document.
#[utoipa::path(
    get,
    path = "/api/openapi.json",
    tag = "operations",
    responses((status = 200, description = "OpenAPI 3 document", content_type = "application/json", body = Object))
)]
async fn get_openapi(State(state): State<AppState>) -> Response {
    match state.openapi() {
        Some(doc) => json_response(doc),
        None => AppError::NotFound("OpenAPI document").into_response(),
    }
}
