//! Noise calibration: the smallest noise that meets a privacy target, and the privacy a
//! given noise buys.
//!
//! Every function here errs on the side of privacy: a noise scale is rounded up, a
//! privacy loss (ε or δ) is rounded up, and the floating-point error of the special
//! functions is covered by an explicit relative margin ([`NUMERIC_MARGIN`]).
//!
//! - Laplace: scale `Δ₁/ε`, exactly (the discrete Laplace of scale `t` on integers with
//!   sensitivity Δ is exactly `Δ/t`-DP).
//! - Gaussian for (ε, δ): the analytic Gaussian mechanism of Balle and Wang (2018) for the
//!   continuous Gaussian ([`analytic_gaussian_sigma`]), and Canonne, Kamath and Steinke's
//!   exact (ε, δ) of the *discrete* Gaussian ([`discrete_gaussian_sigma`]), which is what
//!   Veil releases. The classic `sqrt(2 ln(1.25/δ))·Δ/ε` is never used.
//! - Gaussian for ρ-zCDP: `σ = Δ₂ / sqrt(2ρ)`, exact for both the continuous and the
//!   discrete Gaussian.

use crate::rational::{next_down, next_up};
use crate::special::{SQRT_TWO_PI, gaussian_integral_above, normal_cdf};
use crate::{Delta, Epsilon, L1Sensitivity, L2Sensitivity, ParamError, Rho};

/// Relative margin added to computed privacy losses and noise scales to cover the
/// floating-point error of `exp`, `erfc` and sums (all far below 1e-12 here).
pub const NUMERIC_MARGIN: f64 = 1e-12;

pub(crate) fn pad_up(value: f64) -> f64 {
    next_up(value + value.abs() * NUMERIC_MARGIN)
}

pub(crate) fn pad_down(value: f64) -> f64 {
    next_down(value - value.abs() * NUMERIC_MARGIN)
}

fn positive_sensitivity(value: f64) -> Result<f64, ParamError> {
    if value > 0.0 {
        Ok(value)
    } else {
        Err(ParamError::OutOfRange {
            param: "sensitivity",
            value,
            expected: "> 0 to calibrate noise (a query no one can change needs none)",
        })
    }
}

fn positive_delta(delta: Delta) -> Result<f64, ParamError> {
    if delta.get() > 0.0 {
        Ok(delta.get())
    } else {
        Err(ParamError::OutOfRange {
            param: "delta",
            value: delta.get(),
            expected: "> 0 for a Gaussian mechanism (use Laplace for pure ε-DP)",
        })
    }
}

/// The Laplace scale `Δ₁ / ε`, rounded up to an `f64`.
///
/// # Errors
/// [`ParamError::OutOfRange`] if the sensitivity is zero.
pub fn laplace_scale(sensitivity: L1Sensitivity, epsilon: Epsilon) -> Result<f64, ParamError> {
    let sensitivity = positive_sensitivity(sensitivity.get())?;
    Ok(quotient_up(sensitivity, epsilon.get()))
}

/// `numer / denom` rounded up: the correctly rounded quotient when it is already at least
/// the exact value (checked exactly with a fused multiply-add), else the next `f64` above.
fn quotient_up(numer: f64, denom: f64) -> f64 {
    let quotient = numer / denom;
    if libm::fma(quotient, denom, -numer) >= 0.0 {
        quotient
    } else {
        next_up(quotient)
    }
}

/// The ε of a Laplace mechanism: `Δ₁ / scale`, rounded up.
///
/// # Errors
/// [`ParamError::OutOfRange`] if `scale` is not finite and positive.
pub fn laplace_epsilon(sensitivity: L1Sensitivity, scale: f64) -> Result<Epsilon, ParamError> {
    if !(scale.is_finite() && scale > 0.0) {
        return Err(ParamError::OutOfRange {
            param: "scale",
            value: scale,
            expected: "finite and > 0",
        });
    }
    Epsilon::new(quotient_up(sensitivity.get(), scale))
}

