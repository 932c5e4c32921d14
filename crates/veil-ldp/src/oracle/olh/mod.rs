//! Optimized local hashing (OLH).

use rand_core::{CryptoRng, Rng};
use veil_core::Epsilon;

use crate::LdpError;
use crate::exact::{ExpLower, Prob64, epsilon_of_ratio, uniform_below_u32};
use crate::hash::OlhHash;
use crate::oracle::{Support, check_index, check_size};

#[cfg(test)]
mod tests;

/// The largest number of hash buckets OLH uses.
pub const MAX_BUCKETS: u32 = 1 << 16;

/// Optimized local hashing over `d` values: each report draws a fresh 64-bit seed, hashes
/// the value into `g ≈ e^ε + 1` buckets with the pinned hash family
/// [`OlhHash`](crate::hash::OlhHash), and reports the bucket through generalized
/// randomized response over `g` values. A report is `(seed, bucket)`.
#[doc = include_str!("PRIVACY.md")]
#[derive(Debug, Clone, PartialEq)]
pub struct Olh {
    size: u32,
    buckets: u32,
    keep: Prob64,
    epsilon: Epsilon,
}

impl Olh {
    /// OLH over `size` values at `epsilon`, with `g = round(e^ε) + 1` buckets (at most
    /// 2^16).
    ///
    /// # Errors
    /// [`LdpError::Domain`] if `size < 2` or above the limit; [`LdpError::Epsilon`] if ε
    /// is outside `[1e-6, 40]`.
    pub fn new(size: u32, epsilon: Epsilon) -> Result<Self, LdpError> {
        check_size(size)?;
        let bound = ExpLower::of_epsilon(epsilon)?;
        let rounded = libm::round(bound.to_f64()).min(f64::from(MAX_BUCKETS - 1));
        #[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss)]
        let buckets = (rounded as u32).max(1) + 1;
        let keep = bound.max_prob(u64::from(buckets - 1), 1)?;
        Ok(Self {
            size,
            buckets,
            keep,
            epsilon,
        })
    }

    /// The domain size `d`.
    #[must_use]
    pub fn size(&self) -> u32 {
        self.size
    }

    /// The number of hash buckets `g`.
    #[must_use]
    pub fn buckets(&self) -> u32 {
        self.buckets
    }

    /// The probability of reporting the true bucket.
    #[must_use]
    pub fn keep(&self) -> Prob64 {
        self.keep
    }

    /// The ε of the rounded probabilities, `ln(p·(g-1)/(1-p))` rounded up; never above the
    /// requested ε.
    #[must_use]
    pub fn actual_epsilon(&self) -> f64 {
        #[allow(clippy::cast_precision_loss)]
        let numer = self.keep.numerator() as f64 * f64::from(self.buckets - 1);
        #[allow(clippy::cast_precision_loss)]
        let denom = self.keep.complement() as f64;
        epsilon_of_ratio(numer, denom, self.epsilon.get())
    }

    /// How likely a report is to hash an item into its bucket.
    #[must_use]
    pub fn support(&self) -> Support {
        Support {
            p_true: self.keep.to_f64(),
            p_other: 1.0 / f64::from(self.buckets),
        }
    }

    /// Randomizes the value with index `index`; returns `(seed, bucket)`.
    ///
    /// # Errors
    /// [`LdpError::OutOfDomain`] if `index >= d`.
    #[inline]
    pub fn randomize<R: Rng + CryptoRng + ?Sized>(
        &self,
        index: u32,
        rng: &mut R,
    ) -> Result<(u64, u32), LdpError> {
        check_index(index, self.size)?;
        let seed = rng.next_u64();
        let bucket = OlhHash::new(seed).bucket(index, self.buckets);
        if self.keep.sample(rng) {
            return Ok((seed, bucket));
        }
        let other = uniform_below_u32(rng, self.buckets - 1);
        Ok((seed, if other >= bucket { other + 1 } else { other }))
    }
}
