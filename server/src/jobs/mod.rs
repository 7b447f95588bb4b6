//! `/api/jobs`: list (cached 1 min), create, read, update. Writes invalidate the
//! tenant's job lists and dashboard.

pub mod model;
mod queries;

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::Response;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use self::model::{Job, JobListQuery, JobPatch, NewJob};
use crate::auth::Tenant;
use crate::cache::{CacheKind, scoped_key, tenant_scope};
use crate::error::{AppError, AppJson, AppPath, AppQuery, Result};
use crate::openapi::ErrorResponse;
use crate::pagination::{Page, checked_limit, decode_cursor};
use crate::respond::{json_bytes, json_response};
use crate::state::AppState;

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(list_jobs, create_job))
        .routes(routes!(get_job, update_job))
}

async fn invalidate(state: &AppState, tenant: Tenant) {
    state
        .cache
        .invalidate_scope(&tenant_scope(tenant.id, "jobs"))
        .await;
    state
        .cache
        .invalidate_scope(&tenant_scope(tenant.id, "dashboard"))
        .await;
}

/// List jobs, newest first.
#[utoipa::path(
    get,
    path = "/api/jobs",
    tag = "jobs",
    params(JobListQuery),
    security(("api_key" = [])),
    responses(
        (status = 200, description = "One page of jobs", body = Page<Job>),
        (status = 400, description = "Bad filter, range, limit or cursor", body = ErrorResponse),
    )
)]
async fn list_jobs(
    State(state): State<AppState>,
    tenant: Tenant,
    AppQuery(query): AppQuery<JobListQuery>,
) -> Result<Response> {
    query.check_range()?;
    let limit = checked_limit(query.limit)?;
    let after = query.cursor.as_deref().map(decode_cursor).transpose()?;
    let rest = format!(
        "s={:?}&f={:?}&t={:?}&a={after:?}&l={limit}",
        query.status, query.from, query.to
    );
    let key = scoped_key(
        state.cache.as_ref(),
        &tenant_scope(tenant.id, "jobs"),
        &rest,
    )
    .await;
    let load =
        async { json_bytes(&queries::list(&state.db, tenant.id, &query, after, limit).await?) };
    let body = state
        .cache
        .get_or_load(CacheKind::JobList, key, Box::pin(load))
        .await?;
    Ok(json_response(body))
}

/// Create a job.
#[utoipa::path(
    post,
    path = "/api/jobs",
    tag = "jobs",
    request_body = NewJob,
    security(("api_key" = [])),
    responses(
        (status = 201, description = "Created", body = Job),
        (status = 422, description = "Invalid job", body = ErrorResponse),
    )
)]
async fn create_job(
    State(state): State<AppState>,
    tenant: Tenant,
    AppJson(new): AppJson<NewJob>,
) -> Result<(StatusCode, AppJson<Job>)> {
    let fields = new.into_fields()?;
    let mut tx = state.db.begin_write().await?;
    let job = queries::insert(&mut tx, tenant.id, &fields, &crate::time::now()).await?;
    tx.commit().await?;
    invalidate(&state, tenant).await;
    Ok((StatusCode::CREATED, AppJson(job)))
}

/// Read one job.
#[utoipa::path(
    get,
    path = "/api/jobs/{id}",
    tag = "jobs",
    params(("id" = i64, Path, description = "Job id")),
    security(("api_key" = [])),
    responses(
        (status = 200, description = "The job", body = Job),
        (status = 404, description = "No such job for this tenant", body = ErrorResponse),
    )
)]
async fn get_job(
    State(state): State<AppState>,
    tenant: Tenant,
    AppPath(id): AppPath<i64>,
) -> Result<AppJson<Job>> {
    let job = queries::find(&state.db.pool, tenant.id, id)
        .await?
        .ok_or(AppError::NotFound("job"))?;
    Ok(AppJson(job))
}

/// Change some fields of a job.
#[utoipa::path(
    patch,
    path = "/api/jobs/{id}",
    tag = "jobs",
    params(("id" = i64, Path, description = "Job id")),
    request_body = JobPatch,
    security(("api_key" = [])),
    responses(
        (status = 200, description = "The updated job", body = Job),
        (status = 404, description = "No such job for this tenant", body = ErrorResponse),
        (status = 422, description = "Invalid change", body = ErrorResponse),
    )
)]
async fn update_job(
    State(state): State<AppState>,
    tenant: Tenant,
    AppPath(id): AppPath<i64>,
    AppJson(patch): AppJson<JobPatch>,
) -> Result<AppJson<Job>> {
    let mut tx = state.db.begin_write().await?;
    let current = queries::find(&mut **tx, tenant.id, id)
        .await?
        .ok_or(AppError::NotFound("job"))?;
    let fields = patch.apply(&current)?;
    let updated = queries::update(&mut tx, tenant.id, id, &fields, &crate::time::now()).await?;
    tx.commit().await?;
    invalidate(&state, tenant).await;
    Ok(AppJson(updated))
}
