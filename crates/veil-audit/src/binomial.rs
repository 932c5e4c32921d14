//! Exact (Clopper–Pearson) confidence bounds on a binomial proportion.
//!
//! `clopper_pearson_lower(k, n, a)` is the `p` with `P[Bin(n, p) >= k] = a`, and
//! `clopper_pearson_upper(k, n, a)` the `p` with `P[Bin(n, p) <= k] = a`: whatever the
//! true proportion, the lower bound exceeds it (or the upper bound falls below it) with
//! probability at most `a`. Both are found by bisection on the binomial tail, which is
//! summed term by term from its small end (so a tail of 1e-12 is as accurate as one of
//! 0.1), and the bracket's conservative end is returned.
//!
//! `statrs`' incomplete beta function is not used: its continued fraction stops after
//! 140 terms, too few to converge for the sample sizes of an audit (millions).

/// Bisection steps: the bracket shrinks to 2^-80 of `[0, 1]`.
const STEPS: usize = 80;

/// The largest `p` known to satisfy `P[Bin(trials, p) >= hits] <= alpha`: a lower bound
/// on the true proportion that is wrong with probability at most `alpha`.
#[must_use]
pub fn clopper_pearson_lower(hits: u64, trials: u64, alpha: f64) -> f64 {
    if hits == 0 || trials == 0 {
        return 0.0;
    }
    let hits = hits.min(trials);
    #[allow(clippy::cast_precision_loss)]
    let (mut low, mut high) = (0.0_f64, hits as f64 / trials as f64);
    // Invariant: upper_tail(low) <= alpha; the root is in [low, high].
    for _ in 0..STEPS {
        let middle = 0.5 * (low + high);
        if upper_tail(trials, hits, middle) <= alpha {
            low = middle;
        } else {
            high = middle;
        }
    }
    low
}

/// The smallest `p` known to satisfy `P[Bin(trials, p) <= hits] <= alpha`: an upper bound
/// on the true proportion that is wrong with probability at most `alpha`.
#[must_use]
pub fn clopper_pearson_upper(hits: u64, trials: u64, alpha: f64) -> f64 {
    if trials == 0 || hits >= trials {
        return 1.0;
    }
    #[allow(clippy::cast_precision_loss)]
    let (mut low, mut high) = (hits as f64 / trials as f64, 1.0_f64);
    // Invariant: lower_tail(high) <= alpha; the root is in [low, high].
    for _ in 0..STEPS {
        let middle = 0.5 * (low + high);
        if lower_tail(trials, hits, middle) <= alpha {
            high = middle;
        } else {
            low = middle;
        }
    }
    high
}

/// Wilson's score interval at normal quantile `z`: a cheap approximation of the exact
/// bounds, used only to choose an event (never to bound).
#[must_use]
pub(crate) fn wilson(hits: u64, trials: u64, z: f64) -> (f64, f64) {
    if trials == 0 {
        return (0.0, 1.0);
    }
    #[allow(clippy::cast_precision_loss)]
    let (k, n) = (hits as f64, trials as f64);
    let p = k / n;
    let z2 = z * z;
    let denominator = 1.0 + z2 / n;
    let centre = (p + z2 / (2.0 * n)) / denominator;
    let half = z * (p * (1.0 - p) / n + z2 / (4.0 * n * n)).sqrt() / denominator;
    ((centre - half).max(0.0), (centre + half).min(1.0))
}

/// `ln P[Bin(n, p) = k]` for `0 < p < 1`.
fn ln_pmf(n: u64, k: u64, p: f64) -> f64 {
    #[allow(clippy::cast_precision_loss)]
    let (n, k) = (n as f64, k as f64);
    ln_factorial(n) - ln_factorial(k) - ln_factorial(n - k) + k * p.ln() + (n - k) * (-p).ln_1p()
}

fn ln_factorial(x: f64) -> f64 {
    libm::lgamma(x + 1.0)
}

/// `P[Bin(n, p) >= k]`.
fn upper_tail(n: u64, k: u64, p: f64) -> f64 {
    if k == 0 || p >= 1.0 {
        return 1.0;
    }
    if k > n || p <= 0.0 {
        return 0.0;
    }
    #[allow(clippy::cast_precision_loss)]
    let small_end = k as f64 >= (n as f64 + 1.0) * p;
    if small_end {
        direct_upper(n, k, p)
    } else {
        (1.0 - direct_lower(n, k - 1, p)).max(0.0)
    }
}

/// `P[Bin(n, p) <= k]`.
fn lower_tail(n: u64, k: u64, p: f64) -> f64 {
    if k >= n || p <= 0.0 {
        return 1.0;
    }
    if p >= 1.0 {
        return 0.0;
    }
    #[allow(clippy::cast_precision_loss)]
    let small_end = k as f64 <= (n as f64 + 1.0) * p;
    if small_end {
        direct_lower(n, k, p)
    } else {
        (1.0 - direct_upper(n, k + 1, p)).max(0.0)
    }
}

