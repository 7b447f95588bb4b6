//! The abort guard (`[safeguard]` of an experiment, the error-rate guard of every run):
//! stops a run once `for_seconds` consecutive seconds each broke it.
//!
//! A second is an *intended* second on the run clock: the requests the schedule meant to
//! send in it, whenever their answers arrive (answers arrive in completion order, so a
//! slow second's last answers come after the next second's first). Each second is judged
//! exactly once, by wall clock, a grace after it ended: late enough for its answers
//! slower than the latency bound to have arrived or be known as missing. Requests the
//! stage's rate promised for the second that have not been answered by then are counted
//! as at least that slow, so a server that stops answering breaks the latency guard
//! instead of going unjudged.
//!
//! ```text
//! records ─▶ open seconds (by intended second) ─▶ close at end + grace ─▶ bad? ─▶ streak
//! ```

use std::collections::BTreeMap;
use std::time::Duration;

use aimate_reports::LatencyHistogram;

use crate::collect::{RequestRecord, StageWindow};

/// The rules: what makes a second bad, and how many bad seconds in a row stop the run.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct AbortGuard {
    pub max_error_rate: f64,
    /// (percentile, bound) of each second's latency from intended send.
    pub max_latency: Option<(f64, Duration)>,
    pub for_seconds: u32,
}

/// Why the guard stopped the run, at which second of the run clock.
#[derive(Debug, Clone, PartialEq)]
pub struct Tripped {
    pub second: u64,
    pub reason: String,
}

#[derive(Default)]
struct Second {
    total: u64,
    errors: u64,
    latency: LatencyHistogram,
}

pub struct Guard {
    rules: AbortGuard,
    grace: Duration,
    windows: Vec<StageWindow>,
    open: BTreeMap<u64, Second>,
    /// Seconds before this one are judged; their late answers are ignored.
    next_to_close: u64,
    bad_in_a_row: u32,
    tripped: bool,
}

impl Guard {
    pub fn new(rules: AbortGuard) -> Self {
        // A second is judged once its answers slower than the bound had time to arrive.
        let bound = rules.max_latency.map_or(Duration::ZERO, |(_, bound)| bound);
        Self {
            rules,
            grace: bound.max(Duration::from_secs(1)) + Duration::from_secs(1),
            windows: Vec::new(),
            open: BTreeMap::new(),
            next_to_close: 0,
            bad_in_a_row: 0,
            tripped: false,
        }
    }

    /// A stage begins: its seconds expect `target_rps` requests each.
    pub fn add_stage(&mut self, window: StageWindow) {
        self.windows.push(window);
    }

    pub fn record(&mut self, record: &RequestRecord) {
        let second = record.intended.as_secs();
        if second < self.next_to_close {
            return;
        }
        let entry = self.open.entry(second).or_default();
        entry.total += 1;
        entry.errors += u64::from(record.outcome.is_error());
        let latency = record.finished.saturating_sub(record.intended);
        entry.latency.record(micros(latency));
    }

    /// Judges every second whose grace is over at `now` (run clock). `Some` the first
    /// time the guard trips; never again after.
    pub fn close_until(&mut self, now: Duration) -> Option<Tripped> {
        let mut tripped = None;
        while Duration::from_secs(self.next_to_close + 1) + self.grace <= now {
            let second = self.next_to_close;
            self.next_to_close += 1;
            let data = self.open.remove(&second).unwrap_or_default();
            let waited = now.saturating_sub(Duration::from_secs(second + 1));
            let Some(verdict) = self.judge(second, data, waited) else {
                continue;
            };
            self.bad_in_a_row = match verdict {
                Some(_) => self.bad_in_a_row + 1,
                None => 0,
            };
            if let Some(why) = verdict
                && self.bad_in_a_row >= self.rules.for_seconds
                && !self.tripped
            {
                self.tripped = true;
                tripped = Some(Tripped {
                    second,
                    reason: format!(
                        "{why} for {} s in a row (the last at {second} s)",
                        self.rules.for_seconds
                    ),
                });
            }
        }
        tripped
    }

    /// `None`: nothing was meant to be sent in this second (between stages): it neither
    /// breaks nor mends a streak. `Some(None)`: a good second. `Some(Some(why))`: bad.
    fn judge(&self, second: u64, mut data: Second, waited: Duration) -> Option<Option<String>> {
        let expected = self.expected_in(second).floor() as u64;
        if data.total == 0 && expected == 0 {
            return None;
        }
        if data.total > 0 {
            let rate = data.errors as f64 / data.total as f64;
            if rate > self.rules.max_error_rate {
                return Some(Some(format!(
                    "error rate {:.1}% over {:.1}%",
                    rate * 100.0,
                    self.rules.max_error_rate * 100.0
                )));
            }
        }
        let Some((percentile, bound)) = self.rules.max_latency else {
            return Some(None);
        };
        // Promised but unanswered: at least as slow as the time waited since.
        let missing = expected.saturating_sub(data.total);
        if missing > 0 {
            data.latency.record_n(micros(waited), missing);
        }
        let observed = data
            .latency
            .quantile_micros(percentile / 100.0)
            .unwrap_or(0);
        if observed > micros(bound) {
            return Some(Some(format!(
                "p({percentile}) {:.0} ms over {bound:?}",
                observed as f64 / 1000.0
            )));
        }
        Some(None)
    }

    /// Requests the stages' rates promise for `second`.
    fn expected_in(&self, second: u64) -> f64 {
        let (from, to) = (Duration::from_secs(second), Duration::from_secs(second + 1));
        self.windows
            .iter()
            .map(|window| {
                let overlap = to
                    .min(window.steady_end)
                    .saturating_sub(from.max(window.start));
                window.target_rps * overlap.as_secs_f64()
            })
            .sum()
    }
}

