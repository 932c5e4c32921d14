use dashu_int::UBig;
use rand_core::{CryptoRng, Rng};

use super::{Mechanism, MechanismKind, Released, ceil_ratio, exact_ratio, noisy_sum, sealed};
use crate::sample::DiscreteLaplace;
use crate::{Epsilon, L1Sensitivity, ParamError, PrivacyLoss, Rational};

#[cfg(test)]
mod tests;

#[doc = include_str!("PRIVACY.md")]
///
/// # Errors
/// Never after construction; [`LaplaceMechanism::new`] rejects invalid parameters.
///
/// # Examples
/// ```
/// use veil_core::{Epsilon, L1Sensitivity, mechanism::LaplaceMechanism};
/// let mut rng = veil_testkit::seeded_rng(1);
/// let mechanism = LaplaceMechanism::new(L1Sensitivity::integer(2), Epsilon::new(0.5)?)?;
/// assert_eq!(mechanism.scale().to_string(), "4");
/// let released = mechanism.release(100, &mut rng);
/// assert!((released.value() - 100).abs() < 200);
/// Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Debug, Clone, PartialEq)]
pub struct LaplaceMechanism {
    sampler: DiscreteLaplace,
    sensitivity: u64,
    epsilon: Epsilon,
    /// The noise's standard deviation and the half-width of its interval at
    /// `DEFAULT_CONFIDENCE`, computed once: every release carries both.
    std_dev: f64,
    default_half_width: f64,
}

impl LaplaceMechanism {
    /// The mechanism for an integer query of L1 sensitivity `sensitivity` (in steps) at
    /// `epsilon`: scale `Δ₁/ε`, exact or rounded up.
    ///
    /// # Errors
    /// [`ParamError::OutOfRange`] if the sensitivity is not a positive integer;
    /// [`ParamError::Invalid`] if `Δ₁/ε` does not fit the sampler (above 2^64).
    pub fn new(sensitivity: L1Sensitivity, epsilon: Epsilon) -> Result<Self, ParamError> {
        let steps = match sensitivity.as_integer() {
            Some(steps) if steps > 0 => steps,
            _ => {
                return Err(ParamError::OutOfRange {
                    param: "sensitivity",
                    value: sensitivity.get(),
                    expected: "a positive integer number of grid steps",
                });
            }
        };
        let (epsilon_numer, epsilon_denom) = exact_ratio(epsilon.get())?;
        let scale = ceil_ratio(UBig::from(steps) * epsilon_denom, epsilon_numer)?;
        let sampler = DiscreteLaplace::new(scale)?;
        let std_dev = crate::rational::next_up(libm::sqrt(sampler.variance()));
        let default_half_width =
            laplace_half_width(sampler.scale().to_f64(), super::DEFAULT_CONFIDENCE);
        Ok(Self {
            sampler,
            sensitivity: steps,
            epsilon,
            std_dev,
            default_half_width,
        })
    }

    /// The noise scale `t` in steps (`P(x) ∝ exp(-|x|/t)`).
    #[must_use]
    pub fn scale(&self) -> Rational {
        self.sampler.scale()
    }

    /// The sensitivity in steps.
    #[must_use]
    pub fn sensitivity(&self) -> u64 {
        self.sensitivity
    }

    /// The ε this mechanism is charged at.
    #[must_use]
    pub fn epsilon(&self) -> Epsilon {
        self.epsilon
    }

    /// Adds fresh discrete Laplace noise to `value` (see [`Mechanism::release`]).
    pub fn release<R: Rng + CryptoRng + ?Sized>(&self, value: i64, rng: &mut R) -> Released<i64> {
        <Self as Mechanism>::release(self, value, rng)
    }

    /// Adds fresh discrete Laplace noise truncated to `[-bound, bound]` to `value`: the
    /// law of [`DiscreteLaplace::sample_truncated`]. For the
    /// thresholds that rest on a bounded noise; the privacy argument is theirs.
    pub(crate) fn release_truncated<R: Rng + CryptoRng + ?Sized>(
        &self,
        value: i64,
        bound: u64,
        rng: &mut R,
    ) -> Released<i64> {
        self.with_noise(value, self.sampler.sample_truncated(rng, bound))
    }

    fn with_noise(&self, value: i64, noise: i64) -> Released<i64> {
        Released::new(
            noisy_sum(value, noise),
            MechanismKind::DiscreteLaplace,
            self.loss(),
            self.std_dev,
            self.default_half_width,
        )
    }

    /// The standard deviation of the noise, in steps.
    #[must_use]
    pub fn std_dev(&self) -> f64 {
        <Self as Mechanism>::std_dev(self)
    }

    /// Half the width of the `confidence` interval of the noise, in steps.
    #[must_use]
    pub fn ci_half_width(&self, confidence: f64) -> f64 {
        <Self as Mechanism>::ci_half_width(self, confidence)
    }
}

impl sealed::Sealed for LaplaceMechanism {}

impl Mechanism for LaplaceMechanism {
    fn kind(&self) -> MechanismKind {
        MechanismKind::DiscreteLaplace
    }

    fn loss(&self) -> PrivacyLoss {
        PrivacyLoss::Pure(self.epsilon)
    }

    fn std_dev(&self) -> f64 {
        self.std_dev
    }

    fn ci_half_width(&self, confidence: f64) -> f64 {
        laplace_half_width(self.sampler.scale().to_f64(), confidence)
    }

    fn release<R: Rng + CryptoRng + ?Sized>(&self, value: i64, rng: &mut R) -> Released<i64> {
        self.with_noise(value, self.sampler.sample(rng))
    }
}

/// The smallest integer `k` with `P(|X| > k) <= 1 - confidence` for the discrete Laplace of
/// scale `scale`, where `P(|X| > k) = 2q^(k+1)/(1+q)`, `q = exp(-1/scale)`.
pub(crate) fn laplace_half_width(scale: f64, confidence: f64) -> f64 {
    let alpha = (1.0 - confidence).clamp(1e-300, 1.0 - 1e-16);
    let log_q = -1.0 / scale;
    let q = libm::exp(log_q);
    let tail = |k: f64| 2.0 * libm::exp(log_q * (k + 1.0)) / (1.0 + q);
    let mut k = libm::ceil(libm::log(alpha * (1.0 + q) / 2.0) / log_q - 1.0).max(0.0);
    while k > 0.0 && tail(k - 1.0) <= alpha {
        k -= 1.0;
    }
    while tail(k) > alpha {
        k += 1.0;
    }
    k
}
