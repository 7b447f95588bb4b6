//! The state every handler shares. One `Arc` around it all: axum clones the state for
//! every extractor of every request, so a clone is one atomic increment.

use std::sync::{Arc, OnceLock};

use bytes::Bytes;
use std::sync::atomic::{AtomicBool, Ordering};

use crate::auth::AuthCache;
use crate::auth_failures::AuthFailures;
use crate::cache::{Cache, MemoryCache};
use crate::config::ServerConfig;
use crate::db::Db;
use crate::metrics::Metrics;
use crate::probe::DatabaseProbe;
use crate::ratelimit::{LocalRateLimiter, RateLimiter};

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
        let cache = Arc::new(MemoryCache::new(
            config.cache_max_mib * 1024 * 1024,
            metrics.clone(),
        ));
        let limiter = LocalRateLimiter::new(config.rate_limit_per_second, config.rate_limit_burst)
            .map(Arc::new);
        if let Some(limiter) = &limiter {
            let weak = Arc::downgrade(limiter);
            tokio::spawn(async move {
                let mut tick = tokio::time::interval(std::time::Duration::from_secs(60));
                loop {
                    tick.tick().await;
                    match weak.upgrade() {
                        Some(limiter) => limiter.forget_idle_keys(),
                        None => break,
                    }
                }
            });
        }
        Ok(Self(Arc::new(Shared {
            db,
            cache,
            limiter: limiter.map(|l| l as Arc<dyn RateLimiter>),
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
