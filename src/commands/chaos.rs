//! `aimate chaos …`: fault injection commands.

use std::process::ExitCode;

use aimate_chaos::experiment::Experiment;
use aimate_reports::spec::SloSpec;

use super::drill::timestamp_dir;
use super::experiment::run_and_report;
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
        ChaosCommand::Run(args) => {
            let slo = SloSpec::load(&args.slo)?;
            let experiment = Experiment::load(&args.file)?;
            let out_dir = timestamp_dir(&args.out_dir);
            let code = run_and_report(&experiment, &slo, args.database_url, &out_dir)?;
            Ok(ExitCode::from(code))
        }
        ChaosCommand::Keeper => {
            let input = std::io::BufReader::new(std::io::stdin());
            aimate_chaos::keeper::keep(input, std::io::stdout());
            Ok(ExitCode::SUCCESS)
        }
    }
}
