//! The plan's private part: the budget split across every measure of the job so that the
//! released outputs are as accurate as the planner can predict, the noise calibrated to
//! the accountant that will charge it, and each measure's grid fitted to its noise.
//!
//! **Split for the answers.** Each output's variance is a function of its measures'
//! variances (delta method, on a typical group: values at the middle of their bounds, so
//! the group's size cancels out); a measure given a share `x` of the budget has variance
//! `K/x²` (Laplace: ε adds up) or `K/x` (Gaussian: ρ adds up). The shares minimise
//! `Σ weight · relative standard deviation` over the outputs, found by iterating the
//! optimality conditions (every share's marginal gain equal).
//!
//! **Calibrate to the accountant.** Laplace: `ε_i = x_i·ε`, composed by adding. Gaussian:
//! `ρ_i = x_i·ρ`, with `ρ` the largest whose Gaussian privacy curve (exact for a
//! composition of Gaussians, μ-GDP) meets `(ε, δ)`, checked again by the PLD accountant on
//! the discrete Gaussians themselves; a job with quantiles or a separate selection is
//! accounted in zCDP instead (their losses have no exact Gaussian curve).
//!
//! **Grids fitted to the noise.** A sum's grid step is the power of two nearest below its
//! noise's standard deviation over 2^20: rounding then moves a value by at most a
//! millionth of the noise, and every sensitivity stays an integer the exact samplers can
//! draw with (no `needs more than 64 bits` however large `max_rows_per_group` is).
//!
//! One file on purpose: the split, the calibration and the grids are one optimisation (each
//! uses the others' results), and this is the part of the planner a privacy reviewer reads
//! alone.

use veil_accountant::{Component, MechanismProfile, Method, compose};
use veil_core::calibrate::{epsilon_to_rho, rho_to_epsilon};
use veil_core::mechanism::{
    FixedPoint, GaussianMechanism, Granularity, JointLaplaceMechanism, LaplaceMechanism,
    QuantileMechanism, QuantileSelection, ThresholdMechanism, ThresholdNoise, best_staircase_step,
};
use veil_core::{Delta, Epsilon, L1Sensitivity, Rho};

use super::derive::{Derivation, Design};
use super::{
    HISTOGRAM_BRANCHING, HISTOGRAM_DEPTH, JointNoise, Measure, MeasureNoise, NoiseFamily,
    NoisyMeasure, QuantileNoise, QueryPlan,
};
use crate::EngineError;
use crate::job::{AggregateKind, QuantileInterval, Query};

/// Of a quantile's budget, the share of its point estimate when it has a value interval
/// ([`QuantileInterval::Value`]); the rest is split between the interval's two ends (wider
/// for it, never less valid). With a rank interval the point takes it all.
pub const QUANTILE_POINT_SHARE: f64 = 0.9;

/// The part of a query's budget that a separate distinct-unit count for partition
/// selection takes (a query that releases no count).
const SEPARATE_SELECTION_SHARE: f64 = 0.25;

/// A noise standard deviation spans about this many grid steps.
const STEPS_PER_STD: f64 = 1_048_576.0;

/// The budget one family spends, in its own measure.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(super) enum Spend {
    /// ε, adding up (Laplace).
    Epsilon(f64),
    /// ρ, adding up (Gaussian).
    Rho(f64),
}

impl Spend {
    fn family(self) -> NoiseFamily {
        match self {
            Self::Epsilon(_) => NoiseFamily::Laplace,
            Self::Rho(_) => NoiseFamily::Gaussian,
        }
    }

    fn total(self) -> f64 {
        match self {
            Self::Epsilon(value) | Self::Rho(value) => value,
        }
    }

    fn scaled(self, share: f64) -> Self {
        match self {
            Self::Epsilon(value) => Self::Epsilon(value * share),
            Self::Rho(value) => Self::Rho(value * share),
        }
    }
}

/// One measure of the job, as the budget sees it.
#[derive(Debug, Clone)]
struct Slot {
    query: usize,
    measure: Measure,
    /// The most one unit moves it in one group, in real units (rows for counts; for a
    /// histogram, the rows of one unit).
    per_group: f64,
    /// Groups per unit (L0).
    groups: f64,
    /// Quantile draws per group (levels of the quantile aggregates on this histogram).
    draws: f64,
    /// A histogram's share for its points: [`QUANTILE_POINT_SHARE`] with value intervals,
    /// 1 without (and for every other measure).
    point_share: f64,
    /// Weight of this measure's own share when it decides nothing the objective sees (a
    /// separate selection): then its share is fixed, not optimised.
    fixed_share: Option<f64>,
}

/// One output's variance as a combination of measure variances, and its scale.
#[derive(Debug, Clone)]
struct Output {
    weight: f64,
    /// `(slot, coefficient)`: the output's variance is `Σ coefficient · variance(slot)`.
    terms: Vec<(usize, f64)>,
    /// The output's typical magnitude (its relative error divides by it).
    scale: f64,
}

/// The typical group the objective is evaluated on: `(middle, value, spread)`. Values
/// average a quarter of the width away from the middle of their bounds (data rarely centre
/// on the bounds: a mean then leans on its count as much as on its centred sum), their
/// magnitude is the middle's (or that offset, when the bounds centre on zero), and they
/// spread a quarter of the width.
fn typical(bounds: veil_core::Bounds) -> (f64, f64, f64) {
    let middle = f64::midpoint(bounds.lower(), bounds.upper());
    let quarter = bounds.width() / 4.0;
    let value = if middle.abs() > quarter {
        middle - quarter.copysign(middle)
    } else {
        middle + quarter
    };
    (middle, value, quarter)
}

/// Everything a family's plan is made of, before noise: slots and outputs.
struct Problem {
    slots: Vec<Slot>,
    outputs: Vec<Output>,
}

