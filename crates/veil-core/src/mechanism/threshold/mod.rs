use rand_core::{CryptoRng, Rng};

use super::{
    GaussianMechanism, JointLaplaceMechanism, LaplaceMechanism, Mechanism, Released, noisy_sum,
};
use crate::calibrate::{discrete_gaussian_tail, pad_up};
use crate::{Delta, Epsilon, L1Sensitivity, ParamError, PrivacyLoss, Rho};

#[cfg(test)]
mod tests;

/// The noise a [`ThresholdMechanism`] adds to each count.
#[derive(Debug, Clone, PartialEq)]
pub enum ThresholdNoise {
    /// Discrete Laplace of scale `L0/ε`.
    Laplace(LaplaceMechanism),
    /// Discrete Gaussian with `σ² = L0/(2ρ)`.
    Gaussian(GaussianMechanism),
    /// Answer `index` of a joint draw of two answers ([`JointLaplaceMechanism`]), calibrated
    /// per group: each of the `L0` groups a unit reaches costs the draw's ε.
    Joint {
        /// The joint draw.
        mechanism: JointLaplaceMechanism,
        /// The answer that is thresholded.
        index: usize,
    },
}

#[doc = include_str!("PRIVACY.md")]
///
/// # Examples
/// ```
/// use veil_core::{Delta, Epsilon, mechanism::ThresholdMechanism};
/// let mut rng = veil_testkit::seeded_rng(3);
/// let selection = ThresholdMechanism::laplace(1, Epsilon::new(1.0)?, Delta::new(1e-6)?)?;
/// assert!(selection.threshold() > 10);
/// // A group of one person is (almost) never released; a group of 1,000 always is.
/// assert!(selection.release(1, &mut rng).is_none());
/// assert!(selection.release(1_000, &mut rng).is_some());
/// Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Debug, Clone, PartialEq)]
pub struct ThresholdMechanism {
    noise: ThresholdNoise,
    threshold: i64,
    max_partitions: u64,
    /// The most one unit adds to a group's count (1 for distinct units; `L∞` for rows).
    contribution: u64,
    delta: Delta,
    /// For a count drawn for the selection alone with Laplace noise: the noise is
    /// truncated to `[-k, k]` (redrawn outside), and τ = k + 1 (see PRIVACY.md).
    truncation: Option<i64>,
}

/// The 95% interval of a count that passed its threshold, given that it passed. The
/// released count itself stays the noisy value, which is biased upwards near the threshold
/// (only groups whose noise pushed them over are seen: about `+1.2σ` at the threshold
/// itself); the interval accounts for that: it holds the true count with probability at
/// least 95% *given that the group passed*, by inverting the tests of the noise
/// distribution truncated at the threshold.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ConditionalInterval {
    /// The lower end (at least 0).
    pub low: f64,
    /// The upper end.
    pub high: f64,
}

impl ThresholdMechanism {
    /// Laplace thresholding for units in at most `max_partitions` groups: (ε, δ)-DP. The
    /// noise is the discrete Laplace of scale `L0/ε` truncated to `[-k, k]`, for the
    /// smallest `k` whose edge `P[Z = k]` is at most `δ/L0`, and a group passes at
    /// `τ = k + 1`: the truncated-geometric selection of Desfontaines et al., whose threshold
    /// is about `ln(ε/(2δ))·L0/ε` against `ln(1/(2δ))·L0/ε` for plain thresholding.
    ///
    /// # Errors
    /// [`ParamError`] if `max_partitions` is zero or δ is zero.
    pub fn laplace(
        max_partitions: u64,
        epsilon: Epsilon,
        delta: Delta,
    ) -> Result<Self, ParamError> {
        check(max_partitions, delta)?;
        let noise = LaplaceMechanism::new(L1Sensitivity::integer(max_partitions), epsilon)?;
        // The smallest τ = k + 1 with L0 · P[Z = k] <= δ (a group of one unit passes only
        // when its noise sits on the edge k).
        let edge = truncated_laplace_band(noise.scale().to_f64_up(), 1);
        let threshold = smallest_threshold(max_partitions, 1, delta, edge)?;
        Ok(Self {
            noise: ThresholdNoise::Laplace(noise),
            threshold,
            max_partitions,
            contribution: 1,
            delta,
            truncation: Some(threshold - 1),
        })
    }