/// The δ of the continuous Gaussian mechanism with standard deviation `sigma` at `epsilon`
/// (Balle and Wang 2018, Theorem 8), rounded up:
/// `δ = Φ(Δ/(2σ) - εσ/Δ) - e^ε Φ(-Δ/(2σ) - εσ/Δ)`.
#[must_use]
pub fn gaussian_delta(sensitivity: L2Sensitivity, sigma: f64, epsilon: Epsilon) -> f64 {
    let (delta_2, epsilon) = (sensitivity.get(), epsilon.get());
    if delta_2 == 0.0 {
        return 0.0;
    }
    let first = normal_cdf(delta_2 / (2.0 * sigma) - epsilon * sigma / delta_2);
    let second =
        libm::exp(epsilon) * normal_cdf(-delta_2 / (2.0 * sigma) - epsilon * sigma / delta_2);
    let second = if second.is_finite() { second } else { 0.0 };
    pad_up(pad_up(first) - pad_down(second)).clamp(0.0, 1.0)
}

/// The smallest σ (up to a relative 1e-9, rounded up) for which the continuous Gaussian
/// mechanism is (ε, δ)-DP: the analytic Gaussian mechanism of Balle and Wang (2018).
///
/// ε = 1, δ = 1e-5, Δ₂ = 1 gives σ ≈ 3.730, where the classic bound gives 4.845.
///
/// # Errors
/// [`ParamError::OutOfRange`] if the sensitivity or δ is zero.
pub fn analytic_gaussian_sigma(
    sensitivity: L2Sensitivity,
    epsilon: Epsilon,
    delta: Delta,
) -> Result<f64, ParamError> {
    positive_sensitivity(sensitivity.get())?;
    let target = positive_delta(delta)?;
    Ok(smallest_passing(|sigma| {
        gaussian_delta(sensitivity, sigma, epsilon) <= target
    }))
}

/// The smallest `x > 0` (up to a relative 1e-9, on the passing side) with `passes(x)`,
/// for a `passes` that is false near zero and true for all large enough `x`.
fn smallest_passing(passes: impl Fn(f64) -> bool) -> f64 {
    let mut high = 1.0;
    while !passes(high) {
        high *= 2.0;
        if high > 1e300 {
            return f64::INFINITY;
        }
    }
    let mut low = high / 2.0;
    while passes(low) && low > 1e-300 {
        high = low;
        low /= 2.0;
    }
    // Invariant: passes(high), !passes(low).
    while high - low > high * 1e-10 {
        let middle = 0.5 * (low + high);
        if passes(middle) {
            high = middle;
        } else {
            low = middle;
        }
    }
    high
}

/// Bounds on `Σ_{y >= m} exp(-y²/(2σ²))` for an integer `m >= 0`: explicit terms until they
/// are negligible, then the integral of the rest (below: `∫_{M}^∞`, above: `f(M) + ∫_{M}^∞`,
/// both valid because the summand decreases for `y >= 0`).
fn gaussian_tail_sum(m: f64, sigma: f64) -> (f64, f64) {
    let weight = |y: f64| libm::exp(-y * y / (2.0 * sigma * sigma));
    let mut sum = 0.0;
    let mut y = m;
    for _ in 0..1_000_000 {
        let term = weight(y);
        if term <= sum * 1e-20 || term == 0.0 {
            break;
        }
        sum += term;
        y += 1.0;
    }
    let rest = gaussian_integral_above(y, sigma);
    (pad_down(sum + rest), pad_up(sum + weight(y) + rest))
}

