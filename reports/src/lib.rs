//! aimate-reports: the data contracts between the harness crates, and judging them.
//!
//! - [`record::RunRecord`]: what a run measured (written by the load generator and the
//!   chaos drills, merged across machines, read by graders and renderers).
//! - SLO grading and the HTML, Markdown, JSON and JUnit renderers come with the reports
//!   issue.
//!
//! This crate knows nothing about how measurements are taken.

pub mod expr;
pub mod grade;
pub mod histogram;
pub mod record;
pub mod spec;

pub use histogram::LatencyHistogram;
pub use record::{RunRecord, SCHEMA_VERSION};
