//! Rényi differential privacy: each mechanism's RDP curve on a fine grid of orders, their
//! sum under composition, and the conversion to (ε, δ).
//!
//! Curves (all upper bounds on `D_α(P‖Q)` and `D_α(Q‖P)`):
//! - Gaussian, continuous and discrete: `α·Δ²/(2σ²)` (Mironov 2017; Canonne, Kamath and
//!   Steinke 2020 for the discrete one).
//! - Laplace: Mironov (2017), Table II.
//! - Any pure ε-DP mechanism (randomized response, discrete Laplace, a pure guarantee):
//!   the curve of randomized response with that ε, which dominates every ε-DP mechanism
//!   (Kairouz, Oh and Viswanath 2015), so the data-processing inequality applies.
//! - Poisson-subsampled Gaussian: the exact binomial expansion at integer orders (Mironov,
//!   Talwar and Zhang 2019, Theorem 5), which bounds both directions; a fractional order
//!   uses the next integer, since `D_α` grows with α.
//! - A ρ-zCDP guarantee: `α·ρ` by definition.
//!
//! Conversion: `ε = min_α RDP(α) + ln(1 - 1/α) - (ln δ + ln α)/(α - 1)` (Balle et al. 2020;
//! Canonne, Kamath and Steinke 2020, Proposition 12), valid for every α > 1.

use veil_core::PrivacyLoss;

use crate::numeric::{log_add, pad_up};
use crate::{AccountantError, Component, MechanismProfile, Method};

/// The orders α at which curves are evaluated: fine near 1, then integers, then a
/// geometric tail up to 4096.
#[must_use]
pub fn orders() -> Vec<f64> {
    let mut orders: Vec<f64> = Vec::new();
    orders.extend((1..=100).map(|i| 1.0 + f64::from(i) * 0.01));
    orders.extend((1..=120).map(|i| 2.0 + f64::from(i) * 0.05));
    orders.extend((9..=64).map(f64::from));
    let mut alpha = 64.0_f64;
    while alpha < 4096.0 {
        alpha *= 1.1;
        orders.push(alpha.round());
    }
    orders.dedup();
    orders
}

/// The RDP of one run of `profile` at order `alpha > 1`, rounded up, or `None` if the
/// mechanism has no RDP curve (an approximate-DP guarantee).
#[must_use]
pub fn rdp_epsilon(profile: &MechanismProfile, alpha: f64) -> Option<f64> {
    if profile.is_free() {
        return Some(0.0);
    }
    let value = match *profile {
        MechanismProfile::Gaussian { .. } | MechanismProfile::DiscreteGaussian { .. } => {
            alpha * profile.rho()?
        }
        MechanismProfile::SubsampledGaussian {
            sigma_over_sensitivity,
            sampling_rate,
        } => {
            if sampling_rate >= 1.0 {
                alpha * profile.rho()?
            } else {
                subsampled_gaussian(sigma_over_sensitivity, sampling_rate, alpha.ceil())
            }
        }
        MechanismProfile::Laplace {
            scale_over_sensitivity,
        } => {
            let inverse = 1.0 / scale_over_sensitivity;
            let exact = log_add(
                (alpha / (2.0 * alpha - 1.0)).ln() + (alpha - 1.0) * inverse,
                ((alpha - 1.0) / (2.0 * alpha - 1.0)).ln() - alpha * inverse,
            ) / (alpha - 1.0);
            exact.min(profile.pure_epsilon()?)
        }
        MechanismProfile::Guarantee(PrivacyLoss::Zcdp(rho)) => alpha * rho.get(),
        MechanismProfile::Guarantee(PrivacyLoss::Approx(..)) => return None,
        _ => randomized_response(profile.pure_epsilon()?, alpha),
    };
    Some(pad_up(value.max(0.0)))
}

/// The RDP of randomized response with `epsilon` at `alpha`: with `p = e^ε/(1+e^ε)`,
/// `ln(p^α (1-p)^(1-α) + (1-p)^α p^(1-α)) / (α-1)`, and never above ε.
fn randomized_response(epsilon: f64, alpha: f64) -> f64 {
    let log_p = -(-epsilon).exp().ln_1p();
    let log_q = -epsilon.exp().ln_1p();
    let value = log_add(
        alpha * log_p + (1.0 - alpha) * log_q,
        alpha * log_q + (1.0 - alpha) * log_p,
    ) / (alpha - 1.0);
    value.min(epsilon)
}

/// `ln A_α / (α - 1)` with `A_α = Σ_k C(α,k) (1-q)^(α-k) q^k exp((k² - k)/(2σ²))` for an
/// integer α (Mironov, Talwar and Zhang 2019).
fn subsampled_gaussian(sigma: f64, rate: f64, alpha: f64) -> f64 {
    #[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss)]
    let order = alpha as u64;
    let log_q = rate.ln();
    let log_one_minus_q = (-rate).ln_1p();
    let mut log_binomial = 0.0_f64;
    let mut total = f64::NEG_INFINITY;
    for k in 0..=order {
        #[allow(clippy::cast_precision_loss)]
        let (k_f, order_f) = (k as f64, order as f64);
        if k > 0 {
            log_binomial += ((order_f - k_f + 1.0) / k_f).ln();
        }
        let term = log_binomial
            + (order_f - k_f) * log_one_minus_q
            + k_f * log_q
            + (k_f * k_f - k_f) / (2.0 * sigma * sigma);
        total = log_add(total, term);
    }
    total / (alpha - 1.0)
}

/// The composed RDP curve of `components` at each of `orders`.
///
/// # Errors
/// [`AccountantError::Unsupported`] for a mechanism without an RDP curve.
pub fn rdp_curve(components: &[Component], orders: &[f64]) -> Result<Vec<f64>, AccountantError> {
    let mut curve = vec![0.0; orders.len()];
    for component in components.iter().filter(|c| c.times > 0) {
        for (value, &alpha) in curve.iter_mut().zip(orders) {
            let single = rdp_epsilon(&component.profile, alpha).ok_or_else(|| {
                AccountantError::Unsupported {
                    method: Method::Rdp,
                    mechanism: component.profile.to_string(),
                    reason: "a mechanism known only by its (ε, δ) has no Rényi DP curve"
                        .to_string(),
                }
            })?;
            #[allow(clippy::cast_precision_loss)]
            let times = component.times as f64;
            *value += single * times;
        }
    }
    Ok(curve.into_iter().map(pad_up).collect())
}

/// The smallest ε over `orders` at which an RDP curve implies (ε, δ)-DP, rounded up.
#[must_use]
pub fn rdp_to_epsilon(curve: &[f64], orders: &[f64], delta: f64) -> f64 {
    let log_delta = delta.ln();
    let best = curve
        .iter()
        .zip(orders)
        .map(|(&rdp, &alpha)| {
            rdp + (-1.0 / alpha).ln_1p() - (log_delta + alpha.ln()) / (alpha - 1.0)
        })
        .filter(|epsilon| epsilon.is_finite())
        .fold(f64::INFINITY, f64::min);
    pad_up(best.max(0.0))
}

#[cfg(test)]
mod tests;
