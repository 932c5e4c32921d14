use alloc::vec::Vec;

use dashu_int::UBig;
use rand_core::{CryptoRng, Rng};

use super::{MechanismKind, Released, ceil_ratio, exact_ratio, noisy_sum};
use crate::sample::{DiscreteLaplace, bernoulli_exp_of};
use crate::{Epsilon, ParamError, PrivacyLoss};

#[cfg(test)]
mod tests;

#[doc = include_str!("PRIVACY.md")]
///
/// # Examples
/// ```
/// use veil_core::{Epsilon, mechanism::JointLaplaceMechanism};
/// let mut rng = veil_testkit::seeded_rng(1);
/// // A count (5 rows per unit) and a centred sum (250 steps per unit), at ε = 1 together.
/// let joint = JointLaplaceMechanism::new(&[5, 250], Epsilon::new(1.0)?)?;
/// let released = joint.release(&[1_000, -20_000], &mut rng);
/// assert_eq!(released.len(), 2);
/// // Each answer's noise: about √(4)·Δ/ε, against √8·Δ/ε for Laplace at half of ε each.
/// assert!((joint.std_dev(0) - 10.0).abs() < 0.01);
/// Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Debug, Clone, PartialEq)]
pub struct JointLaplaceMechanism {
    /// The proposal per answer: the discrete Laplace of scale `t_i = d·Δ_i/ε`.
    proposals: Vec<DiscreteLaplace>,
    /// `|z_i|/t_i = |z_i|·weights[i] / denominator` exactly: with `t_i = a_i/b_i`, the
    /// denominator is `Π a_j` and `weights[i] = b_i·Π_{j≠i} a_j` (fixed per mechanism, so
    /// computed once, not per draw).
    weights: Vec<UBig>,
    denominator: UBig,
    sensitivities: Vec<u64>,
    epsilon: Epsilon,
    /// Per answer: the noise's standard deviation and the half-width of its interval at
    /// `DEFAULT_CONFIDENCE`, in steps.
    std_devs: Vec<f64>,
    half_widths: Vec<f64>,
}

impl JointLaplaceMechanism {
    /// The mechanism for answers that move by at most `sensitivities[i]` steps each between
    /// neighbours, together, at `epsilon`.
    ///
    /// # Errors
    /// [`ParamError::OutOfRange`] without answers or with a sensitivity of zero;
    /// [`ParamError::Invalid`] if a scale does not fit the sampler (above 2^64).
    pub fn new(sensitivities: &[u64], epsilon: Epsilon) -> Result<Self, ParamError> {
        if sensitivities.is_empty() || sensitivities.contains(&0) {
            return Err(ParamError::OutOfRange {
                param: "sensitivities",
                value: 0.0,
                expected: "at least one, each a positive integer number of grid steps",
            });
        }
        let dimension = sensitivities.len() as u64;
        let (epsilon_numer, epsilon_denom) = exact_ratio(epsilon.get())?;
        let proposals = sensitivities
            .iter()
            .map(|&steps| {
                let scale = ceil_ratio(
                    UBig::from(dimension) * UBig::from(steps) * &epsilon_denom,
                    epsilon_numer.clone(),
                )?;
                DiscreteLaplace::new(scale)
            })
            .collect::<Result<Vec<_>, _>>()?;
        let denominator = proposals.iter().fold(UBig::ONE, |product, proposal| {
            product * UBig::from(proposal.scale().numer())
        });
        let weights = proposals
            .iter()
            .map(|proposal| {
                let scale = proposal.scale();
                UBig::from(scale.denom()) * (&denominator / UBig::from(scale.numer()))
            })
            .collect();
        #[allow(clippy::cast_precision_loss)]
        let d = dimension as f64;
        let (unit_std, unit_half_width) = (
            libm::sqrt((d + 1.0) * (d + 2.0) / 3.0),
            unit_quantile(sensitivities.len(), 1.0 - super::DEFAULT_CONFIDENCE),
        );
        let per_unit = |proposal: &DiscreteLaplace| proposal.scale().to_f64_up() / d;
        let std_devs = proposals
            .iter()
            .map(|proposal| crate::rational::next_up(unit_std * per_unit(proposal)))
            .collect();
        let half_widths = proposals
            .iter()
            .map(|proposal| libm::ceil(unit_half_width * per_unit(proposal)))
            .collect();
        Ok(Self {
            proposals,
            weights,
            denominator,
            sensitivities: sensitivities.to_vec(),
            epsilon,
            std_devs,
            half_widths,
        })
    }

    /// The number of answers drawn together.
    #[must_use]
    pub fn dimension(&self) -> usize {
        self.proposals.len()
    }

    /// The sensitivities, in steps.
    #[must_use]
    pub fn sensitivities(&self) -> &[u64] {
        &self.sensitivities
    }

    /// The ε the answers are charged at, together.
    #[must_use]
    pub fn epsilon(&self) -> Epsilon {
        self.epsilon
    }