fn problem(queries: &[(&Query, &Design)]) -> Problem {
    let mut slots: Vec<Slot> = Vec::new();
    let mut outputs = Vec::new();
    let total_weight: f64 = queries.iter().map(|(query, _)| query.weight).sum();
    for (index, (query, design)) in queries.iter().enumerate() {
        let rows = f64::from(query.bounds.max_rows_per_group);
        let groups = f64::from(query.bounds.max_groups_per_unit);
        let first = slots.len();
        let mut separate = 0.0;
        for measure in &design.measures {
            if design.separate_selection && *measure == Measure::Units {
                separate = 1.0;
            }
            let per_group = match measure {
                Measure::Units => 1.0,
                Measure::Rows | Measure::ValueCount { .. } | Measure::Histogram { .. } => rows,
                Measure::Sum { bounds, .. } => rows * bounds.max_abs(),
                Measure::CenteredSum { bounds, .. } => rows * bounds.width() / 2.0,
                Measure::CenteredSquares { bounds, .. } => rows * (bounds.width() / 2.0).powi(2),
            };
            // The quantiles aggregates on this histogram: their levels, and whether any
            // asks for value intervals (validation keeps them all alike).
            let quantiles: Vec<(usize, QuantileInterval)> = design
                .derivations
                .iter()
                .zip(&query.aggregates)
                .filter_map(
                    |(derivation, aggregate)| match (derivation, &aggregate.kind) {
                        (
                            Derivation::Quantiles { histogram },
                            AggregateKind::Quantiles {
                                levels, interval, ..
                            },
                        ) if *histogram == measure.key() => Some((levels.len(), *interval)),
                        _ => None,
                    },
                )
                .collect();
            #[allow(clippy::cast_precision_loss)]
            let draws =
                (quantiles.iter().map(|(levels, _)| *levels).sum::<usize>() as f64).max(1.0);
            // Value intervals need a released count to aim their ends by; without one
            // their ends would be the bounds, so nothing is spent on them.
            let checkable = measure.column().is_some_and(|column| {
                Measure::interval_count(query, column, design.selection_count.as_deref(), |key| {
                    design.measures.iter().any(|measure| measure.key() == key)
                })
                .is_ok()
            });
            let value_intervals = checkable
                && quantiles
                    .iter()
                    .any(|(_, interval)| *interval == QuantileInterval::Value);
            slots.push(Slot {
                query: index,
                measure: measure.clone(),
                per_group,
                groups,
                draws,
                point_share: if value_intervals {
                    QUANTILE_POINT_SHARE
                } else {
                    1.0
                },
                fixed_share: None,
            });
        }
        let keys: Vec<String> = slots[first..]
            .iter()
            .map(|slot| slot.measure.key())
            .collect();
        let slot_of = |key: &str| {
            keys.iter()
                .position(|existing| existing == key)
                .map(|at| first + at)
        };
        if separate > 0.0
            && let Some(slot) = slot_of(&Measure::Units.key())
        {
            // The selection's own count: a fixed part of the query's share.
            slots[slot].fixed_share = Some(query.weight / total_weight * SEPARATE_SELECTION_SHARE);
        }
        let query_weight = query.weight / total_weight;
        let first_output = outputs.len();
        for (derivation, aggregate) in design.derivations.iter().zip(&query.aggregates) {
            let weight = query_weight * aggregate.weight;
            let bounds = aggregate.kind.column().map(|column| column.bounds);
            let find = |key: &String| slot_of(key).unwrap_or(first);
            let output = |terms: Vec<(usize, f64)>, scale: f64| Output {
                weight,
                terms,
                scale,
            };
            match (derivation, bounds) {
                (Derivation::Count { rows: key } | Derivation::UnitCount { units: key }, _)
                | (Derivation::Sum { sum: key }, None) => {
                    outputs.push(output(vec![(find(key), 1.0)], 1.0));
                }
                (Derivation::Sum { sum }, Some(bounds)) => {
                    let (_, value, _) = typical(bounds);
                    outputs.push(output(vec![(find(sum), 1.0)], value.abs()));
                }
                (Derivation::CenteredSum { count, centered }, Some(bounds)) => {
                    let (middle, value, _) = typical(bounds);
                    outputs.push(output(
                        vec![(find(count), middle * middle), (find(centered), 1.0)],
                        value.abs(),
                    ));
                }
                (Derivation::Mean { count, centered }, Some(bounds)) => {
                    let (middle, value, _) = typical(bounds);
                    let offset = value - middle;
                    outputs.push(output(
                        vec![(find(centered), 1.0), (find(count), offset * offset)],
                        value.abs(),
                    ));
                }
                (
                    Derivation::Variance {
                        count,
                        centered,
                        squares,
                    },
                    Some(bounds),
                ) => {
                    let (middle, value, spread) = typical(bounds);
                    let offset = value - middle;
                    let spread_squared = spread * spread;
                    // The variance `Q/n − (S/n)²` moves with the count as `(o² − s²)/n`
                    // (o the values' offset from the middle, s their spread): the two
                    // terms cancel on the typical group (o = s) but not on real data, where
                    // either may lead. Their sum bounds it, so the count the variance
                    // divides by is never left without budget.
                    let count_term = offset * offset + spread_squared;
                    outputs.push(output(
                        vec![
                            (find(squares), 1.0),
                            (find(centered), 4.0 * offset * offset),
                            (find(count), count_term * count_term),
                        ],
                        spread_squared,
                    ));
                }
                (Derivation::Quantiles { histogram }, _) => {
                    let levels = match &aggregate.kind {
                        #[allow(clippy::cast_precision_loss)]
                        AggregateKind::Quantiles { levels, .. } => levels.len() as f64,
                        _ => 1.0,
                    };
                    // Rank error as a fraction of the group: weighed once per level.
                    outputs.push(Output {
                        weight: weight * levels,
                        terms: vec![(find(histogram), 1.0)],
                        scale: 1.0,
                    });
                }
                (_, None) => {}
            }
        }
        // The count that partition selection thresholds decides which groups appear at
        // all: its noise sets the threshold, and a group below it loses every output. It
        // is weighed as two more outputs for each output of the query (a quantile level
        // counts as one), so that the split does not starve the selection to sharpen the
        // values of fewer groups. On the quickstart: weighed as its own output only, the
        // threshold was 259 people and 22-25 of 50 countries were released; as one more
        // output per output, 141 and 40; as two, 117 and 45-47, the other outputs' noise
        // 2-5% larger.
        if let Some(selection) = &design.selection_count
            && let Some(slot) = slot_of(selection)
        {
            let outputs_weight: f64 = outputs[first_output..]
                .iter()
                .map(|output: &Output| output.weight)
                .sum();
            outputs.push(Output {
                weight: 2.0 * outputs_weight,
                terms: vec![(slot, 1.0)],
                scale: 1.0,
            });
        }
    }
    Problem { slots, outputs }
}

