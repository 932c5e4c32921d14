//! Audits of `veil-core`'s mechanisms on their worst pair of inputs.
//!
//! An additive-noise mechanism is run on `0` and on `Δ` (its sensitivity): the two
//! inputs that differ the most by one person. A real-valued mechanism runs on a grid
//! (`Granularity::for_bounds`) exactly as the engine's sums do. Thresholding (private
//! partition selection) is audited on two pairs: a group that does not exist against a
//! group of one person (the δ part: the group must almost never appear), and a group of
//! `τ − 1` people against one of `τ`, where `τ` is the threshold (the ε part, at the
//! edge of release). Thresholding a released count is audited alike, on a group that does
//! not exist against one with a single unit's rows. Quantiles (permute-and-flip over bin
//! edges) run on two groups that differ by one unit's rows, added at the low end of a group
//! whose rows sit at the high end: every middle candidate's utility rises by exactly the
//! sensitivity and both ends' fall by it.

use std::fmt;
use std::str::FromStr;

use rand_core::{CryptoRng, Rng};
use veil_core::calibrate::epsilon_to_rho;
use veil_core::mechanism::{
    FixedPoint, GaussianMechanism, Granularity, JointLaplaceMechanism, LaplaceMechanism,
    QuantileLevel, QuantileMechanism, QuantileSelection, StaircaseStep, ThresholdMechanism,
    ThresholdNoise, best_staircase_step,
};
use veil_core::{Bounds, Delta, Epsilon, L1Sensitivity, L2Sensitivity};

use crate::AuditError;
use crate::estimate::{Audit, Claim, Confidence, Verdict, audit_sampler};

/// The mechanisms `veil audit mechanism` knows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MechanismName {
    /// Laplace noise on a real value, on a fixed grid (the engine's sums).
    Laplace,
    /// Discrete Laplace noise on an integer (the engine's counts).
    DiscreteLaplace,
    /// Discrete Gaussian noise on a real value, on a fixed grid, calibrated to (ε, δ).
    Gaussian,
    /// Discrete Gaussian noise on an integer, calibrated to (ε, δ).
    DiscreteGaussian,
    /// Private partition selection: discrete Laplace noise and a threshold.
    LaplaceThreshold,
    /// Private partition selection: discrete Gaussian noise and a threshold.
    GaussianThreshold,
    /// Private partition selection on a released row count (discrete Laplace): costs δ on
    /// top of the count's ε.
    CountThreshold,
    /// A median by permute-and-flip over bin edges.
    Quantile,
    /// Two answers drawn together (the ℓ∞ K-norm law; the engine's count and centred sum
    /// under pure ε), each moved by the sensitivity.
    JointLaplace,
    /// Private partition selection on a row count drawn jointly with a centred sum (the
    /// engine's count + sum with private partitions under pure ε): costs δ on top of the
    /// joint draw's ε.
    JointCountThreshold,
    /// Two answers drawn together from the staircase-shaped ℓ∞ law (the engine's joint
    /// draws at a large ε per group), each moved by the sensitivity.
    JointStaircase,
    /// Two answers drawn together from the ℓ∞ law with a plateau on the second, out to its
    /// sensitivity over ε (the engine's joint draws where a job weights one answer), each
    /// moved by the sensitivity.
    JointPlateau,
}

impl MechanismName {
    /// Every mechanism, in the order `--mechanism all` audits them.
    pub const ALL: [Self; 12] = [
        Self::Laplace,
        Self::DiscreteLaplace,
        Self::Gaussian,
        Self::DiscreteGaussian,
        Self::LaplaceThreshold,
        Self::GaussianThreshold,
        Self::CountThreshold,
        Self::Quantile,
        Self::JointLaplace,
        Self::JointCountThreshold,
        Self::JointStaircase,
        Self::JointPlateau,
    ];

