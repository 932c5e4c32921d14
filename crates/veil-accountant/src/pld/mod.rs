//! Privacy loss distributions (PLD), discretised pessimistically and composed by FFT.
//!
//! A mechanism's privacy loss on a pair of neighbouring inputs is `L = ln(P(o) / Q(o))`
//! with `o ~ P`. Its distribution determines the mechanism's whole privacy curve,
//! `δ(ε) = E[(1 - e^(ε - L))+] + P[L = ∞]`, and composition adds independent losses, so
//! composing mechanisms convolves their PLDs (Koskela et al. 2020; Doroshenko et al. 2022).
//!
//! **Discretisation (connect the dots).** Losses live on a grid `{i·h}`. The mass of `P`
//! and of `Q` in each interval `(i·h, (i+1)·h]` is split onto its two end points so that
//! both masses are kept (Doroshenko, Ghazi, Kamath, Kumar and Manurangsi 2022). The
//! resulting pair dominates the mechanism's in every hockey-stick divergence (the chord
//! of a convex curve lies above it), so every composition computed from it is an upper
//! bound, and the error is second order in `h` instead of the `h/2` per mechanism of
//! rounding losses up. Interval edges sit a hair (`h·1e-7`) below the grid points so
//! that a loss computed a few ulps too low still lands on the grid point above it.
//!
//! **Pessimism everywhere else.** Masses are padded up for the floating-point error of
//! the CDFs; the lower tail beyond `tail_mass` is moved *up* to the lowest kept grid
//! point, the upper tail to `+∞`; after each FFT convolution negative values are set to
//! zero and a bound on the FFT's rounding error (√N · 8u·log₂N · norms) is added to the
//! mass at `+∞`. Each of these only moves loss upward or adds mass, which can only raise
//! `δ(ε)` of any composition.
//!
//! One file on purpose: discretisation, composition and the conversion back to (ε, δ) carry
//! one soundness argument (pessimistic at every step) that is checked as a whole.

use rustfft::FftPlanner;
use rustfft::num_complex::Complex;
use veil_core::PrivacyLoss;
use veil_core::special::normal_sf;

use crate::numeric::{div_up, log_mix, mul_down};
use crate::{AccountantError, MechanismProfile};

/// Which way round the neighbouring datasets are: `Remove` compares the larger dataset
/// (`P`) with the one missing a record (`Q`); `Add` the other way. Symmetric mechanisms
/// have the same PLD both ways.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Direction {
    Remove,
    Add,
}

/// A discretised PLD: `masses[i]` at loss `(offset + i)·step`, plus `infinity` at `+∞`.
/// Masses may add up to slightly more than 1 (padding); that only raises `δ(ε)`.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Pld {
    step: f64,
    offset: i64,
    masses: Vec<f64>,
    infinity: f64,
}

/// `∫_m^∞ exp(-x²/(2σ²)) dx = σ·sqrt(π/2)·erfc(m / (σ√2))`, padded up.
fn gaussian_integral_above(m: f64, sigma: f64) -> f64 {
    let value = sigma * (core::f64::consts::PI / 2.0).sqrt() * 2.0 * normal_sf(m / sigma);
    (value * (1.0 + 1e-12)).next_up()
}

/// Compensated summation (Neumaier 1974): the error does not grow with the number of
/// terms.
#[derive(Debug, Clone, Copy, Default)]
struct Neumaier {
    sum: f64,
    compensation: f64,
}

impl Neumaier {
    fn add(&mut self, value: f64) {
        let total = self.sum + value;
        if self.sum.abs() >= value.abs() {
            self.compensation += (self.sum - total) + value;
        } else {
            self.compensation += (value - total) + self.sum;
        }
        self.sum = total;
    }

    fn value(self) -> f64 {
        self.sum + self.compensation
    }
}

/// `(Φ(z), 1 - Φ(z))` from one `erfc`: the smaller one directly, the other as its
/// complement (no cancellation: the complement is at least 1/2).
fn normal_pair(z: f64) -> (f64, f64) {
    if z >= 0.0 {
        let upper = normal_sf(z);
        (1.0 - upper, upper)
    } else {
        let lower = normal_sf(-z);
        (lower, 1.0 - lower)
    }
}

