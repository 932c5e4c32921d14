//! What a report is computed from: the true per-group aggregates at each stage of
//! contribution bounding ([`QueryInput`]), and the noise a plan adds ([`QueryNoise`],
//! obtained through a [`NoisePlanner`]).
//!
//! **Not private.** Every number in a [`GroupTruth`] is a true value computed from the data,
//! without noise. A report built from real data shows true errors and must not be shared;
//! one built from sample or synthetic data, or from noise scales alone
//! ([`crate::analytic_only`]), can be.

use std::collections::BTreeMap;

use serde::Serialize;
use veil_core::mechanism::{AnswerShape, ThresholdMechanism};
use veil_core::{Bounds, Epsilon};

use crate::ReportError;

/// Where the numbers of a report come from, which decides whether it may be shared.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum DataOrigin {
    /// The job's real data: the report shows true errors and is NOT private.
    Real,
    /// Sample or synthetic data with the job's schema: no real person's data is in it.
    Sample,
    /// Noise scales and public parameters only: no data at all.
    AnalyticOnly,
}

/// What an aggregate releases, as the report models it.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
#[serde(rename_all = "snake_case", tag = "kind")]
pub enum AggregateKind {
    /// Rows per group.
    Count,
    /// Distinct privacy units per group.
    UnitCount,
    /// Sum of a column's clamped values.
    Sum,
    /// Mean of a column's clamped values.
    Mean,
    /// Variance of a column's clamped values.
    Variance,
    /// One quantile of a column's clamped values.
    Quantile {
        /// The level in `[0, 1]`.
        level: f64,
    },
}

impl AggregateKind {
    /// A short name: `count`, `unit_count`, `sum`, `mean`, `variance`, `quantile`.
    #[must_use]
    pub fn name(self) -> &'static str {
        match self {
            Self::Count => "count",
            Self::UnitCount => "unit_count",
            Self::Sum => "sum",
            Self::Mean => "mean",
            Self::Variance => "variance",
            Self::Quantile { .. } => "quantile",
        }
    }
}

/// A numeric column and the bounds its values are clamped to.
#[derive(Debug, Clone, PartialEq)]
pub struct ValueColumn {
    /// The column.
    pub name: String,
    /// The clamping bounds.
    pub bounds: Bounds,
}

/// One released value per group (a quantile aggregate with two levels is two of these).
#[derive(Debug, Clone, PartialEq)]
pub struct AggregateSpec {
    /// The output column's name.
    pub name: String,
    /// What it computes.
    pub kind: AggregateKind,
    /// The column it reads, for sums, means, variances and quantiles.
    pub column: Option<ValueColumn>,
}

/// A query's contribution bounds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct Contribution {
    /// L0: groups per unit.
    pub max_groups_per_unit: u32,
    /// L∞: rows per unit in each group.
    pub max_rows_per_group: u32,
}

/// Sums over one column's values in one group (values are clamped at every stage but
/// the raw one).
#[derive(Debug, Clone, Copy, PartialEq, Default, Serialize)]
pub struct ColumnMoments {
    /// Rows with a value (not null, not NaN).
    pub values: f64,
    /// Σ x.
    pub sum: f64,
    /// Σ x².
    pub sum_squares: f64,
}

/// A group's true aggregates at one stage of bounding.
#[derive(Debug, Clone, PartialEq, Default, Serialize)]
pub struct Moments {
    /// Rows.
    pub rows: f64,
    /// Distinct privacy units.
    pub units: f64,
    /// Per value column.
    pub columns: BTreeMap<String, ColumnMoments>,
}

/// A sparse histogram over `leaves` equal bins between a column's bounds:
/// `(leaf, rows)` pairs, leaves in increasing order.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct LeafHistogram {
    /// Non-empty leaves.
    pub counts: Vec<(u32, f64)>,
}

/// The truths a quantile needs for one column of one group.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct QuantileTruth {
    /// `(level, value)`: quantiles of the raw (unclamped, unbounded) values.
    pub raw: Vec<(f64, f64)>,
    /// Leaf counts after L∞ bounding (values clamped).
    pub row_bounded: LeafHistogram,
    /// Leaf counts after L0 and L∞ bounding: what the noisy histogram is built on.
    pub bounded: LeafHistogram,
}

