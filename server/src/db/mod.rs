//! The database: one sqlx `Any` pool whose backend (SQLite or PostgreSQL) is chosen by
//! URL, so every query has one code path. Values cross the driver as integers and text
//! only: money in cents, dates as `YYYY-MM-DD`, timestamps as RFC 3339 UTC text.

mod errors;
pub mod filter;
mod writer;

use std::path::Path;
use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;

use futures_util::future::BoxFuture;

use sqlx::any::{AnyConnectOptions, AnyPoolOptions};
use sqlx::migrate::Migrator;
use sqlx::{AnyConnection, AnyPool, ConnectOptions, Connection, Executor};

pub use errors::classify_error;

use crate::error::AppError;
use writer::Writer;

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
    /// `detail` is scrubbed of the URL's secrets (sqlx may quote the URL).
    #[error("cannot connect to the {backend} database: {detail}")]
    Connect {
        backend: &'static str,
        detail: String,
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
    pub sqlite_synchronous: Synchronous,
}

/// SQLite's `synchronous` setting: what an acknowledged write survives.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Synchronous {
    /// Every commit is fsynced before it is acknowledged: a write survives power loss
    /// and an operating-system crash.
    Full,
    /// WAL frames are fsynced at checkpoints only: a write survives a crash of the
    /// process, but the last commits before a power loss may be rolled back.
    Normal,
}

impl Synchronous {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Full => "full",
            Self::Normal => "normal",
        }
    }
}

/// The shared pool plus which backend it speaks to.
#[derive(Debug, Clone)]
pub struct Db {
    pub pool: AnyPool,
    pub backend: Backend,
    pub max_connections: u32,
    /// SQLite's durability setting (`None` on PostgreSQL, which commits durably).
    pub synchronous: Option<Synchronous>,
    /// SQLite has one writer: every write goes through this group-commit task, holding
    /// no pooled connection while it waits, so a stuck write lock (another process, a
    /// long transaction) costs one connection and never starves the readers. `None` on
    /// PostgreSQL, where each write is a transaction of its own.
    writer: Option<Writer>,
}

/// SQLite settings applied to every new connection: WAL so readers never block the
/// writer, a 2 s busy timeout (the pool's acquire timeout: no request waits longer for
/// the database, whoever holds the lock), and foreign keys on. `synchronous` follows
/// the configuration.
fn sqlite_pragmas(synchronous: Synchronous) -> String {
    format!(
        "PRAGMA journal_mode = WAL; PRAGMA busy_timeout = 2000; \
         PRAGMA synchronous = {}; PRAGMA foreign_keys = ON;",
        synchronous.as_str().to_uppercase()
    )
}

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
        let connect_err = |source: sqlx::Error| DbError::Connect {
            backend: backend.name(),
            detail: aimate_conventions::redact::scrub(&source.to_string(), url),
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
        // transaction, so only a truly stuck connection is closed. A connection that
        // was never in a transaction (every plain read) skips the ping: on SQLite each
        // round trip wakes the connection's worker thread, and reads are most requests.
        pool_options = pool_options.after_release(|conn, _meta| {
            Box::pin(async move {
                if !conn.is_in_transaction() {
                    return Ok(true);
                }
                conn.ping().await?;
                Ok(!conn.is_in_transaction())
            })
        });
        let pragmas: Arc<str> = sqlite_pragmas(settings.sqlite_synchronous).into();
        if backend == Backend::Sqlite {
            let pragmas = pragmas.clone();
            pool_options = pool_options.after_connect(move |conn, _meta| {
                let pragmas = pragmas.clone();
                Box::pin(async move {
                    conn.execute(&*pragmas).await?;
                    Ok(())
                })
            });
        }
        let pool = pool_options
            .connect_with(options.clone())
            .await
            .map_err(connect_err)?;
        let migrator = match backend {
            Backend::Sqlite => &SQLITE_MIGRATIONS,
            Backend::Postgres => &POSTGRES_MIGRATIONS,
        };
        migrator.run(&pool).await?;
        let sqlite = backend == Backend::Sqlite;
        Ok(Self {
            writer: sqlite.then(|| Writer::start(options, pragmas, settings.acquire_timeout)),
            synchronous: sqlite.then_some(settings.sqlite_synchronous),
            pool,
            backend,
            max_connections: settings.max_connections,
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

    /// Runs `write` in a transaction and returns its result once that has committed.
    /// On SQLite the write joins the group-commit writer's next batch (in a savepoint of
    /// its own: it succeeds or fails alone), answered 503 with Retry-After if it waited
    /// longer than the acquire timeout; on PostgreSQL it is a transaction of its own.
    pub async fn write<T, F>(&self, write: F) -> Result<T, AppError>
    where
        T: Send + 'static,
        F: for<'c> FnOnce(&'c mut AnyConnection) -> BoxFuture<'c, Result<T, AppError>>
            + Send
            + 'static,
    {
        match &self.writer {
            Some(writer) => writer.write(Box::new(write)).await,
            None => {
                let mut tx = self.pool.begin().await?;
                let value = write(&mut tx).await?;
                tx.commit().await?;
                Ok(value)
            }
        }
    }

    /// Whether new ids become visible in increasing order: SQLite's one writer commits
    /// them so; PostgreSQL transactions may commit their ids out of order.
    pub fn ids_in_commit_order(&self) -> bool {
        self.backend == Backend::Sqlite
    }

    /// Write batches run and writes run in them (SQLite's group commit; zeros on
    /// PostgreSQL, where every write is its own transaction).
    pub fn write_batches(&self) -> (u64, u64) {
        self.writer.as_ref().map_or((0, 0), |writer| {
            let stats = &writer.stats;
            (
                stats.batches.load(std::sync::atomic::Ordering::Relaxed),
                stats.writes.load(std::sync::atomic::Ordering::Relaxed),
            )
        })
    }

    /// Connections currently open and how many of them are idle.
    pub fn connection_counts(&self) -> (u32, u32) {
        let idle = u32::try_from(self.pool.num_idle()).unwrap_or(u32::MAX);
        (self.pool.size(), idle)
    }
}

/// A URL with its password and secret query values hidden (shared with the harness).
pub use aimate_conventions::redact::redact_url;
