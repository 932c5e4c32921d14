use rand_core::{CryptoRng, Rng};

use super::{GaussianMechanism, LaplaceMechanism, Mechanism, Released};
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
    delta: Delta,
}

impl ThresholdMechanism {
    /// Laplace thresholding for units in at most `max_partitions` groups: (ε, δ)-DP.
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
        let scale = noise.scale().to_f64_down();
        // P[Z >= m] = q^m / (1 + q) for m >= 1, q = exp(-1/scale): rounded up.
        let tail = move |m: i64| -> f64 {
            if m <= 0 {
                return 1.0;
            }
            #[allow(clippy::cast_precision_loss)]
            let m = m as f64;
            let q = libm::exp(-1.0 / scale);
            pad_up(libm::exp(-m / scale) / (1.0 + q))
        };
        let threshold = smallest_threshold(max_partitions, delta, tail)?;
        Ok(Self {
            noise: ThresholdNoise::Laplace(noise),
            threshold,
            max_partitions,
            delta,
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
        let threshold = smallest_threshold(max_partitions, delta, tail)?;
        Ok(Self {
            noise: ThresholdNoise::Gaussian(noise),
            threshold,
            max_partitions,
            delta,
        })
    }

    /// The threshold τ on the noisy distinct-unit count.
    #[must_use]
    pub fn threshold(&self) -> i64 {
        self.threshold
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

    /// The loss of the noisy counts (`Pure(ε)` or `Zcdp(ρ)`); the mechanism also costs
    /// [`ThresholdMechanism::delta`].
    #[must_use]
    pub fn noise_loss(&self) -> PrivacyLoss {
        match &self.noise {
            ThresholdNoise::Laplace(noise) => noise.loss(),
            ThresholdNoise::Gaussian(noise) => noise.loss(),
        }
    }

    /// The δ paid for groups that exist only with the extra unit.
    #[must_use]
    pub fn delta(&self) -> Delta {
        self.delta
    }

    /// The standard deviation of the noise on each count.
    #[must_use]
    pub fn std_dev(&self) -> f64 {
        match &self.noise {
            ThresholdNoise::Laplace(noise) => noise.std_dev(),
            ThresholdNoise::Gaussian(noise) => noise.sigma(),
        }
    }

    /// The probability that a group of `units` distinct units is released (floating
    /// point: for planning and reports).
    #[must_use]
    pub fn release_probability(&self, units: u64) -> f64 {
        let gap =
            i64::try_from(units).map_or(i64::MIN, |units| self.threshold.saturating_sub(units));
        match &self.noise {
            ThresholdNoise::Laplace(noise) => {
                let scale = noise.scale().to_f64();
                let q = libm::exp(-1.0 / scale);
                #[allow(clippy::cast_precision_loss)]
                let gap = gap as f64;
                if gap > 0.0 {
                    libm::exp(-gap / scale) / (1.0 + q)
                } else {
                    // P[Z >= -k] = 1 - P[Z >= k + 1].
                    1.0 - libm::exp(-(1.0 - gap) / scale) / (1.0 + q)
                }
            }
            ThresholdNoise::Gaussian(noise) => {
                #[allow(clippy::cast_precision_loss)]
                let gap = gap as f64;
                crate::special::normal_sf((gap - 0.5) / noise.sigma())
            }
        }
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
        let released = match &self.noise {
            ThresholdNoise::Laplace(noise) => noise.release(units, rng),
            ThresholdNoise::Gaussian(noise) => noise.release(units, rng),
        };
        (*released.value() >= self.threshold).then_some(released)
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

/// The smallest τ >= 1 with `L0 · tail(τ - 1) <= δ`, where `tail(m)` bounds `P[Z >= m]`
/// from above and decreases in `m`.
fn smallest_threshold(
    max_partitions: u64,
    delta: Delta,
    tail: impl Fn(i64) -> f64,
) -> Result<i64, ParamError> {
    #[allow(clippy::cast_precision_loss)]
    let partitions = max_partitions as f64;
    let passes = |threshold: i64| pad_up(partitions * tail(threshold - 1)) <= delta.get();
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
