//! Exact samplers over the integers.
//!
//! Every sampler here decides with integer arithmetic only: uniform integers drawn by
//! rejection (Lemire's method), Bernoulli trials with rational probabilities, and the
//! algorithms of Canonne, Kamath and Steinke, "The Discrete Gaussian for Differential
//! Privacy" (NeurIPS 2020), for `Bernoulli(exp(-γ))`, the discrete Laplace and the
//! discrete Gaussian. No floating-point number takes part in choosing an output, so the
//! output distribution is exactly the one the privacy argument assumes.
//!
//! Arithmetic is fixed-width (`u32`, `u64`, `u128`) in the common case; a value that would
//! overflow moves that one step to arbitrary-precision integers (`dashu`), so parameters of
//! any size stay exact.
//!
//! The caller passes the RNG. Production code passes a ChaCha generator seeded by the
//! operating system; tests pass a seeded one.

use dashu_int::UBig;
use dashu_int::ops::BitTest;
use rand_core::{CryptoRng, Rng};

use crate::{ParamError, Rational};

#[cfg(test)]
mod tests;

/// Draws one `Bernoulli(p)` trial for a rational `p` in `[0, 1]`.
///
/// # Errors
/// [`ParamError::OutOfRange`] if `p > 1`.
pub fn bernoulli<R: Rng + CryptoRng + ?Sized>(
    rng: &mut R,
    p: Rational,
) -> Result<bool, ParamError> {
    if p.numer() > p.denom() {
        return Err(ParamError::OutOfRange {
            param: "bernoulli probability",
            value: p.to_f64(),
            expected: "in [0, 1]",
        });
    }
    Ok(bernoulli_ratio(rng, p.numer(), p.denom()))
}

/// Draws one `Bernoulli(exp(-γ))` trial for a rational `γ >= 0`, exactly
/// (Canonne, Kamath and Steinke 2020, Algorithm 1, extended to `γ > 1` by splitting off
/// whole units).
pub fn bernoulli_exp<R: Rng + CryptoRng + ?Sized>(rng: &mut R, gamma: Rational) -> bool {
    bernoulli_exp_ratio(rng, gamma.numer(), gamma.denom())
}

/// The geometric distribution on `{0, 1, 2, ...}` with `P(k) ∝ exp(-k / scale)`.
///
/// Sampled exactly: a uniform integer below the scale's numerator is accepted with
/// probability `exp(-u/numerator)`, a geometric number of whole numerators is added
/// (each with probability `exp(-1)`), and the sum is divided by the denominator
/// (Canonne, Kamath and Steinke 2020, Algorithm 2, one-sided). Expected cost is constant
/// in the scale.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Geometric {
    numer: u64,
    denom: u64,
}

impl Geometric {
    /// The geometric distribution with ratio `exp(-1 / scale)`.
    ///
    /// # Errors
    /// [`ParamError`] if the scale is zero or its numerator or denominator (in lowest
    /// terms) needs more than 64 bits.
    pub fn new(scale: Rational) -> Result<Self, ParamError> {
        let (numer, denom) = sampler_parts("scale", scale)?;
        Ok(Self { numer, denom })
    }

    /// The scale.
    #[must_use]
    pub fn scale(&self) -> Rational {
        Rational::new(u128::from(self.numer), u128::from(self.denom))
            .expect("the denominator is never zero")
    }

    /// Draws one value.
    pub fn sample<R: Rng + CryptoRng + ?Sized>(&self, rng: &mut R) -> u128 {
        geometric(rng, self.numer, self.denom)
    }

    /// `P(X = k)`, in floating point: for tests and reports, never for sampling.
    #[must_use]
    pub fn pmf(&self, k: u64) -> f64 {
        let ratio = libm::exp(-1.0 / self.scale().to_f64());
        #[allow(clippy::cast_precision_loss)]
        let k = k as f64;
        (1.0 - ratio) * libm::pow(ratio, k)
    }
}

