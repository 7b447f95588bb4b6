//! aimate-live: watch a run in the browser while it happens.
//!
//! ```text
//! generator (collector, scraper) ─┐
//! chaos method, alert watch ──────┼─▶ PartFeed ─▶ Hub (compacted frames + bounded
//! CLI (reports written) ──────────┘                broadcast) ─▶ LiveServer ─▶ pages (SSE)
//! ```
//!
//! A run opens a [`RunFeed`] on a [`Hub`] and one [`PartFeed`] per part (a load, a drill's
//! ladder, each experiment); the [`LiveServer`] serves the page, the stream and the
//! finished parts' reports.

mod assets;
pub mod feed;
pub mod frames;
pub mod hub;
pub mod judge;
pub mod server;

pub use feed::{PartFeed, RunFeed};
pub use hub::Hub;
pub use server::{LiveError, LiveServer};

/// Where `--live` listens when given no address (k6's dashboard port).
pub const DEFAULT_ADDR: &str = "127.0.0.1:5665";
