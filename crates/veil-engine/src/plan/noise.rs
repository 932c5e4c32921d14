//! The noise of each measure: its family, its mechanism, and how it is charged.

use veil_accountant::{ChargeItem, MechanismProfile};

use veil_core::mechanism::{
    GaussianMechanism, JointLaplaceMechanism, LaplaceMechanism, Mechanism, MechanismKind,
    QuantileMechanism, QuantileSelection,
};
use veil_core::{Epsilon, PrivacyLoss, Rho};

use super::Measure;

/// The noise family of a plan.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NoiseFamily {
    /// Discrete Laplace noise, ε's composed by summing.
    Laplace,
    /// Discrete Gaussian noise, accounted in zCDP.
    Gaussian,
}

/// The quantile draws of one histogram: per group and per level, a point and, for value
/// intervals, the two ends of its interval.
#[derive(Debug, Clone, PartialEq)]
pub struct QuantileNoise {
    /// The point estimate's mechanism.
    pub point: QuantileMechanism,
    /// Each interval end's mechanism (the exponential mechanism, for its tail bound);
    /// `None` when the quantiles' intervals are about ranks (nothing more is drawn).
    pub interval: Option<QuantileMechanism>,
    /// Levels drawn per group (over every quantiles aggregate of this histogram).
    pub draws: f64,
    /// Groups per unit (L0).
    pub groups: f64,
}

/// One measure's place in a joint draw: the measures of a query drawn together, per group,
/// by one [`JointLaplaceMechanism`] (charged once, with the first of them).
#[derive(Debug, Clone, PartialEq)]
pub struct JointNoise {
    /// The mechanism of one group's draw (its ε is per group).
    pub mechanism: JointLaplaceMechanism,
    /// The keys of the measures drawn together, in the mechanism's order.
    pub keys: Vec<String>,
    /// This measure's place among them.
    pub index: usize,
    /// Groups per unit (L0): the draws one unit can reach.
    pub groups: u64,
}

impl JointNoise {
    /// This measure's plateau width under the plateau law, in multiples of one unit's move
    /// in one group (its per-group bound), or `None` for another law.
    #[must_use]
    pub fn plateau_reach(&self) -> Option<f64> {
        let widths = self.mechanism.plateau_widths()?;
        #[allow(clippy::cast_precision_loss)]
        let reach = widths[self.index] as f64 / self.mechanism.sensitivities()[self.index] as f64;
        Some(reach)
    }

    /// What one unit can lose to the joint draws of every group it is in.
    #[must_use]
    pub fn loss(&self) -> PrivacyLoss {
        self.mechanism.loss_over(self.groups)
    }
}

/// The loss claimed when a sum of losses is not a finite number: the largest there is, so
/// that a ledger refuses it rather than charge less than was drawn.
fn unbounded_pure() -> PrivacyLoss {
    PrivacyLoss::Pure(Epsilon::new(f64::MAX).expect("f64::MAX is a valid ε"))
}

/// [`unbounded_pure`] in zCDP.
fn unbounded_zcdp() -> PrivacyLoss {
    PrivacyLoss::Zcdp(Rho::new(f64::MAX).expect("f64::MAX is a valid ρ"))
}

/// Noise for one measure.
#[derive(Debug, Clone, PartialEq)]
pub enum MeasureNoise {
    /// Discrete Laplace.
    Laplace(LaplaceMechanism),
    /// Discrete Gaussian (zCDP).
    Gaussian(GaussianMechanism),
    /// Quantiles: a choice among a histogram's bin edges.
    Quantile(QuantileNoise),
    /// Drawn together with other measures of the query (pure ε, Laplace family).
    Joint(JointNoise),
}

/// A measure and its noise.
#[derive(Debug, Clone, PartialEq)]
pub struct NoisyMeasure {
    /// The measure.
    pub measure: Measure,
    /// Its noise.
    pub noise: MeasureNoise,
    /// The measure's sensitivity across all groups: L1 for Laplace, squared L2 for
    /// Gaussian, in steps (for quantiles: a unit's rows per group).
    pub sensitivity: u128,
    /// The most one unit moves it in one group, in steps.
    pub per_group: u128,
    /// Groups per unit (L0).
    pub groups: u64,
    /// Its share of the job's budget (ε for Laplace, ρ for Gaussian).
    pub share: f64,
}

