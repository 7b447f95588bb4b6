//! `aimate drill`: the main job, in one command.
//!
//! ```text
//! start `aimate serve` (SQLite in a temp dir) ─ wait for readiness ─ load ladder
//!   ─ stop the server (SIGTERM, bounded) ─ grade against slo.toml ─ chaos experiments
//!   ─ reports/out/<UTC time>/{run.json, report.json, report.md, junit.xml} ─ exit code
//! ```

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::SystemTime;

use aimate_loadgen::plan::{LoadPlan, parse_duration};
use aimate_loadgen::scenarios::Mix;
use aimate_loadgen::{AbortGuard, Credentials, LoadOptions, ServerSeries};
use aimate_reports::spec::SloSpec;
use anyhow::{Context, anyhow};

use super::deployment::DeploymentAccess;
use super::experiment::{Stores, run_and_report};
use super::live::{LiveView, planned};
use super::load::print_stages;
use super::own_target::{OwnTarget, Shape, StoreShape};
use super::report::{Baseline, append_summary, print_verdicts, write_atomically, write_reports};
use crate::Failure;
use crate::cli::DrillArgs;
use aimate_chaos::experiment::Experiment;
use aimate_chaos::run_store::RunStoreError;

pub fn timestamp_dir(parent: &Path) -> PathBuf {
    let now = humantime::format_rfc3339_seconds(SystemTime::now()).to_string();
    parent.join(now.replace(':', "-"))
}

pub fn run(args: &DrillArgs) -> Result<ExitCode, Failure> {
    let live = LiveView::start(&args.live, "aimate drill")?;
    let result = drill(args, live.as_ref());
    if let Some(view) = live {
        view.end();
    }
    result
}

