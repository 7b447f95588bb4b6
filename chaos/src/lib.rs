//! aimate-chaos: fault injection. It reaches the server only through processes, sockets
//! and the database, the way an SRE would.
//!
//! - [`proxy`] and [`toxic`]: a TCP fault proxy with Toxiproxy's toxics (run by
//!   [`link`]), its Toxiproxy-compatible control [`api`] and its [`proxy_metrics`];
//! - [`supervisor`] and [`balancer`]: N server instances behind HAProxy, to kill,
//!   freeze and restart;
//! - [`exhaust`]: database and socket exhaustion; [`disk`]: disk pressure on a tmpfs;
//! - [`run_store`]: a fleet run's own PostgreSQL schema and Redis key prefix;
//! - [`docker`]: the containers of a deployment aimate did not start, through the Docker
//!   Engine API; [`instances`] and [`links`]: the seams every target fits;
//! - [`keeper`]: leases that undo a fault even when the controller crashes;
//! - [`experiment`]: experiment files (hypothesis, method, rollbacks, safeguard).

pub mod api;
pub mod balancer;
pub mod disk;
pub mod docker;
pub mod exhaust;
pub mod experiment;
pub mod http;
pub mod http_framing;
pub mod instances;
pub mod keeper;
pub mod link;
pub mod links;
pub mod method;
pub mod proxy;
pub mod proxy_metrics;
pub mod run_store;
pub mod supervisor;
pub mod target;
pub mod toxic;
pub mod toxic_set;
