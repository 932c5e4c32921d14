//! The staircase profile of the joint law: `P(z) ∝ exp(−ε·g(N(z)))` with
//! `N(z) = max_i |z_i|/Δ_i` and `g(N) = ⌊N − γ⌋ + 1`, a step `γ ∈ (0, 1]` (see `PRIVACY.md`).
//!
//! The law is a mixture of uniform laws on open boxes: `g(N) = j` exactly when `N` lies in
//! `[j − 1 + γ, j + γ)`, so `exp(−ε·g(N)) = Σ_{j ≥ 0} (e^(−εj) − e^(−ε(j+1)))·[N < j + γ]`, and
//! box `j` (radius `j + γ` in units of the sensitivities) weighs `e^(−εj)·(j + γ)^d` up to a
//! common factor. The spreads, intervals and medians below are that mixture's (the
//! continuous law's, as the plain joint law's are); the threshold's tail bound is the
//! lattice law's, exactly.

use alloc::vec::Vec;

use crate::calibrate::pad_up;

/// The step `γ = numer/denom` of a staircase, `0 < numer ≤ denom`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Step {
    numer: u32,
    denom: u32,
}

impl Step {
    /// The step `numer/denom`, or `None` unless `0 < numer ≤ denom`.
    #[must_use]
    pub fn new(numer: u32, denom: u32) -> Option<Self> {
        (numer > 0 && numer <= denom).then_some(Self { numer, denom })
    }

    /// `γ` as a fraction `(numer, denom)`.
    #[must_use]
    pub fn parts(self) -> (u32, u32) {
        (self.numer, self.denom)
    }

    /// `γ` in floating point.
    #[must_use]
    pub fn get(self) -> f64 {
        f64::from(self.numer) / f64::from(self.denom)
    }

    /// The shell `g = ⌊|z|/Δ − γ⌋ + 1` of one answer's noise `z` (exact integer arithmetic):
    /// `⌊(|z|·b − a·Δ)/(b·Δ)⌋ + 1` for `γ = a/b`. A draw's law is `∝ e^(−ε·g)` with `g` the
    /// largest of its answers' shells.
    #[must_use]
    pub fn shell(self, z: i64, sensitivity: u64) -> u128 {
        let (a, b) = (i128::from(self.numer), i128::from(self.denom));
        let steps = i128::from(sensitivity);
        let shell = (i128::from(z.unsigned_abs()) * b - a * steps).div_euclid(b * steps) + 1;
        u128::try_from(shell).expect("a shell is at least zero")
    }

    /// `⌈γ·Δ⌉`: the values `|z| < ⌈γ·Δ⌉` make shell 0 of an answer of sensitivity `Δ`.
    fn first_reach(self, sensitivity: u64) -> u128 {
        (u128::from(sensitivity) * u128::from(self.numer)).div_ceil(u128::from(self.denom))
    }
}

/// The steps tried when a plan picks one: twentieths.
const STEP_DENOMINATOR: u32 = 20;

/// The boxes of the staircase's mixture in units of the sensitivities: `(radius, weight)`,
/// weights summing to one, until the rest weighs under `1e-15`.
fn boxes(dimension: usize, epsilon: f64, step: f64) -> Vec<(f64, f64)> {
    #[allow(clippy::cast_possible_wrap, clippy::cast_possible_truncation)]
    let d = dimension as i32;
    let mut boxes = Vec::new();
    let mut j = 0.0_f64;
    loop {
        let radius = j + step;
        let weight = libm::exp(-epsilon * j) * libm::pow(radius, f64::from(d));
        boxes.push((radius, weight));
        // The rest beyond falls at least geometrically once the power's growth is spent.
        if j * epsilon > f64::from(d) + 40.0 && weight < 1e-17 * boxes[0].1.max(1e-300) {
            break;
        }
        j += 1.0;
        if j > 1e6 {
            break;
        }
    }
    let total: f64 = boxes.iter().map(|(_, weight)| weight).sum();
    boxes
        .into_iter()
        .map(|(radius, weight)| (radius, weight / total))
        .collect()
}