/// Bounds on `P[Y >= m]` for `Y` a discrete Gaussian with parameter σ and an integer `m`.
pub(crate) fn discrete_gaussian_tail(m: f64, sigma: f64) -> (f64, f64) {
    // The normaliser Σ_y exp(-y²/2σ²) = σ·sqrt(2π)·θ with θ in [1, 1 + 2q/(1-q)],
    // q = exp(-2π²σ²), by Poisson summation.
    // For small σ the explicit sum 1 + 2·Σ_{y>=1} is tighter; both bounds are valid.
    let q = libm::exp(-2.0 * core::f64::consts::PI * core::f64::consts::PI * sigma * sigma);
    let (positive_low, positive_high) = gaussian_tail_sum(1.0, sigma);
    let normaliser_low = pad_down(sigma * SQRT_TWO_PI).max(pad_down(1.0 + 2.0 * positive_low));
    let normaliser_high = pad_up(sigma * SQRT_TWO_PI * (1.0 + 2.0 * q / (1.0 - q)))
        .min(pad_up(1.0 + 2.0 * positive_high));
    if m >= 1.0 {
        let (sum_low, sum_high) = gaussian_tail_sum(m, sigma);
        (
            pad_down(sum_low / normaliser_high),
            pad_up(sum_high / normaliser_low).min(1.0),
        )
    } else {
        // P[Y >= m] = 1 - P[Y <= m - 1] = 1 - P[Y >= 1 - m], by symmetry.
        let (complement_low, complement_high) = discrete_gaussian_tail(1.0 - m, sigma);
        (
            pad_down(1.0 - complement_high).max(0.0),
            pad_up(1.0 - complement_low).min(1.0),
        )
    }
}

/// An upper bound on the δ of the discrete Gaussian with parameter σ² on an integer
/// query of sensitivity Δ₂ at `epsilon` (Canonne, Kamath and Steinke 2020, Theorem 7):
/// `δ = P[Y > εσ²/Δ - Δ/2] - e^ε P[Y > εσ²/Δ + Δ/2]` with `Y ~ N_Z(0, σ²)`; each tail is
/// bounded rigorously (explicit sums, integral remainders, Poisson-summation normaliser).
///
/// # Errors
/// [`ParamError`] if the sensitivity is not a positive integer or σ² not positive.
pub fn discrete_gaussian_delta(
    sensitivity: L2Sensitivity,
    sigma_squared: f64,
    epsilon: Epsilon,
) -> Result<f64, ParamError> {
    let delta_2 = integer_sensitivity(sensitivity)?;
    if !(sigma_squared.is_finite() && sigma_squared > 0.0) {
        return Err(ParamError::OutOfRange {
            param: "sigma squared",
            value: sigma_squared,
            expected: "finite and > 0",
        });
    }
    let sigma = libm::sqrt(sigma_squared);
    let epsilon = epsilon.get();
    // P[Y > a] = P[Y >= floor(a) + 1].
    let first_edge = libm::floor(epsilon * sigma_squared / delta_2 - delta_2 / 2.0) + 1.0;
    let second_edge = libm::floor(epsilon * sigma_squared / delta_2 + delta_2 / 2.0) + 1.0;
    let (_, first_high) = discrete_gaussian_tail(first_edge, sigma);
    let (second_low, _) = discrete_gaussian_tail(second_edge, sigma);
    let second = libm::exp(epsilon) * second_low;
    let second = if second.is_finite() {
        pad_down(second)
    } else {
        0.0
    };
    Ok((pad_up(first_high - second) + 1e-300).clamp(0.0, 1.0))
}

fn integer_sensitivity(sensitivity: L2Sensitivity) -> Result<f64, ParamError> {
    match sensitivity.as_integer() {
        Some(value) if value > 0 => {
            #[allow(clippy::cast_precision_loss)]
            let value = value as f64;
            Ok(value)
        }
        _ => Err(ParamError::OutOfRange {
            param: "sensitivity",
            value: sensitivity.get(),
            expected: "a positive integer (in units of the output grid)",
        }),
    }
}

/// The smallest σ (up to a relative 1e-9, rounded up) for which the discrete Gaussian on
/// an integer query of sensitivity Δ₂ is (ε, δ)-DP, by [`discrete_gaussian_delta`].
///
/// # Errors
/// [`ParamError`] if the sensitivity is not a positive integer or δ is zero.
pub fn discrete_gaussian_sigma(
    sensitivity: L2Sensitivity,
    epsilon: Epsilon,
    delta: Delta,
) -> Result<f64, ParamError> {
    integer_sensitivity(sensitivity)?;
    let target = positive_delta(delta)?;
    Ok(smallest_passing(|sigma| {
        discrete_gaussian_delta(sensitivity, sigma * sigma, epsilon).is_ok_and(|d| d <= target)
    }))
}

