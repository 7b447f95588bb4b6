//! The state every handler shares. One `Arc` around it all: axum clones the state for
//! every extractor of every request, so a clone is one atomic increment.

use std::sync::{Arc, OnceLock};

use bytes::Bytes;
use std::sync::atomic::{AtomicBool, Ordering};

use crate::auth::AuthCache;
use crate::auth_failures::AuthFailures;
use crate::cache::{Cache, MemoryCache};
use crate::cache_redis::{Resp3Client, TieredCache};
use crate::config::ServerConfig;
use crate::db::Db;
use crate::metrics::Metrics;
use crate::probe::DatabaseProbe;
use crate::ratelimit::{LocalRateLimiter, RateLimiter};
use crate::ratelimit_redis::RedisRateLimiter;

#[derive(Clone)]
pub struct AppState(Arc<Shared>);

impl std::ops::Deref for AppState {
    type Target = Shared;

    fn deref(&self) -> &Shared {
        &self.0
    }
}

pub struct Shared {
    pub db: Db,
    pub cache: Arc<dyn Cache>,
    /// `None` when rate limiting is disabled.
    pub limiter: Option<Arc<dyn RateLimiter>>,
    /// `RateLimit-Policy` of every limited response, when rate limiting is enabled.
    pub rate_limit_policy: Option<axum::http::HeaderValue>,
    pub auth: Arc<AuthCache>,
    /// `None` when failed authentications are not limited.
    pub auth_failures: Option<AuthFailures>,
    pub metrics: Arc<Metrics>,
    pub config: Arc<ServerConfig>,
    pub lifecycle: Arc<Lifecycle>,
    pub database_probe: DatabaseProbe,
    /// The rendered OpenAPI document, set once the router (and so the document) exists.
    openapi: OnceLock<Bytes>,
}

/// Whether the server is draining: readiness answers 503 from the first shutdown signal.
#[derive(Debug, Default)]
pub struct Lifecycle {
    draining: AtomicBool,
}

impl Lifecycle {
    pub fn start_draining(&self) {
        self.draining.store(true, Ordering::SeqCst);
    }

    pub fn is_draining(&self) -> bool {
        self.draining.load(Ordering::SeqCst)
    }
}

impl AppState {
    /// Builds the state on an open database. The local limiter's key map is pruned by a
    /// background task for as long as the limiter lives.
    pub fn new(db: Db, config: ServerConfig) -> prometheus::Result<Self> {
        let metrics = Arc::new(Metrics::new()?);
        let cache = response_cache(&config, &metrics)?;
        let limiter = rate_limiter(&config, &metrics);
        Ok(Self(Arc::new(Shared {
            db,
            cache,
            rate_limit_policy: limiter.as_ref().and_then(|_| {
                crate::ratelimit::policy(config.rate_limit_per_second, config.rate_limit_burst)
                    .and_then(|p| axum::http::HeaderValue::from_str(&p).ok())
            }),
            limiter,
            auth: Arc::new(AuthCache::new(metrics.clone())),
            auth_failures: AuthFailures::new(config.auth_failures_per_second),
            metrics,
            config: Arc::new(config),
            lifecycle: Arc::new(Lifecycle::default()),
            database_probe: DatabaseProbe::default(),
            openapi: OnceLock::new(),
        })))
    }
}

impl Shared {
    pub fn set_openapi(&self, json: Bytes) {
        let _ = self.openapi.set(json);
    }

    pub fn openapi(&self) -> Option<Bytes> {
        self.openapi.get().cloned()
    }
}

/// The in-memory cache, in front of Redis when a URL is given.
fn response_cache(
    config: &ServerConfig,
    metrics: &Arc<Metrics>,
) -> prometheus::Result<Arc<dyn Cache>> {
    let l1 = MemoryCache::new(config.cache_max_mib * 1024 * 1024, metrics.clone());
    let Some(url) = &config.redis_url else {
        return Ok(Arc::new(l1));
    };
    metrics.register_redis_cache()?;
    // The URL was checked when the configuration was read.
    Ok(match Resp3Client::open(url) {
        Ok(client) => Arc::new(TieredCache::new(
            client,
            &config.redis_prefix,
            l1,
            metrics.clone(),
        )),
        Err(error) => {
            tracing::error!(%error, "cache: Redis unusable; caching in memory only");
            Arc::new(l1)
        }
    })
}

/// The configured limiter: shared through Redis when a URL is given, else local. A
/// background task prunes the local limiter's idle keys for as long as it lives.
fn rate_limiter(config: &ServerConfig, metrics: &Metrics) -> Option<Arc<dyn RateLimiter>> {
    let (per_second, burst) = (config.rate_limit_per_second, config.rate_limit_burst);
    if let Some(url) = &config.redis_url {
        // The URL was checked when the configuration was read.
        match RedisRateLimiter::new(url, &config.redis_prefix, per_second, burst) {
            Ok(limiter) => {
                let limiter =
                    Arc::new(limiter?.counting_fallbacks(metrics.rate_limit_fallbacks.clone()));
                prune_idle_keys(&limiter, |l| l.fallback().forget_idle_keys());
                return Some(limiter);
            }
            Err(error) => tracing::error!(%error, "rate limiter: limiting per instance"),
        }
    }
    let limiter = Arc::new(LocalRateLimiter::new(per_second, burst)?);
    prune_idle_keys(&limiter, LocalRateLimiter::forget_idle_keys);
    Some(limiter)
}

fn prune_idle_keys<L: Send + Sync + 'static>(limiter: &Arc<L>, prune: fn(&L)) {
    let weak = Arc::downgrade(limiter);
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(std::time::Duration::from_secs(60));
        loop {
            tick.tick().await;
            match weak.upgrade() {
                Some(limiter) => prune(&limiter),
                None => break,
            }
        }
    });
}