impl std::fmt::Display for NoiseFamily {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Self::Laplace => "laplace",
            Self::Gaussian => "gaussian",
        })
    }
}

impl QuantileNoise {
    /// What one unit can lose to every draw of every group it is in.
    #[must_use]
    pub fn loss(&self) -> PrivacyLoss {
        let times = self.groups * self.draws;
        let ends = self.interval.as_ref().map(QuantileMechanism::loss);
        match (self.point.loss(), ends) {
            (PrivacyLoss::Pure(point), _) => {
                let ends = self
                    .interval
                    .as_ref()
                    .map_or(0.0, |interval| 2.0 * interval.epsilon().get());
                let epsilon = times * (point.get() + ends);
                Epsilon::new(epsilon.next_up()).map_or_else(|_| unbounded_pure(), PrivacyLoss::Pure)
            }
            (PrivacyLoss::Zcdp(point), Some(PrivacyLoss::Zcdp(interval))) => {
                let rho = times * (point.get() + 2.0 * interval.get());
                Rho::new(rho.next_up()).map_or_else(|_| unbounded_zcdp(), PrivacyLoss::Zcdp)
            }
            (PrivacyLoss::Zcdp(point), None) => {
                let rho = times * point.get();
                Rho::new(rho.next_up()).map_or_else(|_| unbounded_zcdp(), PrivacyLoss::Zcdp)
            }
            (point, _) => point,
        }
    }

    /// The point's mechanism in a group where `unused` of its interval's two ends are not
    /// drawn (the released count shows too few rows on their side, so they would be the
    /// column's bounds): the point takes their budget. Under pure ε the ε's add:
    /// `ε_p + unused·ε_i`; for the exponential mechanism in zCDP the `ρ = ε²/8` add:
    /// `√(ε_p² + unused·ε_i²)`; either less a relative 10⁻¹² for floating point.
    ///
    /// **Privacy.** Which ends are drawn is a function of a released count alone, so the
    /// group's draws compose adaptively with a total fixed in advance: in every branch the
    /// point and the ends drawn spend at most `ε_p + 2ε_i` (`ρ_p + 2ρ_i`), what
    /// [`QuantileNoise::loss`] charges per group and level. Pure DP bounds the odds of the
    /// count and then of the rest given the count; zCDP composes adaptively (Bun and
    /// Steinke 2016, Lemma 2.3).
    ///
    /// `None` when nothing is unused (or there is no interval: the point already has all).
    #[must_use]
    pub fn point_taking(&self, unused: usize) -> Option<QuantileMechanism> {
        let interval = self.interval.as_ref()?;
        if unused == 0 {
            return None;
        }
        #[allow(clippy::cast_precision_loss)]
        let unused = unused.min(2) as f64;
        let (point, end) = (self.point.epsilon().get(), interval.epsilon().get());
        let epsilon = match self.point.selection() {
            QuantileSelection::PermuteAndFlip => point + unused * end,
            QuantileSelection::Exponential => (point * point + unused * end * end).sqrt(),
        } * (1.0 - 1e-12);
        let epsilon = Epsilon::new(epsilon).ok()?;
        QuantileMechanism::new(epsilon, self.point.max_rows(), self.point.selection()).ok()
    }
}

impl MeasureNoise {
    /// The noise standard deviation in steps (for quantiles: not a number).
    #[must_use]
    pub fn std_dev(&self) -> f64 {
        match self {
            Self::Laplace(mechanism) => mechanism.std_dev(),
            Self::Gaussian(mechanism) => mechanism.sigma(),
            Self::Quantile(_) => f64::NAN,
            Self::Joint(joint) => joint.mechanism.std_dev(joint.index),
        }
    }

    /// Half-width of the 95% interval in steps (for quantiles: not a number).
    #[must_use]
    pub fn ci_half_width(&self) -> f64 {
        match self {
            Self::Laplace(mechanism) => {
                mechanism.ci_half_width(veil_core::mechanism::DEFAULT_CONFIDENCE)
            }
            Self::Gaussian(mechanism) => {
                mechanism.ci_half_width(veil_core::mechanism::DEFAULT_CONFIDENCE)
            }
            Self::Quantile(_) => f64::NAN,
            Self::Joint(joint) => joint
                .mechanism
                .ci_half_width(joint.index, veil_core::mechanism::DEFAULT_CONFIDENCE),
        }
    }

