//! Exact non-negative rationals for noise parameters.

use alloc::string::{String, ToString};
use core::cmp::Ordering;
use core::fmt;
use core::str::FromStr;

use dashu_int::UBig;
use dashu_int::ops::BitTest;

use crate::ParamError;

/// An exact non-negative rational `numer / denom`, kept in lowest terms.
///
/// Noise scales and variances are rationals so that samplers decide with integer
/// arithmetic only. Text such as `"3"`, `"2.5"`, `"5/2"` or `"2.5e-3"` is read exactly:
/// `"0.1"` is one tenth, not the `f64` nearest to it.
///
/// ```
/// use veil_core::Rational;
/// let scale: Rational = "2.5".parse()?;
/// assert_eq!(scale, "5/2".parse()?);
/// assert_eq!(scale.to_string(), "5/2");
/// Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Rational {
    numer: u128,
    denom: u128,
}

const PARSE_EXPECTED: &str = "a non-negative integer, decimal or fraction such as 3, 2.5 or 5/2";

impl Rational {
    /// `numer / denom` in lowest terms.
    ///
    /// # Errors
    /// [`ParamError::Invalid`] if `denom` is zero.
    pub fn new(numer: u128, denom: u128) -> Result<Self, ParamError> {
        if denom == 0 {
            return Err(ParamError::Invalid {
                param: "rational",
                reason: "the denominator is zero".to_string(),
            });
        }
        let divisor = gcd(numer, denom);
        Ok(Self {
            numer: numer / divisor,
            denom: denom / divisor,
        })
    }

    /// The integer `value`.
    #[must_use]
    pub fn integer(value: u64) -> Self {
        Self {
            numer: u128::from(value),
            denom: 1,
        }
    }

    /// The numerator, in lowest terms.
    #[must_use]
    pub fn numer(&self) -> u128 {
        self.numer
    }

    /// The denominator, in lowest terms (never zero).
    #[must_use]
    pub fn denom(&self) -> u128 {
        self.denom
    }

    /// Whether the value is zero.
    #[must_use]
    pub fn is_zero(&self) -> bool {
        self.numer == 0
    }

    /// The exact value of a finite, non-negative `f64` (every such `f64` is a dyadic
    /// rational).
    ///
    /// # Errors
    /// [`ParamError::OutOfRange`] if `value` is negative, not finite, or too large or too
    /// small to be held exactly in 128-bit parts.
    pub fn from_f64_exact(value: f64) -> Result<Self, ParamError> {
        let out_of_range = ParamError::OutOfRange {
            param: "rational",
            value,
            expected: "finite, >= 0, between 2^-127 and 2^127 when not zero",
        };
        if !value.is_finite() || value < 0.0 {
            return Err(out_of_range);
        }
        if value == 0.0 {
            return Ok(Self::integer(0));
        }
        let (mantissa, exponent) = decompose(value);
        if exponent >= 0 {
            let shift = u32::try_from(exponent).map_err(|_| out_of_range.clone())?;
            let numer = u128::from(mantissa)
                .checked_shl(shift)
                .filter(|n| n >> shift == u128::from(mantissa));
            numer
                .map(|numer| Self { numer, denom: 1 })
                .ok_or(out_of_range)
        } else {
            let shift = u32::try_from(-exponent).map_err(|_| out_of_range.clone())?;
            if shift > 127 {
                return Err(out_of_range);
            }
            Self::new(u128::from(mantissa), 1_u128 << shift)
        }
    }