/// The discrete Laplace distribution on the integers, `P(x) ∝ exp(-|x| / scale)`.
///
/// Sampled exactly as a geometric magnitude with a uniform sign, rejecting "negative
/// zero" so that zero is not counted twice (Canonne, Kamath and Steinke 2020,
/// Algorithm 2). Its variance is `2q / (1 - q)²` with `q = exp(-1/scale)`.
///
/// Outputs are `i64`. A magnitude above `i64::MAX` is redrawn; for scales below 2^56
/// that happens with probability below `exp(-128)`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DiscreteLaplace {
    magnitude: Geometric,
}

impl DiscreteLaplace {
    /// The discrete Laplace with the given scale.
    ///
    /// # Errors
    /// [`ParamError`] if the scale is zero or its parts need more than 64 bits.
    pub fn new(scale: Rational) -> Result<Self, ParamError> {
        Ok(Self {
            magnitude: Geometric::new(scale)?,
        })
    }

    /// The scale `t` in `P(x) ∝ exp(-|x| / t)`.
    #[must_use]
    pub fn scale(&self) -> Rational {
        self.magnitude.scale()
    }

    /// Draws one value.
    pub fn sample<R: Rng + CryptoRng + ?Sized>(&self, rng: &mut R) -> i64 {
        self.signed(rng, |magnitude| magnitude)
    }

    /// Draws one value of this distribution truncated to `[-bound, bound]`:
    /// `P(x) ∝ exp(-|x| / scale)` for `|x| <= bound`, zero outside.
    ///
    /// Sampled directly, never by redrawing until inside (which takes about
    /// `scale / bound` draws when the support is narrow): a geometric `G` taken modulo
    /// `bound + 1` has `P(G mod (bound+1) = j) = Σ_i (1−q) q^(j + i(bound+1)) ∝ q^j` on
    /// `{0, …, bound}`, exactly the truncated magnitude; the sign is uniform and "negative
    /// zero" is redrawn, as in [`DiscreteLaplace::sample`] (accepted with probability at
    /// least one half). Expected cost is constant in the scale and the bound.
    pub fn sample_truncated<R: Rng + CryptoRng + ?Sized>(&self, rng: &mut R, bound: u64) -> i64 {
        let period = u128::from(bound) + 1;
        self.signed(rng, |magnitude| magnitude % period)
    }

    /// A geometric magnitude passed through `fold`, with a uniform sign; "negative zero"
    /// and magnitudes above `i64::MAX` are redrawn whole.
    fn signed<R: Rng + CryptoRng + ?Sized>(&self, rng: &mut R, fold: impl Fn(u128) -> u128) -> i64 {
        loop {
            let magnitude = fold(geometric(rng, self.magnitude.numer, self.magnitude.denom));
            let negative = rng.next_u32() & 1 == 1;
            if negative && magnitude == 0 {
                continue;
            }
            let Ok(magnitude) = i64::try_from(magnitude) else {
                continue;
            };
            return if negative { -magnitude } else { magnitude };
        }
    }

    /// `P(X = x)`, in floating point: for tests and reports, never for sampling.
    #[must_use]
    pub fn pmf(&self, x: i64) -> f64 {
        let ratio = libm::exp(-1.0 / self.scale().to_f64());
        #[allow(clippy::cast_precision_loss)]
        let magnitude = x.unsigned_abs() as f64;
        (1.0 - ratio) / (1.0 + ratio) * libm::pow(ratio, magnitude)
    }

    /// The variance `2q / (1 - q)²`, `q = exp(-1/scale)`.
    #[must_use]
    pub fn variance(&self) -> f64 {
        let inverse = 1.0 / self.scale().to_f64();
        let ratio = libm::exp(-inverse);
        let gap = -libm::expm1(-inverse);
        2.0 * ratio / (gap * gap)
    }
}

/// The discrete Gaussian distribution on the integers, `P(x) ∝ exp(-x² / (2σ²))`.
///
/// Sampled exactly by rejection from a discrete Laplace of integer scale `⌊σ⌋ + 1`,
/// accepting `y` with probability `exp(-(|y| - σ²/t)² / (2σ²))` (Canonne, Kamath and
/// Steinke 2020, Algorithm 3). Its variance is below σ².
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DiscreteGaussian {
    sigma_squared: Rational,
    proposal: DiscreteLaplace,
    /// `t = ⌊σ⌋ + 1`, the proposal's scale.
    t: u64,
    /// `a` and `b` of `σ² = a / b`.
    a: u128,
    b: u128,
    /// `2·a·b·t²`, the denominator of the acceptance exponent, when it fits.
    denominator: Option<u128>,
}

