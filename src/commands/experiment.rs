//! One chaos experiment, end to end: `aimate chaos run FILE`, and each experiment of
//! `aimate drill`.
//!
//! ```text
//! keeper process ─ target (instances, HAProxy, proxy, tmpfs) ─ load at the file's rate
//!   ├─ stage starts ─▶ method: faults at their times, events on the load's clock
//!   └─ load ends ─▶ method stops ─ rollbacks ─ integrity check ─ shutdown
//! RunRecord (+ events, + write check) ─ grade: hypothesis per phase, lost writes
//! ```

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use aimate_chaos::experiment::{DatabaseKind, DockerTarget, Experiment, TargetKind};
use aimate_chaos::method::{self, Clock};
use aimate_chaos::target::Target;
use aimate_loadgen::plan::{LoadPlan, Stage};
use aimate_loadgen::scenarios::Mix;
use aimate_loadgen::{AbortGuard, Credentials, LoadOptions, ServerSeries};
use aimate_reports::expr::Metric;
use aimate_reports::record::{Alerting, Event, EventKind, RunRecord};
use aimate_reports::spec::SloSpec;
use anyhow::{Context, anyhow};

use aimate_live::PartFeed;

use super::alert_watch::AlertWatch;
use super::deployment::{Deployment, DeploymentAccess};
use super::live::LiveView;
use super::own_target::{OwnTarget, Shape, StoreShape};
use super::report::{print_verdicts, write_atomically, write_reports};

/// Size of the drill's tmpfs for disk steps: room for the seeded database and its WAL,
/// small enough to fill in a blink.
const VOLUME_MIB: u64 = 64;

/// The services experiments may run on.
#[derive(Debug, Clone, Default)]
pub struct Stores {
    /// PostgreSQL: a schema of the run's own for `database = "postgres"` experiments.
    pub postgres: Option<String>,
    /// `chaos run --database-url`: SQLite experiments run on it as it is.
    pub postgres_as_is: bool,
    /// Redis: a key prefix of the run's own for `redis = true` experiments.
    pub redis: Option<String>,
    /// How to reach a deployment, for `kind = "docker"` experiments.
    pub deployment: DeploymentAccess,
}

impl Stores {
    /// Why `experiment` cannot run with these stores, if it cannot.
    pub fn missing_for(&self, experiment: &Experiment) -> Option<&'static str> {
        if let TargetKind::Docker(spec) = &experiment.kind {
            return self.deployment.missing_for(spec);
        }
        if experiment.database == DatabaseKind::Postgres && self.postgres.is_none() {
            return Some("it runs on PostgreSQL: pass --database-url or set DATABASE_URL");
        }
        if experiment.redis && self.redis.is_none() {
            return Some("it needs a Redis: pass --redis-url or set AIMATE_REDIS_URL");
        }
        None
    }

    fn shape(&self, experiment: &Experiment) -> anyhow::Result<Shape> {
        if let Some(missing) = self.missing_for(experiment) {
            return Err(anyhow!("{}: {missing}", experiment.title));
        }
        let claims = experiment.database == DatabaseKind::Postgres || experiment.redis;
        Ok(Shape {
            instances: experiment.instances,
            database_url: self
                .postgres
                .clone()
                .filter(|_| self.postgres_as_is && !claims),
            volume_mib: experiment.needs_volume().then_some(VOLUME_MIB),
            proxy: experiment.needs_proxy(),
            store: claims.then(|| StoreShape {
                postgres: self
                    .postgres
                    .clone()
                    .filter(|_| experiment.database == DatabaseKind::Postgres),
                redis: self.redis.clone().filter(|_| experiment.redis),
                pool_max: FLEET_POOL_MAX,
                redis_proxy: experiment.redis,
            }),
        })
    }
}

/// Each instance's pool in experiments on PostgreSQL: the server's default.
const FLEET_POOL_MAX: u32 = 8;

pub struct ExperimentRun {
    pub record: RunRecord,
    /// Steps that could not be carried out, rollbacks that failed, a damaged database:
    /// the experiment did not test what it says.
    pub failures: Vec<String>,
}

/// What the hypothesis is graded with: the file's objectives (or slo.toml's `[phase]`)
/// per phase, and slo.toml's lost-write objective over the run.
pub fn experiment_spec(experiment: &Experiment, slo: &SloSpec) -> SloSpec {
    SloSpec {
        stages: Vec::new(),
        run: slo
            .run
            .iter()
            .filter(|o| o.metric == Metric::LostWrites)
            .cloned()
            .collect(),
        route: Vec::new(),
        phase: experiment
            .hypothesis
            .clone()
            .unwrap_or_else(|| slo.phase.clone()),
        // Experiments are graded per phase; the fleet objectives grade load runs.
        fleet: Vec::new(),
        memory_limit_bytes: slo.memory_limit_bytes,
    }
}

