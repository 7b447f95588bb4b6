//! `aimate load prepare`: make and seed a distributed run's tenants once, before its
//! segments start, and write their keys to a file every segment takes (`--keys`).
//! Without it each segment would make and seed tenants of its own.

use std::process::ExitCode;

use aimate_loadgen::api::{Api, ApiError};
use aimate_loadgen::plan::LoadPlan;
use aimate_loadgen::tenants::{self, Prepared, Seed, TenantError};
use anyhow::anyhow;

use crate::Failure;
use crate::cli::PrepareArgs;

/// Where the tenants come from.
enum Source<'a> {
    /// Created with the admin token.
    Create(&'a str),
    /// The one tenant this key is, made beforehand.
    Seed(&'a str),
}

pub fn run(args: &PrepareArgs) -> Result<ExitCode, Failure> {
    // Only the stage rates matter here (`--tenants auto` sizes by the fastest).
    let plan = LoadPlan::parse(&args.stages, "0s", "1s")?;
    let seed = Seed {
        invoices: args.seed_invoices,
        jobs: args.seed_jobs,
    };
    // The admin token creates tenants; a key alone is one tenant to seed.
    let source = match (&args.admin_token, &args.api_key) {
        (Some(token), _) => Source::Create(token),
        (None, Some(_)) if args.tenants.needs_admin() => {
            return Err(anyhow!(
                "--tenants {} needs --admin-token (prepare creates them), not --api-key",
                args.tenants
            )
            .into());
        }
        (None, Some(key)) => Source::Seed(key),
        (None, None) => {
            return Err(anyhow!(
                "give --admin-token TOKEN to create the tenants, or --api-key KEY to seed one"
            )
            .into());
        }
    };
    if let Some(parent) = args.out.parent().filter(|p| !p.as_os_str().is_empty())
        && !parent.is_dir()
    {
        return Err(anyhow!(
            "--out {}: no directory {}",
            args.out.display(),
            parent.display()
        )
        .into());
    }
    let prepared = super::runtime()?.block_on(async {
        let api = Api::new(&args.target)?;
        api.probe().await?;
        match source {
            Source::Create(token) => {
                tenants::create_and_seed(&api, token, args.tenants, &plan, seed).await
            }
            Source::Seed(key) => {
                let limit = api.advertised_limit(key).await?;
                api.seed(key, seed.invoices, seed.jobs).await?;
                Ok(Prepared {
                    keys: vec![key.to_owned()],
                    limit,
                    seed_per_tenant: seed,
                })
            }
        }
    });
    let prepared = prepared.map_err(|error| match error {
        TenantError::Api(ApiError::BadApiKey | ApiError::BadAdminToken(_)) => Failure::from(error),
        other => Failure::ungradable(other),
    })?;
    tenants::write_keys(&args.out, &args.target, &prepared)
        .map_err(|e| anyhow!("cannot write {}: {e}", args.out.display()))?;
    eprintln!(
        "prepared {} tenant(s) on {}, each with {} invoices and {} jobs{}; wrote their keys to {} (owner-only)",
        prepared.keys.len(),
        args.target,
        prepared.seed_per_tenant.invoices,
        prepared.seed_per_tenant.jobs,
        prepared
            .limit
            .as_ref()
            .map(|l| format!(" (the target's {})", l.describe()))
            .unwrap_or_default(),
        args.out.display()
    );
    eprintln!(
        "every segment: aimate load --keys {} --segment I/N --start-at … (on Kubernetes: kubectl -n aimate create secret generic aimate-load-keys --from-file=keys={})",
        args.out.display(),
        args.out.display()
    );
    Ok(ExitCode::SUCCESS)
}