/// One group's true aggregates, before any noise. **Not private.**
#[derive(Debug, Clone, PartialEq, Default)]
pub struct GroupTruth {
    /// One text value per group-by column (`None` for null).
    pub key: Vec<Option<String>>,
    /// The group's value of the query's segment column, if it has one.
    pub segment: Option<String>,
    /// Every row with a privacy unit, values unclamped: the answer without privacy.
    pub raw: Moments,
    /// Every row, values clamped to their bounds.
    pub clamped: Moments,
    /// At most L∞ rows per unit in the group, clamped (no L0 bounding).
    pub row_bounded: Moments,
    /// L∞ then L0 bounding, clamped: what the release adds noise to.
    pub bounded: Moments,
    /// Per quantile column.
    pub quantiles: BTreeMap<String, QuantileTruth>,
}

/// How much each unit contributes, before bounding: the histograms that explain the
/// bounding bias and drive the tuning.
#[derive(Debug, Clone, PartialEq, Default, Serialize)]
pub struct Contributions {
    /// `(groups, units)`: how many units contribute to exactly that many groups.
    pub groups_per_unit: Vec<(u64, u64)>,
    /// `(rows, unit–group pairs)`: how many pairs have exactly that many rows.
    pub rows_per_group: Vec<(u64, u64)>,
}

/// Expected aggregates of one group under other contribution bounds (see
/// [`CandidateTruths`]).
#[derive(Debug, Clone, PartialEq, Default)]
pub struct CandidateMoments {
    /// Expected rows kept.
    pub rows: f64,
    /// Expected distinct units kept.
    pub units: f64,
    /// Per value column: expected values kept, and the expected clamped sum for each
    /// value scale of [`CandidateTruths::value_scales`].
    pub columns: BTreeMap<String, (f64, Vec<f64>)>,
}

/// Expected per-group aggregates on a grid of contribution bounds, for tuning. For a unit
/// in `k` groups with `r` rows in a group, L0 keeps each of its groups with probability
/// `min(1, L0/k)` and L∞ each of its rows there with probability `min(1, L∞/r)`, as the
/// keyed-hash bounding does on average.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct CandidateTruths {
    /// Candidate L0 values.
    pub max_groups_per_unit: Vec<u32>,
    /// Candidate L∞ values.
    pub max_rows_per_group: Vec<u32>,
    /// Factors applied to both ends of every value column's bounds.
    pub value_scales: Vec<f64>,
    /// Per group (in [`QueryInput::groups`] order), per `(L0 index · |L∞| + L∞ index)`.
    pub groups: Vec<Vec<CandidateMoments>>,
}

/// One query's inputs.
#[derive(Debug, Clone, PartialEq)]
pub struct QueryInput {
    /// The query's name.
    pub name: String,
    /// Group-by columns.
    pub group_by: Vec<String>,
    /// The segment column for fairness breakdowns, if the job names one.
    pub segment: Option<String>,
    /// The contribution bounds the job sets.
    pub bounds: Contribution,
    /// What is released per group.
    pub aggregates: Vec<AggregateSpec>,
    /// Every group in the data (for public partitions: the public keys found in the data).
    pub groups: Vec<GroupTruth>,
    /// Contribution histograms.
    pub contributions: Contributions,
    /// Per value column, `(level, value)` quantiles of its raw values over all rows.
    pub value_quantiles: BTreeMap<String, Vec<(f64, f64)>>,
    /// Expected aggregates under other bounds, for tuning (absent: no tuning).
    pub candidates: Option<CandidateTruths>,
    /// Branching and depth of the quantile histogram tree (e.g. 16 and 3).
    pub histogram_tree: (u32, u32),
}

/// Everything a report needs besides the noise.
#[derive(Debug, Clone, PartialEq)]
pub struct ReportInput {
    /// The job's name.
    pub job: String,
    /// Where the numbers come from.
    pub origin: DataOrigin,
    /// The data's path or description, for the report's header.
    pub source: String,
    /// The job's budget in words, e.g. `ε = 1, δ = 1e-6`.
    pub budget: String,
    /// The job's own ε (the sweep's reference point).
    pub epsilon: Epsilon,
    /// The queries.
    pub queries: Vec<QueryInput>,
}

/// The shape of a noise distribution.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum NoiseShape {
    /// (Discrete) Laplace.
    Laplace,
    /// (Discrete) Gaussian.
    Gaussian,
    /// One answer of a joint draw of `dimension` answers (the ℓ∞ K-norm law:
    /// `veil_core::mechanism::JointLaplaceMechanism`).
    Joint {
        /// How many answers the draw holds.
        dimension: u8,
    },
    /// One answer of a joint draw from the plateau or the staircase law
    /// (`veil_core::mechanism::JointLaplaceMechanism::plateau`, `::staircase`), of this
    /// shape.
    JointShaped(#[serde(skip)] AnswerShape),
}