    /// The name on the command line.
    #[must_use]
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Laplace => "laplace",
            Self::DiscreteLaplace => "discrete-laplace",
            Self::Gaussian => "gaussian",
            Self::DiscreteGaussian => "discrete-gaussian",
            Self::LaplaceThreshold => "laplace-threshold",
            Self::GaussianThreshold => "gaussian-threshold",
            Self::CountThreshold => "count-threshold",
            Self::Quantile => "quantile",
            Self::JointLaplace => "joint-laplace",
            Self::JointCountThreshold => "joint-count-threshold",
            Self::JointStaircase => "joint-staircase",
            Self::JointPlateau => "joint-plateau",
        }
    }

    /// Whether the mechanism needs δ > 0.
    #[must_use]
    pub fn needs_delta(self) -> bool {
        !matches!(
            self,
            Self::Laplace
                | Self::DiscreteLaplace
                | Self::Quantile
                | Self::JointLaplace
                | Self::JointStaircase
                | Self::JointPlateau
        )
    }
}

impl fmt::Display for MechanismName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for MechanismName {
    type Err = AuditError;

    fn from_str(text: &str) -> Result<Self, AuditError> {
        Self::ALL
            .into_iter()
            .find(|name| name.as_str() == text)
            .ok_or_else(|| {
                AuditError::option(
                    "--mechanism",
                    format!(
                        "{text:?} is not one of {}",
                        Self::ALL.map(Self::as_str).join(", ")
                    ),
                )
            })
    }
}

/// A mechanism to audit and the guarantee it is built to give.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct MechanismSpec {
    /// Which mechanism.
    pub name: MechanismName,
    /// The claimed ε.
    pub epsilon: Epsilon,
    /// The claimed δ (must be positive for Gaussian noise and thresholding).
    pub delta: Delta,
    /// How much one person changes the answer: an integer for the discrete mechanisms
    /// and a real for `laplace` and `gaussian`; for thresholding, the number of groups
    /// one person may be in (L0), whose noise is shared between them.
    pub sensitivity: L1Sensitivity,
}

/// The audit of one mechanism: one test per pair of inputs.
#[derive(Debug, Clone, PartialEq)]
pub struct MechanismAudit {
    /// What was audited.
    pub spec: MechanismSpec,
    /// `(pair, audit)`: the pair names its two inputs (`0 vs 1`, `absent vs 1 unit`).
    pub pairs: Vec<(String, Audit)>,
    /// `Fail` if any pair fails.
    pub verdict: Verdict,
    /// The largest lower bound over the pairs.
    pub epsilon_lower_bound: f64,
}

