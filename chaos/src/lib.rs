//! aimate-chaos: fault injection. It reaches the server only through processes, sockets
//! and the database, the way an SRE would.
//!
//! Built so far: the TCP fault proxy ([`proxy`]) and its toxics ([`toxic`], applied per
//! direction by [`link`]) with Toxiproxy's names and attributes. The control API,
//! instance supervisor, connection exhaustion and experiments come with the chaos issue.

pub mod api;
pub mod exhaust;
pub mod link;
pub mod proxy;
pub mod toxic;
