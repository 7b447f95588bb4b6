//! aimate-reports: the data contracts between the harness crates, and judging them.
//!
//! - [`record::RunRecord`]: what a run measured (written by the load generator and the
//!   chaos drills, merged across machines, read by graders and renderers).
//! - [`spec::SloSpec`]: what a run must meet (`slo.toml`, objectives in [`expr`]).
//! - [`grade::grade`]: a pure function from the two to verdicts.
//! - [`render`]: JSON, Markdown and JUnit output of a graded report.
//!
//! This crate knows nothing about how measurements are taken.

pub mod confidence;
// Shared with the server, which depends on none of the harness crates.
pub use aimate_conventions::{duration, redact};
pub mod expr;
pub mod fleet;
pub mod grade;
pub mod histogram;
pub mod record;
pub mod regression;
pub mod render;
pub mod scopes;
pub mod segments;
pub mod spec;
pub mod summary;

pub use histogram::LatencyHistogram;
pub use record::{RunRecord, SCHEMA_VERSION};
