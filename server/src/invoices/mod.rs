//! `/api/invoices`: list (cached 1 min), create, bulk create, read, update, delete.
//! Every write invalidates the tenant's invoice lists and dashboard.

pub mod model;
mod queries;

use axum::extract::{DefaultBodyLimit, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use chrono::Utc;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use self::model::{BulkCreated, BulkInvoices, Invoice, InvoiceListQuery, InvoicePatch, NewInvoice};
use crate::auth::Tenant;
use crate::cache::{CacheKind, scoped_key, tenant_scope};
use crate::error::{AppError, AppJson, AppPath, AppQuery, Result};
use crate::openapi::ErrorResponse;
use crate::pagination::{Page, checked_limit, decode_cursor};
use crate::respond::{json_bytes, json_response};
use crate::state::AppState;
use crate::validate::Validate;

pub fn router(bulk_body_limit: usize) -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(list_invoices, create_invoice))
        .routes(routes!(get_invoice, update_invoice, delete_invoice))
        .merge(
            OpenApiRouter::new()
                .routes(routes!(create_invoices_bulk))
                .layer(DefaultBodyLimit::max(bulk_body_limit)),
        )
}

async fn invalidate(state: &AppState, tenant: Tenant) {
    state
        .cache
        .invalidate_scope(&tenant_scope(tenant.id, "invoices"))
        .await;
    state
        .cache
        .invalidate_scope(&tenant_scope(tenant.id, "dashboard"))
        .await;
}

/// List invoices, newest first.
#[utoipa::path(
    get,
    path = "/api/invoices",
    tag = "invoices",
    params(InvoiceListQuery),
    security(("api_key" = [])),
    responses(
        (status = 200, description = "One page of invoices", body = Page<Invoice>),
        (status = 400, description = "Bad filter, limit or cursor", body = ErrorResponse),
    )
)]
async fn list_invoices(
    State(state): State<AppState>,
    tenant: Tenant,
    AppQuery(query): AppQuery<InvoiceListQuery>,
) -> Result<Response> {
    let limit = checked_limit(query.limit)?;
    let after = query.cursor.as_deref().map(decode_cursor).transpose()?;
    let rest = format!(
        "c={:?}&s={:?}&a={after:?}&l={limit}",
        query.customer, query.status
    );
    let key = scoped_key(
        state.cache.as_ref(),
        &tenant_scope(tenant.id, "invoices"),
        &rest,
    )
    .await;
    let load =
        async { json_bytes(&queries::list(&state.db, tenant.id, &query, after, limit).await?) };
    let body = state
        .cache
        .get_or_load(CacheKind::InvoiceList, key, Box::pin(load))
        .await?;
    Ok(json_response(body))
}

/// Create an invoice.
#[utoipa::path(
    post,
    path = "/api/invoices",
    tag = "invoices",
    request_body = NewInvoice,
    security(("api_key" = [])),
    responses(
        (status = 201, description = "Created", body = Invoice),
        (status = 422, description = "Invalid invoice", body = ErrorResponse),
    )
)]
async fn create_invoice(
    State(state): State<AppState>,
    tenant: Tenant,
    AppJson(new): AppJson<NewInvoice>,
) -> Result<Response> {
    let fields = new.into_fields(Utc::now().date_naive(), "")?;
    let mut tx = state.db.begin_write().await?;
    let invoice = queries::insert(&mut tx, tenant.id, &fields, &crate::time::now()).await?;
    tx.commit().await?;
    invalidate(&state, tenant).await;
    Ok(created(&invoice))
}

fn created(invoice: &Invoice) -> Response {
    let mut response = (StatusCode::CREATED, AppJson(invoice)).into_response();
    if let Ok(location) = HeaderValue::from_str(&format!("/api/invoices/{}", invoice.id)) {
        response.headers_mut().insert(header::LOCATION, location);
    }
    response
}

