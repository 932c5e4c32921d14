//! The plateau law of the joint draw: `P(z) ∝ exp(−ε·max_i (|z_i| − W_i)₊/Δ_i)`, flat on the
//! box `|z_i| ≤ W_i` and falling as the plain law outside it (see `PRIVACY.md`).
//!
//! In units of the sensitivities (`ω_i = W_i/Δ_i`) the continuous law is a mixture of uniform
//! laws on boxes: `exp(−ε·N) = ∫_N^∞ ε·e^(−εr) dr`, so the law is uniform on the box of
//! half-widths `ω_i + r`, with `r` weighted by `ε·e^(−εr)·Π_j (ω_j + r)`. Its spreads and
//! intervals below are that mixture's, in closed form: every integral is an exponential's
//! moments against a polynomial with non-negative coefficients.

use alloc::vec;
use alloc::vec::Vec;

/// The most a plateau may reach, in sensitivities times `1/ε`: wider, the sampler keeps
/// fewer than `e^(−4/d)` of the plain law's proposals.
pub(super) const WIDEST: f64 = 4.0;

/// A plateau law's widths and the continuous law's figures.
#[derive(Debug, Clone, PartialEq)]
pub(super) struct Plateau {
    /// `W_i`, in steps.
    widths: Vec<u64>,
    /// `ω_i = W_i/Δ_i`.
    reach: Vec<f64>,
    epsilon: f64,
}

impl Plateau {
    pub(super) fn new(widths: &[u64], sensitivities: &[u64], epsilon: f64) -> Self {
        #[allow(clippy::cast_precision_loss)]
        let reach = widths
            .iter()
            .zip(sensitivities)
            .map(|(&width, &steps)| width as f64 / steps as f64)
            .collect();
        Self {
            widths: widths.to_vec(),
            reach,
            epsilon,
        }
    }

    pub(super) fn widths(&self) -> &[u64] {
        &self.widths
    }

    /// `E[Π_j (ω_j + r)]` over `r ~ Exp(ε)`: the normaliser (up to constants).
    fn normaliser(&self) -> f64 {
        let factors: Vec<(f64, f64)> = self.reach.iter().map(|&reach| (reach, 1.0)).collect();
        expect_product(&factors, self.epsilon)
    }

    /// The standard deviation of answer `index`'s noise in units of its sensitivity:
    /// `E[(ω_i + r)³·Π_{j≠i}(ω_j + r)]/(3·E[Π_j (ω_j + r)])`, square-rooted (the box of
    /// half-width `h` holds a uniform of variance `h²/3`).
    pub(super) fn unit_std(&self, index: usize) -> f64 {
        let mut factors: Vec<(f64, f64)> = self.reach.iter().map(|&reach| (reach, 1.0)).collect();
        let own = factors[index];
        factors.push(own);
        factors.push(own);
        libm::sqrt(expect_product(&factors, self.epsilon) / (3.0 * self.normaliser()))
    }

    /// `P(|z_index| > v)` in units of the sensitivity: `E[(ω_i + r − v)₊·Π_{j≠i}(ω_j + r)]`
    /// over the normaliser. Above the plateau, with `r₀ = v − ω_i` and `r = r₀ + s`, the
    /// numerator is `e^(−εr₀)·E_s[s·Π_{j≠i}(ω_j + r₀ + s)]`: no cancellation anywhere.
    pub(super) fn unit_tail(&self, index: usize, v: f64) -> f64 {
        let own = self.reach[index];
        // Inside the plateau every box reaches past v; above it, only those from r₀ on.
        let lift = (v - own).max(0.0);
        let mut factors: Vec<(f64, f64)> = self
            .reach
            .iter()
            .enumerate()
            .filter(|&(j, _)| j != index)
            .map(|(_, &reach)| (reach + lift, 1.0))
            .collect();
        factors.push(((own - v).max(0.0), 1.0));
        let numerator = libm::exp(-self.epsilon * lift) * expect_product(&factors, self.epsilon);
        (numerator / self.normaliser()).clamp(0.0, 1.0)
    }

    /// The `v` with `P(|z_index| > v) = alpha`, in units of the sensitivity.
    pub(super) fn unit_quantile(&self, index: usize, alpha: f64) -> f64 {
        super::staircase::quantile(|v| self.unit_tail(index, v), alpha)
    }
}

/// `E[Π_j (a_j + b_j·s)]` over `s ~ Exp(ε)` (density `ε·e^(−εs)`), for `a_j, b_j ≥ 0`: the
/// product's coefficients against the moments `E[s^k] = k!/ε^k`, every term non-negative.
fn expect_product(factors: &[(f64, f64)], epsilon: f64) -> f64 {
    let mut coefficients = vec![1.0];
    for &(constant, slope) in factors {
        let mut next = vec![0.0; coefficients.len() + 1];
        for (power, &coefficient) in coefficients.iter().enumerate() {
            next[power] += coefficient * constant;
            next[power + 1] += coefficient * slope;
        }
        coefficients = next;
    }
    let (mut moment, mut total) = (1.0, 0.0);
    for (power, coefficient) in coefficients.iter().enumerate() {
        if power > 0 {
            #[allow(clippy::cast_precision_loss)]
            let power = power as f64;
            moment *= power / epsilon;
        }
        total += coefficient * moment;
    }
    total
}