/// `K` of a slot in `family`: its variance at share `x` is `K/x²` (Laplace) or `K/x`
/// (Gaussian), in its real units, for a budget total of one.
fn variance_factor(slot: &Slot, family: NoiseFamily) -> f64 {
    let candidates = f64::from(HISTOGRAM_BRANCHING.pow(HISTOGRAM_DEPTH) + 1);
    match (&slot.measure, family) {
        (Measure::Histogram { .. }, NoiseFamily::Laplace) => {
            // Rank error of permute-and-flip at ε_point = share·ε·POINT/(L0·draws).
            let rank = 2.0 * slot.per_group * slot.groups * slot.draws * candidates.ln()
                / slot.point_share;
            rank * rank
        }
        (Measure::Histogram { .. }, NoiseFamily::Gaussian) => {
            // ρ = L0·draws·(ε_p² + 2ε_i²)/8, ε_i = ε_p·(1 − POINT)/(2·POINT).
            let interval = (1.0 - slot.point_share) / (2.0 * slot.point_share);
            let per_rho = 8.0 / (slot.groups * slot.draws * (1.0 + 2.0 * interval * interval));
            let rank = 2.0 * slot.per_group * candidates.ln();
            rank * rank / per_rho
        }
        (_, NoiseFamily::Laplace) => 2.0 * (slot.groups * slot.per_group).powi(2),
        (_, NoiseFamily::Gaussian) => slot.groups * slot.per_group * slot.per_group / 2.0,
    }
}

/// The objective at `shares`: `Σ weight · sqrt(Σ coefficient · K/x^power) / scale`.
fn objective(problem: &Problem, factors: &[f64], power: i32, shares: &[f64]) -> f64 {
    problem
        .outputs
        .iter()
        .map(|output| {
            let variance: f64 = output
                .terms
                .iter()
                .map(|&(slot, coefficient)| coefficient * factors[slot] / shares[slot].powi(power))
                .sum();
            output.weight * variance.sqrt() / output.scale
        })
        .sum()
}

/// The shares of the budget that minimise the objective (fixed shares kept as given), and
/// the objective there.
fn optimise(problem: &Problem, family: NoiseFamily) -> (Vec<f64>, f64) {
    let count = problem.slots.len();
    if count == 0 {
        return (Vec::new(), 0.0);
    }
    let factors: Vec<f64> = problem
        .slots
        .iter()
        .map(|slot| variance_factor(slot, family))
        .collect();
    let power = match family {
        NoiseFamily::Laplace => 2,
        NoiseFamily::Gaussian => 1,
    };
    let fixed: f64 = problem
        .slots
        .iter()
        .filter_map(|slot| slot.fixed_share)
        .sum();
    let free: Vec<usize> = (0..count)
        .filter(|&slot| problem.slots[slot].fixed_share.is_none())
        .collect();
    let mut shares: Vec<f64> = problem
        .slots
        .iter()
        .map(|slot| slot.fixed_share.unwrap_or(0.0))
        .collect();
    if free.is_empty() {
        let value = objective(problem, &factors, power, &shares);
        return (shares, value);
    }
    let room = (1.0 - fixed).max(1e-9);
    #[allow(clippy::cast_precision_loss)]
    let even = room / free.len() as f64;
    for &slot in &free {
        shares[slot] = even;
    }
    // The optimality conditions (every free share's marginal gain equal) as a fixed point:
    // x_i^(p+1) ∝ Σ_o (w_o/scale_o) · a_oi·K_i / sqrt(V_o). One step solves separable
    // problems exactly; damped steps converge on the rest.
    let exponent = 1.0 / f64::from(power + 1);
    let mut value = objective(problem, &factors, power, &shares);
    for _ in 0..300 {
        let variances: Vec<f64> = problem
            .outputs
            .iter()
            .map(|output| {
                output
                    .terms
                    .iter()
                    .map(|&(slot, coefficient)| {
                        coefficient * factors[slot] / shares[slot].powi(power)
                    })
                    .sum::<f64>()
                    .max(f64::MIN_POSITIVE)
            })
            .collect();
        let mut pull = vec![0.0; count];
        for (output, variance) in problem.outputs.iter().zip(&variances) {
            for &(slot, coefficient) in &output.terms {
                pull[slot] +=
                    output.weight / output.scale * coefficient * factors[slot] / variance.sqrt();
            }
        }
        let mut candidate = shares.clone();
        let mut total = 0.0;
        for &slot in &free {
            let target = pull[slot].max(f64::MIN_POSITIVE).powf(exponent);
            // Damped: halfway (in logs) from the current share.
            candidate[slot] = (shares[slot] * target).sqrt();
            total += candidate[slot];
        }
        for &slot in &free {
            candidate[slot] = (candidate[slot] / total * room).max(room * 1e-9);
        }
        let candidate_value = objective(problem, &factors, power, &candidate);
        let converged = (value - candidate_value).abs() <= value * 1e-12;
        if candidate_value <= value {
            shares = candidate;
            value = candidate_value;
        }
        if converged {
            break;
        }
    }
    (shares, value)
}

/// The objective of `queries`' designs in `family` at the best split of a budget of one
/// (comparable between designs of the same family).
pub(super) fn design_objective(queries: &[(&Query, &Design)], family: NoiseFamily) -> f64 {
    optimise(&problem(queries), family).1
}

