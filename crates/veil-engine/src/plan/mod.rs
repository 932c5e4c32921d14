//! Planning: from a job to what to read and aggregate ([`ScanPlan`], the non-private part,
//! as data that any engine can execute) and how to noise it ([`Plan`]).
//!
//! - `derive`: the fewest noisy measures that answer each query, and how every released
//!   aggregate is derived from them (a count and a mean share a count; a sum is measured or
//!   derived from centred measures, whichever is predicted more accurate); private
//!   partition selection thresholds a count released anyway.
//! - `budget`: the budget split across all measures of the job to minimise the predicted
//!   relative error of the released outputs (with each aggregate's `weight`), calibrated
//!   to the accountant that charges it, with each measure's grid fitted to its noise.
//! - `scan_plan`: the columns read, the retention window, the consent filter.
//!
//! For an (ε, δ) budget both noise families are planned unless the job pins one
//! (`noise = "laplace" | "gaussian"`), and the one with the lower predicted error is kept:
//!
//! - **Laplace**: discrete Laplace noise and permute-and-flip quantiles, composed by adding
//!   ε's; δ pays only for private partition selection.
//! - **Gaussian**: discrete Gaussian noise, half of δ for the privacy curve of the
//!   Gaussians (exact for their composition, checked by the PLD accountant) and half for
//!   selection; with quantiles (the exponential mechanism, `ε²/8`-zCDP) the ρ's add up in
//!   zCDP. Its noise grows with `sqrt(L0)` instead of `L0`.

use veil_accountant::{ChargeItem, MechanismProfile};
use veil_core::calibrate::epsilon_to_rho;
use veil_core::mechanism::{QuantileSelection, ThresholdMechanism};
use veil_core::{Delta, Epsilon, PrivacyLoss, Rho};

use crate::EngineError;
use crate::job::{Job, JobBudget, NoisePreference, Query};

mod budget;
mod derive;
mod describe;
mod measure;
mod noise;
mod scan_plan;

pub use crate::job::output_names_of;
pub use budget::QUANTILE_POINT_SHARE;
pub use derive::Derivation;
pub use describe::{OutputNoise, real_std};
pub use measure::{HISTOGRAM_BRANCHING, HISTOGRAM_DEPTH, Measure};
pub use noise::{JointNoise, MeasureNoise, NoiseFamily, NoisyMeasure, QuantileNoise};
pub use scan_plan::{ConsentFilter, QueryScan, ScanPlan, TimeWindow, describe_duration};
use scan_plan::{scan_plan, selects_privately};

/// The private part of one query.
#[derive(Debug, Clone, PartialEq)]
pub struct QueryPlan {
    /// The query as written in the job.
    pub query: Query,
    /// Private partition selection, for private partitions.
    pub selection: Option<ThresholdMechanism>,
    /// The released count the selection thresholds (`None`: the selection draws its own
    /// distinct-unit counts).
    pub selection_count: Option<String>,
    /// How each aggregate (in the query's order) is derived from the measures.
    pub derivations: Vec<Derivation>,
    /// The noised measures.
    pub measures: Vec<NoisyMeasure>,
}

impl QueryPlan {
    /// The noise of a measure, by key.
    #[must_use]
    pub fn noise_of(&self, key: &str) -> Option<&NoisyMeasure> {
        self.measures
            .iter()
            .find(|noisy| noisy.measure.key() == key)
    }

    /// The measures an output column (of `output_names_of`) is computed from.
    #[must_use]
    pub fn measures_of_output(&self, output: &str) -> Vec<&NoisyMeasure> {
        self.derivations
            .iter()
            .zip(&self.query.aggregates)
            .find(|(_, aggregate)| output_names_of(aggregate).iter().any(|name| name == output))
            .map(|(derivation, _)| {
                self.derivation_measures(derivation)
                    .into_iter()
                    .filter_map(|key| self.noise_of(&key))
                    .collect()
            })
            .unwrap_or_default()
    }

    /// The keys of the measures a derivation's outputs depend on: its own, and for
    /// quantiles with value intervals the count their ends aim by (which also decides how
    /// much of the ends' budget the point takes).
    #[must_use]
    pub fn derivation_measures(&self, derivation: &Derivation) -> Vec<String> {
        let mut keys: Vec<String> = derivation
            .measures()
            .into_iter()
            .map(str::to_string)
            .collect();
        if let Derivation::Quantiles { histogram } = derivation
            && let Some(noisy) = self.noise_of(histogram)
            && let MeasureNoise::Quantile(QuantileNoise {
                interval: Some(_), ..
            }) = &noisy.noise
            && let Some(column) = noisy.measure.column()
            && let Some(count) = self.interval_count(column)
        {
            keys.push(count.measure.key());
        }
        keys
    }

