//! Planning: from a job to what to read and aggregate ([`ScanPlan`], the non-private part,
//! as data that any engine can execute) and how to noise it ([`Plan`]).
//!
//! The budget is split evenly across queries (or by their weights) and, within a query,
//! evenly across the measures it needs. For an (ε, δ) budget two noise families are
//! planned and the one with less noise is kept:
//!
//! - **Laplace**: discrete Laplace noise, composed by adding ε's; δ pays only for private
//!   partition selection (Laplace thresholding).
//! - **Gaussian**: discrete Gaussian noise accounted in zCDP, whose ρ's add up and convert
//!   to (ε, δ) at half of δ; the other half pays for Gaussian thresholding. Its noise grows
//!   with `sqrt(L0)` instead of `L0`, so it wins when units span many groups or a query has
//!   many measures.

use std::collections::BTreeSet;

use veil_accountant::{ChargeItem, MechanismProfile};
use veil_core::calibrate::epsilon_to_rho;
use veil_core::mechanism::{
    FixedPoint, GaussianMechanism, LaplaceMechanism, Mechanism, ThresholdMechanism,
};
use veil_core::{Bounds, Delta, Epsilon, PrivacyLoss};

use crate::EngineError;
use crate::job::{ContributionBounds, Job, JobBudget, Query};

mod budget;
mod scan_plan;

pub use crate::job::output_names_of;
use budget::{gaussian_plan, laplace_plan, score};
pub use scan_plan::{describe_duration, measures_for};
use scan_plan::{scan_plan, selects_privately};

/// Leaves of the quantile histogram: 16³ bins between the bounds.
pub const HISTOGRAM_BRANCHING: u32 = 16;
/// Levels of the quantile histogram tree.
pub const HISTOGRAM_DEPTH: u32 = 3;

/// A non-private per-group aggregate: what the scan computes before any noise.
#[derive(Debug, Clone, PartialEq)]
pub enum Measure {
    /// Rows per group (after bounding).
    Rows,
    /// Distinct privacy units per group.
    Units,
    /// Σ of a column's values, in steps of `grid`.
    Sum {
        /// The column.
        column: String,
        /// The grid.
        grid: FixedPoint,
    },
    /// How many rows have a value (not null, not NaN) in a column.
    ValueCount {
        /// The column.
        column: String,
    },
    /// Σ of `2·steps − lower − upper`: twice the distance to the middle of the bounds.
    CenteredSum {
        /// The column.
        column: String,
        /// The grid.
        grid: FixedPoint,
    },
    /// Σ of `(2·steps − lower − upper)²`, on a coarser grid.
    CenteredSquares {
        /// The column.
        column: String,
        /// The (coarse) grid.
        grid: FixedPoint,
    },
    /// Rows per leaf bin of a column: `branching^depth` equal bins between the bounds.
    Histogram {
        /// The column.
        column: String,
        /// The bounds.
        bounds: Bounds,
    },
}

impl Measure {
    /// The name of its column in the aggregated table.
    #[must_use]
    pub fn key(&self) -> String {
        match self {
            Self::Rows => "rows".to_string(),
            Self::Units => "units".to_string(),
            Self::Sum { column, .. } => format!("sum:{column}"),
            Self::ValueCount { column } => format!("values:{column}"),
            Self::CenteredSum { column, .. } => format!("centered_sum:{column}"),
            Self::CenteredSquares { column, .. } => format!("centered_squares:{column}"),
            Self::Histogram { column, .. } => format!("histogram:{column}"),
        }
    }

    /// The column it reads, if any.
    #[must_use]
    pub fn column(&self) -> Option<&str> {
        match self {
            Self::Rows | Self::Units => None,
            Self::Sum { column, .. }
            | Self::ValueCount { column }
            | Self::CenteredSum { column, .. }
            | Self::CenteredSquares { column, .. }
            | Self::Histogram { column, .. } => Some(column),
        }
    }

    /// How much one unit can change this measure in one group, given its bounds (for a
    /// histogram: summed over all levels of the tree).
    fn per_group_bound(&self, bounds: ContributionBounds) -> u128 {
        let rows = u128::from(bounds.max_rows_per_group);
        match self {
            Self::Rows | Self::ValueCount { .. } => rows,
            Self::Units => 1,
            Self::Sum { grid, .. } => rows * u128::from(grid.max_abs_steps()),
            Self::CenteredSum { grid, .. } => rows * u128::from(grid.width_steps()),
            Self::CenteredSquares { grid, .. } => {
                let width = u128::from(grid.width_steps());
                rows * width * width
            }
            Self::Histogram { .. } => rows,
        }
    }
}

/// The non-private part of a query: what to read, bound and aggregate per group.
#[derive(Debug, Clone, PartialEq)]
pub struct QueryScan {
    /// The query's name.
    pub name: String,
    /// Group-by columns.
    pub group_by: Vec<String>,
    /// Contribution bounds.
    pub bounds: ContributionBounds,
    /// For public partitions, the keys (as text); rows of other groups are dropped
    /// before bounding.
    pub public_keys: Option<Vec<Vec<String>>>,
    /// The per-group aggregates to compute.
    pub measures: Vec<Measure>,
}