/// A planned family: each query's plan and what it spent.
pub(super) struct FamilyPlan {
    pub(super) queries: Vec<QueryPlan>,
    /// Σ ε (Laplace) or Σ ρ (Gaussian) of every mechanism.
    pub(super) total: f64,
    /// Σ δ of partition selection.
    pub(super) selection_delta: f64,
    /// The objective at the chosen shares (lower is better; comparable across families).
    pub(super) objective: f64,
}

/// Plans every query in the family of `spend`, whose total is the whole budget in that
/// family's measure.
///
/// # Errors
/// [`EngineError::InvalidJob`] or [`EngineError::Param`] naming the query and measure
/// whose noise cannot be drawn exactly.
pub(super) fn plan_family(
    queries: &[(&Query, &Design)],
    spend: Spend,
    selection_delta: f64,
) -> Result<FamilyPlan, EngineError> {
    let problem = problem(queries);
    let family = spend.family();
    let (shares, value) = optimise(&problem, family);
    // Shares add up to one in floating point; a hair less keeps the parts' sum, however an
    // accountant adds them, within the budget.
    let shares: Vec<f64> = shares.iter().map(|share| share * (1.0 - 1e-12)).collect();
    let private_queries = queries
        .iter()
        .filter(|(_, design)| design.selection_count.is_some() || design.separate_selection)
        .count()
        .max(1);
    #[allow(clippy::cast_precision_loss)]
    let query_delta = selection_delta / private_queries as f64;
    let mut plans: Vec<QueryPlan> = queries
        .iter()
        .map(|(query, design)| QueryPlan {
            query: (*query).clone(),
            selection: None,
            selection_count: design.selection_count.clone(),
            derivations: design.derivations.clone(),
            measures: Vec::new(),
        })
        .collect();
    let mut total = 0.0;
    // Each slot's measure in its query's plan, when it has one.
    let mut placed: Vec<Option<usize>> = Vec::with_capacity(problem.slots.len());
    for (slot, share) in problem.slots.iter().zip(&shares) {
        let query = queries[slot.query].0;
        let design = queries[slot.query].1;
        let part = spend.scaled(*share);
        total += part.total();
        if design.separate_selection && slot.measure == Measure::Units {
            plans[slot.query].selection = Some(separate_selection(query, part, query_delta)?);
            placed.push(None);
            continue;
        }
        placed.push(Some(plans[slot.query].measures.len()));
        plans[slot.query]
            .measures
            .push(noisy_measure(query, slot, part, *share)?);
    }
    let mut delta = 0.0;
    for ((query, design), plan) in queries.iter().zip(&mut plans) {
        let Some(key) = &design.selection_count else {
            if plan.selection.is_some() {
                delta += query_delta;
            }
            continue;
        };
        let noisy = plan
            .measures
            .iter()
            .find(|noisy| noisy.measure.key() == *key)
            .ok_or_else(|| EngineError::Internal(format!("selection count {key} not planned")))?;
        let noise = match &noisy.noise {
            MeasureNoise::Laplace(mechanism) => ThresholdNoise::Laplace(mechanism.clone()),
            MeasureNoise::Gaussian(mechanism) => ThresholdNoise::Gaussian(mechanism.clone()),
            MeasureNoise::Quantile(_) | MeasureNoise::Joint(_) => {
                return Err(EngineError::Internal(
                    "a histogram or a joint draw cannot select groups".into(),
                ));
            }
        };
        let contribution = if noisy.measure == Measure::Units {
            1
        } else {
            u64::from(query.bounds.max_rows_per_group)
        };
        let delta_part =
            Delta::new(query_delta).map_err(|e| EngineError::param("budget.delta", e))?;
        plan.selection = Some(
            ThresholdMechanism::on_released(
                noise,
                contribution,
                u64::from(query.bounds.max_groups_per_unit),
                delta_part,
            )
            .map_err(|e| {
                EngineError::param(format!("query {:?}: partition selection", query.name), e)
            })?,
        );
        delta += query_delta;
    }
    let mut value = value;
    if let Spend::Epsilon(_) = spend {
        let drawn = |plans: &[QueryPlan]| drawn_objective(&problem, &shares, &placed, plans);
        for at in 0..plans.len() {
            join_measures(&mut plans, at, &drawn)?;
        }
        let joint = plans.iter().any(|plan| {
            plan.measures
                .iter()
                .any(|noisy| matches!(noisy.noise, MeasureNoise::Joint(_)))
        });
        if joint {
            value = drawn(&plans);
        }
    }
    // The objective was computed for a budget of one: a Laplace noise's std scales as 1/ε,
    // a Gaussian's as 1/sqrt(ρ).
    let objective = match spend {
        Spend::Epsilon(epsilon) => value / epsilon,
        Spend::Rho(rho) => value / rho.sqrt(),
    };
    Ok(FamilyPlan {
        queries: plans,
        total,
        selection_delta: delta,
        objective,
    })
}

/// The Laplace objective of the noise `plans` draw: a joint member's variance is
/// `(d+1)(d+2)/6` times a Laplace draw's at the joint draw's whole share (the sum of its
/// members'), where a Laplace draw's is `K/x²` at its own share `x` (for a plateau law, its
/// own ratio: [`JointLaplaceMechanism::relative_std`]). So the family is
/// chosen, and a joint draw judged, on the noise the plan really draws.
fn drawn_objective(
    problem: &Problem,
    shares: &[f64],
    placed: &[Option<usize>],
    plans: &[QueryPlan],
) -> f64 {
    let joint_of = |slot: usize| -> Option<&JointNoise> {
        let index = placed[slot]?;
        match &plans[problem.slots[slot].query].measures[index].noise {
            MeasureNoise::Joint(joint) => Some(joint),
            _ => None,
        }
    };
    let effective: Vec<f64> = (0..problem.slots.len())
        .map(|slot| {
            let Some(joint) = joint_of(slot) else {
                return shares[slot];
            };
            let whole: f64 = (0..problem.slots.len())
                .filter(|&other| {
                    problem.slots[other].query == problem.slots[slot].query
                        && joint_of(other).is_some_and(|other| other.keys == joint.keys)
                })
                .map(|other| shares[other])
                .sum();
            whole / joint.mechanism.relative_std(joint.index)
        })
        .collect();
    let factors: Vec<f64> = problem
        .slots
        .iter()
        .map(|slot| variance_factor(slot, NoiseFamily::Laplace))
        .collect();
    objective(problem, &factors, 2, &effective)
}

