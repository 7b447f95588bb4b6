//! The collector: the one owner of the histograms. Users send a [`RequestRecord`] per
//! request over a channel; the collector files it under its stage, route and second,
//! then turns everything into `StageRecord`s and judges whether each stage's numbers
//! can be graded at all.
//!
//! ```text
//! user ─┐
//! user ─┼─ RequestRecord ─▶ Collector::push ─▶ per stage: routes (steady window only),
//! user ─┘                                      timeline (one point per second)
//! ```

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use aimate_reports::record::{RouteRecord, SecondRecord, StageRecord, Validity};

use crate::schedule::Schedule;
use crate::segment::Segment;

/// What became of one request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    Status(u16),
    Timeout,
    ConnectError,
    OtherError,
}

impl Outcome {
    pub fn label(self) -> String {
        match self {
            Self::Status(code) => code.to_string(),
            Self::Timeout => "timeout".into(),
            Self::ConnectError => "connect_error".into(),
            Self::OtherError => "other_error".into(),
        }
    }

    /// An error for the error-rate SLO: 5xx, 429 and transport failures. Other 4xx are
    /// the client's doing (and the scenarios send some on purpose).
    pub fn is_error(self) -> bool {
        match self {
            Self::Status(code) => code >= 500 || code == 429,
            _ => true,
        }
    }
}

/// One request, stamped on the run's clock (time since the run started).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct RequestRecord {
    pub stage: usize,
    /// Route label: method and template, e.g. `GET /api/invoices/{id}`.
    pub route: &'static str,
    /// When the schedule wanted it sent.
    pub intended: Duration,
    /// When it was actually sent.
    pub started: Duration,
    /// When the response headers arrived (or the request failed).
    pub finished: Duration,
    pub outcome: Outcome,
}

/// A stage's place on the run clock.
#[derive(Debug, Clone, PartialEq)]
pub struct StageWindow {
    pub name: String,
    /// This generator's target: the plan's rate, or a segment's share of it.
    pub target_rps: f64,
    /// The plan's rate, every segment together.
    pub plan_rps: f64,
    pub segment: Segment,
    pub start: Duration,
    pub steady_start: Duration,
    pub steady_end: Duration,
}

/// A stage that delivered under this share of its target rate is not graded.
pub const MIN_RATE_SHARE: f64 = 0.95;
/// Generator CPU utilization (1.0 = all cores) above which it measured itself.
pub const MAX_GENERATOR_CPU: f64 = 0.95;

struct StageData {
    window: StageWindow,
    routes: BTreeMap<&'static str, RouteRecord>,
    seconds: BTreeMap<u64, SecondRecord>,
    sent_in_steady: u64,
    /// The earliest intended request: (intended, started).
    first_send: Option<(Duration, Duration)>,
}

impl StageData {
    /// How late the stage's first request left against its intended instant.
    fn first_send_late(&self) -> Option<Duration> {
        self.first_send
            .map(|(intended, started)| started.saturating_sub(intended))
    }
}

pub struct Collector {
    stages: Vec<StageData>,
    /// A shared start (`--start-at`): a stage whose first send left later than this is
    /// not graded.
    start_tolerance: Option<Duration>,
    /// Stage seconds changed since they were last taken (a live view's), when tracked.
    changed: Option<BTreeSet<(usize, u64)>>,
}

/// The timeline point of the stage second that `at` falls in.
fn second_of<'a>(
    seconds: &'a mut BTreeMap<u64, SecondRecord>,
    window: &StageWindow,
    at: Duration,
) -> &'a mut SecondRecord {
    let second = stage_second(window, at);
    let start = window.start + Duration::from_secs(second);
    seconds.entry(second).or_insert_with(|| SecondRecord {
        t_ms: millis(start),
        in_steady: start >= window.steady_start && start < window.steady_end,
        ..SecondRecord::default()
    })
}

/// Which stage second `at` (run clock) falls in.
fn stage_second(window: &StageWindow, at: Duration) -> u64 {
    at.saturating_sub(window.start).as_secs()
}

/// Requests this generator's schedule intends in `[from, to)` of the run clock, within
/// the stage (warm-up and steady window): counted slot by slot, so segments add up.
fn intended_between(window: &StageWindow, from: Duration, to: Duration) -> u64 {
    let schedule = Schedule {
        rate_per_second: window.plan_rps,
        users: 1,
        segment: window.segment,
    };
    let (from, to) = (from.max(window.start), to.min(window.steady_end));
    schedule.intended_between(
        from.saturating_sub(window.start),
        to.saturating_sub(window.start),
    )
}

