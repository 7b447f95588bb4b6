//! The server over real HTTP: each test starts it on an ephemeral port and talks to it
//! with reqwest. Every test runs on SQLite; the same tests run on PostgreSQL when
//! `TEST_DATABASE_URL` is set (each in a schema of its own), and say so when skipped.

// A test that cannot set up should fail loudly, right where it failed.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

mod auth; // API keys, admin endpoint, tenant isolation
mod bad_input; // every kind of bad request gets the right 4xx and a JSON error
mod cache; // TTL cache hits and invalidation on writes
mod dashboard; // totals and counts
mod disk; // a full disk: 507 for writes, reads and readiness kept, recovery
mod fleet_cache; // the Redis L2: read-your-writes across instances, outages degrade
mod hostile; // silent, idle, never-reading and malformed clients over raw sockets
mod invoices; // CRUD, filters, pagination, bulk all-or-nothing
mod jobs; // CRUD, filters, date ranges
mod limits; // rate limiting, load shedding, pool exhaustion, CORS
mod ops; // liveness, readiness, metrics, request ids, OpenAPI
mod preferences; // per-user settings
mod schema; // the OpenAPI document states the rules the API applies
mod shared_limit; // the fleet's rate limiter in Redis, and its fallback
mod shutdown; // graceful drain
mod tcp_gate; // a cuttable TCP link (a network outage to Redis)
mod totals; // dashboard aggregates == a full recount after random writes
mod writes; // group commit: concurrent writers, failures alone, bulk all-or-nothing