/// The most measures one joint draw holds. A draw is kept with probability `d!/d^d`
/// (3/32 for four: about eleven attempts), which falls fast beyond: a query's further
/// measures go to more draws. The staircase-shaped draw is kept less often (about 0.02
/// for four measures at ε = 4 per group: some fifty attempts).
const JOINT_MAX: usize = 4;

/// Draws a query's Laplace measures together, in draws of at most [`JOINT_MAX`] measures
/// (as even as can be), each one [`JointLaplaceMechanism`] per group at the sum of its
/// measures' ε's, when that lowers every released value's noise. The joint
/// coordinates are uncorrelated, so a lower standard deviation on every measure lowers it
/// on every output derived from them (a sum `m·N + C`, a mean); a measure released as it
/// is (a count, a measured sum) must also keep its median and 95% half-width from rising,
/// as one coordinate of the joint law is less peaked than a Laplace (its median is 1.17
/// times a Laplace's of the same deviation for two measures). At an even split of two
/// measures the joint draw has 0.71 of each deviation, 0.83 of a count's median and about
/// 0.6 of a derived sum's or mean's. One unit moves each measure of a group by at most its
/// per-group bound, together: the joint draw's box.
///
/// Where some measure's noise would rise, the draw is still taken when it lowers the
/// planner's objective (`drawn`, over every query): a weighted measure's share of a
/// separate split can beat its joint coordinate on its own while the rest lose much more.
/// With `weight = 8` on the count of count + sum + mean, the split gave the count a median
/// a hair below the joint draw's, a larger deviation, and the sum and mean twice the
/// joint draw's error.
///
/// The count that partition selection thresholds joins one other measure (a draw of two,
/// the first that qualifies), with the threshold set on the joint law's tail, when that
/// lowers both measures' deviations and keeps the threshold from rising; otherwise it keeps
/// its own truncated noise. Its median may rise there: the split gave the count the larger
/// share of ε (the selection leans on it), and one joint coordinate is less peaked (at
/// ε = 1, L0 = 3: the count's median error 1.45 times its separate draw's, the threshold
/// 250 rows against 290, and a sum or mean derived from the pair about 0.6 of its error),
/// which lowers the relative errors of the released values together, the planner's
/// objective.
fn join_measures(
    plans: &mut [QueryPlan],
    at: usize,
    drawn: &dyn Fn(&[QueryPlan]) -> f64,
) -> Result<(), EngineError> {
    let plan = &mut plans[at];
    let mut members: Vec<usize> = plan
        .measures
        .iter()
        .enumerate()
        .filter(|(_, noisy)| matches!(noisy.noise, MeasureNoise::Laplace(_)))
        .map(|(index, _)| index)
        .collect();
    let selected = members.iter().position(|&index| {
        plan.selection_count.as_deref() == Some(plan.measures[index].measure.key().as_str())
    });
    if let Some(at) = selected {
        let count = members.remove(at);
        for at in 0..members.len() {
            if join_selected(plan, count, members[at])? {
                members.remove(at);
                break;
            }
        }
    }
    if members.len() < 2 {
        return Ok(());
    }
    let draws = members.len().div_ceil(JOINT_MAX);
    let mut rest = members.as_slice();
    for draw in 0..draws {
        // As even as can be: 5 measures make draws of 3 and 2, never of 4 and 1.
        let size = rest.len().div_ceil(draws - draw);
        let (block, after) = rest.split_at(size);
        if let Some(mechanism) = joint_mechanism(&plans[at], block)?
            && (lowers_every_noise(&plans[at], block, &mechanism, true)
                || lowers_the_objective(plans, at, block, &mechanism, drawn))
        {
            apply_joint(&mut plans[at], block, &mechanism);
            widen_plateau(plans, at, block, &mechanism, drawn);
        }
        rest = after;
    }
    Ok(())
}

/// The plateau widths tried on one answer of a joint draw, in units of its per-group
/// bound over the ε per group (`JointLaplaceMechanism::plateau` allows up to 4).
const PLATEAU_REACH: [f64; 7] = [0.125, 0.25, 0.5, 0.75, 1.0, 1.5, 2.0];

/// The least relative fall of the objective a plateau must bring to be drawn: below, the
/// plain law's stated figures are kept (its gain is within what the objective can judge).
const PLATEAU_GAIN: f64 = 0.01;

/// Gives a joint draw the plateau law (`JointLaplaceMechanism::plateau`) when the query
/// weights its aggregates unevenly and a plateau on one measure lowers the planner's
/// objective by [`PLATEAU_GAIN`]: the plain law's box serves every answer alike, and a
/// plateau moves noise off the others onto that measure, as a job that weights them asks.
/// With `weight = 5` on the count of count + sum + mean at ε = 1 and three groups per unit,
/// a plateau on the centred sum out to `Δ/(2ε)` takes the count's deviation from 30 rows to
/// 28.5 and the sum's from 2,121 to 2,150 (at `weight = 8`, out to `3Δ/(4ε)`: 27.9 and
/// 2,181).
///
/// Even weights keep the plain law, a balanced choice: there the typical group's sum and
/// mean have about three times the count's relative error, so the objective would buy them
/// a few percent with the count's noise (for count + sum + mean drawn as rows, values and
/// a centred sum: a plateau on the rows, the count's deviation up 15%, the sum's and the
/// mean's down 5%), a trade the job did not ask for and which its deviations judge, not
/// its medians. The widths read ε and the measures' bounds alone. Not for the staircase (a
/// large ε per group), nor for a count a selection thresholds, whose tail is calibrated on
/// the plain law.
fn widen_plateau(
    plans: &mut [QueryPlan],
    at: usize,
    members: &[usize],
    mechanism: &JointLaplaceMechanism,
    drawn: &dyn Fn(&[QueryPlan]) -> f64,
) {
    let weights = &plans[at].query.aggregates;
    let even = weights
        .iter()
        .all(|aggregate| aggregate.weight.to_bits() == weights[0].weight.to_bits());
    if even || mechanism.step().is_some() {
        return;
    }
    let sensitivities = mechanism.sensitivities();
    let epsilon = mechanism.epsilon();
    let mut best = (drawn(plans) * (1.0 - PLATEAU_GAIN), None);
    for side in 0..members.len() {
        for reach in PLATEAU_REACH {
            #[allow(
                clippy::cast_possible_truncation,
                clippy::cast_precision_loss,
                clippy::cast_sign_loss
            )]
            let width = (reach * sensitivities[side] as f64 / epsilon.get()).floor() as u64;
            let mut widths = vec![0; members.len()];
            widths[side] = width;
            let Ok(candidate) = JointLaplaceMechanism::plateau(sensitivities, epsilon, &widths)
            else {
                continue;
            };
            let mut trial = plans.to_vec();
            apply_joint(&mut trial[at], members, &candidate);
            let value = drawn(&trial);
            if value < best.0 {
                best = (value, Some(candidate));
            }
        }
    }
    if let (_, Some(plateau)) = best {
        apply_joint(&mut plans[at], members, &plateau);
    }
}