/// Requests the schedule intends in the stage second starting at `t_ms` (run clock).
fn intended_in(window: &StageWindow, t_ms: u64) -> u64 {
    let from = Duration::from_millis(t_ms);
    intended_between(window, from, from + Duration::from_secs(1))
}

fn micros(duration: Duration) -> u64 {
    u64::try_from(duration.as_micros()).unwrap_or(u64::MAX)
}

fn millis(duration: Duration) -> u64 {
    u64::try_from(duration.as_millis()).unwrap_or(u64::MAX)
}

impl Collector {
    pub fn new(windows: Vec<StageWindow>) -> Self {
        let mut collector = Self {
            stages: Vec::new(),
            start_tolerance: None,
            changed: None,
        };
        for window in windows {
            collector.add_stage(window);
        }
        collector
    }

    /// Judges each stage's start: one whose first send left more than `tolerance` after
    /// its intended instant is INVALID (a distributed run's segments must start together).
    pub fn judge_start(&mut self, tolerance: Duration) {
        self.start_tolerance = Some(tolerance);
    }

    /// How late each stage's first request left, in stage order.
    pub fn first_send_late(&self) -> Vec<Option<Duration>> {
        self.stages.iter().map(StageData::first_send_late).collect()
    }

    /// Stages opened so far.
    pub fn stage_count(&self) -> usize {
        self.stages.len()
    }

    /// Opens the next stage; its records carry its index.
    pub fn add_stage(&mut self, window: StageWindow) {
        self.stages.push(StageData {
            window,
            routes: BTreeMap::new(),
            seconds: BTreeMap::new(),
            sent_in_steady: 0,
            first_send: None,
        });
    }

    pub fn push(&mut self, record: RequestRecord) {
        let Some(stage) = self.stages.get_mut(record.stage) else {
            return;
        };
        let corrected = micros(record.finished.saturating_sub(record.intended));
        let service = micros(record.finished.saturating_sub(record.started));
        let outcome = record.outcome.label();

        // Timeline seconds count from the stage start, so a whole-second warm-up puts
        // the steady window on second boundaries.
        let window = &stage.window;
        let in_steady =
            record.intended >= window.steady_start && record.intended < window.steady_end;
        let point = second_of(&mut stage.seconds, window, record.intended);
        point.sent += 1;
        *point.outcomes.entry(outcome.clone()).or_default() += 1;
        point.latency_us.record(corrected);
        second_of(&mut stage.seconds, window, record.started).started += 1;
        if let Some(changed) = &mut self.changed {
            changed.insert((record.stage, stage_second(window, record.intended)));
            changed.insert((record.stage, stage_second(window, record.started)));
        }

        if in_steady {
            let route = stage.routes.entry(record.route).or_default();
            route.latency_us.record(corrected);
            route.service_us.record(service);
            *route.outcomes.entry(outcome).or_default() += 1;
        }
        if record.started >= stage.window.steady_start && record.started < stage.window.steady_end {
            stage.sent_in_steady += 1;
        }
        if stage
            .first_send
            .is_none_or(|(intended, _)| record.intended < intended)
        {
            stage.first_send = Some((record.intended, record.started));
        }
    }

    /// The stages as records, each judged gradable or not. `generator_cpu` is the
    /// generator's CPU utilization during each stage (1.0 = all cores), if known.
    pub fn finish(self, generator_cpu: &[Option<f64>]) -> Vec<StageRecord> {
        let tolerance = self.start_tolerance;
        self.stages
            .into_iter()
            .enumerate()
            .map(|(index, stage)| {
                let cpu = generator_cpu.get(index).copied().flatten();
                stage_record(stage, cpu, None, tolerance)
            })
            .collect()
    }

    /// Starts noting which stage seconds change, for [`Collector::take_changed`].
    pub fn track_changes(&mut self) {
        self.changed = Some(BTreeSet::new());
    }

    /// Calls `f` with each stage second that changed since the last call, and the
    /// requests its schedule meant for it.
    pub fn take_changed(&mut self, mut f: impl FnMut(usize, &SecondRecord, u64)) {
        let Some(changed) = self.changed.as_mut().map(std::mem::take) else {
            return;
        };
        for (stage, second) in changed {
            if let Some(data) = self.stages.get(stage)
                && let Some(record) = data.seconds.get(&second)
            {
                f(stage, record, intended_in(&data.window, record.t_ms));
            }
        }
    }

