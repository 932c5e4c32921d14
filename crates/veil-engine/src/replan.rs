//! The job at another ε and other bounds: what `veil report`'s sweep and tuning ask of the
//! planner.
//!
//! The report predicts the error of a query at many (ε, bounds) pairs. Each prediction
//! needs the noise the real planner would choose there: its budget split, its
//! derivations, its noise family, its partition selection. [`replan`] plans the job
//! again with one query's ε and bounds changed, and [`aggregate_noise`] reads the plan's
//! noise back per aggregate in the column's own units, under the keys the report's error
//! model uses. Nothing here is released; it is planning only, and reads no data.

use std::collections::BTreeMap;

use veil_core::{Bounds, Epsilon};

use crate::EngineError;
use crate::job::{AggregateKind, Job, JobBudget, Query};
use crate::plan::{
    Derivation, HISTOGRAM_BRANCHING, HISTOGRAM_DEPTH, MeasureNoise, NoiseFamily, QueryPlan,
    real_std,
};

/// Groups per unit (L0) the tuning tries, besides each query's own.
pub const TUNING_MAX_GROUPS_PER_UNIT: [u32; 6] = [1, 2, 3, 5, 10, 20];
/// Rows per group (L∞) the tuning tries, besides each query's own.
pub const TUNING_MAX_ROWS_PER_GROUP: [u32; 6] = [1, 2, 5, 10, 20, 50];
/// Scales of the value bounds the tuning tries.
pub const TUNING_VALUE_SCALES: [f64; 5] = [0.25, 0.5, 1.0, 2.0, 4.0];

/// One query's bounds and ε, changed from the job's.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Alternative {
    /// The job's ε (its δ, if any, is kept).
    pub epsilon: Epsilon,
    /// The query's `max_groups_per_unit`.
    pub max_groups_per_unit: u32,
    /// The query's `max_rows_per_group`.
    pub max_rows_per_group: u32,
    /// Every value column's bounds times this (1: the job's).
    pub value_scale: f64,
}

/// The tuning's grid for one query: the defaults plus its own bounds, sorted, each once.
#[must_use]
pub fn tuning_grid(query: &Query) -> (Vec<u32>, Vec<u32>) {
    let mut l0 = TUNING_MAX_GROUPS_PER_UNIT.to_vec();
    l0.push(query.bounds.max_groups_per_unit);
    l0.sort_unstable();
    l0.dedup();
    let mut linf = TUNING_MAX_ROWS_PER_GROUP.to_vec();
    linf.push(query.bounds.max_rows_per_group);
    linf.sort_unstable();
    linf.dedup();
    (l0, linf)
}

/// The job with query `query`'s bounds and the budget's ε replaced. A ρ budget is kept as
/// it is (the report sweeps ε and refuses ρ-only jobs before it gets here).
///
/// # Errors
/// [`EngineError::InvalidJob`] if there is no such query.
pub fn job_at(job: &Job, query: usize, alternative: &Alternative) -> Result<Job, EngineError> {
    let mut job = job.clone();
    job.budget = match job.budget {
        JobBudget::Pure(_) => JobBudget::Pure(alternative.epsilon),
        JobBudget::Approx(_, delta) => JobBudget::Approx(alternative.epsilon, delta),
        JobBudget::Zcdp(rho) => JobBudget::Zcdp(rho),
    };
    let target = job
        .queries
        .get_mut(query)
        .ok_or_else(|| EngineError::InvalidJob {
            key: format!("queries[{query}]"),
            reason: "no such query".into(),
        })?;
    target.bounds.max_groups_per_unit = alternative.max_groups_per_unit;
    target.bounds.max_rows_per_group = alternative.max_rows_per_group;
    if (alternative.value_scale - 1.0).abs() > 1e-12 {
        let scale = alternative.value_scale;
        for aggregate in &mut target.aggregates {
            match &mut aggregate.kind {
                AggregateKind::Sum(column)
                | AggregateKind::Mean(column)
                | AggregateKind::Variance(column)
                | AggregateKind::Quantiles { column, .. } => {
                    column.bounds =
                        Bounds::new(column.bounds.lower() * scale, column.bounds.upper() * scale)
                            .unwrap_or(column.bounds);
                }
                AggregateKind::Count | AggregateKind::UnitCount => {}
            }
        }
    }
    Ok(job)
}

/// Plans the job with query `query` at `alternative` and returns that query's plan.
///
/// # Errors
/// What [`crate::plan::plan`] returns for the changed job.
pub fn replan(
    job: &Job,
    query: usize,
    alternative: &Alternative,
) -> Result<QueryPlan, EngineError> {
    let mut plan = crate::plan::plan(&job_at(job, query, alternative)?)?;
    if query >= plan.queries.len() {
        return Err(EngineError::Internal(format!(
            "the plan has no query {query}"
        )));
    }
    Ok(plan.queries.swap_remove(query))
}

