//! Privacy units as validated newtypes.
//!
//! A value of one of these types is always in its documented range: the only way in is a
//! validating constructor (`new` or `TryFrom<f64>`), and there is no setter.

use core::fmt;

use crate::ParamError;

/// Defines a newtype over `f64` with a validating constructor, a getter and the
/// conversions every unit shares. `$check` decides validity; `$expected` describes it.
macro_rules! unit {
    (
        $(#[$doc:meta])*
        $name:ident, $param:literal, $expected:literal, |$v:ident| $check:expr
    ) => {
        $(#[$doc])*
        #[derive(Debug, Clone, Copy, PartialEq, PartialOrd)]
        #[cfg_attr(
            feature = "serde",
            derive(serde::Serialize, serde::Deserialize),
            serde(try_from = "f64", into = "f64")
        )]
        pub struct $name(f64);

        impl $name {
            #[doc = concat!("Checks and wraps a ", $param, ".")]
            ///
            /// # Errors
            #[doc = concat!("[`ParamError::OutOfRange`] unless the value is ", $expected, ".")]
            pub fn new(value: f64) -> Result<Self, ParamError> {
                let $v = value;
                if $check {
                    Ok(Self(value))
                } else {
                    Err(ParamError::OutOfRange { param: $param, value, expected: $expected })
                }
            }

            /// The wrapped value.
            #[must_use]
            pub fn get(self) -> f64 {
                self.0
            }
        }

        impl TryFrom<f64> for $name {
            type Error = ParamError;
            fn try_from(value: f64) -> Result<Self, ParamError> {
                Self::new(value)
            }
        }

        impl From<$name> for f64 {
            fn from(value: $name) -> f64 {
                value.0
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                fmt::Display::fmt(&self.0, f)
            }
        }
    };
}

unit!(
    /// A pure-DP bound ε. Invariant: finite and strictly positive.
    Epsilon, "epsilon", "finite and > 0", |v| v.is_finite() && v > 0.0
);

unit!(
    /// The δ of approximate (ε, δ)-DP. Invariant: in `[0, 1)`.
    Delta, "delta", "in [0, 1)", |v| (0.0..1.0).contains(&v)
);

unit!(
    /// A zero-concentrated DP bound ρ (ρ-zCDP). Invariant: finite and strictly positive.
    Rho, "rho", "finite and > 0", |v| v.is_finite() && v > 0.0
);

unit!(
    /// An L1 sensitivity Δ₁: how far one privacy unit can move a query's answer, summed
    /// over coordinates. Invariant: finite and `>= 0`.
    L1Sensitivity, "l1 sensitivity", "finite and >= 0", |v| v.is_finite() && v >= 0.0
);

unit!(
    /// An L2 sensitivity Δ₂: how far one privacy unit can move a query's answer in
    /// Euclidean norm. Invariant: finite and `>= 0`.
    L2Sensitivity, "l2 sensitivity", "finite and >= 0", |v| v.is_finite() && v >= 0.0
);

impl L1Sensitivity {
    /// An integer sensitivity, e.g. `1` for a count where a unit adds at most one row.
    ///
    /// # Panics
    /// Never: an integer below 2^53 is a valid sensitivity; larger ones are rounded up to
    /// the next representable `f64`, which overstates the sensitivity (the safe side).
    #[must_use]
    pub fn integer(value: u64) -> Self {
        Self(crate::rational::u64_to_f64_up(value))
    }

    /// The sensitivity as an integer, if it is one.
    #[must_use]
    pub fn as_integer(self) -> Option<u64> {
        integral(self.0)
    }
}

impl L2Sensitivity {
    /// An integer sensitivity.
    #[must_use]
    pub fn integer(value: u64) -> Self {
        Self(crate::rational::u64_to_f64_up(value))
    }

    /// The sensitivity as an integer, if it is one.
    #[must_use]
    pub fn as_integer(self) -> Option<u64> {
        integral(self.0)
    }
}

