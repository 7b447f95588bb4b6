//! The fleet's rate limiter: GCRA in Redis, one atomic script per check, so a key's
//! limit holds across every instance that shares the Redis (behind N instances a key
//! would otherwise get N times its limit).
//!
//! The script keeps one value per key, its theoretical arrival time (TAT), on Redis'
//! own clock (`TIME`), so instances whose clocks differ still agree. Redis trouble is a
//! degradation, not an outage: a call that fails or takes longer than
//! [`CALL_TIMEOUT`] is decided by a per-instance [`LocalRateLimiter`] with the same
//! quota instead (each instance then allows the key its full rate), and a lost
//! connection is retried at most once per [`RECONNECT_AFTER`], so a dead Redis costs a
//! request nothing but a failed `try_lock`.

use std::time::{Duration, Instant};

use async_trait::async_trait;
use redis::aio::ConnectionManager;

use crate::ratelimit::{Decision, LocalRateLimiter, RateLimiter};

/// Longest a check waits for Redis before the local limiter decides.
pub const CALL_TIMEOUT: Duration = Duration::from_millis(50);
/// Longest a (re)connection attempt may take.
const CONNECT_TIMEOUT: Duration = Duration::from_millis(250);
/// Pause between reconnection attempts while Redis is unreachable.
pub const RECONNECT_AFTER: Duration = Duration::from_secs(1);

/// GCRA: allowed when the key's TAT, pushed one interval on, is within `burst`
/// intervals of now. Returns {allowed, remaining, ms until retry (refused) or until the
/// burst is whole again (allowed)}.
const GCRA: &str = r"
local now_parts = redis.call('TIME')
local now = tonumber(now_parts[1]) * 1000 + tonumber(now_parts[2]) / 1000
local interval = tonumber(ARGV[1])
local burst = tonumber(ARGV[2])
local tat = tonumber(redis.call('GET', KEYS[1])) or now
if tat < now then tat = now end
local new_tat = tat + interval
local allow_at = new_tat - interval * burst
if allow_at > now then
  return {0, 0, math.ceil(allow_at - now)}
end
redis.call('SET', KEYS[1], tostring(new_tat), 'PX', math.ceil(new_tat - now) + 1000)
return {1, math.floor((now - allow_at) / interval), math.ceil(new_tat - now)}
";

pub struct RedisRateLimiter {
    client: redis::Client,
    connection: tokio::sync::Mutex<Connection>,
    script: redis::Script,
    /// Keys are `{prefix}ratelimit:{tenant}`: one prefix per fleet (or per test run).
    prefix: String,
    interval_ms: f64,
    burst: u32,
    fallback: LocalRateLimiter,
    /// Counts decisions the fallback made (`rate_limit_fallbacks_total`).
    fallbacks: Option<prometheus::IntCounter>,
}

/// The shared connection, or when to try again.
enum Connection {
    Up(ConnectionManager),
    Down { retry_at: Instant },
}

#[derive(Debug, thiserror::Error)]
pub enum RedisLimiterError {
    #[error("invalid Redis URL: {0}")]
    Url(#[from] redis::RedisError),
}

impl RedisRateLimiter {
    /// `per_second` sustained and `burst` at once per key, shared through the Redis at
    /// `url`. Connects on first use. `Ok(None)` if `per_second` is 0 (disabled).
    pub fn new(
        url: &str,
        prefix: &str,
        per_second: u32,
        burst: u32,
    ) -> Result<Option<Self>, RedisLimiterError> {
        let client = redis::Client::open(url)?;
        let Some(fallback) = LocalRateLimiter::new(per_second, burst) else {
            return Ok(None);
        };
        Ok(Some(Self {
            client,
            connection: tokio::sync::Mutex::new(Connection::Down {
                retry_at: Instant::now(),
            }),
            script: redis::Script::new(GCRA),
            prefix: prefix.to_owned(),
            interval_ms: 1000.0 / f64::from(per_second),
            burst: burst.max(1),
            fallback,
            fallbacks: None,
        }))
    }

    /// Counts every decision the per-instance fallback makes on `counter`.
    pub fn counting_fallbacks(self, counter: prometheus::IntCounter) -> Self {
        Self {
            fallbacks: Some(counter),
            ..self
        }
    }

    /// The per-instance limiter used while Redis is away (its idle keys need pruning
    /// like any local limiter's).
    pub fn fallback(&self) -> &LocalRateLimiter {
        &self.fallback
    }

    /// The connection, if Redis is reachable. While another check is (re)connecting, or
    /// before the next attempt is due, `None` at once.
    async fn connection(&self) -> Option<ConnectionManager> {
        let mut connection = self.connection.try_lock().ok()?;
        match &*connection {
            Connection::Up(manager) => Some(manager.clone()),
            Connection::Down { retry_at } if Instant::now() < *retry_at => None,
            Connection::Down { .. } => {
                let attempt = tokio::time::timeout(
                    CONNECT_TIMEOUT,
                    ConnectionManager::new(self.client.clone()),
                )
                .await;
                match attempt {
                    Ok(Ok(manager)) => {
                        tracing::info!("rate limiter: connected to Redis");
                        *connection = Connection::Up(manager.clone());
                        Some(manager)
                    }
                    _ => {
                        *connection = Connection::Down {
                            retry_at: Instant::now() + RECONNECT_AFTER,
                        };
                        None
                    }
                }
            }
        }
    }

    async fn shared_check(&self, key: i64) -> Option<Decision> {
        let mut connection = self.connection().await?;
        let mut invocation = self.script.key(format!("{}ratelimit:{key}", self.prefix));
        invocation.arg(self.interval_ms).arg(self.burst);
        let call = invocation.invoke_async::<(i64, i64, i64)>(&mut connection);
        match tokio::time::timeout(CALL_TIMEOUT, call).await {
            Ok(Ok((allowed, remaining, wait_ms))) => Some(Decision {
                allowed: allowed == 1,
                limit: self.burst,
                remaining: u32::try_from(remaining.max(0)).unwrap_or(u32::MAX),
                reset_after: Duration::from_millis(u64::try_from(wait_ms.max(0)).unwrap_or(0)),
            }),
            Ok(Err(error)) => {
                tracing::warn!(%error, "rate limiter: Redis call failed; deciding locally");
                self.mark_down();
                None
            }
            Err(_) => {
                tracing::warn!("rate limiter: Redis too slow; deciding locally");
                self.mark_down();
                None
            }
        }
    }

    /// After a failed or slow call, every check decides locally until the next
    /// reconnection is due: a Redis gone silent (paused, or stopped behind a proxy that
    /// still accepts) would otherwise cost each request the whole call timeout, since
    /// the connection manager keeps the dead link and retries on every call.
    fn mark_down(&self) {
        if let Ok(mut connection) = self.connection.try_lock() {
            *connection = Connection::Down {
                retry_at: Instant::now() + RECONNECT_AFTER,
            };
        }
    }
}

#[async_trait]
impl RateLimiter for RedisRateLimiter {
    async fn check(&self, key: i64) -> Decision {
        match self.shared_check(key).await {
            Some(decision) => decision,
            None => {
                if let Some(fallbacks) = &self.fallbacks {
                    fallbacks.inc();
                }
                self.fallback.check(key).await
            }
        }
    }
}
