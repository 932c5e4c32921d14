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

/// The `x` with `normal_sf(x) = p`, for `p` in `(0, 1)`, to about 1e-15 (relative).
/// Returns `f64::INFINITY` for `p <= 0` and `f64::NEG_INFINITY` for `p >= 1` (and NaN for
/// NaN).
///
/// Acklam's rational approximation of the normal quantile (relative error below 1.2e-9),
/// then one Halley step on `Φ` (cubic convergence: the result agrees with the bisection it
/// replaced to 1e-12, at one `erfc` and one `exp` instead of forty-odd `erfc`s; the
/// utility report calls it for every group, candidate and ε). The smaller of `p` and
/// `1 - p` is inverted, so the tail that matters keeps its precision.
#[must_use]
pub fn normal_sf_inverse(p: f64) -> f64 {
    if p.is_nan() {
        return f64::NAN;
    }
    if p <= 0.0 {
        return f64::INFINITY;
    }
    if p >= 1.0 {
        return f64::NEG_INFINITY;
    }
    // sf⁻¹(p) = Φ⁻¹(1 − p) = −Φ⁻¹(p); 1 − p is exact for p in [0.5, 1).
    if p <= 0.5 {
        -normal_quantile_below_half(p)
    } else {
        normal_quantile_below_half(1.0 - p)
    }
}

/// `Φ⁻¹(q)` for `q` in `(0, 0.5]` (so the result is at most 0).
fn normal_quantile_below_half(q: f64) -> f64 {
    const A: [f64; 6] = [
        -3.969_683_028_665_376e1,
        2.209_460_984_245_205e2,
        -2.759_285_104_469_687e2,
        1.383_577_518_672_69e2,
        -3.066_479_806_614_716e1,
        2.506_628_277_459_239,
    ];
    const B: [f64; 5] = [
        -5.447_609_879_822_406e1,
        1.615_858_368_580_409e2,
        -1.556_989_798_598_866e2,
        6.680_131_188_771_972e1,
        -1.328_068_155_288_572e1,
    ];
    const C: [f64; 6] = [
        -7.784_894_002_430_293e-3,
        -3.223_964_580_411_365e-1,
        -2.400_758_277_161_838,
        -2.549_732_539_343_734,
        4.374_664_141_464_968,
        2.938_163_982_698_783,
    ];
    const D: [f64; 4] = [
        7.784_695_709_041_462e-3,
        3.224_671_290_700_398e-1,
        2.445_134_137_142_996,
        3.754_408_661_907_416,
    ];
    let x = if q < 0.024_25 {
        let t = libm::sqrt(-2.0 * libm::log(q));
        (((((C[0] * t + C[1]) * t + C[2]) * t + C[3]) * t + C[4]) * t + C[5])
            / ((((D[0] * t + D[1]) * t + D[2]) * t + D[3]) * t + 1.0)
    } else {
        let r = q - 0.5;
        let s = r * r;
        (((((A[0] * s + A[1]) * s + A[2]) * s + A[3]) * s + A[4]) * s + A[5]) * r
            / (((((B[0] * s + B[1]) * s + B[2]) * s + B[3]) * s + B[4]) * s + 1.0)
    };
    // One Halley step on Φ(x) = q (Φ(x) is accurate for x ≤ 0, where it is computed).
    let error = normal_cdf(x) - q;
    let u = error * SQRT_TWO_PI * libm::exp(0.5 * x * x);
    let refined = x - u / (1.0 + 0.5 * x * u);
    if refined.is_finite() { refined } else { x }
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

    /// The bisection `normal_sf_inverse` used to be, as an oracle.
    fn bisection(p: f64) -> f64 {
        let (mut low, mut high) = (-40.0_f64, 40.0_f64);
        for _ in 0..200 {
            let middle = 0.5 * (low + high);
            if normal_sf(middle) > p {
                low = middle;
            } else {
                high = middle;
            }
        }
        0.5 * (low + high)
    }

    #[test]
    #[allow(clippy::float_cmp)] // Symmetry and the infinities are exact by construction.
    fn the_normal_quantile_agrees_with_bisection_from_tail_to_tail() {
        let mut p = 1e-300;
        while p < 1.0 {
            // The bisection is exact only where `sf` resolves `q`: below one half.
            for q in [p, 0.5 - p / 4.0] {
                if q <= 0.0 || q > 0.5 {
                    continue;
                }
                let (fast, slow) = (normal_sf_inverse(q), bisection(q));
                assert!(
                    (fast - slow).abs() <= 1e-12 * slow.abs().max(1.0),
                    "p = {q}: {fast} vs {slow}"
                );
                // Above one half, by symmetry, where 1 − q is exact.
                if 1.0 - (1.0 - q) == q {
                    assert_eq!(normal_sf_inverse(1.0 - q), -normal_sf_inverse(q), "p = {q}");
                }
            }
            p *= 3.7;
        }
        assert_eq!(normal_sf_inverse(0.0), f64::INFINITY);
        assert_eq!(normal_sf_inverse(1.0), f64::NEG_INFINITY);
        assert!(normal_sf_inverse(f64::NAN).is_nan());
    }

    #[test]
    fn normal_quantiles_match_tables() {
        assert!((normal_sf_inverse(0.025) - 1.959_963_984_540_054).abs() < 1e-9);
        assert!((normal_sf_inverse(0.5)).abs() < 1e-9);
        assert!((normal_cdf(1.0) - 0.841_344_746_068_542_9).abs() < 1e-14);
        assert!((normal_sf(10.0) - 7.619_853_024_160_527e-24).abs() < 1e-36);
    }
}