/// Audits a mechanism with `trials` runs per input. The confidence is split evenly
/// between the pairs tested, so a correct mechanism fails with probability at most
/// `1 - confidence`.
///
/// # Errors
/// [`AuditError::Option`] for a sensitivity the mechanism cannot take or a missing δ;
/// [`AuditError::Param`] if the mechanism refuses its parameters; as
/// [`crate::estimate::epsilon_lower_bound`].
pub fn audit_mechanism<R: Rng + CryptoRng + ?Sized>(
    spec: MechanismSpec,
    trials: usize,
    confidence: Confidence,
    rng: &mut R,
) -> Result<MechanismAudit, AuditError> {
    let claim = Claim {
        epsilon: spec.epsilon,
        delta: spec.delta,
    };
    if spec.name.needs_delta() && spec.delta.get() <= 0.0 {
        return Err(AuditError::option(
            "--delta",
            format!("{} needs a delta > 0, e.g. --delta 1e-6", spec.name),
        ));
    }
    let pairs = match spec.name {
        MechanismName::DiscreteLaplace | MechanismName::DiscreteGaussian => {
            let steps = integer_sensitivity(spec.sensitivity)?;
            let noise = IntegerNoise::new(spec.name, steps, spec.epsilon, spec.delta)?;
            let pair = format!("0 vs {steps}");
            let audit = audit_sampler(
                trials,
                claim,
                confidence,
                rng,
                |rng| noise.release(0, rng),
                |rng| noise.release(steps, rng),
            )?;
            vec![(pair, audit)]
        }
        MechanismName::Laplace | MechanismName::Gaussian => {
            let sensitivity = spec.sensitivity.get();
            if sensitivity <= 0.0 {
                return Err(AuditError::option(
                    "--sensitivity",
                    "must be > 0 (how much one person changes the value)",
                ));
            }
            let bounds = Bounds::new(0.0, sensitivity)?;
            let grid = FixedPoint::new(bounds, Granularity::for_bounds(bounds))?;
            let steps = grid.max_abs_steps();
            let kind = if spec.name == MechanismName::Laplace {
                MechanismName::DiscreteLaplace
            } else {
                MechanismName::DiscreteGaussian
            };
            let noise = IntegerNoise::new(kind, steps, spec.epsilon, spec.delta)?;
            let step = grid.granularity().to_f64();
            let real = |value: f64| value * step;
            let audit = audit_sampler(
                trials,
                claim,
                confidence,
                rng,
                |rng| real(noise.release(0, rng)),
                // `steps` is the sensitivity on the grid (the bounds are [0, sensitivity]).
                |rng| real(noise.release(steps, rng)),
            )?;
            vec![(format!("0 vs {sensitivity}"), audit)]
        }
        MechanismName::LaplaceThreshold | MechanismName::GaussianThreshold => {
            let partitions = integer_sensitivity(spec.sensitivity)?;
            let selection = threshold(spec.name, partitions, spec.epsilon, spec.delta)?;
            audit_threshold(&selection, claim, trials, confidence, rng)?
        }
        MechanismName::CountThreshold => {
            let rows = integer_sensitivity(spec.sensitivity)?;
            let selection = count_threshold(rows, rows, spec.epsilon, spec.delta)?;
            audit_count_threshold(&selection, rows, claim, trials, confidence, rng)?
        }
        MechanismName::JointCountThreshold => {
            let rows = integer_sensitivity(spec.sensitivity)?;
            let selection = joint_count_threshold(rows, rows, spec.epsilon, spec.delta)?;
            audit_count_threshold(&selection, rows, claim, trials, confidence, rng)?
        }
        MechanismName::Quantile => {
            let rows = integer_sensitivity(spec.sensitivity)?;
            let median =
                QuantileMechanism::new(spec.epsilon, rows, QuantileSelection::PermuteAndFlip)?;
            vec![audit_quantile(
                &median, rows, claim, trials, confidence, rng,
            )?]
        }
        MechanismName::JointLaplace => {
            let steps = integer_sensitivity(spec.sensitivity)?;
            let joint = JointLaplaceMechanism::new(&[steps, steps], spec.epsilon)?;
            vec![audit_joint(&joint, claim, trials, confidence, rng)?]
        }
        MechanismName::JointStaircase => {
            let steps = integer_sensitivity(spec.sensitivity)?;
            let joint = JointLaplaceMechanism::staircase(
                &[steps, steps],
                spec.epsilon,
                staircase_step(&[steps, steps], spec.epsilon),
            )?;
            vec![audit_joint(&joint, claim, trials, confidence, rng)?]
        }
        MechanismName::JointPlateau => {
            let steps = integer_sensitivity(spec.sensitivity)?;
            let joint = JointLaplaceMechanism::plateau(
                &[steps, steps],
                spec.epsilon,
                &[0, plateau_width(steps, spec.epsilon)],
            )?;
            vec![audit_joint(&joint, claim, trials, confidence, rng)?]
        }
    };
    Ok(summarize(spec, pairs))
}

/// A group of `count` through `selection`: its released noisy count, or `-∞` when it is
/// not released.
fn selected<R: Rng + CryptoRng + ?Sized>(
    selection: &ThresholdMechanism,
    count: i64,
    rng: &mut R,
) -> f64 {
    selection
        .release(count, rng)
        .map_or(f64::NEG_INFINITY, |released| {
            #[allow(clippy::cast_precision_loss)]
            let value = *released.value() as f64;
            value
        })
}

