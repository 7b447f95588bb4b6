//! Server configuration: every knob is a flag with an environment fallback, so the same
//! binary runs from a shell, a systemd unit or a container without a config file.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use axum::http::HeaderValue;
use clap::Args;

/// How the server is configured. `aimate serve` flattens this into its own flags.
#[derive(Debug, Clone, Args)]
pub struct ServerConfig {
    /// Address to listen on. Default: 0.0.0.0:$PORT when the platform sets PORT (as
    /// Heroku, Railway, Render and Cloud Run do), else 127.0.0.1:8080.
    #[arg(long, env = "AIMATE_BIND")]
    pub bind: Option<SocketAddr>,

    /// Directory for the embedded SQLite database (used when no DATABASE_URL is given).
    #[arg(long, env = "AIMATE_DATA_DIR", default_value = "data")]
    pub data_dir: PathBuf,

    /// Database URL: `postgres://…` for PostgreSQL, `sqlite://…` for a specific SQLite file.
    #[arg(long, env = "DATABASE_URL", hide_env_values = true)]
    pub database_url: Option<String>,

    /// Connections the pool keeps open even when idle.
    #[arg(long, env = "AIMATE_DB_POOL_MIN", default_value_t = 1)]
    pub db_pool_min: u32,

    /// Most connections the pool opens. On SQLite the pool serves reads (the one writer
    /// has a connection of its own), so a small pool (4–8) is enough; for PostgreSQL
    /// keep instances × this under `max_connections`.
    #[arg(long, env = "AIMATE_DB_POOL_MAX", default_value_t = 8)]
    pub db_pool_max: u32,

    /// How long a request waits for a pooled connection before it gets a 503.
    #[arg(long, env = "AIMATE_DB_ACQUIRE_TIMEOUT", default_value = "2s", value_parser = aimate_conventions::duration::parse)]
    pub db_acquire_timeout: Duration,

    /// SQLite durability. `full` (default): a write is acknowledged only after its commit
    /// reached the disk, so it survives power loss. `normal`: it survives a crash of the
    /// process, but a power loss may roll back the last commits; a little faster per
    /// commit. Writes are committed in groups, so `full` costs one fsync per group.
    #[arg(
        long,
        env = "AIMATE_SQLITE_SYNCHRONOUS",
        value_enum,
        default_value = "full"
    )]
    pub sqlite_synchronous: crate::db::Synchronous,

    /// Directory for the daily JSON log files `ai-mate-YYYY-MM-DD.log`; `-` writes no
    /// files (containers: the platform collects stdout, where every line goes anyway).
    #[arg(long, env = "AIMATE_LOG_DIR", default_value = "logs")]
    pub log_dir: PathBuf,

    /// Sustained requests per second allowed per API key (GCRA). 0 disables rate limiting.
    #[arg(long, env = "AIMATE_RATE_LIMIT_PER_SECOND", default_value_t = 200)]
    pub rate_limit_per_second: u32,

    /// Requests an API key may burst above its sustained rate.
    #[arg(long, env = "AIMATE_RATE_LIMIT_BURST", default_value_t = 400)]
    pub rate_limit_burst: u32,

    /// Redis shared by a fleet of instances: a key's rate limit then holds for the fleet
    /// (GCRA in Redis), not per instance. If Redis is unreachable or slow, each instance
    /// falls back to limiting on its own (a key then gets the limit per instance).
    /// REDIS_URL, as platforms inject it, is read when neither this nor AIMATE_REDIS_URL
    /// is given.
    #[arg(long, env = "AIMATE_REDIS_URL", hide_env_values = true, value_parser = parse_redis_url)]
    pub redis_url: Option<String>,

    /// Prefix of every Redis key this server writes (one per fleet, or per test run).
    #[arg(long, env = "AIMATE_REDIS_PREFIX", default_value = "aimate:")]
    pub redis_prefix: String,

    /// Failed authentications a client address may make per second (ten times that at
    /// once); past it, keys the server has not seen recently are refused from that address
    /// with 429 and no database lookup. Keys already known keep working. 0 disables.
    #[arg(long, env = "AIMATE_AUTH_FAILURES_PER_SECOND", default_value_t = 5)]
    pub auth_failures_per_second: u32,

    /// Browser origins allowed by CORS, comma separated (none by default).
    #[arg(long, env = "AIMATE_CORS_ORIGINS", value_delimiter = ',', value_parser = parse_origin)]
    pub cors_origins: Vec<HeaderValue>,

    /// Largest request body accepted, in bytes (the bulk endpoint has its own limit).
    #[arg(long, env = "AIMATE_MAX_BODY_BYTES", default_value_t = 1024 * 1024)]
    pub max_body_bytes: usize,

    /// Largest body accepted by `POST /api/invoices/bulk`, in bytes (1000 invoices fit).
    #[arg(long, env = "AIMATE_MAX_BULK_BODY_BYTES", default_value_t = 4 * 1024 * 1024)]
    pub max_bulk_body_bytes: usize,

    /// A request still running after this long is answered with a 503.
    #[arg(long, env = "AIMATE_REQUEST_TIMEOUT", default_value = "10s", value_parser = aimate_conventions::duration::parse)]
    pub request_timeout: Duration,

    /// API requests in flight at once; beyond this the server sheds load with a fast 503
    /// instead of queueing without bound.
    #[arg(long, env = "AIMATE_MAX_INFLIGHT", default_value_t = 1024)]
    pub max_inflight: usize,

    /// Open client connections at once; further connections wait in the kernel backlog.
    #[arg(long, env = "AIMATE_MAX_CONNECTIONS", default_value_t = 10_000)]
    pub max_connections: usize,

    /// A connection's first byte, and each HTTP/1 request head once its first byte came,
    /// must arrive within this time (slowloris guard).
    #[arg(long, env = "AIMATE_HEADER_READ_TIMEOUT", default_value = "10s", value_parser = aimate_conventions::duration::parse)]
    pub header_read_timeout: Duration,

    /// A connection that moved no byte and had no request in flight for this long is
    /// closed (HTTP/1 between requests, h2 with GOAWAY). Keep it above the idle timeout
    /// of the clients' and load balancers' connection pools, so they close first.
    #[arg(long, env = "AIMATE_KEEP_ALIVE_TIMEOUT", default_value = "75s", value_parser = aimate_conventions::duration::parse)]
    pub keep_alive_timeout: Duration,

    /// After SIGTERM, readiness answers 503 for this long before the listener closes, so
    /// load balancers stop sending traffic first.
    #[arg(long, env = "AIMATE_SHUTDOWN_DELAY", default_value = "0s", value_parser = aimate_conventions::duration::parse)]
    pub shutdown_delay: Duration,

    /// Longest wait for in-flight requests to finish on shutdown.
    #[arg(long, env = "AIMATE_DRAIN_TIMEOUT", default_value = "10s", value_parser = aimate_conventions::duration::parse)]
    pub drain_timeout: Duration,

    /// Memory budget of the in-memory response cache, in MiB.
    #[arg(long, env = "AIMATE_CACHE_MAX_MIB", default_value_t = 64)]
    pub cache_max_mib: u64,

    /// Bearer token for `/api/admin/*`. Admin endpoints are disabled when unset.
    #[arg(long, env = "AIMATE_ADMIN_TOKEN", hide_env_values = true)]
    pub admin_token: Option<String>,
}