    /// Gaussian thresholding for units in at most `max_partitions` groups: δ-approximately
    /// ρ-zCDP.
    ///
    /// # Errors
    /// [`ParamError`] if `max_partitions` is zero or δ is zero.
    pub fn gaussian(max_partitions: u64, rho: Rho, delta: Delta) -> Result<Self, ParamError> {
        check(max_partitions, delta)?;
        let noise = GaussianMechanism::new_zcdp_squared(u128::from(max_partitions), rho)?;
        let sigma = libm::sqrt(noise.sigma_squared().to_f64_down());
        #[allow(clippy::cast_precision_loss)]
        let tail = move |m: i64| discrete_gaussian_tail(m as f64, sigma).1;
        let threshold = smallest_threshold(max_partitions, 1, delta, tail)?;
        Ok(Self {
            noise: ThresholdNoise::Gaussian(noise),
            threshold,
            max_partitions,
            contribution: 1,
            delta,
            truncation: None,
        })
    }

    /// Thresholding a count that is released anyway: `noise` is that count's mechanism
    /// (calibrated by the caller for every group a unit can reach), `contribution` the
    /// most one unit adds to one group's count (1 for distinct units, `L∞` for rows). A
    /// group passes when its released noisy count reaches τ; the selection costs only δ on
    /// top of the count's own loss.
    ///
    /// # Errors
    /// [`ParamError`] if `max_partitions` or `contribution` is zero, δ is zero, or the
    /// noise is calibrated for less than `contribution` in each of `max_partitions` groups.
    pub fn on_released(
        noise: ThresholdNoise,
        contribution: u64,
        max_partitions: u64,
        delta: Delta,
    ) -> Result<Self, ParamError> {
        check(max_partitions, delta)?;
        if contribution == 0 {
            return Err(ParamError::OutOfRange {
                param: "contribution per group",
                value: 0.0,
                expected: ">= 1",
            });
        }
        // The argument needs the count's noise calibrated to every group a unit reaches:
        // L1 ≥ L0·c for Laplace, L2² ≥ L0·c² for Gaussian.
        let (calibrated, needed) = match &noise {
            ThresholdNoise::Laplace(mechanism) => (
                u128::from(mechanism.sensitivity()),
                u128::from(contribution) * u128::from(max_partitions),
            ),
            ThresholdNoise::Gaussian(mechanism) => (
                u128::from(mechanism.sensitivity()).pow(2),
                u128::from(contribution).pow(2) * u128::from(max_partitions),
            ),
            // Per group: the caller charges the draw once for each group a unit reaches.
            ThresholdNoise::Joint { mechanism, index } => (
                mechanism
                    .sensitivities()
                    .get(*index)
                    .map_or(0, |&steps| u128::from(steps)),
                u128::from(contribution),
            ),
        };
        if calibrated < needed {
            #[allow(clippy::cast_precision_loss)]
            return Err(ParamError::OutOfRange {
                param: "the thresholded count's sensitivity",
                value: calibrated as f64,
                expected: "at least the contribution times the groups a unit reaches (squared for Gaussian noise)",
            });
        }
        let (threshold, truncation) = match &noise {
            ThresholdNoise::Laplace(mechanism) => {
                let band = truncated_laplace_band(mechanism.scale().to_f64_up(), contribution);
                let threshold = smallest_threshold(max_partitions, contribution, delta, band)?;
                (threshold, Some(threshold - 1))
            }
            ThresholdNoise::Gaussian(mechanism) => {
                let sigma = libm::sqrt(mechanism.sigma_squared().to_f64_down());
                #[allow(clippy::cast_precision_loss)]
                let tail = move |m: i64| discrete_gaussian_tail(m as f64, sigma).1;
                let threshold = smallest_threshold(max_partitions, contribution, delta, tail)?;
                (threshold, None)
            }
            ThresholdNoise::Joint { mechanism, index } => {
                let tail = mechanism.marginal_tail_bound(*index)?;
                let threshold = smallest_threshold(max_partitions, contribution, delta, tail)?;
                (threshold, None)
            }
        };
        Ok(Self {
            noise,
            threshold,
            max_partitions,
            contribution,
            delta,
            truncation,
        })
    }

    /// Whether a released noisy count passes.
    #[must_use]
    pub fn passes(&self, noisy: i64) -> bool {
        noisy >= self.threshold
    }

    /// The most one unit adds to one group's count.
    #[must_use]
    pub fn contribution(&self) -> u64 {
        self.contribution
    }