pub fn run(
    experiment: &Experiment,
    slo: &SloSpec,
    stores: &Stores,
    progress: bool,
    live: Option<PartFeed>,
) -> anyhow::Result<ExperimentRun> {
    match &experiment.kind {
        TargetKind::Own => run_own(experiment, slo, stores, progress, live),
        TargetKind::Docker(spec) => run_deployment(experiment, spec, slo, stores, progress, live),
    }
}

fn run_own(
    experiment: &Experiment,
    slo: &SloSpec,
    stores: &Stores,
    progress: bool,
    live: Option<PartFeed>,
) -> anyhow::Result<ExperimentRun> {
    let shape = stores.shape(experiment)?;
    super::runtime()?.block_on(async {
        let own = OwnTarget::start(shape, "chaos").await?;
        let target = &own.target;
        for note in &target.notes {
            eprintln!("aimate chaos: note: {note}");
        }
        if let Some(claimed) = own.claimed() {
            eprintln!("aimate chaos: the run's own {claimed} (removed afterwards)");
        }
        eprintln!(
            "aimate chaos: {} — {} instance(s), load at {} req/s on {}",
            experiment.title,
            target.instances.count().await,
            experiment.rate_text,
            target.url
        );
        let instances = own.instance_urls().await;
        let watch = own_alert_watch(slo, target, experiment.alerts.time_scale).await;
        let access = Access {
            credentials: Credentials::AdminToken(own.admin_token.clone()),
            series: ServerSeries::Instances(instances),
            watch,
            time_scale: experiment.alerts.time_scale,
        };
        let result = drive(experiment, target, access, progress, live).await;
        for problem in own.stop().await {
            eprintln!("aimate chaos: warning: {problem}");
        }
        let integrity = target.check_database().await;
        result.map(|(record, mut failures)| {
            if let Err(problem) = integrity {
                failures.push(problem);
            }
            ExperimentRun { record, failures }
        })
    })
}

/// An experiment on a deployment's containers: nothing is started or stopped but what
/// the method does; its Prometheus (if given) supplies the series and the alerts.
fn run_deployment(
    experiment: &Experiment,
    spec: &DockerTarget,
    slo: &SloSpec,
    stores: &Stores,
    progress: bool,
    live: Option<PartFeed>,
) -> anyhow::Result<ExperimentRun> {
    super::runtime()?.block_on(async {
        let deployment = Deployment::open(
            spec,
            experiment.instances,
            &experiment.method,
            &stores.deployment,
            stores.postgres.clone(),
        )
        .await?;
        let target = &deployment.target;
        eprintln!(
            "aimate chaos: {} — load at {} req/s on {}; the drill may touch:",
            experiment.title, experiment.rate_text, target.url
        );
        for touched in &target.touched {
            eprintln!("  {touched}");
        }
        let instances = super::own_target::instance_urls(target).await;
        let (watch, time_scale) = match &stores.deployment.prometheus {
            Some(url) => match AlertWatch::external(url).await {
                // The deployment's rules, as deployed: their durations are real ones.
                Ok(watch) => (Some(watch), 1.0),
                Err(error) => {
                    eprintln!("aimate chaos: warning: alerts are not watched: {error:#}");
                    (None, 1.0)
                }
            },
            None => (
                own_alert_watch(slo, target, experiment.alerts.time_scale).await,
                experiment.alerts.time_scale,
            ),
        };
        let access = Access {
            credentials: deployment.credentials.clone(),
            series: stores.deployment.series(instances),
            watch,
            time_scale,
        };
        let result = drive(experiment, target, access, progress, live).await;
        // Whatever a fault still holds is undone; the containers keep running.
        let mut leftovers = target.shutdown().await;
        result.map(|(record, mut failures)| {
            failures.append(&mut leftovers);
            ExperimentRun { record, failures }
        })
    })
}

/// A Prometheus of the run's own, with the rules scaled to the drill, scraping each
/// instance; `None` (said why) when it cannot run.
async fn own_alert_watch(slo: &SloSpec, target: &Target, scale: f64) -> Option<AlertWatch> {
    let instances: Vec<String> = target
        .instance_addrs()
        .await
        .iter()
        .map(ToString::to_string)
        .collect();
    match AlertWatch::start(slo, &instances, scale).await {
        Ok(Some(watch)) => Some(watch),
        Ok(None) => {
            eprintln!(
                "aimate chaos: note: prometheus is not installed: alerts are not watched and \
                 time(detect) is not graded (apt-get install -y prometheus)"
            );
            None
        }
        Err(error) => {
            eprintln!("aimate chaos: warning: alerts are not watched: {error:#}");
            None
        }
    }
}