/// Products `len(a)·len(b)` up to which a convolution is direct (exact up to relative
/// rounding) rather than by FFT.
const DIRECT_LIMIT: usize = 1 << 16;

/// The same limit inside self-composition. There the FFT's error bound, folded to `+∞`,
/// is multiplied by how often the power it belongs to is used (up to `times/2`), so the
/// early squarings are worth doing exactly.
const DIRECT_LIMIT_SELF: usize = 1 << 21;

/// Models with a privacy loss CDF under `P` and under `Q`.
#[derive(Debug, Clone)]
enum Model {
    /// `L ~ N(μ, 2μ)` under `P`, `N(-μ, 2μ)` under `Q`.
    Gaussian { mu: f64 },
    /// The continuous Laplace with `ε₀ = Δ/b`.
    Laplace { epsilon: f64 },
    /// The discrete Laplace of scale `t` with integer sensitivity `Δ`.
    DiscreteLaplace { scale: f64, sensitivity: f64 },
    /// The discrete Gaussian with integer sensitivity `Δ`.
    DiscreteGaussian {
        sigma: f64,
        sensitivity: f64,
        tail: DiscreteGaussianTail,
    },
    /// `P = (1-q)·N(0,σ²) + q·N(1,σ²)`, `Q = N(0,σ²)`.
    SubsampledRemove { sigma: f64, rate: f64 },
    /// `P = N(0,σ²)`, `Q = (1-q)·N(0,σ²) + q·N(1,σ²)`.
    SubsampledAdd { sigma: f64, rate: f64 },
}

/// `P[Y >= m]` for `Y` a discrete Gaussian: an exact table for small σ, the midpoint rule
/// (relative error below `relative_error`) for large σ.
#[derive(Debug, Clone)]
struct DiscreteGaussianTail {
    sigma: f64,
    /// `suffix[y] = Σ_{z >= y} exp(-z²/2σ²) / Z` for `y` in `0..suffix.len()` (small σ).
    suffix: Vec<f64>,
}

/// σ above which the discrete Gaussian's sums are replaced by integrals.
const TABLE_SIGMA_LIMIT: f64 = 4096.0;

impl DiscreteGaussianTail {
    fn new(sigma: f64) -> Self {
        if sigma > TABLE_SIGMA_LIMIT {
            return Self {
                sigma,
                suffix: Vec::new(),
            };
        }
        // The table reaches 10σ, past the 1e-15 tails that PLDs keep (about 8σ); the
        // weights beyond it are bounded by their integral and added to every entry, so
        // each entry is an upper bound and differences of entries are exact sums.
        #[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss)]
        let reach = (10.0 * sigma + 45.0) as usize;
        #[allow(clippy::cast_precision_loss)]
        let beyond = gaussian_integral_above(reach as f64, sigma);
        let mut suffix = vec![beyond; reach + 2];
        // Compensated (Neumaier) summation from the smallest term up: each suffix sum is
        // accurate to a few ulps however many terms it has.
        let mut sum = Neumaier::default();
        sum.add(beyond);
        for y in (0..=reach).rev() {
            #[allow(clippy::cast_precision_loss)]
            let y_f = y as f64;
            sum.add((-y_f * y_f / (2.0 * sigma * sigma)).exp());
            suffix[y] = sum.value();
        }
        // Z = w(0) + 2·Σ_{y>=1} w(y); the terms beyond `reach` are below e^-1000.
        let normaliser = suffix[0] + suffix[1];
        for value in &mut suffix {
            *value /= normaliser;
        }
        Self { sigma, suffix }
    }

    /// A bound on the relative error of an interval's mass computed from `at_least`.
    fn relative_error(&self) -> f64 {
        if self.suffix.is_empty() {
            // Midpoint rule on each unit interval: |error| <= max|w''| / 24 per term, and
            // |w''| <= w·(1 + x²/σ²)/σ² with |x| <= 46σ inside the bracket; doubled.
            (1.0 + 46.0 * 46.0) / (12.0 * self.sigma * self.sigma)
        } else {
            0.0
        }
    }