/// Audits private partition selection (any [`ThresholdMechanism`], including one built
/// wrongly on purpose) against `claim`: absent vs one unit, either side of the threshold and,
/// for truncated noise, the lower edge of its support.
///
/// # Errors
/// As [`crate::estimate::epsilon_lower_bound`].
pub fn audit_threshold<R: Rng + CryptoRng + ?Sized>(
    selection: &ThresholdMechanism,
    claim: Claim,
    trials: usize,
    confidence: Confidence,
    rng: &mut R,
) -> Result<Vec<(String, Audit)>, AuditError> {
    audit_selection_pairs(selection, 1, "units", claim, trials, confidence, rng)
}

/// The neighbouring groups where a selection's privacy is tightest, for a unit that adds
/// `contribution` to a group's count: a group that does not exist against one holding only
/// that unit (the δ of passing), the counts either side of the threshold (the ε part), and,
/// for noise truncated to `[-k, k]`, the counts `2k + 1` and `2k + 1 + contribution`, whose
/// supports differ at the lower edge (the δ of leaving the support).
fn audit_selection_pairs<R: Rng + CryptoRng + ?Sized>(
    selection: &ThresholdMechanism,
    contribution: u64,
    unit: &str,
    claim: Claim,
    trials: usize,
    confidence: Confidence,
    rng: &mut R,
) -> Result<Vec<(String, Audit)>, AuditError> {
    let truncation = selection.truncation();
    let each = confidence.split(if truncation.is_some() { 3 } else { 2 });
    let release = |count: i64, rng: &mut R| selected(selection, count, rng);
    let contribution = i64::try_from(contribution).unwrap_or(i64::MAX);
    let mut pairs = Vec::with_capacity(3);
    let absent = audit_sampler(
        trials,
        claim,
        each,
        rng,
        |_| f64::NEG_INFINITY,
        |rng| release(contribution, rng),
    )?;
    pairs.push((format!("absent vs {contribution} {unit}"), absent));
    let edge = selection.threshold();
    let below = edge.saturating_sub(contribution);
    let at_edge = audit_sampler(
        trials,
        claim,
        each,
        rng,
        |rng| release(below, rng),
        |rng| release(edge, rng),
    )?;
    pairs.push((format!("{below} vs {edge} {unit}"), at_edge));
    if let Some(k) = truncation {
        let low = k.saturating_mul(2).saturating_add(1);
        let high = low.saturating_add(contribution);
        let support = audit_sampler(
            trials,
            claim,
            each,
            rng,
            |rng| release(low, rng),
            |rng| release(high, rng),
        )?;
        pairs.push((format!("{low} vs {high} {unit}"), support));
    }
    Ok(pairs)
}

/// Thresholding a released row count, as the planner builds it for units with `rows` rows
/// in one group: discrete Laplace noise of L1 sensitivity `rows` at ε, and the threshold
/// for a contribution of `contribution` rows at δ. A threshold built for fewer rows than a
/// unit really adds (`contribution < rows`) is the planted bug "selection without its δ".
///
/// # Errors
/// [`AuditError::Param`] if the mechanism refuses its parameters.
pub fn count_threshold(
    rows: u64,
    contribution: u64,
    epsilon: Epsilon,
    delta: Delta,
) -> Result<ThresholdMechanism, AuditError> {
    let noise = LaplaceMechanism::new(L1Sensitivity::integer(rows), epsilon)?;
    Ok(ThresholdMechanism::on_released(
        ThresholdNoise::Laplace(noise),
        contribution,
        1,
        delta,
    )?)
}

/// The staircase's step the planner takes at `epsilon` per draw of answers of these
/// sensitivities, or 1/2 where it would keep the plain law (so that the staircase can be
/// audited at any ε).
#[must_use]
pub fn staircase_step(sensitivities: &[u64], epsilon: Epsilon) -> StaircaseStep {
    best_staircase_step(sensitivities, epsilon.get())
        .unwrap_or_else(|| StaircaseStep::new(1, 2).expect("1/2 is a step"))
}

