use dashu_int::UBig;
use rand_core::{CryptoRng, Rng};

use super::{Mechanism, MechanismKind, Released, ceil_ratio, exact_ratio, noisy_sum, sealed};
use crate::calibrate::{discrete_gaussian_delta, discrete_gaussian_sigma};
use crate::sample::DiscreteGaussian;
use crate::special::normal_sf_inverse;
use crate::{Delta, Epsilon, L2Sensitivity, ParamError, PrivacyLoss, Rational, Rho};

#[cfg(test)]
mod tests;

#[doc = include_str!("PRIVACY.md")]
///
/// # Errors
/// Never after construction; the constructors reject invalid parameters.
///
/// # Examples
/// ```
/// use veil_core::{L2Sensitivity, Rho, mechanism::GaussianMechanism};
/// let mut rng = veil_testkit::seeded_rng(1);
/// // σ = Δ₂ / sqrt(2ρ) = 1 / sqrt(2 · 0.005) = 10.
/// let mechanism = GaussianMechanism::new_zcdp(L2Sensitivity::integer(1), Rho::new(0.005)?)?;
/// assert!((mechanism.sigma() - 10.0).abs() < 1e-9);
/// let released = mechanism.release(1_000, &mut rng);
/// assert!((released.value() - 1_000).abs() < 100);
/// Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Debug, Clone, PartialEq)]
pub struct GaussianMechanism {
    sampler: DiscreteGaussian,
    sensitivity: u64,
    loss: PrivacyLoss,
    /// σ and the half-width of the noise's interval at `DEFAULT_CONFIDENCE`, computed once:
    /// every release carries both.
    sigma: f64,
    default_half_width: f64,
}

fn integer_sensitivity(sensitivity: L2Sensitivity) -> Result<u64, ParamError> {
    match sensitivity.as_integer() {
        Some(steps) if steps > 0 => Ok(steps),
        _ => Err(ParamError::OutOfRange {
            param: "sensitivity",
            value: sensitivity.get(),
            expected: "a positive integer number of grid steps",
        }),
    }
}

impl GaussianMechanism {
    /// The ρ-zCDP mechanism: `σ² = Δ₂²/(2ρ)`, exact or rounded up.
    ///
    /// # Errors
    /// [`ParamError`] if the sensitivity is not a positive integer or σ² exceeds 2^64.
    pub fn new_zcdp(sensitivity: L2Sensitivity, rho: Rho) -> Result<Self, ParamError> {
        let steps = integer_sensitivity(sensitivity)?;
        Self::new_zcdp_squared(u128::from(steps) * u128::from(steps), rho)
    }

    /// The ρ-zCDP mechanism for a vector-valued integer query given the **square** of its
    /// L2 sensitivity, which is an integer even when the sensitivity is not (a unit that
    /// adds up to `c` to each of `k` coordinates has `Δ₂² = k·c²`): `σ² = Δ₂²/(2ρ)`, exact
    /// or rounded up. Adding independent discrete Gaussians to each coordinate is
    /// `Δ₂²/(2σ²)`-zCDP for a real Δ₂ (Canonne, Kamath and Steinke 2020, Theorem 14).
    ///
    /// # Errors
    /// [`ParamError`] if `sensitivity_squared` is zero or σ² exceeds 2^64.
    pub fn new_zcdp_squared(sensitivity_squared: u128, rho: Rho) -> Result<Self, ParamError> {
        if sensitivity_squared == 0 {
            return Err(ParamError::OutOfRange {
                param: "sensitivity",
                value: 0.0,
                expected: "a positive number of grid steps",
            });
        }
        let (rho_numer, rho_denom) = exact_ratio(rho.get())?;
        let sigma_squared = ceil_ratio(
            UBig::from(sensitivity_squared) * rho_denom,
            UBig::from(2_u8) * rho_numer,
        )?;
        Ok(Self::with_sampler(
            DiscreteGaussian::new(sigma_squared)?,
            ceil_sqrt(sensitivity_squared),
            PrivacyLoss::Zcdp(rho),
        ))
    }

