//! What a run tells the live view, one part at a time: a [`PartFeed`] turns the
//! generator's stages, seconds, scrapes and events, and the grader's verdicts, into
//! frames on the hub.

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};

use aimate_reports::grade::{Report, Verdict};
use aimate_reports::record::{Event, RunRecord, SecondRecord, ServerSample};
use aimate_reports::spec::SloSpec;

use crate::frames::{
    ClockFrame, EventFrame, PartFrame, PartState, RunFrame, SecondFrame, ServerFrame, StageFrame,
    VerdictsFrame,
};
use crate::hub::{Hub, Key};
use crate::judge::Judge;

/// The run as a whole: names it, and opens its parts.
#[derive(Clone)]
pub struct RunFeed {
    hub: Arc<Hub>,
    frame: Arc<Mutex<RunFrame>>,
}

impl RunFeed {
    pub fn new(hub: Arc<Hub>, title: &str) -> Self {
        let frame = RunFrame {
            title: title.to_owned(),
            started_at: humantime::format_rfc3339_seconds(std::time::SystemTime::now()).to_string(),
            ended: false,
        };
        hub.publish(Key::Run, "run", &frame);
        Self {
            hub,
            frame: Arc::new(Mutex::new(frame)),
        }
    }

    /// Every part is over: pages stop waiting for more.
    pub fn end(&self) {
        let mut frame = lock(&self.frame);
        frame.ended = true;
        self.hub.publish_last(Key::Run, "run", &*frame);
    }

    pub fn hub(&self) -> &Arc<Hub> {
        &self.hub
    }

    /// Opens the next part, graded against `spec` while it runs.
    pub fn part(
        &self,
        title: &str,
        kind: &'static str,
        planned_ms: u64,
        spec: SloSpec,
    ) -> PartFeed {
        let part = self.hub.next_part();
        let frame = PartFrame {
            part,
            title: title.to_owned(),
            kind,
            planned_ms,
            state: PartState::Running,
            verdict: None,
            report: None,
            written_to: None,
            note: None,
        };
        self.hub.publish(Key::Part(part), "part", &frame);
        PartFeed {
            inner: Arc::new(Inner {
                hub: self.hub.clone(),
                part,
                judge: Judge::new(spec, kind == "experiment"),
                frame: Mutex::new(frame),
                events: Mutex::new(BTreeMap::new()),
                last_scrape: Mutex::new(BTreeMap::new()),
                now_ms: AtomicU64::new(0),
                points: AtomicU64::new(0),
            }),
        }
    }
}

struct Inner {
    hub: Arc<Hub>,
    part: usize,
    judge: Judge,
    frame: Mutex<PartFrame>,
    /// Every event so far by id (spans replaced when they end), for grading so far.
    events: Mutex<BTreeMap<String, Event>>,
    /// Each instance's previous scrape, to turn counters into the interval's ratio.
    last_scrape: Mutex<BTreeMap<String, ServerSample>>,
    /// The part's clock as last published.
    now_ms: AtomicU64,
    /// Point events so far: each gets the next number as its id.
    points: AtomicU64,
}

/// One part's feed; cheap to clone, shared by the generator's tasks.
#[derive(Clone)]
pub struct PartFeed {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for PartFeed {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PartFeed")
            .field("part", &self.inner.part)
            .finish_non_exhaustive()
    }
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

impl PartFeed {
    pub fn part(&self) -> usize {
        self.inner.part
    }

    /// Pages connected now: work done only for a page can be skipped without one.
    pub fn watched(&self) -> bool {
        self.inner.hub.clients() > 0
    }

    pub fn spec(&self) -> &SloSpec {
        self.inner.judge.spec()
    }

    pub fn stage(
        &self,
        stage: usize,
        name: &str,
        target_rps: f64,
        start_ms: u64,
        steady_start_ms: u64,
        steady_end_ms: u64,
    ) {
        let part = self.inner.part;
        let frame = StageFrame {
            part,
            stage,
            name: name.to_owned(),
            target_rps,
            start_ms,
            steady_start_ms,
            steady_end_ms,
            lines: self.inner.judge.lines(target_rps),
        };
        self.inner
            .hub
            .publish(Key::Stage(part, stage), "stage", &frame);
    }

