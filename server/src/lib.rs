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