    /// The (ε, δ)-DP mechanism, with the smallest σ that Canonne, Kamath and Steinke's
    /// bound for the discrete Gaussian allows (see the privacy argument).
    ///
    /// # Errors
    /// [`ParamError`] if the sensitivity is not a positive integer, δ is zero, or σ² exceeds
    /// 2^64.
    pub fn new_approx(
        sensitivity: L2Sensitivity,
        epsilon: Epsilon,
        delta: Delta,
    ) -> Result<Self, ParamError> {
        let steps = integer_sensitivity(sensitivity)?;
        let sigma = discrete_gaussian_sigma(sensitivity, epsilon, delta)?;
        let (sigma_numer, sigma_denom) = exact_ratio(sigma)?;
        let sigma_squared = ceil_ratio(&sigma_numer * &sigma_numer, &sigma_denom * &sigma_denom)?;
        // δ decreases in σ², so checking at a value rounded down is conservative.
        let achieved = discrete_gaussian_delta(sensitivity, sigma_squared.to_f64_down(), epsilon)?;
        if achieved > delta.get() {
            return Err(ParamError::Invalid {
                param: "delta",
                reason: alloc::format!(
                    "internal error: calibrated σ² = {sigma_squared} gives δ = {achieved:e} > {delta}; please report this"
                ),
            });
        }
        Ok(Self::with_sampler(
            DiscreteGaussian::new(sigma_squared)?,
            steps,
            PrivacyLoss::Approx(epsilon, delta),
        ))
    }

    fn with_sampler(sampler: DiscreteGaussian, sensitivity: u64, loss: PrivacyLoss) -> Self {
        let sigma = sampler.sigma();
        Self {
            sampler,
            sensitivity,
            loss,
            sigma,
            default_half_width: gaussian_half_width(sigma, super::DEFAULT_CONFIDENCE),
        }
    }

    /// σ² in steps².
    #[must_use]
    pub fn sigma_squared(&self) -> Rational {
        self.sampler.sigma_squared()
    }

    /// σ in steps, rounded up.
    #[must_use]
    pub fn sigma(&self) -> f64 {
        self.sigma
    }

    /// The L2 sensitivity in steps, rounded up to an integer.
    #[must_use]
    pub fn sensitivity(&self) -> u64 {
        self.sensitivity
    }

    /// Adds fresh discrete Gaussian noise to `value` (see [`Mechanism::release`]).
    pub fn release<R: Rng + CryptoRng + ?Sized>(&self, value: i64, rng: &mut R) -> Released<i64> {
        <Self as Mechanism>::release(self, value, rng)
    }

    /// Half the width of the `confidence` interval of the noise, in steps.
    #[must_use]
    pub fn ci_half_width(&self, confidence: f64) -> f64 {
        <Self as Mechanism>::ci_half_width(self, confidence)
    }
}

impl sealed::Sealed for GaussianMechanism {}

impl Mechanism for GaussianMechanism {
    fn kind(&self) -> MechanismKind {
        MechanismKind::DiscreteGaussian
    }

    fn loss(&self) -> PrivacyLoss {
        self.loss
    }

    fn std_dev(&self) -> f64 {
        self.sigma
    }

    fn ci_half_width(&self, confidence: f64) -> f64 {
        gaussian_half_width(self.sigma, confidence)
    }

    fn release<R: Rng + CryptoRng + ?Sized>(&self, value: i64, rng: &mut R) -> Released<i64> {
        let noise = self.sampler.sample(rng);
        Released::new(
            noisy_sum(value, noise),
            MechanismKind::DiscreteGaussian,
            self.loss,
            self.sigma,
            self.default_half_width,
        )
    }
}

/// `⌈sqrt(value)⌉`, exactly.
fn ceil_sqrt(value: u128) -> u64 {
    #[allow(
        clippy::cast_precision_loss,
        clippy::cast_possible_truncation,
        clippy::cast_sign_loss
    )]
    let mut root = libm::sqrt(value as f64) as u128;
    while root > 0 && (root - 1) * (root - 1) >= value {
        root -= 1;
    }
    while root * root < value {
        root += 1;
    }
    u64::try_from(root).unwrap_or(u64::MAX)
}

/// `⌈σ·z⌉` with `z` the `1 - α/2` standard normal quantile: a valid half-width for the
/// discrete Gaussian (its tail is below the continuous one).
pub(crate) fn gaussian_half_width(sigma: f64, confidence: f64) -> f64 {
    let alpha = (1.0 - confidence).clamp(1e-300, 1.0 - 1e-16);
    libm::ceil(sigma * normal_sf_inverse(alpha / 2.0) * (1.0 + 1e-12))
}
