//! Verdicts the data decides, at 95 % confidence, with no assumption about the latency
//! distribution. An objective such as `p(95) < 500ms` or `rate(errors) < 1%` says that the
//! share `π` of events beyond a limit (slower than 500 ms; failed) is below `α` (5 %; 1 %).
//! With `k` of `n` events beyond it, the binomial decides:
//!
//! - holds if P(Bin(n, α) ≤ k) ≤ 5 %: so few beyond would be unlikely were π ≥ α;
//! - broken if P(Bin(n, α) ≥ k) ≤ 5 %: so many would be unlikely were π ≤ α;
//! - undecided in between (too few events to tell).
//!
//! E.g. for P95: 0 of 32 beyond is undecided (59 are needed), 0 of 59 holds.

/// One-sided risk of a wrong verdict.
pub const RISK: f64 = 0.05;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Decision {
    Holds,
    Broken,
    Undecided,
}

/// `ln P(Bin(n, p) = i)` for i = 0..=last, in order (recurrence from i = 0).
fn log_pmfs(n: u64, p: f64, last: u64) -> impl Iterator<Item = f64> {
    let (ln_p, ln_q) = (p.ln(), (1.0 - p).ln());
    let mut ln_pmf = n as f64 * ln_q;
    (0..=last.min(n)).map(move |i| {
        let current = ln_pmf;
        // pmf(i+1) = pmf(i) · (n−i)/(i+1) · p/q
        ln_pmf += ((n - i) as f64).ln() - ((i + 1) as f64).ln() + ln_p - ln_q;
        current
    })
}

/// P(Bin(n, p) ≤ k).
pub fn cdf(n: u64, p: f64, k: u64) -> f64 {
    if k >= n {
        return 1.0;
    }
    if p <= 0.0 {
        return 1.0;
    }
    if p >= 1.0 {
        return 0.0;
    }
    // Sum in log space from the largest term so that nothing underflows to 0 early.
    let terms: Vec<f64> = log_pmfs(n, p, k).collect();
    let max = terms.iter().copied().fold(f64::NEG_INFINITY, f64::max);
    if max == f64::NEG_INFINITY {
        return 0.0;
    }
    let sum: f64 = terms.iter().map(|t| (t - max).exp()).sum();
    (max + sum.ln()).exp().min(1.0)
}

/// The verdict for `beyond` of `n` events past the limit, against a share `alpha`.
pub fn decide(beyond: u64, n: u64, alpha: f64) -> Decision {
    if n == 0 || !(0.0..1.0).contains(&alpha) || alpha == 0.0 {
        return Decision::Undecided;
    }
    if cdf(n, alpha, beyond) <= RISK {
        Decision::Holds
    } else if beyond > 0 && 1.0 - cdf(n, alpha, beyond - 1) <= RISK {
        Decision::Broken
    } else {
        Decision::Undecided
    }
}

/// The one-sided 95 % bounds (Clopper–Pearson) on the true share beyond the limit,
/// given `beyond` of `n`: `(low, high)`, by bisection on the binomial.
pub fn interval(beyond: u64, n: u64) -> (f64, f64) {
    if n == 0 {
        return (0.0, 1.0);
    }
    let bisect = |too_low: &dyn Fn(f64) -> bool| {
        let (mut lo, mut hi) = (0.0_f64, 1.0_f64);
        for _ in 0..60 {
            let mid = (lo + hi) / 2.0;
            if too_low(mid) { lo = mid } else { hi = mid }
        }
        (lo + hi) / 2.0
    };
    // high: the share at which seeing ≤ beyond has only a 5 % chance.
    let high = if beyond >= n {
        1.0
    } else {
        bisect(&|p| cdf(n, p, beyond) > RISK)
    };
    // low: the share at which seeing ≥ beyond has only a 5 % chance.
    let low = if beyond == 0 {
        0.0
    } else {
        bisect(&|p| 1.0 - cdf(n, p, beyond - 1) < RISK)
    };
    (low, high)
}

/// The fewest events with none beyond the limit that show the objective holds.
pub fn needed_with_none_beyond(alpha: f64) -> u64 {
    if !(0.0..1.0).contains(&alpha) || alpha == 0.0 {
        return u64::MAX;
    }
    (RISK.ln() / (1.0 - alpha).ln()).ceil() as u64
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_issue_examples_land_where_the_binomial_puts_them() {
        // P95 (α = 5 %): 0 of 32 cannot tell, 0 of 59 holds.
        assert_eq!(decide(0, 32, 0.05), Decision::Undecided);
        assert_eq!(needed_with_none_beyond(0.05), 59);
        assert_eq!(decide(0, 59, 0.05), Decision::Holds);
        assert_eq!(decide(0, 58, 0.05), Decision::Undecided);
        // 3 of 40 beyond: 7.5 % observed, not enough to call P95 broken; for P99 it is.
        assert_eq!(decide(3, 40, 0.05), Decision::Undecided);
        assert_eq!(decide(3, 40, 0.01), Decision::Broken);
        // P99 over 1,000 samples: 1 beyond holds, 20 beyond is broken, 13 cannot tell.
        assert_eq!(decide(1, 1000, 0.01), Decision::Holds);
        assert_eq!(decide(20, 1000, 0.01), Decision::Broken);
        assert_eq!(decide(13, 1000, 0.01), Decision::Undecided);
    }

    #[test]
    fn intervals_bracket_the_observed_share_and_agree_with_the_decisions() {
        // 0 of 59: at most ~5 % (so P95 holds); 3 of 40: 2.1 %..18.2 % (exact CP bounds).
        let (low, high) = interval(0, 59);
        assert_eq!(low, 0.0);
        assert!((high - 0.0495).abs() < 5e-4, "{high}");
        let (low, high) = interval(3, 40);
        assert!(
            (low - 0.0206).abs() < 1e-3 && (high - 0.1822).abs() < 2e-3,
            "{low} {high}"
        );
        // The decision is the interval against α.
        for (k, n, alpha) in [
            (0, 32, 0.05),
            (3, 40, 0.01),
            (13, 1000, 0.01),
            (20, 1000, 0.01),
        ] {
            let (low, high) = interval(k, n);
            let expected = if high < alpha {
                Decision::Holds
            } else if low > alpha {
                Decision::Broken
            } else {
                Decision::Undecided
            };
            assert_eq!(
                decide(k, n, alpha),
                expected,
                "{k}/{n} α={alpha}: {low}..{high}"
            );
        }
    }

    #[test]
    fn cdf_matches_exact_small_cases_and_stays_finite_for_large_n() {
        // Bin(4, 0.5): P(≤1) = 5/16.
        assert!((cdf(4, 0.5, 1) - 5.0 / 16.0).abs() < 1e-12);
        assert!((cdf(40, 0.05, 2) - 0.676_6).abs() < 1e-3);
        // 300,000 requests at 1 %: 3,000 expected; 2,900 is 1.8 sd low.
        let low = cdf(300_000, 0.01, 2_900);
        assert!(low > 0.02 && low < 0.05, "{low}");
        assert_eq!(decide(2_900, 300_000, 0.01), Decision::Holds);
        assert_eq!(decide(2_990, 300_000, 0.01), Decision::Undecided);
        assert_eq!(decide(3_150, 300_000, 0.01), Decision::Broken);
        assert_eq!(decide(0, 300_000, 0.01), Decision::Holds);
    }
}
