//! One module per command; `dispatch` is the only entry.

mod alert_watch;
mod chaos;
mod dashboards;
mod deployment;
mod drill;
pub(crate) mod experiment;
mod live;
mod load;
mod merge;
mod own_target;
mod prepare;
mod probe;
mod report;
mod serve;
mod slo;
mod tenant;

use std::process::ExitCode;

use aimate_loadgen::plan::LoadPlan;

use crate::Failure;
use crate::cli::{Cli, Command, DashboardsCommand, LoadSubcommand, SloCommand, TenantCommand};
pub(crate) use experiment::experiment_files;

pub fn dispatch(cli: Cli) -> Result<ExitCode, Failure> {
    match cli.command {
        Command::Serve(config) => Ok(serve::run(*config)?),
        Command::Tenant(TenantCommand::Create { name, database }) => {
            Ok(tenant::create(&name, &database)?)
        }
        Command::Tenant(TenantCommand::RotateKey { id, database }) => {
            Ok(tenant::rotate_key(id, &database)?)
        }
        Command::Tenant(TenantCommand::RevokeKey { id, database }) => {
            Ok(tenant::revoke_key(id, &database)?)
        }
        Command::Load(command) => match &command.prepare {
            Some(LoadSubcommand::Prepare(args)) => prepare::run(args),
            None => load::run(&command.run),
        },
        Command::Report(args) => report::run(&args),
        Command::Drill(args) => drill::run(&args),
        Command::Chaos(command) => chaos::run(command),
        Command::Dashboards(DashboardsCommand::Generate {
            slo,
            out,
            deploy,
            check,
        }) => dashboards::generate(slo.as_deref(), &out, deploy.as_deref(), check),
        Command::Slo(SloCommand::Print) => Ok(slo::print()),
        Command::Probe(args) => Ok(probe::run(&args)?),
    }
}

/// The runtime a command that generates load (`load`, `drill`) drives its users on:
/// as few workers as the plan needs (see `LoadPlan::generator_workers`), since the
/// server under test usually shares the machine. The drill's own server is a child
/// process with its own runtime.
fn generator_runtime(plan: &LoadPlan) -> anyhow::Result<tokio::runtime::Runtime> {
    let cores = std::thread::available_parallelism().map_or(1, usize::from);
    Ok(tokio::runtime::Builder::new_multi_thread()
        .worker_threads(plan.generator_workers(cores))
        .enable_all()
        .build()?)
}

/// A multi-threaded runtime for commands that need one.
fn runtime() -> anyhow::Result<tokio::runtime::Runtime> {
    Ok(tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?)
}
