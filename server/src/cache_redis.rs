//! The fleet's cache: the in-memory L1 in front of a Redis L2 that every instance
//! shares, with read-your-writes across instances.
//!
//! Keys embed scope generations that live in Redis, so a write on one instance changes
//! the key every instance builds, and the entries under the old key (in any L1, and in
//! Redis) are never read again.
//!
//! Why not ask Redis for the generations on every read: measured with
//! `scripts/bench-redis-cache.sh` (wrk -c 50, cached GETs, 2 cores), that halves the
//! throughput of a cached read (0.50 of L1 alone on the dashboard, 0.52 on a list),
//! and Redis itself serves only ~108k GETs/s here (`redis-benchmark -t get -c 50`).
//! Instead each instance keeps the generations it has read, and Redis tells it when
//! one changes: the connection speaks RESP3 with `CLIENT TRACKING ON BCAST PREFIX
//! <prefix>gen: NOLOOP`, so a write's new generation is pushed to every other instance
//! as an invalidation, applied by the connection's reader as it arrives. A cached read
//! with Redis configured is then in-memory lookups only (the generations, then the
//! entry): 0.96 of the throughput of L1 alone (one lookup) on the dashboard, 0.97 on
//! a list, in the same bench. Redis sends the invalidation in the same event-loop turn as its answer to
//! the writer, so by the time the writer's client has its response and asks another
//! instance, that instance's socket already holds the message.
//!
//! Generations come from one counter in Redis that starts at Redis' clock in µs: a
//! generation key that expired, or a Redis that restarted empty, never hands out a
//! value that a key still cached was built with.
//!
//! Redis trouble is a degradation, never an outage. Every call has a short timeout,
//! and a failure marks the link down until a reconnection (tried once a second)
//! succeeds. Meanwhile the L1 checks entries against this instance's own scope
//! generations (as [`MemoryCache`] alone does), entries live at most [`DEGRADED_TTL`]
//! and L2 is not used: an instance sees its own writes at once and other instances'
//! within [`DEGRADED_TTL`]. A write whose
//! invalidation could not reach Redis leaves the instance *dirty*; on reconnecting it
//! bumps the fleet-wide generation that every key embeds, so nothing cached anywhere
//! before that write is served after it.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, RwLock, Weak};
use std::time::Duration;

use async_trait::async_trait;
use bytes::Bytes;
use redis::aio::MultiplexedConnection;
use redis::{AsyncConnectionConfig, IntoConnectionInfo, ProtocolVersion, PushInfo, PushKind};

use crate::cache::{Cache, CacheKind, CacheStatus, Loader, MemoryCache};
use crate::error::AppError;
use crate::metrics::Metrics;

/// Longest a request waits for Redis before going on without it.
pub const CALL_TIMEOUT: Duration = Duration::from_millis(50);
/// Longest a (re)connection may take, tracking set up included (each answer within
/// [`CALL_TIMEOUT`]).
const CONNECT_TIMEOUT: Duration = Duration::from_millis(500);
/// Pause between reconnection attempts.
pub const RECONNECT_AFTER: Duration = Duration::from_secs(1);
/// Longest an entry lives while Redis is unreachable: how late this instance may see
/// another instance's write.
pub const DEGRADED_TTL: Duration = Duration::from_secs(1);
/// A generation key lives this long after its last change; it must outlive every entry
/// built with it (the longest TTL is 15 minutes). An expired one comes back newer.
const GENERATION_TTL: Duration = Duration::from_secs(60 * 60);
/// The fleet-wide scope every key also embeds: bumped after missed invalidations.
const ALL: &str = "~all";

/// Lua shared by both scripts: the next value of the generation counter `KEYS[1]`,
/// which starts at Redis' clock in µs.
const NEXT_GENERATION: &str = r"
local function next_generation()
  if redis.call('EXISTS', KEYS[1]) == 0 then
    local t = redis.call('TIME')
    redis.call('SET', KEYS[1], string.format('%.0f', t[1] * 1000000 + t[2]))
  end
  return redis.call('INCR', KEYS[1])
