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
            if db.try_downcast_ref::<sqlx::sqlite::SqliteError>().is_some() {
                classify_sqlite(&code, db.message())
            } else {
                classify_sqlstate(&code)
            }
            .unwrap_or_else(|| AppError::internal(error))
        }
        _ => AppError::internal(error),
    }
}

/// SQLite's numeric result code (extended codes carry the primary one in the low byte).
fn classify_sqlite(code: &str, message: &str) -> Option<AppError> {
    let numeric = code.parse::<i64>().ok()?;
    match numeric & 0xff {
        SQLITE_BUSY | SQLITE_LOCKED => Some(busy()),
        SQLITE_FULL => Some(AppError::InsufficientStorage),
        SQLITE_IOERR if disk_full_message(message) => Some(AppError::InsufficientStorage),
        _ => None,
    }
}

/// PostgreSQL's SQLSTATE: the class (first two characters) says whose fault it is.
fn classify_sqlstate(sqlstate: &str) -> Option<AppError> {
    match sqlstate {
        // disk_full
        "53100" => Some(AppError::InsufficientStorage),
        // insufficient_resources, too_many_connections, admin/crash shutdown,
        // cannot_connect_now
        "53000" | "53300" | "57P01" | "57P02" | "57P03" => Some(AppError::unavailable(
            "db_unavailable",
            "the database is not accepting work; retry shortly",
        )),
        // serialization_failure, deadlock_detected, lock_not_available, query_canceled
        // (statement timeout): the same request may well succeed when retried.
        "40001" | "40P01" | "55P03" | "57014" => Some(busy()),
        // Class 22, data exception: a value from the request the database cannot store
        // or compare (a NUL character, an out-of-range number…). The client's to fix.
        _ if sqlstate.starts_with("22") => Some(AppError::bad_request(
            "invalid_value",
            "a value in the request cannot be stored or compared by the database \
             (for example a NUL character or a number out of range)",
        )),
        _ => None,
    }
}

fn busy() -> AppError {
    AppError::unavailable("db_busy", "the database is busy; retry shortly")
}

fn disk_full_message(message: &str) -> bool {
    let lower = message.to_ascii_lowercase();
    lower.contains("disk is full") || lower.contains("no space")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn postgres_errors_are_read_by_sqlstate_not_by_sqlite_numbers() {
        // 22021 (a NUL byte) read as a SQLite number is 0x5605: SQLITE_BUSY in the low byte.
        let nul = classify_sqlstate("22021").unwrap();
        assert_eq!((nul.status().as_u16(), nul.code()), (400, "invalid_value"));
        assert_eq!(classify_sqlstate("40P01").unwrap().code(), "db_busy");
        assert_eq!(classify_sqlstate("53100").unwrap().status().as_u16(), 507);
        assert_eq!(classify_sqlstate("57P01").unwrap().code(), "db_unavailable");
        assert!(
            classify_sqlstate("42P01").is_none(),
            "undefined_table is ours: a 500"
        );
    }

    #[test]
    fn sqlite_errors_are_read_by_their_primary_code() {
        assert_eq!(classify_sqlite("5", "").unwrap().code(), "db_busy");
        // SQLITE_BUSY_SNAPSHOT (517) and SQLITE_LOCKED_SHAREDCACHE (262).
        assert_eq!(classify_sqlite("517", "").unwrap().code(), "db_busy");
        assert_eq!(classify_sqlite("262", "").unwrap().code(), "db_busy");
        assert_eq!(classify_sqlite("13", "").unwrap().status().as_u16(), 507);
        assert!(classify_sqlite("10", "disk I/O error: No space left").is_some());
        assert!(classify_sqlite("10", "disk I/O error").is_none());
        assert!(classify_sqlite("1", "no such table").is_none());
    }
}