/// Draws the count that selection thresholds together with the measure at `partner` when
/// the joint draw lowers both measures' deviations and the threshold set on the joint law's answer is no
/// higher than the truncated count's; then the selection thresholds that answer. Whether
/// it did.
fn join_selected(plan: &mut QueryPlan, count: usize, partner: usize) -> Result<bool, EngineError> {
    let block = [count, partner];
    let Some(mechanism) = joint_mechanism(plan, &block)?
        .filter(|mechanism| lowers_every_noise(plan, &block, mechanism, false))
    else {
        return Ok(false);
    };
    let Some(selection) = &plan.selection else {
        return Ok(false);
    };
    // A scale too wide to threshold keeps the truncated count.
    let Ok(joint) = ThresholdMechanism::on_released(
        ThresholdNoise::Joint {
            mechanism: mechanism.clone(),
            index: 0,
        },
        selection.contribution(),
        selection.max_partitions(),
        selection.delta(),
    ) else {
        return Ok(false);
    };
    if joint.threshold() > selection.threshold() {
        return Ok(false);
    }
    plan.selection = Some(joint);
    apply_joint(plan, &block, &mechanism);
    Ok(true)
}

/// One joint draw of the measures at `members` (see [`join_measures`]), at the sum of their
/// ε's, or `None` when its scales do not fit the sampler.
fn joint_mechanism(
    plan: &QueryPlan,
    members: &[usize],
) -> Result<Option<JointLaplaceMechanism>, EngineError> {
    if members.len() < 2 {
        return Ok(None);
    }
    let named = |e| EngineError::param(format!("query {:?}: joint noise", plan.query.name), e);
    let groups = u64::from(plan.query.bounds.max_groups_per_unit);
    let mut epsilon = 0.0;
    let mut sensitivities = Vec::new();
    for &index in members {
        let noisy = &plan.measures[index];
        if let MeasureNoise::Laplace(mechanism) = &noisy.noise {
            epsilon += mechanism.epsilon().get();
        }
        sensitivities.push(u64::try_from(noisy.per_group).map_err(|_| {
            EngineError::Internal(format!("{} moves too far", noisy.measure.key()))
        })?);
    }
    // Per group, rounded down: the L0 groups' draws together cost the Laplace draws' ε up to
    // floating-point rounding (a few ulps), which the shares' 1e-12 margin covers.
    #[allow(clippy::cast_precision_loss)]
    let per_group = (epsilon / groups as f64).next_down();
    // Scales too large for the sampler (a tiny ε on a fine grid) keep the separate draws,
    // which fit: they are never worse than the plan the budget was split for.
    let epsilon = Epsilon::new(per_group).map_err(named)?;
    // At a large ε per group the staircase-shaped law has lower median errors at no higher
    // deviation, for the same ε (`best_staircase_step`, which reads ε and the measures'
    // sensitivities alone: public bounds).
    Ok(match best_staircase_step(&sensitivities, per_group) {
        Some(step) => JointLaplaceMechanism::staircase(&sensitivities, epsilon, step).ok(),
        None => JointLaplaceMechanism::new(&sensitivities, epsilon).ok(),
    })
}

/// Whether `mechanism`, drawing the measures at `members`, lowers every one's deviation
/// and, with `guard_medians`, the median and 95% half-width of every measure released as
/// it is.
fn lowers_every_noise(
    plan: &QueryPlan,
    members: &[usize],
    mechanism: &JointLaplaceMechanism,
    guard_medians: bool,
) -> bool {
    // The measures some output releases as they are.
    let released_alone: Vec<&str> = plan
        .derivations
        .iter()
        .filter_map(|derivation| match derivation {
            Derivation::Count { rows: key }
            | Derivation::UnitCount { units: key }
            | Derivation::Sum { sum: key } => Some(key.as_str()),
            _ => None,
        })
        .collect();
    let confidence = veil_core::mechanism::DEFAULT_CONFIDENCE;
    members.iter().enumerate().all(|(at, &index)| {
        let noisy = &plan.measures[index];
        let MeasureNoise::Laplace(laplace) = &noisy.noise else {
            return false;
        };
        let alone = guard_medians && released_alone.contains(&noisy.measure.key().as_str());
        mechanism.std_dev(at) <= laplace.std_dev()
            && (!alone
                || (mechanism.ci_half_width(at, 0.5) <= laplace.ci_half_width(0.5)
                    && mechanism.ci_half_width(at, confidence)
                        <= laplace.ci_half_width(confidence)))
    })
}

/// Whether drawing the measures at `members` of `plans[at]` together with `mechanism`
/// lowers the planner's objective over every query (`drawn`).
fn lowers_the_objective(
    plans: &[QueryPlan],
    at: usize,
    members: &[usize],
    mechanism: &JointLaplaceMechanism,
    drawn: &dyn Fn(&[QueryPlan]) -> f64,
) -> bool {
    let mut trial = plans.to_vec();
    apply_joint(&mut trial[at], members, mechanism);
    drawn(&trial) < drawn(plans)
}