    /// How an aggregate is computed from its measures, in words ([`Derivation::formula`]),
    /// naming the selection a quantile's plan draws with (permute-and-flip under pure ε,
    /// the exponential mechanism under zCDP).
    #[must_use]
    pub fn formula_of(&self, derivation: &Derivation) -> String {
        if let Derivation::Quantiles { histogram } = derivation
            && let Some(MeasureNoise::Quantile(noise)) =
                self.noise_of(histogram).map(|noisy| &noisy.noise)
        {
            let selection = match noise.point.selection() {
                QuantileSelection::PermuteAndFlip => "permute-and-flip",
                QuantileSelection::Exponential => "the exponential mechanism",
            };
            return format!("{selection} on {histogram}");
        }
        derivation.formula()
    }

    /// The released count that the value interval ends of `column`'s quantiles aim by
    /// ([`QueryPlan::interval_count_or_why`] without the reason). `None`: no end is drawn
    /// and the point takes the ends' budget.
    #[must_use]
    pub fn interval_count(&self, column: &str) -> Option<&NoisyMeasure> {
        self.interval_count_or_why(column).ok()
    }

    /// The released count that the value interval ends of `column`'s quantiles aim by:
    /// [`Measure::interval_count`] among the plan's measures, unless it is drawn jointly
    /// with the count selection thresholds (given that the group passed, such a count
    /// leans up, so it would not bound the group's rows from below as stated); otherwise
    /// why there is none.
    ///
    /// # Errors
    /// [`Unaimed`], the reason no count can aim the ends.
    pub fn interval_count_or_why(&self, column: &str) -> Result<&NoisyMeasure, Unaimed> {
        let selection = self.selection_count.as_deref();
        let key = Measure::interval_count(&self.query, column, selection, |key| {
            self.noise_of(key).is_some()
        })?;
        let count = self.noise_of(&key).ok_or(Unaimed::NotReleased)?;
        let with_selection = selection
            .and_then(|selection| self.noise_of(selection))
            .is_some_and(|noisy| match &noisy.noise {
                MeasureNoise::Joint(joint) => joint.keys.contains(&key),
                _ => false,
            });
        if with_selection {
            return Err(Unaimed::DrawnWithSelected);
        }
        Ok(count)
    }
}

/// Why a quantile's value interval ends have no released count to aim by.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Unaimed {
    /// The count of the column's rows is the one selection thresholds.
    Selected,
    /// It is drawn jointly with the count selection thresholds.
    DrawnWithSelected,
    /// The query releases no count of the column's rows.
    NotReleased,
}

/// What the plan claims the whole job costs, and how that was computed.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum PlannedCost {
    /// Σ ε of Laplace mechanisms (and of Laplace thresholding), Σ δ of thresholding.
    Basic {
        /// Total ε.
        epsilon: f64,
        /// Total δ.
        delta: f64,
    },
    /// Σ ρ of Gaussian mechanisms, converted to ε at `conversion_delta`, plus the δ of
    /// Gaussian thresholding.
    Zcdp {
        /// Total ρ.
        rho: f64,
        /// The δ at which ρ was converted (zero for a ρ budget).
        conversion_delta: f64,
        /// The resulting ε (zero for a ρ budget).
        epsilon: f64,
        /// The δ of partition selection.
        selection_delta: f64,
    },
}

/// A planned job: what to scan, and how to noise each query.
#[derive(Debug, Clone, PartialEq)]
pub struct Plan {
    /// The non-private part.
    pub scan: ScanPlan,
    /// The noise family.
    pub family: NoiseFamily,
    /// One entry per query.
    pub queries: Vec<QueryPlan>,
    /// The job's cost as planned.
    pub cost: PlannedCost,
    /// The pure ε that the job's `auto` bounds spend together (0 without any), on top of
    /// the queries' noise (the queries get the rest of the budget).
    pub auto_epsilon: f64,
}