    /// `P[Y >= m]` for an integer-valued `m`.
    fn at_least(&self, m: f64) -> f64 {
        if m <= 0.0 {
            return 1.0 - self.at_least(1.0 - m);
        }
        if self.suffix.is_empty() {
            return normal_sf((m - 0.5) / self.sigma);
        }
        #[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss)]
        let index = m as usize;
        // Past the table, its last entry bounds the tail from above.
        self.suffix
            .get(index)
            .or(self.suffix.last())
            .copied()
            .unwrap_or(0.0)
    }
}

impl Model {
    /// `(P[L <= t], P[L > t], Q[L <= t], Q[L > t])`.
    fn cdfs(&self, t: f64) -> [f64; 4] {
        match *self {
            Self::Gaussian { mu } => {
                let sd = (2.0 * mu).sqrt();
                let (p_le, p_gt) = normal_pair((t - mu) / sd);
                let (q_le, q_gt) = normal_pair((t + mu) / sd);
                [p_le, p_gt, q_le, q_gt]
            }
            Self::Laplace { epsilon } => {
                if t < -epsilon {
                    [0.0, 1.0, 0.0, 1.0]
                } else if t < epsilon {
                    let p_le = 0.5 * (-(epsilon - t) / 2.0).exp();
                    let q_gt = 0.5 * (-(epsilon + t) / 2.0).exp();
                    [p_le, 1.0 - p_le, 1.0 - q_gt, q_gt]
                } else {
                    [1.0, 0.0, 1.0, 0.0]
                }
            }
            Self::DiscreteLaplace { scale, sensitivity } => {
                let top = sensitivity / scale;
                if t < -top {
                    return [0.0, 1.0, 0.0, 1.0];
                }
                if t >= top {
                    return [1.0, 0.0, 1.0, 0.0];
                }
                // L(x) <= t  <=>  x >= m, with 1 <= m <= Δ.
                let m = ((sensitivity - t * scale) / 2.0)
                    .ceil()
                    .clamp(1.0, sensitivity);
                let ratio_plus_one = 1.0 + (-1.0 / scale).exp();
                let p_le = (-m / scale).exp() / ratio_plus_one;
                let q_gt = (-(sensitivity + 1.0 - m) / scale).exp() / ratio_plus_one;
                [p_le, 1.0 - p_le, 1.0 - q_gt, q_gt]
            }
            Self::DiscreteGaussian {
                sigma,
                sensitivity,
                ref tail,
            } => {
                // L(x) = (Δ² - 2xΔ)/(2σ²) <= t  <=>  x >= m.
                let m = (sensitivity / 2.0 - sigma * sigma * t / sensitivity).ceil();
                [
                    tail.at_least(m),
                    tail.at_least(1.0 - m),
                    tail.at_least(m - sensitivity),
                    tail.at_least(sensitivity + 1.0 - m),
                ]
            }
            Self::SubsampledRemove { sigma, rate } => {
                // L(x) = ln((1-q) + q·e^((2x-1)/2σ²)) is increasing; L <= t <=> x <= x(t).
                let shifted = t.exp_m1() + rate;
                if shifted <= 0.0 {
                    return [0.0, 1.0, 0.0, 1.0];
                }
                let x = sigma * sigma * (shifted.ln() - rate.ln()) + 0.5;
                let (le0, gt0) = normal_pair(x / sigma);
                let (le1, gt1) = normal_pair((x - 1.0) / sigma);
                [
                    (1.0 - rate) * le0 + rate * le1,
                    (1.0 - rate) * gt0 + rate * gt1,
                    le0,
                    gt0,
                ]
            }
            Self::SubsampledAdd { sigma, rate } => {
                // L(x) = -ln((1-q) + q·e^((2x-1)/2σ²)) is decreasing; L <= t <=> x >= x(t).
                let shifted = (-t).exp_m1() + rate;
                if shifted <= 0.0 {
                    return [1.0, 0.0, 1.0, 0.0];
                }
                let x = sigma * sigma * (shifted.ln() - rate.ln()) + 0.5;
                let (le0, gt0) = normal_pair(x / sigma);
                let (le1, gt1) = normal_pair((x - 1.0) / sigma);
                [
                    gt0,
                    le0,
                    (1.0 - rate) * gt0 + rate * gt1,
                    (1.0 - rate) * le0 + rate * le1,
                ]
            }
        }
    }

