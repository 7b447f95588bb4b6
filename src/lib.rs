//! The `aimate` CLI: parses arguments once, dispatches to a command, and decides the
//! exit code in one place.
//!
//! Exit codes (ARCHITECTURE.md): 0 success (all SLOs met), 1 an SLO failed,
//! 2 usage or configuration error, 3 the run could not be graded.

mod builtin;
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
        Err(failure) => {
            eprintln!("aimate: error: {:#}", failure.error);
            ExitCode::from(failure.code)
        }
    }
}

/// A command that failed, with the exit code its kind of failure gets.
#[derive(Debug)]
pub struct Failure {
    pub code: u8,
    pub error: anyhow::Error,
}

/// Usage or configuration errors: the default for anything a command reports.
pub const EXIT_USAGE: u8 = 2;
/// The run could not be graded: target unreachable, harness failure, invalid run.
pub const EXIT_UNGRADABLE: u8 = 3;

impl<E: Into<anyhow::Error>> From<E> for Failure {
    fn from(error: E) -> Self {
        Self {
            code: EXIT_USAGE,
            error: error.into(),
        }
    }
}

impl Failure {
    pub fn ungradable(error: impl Into<anyhow::Error>) -> Self {
        Self {
            code: EXIT_UNGRADABLE,
            error: error.into(),
        }
    }
}