/// Create up to 1000 invoices in one transaction: all or none.
#[utoipa::path(
    post,
    path = "/api/invoices/bulk",
    tag = "invoices",
    request_body = BulkInvoices,
    security(("api_key" = [])),
    responses(
        (status = 201, description = "All created", body = BulkCreated),
        (status = 413, description = "Body over the bulk limit", body = ErrorResponse),
        (status = 422, description = "An item is invalid; nothing was written", body = ErrorResponse),
    )
)]
async fn create_invoices_bulk(
    State(state): State<AppState>,
    tenant: Tenant,
    AppJson(mut bulk): AppJson<BulkInvoices>,
) -> Result<(StatusCode, AppJson<BulkCreated>)> {
    bulk.validate()?;
    let today = Utc::now().date_naive();
    // Validate everything before the transaction opens, so a bad item costs no lock.
    let items = bulk
        .invoices
        .into_iter()
        .enumerate()
        .map(|(i, new)| new.into_fields(today, &format!("invoices[{i}].")))
        .collect::<Result<Vec<_>>>()?;
    let now = crate::time::now();
    let mut tx = state.db.begin_write().await?;
    let mut ids = Vec::with_capacity(items.len());
    for fields in &items {
        ids.push(queries::insert(&mut tx, tenant.id, fields, &now).await?.id);
    }
    tx.commit().await?;
    invalidate(&state, tenant).await;
    Ok((
        StatusCode::CREATED,
        AppJson(BulkCreated {
            created: ids.len(),
            ids,
        }),
    ))
}

/// Read one invoice.
#[utoipa::path(
    get,
    path = "/api/invoices/{id}",
    tag = "invoices",
    params(("id" = i64, Path, description = "Invoice id")),
    security(("api_key" = [])),
    responses(
        (status = 200, description = "The invoice", body = Invoice),
        (status = 404, description = "No such invoice for this tenant", body = ErrorResponse),
    )
)]
async fn get_invoice(
    State(state): State<AppState>,
    tenant: Tenant,
    AppPath(id): AppPath<i64>,
) -> Result<AppJson<Invoice>> {
    let invoice = queries::find(&state.db.pool, tenant.id, id)
        .await?
        .ok_or(AppError::NotFound("invoice"))?;
    Ok(AppJson(invoice))
}

/// Change some fields of an invoice.
#[utoipa::path(
    patch,
    path = "/api/invoices/{id}",
    tag = "invoices",
    params(("id" = i64, Path, description = "Invoice id")),
    request_body = InvoicePatch,
    security(("api_key" = [])),
    responses(
        (status = 200, description = "The updated invoice", body = Invoice),
        (status = 404, description = "No such invoice for this tenant", body = ErrorResponse),
        (status = 422, description = "Invalid change", body = ErrorResponse),
    )
)]
async fn update_invoice(
    State(state): State<AppState>,
    tenant: Tenant,
    AppPath(id): AppPath<i64>,
    AppJson(patch): AppJson<InvoicePatch>,
) -> Result<AppJson<Invoice>> {
    let mut tx = state.db.begin_write().await?;
    let current = queries::find(&mut **tx, tenant.id, id)
        .await?
        .ok_or(AppError::NotFound("invoice"))?;
    let fields = patch.apply(&current)?;
    let updated =
        queries::update(&mut tx, tenant.id, &current, &fields, &crate::time::now()).await?;
    tx.commit().await?;
    invalidate(&state, tenant).await;
    Ok(AppJson(updated))
}

/// Delete an invoice.
#[utoipa::path(
    delete,
    path = "/api/invoices/{id}",
    tag = "invoices",
    params(("id" = i64, Path, description = "Invoice id")),
    security(("api_key" = [])),
    responses(
        (status = 204, description = "Deleted"),
        (status = 404, description = "No such invoice for this tenant", body = ErrorResponse),
    )
)]
async fn delete_invoice(
    State(state): State<AppState>,
    tenant: Tenant,
    AppPath(id): AppPath<i64>,
) -> Result<StatusCode> {
    if !queries::delete(&state.db, tenant.id, id).await? {
        return Err(AppError::NotFound("invoice"));
    }
    invalidate(&state, tenant).await;
    Ok(StatusCode::NO_CONTENT)
}
