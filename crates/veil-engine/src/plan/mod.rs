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
use veil_core::calibrate::{epsilon_to_rho, rho_to_epsilon};
use veil_core::mechanism::{
    FixedPoint, GaussianMechanism, Granularity, LaplaceMechanism, Mechanism, ThresholdMechanism,
};
use veil_core::{Bounds, Delta, Epsilon, L1Sensitivity, PrivacyLoss, Rho};

use crate::EngineError;
use crate::job::{AggregateKind, ContributionBounds, Job, JobBudget, Partitions, Query};

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
    validate(job)?;
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

/// The sum of log noise standard deviations (and log units needed per selection): lower
/// is better. Both families plan the same measures, so the comparison is like for like.
fn score(plan: &Plan) -> f64 {
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

/// Checks what the types cannot: names, bounds, duplicates.
fn validate(job: &Job) -> Result<(), EngineError> {
    if job.queries.is_empty() {
        return Err(EngineError::invalid(
            "query",
            "the job has no [[query]]: add at least one",
        ));
    }
    let mut names = BTreeSet::new();
    for (index, query) in job.queries.iter().enumerate() {
        let key = format!("query[{index}]");
        if query.name.trim().is_empty() {
            return Err(EngineError::invalid(
                format!("{key}.name"),
                "a query needs a non-empty name",
            ));
        }
        if !query
            .name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
        {
            return Err(EngineError::invalid(
                format!("{key}.name"),
                format!(
                    "{:?} names an output file: use letters, digits, '_' and '-' only",
                    query.name
                ),
            ));
        }
        if !names.insert(query.name.as_str()) {
            return Err(EngineError::invalid(
                format!("{key}.name"),
                format!("duplicate query name {:?}", query.name),
            ));
        }
        if query.bounds.max_groups_per_unit == 0 {
            return Err(EngineError::invalid(
                format!("{key}.max_groups_per_unit"),
                "must be at least 1",
            ));
        }
        if query.bounds.max_rows_per_group == 0 {
            return Err(EngineError::invalid(
                format!("{key}.max_rows_per_group"),
                "must be at least 1",
            ));
        }
        if !(query.weight.is_finite() && query.weight > 0.0) {
            return Err(EngineError::invalid(
                format!("{key}.weight"),
                format!("{} must be finite and > 0", query.weight),
            ));
        }
        let mut seen = BTreeSet::new();
        for column in &query.group_by {
            if *column == job.source.privacy_unit {
                return Err(EngineError::invalid(
                    format!("{key}.group_by"),
                    format!(
                        "{column:?} is the privacy unit: grouping by it would release one row per person"
                    ),
                ));
            }
            if !seen.insert(column) {
                return Err(EngineError::invalid(
                    format!("{key}.group_by"),
                    format!("{column:?} appears twice"),
                ));
            }
        }
        if query.aggregates.is_empty() {
            return Err(EngineError::invalid(
                format!("{key}.aggregates"),
                "a query needs at least one aggregate",
            ));
        }
        if let Partitions::Public { keys, origin } = &query.partitions {
            if query.group_by.is_empty() {
                return Err(EngineError::invalid(
                    format!("{key}.partitions"),
                    "public partitions need group_by columns to match",
                ));
            }
            for (row, values) in keys.iter().enumerate() {
                if values.len() != query.group_by.len() {
                    return Err(EngineError::invalid(
                        format!("{key}.partitions"),
                        format!(
                            "key {} of {origin} has {} values for {} group_by columns",
                            row + 1,
                            values.len(),
                            query.group_by.len()
                        ),
                    ));
                }
            }
        }
        let mut output_names = BTreeSet::new();
        for (aggregate_index, aggregate) in query.aggregates.iter().enumerate() {
            let aggregate_key = format!("{key}.aggregates[{aggregate_index}]");
            if let Some(column) = aggregate.kind.column() {
                if column.name == job.source.privacy_unit {
                    return Err(EngineError::invalid(
                        format!("{aggregate_key}.column"),
                        format!(
                            "{:?} is the privacy unit: aggregate another column",
                            column.name
                        ),
                    ));
                }
                if column.bounds.lower() >= column.bounds.upper() {
                    return Err(EngineError::invalid(
                        format!("{aggregate_key}.bounds"),
                        format!(
                            "[{}, {}] is empty: the lower bound must be below the upper bound",
                            column.bounds.lower(),
                            column.bounds.upper()
                        ),
                    ));
                }
            }
            if let AggregateKind::Quantiles { levels, .. } = &aggregate.kind {
                if levels.is_empty() {
                    return Err(EngineError::invalid(
                        format!("{aggregate_key}.q"),
                        "give at least one quantile level, e.g. q = [0.5]",
                    ));
                }
                for level in levels {
                    if !(0.0..=1.0).contains(level) {
                        return Err(EngineError::invalid(
                            format!("{aggregate_key}.q"),
                            format!("{level} is not in [0, 1]"),
                        ));
                    }
                }
            }
            for name in output_names_of(aggregate) {
                if !output_names.insert(name.clone()) || query.group_by.contains(&name) {
                    return Err(EngineError::invalid(
                        format!("{aggregate_key}.name"),
                        format!(
                            "output column {name:?} appears twice in query {:?}; set `name` to tell them apart",
                            query.name
                        ),
                    ));
                }
            }
        }
    }
    Ok(())
}

/// The value columns an aggregate writes (each also gets `_std`, `_ci_low`, `_ci_high`).
#[must_use]
pub fn output_names_of(aggregate: &crate::job::Aggregate) -> Vec<String> {
    match &aggregate.kind {
        AggregateKind::Quantiles { column, levels } => levels
            .iter()
            .map(|level| {
                let percent = level * 100.0;
                let label = if (percent - percent.round()).abs() < 1e-9 {
                    format!("{percent:.0}")
                } else {
                    format!("{percent}").replace('.', "_")
                };
                if aggregate.name == aggregate.kind.default_name() {
                    format!("q{label}_{}", column.name)
                } else {
                    format!("{}_q{label}", aggregate.name)
                }
            })
            .collect(),
        _ => vec![aggregate.name.clone()],
    }
}

/// The measures a query needs, without duplicates, in a stable order.
fn measures_of(query: &Query) -> Result<Vec<Measure>, EngineError> {
    let mut measures: Vec<Measure> = Vec::new();
    for (index, aggregate) in query.aggregates.iter().enumerate() {
        let key = format!("query {:?}, aggregates[{index}]", query.name);
        for measure in measures_for(&aggregate.kind, &key)? {
            if !measures
                .iter()
                .any(|existing| existing.key() == measure.key())
            {
                measures.push(measure);
            }
        }
    }
    Ok(measures)
}

/// The measures one aggregate is computed from (a mean from a value count and a centered
/// sum, a variance from those and centered squares, ...).
///
/// # Errors
/// [`EngineError::Param`] naming `key` if the aggregate's bounds give no fixed-point grid.
pub fn measures_for(kind: &AggregateKind, key: &str) -> Result<Vec<Measure>, EngineError> {
    Ok(match kind {
        AggregateKind::Count => vec![Measure::Rows],
        AggregateKind::UnitCount => vec![Measure::Units],
        AggregateKind::Sum(column) => {
            let grid = FixedPoint::new(column.bounds, Granularity::for_bounds(column.bounds))
                .map_err(|e| EngineError::param(format!("{key}.bounds"), e))?;
            vec![Measure::Sum {
                column: column.name.clone(),
                grid,
            }]
        }
        AggregateKind::Mean(column) | AggregateKind::Variance(column) => {
            let mut measures = vec![
                Measure::ValueCount {
                    column: column.name.clone(),
                },
                Measure::CenteredSum {
                    column: column.name.clone(),
                    grid: width_grid(column.bounds, 16, key)?,
                },
            ];
            if matches!(kind, AggregateKind::Variance(_)) {
                measures.push(Measure::CenteredSquares {
                    column: column.name.clone(),
                    grid: width_grid(column.bounds, 8, key)?,
                });
            }
            measures
        }
        AggregateKind::Quantiles { column, .. } => vec![Measure::Histogram {
            column: column.name.clone(),
            bounds: column.bounds,
        }],
    })
}

/// A grid with about `2^bits` steps across the bounds' width (a power of two).
fn width_grid(bounds: Bounds, bits: i32, key: &str) -> Result<FixedPoint, EngineError> {
    let width = bounds.width();
    #[allow(clippy::cast_possible_truncation)]
    let exponent = (width.log2().floor() as i32 - bits).clamp(-100, 100);
    let granularity = Granularity::power_of_two(exponent)
        .map_err(|e| EngineError::param(format!("{key}.bounds"), e))?;
    FixedPoint::new(bounds, granularity).map_err(|e| EngineError::param(format!("{key}.bounds"), e))
}

fn scan_plan(job: &Job) -> Result<ScanPlan, EngineError> {
    let governance = &job.governance;
    let mut columns = vec![job.source.privacy_unit.clone()];
    // Where each column is named, for data-minimisation errors.
    let mut named_at: Vec<(String, String)> = Vec::new();
    let mut queries = Vec::new();
    for (index, query) in job.queries.iter().enumerate() {
        let mut measures = measures_of(query)?;
        // Private partition selection thresholds each group's distinct-unit count: the
        // scan must count units even when no aggregate releases them.
        if selects_privately(query) && !measures.contains(&Measure::Units) {
            measures.push(Measure::Units);
        }
        for column in &query.group_by {
            named_at.push((column.clone(), format!("query[{index}].group_by")));
        }
        for (aggregate_index, aggregate) in query.aggregates.iter().enumerate() {
            if let Some(column) = aggregate.kind.column() {
                named_at.push((
                    column.name.clone(),
                    format!("query[{index}].aggregates[{aggregate_index}].column"),
                ));
            }
        }
        for column in query
            .group_by
            .iter()
            .map(String::as_str)
            .chain(measures.iter().filter_map(Measure::column))
        {
            if !columns.iter().any(|existing| existing == column) {
                columns.push(column.to_string());
            }
        }
        let public_keys = match &query.partitions {
            Partitions::Public { keys, .. } => Some(keys.clone()),
            Partitions::Private => None,
        };
        queries.push(QueryScan {
            name: query.name.clone(),
            group_by: query.group_by.clone(),
            bounds: query.bounds,
            public_keys,
            measures,
        });
    }
    let time_window = match (governance.purpose.retention_ms, &governance.time_column) {
        (Some(retention), Some(column)) => {
            named_at.push((column.clone(), "source.time_column".to_string()));
            if !columns.contains(column) {
                columns.push(column.clone());
            }
            Some(TimeWindow {
                column: column.clone(),
                from_ms: governance.as_of_ms.saturating_sub(retention),
                to_ms: governance.as_of_ms,
            })
        }
        (Some(retention), None) => {
            return Err(EngineError::invalid(
                "source.time_column",
                format!(
                    "purpose {:?} keeps data for {}: name the source's timestamp column with `time_column` so older rows are never read",
                    governance.purpose.name,
                    describe_duration(retention)
                ),
            ));
        }
        (None, _) => None,
    };
    if let Some(allowed) = &governance.purpose.columns {
        for (column, key) in &named_at {
            if column != &job.source.privacy_unit && !allowed.contains(column) {
                return Err(EngineError::invalid(
                    key.clone(),
                    format!(
                        "column {column:?} is not among the columns purpose {:?} may read ({}); add it to the purpose in the registry or use another column",
                        governance.purpose.name,
                        allowed.join(", ")
                    ),
                ));
            }
        }
    }
    let consent = governance.consent.as_ref().map(|table| ConsentFilter {
        table: table.clone(),
        purpose: governance.purpose.name.clone(),
        as_of_ms: governance.as_of_ms,
    });
    Ok(ScanPlan {
        source: job.source.clone(),
        columns,
        time_window,
        consent,
        queries,
    })
}

/// A duration in words: `90 days`, `12 hours`.
#[must_use]
pub fn describe_duration(milliseconds: i64) -> String {
    const DAY: i64 = 86_400_000;
    const HOUR: i64 = 3_600_000;
    if milliseconds % DAY == 0 {
        let days = milliseconds / DAY;
        if days == 1 {
            "1 day".to_string()
        } else {
            format!("{days} days")
        }
    } else if milliseconds % HOUR == 0 {
        format!("{} hours", milliseconds / HOUR)
    } else {
        format!("{} seconds", milliseconds / 1000)
    }
}

/// Whether a query selects partitions privately: private partitions with at least one
/// group-by column (the single global group of a query without one always exists, so it
/// is released like a public partition).
fn selects_privately(query: &Query) -> bool {
    query.partitions == Partitions::Private && !query.group_by.is_empty()
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
fn part_of(whole: f64, parts: usize) -> f64 {
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

fn laplace_plan(
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

fn gaussian_plan(
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

#[cfg(test)]
mod tests;
