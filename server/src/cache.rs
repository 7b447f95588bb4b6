//! The response cache. Handlers see only the [`Cache`] trait: an in-memory L1 (moka),
//! alone ([`MemoryCache`]) or in front of a Redis L2 shared by a fleet
//! ([`crate::cache_redis::TieredCache`]).
//!
//! Invalidation is by *scope*: an entry is cached under a scope (e.g. tenant 7's
//! dashboard) and a write invalidates the scopes it changes, so all of a scope's entries
//! become stale at once and age out by TTL. In memory, every entry holds its scope's
//! generation cell ([`crate::cache_scopes`]): a read is one lookup and one atomic load.
//! With Redis, keys embed the fleet's generations instead (see `cache_redis`).

use std::sync::Arc;
use std::time::{Duration, Instant};

use async_trait::async_trait;
use bytes::Bytes;
use futures_util::future::BoxFuture;
use moka::Expiry;
use moka::ops::compute::{CompResult, Op};
use prometheus::IntCounter;

use crate::cache_scopes::{ScopeCell, Scopes};
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
    pub const ALL: [Self; 6] = [
        Self::Dashboard,
        Self::InvoiceList,
        Self::JobList,
        Self::Preferences,
        Self::Invoice,
        Self::Job,
    ];

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
    /// The body cached as `rest` under `scope`, unless the scope was invalidated since;
    /// else the loader's result, stored for `kind.ttl()`. Concurrent misses for one
    /// entry run the loader once; the others wait for it.
    async fn get_or_load(
        &self,
        kind: CacheKind,
        scope: &str,
        rest: &str,
        load: Loader<'_>,
    ) -> Result<Bytes, AppError>;

    /// Makes every entry under each of `scopes` stale (one round trip for all).
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
    /// A scoped entry's scope cell and the generation it was built at; `None` for an
    /// entry whose key itself changes on invalidation (the Redis tier's keys).
    built_at: Option<(Arc<ScopeCell>, u64)>,
}

impl Entry {
    fn is_current(&self) -> bool {
        self.built_at
            .as_ref()
            .is_none_or(|(cell, generation)| cell.generation() == *generation)
    }
}

struct EntryTtl;

impl Expiry<String, Entry> for EntryTtl {
    fn expire_after_create(&self, _key: &String, value: &Entry, _now: Instant) -> Option<Duration> {
        Some(value.ttl)
    }

    /// A stale entry replaced by a fresh one gets the fresh one's full TTL.
    fn expire_after_update(
        &self,
        _key: &String,
        value: &Entry,
        _now: Instant,
        _left: Option<Duration>,
    ) -> Option<Duration> {
        Some(value.ttl)
    }
}

/// `cache_requests_total`'s children per kind, resolved once: the vector hashes its
/// label values under a lock on every `with_label_values`.
struct Lookups {
    hits: [IntCounter; CacheKind::ALL.len()],
    misses: [IntCounter; CacheKind::ALL.len()],
}

impl Lookups {
    fn new(metrics: &Metrics) -> Self {
        let child = |kind: CacheKind, result| {
            metrics
                .cache_requests
                .with_label_values(&[kind.label(), result])
        };
        Self {
            hits: CacheKind::ALL.map(|kind| child(kind, "hit")),
            misses: CacheKind::ALL.map(|kind| child(kind, "miss")),
        }
    }
}