/// The plateau the audit draws on an answer of sensitivity `steps` at `epsilon`: out to
/// `steps/ε` (one of the widths the planner tries), whole.
#[must_use]
pub fn plateau_width(steps: u64, epsilon: Epsilon) -> u64 {
    #[allow(
        clippy::cast_possible_truncation,
        clippy::cast_precision_loss,
        clippy::cast_sign_loss
    )]
    let width = (steps as f64 / epsilon.get()).floor() as u64;
    width
}

/// Thresholding a row count drawn jointly with a centred sum that one unit moves by
/// `50·rows` steps, as the planner builds it for private partitions under pure ε (one group
/// per unit: the draw at the whole ε; the staircase-shaped law where the planner takes it):
/// the threshold on the joint law's count for a contribution of `contribution` rows at δ.
/// A threshold built for fewer rows than a unit adds, or for a larger δ, is a planted bug.
///
/// # Errors
/// [`AuditError::Param`] if the mechanism refuses its parameters.
pub fn joint_count_threshold(
    rows: u64,
    contribution: u64,
    epsilon: Epsilon,
    delta: Delta,
) -> Result<ThresholdMechanism, AuditError> {
    let sensitivities = [rows, rows.saturating_mul(50)];
    let mechanism = match best_staircase_step(&sensitivities, epsilon.get()) {
        Some(step) => JointLaplaceMechanism::staircase(&sensitivities, epsilon, step)?,
        None => JointLaplaceMechanism::new(&sensitivities, epsilon)?,
    };
    Ok(ThresholdMechanism::on_released(
        ThresholdNoise::Joint {
            mechanism,
            index: 0,
        },
        contribution,
        1,
        delta,
    )?)
}

/// Audits thresholding a released count: a group that does not exist against one holding
/// one unit's `rows` rows (the δ part), the edge of release (the ε part) and the lower edge
/// of the truncated noise's support.
///
/// # Errors
/// As [`crate::estimate::epsilon_lower_bound`].
pub fn audit_count_threshold<R: Rng + CryptoRng + ?Sized>(
    selection: &ThresholdMechanism,
    rows: u64,
    claim: Claim,
    trials: usize,
    confidence: Confidence,
    rng: &mut R,
) -> Result<Vec<(String, Audit)>, AuditError> {
    if matches!(selection.noise(), ThresholdNoise::Gaussian(_)) {
        return Err(AuditError::option(
            "--mechanism",
            "a Laplace or joint Laplace count expected",
        ));
    }
    // The count as the release draws it: with the selection's (truncated) noise.
    audit_selection_pairs(selection, rows, "rows", claim, trials, confidence, rng)
}

/// Audits a median mechanism (including one built wrongly on purpose) on a group with
/// `4·rows` rows in the top bin of 16 against the same group with one unit's `rows` rows
/// added in the lowest bin: every middle edge's utility rises by the full sensitivity while
/// both ends' fall by it, the largest change in odds one unit can make.
///
/// # Errors
/// As [`crate::estimate::epsilon_lower_bound`].
pub fn audit_quantile<R: Rng + CryptoRng + ?Sized>(
    median: &QuantileMechanism,
    rows: u64,
    claim: Claim,
    trials: usize,
    confidence: Confidence,
    rng: &mut R,
) -> Result<(String, Audit), AuditError> {
    let level = QuantileLevel::new(0.5)?;
    let mut base = vec![0_u64; 16];
    base[15] = 4 * rows;
    let mut added = base.clone();
    added[0] += rows;
    #[allow(clippy::cast_precision_loss)]
    let release = |bins: &[u64], rng: &mut R| *median.release(bins, level, 0, rng).value() as f64;
    let audit = audit_sampler(
        trials,
        claim,
        confidence,
        rng,
        |rng| release(&base, rng),
        |rng| release(&added, rng),
    )?;
    Ok((
        format!("median of {} vs {} rows", 2 * rows, 3 * rows),
        audit,
    ))
}