/// The noise of one aggregate's measure in the column's own units.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct AggregateNoise {
    /// Its shape (the exponential mechanism's rank error is modelled as Laplace).
    pub family: NoiseFamily,
    /// For a measure drawn jointly with others (`MeasureNoise::Joint`), how many answers
    /// the draw holds: its law is then one coordinate of the ℓ∞ K-norm law, not a Laplace.
    pub joint: Option<usize>,
    /// For a measure of a plateau or staircase law's draw, its answer's shape (a plain
    /// joint coordinate of the same deviation differs: a plateau's answer is flatter and
    /// the rest more peaked; a staircase's median is lower where the planner draws it at a
    /// count of 5 rows, and its lattice coarser).
    pub shape: Option<veil_core::mechanism::AnswerShape>,
    /// Its standard deviation (counts in rows, sums in the column's units).
    pub std: f64,
}

/// The noise of each aggregate of a planned query as the report reads it: under the keys
/// of the measures the aggregate would have had alone (`rows`, `units`, `sum:NAME`,
/// `values:NAME`, `centered_sum:NAME`, `centered_squares:NAME`, `histogram:NAME`), from
/// the plan's shared and derived measures.
///
/// A sum derived from a value count `C` and a centred sum `S` (`sum = m·C + S`, `m` the
/// middle of the bounds) has the standard deviation `hypot(m·σ_C, σ_S)`. A quantile drawn
/// by the exponential mechanism is given to the report's histogram model as the node noise
/// whose rank spread at the median equals the draw's typical rank error, `√2·L∞/ε`.
#[must_use]
pub fn aggregate_noise(query: &QueryPlan) -> BTreeMap<String, AggregateNoise> {
    let family = |noise: &MeasureNoise| match noise {
        MeasureNoise::Gaussian(_) => NoiseFamily::Gaussian,
        MeasureNoise::Laplace(_) | MeasureNoise::Quantile(_) | MeasureNoise::Joint(_) => {
            NoiseFamily::Laplace
        }
    };
    // A measure's noise in real units: counts in rows, sums in the column's units.
    let real = |key: &str| -> Option<AggregateNoise> {
        let noise = &query.noise_of(key)?.noise;
        Some(AggregateNoise {
            family: family(noise),
            joint: match noise {
                MeasureNoise::Joint(joint) => Some(joint.keys.len()),
                _ => None,
            },
            shape: match noise {
                MeasureNoise::Joint(joint) => joint.mechanism.answer_shape(joint.index),
                _ => None,
            },
            std: real_std(query, key)?,
        })
    };
    let mut noise = BTreeMap::new();
    for key in ["rows", "units"] {
        if let Some(found) = real(key) {
            noise.insert(key.to_string(), found);
        }
    }
    for (aggregate, derivation) in query.query.aggregates.iter().zip(&query.derivations) {
        let Some(column) = aggregate.kind.column() else {
            continue;
        };
        let name = &column.name;
        match derivation {
            Derivation::Sum { sum } => {
                if let Some(found) = real(sum) {
                    noise.insert(format!("sum:{name}"), found);
                }
            }
            Derivation::CenteredSum { count, centered } => {
                if let (Some(count), Some(centered)) = (real(count), real(centered)) {
                    let middle = f64::midpoint(column.bounds.lower(), column.bounds.upper());
                    noise.insert(
                        format!("sum:{name}"),
                        AggregateNoise {
                            family: centered.family,
                            joint: centered.joint,
                            // Two answers' noises added: modelled as one plain coordinate.
                            shape: None,
                            std: (middle * count.std).hypot(centered.std),
                        },
                    );
                }
            }
            Derivation::Mean { count, centered }
            | Derivation::Variance {
                count, centered, ..
            } => {
                if let (Some(count), Some(centered)) = (real(count), real(centered)) {
                    noise.insert(format!("values:{name}"), count);
                    noise.insert(format!("centered_sum:{name}"), centered);
                }
                if let Derivation::Variance { squares, .. } = derivation
                    && let Some(squares) = real(squares)
                {
                    noise.insert(format!("centered_squares:{name}"), squares);
                }
            }
            Derivation::Quantiles { histogram } => {
                if let Some(noisy) = query.noise_of(histogram)
                    && let MeasureNoise::Quantile(quantile) = &noisy.noise
                {
                    let rank_std = std::f64::consts::SQRT_2
                        * f64::from(query.query.bounds.max_rows_per_group)
                        / quantile.point.epsilon().get();
                    let (branching, depth) =
                        (f64::from(HISTOGRAM_BRANCHING), f64::from(HISTOGRAM_DEPTH));
                    let per_node =
                        (((branching - 1.0) * depth).sqrt() / 2.0).hypot(0.5 * branching.sqrt());
                    noise.insert(
                        format!("histogram:{name}"),
                        AggregateNoise {
                            family: family(&noisy.noise),
                            joint: None,
                            shape: None,
                            std: rank_std / per_node,
                        },
                    );
                }
            }
            Derivation::Count { .. } | Derivation::UnitCount { .. } => {}
        }
    }
    noise
}

#[cfg(test)]
mod tests;