/// In-process L1 cache.
pub struct MemoryCache {
    entries: moka::future::Cache<String, Entry, foldhash::fast::RandomState>,
    scopes: Scopes,
    lookups: Lookups,
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
        Self {
            entries,
            scopes: Scopes::default(),
            lookups: Lookups::new(&metrics),
        }
    }

    /// The body under `key`, or `load`'s (kept for `ttl`); `true` with a body that was
    /// already there or loaded by a concurrent caller. Concurrent misses load once. For
    /// keys that change when their content may have (they embed generations).
    pub(crate) async fn fetch(
        &self,
        key: &str,
        ttl: Duration,
        load: impl Future<Output = Result<Bytes, AppError>>,
    ) -> Result<(Bytes, bool), AppError> {
        let entry = self
            .entries
            .entry_by_ref(key)
            .or_try_insert_with(async move {
                load.await.map(|body| Entry {
                    ttl,
                    body,
                    built_at: None,
                })
            })
            .await
            .map_err(|shared: Arc<AppError>| (*shared).clone())?;
        let found = !entry.is_fresh();
        Ok((entry.into_value().body, found))
    }

    /// As [`Self::fetch`] for `rest` under `scope`: a hit is one lookup, and an entry
    /// built before the scope's last invalidation is loaded again.
    pub(crate) async fn fetch_scoped(
        &self,
        scope: &str,
        rest: &str,
        ttl: Duration,
        load: impl Future<Output = Result<Bytes, AppError>>,
    ) -> Result<(Bytes, bool), AppError> {
        // The length prefix keeps (scope, rest) pairs apart that concatenate alike.
        let key = format!("{}:{scope}{rest}", scope.len());
        if let Some(entry) = self.entries.get(&key).await
            && entry.is_current()
        {
            return Ok((entry.body, true));
        }
        let cell = self.scopes.cell(scope);
        // Serialised per key: one caller loads, the others then find its entry current.
        let computed = self
            .entries
            .entry(key)
            .and_try_compute_with(|existing| async move {
                if existing.is_some_and(|entry| entry.value().is_current()) {
                    return Ok(Op::Nop);
                }
                // Read before loading: a write committed during the load bumps it, so
                // what the load read is never served as current after that write.
                let generation = cell.generation();
                let body = load.await?;
                Ok::<_, AppError>(Op::Put(Entry {
                    ttl,
                    body,
                    built_at: Some((cell, generation)),
                }))
            })
            .await?;
        match computed {
            CompResult::Unchanged(entry) => Ok((entry.into_value().body, true)),
            CompResult::Inserted(entry) | CompResult::ReplacedWith(entry) => {
                Ok((entry.into_value().body, false))
            }
            CompResult::StillNone(_) | CompResult::Removed(_) => Err(AppError::internal(
                anyhow::anyhow!("cache: a computed entry was neither kept nor stored"),
            )),
        }
    }

    pub(crate) fn count(&self, kind: CacheKind, found: bool) {
        let index = kind as usize;
        if found {
            self.lookups.hits[index].inc();
        } else {
            self.lookups.misses[index].inc();
        }
    }
}

#[async_trait]
impl Cache for MemoryCache {
    async fn get_or_load(
        &self,
        kind: CacheKind,
        scope: &str,
        rest: &str,
        load: Loader<'_>,
    ) -> Result<Bytes, AppError> {
        let (body, found) = self.fetch_scoped(scope, rest, kind.ttl(), load).await?;
        self.count(kind, found);
        Ok(body)
    }