/// Audits a joint draw: every answer at 0 against every answer moved by its sensitivity
/// (the box's corner, the largest move one unit makes), seen through the claimed
/// log-likelihood ratio `‖y − v‖ − ‖y‖` with `‖z‖ = max_i |z_i|·ε/Δ_i`, or for the
/// staircase `ε` times its shell (a function of the output alone, so a valid test; the
/// most powerful one when the mechanism is correct).
///
/// # Errors
/// As [`crate::estimate::epsilon_lower_bound`].
pub fn audit_joint<R: Rng + CryptoRng + ?Sized>(
    joint: &JointLaplaceMechanism,
    claim: Claim,
    trials: usize,
    confidence: Confidence,
    rng: &mut R,
) -> Result<(String, Audit), AuditError> {
    #[allow(clippy::cast_precision_loss)]
    let corner: Vec<i64> = joint
        .sensitivities()
        .iter()
        .map(|&steps| i64::try_from(steps).unwrap_or(i64::MAX))
        .collect();
    // The claimed law's exponent: the mechanism's own law's (`ε·max_i |z_i|/Δ_i`, `ε·g` for
    // the staircase's shell `g`, `ε·max_i (|z_i| − W_i)₊/Δ_i` with a plateau) at the
    // claimed ε.
    let norm = |z: &[i64]| joint.exponent(z, claim.epsilon.get());
    #[allow(clippy::cast_precision_loss)]
    let statistic = |values: &[i64], rng: &mut R| {
        let released: Vec<i64> = joint
            .release(values, rng)
            .iter()
            .map(|released| *released.value())
            .collect();
        let shifted: Vec<i64> = released.iter().zip(&corner).map(|(y, v)| y - v).collect();
        norm(&shifted) - norm(&released)
    };
    let zeros = vec![0_i64; corner.len()];
    let audit = audit_sampler(
        trials,
        claim,
        confidence,
        rng,
        |rng| statistic(&zeros, rng),
        |rng| statistic(&corner, rng),
    )?;
    Ok((format!("0 vs {corner:?} (every answer moved)"), audit))
}

/// The verdict and largest bound of a list of pair audits.
#[must_use]
pub fn summarize(spec: MechanismSpec, pairs: Vec<(String, Audit)>) -> MechanismAudit {
    let verdict = pairs.iter().fold(Verdict::Pass, |verdict, (_, audit)| {
        verdict.and(audit.verdict)
    });
    let epsilon_lower_bound = pairs
        .iter()
        .map(|(_, audit)| audit.bound.epsilon)
        .fold(0.0, f64::max);
    MechanismAudit {
        spec,
        pairs,
        verdict,
        epsilon_lower_bound,
    }
}

/// The partition selection of `name` for units in `partitions` groups, at (ε, δ) the way
/// the planner builds it: Laplace thresholding at (ε, δ); Gaussian thresholding at the
/// ρ that converts to ε at δ/2, with the other δ/2 for the threshold.
///
/// # Errors
/// [`AuditError::Param`] if the mechanism refuses its parameters.
pub fn threshold(
    name: MechanismName,
    partitions: u64,
    epsilon: Epsilon,
    delta: Delta,
) -> Result<ThresholdMechanism, AuditError> {
    Ok(match name {
        MechanismName::GaussianThreshold => {
            let half = Delta::new(delta.get() / 2.0)?;
            ThresholdMechanism::gaussian(partitions, epsilon_to_rho(epsilon, half)?, half)?
        }
        _ => ThresholdMechanism::laplace(partitions, epsilon, delta)?,
    })
}

