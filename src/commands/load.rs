//! `aimate load`: run the ladder against a target and write the RunRecord atomically
//! (a temp file renamed into place), so a failed run leaves no partial JSON behind.

use std::path::Path;
use std::process::ExitCode;
use std::time::SystemTime;

use aimate_loadgen::api::ApiError;
use aimate_loadgen::plan::{LoadPlan, parse_duration};
use aimate_loadgen::scenarios::Mix;
use aimate_loadgen::segment::Segment;
use aimate_loadgen::tenants::TenantError;
use aimate_loadgen::{AbortGuard, Credentials, LoadError, LoadOptions};
use anyhow::{Context, anyhow};

use super::live::{LiveView, planned};
use crate::Failure;
use crate::cli::LoadArgs;

fn options(args: &LoadArgs) -> Result<LoadOptions, Failure> {
    let plan = LoadPlan::parse(&args.stages, &args.warmup, &args.duration)?;
    let credentials = match (&args.keys, &args.api_key, &args.admin_token) {
        (Some(file), _, _) => {
            if args.tenants != aimate_loadgen::Tenants::Count(1) {
                return Err(anyhow!(
                    "--keys drives the tenants in {} (each at an equal share): drop --tenants",
                    file.display()
                )
                .into());
            }
            Credentials::Prepared(aimate_loadgen::tenants::read_keys(file)?)
        }
        (None, Some(key), _) => Credentials::ApiKey(key.clone()),
        (None, None, Some(token)) => Credentials::AdminToken(token.clone()),
        (None, None, None) => {
            return Err(anyhow!(
                "give --api-key KEY, --admin-token TOKEN to create a tenant, or --keys FILE from `aimate load prepare`"
            )
            .into());
        }
    };
    if args.tenants.needs_admin() && matches!(credentials, Credentials::ApiKey(_)) {
        return Err(anyhow!(
            "--tenants {} needs --admin-token (the generator creates its tenants), not --api-key",
            args.tenants
        )
        .into());
    }
    if !(0.0..=100.0).contains(&args.abort_error_rate) {
        return Err(anyhow!("--abort-error-rate is a percentage between 0 and 100").into());
    }
    let abort_after = parse_duration(&args.abort_after)?;
    let segment = match (&args.segment, args.segments) {
        (Some(text), _) => Segment::parse(text)?,
        (None, Some(count)) => {
            Segment::of_job(count, std::env::var("JOB_COMPLETION_INDEX").ok().as_deref())?
        }
        (None, None) => Segment::WHOLE,
    };
    if !segment.is_whole() && matches!(credentials, Credentials::AdminToken(_)) {
        return Err(anyhow!(
            "--segment {segment}: the segments of a run share their tenants, made once \
             beforehand: give --keys FILE (from `aimate load prepare`) or --api-key, not --admin-token"
        )
        .into());
    }
    let start_at = args.start_at.as_deref().map(parse_start).transpose()?;
    Ok(LoadOptions {
        target: args.target.clone(),
        plan,
        credentials,
        seed_invoices: args.seed_invoices,
        seed_jobs: args.seed_jobs,
        tenants: args.tenants,
        max_users: args.max_users.max(1),
        latency_budget: parse_duration(&args.latency_budget)?,
        request_timeout: parse_duration(&args.timeout)?,
        guard: AbortGuard {
            max_error_rate: args.abort_error_rate / 100.0,
            max_latency: None,
            for_seconds: u32::try_from(abort_after.as_secs())
                .unwrap_or(u32::MAX)
                .max(1),
        },
        mix: match &args.weights {
            Some(spec) => Mix::parse(spec).map_err(|e| anyhow!("--weights: {e}"))?,
            None => Mix::standard(),
        },
        progress: true,
        on_stage: None,
        verify_writes: true,
        stop: None,
        server_series: args.server_series.series(),
        live: None,
        segment,
        start_at,
        start_tolerance: parse_duration(&args.start_tolerance)
            .map_err(|e| anyhow!("--start-tolerance: {e}"))?,
    })
}

/// `--start-at`: an RFC 3339 UTC instant, or `+DURATION` from now.
fn parse_start(text: &str) -> anyhow::Result<SystemTime> {
    if let Some(after) = text.trim().strip_prefix('+') {
        let after = parse_duration(after).map_err(|e| anyhow!("--start-at: {e}"))?;
        return Ok(SystemTime::now() + after);
    }
    humantime::parse_rfc3339_weak(text.trim()).map_err(|_| {
        anyhow!("--start-at `{text}`: give an RFC 3339 UTC time (2026-12-07T10:00:00Z) or +DURATION (+30s)")
    })
}