/// Gives the measures at `members` the joint draw `mechanism`, in that order.
fn apply_joint(plan: &mut QueryPlan, members: &[usize], mechanism: &JointLaplaceMechanism) {
    let groups = u64::from(plan.query.bounds.max_groups_per_unit);
    let keys: Vec<String> = members
        .iter()
        .map(|&index| plan.measures[index].measure.key())
        .collect();
    for (at, &index) in members.iter().enumerate() {
        plan.measures[index].noise = MeasureNoise::Joint(JointNoise {
            mechanism: mechanism.clone(),
            keys: keys.clone(),
            index: at,
            groups,
        });
    }
}

/// The distinct-unit threshold of a query that releases no count.
fn separate_selection(
    query: &Query,
    part: Spend,
    delta: f64,
) -> Result<ThresholdMechanism, EngineError> {
    let delta = Delta::new(delta).map_err(|e| EngineError::param("budget.delta", e))?;
    let groups = u64::from(query.bounds.max_groups_per_unit);
    match part {
        Spend::Epsilon(epsilon) => ThresholdMechanism::laplace(
            groups,
            Epsilon::new(epsilon).map_err(|e| EngineError::param("budget.epsilon", e))?,
            delta,
        ),
        Spend::Rho(rho) => ThresholdMechanism::gaussian(
            groups,
            Rho::new(rho).map_err(|e| EngineError::param("budget", e))?,
            delta,
        ),
    }
    .map_err(|e| EngineError::param(format!("query {:?}: partition selection", query.name), e))
}

/// The noise of one measure given its part of the budget: its grid fitted to the noise,
/// then the exact mechanism on the integer steps.
fn noisy_measure(
    query: &Query,
    slot: &Slot,
    part: Spend,
    share: f64,
) -> Result<NoisyMeasure, EngineError> {
    let named =
        |e| EngineError::param(format!("query {:?}: {}", query.name, slot.measure.key()), e);
    let groups = u64::from(query.bounds.max_groups_per_unit);
    let rows = u64::from(query.bounds.max_rows_per_group);
    if let Measure::Histogram { .. } = slot.measure {
        return Ok(NoisyMeasure {
            measure: slot.measure.clone(),
            noise: MeasureNoise::Quantile(quantile_noise(query, slot, part)?),
            sensitivity: u128::from(rows),
            per_group: u128::from(rows),
            groups,
            share,
        });
    }
    // The noise's standard deviation in real units, then the grid and the steps.
    let real_std = match part {
        Spend::Epsilon(epsilon) => {
            std::f64::consts::SQRT_2 * slot.groups * slot.per_group / epsilon
        }
        Spend::Rho(rho) => slot.per_group * (slot.groups / (2.0 * rho)).sqrt(),
    };
    let measure = fitted(&slot.measure, real_std).map_err(named)?;
    let per_group = measure.per_group_bound(query.bounds);
    let too_large = || too_sensitive(query, &measure);
    let (noise, sensitivity) = match part {
        Spend::Epsilon(epsilon) => {
            let sensitivity = per_group
                .checked_mul(u128::from(groups))
                .ok_or_else(too_large)?;
            let l1 = u64::try_from(sensitivity).map_err(|_| too_large())?;
            let epsilon =
                Epsilon::new(epsilon).map_err(|e| EngineError::param("budget.epsilon", e))?;
            (
                MeasureNoise::Laplace(
                    LaplaceMechanism::new(L1Sensitivity::integer(l1), epsilon)
                        .map_err(|_| too_large())?,
                ),
                sensitivity,
            )
        }
        Spend::Rho(rho) => {
            let sensitivity = per_group
                .checked_mul(per_group)
                .and_then(|square| square.checked_mul(u128::from(groups)))
                .ok_or_else(too_large)?;
            let rho = Rho::new(rho).map_err(|e| EngineError::param("budget", e))?;
            (
                MeasureNoise::Gaussian(
                    GaussianMechanism::new_zcdp_squared(sensitivity, rho)
                        .map_err(|_| too_large())?,
                ),
                sensitivity,
            )
        }
    };
    Ok(NoisyMeasure {
        measure,
        noise,
        sensitivity,
        per_group,
        groups,
        share,
    })
}

/// The measure with its grid fitted to a noise of `real_std` (counts keep steps of one).
fn fitted(measure: &Measure, real_std: f64) -> Result<Measure, veil_core::ParamError> {
    // The finest grid worth having: at most 2^30 steps per value (so sums stay far inside
    // 64 bits), and no finer than needed for the noise.
    // ... and no coarser than 2^10 steps across the bounds (rounding error stays a tenth of a
    // percent of the width, and every sensitivity a positive integer).
    let step_for = |std_in_unit: f64, bounds: veil_core::Bounds, half: bool| {
        let wanted = std_in_unit / STEPS_PER_STD;
        let finest = bounds.max_abs().max(bounds.width()) / 2f64.powi(30);
        let coarsest = bounds.width() / 2f64.powi(10);
        let step = wanted.min(coarsest).max(finest).max(f64::MIN_POSITIVE);
        #[allow(clippy::cast_possible_truncation)]
        let exponent = (step.log2().floor() as i32 + i32::from(half)).clamp(-100, 100);
        Granularity::power_of_two(exponent)
    };
    Ok(match measure {
        Measure::Sum { column, bounds, .. } => Measure::Sum {
            column: column.clone(),
            bounds: *bounds,
            grid: FixedPoint::new(*bounds, step_for(real_std, *bounds, false)?)?,
        },
        Measure::CenteredSum { column, bounds, .. } => Measure::CenteredSum {
            column: column.clone(),
            bounds: *bounds,
            // Centred values count in half steps.
            grid: FixedPoint::new(*bounds, step_for(real_std, *bounds, true)?)?,
        },
        Measure::CenteredSquares { column, bounds, .. } => {
            // Squares count in (half steps)²: a step s gives units of s²/4.
            let unit = (4.0 * real_std / STEPS_PER_STD).sqrt();
            let width = bounds.width();
            let finest = width / 2f64.powi(15);
            let unit = unit.min(width / 2f64.powi(6));
            #[allow(clippy::cast_possible_truncation)]
            let exponent = (unit.max(finest).log2().floor() as i32).clamp(-100, 100);
            Measure::CenteredSquares {
                column: column.clone(),
                bounds: *bounds,
                grid: FixedPoint::new(*bounds, Granularity::power_of_two(exponent)?)?,
            }
        }
        other => other.clone(),
    })
}

