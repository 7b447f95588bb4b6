//! aimate-loadgen: the open-model load generator for the AI Mate API. It drives goose
//! users along an exact schedule (see [`schedule`]), measures every request from its
//! intended send time, and writes a `RunRecord` (aimate-reports). It talks to the
//! server over HTTP only.
//!
//! Built so far: the plan ([`plan`]) and the schedule ([`schedule`]); the goose runner,
//! collector, scraper and CLI follow in the load generator issue.

pub mod collect;
pub mod plan;
pub mod scenarios;
pub mod schedule;
