//! Prometheus metrics. Names follow the OpenTelemetry HTTP and DB semantic conventions in
//! Prometheus form, in base units (seconds, bytes). They are an API: dashboards and alert
//! rules depend on them, so every name, help text and label set comes from
//! [`crate::metric_catalogue`].

use crate::metric_catalogue::{
    ACTIVE_REQUESTS, CACHE_REDIS_ERRORS, CACHE_REDIS_LOOKUPS, CACHE_REDIS_UP, CACHE_REQUESTS,
    DB_CONNECTION_MAX, DB_CONNECTIONS, MetricDef, RATE_LIMIT_FALLBACKS, RATE_LIMITED,
    REQUEST_DURATION, SHED_REQUESTS, TARGET_INFO, WRITE_BATCH_WRITES, WRITE_BATCHES,
};
use prometheus::{
    Encoder, HistogramOpts, HistogramVec, IntCounter, IntCounterVec, IntGauge, IntGaugeVec, Opts,
    Registry, TextEncoder,
};

/// Latency buckets in seconds: fine below 10 ms where a cached read lands, and up to the
/// guide's 2 s target at 10k req/s and beyond.
pub const LATENCY_BUCKETS: &[f64] = &[
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.0, 5.0, 10.0,
];

pub struct Metrics {
    registry: Registry,
    pub request_duration: HistogramVec,
    pub active_requests: IntGauge,
    pub cache_requests: IntCounterVec,
    pub cache_redis_up: IntGauge,
    pub cache_redis_lookups: IntCounterVec,
    pub cache_redis_errors: IntCounter,
    pub db_connections: IntGaugeVec,
    pub db_connection_max: IntGauge,
    pub rate_limited: IntCounter,
    pub rate_limit_fallbacks: IntCounter,
    pub shed_requests: IntCounter,
    pub write_batches: IntCounter,
    pub write_batch_writes: IntCounter,
    /// This process's identity (`service_instance_id`, new at every start): a scraper
    /// tells a restart, or a balancer handing it several processes, from a change here.
    pub instance_id: String,
    /// Two scrapes at once must not both add the same catch-up to a counter.
    render_lock: std::sync::Mutex<()>,
}

/// What the database layer reports at each scrape.
#[derive(Debug, Clone, Copy, Default)]
pub struct DbSnapshot {
    pub open: u32,
    pub idle: u32,
    pub max: u32,
    /// Group-commit batches run so far, and the writes in them.
    pub write_batches: u64,
    pub write_batch_writes: u64,
}

impl Metrics {
    /// Fails only on an invalid or duplicate definition, which a unit test rules out.
    pub fn new() -> prometheus::Result<Self> {
        let registry = Registry::new();
        let opts = |def: &MetricDef| Opts::new(def.name, def.help);
        let request_duration = HistogramVec::new(
            HistogramOpts::new(REQUEST_DURATION.name, REQUEST_DURATION.help)
                .buckets(LATENCY_BUCKETS.to_vec()),
            REQUEST_DURATION.labels,
        );
        let active_requests = IntGauge::with_opts(opts(&ACTIVE_REQUESTS));
        let cache_requests = IntCounterVec::new(opts(&CACHE_REQUESTS), CACHE_REQUESTS.labels);
        let cache_redis_up = IntGauge::with_opts(opts(&CACHE_REDIS_UP));
        let cache_redis_lookups =
            IntCounterVec::new(opts(&CACHE_REDIS_LOOKUPS), CACHE_REDIS_LOOKUPS.labels);
        let cache_redis_errors = IntCounter::with_opts(opts(&CACHE_REDIS_ERRORS));
        let db_connections = IntGaugeVec::new(opts(&DB_CONNECTIONS), DB_CONNECTIONS.labels);
        let db_connection_max = IntGauge::with_opts(opts(&DB_CONNECTION_MAX));
        let rate_limited = IntCounter::with_opts(opts(&RATE_LIMITED));
        let rate_limit_fallbacks = IntCounter::with_opts(opts(&RATE_LIMIT_FALLBACKS));
        let shed_requests = IntCounter::with_opts(opts(&SHED_REQUESTS));
        let write_batches = IntCounter::with_opts(opts(&WRITE_BATCHES));
        let write_batch_writes = IntCounter::with_opts(opts(&WRITE_BATCH_WRITES));
        // OpenTelemetry's resource as Prometheus exports it: `target_info` with the
        // service's name, version and a per-process instance id.
        let target_info = IntGaugeVec::new(opts(&TARGET_INFO), TARGET_INFO.labels)?;
        let instance_id = uuid::Uuid::new_v4().to_string();
        target_info
            .with_label_values(&["aimate", env!("CARGO_PKG_VERSION"), &instance_id])
            .set(1);
        registry.register(Box::new(target_info))?;
        let metrics = Self {
            instance_id,
            write_batches: write_batches?,
            write_batch_writes: write_batch_writes?,
            render_lock: std::sync::Mutex::new(()),
            request_duration: request_duration?,
            active_requests: active_requests?,
            cache_requests: cache_requests?,
            cache_redis_up: cache_redis_up?,
            cache_redis_lookups: cache_redis_lookups?,
            cache_redis_errors: cache_redis_errors?,
            db_connections: db_connections?,
            db_connection_max: db_connection_max?,
            rate_limited: rate_limited?,
            rate_limit_fallbacks: rate_limit_fallbacks?,
            shed_requests: shed_requests?,
            registry,
        };
        metrics
            .registry
            .register(Box::new(metrics.request_duration.clone()))?;
        metrics
            .registry
            .register(Box::new(metrics.active_requests.clone()))?;
        metrics
            .registry
            .register(Box::new(metrics.cache_requests.clone()))?;
        metrics
            .registry
            .register(Box::new(metrics.db_connections.clone()))?;
        metrics
            .registry
            .register(Box::new(metrics.db_connection_max.clone()))?;
        metrics
            .registry
            .register(Box::new(metrics.rate_limited.clone()))?;
        metrics
            .registry
            .register(Box::new(metrics.rate_limit_fallbacks.clone()))?;
        metrics
            .registry
            .register(Box::new(metrics.shed_requests.clone()))?;
        metrics
            .registry
            .register(Box::new(metrics.write_batches.clone()))?;
        metrics
            .registry
            .register(Box::new(metrics.write_batch_writes.clone()))?;
        #[cfg(target_os = "linux")]
        metrics.registry.register(Box::new(
            prometheus::process_collector::ProcessCollector::for_self(),
        ))?;
        Ok(metrics)
    }

