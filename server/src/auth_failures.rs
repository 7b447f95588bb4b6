//! Failed authentications per client address.
//!
//! Every key the auth cache has not seen costs a database lookup, so a client sending
//! random keys could make the server query once per request. Each failure counts
//! against its address (GCRA: `per_second` sustained, ten times that at once); an
//! address over its budget may not look up new keys (429 with `Retry-After`, no query)
//! until the budget refills. Keys already in the auth cache keep working from it, so
//! the well-behaved clients behind a shared address (a NAT, a load balancer) are not
//! locked out by one bad neighbour.

use std::net::IpAddr;
use std::num::NonZeroU32;
use std::sync::Arc;
use std::time::{Duration, Instant};

use governor::clock::{Clock, DefaultClock};
use governor::{DefaultDirectRateLimiter, Quota, RateLimiter};

/// Addresses remembered at once; beyond it the least recently seen are forgotten.
const MAX_ADDRESSES: u64 = 100_000;
/// An address with no failure for this long starts afresh.
const FORGET_AFTER: Duration = Duration::from_secs(600);

pub struct AuthFailures {
    quota: Quota,
    per_address: moka::sync::Cache<IpAddr, Arc<DefaultDirectRateLimiter>>,
    blocked_until: moka::sync::Cache<IpAddr, Instant>,
    clock: DefaultClock,
}

impl AuthFailures {
    /// `None` when `per_second` is 0 (not limited).
    pub fn new(per_second: u32) -> Option<Self> {
        let per_second = NonZeroU32::new(per_second)?;
        let burst = per_second.saturating_mul(NonZeroU32::new(10)?);
        Some(Self {
            quota: Quota::per_second(per_second).allow_burst(burst),
            per_address: address_cache(),
            blocked_until: address_cache(),
            clock: DefaultClock::default(),
        })
    }

    /// While `address` is over its budget: how long until it may look up new keys.
    pub fn blocked(&self, address: IpAddr) -> Option<Duration> {
        let until = self.blocked_until.get(&address)?;
        let left = until.checked_duration_since(Instant::now())?;
        (!left.is_zero()).then_some(left)
    }

    /// Counts one failed authentication from `address`.
    pub fn failed(&self, address: IpAddr) {
        let limiter = self
            .per_address
            .get_with(address, || Arc::new(RateLimiter::direct(self.quota)));
        if let Err(not_until) = limiter.check() {
            let wait = not_until.wait_time_from(self.clock.now());
            self.blocked_until.insert(address, Instant::now() + wait);
        }
    }
}

fn address_cache<V: Clone + Send + Sync + 'static>() -> moka::sync::Cache<IpAddr, V> {
    moka::sync::Cache::builder()
        .max_capacity(MAX_ADDRESSES)
        .time_to_idle(FORGET_AFTER)
        .build()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_address_is_blocked_after_its_burst_of_failures_and_others_are_not() {
        let failures = AuthFailures::new(1).unwrap();
        let (noisy, quiet): (IpAddr, IpAddr) =
            ("10.0.0.1".parse().unwrap(), "10.0.0.2".parse().unwrap());
        for _ in 0..10 {
            assert_eq!(failures.blocked(noisy), None);
            failures.failed(noisy);
        }
        // The eleventh failure is over the burst of 10.
        failures.failed(noisy);
        let wait = failures.blocked(noisy).expect("blocked");
        assert!(
            wait > Duration::ZERO && wait <= Duration::from_secs(1),
            "{wait:?}"
        );
        assert_eq!(failures.blocked(quiet), None);
        assert!(AuthFailures::new(0).is_none());
    }
}
