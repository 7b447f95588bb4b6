//! The database: one sqlx `Any` pool whose backend (SQLite or PostgreSQL) is chosen by
//! URL, so every query has one code path. Values cross the driver as integers and text
//! only: money in cents, dates as `YYYY-MM-DD`, timestamps as RFC 3339 UTC text.

mod errors;
pub mod filter;

use std::path::Path;
use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;

use sqlx::any::{AnyConnectOptions, AnyPoolOptions};
use sqlx::migrate::Migrator;
use sqlx::{Any, AnyPool, ConnectOptions, Connection, Executor, Transaction};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

pub use errors::classify_error;

static SQLITE_MIGRATIONS: Migrator = sqlx::migrate!("migrations/sqlite");
static POSTGRES_MIGRATIONS: Migrator = sqlx::migrate!("migrations/postgres");

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
}

impl Backend {
    pub fn name(self) -> &'static str {
        match self {
            Self::Sqlite => "sqlite",
            Self::Postgres => "postgres",
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum DbError {
    #[error("unsupported database URL scheme in `{0}` (expected sqlite:// or postgres://)")]
    UnsupportedUrl(String),
    #[error("cannot create data directory {path}: {source}")]
    DataDir {
        path: String,
        source: std::io::Error,
    },
    #[error("cannot connect to the {backend} database: {source}")]
    Connect {
        backend: &'static str,
        source: sqlx::Error,
    },
    #[error("database migration failed: {0}")]
    Migrate(#[from] sqlx::migrate::MigrateError),
}

/// Pool sizing and timeouts.
#[derive(Debug, Clone)]
pub struct PoolSettings {
    pub min_connections: u32,
    pub max_connections: u32,
    pub acquire_timeout: Duration,
}

/// The shared pool plus which backend it speaks to.
#[derive(Debug, Clone)]
pub struct Db {
    pub pool: AnyPool,
    pub backend: Backend,
    pub max_connections: u32,
    /// SQLite has one writer: writers queue here, holding no pooled connection, so a
    /// stuck write lock (another process, a long transaction) costs one connection and
    /// never starves the readers. `None` on PostgreSQL.
    writer_gate: Option<Arc<Semaphore>>,
    /// Longest a writer waits at the gate before it gets a 503.
    write_wait: Duration,
}

/// A write transaction; on SQLite it also holds the writer gate until it ends.
pub struct WriteTx {
    tx: Transaction<'static, Any>,
    _gate: Option<OwnedSemaphorePermit>,
}

impl WriteTx {
    pub async fn commit(self) -> Result<(), sqlx::Error> {
        self.tx.commit().await
    }
}

impl std::ops::Deref for WriteTx {
    type Target = Transaction<'static, Any>;
    fn deref(&self) -> &Self::Target {
        &self.tx
    }
}

impl std::ops::DerefMut for WriteTx {
    fn deref_mut(&mut self) -> &mut Self::Target {
        &mut self.tx
    }
}

/// SQLite settings applied to every new connection: WAL so readers never block the
/// writer, a 2 s busy timeout (the pool's acquire timeout: no request waits longer for
/// the database, whoever holds the lock), NORMAL sync (safe under WAL), and foreign
/// keys on.
const SQLITE_PRAGMAS: &str = "PRAGMA journal_mode = WAL; PRAGMA busy_timeout = 2000; \
     PRAGMA synchronous = NORMAL; PRAGMA foreign_keys = ON;";

/// The URL used when none is configured: `aimate.db` inside `data_dir`.
pub fn sqlite_url_for(data_dir: &Path) -> String {
    format!("sqlite://{}?mode=rwc", data_dir.join("aimate.db").display())
}

impl Db {
    /// Connects (creating the SQLite data directory if needed) and runs the migrations.
    pub async fn connect(url: &str, settings: &PoolSettings) -> Result<Self, DbError> {
        sqlx::any::install_default_drivers();
        let backend = if url.starts_with("sqlite:") {
            Backend::Sqlite
        } else if url.starts_with("postgres:") || url.starts_with("postgresql:") {
            Backend::Postgres
        } else {
            return Err(DbError::UnsupportedUrl(redact_url(url)));
        };
        let connect_err = |source| DbError::Connect {
            backend: backend.name(),
            source,
        };
        let options = AnyConnectOptions::from_str(url)
            .map_err(connect_err)?
            // Statement logging at INFO would print every query of every request.
            .log_statements(tracing::log::LevelFilter::Trace)
            .log_slow_statements(tracing::log::LevelFilter::Warn, Duration::from_millis(500));
        let mut pool_options = AnyPoolOptions::new()
            .min_connections(settings.min_connections)
            .max_connections(settings.max_connections)
            .acquire_timeout(settings.acquire_timeout);
        // A connection whose transaction could not end (SQLite rolls a transaction back
        // by itself when COMMIT fails on a full disk, then sqlx's own ROLLBACK fails and
        // its depth stays at 1) would fail every later `begin` with a 500: close it
        // instead of pooling it. The ping first flushes the rollback of a dropped
        // transaction, so only a truly stuck connection is closed.
        pool_options = pool_options.after_release(|conn, _meta| {
            Box::pin(async move {
                conn.ping().await?;
                Ok(!conn.is_in_transaction())
            })
        });
        if backend == Backend::Sqlite {
            pool_options = pool_options.after_connect(|conn, _meta| {
                Box::pin(async move {
                    conn.execute(SQLITE_PRAGMAS).await?;
                    Ok(())
                })
            });
        }
        let pool = pool_options
            .connect_with(options)
            .await
            .map_err(connect_err)?;
        let migrator = match backend {
            Backend::Sqlite => &SQLITE_MIGRATIONS,
            Backend::Postgres => &POSTGRES_MIGRATIONS,
        };
        migrator.run(&pool).await?;
        Ok(Self {
            pool,
            backend,
            max_connections: settings.max_connections,
            writer_gate: (backend == Backend::Sqlite).then(|| Arc::new(Semaphore::new(1))),
            write_wait: settings.acquire_timeout,
        })
    }

    /// Opens the SQLite database in `data_dir`, creating the directory first.
    pub async fn connect_data_dir(
        data_dir: &Path,
        settings: &PoolSettings,
    ) -> Result<Self, DbError> {
        std::fs::create_dir_all(data_dir).map_err(|source| DbError::DataDir {
            path: data_dir.display().to_string(),
            source,
        })?;
        Self::connect(&sqlite_url_for(data_dir), settings).await
    }

    /// A write transaction. On SQLite it passes the writer gate, then takes the write
    /// lock up front (`BEGIN IMMEDIATE`), so a read-then-write transaction cannot fail
    /// with a busy snapshot. A writer that waits longer than the acquire timeout at the
    /// gate gets `PoolTimedOut` (a 503 with Retry-After).
    pub async fn begin_write(&self) -> Result<WriteTx, sqlx::Error> {
        let gate = match &self.writer_gate {
            Some(gate) => Some(
                tokio::time::timeout(self.write_wait, gate.clone().acquire_owned())
                    .await
                    .map_err(|_| sqlx::Error::PoolTimedOut)?
                    .map_err(|_| sqlx::Error::PoolClosed)?,
            ),
            None => None,
        };
        let tx = match self.backend {
            Backend::Sqlite => self.pool.begin_with("BEGIN IMMEDIATE").await?,
            Backend::Postgres => self.pool.begin().await?,
        };
        Ok(WriteTx { tx, _gate: gate })
    }

    /// Connections currently open and how many of them are idle.
    pub fn connection_counts(&self) -> (u32, u32) {
        let idle = u32::try_from(self.pool.num_idle()).unwrap_or(u32::MAX);
        (self.pool.size(), idle)
    }
}

/// A URL safe to print: the password, if any, replaced.
pub fn redact_url(url: &str) -> String {
    match (url.find("://"), url.find('@')) {
        (Some(scheme_end), Some(at)) if at > scheme_end => {
            let userinfo = &url[scheme_end + 3..at];
            match userinfo.split_once(':') {
                Some((user, _)) => format!("{}{}:***{}", &url[..scheme_end + 3], user, &url[at..]),
                None => url.to_owned(),
            }
        }
        _ => url.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::redact_url;

    #[test]
    fn redacts_password_only() {
        assert_eq!(
            redact_url("postgres://u:secret@h/db"),
            "postgres://u:***@h/db"
        );
        assert_eq!(redact_url("postgres://u@h/db"), "postgres://u@h/db");
        assert_eq!(
            redact_url("sqlite://data/aimate.db"),
            "sqlite://data/aimate.db"
        );
    }
}
