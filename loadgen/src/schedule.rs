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

#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Schedule {
    /// Intended sends per second, all users together.
    pub rate_per_second: f64,
    pub users: usize,
}

impl Schedule {
    /// Offset from the stage start of user `user`'s `k`th request.
    pub fn send_offset(&self, user: usize, k: u64) -> Duration {
        let slot = (k as f64) * (self.users as f64) + (user as f64);
        Duration::from_secs_f64(slot / self.rate_per_second)
    }

    /// How many requests user `user` sends whose intended time is before `span`.
    pub fn sends_before(&self, user: usize, span: Duration) -> u64 {
        let slots = (span.as_secs_f64() * self.rate_per_second).ceil() as u64;
        let user = user as u64;
        let users = self.users as u64;
        if slots <= user {
            0
        } else {
            (slots - user).div_ceil(users)
        }
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