    /// The smallest rational `>= numer / denom` whose parts fit in `max_bits` bits each,
    /// for `numer / denom >= 2^-(max_bits/2)`. The exact value when it fits; otherwise
    /// rounded **up** to a dyadic grid. Used to turn computed noise parameters into sampler
    /// parameters without ever reducing the noise.
    ///
    /// # Errors
    /// [`ParamError::Invalid`] if `denom` is zero or the value needs more than `max_bits`
    /// integer bits.
    pub fn ceil_of_ratio(numer: &UBig, denom: &UBig, max_bits: u32) -> Result<Self, ParamError> {
        let max_bits = max_bits.clamp(2, 127);
        if *denom == UBig::ZERO {
            return Err(ParamError::Invalid {
                param: "rational",
                reason: "the denominator is zero".to_string(),
            });
        }
        let divisor = dashu_int::ops::Gcd::gcd(numer, denom);
        let (numer, denom) = (numer / &divisor, denom / &divisor);
        let limit = UBig::ONE << max_bits as usize;
        if numer < limit && denom < limit {
            return Self::new(to_u128(&numer), to_u128(&denom));
        }
        // Round up onto the grid 2^-k with the largest k that keeps the numerator in range.
        let mut k = max_bits;
        loop {
            let shifted = &numer << k as usize;
            let scaled = (&shifted + &denom - UBig::ONE) / &denom;
            if scaled < limit {
                return Self::new(to_u128(&scaled), 1_u128 << k);
            }
            if k == 0 {
                return Err(ParamError::Invalid {
                    param: "rational",
                    reason: alloc::format!("{numer}/{denom} needs more than {max_bits} bits"),
                });
            }
            k -= 1;
        }
    }

    /// The nearest `f64` (within one unit in the last place).
    #[must_use]
    pub fn to_f64(&self) -> f64 {
        ratio_to_f64(self.numer, self.denom)
    }

    /// An `f64` that is at least the exact value: for reporting noise scales on the side
    /// that overstates the noise never matters, but a privacy cost must be rounded up.
    #[must_use]
    pub fn to_f64_up(&self) -> f64 {
        let nearest = self.to_f64();
        match Self::from_f64_exact(nearest) {
            Ok(exact) if exact >= *self => nearest,
            _ => next_up(nearest),
        }
    }

    /// An `f64` that is at most the exact value.
    #[must_use]
    pub fn to_f64_down(&self) -> f64 {
        let nearest = self.to_f64();
        match Self::from_f64_exact(nearest) {
            Ok(exact) if exact <= *self => nearest,
            _ => next_down(nearest),
        }
    }

    pub(crate) fn to_ubig(self) -> (UBig, UBig) {
        (UBig::from(self.numer), UBig::from(self.denom))
    }
}

impl Ord for Rational {
    fn cmp(&self, other: &Self) -> Ordering {
        match (
            self.numer.checked_mul(other.denom),
            other.numer.checked_mul(self.denom),
        ) {
            (Some(left), Some(right)) => left.cmp(&right),
            _ => {
                let left = UBig::from(self.numer) * UBig::from(other.denom);
                let right = UBig::from(other.numer) * UBig::from(self.denom);
                left.cmp(&right)
            }
        }
    }
}

impl PartialOrd for Rational {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl fmt::Display for Rational {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.denom == 1 {
            write!(f, "{}", self.numer)
        } else {
            write!(f, "{}/{}", self.numer, self.denom)
        }
    }
}

impl FromStr for Rational {
    type Err = ParamError;

    fn from_str(text: &str) -> Result<Self, ParamError> {
        let parse_error = || ParamError::Parse {
            param: "number",
            input: String::from(text),
            expected: PARSE_EXPECTED,
        };
        let trimmed = text.trim();
        if let Some((numer, denom)) = trimmed.split_once('/') {
            let numer = parse_decimal(numer.trim()).ok_or_else(parse_error)?;
            let denom = parse_decimal(denom.trim()).ok_or_else(parse_error)?;
            if denom.is_zero() {
                return Err(ParamError::Invalid {
                    param: "number",
                    reason: alloc::format!("{text:?} divides by zero"),
                });
            }
            let numer_big = UBig::from(numer.numer) * UBig::from(denom.denom);
            let denom_big = UBig::from(numer.denom) * UBig::from(denom.numer);
            let divisor = dashu_int::ops::Gcd::gcd(&numer_big, &denom_big);
            let (numer_big, denom_big) = (numer_big / &divisor, denom_big / &divisor);
            let limit = UBig::ONE << 127_usize;
            if numer_big >= limit || denom_big >= limit {
                return Err(parse_error());
            }
            return Self::new(to_u128(&numer_big), to_u128(&denom_big));
        }
        parse_decimal(trimmed).ok_or_else(parse_error)
    }
}

