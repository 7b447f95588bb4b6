//! `aimate serve`: the API server in the foreground until SIGTERM/SIGINT.

use std::process::ExitCode;

use aimate_server::ServerConfig;
use anyhow::Context;

pub fn run(mut config: ServerConfig) -> anyhow::Result<ExitCode> {
    // PORT and REDIS_URL as hosting platforms set them; checked before anything starts.
    config.apply_platform_env(|name| std::env::var(name).ok())?;
    // Dropped after the server returns, so the last log lines are flushed.
    let _logs = aimate_server::logging::init(&config.log_dir)
        .with_context(|| format!("cannot write logs to {}", config.log_dir.display()))?;
    super::runtime()?.block_on(aimate_server::run(config))?;
    Ok(ExitCode::SUCCESS)
}
