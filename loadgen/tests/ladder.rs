//! Short ladders against the real server on an ephemeral port. goose keeps global state
//! (its kill switch), so these tests take turns.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::net::SocketAddr;
use std::time::Duration;

use aimate_loadgen::api::ApiError;
use aimate_loadgen::plan::LoadPlan;
use aimate_loadgen::scenarios::{Action, Mix};
use aimate_loadgen::{AbortGuard, Credentials, LoadError, LoadOptions, run};
use aimate_reports::RunRecord;
use aimate_server::ServerConfig;
use tokio::sync::Mutex;

static ONE_AT_A_TIME: Mutex<()> = Mutex::const_new(());
const ADMIN: &str = "ladder-admin";

async fn server(
    tweak: impl FnOnce(&mut ServerConfig),
) -> (aimate_server::Running, tempfile::TempDir) {
    let dir = tempfile::tempdir().unwrap();
    let mut config = ServerConfig::with_data_dir(dir.path().join("data"));
    config.bind = Some("127.0.0.1:0".parse().unwrap());
    config.log_dir = dir.path().join("logs");
    config.database_url = None;
    config.admin_token = Some(ADMIN.into());
    config.rate_limit_per_second = 1_000_000;
    config.rate_limit_burst = 1_000_000;
    tweak(&mut config);
    (aimate_server::spawn(config).await.unwrap(), dir)
}

fn options(addr: SocketAddr, stages: &str, duration: &str) -> LoadOptions {
    LoadOptions {
        target: format!("http://{addr}"),
        plan: LoadPlan::parse(stages, "1s", duration).unwrap(),
        credentials: Credentials::AdminToken(ADMIN.into()),
        seed_invoices: 100,
        seed_jobs: 10,
        tenants: aimate_loadgen::Tenants::Count(1),
        max_users: 500,
        latency_budget: Duration::from_millis(100),
        request_timeout: Duration::from_secs(5),
        guard: AbortGuard {
            max_error_rate: 0.05,
            max_latency: None,
            for_seconds: 10,
        },
        mix: Mix::standard(),
        progress: false,
        on_stage: None,
        verify_writes: true,
        stop: None,
        server_series: aimate_loadgen::ServerSeries::Target,
        live: None,
        segment: aimate_loadgen::segment::Segment::WHOLE,
        start_at: None,
        start_tolerance: std::time::Duration::from_millis(5),
    }
}

