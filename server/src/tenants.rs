//! Tenants: one small business each, with one API key. Created by an operator, either
//! with `aimate tenant create NAME` or `POST /api/admin/tenants` and the admin token.

use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::auth::{bearer_token, generate_api_key, hash_secret, secrets_match};
use crate::db::Db;
use crate::error::{AppError, AppJson, Result};
use crate::state::AppState;
use crate::validate::{Validate, text_field};

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(create_tenant))
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewTenant {
    /// The business's display name (1–100 characters).
    pub name: String,
}

impl Validate for NewTenant {
    fn validate(&mut self) -> Result<()> {
        self.name = text_field("name", &self.name, 100)?;
        Ok(())
    }
}

/// A tenant as created. `api_key` is shown this once and never again.
#[derive(Debug, Serialize, ToSchema)]
pub struct CreatedTenant {
    pub id: i64,
    pub name: String,
    pub api_key: String,
}

/// Inserts a tenant with a fresh API key.
pub async fn insert_tenant(db: &Db, new: NewTenant) -> Result<CreatedTenant> {
    let mut new = new;
    new.validate()?;
    let api_key = generate_api_key();
    let id: i64 = sqlx::query_scalar(
        "INSERT INTO tenant (name, api_key_hash, created_at) VALUES ($1, $2, $3) RETURNING tenant_id",
    )
    .bind(&new.name)
    .bind(hash_secret(&api_key))
    .bind(crate::time::now())
    .fetch_one(&db.pool)
    .await?;
    Ok(CreatedTenant {
        id,
        name: new.name,
        api_key,
    })
}

/// Create a tenant and its API key (admin only).
#[utoipa::path(
    post,
    path = "/api/admin/tenants",
    tag = "admin",
    request_body = NewTenant,
    security(("admin_token" = [])),
    responses(
        (status = 201, description = "Tenant created; the API key is shown only here", body = CreatedTenant),
        (status = 401, description = "Missing or wrong admin token", body = crate::openapi::ErrorResponse),
        (status = 403, description = "Admin endpoints are disabled (no AIMATE_ADMIN_TOKEN)", body = crate::openapi::ErrorResponse),
        (status = 422, description = "Invalid name", body = crate::openapi::ErrorResponse),
    )
)]
async fn create_tenant(
    State(state): State<AppState>,
    headers: HeaderMap,
    AppJson(new): AppJson<NewTenant>,
) -> Result<(StatusCode, AppJson<CreatedTenant>)> {
    let Some(expected) = state
        .config
        .admin_token
        .as_deref()
        .filter(|t| !t.is_empty())
    else {
        return Err(AppError::Forbidden(
            "admin endpoints are disabled: set AIMATE_ADMIN_TOKEN to enable them",
        ));
    };
    match bearer_token(&headers) {
        Some(given) if secrets_match(given, expected) => {}
        _ => return Err(AppError::Unauthorized("a valid admin token is required")),
    }
    let created = insert_tenant(&state.db, new).await?;
    tracing::info!(tenant_id = created.id, "tenant created");
    Ok((StatusCode::CREATED, AppJson(created)))
}