    /// Exports the Redis cache's series (only a server with a Redis cache has them, so
    /// that `cache_redis_up` 0 always means an outage).
    pub fn register_redis_cache(&self) -> prometheus::Result<()> {
        // Both results exist from the start (at 0), so a rate over them is never empty.
        for result in ["hit", "miss"] {
            self.cache_redis_lookups.with_label_values(&[result]);
        }
        self.registry
            .register(Box::new(self.cache_redis_up.clone()))?;
        self.registry
            .register(Box::new(self.cache_redis_lookups.clone()))?;
        self.registry
            .register(Box::new(self.cache_redis_errors.clone()))
    }

    /// Records the database's state, then renders everything in the text format.
    pub fn render(&self, db: DbSnapshot) -> Result<String, prometheus::Error> {
        let _one_at_a_time = self
            .render_lock
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        self.db_connections
            .with_label_values(&["idle"])
            .set(i64::from(db.idle));
        self.db_connections
            .with_label_values(&["used"])
            .set(i64::from(db.open.saturating_sub(db.idle)));
        self.db_connection_max.set(i64::from(db.max));
        // The writer counts; the counters catch up to its totals (they only grow).
        let catch_up = |counter: &IntCounter, total: u64| {
            counter.inc_by(total.saturating_sub(counter.get()));
        };
        catch_up(&self.write_batches, db.write_batches);
        catch_up(&self.write_batch_writes, db.write_batch_writes);
        let mut buffer = Vec::new();
        TextEncoder::new().encode(&self.registry.gather(), &mut buffer)?;
        String::from_utf8(buffer).map_err(|e| prometheus::Error::Msg(e.to_string()))
    }
}

#[cfg(test)]
mod tests {
    use super::Metrics;

    /// Metrics with one request and one cache lookup recorded, so every series shows.
    fn with_traffic() -> Metrics {
        let metrics = Metrics::new().unwrap();
        metrics
            .request_duration
            .with_label_values(&["GET", "/health", "200"])
            .observe(0.001);
        metrics
            .cache_requests
            .with_label_values(&["dashboard", "hit"])
            .inc();
        metrics.register_redis_cache().unwrap();
        metrics
            .cache_redis_lookups
            .with_label_values(&["hit"])
            .inc();
        metrics
    }

    #[test]
    fn renders_every_documented_name() {
        let metrics = with_traffic();
        let text = metrics
            .render(super::DbSnapshot {
                open: 3,
                idle: 1,
                max: 8,
                write_batches: 2,
                write_batch_writes: 5,
            })
            .unwrap();
        for name in [
            "http_server_request_duration_seconds_bucket",
            "http_server_active_requests",
            "cache_requests_total",
            "db_client_connection_count{state=\"used\"} 2",
            "db_client_connection_max 8",
            "rate_limited_requests_total",
            "http_server_shed_requests_total",
            "process_resident_memory_bytes",
            "db_client_write_batches_total 2",
            "db_client_write_batch_writes_total 5",
        ] {
            assert!(text.contains(name), "missing {name} in\n{text}");
        }
        let identity = format!(
            "service_instance_id=\"{}\",service_name=\"aimate\"",
            metrics.instance_id
        );
        assert!(text.contains(&identity), "missing {identity} in\n{text}");
    }

    /// The catalogue the dashboards are generated from is what the page shows.
    #[test]
    fn every_catalogue_metric_is_exported_with_its_type() {
        let metrics = with_traffic();
        let text = metrics.render(super::DbSnapshot::default()).unwrap();
        for def in crate::metric_catalogue::CATALOGUE {
            let kind = match def.kind {
                crate::metric_catalogue::Kind::Counter => "counter",
                crate::metric_catalogue::Kind::Gauge => "gauge",
                crate::metric_catalogue::Kind::Histogram => "histogram",
            };
            let type_line = format!("# TYPE {} {kind}", def.name);
            assert!(
                text.contains(&type_line),
                "missing `{type_line}` in\n{text}"
            );
            for series in crate::metric_catalogue::series_names(def) {
                assert!(
                    text.lines().any(|l| l.starts_with(&series)),
                    "no {series} series"
                );
            }
        }
    }

    #[test]
    fn each_process_start_has_its_own_instance_id() {
        let (a, b) = (Metrics::new().unwrap(), Metrics::new().unwrap());
        assert_ne!(a.instance_id, b.instance_id);
    }
}