    /// The interval of a group whose released noisy count `noisy` passed (post-processing:
    /// it reads nothing but the released count).
    #[must_use]
    pub fn conditional_interval(&self, noisy: i64) -> ConditionalInterval {
        // P[Y >= y | Y >= τ] for Y = n + Z: increasing in n (the noise is log-concave).
        let at_least = |n: f64, y: i64| -> f64 {
            #[allow(clippy::cast_precision_loss)]
            let (y, tau) = (y as f64, self.threshold as f64);
            let passed = self.noise_tail(tau - n);
            if passed <= 0.0 {
                return 1.0;
            }
            (self.noise_tail(y.max(tau) - n) / passed).min(1.0)
        };
        // The n at which `P[Y >= y | n, passed] = p` (bisection; monotone in n).
        let solve = |p: f64, y: i64| -> f64 {
            let spread = 50.0 * self.std_dev().max(1.0);
            #[allow(clippy::cast_precision_loss)]
            let (mut low, mut high) = (y as f64 - spread, y as f64 + spread);
            for _ in 0..100 {
                let middle = f64::midpoint(low, high);
                if at_least(middle, y) < p {
                    low = middle;
                } else {
                    high = middle;
                }
            }
            f64::midpoint(low, high)
        };
        let tail = (1.0 - super::DEFAULT_CONFIDENCE) / 2.0;
        // Lower end: the smallest n under which a count at least this large is not rare;
        // upper end: the largest n under which a count at most this large is not rare.
        let low = solve(tail, noisy).max(0.0);
        let high = solve(1.0 - tail, noisy.saturating_add(1)).max(low);
        ConditionalInterval { low, high }
    }

    /// `P[Z >= m]` for real `m` (rounded to the integer grid of the noise), in floating
    /// point: for estimates, not for calibration.
    fn noise_tail(&self, m: f64) -> f64 {
        let m = libm::ceil(m - 1e-9);
        match &self.noise {
            ThresholdNoise::Laplace(noise) => {
                let scale = noise.scale().to_f64();
                let q = libm::exp(-1.0 / scale);
                let tail = |m: f64| {
                    if m > 0.0 {
                        libm::exp(-m / scale) / (1.0 + q)
                    } else {
                        1.0 - libm::exp(-(1.0 - m) / scale) / (1.0 + q)
                    }
                };
                match self.truncation {
                    // P[Z >= m | |Z| <= k].
                    #[allow(clippy::cast_precision_loss)]
                    Some(k) => {
                        let (k, outside) = (k as f64, tail(k as f64 + 1.0));
                        if m > k {
                            0.0
                        } else if m <= -k {
                            1.0
                        } else {
                            (tail(m) - outside) / (1.0 - 2.0 * outside)
                        }
                    }
                    None => tail(m),
                }
            }
            ThresholdNoise::Gaussian(noise) => crate::special::normal_sf((m - 0.5) / noise.sigma()),
            ThresholdNoise::Joint { mechanism, index } => {
                mechanism.marginal_tail_estimate(*index, m)
            }
        }
    }

    /// The threshold τ on the noisy count.
    #[must_use]
    pub fn threshold(&self) -> i64 {
        self.threshold
    }

    /// `k` when the noise is truncated to `[-k, k]` (Laplace noise; τ = k + 1).
    #[must_use]
    pub fn truncation(&self) -> Option<i64> {
        self.truncation
    }

    /// The noise in words: `"Laplace noise truncated to ±k"` or `"Gaussian noise"`.
    #[must_use]
    pub fn noise_description(&self) -> alloc::string::String {
        match (&self.noise, self.truncation) {
            (ThresholdNoise::Laplace(_), Some(k)) => {
                alloc::format!("Laplace noise truncated to ±{k}")
            }
            (ThresholdNoise::Laplace(_), None) => "Laplace noise".into(),
            (ThresholdNoise::Gaussian(_), _) => "Gaussian noise".into(),
            (ThresholdNoise::Joint { .. }, _) => {
                alloc::format!("{} noise", self.noise_name().replace("laplace", "Laplace"))
            }
        }
    }