    async fn invalidate_scopes(&self, scopes: &[String]) {
        self.scopes.invalidate(scopes);
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

/// A cached JSON response: the body cached as `rest` under `scope`, or `load`'s,
/// stored for the kind's TTL.
pub async fn cached_json(
    cache: &dyn Cache,
    kind: CacheKind,
    scope: &str,
    rest: &str,
    load: Loader<'_>,
) -> Result<axum::response::Response, AppError> {
    let body = cache.get_or_load(kind, scope, rest, load).await?;
    Ok(crate::respond::json_response(body))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};

    fn cache() -> MemoryCache {
        MemoryCache::new(1 << 20, Arc::new(Metrics::new().unwrap()))
    }

    /// Reads `rest` under `scope`, counting loads in `loads`; the body names the load.
    async fn read(cache: &MemoryCache, scope: &str, rest: &str, loads: &AtomicUsize) -> Bytes {
        let load: Loader<'_> = Box::pin(async move {
            let n = loads.fetch_add(1, Ordering::SeqCst);
            Ok(Bytes::from(format!("load {n}")))
        });
        cache
            .get_or_load(CacheKind::InvoiceList, scope, rest, load)
            .await
            .unwrap()
    }

    /// 16 concurrent readers of one entry; returns how many loads ran.
    async fn concurrent_reads(cache: &Arc<MemoryCache>) -> usize {
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
                    .get_or_load(CacheKind::Dashboard, "t1:dashboard", "", load)
                    .await
            }));
        }
        for task in tasks {
            assert_eq!(task.await.unwrap().unwrap(), Bytes::from_static(b"body"));
        }
        loads.load(Ordering::SeqCst)
    }

    #[tokio::test]
    async fn concurrent_misses_load_once_also_after_an_invalidation() {
        let cache = Arc::new(cache());
        assert_eq!(concurrent_reads(&cache).await, 1);
        assert_eq!(concurrent_reads(&cache).await, 0, "all hits");
        cache.invalidate_scopes(&["t1:dashboard".to_owned()]).await;
        assert_eq!(
            concurrent_reads(&cache).await,
            1,
            "the stale entry reloads once"
        );
    }

    #[tokio::test]
    async fn an_invalidation_reloads_its_scope_and_spares_the_others() {
        let cache = cache();
        let loads = AtomicUsize::new(0);
        let first = read(&cache, "t1:invoices", "page", &loads).await;
        assert_eq!(read(&cache, "t1:invoices", "page", &loads).await, first);
        let other = read(&cache, "t2:invoices", "page", &loads).await;
        cache.invalidate_scopes(&["t1:invoices".to_owned()]).await;
        let second = read(&cache, "t1:invoices", "page", &loads).await;
        assert_ne!(second, first);
        assert_eq!(read(&cache, "t1:invoices", "page", &loads).await, second);
        assert_eq!(read(&cache, "t2:invoices", "page", &loads).await, other);
        assert_eq!(loads.load(Ordering::SeqCst), 3);
    }

    #[tokio::test]
    async fn scope_and_rest_that_concatenate_alike_are_different_entries() {
        let cache = cache();
        let loads = AtomicUsize::new(0);
        let a = read(&cache, "t1:ab", "c", &loads).await;
        let b = read(&cache, "t1:a", "bc", &loads).await;
        assert_ne!(a, b);
    }

    #[tokio::test]
    async fn a_load_overtaken_by_an_invalidation_is_not_served_after_it() {
        let cache = Arc::new(cache());
        let (release, released) = tokio::sync::oneshot::channel::<()>();
        let slow = tokio::spawn({
            let cache = cache.clone();
            async move {
                let load: Loader<'_> = Box::pin(async move {
                    let _ = released.await;
                    Ok(Bytes::from_static(b"read before the write"))
                });
                cache
                    .get_or_load(CacheKind::InvoiceList, "t1:invoices", "page", load)
                    .await
            }
        });
        tokio::time::sleep(Duration::from_millis(20)).await;
        // A write commits and invalidates while the load is still running.
        cache.invalidate_scopes(&["t1:invoices".to_owned()]).await;
        release.send(()).unwrap();
        slow.await.unwrap().unwrap();
        let loads = AtomicUsize::new(0);
        assert_eq!(
            read(&cache, "t1:invoices", "page", &loads).await,
            Bytes::from_static(b"load 0")
        );
    }

    #[tokio::test]
    async fn failed_loads_are_not_cached() {
        let cache = cache();
        let failing: Loader<'_> = Box::pin(async { Err(AppError::validation("nope")) });
        let read = cache.get_or_load(CacheKind::JobList, "t1:jobs", "k", failing);
        assert!(read.await.is_err());
        let ok: Loader<'_> = Box::pin(async { Ok(Bytes::from_static(b"ok")) });
        let body = cache
            .get_or_load(CacheKind::JobList, "t1:jobs", "k", ok)
            .await;
        assert_eq!(body.ok(), Some(Bytes::from_static(b"ok")));
    }

    #[tokio::test]
    async fn hits_and_misses_are_counted_per_kind() {
        let metrics = Arc::new(Metrics::new().unwrap());
        let cache = MemoryCache::new(1 << 20, metrics.clone());
        let loads = AtomicUsize::new(0);
        read(&cache, "t1:invoices", "page", &loads).await;
        read(&cache, "t1:invoices", "page", &loads).await;
        read(&cache, "t1:invoices", "page", &loads).await;
        let count = |result| {
            metrics
                .cache_requests
                .with_label_values(&["invoice_list", result])
                .get()
        };
        assert_eq!((count("hit"), count("miss")), (2, 1));
    }
}
