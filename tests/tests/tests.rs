//! End-to-end tests of the real `aimate` binary, run as a process.

// A test that cannot set up should fail loudly, right where it failed.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod chaos; // `aimate chaos proxy`: the control API as a process
mod common; // temp dirs, free ports, spawning and waiting on `aimate`
mod dashboards; // `aimate dashboards generate`: the tree, and --check catching drift
mod deploy; // deploy/ agrees with the server and slo.toml: memory limit, probes, rules
mod drill; // `aimate drill --quick`: server, ladder, grades, every report file
mod experiment; // supervisor, HAProxy, `aimate chaos run` graded by phase, leases
mod fleet; // two instances behind HAProxy: series per instance, a balancer's mix refused, Prometheus
mod fleet_drill; // `aimate drill --fleet N`: Stage 2 on PostgreSQL + Redis, graded, cleaned up
mod live; // `aimate drill --live` in Chromium: the page's seconds and verdicts are the record's
mod load; // `aimate load`: a real run's record, exit codes, no partial files
mod segments; // `aimate load --segment i/N --start-at`, merged: the plan's run and its verdict
mod serve; // `aimate serve`: logs, SIGTERM drain, exit codes
mod tenant; // `aimate tenant create`: the key on stdout, usable at once