/// Where the server listens when neither `--bind`, `AIMATE_BIND` nor `PORT` says.
pub const DEFAULT_BIND: SocketAddr =
    SocketAddr::new(std::net::IpAddr::V4(std::net::Ipv4Addr::LOCALHOST), 8080);

/// A platform variable (`PORT`, `REDIS_URL`) the server cannot use.
#[derive(Debug, thiserror::Error)]
pub enum PlatformEnvError {
    #[error("PORT=`{0}` is not a port number (1-65535)")]
    Port(String),
    #[error("REDIS_URL: {0}")]
    RedisUrl(String),
}

/// A platform variable, if set to something other than blanks.
fn platform_var(var: &impl Fn(&str) -> Option<String>, name: &str) -> Option<String> {
    var(name).filter(|value| !value.trim().is_empty())
}

/// Where a server given `bind` (`--bind` / `AIMATE_BIND`, if any) listens: there, else
/// 0.0.0.0:$PORT when `PORT` is set, else [`DEFAULT_BIND`]. `PORT` is checked only when
/// it is used.
pub fn resolve_bind(
    bind: Option<SocketAddr>,
    var: &impl Fn(&str) -> Option<String>,
) -> Result<SocketAddr, PlatformEnvError> {
    if let Some(bind) = bind {
        return Ok(bind);
    }
    let Some(port) = platform_var(var, "PORT") else {
        return Ok(DEFAULT_BIND);
    };
    let number = port
        .trim()
        .parse::<u16>()
        .ok()
        .filter(|&n| n != 0)
        .ok_or(PlatformEnvError::Port(port))?;
    Ok(SocketAddr::new(
        std::net::IpAddr::V4(std::net::Ipv4Addr::UNSPECIFIED),
        number,
    ))
}

impl ServerConfig {
    /// The address to listen on: `--bind` / `AIMATE_BIND`, else [`DEFAULT_BIND`].
    pub fn listen_addr(&self) -> SocketAddr {
        self.bind.unwrap_or(DEFAULT_BIND)
    }

    /// The conventions of hosting platforms, where aimate's own settings are absent:
    /// `PORT` means listen on 0.0.0.0:$PORT, `REDIS_URL` is the Redis to share. The more
    /// specific `--bind` / `AIMATE_BIND` and `--redis-url` / `AIMATE_REDIS_URL` win.
    /// `var` reads a variable (`std::env::var` in `aimate serve`). Only a variable that
    /// would be used is checked: a bad `PORT` beside `--bind` is no error.
    pub fn apply_platform_env(
        &mut self,
        var: impl Fn(&str) -> Option<String>,
    ) -> Result<(), PlatformEnvError> {
        self.bind = Some(resolve_bind(self.bind, &var)?);
        if self.redis_url.is_none()
            && let Some(url) = platform_var(&var, "REDIS_URL")
        {
            self.redis_url = Some(parse_redis_url(url.trim()).map_err(PlatformEnvError::RedisUrl)?);
        }
        Ok(())
    }

