//! Exact probabilities and draws.
//!
//! Every randomization decision in this crate compares random integers with integers:
//!
//! - A probability is a [`Prob64`], `numerator / 2^64`. One Bernoulli trial is one
//!   64-bit draw compared with the numerator, so the trial succeeds with probability
//!   exactly `numerator / 2^64`.
//! - A uniform index below `n` uses Lemire's multiply-and-reject method, exact for any
//!   `n`.
//! - Sixty-four Bernoulli trials at once (`bernoulli_mask`) compare 64 lazily drawn
//!   uniform 64-bit integers with the numerator bit by bit ("bit-sliced"), which is the
//!   same comparison, exactly, for a fraction of the random bits.
//!
//! Probabilities are derived from ε with exact integer arithmetic (`ExpLower`): a
//! rational lower bound `L <= e^ε`, then the largest (or smallest) numerator whose
//! likelihood ratio is at most `L`, checked again exactly. So the true ε of the rounded
//! probabilities never exceeds the requested ε.

use alloc::string::{String, ToString};
use core::fmt;
use core::str::FromStr;

use dashu_int::UBig;
use dashu_int::ops::BitTest;
use rand_core::{CryptoRng, Rng};
use veil_core::Epsilon;

use crate::LdpError;

/// The largest ε a protocol accepts. Beyond it local randomization hides almost nothing.
pub const MAX_EPSILON: f64 = 40.0;
/// The smallest ε a protocol accepts. Below it the estimates carry no information.
pub const MIN_EPSILON: f64 = 1e-6;

/// A probability `numerator / 2^64`, the only form in which this crate samples.
///
/// Written as `"<numerator>/2^64"` in descriptors, so the exact value survives TOML,
/// whose integers are 63-bit.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Prob64(u64);

impl Prob64 {
    /// One half.
    pub const HALF: Self = Self(1 << 63);

    /// `numerator / 2^64`.
    #[must_use]
    pub const fn from_numerator(numerator: u64) -> Self {
        Self(numerator)
    }

    /// The numerator over `2^64`.
    #[must_use]
    pub fn numerator(self) -> u64 {
        self.0
    }

    /// `2^64 - numerator`: the numerator of the complement.
    #[must_use]
    pub fn complement(self) -> u128 {
        (1_u128 << 64) - u128::from(self.0)
    }

    /// The value as an `f64` (exact to 53 bits): for estimators and reports, never for
    /// sampling.
    #[must_use]
    #[allow(clippy::cast_precision_loss)]
    pub fn to_f64(self) -> f64 {
        self.0 as f64 / 18_446_744_073_709_551_616.0
    }

    /// One exact Bernoulli trial.
    #[inline]
    pub(crate) fn sample<R: Rng + CryptoRng + ?Sized>(self, rng: &mut R) -> bool {
        rng.next_u64() < self.0
    }
}

impl fmt::Display for Prob64 {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/2^64", self.0)
    }
}

impl FromStr for Prob64 {
    type Err = LdpError;

    fn from_str(text: &str) -> Result<Self, LdpError> {
        text.trim()
            .strip_suffix("/2^64")
            .and_then(|numerator| numerator.trim().parse::<u64>().ok())
            .map(Self)
            .ok_or_else(|| LdpError::Descriptor {
                field: String::from("probability"),
                reason: alloc::format!(
                    "cannot read {text:?}: expected an integer over 2^64 such as \"9223372036854775808/2^64\""
                ),
            })
    }
}

#[cfg(feature = "serde")]
impl serde::Serialize for Prob64 {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

#[cfg(feature = "serde")]
impl<'de> serde::Deserialize<'de> for Prob64 {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let text = <alloc::borrow::Cow<'de, str>>::deserialize(deserializer)?;
        text.parse().map_err(serde::de::Error::custom)
    }
}

/// Fractional bits of the fixed-point bounds.
const FRACTION_BITS: usize = 128;

