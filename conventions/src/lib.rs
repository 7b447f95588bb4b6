//! What the server and the harness must agree on without either depending on the other:
//! the one duration grammar of flags, slo.toml and experiment files (`250us`, `1m30s`),
//! and how secrets in URLs are kept out of logs, errors and records. The server depends
//! on this crate and on none of the harness crates.

pub mod duration;
pub mod redact;
