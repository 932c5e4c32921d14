//! Test helpers shared by Veil's crates: seeded RNGs, statistical tests and proptest
//! strategies. Not published; never a dependency of a release path.
//!
//! Statistical tests here are calibrated so that a correct sampler fails them with
//! probability below [`FALSE_FAILURE_RATE`], and every test uses a fixed seed, so a test
//! run is reproducible.
//!
//! ```
//! let mut rng = veil_testkit::seeded_rng(1);
//! let samples: Vec<i64> = (0..10_000).map(|_| i64::from(rand_core::Rng::next_u32(&mut rng) % 10)).collect();
//! let fit = veil_testkit::chi_square_cdf(&samples, |x| ((x + 1).clamp(0, 10) as f64) / 10.0, 10);
//! assert!(fit.passes(), "{fit:?}");
//! ```
#![deny(missing_docs)]

use rand::rngs::ChaCha20Rng;
use rand_core::SeedableRng;
use statrs::distribution::{ChiSquared, ContinuousCDF};

pub mod strategies;

/// The largest acceptable chance that a correct implementation fails one statistical test.
pub const FALSE_FAILURE_RATE: f64 = 1e-6;

/// A ChaCha20 generator from a fixed seed: the same cryptographic generator production
/// uses, made reproducible. Never for released noise.
#[must_use]
pub fn seeded_rng(seed: u64) -> ChaCha20Rng {
    ChaCha20Rng::seed_from_u64(seed)
}

/// Whether slow statistical tests were asked for (`VEIL_SLOW_TESTS=1`).
#[must_use]
pub fn slow_tests() -> bool {
    std::env::var("VEIL_SLOW_TESTS").is_ok_and(|value| value == "1")
}

/// The outcome of a chi-square goodness-of-fit test.
#[derive(Debug, Clone, PartialEq)]
pub struct GoodnessOfFit {
    /// The chi-square statistic.
    pub statistic: f64,
    /// Degrees of freedom (bins after merging, minus one).
    pub degrees_of_freedom: usize,
    /// The probability of a statistic at least this large under the hypothesis.
    pub p_value: f64,
    /// `(upper edge of the bin, observed, expected)` per bin, for failure messages.
    pub bins: Vec<(i64, u64, f64)>,
}

impl GoodnessOfFit {
    /// Whether the samples are consistent with the distribution at [`FALSE_FAILURE_RATE`].
    #[must_use]
    pub fn passes(&self) -> bool {
        self.p_value > FALSE_FAILURE_RATE
    }
}

/// Chi-square test of integer `samples` against a distribution given by its CDF
/// (`cdf(x) = P(X <= x)`).
///
/// Bins are cut at the distribution's `k / target_bins` quantiles, so each holds about the
/// same mass whatever the scale; bins expecting fewer than five samples are merged into
/// their neighbour.
///
/// # Panics
/// If `samples` is empty or `cdf` is not a CDF (not non-decreasing from 0 to 1).
#[must_use]
pub fn chi_square_cdf(
    samples: &[i64],
    cdf: impl Fn(i64) -> f64,
    target_bins: usize,
) -> GoodnessOfFit {
    assert!(!samples.is_empty(), "no samples");
    #[allow(clippy::cast_precision_loss)]
    let n = samples.len() as f64;
    // Upper edges of the bins: the smallest x with cdf(x) >= k / target_bins.
    let mut edges: Vec<i64> = (1..target_bins)
        .map(|k| {
            #[allow(clippy::cast_precision_loss)]
            let level = k as f64 / target_bins as f64;
            quantile(&cdf, level)
        })
        .collect();
    // Split the tails further while each new tail bin still expects enough samples, so
    // that sharply peaked distributions keep several bins.
    if let (Some(&first), Some(&last)) = (edges.first(), edges.last()) {
        let mut below = first.saturating_sub(1);
        while n * cdf(below) >= 10.0 && edges.len() < target_bins + 16 {
            edges.push(below);
            below = below.saturating_sub(1);
        }
        let mut above = last.saturating_add(1);
        while n * (1.0 - cdf(above)) >= 10.0 && edges.len() < target_bins + 32 {
            edges.push(above);
            above = above.saturating_add(1);
        }
    }
    edges.sort_unstable();
    edges.dedup();
    edges.push(i64::MAX);
    // Merge bins whose expected count is below five into the next one.
    let mut merged: Vec<(i64, f64)> = Vec::new();
    let mut lower_cdf = 0.0;
    let mut pending = 0.0;
    for &edge in &edges {
        let upper_cdf = if edge == i64::MAX { 1.0 } else { cdf(edge) };
        pending += (upper_cdf - lower_cdf) * n;
        lower_cdf = upper_cdf;
        if pending >= 5.0 || edge == i64::MAX {
            merged.push((edge, pending));
            pending = 0.0;
        }
    }
    if merged.len() > 1 && merged.last().is_some_and(|&(_, expected)| expected < 5.0) {
        let (_, tail) = merged.pop().expect("at least two bins");
        let last = merged.last_mut().expect("at least one bin");
        last.0 = i64::MAX;
        last.1 += tail;
    }
    let mut observed = vec![0_u64; merged.len()];
    for &sample in samples {
        let bin = merged.partition_point(|&(edge, _)| edge < sample);
        observed[bin] += 1;
    }
    let statistic: f64 = observed
        .iter()
        .zip(&merged)
        .map(|(&count, &(_, expected))| {
            #[allow(clippy::cast_precision_loss)]
            let difference = count as f64 - expected;
            difference * difference / expected
        })
        .sum();
    let degrees_of_freedom = merged.len().saturating_sub(1);
    let p_value = if degrees_of_freedom == 0 {
        1.0
    } else {
        #[allow(clippy::cast_precision_loss)]
        let distribution =
            ChiSquared::new(degrees_of_freedom as f64).expect("positive degrees of freedom");
        distribution.sf(statistic)
    };
    GoodnessOfFit {
        statistic,
        degrees_of_freedom,
        p_value,
        bins: merged
            .iter()
            .zip(&observed)
            .map(|(&(edge, expected), &count)| (edge, count, expected))
            .collect(),
    }
}

/// The smallest `x` with `cdf(x) >= level`, by bisection over `i64`.
fn quantile(cdf: &impl Fn(i64) -> f64, level: f64) -> i64 {
    let (mut low, mut high) = (i64::MIN / 4, i64::MAX / 4);
    while low < high {
        let middle = low + (high - low) / 2;
        if cdf(middle) >= level {
            high = middle;
        } else {
            low = middle + 1;
        }
    }
    low
}

/// A two-sided z-test that `successes` out of `trials` is consistent with probability `p`,
/// at [`FALSE_FAILURE_RATE`] (|z| below about 4.9).
#[must_use]
pub fn binomial_consistent(successes: u64, trials: u64, p: f64) -> bool {
    #[allow(clippy::cast_precision_loss)]
    let (successes, trials) = (successes as f64, trials as f64);
    let mean = trials * p;
    let std = (trials * p * (1.0 - p)).sqrt();
    if std == 0.0 {
        return (successes - mean).abs() < 0.5;
    }
    ((successes - mean) / std).abs() < 4.9
}
