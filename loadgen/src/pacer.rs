//! Send times to a tenth of a millisecond. tokio's timer wheel ticks in whole
//! milliseconds and fires a sleep at the first tick after its deadline, so a send lands
//! 0–1 ms late (0.5–1 ms typical), and that lateness is counted in every corrected
//! latency. The pacer keeps the sleepers in a heap and arms one Linux `timerfd`
//! (nanosecond resolution) for the earliest; tokio's I/O driver wakes a dispatcher task
//! when it fires, and the dispatcher wakes every sleeper whose time has come.
//!
//! Why not a thread of its own: waking a tokio task from outside the runtime costs a
//! futex wake-up of a worker per task (measured: the generator's CPU per request
//! doubled at 10k req/s). Here the timer fires through the same epoll the workers wait
//! in, and the sleepers are woken from inside the runtime, as tokio's own timer does.
//!
//! Each sleeper gives a *slack*: how late it may be woken. The timer fires at the
//! earliest deadline plus its slack and wakes every sleeper due by then, so on a dense
//! schedule several sends share one wake-up (each wake-up costs the generator a trip
//! through epoll, CPU taken from the server beside it). A sleeper is never woken before
//! its time.

use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::future::Future;
use std::os::fd::OwnedFd;
use std::pin::Pin;
use std::sync::{Arc, Mutex, PoisonError, Weak};
use std::task::{Context, Poll, Waker};
use std::time::{Duration, Instant};

use rustix::time::{
    Itimerspec, TimerfdClockId, TimerfdFlags, TimerfdTimerFlags, Timespec, timerfd_create,
    timerfd_settime,
};
use tokio::io::unix::AsyncFd;

struct Entry {
    at: Instant,
    /// How late this sleeper may be woken.
    slack: Duration,
    waker: Waker,
}

impl PartialEq for Entry {
    fn eq(&self, other: &Self) -> bool {
        self.at == other.at
    }
}
impl Eq for Entry {}
impl PartialOrd for Entry {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}
impl Ord for Entry {
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        self.at.cmp(&other.at)
    }
}

#[derive(Default)]
struct Queue {
    entries: BinaryHeap<Reverse<Entry>>,
    /// When the timerfd is set to fire (None: disarmed).
    armed: Option<Instant>,
}

struct Shared {
    queue: Mutex<Queue>,
    timer: AsyncFd<OwnedFd>,
}

impl Shared {
    fn lock(&self) -> std::sync::MutexGuard<'_, Queue> {
        self.queue.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Sets the timerfd to fire at `at` (relative to now, at least 1 ns: 0 disarms).
    fn arm(&self, queue: &mut Queue, at: Instant) {
        let delay = at
            .saturating_duration_since(Instant::now())
            .max(Duration::from_nanos(1));
        let spec = Itimerspec {
            it_interval: Timespec {
                tv_sec: 0,
                tv_nsec: 0,
            },
            it_value: Timespec {
                tv_sec: i64::try_from(delay.as_secs()).unwrap_or(i64::MAX),
                tv_nsec: i64::from(delay.subsec_nanos()),
            },
        };
        // Cannot fail on a valid timerfd with a valid spec; if it ever did, the
        // dispatcher's next turn re-arms it.
        if timerfd_settime(self.timer.get_ref(), TimerfdTimerFlags::empty(), &spec).is_ok() {
            queue.armed = Some(at);
        }
    }
}

/// A handle to the pacer; its dispatcher task ends when the last handle is dropped.
#[derive(Clone)]
pub struct Pacer {
    shared: Arc<Shared>,
}

impl Pacer {
    /// Creates the timer and spawns its dispatcher (call inside a tokio runtime).
    pub fn start() -> std::io::Result<Self> {
        let fd = timerfd_create(
            TimerfdClockId::Monotonic,
            TimerfdFlags::NONBLOCK | TimerfdFlags::CLOEXEC,
        )?;
        // `AsyncFd::new` is deprecated for types that may not own their descriptor (its
        // safe replacement is `unsafe`, which this workspace forbids); an `OwnedFd`
        // owns it, so the hole cannot arise here.
        #[allow(deprecated)]
        let timer = AsyncFd::new(fd)?;
        let shared = Arc::new(Shared {
            queue: Mutex::new(Queue::default()),
            timer,
        });
        tokio::spawn(dispatch(Arc::downgrade(&shared)));
        Ok(Self { shared })
    }

