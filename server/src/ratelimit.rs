//! Per-API-key rate limiting (GCRA). Handlers never see it: the auth middleware asks the
//! [`RateLimiter`] trait for a [`Decision`] and turns it into `RateLimit-*` headers or a
//! 429. A shared Redis limiter can implement the same trait for multi-instance setups.

use std::num::NonZeroU32;
use std::time::Duration;

use async_trait::async_trait;
use governor::clock::{Clock, DefaultClock};
use governor::middleware::StateInformationMiddleware;
use governor::state::keyed::DefaultKeyedStateStore;
use governor::{Quota, RateLimiter as Governor};

/// The outcome of one check, with what the `RateLimit-*` headers need.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Decision {
    pub allowed: bool,
    /// Requests the key may send in a burst (`RateLimit-Limit`).
    pub limit: u32,
    /// Requests left in the current burst (`RateLimit-Remaining`).
    pub remaining: u32,
    /// Until the next request would be allowed (`Retry-After`, on a 429), or until the
    /// burst is fully replenished (`RateLimit-Reset`) when allowed.
    pub reset_after: Duration,
}

/// The `RateLimit-Policy` a key's limit reads as (the IETF draft's `quota;w=window`): the
/// burst, and the seconds the sustained rate takes to refill it, so a client can work out
/// the sustained rate (`400;w=2`: 200 requests a second, 400 at once). The window is
/// rounded up, so a rate read from it never exceeds the real one. `None` when disabled.
pub fn policy(per_second: u32, burst: u32) -> Option<String> {
    if per_second == 0 {
        return None;
    }
    let burst = burst.max(1);
    let window = burst.div_ceil(per_second).max(1);
    Some(format!("{burst};w={window}"))
}

#[async_trait]
pub trait RateLimiter: Send + Sync {
    async fn check(&self, key: i64) -> Decision;
}

type KeyedGovernor =
    Governor<i64, DefaultKeyedStateStore<i64>, DefaultClock, StateInformationMiddleware>;

/// In-process GCRA limiter keyed by tenant.
pub struct LocalRateLimiter {
    governor: KeyedGovernor,
    clock: DefaultClock,
    burst: NonZeroU32,
    replenish_interval: Duration,
}

impl LocalRateLimiter {
    /// `per_second` sustained, `burst` at once. `None` if `per_second` is 0 (disabled).
    pub fn new(per_second: u32, burst: u32) -> Option<Self> {
        let per_second = NonZeroU32::new(per_second)?;
        let burst = NonZeroU32::new(burst.max(1))?;
        let quota = Quota::per_second(per_second).allow_burst(burst);
        let governor = Governor::keyed(quota).with_middleware::<StateInformationMiddleware>();
        Some(Self {
            governor,
            clock: DefaultClock::default(),
            burst,
            replenish_interval: quota.replenish_interval(),
        })
    }

    /// Drops state for keys whose bursts have fully refilled; without it the key map
    /// only grows.
    pub fn forget_idle_keys(&self) {
        self.governor.retain_recent();
        self.governor.shrink_to_fit();
    }
}

#[async_trait]
impl RateLimiter for LocalRateLimiter {
    async fn check(&self, key: i64) -> Decision {
        let limit = self.burst.get();
        match self.governor.check_key(&key) {
            Ok(snapshot) => {
                let remaining = snapshot.remaining_burst_capacity();
                let used = limit.saturating_sub(remaining);
                Decision {
                    allowed: true,
                    limit,
                    remaining,
                    reset_after: self.replenish_interval * used,
                }
            }
            Err(not_until) => Decision {
                allowed: false,
                limit,
                remaining: 0,
                reset_after: not_until.wait_time_from(self.clock.now()),
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_policy_gives_the_burst_and_a_window_no_faster_than_the_rate() {
        assert_eq!(policy(200, 400).as_deref(), Some("400;w=2"));
        assert_eq!(policy(50, 50).as_deref(), Some("50;w=1"));
        // 400 at 300/s refills in 1.33 s: read as 200/s, never as more than 300.
        assert_eq!(policy(300, 400).as_deref(), Some("400;w=2"));
        assert_eq!(policy(0, 400), None);
    }

    #[tokio::test]
    async fn burst_then_reject_per_key() {
        let limiter = LocalRateLimiter::new(1, 3).unwrap();
        for expected_remaining in [2, 1, 0] {
            let decision = limiter.check(7).await;
            assert!(decision.allowed);
            assert_eq!(decision.remaining, expected_remaining);
        }
        let rejected = limiter.check(7).await;
        assert!(!rejected.allowed);
        assert!(
            rejected.reset_after > Duration::ZERO && rejected.reset_after <= Duration::from_secs(1)
        );
        // Another key has its own budget.
        assert!(limiter.check(8).await.allowed);
    }

    #[test]
    fn zero_rate_disables() {
        assert!(LocalRateLimiter::new(0, 10).is_none());
    }
}
