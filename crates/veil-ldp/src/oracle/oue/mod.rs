//! Optimized unary encoding (OUE), with sparse reports.

use alloc::vec::Vec;

use rand_core::{CryptoRng, Rng};
use veil_core::Epsilon;

use crate::LdpError;
use crate::exact::{ExpLower, Prob64, bernoulli_mask, epsilon_of_ratio};
use crate::oracle::{Support, check_index, check_size};

#[cfg(test)]
mod tests;

/// Optimized unary encoding over `d` values: the client's value becomes a one-hot vector of
/// `d` bits; the true bit is reported as 1 with probability `1/2`, every other bit with
/// probability `q = 1/(e^ε + 1)`.
///
/// A report is the sorted list of the positions of its 1 bits (about `d/(e^ε + 1)` of
/// them), which the binary encoding stores as a bitmap or as deltas, whichever is smaller.
#[doc = include_str!("PRIVACY.md")]
#[derive(Debug, Clone, PartialEq)]
pub struct Oue {
    size: u32,
    one: Prob64,
    epsilon: Epsilon,
}

impl Oue {
    /// OUE over `size` values at `epsilon`.
    ///
    /// # Errors
    /// [`LdpError::Domain`] if `size < 2` or above the limit; [`LdpError::Epsilon`] if ε
    /// is outside `[1e-6, 40]`.
    pub fn new(size: u32, epsilon: Epsilon) -> Result<Self, LdpError> {
        check_size(size)?;
        let bound = ExpLower::of_epsilon(epsilon)?;
        let one = bound.min_prob(1, 1)?;
        Ok(Self { size, one, epsilon })
    }

    /// The domain size `d`.
    #[must_use]
    pub fn size(&self) -> u32 {
        self.size
    }

    /// `q`: the probability that a bit other than the true one is reported as 1.
    #[must_use]
    pub fn one(&self) -> Prob64 {
        self.one
    }

    /// The ε of the rounded probabilities, `ln((1-q)/q)` rounded up; never above the
    /// requested ε.
    #[must_use]
    pub fn actual_epsilon(&self) -> f64 {
        #[allow(clippy::cast_precision_loss)]
        let numer = self.one.complement() as f64;
        #[allow(clippy::cast_precision_loss)]
        let denom = self.one.numerator() as f64;
        epsilon_of_ratio(numer, denom, self.epsilon.get())
    }

    /// How likely a report is to have an item's bit set.
    #[must_use]
    pub fn support(&self) -> Support {
        Support {
            p_true: 0.5,
            p_other: self.one.to_f64(),
        }
    }

    /// Randomizes the value with index `index`; returns the sorted positions of the 1 bits.
    ///
    /// # Errors
    /// [`LdpError::OutOfDomain`] if `index >= d`.
    pub fn randomize<R: Rng + CryptoRng + ?Sized>(
        &self,
        index: u32,
        rng: &mut R,
    ) -> Result<Vec<u32>, LdpError> {
        check_index(index, self.size)?;
        let words = self.size.div_ceil(64);
        let mut ones = Vec::with_capacity(expected_ones(self.size, self.one));
        let true_word = index / 64;
        let true_bit = index % 64;
        for word_index in 0..words {
            let mut word = bernoulli_mask(rng, self.one);
            let base = word_index * 64;
            let valid = self.size - base;
            if valid < 64 {
                word &= (1_u64 << valid) - 1;
            }
            if word_index == true_word {
                // The true bit is an independent fair coin instead of a `q` trial.
                let coin = rng.next_u32() & 1 == 1;
                word &= !(1_u64 << true_bit);
                if coin {
                    word |= 1_u64 << true_bit;
                }
            }
            while word != 0 {
                ones.push(base + word.trailing_zeros());
                word &= word - 1;
            }
        }
        Ok(ones)
    }
}

fn expected_ones(size: u32, one: Prob64) -> usize {
    let expected = f64::from(size) * one.to_f64() * 1.25 + 8.0;
    #[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss)]
    let capacity = expected.min(f64::from(size)) as usize;
    capacity
}
