//! The hub between a run and its pages: a compacted log of frames (the latest frame for
//! each thing described) and a bounded broadcast of new frames.
//!
//! Publishing never waits: a frame is serialized once, stored under its key (replacing
//! the one before) and handed to a broadcast channel of fixed capacity. A page that
//! (re)connects first receives the stored frames in publishing order, then the new ones;
//! a page that falls further behind than the channel holds is dropped, and its browser
//! reconnects and starts again from the stored frames. So a slow or vanished browser
//! costs the run one serialization per frame, never a wait, and memory is bounded by the
//! store's cap and the channel's capacity.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex, MutexGuard};

use serde::Serialize;
use tokio::sync::broadcast;

/// Frames a page may fall behind by before it is dropped (a few minutes of a run).
pub const CHANNEL_CAPACITY: usize = 1024;
/// Frames kept for pages that connect later; the oldest seconds and samples go first.
pub const STORE_CAP: usize = 50_000;

/// What a frame describes: a later frame with the same key replaces it.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub enum Key {
    Run,
    Part(usize),
    Stage(usize, usize),
    Second(usize, usize, u64),
    Server(usize, u64, String),
    Event(usize, String),
    Clock(usize),
    Verdicts(usize),
}

impl Key {
    /// Fine-grained history that may be forgotten when the store is full.
    fn evictable(&self) -> bool {
        matches!(self, Self::Second(..) | Self::Server(..) | Self::Event(..))
    }
}

/// One server-sent event: its name, its JSON and its place in publishing order.
#[derive(Debug)]
pub struct Frame {
    pub id: u64,
    pub event: &'static str,
    pub data: String,
    /// The run's last frame: a page's stream ends after it.
    pub last: bool,
}

#[derive(Default)]
struct Store {
    next_id: u64,
    frames: BTreeMap<Key, Arc<Frame>>,
    /// Publishing order: id → key, for the snapshot and for eviction.
    order: BTreeMap<u64, Key>,
    parts: usize,
    reports: BTreeMap<usize, PathBuf>,
}

/// A page's start: the stored frames in publishing order, and the channel that
/// carries every frame from id `from` on.
pub struct Subscription {
    pub snapshot: Vec<Arc<Frame>>,
    pub receiver: broadcast::Receiver<Arc<Frame>>,
    pub from: u64,
}

pub struct Hub {
    store: Mutex<Store>,
    sender: broadcast::Sender<Arc<Frame>>,
}

impl Default for Hub {
    fn default() -> Self {
        Self {
            store: Mutex::new(Store::default()),
            sender: broadcast::channel(CHANNEL_CAPACITY).0,
        }
    }
}

impl Hub {
    pub fn new() -> Arc<Self> {
        Arc::new(Self::default())
    }

    fn store(&self) -> MutexGuard<'_, Store> {
        // A publisher that panicked mid-insert leaves a map that is still a map.
        self.store
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Stores and broadcasts `data` as event `event`, replacing `key`'s previous frame.
    pub fn publish<T: Serialize>(&self, key: Key, event: &'static str, data: &T) {
        self.publish_frame(key, event, data, false);
    }

    /// Publishes the run's last frame: every page's stream ends once it has it.
    pub fn publish_last<T: Serialize>(&self, key: Key, event: &'static str, data: &T) {
        self.publish_frame(key, event, data, true);
    }

    fn publish_frame<T: Serialize>(&self, key: Key, event: &'static str, data: &T, last: bool) {
        let Ok(data) = serde_json::to_string(data) else {
            return;
        };
        let mut store = self.store();
        let id = store.next_id;
        store.next_id += 1;
        let frame = Arc::new(Frame {
            id,
            event,
            data,
            last,
        });
        if let Some(old) = store.frames.insert(key.clone(), frame.clone()) {
            store.order.remove(&old.id);
        }
        store.order.insert(id, key);
        if store.frames.len() > STORE_CAP {
            evict_oldest(&mut store);
        }
        // Sent under the lock: a page subscribing now sees this frame exactly once,
        // either in its snapshot or on the channel. No receiver is not an error.
        let _ = self.sender.send(frame);
    }