/// The noise on one measure: its shape and standard deviation in the measure's own units
/// (rows for counts, the column's units for sums, squared units for sums of squares).
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Noise {
    shape: NoiseShape,
    std_dev: f64,
}

impl Noise {
    /// Noise of `shape` with standard deviation `std_dev`.
    ///
    /// # Errors
    /// [`ReportError::Invalid`] if `std_dev` is not finite and non-negative.
    pub fn new(shape: NoiseShape, std_dev: f64) -> Result<Self, ReportError> {
        if std_dev.is_finite() && std_dev >= 0.0 {
            Ok(Self { shape, std_dev })
        } else {
            Err(ReportError::Invalid {
                what: "noise standard deviation".into(),
                reason: format!("{std_dev} is not finite and >= 0"),
            })
        }
    }

    /// The shape.
    #[must_use]
    pub fn shape(&self) -> NoiseShape {
        self.shape
    }

    /// The standard deviation.
    #[must_use]
    pub fn std_dev(&self) -> f64 {
        self.std_dev
    }
}

/// The noise a plan adds to one query's measures.
///
/// Measure keys follow the engine's names: `rows`, `units`, `sum:COLUMN`,
/// `values:COLUMN`, `centered_sum:COLUMN` (Σ (x − middle of the bounds)),
/// `centered_squares:COLUMN` (Σ (x − middle)²) and `histogram:COLUMN` (each node of the
/// quantile tree, in rows).
#[derive(Debug, Clone, PartialEq)]
pub struct QueryNoise {
    /// Private partition selection, if the query selects groups privately.
    pub selection: Option<ThresholdMechanism>,
    /// The count the selection thresholds: when the query releases it, its noisy value is
    /// the released one.
    pub selected_on: SelectedOn,
    /// Noise per measure key.
    pub measures: BTreeMap<String, Noise>,
}

/// The count private partition selection thresholds.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum SelectedOn {
    /// Distinct units: the released unit count, or a count drawn for the selection alone.
    #[default]
    Units,
    /// Rows: the released row count.
    Rows,
    /// Rows with a value in this column (the count a mean divides by).
    Values(String),
}

impl SelectedOn {
    /// The measure's key: `units`, `rows` or `values:COLUMN`.
    #[must_use]
    pub fn key(&self) -> String {
        match self {
            Self::Units => "units".into(),
            Self::Rows => "rows".into(),
            Self::Values(column) => format!("values:{column}"),
        }
    }

    /// This count in a group's moments.
    #[must_use]
    pub fn in_moments(&self, moments: &Moments) -> f64 {
        match self {
            Self::Units => moments.units,
            Self::Rows => moments.rows,
            Self::Values(column) => moments.columns.get(column).map_or(0.0, |c| c.values),
        }
    }

    /// This count in a group's expected moments under candidate bounds.
    #[must_use]
    pub fn in_candidate(&self, moments: &CandidateMoments) -> f64 {
        match self {
            Self::Units => moments.units,
            Self::Rows => moments.rows,
            Self::Values(column) => moments.columns.get(column).map_or(0.0, |c| c.0),
        }
    }
}

/// Bounds to evaluate: the job's or a candidate's.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Candidate {
    /// L0 and L∞.
    pub contribution: Contribution,
    /// Factor applied to both ends of every value column's bounds (1 = the job's).
    pub value_scale: f64,
}

/// Plans the noise of a query under another ε or other bounds. Implemented by the caller
/// (who knows the planner); the report crate only asks.
pub trait NoisePlanner: Sync {
    /// The noise of query `query` (its index) when the job's ε is `epsilon` (δ and the
    /// rest of the budget unchanged) and the query's bounds are `candidate`.
    ///
    /// # Errors
    /// [`ReportError::Planning`] if no plan exists for these parameters.
    fn plan(
        &self,
        epsilon: Epsilon,
        query: usize,
        candidate: &Candidate,
    ) -> Result<QueryNoise, ReportError>;

    /// The noise of query `query` at `epsilon`, at its own bounds, with its groups selected
    /// on a count of units of their own (`selection = "units"` in the job) instead of the
    /// released count the job thresholds; `None` (the default) when the planner cannot say.
    ///
    /// # Errors
    /// [`ReportError::Planning`] if no plan exists for these parameters.
    fn plan_selecting_units(
        &self,
        epsilon: Epsilon,
        query: usize,
    ) -> Result<Option<QueryNoise>, ReportError> {
        let _ = (epsilon, query);
        Ok(None)
    }
}
