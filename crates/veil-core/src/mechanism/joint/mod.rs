use alloc::vec::Vec;

use dashu_int::UBig;
use rand_core::{CryptoRng, Rng};

use super::{MechanismKind, Released, ceil_ratio, exact_ratio, noisy_sum};
use crate::calibrate::{pad_down, pad_up};
use crate::sample::{DiscreteLaplace, bernoulli_exp_of};
use crate::{Epsilon, ParamError, PrivacyLoss};

mod plateau;
mod shape;
mod staircase;
#[cfg(test)]
pub(super) mod tests;

use plateau::Plateau;
pub use plateau::PlateauShape;
pub use shape::{AnswerShape, Component};
use staircase::Profile;
pub use staircase::StaircaseShape;
pub use staircase::{Step, best_step};

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
    /// ε as the exact ratio `numer/denom` of its `f64` (a dyadic rational): the scales are
    /// rounded from it, and the shaped laws' exponents use it as it is.
    epsilon_numer: UBig,
    epsilon_denom: UBig,
    /// Per answer: the noise's standard deviation and the half-width of its interval at
    /// `DEFAULT_CONFIDENCE`, in steps.
    std_devs: Vec<f64>,
    half_widths: Vec<f64>,
    /// The staircase's step and its profile, or `None` for the plain law.
    staircase: Option<Staircase>,
    /// The plateau law's widths, or `None` for the plain law.
    plateau: Option<Plateau>,
}

