//! Tenants: one small business each, with one API key. Created by an operator, either
//! with `aimate tenant create NAME` or `POST /api/admin/tenants` and the admin token.
//! A key is rotated (`aimate tenant rotate-key ID`, `POST /api/admin/tenants/{id}/key`:
//! a new key, the old one stops working) or revoked (`aimate tenant revoke-key ID`,
//! `DELETE /api/admin/tenants/{id}/key`). The instance that served the call forgets the
//! old key at once; other instances within the auth cache's TTL (60 s).

use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::auth::{bearer_token, generate_api_key, hash_secret, secrets_match};
use crate::db::Db;
use crate::error::{AppError, AppJson, AppPath, Result};
use crate::state::AppState;
use crate::validate::{Validate, text_field};

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(create_tenant))
        .routes(routes!(rotate_tenant_key, revoke_tenant_key))
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

/// Gives tenant `tenant_id` a new API key; the old one stops working. `None`: no such
/// tenant. Also returns the old key's hash, for the auth cache to forget.
pub async fn rotate_key(db: &Db, tenant_id: i64) -> Result<Option<(CreatedTenant, String)>> {
    let Some(old_hash) = current_hash(db, tenant_id).await? else {
        return Ok(None);
    };
    let api_key = generate_api_key();
    let name: Option<String> = sqlx::query_scalar(
        "UPDATE tenant SET api_key_hash = $1, key_revoked_at = NULL \
         WHERE tenant_id = $2 RETURNING name",
    )
    .bind(hash_secret(&api_key))
    .bind(tenant_id)
    .fetch_optional(&db.pool)
    .await?;
    Ok(name.map(|name| {
        (
            CreatedTenant {
                id: tenant_id,
                name,
                api_key,
            },
            old_hash,
        )
    }))
}

/// Revokes tenant `tenant_id`'s API key (until a rotation gives it a new one). `None`:
/// no such tenant; otherwise the revoked key's hash.
pub async fn revoke_key(db: &Db, tenant_id: i64) -> Result<Option<String>> {
    Ok(sqlx::query_scalar(
        "UPDATE tenant SET key_revoked_at = COALESCE(key_revoked_at, $1) \
         WHERE tenant_id = $2 RETURNING api_key_hash",
    )
    .bind(crate::time::now())
    .bind(tenant_id)
    .fetch_optional(&db.pool)
    .await?)
}

async fn current_hash(db: &Db, tenant_id: i64) -> Result<Option<String>> {
    Ok(
        sqlx::query_scalar("SELECT api_key_hash FROM tenant WHERE tenant_id = $1")
            .bind(tenant_id)
            .fetch_optional(&db.pool)
            .await?,
    )
}

/// The admin token check shared by the admin endpoints.
fn require_admin(state: &AppState, headers: &HeaderMap) -> Result<()> {
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
    match bearer_token(headers) {
        Some(given) if secrets_match(given, expected) => Ok(()),
        _ => Err(AppError::Unauthorized("a valid admin token is required")),
    }
}

/// Give a tenant a new API key; the old one stops working (admin only). The new key is
/// shown only in this answer.
#[utoipa::path(
    post,
    path = "/api/admin/tenants/{id}/key",
    tag = "admin",
    params(("id" = i64, Path, description = "Tenant id")),
    security(("admin_token" = [])),
    responses(
        (status = 200, description = "The tenant's new API key, shown only here", body = CreatedTenant),
        (status = 404, description = "No such tenant", body = crate::openapi::ErrorResponse),
    )
)]
async fn rotate_tenant_key(
    State(state): State<AppState>,
    headers: HeaderMap,
    AppPath(tenant_id): AppPath<i64>,
) -> Result<AppJson<CreatedTenant>> {
    require_admin(&state, &headers)?;
    let (rotated, old_hash) = rotate_key(&state.db, tenant_id)
        .await?
        .ok_or(AppError::NotFound("tenant"))?;
    state.auth.forget(&old_hash).await;
    tracing::info!(tenant_id, "tenant API key rotated");
    Ok(AppJson(rotated))
}

/// Revoke a tenant's API key: it stops working here at once, on other instances within
/// 60 s (admin only). A rotation issues a new one.
#[utoipa::path(
    delete,
    path = "/api/admin/tenants/{id}/key",
    tag = "admin",
    params(("id" = i64, Path, description = "Tenant id")),
    security(("admin_token" = [])),
    responses(
        (status = 204, description = "Revoked"),
        (status = 404, description = "No such tenant", body = crate::openapi::ErrorResponse),
    )
)]
async fn revoke_tenant_key(
    State(state): State<AppState>,
    headers: HeaderMap,
    AppPath(tenant_id): AppPath<i64>,
) -> Result<StatusCode> {
    require_admin(&state, &headers)?;
    let hash = revoke_key(&state.db, tenant_id)
        .await?
        .ok_or(AppError::NotFound("tenant"))?;
    state.auth.forget(&hash).await;
    tracing::info!(tenant_id, "tenant API key revoked");
    Ok(StatusCode::NO_CONTENT)
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
    require_admin(&state, &headers)?;
    let created = insert_tenant(&state.db, new).await?;
    tracing::info!(tenant_id = created.id, "tenant created");
    Ok((StatusCode::CREATED, AppJson(created)))
}
