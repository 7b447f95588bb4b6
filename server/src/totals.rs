//! Dashboard aggregates kept in step with every invoice and job write, in the write's own
//! transaction (schema: `migrations/*/0002_dashboard_totals.sql`). A write computes what it
//! adds to and takes from each aggregate row ([`InvoiceDeltas`], [`JobDeltas`]) and applies
//! the net change with one upsert per touched row, so a bulk import of 1,000 invoices in
//! one currency touches a handful of rows, and a dashboard read never scans the invoices.
//!
//! Exactness rests on two rules: every statement that changes `invoice` or `job` goes
//! through `invoices::queries` / `jobs::queries`, which apply the deltas before they
//! return; and the row a write changes is the row the database returned (`RETURNING`), so
//! the deltas describe what was really stored.

use std::collections::BTreeMap;

use sqlx::AnyConnection;

use crate::error::{AppError, Result};
use crate::invoices::model::{Invoice, InvoiceStatus};
use crate::jobs::model::JobStatus;

/// The kinds of `invoice_totals` rows (see the migration for what each bucket means).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Kind {
    All,
    Status,
    SentDue,
    SentDueMonth,
    PaidMonth,
}

impl Kind {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::All => "all",
            Self::Status => "status",
            Self::SentDue => "sent_due",
            Self::SentDueMonth => "sent_due_month",
            Self::PaidMonth => "paid_month",
        }
    }
}

/// Net count and amount change of one aggregate row.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
struct Delta {
    count: i64,
    amount_cents: i64,
}

/// The month bucket (`YYYY-MM`) of a `YYYY-MM-DD` date or an RFC 3339 timestamp.
pub fn month_of(date: &str) -> &str {
    date.get(..7).unwrap_or(date)
}

fn overflow() -> AppError {
    AppError::validation(
        "this write would take the tenant's invoice totals past what they can hold \
         (9,223,372,036,854,775,807 cents per currency)",
    )
}

/// What a set of invoice writes changes in `invoice_totals`.
#[derive(Debug, Default)]
pub struct InvoiceDeltas {
    rows: BTreeMap<(Kind, String, String), Delta>,
}

impl InvoiceDeltas {
    fn add_row(
        &mut self,
        kind: Kind,
        currency: &str,
        bucket: &str,
        sign: i64,
        amount: i64,
    ) -> Result<()> {
        let delta = self
            .rows
            .entry((kind, currency.to_owned(), bucket.to_owned()))
            .or_default();
        delta.count += sign;
        delta.amount_cents = amount
            .checked_mul(sign)
            .and_then(|change| delta.amount_cents.checked_add(change))
            .ok_or_else(overflow)?;
        Ok(())
    }

    /// Counts `invoice` in (`sign` = 1) or out (`sign` = -1) of every row it belongs to.
    pub fn add(&mut self, invoice: &Invoice, sign: i64) -> Result<()> {
        let (currency, amount) = (invoice.currency.as_str(), invoice.amount_cents);
        self.add_row(Kind::All, currency, "", sign, amount)?;
        self.add_row(
            Kind::Status,
            currency,
            invoice.status.as_str(),
            sign,
            amount,
        )?;
        match invoice.status {
            InvoiceStatus::Sent => {
                let due = invoice.due_on.to_string();
                self.add_row(Kind::SentDue, currency, &due, sign, amount)?;
                self.add_row(Kind::SentDueMonth, currency, month_of(&due), sign, amount)?;
            }
            InvoiceStatus::Paid => {
                if let Some(paid_at) = &invoice.paid_at {
                    self.add_row(Kind::PaidMonth, currency, month_of(paid_at), sign, amount)?;
                }
            }
            InvoiceStatus::Draft | InvoiceStatus::Overdue => {}
        }
        Ok(())
    }

    /// Applies the net changes in one statement (one round trip, whatever the number of
    /// rows). A row whose sum would pass i64 is not updated (the upsert's WHERE), so it
    /// is missing from RETURNING and the write is refused; only `all` rows can overflow,
    /// as they bound every other sum. Rows left at count 0 are deleted.
    pub async fn apply(self, conn: &mut AnyConnection, tenant_id: i64) -> Result<()> {
        let rows: Vec<_> = self
            .rows
            .into_iter()
            .filter(|(_, delta)| *delta != Delta::default())
            .collect();
        if rows.is_empty() {
            return Ok(());
        }
        let mut emptied = false;
        // Chunks keep a huge bulk import under both backends' bind-parameter limits.
        for chunk in rows.chunks(ROWS_PER_STATEMENT) {
            let counts = upsert(conn, tenant_id, chunk).await?;
            if counts.len() < chunk.len() {
                return Err(overflow());
            }
            emptied |= counts.contains(&0);
        }
        if emptied {
            sqlx::query("DELETE FROM invoice_totals WHERE tenant_id = $1 AND count = 0")
                .bind(tenant_id)
                .execute(&mut *conn)
                .await?;
        }
        Ok(())
    }
}