/// `Σ_{j >= k} P[X = j]`, summed from `j = k` while the terms (which decrease from there
/// when `k >= (n + 1)p`) still matter.
fn direct_upper(n: u64, k: u64, p: f64) -> f64 {
    let odds = p / (1.0 - p);
    let mut term = 1.0_f64;
    let mut sum = 1.0_f64;
    for j in k..n {
        #[allow(clippy::cast_precision_loss)]
        let ratio = (n - j) as f64 / (j + 1) as f64 * odds;
        term *= ratio;
        sum += term;
        if term < sum * 1e-18 {
            break;
        }
    }
    (ln_pmf(n, k, p).exp() * sum).min(1.0)
}

/// `Σ_{j <= k} P[X = j]`, summed from `j = k` downwards.
fn direct_lower(n: u64, k: u64, p: f64) -> f64 {
    let odds = (1.0 - p) / p;
    let mut term = 1.0_f64;
    let mut sum = 1.0_f64;
    for j in (1..=k).rev() {
        #[allow(clippy::cast_precision_loss)]
        let ratio = j as f64 / (n - j + 1) as f64 * odds;
        term *= ratio;
        sum += term;
        if term < sum * 1e-18 {
            break;
        }
    }
    (ln_pmf(n, k, p).exp() * sum).min(1.0)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn close(a: f64, b: f64, relative: f64) -> bool {
        (a - b).abs() <= relative * b.abs().max(1e-300)
    }

    #[test]
    fn tails_match_exact_small_cases() {
        // Bin(10, 0.3): P[X >= 4] = 0.3503892816, P[X <= 2] = 0.3827827864.
        assert!(close(upper_tail(10, 4, 0.3), 0.350_389_281_6, 1e-9));
        assert!(close(lower_tail(10, 2, 0.3), 0.382_782_786_4, 1e-9));
        // Through the complement: P[X >= 2] = 1 - P[X <= 1] = 0.8506916541.
        assert!(close(upper_tail(10, 2, 0.3), 0.850_691_654_1, 1e-9));
        assert!(close(lower_tail(10, 9, 0.3), 1.0 - 0.3_f64.powi(10), 1e-12));
    }

    #[test]
    fn bounds_of_all_or_nothing_have_closed_forms() {
        // 0 of n: the upper bound solves (1 - p)^n = a; n of n: the lower bound p^n = a.
        let (n, a) = (1000_u64, 0.005_f64);
        #[allow(clippy::cast_precision_loss)]
        let expected = 1.0 - a.powf(1.0 / n as f64);
        assert!(close(clopper_pearson_upper(0, n, a), expected, 1e-9));
        #[allow(clippy::cast_precision_loss)]
        let expected = a.powf(1.0 / n as f64);
        assert!(close(clopper_pearson_lower(n, n, a), expected, 1e-9));
        assert!(clopper_pearson_lower(0, n, a).abs() < f64::MIN_POSITIVE);
        assert!((clopper_pearson_upper(n, n, a) - 1.0).abs() < f64::EPSILON);
    }

    #[test]
    fn bounds_match_reference_values() {
        // 20 of 100 at a = 0.005 on each side (R's binom.test(20, 100, conf.level = 0.99)),
        // checked by summing the binomial pmf exactly: [0.1084105415, 0.3212264129].
        assert!(close(
            clopper_pearson_lower(20, 100, 0.005),
            0.108_410_541_5,
            1e-8
        ));
        assert!(close(
            clopper_pearson_upper(20, 100, 0.005),
            0.321_226_412_9,
            1e-8
        ));
    }

    #[test]
    fn bounds_bracket_the_estimate_at_large_samples() {
        for (hits, trials) in [
            (1_u64, 2_000_000_u64),
            (500_000, 1_000_000),
            (1_999_999, 2_000_000),
        ] {
            #[allow(clippy::cast_precision_loss)]
            let estimate = hits as f64 / trials as f64;
            let low = clopper_pearson_lower(hits, trials, 1e-9);
            let high = clopper_pearson_upper(hits, trials, 1e-9);
            assert!(
                low < estimate && estimate < high,
                "{hits}/{trials}: [{low}, {high}]"
            );
            // Normal approximation: about 6.1 standard errors on each side.
            #[allow(clippy::cast_precision_loss)]
            let se = (estimate * (1.0 - estimate) / trials as f64).sqrt();
            if hits > 1000 && trials - hits > 1000 {
                assert!(close(estimate - low, 6.1 * se, 0.05), "{low}");
                assert!(close(high - estimate, 6.1 * se, 0.05), "{high}");
            }
        }
    }

    #[test]
    fn the_tail_at_the_bound_is_the_level() {
        for (hits, trials, alpha) in [
            (3_u64, 50_u64, 0.01),
            (4000, 10_000, 1e-6),
            (7, 100_000, 0.05),
        ] {
            let low = clopper_pearson_lower(hits, trials, alpha);
            assert!(close(upper_tail(trials, hits, low), alpha, 1e-6));
            let high = clopper_pearson_upper(hits, trials, alpha);
            assert!(close(lower_tail(trials, hits, high), alpha, 1e-6));
        }
    }

    #[test]
    fn wilson_is_close_to_exact_in_the_middle() {
        let (low, high) = wilson(500, 1000, 2.575_829_303_548_901);
        assert!(close(low, clopper_pearson_lower(500, 1000, 0.005), 0.01));
        assert!(close(high, clopper_pearson_upper(500, 1000, 0.005), 0.01));
    }
}
