//! The stores a fleet run borrows and gives back: a PostgreSQL schema and a Redis key
//! prefix of its own, so runs side by side (or a run beside the team's data) never see
//! each other's rows or keys, and nothing is left behind when the run ends.
//!
//! Before anything starts, the fleet's connection budget is checked against the
//! server's: `instances × pool max` must fit in `max_connections` less the slots
//! PostgreSQL reserves for superusers, or instances would fail to connect under load.

use std::time::Duration;

use sqlx::Connection;

#[derive(Debug, thiserror::Error)]
pub enum RunStoreError {
    #[error("cannot reach PostgreSQL at {url}: {reason}")]
    Postgres { url: String, reason: String },
    #[error(
        "a fleet of {instances} instances × a pool of {pool_max} needs {needed} PostgreSQL connections, \
         but max_connections allows {usable} ({max} less {reserved} reserved for superusers): \
         use fewer instances or a smaller --db-pool-max"
    )]
    TooManyConnections {
        instances: usize,
        pool_max: u32,
        needed: u64,
        usable: u64,
        max: u64,
        reserved: u64,
    },
    #[error("cannot reach Redis at {url}: {reason}")]
    Redis { url: String, reason: String },
}

/// A run's own schema and key prefix; [`RunStore::remove`] gives them back.
#[derive(Debug)]
pub struct RunStore {
    base_url: Option<String>,
    schema: Option<String>,
    /// The server URL that puts every connection in the run's schema.
    pub database_url: Option<String>,
    pub redis_url: Option<String>,
    /// Every key the run's servers write starts with it.
    pub redis_prefix: Option<String>,
}

const CHECK_TIMEOUT: Duration = Duration::from_secs(5);

impl RunStore {
    /// Claims a schema on `postgres` for a fleet of `instances` with pools of
    /// `pool_max`, and a key prefix on `redis`. `run_id`: lower-case hex naming both.
    pub async fn claim(
        postgres: Option<&str>,
        redis: Option<&str>,
        instances: usize,
        pool_max: u32,
        run_id: &str,
    ) -> Result<Self, RunStoreError> {
        let mut store = Self {
            base_url: None,
            schema: None,
            database_url: None,
            redis_url: None,
            redis_prefix: None,
        };
        if let Some(url) = redis {
            ping_redis(url).await?;
            store.redis_url = Some(url.to_owned());
            store.redis_prefix = Some(format!("aimate-run:{run_id}:"));
        }
        if let Some(url) = postgres {
            let failed = |reason: String| RunStoreError::Postgres {
                url: redact(url),
                reason,
            };
            let mut conn = tokio::time::timeout(CHECK_TIMEOUT, sqlx::PgConnection::connect(url))
                .await
                .map_err(|_| failed("timed out".into()))?
                .map_err(|e| failed(e.to_string()))?;
            let setting = async |conn: &mut sqlx::PgConnection, name: &str| {
                sqlx::query_scalar::<_, String>(&format!("SHOW {name}"))
                    .fetch_one(conn)
                    .await
                    .map_err(|e| failed(e.to_string()))?
                    .parse::<u64>()
                    .map_err(|e| failed(format!("{name}: {e}")))
            };
            let max = setting(&mut conn, "max_connections").await?;
            let reserved = setting(&mut conn, "superuser_reserved_connections").await?;
            let needed = instances as u64 * u64::from(pool_max);
            let usable = max.saturating_sub(reserved);
            if needed > usable {
                return Err(RunStoreError::TooManyConnections {
                    instances,
                    pool_max,
                    needed,
                    usable,
                    max,
                    reserved,
                });
            }
            let schema = format!("aimate_run_{run_id}");
            sqlx::query(&format!("CREATE SCHEMA {schema}"))
                .execute(&mut conn)
                .await
                .map_err(|e| failed(e.to_string()))?;
            conn.close().await.ok();
            let separator = if url.contains('?') { '&' } else { '?' };
            store.database_url = Some(format!(
                "{url}{separator}options=-c%20search_path%3D{schema}"
            ));
            store.base_url = Some(url.to_owned());
            store.schema = Some(schema);
        }
        Ok(store)
    }

    /// What the run borrowed, for a log line: `schema aimate_run_…, Redis prefix …`.
    pub fn describe(&self) -> String {
        let mut parts = Vec::new();
        if let Some(schema) = &self.schema {
            parts.push(format!("PostgreSQL schema {schema}"));
        }
        if let Some(prefix) = &self.redis_prefix {
            parts.push(format!("Redis prefix {prefix}"));
        }
        parts.join(", ")
    }

    /// Drops the schema and deletes the prefix's keys; returns what could not be removed.
    pub async fn remove(&self) -> Vec<String> {
        let mut problems = Vec::new();
        if let (Some(url), Some(schema)) = (&self.base_url, &self.schema) {
            let dropped = async {
                let mut conn = sqlx::PgConnection::connect(url).await?;
                sqlx::query(&format!("DROP SCHEMA IF EXISTS {schema} CASCADE"))
                    .execute(&mut conn)
                    .await?;
                conn.close().await
            };
            if let Err(error) = dropped.await {
                problems.push(format!("schema {schema} was not dropped: {error}"));
            }
        }
        if let (Some(url), Some(prefix)) = (&self.redis_url, &self.redis_prefix)
            && let Err(error) = delete_prefix(url, prefix).await
        {
            problems.push(format!("Redis keys {prefix}* were not deleted: {error}"));
        }
        problems
    }
}

async fn ping_redis(url: &str) -> Result<(), RunStoreError> {
    let failed = |reason: String| RunStoreError::Redis {
        url: redact(url),
        reason,
    };
    let client = redis::Client::open(url).map_err(|e| failed(e.to_string()))?;
    let ping = async {
        let mut conn = client.get_multiplexed_async_connection().await?;
        redis::cmd("PING").query_async::<String>(&mut conn).await
    };
    match tokio::time::timeout(CHECK_TIMEOUT, ping).await {
        Ok(Ok(_)) => Ok(()),
        Ok(Err(error)) => Err(failed(error.to_string())),
        Err(_) => Err(failed("timed out".into())),
    }
}

async fn delete_prefix(url: &str, prefix: &str) -> redis::RedisResult<()> {
    let client = redis::Client::open(url)?;
    let mut conn = client.get_multiplexed_async_connection().await?;
    let mut cursor: u64 = 0;
    loop {
        let (next, keys): (u64, Vec<String>) = redis::cmd("SCAN")
            .arg(cursor)
            .arg("MATCH")
            .arg(format!("{prefix}*"))
            .arg("COUNT")
            .arg(1000)
            .query_async(&mut conn)
            .await?;
        if !keys.is_empty() {
            redis::cmd("UNLINK")
                .arg(&keys)
                .query_async::<()>(&mut conn)
                .await?;
        }
        if next == 0 {
            return Ok(());
        }
        cursor = next;
    }
}

/// A URL without its password, for messages.
fn redact(url: &str) -> String {
    aimate_reports::redact::redact_url(url)
}