    /// The configuration a test or embedder starts from: every flag at its default,
    /// the database in `data_dir`. Platform variables (`PORT`, `REDIS_URL`) are not
    /// applied: see [`ServerConfig::apply_platform_env`].
    pub fn with_data_dir(data_dir: impl Into<PathBuf>) -> Self {
        use clap::Parser;

        #[derive(Parser)]
        struct Wrapper {
            #[command(flatten)]
            config: ServerConfig,
        }
        // Parsing an empty argv gives exactly the defaults `aimate serve` documents
        // (plus any environment overrides), so the two can never drift apart.
        let mut config = Wrapper::parse_from(["aimate"]).config;
        config.data_dir = data_dir.into();
        config
    }
}

/// A `redis://` or `rediss://` URL the Redis client accepts. The message names the URL
/// with its password masked: platforms put one in it.
fn parse_redis_url(text: &str) -> Result<String, String> {
    redis::Client::open(text)
        .map(|_| text.to_owned())
        .map_err(|error| {
            let shown = aimate_conventions::redact::redact_url(text);
            format!("`{shown}` is not a Redis URL: {error}")
        })
}

/// An origin as browsers send it: `scheme://host[:port]`, nothing after.
fn parse_origin(text: &str) -> Result<HeaderValue, String> {
    let rest = text
        .strip_prefix("https://")
        .or_else(|| text.strip_prefix("http://"))
        .ok_or_else(|| {
            format!("`{text}` is not an origin: it must start with http:// or https://")
        })?;
    if rest.is_empty() || rest.contains('/') {
        return Err(format!(
            "`{text}` is not an origin: expected scheme://host[:port] with no path"
        ));
    }
    HeaderValue::from_str(text).map_err(|_| format!("`{text}` is not a valid origin"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(pairs: &[(&str, &str)]) -> impl Fn(&str) -> Option<String> {
        let pairs: Vec<(String, String)> = pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect();
        move |name| {
            pairs
                .iter()
                .find(|(k, _)| k == name)
                .map(|(_, v)| v.clone())
        }
    }

    fn bare() -> ServerConfig {
        let mut config = ServerConfig::with_data_dir("data");
        config.bind = None;
        config.redis_url = None;
        config
    }

    #[test]
    fn port_binds_every_interface_when_no_bind_is_given() {
        let mut config = bare();
        config.apply_platform_env(env(&[("PORT", "9123")])).unwrap();
        assert_eq!(config.listen_addr(), "0.0.0.0:9123".parse().unwrap());
    }

    #[test]
    fn without_port_or_bind_the_server_stays_on_loopback() {
        let mut config = bare();
        config.apply_platform_env(env(&[])).unwrap();
        assert_eq!(config.listen_addr(), DEFAULT_BIND);
        config.apply_platform_env(env(&[("PORT", " ")])).unwrap();
        assert_eq!(config.listen_addr(), DEFAULT_BIND);
    }

    #[test]
    fn bind_wins_over_port_and_a_port_it_makes_unused_is_not_checked() {
        let mut config = bare();
        config.bind = Some("127.0.0.1:7000".parse().unwrap());
        config.apply_platform_env(env(&[("PORT", "nope")])).unwrap();
        assert_eq!(config.listen_addr(), "127.0.0.1:7000".parse().unwrap());
    }

    #[test]
    fn a_bad_port_is_named_in_one_line() {
        for bad in ["eighty", "0", "65536", "-1", "80.5"] {
            let error = bare()
                .apply_platform_env(env(&[("PORT", bad)]))
                .unwrap_err()
                .to_string();
            assert_eq!(
                error,
                format!("PORT=`{bad}` is not a port number (1-65535)")
            );
        }
    }

    #[test]
    fn redis_url_is_taken_when_aimate_redis_url_is_absent() {
        let mut config = bare();
        config
            .apply_platform_env(env(&[("REDIS_URL", "redis://cache:6379")]))
            .unwrap();
        assert_eq!(config.redis_url.as_deref(), Some("redis://cache:6379"));
    }

    #[test]
    fn aimate_redis_url_wins_over_redis_url() {
        let mut config = bare();
        config.redis_url = Some("redis://mine:6379".to_owned());
        config
            .apply_platform_env(env(&[("REDIS_URL", "redis://platform:6379")]))
            .unwrap();
        assert_eq!(config.redis_url.as_deref(), Some("redis://mine:6379"));
    }

    #[test]
    fn a_bad_redis_url_is_refused_without_showing_its_password() {
        let error = bare()
            .apply_platform_env(env(&[("REDIS_URL", "http://user:hunter2@cache:6379")]))
            .unwrap_err()
            .to_string();
        assert!(
            error.starts_with("REDIS_URL: `http://user:***@cache:6379` is not a Redis URL"),
            "{error}"
        );
        assert!(!error.contains("hunter2"), "{error}");
    }
}