fn integral(value: f64) -> Option<u64> {
    #[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss)]
    let truncated = value as u64;
    #[allow(clippy::cast_precision_loss)]
    let back = truncated as f64;
    (back.to_bits() == value.to_bits() || (back == 0.0 && value == 0.0)).then_some(truncated)
}

/// Closed bounds `[lower, upper]` for clamping a numeric column.
///
/// Invariant: both finite and `lower <= upper`.
#[derive(Debug, Clone, Copy, PartialEq)]
#[cfg_attr(
    feature = "serde",
    derive(serde::Serialize, serde::Deserialize),
    serde(try_from = "(f64, f64)", into = "(f64, f64)")
)]
pub struct Bounds {
    lower: f64,
    upper: f64,
}

impl Bounds {
    /// Checks and wraps the bounds `[lower, upper]`.
    ///
    /// # Errors
    /// [`ParamError::OutOfRange`] if either bound is not finite;
    /// [`ParamError::Invalid`] if `lower > upper`.
    pub fn new(lower: f64, upper: f64) -> Result<Self, ParamError> {
        for (param, value) in [("lower bound", lower), ("upper bound", upper)] {
            if !value.is_finite() {
                return Err(ParamError::OutOfRange {
                    param,
                    value,
                    expected: "finite",
                });
            }
        }
        if lower > upper {
            return Err(ParamError::Invalid {
                param: "bounds",
                reason: alloc::format!(
                    "lower bound {lower} is above upper bound {upper}: write [lower, upper]"
                ),
            });
        }
        Ok(Self { lower, upper })
    }

    /// The lower bound.
    #[must_use]
    pub fn lower(self) -> f64 {
        self.lower
    }

    /// The upper bound.
    #[must_use]
    pub fn upper(self) -> f64 {
        self.upper
    }

    /// The largest absolute value inside the bounds: what one value can add to a sum.
    #[must_use]
    pub fn max_abs(self) -> f64 {
        libm::fmax(libm::fabs(self.lower), libm::fabs(self.upper))
    }

    /// The width `upper - lower`, rounded up.
    #[must_use]
    pub fn width(self) -> f64 {
        crate::rational::next_up(self.upper - self.lower)
    }

    /// `value` moved into the bounds. A NaN stays NaN: drop NaN before clamping.
    #[must_use]
    pub fn clamp(self, value: f64) -> f64 {
        value.clamp(self.lower, self.upper)
    }
}

impl TryFrom<(f64, f64)> for Bounds {
    type Error = ParamError;
    fn try_from((lower, upper): (f64, f64)) -> Result<Self, ParamError> {
        Self::new(lower, upper)
    }
}

impl From<Bounds> for (f64, f64) {
    fn from(bounds: Bounds) -> (f64, f64) {
        (bounds.lower, bounds.upper)
    }
}

/// A privacy guarantee in one of the measures Veil reports.
#[derive(Debug, Clone, Copy, PartialEq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
#[cfg_attr(feature = "serde", serde(rename_all = "snake_case"))]
pub enum PrivacyLoss {
    /// Pure ε-DP.
    Pure(Epsilon),
    /// Approximate (ε, δ)-DP.
    Approx(Epsilon, Delta),
    /// ρ-zero-concentrated DP.
    Zcdp(Rho),
}

impl PrivacyLoss {
    /// The loss as (ε, δ)-DP. ρ-zCDP is converted at `delta` with the bound of Canonne,
    /// Kamath and Steinke (2020), which is never smaller than the true ε; `delta` is
    /// ignored for the other variants.
    ///
    /// # Errors
    /// [`ParamError::OutOfRange`] if a zCDP loss is converted at `delta = 0`.
    pub fn to_approx(self, delta: Delta) -> Result<(Epsilon, Delta), ParamError> {
        match self {
            Self::Pure(epsilon) => Ok((epsilon, Delta(0.0))),
            Self::Approx(epsilon, delta) => Ok((epsilon, delta)),
            Self::Zcdp(rho) => Ok((crate::calibrate::rho_to_epsilon(rho, delta)?, delta)),
        }
    }
}