/// An exact rational lower bound `L = fixed / 2^128` on `e^x`, for `x` given as a
/// multiple of `2^-64` (rounded down from ε, so `L <= e^x <= e^ε`).
///
/// `L` is a partial sum of the exponential series with every term rounded down; all terms
/// are positive, so the sum is below `e^x`, and it is within `2^-120` (relative) of it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct ExpLower {
    fixed: UBig,
}

impl ExpLower {
    /// The bound for `e^ε`.
    pub(crate) fn of_epsilon(epsilon: Epsilon) -> Result<Self, LdpError> {
        Ok(Self::of_scaled(epsilon_scaled(epsilon)?))
    }

    /// The bound for `e^(ε/2)`.
    pub(crate) fn of_half_epsilon(epsilon: Epsilon) -> Result<Self, LdpError> {
        Ok(Self::of_scaled(epsilon_scaled(epsilon)? / 2))
    }

    /// The bound for `e^(x / 2^64)`.
    fn of_scaled(x: u128) -> Self {
        let x = UBig::from(x);
        let mut term = UBig::ONE << FRACTION_BITS;
        let mut sum = term.clone();
        let mut k: u64 = 1;
        while term > UBig::ZERO {
            term = (&term * &x) / ((UBig::ONE << 64_usize) * UBig::from(k));
            sum += &term;
            k += 1;
        }
        Self { fixed: sum }
    }

    /// `L` as an `f64` (rounded to nearest): for choosing sizes, never for a privacy check.
    pub(crate) fn to_f64(&self) -> f64 {
        let shift = self.fixed.bit_len().saturating_sub(64);
        let top = u64::try_from(&(&self.fixed >> shift)).unwrap_or(u64::MAX);
        #[allow(clippy::cast_precision_loss)]
        let top = top as f64;
        #[allow(clippy::cast_possible_wrap, clippy::cast_possible_truncation)]
        let exponent = shift as i32 - FRACTION_BITS as i32;
        libm::ldexp(top, exponent)
    }

    /// Whether `numer / denom <= L`, exactly.
    pub(crate) fn bounds_ratio(&self, numer: &UBig, denom: &UBig) -> bool {
        (numer << FRACTION_BITS) <= &self.fixed * denom
    }

    /// The largest probability `m / 2^64` with `m·a <= L·b·(2^64 - m)`: the most likely
    /// outcome may be at most `L` times as likely as the least, when the two are weighed
    /// by `a` and `b`. Checked again exactly.
    pub(crate) fn max_prob(&self, a: u64, b: u64) -> Result<Prob64, LdpError> {
        let (a_big, b_big) = (UBig::from(a), UBig::from(b));
        let lb = &self.fixed * &b_big;
        let denominator = &lb + (&a_big << FRACTION_BITS);
        let m = (&lb << 64_usize) / denominator;
        let m = u64::try_from(&m).unwrap_or(u64::MAX);
        let prob = Prob64(m);
        let numer = UBig::from(m) * &a_big;
        let denom = UBig::from(prob.complement()) * &b_big;
        if self.bounds_ratio(&numer, &denom) {
            Ok(prob)
        } else {
            Err(LdpError::Internal(String::from(
                "a derived probability exceeds the ratio e^epsilon allows",
            )))
        }
    }

    /// The smallest probability `m / 2^64` with `(2^64 - m)·a <= L·b·m`. Checked again
    /// exactly.
    pub(crate) fn min_prob(&self, a: u64, b: u64) -> Result<Prob64, LdpError> {
        let (a_big, b_big) = (UBig::from(a), UBig::from(b));
        let lb = &self.fixed * &b_big;
        let a_shifted = &a_big << FRACTION_BITS;
        let denominator = &lb + &a_shifted;
        let numerator = &a_shifted << 64_usize;
        let m = (&numerator + &denominator - UBig::ONE) / &denominator;
        let m = u64::try_from(&m).map_err(|_| {
            LdpError::Internal(String::from("a derived probability rounds up to one"))
        })?;
        let prob = Prob64(m);
        let numer = UBig::from(prob.complement()) * &a_big;
        let denom = UBig::from(m) * &b_big;
        if m > 0 && self.bounds_ratio(&numer, &denom) {
            Ok(prob)
        } else {
            Err(LdpError::Internal(String::from(
                "a derived probability exceeds the ratio e^epsilon allows",
            )))
        }
    }
}

