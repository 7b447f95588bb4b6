//! `aimate chaos …`: fault injection commands.

use std::process::ExitCode;

use crate::Failure;
use crate::cli::ChaosCommand;

pub fn run(command: ChaosCommand) -> Result<ExitCode, Failure> {
    match command {
        ChaosCommand::Proxy { api, token } => {
            super::runtime()?.block_on(aimate_chaos::api::serve(
                api,
                token,
                aimate_server::shutdown_signal(),
                |addr| {
                    eprintln!(
                        "aimate chaos proxy: control API on http://{addr} (Toxiproxy-compatible)"
                    );
                },
            ))?;
            Ok(ExitCode::SUCCESS)
        }
    }
}