/// A sibling temp file of `out`, created now so an unwritable path fails before the run.
fn temp_path(out: &Path) -> Result<std::path::PathBuf, Failure> {
    let name = out
        .file_name()
        .ok_or_else(|| anyhow!("--out {} is not a file path", out.display()))?;
    let temp = out.with_file_name(format!(
        ".{}.{}.tmp",
        name.to_string_lossy(),
        std::process::id()
    ));
    std::fs::write(&temp, b"").with_context(|| format!("cannot write {}", out.display()))?;
    Ok(temp)
}

pub fn run(args: &LoadArgs) -> Result<ExitCode, Failure> {
    let mut options = options(args)?;
    let temp = temp_path(&args.out)?;
    let live = match LiveView::start(&args.live, "aimate load") {
        Ok(live) => live,
        Err(error) => {
            let _ = std::fs::remove_file(&temp);
            return Err(error.into());
        }
    };
    if let Some(view) = &live {
        let spec = crate::builtin::slo(args.slo.as_deref())?;
        let title = format!("load on {}", args.target);
        options.live = Some(view.part(&title, "load", planned(&options.plan), spec));
    }
    let feed = options.live.clone();
    let result = run_and_write(args, options, &temp);
    if let (Some(view), Some(feed)) = (live, feed) {
        match &result {
            Ok(record) => {
                // What `aimate report` would grade the record as.
                let report = aimate_reports::grade::grade(record, feed.spec());
                let written = format!(
                    "{} (`aimate report {}` writes the HTML report)",
                    args.out.display(),
                    args.out.display()
                );
                feed.finish(&report, None, Some(written));
            }
            Err(failure) => feed.fail(&format!("{:#}", failure.error)),
        }
        view.end();
    }
    let record = result?;
    print_stages(&record);
    if let Some(abort) = &record.aborted {
        eprintln!("  aborted: {}", abort.reason);
    }
    eprintln!("wrote {}", args.out.display());
    Ok(ExitCode::SUCCESS)
}

/// Runs the load and writes its record to `--out` (through `temp`).
fn run_and_write(
    args: &LoadArgs,
    options: LoadOptions,
    temp: &Path,
) -> Result<aimate_reports::RunRecord, Failure> {
    let runtime = super::generator_runtime(&options.plan)?;
    let outcome = runtime.block_on(aimate_loadgen::run(options));
    let record = match outcome {
        Ok(record) => record,
        Err(error) => {
            let _ = std::fs::remove_file(temp);
            return Err(match error {
                LoadError::Api(ApiError::BadApiKey | ApiError::BadAdminToken(_))
                | LoadError::Tenant(TenantError::NeedsAdmin(_))
                | LoadError::StartPassed { .. } => error.into(),
                other => Failure::ungradable(other),
            });
        }
    };
    let json = serde_json::to_vec_pretty(&record).context("cannot serialize the run record")?;
    std::fs::write(temp, json)
        .and_then(|()| std::fs::rename(temp, &args.out))
        .with_context(|| format!("cannot write {}", args.out.display()))
        .inspect_err(|_| {
            let _ = std::fs::remove_file(temp);
        })?;
    Ok(record)
}

/// Every stage's figures, then, where a stage's errors were mostly the target's own
/// 429s, what to do about it.
pub fn print_stages(record: &aimate_reports::RunRecord) {
    for stage in &record.stages {
        print_stage(stage);
    }
    for finding in aimate_reports::summary::rate_limit_findings(record) {
        eprintln!("  {finding}");
    }
}

/// One stage's figures, from its histograms (never from goose's aggregates).
fn print_stage(stage: &aimate_reports::record::StageRecord) {
    use aimate_reports::summary::figure;
    let s = aimate_reports::summary::stage_summary(stage);
    let validity = if s.valid {
        "valid".to_owned()
    } else {
        format!("INVALID: {}", s.reasons.join("; "))
    };
    eprintln!(
        "  stage {}: target {:.0} req/s, achieved {:.1} req/s, {} requests, {} errors{}; {validity}",
        s.name,
        s.target_rps,
        s.achieved_rps,
        s.requests,
        aimate_reports::summary::thousands(s.errors),
        if s.errors_by_kind.is_empty() {
            String::new()
        } else {
            format!(
                " ({})",
                aimate_reports::summary::kinds_text(&s.errors_by_kind)
            )
        }
    );
    eprintln!(
        "    latency from intended send (corrected): P50 {} / P95 {} / P99 {} / max {} ms",
        figure(s.p50_ms),
        figure(s.p95_ms),
        figure(s.p99_ms),
        figure(s.max_ms)
    );
    eprintln!(
        "    service time (uncorrected):             P50 {} / P95 {} / P99 {} / max {} ms",
        figure(s.service_p50_ms),
        figure(s.service_p95_ms),
        figure(s.service_p99_ms),
        figure(s.service_max_ms)
    );
}