    /// An interval of losses outside which each tail has negligible mass (< e^-1000).
    fn bracket(&self) -> (f64, f64) {
        match *self {
            Self::Gaussian { mu } => {
                let sd = (2.0 * mu).sqrt();
                (mu - 46.0 * sd, mu + 46.0 * sd)
            }
            Self::Laplace { epsilon } => (-epsilon * (1.0 + 1e-9) - 1e-300, epsilon),
            Self::DiscreteLaplace { scale, sensitivity } => {
                let top = sensitivity / scale;
                (-top * (1.0 + 1e-9) - 1e-300, top)
            }
            Self::DiscreteGaussian {
                sigma, sensitivity, ..
            } => {
                let reach = 46.0 * sigma + sensitivity + 1.0;
                let loss = |x: f64| {
                    (sensitivity * sensitivity - 2.0 * x * sensitivity) / (2.0 * sigma * sigma)
                };
                (loss(reach), loss(-reach))
            }
            Self::SubsampledRemove { sigma, rate } => {
                let reach = 46.0 * sigma + 1.0;
                let loss = |x: f64| log_mix(rate, (2.0 * x - 1.0) / (2.0 * sigma * sigma));
                ((-rate).ln_1p() * (1.0 + 1e-9) - 1e-300, loss(reach))
            }
            Self::SubsampledAdd { sigma, rate } => {
                let reach = 46.0 * sigma + 1.0;
                let loss = |x: f64| -log_mix(rate, (2.0 * x - 1.0) / (2.0 * sigma * sigma));
                (loss(reach), -(-rate).ln_1p())
            }
        }
    }

    fn relative_error(&self) -> f64 {
        match self {
            Self::DiscreteGaussian { tail, .. } => tail.relative_error(),
            _ => 0.0,
        }
    }

    /// `(lo, hi)`: `P[L <= lo] <= tail_mass` and `P[L > hi] <= tail_mass`.
    fn range(&self, tail_mass: f64) -> (f64, f64) {
        let (low_end, high_end) = self.bracket();
        // Largest t with P[L <= t] <= tail_mass: keep `low` on the passing side.
        let (mut low, mut high) = (low_end, high_end);
        for _ in 0..200 {
            let middle = 0.5 * (low + high);
            if self.cdfs(middle)[0] <= tail_mass {
                low = middle;
            } else {
                high = middle;
            }
            if high - low <= 1e-12 * (1.0 + high.abs()) {
                break;
            }
        }
        let lo = low;
        // Smallest t with P[L > t] <= tail_mass: keep `high` on the passing side.
        let (mut low, mut high) = (lo, high_end);
        for _ in 0..200 {
            let middle = 0.5 * (low + high);
            if self.cdfs(middle)[1] <= tail_mass {
                high = middle;
            } else {
                low = middle;
            }
            if high - low <= 1e-12 * (1.0 + high.abs()) {
                break;
            }
        }
        (lo, high)
    }
}

/// Absolute padding of an interval mass computed as a difference of two CDF values.
/// libm's `erfc` and `exp` are accurate to about one ulp, but an argument `z` computed
/// with a relative error of a few ulps moves a normal tail by about `z²` times that; the
/// pad covers `|z|` up to about 17, beyond which tails are below 1e-64 and folded away.
fn difference_pad(first: f64, second: f64) -> f64 {
    1e-13 * (first.abs() + second.abs())
}

fn grid_index(value: f64) -> Result<i64, AccountantError> {
    if value.is_finite() && value.abs() < 4e15 {
        #[allow(clippy::cast_possible_truncation)]
        let index = value as i64;
        Ok(index)
    } else {
        Err(AccountantError::NoFiniteEpsilon {
            delta: 0.0,
            reason: format!(
                "the privacy loss range needs {value} grid steps; use a coarser discretisation"
            ),
        })
    }
}

impl Pld {
    /// The PLD of no mechanism: loss 0 with probability 1.
    pub(crate) fn identity(step: f64) -> Self {
        Self {
            step,
            offset: 0,
            masses: vec![1.0],
            infinity: 0.0,
        }
    }

    /// The number of grid points held.
    pub(crate) fn len(&self) -> usize {
        self.masses.len()
    }

    /// The mass at `+∞`.
    pub(crate) fn infinity(&self) -> f64 {
        self.infinity
    }

