//! Hadamard response.

use rand_core::{CryptoRng, Rng};
use veil_core::Epsilon;

use crate::LdpError;
use crate::exact::{ExpLower, Prob64, epsilon_of_ratio};
use crate::oracle::{Support, check_index, check_size};

#[cfg(test)]
mod tests;

/// Hadamard response over `d` values: with `K` the smallest power of two above `d`, value
/// `v` owns the `K/2` columns `j` where row `v + 1` of the `K×K` Sylvester–Hadamard matrix
/// is `+1` (`popcount(j & (v+1))` even). The client reports one column: uniformly from its
/// own half with probability `e^ε/(e^ε + 1)`, else uniformly from the other half.
///
/// Reports are `log2 K` bits; the server decodes all `d` items with one fast
/// Walsh–Hadamard transform.
#[doc = include_str!("PRIVACY.md")]
#[derive(Debug, Clone, PartialEq)]
pub struct Hadamard {
    size: u32,
    order: u32,
    inside: Prob64,
    epsilon: Epsilon,
}

impl Hadamard {
    /// Hadamard response over `size` values at `epsilon`.
    ///
    /// # Errors
    /// [`LdpError::Domain`] if `size < 2` or above the limit; [`LdpError::Epsilon`] if ε
    /// is outside `[1e-6, 40]`.
    pub fn new(size: u32, epsilon: Epsilon) -> Result<Self, LdpError> {
        check_size(size)?;
        let bound = ExpLower::of_epsilon(epsilon)?;
        let inside = bound.max_prob(1, 1)?;
        Ok(Self {
            size,
            order: (size + 1).next_power_of_two(),
            inside,
            epsilon,
        })
    }

    /// The domain size `d`.
    #[must_use]
    pub fn size(&self) -> u32 {
        self.size
    }

    /// The order `K` of the Hadamard matrix (a power of two above `d`).
    #[must_use]
    pub fn order(&self) -> u32 {
        self.order
    }

    /// The probability of reporting a column of the value's own half.
    #[must_use]
    pub fn inside(&self) -> Prob64 {
        self.inside
    }

    /// The ε of the rounded probabilities, `ln(p/(1-p))` rounded up; never above the
    /// requested ε.
    #[must_use]
    pub fn actual_epsilon(&self) -> f64 {
        #[allow(clippy::cast_precision_loss)]
        let numer = self.inside.numerator() as f64;
        #[allow(clippy::cast_precision_loss)]
        let denom = self.inside.complement() as f64;
        epsilon_of_ratio(numer, denom, self.epsilon.get())
    }

    /// How likely a report is to fall in an item's half.
    #[must_use]
    pub fn support(&self) -> Support {
        Support {
            p_true: self.inside.to_f64(),
            p_other: 0.5,
        }
    }

    /// Whether column `column` is in the half that item `index` owns.
    #[inline]
    #[must_use]
    pub fn owns(index: u32, column: u32) -> bool {
        ((index + 1) & column).count_ones() & 1 == 0
    }

    /// Randomizes the value with index `index`; returns a column in `[0, K)`.
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
        let row = index + 1;
        let column = rng.next_u32() & (self.order - 1);
        let inside = self.inside.sample(rng);
        // Flipping the lowest set bit of the row flips the parity: a bijection between the
        // two halves, so the column stays uniform within the chosen half.
        Ok(if Self::owns(index, column) == inside {
            column
        } else {
            column ^ (row & row.wrapping_neg())
        })
    }
}
