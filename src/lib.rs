//! The `aimate` CLI: parses arguments once, dispatches to a command, and decides the
//! exit code in one place.
//!
//! Exit codes (ARCHITECTURE.md): 0 success (all SLOs met), 1 an SLO failed,
//! 2 usage or configuration error, 3 the run could not be graded.

mod cli;
mod commands;

use std::process::ExitCode;

use clap::Parser;

pub use cli::Cli;

/// Parses `std::env::args`, runs the command, prints any error on one line.
pub fn main() -> ExitCode {
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(error) => {
            let code = if error.use_stderr() { 2 } else { 0 };
            let _ = error.print();
            return ExitCode::from(code);
        }
    };
    match commands::dispatch(cli) {
        Ok(code) => code,
        Err(error) => {
            eprintln!("aimate: error: {error:#}");
            ExitCode::from(2)
        }
    }
}
