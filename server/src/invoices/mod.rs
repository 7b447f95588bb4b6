//! `/api/invoices`: list (cached 1 min), create, bulk create, read, update, delete.
//! Every write updates the dashboard totals in its transaction, then invalidates the
//! tenant's dashboard and the list pages it can have changed (`list_cache`).

pub mod model;
mod queries;

use axum::extract::{DefaultBodyLimit, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use chrono::Utc;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use self::model::{
    BulkCreated, BulkInvoices, Invoice, InvoiceListQuery, InvoicePatch, InvoiceStatus, NewInvoice,
};
use crate::auth::Tenant;
use crate::cache::{CacheKind, cached_json};
use crate::error::{AppError, AppJson, AppPath, AppQuery, Result};
use crate::list_cache::{self, Change, Written};
use crate::openapi::ErrorResponse;
use crate::pagination::{Page, checked_limit, decode_cursor};
use crate::respond::json_bytes;
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

/// After a committed write: the dashboard, the list pages and the invoices it changed.
async fn invalidate(state: &AppState, tenant: Tenant, changed: &[&Invoice], change: Change) {
    let written = Written {
        filters: changed
            .iter()
            .flat_map(|i| list_cache::matching_filters(&[&i.customer, i.status.as_str()]))
            .collect(),
        ids: changed.iter().map(|invoice| invoice.id).collect(),
        change,
    };
    let in_order = state.db.ids_in_commit_order();
    list_cache::invalidate(state.cache.as_ref(), tenant.id, LIST, written, in_order).await;
}

/// The list's name in cache scopes.
const LIST: &str = "invoices";

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
    let filter = list_cache::filter_key(&[
        query.customer.as_deref(),
        query.status.map(InvoiceStatus::as_str),
    ]);
    let scope = list_cache::page_scope(tenant.id, LIST, &filter, after.is_none());
    let rest = format!("a={after:?}&l={limit}");
    let load =
        async { json_bytes(&queries::list(&state.db, tenant.id, &query, after, limit).await?) };
    cached_json(
        state.cache.as_ref(),
        CacheKind::InvoiceList,
        &scope,
        &rest,
        Box::pin(load),
    )
    .await
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
    let tenant_id = tenant.id;
    let mut invoices = state
        .db
        .write(move |conn| {
            Box::pin(async move {
                queries::insert(conn, tenant_id, &[fields], &crate::time::now()).await
            })
        })
        .await?;
    let invoice = invoices
        .pop()
        .ok_or_else(|| AppError::internal(anyhow::anyhow!("an insert returned no row")))?;
    invalidate(&state, tenant, &[&invoice], Change::Added).await;
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
    let tenant_id = tenant.id;
    let invoices = state
        .db
        .write(move |conn| {
            Box::pin(
                async move { queries::insert(conn, tenant_id, &items, &crate::time::now()).await },
            )
        })
        .await?;
    let added: Vec<&Invoice> = invoices.iter().collect();
    invalidate(&state, tenant, &added, Change::Added).await;
    let ids: Vec<i64> = invoices.iter().map(|invoice| invoice.id).collect();
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
) -> Result<Response> {
    let load = async {
        let invoice = queries::find(&state.db.pool, tenant.id, id)
            .await?
            .ok_or(AppError::NotFound("invoice"))?;
        json_bytes(&invoice)
    };
    let scope = list_cache::item_scope(tenant.id, LIST, id);
    cached_json(
        state.cache.as_ref(),
        CacheKind::Invoice,
        &scope,
        "",
        Box::pin(load),
    )
    .await
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
    let tenant_id = tenant.id;
    let (before, updated) = state
        .db
        .write(move |conn| {
            Box::pin(async move {
                let current = queries::lock(&mut *conn, tenant_id, id)
                    .await?
                    .ok_or(AppError::NotFound("invoice"))?;
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
    let tenant_id = tenant.id;
    let deleted = state
        .db
        .write(move |conn| Box::pin(async move { queries::delete(conn, tenant_id, id).await }))
        .await?
        .ok_or(AppError::NotFound("invoice"))?;
    invalidate(&state, tenant, &[&deleted], Change::Changed).await;
    Ok(StatusCode::NO_CONTENT)
}
