//! Proptest strategies for privacy parameters, as plain numbers (the testkit does not
//! depend on the crates it tests).

use proptest::prelude::*;

/// Positive ε values across the range teams use, from 0.01 to 20.
pub fn epsilon() -> impl Strategy<Value = f64> {
    (-2.0..1.3_f64).prop_map(|exponent| 10_f64.powf(exponent))
}

/// δ values from 1e-12 to 1e-3.
pub fn delta() -> impl Strategy<Value = f64> {
    (-12.0..-3.0_f64).prop_map(|exponent| 10_f64.powf(exponent))
}

/// Noise scales as exact fractions `numer / denom`, from tiny (0.05) to large (10^6).
pub fn scale_fraction() -> impl Strategy<Value = (u64, u64)> {
    prop_oneof![
        (1..=20_u64, 1..=20_u64),
        (1..=1_000_000_u64, Just(1_u64)),
        (1..=1_000_000_u64, 1..=1000_u64),
    ]
}
