//! The staircase profile of the joint law: `P(z) ∝ exp(−ε·g(N(z)))` with
//! `N(z) = max_i |z_i|/Δ_i` and `g(N) = ⌊N − γ⌋ + 1`, a step `γ ∈ (0, 1]` (see `PRIVACY.md`).
//!
//! The law is a mixture of uniform laws on boxes: `g(N) = j` exactly when `N` lies in
//! `[j − 1 + γ, j + γ)`, so `exp(−ε·g(N)) = Σ_{j ≥ 0} (e^(−εj) − e^(−ε(j+1)))·[N < j + γ]`; on
//! the lattice box `j` holds `|z_i| ≤ n_i(j) = jΔ_i + ⌈γΔ_i⌉ − 1` and weighs
//! `∝ e^(−εj)·Π_i (2n_i(j) + 1)`. The spreads, intervals and tails below are that lattice
//! mixture's, and the threshold's tail bound is in closed form on the lattice.

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

/// The smallest ε a staircase is built for: below, its mixture would need millions of boxes.
pub(super) const SMALLEST_EPSILON: f64 = 1e-3;

/// The plain joint law as a fine mixture of boxes in units of the sensitivities: radius
/// `R ~ Gamma(d + 1)/ε`, on a grid (for comparisons only: its closed forms are in the parent
/// module).
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

