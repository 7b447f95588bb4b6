//! aimate-loadgen: the open-model load generator for the AI Mate API. It drives goose
//! users along an exact schedule (see [`schedule`]), measures every request from its
//! intended send time, and writes a `RunRecord` (aimate-reports). It talks to the
//! server over HTTP only.
//!
//! Entry point: [`run`] with [`LoadOptions`].

pub mod api;
pub mod collect;
pub mod guard;
pub mod ledger;
pub mod live;
pub mod pacer;
pub mod plan;
pub mod procstat;
mod progress;
pub mod prometheus;
mod run;
pub mod runner;
pub mod scenarios;
pub mod schedule;
pub mod scrape;
pub mod scraper;
pub mod segment;
pub mod sender;
pub mod target_limit;
pub mod tenants;

pub use guard::AbortGuard;
pub use run::{LoadError, LoadOptions, StageClock, run};
pub use scraper::ServerSeries;
pub use tenants::{Credentials, Tenants};