/// Reads `123`, `1.25`, `.5`, `2.5e-3` or `1E6` exactly. `None` on anything else,
/// including signs other than an exponent's, and values whose parts exceed 2^127.
fn parse_decimal(text: &str) -> Option<Rational> {
    let (mantissa, exponent) = match text.find(['e', 'E']) {
        Some(at) => (&text[..at], text[at + 1..].parse::<i32>().ok()?),
        None => (text, 0),
    };
    let (whole, fraction) = mantissa.split_once('.').unwrap_or((mantissa, ""));
    if whole.is_empty() && fraction.is_empty() {
        return None;
    }
    if !whole
        .bytes()
        .chain(fraction.bytes())
        .all(|b| b.is_ascii_digit())
    {
        return None;
    }
    let mut numer: u128 = 0;
    for digit in whole.bytes().chain(fraction.bytes()) {
        numer = numer
            .checked_mul(10)?
            .checked_add(u128::from(digit - b'0'))?;
    }
    let scale = exponent.checked_sub(i32::try_from(fraction.len()).ok()?)?;
    let power = 10_u128.checked_pow(scale.unsigned_abs())?;
    if scale >= 0 {
        let numer = numer.checked_mul(power)?;
        (numer < 1 << 127).then_some(Rational { numer, denom: 1 })
    } else {
        Rational::new(numer, power)
            .ok()
            .filter(|r| r.numer < 1 << 127)
    }
}

fn gcd(mut a: u128, mut b: u128) -> u128 {
    while b != 0 {
        (a, b) = (b, a % b);
    }
    a.max(1)
}

fn to_u128(value: &UBig) -> u128 {
    u128::try_from(value).expect("callers check the value is below 2^127")
}

/// `(mantissa, exponent)` with `value == mantissa * 2^exponent`, for finite `value > 0`.
fn decompose(value: f64) -> (u64, i32) {
    let bits = value.to_bits();
    let biased = i32::try_from((bits >> 52) & 0x7ff).expect("11 bits fit in i32");
    let fraction = bits & ((1 << 52) - 1);
    let (mut mantissa, mut exponent) = if biased == 0 {
        (fraction, -1074)
    } else {
        (fraction | (1 << 52), biased - 1075)
    };
    let zeros = mantissa.trailing_zeros().min(63);
    mantissa >>= zeros;
    exponent += i32::try_from(zeros).expect("at most 63");
    (mantissa, exponent)
}

/// The `f64` nearest to `numer / denom` (within one unit in the last place).
#[allow(clippy::cast_precision_loss)]
fn ratio_to_f64(numer: u128, denom: u128) -> f64 {
    if numer == 0 {
        return 0.0;
    }
    let numer_bits = 128 - numer.leading_zeros();
    let denom_bits = 128 - denom.leading_zeros();
    // Shift so that the quotient has at least 64 significant bits.
    let shift = (64 + denom_bits).saturating_sub(numer_bits) as usize;
    let quotient = (UBig::from(numer) << shift) / UBig::from(denom);
    let bits = quotient.bit_len();
    let excess = bits.saturating_sub(64);
    let top = u64::try_from(&(quotient >> excess)).expect("at most 64 bits remain");
    let exponent =
        i64::try_from(excess).unwrap_or(i64::MAX) - i64::try_from(shift).unwrap_or(i64::MAX);
    libm::ldexp(top as f64, i32::try_from(exponent).unwrap_or(i32::MIN))
}

/// The smallest `f64` greater than `value` (for finite `value`).
#[must_use]
pub(crate) fn next_up(value: f64) -> f64 {
    if value.is_nan() || value == f64::INFINITY {
        return value;
    }
    if value == 0.0 {
        return f64::from_bits(1);
    }
    let bits = value.to_bits();
    f64::from_bits(if value > 0.0 { bits + 1 } else { bits - 1 })
}

/// The largest `f64` smaller than `value` (for finite `value`).
#[must_use]
pub(crate) fn next_down(value: f64) -> f64 {
    -next_up(-value)
}