    /// The PLD of `profile` in `direction` on the grid of step `step`, with tails of mass
    /// `tail_mass` folded pessimistically.
    ///
    /// # Errors
    /// [`AccountantError::Unsupported`] for a mechanism known only by its zCDP ρ;
    /// [`AccountantError::NoFiniteEpsilon`] if the grid would be absurdly large.
    pub(crate) fn for_mechanism(
        profile: &MechanismProfile,
        direction: Direction,
        step: f64,
        tail_mass: f64,
    ) -> Result<Self, AccountantError> {
        if profile.is_free() {
            return Ok(Self::identity(step));
        }
        let model = match *profile {
            MechanismProfile::Gaussian {
                sigma_over_sensitivity,
            }
            | MechanismProfile::SubsampledGaussian {
                sigma_over_sensitivity,
                sampling_rate: 1.0,
            } => Model::Gaussian {
                mu: div_up(
                    1.0,
                    mul_down(2.0 * sigma_over_sensitivity, sigma_over_sensitivity),
                ),
            },
            MechanismProfile::Laplace {
                scale_over_sensitivity,
            } => Model::Laplace {
                epsilon: div_up(1.0, scale_over_sensitivity),
            },
            MechanismProfile::DiscreteLaplace { scale, sensitivity } => {
                #[allow(clippy::cast_precision_loss)]
                let sensitivity = sensitivity as f64;
                Model::DiscreteLaplace { scale, sensitivity }
            }
            MechanismProfile::DiscreteGaussian { sigma, sensitivity } => {
                #[allow(clippy::cast_precision_loss)]
                let sensitivity = sensitivity as f64;
                Model::DiscreteGaussian {
                    sigma,
                    sensitivity,
                    tail: DiscreteGaussianTail::new(sigma),
                }
            }
            MechanismProfile::SubsampledGaussian {
                sigma_over_sensitivity,
                sampling_rate,
            } => match direction {
                Direction::Remove => Model::SubsampledRemove {
                    sigma: sigma_over_sensitivity,
                    rate: sampling_rate,
                },
                Direction::Add => Model::SubsampledAdd {
                    sigma: sigma_over_sensitivity,
                    rate: sampling_rate,
                },
            },
            MechanismProfile::RandomizedResponse { epsilon } => {
                return Self::from_atoms(&two_point(epsilon, 0.0), 0.0, step);
            }
            MechanismProfile::Guarantee(PrivacyLoss::Pure(epsilon)) => {
                return Self::from_atoms(&two_point(epsilon.get(), 0.0), 0.0, step);
            }
            MechanismProfile::Guarantee(PrivacyLoss::Approx(epsilon, delta)) => {
                return Self::from_atoms(&two_point(epsilon.get(), delta.get()), delta.get(), step);
            }
            MechanismProfile::Guarantee(PrivacyLoss::Zcdp(_)) => {
                return Err(AccountantError::Unsupported {
                    method: crate::Method::Pld,
                    mechanism: profile.to_string(),
                    reason: "a mechanism known only by its zCDP ρ has no privacy loss distribution"
                        .to_string(),
                });
            }
        };
        Self::from_model(&model, step, tail_mass)
    }

    fn from_model(model: &Model, step: f64, tail_mass: f64) -> Result<Self, AccountantError> {
        let (lo, hi) = model.range(tail_mass);
        let first = grid_index((lo / step).floor())? - 1;
        let last = grid_index((hi / step).ceil())? + 1;
        let shift = step * 1e-7;
        let relative = model.relative_error();
        #[allow(clippy::cast_precision_loss)]
        let edge = |index: i64| index as f64 * step - shift;
        let count =
            usize::try_from(last - first + 1).map_err(|_| AccountantError::NoFiniteEpsilon {
                delta: 0.0,
                reason: "empty loss range".to_string(),
            })?;
        let mut masses = vec![0.0; count];
        let mut lower = model.cdfs(edge(first));
        // Everything at or below the first edge moves up to the first grid point.
        masses[0] = lower[0] * (1.0 + relative) + difference_pad(lower[0], 0.0);
        let denominator = -(-step).exp_m1();
        for (offset, index) in (first..last).enumerate() {
            let upper = model.cdfs(edge(index + 1));
            let (p, p_pad) = if lower[0] <= 0.5 {
                (upper[0] - lower[0], difference_pad(upper[0], lower[0]))
            } else {
                (lower[1] - upper[1], difference_pad(lower[1], upper[1]))
            };
            let (q, q_pad) = if lower[2] <= 0.5 {
                (upper[2] - lower[2], difference_pad(upper[2], lower[2]))
            } else {
                (lower[3] - upper[3], difference_pad(lower[3], upper[3]))
            };
            let p_high = p.max(0.0) * (1.0 + relative) + p_pad;
            let q_low = (q * (1.0 - relative) - q_pad).max(0.0);
            #[allow(clippy::cast_precision_loss)]
            let low_point = index as f64 * step;
            // Keep P and Q masses: ω_hi = (p - q·e^a) / (1 - e^-h), a = the lower point.
            let upper_share = if low_point > 700.0 {
                p_high
            } else {
                ((p_high - q_low * low_point.exp()) / denominator).clamp(0.0, p_high)
            };
            masses[offset] += p_high - upper_share;
            masses[offset + 1] += upper_share;
            lower = upper;
        }
        let above = model.cdfs(edge(last))[1];
        Ok(Self {
            step,
            offset: first,
            masses,
            infinity: above * (1.0 + relative) + difference_pad(above, 0.0),
        }
        .trimmed())
    }

