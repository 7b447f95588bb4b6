//! aimate-server: the AI Mate reference API (invoices, jobs, a dashboard, user
//! preferences) as a real service: axum on hyper, sqlx on SQLite or PostgreSQL, an
//! in-memory response cache, per-key rate limiting, load shedding, Prometheus metrics
//! and JSON logs.
//!
//! It knows nothing about load tests or chaos: the harness reaches it over HTTP only.
//! Embed it with [`AppState::new`] + [`app`], or run it with [`run`].

mod app;
pub mod auth;
mod auth_failures;
pub mod cache;
pub mod cache_redis;
mod cache_scopes;
pub mod config;
pub mod connection;
mod dashboard;
pub mod db;
pub mod edge;
pub mod error;
mod invoices;
mod jobs;
mod list_cache;
pub mod logging;
pub mod metric_catalogue;
pub mod metrics;
pub mod openapi;
mod ops;
mod pagination;
mod panics;
mod preferences;
mod probe;
pub mod ratelimit;
pub mod ratelimit_redis;
mod respond;
mod run;
pub mod serve;
pub mod state;
pub mod tenants;
mod time;
mod totals;
mod validate;

pub use app::{app, routes};
pub use config::ServerConfig;
pub use run::{RunError, Running, open_database, run, run_until, shutdown_signal, spawn};
pub use state::AppState;

#[cfg(test)]
mod tests {
    /// The harness talks to the server only over HTTP, processes and the database: the
    /// server (and the one crate it shares with the harness) names none of its crates.
    #[test]
    fn the_server_depends_on_no_harness_crate() {
        let manifests = [
            ("server", include_str!("../Cargo.toml")),
            ("conventions", include_str!("../../conventions/Cargo.toml")),
        ];
        for (name, manifest) in manifests {
            for harness in [
                "aimate-reports",
                "aimate-loadgen",
                "aimate-chaos",
                "aimate-monitoring",
                "aimate-tests",
            ] {
                assert!(
                    !manifest.contains(harness),
                    "{name}/Cargo.toml names {harness}"
                );
            }
        }
    }
}
