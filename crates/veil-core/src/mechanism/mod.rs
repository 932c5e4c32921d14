//! Mechanisms: exact noise added to integer answers, and to real answers on a fixed grid.
//!
//! A mechanism is built from a sensitivity and a privacy target, checks both at
//! construction, and never fails afterwards. Its output is a [`Released`] value: the
//! noisy answer with the mechanism, privacy loss, noise standard deviation and confidence
//! interval that describe it. Only this module can create a `Released`, so a value that
//! reaches a released file has been through a mechanism.
//!
//! Real values are released on a grid ([`Granularity`], [`FixedPoint`]): each value is
//! clamped and rounded to an integer number of grid steps, sums are exact integer sums,
//! the noise is an integer number of steps, and the sensitivity is computed in steps from
//! the rounded bounds. No released bit depends on floating-point rounding of the data.

use alloc::string::ToString;
use core::fmt;

use dashu_int::UBig;
use rand_core::{CryptoRng, Rng};

use crate::{Bounds, ParamError, PrivacyLoss, Rational};

mod gaussian;
mod joint;
mod laplace;
mod quantile;
mod threshold;

pub use gaussian::GaussianMechanism;
pub use joint::{
    AnswerShape, Component, JointLaplaceMechanism, PlateauShape, StaircaseShape,
    Step as StaircaseStep, best_step as best_staircase_step, unit_quantile as joint_unit_quantile,
    unit_tail as joint_unit_tail,
};
pub use laplace::LaplaceMechanism;
pub use quantile::{LEVEL_DENOMINATOR, QuantileLevel, QuantileMechanism, QuantileSelection};
pub use threshold::{ConditionalInterval, ThresholdMechanism, ThresholdNoise};

/// The confidence level of the intervals Veil reports: 95%.
pub const DEFAULT_CONFIDENCE: f64 = 0.95;

/// Which noise distribution a mechanism adds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
#[cfg_attr(feature = "serde", serde(rename_all = "kebab-case"))]
pub enum MechanismKind {
    /// The discrete Laplace (two-sided geometric) distribution.
    DiscreteLaplace,
    /// The discrete Gaussian distribution.
    DiscreteGaussian,
    /// One draw of noise for several answers together: the ℓ∞ K-norm law on the lattice.
    JointLaplace,
    /// One draw for several answers together from the staircase-shaped ℓ∞ law: flat on
    /// shells of the box norm, falling by `e^ε` from one to the next.
    JointStaircase,
    /// One draw for several answers together from the ℓ∞ law with a plateau: flat on a box
    /// of set widths, falling as the plain law beyond it.
    JointPlateau,
    /// A choice among candidates by exponentially falling weights (permute-and-flip or
    /// the exponential mechanism).
    Exponential,
}

impl fmt::Display for MechanismKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::DiscreteLaplace => "discrete-laplace",
            Self::DiscreteGaussian => "discrete-gaussian",
            Self::JointLaplace => "joint-laplace",
            Self::JointStaircase => "joint-staircase",
            Self::JointPlateau => "joint-plateau",
            Self::Exponential => "exponential",
        })
    }
}

/// A value that went through a mechanism, with what describes its noise.
///
/// Only mechanisms in this crate create one. Post-processing ([`Released::map`],
/// [`Released::to_real`]) keeps the description; the value itself is public.
///
/// A `Released` cannot be made from outside this crate:
///
/// ```compile_fail
/// use veil_core::Released;
/// let forged = Released { value: 42_i64 };
/// ```
///
/// ```compile_fail
/// use veil_core::{Epsilon, PrivacyLoss, Released, mechanism::MechanismKind};
/// let loss = PrivacyLoss::Pure(Epsilon::new(1.0).unwrap());
/// let forged = Released::new(42_i64, MechanismKind::DiscreteLaplace, loss, 1.0, 2.0);
/// ```
#[must_use]
#[derive(Debug, Clone, PartialEq)]
pub struct Released<T> {
    value: T,
    mechanism: MechanismKind,
    loss: PrivacyLoss,
    std_dev: f64,
    ci_half_width: f64,
    confidence: f64,
}

impl<T> Released<T> {
    pub(crate) fn new(
        value: T,
        mechanism: MechanismKind,
        loss: PrivacyLoss,
        std_dev: f64,
        ci_half_width: f64,
    ) -> Self {
        Self {
            value,
            mechanism,
            loss,
            std_dev,
            ci_half_width,
            confidence: DEFAULT_CONFIDENCE,
        }
    }

    /// The same release under a loss its mechanism states more fully (a threshold's δ).
    pub(crate) fn with_loss(self, loss: PrivacyLoss) -> Self {
        Self { loss, ..self }
    }

    /// The noisy value.
    pub fn value(&self) -> &T {
        &self.value
    }

    /// The noisy value, by value.
    pub fn into_value(self) -> T {
        self.value
    }

    /// The mechanism that produced it.
    pub fn mechanism(&self) -> MechanismKind {
        self.mechanism
    }