fn drill(args: &DrillArgs, live: Option<&LiveView>) -> Result<ExitCode, Failure> {
    let spec = crate::builtin::slo(args.slo.as_deref())?;
    let experiments = chaos_plan(args)?;
    let baseline = Baseline::load(&args.baseline, &spec)?;
    let (stages, warmup, duration) = match (args.quick, args.fleet) {
        (true, _) => ("100,1k", "2s", "5s"),
        // Stage 2 is 2–3 instances on one machine here: 10k is Stage 3's, with auto-scaling.
        (false, Some(_)) => ("100,1k", "5s", "30s"),
        (false, None) => ("100,1k,10k", "5s", "30s"),
    };
    let plan = LoadPlan::parse(
        args.stages.as_deref().unwrap_or(stages),
        args.warmup.as_deref().unwrap_or(warmup),
        args.duration.as_deref().unwrap_or(duration),
    )?;
    let out_dir = timestamp_dir(&args.out_dir);
    std::fs::create_dir_all(&out_dir)
        .with_context(|| format!("cannot create {}", out_dir.display()))?;

    let runtime = super::generator_runtime(&plan)?;
    let deployment_credentials = match (&args.api_key, &args.admin_token) {
        (Some(key), _) => Some(Credentials::ApiKey(key.clone())),
        (None, Some(token)) => Some(Credentials::AdminToken(token.clone())),
        (None, None) => None,
    };
    let (own, target, credentials, server_series) = match &args.target {
        Some(target) => {
            let credentials = match deployment_credentials.clone() {
                Some(credentials) => credentials,
                None => {
                    return Err(anyhow!("--target needs --api-key or --admin-token").into());
                }
            };
            if args.tenants.needs_admin() && matches!(credentials, Credentials::ApiKey(_)) {
                return Err(anyhow!(
                    "--tenants {} needs --admin-token (the drill creates its tenants), not --api-key",
                    args.tenants
                )
                .into());
            }
            (
                None,
                target.clone(),
                credentials,
                args.server_series.series(),
            )
        }
        None => {
            let shape = own_shape(args)?;
            let own = runtime
                .block_on(OwnTarget::start(shape, "drill"))
                .map_err(|error| {
                    // A fleet the database cannot hold, or a store that is not there, is
                    // the configuration's fault; anything else is the harness's.
                    if error.is::<RunStoreError>() {
                        Failure::from(error)
                    } else {
                        Failure::ungradable(error)
                    }
                })?;
            let url = own.target.url.clone();
            match args.fleet {
                Some(n) => eprintln!(
                    "aimate drill: fleet of {n} instances behind HAProxy on {url} ({}; \
                     removed afterwards)",
                    own.claimed().unwrap_or_default()
                ),
                None => {
                    eprintln!("aimate drill: server on {url} (SQLite in a temporary directory)")
                }
            }
            let credentials = Credentials::AdminToken(own.admin_token.clone());
            let instances = runtime.block_on(own.instance_urls());
            (
                Some(own),
                url,
                credentials,
                ServerSeries::Instances(instances),
            )
        }
    };

    let options = LoadOptions {
        target,
        plan,
        credentials,
        seed_invoices: 500,
        seed_jobs: 100,
        tenants: args.tenants,
        max_users: 2000,
        latency_budget: parse_duration("100ms")?,
        request_timeout: parse_duration("10s")?,
        guard: AbortGuard {
            max_error_rate: 0.05,
            max_latency: None,
            for_seconds: 10,
        },
        mix: Mix::standard(),
        progress: true,
        on_stage: None,
        verify_writes: true,
        stop: None,
        server_series,
        live: None,
        segment: aimate_loadgen::segment::Segment::WHOLE,
        start_at: None,
        start_tolerance: std::time::Duration::from_millis(5),
    };
    let feed = live.map(|view| {
        let title = format!("ladder {}", args.stages.as_deref().unwrap_or(stages));
        view.part(&title, "ladder", planned(&options.plan), spec.clone())
    });
    let options = LoadOptions {
        live: feed.clone(),
        ..options
    };
    let outcome = runtime.block_on(aimate_loadgen::run(options));
    if let Some(own) = own {
        for problem in runtime.block_on(own.stop()) {
            eprintln!("aimate drill: warning: the server {problem}");
        }
    }
    let record = outcome.map_err(|error| {
        if let Some(feed) = &feed {
            feed.fail(&error.to_string());
        }
        Failure::ungradable(error)
    })?;
    print_stages(&record);
    let record_path = out_dir.join("run.json");
    write_atomically(&record_path, |w| {
        serde_json::to_writer_pretty(&mut *w, &record).map_err(std::io::Error::other)
    })?;
    let (report, _) = write_reports(&record, &spec, baseline.as_ref(), &out_dir)?;
    if let Some(feed) = &feed {
        feed.finish(&report, Some(&out_dir), Some(out_dir.display().to_string()));
    }
    print_verdicts(&report);
    if let Some(summary) = &args.summary {
        let title = if args.quick {
            "aimate drill --quick: ladder"
        } else {
            "aimate drill: ladder"
        };
        append_summary(summary, title, &report, &record)?;
    }
    eprintln!("reports: {}", out_dir.display());
    eprintln!("open:    {}", out_dir.join("index.html").display());
    let mut code = report.exit_code();
    if let Some(experiments) = experiments {
        let stores = Stores {
            postgres: args.database_url.clone(),
            postgres_as_is: false,
            redis: args.redis_url.clone(),
            deployment: DeploymentAccess {
                url: args.target.clone(),
                credentials: deployment_credentials.clone(),
                allow_remote_docker: args.allow_remote_docker,
                proxy_token: args.proxy_token.clone(),
                proxy_api: args.proxy_api.clone(),
                compose_project: args.compose_project.clone(),
                prometheus: args.server_series.prometheus.clone(),
                prometheus_selector: args.server_series.prometheus_selector.clone(),
            },
        };
        code = code.max(run_experiments(
            experiments,
            &spec,
            &stores,
            &out_dir,
            args.summary.as_deref(),
            live,
        )?);
    }
    Ok(ExitCode::from(code))
}