fn total(record: &RunRecord, stage: usize) -> (u64, u64) {
    let stage = &record.stages[stage];
    let histogram: u64 = stage.routes.values().map(|r| r.latency_us.count()).sum();
    let outcomes: u64 = stage
        .routes
        .values()
        .flat_map(|r| r.outcomes.values())
        .sum();
    (histogram, outcomes)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ladder_hits_its_rates_and_counts_every_request() {
    let _turn = ONE_AT_A_TIME.lock().await;
    let (srv, _dir) = server(|_| {}).await;
    let record = run(options(srv.addr, "100,1k", "3s")).await.unwrap();
    assert_eq!(record.stages.len(), 2);
    for (stage, target) in record.stages.iter().zip([100.0, 1000.0]) {
        let share = stage.achieved_rps / target;
        assert!(
            (0.99..=1.01).contains(&share),
            "stage {}: {} req/s",
            stage.name,
            stage.achieved_rps
        );
        assert!(stage.validity.valid, "{:?}", stage.validity);
        assert!(
            stage.routes.len() >= 5,
            "the mix reaches most routes: {:?}",
            stage.routes.keys()
        );
        // Corrected latency is never below the service time.
        for route in stage.routes.values() {
            assert!(route.latency_us.quantile_micros(0.5) >= route.service_us.quantile_micros(0.5));
        }
    }
    for index in 0..2 {
        let (histogram, outcomes) = total(&record, index);
        assert_eq!(
            histogram, outcomes,
            "every counted request is in the histograms"
        );
        let steady_points: u64 = record.stages[index]
            .timeline
            .iter()
            .filter(|p| p.in_steady)
            .map(|p| p.sent)
            .sum();
        assert_eq!(steady_points, histogram, "timeline and histograms agree");
    }
    assert!(record.server.len() >= 5, "server scraped every second");
    assert!(
        record
            .server
            .iter()
            .any(|s| s.cache_hits_total.unwrap_or(0.0) > 0.0)
    );
    assert!(record.aborted.is_none());

    // The JSON round trip is lossless, and two machines' records merge exactly.
    let json = serde_json::to_string(&record).unwrap();
    let back: RunRecord = serde_json::from_str(&json).unwrap();
    let merged = RunRecord::merge(&[record.clone(), back]).unwrap();
    for index in 0..2 {
        let (histogram, _) = total(&record, index);
        assert_eq!(total(&merged, index), (2 * histogram, 2 * histogram));
        let (one, both) = (&record.stages[index], &merged.stages[index]);
        assert_eq!(both.achieved_rps, 2.0 * one.achieved_rps);
        let p99 = |s: &aimate_reports::record::StageRecord| {
            s.all_routes_latency().unwrap().quantile_micros(0.99)
        };
        assert_eq!(
            p99(both),
            p99(one),
            "percentiles of a merge of identical runs do not move"
        );
    }
    assert_eq!(merged.run.generators.len(), 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn errors_are_counted_by_kind_and_the_guard_aborts() {
    let _turn = ONE_AT_A_TIME.lock().await;
    // A server that allows 20 req/s per key: most of a 200 req/s run gets 429.
    let (srv, _dir) = server(|c| {
        c.rate_limit_per_second = 20;
        c.rate_limit_burst = 20;
    })
    .await;
    let mut opts = options(srv.addr, "200,1k", "6s");
    opts.seed_invoices = 0;
    opts.seed_jobs = 0;
    opts.mix = Mix::new(&[(Action::Dashboard, 1)]).unwrap();
    opts.guard = AbortGuard {
        max_error_rate: 0.05,
        max_latency: None,
        for_seconds: 2,
    };
    let started = std::time::Instant::now();
    let record = run(opts).await.unwrap();
    let abort = record.aborted.as_ref().expect("the guard aborts");
    assert!(abort.reason.contains("error rate"), "{}", abort.reason);
    assert_eq!(record.stages.len(), 1, "no stage starts after an abort");
    assert!(
        started.elapsed() < Duration::from_secs(12),
        "stopped early: {:?}",
        started.elapsed()
    );
    let outcomes: std::collections::BTreeMap<String, u64> = record.stages[0]
        .timeline
        .iter()
        .flat_map(|p| p.outcomes.iter().map(|(k, v)| (k.clone(), *v)))
        .fold(Default::default(), |mut acc, (k, v)| {
            *acc.entry(k).or_default() += v;
            acc
        });
    assert!(
        outcomes.get("429").copied().unwrap_or(0) > outcomes.get("200").copied().unwrap_or(0),
        "{outcomes:?}"
    );
    assert!(
        record
            .events
            .iter()
            .any(|e| e.kind == aimate_reports::record::EventKind::Abort)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_targets_and_keys_are_clear_errors() {
    let _turn = ONE_AT_A_TIME.lock().await;
    // Nothing listens on this port.
    let closed = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap();
    let error = run(options(closed, "100", "1s")).await.unwrap_err();
    assert!(
        matches!(error, LoadError::Api(ApiError::Unreachable { .. })),
        "{error}"
    );

    let (srv, _dir) = server(|_| {}).await;
    let mut opts = options(srv.addr, "100", "1s");
    opts.credentials = Credentials::ApiKey("amk_wrong".into());
    let error = run(opts).await.unwrap_err();
    assert!(
        matches!(error, LoadError::Api(ApiError::BadApiKey)),
        "{error}"
    );
    let mut opts = options(srv.addr, "100", "1s");
    opts.credentials = Credentials::AdminToken("wrong".into());
    let error = run(opts).await.unwrap_err();
    assert!(
        matches!(error, LoadError::Api(ApiError::BadAdminToken(401))),
        "{error}"
    );

    // An HTTP server that is not AI Mate.
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let other = listener.local_addr().unwrap();
    tokio::spawn(async move {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        while let Ok((mut socket, _)) = listener.accept().await {
            let mut buffer = [0u8; 1024];
            let _ = socket.read(&mut buffer).await;
            let _ = socket
                .write_all(b"HTTP/1.1 200 OK\r\ncontent-length: 5\r\n\r\nhello")
                .await;
        }
    });
    let error = run(options(other, "100", "1s")).await.unwrap_err();
    assert!(
        matches!(error, LoadError::Api(ApiError::NotAimate { .. })),
        "{error}"
    );
}