impl fmt::Display for PrivacyLoss {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Pure(epsilon) => write!(f, "ε = {epsilon}"),
            Self::Approx(epsilon, delta) => write!(f, "(ε, δ) = ({epsilon}, {delta})"),
            Self::Zcdp(rho) => write!(f, "ρ = {rho} (zCDP)"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn errors_name_parameter_and_range() {
        let message = alloc::string::ToString::to_string(&Epsilon::new(0.0).unwrap_err());
        assert_eq!(
            message,
            "epsilon = 0 is out of range: expected finite and > 0"
        );
        let message = alloc::string::ToString::to_string(&Delta::new(1.0).unwrap_err());
        assert_eq!(message, "delta = 1 is out of range: expected in [0, 1)");
        let message = alloc::string::ToString::to_string(&Bounds::new(5.0, 1.0).unwrap_err());
        assert!(
            message.contains("lower bound 5 is above upper bound 1"),
            "{message}"
        );
    }

    #[test]
    fn special_values_are_refused() {
        for value in [f64::NAN, f64::INFINITY, f64::NEG_INFINITY] {
            assert!(Epsilon::new(value).is_err());
            assert!(Rho::new(value).is_err());
            assert!(Delta::new(value).is_err());
            assert!(L1Sensitivity::new(value).is_err());
            assert!(L2Sensitivity::new(value).is_err());
            assert!(Bounds::new(value, 1.0).is_err());
            assert!(Bounds::new(0.0, value).is_err());
        }
        assert!(Epsilon::new(-0.0).is_err());
        assert!(Delta::new(-0.0).is_ok(), "-0.0 == 0.0 is a valid delta");
    }

    #[test]
    fn integer_sensitivities_round_trip() {
        assert_eq!(L1Sensitivity::integer(15).as_integer(), Some(15));
        assert_eq!(L1Sensitivity::integer(0).as_integer(), Some(0));
        assert_eq!(L1Sensitivity::new(1.5).unwrap().as_integer(), None);
        assert_eq!(L2Sensitivity::integer(1 << 40).as_integer(), Some(1 << 40));
        // 2^53 + 1 is not an f64; it must round up, never down.
        let big = (1_u64 << 53) + 1;
        assert!(L1Sensitivity::integer(big).as_integer().unwrap() >= big);
    }

    proptest! {
        #[test]
        fn epsilon_accepts_exactly_positive_finite(value in proptest::num::f64::ANY) {
            prop_assert_eq!(Epsilon::new(value).is_ok(), value.is_finite() && value > 0.0);
            prop_assert_eq!(Rho::new(value).is_ok(), value.is_finite() && value > 0.0);
        }

        #[test]
        fn delta_accepts_exactly_unit_interval(value in proptest::num::f64::ANY) {
            prop_assert_eq!(Delta::new(value).is_ok(), (0.0..1.0).contains(&value));
        }

        #[test]
        fn sensitivities_accept_exactly_non_negative_finite(value in proptest::num::f64::ANY) {
            prop_assert_eq!(L1Sensitivity::new(value).is_ok(), value.is_finite() && value >= 0.0);
            prop_assert_eq!(L2Sensitivity::new(value).is_ok(), value.is_finite() && value >= 0.0);
        }

        #[test]
        fn bounds_clamp_stays_inside(lower in -1e12..1e12_f64, width in 0.0..1e12_f64, value in proptest::num::f64::NORMAL) {
            let bounds = Bounds::new(lower, lower + width).unwrap();
            let clamped = bounds.clamp(value);
            prop_assert!(clamped >= bounds.lower() && clamped <= bounds.upper());
        }

        #[test]
        fn bounds_accept_exactly_ordered_finite(lower in proptest::num::f64::ANY, upper in proptest::num::f64::ANY) {
            prop_assert_eq!(
                Bounds::new(lower, upper).is_ok(),
                lower.is_finite() && upper.is_finite() && lower <= upper
            );
        }
    }
}