impl DiscreteGaussian {
    /// The discrete Gaussian with variance parameter `sigma_squared` (σ²).
    ///
    /// # Errors
    /// [`ParamError`] if σ² is zero or its parts need more than 64 bits.
    pub fn new(sigma_squared: Rational) -> Result<Self, ParamError> {
        let (a, b) = sampler_parts("sigma squared", sigma_squared)?;
        let t = floor_sqrt_ratio(u128::from(a), u128::from(b)) + 1;
        let proposal = DiscreteLaplace::new(Rational::integer(t))?;
        let (a, b) = (u128::from(a), u128::from(b));
        let t_squared = u128::from(t).checked_mul(u128::from(t));
        let denominator = t_squared
            .and_then(|t2| t2.checked_mul(a))
            .and_then(|x| x.checked_mul(b))
            .and_then(|x| x.checked_mul(2));
        Ok(Self {
            sigma_squared,
            proposal,
            t,
            a,
            b,
            denominator,
        })
    }

    /// σ².
    #[must_use]
    pub fn sigma_squared(&self) -> Rational {
        self.sigma_squared
    }

    /// σ, rounded up to an `f64`.
    #[must_use]
    pub fn sigma(&self) -> f64 {
        crate::rational::next_up(libm::sqrt(self.sigma_squared.to_f64_up()))
    }

    /// Draws one value.
    pub fn sample<R: Rng + CryptoRng + ?Sized>(&self, rng: &mut R) -> i64 {
        loop {
            let candidate = self.proposal.sample(rng);
            let magnitude = u128::from(candidate.unsigned_abs());
            let accept = match self.fast_exponent(magnitude) {
                Some((numer, denom)) => bernoulli_exp_ratio(rng, numer, denom),
                None => self.slow_accept(rng, magnitude),
            };
            if accept {
                return candidate;
            }
        }
    }

    /// `P(X = x)` in floating point, normalised over `|x| <= 40σ + 40`: for tests and
    /// reports, never for sampling.
    #[must_use]
    pub fn pmf(&self, x: i64) -> f64 {
        let sigma_squared = self.sigma_squared.to_f64();
        let weight = |k: f64| libm::exp(-k * k / (2.0 * sigma_squared));
        #[allow(clippy::cast_possible_truncation)]
        let reach = (40.0 * libm::sqrt(sigma_squared)) as i64 + 40;
        #[allow(clippy::cast_precision_loss)]
        let total: f64 = (-reach..=reach).map(|k| weight(k as f64)).sum();
        #[allow(clippy::cast_precision_loss)]
        let x = x as f64;
        weight(x) / total
    }

    /// The acceptance exponent `(|y|·t·b - a)² / (2·a·b·t²)` in 128-bit parts, if it fits.
    fn fast_exponent(&self, magnitude: u128) -> Option<(u128, u128)> {
        let denominator = self.denominator?;
        let scaled = magnitude
            .checked_mul(u128::from(self.t))?
            .checked_mul(self.b)?;
        let difference = scaled.abs_diff(self.a);
        Some((difference.checked_mul(difference)?, denominator))
    }

    fn slow_accept<R: Rng + CryptoRng + ?Sized>(&self, rng: &mut R, magnitude: u128) -> bool {
        let (a, b, t) = (UBig::from(self.a), UBig::from(self.b), UBig::from(self.t));
        let scaled = UBig::from(magnitude) * &t * &b;
        let difference = if scaled >= a {
            scaled - &a
        } else {
            &a - scaled
        };
        let numer = &difference * &difference;
        let denom = UBig::from(2_u8) * a * b * &t * t;
        bernoulli_exp_big(rng, &numer, &denom)
    }
}

