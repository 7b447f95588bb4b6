//! What a proxy shares with its open connections: its toxics, which connections read
//! on every chunk and wait on while a toxic holds data, and its traffic counters.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, RwLock};

use tokio::sync::watch;

use crate::toxic::Toxic;

/// A proxy's toxics, in order. Readers take a snapshot (an `Arc` clone, no copy);
/// writers replace the list and bump a version that links wait on, so a toxic removed
/// while it holds data lets go at once.
pub struct ToxicSet {
    list: RwLock<Arc<Vec<Toxic>>>,
    version: watch::Sender<u64>,
}

impl Default for ToxicSet {
    fn default() -> Self {
        Self {
            list: RwLock::new(Arc::new(Vec::new())),
            version: watch::Sender::new(0),
        }
    }
}

impl ToxicSet {
    pub fn snapshot(&self) -> Arc<Vec<Toxic>> {
        self.list
            .read()
            .map(|list| Arc::clone(&list))
            .unwrap_or_default()
    }

    /// Changes the list (copy on write) and tells the links.
    pub fn update<R>(&self, change: impl FnOnce(&mut Vec<Toxic>) -> R) -> R {
        let result = {
            let mut list = self
                .list
                .write()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            change(Arc::make_mut(&mut list))
        };
        self.version.send_modify(|v| *v += 1);
        result
    }

    /// Notified after every change.
    pub fn subscribe(&self) -> watch::Receiver<u64> {
        self.version.subscribe()
    }
}

/// A proxy's traffic, for `/metrics`. Indexed by [`crate::toxic::Stream`] as `usize`
/// (upstream 0, downstream 1): `received` counts bytes read from the sending side,
/// `sent` bytes written on, after the toxics, as Toxiproxy's counters of those names.
#[derive(Default)]
pub struct ProxyCounters {
    pub received: [AtomicU64; 2],
    pub sent: [AtomicU64; 2],
    pub connections_total: AtomicU64,
    pub connections_open: AtomicU64,
}

impl ProxyCounters {
    /// Counts a connection as open until the guard drops.
    pub fn open_connection(self: &Arc<Self>) -> OpenConnection {
        self.connections_total.fetch_add(1, Ordering::Relaxed);
        self.connections_open.fetch_add(1, Ordering::Relaxed);
        OpenConnection(Arc::clone(self))
    }
}

pub struct OpenConnection(Arc<ProxyCounters>);

impl Drop for OpenConnection {
    fn drop(&mut self) {
        self.0.connections_open.fetch_sub(1, Ordering::Relaxed);
    }
}