    /// Calls `f` with the stages as records of what was measured until `now` (run
    /// clock): a stage's rate is judged on its steady window so far. The histograms are
    /// lent, not copied, and are back in the collector when `f` returns.
    pub fn with_stages_so_far<R>(
        &mut self,
        now: Duration,
        f: impl FnOnce(Vec<StageRecord>) -> (Vec<StageRecord>, R),
    ) -> R {
        let mut lent = Vec::with_capacity(self.stages.len());
        let mut keys = Vec::with_capacity(self.stages.len());
        for stage in &mut self.stages {
            let routes = std::mem::take(&mut stage.routes);
            let seconds = std::mem::take(&mut stage.seconds);
            keys.push((
                routes.keys().copied().collect::<Vec<_>>(),
                seconds.keys().copied().collect::<Vec<_>>(),
            ));
            let data = StageData {
                window: stage.window.clone(),
                routes,
                seconds,
                sent_in_steady: stage.sent_in_steady,
                first_send: stage.first_send,
            };
            lent.push(stage_record(data, None, Some(now), self.start_tolerance));
        }
        let (records, result) = f(lent);
        for ((stage, record), (route_keys, second_keys)) in
            self.stages.iter_mut().zip(records).zip(keys)
        {
            stage.routes = route_keys
                .into_iter()
                .zip(record.routes.into_values())
                .collect();
            stage.seconds = second_keys.into_iter().zip(record.timeline).collect();
        }
        result
    }
}

