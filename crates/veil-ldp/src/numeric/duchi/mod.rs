//! Duchi et al.'s one-dimensional mechanism.

use dashu_int::UBig;
use rand_core::{CryptoRng, Rng};
use veil_core::Epsilon;

use crate::LdpError;
use crate::exact::{ExpLower, epsilon_of_ratio};
use crate::numeric::{NumericRange, round_randomly};

#[cfg(test)]
mod tests;

/// Bits of the input grid: `t` is rounded to a multiple of `2^-20`.
pub const GRID_BITS: u32 = 20;
/// Bits of the slope `c`, stored as an integer over `2^40`.
pub const SLOPE_BITS: u32 = 40;

/// Duchi, Jordan and Wainwright's mechanism for a value `t` in `[-1, 1]`: report `+B` with
/// probability `(1 + c·t)/2`, else `-B`, where `c = (e^ε - 1)/(e^ε + 1)` and `B = 1/c`.
/// A report is one bit.
#[doc = include_str!("PRIVACY.md")]
#[derive(Debug, Clone, PartialEq)]
pub struct Duchi {
    range: NumericRange,
    slope: u64,
    epsilon: Epsilon,
}

impl Duchi {
    /// The mechanism for values in `range` at `epsilon`.
    ///
    /// # Errors
    /// [`LdpError::Epsilon`] if ε is outside `[1e-6, 40]`.
    pub fn new(range: NumericRange, epsilon: Epsilon) -> Result<Self, LdpError> {
        let bound = ExpLower::of_epsilon(epsilon)?;
        let slope = slope_for(&bound)?;
        Ok(Self {
            range,
            slope,
            epsilon,
        })
    }

    /// The range of input values.
    #[must_use]
    pub fn range(&self) -> NumericRange {
        self.range
    }

    /// The slope `c` as an integer over `2^40`.
    #[must_use]
    pub fn slope(&self) -> u64 {
        self.slope
    }

    /// The ε of the rounded slope, `ln((1 + c)/(1 - c))` rounded up; never above the
    /// requested ε.
    #[must_use]
    pub fn actual_epsilon(&self) -> f64 {
        #[allow(clippy::cast_precision_loss)]
        let slope = self.slope as f64;
        let one = f64::from(1_u32 << 20) * f64::from(1_u32 << 20);
        epsilon_of_ratio(one + slope, one - slope, self.epsilon.get())
    }

    /// The magnitude `B = 1/c` of a report in `[-1, 1]` units.
    #[must_use]
    pub fn magnitude(&self) -> f64 {
        #[allow(clippy::cast_precision_loss)]
        let slope = self.slope as f64;
        f64::from(1_u32 << 20) * f64::from(1_u32 << 20) / slope
    }

    /// The value of a report in `[-1, 1]` units: `±B`, unbiased for `t`.
    #[must_use]
    pub fn value(&self, positive: bool) -> f64 {
        if positive {
            self.magnitude()
        } else {
            -self.magnitude()
        }
    }

    /// The variance of one report for input `t`: `B² - t²`.
    #[must_use]
    pub fn variance_at(&self, t: f64) -> f64 {
        let magnitude = self.magnitude();
        magnitude * magnitude - t * t
    }

    /// Randomizes `value`; returns the reported sign and whether the value was clamped.
    ///
    /// # Errors
    /// [`LdpError::NotANumber`] for NaN.
    #[inline]
    pub fn randomize<R: Rng + CryptoRng + ?Sized>(
        &self,
        value: f64,
        rng: &mut R,
    ) -> Result<(bool, bool), LdpError> {
        let unit = self.range.to_unit(value)?;
        Ok((self.randomize_unit(unit.t, rng), unit.clamped))
    }

    /// Randomizes `t` in `[-1, 1]`.
    #[inline]
    pub(crate) fn randomize_unit<R: Rng + CryptoRng + ?Sized>(&self, t: f64, rng: &mut R) -> bool {
        let grid = 1_u32 << GRID_BITS;
        let position = round_randomly((t + 1.0) * f64::from(grid), 2 * grid, rng);
        // P(+) = (1 + k·c/2^60)/2 = (2^60 + k·c)/2^61 with k = position - 2^20 in
        // [-2^20, 2^20] and c < 2^40: exact in 64 bits.
        let k = i128::from(position) - i128::from(grid);
        let numerator = (1_i128 << 60) + k * i128::from(self.slope);
        let draw = i128::from(rng.next_u64() >> 3);
        draw < numerator
    }
}

/// The largest `c` (over 2^40) with `(2^40 + c) <= L (2^40 - c)`, checked exactly.
fn slope_for(bound: &ExpLower) -> Result<u64, LdpError> {
    let one = 1_u64 << SLOPE_BITS;
    // Search the largest c by bisection on the exact inequality (40 steps).
    let fits = |c: u64| bound.bounds_ratio(&UBig::from(one + c), &UBig::from(one - c));
    let (mut low, mut high) = (0_u64, one - 1);
    while low < high {
        let middle = low + (high - low).div_ceil(2);
        if fits(middle) {
            low = middle;
        } else {
            high = middle - 1;
        }
    }
    if low == 0 || !fits(low) {
        return Err(LdpError::Internal(alloc::string::String::from(
            "no positive slope fits the privacy bound",
        )));
    }
    Ok(low)
}
