//! A target's own per-key rate limit, as it advertises it (`RateLimit-Limit`,
//! `RateLimit-Policy: quota;w=window`), and the tenant count that keeps a run under it.

use serde::Serialize;

/// What the target said about its limit on an ordinary answer.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct AdvertisedLimit {
    /// `RateLimit-Limit`: requests a key may send at once.
    pub limit: Option<u64>,
    /// `RateLimit-Policy`, as sent.
    pub policy: Option<String>,
    /// Requests a second a key may keep up: the policy's quota over its window.
    pub sustained_per_second: Option<f64>,
}

impl AdvertisedLimit {
    /// From the answer's headers; `None` when the target advertises no limit.
    pub fn from_headers(headers: &reqwest::header::HeaderMap) -> Option<Self> {
        let text = |name: &str| {
            headers
                .get(name)
                .and_then(|v| v.to_str().ok())
                .map(str::trim)
                .filter(|v| !v.is_empty())
        };
        let limit = text("ratelimit-limit").and_then(|v| v.parse::<u64>().ok());
        let policy = text("ratelimit-policy").map(str::to_owned);
        if limit.is_none() && policy.is_none() {
            return None;
        }
        let sustained_per_second = policy.as_deref().and_then(sustained_rate);
        Some(Self {
            limit,
            policy,
            sustained_per_second,
        })
    }

    /// `` `RateLimit-Policy: 400;w=2`, 200 req/s per key ``, or what is known of it.
    pub fn describe(&self) -> String {
        aimate_reports::summary::describe_limit(
            self.limit,
            self.policy.as_deref(),
            self.sustained_per_second,
        )
    }
}

/// The sustained rate of a policy `quota;w=seconds[;…]` (the first policy if several).
fn sustained_rate(policy: &str) -> Option<f64> {
    let first = policy.split(',').next()?;
    let mut parts = first.split(';').map(str::trim);
    let quota: f64 = parts.next()?.parse().ok()?;
    let window: f64 = parts
        .find_map(|p| p.strip_prefix("w="))
        .and_then(|w| w.parse().ok())?;
    (quota > 0.0 && window > 0.0).then(|| quota / window)
}

/// Each tenant stays at or under this share of the target's sustained per-key rate.
pub const AUTO_SHARE: f64 = 0.8;

/// Tenants needed so that `fastest_rate` split evenly keeps each under [`AUTO_SHARE`] of
/// the sustained rate; 1 when the target advertises no sustained rate.
pub fn tenants_for(fastest_rate: f64, limit: Option<&AdvertisedLimit>) -> usize {
    let Some(rate) = limit.and_then(|l| l.sustained_per_second) else {
        return 1;
    };
    let tenants = (fastest_rate / (AUTO_SHARE * rate)).ceil();
    if tenants.is_finite() && tenants >= 1.0 {
        tenants as usize
    } else {
        1
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(pairs: &[(&'static str, &'static str)]) -> reqwest::header::HeaderMap {
        let mut map = reqwest::header::HeaderMap::new();
        for (k, v) in pairs {
            map.insert(*k, reqwest::header::HeaderValue::from_static(v));
        }
        map
    }

    #[test]
    fn the_policy_gives_the_sustained_rate() {
        let limit = AdvertisedLimit::from_headers(&headers(&[
            ("ratelimit-limit", "400"),
            ("ratelimit-policy", "400;w=2"),
        ]))
        .unwrap();
        assert_eq!(limit.sustained_per_second, Some(200.0));
        assert_eq!(
            limit.describe(),
            "`RateLimit-Policy: 400;w=2`, 200 req/s per key"
        );
        assert_eq!(
            sustained_rate("100;w=60;comment=\"x\", 10;w=1"),
            Some(100.0 / 60.0)
        );
        assert!(AdvertisedLimit::from_headers(&headers(&[])).is_none());
    }

    #[test]
    fn auto_keeps_each_tenant_under_80_percent_of_the_sustained_rate() {
        let limit = AdvertisedLimit {
            limit: Some(400),
            policy: Some("400;w=2".into()),
            sustained_per_second: Some(200.0),
        };
        // 1,000 req/s over tenants of at most 160 req/s each: 7 (142.9 each).
        assert_eq!(tenants_for(1000.0, Some(&limit)), 7);
        assert_eq!(tenants_for(100.0, Some(&limit)), 1);
        assert_eq!(tenants_for(1000.0, None), 1);
    }
}