/// The numerator and denominator of a positive sampler parameter, each below 2^64.
fn sampler_parts(param: &'static str, value: Rational) -> Result<(u64, u64), ParamError> {
    if value.is_zero() {
        return Err(ParamError::OutOfRange {
            param,
            value: 0.0,
            expected: "> 0",
        });
    }
    match (u64::try_from(value.numer()), u64::try_from(value.denom())) {
        (Ok(numer), Ok(denom)) => Ok((numer, denom)),
        _ => Err(ParamError::Invalid {
            param,
            reason: alloc::format!(
                "{value} has a numerator or denominator above 2^64; give it with fewer digits"
            ),
        }),
    }
}

/// `⌊sqrt(a / b)⌋`, exactly.
fn floor_sqrt_ratio(a: u128, b: u128) -> u64 {
    // Start from the floating-point estimate, then correct it with exact comparisons:
    // `r` is the answer iff r²·b <= a < (r+1)²·b.
    #[allow(
        clippy::cast_precision_loss,
        clippy::cast_possible_truncation,
        clippy::cast_sign_loss
    )]
    let mut root = libm::sqrt(a as f64 / b as f64) as u64;
    let fits = |r: u64| -> bool {
        let square = UBig::from(r) * UBig::from(r) * UBig::from(b);
        square <= UBig::from(a)
    };
    while root > 0 && !fits(root) {
        root -= 1;
    }
    while root < u64::MAX && fits(root + 1) {
        root += 1;
    }
    root
}