    /// The noise's short name, as a release manifest gives it: `laplace`, `gaussian`,
    /// `joint laplace` or `joint staircase`.
    #[must_use]
    pub fn noise_name(&self) -> &'static str {
        match &self.noise {
            ThresholdNoise::Laplace(_) => "laplace",
            ThresholdNoise::Gaussian(_) => "gaussian",
            ThresholdNoise::Joint { mechanism, .. } if mechanism.step().is_some() => {
                "joint staircase"
            }
            ThresholdNoise::Joint { .. } => "joint laplace",
        }
    }

    /// The bound on groups per unit this mechanism was calibrated for.
    #[must_use]
    pub fn max_partitions(&self) -> u64 {
        self.max_partitions
    }

    /// The noise added to each count.
    #[must_use]
    pub fn noise(&self) -> &ThresholdNoise {
        &self.noise
    }

    /// The loss of the noisy counts (`Pure(ε)` or `Zcdp(ρ)`; for a joint draw, its ε once
    /// for each group a unit reaches, rounded up: the loss of all its answers); the
    /// mechanism also costs [`ThresholdMechanism::delta`].
    #[must_use]
    pub fn noise_loss(&self) -> PrivacyLoss {
        match &self.noise {
            ThresholdNoise::Laplace(noise) => noise.loss(),
            ThresholdNoise::Gaussian(noise) => noise.loss(),
            ThresholdNoise::Joint { mechanism, .. } => mechanism.loss_over(self.max_partitions),
        }
    }

    /// The δ paid for groups that exist only with the extra unit.
    #[must_use]
    pub fn delta(&self) -> Delta {
        self.delta
    }

    /// The standard deviation of the noise on each count (for a truncated noise, the
    /// untruncated one's: an upper bound, larger by a relative δ/L0 or so).
    #[must_use]
    pub fn std_dev(&self) -> f64 {
        match &self.noise {
            ThresholdNoise::Laplace(noise) => noise.std_dev(),
            ThresholdNoise::Gaussian(noise) => noise.sigma(),
            ThresholdNoise::Joint { mechanism, index } => mechanism.std_dev(*index),
        }
    }

    /// The probability that a group of `units` distinct units is released (floating
    /// point: for planning and reports).
    #[must_use]
    pub fn release_probability(&self, units: u64) -> f64 {
        let gap =
            i64::try_from(units).map_or(i64::MIN, |units| self.threshold.saturating_sub(units));
        #[allow(clippy::cast_precision_loss)]
        self.noise_tail(gap as f64)
    }

    /// The smallest number of units that a group needs to be released with probability at
    /// least one half.
    #[must_use]
    pub fn units_for_half(&self) -> u64 {
        let mut units = u64::try_from(self.threshold.max(1))
            .unwrap_or(1)
            .saturating_sub(1)
            .max(1);
        while units > 1 && self.release_probability(units - 1) >= 0.5 {
            units -= 1;
        }
        while self.release_probability(units) < 0.5 {
            units += 1;
        }
        units
    }

    /// Draws fresh noise for a group of `units` distinct units and releases the noisy count
    /// if it reaches the threshold; `None` means the group is not released.
    pub fn release<R: Rng + CryptoRng + ?Sized>(
        &self,
        units: i64,
        rng: &mut R,
    ) -> Option<Released<i64>> {
        let released = match (&self.noise, self.truncation) {
            // The truncated law sampled directly (not by redrawing, which would take
            // about scale/k draws where ε is far below δ).
            (ThresholdNoise::Laplace(noise), Some(k)) => {
                noise.release_truncated(units, k.unsigned_abs(), rng)
            }
            (ThresholdNoise::Laplace(noise), None) => noise.release(units, rng),
            (ThresholdNoise::Gaussian(noise), _) => noise.release(units, rng),
            // One draw of the joint noise, of which this count reads its answer (the others
            // are dropped: post-processing).
            (ThresholdNoise::Joint { mechanism, index }, _) => Released::new(
                noisy_sum(units, mechanism.sample(rng)[*index]),
                mechanism.kind(),
                mechanism.loss(),
                mechanism.std_dev(*index),
                mechanism.ci_half_width(*index, super::DEFAULT_CONFIDENCE),
            ),
        };
        let released = self.with_delta(released);
        self.passes(*released.value()).then_some(released)
    }

    /// For joint noise: one draw added to `values` (every answer of the joint draw, the
    /// thresholded one at its index), all of them released if the thresholded answer
    /// passes, none otherwise. `None` too for noise that is not joint.
    ///
    /// # Panics
    /// If `values` does not hold one value per answer of the joint draw.
    pub fn release_joint<R: Rng + CryptoRng + ?Sized>(
        &self,
        values: &[i64],
        rng: &mut R,
    ) -> Option<alloc::vec::Vec<Released<i64>>> {
        let ThresholdNoise::Joint { mechanism, index } = &self.noise else {
            return None;
        };
        let released: alloc::vec::Vec<Released<i64>> = mechanism
            .release(values, rng)
            .into_iter()
            .map(|released| self.with_delta(released))
            .collect();
        self.passes(*released[*index].value()).then_some(released)
    }

    /// Laplace noise passed through the threshold is (ε, δ)-DP, not ε-DP: the value says
    /// so. (Gaussian noise keeps its ρ; the selection's δ is charged beside it.)
    fn with_delta(&self, released: Released<i64>) -> Released<i64> {
        match released.loss() {
            PrivacyLoss::Pure(epsilon) => {
                released.with_loss(PrivacyLoss::Approx(epsilon, self.delta))
            }
            _ => released,
        }
    }
}