impl Plan {
    /// The charge items of this plan, one per noised measure and per selection, for the
    /// ledger.
    #[must_use]
    pub fn charge_items(&self) -> Vec<ChargeItem> {
        let mut items = Vec::new();
        if let Ok(epsilon) = Epsilon::new(self.auto_epsilon) {
            items.push(ChargeItem {
                label: "auto_bounds".to_string(),
                profile: MechanismProfile::Guarantee(PrivacyLoss::Pure(epsilon)),
                times: 1,
            });
        }
        for query in &self.queries {
            if let Some(selection) = &query.selection {
                let label = format!("{}.partition_selection", query.query.name);
                let presence = || {
                    MechanismProfile::Guarantee(PrivacyLoss::Approx(
                        Epsilon::new(f64::MIN_POSITIVE).expect("positive"),
                        selection.delta(),
                    ))
                };
                match (&query.selection_count, selection.noise_loss()) {
                    // Thresholding a released count costs its δ alone (the count is charged
                    // as a measure below).
                    (Some(_), _) => items.push(ChargeItem {
                        label,
                        profile: presence(),
                        times: 1,
                    }),
                    (None, PrivacyLoss::Pure(epsilon)) => items.push(ChargeItem {
                        label,
                        profile: MechanismProfile::Guarantee(PrivacyLoss::Approx(
                            epsilon,
                            selection.delta(),
                        )),
                        times: 1,
                    }),
                    (None, loss) => {
                        items.push(ChargeItem {
                            label: format!("{label}.counts"),
                            profile: MechanismProfile::Guarantee(loss),
                            times: 1,
                        });
                        items.push(ChargeItem {
                            label: format!("{label}.presence"),
                            profile: presence(),
                            times: 1,
                        });
                    }
                }
            }
            items.extend(
                query
                    .measures
                    .iter()
                    .filter_map(|noisy| noisy.charge_item(&query.query.name)),
            );
        }
        items
    }
}

/// Plans a job: checks it, derives its measures, splits its budget and calibrates the
/// noise. Reads nothing.
///
/// # Errors
/// [`EngineError::InvalidJob`] or [`EngineError::Param`] naming the job key at fault.
pub fn plan(job: &Job) -> Result<Plan, EngineError> {
    job.validate()?;
    let private_queries = job
        .queries
        .iter()
        .filter(|query| selects_privately(query))
        .count();
    let families: Vec<NoiseFamily> = match (job.budget, job.noise) {
        (JobBudget::Pure(_), NoisePreference::Gaussian) => {
            return Err(EngineError::invalid(
                "budget.noise",
                "Gaussian noise needs a δ > 0 (or a ρ budget): add `delta = 1e-6`, or use noise = \"laplace\"",
            ));
        }
        (JobBudget::Zcdp(_), NoisePreference::Laplace) => {
            return Err(EngineError::invalid(
                "budget.noise",
                "a ρ-zCDP budget is spent by Gaussian noise: use noise = \"gaussian\" (or \"auto\"), or budget epsilon instead",
            ));
        }
        (JobBudget::Pure(_), _) | (JobBudget::Approx(..), NoisePreference::Laplace) => {
            vec![NoiseFamily::Laplace]
        }
        (JobBudget::Zcdp(_), _) | (JobBudget::Approx(..), NoisePreference::Gaussian) => {
            vec![NoiseFamily::Gaussian]
        }
        (JobBudget::Approx(_, delta), NoisePreference::Auto) if delta.get() == 0.0 => {
            vec![NoiseFamily::Laplace]
        }
        (JobBudget::Approx(..), NoisePreference::Auto) => {
            vec![NoiseFamily::Laplace, NoiseFamily::Gaussian]
        }
    };
    if let Some(index) = job.queries.iter().position(selects_privately) {
        match job.budget {
            JobBudget::Pure(_) => {
                return Err(EngineError::invalid(
                    format!("query[{index}].partitions"),
                    "private partitions need a delta > 0 in [budget] (choosing groups privately always costs some δ); add `delta = 1e-6` or give public partitions",
                ));
            }
            JobBudget::Zcdp(_) => {
                return Err(EngineError::invalid(
                    format!("query[{index}].partitions"),
                    "private partitions need an (epsilon, delta) budget: a ρ-zCDP budget cannot pay the δ of partition selection; give public partitions or budget epsilon and delta",
                ));
            }
            JobBudget::Approx(..) => {}
        }
    }
    // `auto` bounds take a stated share of the budget, pure ε; the queries get the rest.
    let (job, auto_epsilon) = &without_auto_share(job)?;
    let mut best: Option<(f64, Plan)> = None;
    for family in families {
        let mut candidate = plan_in(job, family, private_queries)?;
        candidate.1.auto_epsilon = *auto_epsilon;
        candidate.1.cost = with_auto(candidate.1.cost, *auto_epsilon);
        if best
            .as_ref()
            .is_none_or(|(objective, _)| candidate.0 < *objective * (1.0 - 1e-9))
        {
            best = Some(candidate);
        }
    }
    best.map(|(_, plan)| plan)
        .ok_or_else(|| EngineError::Internal("no noise family to plan".into()))
}