    /// A stage second as it stands; `target` is what the schedule meant for it.
    pub fn second(&self, stage: usize, second: &SecondRecord, target: u64) {
        let part = self.inner.part;
        let latency = &second.latency_us;
        let frame = SecondFrame {
            part,
            stage,
            t_ms: second.t_ms,
            in_steady: second.in_steady,
            target,
            sent: second.sent,
            started: second.started,
            errors: second
                .outcomes
                .iter()
                .filter(|(outcome, _)| aimate_reports::record::outcome_is_error(outcome))
                .map(|(_, n)| n)
                .sum(),
            outcomes: second.outcomes.clone(),
            p50_us: latency.quantile_micros(0.50),
            p95_us: latency.quantile_micros(0.95),
            p99_us: latency.quantile_micros(0.99),
            max_us: latency.max_micros(),
        };
        self.inner
            .hub
            .publish(Key::Second(part, stage, second.t_ms), "second", &frame);
    }

    pub fn server(&self, sample: &ServerSample) {
        let part = self.inner.part;
        let previous =
            lock(&self.inner.last_scrape).insert(sample.instance.clone(), sample.clone());
        // Counters restart with the process: only a difference within one process counts.
        let hit_ratio = previous
            .filter(|p| p.process == sample.process && p.up && sample.up)
            .and_then(|p| {
                let hits = sample.cache_hits_total? - p.cache_hits_total?;
                let misses = sample.cache_misses_total? - p.cache_misses_total?;
                (hits >= 0.0 && misses >= 0.0 && hits + misses > 0.0)
                    .then(|| hits / (hits + misses))
            });
        let frame = ServerFrame {
            part,
            t_ms: sample.t_ms,
            instance: sample.instance.clone(),
            up: sample.up,
            cache_hit_ratio: hit_ratio,
            db_connections_used: sample.db_connections_used,
            db_connections_max: sample.db_connections_max,
            resident_memory_bytes: sample.resident_memory_bytes,
        };
        let key = Key::Server(part, sample.t_ms, sample.instance.clone());
        self.inner.hub.publish(key, "server", &frame);
    }

    /// An event as it happens. `span` names a span (a chaos step) so that its end
    /// replaces its beginning; other events each get a name of their own.
    pub fn event(&self, event: &Event, span: Option<usize>) {
        let part = self.inner.part;
        let id = match span {
            Some(step) => format!("span-{step}-{}", event.t_ms),
            None => format!(
                "event-{}",
                self.inner.points.fetch_add(1, Ordering::Relaxed)
            ),
        };
        lock(&self.inner.events).insert(id.clone(), event.clone());
        let frame = EventFrame {
            part,
            id: id.clone(),
            t_ms: event.t_ms,
            end_ms: event.end_ms,
            kind: event.kind.name(),
            detail: event.detail.clone(),
            ongoing: span.is_some() && event.end_ms.is_none(),
        };
        self.inner
            .hub
            .publish(Key::Event(part, id), "event", &frame);
    }

    /// The events so far, spans still going ended at `now_ms` (as grading so far needs).
    pub fn events_so_far(&self, now_ms: u64) -> Vec<Event> {
        lock(&self.inner.events)
            .iter()
            .map(|(id, event)| {
                let mut event = event.clone();
                if id.starts_with("span-") && event.end_ms.is_none() {
                    event.end_ms = Some(now_ms);
                }
                event
            })
            .collect()
    }

    pub fn clock(&self, t_ms: u64, stage: usize) {
        let part = self.inner.part;
        self.inner.now_ms.store(t_ms, Ordering::Relaxed);
        let frame = ClockFrame { part, t_ms, stage };
        self.inner.hub.publish(Key::Clock(part), "clock", &frame);
    }

    /// Grades what was measured until `now_ms` and shows it as the verdict so far.
    pub fn grade_so_far(&self, record: &RunRecord, now_ms: u64) {
        let report = aimate_reports::grade::grade(record, self.inner.judge.spec());
        self.verdicts(&report, Judge::rows_so_far(&report), now_ms, false);
    }

    fn verdicts(
        &self,
        report: &Report,
        grades: Vec<crate::frames::VerdictRow>,
        t_ms: u64,
        last: bool,
    ) {
        let part = self.inner.part;
        let frame = VerdictsFrame {
            part,
            t_ms,
            r#final: last,
            verdict: report.verdict,
            grades,
        };
        self.inner
            .hub
            .publish(Key::Verdicts(part), "verdicts", &frame);
    }

