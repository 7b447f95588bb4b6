//! Test harness: a real server per test, on SQLite or PostgreSQL.

use std::net::SocketAddr;
use std::time::Duration;

use aimate_server::ServerConfig;
use reqwest::{Client, Method, RequestBuilder, Response};
use serde_json::Value;
use sqlx::Connection;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

pub const ADMIN_TOKEN: &str = "test-admin-token";

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
}

/// Runs each listed `async fn name(backend: Backend)` once per backend, as tests named
/// `sqlite::name` and `postgres::name`.
#[macro_export]
macro_rules! backend_tests {
    ($($name:ident),* $(,)?) => {
        mod sqlite {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() { super::$name($crate::common::Backend::Sqlite).await }
            )*
        }
        mod postgres {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() { super::$name($crate::common::Backend::Postgres).await }
            )*
        }
    };
}

/// A PostgreSQL schema made for one test and dropped after it.
struct PgSchema {
    base_url: String,
    name: String,
}

pub struct TestServer {
    pub addr: SocketAddr,
    pub client: Client,
    pub config: ServerConfig,
    pub backend: Backend,
    shutdown: Option<oneshot::Sender<()>>,
    task: Option<JoinHandle<Result<(), aimate_server::RunError>>>,
    pg: Option<PgSchema>,
    _dir: tempfile::TempDir,
}

/// `TEST_REDIS_URL`, or `None` after saying the test was skipped.
pub fn redis_url() -> Option<String> {
    let url = std::env::var("TEST_REDIS_URL")
        .ok()
        .filter(|u| !u.is_empty());
    if url.is_none() {
        eprintln!("skipped: TEST_REDIS_URL is not set, so this Redis test did not run");
    }
    url
}

/// A Redis key prefix no other run shares.
pub fn unique_prefix() -> String {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos();
    format!("aimate-test:{}:{nanos}:", std::process::id())
}

fn pg_base_url() -> Option<String> {
    std::env::var("TEST_DATABASE_URL")
        .ok()
        .filter(|url| !url.is_empty())
}

