//! Turning database errors into answers a client can act on. Saturation and outages are
//! 503s with `Retry-After` (the client should back off), a full disk is a 507 (reads
//! keep working), and only the genuinely unexpected is a 500.

use crate::error::AppError;

/// SQLite primary result codes (the low byte of the extended code).
const SQLITE_BUSY: i64 = 5;
const SQLITE_LOCKED: i64 = 6;
const SQLITE_FULL: i64 = 13;
const SQLITE_IOERR: i64 = 10;

pub fn classify_error(error: sqlx::Error) -> AppError {
    match &error {
        sqlx::Error::PoolTimedOut => AppError::unavailable(
            "db_pool_exhausted",
            "all database connections are busy; retry shortly",
        ),
        sqlx::Error::PoolClosed => {
            AppError::unavailable("shutting_down", "the server is shutting down")
        }
        sqlx::Error::Io(_) | sqlx::Error::Tls(_) => {
            AppError::unavailable("db_unavailable", "the database is unreachable")
        }
        sqlx::Error::Database(db) => {
            let code = db.code().unwrap_or_default();
            if let Ok(numeric) = code.parse::<i64>() {
                match numeric & 0xff {
                    SQLITE_BUSY | SQLITE_LOCKED => {
                        return AppError::unavailable(
                            "db_busy",
                            "the database is busy; retry shortly",
                        );
                    }
                    SQLITE_FULL => return AppError::InsufficientStorage,
                    SQLITE_IOERR if disk_full_message(db.message()) => {
                        return AppError::InsufficientStorage;
                    }
                    _ => {}
                }
            }
            match code.as_ref() {
                // PostgreSQL: disk_full, insufficient_resources, too_many_connections,
                // admin/crash shutdown, cannot_connect_now.
                "53100" => AppError::InsufficientStorage,
                "53000" | "53300" | "57P01" | "57P02" | "57P03" => AppError::unavailable(
                    "db_unavailable",
                    "the database is not accepting work; retry shortly",
                ),
                _ => AppError::internal(error),
            }
        }
        _ => AppError::internal(error),
    }
}

fn disk_full_message(message: &str) -> bool {
    let lower = message.to_ascii_lowercase();
    lower.contains("disk is full") || lower.contains("no space")
}
