//! `GET /api/dashboard`: a tenant's money and work at a glance, read from aggregates
//! that every write keeps exact (`totals`), cached 2 min and invalidated by every invoice
//! or job write.

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
use crate::cache::{CacheKind, cached_json, tenant_scope};
use crate::db::Db;
use crate::error::Result;
use crate::invoices::model::InvoiceStatus;
use crate::jobs::model::JobStatus;
use crate::respond::json_bytes;
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

/// One row of the dashboard's single query over the aggregate tables.
#[derive(FromRow)]
struct TotalsRow {
    kind: String,
    currency: String,
    bucket: String,
    count: i64,
    amount_cents: i64,
}

/// Everything the dashboard shows, in one round trip over `invoice_totals` and
/// `job_totals` (kept exact by every write, see `totals`). Each branch is an index range
/// on (tenant, kind, bucket): the rows per status and currency, this month's paid
/// bucket, and for "overdue" the `sent` totals of the months before this one plus this
/// month's days before today. So a read touches tens of rows whether the tenant has a
/// hundred invoices or a million.
// CAST(… AS BIGINT): PostgreSQL sums BIGINT into NUMERIC, which the Any driver cannot carry.
const TOTALS_SQL: &str = "\
SELECT kind, currency, bucket, count, amount_cents FROM invoice_totals \
 WHERE tenant_id = $1 AND kind = 'status' \
UNION ALL \
SELECT kind, currency, bucket, count, amount_cents FROM invoice_totals \
 WHERE tenant_id = $1 AND kind = 'paid_month' AND bucket = $2 \
UNION ALL \
SELECT 'sent_past_due', currency, '', CAST(SUM(count) AS BIGINT), CAST(SUM(amount_cents) AS BIGINT) FROM ( \
 SELECT currency, count, amount_cents FROM invoice_totals \
  WHERE tenant_id = $1 AND kind = 'sent_due_month' AND bucket < $2 \
 UNION ALL \
 SELECT currency, count, amount_cents FROM invoice_totals \
  WHERE tenant_id = $1 AND kind = 'sent_due' AND bucket >= $4 AND bucket < $3 \
) AS past_due GROUP BY currency \
UNION ALL \
SELECT 'job', '', status, count, CAST(0 AS BIGINT) FROM job_totals WHERE tenant_id = $1";

/// Adds one row into a per-currency total. Every sum is bounded by the tenant's
/// `all` row for the currency, which writes keep within i64, so this cannot overflow;
/// saturating keeps that an invariant rather than a panic.
fn add_money(totals: &mut BTreeMap<String, MoneyTotal>, row: &TotalsRow) {
    let total = totals
        .entry(row.currency.clone())
        .or_insert_with(|| MoneyTotal {
            currency: row.currency.clone(),
            amount_cents: 0,
            count: 0,
        });
    total.amount_cents = total.amount_cents.saturating_add(row.amount_cents);
    total.count = total.count.saturating_add(row.count);
}

pub async fn compute(db: &Db, tenant_id: i64) -> Result<Dashboard> {
    let now = Utc::now();
    let today = now.date_naive().to_string();
    let this_month = crate::totals::month_of(&today).to_owned();
    let first_of_month = format!("{this_month}-01");
    let rows: Vec<TotalsRow> = sqlx::query_as(TOTALS_SQL)
        .bind(tenant_id)
        .bind(&this_month)
        .bind(&today)
        .bind(&first_of_month)
        .fetch_all(&db.pool)
        .await?;
    let mut outstanding = BTreeMap::new();
    let mut overdue = BTreeMap::new();
    let mut revenue = BTreeMap::new();
    let mut invoices_by_status: BTreeMap<String, i64> = InvoiceStatus::ALL
        .iter()
        .map(|s| (s.as_str().to_owned(), 0))
        .collect();
    let mut jobs_by_status: BTreeMap<String, i64> = JobStatus::ALL
        .iter()
        .map(|s| (s.as_str().to_owned(), 0))
        .collect();
    for row in &rows {
        match (row.kind.as_str(), row.bucket.as_str()) {
            ("status", status) => {
                *invoices_by_status.entry(status.to_owned()).or_default() += row.count;
                if status == "sent" || status == "overdue" {
                    add_money(&mut outstanding, row);
                }
                if status == "overdue" {
                    add_money(&mut overdue, row);
                }
            }
            ("sent_past_due", _) => add_money(&mut overdue, row),
            ("paid_month", _) => add_money(&mut revenue, row),
            ("job", status) => {
                *jobs_by_status.entry(status.to_owned()).or_default() += row.count;
            }
            _ => {}
        }
    }
    Ok(Dashboard {
        outstanding: outstanding.into_values().collect(),
        overdue: overdue.into_values().collect(),
        revenue_this_month: revenue.into_values().collect(),
        invoices_by_status,
        jobs_by_status,
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
    let scope = tenant_scope(tenant.id, "dashboard");
    let load = async { json_bytes(&compute(&state.db, tenant.id).await?) };
    cached_json(
        state.cache.as_ref(),
        CacheKind::Dashboard,
        &scope,
        "v1",
        Box::pin(load),
    )
    .await
}