/// The plain joint law as a fine mixture of boxes: radius `R ~ Gamma(d + 1)/ε`, on a grid
/// (for comparisons only: its closed forms are in the parent module).
fn plain_boxes(dimension: usize, epsilon: f64) -> Vec<(f64, f64)> {
    #[allow(clippy::cast_possible_wrap, clippy::cast_possible_truncation)]
    let d = dimension as i32;
    let width = 0.01 / epsilon;
    let mut boxes: Vec<(f64, f64)> = (0..8_000)
        .map(|i| {
            let radius = (f64::from(i) + 0.5) * width;
            (
                radius,
                libm::pow(radius * epsilon, f64::from(d)) * libm::exp(-radius * epsilon),
            )
        })
        .collect();
    let total: f64 = boxes.iter().map(|(_, weight)| weight).sum();
    for (_, weight) in &mut boxes {
        *weight /= total;
    }
    boxes
}

/// `P(|R·U| > x)` for one coordinate (`U` uniform on `[−1, 1]`): `Σ w·(1 − x/r)₊`.
fn coordinate_tail(boxes: &[(f64, f64)], x: f64) -> f64 {
    boxes
        .iter()
        .filter(|(radius, _)| *radius > x)
        .map(|(radius, weight)| weight * (1.0 - x / radius))
        .sum()
}

/// `P(|R·(U₁ + U₂)| > x)` for the sum of two coordinates at equal sensitivities:
/// `Σ w·(1 − x/2r)₊²`.
fn pair_tail(boxes: &[(f64, f64)], x: f64) -> f64 {
    boxes
        .iter()
        .filter(|(radius, _)| 2.0 * radius > x)
        .map(|(radius, weight)| weight * (1.0 - x / (2.0 * radius)).powi(2))
        .sum()
}

/// The `x` with `tail(x) = alpha` (bisection; tails fall in `x`).
pub(super) fn quantile(tail: impl Fn(f64) -> f64, alpha: f64) -> f64 {
    let (mut low, mut high) = (0.0, 1.0);
    while tail(high) > alpha {
        high *= 2.0;
    }
    for _ in 0..60 {
        let middle = 0.5 * (low + high);
        if tail(middle) > alpha {
            low = middle;
        } else {
            high = middle;
        }
    }
    high
}

/// `E[R²]/3`: a coordinate's variance, in units of its sensitivity squared.
fn variance(boxes: &[(f64, f64)]) -> f64 {
    boxes
        .iter()
        .map(|(radius, weight)| weight * radius * radius)
        .sum::<f64>()
        / 3.0
}

/// One coordinate of a staircase's mixture, in units of its sensitivity.
#[derive(Debug, Clone, PartialEq)]
pub(super) struct Profile {
    boxes: Vec<(f64, f64)>,
}

impl Profile {
    pub(super) fn new(dimension: usize, epsilon: f64, step: Step) -> Self {
        Self {
            boxes: boxes(dimension, epsilon, step.get()),
        }
    }

    pub(super) fn std_dev(&self) -> f64 {
        libm::sqrt(variance(&self.boxes))
    }

    /// `P(|z| > x)`, `x` in units of the sensitivity.
    pub(super) fn tail(&self, x: f64) -> f64 {
        coordinate_tail(&self.boxes, x)
    }

    /// The `x` with `P(|z| > x) = alpha`.
    pub(super) fn quantile(&self, alpha: f64) -> f64 {
        quantile(|x| self.tail(x), alpha)
    }
}

