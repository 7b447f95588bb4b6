//! Command-line definitions (clap). Parsing only: commands live in `commands/`.

use std::path::PathBuf;

use aimate_server::ServerConfig;
use clap::{Args, Parser, Subcommand};

#[derive(Debug, Parser)]
#[command(
    name = "aimate",
    version,
    about = "The AI Mate reference API and the harness that proves its SLOs"
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the AI Mate API server (SQLite in --data-dir by default, PostgreSQL with DATABASE_URL).
    Serve(Box<ServerConfig>),
    /// Manage tenants (businesses) and their API keys.
    #[command(subcommand)]
    Tenant(TenantCommand),
}

#[derive(Debug, Subcommand)]
pub enum TenantCommand {
    /// Create a tenant and print its API key (shown only this once) on stdout.
    Create {
        /// The business's display name.
        name: String,
        #[command(flatten)]
        database: DatabaseArgs,
    },
}

/// Which database a command works on: the same flags and variables as `aimate serve`.
#[derive(Debug, Args)]
pub struct DatabaseArgs {
    /// Directory of the embedded SQLite database (used when no DATABASE_URL is given).
    #[arg(long, env = "AIMATE_DATA_DIR", default_value = "data")]
    pub data_dir: PathBuf,

    /// Database URL: `postgres://…` or `sqlite://…`.
    #[arg(long, env = "DATABASE_URL", hide_env_values = true)]
    pub database_url: Option<String>,
}

impl DatabaseArgs {
    pub fn server_config(&self) -> ServerConfig {
        let mut config = ServerConfig::with_data_dir(&self.data_dir);
        config.database_url.clone_from(&self.database_url);
        config
    }
}