fn check(max_partitions: u64, delta: Delta) -> Result<(), ParamError> {
    if max_partitions == 0 {
        return Err(ParamError::OutOfRange {
            param: "max groups per unit",
            value: 0.0,
            expected: ">= 1",
        });
    }
    if delta.get() <= 0.0 {
        return Err(ParamError::OutOfRange {
            param: "delta",
            value: delta.get(),
            expected: "> 0: choosing groups privately always costs some δ",
        });
    }
    Ok(())
}

/// For the discrete Laplace of `scale` truncated to `[-k, k]` with `k = m + c − 1`: the
/// mass of its top `c` values, `P[Z > k − c] = q^m (1 − q^c) / (1 + q − 2q^(m+c))`,
/// `q = exp(-1/scale)`, rounded up; `m < 1` gives 1. For `m >= 1` it does not fall as the
/// scale grows (the truncated law flattens towards uniform, where the band is `c/(2k+1)`),
/// so pass the scale rounded up; the test `the_band_never_falls_as_the_scale_grows` checks
/// this on a grid.
/// With τ = k + 1 this is the chance that a group of at most `c` passes, and the chance that
/// a shift of at most `c` moves a count's noise out of its support.
fn truncated_laplace_band(scale: f64, contribution: u64) -> impl Fn(i64) -> f64 {
    #[allow(clippy::cast_precision_loss)]
    let c = contribution as f64;
    move |m: i64| -> f64 {
        if m < 1 {
            // k + 1 <= c: the band holds the noise's whole upper half or more, and with
            // m = 0 it *falls* as the scale grows; 1 bounds it either way (no δ below one
            // half is met there).
            return 1.0;
        }
        #[allow(clippy::cast_precision_loss)]
        let m = m as f64;
        // 1 + q − 2q^K = (1 − q^K) + q(1 − q^(K−1)), K = k + 1 = m + c: each term from
        // expm1, so the denominator keeps its digits when K is far below the scale.
        let q = libm::exp(-1.0 / scale);
        let support = m + c;
        let denominator =
            -libm::expm1(-support / scale) + q * -libm::expm1(-(support - 1.0) / scale);
        pad_up(libm::exp(-m / scale) * -libm::expm1(-c / scale) / denominator)
    }
}

/// The smallest τ >= 1 with `L0 · tail(τ - c) <= δ`, where `c` is the most a unit adds to
/// one group's count and `tail(m)` bounds `P[Z >= m]` from above and decreases in `m`.
fn smallest_threshold(
    max_partitions: u64,
    contribution: u64,
    delta: Delta,
    tail: impl Fn(i64) -> f64,
) -> Result<i64, ParamError> {
    #[allow(clippy::cast_precision_loss)]
    let partitions = max_partitions as f64;
    let contribution = i64::try_from(contribution).unwrap_or(i64::MAX);
    let passes = |threshold: i64| {
        pad_up(partitions * tail(threshold.saturating_sub(contribution))) <= delta.get()
    };
    let mut high: i64 = 1;
    while !passes(high) {
        high = high.checked_mul(2).ok_or_else(|| ParamError::Invalid {
            param: "delta",
            reason: alloc::format!("no threshold reaches δ = {delta}"),
        })?;
    }
    let mut low = high / 2;
    // Invariant: passes(high) and (low == 0 or !passes(low)).
    while high - low > 1 {
        let middle = low + (high - low) / 2;
        if passes(middle) {
            high = middle;
        } else {
            low = middle;
        }
    }
    Ok(high)
}
