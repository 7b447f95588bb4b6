//! `aimate chaos …`: fault injection commands.

use std::process::ExitCode;

use aimate_chaos::experiment::Experiment;

use super::deployment::DeploymentAccess;
use super::drill::timestamp_dir;
use super::experiment::{Stores, run_and_report};
use super::live::LiveView;
use crate::Failure;
use crate::cli::ChaosCommand;
use aimate_loadgen::Credentials;

pub fn run(command: ChaosCommand) -> Result<ExitCode, Failure> {
    match command {
        ChaosCommand::Proxy { api, token, config } => {
            let initial = match &config {
                Some(path) => aimate_chaos::api::read_config(path)?,
                None => Vec::new(),
            };
            super::runtime()?.block_on(aimate_chaos::api::serve(
                api,
                token,
                initial,
                aimate_server::shutdown_signal(),
                |addr| {
                    eprintln!(
                        "aimate chaos proxy: control API on http://{addr} (Toxiproxy-compatible)"
                    );
                },
            ))?;
            Ok(ExitCode::SUCCESS)
        }
        ChaosCommand::Run(args) => {
            let slo = crate::builtin::slo(args.slo.as_deref())?;
            let experiment = Experiment::load(&args.file)?;
            let out_dir = timestamp_dir(&args.out_dir);
            let stores = Stores {
                postgres: args.database_url,
                postgres_as_is: true,
                redis: args.redis_url,
                deployment: access(&args.deployment),
            };
            let live = LiveView::start(&args.live, "aimate chaos run")?;
            let code = run_and_report(
                &experiment,
                &slo,
                &stores,
                &out_dir,
                args.summary.as_deref(),
                live.as_ref(),
            );
            if let Some(view) = live {
                view.end();
            }
            Ok(ExitCode::from(code?))
        }
        ChaosCommand::Experiments { out } => experiments(out.as_deref()),
        ChaosCommand::Keeper => {
            let input = std::io::BufReader::new(std::io::stdin());
            aimate_chaos::keeper::keep(input, std::io::stdout());
            Ok(ExitCode::SUCCESS)
        }
    }
}

/// The command line's way to a deployment.
fn access(args: &crate::cli::DeploymentArgs) -> DeploymentAccess {
    DeploymentAccess {
        url: args.target.clone(),
        credentials: match (&args.api_key, &args.admin_token) {
            (Some(key), _) => Some(Credentials::ApiKey(key.clone())),
            (None, Some(token)) => Some(Credentials::AdminToken(token.clone())),
            (None, None) => None,
        },
        allow_remote_docker: args.allow_remote_docker,
        proxy_token: args.proxy_token.clone(),
        proxy_api: args.proxy_api.clone(),
        compose_project: args.compose_project.clone(),
        prometheus: args.prometheus.clone(),
        prometheus_selector: args.prometheus_selector.clone(),
    }
}

/// Lists the built-in experiments, or writes them into `out`.
fn experiments(out: Option<&std::path::Path>) -> Result<ExitCode, Failure> {
    use anyhow::Context;
    for (name, text) in crate::builtin::EXPERIMENTS {
        match out {
            Some(dir) => {
                std::fs::create_dir_all(dir)
                    .with_context(|| format!("cannot create {}", dir.display()))?;
                let path = dir.join(name);
                std::fs::write(&path, text)
                    .with_context(|| format!("cannot write {}", path.display()))?;
                eprintln!("wrote {}", path.display());
            }
            None => {
                let (_, experiment) = crate::builtin::parsed(name, text)?;
                println!("{name}: {}", experiment.title);
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}
