//! Exact (Clopper–Pearson) confidence intervals for a rate measured on few images: an alarm
//! rate of 4 in 225 is anywhere from 0.5 % to 4.5 %, and a station deciding on a threshold from
//! its own scans must see that, not the point estimate alone.

/// The exact two-sided 95 % interval of a binomial rate `k` of `n`: [lower, upper], each bound
/// the rate at which seeing `k` or more (lower) or `k` or fewer (upper) has probability 2.5 %.
/// `None` when `n` is 0 or `k` exceeds it.
pub fn clopper_pearson_95(k: u64, n: u64) -> Option<[f64; 2]> {
    if n == 0 || k > n {
        return None;
    }
    const TAIL: f64 = 0.025;
    // P(X <= k) falls as the rate p rises: lower is where P(X >= k) rises to TAIL, upper where
    // P(X <= k) falls to TAIL (P(X > k) rises to 1 - TAIL).
    let lower = if k == 0 { 0.0 } else { solve(|p| 1.0 - binomial_cdf(k - 1, n, p), TAIL) };
    let upper = if k == n { 1.0 } else { solve(|p| 1.0 - binomial_cdf(k, n, p), 1.0 - TAIL) };
    Some([lower, upper])
}

/// P(X <= k) for X ~ Binomial(n, p), summed term by term in log space (no overflow for large n).
fn binomial_cdf(k: u64, n: u64, p: f64) -> f64 {
    if p <= 0.0 {
        return 1.0;
    }
    if p >= 1.0 {
        return if k >= n { 1.0 } else { 0.0 };
    }
    let (lp, lq) = (p.ln(), (-p).ln_1p());
    let (mut log_choose, mut sum) = (0.0_f64, 0.0_f64);
    for i in 0..=k.min(n) {
        if i > 0 {
            log_choose += ((n - i + 1) as f64).ln() - (i as f64).ln();
        }
        sum += (log_choose + i as f64 * lp + (n - i) as f64 * lq).exp();
    }
    sum.min(1.0)
}

/// The p in [0, 1] where the increasing function `f` reaches `target`, by bisection (to 1e-12).
fn solve(f: impl Fn(f64) -> f64, target: f64) -> f64 {
    let (mut lo, mut hi) = (0.0_f64, 1.0_f64);
    while hi - lo > 1e-12 {
        let mid = 0.5 * (lo + hi);
        if f(mid) < target {
            lo = mid;
        } else {
            hi = mid;
        }
    }
    0.5 * (lo + hi)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Reference values from SciPy's beta quantiles (`beta.ppf(0.025, k, n-k+1)`,
    /// `beta.ppf(0.975, k+1, n-k)`), the textbook form of the same interval.
    #[test]
    fn matches_the_beta_quantile_form() {
        let cases = [
            (4, 225, 0.004865, 0.044890),
            (0, 102, 0.0, 0.035519),
            (18, 845, 0.012672, 0.033458),
            (5, 5, 0.478176, 1.0),
            (1, 1, 0.025, 1.0),
            (3, 10, 0.066740, 0.652453),
        ];
        for (k, n, lo, hi) in cases {
            let [a, b] = clopper_pearson_95(k, n).unwrap();
            assert!((a - lo).abs() < 2e-6 && (b - hi).abs() < 2e-6, "{k}/{n}: [{a}, {b}], want [{lo}, {hi}]");
        }
    }

    #[test]
    fn no_interval_without_images() {
        assert_eq!(clopper_pearson_95(0, 0), None);
        assert_eq!(clopper_pearson_95(3, 2), None);
    }

    #[test]
    fn large_counts_stay_finite_and_around_the_rate() {
        let [a, b] = clopper_pearson_95(2_000, 100_000).unwrap();
        assert!(a < 0.02 && b > 0.02 && b - a < 0.002, "[{a}, {b}]");
    }
}
