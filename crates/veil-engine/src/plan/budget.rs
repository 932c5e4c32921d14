//! The plan's private part: the budget split across queries and measures, and the noise
//! calibrated for each, in one noise family.

use veil_core::calibrate::rho_to_epsilon;
use veil_core::mechanism::{GaussianMechanism, LaplaceMechanism, ThresholdMechanism};
use veil_core::{Delta, Epsilon, L1Sensitivity, Rho};

use super::scan_plan::selects_privately;
use super::{
    HISTOGRAM_DEPTH, Measure, MeasureNoise, NoiseFamily, NoisyMeasure, Plan, PlannedCost,
    QueryPlan, ScanPlan,
};
use crate::EngineError;
use crate::job::{Job, Query};

/// The sum of log noise standard deviations (and log units needed per selection): lower
/// is better. Both families plan the same measures, so the comparison is like for like.
pub(super) fn score(plan: &Plan) -> f64 {
    plan.queries
        .iter()
        .map(|query| {
            let measures: f64 = query
                .measures
                .iter()
                .map(|noisy| noisy.noise.std_dev().max(1e-12).ln())
                .sum();
            #[allow(clippy::cast_precision_loss)]
            let selection = query
                .selection
                .as_ref()
                .map_or(0.0, |selection| (selection.units_for_half() as f64).ln());
            measures + selection
        })
        .sum()
}

/// Each query's share of the budget and how many parts it is split into.
fn shares(job: &Job, scan: &ScanPlan) -> Vec<(f64, usize)> {
    let total_weight: f64 = job.queries.iter().map(|query| query.weight).sum();
    job.queries
        .iter()
        .zip(&scan.queries)
        .map(|(query, query_scan)| {
            let noised = query_scan
                .measures
                .iter()
                .filter(|measure| **measure != Measure::Units)
                .count();
            let has_units = query_scan.measures.contains(&Measure::Units);
            let parts = noised + usize::from(has_units || selects_privately(query));
            (query.weight / total_weight, parts.max(1))
        })
        .collect()
}

/// The budget parts of one family's plan, spent query by query and measure by measure.
struct Spent {
    queries: Vec<QueryPlan>,
    /// Σ ε (Laplace) or Σ ρ (Gaussian) of all mechanisms.
    total: f64,
    /// Σ δ of partition selection.
    delta: f64,
}

/// `whole / parts`, rounded down so that `parts` of them never add up past `whole`: neither
/// exactly (`part * parts`) nor as a running floating-point sum, the way an accountant adds
/// them up (whose rounding could otherwise refuse a job that spends exactly its budget).
pub(super) fn part_of(whole: f64, parts: usize) -> f64 {
    #[allow(clippy::cast_precision_loss)]
    let count = parts as f64;
    let mut part = whole / count;
    let exceeds = |part: f64| {
        part.mul_add(count, -whole) > 0.0 || std::iter::repeat_n(part, parts).sum::<f64>() > whole
    };
    // Each step lowers the part by one ulp; the running sum's rounding error is at most
    // `parts` ulps of the whole, so this ends within a few dozen steps.
    while exceeds(part) {
        part = part.next_down();
    }
    part
}