    /// The id the next frame will get: frames published so far are below it.
    pub fn next_id(&self) -> u64 {
        self.store().next_id
    }

    /// What a page needs to start: the stored frames, then the channel.
    pub fn subscribe(&self) -> Subscription {
        let store = self.store();
        let snapshot = store
            .order
            .values()
            .filter_map(|key| store.frames.get(key).cloned())
            .collect();
        Subscription {
            snapshot,
            receiver: self.sender.subscribe(),
            from: store.next_id,
        }
    }

    /// Pages connected now.
    pub fn clients(&self) -> usize {
        self.sender.receiver_count()
    }

    /// A new part's number.
    pub(crate) fn next_part(&self) -> usize {
        let mut store = self.store();
        store.parts += 1;
        store.parts - 1
    }

    /// Serves `dir` (a part's written reports) under `/report/PART/`.
    pub fn add_report_dir(&self, part: usize, dir: PathBuf) {
        self.store().reports.insert(part, dir);
    }

    pub fn report_dir(&self, part: usize) -> Option<PathBuf> {
        self.store().reports.get(&part).cloned()
    }

    /// Frames stored now (for tests and the bound).
    pub fn stored(&self) -> usize {
        self.store().frames.len()
    }
}

fn evict_oldest(store: &mut Store) {
    let oldest = store
        .order
        .iter()
        .find(|(_, key)| key.evictable())
        .map(|(id, key)| (*id, key.clone()));
    if let Some((id, key)) = oldest {
        store.order.remove(&id);
        store.frames.remove(&key);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_late_page_gets_the_latest_frame_of_each_thing_in_publishing_order() {
        let hub = Hub::new();
        hub.publish(Key::Run, "run", &"r");
        hub.publish(Key::Second(0, 0, 0), "second", &1);
        hub.publish(Key::Second(0, 0, 1000), "second", &2);
        // Second 0 revised: its new frame replaces the old one and moves to the end.
        hub.publish(Key::Second(0, 0, 0), "second", &3);
        let snapshot = hub.subscribe().snapshot;
        let data: Vec<&str> = snapshot.iter().map(|f| f.data.as_str()).collect();
        assert_eq!(data, ["\"r\"", "2", "3"]);
        let ids: Vec<u64> = snapshot.iter().map(|f| f.id).collect();
        assert!(ids.windows(2).all(|w| w[0] < w[1]), "{ids:?}");
    }

    #[test]
    fn a_subscriber_gets_every_frame_after_its_snapshot_exactly_once() {
        let hub = Hub::new();
        hub.publish(Key::Clock(0), "clock", &1);
        let subscription = hub.subscribe();
        let (snapshot, mut receiver) = (subscription.snapshot, subscription.receiver);
        assert_eq!(subscription.from, 1);
        hub.publish(Key::Clock(0), "clock", &2);
        assert_eq!(snapshot.len(), 1);
        let next = receiver.try_recv().map(|f| f.data.clone());
        assert_eq!(next.as_deref().ok(), Some("2"));
        assert!(receiver.try_recv().is_err());
    }

    #[test]
    fn a_page_that_falls_behind_learns_it_and_the_run_never_waits() {
        let hub = Hub::new();
        let mut receiver = hub.subscribe().receiver;
        // Nobody reads: publishing still returns at once, and the channel keeps only
        // its capacity.
        for i in 0..(CHANNEL_CAPACITY as u64 + 10) {
            hub.publish(Key::Second(0, 0, i * 1000), "second", &i);
        }
        assert!(matches!(
            receiver.try_recv(),
            Err(broadcast::error::TryRecvError::Lagged(10))
        ));
    }

    #[test]
    fn the_store_is_bounded_and_forgets_the_oldest_seconds_first() {
        let hub = Hub::new();
        hub.publish(Key::Run, "run", &"r");
        for i in 0..(STORE_CAP as u64 + 5) {
            hub.publish(Key::Second(0, 0, i * 1000), "second", &i);
        }
        assert_eq!(hub.stored(), STORE_CAP);
        let snapshot = hub.subscribe().snapshot;
        assert_eq!(snapshot[0].event, "run", "the run frame is never evicted");
        assert_eq!(snapshot[1].data, "6", "seconds 0–5 went first");
    }
}