/// How the load reaches the target and what watches it.
struct Access {
    credentials: Credentials,
    series: ServerSeries,
    watch: Option<AlertWatch>,
    /// The watched rules' durations relative to the guide's (1: as deployed).
    time_scale: f64,
}

async fn drive(
    experiment: &Experiment,
    target: &Arc<Target>,
    access: Access,
    progress: bool,
    live: Option<PartFeed>,
) -> anyhow::Result<(RunRecord, Vec<String>)> {
    let Access {
        credentials,
        series,
        watch,
        time_scale,
    } = access;
    let (stage_tx, mut stage_rx) = tokio::sync::mpsc::unbounded_channel();
    let load_stop = Arc::new(AtomicBool::new(false));
    let guard = experiment.safeguard.as_ref().map_or(
        AbortGuard {
            max_error_rate: 1.0,
            max_latency: None,
            for_seconds: u32::MAX,
        },
        |s| AbortGuard {
            max_error_rate: s.max_error_rate.unwrap_or(1.0),
            max_latency: s.max_latency,
            for_seconds: s.for_seconds,
        },
    );
    let options = LoadOptions {
        target: target.url.clone(),
        plan: LoadPlan {
            stages: vec![Stage {
                name: experiment.rate_text.clone(),
                rate_per_second: experiment.rate,
            }],
            warmup: experiment.warmup,
            duration: experiment.duration,
        },
        credentials,
        seed_invoices: 500,
        seed_jobs: 100,
        tenants: aimate_loadgen::Tenants::Count(1),
        max_users: 2000,
        // Faults make requests slow on purpose; enough users that one stuck on a starved
        // write does not push its neighbours' schedule back (that would grade the
        // generator's concurrency, not the server).
        latency_budget: std::time::Duration::from_secs(4),
        request_timeout: std::time::Duration::from_secs(10),
        guard,
        mix: Mix::standard(),
        progress,
        on_stage: Some(stage_tx),
        verify_writes: true,
        stop: Some(load_stop.clone()),
        server_series: series,
        live: live.clone(),
        segment: aimate_loadgen::segment::Segment::WHOLE,
        start_at: None,
        start_tolerance: std::time::Duration::from_millis(5),
    };
    let load = tokio::spawn(aimate_loadgen::run(options));
    let stop = Arc::new(AtomicBool::new(false));
    let keeper_lost = watch_keeper(target.keeper.clone(), stop.clone(), load_stop);
    // No stage at all means the load failed before it began (probe, seed): no method.
    let first_stage = stage_rx.recv().await;
    let alerts = first_stage.and_then(|stage| {
        watch
            .as_ref()
            .map(|watch| watch.poll(stage.run_start, stop.clone(), live.clone()))
    });
    let hook: Option<method::EventHook> = live.map(|feed| {
        Arc::new(move |event: &Event, span: Option<usize>| feed.event(event, span))
            as method::EventHook
    });
    let method = first_stage.map(|stage| {
        tokio::spawn(method::run(
            target.clone(),
            experiment.method.clone(),
            Clock {
                run_start: stage.run_start,
                steady_start: stage.steady_start,
            },
            stop.clone(),
            hook,
        ))
    });
    let record = load.await.map_err(|e| anyhow!("the load task failed: {e}"));
    // The load is over (or aborted): whatever is still injected ends now.
    stop.store(true, Ordering::SeqCst);
    let mut failures = Vec::new();
    let mut events: Vec<Event> = Vec::new();
    if let Some(method) = method {
        match method.await {
            Ok(outcome) => {
                events = outcome.events;
                failures.extend(outcome.failures);
            }
            Err(error) => failures.push(format!("the method task failed: {error}")),
        }
    }
    keeper_lost.abort();
    if let Ok(Some(lost)) = keeper_lost.await {
        failures.push(lost);
    }
    failures.extend(method::rollback(target, &experiment.rollbacks).await);
    let mut record = record??;
    record.events.extend(events);
    if let (Some(watch), Some(alerts)) = (watch, alerts) {
        record.events.extend(alerts.await.unwrap_or_default());
        record.alerting = Some(Alerting {
            time_scale,
            expected: experiment.alerts.expect.clone(),
        });
        watch.stop().await;
    }
    record.events.sort_by_key(|e| e.t_ms);
    if let Some(config) = record.run.config.as_object_mut() {
        config.insert(
            "experiment".into(),
            serde_json::json!({
                "title": experiment.title,
                "description": experiment.description,
                "instances": target.instances.count().await,
                "touched": target.touched,
                "notes": target.notes,
                "failures": failures,
            }),
        );
    }
    Ok((record, failures))
}

/// How often the experiment checks that its lease keeper still lives.
const KEEPER_CHECK: std::time::Duration = std::time::Duration::from_millis(250);

