//! A whole run: check the target, get a key, seed, then each stage of the ladder on
//! goose while a collector files every request and a scraper samples the server.
//!
//! ```text
//! probe ─ key ─ seed ─┬─ stage 1 ─ stage 2 ─ … (goose users → records channel)
//!                     ├─ collector task (histograms, abort guard)
//!                     └─ scraper task (each instance's metrics every second,
//!                                      or Prometheus read after the run)
//!                                   ─▶ RunRecord
//! ```

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant, SystemTime};

use aimate_reports::record::{
    Abort, Event, EventKind, GeneratorInfo, RunMeta, RunRecord, SegmentInfo,
};
use aimate_reports::{LatencyHistogram, SCHEMA_VERSION};
use tokio::sync::mpsc;

use crate::api::{Api, ApiError};
use crate::collect::{Collector, RequestRecord, StageWindow};
use crate::guard::{AbortGuard, Guard, Tripped};
use crate::ledger::Ledger;
use crate::live::{LiveTicker, SamplesSoFar};
use crate::plan::LoadPlan;
use crate::procstat;
use crate::progress::Progress;
use crate::runner::Tenant;
use crate::runner::{StageContext, StageError, run_stage};
use crate::scenarios::Mix;
use crate::schedule::Schedule;
use crate::scraper::ServerSeries;
use crate::segment::Segment;
use crate::tenants::{self, Credentials, Prepared, Seed, TenantError, Tenants};

/// A stage's clock, for whoever must act inside its windows (a chaos method).
#[derive(Debug, Clone, Copy)]
pub struct StageClock {
    pub index: usize,
    pub run_start: Instant,
    pub steady_start: Instant,
    pub steady_end: Instant,
}

#[derive(Debug, Clone)]
pub struct LoadOptions {
    pub target: String,
    pub plan: LoadPlan,
    pub credentials: Credentials,
    pub seed_invoices: u64,
    pub seed_jobs: u64,
    /// Most goose users per stage (each holds one request in flight).
    pub max_users: usize,
    /// Latency the user count is sized for: rate × this many requests can be in flight.
    pub latency_budget: Duration,
    pub request_timeout: Duration,
    pub guard: AbortGuard,
    pub mix: Mix,
    /// Draw the live status line (only ever drawn on a terminal).
    pub progress: bool,
    /// Told when each stage starts, before its first request.
    pub on_stage: Option<mpsc::UnboundedSender<StageClock>>,
    /// Read back every acknowledged write after the run (`RunRecord::writes`).
    pub verify_writes: bool,
    /// Set from outside to stop the run early (users stop sending; the record keeps
    /// what was measured). `None`: only the abort guard stops it.
    pub stop: Option<Arc<AtomicBool>>,
    /// Where the server-side series come from.
    pub server_series: ServerSeries,
    /// Tenants to create, seed and drive, each at an equal share of every stage's rate
    /// (a SaaS of many small businesses). More than 1, or `Auto`, needs an admin token;
    /// prepared keys are driven as they are (one share each).
    pub tenants: Tenants,
    /// A live view's feed for this run: its seconds, scrapes and verdicts so far.
    pub live: Option<aimate_live::PartFeed>,
    /// Which of the plan's send slots this generator sends ([`Segment::WHOLE`]: all).
    pub segment: Segment,
    /// Start the schedule at this instant (every segment of a distributed run the
    /// same): every stage's window then follows from it and the plan alone.
    pub start_at: Option<SystemTime>,
    /// With `start_at`: how late a stage's first send may leave before the stage is
    /// INVALID (the segments would not have sent together).
    pub start_tolerance: Duration,
}