/// What the drill starts: one server on SQLite, or with `--fleet` N instances behind
/// HAProxy on PostgreSQL and Redis (both required, named in a one-line error if not).
fn own_shape(args: &DrillArgs) -> Result<Shape, Failure> {
    let Some(instances) = args.fleet else {
        return Ok(Shape {
            instances: 1,
            ..Shape::default()
        });
    };
    let postgres = args.database_url.clone().ok_or_else(|| {
        anyhow!("--fleet runs on PostgreSQL: pass --database-url or set DATABASE_URL")
    })?;
    let redis = args.redis_url.clone().ok_or_else(|| {
        anyhow!("--fleet shares a Redis: pass --redis-url or set AIMATE_REDIS_URL")
    })?;
    if aimate_chaos::balancer::find_haproxy().is_none() {
        return Err(anyhow!(
            "--fleet puts its instances behind HAProxy, which is not installed ({})",
            aimate_chaos::balancer::INSTALL_HINT
        )
        .into());
    }
    Ok(Shape {
        instances: usize::from(instances),
        store: Some(StoreShape {
            postgres: Some(postgres),
            redis: Some(redis),
            pool_max: args.db_pool_max,
            redis_proxy: false,
        }),
        ..Shape::default()
    })
}

/// The chaos experiments after the ladder, read and checked before anything runs (a
/// typo in the fourth should not cost the ladder and three drills); `None`: none run.
fn chaos_plan(args: &DrillArgs) -> Result<Option<Vec<(String, Experiment)>>, Failure> {
    if args.no_chaos {
        return Ok(None);
    }
    if args.target.is_some() {
        // A deployment is drilled with experiments written for it (`kind = "docker"`);
        // the built-in ones start targets of their own.
        let Some(dir) = args.experiments.as_deref() else {
            return Ok(None);
        };
        let (deployment, own): (Vec<_>, Vec<_>) = crate::builtin::experiments(Some(dir))?
            .into_iter()
            .partition(|(_, e)| e.kind != aimate_chaos::experiment::TargetKind::Own);
        for (name, _) in &own {
            eprintln!(
                "aimate drill: {name} starts a target of its own, not --target's: skipped \
                 (run it without --target)"
            );
        }
        return Ok(Some(deployment));
    }
    if args.quick {
        eprintln!(
            "aimate drill: --quick runs one short chaos experiment (an instance kill); the \
             full drill runs all {} (`aimate chaos experiments`)",
            crate::builtin::EXPERIMENTS.len()
        );
        let (name, text) = crate::builtin::QUICK_EXPERIMENT;
        return Ok(Some(vec![crate::builtin::parsed(name, text)?]));
    }
    Ok(Some(crate::builtin::experiments(
        args.experiments.as_deref(),
    )?))
}

/// Each experiment of `dir` against a target of its own; reports in
/// `out_dir/chaos-<name>/`. Returns the worst exit code. An experiment this machine
/// cannot run (a disk drill without root) is skipped with a line saying why.
fn run_experiments(
    experiments: Vec<(String, Experiment)>,
    spec: &SloSpec,
    stores: &Stores,
    out_dir: &Path,
    summary: Option<&Path>,
    live: Option<&LiveView>,
) -> Result<u8, Failure> {
    let mut worst = 0;
    for (name, experiment) in experiments {
        eprintln!(
            "\naimate drill: chaos experiment {name}: {}",
            experiment.title
        );
        if experiment.needs_volume() && !aimate_chaos::disk::can_mount() {
            eprintln!(
                "aimate drill: skipped {name}: the disk drill mounts a tmpfs, which needs root"
            );
            continue;
        }
        if let Some(missing) = stores.missing_for(&experiment) {
            eprintln!("aimate drill: skipped {name}: {missing}");
            continue;
        }
        let code = run_and_report(
            &experiment,
            spec,
            stores,
            &out_dir.join(format!("chaos-{name}")),
            summary,
            live,
        )?;
        worst = worst.max(code);
    }
    Ok(worst)
}
