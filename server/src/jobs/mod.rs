//! `/api/jobs`: list (cached 1 min), create, read, update. Writes update the dashboard
//! totals in their transaction, then invalidate the tenant's dashboard and the list
//! pages they can have changed (`list_cache`).

pub mod model;
mod queries;

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::Response;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use self::model::{Job, JobListQuery, JobPatch, JobStatus, NewJob};
use crate::auth::Tenant;
use crate::cache::{CacheKind, cached_json};
use crate::error::{AppError, AppJson, AppPath, AppQuery, Result};
use crate::list_cache::{self, Change, Written};
use crate::openapi::ErrorResponse;
use crate::pagination::{Page, checked_limit, decode_cursor};
use crate::respond::json_bytes;
use crate::state::AppState;

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(list_jobs, create_job))
        .routes(routes!(get_job, update_job))
}

/// The list's name in cache scopes.
const LIST: &str = "jobs";

/// After a committed write: the dashboard, the list pages and the jobs it changed. Lists
/// are scoped by the status filter; a date range is part of the page key, so a write
/// outside a page's range still renews it (rare, and never stale).
async fn invalidate(state: &AppState, tenant: Tenant, jobs: &[&Job], change: Change) {
    let written = Written {
        filters: jobs
            .iter()
            .flat_map(|job| list_cache::matching_filters(&[job.status.as_str()]))
            .collect(),
        ids: jobs.iter().map(|job| job.id).collect(),
        change,
    };
    let in_order = state.db.ids_in_commit_order();
    list_cache::invalidate(state.cache.as_ref(), tenant.id, LIST, written, in_order).await;
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
    let filter = list_cache::filter_key(&[query.status.map(JobStatus::as_str)]);
    let scope = list_cache::page_scope(tenant.id, LIST, &filter, after.is_none());
    let rest = format!("f={:?}&t={:?}&a={after:?}&l={limit}", query.from, query.to);
    let load =
        async { json_bytes(&queries::list(&state.db, tenant.id, &query, after, limit).await?) };
    cached_json(
        state.cache.as_ref(),
        CacheKind::JobList,
        &scope,
        &rest,
        Box::pin(load),
    )
    .await
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
    let tenant_id = tenant.id;
    let job = state
        .db
        .write(move |conn| {
            Box::pin(
                async move { queries::insert(conn, tenant_id, &fields, &crate::time::now()).await },
            )
        })
        .await?;
    invalidate(&state, tenant, &[&job], Change::Added).await;
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
) -> Result<Response> {
    let load = async {
        let job = queries::find(&state.db.pool, tenant.id, id)
            .await?
            .ok_or(AppError::NotFound("job"))?;
        json_bytes(&job)
    };
    let scope = list_cache::item_scope(tenant.id, LIST, id);
    cached_json(
        state.cache.as_ref(),
        CacheKind::Job,
        &scope,
        "",
        Box::pin(load),
    )
    .await
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
    let tenant_id = tenant.id;
    let (before, updated) = state
        .db
        .write(move |conn| {
            Box::pin(async move {
                let current = queries::lock(&mut *conn, tenant_id, id)
                    .await?
                    .ok_or(AppError::NotFound("job"))?;
                let fields = patch.apply(&current)?;
                let updated =
                    queries::update(conn, tenant_id, &current, &fields, &crate::time::now())
                        .await?;
                Ok((current, updated))
            })
        })
        .await?;
    invalidate(&state, tenant, &[&before, &updated], Change::Changed).await;
    Ok(AppJson(updated))
}
