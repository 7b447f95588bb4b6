//! The database check behind readiness (`/api/health`). Anyone may call readiness, as
//! often as they like, so the check runs at most once per [`MAX_AGE`] whatever the
//! number of callers (concurrent callers wait for the one check in progress), and what
//! it says about a failure is safe to show anyone: the detail goes to the log.

use std::time::{Duration, Instant};

use tokio::sync::Mutex;

use crate::db::Db;
use crate::error::AppError;
use crate::ops::ComponentHealth;

/// A probe result is reused for this long.
pub const MAX_AGE: Duration = Duration::from_secs(1);
/// A readiness probe must answer before the prober gives up, even when the pool is dry.
const CHECK_TIMEOUT: Duration = Duration::from_secs(1);

#[derive(Default)]
pub struct DatabaseProbe {
    last: Mutex<Option<(Instant, ComponentHealth)>>,
}

impl DatabaseProbe {
    pub async fn check(&self, db: &Db) -> ComponentHealth {
        let mut last = self.last.lock().await;
        if let Some((at, health)) = &*last
            && at.elapsed() < MAX_AGE
        {
            return health.clone();
        }
        let health = check_database(db).await;
        *last = Some((Instant::now(), health.clone()));
        health
    }
}

async fn check_database(db: &Db) -> ComponentHealth {
    let started = Instant::now();
    let outcome =
        tokio::time::timeout(CHECK_TIMEOUT, sqlx::query("SELECT 1").execute(&db.pool)).await;
    let latency_ms = Some(started.elapsed().as_secs_f64() * 1000.0);
    let (open, idle) = db.connection_counts();
    let error = match outcome {
        Ok(Ok(_)) => None,
        Ok(Err(sqlx::Error::PoolTimedOut)) | Err(_) if idle == 0 && open >= db.max_connections => {
            Some(format!(
                "connection pool exhausted: {open} of {} connections in use",
                db.max_connections
            ))
        }
        Ok(Err(error)) => Some(public_reason(crate::db::classify_error(error))),
        Err(_) => Some(format!("no answer within {} ms", CHECK_TIMEOUT.as_millis())),
    };
    ComponentHealth {
        status: if error.is_none() { "up" } else { "down" },
        latency_ms,
        error,
    }
}

/// What a classified error may say in public: its client-facing message, never the
/// database's own text (which can name hosts, users, schemas or files).
fn public_reason(error: AppError) -> String {
    match error {
        AppError::Internal(detail) => {
            tracing::warn!(error = %format!("{detail:#}"), "readiness: database check failed");
            "unexpected database error (the server log has the details)".to_owned()
        }
        other => other.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn internal_detail_never_reaches_the_reason() {
        let error = AppError::internal(anyhow::anyhow!(
            "password authentication failed for user \"admin\" at db.internal:5432"
        ));
        let reason = public_reason(error);
        assert!(
            !reason.contains("admin") && !reason.contains("db.internal"),
            "{reason}"
        );
        let busy = AppError::unavailable("db_busy", "the database is busy; retry shortly");
        assert_eq!(public_reason(busy), "the database is busy; retry shortly");
    }
}