/// `⌊ε · 2^64⌋`, after checking ε against [`MIN_EPSILON`] and [`MAX_EPSILON`].
fn epsilon_scaled(epsilon: Epsilon) -> Result<u128, LdpError> {
    let value = epsilon.get();
    if !(MIN_EPSILON..=MAX_EPSILON).contains(&value) {
        return Err(LdpError::Epsilon {
            value,
            expected: "between 1e-6 and 40",
        });
    }
    let exact = veil_core::Rational::from_f64_exact(value).map_err(|_| LdpError::Epsilon {
        value,
        expected: "between 1e-6 and 40",
    })?;
    let scaled = (UBig::from(exact.numer()) << 64_usize) / UBig::from(exact.denom());
    u128::try_from(&scaled).map_err(|_| LdpError::Internal(String::from("ε · 2^64 overflows")))
}

/// The ε of a likelihood ratio `numer / denom` (natural log), rounded up by a relative
/// margin that covers the floating-point error, and capped at `cap`: the exact checks
/// already proved that the ratio is at most `e^cap`.
pub(crate) fn epsilon_of_ratio(numer: f64, denom: f64, cap: f64) -> f64 {
    let value = libm::log(numer) - libm::log(denom);
    let padded = value * (1.0 + 1e-12) + 1e-15;
    padded.min(cap)
}

/// 64 independent exact `Bernoulli(p)` trials, one per bit.
///
/// Lane `i` succeeds iff a uniform 64-bit integer `U_i` is below `p`'s numerator. The 64
/// integers are drawn one bit position at a time, from the most significant, and a lane
/// stops as soon as its comparison is decided; on average about eight 64-bit draws decide
/// all 64 lanes.
#[inline]
pub(crate) fn bernoulli_mask<R: Rng + CryptoRng + ?Sized>(rng: &mut R, p: Prob64) -> u64 {
    let numerator = p.numerator();
    let mut undecided = u64::MAX;
    let mut result = 0_u64;
    let mut bit = 64;
    while undecided != 0 && bit > 0 {
        bit -= 1;
        let draws = rng.next_u64();
        if (numerator >> bit) & 1 == 1 {
            // A lane whose bit is 0 here is below the numerator: success.
            result |= undecided & !draws;
            undecided &= draws;
        } else {
            // A lane whose bit is 1 here is above the numerator: failure.
            undecided &= !draws;
        }
    }
    // Lanes still undecided equal the numerator: not below it, so they fail.
    result
}

/// A uniform integer in `[0, n)` from 32-bit draws, for `n > 0`.
#[inline]
pub(crate) fn uniform_below_u32<R: Rng + ?Sized>(rng: &mut R, n: u32) -> u32 {
    let mut product = u64::from(rng.next_u32()) * u64::from(n);
    #[allow(clippy::cast_possible_truncation)]
    let mut low = product as u32;
    if low < n {
        let threshold = n.wrapping_neg() % n;
        while low < threshold {
            product = u64::from(rng.next_u32()) * u64::from(n);
            #[allow(clippy::cast_possible_truncation)]
            {
                low = product as u32;
            }
        }
    }
    #[allow(clippy::cast_possible_truncation)]
    let high = (product >> 32) as u32;
    high
}

/// Text for the descriptor: what one more report of the same value costs.
pub(crate) fn repeated_cost_text(memoize: bool) -> String {
    if memoize {
        "each distinct value a client reports costs epsilon once: repeated reports of that value resend its memoised permanent answer and cost nothing more; a client whose value changes k times pays (k + 1) epsilon in total, and identical repeated reports can be linked to each other".to_string()
    } else {
        "every report costs epsilon: k reports from one client cost k epsilon in total, and averaging them removes the noise; enable memoisation for values that are reported repeatedly".to_string()
    }
}

#[cfg(test)]
mod tests;