/// Watches the lease keeper: if it dies, nothing could undo a fault should this process
/// die too, so the experiment stops at once (the method ends its faults, the load stops,
/// the rollbacks run) and the run fails saying why. Resolves to that reason, if any.
fn watch_keeper(
    keeper: Arc<aimate_chaos::keeper::Keeper>,
    method_stop: Arc<AtomicBool>,
    load_stop: Arc<AtomicBool>,
) -> tokio::task::JoinHandle<Option<String>> {
    tokio::spawn(async move {
        loop {
            tokio::time::sleep(KEEPER_CHECK).await;
            if !keeper.is_alive() {
                method_stop.store(true, Ordering::SeqCst);
                load_stop.store(true, Ordering::SeqCst);
                let why =
                    "the lease keeper died: the experiment was stopped and its faults reverted";
                eprintln!("aimate chaos: {why}");
                return Some(why.to_owned());
            }
        }
    })
}

/// The experiment files of a directory, in name order.
pub fn experiment_files(dir: &Path) -> anyhow::Result<Vec<PathBuf>> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
        .with_context(|| format!("cannot read {}", dir.display()))?
        .filter_map(|entry| entry.ok().map(|e| e.path()))
        .filter(|path| path.extension().is_some_and(|e| e == "toml"))
        .collect();
    files.sort();
    Ok(files)
}

/// Runs `experiment`, writes `run.json` and the reports into `out_dir`, prints the
/// verdicts; returns the exit code (a step that could not be carried out makes it 3).
pub fn run_and_report(
    experiment: &Experiment,
    slo: &SloSpec,
    stores: &Stores,
    out_dir: &Path,
    summary: Option<&Path>,
    live: Option<&LiveView>,
) -> Result<u8, crate::Failure> {
    if let Some(missing) = stores.missing_for(experiment) {
        return Err(anyhow!("{}: {missing}", experiment.title).into());
    }
    let spec = experiment_spec(experiment, slo);
    let feed = live.map(|view| {
        view.part(
            &experiment.title,
            "experiment",
            experiment.warmup + experiment.duration + std::time::Duration::from_secs(1),
            spec.clone(),
        )
    });
    let result = report_run(
        experiment,
        slo,
        &spec,
        stores,
        out_dir,
        summary,
        feed.clone(),
    );
    if let Some(feed) = feed {
        match &result {
            Ok((report, _)) => {
                feed.finish(report, Some(out_dir), Some(out_dir.display().to_string()));
            }
            Err(failure) => feed.fail(&format!("{:#}", failure.error)),
        }
    }
    result.map(|(_, code)| code)
}

/// Runs `experiment` and writes its record and reports; returns the report and the
/// exit code.
fn report_run(
    experiment: &Experiment,
    slo: &SloSpec,
    spec: &SloSpec,
    stores: &Stores,
    out_dir: &Path,
    summary: Option<&Path>,
    live: Option<PartFeed>,
) -> Result<(aimate_reports::grade::Report, u8), crate::Failure> {
    let outcome = run(experiment, slo, stores, true, live).map_err(|error| {
        if error.is::<super::deployment::Refused>() {
            crate::Failure::from(error.context(experiment.title.clone()))
        } else {
            crate::Failure::ungradable(error)
        }
    })?;
    let record_path = out_dir.join("run.json");
    std::fs::create_dir_all(out_dir)
        .with_context(|| format!("cannot create {}", out_dir.display()))?;
    write_atomically(&record_path, |w| {
        serde_json::to_writer_pretty(&mut *w, &outcome.record).map_err(std::io::Error::other)
    })?;
    let (report, _) = write_reports(&outcome.record, spec, None, out_dir)?;
    for event in &outcome.record.events {
        if event.kind != EventKind::Stage {
            let span = event
                .end_ms
                .map(|end| format!("–{:.1}s", end as f64 / 1000.0))
                .unwrap_or_default();
            eprintln!(
                "  {:>6.1}s{span} {}: {}",
                event.t_ms as f64 / 1000.0,
                event.kind,
                event.detail
            );
        }
    }
    if let Some(writes) = &outcome.record.writes {
        eprintln!(
            "writes: {} acknowledged, {} read back, {} missing, {} unverified",
            writes.acknowledged, writes.checked, writes.missing, writes.unverified
        );
    }
    print_verdicts(&report);
    for failure in &outcome.failures {
        eprintln!("aimate chaos: not carried out: {failure}");
    }
    eprintln!("reports: {}", out_dir.display());
    if let Some(summary) = summary {
        let title = format!("chaos experiment {}", experiment.title);
        super::report::append_summary(summary, &title, &report, &outcome.record)?;
    }
    let code = if outcome.failures.is_empty() {
        report.exit_code()
    } else {
        crate::EXIT_UNGRADABLE.max(report.exit_code())
    };
    Ok((report, code))
}
