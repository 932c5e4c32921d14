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

    /// `ω_i = W_i/Δ_i`.
    pub(super) fn reach(&self) -> &[f64] {
        &self.reach
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
    let coefficients = product_coefficients(factors);
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

/// The coefficients of `Π_j (a_j + b_j·s)` in `s`, lowest power first.
fn product_coefficients(factors: &[(f64, f64)]) -> Vec<f64> {
    let mut coefficients = vec![1.0];
    for &(constant, slope) in factors {
        let mut next = vec![0.0; coefficients.len() + 1];
        for (power, &coefficient) in coefficients.iter().enumerate() {
            next[power] += coefficient * constant;
            next[power + 1] += coefficient * slope;
        }
        coefficients = next;
    }
    coefficients
}

/// The most answers a [`PlateauShape`] describes (the engine's joint draws hold up to four).
const SHAPE_ANSWERS: usize = 4;

/// One answer's noise under the plateau law, scale-free, for models of accuracy (a report's
/// predictions; floating point, never a release): the law of `z_index` in units where its
/// standard deviation is one. At ε = 1 and `Δ_j = 1` the law is a mixture, over
/// `r ~ Exp(1)` weighted by `Π_j (ω_j + r)`, of uniform laws on `[−(ω_i + r), ω_i + r]`,
/// with `ω_j = W_j·ε/Δ_j` (the widths in units of `Δ_j/ε`).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct PlateauShape {
    reach: [f64; SHAPE_ANSWERS],
    dimension: u8,
    index: u8,
    /// The answer's standard deviation at ε = 1 and `Δ = 1`.
    unit_std: f64,
}

impl PlateauShape {
    /// The shape of answer `index` of a plateau law of `widths` in units of `Δ_j/ε`, or
    /// `None` beyond four answers or for an `index` outside them.
    #[must_use]
    pub fn new(reach: &[f64], index: usize) -> Option<Self> {
        if reach.len() > SHAPE_ANSWERS || index >= reach.len() {
            return None;
        }
        let mut fixed = [0.0; SHAPE_ANSWERS];
        fixed[..reach.len()].copy_from_slice(reach);
        let plateau = Self::law(&fixed[..reach.len()]);
        Some(Self {
            reach: fixed,
            dimension: u8::try_from(reach.len()).ok()?,
            index: u8::try_from(index).ok()?,
            unit_std: plateau.unit_std(index),
        })
    }

    fn law(reach: &[f64]) -> Plateau {
        Plateau {
            widths: Vec::new(),
            reach: reach.to_vec(),
            epsilon: 1.0,
        }
    }

    fn reach(&self) -> &[f64] {
        &self.reach[..usize::from(self.dimension)]
    }

    /// `P(|z| > x)` with `x` in standard deviations.
    #[must_use]
    pub fn tail(&self, x: f64) -> f64 {
        Self::law(self.reach()).unit_tail(usize::from(self.index), x * self.unit_std)
    }

    /// The mixture's component at cumulative probability `u` (see [`super::Component`]):
    /// with `G ~ Gamma(k + 1)` in component `k`, `z = (ω_i + G)·U` at ε = 1, in standard
    /// deviations; component `k` weighs `c_k·k!` for the coefficients `c_k` of
    /// `Π_j (ω_j + r)`.
    #[must_use]
    pub fn component(&self, u: f64) -> super::Component {
        let factors: Vec<(f64, f64)> = self.reach().iter().map(|&reach| (reach, 1.0)).collect();
        let coefficients = product_coefficients(&factors);
        let mut factorial = 1.0;
        let weights: Vec<f64> = coefficients
            .iter()
            .enumerate()
            .map(|(power, &coefficient)| {
                if power > 0 {
                    #[allow(clippy::cast_precision_loss)]
                    let power = power as f64;
                    factorial *= power;
                }
                coefficient * factorial
            })
            .collect();
        let total: f64 = weights.iter().sum();
        let mut cumulative = 0.0;
        let chosen = weights
            .iter()
            .position(|weight| {
                cumulative += weight / total;
                cumulative > u
            })
            .unwrap_or(weights.len() - 1);
        super::Component {
            weight: weights[chosen] / total,
            shift: self.reach[usize::from(self.index)] / self.unit_std,
            scale: 1.0 / self.unit_std,
            gamma_shape: chosen + 1,
        }
    }
}