    /// A PLD with finitely many atoms `(loss, mass)` and `infinity` at `+∞`: each atom is
    /// split onto its two neighbouring grid points keeping its `P` and `Q` masses.
    fn from_atoms(atoms: &[(f64, f64)], infinity: f64, step: f64) -> Result<Self, AccountantError> {
        let mut placed: Vec<(i64, f64)> = Vec::with_capacity(atoms.len() * 2);
        let denominator = -(-step).exp_m1();
        for &(loss, mass) in atoms {
            // A hair above the true loss, so that rounding never moves it down.
            let loss = loss + loss.abs() * 1e-12 + step * 1e-9;
            let low = grid_index((loss / step).floor())?;
            #[allow(clippy::cast_precision_loss)]
            let low_point = low as f64 * step;
            let upper_share = (mass * (-(low_point - loss).exp_m1()) / denominator * (1.0 + 1e-12))
                .clamp(0.0, mass);
            placed.push((low, mass - upper_share));
            placed.push((low + 1, upper_share));
        }
        let first = placed.iter().map(|p| p.0).min().unwrap_or(0);
        let last = placed.iter().map(|p| p.0).max().unwrap_or(0);
        let count = usize::try_from(last - first + 1).unwrap_or(1);
        let mut masses = vec![0.0; count];
        for (index, mass) in placed {
            let slot = usize::try_from(index - first).unwrap_or(0);
            masses[slot] += mass;
        }
        Ok(Self {
            step,
            offset: first,
            masses,
            infinity,
        }
        .trimmed())
    }

    /// Drops zero masses at both ends.
    fn trimmed(mut self) -> Self {
        let leading = self.masses.iter().take_while(|m| **m == 0.0).count();
        if leading == self.masses.len() {
            self.masses = vec![0.0];
            return self;
        }
        let trailing = self.masses.iter().rev().take_while(|m| **m == 0.0).count();
        self.masses.truncate(self.masses.len() - trailing);
        self.masses.drain(..leading);
        self.offset += i64::try_from(leading).unwrap_or(0);
        self
    }

    /// Folds the tails: the lowest masses adding up to at most `tail_mass` move up to the
    /// lowest kept point, the highest ones to `+∞`.
    pub(crate) fn truncate(mut self, tail_mass: f64) -> Self {
        let mut low_sum = 0.0;
        let mut low_count = 0;
        for &mass in &self.masses {
            if low_sum + mass > tail_mass || low_count + 1 >= self.masses.len() {
                break;
            }
            low_sum += mass;
            low_count += 1;
        }
        let mut high_sum = 0.0;
        let mut high_count = 0;
        for &mass in self.masses.iter().rev() {
            if high_sum + mass > tail_mass || low_count + high_count + 1 >= self.masses.len() {
                break;
            }
            high_sum += mass;
            high_count += 1;
        }
        self.masses.truncate(self.masses.len() - high_count);
        self.masses.drain(..low_count);
        if let Some(first) = self.masses.first_mut() {
            *first += low_sum;
        }
        self.offset += i64::try_from(low_count).unwrap_or(0);
        self.infinity += high_sum;
        self.trimmed()
    }