/// `σ = Δ₂ / sqrt(2ρ)`, rounded up: the continuous and the discrete Gaussian (on integers)
/// with this σ are ρ-zCDP (Bun and Steinke 2016; Canonne, Kamath and Steinke 2020).
///
/// # Errors
/// [`ParamError::OutOfRange`] if the sensitivity is zero.
pub fn zcdp_sigma(sensitivity: L2Sensitivity, rho: Rho) -> Result<f64, ParamError> {
    let sensitivity = positive_sensitivity(sensitivity.get())?;
    Ok(pad_up(sensitivity / libm::sqrt(2.0 * rho.get())))
}

/// The ρ of a Gaussian with parameter σ on a query of L2 sensitivity Δ₂: `Δ₂² / (2σ²)`,
/// rounded up.
///
/// # Errors
/// [`ParamError::OutOfRange`] if σ is not finite and positive, or the sensitivity is zero.
pub fn gaussian_rho(sensitivity: L2Sensitivity, sigma: f64) -> Result<Rho, ParamError> {
    if !(sigma.is_finite() && sigma > 0.0) {
        return Err(ParamError::OutOfRange {
            param: "sigma",
            value: sigma,
            expected: "finite and > 0",
        });
    }
    let sensitivity = positive_sensitivity(sensitivity.get())?;
    Rho::new(pad_up(sensitivity * sensitivity / (2.0 * sigma * sigma)))
}

/// The ε at which ρ-zCDP implies (ε, δ)-DP, by the conversion of Canonne, Kamath and
/// Steinke (2020, Corollary 13): for any α > 1,
/// `ε = αρ + (ln(1/δ) + (α-1)·ln(1 - 1/α) - ln α) / (α - 1)`,
/// minimised over α numerically (any α gives a valid bound; the minimiser only makes it
/// tight) and never above the classic `ρ + 2·sqrt(ρ·ln(1/δ))`. Rounded up. When the bound
/// is zero or negative (a tiny ρ at a large δ: the output distributions are then within δ
/// in total variation), the result is the smallest positive ε, which is still an upper bound.
///
/// # Errors
/// [`ParamError::OutOfRange`] if `delta` is zero.
pub fn rho_to_epsilon(rho: Rho, delta: Delta) -> Result<Epsilon, ParamError> {
    let delta = positive_delta(delta)?;
    let rho = rho.get();
    let log_inverse_delta = -libm::log(delta);
    let at = |alpha: f64| {
        alpha * rho
            + (log_inverse_delta + (alpha - 1.0) * libm::log1p(-1.0 / alpha) - libm::log(alpha))
                / (alpha - 1.0)
    };
    // The bound is convex in α on (1, ∞); ternary search on log(α - 1).
    let (mut low, mut high) = (-20.0_f64, 20.0_f64);
    for _ in 0..200 {
        let left = low + (high - low) / 3.0;
        let right = high - (high - low) / 3.0;
        if at(1.0 + libm::exp(left)) <= at(1.0 + libm::exp(right)) {
            high = right;
        } else {
            low = left;
        }
    }
    let best = at(1.0 + libm::exp(0.5 * (low + high)));
    let classic = rho + 2.0 * libm::sqrt(rho * log_inverse_delta);
    let epsilon = if best.is_finite() {
        best.min(classic)
    } else {
        classic
    };
    Epsilon::new(pad_up(epsilon).max(f64::MIN_POSITIVE))
}

