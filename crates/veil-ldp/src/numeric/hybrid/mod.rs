//! The hybrid of Duchi et al.'s and the piecewise mechanism.

use rand_core::{CryptoRng, Rng};
use veil_core::Epsilon;

use crate::LdpError;
use crate::exact::Prob64;
use crate::numeric::{Duchi, NumericRange, Piecewise};

#[cfg(test)]
mod tests;

/// Above this ε the hybrid mixes in the piecewise mechanism.
pub const PIECEWISE_THRESHOLD: f64 = 0.61;

/// The hybrid mechanism (Wang et al. 2019): with probability `α = 1 - e^(-ε/2)` (for
/// ε > 0.61, else 0) run the piecewise mechanism, else Duchi et al.'s; both at the full
/// ε. Its worst-case variance is below both.
#[doc = include_str!("PRIVACY.md")]
#[derive(Debug, Clone, PartialEq)]
pub struct Hybrid {
    duchi: Duchi,
    piecewise: Piecewise,
    mix: Prob64,
}

/// One report of the hybrid mechanism.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HybridReport {
    /// Duchi et al.'s sign.
    Duchi(bool),
    /// The piecewise mechanism's cell.
    Piecewise(u32),
}

impl Hybrid {
    /// The mechanism for values in `range` at `epsilon`.
    ///
    /// # Errors
    /// [`LdpError::Epsilon`] if ε is outside `[1e-6, 40]`.
    pub fn new(range: NumericRange, epsilon: Epsilon) -> Result<Self, LdpError> {
        let duchi = Duchi::new(range, epsilon)?;
        let piecewise = Piecewise::new(range, epsilon)?;
        let alpha = if epsilon.get() > PIECEWISE_THRESHOLD {
            -libm::expm1(-epsilon.get() / 2.0)
        } else {
            0.0
        };
        #[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss)]
        let mix = Prob64::from_numerator((alpha * 18_446_744_073_709_551_616.0).min(1.8e19) as u64);
        Ok(Self {
            duchi,
            piecewise,
            mix,
        })
    }

    /// The Duchi branch.
    #[must_use]
    pub fn duchi(&self) -> &Duchi {
        &self.duchi
    }

    /// The piecewise branch.
    #[must_use]
    pub fn piecewise(&self) -> &Piecewise {
        &self.piecewise
    }

    /// `α`: the probability of the piecewise branch.
    #[must_use]
    pub fn mix(&self) -> Prob64 {
        self.mix
    }

    /// The ε of the rounded probabilities: the larger of the two branches'.
    #[must_use]
    pub fn actual_epsilon(&self) -> f64 {
        self.duchi
            .actual_epsilon()
            .max(self.piecewise.actual_epsilon())
    }

    /// The variance of one report for input `t`.
    #[must_use]
    pub fn variance_at(&self, t: f64) -> f64 {
        let alpha = self.mix.to_f64();
        alpha * self.piecewise.variance_at(t) + (1.0 - alpha) * self.duchi.variance_at(t)
    }

    /// Randomizes `value`; returns the report and whether the value was clamped.
    ///
    /// # Errors
    /// [`LdpError::NotANumber`] for NaN.
    pub fn randomize<R: Rng + CryptoRng + ?Sized>(
        &self,
        value: f64,
        rng: &mut R,
    ) -> Result<(HybridReport, bool), LdpError> {
        let unit = self.duchi.range().to_unit(value)?;
        let report = if self.mix.sample(rng) {
            HybridReport::Piecewise(self.piecewise.randomize_unit(unit.t, rng))
        } else {
            HybridReport::Duchi(self.duchi.randomize_unit(unit.t, rng))
        };
        Ok((report, unit.clamped))
    }
}
