//! Wang et al.'s piecewise mechanism, on a fixed grid of output cells.

use rand_core::{CryptoRng, Rng};
use veil_core::Epsilon;

use crate::LdpError;
use crate::exact::{ExpLower, Prob64, epsilon_of_ratio, uniform_below_u32};
use crate::numeric::{NumericRange, round_randomly};

#[cfg(test)]
mod tests;

/// The number of output cells `M` (2^20).
pub const CELLS: u32 = 1 << 20;

/// The piecewise mechanism for a value `t` in `[-1, 1]`, discretized: the output range is
/// `M` equal cells; input `t` owns a band of `W ≈ M/(e^(ε/2) + 1)` consecutive cells whose
/// position moves linearly with `t`. The client reports a uniform cell of its band with
/// probability `P`, else a uniform cell outside it, with `P/(1-P) = e^ε·W/(M-W)`. A report is
/// one cell index.
#[doc = include_str!("PRIVACY.md")]
#[derive(Debug, Clone, PartialEq)]
pub struct Piecewise {
    range: NumericRange,
    band: u32,
    inside: Prob64,
    epsilon: Epsilon,
}

impl Piecewise {
    /// The mechanism for values in `range` at `epsilon`.
    ///
    /// # Errors
    /// [`LdpError::Epsilon`] if ε is outside `[1e-6, 40]`.
    pub fn new(range: NumericRange, epsilon: Epsilon) -> Result<Self, LdpError> {
        let half = ExpLower::of_half_epsilon(epsilon)?;
        let width = libm::round(f64::from(CELLS) / (half.to_f64() + 1.0));
        #[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss)]
        let band = (width as u32).clamp(1, CELLS - 1);
        let bound = ExpLower::of_epsilon(epsilon)?;
        let inside = bound.max_prob(u64::from(CELLS - band), u64::from(band))?;
        Ok(Self {
            range,
            band,
            inside,
            epsilon,
        })
    }

    /// The range of input values.
    #[must_use]
    pub fn range(&self) -> NumericRange {
        self.range
    }

    /// The number of output cells `M`.
    #[must_use]
    pub fn cells(&self) -> u32 {
        CELLS
    }

    /// The band width `W` in cells.
    #[must_use]
    pub fn band(&self) -> u32 {
        self.band
    }

    /// The probability `P` of reporting a cell of the band.
    #[must_use]
    pub fn inside(&self) -> Prob64 {
        self.inside
    }

    /// The ε of the rounded probabilities, `ln(P (M-W) / ((1-P) W))` rounded up; never
    /// above the requested ε.
    #[must_use]
    pub fn actual_epsilon(&self) -> f64 {
        #[allow(clippy::cast_precision_loss)]
        let numer = self.inside.numerator() as f64 * f64::from(CELLS - self.band);
        #[allow(clippy::cast_precision_loss)]
        let denom = self.inside.complement() as f64 * f64::from(self.band);
        epsilon_of_ratio(numer, denom, self.epsilon.get())
    }

    /// `E[cell - (M-1)/2 | t] / t`: the slope that makes cells unbiased for `t`.
    pub(crate) fn scale(&self) -> f64 {
        let p = self.inside.to_f64();
        let (band, rest) = (f64::from(self.band), f64::from(CELLS - self.band));
        let kappa = p - (1.0 - p) * band / rest;
        kappa * rest / 2.0
    }

    /// The value of a report in `[-1, 1]` units, unbiased for `t`.
    #[must_use]
    pub fn value(&self, cell: u32) -> f64 {
        (f64::from(cell) - (f64::from(CELLS) - 1.0) / 2.0) / self.scale()
    }

    /// The variance of one report for input `t` (band position rounded to the nearest
    /// cell).
    #[must_use]
    pub fn variance_at(&self, t: f64) -> f64 {
        let rest = CELLS - self.band;
        let start = libm::round((t.clamp(-1.0, 1.0) + 1.0) / 2.0 * f64::from(rest));
        let center = (f64::from(CELLS) - 1.0) / 2.0;
        let band_end = start + f64::from(self.band) - 1.0;
        let band_sq = squares(start - center, band_end - center);
        let all_sq = squares(-center, center);
        let p = self.inside.to_f64();
        let second =
            p * band_sq / f64::from(self.band) + (1.0 - p) * (all_sq - band_sq) / f64::from(rest);
        let scale = self.scale();
        second / (scale * scale) - t * t
    }

    /// Randomizes `value`; returns the reported cell and whether the value was clamped.
    ///
    /// # Errors
    /// [`LdpError::NotANumber`] for NaN.
    #[inline]
    pub fn randomize<R: Rng + CryptoRng + ?Sized>(
        &self,
        value: f64,
        rng: &mut R,
    ) -> Result<(u32, bool), LdpError> {
        let unit = self.range.to_unit(value)?;
        Ok((self.randomize_unit(unit.t, rng), unit.clamped))
    }

    /// Randomizes `t` in `[-1, 1]`.
    #[inline]
    pub(crate) fn randomize_unit<R: Rng + CryptoRng + ?Sized>(&self, t: f64, rng: &mut R) -> u32 {
        let rest = CELLS - self.band;
        let start = round_randomly((t + 1.0) / 2.0 * f64::from(rest), rest, rng);
        if self.inside.sample(rng) {
            start + uniform_below_u32(rng, self.band)
        } else {
            let other = uniform_below_u32(rng, rest);
            if other < start {
                other
            } else {
                other + self.band
            }
        }
    }
}

/// `Σ x²` over `x = from, from + 1, …, to` (half-integers allowed), in floating point.
fn squares(from: f64, to: f64) -> f64 {
    // Σ_{i=0}^{n-1} (from + i)² = n·from² + from·n(n-1) + (n-1)n(2n-1)/6.
    let n = to - from + 1.0;
    n * from * from + from * n * (n - 1.0) + (n - 1.0) * n * (2.0 * n - 1.0) / 6.0
}