/// `value` as an `f64`, rounded up when it is not representable.
#[allow(
    clippy::cast_precision_loss,
    clippy::cast_possible_truncation,
    clippy::cast_sign_loss
)]
pub(crate) fn u64_to_f64_up(value: u64) -> f64 {
    let nearest = value as f64;
    if nearest < 18_446_744_073_709_551_615.0 && (nearest as u64) < value {
        next_up(nearest)
    } else {
        nearest
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn check(text: &str, expect: Option<(u128, u128)>) {
        let parsed = text
            .parse::<Rational>()
            .ok()
            .map(|r| (r.numer(), r.denom()));
        assert_eq!(parsed, expect, "parsing {text:?}");
    }

    #[test]
    fn parses_exactly() {
        check("3", Some((3, 1)));
        check("2.5", Some((5, 2)));
        check("5/2", Some((5, 2)));
        check("10/4", Some((5, 2)));
        check(" 0.1 ", Some((1, 10)));
        check(".5", Some((1, 2)));
        check("1e6", Some((1_000_000, 1)));
        check("2.5e-3", Some((1, 400)));
        check("1.5/0.5", Some((3, 1)));
        check("0", Some((0, 1)));
        check("", None);
        check("-1", None);
        check("1/0", None);
        check("abc", None);
        check("1..2", None);
        check("nan", None);
        check("inf", None);
        check("1e40", None);
        check("1/2/3", None);
    }

    #[test]
    fn exact_from_f64() {
        assert_eq!(
            Rational::from_f64_exact(0.5).unwrap(),
            Rational::new(1, 2).unwrap()
        );
        assert_eq!(Rational::from_f64_exact(3.0).unwrap(), Rational::integer(3));
        // 0.1 as an f64 is slightly above one tenth.
        let tenth = Rational::from_f64_exact(0.1).unwrap();
        assert!(tenth > Rational::new(1, 10).unwrap());
        assert!(Rational::from_f64_exact(-1.0).is_err());
        assert!(Rational::from_f64_exact(f64::NAN).is_err());
        assert!(Rational::from_f64_exact(1e300).is_err());
    }

    #[test]
    fn ceil_of_ratio_never_rounds_down() {
        let exact = Rational::ceil_of_ratio(&UBig::from(10_u8), &UBig::from(4_u8), 64).unwrap();
        assert_eq!(exact, Rational::new(5, 2).unwrap());
        let third = Rational::ceil_of_ratio(&UBig::ONE, &(UBig::ONE << 80_usize), 64);
        // 2^-80 needs a denominator above 2^64: refused rather than rounded to zero-ish.
        assert!(third.is_err() || third.unwrap() >= Rational::new(1, 1 << 64).unwrap());
        let big = UBig::from(u128::MAX) * UBig::from(3_u8);
        let rounded = Rational::ceil_of_ratio(&big, &UBig::from(7_u8), 127).unwrap();
        assert!(
            UBig::from(rounded.numer()) * UBig::from(7_u8) >= big * UBig::from(rounded.denom())
        );
    }

    #[test]
    fn directed_f64_conversions() {
        let third = Rational::new(1, 3).unwrap();
        assert!(third.to_f64_up() >= third.to_f64_down());
        assert!(Rational::from_f64_exact(third.to_f64_up()).unwrap() >= third);
        assert!(Rational::from_f64_exact(third.to_f64_down()).unwrap() <= third);
        let half = Rational::new(1, 2).unwrap();
        assert_eq!(half.to_f64_up().to_bits(), 0.5_f64.to_bits());
    }

    proptest! {
        #[test]
        fn f64_round_trips(value in 1e-30..1e30_f64) {
            let exact = Rational::from_f64_exact(value).unwrap();
            prop_assert_eq!(exact.to_f64().to_bits(), value.to_bits());
        }

        #[test]
        fn order_matches_cross_multiplication(a in 1..u64::MAX, b in 1..u64::MAX, c in 1..u64::MAX, d in 1..u64::MAX) {
            let left = Rational::new(u128::from(a), u128::from(b)).unwrap();
            let right = Rational::new(u128::from(c), u128::from(d)).unwrap();
            let expect = (u128::from(a) * u128::from(d)).cmp(&(u128::from(c) * u128::from(b)));
            prop_assert_eq!(left.cmp(&right), expect);
        }

        #[test]
        fn to_f64_is_close(numer in 1..u128::MAX / 2, denom in 1..u128::MAX / 2) {
            let value = Rational::new(numer, denom).unwrap();
            #[allow(clippy::cast_precision_loss)]
            let approx = numer as f64 / denom as f64;
            let got = value.to_f64();
            prop_assert!((got - approx).abs() <= approx * 1e-12, "{got} vs {approx}");
        }
    }
}
