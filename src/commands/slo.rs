//! `aimate slo print`: the built-in objectives, to start a file of one's own.

use std::process::ExitCode;

pub fn print() -> ExitCode {
    print!("{}", crate::builtin::SLO_TOML);
    ExitCode::SUCCESS
}