    /// The loss of one release of every answer: `Pure(ε)`.
    #[must_use]
    pub fn loss(&self) -> PrivacyLoss {
        PrivacyLoss::Pure(self.epsilon)
    }

    /// The standard deviation of answer `index`'s noise, in steps (the continuous law's).
    ///
    /// # Panics
    /// If `index` is not below [`JointLaplaceMechanism::dimension`].
    #[must_use]
    pub fn std_dev(&self, index: usize) -> f64 {
        self.std_devs[index]
    }

    /// Half the width of the interval that holds answer `index`'s noise with probability
    /// `confidence` (clamped into `(0, 1)`), in steps (the continuous law's).
    ///
    /// # Panics
    /// If `index` is not below [`JointLaplaceMechanism::dimension`].
    #[must_use]
    pub fn ci_half_width(&self, index: usize, confidence: f64) -> f64 {
        if confidence.to_bits() == super::DEFAULT_CONFIDENCE.to_bits() {
            return self.half_widths[index];
        }
        #[allow(clippy::cast_precision_loss)]
        let d = self.dimension() as f64;
        let alpha = (1.0 - confidence).clamp(1e-12, 1.0 - 1e-12);
        libm::ceil(
            unit_quantile(self.dimension(), alpha) * self.proposals[index].scale().to_f64_up() / d,
        )
    }

    /// One draw of the joint noise, exactly from `P(z) ∝ exp(−max_i |z_i|·d/t_i)`.
    pub fn sample<R: Rng + CryptoRng + ?Sized>(&self, rng: &mut R) -> Vec<i64> {
        let dimension = UBig::from(self.proposals.len() as u64);
        loop {
            let noise: Vec<i64> = self
                .proposals
                .iter()
                .map(|proposal| proposal.sample(rng))
                .collect();
            // |z_i|/t_i over the common denominator.
            let terms: Vec<UBig> = noise
                .iter()
                .zip(&self.weights)
                .map(|(&z, weight)| UBig::from(z.unsigned_abs()) * weight)
                .collect();
            let largest = terms.iter().max().cloned().unwrap_or(UBig::ZERO);
            let total = terms.iter().fold(UBig::ZERO, |sum, term| sum + term);
            // γ = d·max − Σ ≥ 0, over the common denominator.
            let gamma = &dimension * largest - total;
            if bernoulli_exp_of(rng, &gamma, &self.denominator) {
                return noise;
            }
        }
    }

    /// Adds one draw of the joint noise to `values`, answer by answer.
    ///
    /// # Panics
    /// If `values` does not hold [`JointLaplaceMechanism::dimension`] answers.
    pub fn release<R: Rng + CryptoRng + ?Sized>(
        &self,
        values: &[i64],
        rng: &mut R,
    ) -> Vec<Released<i64>> {
        assert_eq!(
            values.len(),
            self.dimension(),
            "one value per answer of the joint draw"
        );
        let noise = self.sample(rng);
        values
            .iter()
            .zip(noise)
            .enumerate()
            .map(|(index, (&value, noise))| {
                Released::new(
                    noisy_sum(value, noise),
                    MechanismKind::JointLaplace,
                    self.loss(),
                    self.std_devs[index],
                    self.half_widths[index],
                )
            })
            .collect()
    }
}

/// `P(R·U > x)` for `R ~ Gamma(d + 1, 1)` and `U` uniform on `[0, 1]`: the tail of one
/// coordinate's magnitude of the continuous ℓ∞ K-norm law at unit scale. It is
/// `E[(1 − x/R)₊] = Q(d + 1, x) − x·Q(d, x)/d`, `Q` the upper regularized incomplete gamma
/// (`r^(k−1)e^(−r)/Γ(k)` divided by `r` is `k − 1` times smaller than the density of shape
/// `k − 1`).
pub fn unit_tail(dimension: usize, x: f64) -> f64 {
    #[allow(clippy::cast_precision_loss)]
    let d = dimension as f64;
    (gamma_tail(dimension + 1, x) - x * gamma_tail(dimension, x) / d).max(0.0)
}

/// `P(Gamma(shape, 1) > x)` for an integer shape: `e^(−x)·Σ_{j<shape} x^j/j!`.
fn gamma_tail(shape: usize, x: f64) -> f64 {
    let (mut term, mut sum) = (1.0, 1.0);
    for j in 1..shape {
        #[allow(clippy::cast_precision_loss)]
        let j = j as f64;
        term *= x / j;
        sum += term;
    }
    libm::exp(-x) * sum
}

/// The `x` with `P(R·U > x) = alpha` at unit scale (bisection; the tail falls in `x`).
pub fn unit_quantile(dimension: usize, alpha: f64) -> f64 {
    let (mut low, mut high) = (0.0, 1.0);
    while unit_tail(dimension, high) > alpha {
        high *= 2.0;
    }
    for _ in 0..60 {
        let middle = 0.5 * (low + high);
        if unit_tail(dimension, middle) > alpha {
            low = middle;
        } else {
            high = middle;
        }
    }
    high
}