/// The largest ρ (up to a relative 1e-9, rounded down) such that ρ-zCDP implies
/// (ε, δ)-DP by [`rho_to_epsilon`]: how much zCDP budget an (ε, δ) target allows.
///
/// # Errors
/// [`ParamError::OutOfRange`] if `delta` is zero.
pub fn epsilon_to_rho(epsilon: Epsilon, delta: Delta) -> Result<Rho, ParamError> {
    positive_delta(delta)?;
    let fits = |rho: f64| {
        Rho::new(rho)
            .ok()
            .and_then(|rho| rho_to_epsilon(rho, delta).ok())
            .is_some_and(|converted| converted.get() <= epsilon.get())
    };
    // ε >= ρ always, so ρ = ε is too large; bisect between a ρ that fits and one that does not.
    let (mut low, mut high) = (0.0_f64, epsilon.get());
    for _ in 0..200 {
        let middle = 0.5 * (low + high);
        if fits(middle) {
            low = middle;
        } else {
            high = middle;
        }
        if high - low <= high * 1e-10 {
            break;
        }
    }
    if low <= 0.0 {
        return Err(ParamError::OutOfRange {
            param: "epsilon",
            value: epsilon.get(),
            expected: "large enough to leave a positive ρ at this δ",
        });
    }
    Rho::new(low)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn eps(value: f64) -> Epsilon {
        Epsilon::new(value).unwrap()
    }

    fn delta(value: f64) -> Delta {
        Delta::new(value).unwrap()
    }

    #[test]
    fn laplace_scale_is_sensitivity_over_epsilon() {
        assert_eq!(
            laplace_scale(L1Sensitivity::integer(2), eps(0.5))
                .unwrap()
                .to_bits(),
            4.0_f64.to_bits()
        );
        // 1/0.3 is not an f64: the result is at least the exact quotient.
        let scale = laplace_scale(L1Sensitivity::integer(1), eps(0.3)).unwrap();
        assert!(libm::fma(scale, 0.3, -1.0) >= 0.0);
        assert!(laplace_scale(L1Sensitivity::integer(0), eps(0.5)).is_err());
        let epsilon = laplace_epsilon(L1Sensitivity::integer(1), 2.0).unwrap();
        assert_eq!(epsilon.get().to_bits(), 0.5_f64.to_bits());
    }

    #[test]
    fn analytic_gaussian_matches_balle_wang() {
        let sigma =
            analytic_gaussian_sigma(L2Sensitivity::integer(1), eps(1.0), delta(1e-5)).unwrap();
        // Reference: 3.7306316348 from solving Balle–Wang's equation with mpmath at 40 digits.
        assert!((sigma - 3.730_631_634_8).abs() < 1e-8, "σ = {sigma}");
        // It meets the target and a slightly smaller σ does not.
        assert!(gaussian_delta(L2Sensitivity::integer(1), sigma, eps(1.0)) <= 1e-5);
        assert!(gaussian_delta(L2Sensitivity::integer(1), sigma * 0.999, eps(1.0)) > 1e-5);
        // It beats the classic bound, valid here since ε < 1.
        let sigma =
            analytic_gaussian_sigma(L2Sensitivity::integer(1), eps(0.5), delta(1e-6)).unwrap();
        let classic = (2.0 * (1.25_f64 / 1e-6).ln()).sqrt() / 0.5;
        assert!(sigma < classic, "{sigma} vs {classic}");
    }

    #[test]
    fn gaussian_delta_is_monotone_in_sigma() {
        let mut previous = 1.0;
        for step in 1..200 {
            let sigma = f64::from(step) * 0.1;
            let current = gaussian_delta(L2Sensitivity::integer(1), sigma, eps(1.0));
            assert!(current <= previous, "σ = {sigma}");
            previous = current;
        }
    }

    #[test]
    fn discrete_gaussian_is_close_to_continuous_for_large_sigma() {
        let continuous =
            analytic_gaussian_sigma(L2Sensitivity::integer(1), eps(1.0), delta(1e-6)).unwrap();
        let discrete =
            discrete_gaussian_sigma(L2Sensitivity::integer(1), eps(1.0), delta(1e-6)).unwrap();
        assert!(
            (discrete / continuous - 1.0).abs() < 0.02,
            "{discrete} vs {continuous}"
        );
        // At a large sensitivity the grid no longer matters.
        let continuous =
            analytic_gaussian_sigma(L2Sensitivity::integer(1000), eps(1.0), delta(1e-6)).unwrap();
        let discrete =
            discrete_gaussian_sigma(L2Sensitivity::integer(1000), eps(1.0), delta(1e-6)).unwrap();
        assert!(
            (discrete / continuous - 1.0).abs() < 1e-3,
            "{discrete} vs {continuous}"
        );
    }

    #[test]
    fn discrete_gaussian_delta_bounds_the_exact_sum() {
        // For small σ compute the exact δ of CKS Theorem 7 by brute-force summation and check
        // that the rigorous bound is above it and close to it.
        for (sigma_squared, epsilon) in [(1.0, 1.0), (4.0, 0.5), (25.0, 0.2), (0.5, 2.0)] {
            let sigma: f64 = f64::sqrt(sigma_squared);
            let weights: Vec<(i64, f64)> = (-2000..=2000)
                .map(|y: i64| (y, (-(y as f64).powi(2) / (2.0 * sigma_squared)).exp()))
                .collect();
            let total: f64 = weights.iter().map(|w| w.1).sum();
            let tail = |a: f64| {
                weights
                    .iter()
                    .filter(|(y, _)| (*y as f64) > a)
                    .map(|w| w.1)
                    .sum::<f64>()
                    / total
            };
            let exact = tail(epsilon * sigma_squared - 0.5)
                - epsilon.exp() * tail(epsilon * sigma_squared + 0.5);
            let bound =
                discrete_gaussian_delta(L2Sensitivity::integer(1), sigma_squared, eps(epsilon))
                    .unwrap();
            assert!(bound >= exact, "σ = {sigma}: {bound} < {exact}");
            assert!(
                bound <= exact * (1.0 + 1e-6) + 1e-15,
                "σ = {sigma}: {bound} far above {exact}"
            );
        }
    }

    #[test]
    fn zcdp_sigma_and_rho_round_trip() {
        let rho = Rho::new(0.5).unwrap();
        let sigma = zcdp_sigma(L2Sensitivity::integer(1), rho).unwrap();
        assert!((sigma - 1.0).abs() < 1e-9 && sigma >= 1.0);
        let back = gaussian_rho(L2Sensitivity::integer(1), sigma).unwrap();
        assert!(back.get() <= 0.5 + 1e-9);
    }

    #[test]
    fn rho_to_epsilon_beats_classic_and_is_valid() {
        // Reference: Canonne–Kamath–Steinke's conversion of ρ = 0.5 at δ = 1e-6, minimised
        // over α on a fine grid by hand; the classic bound is ρ + 2 sqrt(ρ ln(1/δ)).
        let rho = Rho::new(0.5).unwrap();
        let epsilon = rho_to_epsilon(rho, delta(1e-6)).unwrap().get();
        let classic = 0.5 + 2.0 * (0.5 * (1e6_f64).ln()).sqrt();
        assert!(epsilon < classic, "{epsilon} vs {classic}");
        let grid_best = (1..100_000)
            .map(|i| 1.0 + f64::from(i) * 0.001)
            .map(|alpha: f64| {
                alpha * 0.5
                    + ((1e6_f64).ln() + (alpha - 1.0) * (1.0 - 1.0 / alpha).ln() - alpha.ln())
                        / (alpha - 1.0)
            })
            .fold(f64::INFINITY, f64::min);
        assert!(
            epsilon >= grid_best - 1e-9 && epsilon <= grid_best + 1e-6,
            "{epsilon} vs grid {grid_best}"
        );
        assert!(rho_to_epsilon(rho, delta(0.0)).is_err());
    }

    #[test]
    fn a_conversion_at_or_below_zero_is_the_smallest_positive_epsilon() {
        // ρ = 0.0076 at δ = 0.5: the CKS bound is negative (the two output distributions
        // are within total variation sqrt(ρ/2) < δ), which any positive ε bounds.
        let epsilon = rho_to_epsilon(Rho::new(0.0076).unwrap(), delta(0.5)).unwrap();
        assert_eq!(epsilon.get().to_bits(), f64::MIN_POSITIVE.to_bits());
        // A larger ρ at the same δ still gets its real, positive bound.
        let larger = rho_to_epsilon(Rho::new(2.0).unwrap(), delta(0.5)).unwrap();
        assert!(larger.get() > 1.0, "{larger}");
    }

    #[test]
    fn epsilon_to_rho_inverts_the_conversion() {
        for (epsilon, target) in [(1.0, 1e-6), (0.1, 1e-9), (8.0, 1e-5)] {
            let rho = epsilon_to_rho(eps(epsilon), delta(target)).unwrap();
            let back = rho_to_epsilon(rho, delta(target)).unwrap().get();
            assert!(
                back <= epsilon && back >= epsilon * (1.0 - 1e-6),
                "ε = {epsilon}: ρ = {rho}, back {back}"
            );
        }
    }
}
