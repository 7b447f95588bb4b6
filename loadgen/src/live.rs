//! What the generator tells a live view while it runs: every second the stage seconds
//! that changed and where the run is; every few seconds, while a page watches, the
//! verdict so far (the grader's own, on the stages measured until now).
//!
//! It runs inside the collector task, which owns the histograms: a second's frame is
//! read from the very histogram the record will hold, and grading so far borrows the
//! histograms instead of copying them. Nothing here waits on a page (see aimate-live's
//! hub).

use std::sync::{Arc, Mutex};
use std::time::Duration;

use aimate_live::PartFeed;
use aimate_reports::SCHEMA_VERSION;
use aimate_reports::record::{RunMeta, RunRecord, ServerSample, ServerSource};

use crate::collect::Collector;

/// How often the changed seconds and the clock go out.
const PUBLISH_EVERY: Duration = Duration::from_secs(1);
/// How often the verdict so far is graded, while a page watches.
const GRADE_EVERY: Duration = Duration::from_secs(2);

/// The server samples scraped so far, shared by the scraper and the grading so far.
pub type SamplesSoFar = Arc<Mutex<Vec<ServerSample>>>;

pub struct LiveTicker {
    feed: PartFeed,
    target: String,
    source: ServerSource,
    samples: SamplesSoFar,
    published: Option<Duration>,
    graded: Option<Duration>,
}

fn millis(duration: Duration) -> u64 {
    u64::try_from(duration.as_millis()).unwrap_or(u64::MAX)
}

impl LiveTicker {
    pub fn new(
        feed: PartFeed,
        target: &str,
        source: ServerSource,
        samples: SamplesSoFar,
        collector: &mut Collector,
    ) -> Self {
        collector.track_changes();
        Self {
            feed,
            target: target.to_owned(),
            source,
            samples,
            published: None,
            graded: None,
        }
    }

    /// A stage begins (its window on the run clock).
    pub fn stage(&self, index: usize, window: &crate::collect::StageWindow) {
        self.feed.stage(
            index,
            &window.name,
            window.target_rps,
            millis(window.start),
            millis(window.steady_start),
            millis(window.steady_end),
        );
    }

    /// Called on every collector tick with the run clock's `now`.
    pub fn tick(&mut self, collector: &mut Collector, now: Duration) {
        if self.published.is_none_or(|at| now >= at + PUBLISH_EVERY) {
            self.published = Some(now);
            self.publish(collector, now);
        }
        if self.feed.watched() && self.graded.is_none_or(|at| now >= at + GRADE_EVERY) {
            self.graded = Some(now);
            self.grade(collector, now);
        }
    }

    /// The run's last answers are in: every second that changed goes out as final.
    pub fn flush(&mut self, collector: &mut Collector, now: Duration) {
        self.publish(collector, now);
    }

    fn publish(&self, collector: &mut Collector, now: Duration) {
        collector.take_changed(|stage, second, target| self.feed.second(stage, second, target));
        self.feed
            .clock(millis(now), collector.stage_count().saturating_sub(1));
    }

    fn grade(&self, collector: &mut Collector, now: Duration) {
        let now_ms = millis(now);
        let events = self.feed.events_so_far(now_ms);
        // The samples are lent to the record and put back, with any scraped meanwhile.
        let server = std::mem::take(&mut *lock(&self.samples));
        let server = collector.with_stages_so_far(now, |stages| {
            let record = RunRecord {
                schema_version: SCHEMA_VERSION,
                run: RunMeta {
                    target: self.target.clone(),
                    started_at: String::new(),
                    finished_at: String::new(),
                    generators: Vec::new(),
                    config: serde_json::Value::Null,
                    segment: None,
                },
                stages,
                server,
                server_source: self.source.clone(),
                events,
                aborted: None,
                writes: None,
                alerting: None,
            };
            self.feed.grade_so_far(&record, now_ms);
            (record.stages, record.server)
        });
        let mut samples = lock(&self.samples);
        let newer = std::mem::replace(&mut *samples, server);
        samples.extend(newer);
    }
}

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}
