//! aimate-loadgen: the goose-based open-model load generator (rate ladder 100 / 1k / 10k
//! req/s) that writes a `RunRecord`. It talks to the server over HTTP only.
//!
//! Not built yet: see the load generator issue.