    /// The privacy loss of this one release.
    pub fn loss(&self) -> PrivacyLoss {
        self.loss
    }

    /// The standard deviation of the noise (an upper bound for the discrete Gaussian), in
    /// the units of the value.
    pub fn std_dev(&self) -> f64 {
        self.std_dev
    }

    /// Half the width of the confidence interval: the noise is within `±ci_half_width`
    /// with probability at least [`Released::confidence`].
    pub fn ci_half_width(&self) -> f64 {
        self.ci_half_width
    }

    /// The confidence level of the interval (0.95).
    pub fn confidence(&self) -> f64 {
        self.confidence
    }

    /// Post-processing: applies `f` to the value and keeps the noise description, which
    /// stays correct only if `f` does not change the value's units (use
    /// [`Released::to_real`] to change units). Post-processing never weakens privacy.
    pub fn map<U>(self, f: impl FnOnce(T) -> U) -> Released<U> {
        Released {
            value: f(self.value),
            mechanism: self.mechanism,
            loss: self.loss,
            std_dev: self.std_dev,
            ci_half_width: self.ci_half_width,
            confidence: self.confidence,
        }
    }
}

impl Released<i64> {
    /// The value in real units: steps times the grid's granularity, with the standard
    /// deviation and interval scaled alike.
    pub fn to_real(&self, granularity: Granularity) -> Released<f64> {
        let step = granularity.to_f64();
        #[allow(clippy::cast_precision_loss)]
        let value = self.value as f64 * step;
        Released {
            value,
            mechanism: self.mechanism,
            loss: self.loss,
            std_dev: self.std_dev * step,
            ci_half_width: self.ci_half_width * step,
            confidence: self.confidence,
        }
    }
}

#[doc(hidden)]
pub mod sealed {
    /// Seals [`super::Mechanism`]: implementations land only in Veil, with their privacy
    /// argument.
    pub trait Sealed {}
}

/// An additive noise mechanism on integers. Sealed: see each implementation's privacy
/// argument.
pub trait Mechanism: sealed::Sealed {
    /// The noise distribution.
    fn kind(&self) -> MechanismKind;

    /// The privacy loss of one release.
    fn loss(&self) -> PrivacyLoss;

    /// The standard deviation of the noise, in steps (an upper bound where not exact).
    fn std_dev(&self) -> f64;

    /// Half the width of the interval that holds the noise with probability at least
    /// `confidence`, in steps. `confidence` outside `(0, 1)` is clamped into it.
    fn ci_half_width(&self, confidence: f64) -> f64;

    /// Adds fresh noise to `value`. The noisy value is clamped into `i64`, which is
    /// post-processing.
    fn release<R: Rng + CryptoRng + ?Sized>(&self, value: i64, rng: &mut R) -> Released<i64>;
}

/// Adds noise in 128 bits and clamps the sum into `i64` (post-processing).
pub(crate) fn noisy_sum(value: i64, noise: i64) -> i64 {
    let sum = i128::from(value) + i128::from(noise);
    i64::try_from(sum).unwrap_or(if sum < 0 { i64::MIN } else { i64::MAX })
}

/// The spacing of the grid on which real values are released: a positive exact rational,
/// usually a power of two (exact in binary) or a decimal step such as `0.01`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Granularity(Rational);

impl Granularity {
    /// A grid of step `step`.
    ///
    /// # Errors
    /// [`ParamError::OutOfRange`] if `step` is zero.
    pub fn new(step: Rational) -> Result<Self, ParamError> {
        if step.is_zero() {
            return Err(ParamError::OutOfRange {
                param: "granularity",
                value: 0.0,
                expected: "> 0",
            });
        }
        Ok(Self(step))
    }

    /// The grid of step `2^exponent`, for `exponent` in `-100..=100`.
    ///
    /// # Errors
    /// [`ParamError::OutOfRange`] for an exponent outside that range.
    pub fn power_of_two(exponent: i32) -> Result<Self, ParamError> {
        if !(-100..=100).contains(&exponent) {
            return Err(ParamError::OutOfRange {
                param: "granularity exponent",
                value: f64::from(exponent),
                expected: "in -100..=100",
            });
        }
        let step = if exponent >= 0 {
            Rational::new(1 << exponent, 1)
        } else {
            Rational::new(1, 1 << (-exponent))
        };
        Ok(Self(step?))
    }

    /// The grid of step 1, for integer answers such as counts.
    #[must_use]
    pub fn unit() -> Self {
        Self(Rational::integer(1))
    }

    /// The default grid for values within `bounds`: the largest power of two that puts
    /// about 2^20 steps between zero and the largest absolute bound (at least 2^-60, at
    /// most 2^60). Rounding to it moves a value by at most one part in two million of
    /// the bound.
    #[must_use]
    pub fn for_bounds(bounds: Bounds) -> Self {
        let max_abs = bounds.max_abs();
        let exponent = if max_abs > 0.0 {
            #[allow(clippy::cast_possible_truncation)]
            let log = libm::floor(libm::log2(max_abs)) as i32;
            (log - 20).clamp(-60, 60)
        } else {
            0
        };
        Self::power_of_two(exponent).expect("the exponent is clamped into range")
    }

