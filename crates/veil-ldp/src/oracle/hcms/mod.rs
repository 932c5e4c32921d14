//! Hadamard count-mean sketch (HCMS) for open domains.

use alloc::format;

use rand_core::{CryptoRng, Rng};
use veil_core::Epsilon;

use crate::LdpError;
use crate::exact::{ExpLower, Prob64, epsilon_of_ratio, uniform_below_u32};
use crate::hash::sketch_hash;

#[cfg(test)]
mod tests;

/// The largest sketch width (columns per hash function).
pub const MAX_WIDTH: u32 = 1 << 16;
/// The largest number of hash functions.
pub const MAX_HASHES: u32 = 1 << 16;

/// Hadamard count-mean sketch: for values from an open domain (any string). The client
/// picks one of `k` pinned hash functions and one of `m` Hadamard columns at random, and
/// reports the sign of the Hadamard entry at (hashed value, column), flipped with
/// probability `1/(e^ε + 1)`. A report is `(hash index, column, bit)`.
///
/// The server builds a `k × m` sketch and estimates the count of any candidate string.
#[doc = include_str!("PRIVACY.md")]
#[derive(Debug, Clone, PartialEq)]
pub struct Hcms {
    hashes: u32,
    width: u32,
    seed: u64,
    flip: Prob64,
    epsilon: Epsilon,
}

impl Hcms {
    /// A sketch with `hashes` hash functions of `width` columns (a power of two), hash
    /// functions keyed by `seed`, at `epsilon`.
    ///
    /// # Errors
    /// [`LdpError::Option`] for a width that is not a power of two in `[2, 2^16]` or a
    /// number of hashes outside `[1, 2^16]`; [`LdpError::Epsilon`] if ε is outside
    /// `[1e-6, 40]`.
    pub fn new(hashes: u32, width: u32, seed: u64, epsilon: Epsilon) -> Result<Self, LdpError> {
        if !(2..=MAX_WIDTH).contains(&width) || !width.is_power_of_two() {
            return Err(LdpError::Option {
                option: "sketch width",
                reason: format!("{width} is not a power of two between 2 and {MAX_WIDTH}"),
            });
        }
        if !(1..=MAX_HASHES).contains(&hashes) {
            return Err(LdpError::Option {
                option: "hashes",
                reason: format!("{hashes} is not between 1 and {MAX_HASHES}"),
            });
        }
        let bound = ExpLower::of_epsilon(epsilon)?;
        let flip = bound.min_prob(1, 1)?;
        Ok(Self {
            hashes,
            width,
            seed,
            flip,
            epsilon,
        })
    }

    /// The number of hash functions `k`.
    #[must_use]
    pub fn hashes(&self) -> u32 {
        self.hashes
    }

    /// The sketch width `m`.
    #[must_use]
    pub fn width(&self) -> u32 {
        self.width
    }

    /// The seed that keys the hash functions.
    #[must_use]
    pub fn seed(&self) -> u64 {
        self.seed
    }

    /// The probability of flipping the reported bit.
    #[must_use]
    pub fn flip(&self) -> Prob64 {
        self.flip
    }

    /// The ε of the rounded probabilities, `ln((1-q)/q)` rounded up; never above the
    /// requested ε.
    #[must_use]
    pub fn actual_epsilon(&self) -> f64 {
        #[allow(clippy::cast_precision_loss)]
        let numer = self.flip.complement() as f64;
        #[allow(clippy::cast_precision_loss)]
        let denom = self.flip.numerator() as f64;
        epsilon_of_ratio(numer, denom, self.epsilon.get())
    }

    /// The bucket of `value` under hash function `index`.
    #[must_use]
    pub fn bucket(&self, index: u32, value: &[u8]) -> u32 {
        sketch_hash(self.seed, index, value, self.width)
    }

    /// The Hadamard sign of `column` for a value in `bucket`, before randomizing: true for
    /// `+1`.
    #[inline]
    #[must_use]
    pub fn sign(bucket: u32, column: u32) -> bool {
        (bucket & column).count_ones() & 1 == 0
    }

    /// Randomizes `value` (any bytes, usually UTF-8 text); returns
    /// `(hash index, column, bit)` where `bit` is true for `+1`.
    #[inline]
    pub fn randomize<R: Rng + CryptoRng + ?Sized>(
        &self,
        value: &[u8],
        rng: &mut R,
    ) -> (u32, u32, bool) {
        let index = uniform_below_u32(rng, self.hashes);
        let bucket = self.bucket(index, value);
        let column = rng.next_u32() & (self.width - 1);
        let positive = Self::sign(bucket, column);
        let flipped = self.flip.sample(rng);
        (index, column, positive != flipped)
    }
}
