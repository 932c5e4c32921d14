//! The error distribution of one released value: a fixed bias plus zero-mean noise of a
//! known shape and standard deviation. Closed forms for the analytic side, floating-point
//! draws for the Monte Carlo side (a simulation, never a release).

use rand_core::Rng;
use rand_distr::{Distribution, Exp1, StandardNormal};
use veil_core::special::normal_cdf;

use crate::input::NoiseShape;

/// `P(|bias + Z| <= x)` for `Z` of `shape` with standard deviation `std`.
#[cfg(test)]
fn abs_cdf(shape: NoiseShape, std: f64, bias: f64, x: f64) -> f64 {
    if x < 0.0 {
        return 0.0;
    }
    if std <= 0.0 {
        return if bias.abs() <= x { 1.0 } else { 0.0 };
    }
    (cdf(shape, std, x - bias) - cdf(shape, std, -x - bias)).clamp(0.0, 1.0)
}

/// `P(Z <= z)`; a point mass at 0 when `std` is 0.
pub(crate) fn cdf(shape: NoiseShape, std: f64, z: f64) -> f64 {
    if std <= 0.0 {
        return if z >= 0.0 { 1.0 } else { 0.0 };
    }
    match shape {
        NoiseShape::Gaussian => normal_cdf(z / std),
        NoiseShape::Laplace => {
            let scale = std / std::f64::consts::SQRT_2;
            if z < 0.0 {
                0.5 * (z / scale).exp()
            } else {
                1.0 - 0.5 * (-z / scale).exp()
            }
        }
    }
}

/// The `p` quantile of zero-mean noise of `shape` with standard deviation `std`.
pub(crate) fn quantile(shape: NoiseShape, std: f64, p: f64) -> f64 {
    if std <= 0.0 {
        return 0.0;
    }
    match shape {
        NoiseShape::Gaussian => -std * veil_core::special::normal_sf_inverse(p),
        NoiseShape::Laplace => {
            let scale = std / std::f64::consts::SQRT_2;
            if p < 0.5 {
                scale * (2.0 * p).ln()
            } else {
                -scale * (2.0 * (1.0 - p)).ln()
            }
        }
    }
}

/// One draw of zero-mean noise of `shape` with standard deviation `std`.
pub(crate) fn draw<R: Rng + ?Sized>(shape: NoiseShape, std: f64, rng: &mut R) -> f64 {
    if std <= 0.0 {
        return 0.0;
    }
    match shape {
        NoiseShape::Gaussian => {
            let z: f64 = StandardNormal.sample(rng);
            std * z
        }
        NoiseShape::Laplace => {
            let a: f64 = Exp1.sample(rng);
            let b: f64 = Exp1.sample(rng);
            std / std::f64::consts::SQRT_2 * (a - b)
        }
    }
}

/// The `level` quantile of sorted values (nearest rank; NaN when empty).
#[must_use]
pub(crate) fn sorted_quantile(sorted: &[f64], level: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    #[allow(
        clippy::cast_precision_loss,
        clippy::cast_possible_truncation,
        clippy::cast_sign_loss
    )]
    let index = ((level * sorted.len() as f64).ceil() as usize).clamp(1, sorted.len()) - 1;
    sorted[index]
}

/// The smallest `x` in `[0, high]` with `cdf(x) >= level`, for a non-decreasing `cdf`,
/// by bisection to a relative precision of 1e-9 (a report shows three digits; about 30
/// halvings where a fixed 60 spent half the report's analytic time on digits no one sees).
pub(crate) fn invert(level: f64, mut high: f64, cdf: impl Fn(f64) -> f64) -> f64 {
    if !high.is_finite() || high <= 0.0 {
        high = 1.0;
    }
    // Grow the bracket until it holds the level (mixtures with atoms reach it exactly).
    let mut grow = 0;
    while cdf(high) < level && grow < 200 {
        high *= 2.0;
        grow += 1;
    }
    let mut low = 0.0;
    if cdf(low) >= level {
        return 0.0;
    }
    for _ in 0..60 {
        if high - low <= 1e-9 * high {
            break;
        }
        let middle = 0.5 * (low + high);
        if cdf(middle) >= level {
            high = middle;
        } else {
            low = middle;
        }
    }
    high
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn laplace_and_gaussian_cdfs_match_their_medians() {
        // The median of |Z| for a Laplace of scale b is b·ln 2; for a Gaussian 0.6745σ.
        let std = 3.0;
        let laplace = invert(0.5, 1.0, |x| abs_cdf(NoiseShape::Laplace, std, 0.0, x));
        let scale = std / std::f64::consts::SQRT_2;
        assert!((laplace - scale * std::f64::consts::LN_2).abs() < 1e-9);
        let gaussian = invert(0.5, 1.0, |x| abs_cdf(NoiseShape::Gaussian, std, 0.0, x));
        assert!((gaussian - 0.674_489_75 * std).abs() < 1e-6);
    }

    #[test]
    fn draws_have_the_planned_standard_deviation() {
        let mut rng = veil_testkit::seeded_rng(5);
        for shape in [NoiseShape::Laplace, NoiseShape::Gaussian] {
            let n = 200_000;
            let variance: f64 = (0..n)
                .map(|_| draw(shape, 2.0, &mut rng).powi(2))
                .sum::<f64>()
                / f64::from(n);
            assert!(
                (variance.sqrt() - 2.0).abs() < 0.02,
                "{shape:?}: {variance}"
            );
        }
    }

    #[test]
    fn sorted_quantile_is_nearest_rank() {
        let values = [1.0, 2.0, 3.0, 4.0];
        assert!((sorted_quantile(&values, 0.5) - 2.0).abs() < 1e-12);
        assert!((sorted_quantile(&values, 0.9) - 4.0).abs() < 1e-12);
        assert!(sorted_quantile(&[], 0.5).is_nan());
    }
}