/// Plans every query in `family`, splitting `total` (ε for Laplace, ρ for Gaussian) by the
/// queries' shares and then evenly across each query's parts, and `selection_delta`
/// evenly across the queries that select partitions privately.
fn plan_queries(
    job: &Job,
    scan: &ScanPlan,
    family: NoiseFamily,
    total: f64,
    selection_delta: f64,
) -> Result<Spent, EngineError> {
    let private_queries = job
        .queries
        .iter()
        .filter(|query| selects_privately(query))
        .count()
        .max(1);
    let mut spent = Spent {
        queries: Vec::new(),
        total: 0.0,
        delta: 0.0,
    };
    for ((query, query_scan), (share, parts)) in
        job.queries.iter().zip(&scan.queries).zip(shares(job, scan))
    {
        let part = part_of(total * share, parts);
        let l0 = u128::from(query.bounds.max_groups_per_unit);
        let selection = if selects_privately(query) {
            #[allow(clippy::cast_precision_loss)]
            let query_delta = Delta::new(selection_delta / private_queries as f64)
                .map_err(|e| EngineError::param("budget.delta", e))?;
            let max_partitions = u64::from(query.bounds.max_groups_per_unit);
            let mechanism = match family {
                NoiseFamily::Laplace => {
                    let epsilon =
                        Epsilon::new(part).map_err(|e| EngineError::param("budget.epsilon", e))?;
                    ThresholdMechanism::laplace(max_partitions, epsilon, query_delta)
                }
                NoiseFamily::Gaussian => {
                    let rho = Rho::new(part).map_err(|e| EngineError::param("budget", e))?;
                    ThresholdMechanism::gaussian(max_partitions, rho, query_delta)
                }
            }
            .map_err(|e| {
                EngineError::param(format!("query {:?}: partition selection", query.name), e)
            })?;
            spent.total += part;
            spent.delta += query_delta.get();
            Some(mechanism)
        } else {
            None
        };
        let mut measures = Vec::new();
        for measure in &query_scan.measures {
            if *measure == Measure::Units && selection.is_some() {
                continue;
            }
            let per_group = measure.per_group_bound(query.bounds);
            let levels = if matches!(measure, Measure::Histogram { .. }) {
                u128::from(HISTOGRAM_DEPTH)
            } else {
                1
            };
            let named =
                |e| EngineError::param(format!("query {:?}: {}", query.name, measure.key()), e);
            let (noise, sensitivity) = match family {
                NoiseFamily::Laplace => {
                    // L1: one unit moves at most L0 groups, each by `per_group` per level.
                    let sensitivity = l0 * per_group * levels;
                    let l1 =
                        u64::try_from(sensitivity).map_err(|_| too_sensitive(query, measure))?;
                    let epsilon =
                        Epsilon::new(part).map_err(|e| EngineError::param("budget.epsilon", e))?;
                    (
                        MeasureNoise::Laplace(
                            LaplaceMechanism::new(L1Sensitivity::integer(l1), epsilon)
                                .map_err(named)?,
                        ),
                        sensitivity,
                    )
                }
                NoiseFamily::Gaussian => {
                    // Squared L2: L0 groups, each moved by `per_group` per level.
                    let sensitivity = per_group
                        .checked_mul(per_group)
                        .and_then(|square| square.checked_mul(l0 * levels))
                        .ok_or_else(|| too_sensitive(query, measure))?;
                    let rho = Rho::new(part).map_err(|e| EngineError::param("budget", e))?;
                    (
                        MeasureNoise::Gaussian(
                            GaussianMechanism::new_zcdp_squared(sensitivity, rho).map_err(named)?,
                        ),
                        sensitivity,
                    )
                }
            };
            spent.total += part;
            measures.push(NoisyMeasure {
                measure: measure.clone(),
                noise,
                sensitivity,
            });
        }
        spent.queries.push(QueryPlan {
            query: query.clone(),
            selection,
            measures,
        });
    }
    Ok(spent)
}

pub(super) fn laplace_plan(
    job: &Job,
    scan: ScanPlan,
    epsilon: Epsilon,
    delta: Option<Delta>,
) -> Result<Plan, EngineError> {
    let spent = plan_queries(
        job,
        &scan,
        NoiseFamily::Laplace,
        epsilon.get(),
        delta.map_or(0.0, Delta::get),
    )?;
    Ok(Plan {
        scan,
        family: NoiseFamily::Laplace,
        queries: spent.queries,
        cost: PlannedCost::Basic {
            epsilon: spent.total,
            delta: spent.delta,
        },
    })
}

pub(super) fn gaussian_plan(
    job: &Job,
    scan: ScanPlan,
    rho: Rho,
    conversion_delta: f64,
    selection_delta: f64,
) -> Result<Plan, EngineError> {
    let spent = plan_queries(
        job,
        &scan,
        NoiseFamily::Gaussian,
        rho.get(),
        selection_delta,
    )?;
    let epsilon = if conversion_delta > 0.0 {
        let rho = Rho::new(spent.total).map_err(|e| EngineError::param("budget", e))?;
        let delta =
            Delta::new(conversion_delta).map_err(|e| EngineError::param("budget.delta", e))?;
        rho_to_epsilon(rho, delta)
            .map_err(|e| EngineError::param("budget", e))?
            .get()
    } else {
        0.0
    };
    Ok(Plan {
        scan,
        family: NoiseFamily::Gaussian,
        queries: spent.queries,
        cost: PlannedCost::Zcdp {
            rho: spent.total,
            conversion_delta,
            epsilon,
            selection_delta: spent.delta,
        },
    })
}

fn too_sensitive(query: &Query, measure: &Measure) -> EngineError {
    EngineError::invalid(
        format!("query {:?}", query.name),
        format!(
            "the sensitivity of {} is too large to noise exactly; lower the contribution bounds or narrow the value bounds",
            measure.key()
        ),
    )
}