    /// The step as an exact rational.
    #[must_use]
    pub fn step(self) -> Rational {
        self.0
    }

    /// The step as the nearest `f64`.
    #[must_use]
    pub fn to_f64(self) -> f64 {
        self.0.to_f64()
    }
}

impl fmt::Display for Granularity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(&self.0, f)
    }
}

/// Clamped real values as integer steps of a grid: the bridge from data to the integer
/// mechanisms.
///
/// The bounds are rounded to the grid once, exactly; each value is then rounded to the
/// nearest step and clamped to the rounded bounds **in integers**, so one value moves a
/// sum by at most [`FixedPoint::max_abs_steps`] steps whatever the floating-point
/// rounding of the data did.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct FixedPoint {
    granularity: Granularity,
    inverse_step: f64,
    lower: i64,
    upper: i64,
}

impl FixedPoint {
    /// The grid `granularity` restricted to `bounds`.
    ///
    /// # Errors
    /// [`ParamError::Invalid`] if a bound is more than 2^62 steps from zero.
    pub fn new(bounds: Bounds, granularity: Granularity) -> Result<Self, ParamError> {
        let lower = round_to_steps(bounds.lower(), granularity)?;
        let upper = round_to_steps(bounds.upper(), granularity)?;
        Ok(Self {
            granularity,
            inverse_step: 1.0 / granularity.to_f64(),
            lower,
            upper,
        })
    }

    /// The grid.
    #[must_use]
    pub fn granularity(&self) -> Granularity {
        self.granularity
    }

    /// The bounds in steps, `(lower, upper)`.
    #[must_use]
    pub fn bounds_in_steps(&self) -> (i64, i64) {
        (self.lower, self.upper)
    }

    /// The largest number of steps one value can add to a sum.
    #[must_use]
    pub fn max_abs_steps(&self) -> u64 {
        self.lower.unsigned_abs().max(self.upper.unsigned_abs())
    }

    /// The width of the bounds in steps.
    #[must_use]
    pub fn width_steps(&self) -> u64 {
        self.upper.abs_diff(self.lower)
    }

    /// `value` rounded to the nearest step and clamped to the bounds, in steps; `None` for
    /// NaN (drop it and count it before aggregating). Infinities clamp to the bounds.
    #[must_use]
    pub fn to_steps(&self, value: f64) -> Option<i64> {
        if value.is_nan() {
            return None;
        }
        let scaled = libm::round(value * self.inverse_step);
        #[allow(clippy::cast_precision_loss)]
        let clamped = scaled.clamp(self.lower as f64, self.upper as f64);
        #[allow(clippy::cast_possible_truncation)]
        let steps = clamped as i64;
        Some(steps.clamp(self.lower, self.upper))
    }

    /// A number of steps as a real value (post-processing).
    #[must_use]
    pub fn to_real(&self, steps: i64) -> f64 {
        #[allow(clippy::cast_precision_loss)]
        let steps = steps as f64;
        steps * self.granularity.to_f64()
    }
}

/// `round(value / step)`, exactly, half away from zero.
fn round_to_steps(value: f64, granularity: Granularity) -> Result<i64, ParamError> {
    let magnitude = Rational::from_f64_exact(libm::fabs(value))?;
    let step = granularity.step();
    let (numer, denom) = magnitude.to_ubig();
    let (step_numer, step_denom) = step.to_ubig();
    // |value| / step = numer·step_denom / (denom·step_numer), rounded half up.
    let top = numer * step_denom;
    let bottom = denom * step_numer;
    let rounded = (UBig::from(2_u8) * top + &bottom) / (UBig::from(2_u8) * bottom);
    let limit = UBig::ONE << 62_usize;
    if rounded > limit {
        return Err(ParamError::Invalid {
            param: "bounds",
            reason: alloc::format!(
                "{value} is more than 2^62 steps of {granularity} from zero; use a coarser granularity"
            ),
        });
    }
    let steps = i64::try_from(&rounded).map_err(|_| ParamError::Invalid {
        param: "bounds",
        reason: "out of range".to_string(),
    })?;
    Ok(if value < 0.0 { -steps } else { steps })
}

/// The scale `numer / denom` (exact parts) of the noise, rounded up to sampler precision.
pub(crate) fn ceil_ratio(numer: UBig, denom: UBig) -> Result<Rational, ParamError> {
    Rational::ceil_of_ratio(&numer, &denom, 64)
}

/// The exact value of a positive finite `f64` as a big-integer ratio `(numer, denom)`.
pub(crate) fn exact_ratio(value: f64) -> Result<(UBig, UBig), ParamError> {
    // Rational::from_f64_exact covers 2^-127..2^127, the useful range of every parameter.
    let exact = Rational::from_f64_exact(value)?;
    Ok(exact.to_ubig())
}

#[cfg(test)]
mod tests;