/// A staircase law's step and its lattice profile.
#[derive(Debug, Clone, PartialEq)]
struct Staircase {
    step: Step,
    profile: Profile,
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
            epsilon_numer,
            epsilon_denom,
            std_devs,
            half_widths,
            staircase: None,
            plateau: None,
        })
    }

    /// The staircase law for the same answers: `P(z) ∝ exp(−ε·(⌊max_i |z_i|/Δ_i − γ⌋ + 1))`,
    /// flat on the shells of the box norm, at the step `γ` (see [`best_step`]). ε-DP like the
    /// plain law, with lower median errors at a large ε per draw (`PRIVACY.md`).
    ///
    /// # Errors
    /// As [`JointLaplaceMechanism::new`], and [`ParamError::OutOfRange`] for ε below 0.001.
    pub fn staircase(
        sensitivities: &[u64],
        epsilon: Epsilon,
        step: Step,
    ) -> Result<Self, ParamError> {
        if epsilon.get() < staircase::SMALLEST_EPSILON {
            return Err(ParamError::OutOfRange {
                param: "epsilon",
                value: epsilon.get(),
                expected: "at least 0.001 for a staircase (the plain law serves below)",
            });
        }
        let mut mechanism = Self::new(sensitivities, epsilon)?;
        let profile = Profile::new(sensitivities, epsilon.get(), step);
        for index in 0..sensitivities.len() {
            mechanism.std_devs[index] = crate::rational::next_up(profile.std_dev(index));
            mechanism.half_widths[index] =
                profile.half_width(index, 1.0 - super::DEFAULT_CONFIDENCE);
        }
        mechanism.staircase = Some(Staircase { step, profile });
        Ok(mechanism)
    }

    /// The plateau law for the same answers: `P(z) ∝ exp(−ε·max_i (|z_i| − W_i)₊/Δ_i)`, flat
    /// on the box `|z_i| ≤ W_i` of `widths` (in steps) and falling as the plain law beyond.
    /// ε-DP like the plain law for any widths (`PRIVACY.md`); a width on one answer moves
    /// noise from the others onto it, which a plan weighting the others asks for. Widths of
    /// zero everywhere give the plain law.
    ///
    /// # Errors
    /// As [`JointLaplaceMechanism::new`], and [`ParamError::OutOfRange`] unless there is one
    /// width per answer, each at most `4/ε` sensitivities (wider, the sampler would keep few
    /// draws).
    pub fn plateau(
        sensitivities: &[u64],
        epsilon: Epsilon,
        widths: &[u64],
    ) -> Result<Self, ParamError> {
        let mut mechanism = Self::new(sensitivities, epsilon)?;
        #[allow(clippy::cast_precision_loss)]
        let too_wide = widths.iter().zip(sensitivities).find(|&(&width, &steps)| {
            width as f64 * epsilon.get() > plateau::WIDEST * steps as f64
        });
        if widths.len() != sensitivities.len() || too_wide.is_some() {
            #[allow(clippy::cast_precision_loss)]
            return Err(ParamError::OutOfRange {
                param: "widths",
                value: too_wide.map_or(widths.len() as f64, |(&width, _)| width as f64),
                expected: "one width per answer, each at most 4/ε times its sensitivity",
            });
        }
        if widths.iter().all(|&width| width == 0) {
            return Ok(mechanism);
        }
        let plateau = Plateau::new(widths, sensitivities, epsilon.get());
        for (index, &steps) in sensitivities.iter().enumerate() {
            #[allow(clippy::cast_precision_loss)]
            let steps = steps as f64;
            mechanism.std_devs[index] = crate::rational::next_up(plateau.unit_std(index) * steps);
            mechanism.half_widths[index] =
                libm::ceil(plateau.unit_quantile(index, 1.0 - super::DEFAULT_CONFIDENCE) * steps);
        }
        mechanism.plateau = Some(plateau);
        Ok(mechanism)
    }

    /// Answer `index`'s scale-free shape under the plateau or the staircase law (for
    /// accuracy models), or `None` for the plain law (whose answers have the closed form
    /// [`unit_tail`]) or beyond four answers.
    #[must_use]
    pub fn answer_shape(&self, index: usize) -> Option<AnswerShape> {
        if let Some(staircase) = &self.staircase {
            return StaircaseShape::new(
                &self.sensitivities,
                self.epsilon.get(),
                staircase.step,
                index,
            )
            .map(AnswerShape::Staircase);
        }
        let plateau = self.plateau.as_ref()?;
        let reach: Vec<f64> = plateau
            .reach()
            .iter()
            .map(|&reach| reach * self.epsilon.get())
            .collect();
        PlateauShape::new(&reach, index).map(AnswerShape::Plateau)
    }

    /// The plateau law's widths, in steps, or `None` for another law.
    #[must_use]
    pub fn plateau_widths(&self) -> Option<&[u64]> {
        self.plateau.as_ref().map(Plateau::widths)
    }

    /// The law's exponent at noise `z` for a given `epsilon` (the mechanism's own, or an
    /// audit's claimed one), in floating point (for audits and tests; the sampler's is
    /// exact): `ε·max_i |z_i|/Δ_i`, `ε·g` for the staircase's shell `g`, or
    /// `ε·max_i (|z_i| − W_i)₊/Δ_i` for the plateau law.
    #[must_use]
    pub fn exponent(&self, z: &[i64], epsilon: f64) -> f64 {
        if let Some(staircase) = &self.staircase {
            let shell = z
                .iter()
                .zip(&self.sensitivities)
                .map(|(&z, &steps)| staircase.step.shell(z, steps))
                .max()
                .unwrap_or(0);
            #[allow(clippy::cast_precision_loss)]
            return shell as f64 * epsilon;
        }
        let widths = self.plateau_widths();
        z.iter()
            .zip(&self.sensitivities)
            .enumerate()
            .map(|(index, (&z, &steps))| {
                let width = widths.map_or(0, |widths| widths[index]);
                #[allow(clippy::cast_precision_loss)]
                let exponent =
                    z.unsigned_abs().saturating_sub(width) as f64 * epsilon / steps as f64;
                exponent
            })
            .fold(0.0, f64::max)
    }

    /// Answer `index`'s standard deviation over a Laplace draw's of the same answer at the
    /// same ε (`√2·Δ_i/ε`), for the continuous law: `√((d + 1)(d + 2)/6)` for the plain law
    /// (and the staircase, which a plan judges as the plain law), less on the answers a
    /// plateau law favours.
    #[must_use]
    pub fn relative_std(&self, index: usize) -> f64 {
        #[allow(clippy::cast_precision_loss)]
        let d = self.dimension() as f64;
        match &self.plateau {
            Some(plateau) => {
                plateau.unit_std(index) * self.epsilon.get() / core::f64::consts::SQRT_2
            }
            None => libm::sqrt((d + 1.0) * (d + 2.0) / 6.0),
        }
    }

    /// The staircase's step, or `None` for the plain law.
    #[must_use]
    pub fn step(&self) -> Option<Step> {
        self.staircase.as_ref().map(|staircase| staircase.step)
    }

    /// The law's name in a release: [`MechanismKind::JointLaplace`],
    /// [`MechanismKind::JointStaircase`] or [`MechanismKind::JointPlateau`].
    #[must_use]
    pub fn kind(&self) -> MechanismKind {
        if self.staircase.is_some() {
            MechanismKind::JointStaircase
        } else if self.plateau.is_some() {
            MechanismKind::JointPlateau
        } else {
            MechanismKind::JointLaplace
        }
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

    /// What one unit can lose to this draw in each of the `groups` groups it is in:
    /// `Pure(groups·ε)`, rounded up. A product too large for a finite `f64` is claimed as
    /// the largest ε there is, so that a ledger refuses it rather than charge less.
    #[must_use]
    pub fn loss_over(&self, groups: u64) -> PrivacyLoss {
        #[allow(clippy::cast_precision_loss)]
        let total = (self.epsilon.get() * groups as f64).next_up();
        PrivacyLoss::Pure(
            Epsilon::new(total)
                .unwrap_or_else(|_| Epsilon::new(f64::MAX).expect("f64::MAX is a valid ε")),
        )
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
        let alpha = (1.0 - confidence).clamp(1e-12, 1.0 - 1e-12);
        if let Some(staircase) = &self.staircase {
            return staircase.profile.half_width(index, alpha);
        }
        #[allow(clippy::cast_precision_loss)]
        if let Some(plateau) = &self.plateau {
            return libm::ceil(
                plateau.unit_quantile(index, alpha) * self.sensitivities[index] as f64,
            );
        }
        #[allow(clippy::cast_precision_loss)]
        let d = self.dimension() as f64;
        libm::ceil(
            unit_quantile(self.dimension(), alpha) * self.proposals[index].scale().to_f64_up() / d,
        )
    }

    /// One draw of the joint noise, exactly from `P(z) ∝ exp(−max_i |z_i|·d/t_i)`, or from
    /// the staircase law.
    pub fn sample<R: Rng + CryptoRng + ?Sized>(&self, rng: &mut R) -> Vec<i64> {
        if let Some(staircase) = &self.staircase {
            return self.sample_staircase(staircase, rng);
        }
        if let Some(plateau) = &self.plateau {
            return self.sample_plateau(plateau.widths(), rng);
        }
        let dimension = UBig::from(self.proposals.len() as u64);
        loop {
            let noise = self.propose(rng);
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

    /// One proposal: independent discrete Laplaces at the scales `t_i`.
    fn propose<R: Rng + CryptoRng + ?Sized>(&self, rng: &mut R) -> Vec<i64> {
        self.proposals
            .iter()
            .map(|proposal| proposal.sample(rng))
            .collect()
    }

    /// One draw of the staircase law: the plain law's proposals, kept with probability
    /// `exp(−(ε·(g + γ) − Σ_i |z_i|/t_i))`, `g = ⌊max_i |z_i|/Δ_i − γ⌋ + 1` (`PRIVACY.md`).
    fn sample_staircase<R: Rng + CryptoRng + ?Sized>(
        &self,
        staircase: &Staircase,
        rng: &mut R,
    ) -> Vec<i64> {
        let (step_numer, step_denom) = staircase.step.parts();
        let (step_numer, step_denom) = (UBig::from(step_numer), UBig::from(step_denom));
        // ε·(g + γ) − Σ|z_i|/t_i over the denominator ε_den·γ_den·Π a_j.
        let denominator = &self.epsilon_denom * &step_denom * &self.denominator;
        loop {
            let noise = self.propose(rng);
            let shell = noise
                .iter()
                .zip(&self.sensitivities)
                .map(|(&z, &steps)| staircase.step.shell(z, steps))
                .max()
                .unwrap_or(0);
            let proposed = noise
                .iter()
                .zip(&self.weights)
                .fold(UBig::ZERO, |sum, (&z, weight)| {
                    sum + UBig::from(z.unsigned_abs()) * weight
                });
            let target = &self.epsilon_numer
                * (UBig::from(shell) * &step_denom + &step_numer)
                * &self.denominator;
            // target ≥ the proposal's exponent: Σ|z_i|/t_i ≤ ε·max_i |z_i|/Δ_i < ε·(g + γ).
            let exponent = target - &self.epsilon_denom * &step_denom * proposed;
            if bernoulli_exp_of(rng, &exponent, &denominator) {
                return noise;
            }
        }
    }

    /// One draw of the plateau law: the plain law's proposals, kept with probability
    /// `exp(−x)`, `x = ε·max_i p_i/Δ_i − Σ_i (|z_i| − W_i)/t_i` with `p_i = (|z_i| − W_i)₊`
    /// (`PRIVACY.md`): `x ≥ 0`, since `Σ_i (|z_i| − W_i)/t_i ≤ (ε/d)·Σ_i p_i/Δ_i ≤ ε·max_i
    /// p_i/Δ_i`, and a kept draw has probability `∝ exp(−ε·max_i p_i/Δ_i)`.
    fn sample_plateau<R: Rng + CryptoRng + ?Sized>(&self, widths: &[u64], rng: &mut R) -> Vec<i64> {
        loop {
            let noise = self.propose(rng);
            // The largest p_i/Δ_i, compared exactly (p_i·Δ_j against p_j·Δ_i).
            let (mut reach, mut steps) = (0_u128, 1_u128);
            // Σ_i (|z_i| − W_i)/t_i over `denominator`, in its two signs.
            let (mut above, mut inside) = (UBig::ZERO, UBig::ZERO);
            for ((&z, &width), (&sensitivity, weight)) in noise
                .iter()
                .zip(widths)
                .zip(self.sensitivities.iter().zip(&self.weights))
            {
                let size = z.unsigned_abs();
                if size >= width {
                    let past = u128::from(size - width);
                    if past * steps > reach * u128::from(sensitivity) {
                        (reach, steps) = (past, u128::from(sensitivity));
                    }
                    above += UBig::from(size - width) * weight;
                } else {
                    inside += UBig::from(width - size) * weight;
                }
            }
            // x over the denominator ε_den·Δ*·Π a_j.
            let scale = &self.epsilon_denom * UBig::from(steps);
            let exponent = &self.epsilon_numer * UBig::from(reach) * &self.denominator
                + &scale * inside
                - &scale * above;
            if bernoulli_exp_of(rng, &exponent, &(scale * &self.denominator)) {
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
                    self.kind(),
                    self.loss(),
                    self.std_devs[index],
                    self.half_widths[index],
                )
            })
            .collect()
    }

    /// An upper bound on `P[z_index >= m]` for one draw of a two-answer mechanism, in
    /// floating point with every rounding covered by a margin, for calibrating a threshold
    /// on that answer (see [`crate::mechanism::ThresholdMechanism::on_released`]).
    ///
    /// With `s_i = t_i/2` the law is `P(z) ∝ exp(−max(|z_0|/s_0, |z_1|/s_1))`, so the
    /// weight of `z_own = k` is, with `r = k/s_own`, `n = ⌊r·s_other⌋` and
    /// `q = e^(−1/s_other)`, `w(k) = (2n + 1)·e^(−r) + 2·q^(n+1)/(1 − q)`: the `2n + 1`
    /// values of the other answer at or inside `r`, then its geometric tail beyond. The tail
    /// is `Σ_{k>=m} w(k)` (summed until the rest is below `10^-12` of it, and that rest,
    /// bounded by `Σ_{k>=K} e^(−k/s_own)·(A·k + B)` in closed form, added) over the
    /// normaliser `w(0) + 2·Σ_{k>=1} w(k)` summed without its rest (smaller, so the ratio
    /// is larger). `m <= 0` gives 1.
    ///
    /// # Errors
    /// [`ParamError::Invalid`] unless the mechanism draws two answers, `index` is one of
    /// them, and the answer's scale is at most `2^17` steps (beyond, the sums grow long);
    /// also for the plateau law, whose tail no threshold is calibrated on.
    pub fn marginal_tail_bound(
        &self,
        index: usize,
    ) -> Result<alloc::boxed::Box<dyn Fn(i64) -> f64>, ParamError> {
        if self.dimension() != 2 || index > 1 {
            return Err(ParamError::Invalid {
                param: "joint noise",
                reason: alloc::format!(
                    "a threshold reads one of exactly two joint answers (answer {index} of {})",
                    self.dimension()
                ),
            });
        }
        if self.plateau.is_some() {
            return Err(ParamError::Invalid {
                param: "joint noise",
                reason: "a threshold is not calibrated on the plateau law's tail".into(),
            });
        }
        if let Some(staircase) = &self.staircase {
            let tail = staircase::tail_bound(
                self.epsilon.get(),
                staircase.step,
                self.sensitivities[index],
                self.sensitivities[1 - index],
            );
            return Ok(alloc::boxed::Box::new(tail) as alloc::boxed::Box<dyn Fn(i64) -> f64>);
        }
        let own = self.proposals[index].scale().to_f64_up() / 2.0;
        let other = self.proposals[1 - index].scale().to_f64_up() / 2.0;
        if own > f64::from(1_u32 << 17) {
            return Err(ParamError::Invalid {
                param: "joint noise",
                reason: alloc::format!("a scale of {own} steps is too wide to threshold"),
            });
        }
        let marginal = Marginal::new(own, other);
        let normaliser = marginal.normaliser();
        Ok(alloc::boxed::Box::new(move |m: i64| -> f64 {
            if m <= 0 {
                return 1.0;
            }
            let m = m.unsigned_abs();
            // Far out (a δ below about 1e-250), the closed-form rest bounds the whole tail by
            // itself; summing there would reach subnormal numbers, whose rounding the margins
            // do not cover, and a relative stopping rule that underflows.
            let rest = marginal.rest_from(m);
            let tail = if rest < 1e-250 {
                rest
            } else {
                marginal.tail_sum(m)
            };
            pad_up(tail / normaliser).min(1.0)
        }))
    }

    /// `P[z_index >= m]` for real `m`, from the continuous law with half a step of
    /// continuity correction: for estimates (a passed count's interval, the chance a group
    /// is released), not for calibration.
    #[must_use]
    pub fn marginal_tail_estimate(&self, index: usize, m: f64) -> f64 {
        if let Some(staircase) = &self.staircase {
            // The lattice law's own tail: P[z ≥ m] = ½·P[|z| > m − 1] above zero.
            let m = libm::ceil(m - 1e-9);
            return if m > 0.0 {
                0.5 * staircase.profile.tail(index, m - 1.0)
            } else {
                1.0 - 0.5 * staircase.profile.tail(index, -m)
            };
        }
        let m = libm::ceil(m - 1e-9);
        if let Some(plateau) = &self.plateau {
            #[allow(clippy::cast_precision_loss)]
            let steps = self.sensitivities[index] as f64;
            return if m > 0.0 {
                0.5 * plateau.unit_tail(index, (m - 0.5) / steps)
            } else {
                1.0 - 0.5 * plateau.unit_tail(index, (0.5 - m) / steps)
            };
        }
        #[allow(clippy::cast_precision_loss)]
        let scale = self.proposals[index].scale().to_f64() / self.dimension() as f64;
        if m > 0.0 {
            0.5 * unit_tail(self.dimension(), (m - 0.5) / scale)
        } else {
            1.0 - 0.5 * unit_tail(self.dimension(), (0.5 - m) / scale)
        }
    }
}

/// The weights of one answer of a two-answer joint law (see
/// [`JointLaplaceMechanism::marginal_tail_bound`]).
struct Marginal {
    own: f64,
    other: f64,
    /// `1/(1 − q)` for the other answer's geometric tail, `q = e^(−1/s_other)`.
    geometric: f64,
}

impl Marginal {
    fn new(own: f64, other: f64) -> Self {
        Self {
            own,
            other,
            geometric: 1.0 / -libm::expm1(-1.0 / other),
        }
    }

    /// `w(k)`, unnormalised.
    fn weight(&self, k: u64) -> f64 {
        #[allow(clippy::cast_precision_loss)]
        let r = k as f64 / self.own;
        let inside = libm::floor(r * self.other);
        (2.0 * inside + 1.0) * libm::exp(-r)
            + 2.0 * libm::exp(-(inside + 1.0) / self.other) * self.geometric
    }

    /// A bound on `Σ_{k>=from} w(k)`: `w(k) <= e^(−k/s_own)·(A·k + B)` with
    /// `A = 2·s_other/s_own` and `B = 1 + 2/(1 − q)` (the other answer's values beyond `r`
    /// weigh at most `e^(−r)` times its geometric series).
    fn rest_from(&self, from: u64) -> f64 {
        let (a, b) = (2.0 * self.other / self.own, 1.0 + 2.0 * self.geometric);
        let p = libm::exp(-1.0 / self.own);
        let one_minus_p = -libm::expm1(-1.0 / self.own);
        #[allow(clippy::cast_precision_loss)]
        let k = from as f64;
        let head = libm::exp(-k / self.own);
        pad_up(head * (b / one_minus_p + a * (k / one_minus_p + p / (one_minus_p * one_minus_p))))
    }

    /// `Σ_{from<=k<K} w(k)` as summed, the terms it adds (plus the ulps its largest
    /// exponent `K/s_own` costs each `exp`: see [`reach_in_ulps`]), and a bound on
    /// `Σ_{k>=K} w(k)`, for the first `K` (in blocks of about one scale) where that bound is
    /// under `10^-12` of the sum.
    fn sum_from(&self, from: u64) -> (f64, u64, f64) {
        #[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss)]
        let block = (libm::ceil(self.own) as u64).max(1);
        let (mut sum, mut k) = (0.0, from);
        loop {
            for j in k..k + block {
                sum += self.weight(j);
            }
            k += block;
            let rest = self.rest_from(k);
            if rest <= sum * 1e-12 {
                #[allow(clippy::cast_precision_loss)]
                let reach = k as f64 / self.own;
                return (sum, k - from + reach_in_ulps(reach), rest);
            }
        }
    }

    /// An upper bound on `Σ_{k>=from} w(k)`: the sum rounded up by its rounding error's
    /// bound, plus the rest.
    fn tail_sum(&self, from: u64) -> f64 {
        let (sum, terms, rest) = self.sum_from(from);
        pad_up(sum * (1.0 + rounding(terms)) + rest)
    }

    /// A lower bound on the normaliser `w(0) + 2·Σ_{k>=1} w(k)` (without the rest).
    fn normaliser(&self) -> f64 {
        let (positive, terms, _) = self.sum_from(1);
        pad_down((self.weight(0) + 2.0 * positive) * (1.0 - 2.0 * rounding(terms + 1)))
    }
}

/// The ulps that an exponent `r` computed to half an ulp costs its `exp`: `e^(−r(1 + u/2))`
/// is `e^(−r)` within `r·u/2` relatively, so `r` ulps bound it (rounded up).
fn reach_in_ulps(reach: f64) -> u64 {
    #[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss)]
    let ulps = libm::ceil(reach) as u64;
    ulps
}

/// A bound on the relative rounding error of a plain sum of positive terms, each computed
/// to a few ulps (`exp`, a product, a quotient) beyond the exponent's own error, `terms`
/// counting the terms and that error's ulps: `4·(terms + 4)` units of round-off.
fn rounding(terms: u64) -> f64 {
    #[allow(clippy::cast_precision_loss)]
    let terms = terms as f64;
    4.0 * (terms + 4.0) * f64::EPSILON
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
    staircase::quantile(|x| unit_tail(dimension, x), alpha)
}