/// Rows per upsert statement: 5 bind parameters each, well under SQLite's 32,766.
const ROWS_PER_STATEMENT: usize = 1000;

type Row = ((Kind, String, String), Delta);

/// One multi-row upsert; returns the new count of every row it changed.
async fn upsert(conn: &mut AnyConnection, tenant_id: i64, rows: &[Row]) -> Result<Vec<i64>> {
    let values: Vec<String> = (0..rows.len())
        .map(|i| {
            let p = 2 + i * 5;
            format!(
                "($1, ${}, ${}, ${}, ${}, ${})",
                p,
                p + 1,
                p + 2,
                p + 3,
                p + 4
            )
        })
        .collect();
    let sql = format!(
        "INSERT INTO invoice_totals (tenant_id, kind, currency, bucket, count, amount_cents) \
         VALUES {} \
         ON CONFLICT (tenant_id, kind, currency, bucket) DO UPDATE \
         SET count = invoice_totals.count + excluded.count, \
             amount_cents = invoice_totals.amount_cents + excluded.amount_cents \
         WHERE excluded.amount_cents <= 0 \
            OR invoice_totals.amount_cents <= 9223372036854775807 - excluded.amount_cents \
         RETURNING count",
        values.join(", ")
    );
    let mut query = sqlx::query_scalar::<_, i64>(&sql).bind(tenant_id);
    for ((kind, currency, bucket), delta) in rows {
        query = query
            .bind(kind.as_str())
            .bind(currency.as_str())
            .bind(bucket.as_str())
            .bind(delta.count)
            .bind(delta.amount_cents);
    }
    Ok(query.fetch_all(&mut *conn).await?)
}

/// What a set of job writes changes in `job_totals`.
#[derive(Debug, Default)]
pub struct JobDeltas {
    rows: BTreeMap<&'static str, i64>,
}

impl JobDeltas {
    pub fn add(&mut self, status: JobStatus, sign: i64) {
        *self.rows.entry(status.as_str()).or_default() += sign;
    }

    pub async fn apply(self, conn: &mut AnyConnection, tenant_id: i64) -> Result<()> {
        for (status, count) in self.rows {
            if count == 0 {
                continue;
            }
            sqlx::query(
                "INSERT INTO job_totals (tenant_id, status, count) VALUES ($1, $2, $3) \
                 ON CONFLICT (tenant_id, status) DO UPDATE SET count = job_totals.count + excluded.count",
            )
            .bind(tenant_id)
            .bind(status)
            .bind(count)
            .execute(&mut *conn)
            .await?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::NaiveDate;

    fn invoice(status: InvoiceStatus, amount_cents: i64) -> Invoice {
        Invoice {
            id: 1,
            customer: "A".into(),
            amount_cents,
            currency: "USD".into(),
            status,
            issued_on: NaiveDate::from_ymd_opt(2026, 11, 1).unwrap(),
            due_on: NaiveDate::from_ymd_opt(2026, 12, 1).unwrap(),
            paid_at: (status == InvoiceStatus::Paid).then(|| "2026-11-29T10:00:00.000Z".into()),
            created_at: String::new(),
            updated_at: String::new(),
        }
    }

    #[test]
    fn a_status_change_moves_between_buckets_and_nets_out_the_rest() {
        let mut deltas = InvoiceDeltas::default();
        deltas.add(&invoice(InvoiceStatus::Sent, 500), -1).unwrap();
        deltas.add(&invoice(InvoiceStatus::Paid, 500), 1).unwrap();
        let changed: Vec<_> = deltas
            .rows
            .iter()
            .filter(|(_, d)| **d != Delta::default())
            .map(|((kind, _, bucket), d)| (kind.as_str(), bucket.as_str(), d.count, d.amount_cents))
            .collect();
        assert_eq!(
            changed,
            [
                ("status", "paid", 1, 500),
                ("status", "sent", -1, -500),
                ("sent_due", "2026-12-01", -1, -500),
                ("sent_due_month", "2026-12", -1, -500),
                ("paid_month", "2026-11", 1, 500),
            ]
        );
    }

    #[test]
    fn summing_past_i64_in_one_write_is_a_validation_error() {
        let mut deltas = InvoiceDeltas::default();
        let big = invoice(InvoiceStatus::Draft, i64::MAX / 2 + 1);
        deltas.add(&big, 1).unwrap();
        let error = deltas.add(&big, 1).unwrap_err();
        assert_eq!(error.status(), axum::http::StatusCode::UNPROCESSABLE_ENTITY);
    }
}