#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    #[error(
        "--start-at {at} passed {late:.1} s before this generator was ready to send (seeding took longer?): give a later instant"
    )]
    StartPassed { at: String, late: f64 },
    /// The tenants could not be made, seeded or read (an API refusal is [`Self::Api`]).
    #[error(transparent)]
    Tenant(TenantError),
    #[error(transparent)]
    Api(#[from] ApiError),
    #[error(transparent)]
    Stage(#[from] StageError),
}

impl From<TenantError> for LoadError {
    /// A refused key or token stays an API error: callers tell those apart (exit 2).
    fn from(error: TenantError) -> Self {
        match error {
            TenantError::Api(api) => Self::Api(api),
            other => Self::Tenant(other),
        }
    }
}

fn rfc3339(at: SystemTime) -> String {
    humantime::format_rfc3339_millis(at).to_string()
}

fn millis(duration: Duration) -> u64 {
    u64::try_from(duration.as_millis()).unwrap_or(u64::MAX)
}

/// What the collector task receives.
pub enum Message {
    /// A stage begins; its requests carry the index it gets.
    Stage(StageWindow),
    Request(RequestRecord),
}

/// How often the collector judges the seconds whose grace is over when no record
/// arrives (a silent server must still be judged).
const GUARD_TICK: Duration = Duration::from_millis(250);

/// Files records as they arrive, keeps the status line, and stops the run when the
/// abort guard trips.
async fn collect(
    mut messages: mpsc::UnboundedReceiver<Message>,
    mut collector: Collector,
    rules: AbortGuard,
    run_start: Instant,
    stop: Arc<AtomicBool>,
    progress: Arc<Progress>,
    mut live: Option<LiveTicker>,
) -> (Collector, Option<Abort>) {
    let mut guard = Guard::new(rules);
    let mut abort = None;
    let mut tick = tokio::time::interval(GUARD_TICK);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    // The status line shows answers by the second they arrived in.
    let (mut shown_second, mut answered, mut errors_so_far) = (0_u64, 0_u64, 0_u64);
    let (mut stage_name, mut stage_rate) = (String::new(), 0.0);
    let mut answered_latency = LatencyHistogram::new();
    loop {
        let message = tokio::select! {
            message = messages.recv() => match message {
                Some(message) => message,
                None => break,
            },
            _ = tick.tick() => {
                if let Some(live) = &mut live {
                    live.tick(&mut collector, run_start.elapsed());
                }
                if let Some(tripped) = guard.close_until(run_start.elapsed()) {
                    abort.get_or_insert_with(|| trip(&tripped, &stop));
                }
                // Stopped from outside (`LoadOptions::stop`): end the stage now.
                if stop.load(Ordering::SeqCst) && abort.is_none() {
                    let stopped = Tripped {
                        second: run_start.elapsed().as_secs(),
                        reason: "stopped by the caller".to_owned(),
                    };
                    abort = Some(trip(&stopped, &stop));
                }
                continue;
            }
        };
        let record = match message {
            Message::Stage(window) => {
                if let Some(live) = &live {
                    live.stage(collector.stage_count(), &window);
                }
                (stage_name, stage_rate) = (window.name.clone(), window.target_rps);
                guard.add_stage(window.clone());
                collector.add_stage(window);
                continue;
            }
            Message::Request(record) => record,
        };
        if record.finished.as_secs() != shown_second {
            progress.second(
                &stage_name,
                stage_rate,
                answered,
                &answered_latency,
                errors_so_far,
            );
            (shown_second, answered) = (record.finished.as_secs(), 0);
            answered_latency = LatencyHistogram::new();
        }
        answered += 1;
        errors_so_far += u64::from(record.outcome.is_error());
        answered_latency.record(
            u64::try_from(record.finished.saturating_sub(record.intended).as_micros())
                .unwrap_or(u64::MAX),
        );
        guard.record(&record);
        collector.push(record);
    }
    if let Some(live) = &mut live {
        live.flush(&mut collector, run_start.elapsed());
    }
    (collector, abort)
}

fn trip(tripped: &Tripped, stop: &AtomicBool) -> Abort {
    stop.store(true, Ordering::SeqCst);
    goose::trigger_killswitch(&tripped.reason);
    Abort {
        t_ms: tripped.second * 1000,
        reason: tripped.reason.clone(),
    }
}

/// The tenants to drive, seeded, with the invoice ids each reads: made now with the
/// admin token, the one key given, or keys prepared beforehand (see [`crate::tenants`]).
async fn tenants_for_run(api: &Api, options: &LoadOptions) -> Result<Prepared, LoadError> {
    let seed = Seed {
        invoices: options.seed_invoices,
        jobs: options.seed_jobs,
    };
    let prepared = match &options.credentials {
        Credentials::ApiKey(_) if options.tenants.needs_admin() => {
            return Err(TenantError::NeedsAdmin(options.tenants.to_string()).into());
        }
        Credentials::AdminToken(token) => {
            tenants::create_and_seed(api, token, options.tenants, &options.plan, seed).await?
        }
        Credentials::ApiKey(key) => {
            let limit = api.advertised_limit(key).await?;
            // The segments of a run share this tenant: only segment 0 seeds it.
            let deadline = options
                .start_at
                .unwrap_or_else(|| SystemTime::now() + SEED_PATIENCE);
            let seeder = options.segment.index == 0;
            tenants::seed_once(api, key, seed, seeder, deadline).await?;
            Prepared {
                keys: vec![key.clone()],
                limit,
                seed_per_tenant: seed,
            }
        }
        Credentials::Prepared(keys) => {
            let first = keys.first().ok_or(ApiError::BadApiKey)?;
            let limit = api.advertised_limit(first).await?;
            for key in keys {
                api.check_key(key).await?;
            }
            Prepared {
                keys: keys.clone(),
                limit,
                seed_per_tenant: Seed {
                    invoices: 0,
                    jobs: 0,
                },
            }
        }
    };
    Ok(prepared)
}

/// Without a start instant, how long a segment waits for segment 0 to seed the tenant.
const SEED_PATIENCE: Duration = Duration::from_secs(120);

/// Runs the plan against the target and returns what it measured.
pub async fn run(options: LoadOptions) -> Result<RunRecord, LoadError> {
    let api = Api::new(&options.target)?;
    api.probe().await?;
    let prepared = tenants_for_run(&api, &options).await?;
    let (keys, target_limit) = (&prepared.keys, &prepared.limit);
    if options.tenants == Tenants::Auto {
        eprintln!(
            "aimate load: --tenants auto: {} tenant(s){}",
            keys.len(),
            target_limit.as_ref().map_or_else(
                || " (the target advertises no rate limit)".to_owned(),
                |l| format!(" for the target's {}", l.describe())
            )
        );
    }
    let share = match options.tenants {
        Tenants::Auto => keys.len().max(1) as u64,
        Tenants::Count(_) => 1,
    };
    let read_ids = tenants::read_ids_per_tenant(share);
    let mut tenants = Vec::with_capacity(keys.len());
    for key in keys {
        let invoice_ids = api.invoice_ids(key, read_ids).await?;
        let mut authorization = reqwest::header::HeaderValue::from_str(&format!("Bearer {key}"))
            .map_err(|_| ApiError::BadApiKey)?;
        // Kept out of any debug output of the request (it is the tenant's secret).
        authorization.set_sensitive(true);
        tenants.push(Tenant {
            authorization,
            invoice_ids,
        });
    }
    let tenants: Arc<[Tenant]> = tenants.into();
    let pacer = crate::pacer::Pacer::start().map_err(StageError::Pacer)?;
    let http_sender = crate::sender::Sender::new(&options.target, options.request_timeout)
        .map_err(StageError::from)?;
    // The run's clock: now, or the start instant every segment shares.
    let (started_at, run_start) = match options.start_at {
        None => (SystemTime::now(), Instant::now()),
        Some(at) => shared_clock(&options, at)?,
    };
    let planned = options.start_at.map(|_| planned_windows(&options));
    let cpu_at_start = procstat::cpu_time();
    let plan = &options.plan;

    let stop = options.stop.clone().unwrap_or_default();
    let (sender, receiver) = mpsc::unbounded_channel();
    let progress = Arc::new(Progress::new(options.progress));
    let mut collector = Collector::new(Vec::new());
    if options.start_at.is_some() {
        collector.judge_start(options.start_tolerance);
    }
    let samples_so_far = SamplesSoFar::default();
    let live = options.live.clone().map(|feed| {
        LiveTicker::new(
            feed,
            &options.target,
            options.server_series.source(),
            samples_so_far.clone(),
            &mut collector,
        )
    });
    let collector = tokio::spawn(collect(
        receiver,
        collector,
        options.guard,
        run_start,
        stop.clone(),
        progress.clone(),
        live,
    ));
    let scraping = Arc::new(AtomicBool::new(true));
    let scraper = tokio::spawn(crate::scraper::scrape(
        options.server_series.clone(),
        api.clone(),
        run_start,
        scraping.clone(),
        options.live.clone().map(|feed| (feed, samples_so_far)),
    ));

    let mut events = Vec::new();
    let mut cpu_share = Vec::new();
    let ledger = Ledger::default();
    for (index, stage) in plan.stages.iter().enumerate() {
        if stop.load(Ordering::SeqCst) {
            break;
        }
        let share = options.segment.share(stage.rate_per_second);
        let users = Schedule::users_for(share, options.latency_budget, options.max_users);
        let window = match &planned {
            // A shared start: the window the plan gives, however the last stage ended.
            Some(windows) => windows[index].clone(),
            None => {
                let start = run_start.elapsed() + startup(&options, stage.rate_per_second);
                stage_window(&options, index, start)
            }
        };
        let (stage_start, stage_end) = (run_start + window.start, run_start + window.steady_end);
        events.push(Event {
            t_ms: millis(window.start),
            kind: EventKind::Stage,
            detail: format!("{} req/s with {users} users", window.target_rps),
            end_ms: Some(millis(window.steady_end)),
        });
        progress.println(&format!(
            "aimate load: stage {} ({} req/s, {users} users): warm-up {:?}, steady {:?}",
            window.name, window.target_rps, plan.warmup, plan.duration
        ));
        let _ = sender.send(Message::Stage(window.clone()));
        if let Some(on_stage) = &options.on_stage {
            let _ = on_stage.send(StageClock {
                index,
                run_start,
                steady_start: run_start + window.steady_start,
                steady_end: run_start + window.steady_end,
            });
        }
        let cpu_before = procstat::cpu_time();
        let wall_before = Instant::now();
        let ctx = StageContext {
            stage: index,
            run_start,
            stage_start,
            stage_end,
            schedule: Schedule {
                rate_per_second: window.plan_rps,
                users,
                segment: options.segment,
            },
            mix: options.mix.clone(),
            sender: http_sender.clone(),
            tenants: tenants.clone(),
            pacer: pacer.clone(),
            slack: crate::runner::pacing_slack(window.target_rps),
            records: sender.clone(),
            ledger: ledger.clone(),
            stop: stop.clone(),
        };
        let run_time =
            stage_end.saturating_duration_since(Instant::now()) + Duration::from_millis(500);
        run_stage(ctx, &options.target, run_time, options.request_timeout).await?;
        cpu_share.push(procstat::utilization(
            cpu_before,
            procstat::cpu_time(),
            wall_before.elapsed(),
        ));
    }
    drop(sender);
    let (collector, aborted) = match collector.await {
        Ok(result) => result,
        Err(error) => {
            return Err(StageError::Goose(format!("collector task failed: {error}")).into());
        }
    };
    progress.finish();
    scraping.store(false, Ordering::SeqCst);
    let mut server = scraper.await.unwrap_or_default();
    if let ServerSeries::Prometheus { url, selector } = &options.server_series {
        match from_prometheus(&api, url, selector, started_at, &progress).await {
            Ok(samples) => server = samples,
            Err(error) => {
                progress.println(&format!("aimate load: warning: {error}"));
                events.push(Event {
                    t_ms: millis(run_start.elapsed()),
                    kind: EventKind::ServerSeries,
                    detail: error.to_string(),
                    end_ms: None,
                });
            }
        }
    }

    let wall = run_start.elapsed();
    // The wall clock against the monotonic one since the start: a step in between
    // misplaces this generator's sends on a shared timeline.
    let clock_drift = SystemTime::now()
        .duration_since(started_at)
        .map_or(f64::INFINITY, |d| {
            (d.as_secs_f64() - wall.as_secs_f64()).abs()
        });
    let first_send_late = collector
        .first_send_late()
        .into_iter()
        .map(|late| late.map(|d| d.as_secs_f64() * 1000.0))
        .collect();
    let cpu_seconds = match (cpu_at_start, procstat::cpu_time()) {
        (Some(before), Some(after)) => after.saturating_sub(before).as_secs_f64(),
        _ => 0.0,
    };
    if let Some(abort) = &aborted {
        let event = Event {
            t_ms: abort.t_ms,
            kind: EventKind::Abort,
            detail: abort.reason.clone(),
            end_ms: None,
        };
        if let Some(live) = &options.live {
            live.event(&event, None);
        }
        events.push(event);
    }
    let writes = if options.verify_writes {
        progress.println(&format!(
            "aimate load: reading back {} acknowledged writes",
            ledger.len()
        ));
        Some(ledger.verify(&api, keys, 32).await)
    } else {
        None
    };
    Ok(RunRecord {
        writes,
        alerting: None,
        schema_version: SCHEMA_VERSION,
        run: RunMeta {
            target: options.target.clone(),
            started_at: rfc3339(started_at),
            finished_at: rfc3339(SystemTime::now()),
            generators: vec![GeneratorInfo {
                host: hostname(),
                cpu_seconds,
                peak_rss_bytes: procstat::peak_rss_bytes().unwrap_or(0),
                cpu_utilization: cpu_seconds
                    / (wall.as_secs_f64() * procstat::cores() as f64).max(1e-9),
            }],
            config: serde_json::json!({
                "stages": plan.stages.iter().map(|s| s.name.clone()).collect::<Vec<_>>(),
                "warmup_s": plan.warmup.as_secs_f64(),
                "duration_s": plan.duration.as_secs_f64(),
                "max_users": options.max_users,
                "latency_budget_ms": options.latency_budget.as_millis() as u64,
                "request_timeout_s": options.request_timeout.as_secs_f64(),
                "seed_invoices": options.seed_invoices,
                "seed_jobs": options.seed_jobs,
                "tenants": keys.len(),
                "tenants_auto": options.tenants == Tenants::Auto,
                "seed_per_tenant": {
                    "invoices": prepared.seed_per_tenant.invoices,
                    "jobs": prepared.seed_per_tenant.jobs,
                },
                "tenants_prepared": matches!(options.credentials, Credentials::Prepared(_)),
                "target_rate_limit": target_limit,
                "abort_error_rate": options.guard.max_error_rate,
                "abort_after_s": options.guard.for_seconds,
            }),
            segment: (!options.segment.is_whole() || options.start_at.is_some()).then(|| {
                SegmentInfo {
                    index: options.segment.index,
                    count: options.segment.count,
                    start_at: options.start_at.map(rfc3339),
                    plan: plan_text(plan),
                    first_send_late_ms: first_send_late,
                    tolerance_ms: options.start_tolerance.as_secs_f64() * 1000.0,
                    clock_drift_ms: clock_drift * 1000.0,
                }
            }),
        },
        stages: collector.finish(&cpu_share),
        server,
        server_source: options.server_series.source(),
        events,
        aborted,
    })
}

/// The run clock of a shared start `at`: the instant, on the monotonic clock. Refused
/// when the first send's planned instant has already passed (a schedule whose start
/// has passed would send its missed slots in one burst).
fn shared_clock(options: &LoadOptions, at: SystemTime) -> Result<(SystemTime, Instant), LoadError> {
    let first = planned_windows(options)
        .first()
        .map_or(Duration::ZERO, |w| w.start);
    let (now, now_instant) = (SystemTime::now(), Instant::now());
    if let Ok(late) = now.duration_since(at + first) {
        return Err(LoadError::StartPassed {
            at: rfc3339(at),
            late: late.as_secs_f64(),
        });
    }
    let run_start = match at.duration_since(now) {
        Ok(ahead) => now_instant + ahead,
        Err(passed) => now_instant
            .checked_sub(passed.duration())
            .unwrap_or(now_instant),
    };
    eprintln!(
        "aimate load: segment {} waits for its start at {} (first send in {:.1} s)",
        options.segment,
        rfc3339(at),
        (at + first)
            .duration_since(now)
            .unwrap_or_default()
            .as_secs_f64()
    );
    Ok((at, run_start))
}

/// The plan as segments compare it: rates, warm-up, steady window.
pub fn plan_text(plan: &LoadPlan) -> String {
    let rates: Vec<String> = plan
        .stages
        .iter()
        .map(|s| format!("{}", s.rate_per_second))
        .collect();
    format!(
        "{}; {}; {}",
        rates.join(","),
        humantime::format_duration(plan.warmup),
        humantime::format_duration(plan.duration)
    )
}

/// Time for goose to build the users' HTTP clients before a stage's first slot: sized
/// for the whole plan's users, so that every segment of a distributed run plans the
/// same windows as one generator would.
fn startup(options: &LoadOptions, plan_rps: f64) -> Duration {
    let users = Schedule::users_for(plan_rps, options.latency_budget, options.max_users);
    Duration::from_millis(500) + Duration::from_micros(1500 * users as u64)
}

/// After a stage's steady window, before the next stage's start-up: its last answers
/// and goose's shutdown.
const STAGE_DRAIN: Duration = Duration::from_secs(1);

/// Stage `index` of the plan, starting at `start` on the run clock.
fn stage_window(options: &LoadOptions, index: usize, start: Duration) -> StageWindow {
    let stage = &options.plan.stages[index];
    StageWindow {
        name: stage.name.clone(),
        target_rps: options.segment.share(stage.rate_per_second),
        plan_rps: stage.rate_per_second,
        segment: options.segment,
        start,
        steady_start: start + options.plan.warmup,
        steady_end: start + options.plan.warmup + options.plan.duration,
    }
}

/// Every stage's window from the start instant and the plan alone.
fn planned_windows(options: &LoadOptions) -> Vec<StageWindow> {
    let mut windows: Vec<StageWindow> = Vec::new();
    for (index, stage) in options.plan.stages.iter().enumerate() {
        let after = windows
            .last()
            .map_or(Duration::ZERO, |w| w.steady_end + STAGE_DRAIN);
        let start = after + startup(options, stage.rate_per_second);
        windows.push(stage_window(options, index, start));
    }
    windows
}

/// How long to wait for Prometheus to scrape past the run's end: a few of its usual
/// scrape intervals.
const PROMETHEUS_PATIENCE: Duration = Duration::from_secs(45);

/// The run's server series as Prometheus recorded them.
async fn from_prometheus(
    api: &Api,
    url: &str,
    selector: &str,
    started_at: SystemTime,
    progress: &Progress,
) -> Result<Vec<aimate_reports::record::ServerSample>, crate::prometheus::PrometheusError> {
    let prometheus = crate::prometheus::Prometheus { api, url, selector };
    let end = SystemTime::now();
    progress.println("aimate load: reading the server series from Prometheus");
    if !prometheus.wait_for(end, PROMETHEUS_PATIENCE).await {
        progress.println(&format!(
            "aimate load: warning: Prometheus has not scraped the run's last seconds after {PROMETHEUS_PATIENCE:?}; reading what it has"
        ));
    }
    prometheus.samples(started_at, end, started_at).await
}

fn hostname() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map_or_else(|_| "unknown".into(), |h| h.trim().to_owned())
}
