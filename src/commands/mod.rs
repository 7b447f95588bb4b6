//! One module per command; `dispatch` is the only entry.

mod serve;
mod tenant;

use std::process::ExitCode;

use crate::cli::{Cli, Command, TenantCommand};

pub fn dispatch(cli: Cli) -> anyhow::Result<ExitCode> {
    match cli.command {
        Command::Serve(config) => serve::run(*config),
        Command::Tenant(TenantCommand::Create { name, database }) => {
            tenant::create(&name, &database)
        }
    }
}

/// A multi-threaded runtime for commands that need one.
fn runtime() -> anyhow::Result<tokio::runtime::Runtime> {
    Ok(tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?)
}
