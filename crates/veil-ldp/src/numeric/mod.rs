//! Numeric randomizers: one real value in a known range `[a, b]`, for mean estimation.
//!
//! Values are clamped into the range (as a client would), mapped to `t` in `[-1, 1]`, and
//! put on a fixed integer grid by unbiased randomized rounding before a mechanism sees
//! them. Every mechanism here is ε-LDP for *any* grid input, so neither the clamping nor the
//! rounding (which is floating point) takes part in the privacy argument.

use alloc::format;

use rand_core::{CryptoRng, Rng};
use veil_core::Bounds;

use crate::LdpError;

pub mod duchi;
pub mod hybrid;
pub mod piecewise;

pub use duchi::Duchi;
pub use hybrid::Hybrid;
pub use piecewise::Piecewise;

/// A numeric range `[lower, upper]` with `lower < upper`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct NumericRange {
    bounds: Bounds,
}

/// A value mapped into `[-1, 1]`, and whether it had to be clamped into the range.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Unit {
    /// The value in `[-1, 1]`.
    pub t: f64,
    /// Whether the original value was outside the range.
    pub clamped: bool,
}

impl NumericRange {
    /// The range `bounds`, which must have `lower < upper`.
    ///
    /// # Errors
    /// [`LdpError::Range`] if the bounds are equal.
    pub fn new(bounds: Bounds) -> Result<Self, LdpError> {
        if bounds.lower() < bounds.upper() {
            Ok(Self { bounds })
        } else {
            Err(LdpError::Range {
                reason: format!(
                    "[{}, {}] is empty: the lower bound must be below the upper bound",
                    bounds.lower(),
                    bounds.upper()
                ),
            })
        }
    }

    /// The lower bound `a`.
    #[must_use]
    pub fn lower(&self) -> f64 {
        self.bounds.lower()
    }

    /// The upper bound `b`.
    #[must_use]
    pub fn upper(&self) -> f64 {
        self.bounds.upper()
    }

    /// Clamps `value` into the range and maps it to `[-1, 1]`.
    ///
    /// # Errors
    /// [`LdpError::NotANumber`] for NaN (infinities clamp to the ends).
    pub fn to_unit(&self, value: f64) -> Result<Unit, LdpError> {
        if value.is_nan() {
            return Err(LdpError::NotANumber);
        }
        let (lower, upper) = (self.lower(), self.upper());
        let clamped = value < lower || value > upper;
        let inside = value.clamp(lower, upper);
        let t = (2.0 * ((inside - lower) / (upper - lower)) - 1.0).clamp(-1.0, 1.0);
        Ok(Unit { t, clamped })
    }

    /// Maps a mean in `[-1, 1]` units back to the range's units.
    #[must_use]
    pub fn from_unit(&self, t: f64) -> f64 {
        self.lower() + (self.upper() - self.lower()) * (t + 1.0) / 2.0
    }

    /// The factor from `[-1, 1]` units to the range's units: `(b - a)/2`.
    #[must_use]
    pub fn unit_scale(&self) -> f64 {
        (self.upper() - self.lower()) / 2.0
    }
}

/// Rounds `x` in `[0, limit]` to an integer at random, up with probability equal to its
/// fractional part (to 2^-32), so the result is unbiased. Utility only: every grid point is
/// a valid input of the mechanisms.
#[inline]
pub(crate) fn round_randomly<R: Rng + CryptoRng + ?Sized>(x: f64, limit: u32, rng: &mut R) -> u32 {
    let x = x.clamp(0.0, f64::from(limit));
    let whole = libm::floor(x);
    #[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss)]
    let threshold = ((x - whole) * 4_294_967_296.0) as u64;
    #[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss)]
    let base = whole as u32;
    let up = u64::from(rng.next_u32()) < threshold;
    (base + u32::from(up)).min(limit)
}
