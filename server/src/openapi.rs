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

/// Adds to every operation the answers the layers around the handlers can give, which
/// the handlers' own annotations do not list: authentication and rate limiting (401,
/// 429), body extraction (400, 413, 415, 422), path and query parsing (400), load
/// shedding, timeouts and database trouble (503), and the last-resort 500. A status an
/// operation already documents keeps its own description. `admitted` says whether a
/// path is behind load shedding and the request timeout.
pub fn document_common_responses(doc: &mut serde_json::Value, admitted: impl Fn(&str) -> bool) {
    let Some(paths) = doc.get_mut("paths").and_then(|p| p.as_object_mut()) else {
        return;
    };
    for (path, item) in paths.iter_mut() {
        let Some(item) = item.as_object_mut() else {
            continue;
        };
        let shared_parameters = item.get("parameters").cloned();
        for (method, operation) in item.iter_mut() {
            if !HTTP_METHODS.contains(&method.as_str()) {
                continue;
            }
            let statuses = common_statuses(operation, shared_parameters.as_ref(), admitted(path));
            let Some(responses) = operation
                .get_mut("responses")
                .and_then(|r| r.as_object_mut())
            else {
                continue;
            };
            for (status, description) in statuses {
                responses
                    .entry(status.to_string())
                    .or_insert_with(|| error_response(status, description));
            }
        }
    }
}

/// Says what the document leaves implicit: where the API is (`servers`: the server
/// that served the document, as a relative URL, so it holds behind any balancer), and
/// that an operation without a security requirement is public on purpose
/// (`security: []`), not an oversight.
pub fn declare_servers_and_public_operations(doc: &mut serde_json::Value) {
    if let Some(root) = doc.as_object_mut() {
        root.insert(
            "servers".into(),
            serde_json::json!([{ "url": "/", "description": "The server that served this document" }]),
        );
    }
    let Some(paths) = doc.get_mut("paths").and_then(|p| p.as_object_mut()) else {
        return;
    };
    for item in paths.values_mut() {
        let Some(item) = item.as_object_mut() else {
            continue;
        };
        for (method, operation) in item.iter_mut() {
            if let Some(operation) = operation.as_object_mut()
                && HTTP_METHODS.contains(&method.as_str())
            {
                operation
                    .entry("security")
                    .or_insert_with(|| serde_json::json!([]));
            }
        }
    }
}

const HTTP_METHODS: &[&str] = &[
    "get", "put", "post", "delete", "patch", "head", "options", "trace",
];

fn common_statuses(
    operation: &serde_json::Value,
    shared_parameters: Option<&serde_json::Value>,
    admitted: bool,
) -> Vec<(u16, &'static str)> {
    let mut statuses = vec![(500, "Unexpected server error")];
    let schemes: Vec<&str> = operation["security"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|requirement| requirement.as_object())
        .flat_map(|requirement| requirement.keys().map(String::as_str))
        .collect();
    if schemes.contains(&"api_key") {
        statuses.push((401, "Missing, malformed or unknown API key"));
        statuses.push((429, "Rate limit of the API key (or of failed authentications from this address) exceeded; see Retry-After"));
    }
    if schemes.contains(&"admin_token") {
        statuses.push((401, "Missing or wrong admin token"));
        statuses.push((403, "Admin endpoints are disabled"));
    }
    if operation.get("requestBody").is_some() {
        statuses.push((400, "Malformed JSON body"));
        statuses.push((413, "Request body too large"));
        statuses.push((415, "Content-Type is not application/json"));
        statuses.push((
            422,
            "The body breaks a rule: wrong type, missing or unknown field, bad value",
        ));
    }
    let parameters = operation["parameters"]
        .as_array()
        .into_iter()
        .chain(shared_parameters.and_then(|p| p.as_array()))
        .flatten();
    if parameters
        .filter_map(|p| p["in"].as_str())
        .any(|place| place == "path" || place == "query")
    {
        statuses.push((400, "A path or query parameter is malformed"));
    }
    if admitted {
        statuses.push((
            503,
            "Overloaded, timed out, or the database is busy or unavailable; see Retry-After",
        ));
    }
    statuses
}

fn error_response(status: u16, description: &str) -> serde_json::Value {
    let mut response = serde_json::json!({
        "description": description,
        "content": {
            "application/json": {
                "schema": { "$ref": "#/components/schemas/ErrorResponse" }
            }
        }
    });
    if matches!(status, 429 | 503) {
        response["headers"] = serde_json::json!({
            "Retry-After": {
                "description": "Seconds to wait before retrying",
                "schema": { "type": "integer", "minimum": 0 }
            }
        });
    }
    response
}

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(get_openapi))
}

/// This OpenAPI document.
#[utoipa::path(
    get,
    path = "/api/openapi.json",
    tag = "operations",
    responses(
        (status = 200, description = "OpenAPI 3 document", content_type = "application/json", body = Object),
        (status = 404, description = "The document could not be rendered at start-up (the server logged why)", body = ErrorResponse),
    )
)]
async fn get_openapi(State(state): State<AppState>) -> Response {
    match state.openapi() {
        Some(doc) => json_response(doc),
        None => AppError::NotFound("OpenAPI document").into_response(),
    }
}
