//! Job SQL, every statement scoped by `tenant_id`.

use sqlx::{Any, AnyConnection};

use super::model::{COLUMNS, Job, JobFields, JobListQuery, JobRow};
use crate::db::Db;
use crate::db::filter::{Arg, Filter};
use crate::error::Result;
use crate::pagination::{Page, into_page};
use crate::totals::JobDeltas;

pub async fn list(
    db: &Db,
    tenant_id: i64,
    query: &JobListQuery,
    after: Option<i64>,
    limit: u32,
) -> Result<Page<Job>> {
    let mut filter = Filter::new();
    filter.push("tenant_id", "=", Arg::Int(tenant_id));
    if let Some(status) = query.status {
        filter.push("status", "=", Arg::Text(status.as_str().to_owned()));
    }
    if let Some(from) = query.from {
        filter.push("scheduled_on", ">=", Arg::Text(from.to_string()));
    }
    if let Some(to) = query.to {
        filter.push("scheduled_on", "<=", Arg::Text(to.to_string()));
    }
    if let Some(after) = after {
        filter.push("job_id", "<", Arg::Int(after));
    }
    let sql = format!(
        "SELECT {COLUMNS} FROM job {} ORDER BY job_id DESC LIMIT ${}",
        filter.where_sql(),
        filter.next_placeholder()
    );
    let rows: Vec<JobRow> = filter
        .bind(sqlx::query_as(&sql))
        .bind(i64::from(limit) + 1)
        .fetch_all(&db.pool)
        .await?;
    let jobs = rows
        .into_iter()
        .map(Job::try_from)
        .collect::<Result<Vec<_>>>()?;
    Ok(into_page(jobs, limit, |job| job.id))
}

/// One job of the tenant, read and locked inside a write transaction, so no other
/// write can change or delete it before this one commits (on PostgreSQL two
/// transactions could otherwise both read the old row, and the totals would count
/// its change twice). A no-op UPDATE takes the row lock on both backends.
pub async fn lock(conn: &mut AnyConnection, tenant_id: i64, job_id: i64) -> Result<Option<Job>> {
    let sql = format!(
        "UPDATE job SET updated_at = updated_at WHERE job_id = $1 AND tenant_id = $2 RETURNING {COLUMNS}"
    );
    let row: Option<JobRow> = sqlx::query_as(&sql)
        .bind(job_id)
        .bind(tenant_id)
        .fetch_optional(conn)
        .await?;
    row.map(Job::try_from).transpose()
}

/// One job of the tenant.
pub async fn find<'e>(
    executor: impl sqlx::Executor<'e, Database = Any>,
    tenant_id: i64,
    job_id: i64,
) -> Result<Option<Job>> {
    let sql = format!("SELECT {COLUMNS} FROM job WHERE job_id = $1 AND tenant_id = $2");
    let row: Option<JobRow> = sqlx::query_as(&sql)
        .bind(job_id)
        .bind(tenant_id)
        .fetch_optional(executor)
        .await?;
    row.map(Job::try_from).transpose()
}

/// Inserts a job and counts it into the dashboard totals.
pub async fn insert(
    conn: &mut AnyConnection,
    tenant_id: i64,
    fields: &JobFields,
    now: &str,
) -> Result<Job> {
    let sql = format!(
        "INSERT INTO job (tenant_id, customer, title, status, scheduled_on, created_at, updated_at) \
         VALUES ($1, $2, $3, $4, $5, $6, $6) RETURNING {COLUMNS}"
    );
    let row: JobRow = sqlx::query_as(&sql)
        .bind(tenant_id)
        .bind(&fields.customer)
        .bind(&fields.title)
        .bind(fields.status.as_str())
        .bind(fields.scheduled_on.to_string())
        .bind(now)
        .fetch_one(&mut *conn)
        .await?;
    let job = Job::try_from(row)?;
    let mut deltas = JobDeltas::default();
    deltas.add(job.status, 1);
    deltas.apply(conn, tenant_id).await?;
    Ok(job)
}

pub async fn update(
    conn: &mut AnyConnection,
    tenant_id: i64,
    current: &Job,
    fields: &JobFields,
    now: &str,
) -> Result<Job> {
    let sql = format!(
        "UPDATE job SET customer = $1, title = $2, status = $3, scheduled_on = $4, updated_at = $5 \
         WHERE job_id = $6 AND tenant_id = $7 RETURNING {COLUMNS}"
    );
    let row: JobRow = sqlx::query_as(&sql)
        .bind(&fields.customer)
        .bind(&fields.title)
        .bind(fields.status.as_str())
        .bind(fields.scheduled_on.to_string())
        .bind(now)
        .bind(current.id)
        .bind(tenant_id)
        .fetch_one(&mut *conn)
        .await?;
    let updated = Job::try_from(row)?;
    let mut deltas = JobDeltas::default();
    deltas.add(current.status, -1);
    deltas.add(updated.status, 1);
    deltas.apply(conn, tenant_id).await?;
    Ok(updated)
}