/// The job with its budget reduced by what its `auto` bounds spend, and that spend as a
/// pure ε.
fn without_auto_share(job: &Job) -> Result<(Job, f64), EngineError> {
    if job.auto_choices() == 0 {
        return Ok((job.clone(), 0.0));
    }
    let share = crate::job::AUTO_SHARE;
    let mut rest = job.clone();
    let scaled = |epsilon: Epsilon| {
        Epsilon::new(epsilon.get() * (1.0 - share))
            .map_err(|e| EngineError::param("budget.epsilon", e))
    };
    let auto_epsilon = match job.budget {
        JobBudget::Pure(epsilon) => {
            rest.budget = JobBudget::Pure(scaled(epsilon)?);
            epsilon.get() * share
        }
        JobBudget::Approx(epsilon, delta) => {
            rest.budget = JobBudget::Approx(scaled(epsilon)?, delta);
            epsilon.get() * share
        }
        JobBudget::Zcdp(rho) => {
            // A pure ε-DP choice is ε²/2-zCDP.
            rest.budget = JobBudget::Zcdp(
                Rho::new(rho.get() * (1.0 - share))
                    .map_err(|e| EngineError::param("budget.rho", e))?,
            );
            (2.0 * rho.get() * share).sqrt()
        }
    };
    Ok((rest, auto_epsilon.next_down()))
}

/// A planned cost with the pure ε of `auto` bounds added (basic composition: never less
/// than the true cost).
fn with_auto(cost: PlannedCost, auto_epsilon: f64) -> PlannedCost {
    if auto_epsilon <= 0.0 {
        return cost;
    }
    match cost {
        PlannedCost::Basic { epsilon, delta } => PlannedCost::Basic {
            epsilon: epsilon + auto_epsilon,
            delta,
        },
        PlannedCost::Zcdp {
            rho,
            conversion_delta,
            epsilon,
            selection_delta,
        } => PlannedCost::Zcdp {
            rho: rho + auto_epsilon * auto_epsilon / 2.0,
            conversion_delta,
            epsilon: if epsilon > 0.0 {
                epsilon + auto_epsilon
            } else {
                0.0
            },
            selection_delta,
        },
    }
}

