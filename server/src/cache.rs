//! The response cache. Handlers see only the [`Cache`] trait: an in-memory L1 (moka),
//! alone ([`MemoryCache`]) or in front of a Redis L2 shared by a fleet
//! ([`crate::cache_redis::TieredCache`]).
//!
//! Invalidation is by *scope generation*: every key embeds the current generation of
//! its scope (e.g. tenant 7's invoices), and a write bumps the generation, so all the
//! scope's entries become unreachable at once and age out by TTL. Generations come from
//! one process-wide counter, so a generation forgotten and re-created is always newer
//! than any key still cached: a stale entry can never be read back.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use async_trait::async_trait;
use bytes::Bytes;
use futures_util::future::BoxFuture;
use moka::Expiry;

use crate::error::AppError;
use crate::metrics::Metrics;

/// What is cached, with the guide's TTL for each ("Caching Strategy"). Single invoices
/// and jobs are not in the guide's list; they are read often (a detail view per list
/// click) and take their list's TTL. Every entry is invalidated by the writes that
/// change it, so a TTL bounds memory, never staleness.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum CacheKind {
    Dashboard,
    InvoiceList,
    JobList,
    Preferences,
    Invoice,
    Job,
}

impl CacheKind {
    pub fn ttl(self) -> Duration {
        match self {
            Self::Dashboard => Duration::from_secs(120),
            Self::InvoiceList | Self::JobList | Self::Invoice | Self::Job => {
                Duration::from_secs(60)
            }
            Self::Preferences => Duration::from_secs(15 * 60),
        }
    }

    /// The `cache` label of `cache_requests_total`.
    pub fn label(self) -> &'static str {
        match self {
            Self::Dashboard => "dashboard",
            Self::InvoiceList => "invoice_list",
            Self::JobList => "job_list",
            Self::Preferences => "preferences",
            Self::Invoice => "invoice",
            Self::Job => "job",
        }
    }
}

/// A loader for a missing entry: produces the serialized response body.
pub type Loader<'a> = BoxFuture<'a, Result<Bytes, AppError>>;

#[async_trait]
pub trait Cache: Send + Sync {
    /// The cached body for `key`, or the loader's result (stored for `kind.ttl()`).
    /// Concurrent misses for one key run the loader once; the others wait for it.
    async fn get_or_load(
        &self,
        kind: CacheKind,
        key: String,
        load: Loader<'_>,
    ) -> Result<Bytes, AppError>;

    /// The key of the entry `rest` under `scope`: it embeds the scope's current
    /// generation, so an invalidation of the scope changes it.
    async fn scoped_key(&self, scope: &str, rest: &str) -> String;

    /// Makes every entry under each of `scopes` unreachable (one round trip for all).
    async fn invalidate_scopes(&self, scopes: &[String]);

    /// Entries currently held in memory (for readiness and metrics).
    fn entry_count(&self) -> u64;

    /// For readiness: what the cache is made of and whether all of it works.
    fn health(&self) -> CacheStatus;
}

/// The cache's part of readiness.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CacheStatus {
    /// `up`, or `degraded` while a configured Redis is unreachable (the server then
    /// serves from memory and the database).
    pub status: &'static str,
    /// `memory`, or `memory+redis`.
    pub kind: &'static str,
}

#[derive(Clone)]
struct Entry {
    ttl: Duration,
    body: Bytes,
}

struct EntryTtl;

impl Expiry<String, Entry> for EntryTtl {
    fn expire_after_create(&self, _key: &String, value: &Entry, _now: Instant) -> Option<Duration> {
        Some(value.ttl)
    }
}

/// In-process L1 cache.
pub struct MemoryCache {
    entries: moka::future::Cache<String, Entry, foldhash::fast::RandomState>,
    generations: moka::future::Cache<String, u64, foldhash::fast::RandomState>,
    next_generation: AtomicU64,
    metrics: Arc<Metrics>,
}

impl MemoryCache {
    pub fn new(max_bytes: u64, metrics: Arc<Metrics>) -> Self {
        let entries = moka::future::Cache::builder()
            .max_capacity(max_bytes)
            .weigher(|key: &String, value: &Entry| {
                u32::try_from(key.len() + value.body.len()).unwrap_or(u32::MAX)
            })
            .expire_after(EntryTtl)
            .build_with_hasher(foldhash::fast::RandomState::default());
        // A generation must outlive every entry keyed by it: the longest TTL is 15 min.
        let generations = moka::future::Cache::builder()
            .max_capacity(1_000_000)
            .time_to_idle(Duration::from_secs(30 * 60))
            .build_with_hasher(foldhash::fast::RandomState::default());
        Self {
            entries,
            generations,
            next_generation: AtomicU64::new(1),
            metrics,
        }
    }

    fn fresh_generation(&self) -> u64 {
        self.next_generation.fetch_add(1, Ordering::Relaxed)
    }