end
";

/// The generation under `KEYS[2]`, created if missing (TTL `ARGV[1]` ms).
const GENERATION: &str = r"
local g = redis.call('GET', KEYS[2])
if g then return tonumber(g) end
g = next_generation()
redis.call('SET', KEYS[2], g, 'PX', ARGV[1])
return g
";

/// A new generation for each of `KEYS[2..]`; returns them in order.
const INVALIDATE: &str = r"
local out = {}
for i = 2, #KEYS do
  local g = next_generation()
  redis.call('SET', KEYS[i], g, 'PX', ARGV[1])
  out[#out + 1] = g
end
return out
";

#[derive(Debug, thiserror::Error)]
pub enum RedisCacheError {
    #[error("invalid Redis URL: {0}")]
    Url(#[from] redis::RedisError),
}

/// L1 in memory, L2 and generations in Redis.
pub struct TieredCache {
    l1: MemoryCache,
    link: Arc<Link>,
}

impl TieredCache {
    /// Connects in the background (the cache serves degraded until then) and
    /// reconnects whenever the link drops, for as long as the cache lives.
    pub fn new(client: Resp3Client, prefix: &str, l1: MemoryCache, metrics: Arc<Metrics>) -> Self {
        let link = Arc::new(Link {
            client: client.0,
            generation_prefix: format!("{prefix}gen:"),
            counter_key: format!("{prefix}generation-counter"),
            body_prefix: format!("{prefix}cache:"),
            connection: RwLock::new(None),
            up: AtomicBool::new(false),
            incarnation: AtomicU64::new(0),
            outages: AtomicU64::new(0),
            generations: moka::sync::Cache::builder()
                .max_capacity(1_000_000)
                .build_with_hasher(foldhash::fast::RandomState::default()),
            apply: Mutex::new(()),
            changes: AtomicU64::new(0),
            dirty: AtomicBool::new(false),
            generation_script: redis::Script::new(&format!("{NEXT_GENERATION}{GENERATION}")),
            invalidate_script: redis::Script::new(&format!("{NEXT_GENERATION}{INVALIDATE}")),
            metrics,
        });
        keep_connected(&link);
        Self { l1, link }
    }

    /// The key of `rest` under `scope` in both tiers: it embeds the fleet's generations
    /// of `scope` and of [`ALL`], so a write anywhere changes it. `None` while Redis is
    /// unreachable.
    async fn shared_key(&self, scope: &str, rest: &str) -> Option<String> {
        let all = self.link.generation(ALL).await?;
        let generation = self.link.generation(scope).await?;
        Some(format!("{scope}#{all}.{generation}:{rest}"))
    }
}

/// A client for `url` that speaks RESP3 (client tracking pushes need it).
pub struct Resp3Client(redis::Client);

impl Resp3Client {
    pub fn open(url: &str) -> Result<Self, RedisCacheError> {
        let mut info = url.into_connection_info()?;
        info.redis.protocol = ProtocolVersion::RESP3;
        Ok(Self(redis::Client::open(info)?))
    }
}

#[async_trait]
impl Cache for TieredCache {
    async fn get_or_load(
        &self,
        kind: CacheKind,
        scope: &str,
        rest: &str,
        load: Loader<'_>,
    ) -> Result<Bytes, AppError> {
        let Some(key) = self.shared_key(scope, rest).await else {
            // Redis is away: this instance's own scope generations, short-lived entries,
            // no L2. The outage count keeps entries of different outages apart.
            let outage = self.link.outages.load(Ordering::SeqCst);
            let ttl = kind.ttl().min(DEGRADED_TTL);
            let (body, found) = self
                .l1
                .fetch_scoped(scope, &format!("~{outage}:{rest}"), ttl, load)
                .await?;
            self.l1.count(kind, found);
            return Ok(body);
        };
        let ttl = kind.ttl();
        let loaded = AtomicBool::new(false);
        let (body, _) = self
            .l1
            .fetch(&key, ttl, async {
                if let Some(body) = self.link.get(&key).await {
                    return Ok(body);
                }
                loaded.store(true, Ordering::Relaxed);
                let body = load.await?;
                self.link.put(&key, &body, ttl).await;
                Ok(body)
            })
            .await?;
        // A hit is a response the database was not asked for: from L1 or from L2.
        self.l1.count(kind, !loaded.load(Ordering::Relaxed));
        Ok(body)
    }

    async fn invalidate_scopes(&self, scopes: &[String]) {
        // The per-instance generations serve while Redis is away: keep them current.
        self.l1.invalidate_scopes(scopes).await;
        self.link.invalidate(scopes).await;
    }

    fn entry_count(&self) -> u64 {
        self.l1.entry_count()
    }

    fn health(&self) -> CacheStatus {
        CacheStatus {
            status: if self.link.is_up() { "up" } else { "degraded" },
            kind: "memory+redis",
        }
    }
}

/// The connection to Redis and the generations it keeps current.
struct Link {
    client: redis::Client,
    generation_prefix: String,
    counter_key: String,
    body_prefix: String,
    connection: RwLock<Option<MultiplexedConnection>>,
    up: AtomicBool,
    /// Which connection is current: a closing connection's last messages are ignored.
    incarnation: AtomicU64,
    /// Times the link went down: keys built during different outages never meet.
    outages: AtomicU64,
    /// Generations read from Redis, dropped as Redis says they changed.
    generations: moka::sync::Cache<String, u64, foldhash::fast::RandomState>,
    /// Serialises storing a generation read from Redis against applying changes, so a
    /// value read before a change can never be stored after it.
    apply: Mutex<()>,
    /// Counts changes applied (invalidations, link up or down).
    changes: AtomicU64,
    /// An invalidation failed to reach Redis: bump [`ALL`] once it is back.
    dirty: AtomicBool,
    generation_script: redis::Script,
    invalidate_script: redis::Script,
    metrics: Arc<Metrics>,
}

impl Link {
    fn is_up(&self) -> bool {
        self.up.load(Ordering::SeqCst)
    }

    fn lock_apply(&self) -> MutexGuard<'_, ()> {
        self.apply
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    fn connection(&self) -> Option<MultiplexedConnection> {
        self.connection.read().ok()?.clone()
    }

    fn generation_key(&self, scope: &str) -> String {
        format!("{}{scope}", self.generation_prefix)
    }

    /// The fleet's generation of `scope`, `None` while Redis is unreachable.
    async fn generation(&self, scope: &str) -> Option<u64> {
        if !self.is_up() {
            return None;
        }
        if let Some(generation) = self.generations.get(scope) {
            return Some(generation);
        }
        let mut connection = self.connection()?;
        let seen = self.changes.load(Ordering::SeqCst);
        let mut call = self.generation_script.key(&self.counter_key);
        call.key(self.generation_key(scope))
            .arg(GENERATION_TTL.as_millis() as u64);
        let read = tokio::time::timeout(CALL_TIMEOUT, call.invoke_async::<u64>(&mut connection));
        match read.await {
            Ok(Ok(generation)) => {
                let _applying = self.lock_apply();
                if self.changes.load(Ordering::SeqCst) == seen {
                    self.generations.insert(scope.to_owned(), generation);
                }
                Some(generation)
            }
            Ok(Err(error)) => self.failed(&error.to_string()),
            Err(_) => self.failed("timed out"),
        }
    }

    /// New fleet generations for `scopes`. If Redis cannot be told, the instance is
    /// dirty until it reconnects.
    async fn invalidate(&self, scopes: &[String]) {
        if !self.is_up() {
            self.dirty.store(true, Ordering::SeqCst);
            // Reconnected in between? Then the reconnection may have missed this.
            if self.is_up() {
                self.flush_dirty().await;
            }
            return;
        }
        // Forget them here first: NOLOOP means no message comes back for our own write.
        self.forget(scopes);
        let Some(mut connection) = self.connection() else {
            self.dirty.store(true, Ordering::SeqCst);
            return;
        };
        let mut call = self.invalidate_script.key(&self.counter_key);
        for scope in scopes {
            call.key(self.generation_key(scope));
        }
        call.arg(GENERATION_TTL.as_millis() as u64);
        let write =
            tokio::time::timeout(CALL_TIMEOUT, call.invoke_async::<Vec<u64>>(&mut connection));
        match write.await {
            // A read between `forget` and the script's run may have stored an old value.
            Ok(Ok(_)) => self.forget(scopes),
            Ok(Err(error)) => {
                self.dirty.store(true, Ordering::SeqCst);
                let _ = self.failed::<()>(&error.to_string());
            }
            Err(_) => {
                // It may still land; assume it did not.
                self.dirty.store(true, Ordering::SeqCst);
                let _ = self.failed::<()>("timed out");
            }
        }
    }

    fn forget(&self, scopes: &[String]) {
        let _applying = self.lock_apply();
        self.changes.fetch_add(1, Ordering::SeqCst);
        for scope in scopes {
            self.generations.invalidate(scope.as_str());
        }
    }

    /// After missed invalidations: a new fleet-wide generation hides every entry
    /// cached before them, on every instance.
    async fn flush_dirty(&self) {
        if self.dirty.swap(false, Ordering::SeqCst) {
            Box::pin(self.invalidate(&[ALL.to_owned()])).await;
        }
    }

    /// The entry under `key` in Redis.
    async fn get(&self, key: &str) -> Option<Bytes> {
        if !self.is_up() {
            return None;
        }
        let mut connection = self.connection()?;
        let mut command = redis::cmd("GET");
        command.arg(format!("{}{key}", self.body_prefix));
        let read = tokio::time::timeout(
            CALL_TIMEOUT,
            command.query_async::<Option<Vec<u8>>>(&mut connection),
        );
        let result = match read.await {
            Ok(Ok(body)) => body,
            Ok(Err(error)) => return self.failed(&error.to_string()),
            Err(_) => return self.failed("timed out"),
        };
        let label = if result.is_some() { "hit" } else { "miss" };
        self.metrics
            .cache_redis_lookups
            .with_label_values(&[label])
            .inc();
        result.map(Bytes::from)
    }

    async fn put(&self, key: &str, body: &Bytes, ttl: Duration) {
        let Some(mut connection) = self.connection() else {
            return;
        };
        let mut command = redis::cmd("SET");
        command
            .arg(format!("{}{key}", self.body_prefix))
            .arg(body.as_ref())
            .arg("PX")
            .arg(ttl.as_millis() as u64);
        let write = tokio::time::timeout(CALL_TIMEOUT, command.query_async::<()>(&mut connection));
        let failure = match write.await {
            Ok(Ok(())) => return,
            Ok(Err(error)) => error.to_string(),
            Err(_) => "timed out".to_owned(),
        };
        self.failed::<()>(&failure);
    }

    /// A call failed: count it and go degraded until the link is back.
    fn failed<T>(&self, why: &str) -> Option<T> {
        self.metrics.cache_redis_errors.inc();
        self.go_down(why);
        None
    }

    fn go_down(&self, why: &str) {
        let Ok(mut connection) = self.connection.write() else {
            return;
        };
        if connection.take().is_none() {
            return;
        }
        self.up.store(false, Ordering::SeqCst);
        self.outages.fetch_add(1, Ordering::SeqCst);
        drop(connection);
        let _applying = self.lock_apply();
        self.changes.fetch_add(1, Ordering::SeqCst);
        self.generations.invalidate_all();
        self.metrics.cache_redis_up.set(0);
        tracing::warn!(
            why,
            "cache: Redis unreachable; serving degraded from memory"
        );
    }

    /// Applies what Redis pushed on connection `incarnation`.
    fn on_push(&self, incarnation: u64, push: PushInfo) {
        if incarnation != self.incarnation.load(Ordering::SeqCst) {
            return;
        }
        match push.kind {
            PushKind::Invalidate => {
                // One array of keys, or nil when the whole database was flushed.
                let keys: Option<Vec<String>> = push
                    .data
                    .first()
                    .and_then(|value| redis::from_redis_value(value).ok());
                let _applying = self.lock_apply();
                self.changes.fetch_add(1, Ordering::SeqCst);
                match keys {
                    Some(keys) => {
                        for key in keys {
                            if let Some(scope) = key.strip_prefix(&self.generation_prefix) {
                                self.generations.invalidate(scope);
                            }
                        }
                    }
                    None => self.generations.invalidate_all(),
                }
            }
            PushKind::Disconnection => self.go_down("connection closed"),
            _ => {}
        }
    }

    /// Connects with tracking on, then starts serving from Redis.
    async fn connect(self: &Arc<Self>) -> redis::RedisResult<()> {
        let incarnation = self.incarnation.fetch_add(1, Ordering::SeqCst) + 1;
        let weak: Weak<Self> = Arc::downgrade(self);
        let config = AsyncConnectionConfig::new()
            .set_connection_timeout(CONNECT_TIMEOUT)
            // A Redis too slow for requests is not back: every answer, the handshake's
            // included, within the requests' timeout, or stay degraded.
            .set_response_timeout(CALL_TIMEOUT)
            .set_push_sender(move |push: PushInfo| {
                if let Some(link) = weak.upgrade() {
                    link.on_push(incarnation, push);
                }
                Ok::<(), redis::aio::SendError>(())
            });
        let mut connection = self
            .client
            .get_multiplexed_async_connection_with_config(&config)
            .await?;
        redis::cmd("CLIENT")
            .arg("TRACKING")
            .arg("ON")
            .arg("BCAST")
            .arg("PREFIX")
            .arg(&self.generation_prefix)
            .arg("NOLOOP")
            .query_async::<()>(&mut connection)
            .await?;
        // Invalidations missed while away are made good before anything is served
        // from Redis again.
        if self.dirty.swap(false, Ordering::SeqCst) {
            tracing::info!(
                "cache: invalidations were missed while Redis was away; bumping every key"
            );
            let mut call = self.invalidate_script.key(&self.counter_key);
            call.key(self.generation_key(ALL))
                .arg(GENERATION_TTL.as_millis() as u64);
            if let Err(error) = call.invoke_async::<Vec<u64>>(&mut connection).await {
                self.dirty.store(true, Ordering::SeqCst);
                return Err(error);
            }
        }
        {
            let mut current = self
                .connection
                .write()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            let _applying = self.lock_apply();
            self.changes.fetch_add(1, Ordering::SeqCst);
            self.generations.invalidate_all();
            *current = Some(connection);
            self.up.store(true, Ordering::SeqCst);
        }
        self.metrics.cache_redis_up.set(1);
        tracing::info!("cache: connected to Redis");
        // A write that failed while this connection was being made.
        self.flush_dirty().await;
        Ok(())
    }
}

/// Connects at once, then checks once a second and reconnects while the link is down.
/// Holds the link weakly: the task ends with the cache.
fn keep_connected(link: &Arc<Link>) {
    let weak = Arc::downgrade(link);
    tokio::spawn(async move {
        loop {
            let Some(link) = weak.upgrade() else { break };
            if !link.is_up() {
                match tokio::time::timeout(CONNECT_TIMEOUT, link.connect()).await {
                    Ok(Ok(())) => {}
                    Ok(Err(error)) => tracing::debug!(%error, "cache: Redis still unreachable"),
                    Err(_) => tracing::debug!("cache: connecting to Redis timed out"),
                }
            }
            drop(link);
            tokio::time::sleep(RECONNECT_AFTER).await;
        }
    });
}
