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

use std::collections::BTreeSet;

use veil_accountant::{ChargeItem, MechanismProfile};
use veil_core::calibrate::epsilon_to_rho;
use veil_core::mechanism::{
    FixedPoint, GaussianMechanism, LaplaceMechanism, Mechanism, QuantileMechanism,
    ThresholdMechanism,
};
use veil_core::{Bounds, Delta, Epsilon, PrivacyLoss, Rho};

use crate::EngineError;
use crate::job::{ContributionBounds, Job, JobBudget, NoisePreference, Query};

mod budget;
mod derive;
mod describe;
mod scan_plan;

pub use crate::job::output_names_of;
pub use budget::QUANTILE_POINT_SHARE;
pub use derive::Derivation;
pub use describe::{OutputNoise, real_std};
pub use scan_plan::describe_duration;
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
        /// The bounds its values are clamped to.
        bounds: Bounds,
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
        /// The bounds its values are clamped to.
        bounds: Bounds,
        /// The grid.
        grid: FixedPoint,
    },
    /// Σ of `(2·steps − lower − upper)²`, on a coarser grid.
    CenteredSquares {
        /// The column.
        column: String,
        /// The bounds its values are clamped to.
        bounds: Bounds,
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
    /// The count of `query`'s rows that have a value in `column`: the rows themselves when
    /// the query drops rows missing it (`drop_missing`), else the column's value count.
    #[must_use]
    pub fn count_of(query: &Query, column: &str) -> Self {
        if query.drop_missing.iter().any(|dropped| dropped == column) {
            Self::Rows
        } else {
            Self::ValueCount {
                column: column.to_string(),
            }
        }
    }

    /// The name of its column in the aggregated table. Measures of one column with other
    /// bounds are other measures (`sum:value[0,100]`, `sum:value[0,1]`).
    #[must_use]
    pub fn key(&self) -> String {
        let bounded = |kind: &str, column: &str, bounds: &Bounds| {
            format!(
                "{kind}:{column}[{},{}]",
                number_text(bounds.lower()),
                number_text(bounds.upper())
            )
        };
        match self {
            Self::Rows => "rows".to_string(),
            Self::Units => "units".to_string(),
            Self::Sum { column, bounds, .. } => bounded("sum", column, bounds),
            Self::ValueCount { column } => format!("values:{column}"),
            Self::CenteredSum { column, bounds, .. } => bounded("centered_sum", column, bounds),
            Self::CenteredSquares { column, bounds, .. } => {
                bounded("centered_squares", column, bounds)
            }
            Self::Histogram { column, bounds } => bounded("histogram", column, bounds),
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

    /// How much one unit can change this measure in one group, in steps, given its bounds
    /// (for a histogram: its rows).
    #[must_use]
    pub fn per_group_bound(&self, bounds: ContributionBounds) -> u128 {
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
    /// Rows without a value in any of these columns are left out before bounding.
    pub drop_missing: Vec<String>,
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

/// The quantile draws of one histogram: per group and per level, a point and the two
/// ends of its interval.
#[derive(Debug, Clone, PartialEq)]
pub struct QuantileNoise {
    /// The point estimate's mechanism.
    pub point: QuantileMechanism,
    /// Each interval end's mechanism (the exponential mechanism, for its tail bound).
    pub interval: QuantileMechanism,
    /// Levels drawn per group (over every quantiles aggregate of this histogram).
    pub draws: f64,
    /// Groups per unit (L0).
    pub groups: f64,
}

impl QuantileNoise {
    /// What one unit can lose to every draw of every group it is in.
    #[must_use]
    pub fn loss(&self) -> PrivacyLoss {
        let times = self.groups * self.draws;
        match (self.point.loss(), self.interval.loss()) {
            (PrivacyLoss::Pure(point), _) => {
                let epsilon = times * (point.get() + 2.0 * self.interval.epsilon().get());
                Epsilon::new(epsilon.next_up()).map_or(PrivacyLoss::Pure(point), PrivacyLoss::Pure)
            }
            (PrivacyLoss::Zcdp(point), PrivacyLoss::Zcdp(interval)) => {
                let rho = times * (point.get() + 2.0 * interval.get());
                Rho::new(rho.next_up()).map_or(PrivacyLoss::Zcdp(point), PrivacyLoss::Zcdp)
            }
            (point, _) => point,
        }
    }
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
}

impl MeasureNoise {
    /// The noise standard deviation in steps (for quantiles: not a number).
    #[must_use]
    pub fn std_dev(&self) -> f64 {
        match self {
            Self::Laplace(mechanism) => mechanism.std_dev(),
            Self::Gaussian(mechanism) => mechanism.sigma(),
            Self::Quantile(_) => f64::NAN,
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
        }
    }

    /// The privacy loss of one release of the measure over every group.
    #[must_use]
    pub fn loss(&self) -> PrivacyLoss {
        match self {
            Self::Laplace(mechanism) => mechanism.loss(),
            Self::Gaussian(mechanism) => mechanism.loss(),
            Self::Quantile(noise) => noise.loss(),
        }
    }
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

impl NoisyMeasure {
    /// What the ledger charges for it: the mechanism run on each of the `L0` groups a unit
    /// can reach (so the PLD accountant composes the real shifts), or its guarantee.
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
        self.query
            .aggregates
            .iter()
            .zip(&self.derivations)
            .find(|(aggregate, _)| output_names_of(aggregate).iter().any(|name| name == output))
            .map(|(_, derivation)| {
                derivation
                    .measures()
                    .into_iter()
                    .filter_map(|key| self.noise_of(key))
                    .collect()
            })
            .unwrap_or_default()
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
            for noisy in &query.measures {
                let (profile, times) = noisy.charge();
                items.push(ChargeItem {
                    label: format!("{}.{}", query.query.name, noisy.measure.key()),
                    profile,
                    times,
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

/// A number as short text: an integer when it is one, else the shortest exact form.
fn number_text(value: f64) -> String {
    if value.fract() == 0.0 && value.abs() < 1e15 {
        #[allow(clippy::cast_possible_truncation)]
        let whole = value as i64;
        whole.to_string()
    } else {
        format!("{value}")
    }
}

#[cfg(test)]
mod tests;