fn integer_sensitivity(sensitivity: L1Sensitivity) -> Result<u64, AuditError> {
    match sensitivity.as_integer() {
        Some(steps) if steps > 0 => Ok(steps),
        _ => Err(AuditError::option(
            "--sensitivity",
            format!(
                "{} is not a positive integer, which this mechanism needs",
                sensitivity.get()
            ),
        )),
    }
}

/// Integer noise of either family.
enum IntegerNoise {
    Laplace(LaplaceMechanism),
    Gaussian(GaussianMechanism),
}

impl IntegerNoise {
    fn new(
        name: MechanismName,
        steps: u64,
        epsilon: Epsilon,
        delta: Delta,
    ) -> Result<Self, AuditError> {
        Ok(if name == MechanismName::DiscreteGaussian {
            Self::Gaussian(GaussianMechanism::new_approx(
                L2Sensitivity::integer(steps),
                epsilon,
                delta,
            )?)
        } else {
            Self::Laplace(LaplaceMechanism::new(
                L1Sensitivity::integer(steps),
                epsilon,
            )?)
        })
    }

    fn release<R: Rng + CryptoRng + ?Sized>(&self, value: u64, rng: &mut R) -> f64 {
        let value = i64::try_from(value).unwrap_or(i64::MAX);
        let released = match self {
            Self::Laplace(mechanism) => mechanism.release(value, rng),
            Self::Gaussian(mechanism) => mechanism.release(value, rng),
        };
        #[allow(clippy::cast_precision_loss)]
        let value = *released.value() as f64;
        value
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use veil_testkit::seeded_rng;

    fn spec(name: MechanismName) -> MechanismSpec {
        MechanismSpec {
            name,
            epsilon: Epsilon::new(1.0).unwrap(),
            delta: Delta::new(1e-6).unwrap(),
            sensitivity: L1Sensitivity::integer(1),
        }
    }

    #[test]
    fn names_round_trip() {
        for name in MechanismName::ALL {
            assert_eq!(name.as_str().parse::<MechanismName>().unwrap(), name);
        }
        let error = "lapalce".parse::<MechanismName>().unwrap_err().to_string();
        assert!(
            error.starts_with("--mechanism: \"lapalce\" is not one of laplace"),
            "{error}"
        );
    }

    #[test]
    fn every_mechanism_passes_a_small_audit() {
        let mut rng = seeded_rng(11);
        let confidence = Confidence::new(1.0 - 1e-7).unwrap();
        for name in MechanismName::ALL {
            let audit = audit_mechanism(spec(name), 20_000, confidence, &mut rng).unwrap();
            assert_eq!(audit.verdict, Verdict::Pass, "{name}: {audit:?}");
        }
    }

    #[test]
    fn laplace_is_bounded_near_its_epsilon() {
        let mut rng = seeded_rng(12);
        let confidence = Confidence::new(1.0 - 1e-7).unwrap();
        let audit = audit_mechanism(
            spec(MechanismName::DiscreteLaplace),
            200_000,
            confidence,
            &mut rng,
        )
        .unwrap();
        assert_eq!(audit.verdict, Verdict::Pass);
        assert!(audit.epsilon_lower_bound > 0.8, "{audit:?}");
    }

    #[test]
    fn gaussian_needs_delta_and_discrete_needs_integers() {
        let mut rng = seeded_rng(13);
        let mut no_delta = spec(MechanismName::Gaussian);
        no_delta.delta = Delta::new(0.0).unwrap();
        let error = audit_mechanism(no_delta, 10, Confidence::DEFAULT, &mut rng).unwrap_err();
        assert!(
            error.to_string().starts_with("--delta: gaussian needs"),
            "{error}"
        );
        let mut fractional = spec(MechanismName::DiscreteLaplace);
        fractional.sensitivity = L1Sensitivity::new(1.5).unwrap();
        let error = audit_mechanism(fractional, 10, Confidence::DEFAULT, &mut rng).unwrap_err();
        assert!(
            error.to_string().starts_with("--sensitivity: 1.5"),
            "{error}"
        );
    }
}