    /// Resolves at `at` plus at most `slack` (and the wake-up's own latency, about
    /// 0.05 ms), never before.
    pub fn sleep_until(&self, at: Instant, slack: Duration) -> Sleep {
        Sleep {
            at,
            slack,
            shared: self.shared.clone(),
            registered: false,
        }
    }
}

/// Waits for the timer, wakes the due sleepers, re-arms for the next.
async fn dispatch(shared: Weak<Shared>) {
    loop {
        let Some(strong) = shared.upgrade() else {
            return;
        };
        // Hold only a weak reference while waiting, so dropping the last Pacer ends
        // this task (the readiness wait is woken when the fd is deregistered).
        let ready = {
            let timer = &strong.timer;
            tokio::time::timeout(Duration::from_secs(1), timer.readable()).await
        };
        if let Ok(Ok(mut guard)) = ready {
            let mut expirations = [0u8; 8];
            let _ = rustix::io::read(strong.timer.get_ref(), &mut expirations);
            guard.clear_ready();
        }
        let mut queue = strong.lock();
        let now = Instant::now();
        while queue
            .entries
            .peek()
            .is_some_and(|Reverse(entry)| entry.at <= now)
        {
            if let Some(Reverse(entry)) = queue.entries.pop() {
                entry.waker.wake();
            }
        }
        queue.armed = None;
        if let Some(next) = queue
            .entries
            .peek()
            .map(|Reverse(entry)| entry.at + entry.slack)
        {
            strong.arm(&mut queue, next);
        }
        drop(queue);
        if Arc::strong_count(&strong) == 1 {
            return;
        }
    }
}

/// The future of [`Pacer::sleep_until`].
pub struct Sleep {
    at: Instant,
    slack: Duration,
    shared: Arc<Shared>,
    registered: bool,
}

impl Future for Sleep {
    type Output = ();

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        if Instant::now() >= self.at {
            return Poll::Ready(());
        }
        if !self.registered {
            let shared = self.shared.clone();
            let mut queue = shared.lock();
            queue.entries.push(Reverse(Entry {
                at: self.at,
                slack: self.slack,
                waker: cx.waker().clone(),
            }));
            // The timer is set later than this sleeper needs (or not at all).
            let wanted = self.at + self.slack;
            if queue.armed.is_none_or(|armed| wanted < armed) {
                shared.arm(&mut queue, wanted);
            }
            self.registered = true;
        }
        Poll::Pending
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    // How close to its time a sleep ends is a benchmark figure (scripts/bench-loadgen.sh
    // at 100 and 1k req/s: corrected P50 minus service P50); here: never early, and
    // every sleeper wakes, interleaved and at once.
    const SLACK: Duration = Duration::from_micros(50);

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn sleeps_never_end_early_and_every_sleeper_wakes() {
        let pacer = Pacer::start().unwrap();
        let start = Instant::now() + Duration::from_millis(2);
        for i in 0..100u32 {
            let at = start + Duration::from_micros(u64::from(i) * 333);
            pacer.sleep_until(at, SLACK).await;
            assert!(Instant::now() >= at, "woke before its time");
        }
        let tasks: Vec<_> = (0..200u64)
            .map(|i| {
                let pacer = pacer.clone();
                tokio::spawn(async move {
                    let at = Instant::now() + Duration::from_micros(100 + (i * 7919) % 5000);
                    pacer.sleep_until(at, SLACK).await;
                    Instant::now() >= at
                })
            })
            .collect();
        for task in tasks {
            assert!(task.await.unwrap(), "woke before its time");
        }
        // A deadline already past resolves at once.
        pacer.sleep_until(Instant::now(), SLACK).await;
    }
}
