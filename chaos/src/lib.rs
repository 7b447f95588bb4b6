//! aimate-chaos: fault injection (fault proxy, instance supervisor, connection exhaustion)
//! and chaos experiments. It reaches the server only through processes, sockets and the
//! database, the way an SRE would.
//!
//! Not built yet: see the chaos issue.