    /// The body under `key`, or `load`'s (kept for `ttl`); `true` with a body that was
    /// already there or loaded by a concurrent caller. Concurrent misses load once.
    pub(crate) async fn fetch(
        &self,
        key: &str,
        ttl: Duration,
        load: impl Future<Output = Result<Bytes, AppError>>,
    ) -> Result<(Bytes, bool), AppError> {
        let entry = self
            .entries
            .entry_by_ref(key)
            .or_try_insert_with(async move { load.await.map(|body| Entry { ttl, body }) })
            .await
            .map_err(|shared: Arc<AppError>| (*shared).clone())?;
        let found = !entry.is_fresh();
        Ok((entry.into_value().body, found))
    }

    /// This process's generation of `scope`.
    pub(crate) async fn local_generation(&self, scope: &str) -> u64 {
        self.generations
            .get_with_by_ref(scope, async { self.fresh_generation() })
            .await
    }

    pub(crate) fn count(&self, kind: CacheKind, found: bool) {
        let result = if found { "hit" } else { "miss" };
        self.metrics
            .cache_requests
            .with_label_values(&[kind.label(), result])
            .inc();
    }
}

#[async_trait]
impl Cache for MemoryCache {
    async fn get_or_load(
        &self,
        kind: CacheKind,
        key: String,
        load: Loader<'_>,
    ) -> Result<Bytes, AppError> {
        let (body, found) = self.fetch(&key, kind.ttl(), load).await?;
        self.count(kind, found);
        Ok(body)
    }

    async fn scoped_key(&self, scope: &str, rest: &str) -> String {
        let generation = self.local_generation(scope).await;
        format!("{scope}#{generation}:{rest}")
    }

    async fn invalidate_scopes(&self, scopes: &[String]) {
        for scope in scopes {
            self.generations
                .insert(scope.clone(), self.fresh_generation())
                .await;
        }
    }

    fn entry_count(&self) -> u64 {
        self.entries.entry_count()
    }

    fn health(&self) -> CacheStatus {
        CacheStatus {
            status: "up",
            kind: "memory",
        }
    }
}

/// The invalidation scope of one tenant's `what` (e.g. "invoices", "dashboard").
pub fn tenant_scope(tenant_id: i64, what: &str) -> String {
    format!("t{tenant_id}:{what}")
}

/// A cached JSON response: the body under `scope` + `rest` (the scope's current
/// generation embedded), or `load`'s, stored for the kind's TTL.
pub async fn cached_json(
    cache: &dyn Cache,
    kind: CacheKind,
    scope: &str,
    rest: &str,
    load: Loader<'_>,
) -> Result<axum::response::Response, AppError> {
    let key = cache.scoped_key(scope, rest).await;
    let body = cache.get_or_load(kind, key, load).await?;
    Ok(crate::respond::json_response(body))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::AtomicUsize;

    fn cache() -> MemoryCache {
        MemoryCache::new(1 << 20, Arc::new(Metrics::new().unwrap()))
    }

    #[tokio::test]
    async fn concurrent_misses_load_once() {
        let cache = Arc::new(cache());
        let loads = Arc::new(AtomicUsize::new(0));
        let mut tasks = Vec::new();
        for _ in 0..16 {
            let (cache, loads) = (cache.clone(), loads.clone());
            tasks.push(tokio::spawn(async move {
                let load: Loader<'_> = Box::pin(async move {
                    loads.fetch_add(1, Ordering::SeqCst);
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    Ok(Bytes::from_static(b"body"))
                });
                cache
                    .get_or_load(CacheKind::Dashboard, "k".into(), load)
                    .await
            }));
        }
        for task in tasks {
            assert_eq!(task.await.unwrap().unwrap(), Bytes::from_static(b"body"));
        }
        assert_eq!(loads.load(Ordering::SeqCst), 1);
    }

    #[tokio::test]
    async fn invalidation_changes_the_key_and_never_reuses_a_generation() {
        let cache = cache();
        let scope = || vec!["t1:invoices".to_owned()];
        let first = cache.scoped_key("t1:invoices", "list").await;
        assert_eq!(first, cache.scoped_key("t1:invoices", "list").await);
        cache.invalidate_scopes(&scope()).await;
        let second = cache.scoped_key("t1:invoices", "list").await;
        assert_ne!(first, second);
        // Another scope is untouched by the invalidation.
        let other = cache.scoped_key("t2:invoices", "list").await;
        cache.invalidate_scopes(&scope()).await;
        assert_eq!(other, cache.scoped_key("t2:invoices", "list").await);
    }

    #[tokio::test]
    async fn failed_loads_are_not_cached() {
        let cache = cache();
        let failing: Loader<'_> = Box::pin(async { Err(AppError::validation("nope")) });
        assert!(
            cache
                .get_or_load(CacheKind::JobList, "k".into(), failing)
                .await
                .is_err()
        );
        let ok: Loader<'_> = Box::pin(async { Ok(Bytes::from_static(b"ok")) });
        let body = cache.get_or_load(CacheKind::JobList, "k".into(), ok).await;
        assert_eq!(body.ok(), Some(Bytes::from_static(b"ok")));
    }
}