/// A stage's record, judged gradable or not; `so_far`: judged on its steady window
/// until then (a run still going), else on the whole window.
fn stage_record(
    stage: StageData,
    cpu: Option<f64>,
    so_far: Option<Duration>,
    start_tolerance: Option<Duration>,
) -> StageRecord {
    let window = &stage.window;
    let steady_until = so_far.map_or(window.steady_end, |now| {
        now.clamp(window.steady_start, window.steady_end)
    });
    let steady = steady_until
        .saturating_sub(window.steady_start)
        .as_secs_f64();
    let achieved_rps = if steady > 0.0 {
        stage.sent_in_steady as f64 / steady
    } else {
        0.0
    };
    let mut reasons = Vec::new();
    let mut held_back_by_server = false;
    if achieved_rps < window.target_rps * MIN_RATE_SHARE {
        let mut reason = format!(
            "achieved {achieved_rps:.1} req/s, under {:.0}% of the {:.0} req/s target",
            MIN_RATE_SHARE * 100.0,
            window.target_rps
        );
        // Say which side held the rate back, when the numbers tell.
        let mut service = aimate_reports::LatencyHistogram::new();
        for route in stage.routes.values() {
            let _ = service.add(&route.service_us);
        }
        let connect_errors: u64 = stage
            .routes
            .values()
            .map(|r| r.outcomes.get("connect_error").copied().unwrap_or(0))
            .sum();
        if let (Some(cpu), Some(p50)) = (cpu, service.quantile_micros(0.5))
            && cpu <= MAX_GENERATOR_CPU
        {
            held_back_by_server = connect_errors == 0;
            reason.push_str(&format!(
                " (the generator was not CPU-bound ({:.0}%); its users were waiting on responses, service P50 {:.1} ms)",
                cpu * 100.0,
                p50 as f64 / 1000.0
            ));
        }
        reasons.push(reason);
    }
    if let Some(cpu) = cpu
        && cpu > MAX_GENERATOR_CPU
    {
        reasons.push(format!(
            "the load generator used {:.0}% of its CPU: it measured its own queueing",
            cpu * 100.0
        ));
    }
    if let (Some(tolerance), Some(late)) = (start_tolerance, stage.first_send_late())
        && late > tolerance
    {
        reasons.push(format!(
            "its first request left {:.1} ms after the planned instant (tolerance {:.1} ms): \
             this generator did not start with the others",
            late.as_secs_f64() * 1000.0,
            tolerance.as_secs_f64() * 1000.0
        ));
    }
    let intended = intended_between(window, window.steady_start, steady_until);
    StageRecord {
        name: window.name.clone(),
        target_rps: window.target_rps,
        unsent: intended.saturating_sub(stage.sent_in_steady),
        started_ms: millis(window.start),
        steady_start_ms: millis(window.steady_start),
        steady_end_ms: millis(window.steady_end),
        sent: stage.sent_in_steady,
        achieved_rps,
        routes: stage
            .routes
            .into_iter()
            .map(|(route, record)| (route.to_owned(), record))
            .collect(),
        timeline: stage
            .seconds
            .into_values()
            .map(|mut second| {
                second.unsent = intended_in(window, second.t_ms).saturating_sub(second.sent);
                second
            })
            .collect(),
        validity: Validity {
            // Only a server-bound shortfall: other reasons still stand.
            held_back_by_server: held_back_by_server && reasons.len() == 1,
            valid: reasons.is_empty(),
            reasons,
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn window() -> StageWindow {
        StageWindow {
            name: "100".into(),
            target_rps: 100.0,
            plan_rps: 100.0,
            segment: Segment::WHOLE,
            start: Duration::ZERO,
            steady_start: Duration::from_secs(1),
            steady_end: Duration::from_secs(4),
        }
    }

    fn record(intended_ms: u64, service_ms: u64, lag_ms: u64, outcome: Outcome) -> RequestRecord {
        let intended = Duration::from_millis(intended_ms);
        let started = intended + Duration::from_millis(lag_ms);
        RequestRecord {
            stage: 0,
            route: "GET /api/dashboard",
            intended,
            started,
            finished: started + Duration::from_millis(service_ms),
            outcome,
        }
    }

    #[test]
    fn a_shortfall_says_how_many_were_never_sent_and_whether_the_server_held_it_back() {
        let half_rate = |cpu: f64| {
            let mut collector = Collector::new(vec![window()]);
            // 150 of the 300 intended requests in the 3 s steady window, each slow.
            for i in 0..150 {
                collector.push(record(1000 + i * 20, 900, 0, Outcome::Status(200)));
            }
            collector.finish(&[Some(cpu)]).remove(0)
        };
        let server_bound = half_rate(0.2);
        assert!(!server_bound.validity.valid);
        assert_eq!(server_bound.unsent, 150);
        // Second by second too: 50 of each steady second's 100 never went out.
        let steady: Vec<u64> = server_bound
            .timeline
            .iter()
            .filter(|s| s.in_steady)
            .map(|s| s.unsent)
            .collect();
        assert_eq!(steady, vec![50, 50, 50]);
        assert!(
            server_bound.validity.held_back_by_server,
            "{:?}",
            server_bound.validity
        );
        // A CPU-bound generator held the rate back itself: no such conclusion.
        let generator_bound = half_rate(0.99);
        assert!(!generator_bound.validity.held_back_by_server);
    }

    #[test]
    fn corrected_latency_counts_from_the_intended_time() {
        let mut collector = Collector::new(vec![window()]);
        // 300 requests at 100/s from t=1s: all in the steady window. Every tenth was
        // sent 40 ms late because the generator was held up.
        for i in 0..300 {
            let lag = if i % 10 == 0 { 40 } else { 0 };
            collector.push(record(1000 + i * 10, 2, lag, Outcome::Status(200)));
        }
        let stages = collector.finish(&[Some(0.2)]);
        let stage = &stages[0];
        let route = &stage.routes["GET /api/dashboard"];
        assert_eq!(route.latency_us.count(), 300);
        assert!(route.service_us.quantile_micros(1.0).unwrap() < 2_100);
        assert!(
            route.latency_us.quantile_micros(1.0).unwrap() >= 41_000,
            "lag shows in corrected latency"
        );
        assert_eq!(route.outcomes["200"], 300);
        assert!(
            (stage.achieved_rps - 100.0).abs() < 1.0,
            "{}",
            stage.achieved_rps
        );
        assert!(stage.validity.valid, "{:?}", stage.validity);
        assert_eq!(stage.timeline.iter().filter(|p| p.in_steady).count(), 3);
        // Every request was sent, some late: per second, actual sends follow the lag.
        let (sent, started): (u64, u64) = stage
            .timeline
            .iter()
            .fold((0, 0), |(a, b), p| (a + p.sent, b + p.started));
        assert_eq!((sent, started), (300, 300));
    }

    #[test]
    fn warmup_is_timelined_but_not_graded() {
        let mut collector = Collector::new(vec![window()]);
        collector.push(record(500, 1, 0, Outcome::Status(200)));
        let stages = collector.finish(&[None]);
        assert!(stages[0].routes.is_empty());
        assert_eq!(stages[0].timeline.len(), 1);
        assert!(!stages[0].timeline[0].in_steady);
    }

    #[test]
    fn a_stage_is_invalid_when_the_run_cannot_be_trusted() {
        let mut collector = Collector::new(vec![window()]);
        for i in 0..150 {
            collector.push(record(1000 + i * 20, 1, 0, Outcome::Timeout));
        }
        let stage = &collector.finish(&[Some(0.99)])[0];
        assert!(!stage.validity.valid);
        let reasons = stage.validity.reasons.join("; ");
        assert!(reasons.contains("under 95%"), "{reasons}");
        assert!(reasons.contains("CPU"), "{reasons}");
        assert_eq!(stage.routes["GET /api/dashboard"].outcomes["timeout"], 150);
    }

    #[test]
    fn error_kinds_agree_with_the_report_rule() {
        for outcome in [
            Outcome::Status(200),
            Outcome::Status(404),
            Outcome::Status(429),
            Outcome::Status(503),
            Outcome::Timeout,
            Outcome::ConnectError,
            Outcome::OtherError,
        ] {
            assert_eq!(
                outcome.is_error(),
                aimate_reports::record::outcome_is_error(&outcome.label()),
                "{outcome:?}"
            );
        }
    }

    #[test]
    fn changed_seconds_are_told_once_each_with_what_the_schedule_meant() {
        let mut collector = Collector::new(vec![window()]);
        collector.track_changes();
        collector.push(record(1000, 2, 0, Outcome::Status(200)));
        collector.push(record(1500, 2, 600, Outcome::Status(503)));
        let mut told = Vec::new();
        collector.take_changed(|stage, second, target| {
            told.push((stage, second.t_ms, second.sent, second.started, target));
        });
        // The second request was meant for second 1 and left in second 2.
        assert_eq!(told, vec![(0, 1000, 2, 1, 100), (0, 2000, 0, 1, 100)]);
        let mut again = 0;
        collector.take_changed(|_, _, _| again += 1);
        assert_eq!(again, 0, "nothing changed since");
    }

    #[test]
    fn grading_so_far_borrows_the_histograms_and_gives_them_back_whole() {
        let fill = |collector: &mut Collector| {
            for i in 0..200 {
                collector.push(record(1000 + i * 10, 1 + i % 7, 0, Outcome::Status(200)));
            }
        };
        let (mut lent, mut kept) = (
            Collector::new(vec![window()]),
            Collector::new(vec![window()]),
        );
        fill(&mut lent);
        fill(&mut kept);
        // 2 s into the 3 s steady window: 200 sent is the full rate so far.
        let so_far = lent.with_stages_so_far(Duration::from_secs(3), |stages| {
            let stage = &stages[0];
            let seen = (
                stage.achieved_rps,
                stage.validity.valid,
                stage.routes["GET /api/dashboard"].latency_us.count(),
                stage.timeline.len(),
            );
            (stages, seen)
        });
        assert_eq!(so_far, (100.0, true, 200, 2));
        let (after, never_lent) = (lent.finish(&[None]), kept.finish(&[None]));
        let routes = |stage: &StageRecord| -> Vec<_> {
            stage
                .routes
                .iter()
                .map(|(name, r)| {
                    (
                        name.clone(),
                        r.latency_us.clone(),
                        r.service_us.clone(),
                        r.outcomes.clone(),
                    )
                })
                .collect()
        };
        assert_eq!(routes(&after[0]), routes(&never_lent[0]));
        assert_eq!(after[0].timeline.len(), never_lent[0].timeline.len());
        for (a, b) in after[0].timeline.iter().zip(&never_lent[0].timeline) {
            assert_eq!(
                (a.t_ms, a.sent, &a.latency_us),
                (b.t_ms, b.sent, &b.latency_us)
            );
        }
        // Judged on the whole window now: 200 of 300 is a shortfall.
        assert!(!after[0].validity.valid);
    }

    #[test]
    fn error_kinds() {
        assert!(Outcome::Status(503).is_error() && Outcome::Status(429).is_error());
        assert!(!Outcome::Status(404).is_error() && !Outcome::Status(201).is_error());
        assert!(Outcome::Timeout.is_error() && Outcome::ConnectError.is_error());
    }
}
