//! The open-model schedule: intended send times spaced evenly at the target rate
//! (wrk2-style), dealt round-robin to the users, so each user owns an even, smooth slice
//! and the sum is exactly the target rate however many users there are.
//!
//! ```text
//! rate 4/s, 2 users:   t = 0     250   500   750   1000 ms …
//!                      user  0     1     0     1     0
//! ```
//!
//! A user that falls behind (slow responses) sends its next request at once; its
//! latency is still measured from the intended time, which is what corrects for
//! coordinated omission. Enough users are started that one slow response does not
//! hold back the rate.

use std::time::Duration;

use crate::segment::Segment;

#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Schedule {
    /// Intended sends per second of the whole plan (every segment together).
    pub rate_per_second: f64,
    /// This generator's users.
    pub users: usize,
    /// Which of the plan's slots are this generator's ([`Segment::WHOLE`]: all).
    pub segment: Segment,
}

impl Schedule {
    /// The global slot of user `user`'s `k`th request: this segment's local slots are
    /// dealt round-robin to its users.
    pub fn global_slot(&self, user: usize, k: u64) -> u64 {
        self.segment
            .global_slot(k * self.users as u64 + user as u64)
    }

    /// Offset from the stage start of user `user`'s `k`th request.
    pub fn send_offset(&self, user: usize, k: u64) -> Duration {
        Duration::from_secs_f64(self.global_slot(user, k) as f64 / self.rate_per_second)
    }

    /// Global slots intended before `offset` from the stage start.
    fn slots_before(&self, offset: Duration) -> u64 {
        (offset.as_secs_f64() * self.rate_per_second).ceil() as u64
    }

    /// How many requests user `user` sends whose intended time is before `span`.
    pub fn sends_before(&self, user: usize, span: Duration) -> u64 {
        let local = self.segment.owned_below(self.slots_before(span));
        let user = user as u64;
        if local <= user {
            0
        } else {
            (local - user).div_ceil(self.users as u64)
        }
    }

    /// Requests this generator's schedule intends in `[from, to)` (stage clock): exact,
    /// so that the segments' counts add up to the plan's.
    pub fn intended_between(&self, from: Duration, to: Duration) -> u64 {
        if to <= from {
            return 0;
        }
        let owned = |offset| self.segment.owned_below(self.slots_before(offset));
        owned(to) - owned(from)
    }

    /// Users needed so that the rate holds while responses take up to `latency`:
    /// each user can have one request in flight.
    pub fn users_for(rate_per_second: f64, latency: Duration, max_users: usize) -> usize {
        let needed = (rate_per_second * latency.as_secs_f64()).ceil() as usize;
        needed.clamp(1, max_users.max(1))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slots_interleave_evenly() {
        let schedule = Schedule {
            rate_per_second: 4.0,
            users: 2,
            segment: Segment::WHOLE,
        };
        assert_eq!(schedule.send_offset(0, 0), Duration::ZERO);
        assert_eq!(schedule.send_offset(1, 0), Duration::from_millis(250));
        assert_eq!(schedule.send_offset(0, 1), Duration::from_millis(500));
        assert_eq!(schedule.send_offset(1, 1), Duration::from_millis(750));
    }

    #[test]
    fn all_users_together_hit_the_rate_exactly() {
        for (rate, users) in [(100.0, 3), (1000.0, 64), (10_000.0, 500), (7.0, 10)] {
            let schedule = Schedule {
                rate_per_second: rate,
                users,
                segment: Segment::WHOLE,
            };
            let span = Duration::from_secs(30);
            let total: u64 = (0..users).map(|u| schedule.sends_before(u, span)).sum();
            assert_eq!(total, (rate * 30.0) as u64, "rate {rate} users {users}");
            // And every counted send really is before the end.
            for user in 0..users {
                let n = schedule.sends_before(user, span);
                if n > 0 {
                    assert!(schedule.send_offset(user, n - 1) < span);
                }
                assert!(schedule.send_offset(user, n) >= span);
            }
        }
    }

    #[test]
    fn segments_together_send_the_single_schedule_at_the_same_instants() {
        for count in 1..=16_u32 {
            for rate in [7.0, 100.0, 333.0, 1000.0, 2500.5] {
                let span = Duration::from_secs(3);
                let whole = Schedule {
                    rate_per_second: rate,
                    users: 1,
                    segment: Segment::WHOLE,
                };
                let mut union = Vec::new();
                for index in 0..count {
                    let segment = Segment { index, count };
                    let users = 1 + (index as usize % 3);
                    let schedule = Schedule {
                        rate_per_second: rate,
                        users,
                        segment,
                    };
                    for user in 0..users {
                        for k in 0..schedule.sends_before(user, span) {
                            assert!(segment.owns(schedule.global_slot(user, k)));
                            union.push(schedule.send_offset(user, k));
                        }
                    }
                    // No burst: a user's sends are its slots, users × N slots apart.
                    let gap = schedule.send_offset(0, 1) - schedule.send_offset(0, 0);
                    let expected = (users as u64 * u64::from(count)) as f64 / rate;
                    assert!(
                        (gap.as_secs_f64() - expected).abs() < 1e-6,
                        "N = {count}, rate {rate}: {gap:?}"
                    );
                }
                union.sort();
                let single: Vec<Duration> = (0..whole.sends_before(0, span))
                    .map(|k| whole.send_offset(0, k))
                    .collect();
                assert_eq!(union, single, "N = {count}, rate {rate}");
                // Every second's intended count sums to the plan's.
                for second in 0..3 {
                    let (from, to) = (Duration::from_secs(second), Duration::from_secs(second + 1));
                    let summed: u64 = (0..count)
                        .map(|index| Schedule {
                            rate_per_second: rate,
                            users: 4,
                            segment: Segment { index, count },
                        })
                        .map(|s| s.intended_between(from, to))
                        .sum();
                    assert_eq!(summed, whole.intended_between(from, to));
                }
            }
        }
    }

    #[test]
    fn user_count_covers_latency_within_a_cap() {
        assert_eq!(
            Schedule::users_for(10_000.0, Duration::from_millis(50), 2000),
            500
        );
        assert_eq!(
            Schedule::users_for(100.0, Duration::from_millis(1), 2000),
            1
        );
        assert_eq!(Schedule::users_for(1e6, Duration::from_secs(1), 2000), 2000);
    }
}
