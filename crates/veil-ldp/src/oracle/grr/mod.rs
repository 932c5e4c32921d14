//! Generalized randomized response (GRR, k-RR).

use rand_core::{CryptoRng, Rng};
use veil_core::Epsilon;

use crate::LdpError;
use crate::exact::{ExpLower, Prob64, epsilon_of_ratio, uniform_below_u32};
use crate::oracle::{Support, check_index, check_size};

#[cfg(test)]
mod tests;

/// Generalized randomized response over `d` values: keep the true value with probability
/// `p`, else report one of the other `d - 1` values uniformly.
///
/// Best for small domains (`d < 3e^ε + 2`). One report is one value index.
#[doc = include_str!("PRIVACY.md")]
#[derive(Debug, Clone, PartialEq)]
pub struct Grr {
    size: u32,
    keep: Prob64,
    epsilon: Epsilon,
}

impl Grr {
    /// GRR over `size` values at `epsilon`.
    ///
    /// # Errors
    /// [`LdpError::Domain`] if `size < 2` or above the limit; [`LdpError::Epsilon`] if ε
    /// is outside `[1e-6, 40]`.
    pub fn new(size: u32, epsilon: Epsilon) -> Result<Self, LdpError> {
        check_size(size)?;
        let bound = ExpLower::of_epsilon(epsilon)?;
        let keep = bound.max_prob(u64::from(size - 1), 1)?;
        Ok(Self {
            size,
            keep,
            epsilon,
        })
    }

    /// The domain size `d`.
    #[must_use]
    pub fn size(&self) -> u32 {
        self.size
    }

    /// The probability of keeping the true value.
    #[must_use]
    pub fn keep(&self) -> Prob64 {
        self.keep
    }

    /// The ε of the rounded probabilities, `ln(p·(d-1)/(1-p))`, rounded up; never above
    /// the requested ε.
    #[must_use]
    pub fn actual_epsilon(&self) -> f64 {
        #[allow(clippy::cast_precision_loss)]
        let numer = self.keep.numerator() as f64 * f64::from(self.size - 1);
        #[allow(clippy::cast_precision_loss)]
        let denom = self.keep.complement() as f64;
        epsilon_of_ratio(numer, denom, self.epsilon.get())
    }

    /// How likely a report is to equal an item.
    #[must_use]
    pub fn support(&self) -> Support {
        let p = self.keep.to_f64();
        Support {
            p_true: p,
            p_other: (1.0 - p) / f64::from(self.size - 1),
        }
    }

    /// Randomizes the value with index `index`.
    ///
    /// # Errors
    /// [`LdpError::OutOfDomain`] if `index >= d`.
    #[inline]
    pub fn randomize<R: Rng + CryptoRng + ?Sized>(
        &self,
        index: u32,
        rng: &mut R,
    ) -> Result<u32, LdpError> {
        check_index(index, self.size)?;
        if self.keep.sample(rng) {
            return Ok(index);
        }
        let other = uniform_below_u32(rng, self.size - 1);
        Ok(if other >= index { other + 1 } else { other })
    }
}