impl QueryScan {
    /// The columns the row hash (L∞) covers, in order: the unit, the group-by columns,
    /// then each measure's column once. Every engine hashes exactly these, so that they
    /// keep the same rows.
    #[must_use]
    pub fn row_hash_columns(&self, unit: &str) -> Vec<String> {
        let mut columns = self.pair_hash_columns(unit);
        for measure in &self.measures {
            if let Some(column) = measure.column()
                && !columns.iter().any(|existing| existing == column)
            {
                columns.push(column.to_string());
            }
        }
        columns
    }

    /// The columns the unit–group hash (L0) covers, in order: the unit, then the
    /// group-by columns.
    #[must_use]
    pub fn pair_hash_columns(&self, unit: &str) -> Vec<String> {
        let mut columns = vec![unit.to_string()];
        columns.extend(self.group_by.iter().cloned());
        columns
    }
}

/// The non-private part of a job, as data: read these columns, drop rows with no privacy
/// unit, bound each unit's contribution per query, and aggregate per group. The local
/// engine executes it with Polars; another engine can execute the same plan.
#[derive(Debug, Clone, PartialEq)]
pub struct ScanPlan {
    /// The source.
    pub source: crate::job::Source,
    /// Every column read (data minimisation: nothing else is).
    pub columns: Vec<String>,
    /// Rows outside this time window are never read (retention).
    pub time_window: Option<TimeWindow>,
    /// Only units with consent in force contribute any row.
    pub consent: Option<ConsentFilter>,
    /// One entry per query.
    pub queries: Vec<QueryScan>,
}

impl ScanPlan {
    /// The columns any query aggregates, sorted, each once: the columns whose missing
    /// values a scan counts.
    #[must_use]
    pub fn value_columns(&self) -> Vec<String> {
        self.queries
            .iter()
            .flat_map(|query| query.measures.iter().filter_map(Measure::column))
            .map(str::to_string)
            .collect::<BTreeSet<_>>()
            .into_iter()
            .collect()
    }
}

/// The retention window: rows whose time is outside `[from_ms, to_ms]` (or null) are not
/// read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TimeWindow {
    /// The source's time column.
    pub column: String,
    /// The earliest time kept (as-of minus retention), in ms since the Unix epoch, UTC.
    pub from_ms: i64,
    /// The latest time kept (the as-of time).
    pub to_ms: i64,
}

/// Consent: a unit contributes only if its latest consent event for `purpose` at or before
/// `as_of_ms` is a grant. No event means no consent.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConsentFilter {
    /// The consent table and its columns.
    pub table: crate::job::Consent,
    /// The job's purpose.
    pub purpose: String,
    /// The as-of time, in ms since the Unix epoch, UTC.
    pub as_of_ms: i64,
}

impl ConsentFilter {
    /// Refuses a consent log in which `unknown` events have an action other than `grant`
    /// or `revoke` (as counted by the engine that read it).
    ///
    /// # Errors
    /// [`EngineError::InvalidJob`] naming the log and its action column if `unknown > 0`.
    pub fn check_actions(&self, unknown: u64) -> Result<(), EngineError> {
        if unknown == 0 {
            return Ok(());
        }
        Err(EngineError::InvalidJob {
            key: "consent.action_column".to_string(),
            reason: format!(
                "{unknown} rows of {} have an action other than \"grant\" or \"revoke\" in column {:?}; fix the consent log before running",
                self.table.path.display(),
                self.table.action_column
            ),
        })
    }
}

/// The noise family of a plan.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NoiseFamily {
    /// Discrete Laplace noise, ε's composed by summing.
    Laplace,
    /// Discrete Gaussian noise, accounted in zCDP.
    Gaussian,
}

impl std::fmt::Display for NoiseFamily {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Self::Laplace => "laplace",
            Self::Gaussian => "gaussian",
        })
    }
}

/// Noise for one measure.
#[derive(Debug, Clone, PartialEq)]
pub enum MeasureNoise {
    /// Discrete Laplace.
    Laplace(LaplaceMechanism),
    /// Discrete Gaussian (zCDP).
    Gaussian(GaussianMechanism),
}

impl MeasureNoise {
    /// The noise standard deviation in steps.
    #[must_use]
    pub fn std_dev(&self) -> f64 {
        match self {
            Self::Laplace(mechanism) => mechanism.std_dev(),
            Self::Gaussian(mechanism) => mechanism.sigma(),
        }
    }

    /// Half-width of the 95% interval in steps.
    #[must_use]
    pub fn ci_half_width(&self) -> f64 {
        match self {
            Self::Laplace(mechanism) => {
                mechanism.ci_half_width(veil_core::mechanism::DEFAULT_CONFIDENCE)
            }
            Self::Gaussian(mechanism) => {
                mechanism.ci_half_width(veil_core::mechanism::DEFAULT_CONFIDENCE)
            }
        }
    }

