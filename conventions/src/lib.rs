//! What the server and the harness must agree on without either depending on the other:
//! the one duration grammar of flags, slo.toml and experiment files (`250us`, `1m30s`),
//! how secrets in URLs are kept out of logs, errors and records, and which routes are
//! the operators' rather than the API's. The server depends
//! on this crate and on none of the harness crates.

pub mod duration;
pub mod redact;
pub mod routes;