    /// `δ(ε)` of this PLD (an upper bound on the mechanism's, by construction), summed
    /// with compensation and padded up by a relative 1e-12.
    pub(crate) fn delta(&self, epsilon: f64) -> f64 {
        let mut delta = Neumaier::default();
        delta.add(self.infinity);
        for (index, &mass) in self.masses.iter().enumerate() {
            let loss = self.loss_at(index);
            if loss > epsilon {
                delta.add(mass * (-(epsilon - loss).exp_m1()));
            }
        }
        (delta.value() * (1.0 + 1e-12)).min(1.0)
    }

    fn loss_at(&self, index: usize) -> f64 {
        #[allow(clippy::cast_precision_loss, clippy::cast_possible_wrap)]
        let loss = (self.offset + index as i64) as f64 * self.step;
        loss
    }

    /// The smallest `ε >= 0` with `δ(ε) <= delta`, or `None` if the mass at `+∞` exceeds
    /// `delta`. Solved exactly on each interval between grid points, where
    /// `δ(ε) = A - e^ε·B`, with `A` and `B` summed with compensation and `delta` lowered
    /// by a relative 1e-12 to cover their rounding; the result is padded up (relative
    /// 1e-12, absolute 1e-9, which also covers ulp-level errors in the grid's losses over
    /// up to 10⁶ compositions).
    pub(crate) fn epsilon(&self, delta: f64) -> Option<f64> {
        let delta = delta * (1.0 - 1e-12);
        if self.infinity > delta {
            return None;
        }
        // A = mass above ε; B = Σ mass·e^(reference - loss) over the same points, kept
        // relative to a reference loss within 500 of the current one so that no
        // exponential overflows or underflows whatever the size of the losses.
        let mut above_sum = Neumaier::default();
        above_sum.add(self.infinity);
        let mut weighted_sum = Neumaier::default();
        let mut reference = match self.masses.len().checked_sub(1) {
            Some(top) => self.loss_at(top),
            None => return Some(1e-9),
        };
        for index in (0..self.masses.len()).rev() {
            let loss = self.loss_at(index);
            if loss <= 0.0 {
                // δ(0) <= delta already held at the previous point; ε = 0 suffices.
                return Some(1e-9);
            }
            if reference - loss > 500.0 {
                let rebased = weighted_sum.value() * (loss - reference).exp();
                weighted_sum = Neumaier::default();
                weighted_sum.add(rebased);
                reference = loss;
            }
            above_sum.add(self.masses[index]);
            weighted_sum.add(self.masses[index] * (reference - loss).exp());
            // Lowering B by 1e-12 raises δ(ε) above its rounding error.
            let (above, weighted) = (above_sum.value(), weighted_sum.value() * (1.0 - 1e-12));
            let below = if index == 0 {
                0.0
            } else {
                self.loss_at(index - 1).max(0.0)
            };
            let delta_below = above - (below - reference).exp() * weighted;
            if delta_below > delta {
                let epsilon = (reference + ((above - delta) / weighted).ln()).clamp(below, loss);
                return Some(epsilon + epsilon.abs() * 1e-12 + 1e-9);
            }
        }
        Some(1e-9)
    }

    /// The composition of `self` with `other` (same grid step).
    pub(crate) fn compose(&self, other: &Self, planner: &mut FftPlanner<f64>) -> Self {
        self.compose_with_limit(other, planner, DIRECT_LIMIT)
    }

    fn compose_with_limit(
        &self,
        other: &Self,
        planner: &mut FftPlanner<f64>,
        direct_limit: usize,
    ) -> Self {
        let total_self: f64 = self.masses.iter().sum::<f64>() + self.infinity;
        let total_other: f64 = other.masses.iter().sum::<f64>() + other.infinity;
        let infinity = self.infinity * total_other + other.infinity * total_self
            - self.infinity * other.infinity;
        let (masses, error) = convolve(&self.masses, &other.masses, planner, direct_limit);
        Self {
            step: self.step,
            offset: self.offset + other.offset,
            masses,
            infinity: infinity.max(self.infinity).max(other.infinity) + error,
        }
        .trimmed()
    }