/// The step that gives `dimension` answers drawn together at `epsilon` the lowest median
/// errors, or `None` where no step beats the plain joint law by 1%.
///
/// Judged on the continuous laws, in units of the sensitivities (so the choice depends on
/// the dimension and ε alone, never on data): the median of one coordinate and of the sum
/// of two (a sum derived from a count and a centred sum moves with both), relative to the
/// plain law's, added. A step is kept only where neither median nor the deviation rises.
/// The gain grows with ε per group: at two answers, none below about 0.7; at 1.33, 5% off
/// each median (γ = 0.7); at 3, a third (γ = 0.3).
#[must_use]
pub fn best_step(dimension: usize, epsilon: f64) -> Option<Step> {
    if dimension == 0 || !epsilon.is_finite() || epsilon < 0.5 {
        return None;
    }
    let plain = plain_boxes(dimension, epsilon);
    let plain_median = quantile(|x| coordinate_tail(&plain, x), 0.5);
    let plain_pair = quantile(|x| pair_tail(&plain, x), 0.5);
    #[allow(clippy::cast_precision_loss)]
    let d = dimension as f64;
    let plain_variance = (d + 1.0) * (d + 2.0) / 3.0 / (epsilon * epsilon);
    let mut best: Option<(f64, Step)> = None;
    for numer in 1..=STEP_DENOMINATOR {
        let step = Step::new(numer, STEP_DENOMINATOR).expect("a step in (0, 1]");
        let boxes = boxes(dimension, epsilon, step.get());
        let median = quantile(|x| coordinate_tail(&boxes, x), 0.5) / plain_median;
        let pair = quantile(|x| pair_tail(&boxes, x), 0.5) / plain_pair;
        if median > 1.0 || pair > 1.0 || variance(&boxes) > plain_variance {
            continue;
        }
        let score = median + pair;
        if score < 2.0 * 0.99 && best.is_none_or(|(least, _)| score < least) {
            best = Some((score, step));
        }
    }
    best.map(|(_, step)| step)
}

/// An upper bound on `P[z_own ≥ m]` for a two-answer staircase on the lattice, in closed
/// form (see `PRIVACY.md` of the threshold): `own` and `other` are the answers'
/// sensitivities in steps.
///
/// With `q = e^(−ε)`, `c = ⌈γΔ⌉` per answer, an answer has `2c − 1` values in shell 0 and
/// `2Δ` in every shell `j ≥ 1`. Summed over the other answer, the weight of an own value in
/// shell `J` is `q^J·(A + B·J)` with `A = 2c_other − 1 + 2Δ_other·q/(1 − q)` and
/// `B = 2Δ_other`. The normaliser is `(2c_own − 1)·A + 2Δ_own·(A·q/(1 − q) + B·q/(1 − q)²)`;
/// the tail from `m ≥ 1`, in shell `K`, is
/// `q^K·[(KΔ_own + c_own − m)(A + BK) + Δ_own·(q(A + B(K + 1))/(1 − q) + B·q²/(1 − q)²)]`.
/// Computed in floating point (the power `q^K` as `exp(−εK)`) and padded by `1e-9`
/// relatively, far above the rounding of the twenty-odd operations (each a few ulps; the
/// exponent's rounding costs `εK·2^-53`, under `1e-13` down to `e^(−700)`).
pub(super) fn tail_bound(
    epsilon: f64,
    step: Step,
    own: u64,
    other: u64,
) -> impl Fn(i64) -> f64 + use<> {
    let q = libm::exp(-epsilon);
    let one_minus_q = -libm::expm1(-epsilon);
    #[allow(clippy::cast_precision_loss)]
    let (own_f, other_f) = (own as f64, other as f64);
    #[allow(clippy::cast_precision_loss)]
    let (c_own, c_other) = (step.first_reach(own) as f64, step.first_reach(other) as f64);
    let a = 2.0 * c_other - 1.0 + 2.0 * other_f * q / one_minus_q;
    let b = 2.0 * other_f;
    let normaliser = (2.0 * c_own - 1.0) * a
        + 2.0 * own_f * (a * q / one_minus_q + b * q / (one_minus_q * one_minus_q));
    move |m: i64| -> f64 {
        if m <= 0 {
            return 1.0;
        }
        let shell = step.shell(m, own);
        #[allow(clippy::cast_precision_loss)]
        let k = shell as f64;
        #[allow(clippy::cast_precision_loss)]
        let left_in_shell =
            (shell * u128::from(own) + step.first_reach(own) - u128::from(m.unsigned_abs())) as f64;
        let bracket = left_in_shell * (a + b * k)
            + own_f
                * (q * (a + b * (k + 1.0)) / one_minus_q + b * q * q / (one_minus_q * one_minus_q));
        // In logarithms, so that `q^K` never underflows: below `e^(−700)` (where the bound
        // would reach subnormal numbers, whose rounding the margin does not cover) the bound
        // is `e^(−699)`, above the tail by far more than the logarithm's rounding.
        let log_tail = -epsilon * k + libm::log(bracket) - libm::log(normaliser);
        if log_tail < -700.0 {
            return libm::exp(-699.0);
        }
        pad_up(libm::exp(log_tail) * (1.0 + 1e-9)).min(1.0)
    }
}