/// The plan in one family, with its objective (lower is better).
fn plan_in(
    job: &Job,
    family: NoiseFamily,
    private_queries: usize,
) -> Result<(f64, Plan), EngineError> {
    // Each query's sums take the form its outputs are predicted best answered by, alone.
    let mut designs = Vec::new();
    for query in &job.queries {
        let sums = derive::sums_of(query).min(4);
        let mut best: Option<(f64, derive::Design)> = None;
        for choice in 0..(1_usize << sums) {
            let forms: Vec<derive::SumForm> = (0..derive::sums_of(query))
                .map(|index| {
                    if index < sums && choice & (1 << index) != 0 {
                        derive::SumForm::Centered
                    } else {
                        derive::SumForm::Measured
                    }
                })
                .collect();
            let design = derive::design(query, &forms, selects_privately(query))?;
            let value = budget::design_objective(&[(query, &design)], family);
            // A derived form must do better, not merely as well (ties keep the measured
            // sum: fewer measures, simpler to explain).
            if best
                .as_ref()
                .is_none_or(|(best, _)| value < *best * (1.0 - 1e-9))
            {
                best = Some((value, design));
            }
        }
        designs.push(best.map(|(_, design)| design).ok_or_else(|| {
            EngineError::Internal(format!("query {:?} has no design", query.name))
        })?);
    }
    let pairs: Vec<(&Query, &derive::Design)> = job.queries.iter().zip(&designs).collect();
    let has_quantiles_or_separate = designs.iter().any(|design| {
        design.separate_selection
            || design
                .measures
                .iter()
                .any(|measure| matches!(measure, Measure::Histogram { .. }))
    });
    let (planned, cost) = match (family, job.budget) {
        (NoiseFamily::Laplace, JobBudget::Pure(epsilon)) => {
            let planned = budget::plan_family(&pairs, budget::Spend::Epsilon(epsilon.get()), 0.0)?;
            let cost = PlannedCost::Basic {
                epsilon: planned.total,
                delta: 0.0,
            };
            (planned, cost)
        }
        (NoiseFamily::Laplace, JobBudget::Approx(epsilon, delta)) => {
            let selection_delta = if private_queries > 0 {
                delta.get()
            } else {
                0.0
            };
            let planned = budget::plan_family(
                &pairs,
                budget::Spend::Epsilon(epsilon.get()),
                selection_delta,
            )?;
            let cost = PlannedCost::Basic {
                epsilon: planned.total,
                delta: planned.selection_delta,
            };
            (planned, cost)
        }
        (NoiseFamily::Gaussian, JobBudget::Zcdp(rho)) => {
            let planned = budget::plan_family(&pairs, budget::Spend::Rho(rho.get()), 0.0)?;
            let cost = PlannedCost::Zcdp {
                rho: planned.total,
                conversion_delta: 0.0,
                epsilon: 0.0,
                selection_delta: 0.0,
            };
            (planned, cost)
        }
        (NoiseFamily::Gaussian, JobBudget::Approx(epsilon, delta)) => {
            let selection_delta = if private_queries > 0 {
                delta.get() / 2.0
            } else {
                0.0
            };
            let conversion_delta = delta.get() - selection_delta;
            let conversion =
                Delta::new(conversion_delta).map_err(|e| EngineError::param("budget.delta", e))?;
            gaussian_in(
                &pairs,
                epsilon,
                conversion,
                selection_delta,
                !has_quantiles_or_separate,
            )?
        }
        (NoiseFamily::Laplace, JobBudget::Zcdp(_))
        | (NoiseFamily::Gaussian, JobBudget::Pure(_)) => {
            return Err(EngineError::Internal(
                "a family that cannot spend this budget".into(),
            ));
        }
    };
    let measures: Vec<Vec<Measure>> = planned
        .queries
        .iter()
        .zip(&designs)
        .map(|(query, design)| {
            let mut measures: Vec<Measure> = query
                .measures
                .iter()
                .map(|noisy| noisy.measure.clone())
                .collect();
            if design.separate_selection {
                measures.push(Measure::Units);
            }
            measures
        })
        .collect();
    let scan = scan_plan(job, measures)?;
    Ok((
        planned.objective,
        Plan {
            scan,
            family,
            queries: planned.queries,
            cost,
            auto_epsilon: 0.0,
        },
    ))
}

/// The Gaussian plan of an (ε, δ) budget: by the exact privacy curve of the Gaussians
/// (`tight`: checked by the PLD accountant, and loosened until it agrees), else in zCDP.
fn gaussian_in(
    pairs: &[(&Query, &derive::Design)],
    epsilon: Epsilon,
    conversion: Delta,
    selection_delta: f64,
    tight: bool,
) -> Result<(budget::FamilyPlan, PlannedCost), EngineError> {
    let zcdp = epsilon_to_rho(epsilon, conversion)
        .map_err(|e| EngineError::param("budget.epsilon", e))?
        .get();
    if tight {
        let mut rho = budget::gaussian_rho(epsilon, conversion)?;
        for _ in 0..40 {
            if rho <= zcdp {
                break;
            }
            let planned = budget::plan_family(pairs, budget::Spend::Rho(rho), selection_delta)?;
            if let Some(spent) = budget::gaussian_pld_epsilon(&planned.queries, conversion)
                && spent <= epsilon.get()
            {
                let cost = PlannedCost::Zcdp {
                    rho: planned.total,
                    conversion_delta: conversion.get(),
                    epsilon: spent,
                    selection_delta: planned.selection_delta,
                };
                return Ok((planned, cost));
            }
            rho *= 0.99;
        }
    }
    let planned = budget::plan_family(pairs, budget::Spend::Rho(zcdp), selection_delta)?;
    let cost = PlannedCost::Zcdp {
        rho: planned.total,
        conversion_delta: conversion.get(),
        epsilon: budget::zcdp_epsilon(planned.total, conversion.get())?,
        selection_delta: planned.selection_delta,
    };
    Ok((planned, cost))
}

#[cfg(test)]
mod tests;
