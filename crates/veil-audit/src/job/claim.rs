//! What a job and each of its cells claim: the plan's losses for what a cell is computed
//! from, composed as the accountant composes them.

use std::collections::BTreeSet;

use veil_core::calibrate::rho_to_epsilon;
use veil_core::{Delta, Epsilon, PrivacyLoss, Rho};
use veil_engine::plan::{Plan, PlannedCost, QueryPlan};

use super::RHO_ONLY_DELTA;
use crate::AuditError;
use crate::estimate::Claim;

/// What the plan claims for the whole job, as (ε, δ).
///
/// # Errors
/// [`AuditError::Param`] if the planned cost is not a valid (ε, δ) (a bug).
pub fn job_claim(plan: &Plan) -> Result<Claim, AuditError> {
    Ok(match plan.cost {
        PlannedCost::Basic { epsilon, delta } => Claim {
            epsilon: Epsilon::new(epsilon)?,
            delta: Delta::new(delta)?,
        },
        PlannedCost::Zcdp {
            rho,
            conversion_delta,
            epsilon,
            selection_delta,
        } => {
            if conversion_delta > 0.0 {
                Claim {
                    epsilon: Epsilon::new(epsilon)?,
                    delta: Delta::new(conversion_delta + selection_delta)?,
                }
            } else {
                let delta = Delta::new(RHO_ONLY_DELTA)?;
                Claim {
                    epsilon: rho_to_epsilon(Rho::new(rho)?, delta)?,
                    delta: Delta::new(RHO_ONLY_DELTA + selection_delta)?,
                }
            }
        }
    })
}

/// The claim of one cell: the losses of what it is computed from, composed.
pub(super) fn cell_claim(
    plan: &Plan,
    query: &QueryPlan,
    output: Option<&str>,
) -> Result<Claim, AuditError> {
    let mut losses: Vec<PrivacyLoss> = Vec::new();
    let mut delta = 0.0;
    // The measures the cell reads, each once: the count that selects groups (presence
    // gates every cell) and the output's own.
    let mut keys: BTreeSet<String> = BTreeSet::new();
    if let Some(selection) = &query.selection {
        delta += selection.delta().get();
        match &query.selection_count {
            Some(key) => {
                keys.insert(key.clone());
            }
            None => losses.push(selection.noise_loss()),
        }
    }
    if let Some(output) = output {
        for noisy in query.measures_of_output(output) {
            keys.insert(noisy.measure.key());
        }
    }
    // A joint draw's loss counts once, whichever of its measures the cell reads.
    let mut joint_draws: BTreeSet<Vec<String>> = BTreeSet::new();
    for key in &keys {
        if let Some(noisy) = query.noise_of(key) {
            if let veil_engine::plan::MeasureNoise::Joint(joint) = &noisy.noise
                && !joint_draws.insert(joint.keys.clone())
            {
                continue;
            }
            losses.push(noisy.noise.loss());
        }
    }
    let mut epsilon = 0.0;
    let mut rho = 0.0;
    for loss in losses {
        match loss {
            PrivacyLoss::Pure(value) => epsilon += value.get(),
            PrivacyLoss::Approx(value, extra) => {
                epsilon += value.get();
                delta += extra.get();
            }
            PrivacyLoss::Zcdp(value) => rho += value.get(),
        }
    }
    if rho > 0.0 {
        let conversion = match plan.cost {
            PlannedCost::Zcdp {
                conversion_delta, ..
            } if conversion_delta > 0.0 => conversion_delta,
            _ => RHO_ONLY_DELTA,
        };
        epsilon += rho_to_epsilon(Rho::new(rho)?, Delta::new(conversion)?)?.get();
        delta += conversion;
    }
    if epsilon <= 0.0 {
        // Nothing private gates this cell (a public group's presence): any positive
        // lower bound is a failure.
        epsilon = f64::MIN_POSITIVE;
    }
    Ok(Claim {
        epsilon: Epsilon::new(epsilon)?,
        delta: Delta::new(delta.min(0.5))?,
    })
}