impl TestServer {
    /// Starts a server with test defaults, adjusted by `tweak`. `None` (after printing
    /// why) when the backend is PostgreSQL and `TEST_DATABASE_URL` is not set.
    pub async fn start(backend: Backend, tweak: impl FnOnce(&mut ServerConfig)) -> Option<Self> {
        let dir = tempfile::tempdir().expect("temp dir");
        let mut config = ServerConfig::with_data_dir(dir.path().join("data"));
        config.bind = Some("127.0.0.1:0".parse().expect("addr"));
        config.log_dir = dir.path().join("logs");
        config.admin_token = Some(ADMIN_TOKEN.to_owned());
        config.database_url = None;
        config.rate_limit_per_second = 100_000;
        config.rate_limit_burst = 100_000;
        let pg = match backend {
            Backend::Sqlite => None,
            Backend::Postgres => {
                let Some(base_url) = pg_base_url() else {
                    eprintln!(
                        "skipped: TEST_DATABASE_URL is not set, so the PostgreSQL variant did not run"
                    );
                    return None;
                };
                let name = format!("aimate_test_{}", uuid_like());
                let mut conn = sqlx::PgConnection::connect(&base_url)
                    .await
                    .expect("connect to TEST_DATABASE_URL");
                sqlx::query(&format!("CREATE SCHEMA {name}"))
                    .execute(&mut conn)
                    .await
                    .expect("create schema");
                conn.close().await.ok();
                let separator = if base_url.contains('?') { '&' } else { '?' };
                config.database_url = Some(format!(
                    "{base_url}{separator}options=-c%20search_path%3D{name}"
                ));
                Some(PgSchema { base_url, name })
            }
        };
        tweak(&mut config);
        let (addr_tx, addr_rx) = oneshot::channel();
        let (shutdown_tx, shutdown_rx) = oneshot::channel::<()>();
        let run_config = config.clone();
        let task = tokio::spawn(async move {
            aimate_server::run_until(
                run_config,
                async {
                    let _ = shutdown_rx.await;
                },
                |addr| {
                    let _ = addr_tx.send(addr);
                },
            )
            .await
        });
        let addr = match tokio::time::timeout(Duration::from_secs(30), addr_rx).await {
            Ok(Ok(addr)) => addr,
            _ => panic!("server did not start: {:?}", task.await),
        };
        let client = Client::builder()
            .timeout(Duration::from_secs(30))
            .build()
            .expect("client");
        Some(Self {
            addr,
            client,
            config,
            backend,
            shutdown: Some(shutdown_tx),
            task: Some(task),
            pg,
            _dir: dir,
        })
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    pub fn request(&self, method: Method, path: &str, key: &str) -> RequestBuilder {
        self.client.request(method, self.url(path)).bearer_auth(key)
    }

    /// Creates a tenant through the admin endpoint and returns its API key.
    pub async fn tenant(&self, name: &str) -> String {
        let response = self
            .client
            .post(self.url("/api/admin/tenants"))
            .bearer_auth(ADMIN_TOKEN)
            .json(&serde_json::json!({ "name": name }))
            .send()
            .await
            .expect("create tenant");
        assert_eq!(response.status(), 201);
        let body: Value = response.json().await.expect("tenant json");
        body["api_key"].as_str().expect("api_key").to_owned()
    }

    pub async fn get(&self, path: &str, key: &str) -> (u16, Value) {
        json_of(
            self.request(Method::GET, path, key)
                .send()
                .await
                .expect("GET"),
        )
        .await
    }

    pub async fn send(&self, method: Method, path: &str, key: &str, body: Value) -> (u16, Value) {
        json_of(
            self.request(method, path, key)
                .json(&body)
                .send()
                .await
                .expect("request"),
        )
        .await
    }

    /// Creates an invoice and returns it.
    pub async fn invoice(&self, key: &str, body: Value) -> Value {
        let (status, invoice) = self.send(Method::POST, "/api/invoices", key, body).await;
        assert_eq!(status, 201, "{invoice}");
        invoice
    }

    /// Starts creating an invoice in the background and gives it 300 ms to get in
    /// flight (e.g. to queue behind a held write lock). Resolves to status and body.
    pub async fn write_in_background(&self, key: &str, body: Value) -> JoinHandle<(u16, Value)> {
        let request = self.request(Method::POST, "/api/invoices", key).json(&body);
        let task =
            tokio::spawn(async move { json_of(request.send().await.expect("request")).await });
        tokio::time::sleep(Duration::from_millis(300)).await;
        task
    }

    pub async fn metrics(&self) -> String {
        self.client
            .get(self.url("/api/metrics"))
            .send()
            .await
            .expect("metrics")
            .text()
            .await
            .expect("text")
    }

    /// Sum of the samples of `name` whose labels contain every one of `labels`.
    pub async fn metric(&self, name: &str, labels: &[&str]) -> f64 {
        self.metrics()
            .await
            .lines()
            .filter(|line| line.starts_with(name) && labels.iter().all(|l| line.contains(l)))
            .filter_map(|line| line.rsplit(' ').next()?.parse::<f64>().ok())
            .sum()
    }

    /// The readiness body.
    pub async fn readiness(&self) -> (u16, Value) {
        json_of(
            self.client
                .get(self.url("/api/health"))
                .send()
                .await
                .expect("readiness"),
        )
        .await
    }

    /// Waits (up to 5 s) until readiness reports the cache's `status`.
    pub async fn wait_for_cache(&self, status: &str) {
        for _ in 0..100 {
            if self.readiness().await.1["cache"]["status"] == status {
                return;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        panic!("cache never became {status}: {:?}", self.readiness().await);
    }

    /// `cache_requests_total` hits of one cache (`dashboard`, `invoice_list`, …).
    pub async fn cache_hits(&self, cache: &str) -> f64 {
        let label = format!("cache=\"{cache}\"");
        self.metric("cache_requests_total", &[&label, "result=\"hit\""])
            .await
    }

    /// A pool on the server's own database (its PostgreSQL schema, or its SQLite file),
    /// for tests that compare what the API says with what is stored.
    pub async fn database(&self) -> sqlx::AnyPool {
        sqlx::any::install_default_drivers();
        let url = match self.backend {
            Backend::Sqlite => aimate_server::db::sqlite_url_for(&self.config.data_dir),
            Backend::Postgres => self.config.database_url.clone().expect("pg url"),
        };
        sqlx::pool::PoolOptions::<sqlx::Any>::new()
            .max_connections(2)
            .connect(&url)
            .await
            .expect("connect to the test database")
    }

    /// Takes the database's write lock from outside the server until the guard is
    /// released: writes queue behind it, the way a stuck writer would make them.
    pub async fn hold_write_lock(&self) -> WriteLock {
        match self.backend {
            Backend::Sqlite => {
                let path = self.config.data_dir.join("aimate.db");
                let mut conn =
                    sqlx::SqliteConnection::connect(&format!("sqlite://{}", path.display()))
                        .await
                        .expect("open sqlite");
                sqlx::query("BEGIN IMMEDIATE")
                    .execute(&mut conn)
                    .await
                    .expect("lock");
                WriteLock::Sqlite(conn)
            }
            Backend::Postgres => {
                let url = self.config.database_url.clone().expect("pg url");
                let mut conn = sqlx::PgConnection::connect(&url).await.expect("connect");
                sqlx::query("BEGIN")
                    .execute(&mut conn)
                    .await
                    .expect("begin");
                sqlx::query("LOCK TABLE invoice IN EXCLUSIVE MODE")
                    .execute(&mut conn)
                    .await
                    .expect("lock");
                WriteLock::Postgres(conn)
            }
        }
    }

    /// Signals shutdown and waits for the server to finish.
    pub async fn stop(mut self) -> Result<(), aimate_server::RunError> {
        self.finish().await
    }

    pub fn begin_shutdown(&mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
    }

    pub async fn finish(&mut self) -> Result<(), aimate_server::RunError> {
        self.begin_shutdown();
        let result = match self.task.take() {
            Some(task) => task.await.expect("server task panicked"),
            None => Ok(()),
        };
        drop(self.pg.take());
        result
    }
}

impl Drop for TestServer {
    fn drop(&mut self) {
        self.begin_shutdown();
    }
}

impl Drop for PgSchema {
    /// Drops the schema, also for a test that panicked before `stop`. On its own thread
    /// and runtime, because `Drop` cannot await.
    fn drop(&mut self) {
        let (base_url, name) = (self.base_url.clone(), self.name.clone());
        let dropper = std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .ok()?;
            runtime.block_on(async {
                let mut conn = sqlx::PgConnection::connect(&base_url).await.ok()?;
                let dropped = sqlx::query(&format!("DROP SCHEMA IF EXISTS {name} CASCADE"))
                    .execute(&mut conn)
                    .await;
                conn.close().await.ok();
                dropped.ok()
            })
        });
        let _ = dropper.join();
    }
}

pub enum WriteLock {
    Sqlite(sqlx::SqliteConnection),
    Postgres(sqlx::PgConnection),
}

impl WriteLock {
    pub async fn release(self) {
        match self {
            Self::Sqlite(mut conn) => {
                sqlx::query("ROLLBACK")
                    .execute(&mut conn)
                    .await
                    .expect("unlock");
                conn.close().await.ok();
            }
            Self::Postgres(mut conn) => {
                sqlx::query("ROLLBACK")
                    .execute(&mut conn)
                    .await
                    .expect("unlock");
                conn.close().await.ok();
            }
        }
    }
}

pub async fn json_of(response: Response) -> (u16, Value) {
    let status = response.status().as_u16();
    let text = response.text().await.expect("body");
    let value = if text.is_empty() {
        Value::Null
    } else {
        serde_json::from_str(&text).unwrap_or(Value::String(text))
    };
    (status, value)
}

/// Asserts the standard error body and returns its code.
pub fn error_code(body: &Value) -> &str {
    let code = body["error"]["code"]
        .as_str()
        .unwrap_or_else(|| panic!("not an error body: {body}"));
    assert!(
        body["error"]["message"]
            .as_str()
            .is_some_and(|m| !m.is_empty()),
        "no message: {body}"
    );
    code
}

/// Unique across the tests of this process and across processes.
fn uuid_like() -> String {
    use std::sync::atomic::{AtomicU64, Ordering};
    use std::time::{SystemTime, UNIX_EPOCH};
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or_default();
    format!(
        "{nanos:x}_{}_{}",
        std::process::id(),
        COUNTER.fetch_add(1, Ordering::Relaxed)
    )
}
