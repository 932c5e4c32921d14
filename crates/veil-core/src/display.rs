//! Numbers as people read them: [`Compact`] for messages and tables, [`RoundTrip`] for
//! text that must read back to the same `f64`.
//!
//! Rust's `Display` of an `f64` never switches to scientific notation, so ε = 1e308
//! prints as 309 digits and δ = 2.2e-308 as over 300 characters. Both wrappers print
//! numbers outside `[1e-4, 1e6)` in scientific notation instead.

use alloc::format;
use alloc::string::String;
use core::fmt;

/// An `f64` shown with up to 4 significant digits (trailing zeros dropped), in plain
/// notation within `[1e-4, 1e6)` and in scientific notation outside it. Whole numbers from
/// 1000 up keep all their digits. Infinities show as `∞`.
///
/// For messages and tables; lossy. Use [`RoundTrip`] where the text is read back.
///
/// ```
/// use veil_core::Compact;
/// assert_eq!(Compact(0.123456).to_string(), "0.1235");
/// assert_eq!(Compact(1e308).to_string(), "1e308");
/// assert_eq!(Compact(2.2e-308).to_string(), "2.2e-308");
/// assert_eq!(Compact(123456.7).to_string(), "123457");
/// assert_eq!(Compact(0.75).to_string(), "0.75");
/// ```
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Compact(pub f64);

/// An `f64` shown with the fewest digits that read back to the same value: plain within
/// `[1e-4, 1e6)` (as Rust prints it), scientific outside it (`1e308`, `2.2e-308`).
///
/// ```
/// use veil_core::RoundTrip;
/// assert_eq!(RoundTrip(0.1).to_string(), "0.1");
/// assert_eq!(RoundTrip(1e-6).to_string(), "1e-6");
/// assert_eq!("2.2e-308".parse::<f64>()?, 2.2e-308);
/// assert_eq!(RoundTrip(2.2e-308).to_string(), "2.2e-308");
/// Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct RoundTrip(pub f64);

/// Whether `value` is printed in plain notation.
fn plain(value: f64) -> bool {
    value == 0.0 || (1e-4..1e6).contains(&value.abs())
}

/// `text` without trailing zeros after a decimal point (and without the point itself if
/// nothing follows it).
fn trim_zeros(text: &str) -> &str {
    if text.contains('.') {
        text.trim_end_matches('0').trim_end_matches('.')
    } else {
        text
    }
}

impl fmt::Display for Compact {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let value = self.0;
        if value.is_nan() {
            return f.pad("NaN");
        }
        if value.is_infinite() {
            return f.pad(if value > 0.0 { "∞" } else { "-∞" });
        }
        if value == 0.0 {
            return f.pad("0");
        }
        // Rounding to 4 significant digits first decides the exponent, so 999999.7 (which
        // rounds to 1.000e6) is shown as 1e6, not as 1000000.
        let scientific = format!("{value:.3e}");
        let (mantissa, exponent) = scientific.split_once('e').unwrap_or((&scientific, "0"));
        let exponent: i32 = exponent.parse().unwrap_or(0);
        let text: String = if !(-4..6).contains(&exponent) {
            format!("{}e{exponent}", trim_zeros(mantissa))
        } else if exponent >= 3 {
            format!("{value:.0}")
        } else {
            let decimals = usize::try_from(3 - exponent).unwrap_or(0);
            String::from(trim_zeros(&format!("{value:.decimals$}")))
        };
        f.pad(&text)
    }
}

impl fmt::Display for RoundTrip {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let value = self.0;
        if !value.is_finite() || plain(value) {
            f.pad(&format!("{value}"))
        } else {
            f.pad(&format!("{value:e}"))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use alloc::string::ToString;

    #[test]
    fn compact_numbers_are_short_at_every_magnitude() {
        let cases = [
            (1e308, "1e308"),
            (f64::MAX, "1.798e308"),
            (2.2e-308, "2.2e-308"),
            (5e-324, "4.941e-324"),
            (-1e-20, "-1e-20"),
            (0.0001, "0.0001"),
            (0.000_099_996, "0.0001"),
            (0.000_012_345, "1.234e-5"),
            (0.123_456, "0.1235"),
            (1.0, "1"),
            (0.5, "0.5"),
            (9.9996, "10"),
            (2.254_001, "2.254"),
            (999.96, "1000"),
            (123_456.7, "123457"),
            (999_999.7, "1e6"),
            (1e6, "1e6"),
            (0.0, "0"),
            (-0.0, "0"),
            (f64::INFINITY, "∞"),
            (f64::NEG_INFINITY, "-∞"),
            (f64::NAN, "NaN"),
        ];
        for (value, expected) in cases {
            assert_eq!(Compact(value).to_string(), expected, "{value:e}");
        }
        for exponent in -320..=308 {
            let value = 1.234_567 * 10f64.powi(exponent);
            assert!(Compact(value).to_string().len() <= 11, "{value:e}");
        }
        assert_eq!(format!("{:>6}", Compact(0.5)), "   0.5");
    }

    #[test]
    fn round_trip_numbers_read_back_exactly() {
        for value in [
            1e308,
            f64::MAX,
            2.2e-308,
            5e-324,
            1e-6,
            0.1,
            0.3 + 0.6,
            123_456.7,
            1e6,
            -4.5e-9,
            0.0,
        ] {
            let text = RoundTrip(value).to_string();
            assert!(text.len() <= 24, "{text}");
            assert_eq!(text.parse::<f64>().unwrap().to_bits(), value.to_bits());
        }
        assert_eq!(RoundTrip(0.25).to_string(), "0.25");
        assert_eq!(RoundTrip(1e308).to_string(), "1e308");
    }
}
