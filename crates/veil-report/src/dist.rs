//! The error distribution of one released value: a fixed bias plus zero-mean noise of a
//! known shape and standard deviation. Closed forms for the analytic side, floating-point
//! draws for the Monte Carlo side (a simulation, never a release).

use rand_core::Rng;
use rand_distr::{Distribution, Exp1, StandardNormal, StandardUniform};
use veil_core::mechanism::{joint_unit_quantile, joint_unit_tail};
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
        NoiseShape::Joint { dimension } => {
            let tail =
                0.5 * joint_unit_tail(usize::from(dimension), z.abs() / joint_unit(dimension, std));
            if z < 0.0 { tail } else { 1.0 - tail }
        }
        NoiseShape::JointShaped(shape) => {
            let tail = 0.5 * shape.tail(z.abs() / std);
            if z < 0.0 { tail } else { 1.0 - tail }
        }
    }
}

/// The unit of a joint draw's coordinate with standard deviation `std`: the law is `unit`
/// times `R·U`, `R ~ Gamma(d + 1)`, `U` uniform on `[−1, 1]`, of variance `(d+1)(d+2)/3`.
fn joint_unit(dimension: u8, std: f64) -> f64 {
    let d = f64::from(dimension);
    std / ((d + 1.0) * (d + 2.0) / 3.0).sqrt()
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
        NoiseShape::Joint { dimension } => {
            let unit = joint_unit(dimension, std);
            let dimension = usize::from(dimension);
            if p < 0.5 {
                -unit * joint_unit_quantile(dimension, 2.0 * p)
            } else {
                unit * joint_unit_quantile(dimension, 2.0 * (1.0 - p))
            }
        }
        NoiseShape::JointShaped(shape) => {
            if p < 0.5 {
                -std * shape.quantile(2.0 * p)
            } else {
                std * shape.quantile(2.0 * (1.0 - p))
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
        NoiseShape::Joint { dimension } => {
            // R ~ Gamma(d + 1) as a sum of d + 1 exponentials, U uniform on [−1, 1].
            let radius: f64 = (0..=dimension).map(|_| -> f64 { Exp1.sample(rng) }).sum();
            let uniform: f64 = StandardUniform.sample(rng);
            joint_unit(dimension, std) * radius * (2.0 * uniform - 1.0)
        }
        NoiseShape::JointShaped(shape) => {
            // z = (shift + scale·G)·U for a component drawn by its weight.
            let pick: f64 = StandardUniform.sample(rng);
            let component = shape.component(pick);
            let gamma: f64 = (0..component.gamma_shape)
                .map(|_| -> f64 { Exp1.sample(rng) })
                .sum();
            let uniform: f64 = StandardUniform.sample(rng);
            std * (component.shift + component.scale * gamma) * (2.0 * uniform - 1.0)
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

/// The smallest `x` in `[0, high]` with `cdf(x) >= level`, for a non-decreasing `cdf`
/// (growing `high` until it holds the level), to a relative precision of 1e-9: a report
/// shows three digits.
///
/// Regula falsi with the Illinois modification (the end kept twice in a row has its value
/// halved), which needs 6–16 evaluations of a smooth `cdf` where bisection needs 30; a
/// bisection step whenever three steps in a row did not halve the bracket, so that the
/// steps of mixtures with atoms (a group not released) converge at least as bisection
/// does.
pub(crate) fn invert(level: f64, mut high: f64, cdf: impl Fn(f64) -> f64) -> f64 {
    if !high.is_finite() || high <= 0.0 {
        high = 1.0;
    }
    // Grow the bracket until it holds the level (mixtures with atoms reach it exactly).
    let mut above = cdf(high) - level;
    let mut grow = 0;
    while above < 0.0 && grow < 200 {
        high *= 2.0;
        above = cdf(high) - level;
        grow += 1;
    }
    let mut low = 0.0;
    let mut below = cdf(low) - level;
    if below >= 0.0 || above < 0.0 {
        return if below >= 0.0 { 0.0 } else { high };
    }
    // `below < 0 <= above` throughout; `kept`: which end the last step kept (-1 low, 1 high).
    let mut kept = 0;
    let mut stalled = 0;
    for _ in 0..200 {
        let width = high - low;
        if width <= 1e-9 * high {
            break;
        }
        let falsi = low - below * width / (above - below);
        // At least a tolerance inside the bracket: once one end sits on the answer, the
        // next point lands just past it and closes the bracket.
        let inside = 0.4e-9 * high;
        let x = if stalled >= 3 || !falsi.is_finite() {
            0.5 * (low + high)
        } else {
            falsi.clamp(low + inside, high - inside)
        };
        let value = cdf(x) - level;
        if value >= 0.0 {
            high = x;
            above = value;
            if kept == -1 {
                below *= 0.5;
            }
            kept = -1;
        } else {
            low = x;
            below = value;
            if kept == 1 {
                above *= 0.5;
            }
            kept = 1;
        }
        stalled = if high - low > 0.5 * width {
            stalled + 1
        } else {
            0
        };
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

    /// Bisection to the last bit, for comparison.
    fn bisect(level: f64, cdf: impl Fn(f64) -> f64) -> f64 {
        let (mut low, mut high) = (0.0_f64, 1e6_f64);
        for _ in 0..2000 {
            let middle = 0.5 * (low + high);
            if middle <= low || middle >= high {
                break;
            }
            if cdf(middle) >= level {
                high = middle;
            } else {
                low = middle;
            }
        }
        high
    }

    #[test]
    fn inversion_finds_the_smallest_point_reaching_the_level() {
        let evaluations = std::cell::Cell::new(0);
        let smooth = |x: f64| {
            evaluations.set(evaluations.get() + 1);
            1.0 - (-x / 3.0).exp()
        };
        // Atoms: a group not released has relative error 1, a step in the mixture's cdf.
        let atom = |x: f64| 0.4 * f64::from(u8::from(x >= 1.0)) + 0.6 * (1.0 - (-x).exp());
        let flat = |x: f64| if x < 2.0 { 0.5 * x / 2.0 } else { 1.0 };
        for level in [0.05, 0.5, 0.9, 0.999] {
            evaluations.set(0);
            let found = invert(level, 1.0, smooth);
            // Bisection would need 35 halvings besides the bracket's growth (up to 7 here).
            assert!(
                evaluations.get() <= 25,
                "{level}: {} evaluations",
                evaluations.get()
            );
            let expected = bisect(level, smooth);
            assert!(
                (found - expected).abs() <= 2e-9 * expected,
                "{level}: {found} vs {expected}"
            );
            for cdf in [&atom as &dyn Fn(f64) -> f64, &flat] {
                let found = invert(level, 1.0, cdf);
                let expected = bisect(level, cdf);
                assert!(
                    (found - expected).abs() <= 2e-9 * expected,
                    "{level}: {found} vs {expected}"
                );
                assert!(cdf(found) >= level);
            }
        }
        // The level at the atom itself: its position, not a point past it.
        assert!((invert(0.5, 1.0, atom) - bisect(0.5, atom)).abs() < 1e-8);
        assert!(invert(0.5, 1.0, |_| 1.0) == 0.0);
    }

    /// A joint draw's coordinate: its quantile inverts its CDF, and at the same deviation
    /// its median magnitude is about 1.17 times a Laplace's for two answers (less peaked).
    #[test]
    fn the_joint_law_inverts_and_is_less_peaked_than_laplace() {
        for dimension in [2_u8, 3] {
            let shape = NoiseShape::Joint { dimension };
            for p in [0.01, 0.2, 0.5, 0.8, 0.975] {
                let z = quantile(shape, 3.0, p);
                assert!((cdf(shape, 3.0, z) - p).abs() < 1e-9, "{dimension}: {p}");
            }
        }
        let joint = invert(0.5, 1.0, |x| {
            abs_cdf(NoiseShape::Joint { dimension: 2 }, 1.0, 0.0, x)
        });
        let laplace = invert(0.5, 1.0, |x| abs_cdf(NoiseShape::Laplace, 1.0, 0.0, x));
        let ratio = joint / laplace;
        assert!((ratio - 1.17).abs() < 0.01, "{ratio}");
    }

    /// A staircase's answer (ε = 4/3 per group, a count of 5 rows and a centred sum): the
    /// quantile inverts the CDF, draws have the law's deviation, and at the same deviation
    /// its median is below a plain joint coordinate's (what the planner draws it for at
    /// these bounds; on a coarser lattice, one row per unit, it can be above).
    #[test]
    fn the_staircase_law_inverts_and_has_the_lower_median() {
        use veil_core::Epsilon;
        use veil_core::mechanism::{JointLaplaceMechanism, StaircaseStep};
        let mechanism = JointLaplaceMechanism::staircase(
            &[5, 25_000],
            Epsilon::new(4.0 / 3.0).unwrap(),
            StaircaseStep::new(7, 10).unwrap(),
        )
        .unwrap();
        let median = |shape| invert(0.5, 1.0, |x| abs_cdf(shape, 1.0, 0.0, x));
        let plain = median(NoiseShape::Joint { dimension: 2 });
        let mut rng = veil_testkit::seeded_rng(7);
        for index in 0..2 {
            let shape = NoiseShape::JointShaped(mechanism.answer_shape(index).unwrap());
            for p in [0.01, 0.2, 0.5, 0.8, 0.975] {
                let z = quantile(shape, 3.0, p);
                assert!((cdf(shape, 3.0, z) - p).abs() < 1e-9, "{index}: {p}");
            }
            let n = 100_000;
            let variance: f64 = (0..n)
                .map(|_| draw(shape, 2.0, &mut rng).powi(2))
                .sum::<f64>()
                / f64::from(n);
            assert!((variance.sqrt() - 2.0).abs() < 0.03, "{index}: {variance}");
            let ratio = median(shape) / plain;
            assert!(ratio < 0.97, "{index}: {ratio}");
        }
    }

    /// A plateau law's answers: the quantile inverts the CDF, draws have the law's
    /// deviation and 95% reach, and the answers differ from a plain coordinate where the
    /// plateau moved noise (the plateau's answer flatter, the other more peaked).
    #[test]
    fn the_plateau_law_inverts_and_draws_its_own_shape() {
        let reach = [0.0, 0.5];
        let plain = NoiseShape::Joint { dimension: 2 };
        let median = |shape| invert(0.5, 1.0, |x| abs_cdf(shape, 1.0, 0.0, x));
        let mut rng = veil_testkit::seeded_rng(6);
        for index in 0..2 {
            let shape = NoiseShape::JointShaped(veil_core::mechanism::AnswerShape::Plateau(
                veil_core::mechanism::PlateauShape::new(&reach, index).unwrap(),
            ));
            for p in [0.01, 0.2, 0.5, 0.8, 0.975] {
                let z = quantile(shape, 3.0, p);
                assert!((cdf(shape, 3.0, z) - p).abs() < 1e-9, "{index}: {p}");
            }
            let n = 200_000;
            let draws: Vec<f64> = (0..n).map(|_| draw(shape, 2.0, &mut rng)).collect();
            let variance = draws.iter().map(|z| z * z).sum::<f64>() / f64::from(n);
            assert!((variance.sqrt() - 2.0).abs() < 0.02, "{index}: {variance}");
            let reach95 = quantile(shape, 2.0, 0.975);
            let inside = draws.iter().filter(|z| z.abs() <= reach95).count();
            #[allow(clippy::cast_precision_loss)]
            let share = inside as f64 / f64::from(n);
            assert!((share - 0.95).abs() < 0.003, "{index}: {share}");
            let ratio = median(shape) / median(plain);
            if index == 0 {
                assert!(ratio < 0.97, "the other answer, more peaked: {ratio}");
            } else {
                assert!(ratio > 1.03, "the plateau's answer, flatter: {ratio}");
            }
        }
    }

    #[test]
    fn draws_have_the_planned_standard_deviation() {
        let mut rng = veil_testkit::seeded_rng(5);
        for shape in [
            NoiseShape::Laplace,
            NoiseShape::Gaussian,
            NoiseShape::Joint { dimension: 2 },
            NoiseShape::Joint { dimension: 3 },
        ] {
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
