//! Invoice SQL. Every statement is scoped by `tenant_id`, so no query can reach another
//! tenant's rows whatever id a client sends.

use sqlx::{Any, AnyConnection};

use super::model::{COLUMNS, Invoice, InvoiceFields, InvoiceListQuery, InvoiceRow, InvoiceStatus};
use crate::db::Db;
use crate::db::filter::{Arg, Filter};
use crate::error::Result;
use crate::pagination::{Page, into_page};
use crate::totals::InvoiceDeltas;

pub async fn list(
    db: &Db,
    tenant_id: i64,
    query: &InvoiceListQuery,
    after: Option<i64>,
    limit: u32,
) -> Result<Page<Invoice>> {
    let mut filter = Filter::new();
    filter.push("tenant_id", "=", Arg::Int(tenant_id));
    if let Some(customer) = &query.customer {
        filter.push("customer", "=", Arg::Text(customer.clone()));
    }
    if let Some(status) = query.status {
        filter.push("status", "=", Arg::Text(status.as_str().to_owned()));
    }
    if let Some(after) = after {
        filter.push("invoice_id", "<", Arg::Int(after));
    }
    let sql = format!(
        "SELECT {COLUMNS} FROM invoice {} ORDER BY invoice_id DESC LIMIT ${}",
        filter.where_sql(),
        filter.next_placeholder()
    );
    let rows: Vec<InvoiceRow> = filter
        .bind(sqlx::query_as(&sql))
        .bind(i64::from(limit) + 1)
        .fetch_all(&db.pool)
        .await?;
    let invoices = rows
        .into_iter()
        .map(Invoice::try_from)
        .collect::<Result<Vec<_>>>()?;
    Ok(into_page(invoices, limit, |invoice| invoice.id))
}

/// One invoice of the tenant, read and locked inside a write transaction, so no other
/// write can change or delete it before this one commits (on PostgreSQL two
/// transactions could otherwise both read the old row, and the totals would count
/// its change twice). A no-op UPDATE takes the row lock on both backends.
pub async fn lock(
    conn: &mut AnyConnection,
    tenant_id: i64,
    invoice_id: i64,
) -> Result<Option<Invoice>> {
    let sql = format!(
        "UPDATE invoice SET updated_at = updated_at WHERE invoice_id = $1 AND tenant_id = $2 RETURNING {COLUMNS}"
    );
    let row: Option<InvoiceRow> = sqlx::query_as(&sql)
        .bind(invoice_id)
        .bind(tenant_id)
        .fetch_optional(conn)
        .await?;
    row.map(Invoice::try_from).transpose()
}

/// One invoice of the tenant.
pub async fn find<'e>(
    executor: impl sqlx::Executor<'e, Database = Any>,
    tenant_id: i64,
    invoice_id: i64,
) -> Result<Option<Invoice>> {
    let sql = format!("SELECT {COLUMNS} FROM invoice WHERE invoice_id = $1 AND tenant_id = $2");
    let row: Option<InvoiceRow> = sqlx::query_as(&sql)
        .bind(invoice_id)
        .bind(tenant_id)
        .fetch_optional(executor)
        .await?;
    row.map(Invoice::try_from).transpose()
}

/// `paid_at` follows the status: set when an invoice becomes paid, kept while it stays
/// paid, cleared when it leaves paid.
fn paid_at(fields: &InvoiceFields, previous: Option<&Invoice>, now: &str) -> Option<String> {
    match (fields.status, previous) {
        (InvoiceStatus::Paid, Some(prev)) if prev.status == InvoiceStatus::Paid => {
            prev.paid_at.clone()
        }
        (InvoiceStatus::Paid, _) => Some(now.to_owned()),
        _ => None,
    }
}

async fn insert_row(
    conn: &mut AnyConnection,
    tenant_id: i64,
    fields: &InvoiceFields,
    now: &str,
) -> Result<Invoice> {
    let sql = format!(
        "INSERT INTO invoice (tenant_id, customer, amount_cents, currency, status, issued_on, due_on, paid_at, \
         created_at, updated_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $9) RETURNING {COLUMNS}"
    );
    let row: InvoiceRow = sqlx::query_as(&sql)
        .bind(tenant_id)
        .bind(&fields.customer)
        .bind(fields.amount_cents)
        .bind(&fields.currency)
        .bind(fields.status.as_str())
        .bind(fields.issued_on.to_string())
        .bind(fields.due_on.to_string())
        .bind(paid_at(fields, None, now))
        .bind(now)
        .fetch_one(&mut *conn)
        .await?;
    Invoice::try_from(row)
}

/// Inserts invoices (in order) and counts them into the dashboard totals; all or none
/// when the caller's transaction rolls back on an error.
pub async fn insert(
    conn: &mut AnyConnection,
    tenant_id: i64,
    items: &[InvoiceFields],
    now: &str,
) -> Result<Vec<Invoice>> {
    let mut deltas = InvoiceDeltas::default();
    let mut invoices = Vec::with_capacity(items.len());
    for fields in items {
        let invoice = insert_row(conn, tenant_id, fields, now).await?;
        deltas.add(&invoice, 1)?;
        invoices.push(invoice);
    }
    deltas.apply(conn, tenant_id).await?;
    Ok(invoices)
}

pub async fn update(
    conn: &mut AnyConnection,
    tenant_id: i64,
    current: &Invoice,
    fields: &InvoiceFields,
    now: &str,
) -> Result<Invoice> {
    let sql = format!(
        "UPDATE invoice SET customer = $1, amount_cents = $2, currency = $3, status = $4, issued_on = $5, \
         due_on = $6, paid_at = $7, updated_at = $8 WHERE invoice_id = $9 AND tenant_id = $10 RETURNING {COLUMNS}"
    );
    let row: InvoiceRow = sqlx::query_as(&sql)
        .bind(&fields.customer)
        .bind(fields.amount_cents)
        .bind(&fields.currency)
        .bind(fields.status.as_str())
        .bind(fields.issued_on.to_string())
        .bind(fields.due_on.to_string())
        .bind(paid_at(fields, Some(current), now))
        .bind(now)
        .bind(current.id)
        .bind(tenant_id)
        .fetch_one(&mut *conn)
        .await?;
    let updated = Invoice::try_from(row)?;
    let mut deltas = InvoiceDeltas::default();
    deltas.add(current, -1)?;
    deltas.add(&updated, 1)?;
    deltas.apply(conn, tenant_id).await?;
    Ok(updated)
}

/// The deleted invoice, if there was one.
pub async fn delete(
    conn: &mut AnyConnection,
    tenant_id: i64,
    invoice_id: i64,
) -> Result<Option<Invoice>> {
    let sql =
        format!("DELETE FROM invoice WHERE invoice_id = $1 AND tenant_id = $2 RETURNING {COLUMNS}");
    let row: Option<InvoiceRow> = sqlx::query_as(&sql)
        .bind(invoice_id)
        .bind(tenant_id)
        .fetch_optional(&mut *conn)
        .await?;
    let Some(deleted) = row.map(Invoice::try_from).transpose()? else {
        return Ok(None);
    };
    let mut deltas = InvoiceDeltas::default();
    deltas.add(&deleted, -1)?;
    deltas.apply(conn, tenant_id).await?;
    Ok(Some(deleted))
}