    /// `self` composed with itself `times` times, by repeated squaring, folding tails of
    /// `tail_mass` after each step. Mass folded to `+∞` in a partial power is multiplied
    /// by how often that power is used, so the total at `+∞` grows to about
    /// `2·times·tail_mass` (plus the FFT error bounds, likewise): fine up to millions of
    /// runs; past that the final ε check reports a δ too small to reach, and `Best`
    /// answers from RDP and zCDP.
    pub(crate) fn self_compose(
        &self,
        times: u64,
        tail_mass: f64,
        planner: &mut FftPlanner<f64>,
    ) -> Self {
        let mut result = Self::identity(self.step);
        let mut base = self.clone();
        let mut remaining = times;
        while remaining > 0 {
            if remaining & 1 == 1 {
                result = result
                    .compose_with_limit(&base, planner, DIRECT_LIMIT_SELF)
                    .truncate(tail_mass);
            }
            remaining >>= 1;
            if remaining > 0 {
                base = base
                    .compose_with_limit(&base, planner, DIRECT_LIMIT_SELF)
                    .truncate(tail_mass);
            }
        }
        result
    }
}

/// Two atoms `±ε` of randomized response, scaled by `1 - δ`: the PLD that dominates
/// every (ε, δ)-DP mechanism (Kairouz, Oh and Viswanath 2015).
fn two_point(epsilon: f64, delta: f64) -> [(f64, f64); 2] {
    let high = (1.0 - delta) / (1.0 + (-epsilon).exp());
    let low = (1.0 - delta) / (1.0 + epsilon.exp());
    [(epsilon, high), (-epsilon, low)]
}

/// The convolution of two non-negative sequences, and a bound on the total mass its
/// floating-point error could have removed (to be added at `+∞`).
fn convolve(
    first: &[f64],
    second: &[f64],
    planner: &mut FftPlanner<f64>,
    direct_limit: usize,
) -> (Vec<f64>, f64) {
    let length = first.len() + second.len() - 1;
    let shorter = first.len().min(second.len());
    if shorter <= 128 || first.len().saturating_mul(second.len()) <= direct_limit {
        let mut out = vec![0.0; length];
        for (i, &a) in first.iter().enumerate() {
            if a == 0.0 {
                continue;
            }
            for (j, &b) in second.iter().enumerate() {
                out[i + j] += a * b;
            }
        }
        // Sums of at most `shorter` non-negative products: relative error < shorter·u.
        #[allow(clippy::cast_precision_loss)]
        let factor = 1.0 + 2.3e-16 * (shorter as f64 + 2.0);
        for value in &mut out {
            *value *= factor;
        }
        return (out, 0.0);
    }
    let size = length.next_power_of_two();
    let forward = planner.plan_fft_forward(size);
    let inverse = planner.plan_fft_inverse(size);
    let mut a: Vec<Complex<f64>> = first.iter().map(|&x| Complex::new(x, 0.0)).collect();
    a.resize(size, Complex::new(0.0, 0.0));
    let mut b: Vec<Complex<f64>> = second.iter().map(|&x| Complex::new(x, 0.0)).collect();
    b.resize(size, Complex::new(0.0, 0.0));
    forward.process(&mut a);
    forward.process(&mut b);
    for (x, y) in a.iter_mut().zip(&b) {
        *x *= *y;
    }
    inverse.process(&mut a);
    #[allow(clippy::cast_precision_loss)]
    let scale = 1.0 / size as f64;
    let out: Vec<f64> = a[..length]
        .iter()
        .map(|c| (c.re * scale).max(0.0))
        .collect();
    let norm1 = |v: &[f64]| v.iter().sum::<f64>();
    let norm2 = |v: &[f64]| v.iter().map(|x| x * x).sum::<f64>().sqrt();
    #[allow(clippy::cast_precision_loss)]
    let (n, log_n) = (size as f64, f64::from(size.trailing_zeros()));
    // ‖error‖₂ <= 8u·log₂N·(‖a‖₁‖b‖₂ + ‖a‖₂‖b‖₁ + ‖a*b‖₂); Σ|error| <= √N·‖error‖₂.
    let bound = n.sqrt()
        * 8.0
        * 1.12e-16
        * log_n
        * (norm1(first) * norm2(second) + norm2(first) * norm1(second) + norm2(&out));
    (out, bound)
}

#[cfg(test)]
mod tests;