    /// The noise's name in a release manifest: `discrete-laplace`, `discrete-gaussian`,
    /// `exponential` (quantiles), `joint-laplace`, `joint-staircase (step 0.8)` or
    /// `joint-plateau (flat to 1.5 of a unit's move on this measure)`.
    #[must_use]
    pub fn mechanism_name(&self) -> String {
        match self {
            Self::Laplace(_) => MechanismKind::DiscreteLaplace.to_string(),
            Self::Gaussian(_) => MechanismKind::DiscreteGaussian.to_string(),
            Self::Quantile(_) => MechanismKind::Exponential.to_string(),
            Self::Joint(joint) => match (joint.mechanism.step(), joint.plateau_reach()) {
                (Some(step), _) => format!("{} (step {})", joint.mechanism.kind(), step.get()),
                (None, Some(reach)) if reach > 0.0 => format!(
                    "{} (flat to {} of a unit's move on this measure)",
                    joint.mechanism.kind(),
                    format!("{reach:.2}")
                        .trim_end_matches('0')
                        .trim_end_matches('.')
                ),
                (None, Some(_)) => {
                    format!("{} (flat on another measure)", joint.mechanism.kind())
                }
                (None, None) => joint.mechanism.kind().to_string(),
            },
        }
    }

    /// The privacy loss of one release of the measure over every group (for a joint draw:
    /// of the whole draw, shared with the measures drawn with it).
    #[must_use]
    pub fn loss(&self) -> PrivacyLoss {
        match self {
            Self::Laplace(mechanism) => mechanism.loss(),
            Self::Gaussian(mechanism) => mechanism.loss(),
            Self::Quantile(noise) => noise.loss(),
            Self::Joint(joint) => joint.loss(),
        }
    }
}

impl NoisyMeasure {
    /// The ledger's item for this measure of query `query`: the mechanism run on each of
    /// the `L0` groups a unit can reach (so the PLD accountant composes the real shifts),
    /// or its guarantee. A joint draw is charged once, with its first measure, under all
    /// their keys: `None` for the others.
    pub(super) fn charge_item(&self, query: &str) -> Option<ChargeItem> {
        let label = match &self.noise {
            MeasureNoise::Joint(joint) if joint.index > 0 => return None,
            MeasureNoise::Joint(joint) => joint.keys.join("+"),
            _ => self.measure.key(),
        };
        let (profile, times) = self.charge();
        Some(ChargeItem {
            label: format!("{query}.{label}"),
            profile,
            times,
        })
    }

    /// What one draw of this measure costs, and on how many groups a unit can reach it.
    fn charge(&self) -> (MechanismProfile, u32) {
        let groups = u32::try_from(self.groups).unwrap_or(u32::MAX);
        let per_group = u64::try_from(self.per_group).ok();
        match (&self.noise, per_group) {
            (MeasureNoise::Laplace(mechanism), Some(per_group)) => (
                MechanismProfile::DiscreteLaplace {
                    scale: mechanism.scale().to_f64_down(),
                    sensitivity: per_group,
                },
                groups,
            ),
            (MeasureNoise::Gaussian(mechanism), Some(per_group)) => (
                MechanismProfile::DiscreteGaussian {
                    sigma: mechanism.sigma_squared().to_f64_down().sqrt().next_down(),
                    sensitivity: per_group,
                },
                groups,
            ),
            (noise, _) => (MechanismProfile::Guarantee(noise.loss()), 1),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A loss that does not add up to a finite number is claimed as the largest there is,
    /// never as a part of it.
    #[test]
    fn a_loss_past_every_float_is_claimed_whole() {
        let PrivacyLoss::Pure(epsilon) = unbounded_pure() else {
            panic!("pure expected")
        };
        assert!((epsilon.get() - f64::MAX).abs() < f64::EPSILON);
        let PrivacyLoss::Zcdp(rho) = unbounded_zcdp() else {
            panic!("zCDP expected")
        };
        assert!((rho.get() - f64::MAX).abs() < f64::EPSILON);
    }
}