/// `P(|a·U₁ + b·U₂| > x)` for `U₁`, `U₂` independent and uniform on `[−1, 1]`: the tail
/// of a trapezoid, flat to `|a − b|` and falling to zero at `a + b`.
fn trapezoid_tail(a: f64, b: f64, x: f64) -> f64 {
    let (wide, narrow) = if a >= b { (a, b) } else { (b, a) };
    if x <= wide - narrow {
        1.0 - x / wide
    } else if x < wide + narrow {
        (wide + narrow - x) * (wide + narrow - x) / (4.0 * wide * narrow)
    } else {
        0.0
    }
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

/// The staircase's lattice law as a mixture of boxes (see `PRIVACY.md`): box `j` holds,
/// per answer, the values `|z_i| ≤ n_i(j) = j·Δ_i + ⌈γΔ_i⌉ − 1`, uniformly, and weighs
/// `∝ e^(−εj)·Π_i (2n_i(j) + 1)`. Every figure below is the lattice law's, exactly up to
/// floating point (the boxes are summed until the rest weighs under `1e-16`).
#[derive(Debug, Clone, PartialEq)]
pub(super) struct Profile {
    /// `(weight, n_i(j) per answer)`, weights summing to one.
    boxes: Vec<(f64, Vec<f64>)>,
    sensitivities: Vec<f64>,
}

impl Profile {
    pub(super) fn new(sensitivities: &[u64], epsilon: f64, step: Step) -> Self {
        #[allow(clippy::cast_precision_loss)]
        let first: Vec<f64> = sensitivities
            .iter()
            .map(|&steps| step.first_reach(steps) as f64 - 1.0)
            .collect();
        #[allow(clippy::cast_precision_loss)]
        let widths: Vec<f64> = sensitivities.iter().map(|&steps| steps as f64).collect();
        let mut boxes: Vec<(f64, Vec<f64>)> = Vec::new();
        let mut j = 0.0_f64;
        loop {
            let reach: Vec<f64> = first
                .iter()
                .zip(&widths)
                .map(|(first, width)| j * width + first)
                .collect();
            let log_weight =
                -epsilon * j + reach.iter().map(|n| libm::log(2.0 * n + 1.0)).sum::<f64>();
            boxes.push((log_weight, reach));
            // Past the polynomial's growth the weights fall at least geometrically.
            #[allow(clippy::cast_precision_loss)]
            let past = epsilon * j > 2.0 * sensitivities.len() as f64 * libm::log(j + 2.0) + 40.0;
            if past || j > 1e7 {
                break;
            }
            j += 1.0;
        }
        let top = boxes
            .iter()
            .map(|(log_weight, _)| *log_weight)
            .fold(f64::NEG_INFINITY, f64::max);
        let mut total = 0.0;
        for (weight, _) in &mut boxes {
            *weight = libm::exp(*weight - top);
            total += *weight;
        }
        for (weight, _) in &mut boxes {
            *weight /= total;
        }
        Self {
            boxes,
            sensitivities: widths,
        }
    }

    /// Answer `index`'s standard deviation in steps: `Σ w·n(n + 1)/3`, rooted.
    pub(super) fn std_dev(&self, index: usize) -> f64 {
        libm::sqrt(
            self.boxes
                .iter()
                .map(|(weight, reach)| weight * reach[index] * (reach[index] + 1.0) / 3.0)
                .sum(),
        )
    }

    /// `P(|z_index| > h)` on the lattice: `Σ w·2(n − ⌊h⌋)₊/(2n + 1)` (`h ≥ 0`).
    pub(super) fn tail(&self, index: usize, h: f64) -> f64 {
        let h = libm::floor(h.max(0.0));
        self.boxes
            .iter()
            .filter(|(_, reach)| reach[index] > h)
            .map(|(weight, reach)| weight * 2.0 * (reach[index] - h) / (2.0 * reach[index] + 1.0))
            .sum()
    }

    /// The smallest whole `h` with `P(|z_index| > h) ≤ alpha`.
    pub(super) fn half_width(&self, index: usize, alpha: f64) -> f64 {
        let (mut low, mut high) = (0.0_f64, 1.0_f64);
        while self.tail(index, high) > alpha {
            low = high;
            high *= 2.0;
        }
        if self.tail(index, low) <= alpha {
            return low;
        }
        // tail(low) > alpha ≥ tail(high): narrow to neighbours.
        while high - low > 1.0 {
            let middle = libm::floor(0.5 * (low + high));
            if self.tail(index, middle) > alpha {
                low = middle;
            } else {
                high = middle;
            }
        }
        high
    }

    /// The median of `|z_index|/Δ_index` with each lattice value spread over its cell (the
    /// box's values as the continuous uniform on `±(n + ½)`): a proxy that lets steps of one
    /// lattice value not hide differences, for comparing laws.
    fn spread_median(&self, index: usize) -> f64 {
        let width = self.sensitivities[index];
        quantile(
            |x| {
                self.boxes
                    .iter()
                    .map(|(weight, reach)| {
                        let radius = (reach[index] + 0.5) / width;
                        if radius > x {
                            weight * (1.0 - x / radius)
                        } else {
                            0.0
                        }
                    })
                    .sum()
            },
            0.5,
        )
    }

    /// The same for the sum of the first two answers, each in units of its sensitivity.
    fn spread_pair_median(&self) -> f64 {
        let (first, second) = (self.sensitivities[0], self.sensitivities[1]);
        quantile(
            |x| {
                self.boxes
                    .iter()
                    .map(|(weight, reach)| {
                        weight
                            * trapezoid_tail((reach[0] + 0.5) / first, (reach[1] + 0.5) / second, x)
                    })
                    .sum()
            },
            0.5,
        )
    }
}

/// The step that gives answers of these sensitivities, drawn together at `epsilon`, the
/// lowest median errors, or `None` where no step beats the plain joint law by 1%.
///
/// Judged on the lattice laws in units of the sensitivities, so the choice depends on ε and
/// the sensitivities (public bounds) alone, never on data: the median of each answer and of
/// the sum of the first two (a sum derived from a count and a centred sum moves with both),
/// relative to the plain law's, the worst answer's ratio plus the pair's. A step is kept
/// only where no answer's median or deviation rises. The gain grows with ε per group: for
/// a count of 5 rows per unit and a centred sum, none at 1; at 4/3 (γ = 0.7) the answers'
/// medians 0.95 of the plain law's and the pair's 0.95; at 2 (γ = 0.5) 0.81 and 0.87; at 3
/// (γ = 0.3) 0.67 and 0.72.
#[must_use]
pub fn best_step(sensitivities: &[u64], epsilon: f64) -> Option<Step> {
    let dimension = sensitivities.len();
    if dimension < 2 || !epsilon.is_finite() || epsilon < 0.5 {
        return None;
    }
    let plain = plain_boxes(dimension, epsilon);
    let plain_median = quantile(|x| coordinate_tail(&plain, x), 0.5);
    let plain_pair = quantile(
        |x| {
            plain
                .iter()
                .map(|(radius, weight)| weight * trapezoid_tail(*radius, *radius, x))
                .sum()
        },
        0.5,
    );
    #[allow(clippy::cast_precision_loss)]
    let d = dimension as f64;
    let plain_std = libm::sqrt((d + 1.0) * (d + 2.0) / 3.0) / epsilon;
    let mut best: Option<(f64, Step)> = None;
    for numer in 1..=STEP_DENOMINATOR {
        let step = Step::new(numer, STEP_DENOMINATOR).expect("a step in (0, 1]");
        let profile = Profile::new(sensitivities, epsilon, step);
        let mut worst = 0.0_f64;
        let mut wider = false;
        #[allow(clippy::cast_precision_loss)]
        for (index, &steps) in sensitivities.iter().enumerate() {
            worst = worst.max(profile.spread_median(index) / plain_median);
            wider |= profile.std_dev(index) > plain_std * steps as f64;
        }
        let pair = profile.spread_pair_median() / plain_pair;
        if wider || worst > 1.0 || pair > 1.0 {
            continue;
        }
        let score = worst + pair;
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

/// The most answers a [`StaircaseShape`] describes (the engine's joint draws hold up to
/// four).
const SHAPE_ANSWERS: usize = 4;

/// One answer's noise under the staircase law, for accuracy models: the lattice law with
/// each value spread over its cell (box `j` uniform on `±(n(j) + ½)`, which is the lattice
/// law plus an independent uniform on `±½`), in units of the lattice law's standard
/// deviation `σ`: rounding `σ·z` to a whole number of steps gives the lattice law back. Its
/// own variance in these units is `1 + 1/(12σ²)`.
///
/// Every figure is in closed form: with `q = e^(−ε)` and `f_k(j) = 2n_k(j) + 1 =
/// 2Δ_k·j + 2⌈γΔ_k⌉ − 1`, box `j` weighs `q^j·Π_k f_k(j)`, and sums over boxes are
/// `Σ_j q^j·P(j)` for polynomials `P` with non-negative coefficients (no allocation, no
/// cancellation).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct StaircaseShape {
    /// `(2⌈γΔ_k⌉ − 1, 2Δ_k)` per answer: `f_k(j)` as a line in `j`.
    lines: [(f64, f64); SHAPE_ANSWERS],
    dimension: u8,
    index: u8,
    q: f64,
    /// `Σ_j q^j·Π_k f_k(j)`.
    normaliser: f64,
    /// The lattice law's standard deviation, in steps.
    std: f64,
}

impl StaircaseShape {
    pub(super) fn new(
        sensitivities: &[u64],
        epsilon: f64,
        step: Step,
        index: usize,
    ) -> Option<Self> {
        if sensitivities.len() > SHAPE_ANSWERS || index >= sensitivities.len() {
            return None;
        }
        let mut lines = [(1.0, 0.0); SHAPE_ANSWERS];
        for (line, &steps) in lines.iter_mut().zip(sensitivities) {
            #[allow(clippy::cast_precision_loss)]
            let (first, steps) = (step.first_reach(steps) as f64, steps as f64);
            *line = (2.0 * first - 1.0, 2.0 * steps);
        }
        let mut shape = Self {
            lines,
            dimension: u8::try_from(sensitivities.len()).ok()?,
            index: u8::try_from(index).ok()?,
            q: libm::exp(-epsilon),
            normaliser: 1.0,
            std: 1.0,
        };
        shape.normaliser = geometric_product(shape.factors(), shape.q);
        // n(n + 1)/3 = (f² − 1)/12 per box.
        let own = shape.lines[index];
        let mut squared = [(0.0, 0.0); SHAPE_ANSWERS + 2];
        squared[..shape.factors().len()].copy_from_slice(shape.factors());
        squared[shape.factors().len()] = own;
        squared[shape.factors().len() + 1] = own;
        let moment = geometric_product(&squared[..shape.factors().len() + 2], shape.q);
        shape.std = libm::sqrt((moment / shape.normaliser - 1.0) / 12.0);
        Some(shape)
    }

    fn factors(&self) -> &[(f64, f64)] {
        &self.lines[..usize::from(self.dimension)]
    }

    /// `P(|z| > x)`, `x` in units of `σ`: `Σ_{j ≥ j₀} q^j·Π_{k≠i} f_k(j)·(f_i(j) − 2h)` over
    /// the normaliser, `h = x·σ` and `j₀` the first box reaching past `h`.
    #[must_use]
    pub fn tail(&self, x: f64) -> f64 {
        let h = x.max(0.0) * self.std;
        let index = usize::from(self.index);
        let (own, slope) = self.lines[index];
        // f_i(j)/2 > h from j₀ on.
        let first = libm::floor((h - 0.5 * own) / (0.5 * slope)) + 1.0;
        let first = first.max(0.0);
        let mut shifted = [(0.0, 0.0); SHAPE_ANSWERS];
        for (at, &(constant, slope)) in self.factors().iter().enumerate() {
            let constant = constant + slope * first;
            shifted[at] = if at == index {
                ((constant - 2.0 * h).max(0.0), slope)
            } else {
                (constant, slope)
            };
        }
        let factors = &shifted[..self.factors().len()];
        (libm::pow(self.q, first) * geometric_product(factors, self.q) / self.normaliser)
            .clamp(0.0, 1.0)
    }

    /// The mixture's component at cumulative probability `u` (see [`super::Component`]):
    /// the first box whose boxes up to it weigh more than `u`, as a uniform on
    /// `±(n(j) + ½)/σ`.
    #[must_use]
    pub fn component(&self, u: f64) -> super::Component {
        let (own, slope) = self.lines[usize::from(self.index)];
        let (mut cumulative, mut j, mut power) = (0.0, 0.0, 1.0);
        loop {
            let weight = power
                * self
                    .factors()
                    .iter()
                    .map(|(constant, slope)| constant + slope * j)
                    .product::<f64>()
                / self.normaliser;
            cumulative += weight;
            if cumulative > u || weight < 1e-300 || j > 1e7 {
                return super::Component {
                    weight,
                    shift: 0.5 * (own + slope * j) / self.std,
                    scale: 0.0,
                    gamma_shape: 0,
                };
            }
            j += 1.0;
            power *= self.q;
        }
    }
}

/// `Σ_{t ≥ 0} q^t·Π_m (a_m + b_m·t)` for up to six lines with non-negative coefficients:
/// the product's coefficients `c_p` against `S_p = Σ_t t^p·q^t`, which satisfy
/// `S_0 = 1/(1 − q)` and `(1 − q)·S_p = q·Σ_{k<p} C(p, k)·S_k`.
fn geometric_product(lines: &[(f64, f64)], q: f64) -> f64 {
    const MOST: usize = SHAPE_ANSWERS + 3;
    let mut coefficients = [0.0; MOST];
    coefficients[0] = 1.0;
    for (degree, &(constant, slope)) in lines.iter().enumerate() {
        for power in (0..=degree).rev() {
            coefficients[power + 1] += coefficients[power] * slope;
            coefficients[power] *= constant;
        }
    }
    let mut sums = [0.0; MOST];
    sums[0] = 1.0 / (1.0 - q);
    let mut binomials = [0.0; MOST];
    for power in 1..=lines.len() {
        // Row `power` of Pascal's triangle, k < power.
        binomials[power] = 1.0;
        for k in (1..power).rev() {
            binomials[k] += binomials[k - 1];
        }
        binomials[0] = 1.0;
        let mut total = 0.0;
        for k in 0..power {
            total += binomials[k] * sums[k];
        }
        sums[power] = q * total / (1.0 - q);
    }
    coefficients[..=lines.len()]
        .iter()
        .zip(&sums)
        .map(|(coefficient, sum)| coefficient * sum)
        .sum()
}
