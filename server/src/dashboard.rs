//! `GET /api/dashboard`: a tenant's money and work at a glance, cached 2 min and
//! invalidated by every invoice or job write.

use std::collections::BTreeMap;

use axum::extract::State;
use axum::response::Response;
use chrono::Utc;
use serde::Serialize;
use sqlx::FromRow;
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::auth::Tenant;
use crate::cache::{CacheKind, scoped_key, tenant_scope};
use crate::db::Db;
use crate::error::Result;
use crate::invoices::model::InvoiceStatus;
use crate::jobs::model::JobStatus;
use crate::respond::{json_bytes, json_response};
use crate::state::AppState;

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(get_dashboard))
}

/// A sum of invoice amounts in one currency.
#[derive(Debug, Serialize, ToSchema, FromRow, PartialEq, Eq)]
pub struct MoneyTotal {
    pub currency: String,
    pub amount_cents: i64,
    pub count: i64,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct Dashboard {
    /// Unpaid invoices that were sent (status `sent` or `overdue`), per currency.
    pub outstanding: Vec<MoneyTotal>,
    /// Invoices marked `overdue`, or `sent` and past their due date, per currency.
    pub overdue: Vec<MoneyTotal>,
    /// Invoices paid since the first of this month (UTC), per currency.
    pub revenue_this_month: Vec<MoneyTotal>,
    /// Invoice count for every status (zero included).
    pub invoices_by_status: BTreeMap<String, i64>,
    /// Job count for every status (zero included).
    pub jobs_by_status: BTreeMap<String, i64>,
    /// When these figures were computed (RFC 3339); they may be up to 2 minutes old.
    pub generated_at: String,
}

#[derive(FromRow)]
struct StatusCount {
    status: String,
    count: i64,
}

// CAST(… AS BIGINT): PostgreSQL sums BIGINT into NUMERIC, which the Any driver cannot carry.
const MONEY_SELECT: &str = "SELECT currency, CAST(SUM(amount_cents) AS BIGINT) AS amount_cents, COUNT(*) AS count FROM invoice";

async fn money(
    db: &Db,
    condition: &str,
    tenant_id: i64,
    arg: Option<&str>,
) -> Result<Vec<MoneyTotal>> {
    let sql = format!(
        "{MONEY_SELECT} WHERE tenant_id = $1 AND {condition} GROUP BY currency ORDER BY currency"
    );
    let mut query = sqlx::query_as(&sql).bind(tenant_id);
    if let Some(arg) = arg {
        query = query.bind(arg);
    }
    Ok(query.fetch_all(&db.pool).await?)
}

async fn counts(
    db: &Db,
    table: &str,
    tenant_id: i64,
    statuses: &[&str],
) -> Result<BTreeMap<String, i64>> {
    let sql = format!(
        "SELECT status, COUNT(*) AS count FROM {table} WHERE tenant_id = $1 GROUP BY status"
    );
    let rows: Vec<StatusCount> = sqlx::query_as(&sql)
        .bind(tenant_id)
        .fetch_all(&db.pool)
        .await?;
    let mut by_status: BTreeMap<String, i64> =
        statuses.iter().map(|s| ((*s).to_owned(), 0)).collect();
    for row in rows {
        by_status.insert(row.status, row.count);
    }
    Ok(by_status)
}

pub async fn compute(db: &Db, tenant_id: i64) -> Result<Dashboard> {
    let now = Utc::now();
    let today = now.date_naive().to_string();
    let month_start = crate::time::month_start(now);
    let invoice_statuses: Vec<&str> = InvoiceStatus::ALL.iter().map(|s| s.as_str()).collect();
    let job_statuses: Vec<&str> = JobStatus::ALL.iter().map(|s| s.as_str()).collect();
    Ok(Dashboard {
        outstanding: money(db, "status IN ('sent', 'overdue')", tenant_id, None).await?,
        overdue: money(
            db,
            "(status = 'overdue' OR (status = 'sent' AND due_on < $2))",
            tenant_id,
            Some(&today),
        )
        .await?,
        revenue_this_month: money(
            db,
            "status = 'paid' AND paid_at >= $2",
            tenant_id,
            Some(&month_start),
        )
        .await?,
        invoices_by_status: counts(db, "invoice", tenant_id, &invoice_statuses).await?,
        jobs_by_status: counts(db, "job", tenant_id, &job_statuses).await?,
        generated_at: crate::time::timestamp(now),
    })
}

/// The tenant's dashboard.
#[utoipa::path(
    get,
    path = "/api/dashboard",
    tag = "dashboard",
    security(("api_key" = [])),
    responses((status = 200, description = "Totals and counts", body = Dashboard))
)]
async fn get_dashboard(State(state): State<AppState>, tenant: Tenant) -> Result<Response> {
    let key = scoped_key(
        state.cache.as_ref(),
        &tenant_scope(tenant.id, "dashboard"),
        "v1",
    )
    .await;
    let load = async { json_bytes(&compute(&state.db, tenant.id).await?) };
    let body = state
        .cache
        .get_or_load(CacheKind::Dashboard, key, Box::pin(load))
        .await?;
    Ok(json_response(body))
}