    /// The part is over and graded: its final verdicts are the report's. `served`: the
    /// directory its reports were written to (with `index.html`), served under
    /// `/report/PART/`; `written_to`: where the reader finds what it wrote.
    pub fn finish(&self, report: &Report, served: Option<&Path>, written_to: Option<String>) {
        let part = self.inner.part;
        let now = self.inner.now_ms.load(Ordering::Relaxed);
        self.verdicts(report, Judge::rows_final(report), now, true);
        let mut frame = lock(&self.inner.frame);
        frame.state = PartState::Done;
        frame.verdict = Some(report.verdict);
        frame.written_to = written_to;
        if let Some(dir) = served {
            self.inner.hub.add_report_dir(part, dir.to_path_buf());
            frame.report = Some(format!("report/{part}/index.html"));
        }
        self.inner.hub.publish(Key::Part(part), "part", &*frame);
    }

    /// The part ended without a verdict.
    pub fn fail(&self, why: &str) {
        let mut frame = lock(&self.inner.frame);
        frame.state = PartState::Failed;
        frame.verdict = Some(Verdict::Invalid);
        frame.note = Some(why.to_owned());
        self.inner
            .hub
            .publish(Key::Part(self.inner.part), "part", &*frame);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use aimate_reports::record::EventKind;

    fn feed() -> (Arc<Hub>, PartFeed) {
        let hub = Hub::new();
        let run = RunFeed::new(hub.clone(), "test");
        let part = run.part("ladder", "ladder", 10_000, SloSpec::default());
        (hub, part)
    }

    #[test]
    fn a_span_ends_in_place_and_is_ended_now_while_it_goes() {
        let (hub, feed) = feed();
        let begun = Event {
            t_ms: 5_000,
            kind: EventKind::Fault,
            detail: "latency".into(),
            end_ms: None,
        };
        feed.event(&begun, Some(0));
        assert_eq!(feed.events_so_far(7_000)[0].end_ms, Some(7_000));
        feed.event(
            &Event {
                end_ms: Some(9_000),
                ..begun.clone()
            },
            Some(0),
        );
        let alert = Event {
            t_ms: 6_000,
            kind: EventKind::AlertFiring,
            detail: "AimateLatency severity=page".into(),
            end_ms: None,
        };
        feed.event(&alert, None);
        feed.event(&alert, None);
        let so_far = feed.events_so_far(20_000);
        assert_eq!(so_far.len(), 3, "one span, two alerts: {so_far:?}");
        let spans: Vec<_> = so_far
            .iter()
            .filter(|e| e.kind == EventKind::Fault)
            .collect();
        assert_eq!(spans[0].end_ms, Some(9_000));
        let snapshot = hub.subscribe().snapshot;
        let events: Vec<_> = snapshot.iter().filter(|f| f.event == "event").collect();
        assert_eq!(events.len(), 3);
        assert!(events.iter().any(|f| f.data.contains("\"ongoing\":false")
            && f.data.contains("\"end_ms\":9000")));
    }

    #[test]
    fn the_cache_hit_ratio_is_the_intervals_and_never_across_a_restart() {
        let (hub, feed) = feed();
        let sample = |t_ms, hits, misses, process: &str| ServerSample {
            t_ms,
            instance: "a".into(),
            process: Some(process.into()),
            up: true,
            cache_hits_total: Some(hits),
            cache_misses_total: Some(misses),
            ..ServerSample::down("a", t_ms)
        };
        feed.server(&sample(0, 100.0, 100.0, "p1"));
        feed.server(&sample(1000, 190.0, 110.0, "p1"));
        feed.server(&sample(2000, 5.0, 5.0, "p2"));
        let snapshot = hub.subscribe().snapshot;
        let ratios: Vec<serde_json::Value> = snapshot
            .iter()
            .filter(|f| f.event == "server")
            .map(|f| serde_json::from_str::<serde_json::Value>(&f.data).unwrap_or_default())
            .map(|v| v["cache_hit_ratio"].clone())
            .collect();
        assert_eq!(
            ratios,
            [
                serde_json::Value::Null,
                serde_json::json!(0.9),
                serde_json::Value::Null
            ]
        );
    }
}
