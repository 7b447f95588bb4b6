//! One module per command; `dispatch` is the only entry.

mod chaos;
mod drill;
mod experiment;
mod load;
mod own_target;
mod report;
mod serve;
mod tenant;

use std::process::ExitCode;

use crate::Failure;
use crate::cli::{Cli, Command, TenantCommand};

pub fn dispatch(cli: Cli) -> Result<ExitCode, Failure> {
    match cli.command {
        Command::Serve(config) => Ok(serve::run(*config)?),
        Command::Tenant(TenantCommand::Create { name, database }) => {
            Ok(tenant::create(&name, &database)?)
        }
        Command::Load(args) => load::run(&args),
        Command::Report(args) => report::run(&args),
        Command::Drill(args) => drill::run(&args),
        Command::Chaos(command) => chaos::run(command),
    }
}

/// A multi-threaded runtime for commands that need one.
fn runtime() -> anyhow::Result<tokio::runtime::Runtime> {
    Ok(tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?)
}