/// The draws of a histogram: a point per quantile level, and two interval ends when the
/// quantiles ask for value intervals; each a choice among the histogram's bin edges.
fn quantile_noise(query: &Query, slot: &Slot, part: Spend) -> Result<QuantileNoise, EngineError> {
    let named =
        |e| EngineError::param(format!("query {:?}: {}", query.name, slot.measure.key()), e);
    let rows = u64::from(query.bounds.max_rows_per_group);
    let interval_share = (1.0 - slot.point_share) / 2.0;
    let (selection, point, interval) = match part {
        Spend::Epsilon(epsilon) => {
            // Pure: the L0·draws·(point + 2 ends) add up to the part.
            let per_draw = epsilon / (slot.groups * slot.draws);
            (
                QuantileSelection::PermuteAndFlip,
                per_draw * slot.point_share,
                per_draw * interval_share,
            )
        }
        Spend::Rho(rho) => {
            // zCDP: L0·draws·(ε_p² + 2ε_i²)/8 = ρ.
            let ratio = interval_share / slot.point_share;
            let point =
                (8.0 * rho / (slot.groups * slot.draws * (1.0 + 2.0 * ratio * ratio))).sqrt();
            (QuantileSelection::Exponential, point, point * ratio)
        }
    };
    let epsilon = |value: f64| {
        // Rounded down: the loss claimed is never below the one drawn with.
        Epsilon::new(value.next_down()).map_err(named)
    };
    let interval = if interval > 0.0 {
        Some(
            QuantileMechanism::new(epsilon(interval)?, rows, QuantileSelection::Exponential)
                .map_err(named)?,
        )
    } else {
        None
    };
    Ok(QuantileNoise {
        point: QuantileMechanism::new(epsilon(point)?, rows, selection).map_err(named)?,
        interval,
        draws: slot.draws,
        groups: slot.groups,
    })
}

fn too_sensitive(query: &Query, measure: &Measure) -> EngineError {
    EngineError::invalid(
        format!("query {:?}", query.name),
        format!(
            "{} cannot be noised exactly: max_groups_per_unit = {} and max_rows_per_group = {} make one person's contribution too large for the exact samplers at this budget; lower them (or raise ε)",
            measure.key(),
            query.bounds.max_groups_per_unit,
            query.bounds.max_rows_per_group
        ),
    )
}

/// The largest ρ whose Gaussian privacy curve meets `(epsilon, delta)`: for a composition
/// of Gaussian mechanisms with `ρ = Σ Δ_i²/(2σ_i²)`, the composition is exactly `μ`-GDP
/// with `μ = sqrt(2ρ)` (Dong, Roth and Su 2022), and `δ(ε) = Φ(−ε/μ + μ/2) − e^ε Φ(−ε/μ − μ/2)`.
/// Never below the zCDP conversion's ρ.
///
/// # Errors
/// [`EngineError::Param`] if the budget is out of range.
pub(super) fn gaussian_rho(epsilon: Epsilon, delta: Delta) -> Result<f64, EngineError> {
    let zcdp = epsilon_to_rho(epsilon, delta)
        .map_err(|e| EngineError::param("budget.epsilon", e))?
        .get();
    let curve = |mu: f64| {
        let e = epsilon.get();
        veil_core::special::normal_cdf(-e / mu + mu / 2.0)
            - e.exp() * veil_core::special::normal_cdf(-e / mu - mu / 2.0)
    };
    let (mut low, mut high) = ((2.0 * zcdp).sqrt(), (2.0 * zcdp).sqrt() * 4.0);
    if curve(low) > delta.get() {
        return Ok(zcdp);
    }
    while curve(high) <= delta.get() {
        high *= 2.0;
        if high > 1e6 {
            return Ok(zcdp);
        }
    }
    for _ in 0..100 {
        let middle = f64::midpoint(low, high);
        if curve(middle) <= delta.get() {
            low = middle;
        } else {
            high = middle;
        }
    }
    Ok((low * low / 2.0).max(zcdp))
}

/// The ε the PLD accountant gives the plan's discrete Gaussians at `delta` (`None` when
/// the plan holds anything else, or the accountant declines).
pub(super) fn gaussian_pld_epsilon(queries: &[QueryPlan], delta: Delta) -> Option<f64> {
    let mut components = Vec::new();
    for query in queries {
        for noisy in &query.measures {
            let MeasureNoise::Gaussian(mechanism) = &noisy.noise else {
                return None;
            };
            components.push(Component::new(
                MechanismProfile::DiscreteGaussian {
                    sigma: mechanism.sigma_squared().to_f64_down().sqrt().next_down(),
                    sensitivity: u64::try_from(noisy.per_group).ok()?,
                },
                noisy.groups,
            ));
        }
    }
    compose(&components, delta, Method::Pld)
        .ok()
        .map(|composition| composition.epsilon.get())
}

/// ε of `rho` converted at `delta` by zCDP (for a plan the PLD cannot account).
///
/// # Errors
/// [`EngineError::Param`] for a ρ or δ out of range.
pub(super) fn zcdp_epsilon(rho: f64, delta: f64) -> Result<f64, EngineError> {
    let rho = Rho::new(rho).map_err(|e| EngineError::param("budget", e))?;
    let delta = Delta::new(delta).map_err(|e| EngineError::param("budget.delta", e))?;
    Ok(rho_to_epsilon(rho, delta)
        .map_err(|e| EngineError::param("budget", e))?
        .get())
}