/// A uniform integer in `[0, n)` from 32 random bits (Lemire 2019), for `n > 0`.
#[inline]
fn uniform_below_u32<R: Rng + ?Sized>(rng: &mut R, n: u32) -> u32 {
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

/// A uniform integer in `[0, n)` from 64 random bits (Lemire 2019), for `n > 0`.
#[inline]
fn uniform_below_u64<R: Rng + ?Sized>(rng: &mut R, n: u64) -> u64 {
    let mut product = u128::from(rng.next_u64()) * u128::from(n);
    #[allow(clippy::cast_possible_truncation)]
    let mut low = product as u64;
    if low < n {
        let threshold = n.wrapping_neg() % n;
        while low < threshold {
            product = u128::from(rng.next_u64()) * u128::from(n);
            #[allow(clippy::cast_possible_truncation)]
            {
                low = product as u64;
            }
        }
    }
    #[allow(clippy::cast_possible_truncation)]
    let high = (product >> 64) as u64;
    high
}

/// A uniform integer in `[0, n)` for `n > 2^64`, by masked rejection.
fn uniform_below_u128<R: Rng + ?Sized>(rng: &mut R, n: u128) -> u128 {
    let bits = 128 - (n - 1).leading_zeros();
    loop {
        let draw = (u128::from(rng.next_u64()) << 64) | u128::from(rng.next_u64());
        let candidate = draw >> (128 - bits);
        if candidate < n {
            return candidate;
        }
    }
}

/// A uniform integer in `[0, n)` for any `n > 0`, by masked rejection.
fn uniform_below_big<R: Rng + ?Sized>(rng: &mut R, n: &UBig) -> UBig {
    let bits = (n - UBig::ONE).bit_len();
    let mut bytes = alloc::vec![0_u8; bits.div_ceil(8).max(1)];
    loop {
        rng.fill_bytes(&mut bytes);
        let candidate = UBig::from_le_bytes(&bytes) >> (bytes.len() * 8 - bits);
        if candidate < *n {
            return candidate;
        }
    }
}

/// `Bernoulli(numer / denom)`, `denom > 0`; probabilities above one are treated as one.
#[inline]
fn bernoulli_ratio<R: Rng + ?Sized>(rng: &mut R, numer: u128, denom: u128) -> bool {
    if numer >= denom {
        return true;
    }
    if numer == 0 {
        return false;
    }
    if let Ok(denom) = u32::try_from(denom) {
        #[allow(clippy::cast_possible_truncation)]
        return uniform_below_u32(rng, denom) < numer as u32;
    }
    if let Ok(denom) = u64::try_from(denom) {
        #[allow(clippy::cast_possible_truncation)]
        return uniform_below_u64(rng, denom) < numer as u64;
    }
    uniform_below_u128(rng, denom) < numer
}

/// `Bernoulli(exp(-1))`: Algorithm 1 with γ = 1, where the first trial always succeeds.
#[inline]
fn bernoulli_exp_minus_one<R: Rng + ?Sized>(rng: &mut R) -> bool {
    let mut k: u32 = 2;
    loop {
        // A ~ Bernoulli(1/k) succeeds iff the uniform draw is zero.
        if uniform_below_u32(rng, k) != 0 {
            return k % 2 == 1;
        }
        k += 1;
    }
}

/// `Bernoulli(exp(-numer/denom))` for `numer <= denom` (γ in `[0, 1]`): Algorithm 1.
#[inline]
fn bernoulli_exp_unit<R: Rng + ?Sized>(rng: &mut R, numer: u128, denom: u128) -> bool {
    let mut k: u128 = 1;
    loop {
        // A ~ Bernoulli(γ / k).
        let trial = match denom.checked_mul(k) {
            Some(scaled) => bernoulli_ratio(rng, numer, scaled),
            None => bernoulli_ratio_big(
                rng,
                &UBig::from(numer),
                &(UBig::from(denom) * UBig::from(k)),
            ),
        };
        if !trial {
            return k % 2 == 1;
        }
        k += 1;
    }
}

/// `Bernoulli(exp(-numer/denom))` for any `numer / denom >= 0`.
fn bernoulli_exp_ratio<R: Rng + ?Sized>(rng: &mut R, numer: u128, denom: u128) -> bool {
    let whole = numer / denom;
    let mut remaining = whole;
    while remaining > 0 {
        if !bernoulli_exp_minus_one(rng) {
            return false;
        }
        remaining -= 1;
    }
    bernoulli_exp_unit(rng, numer % denom, denom)
}

fn bernoulli_ratio_big<R: Rng + ?Sized>(rng: &mut R, numer: &UBig, denom: &UBig) -> bool {
    if numer >= denom {
        return true;
    }
    uniform_below_big(rng, denom) < *numer
}

/// `Bernoulli(exp(-numer/denom))` for big-integer parts (`denom > 0`), in 128-bit
/// arithmetic when both parts fit.
pub(crate) fn bernoulli_exp_of<R: Rng + ?Sized>(rng: &mut R, numer: &UBig, denom: &UBig) -> bool {
    match (u128::try_from(numer), u128::try_from(denom)) {
        (Ok(numer), Ok(denom)) => bernoulli_exp_ratio(rng, numer, denom),
        _ => bernoulli_exp_big(rng, numer, denom),
    }
}

/// A uniform integer in `[0, n)`, `n > 0`.
pub(crate) fn uniform_below<R: Rng + ?Sized>(rng: &mut R, n: u64) -> u64 {
    uniform_below_u64(rng, n)
}

/// `Bernoulli(exp(-numer/denom))` with arbitrary-precision parts.
fn bernoulli_exp_big<R: Rng + ?Sized>(rng: &mut R, numer: &UBig, denom: &UBig) -> bool {
    let (mut whole, remainder) = (numer / denom, numer % denom);
    while whole > UBig::ZERO {
        if !bernoulli_exp_minus_one(rng) {
            return false;
        }
        whole -= UBig::ONE;
    }
    let mut k = UBig::ONE;
    loop {
        if !bernoulli_ratio_big(rng, &remainder, &(denom * &k)) {
            return k.bit(0);
        }
        k += UBig::ONE;
    }
}

/// One geometric draw with `P(k) ∝ exp(-k · denom / numer)` (see [`Geometric`]).
#[inline]
fn geometric<R: Rng + ?Sized>(rng: &mut R, numer: u64, denom: u64) -> u128 {
    loop {
        // U uniform in [0, numer), kept with probability exp(-U / numer).
        let u = if numer == 1 {
            0
        } else {
            uniform_below_u64(rng, numer)
        };
        if u != 0 && !bernoulli_exp_unit(rng, u128::from(u), u128::from(numer)) {
            continue;
        }
        // V geometric with ratio exp(-1).
        let mut v: u64 = 0;
        while bernoulli_exp_minus_one(rng) {
            v += 1;
        }
        // X = U + numer·V has P(X = x) ∝ exp(-x / numer); both factors are below 2^64.
        let x = u128::from(u) + u128::from(numer) * u128::from(v);
        return x / u128::from(denom);
    }
}