    /// The privacy loss of one release.
    #[must_use]
    pub fn loss(&self) -> PrivacyLoss {
        match self {
            Self::Laplace(mechanism) => mechanism.loss(),
            Self::Gaussian(mechanism) => mechanism.loss(),
        }
    }

    fn profile(&self) -> MechanismProfile {
        match self {
            Self::Laplace(mechanism) => MechanismProfile::DiscreteLaplace {
                scale: mechanism.scale().to_f64_up(),
                sensitivity: mechanism.sensitivity(),
            },
            Self::Gaussian(mechanism) => MechanismProfile::Guarantee(mechanism.loss()),
        }
    }
}

/// A measure and its noise.
#[derive(Debug, Clone, PartialEq)]
pub struct NoisyMeasure {
    /// The measure.
    pub measure: Measure,
    /// Its noise (for a histogram: the noise of each node of the tree).
    pub noise: MeasureNoise,
    /// The measure's sensitivity across all groups: L1 for Laplace, squared L2 for
    /// Gaussian, in steps.
    pub sensitivity: u128,
}

/// The private part of one query.
#[derive(Debug, Clone, PartialEq)]
pub struct QueryPlan {
    /// The query as written in the job.
    pub query: Query,
    /// Private partition selection, for private partitions.
    pub selection: Option<ThresholdMechanism>,
    /// The noised measures (the unit count is the selection's when there is one).
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
}

impl Plan {
    /// The charge items of this plan, one per noised measure and per selection, for the
    /// ledger.
    #[must_use]
    pub fn charge_items(&self) -> Vec<ChargeItem> {
        let mut items = Vec::new();
        for query in &self.queries {
            if let Some(selection) = &query.selection {
                let label = format!("{}.partition_selection", query.query.name);
                match selection.noise_loss() {
                    PrivacyLoss::Pure(epsilon) => items.push(ChargeItem {
                        label,
                        profile: MechanismProfile::Guarantee(PrivacyLoss::Approx(
                            epsilon,
                            selection.delta(),
                        )),
                        times: 1,
                    }),
                    loss => {
                        items.push(ChargeItem {
                            label: format!("{label}.counts"),
                            profile: MechanismProfile::Guarantee(loss),
                            times: 1,
                        });
                        items.push(ChargeItem {
                            label: format!("{label}.presence"),
                            profile: MechanismProfile::Guarantee(PrivacyLoss::Approx(
                                Epsilon::new(f64::MIN_POSITIVE).expect("positive"),
                                selection.delta(),
                            )),
                            times: 1,
                        });
                    }
                }
            }
            for noisy in &query.measures {
                items.push(ChargeItem {
                    label: format!("{}.{}", query.query.name, noisy.measure.key()),
                    profile: noisy.noise.profile(),
                    times: 1,
                });
            }
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
    let scan = scan_plan(job)?;
    let private_queries = job
        .queries
        .iter()
        .filter(|query| selects_privately(query))
        .count();
    match job.budget {
        JobBudget::Pure(epsilon) => {
            if let Some(index) = job.queries.iter().position(selects_privately) {
                return Err(EngineError::invalid(
                    format!("query[{index}].partitions"),
                    "private partitions need a delta > 0 in [budget] (choosing groups privately always costs some δ); add `delta = 1e-6` or give public partitions",
                ));
            }
            laplace_plan(job, scan, epsilon, None)
        }
        JobBudget::Zcdp(rho) => {
            if let Some(index) = job.queries.iter().position(selects_privately) {
                return Err(EngineError::invalid(
                    format!("query[{index}].partitions"),
                    "private partitions need an (epsilon, delta) budget: a ρ-zCDP budget cannot pay the δ of partition selection; give public partitions or budget epsilon and delta",
                ));
            }
            gaussian_plan(job, scan, rho, 0.0, 0.0)
        }
        JobBudget::Approx(epsilon, delta) => {
            let laplace = laplace_plan(job, scan.clone(), epsilon, Some(delta))?;
            if delta.get() == 0.0 {
                return Ok(laplace);
            }
            let selection_delta = if private_queries > 0 {
                delta.get() / 2.0
            } else {
                0.0
            };
            let conversion_delta = delta.get() - selection_delta;
            let rho = epsilon_to_rho(
                epsilon,
                Delta::new(conversion_delta).map_err(|e| EngineError::param("budget.delta", e))?,
            )
            .map_err(|e| EngineError::param("budget.epsilon", e))?;
            let gaussian = gaussian_plan(job, scan, rho, conversion_delta, selection_delta)?;
            Ok(if score(&gaussian) < score(&laplace) {
                gaussian
            } else {
                laplace
            })
        }
    }
}

#[cfg(test)]
mod tests;