fn micros(duration: Duration) -> u64 {
    u64::try_from(duration.as_micros()).unwrap_or(u64::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::collect::Outcome;

    fn window(rate: f64, from_s: u64, to_s: u64) -> StageWindow {
        StageWindow {
            plan_rps: rate,
            segment: crate::segment::Segment::WHOLE,
            name: "test".into(),
            target_rps: rate,
            start: Duration::from_secs(from_s),
            steady_start: Duration::from_secs(from_s),
            steady_end: Duration::from_secs(to_s),
        }
    }

    fn request(intended_ms: u64, latency_ms: u64, status: u16) -> RequestRecord {
        let intended = Duration::from_millis(intended_ms);
        RequestRecord {
            stage: 0,
            route: "GET /api/dashboard",
            intended,
            started: intended,
            finished: intended + Duration::from_millis(latency_ms),
            outcome: Outcome::Status(status),
        }
    }

    /// Ten requests a second for `seconds`, each `latency_ms(second)` slow, fed in
    /// completion order, closing seconds as the wall clock passes each completion.
    fn run(
        guard: &mut Guard,
        seconds: u64,
        latency_ms: impl Fn(u64) -> u64,
        status: impl Fn(u64) -> u16,
    ) -> Option<Tripped> {
        let mut records: Vec<RequestRecord> = (0..seconds * 10)
            .map(|i| {
                let second = i / 10;
                request(i * 100, latency_ms(second), status(second))
            })
            .collect();
        records.sort_by_key(|r| r.finished);
        let mut tripped = None;
        for record in records {
            if let Some(t) = guard.close_until(record.finished) {
                tripped.get_or_insert(t);
            }
            guard.record(&record);
        }
        tripped.or_else(|| guard.close_until(Duration::from_secs(seconds + 30)))
    }

    fn latency_rules() -> AbortGuard {
        AbortGuard {
            max_error_rate: 0.5,
            max_latency: Some((95.0, Duration::from_millis(200))),
            for_seconds: 3,
        }
    }

    #[test]
    fn a_latency_guard_stops_a_run_whose_seconds_are_slow() {
        let mut guard = Guard::new(latency_rules());
        guard.add_stage(window(10.0, 0, 20));
        // Fast for 5 s, then every answer takes 700 ms: seconds 5, 6, 7 are bad.
        let tripped = run(&mut guard, 20, |s| if s < 5 { 20 } else { 700 }, |_| 200);
        let tripped = tripped.expect("the latency guard fired");
        assert_eq!(tripped.second, 7, "{tripped:?}");
        assert!(
            tripped.reason.contains("p(95) 700 ms"),
            "{}",
            tripped.reason
        );
    }

    #[test]
    fn two_slow_seconds_are_not_three() {
        let mut guard = Guard::new(latency_rules());
        guard.add_stage(window(10.0, 0, 20));
        let slow = |s| if s == 4 || s == 5 || s == 9 { 700 } else { 20 };
        assert_eq!(run(&mut guard, 20, slow, |_| 200), None);
    }

    #[test]
    fn a_server_that_stops_answering_breaks_the_latency_guard() {
        let mut guard = Guard::new(latency_rules());
        guard.add_stage(window(10.0, 0, 60));
        for i in 0..30 {
            guard.record(&request(i * 100, 10, 200));
        }
        // From 3 s on, nothing comes back at all; the wall clock moves on.
        let tripped = (30..100)
            .find_map(|tenth| guard.close_until(Duration::from_millis(tenth * 100)))
            .expect("the guard fired on silence");
        assert_eq!(tripped.second, 5);
    }

    #[test]
    fn the_error_guard_counts_seconds_not_evaluations() {
        // Errors in seconds 2 and 3 only, with answers of 2 and 3 interleaved (slow and
        // fast): two bad seconds, however their records alternate.
        let rules = AbortGuard {
            max_error_rate: 0.1,
            max_latency: None,
            for_seconds: 3,
        };
        let mut guard = Guard::new(rules);
        guard.add_stage(window(10.0, 0, 20));
        let latency = |s| if s == 2 { 900 } else { 10 };
        let status = |s| if s == 2 || s == 3 { 500 } else { 200 };
        assert_eq!(run(&mut guard, 20, latency, status), None);
        // A third bad second in a row trips it.
        let mut guard = Guard::new(rules);
        guard.add_stage(window(10.0, 0, 20));
        let status = |s| if (2..=4).contains(&s) { 500 } else { 200 };
        let tripped = run(&mut guard, 20, latency, status).expect("three bad seconds");
        assert_eq!(tripped.second, 4);
        assert!(
            tripped.reason.contains("error rate 100.0%"),
            "{}",
            tripped.reason
        );
    }

    #[test]
    fn seconds_between_stages_neither_break_nor_mend_a_streak() {
        let mut guard = Guard::new(latency_rules());
        guard.add_stage(window(10.0, 0, 4));
        guard.add_stage(window(10.0, 6, 20));
        // Slow in 2, 3 (stage 1) and 6 (stage 2); 4 and 5 are a gap with no requests.
        for second in [0_u64, 1, 2, 3, 6, 7] {
            let latency = if matches!(second, 2 | 3 | 6) { 700 } else { 20 };
            for i in 0..10 {
                guard.record(&request(second * 1000 + i * 100, latency, 200));
            }
        }
        let tripped = guard.close_until(Duration::from_secs(30)).expect("tripped");
        assert_eq!(tripped.second, 6);
    }
}
