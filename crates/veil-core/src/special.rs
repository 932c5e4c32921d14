//! Special functions for calibration and confidence intervals.
//!
//! Floating point is fine here: these functions choose noise parameters (always rounded
//! toward more noise by the callers) and describe accuracy. They never decide a sample.

use core::f64::consts::{PI, SQRT_2};

/// The standard normal CDF `Φ(x)`.
#[must_use]
pub fn normal_cdf(x: f64) -> f64 {
    0.5 * libm::erfc(-x / SQRT_2)
}

/// The standard normal survival function `1 - Φ(x)`, accurate in the far tail.
#[must_use]
pub fn normal_sf(x: f64) -> f64 {
    0.5 * libm::erfc(x / SQRT_2)
}

/// The `x` with `normal_sf(x) = p`, for `p` in `(0, 1)`; found by bisection to within
/// 1e-12 (relative). Returns `f64::INFINITY` for `p <= 0` and `f64::NEG_INFINITY` for
/// `p >= 1`.
#[must_use]
pub fn normal_sf_inverse(p: f64) -> f64 {
    if p <= 0.0 {
        return f64::INFINITY;
    }
    if p >= 1.0 {
        return f64::NEG_INFINITY;
    }
    let (mut low, mut high) = (-40.0_f64, 40.0_f64);
    for _ in 0..200 {
        let middle = 0.5 * (low + high);
        if normal_sf(middle) > p {
            low = middle;
        } else {
            high = middle;
        }
        if high - low <= 1e-12 * high.abs().max(1.0) {
            break;
        }
    }
    0.5 * (low + high)
}

/// `sqrt(2π)`.
pub(crate) const SQRT_TWO_PI: f64 = 2.506_628_274_631_000_7;

/// `∫_m^∞ exp(-x²/(2σ²)) dx = σ·sqrt(π/2)·erfc(m / (σ√2))`.
pub(crate) fn gaussian_integral_above(m: f64, sigma: f64) -> f64 {
    sigma * libm::sqrt(PI / 2.0) * libm::erfc(m / (sigma * SQRT_2))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn normal_quantiles_match_tables() {
        assert!((normal_sf_inverse(0.025) - 1.959_963_984_540_054).abs() < 1e-9);
        assert!((normal_sf_inverse(0.5)).abs() < 1e-9);
        assert!((normal_cdf(1.0) - 0.841_344_746_068_542_9).abs() < 1e-14);
        assert!((normal_sf(10.0) - 7.619_853_024_160_527e-24).abs() < 1e-36);
    }
}
