//! Every metric the server exports: name, type, help and labels, in one place. The
//! registration in [`crate::metrics`] builds its collectors from these, and the
//! dashboards and alert rules are generated from them (`aimate dashboards generate`),
//! so a renamed metric cannot leave a panel or an alert reading nothing.

/// A Prometheus metric type.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Counter,
    Gauge,
    Histogram,
}

/// One exported metric, as it appears on `/api/metrics`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MetricDef {
    /// The name as exported (a counter's includes `_total`; a histogram's is the base
    /// of its `_bucket`, `_sum` and `_count` series).
    pub name: &'static str,
    pub kind: Kind,
    pub help: &'static str,
    pub labels: &'static [&'static str],
}

pub const REQUEST_DURATION: MetricDef = MetricDef {
    name: "http_server_request_duration_seconds",
    kind: Kind::Histogram,
    help: "Duration of HTTP server requests.",
    labels: &[
        "http_request_method",
        "http_route",
        "http_response_status_code",
    ],
};

pub const ACTIVE_REQUESTS: MetricDef = MetricDef {
    name: "http_server_active_requests",
    kind: Kind::Gauge,
    help: "Number of HTTP server requests in flight.",
    labels: &[],
};

pub const SHED_REQUESTS: MetricDef = MetricDef {
    name: "http_server_shed_requests_total",
    kind: Kind::Counter,
    help: "Requests rejected with 503 because the server was at its concurrency limit.",
    labels: &[],
};

pub const CACHE_REQUESTS: MetricDef = MetricDef {
    name: "cache_requests_total",
    kind: Kind::Counter,
    help: "Cache lookups by cache and result (hit or miss).",
    labels: &["cache", "result"],
};

pub const CACHE_REDIS_UP: MetricDef = MetricDef {
    name: "cache_redis_up",
    kind: Kind::Gauge,
    help: "1 while the cache's Redis (L2 and shared generations) is reachable, 0 while the cache serves degraded from memory. Absent without --redis-url.",
    labels: &[],
};

pub const CACHE_REDIS_LOOKUPS: MetricDef = MetricDef {
    name: "cache_redis_lookups_total",
    kind: Kind::Counter,
    help: "L1 misses looked up in Redis (L2), by result (hit or miss).",
    labels: &["result"],
};

pub const CACHE_REDIS_ERRORS: MetricDef = MetricDef {
    name: "cache_redis_errors_total",
    kind: Kind::Counter,
    help: "Cache calls to Redis that failed or took longer than 50 ms; each sends the cache degraded until it reconnects.",
    labels: &[],
};

pub const DB_CONNECTIONS: MetricDef = MetricDef {
    name: "db_client_connection_count",
    kind: Kind::Gauge,
    help: "Database pool connections by state (idle or used).",
    labels: &["state"],
};

pub const DB_CONNECTION_MAX: MetricDef = MetricDef {
    name: "db_client_connection_max",
    kind: Kind::Gauge,
    help: "Most connections the database pool may open.",
    labels: &[],
};

pub const RATE_LIMITED: MetricDef = MetricDef {
    name: "rate_limited_requests_total",
    kind: Kind::Counter,
    help: "Requests rejected with 429 by the rate limiter.",
    labels: &[],
};

pub const RATE_LIMIT_FALLBACKS: MetricDef = MetricDef {
    name: "rate_limit_fallbacks_total",
    kind: Kind::Counter,
    help: "Rate-limit decisions this instance made alone because the shared limiter's Redis failed or was slow.",
    labels: &[],
};

pub const WRITE_BATCHES: MetricDef = MetricDef {
    name: "db_client_write_batches_total",
    kind: Kind::Counter,
    help: "Write transactions run by SQLite's group-commit writer (each commits a batch of writes).",
    labels: &[],
};

pub const WRITE_BATCH_WRITES: MetricDef = MetricDef {
    name: "db_client_write_batch_writes_total",
    kind: Kind::Counter,
    help: "Writes run inside group-commit batches; divided by db_client_write_batches_total, writes per commit.",
    labels: &[],
};

/// OpenTelemetry's resource as Prometheus exports it.
pub const TARGET_INFO: MetricDef = MetricDef {
    name: "target_info",
    kind: Kind::Gauge,
    help: "The process serving: service name, version and instance id.",
    labels: &["service_name", "service_version", "service_instance_id"],
};

/// From the `prometheus` crate's process collector (Linux).
pub const PROCESS_RESIDENT_MEMORY: MetricDef = MetricDef {
    name: "process_resident_memory_bytes",
    kind: Kind::Gauge,
    help: "Resident memory size in bytes.",
    labels: &[],
};

pub const PROCESS_CPU: MetricDef = MetricDef {
    name: "process_cpu_seconds_total",
    kind: Kind::Counter,
    help: "Total user and system CPU time spent in seconds.",
    labels: &[],
};

pub const PROCESS_OPEN_FDS: MetricDef = MetricDef {
    name: "process_open_fds",
    kind: Kind::Gauge,
    help: "Number of open file descriptors.",
    labels: &[],
};

pub const PROCESS_START_TIME: MetricDef = MetricDef {
    name: "process_start_time_seconds",
    kind: Kind::Gauge,
    help: "Start time of the process since unix epoch in seconds.",
    labels: &[],
};

/// Everything above, in the order the README lists it.
pub const CATALOGUE: &[MetricDef] = &[
    REQUEST_DURATION,
    ACTIVE_REQUESTS,
    SHED_REQUESTS,
    CACHE_REQUESTS,
    CACHE_REDIS_UP,
    CACHE_REDIS_LOOKUPS,
    CACHE_REDIS_ERRORS,
    DB_CONNECTIONS,
    DB_CONNECTION_MAX,
    WRITE_BATCHES,
    WRITE_BATCH_WRITES,
    RATE_LIMITED,
    RATE_LIMIT_FALLBACKS,
    PROCESS_CPU,
    PROCESS_RESIDENT_MEMORY,
    PROCESS_OPEN_FDS,
    PROCESS_START_TIME,
    TARGET_INFO,
];

/// The series names a metric shows as: a histogram's `_bucket`, `_sum` and `_count`.
pub fn series_names(def: &MetricDef) -> Vec<String> {
    match def.kind {
        Kind::Histogram => ["_bucket", "_sum", "_count"]
            .iter()
            .map(|suffix| format!("{}{suffix}", def.name))
            .collect(),
        Kind::Counter | Kind::Gauge => vec![def.name.to_owned()],
    }
}
