//! The report's output model: what a sweep computes, ready to render or serialize.

use std::collections::BTreeMap;

use serde::Serialize;
use veil_core::Epsilon;

use crate::input::{AggregateKind, Candidate, Contribution, DataOrigin};

/// What to compute.
#[derive(Debug, Clone, PartialEq)]
pub struct ReportOptions {
    /// The ε's of the sweep, in increasing order.
    pub epsilons: Vec<Epsilon>,
    /// Monte Carlo trials per ε (0: analytic only).
    pub trials: u32,
    /// The relative error to reach (e.g. 0.1) when searching the smallest ε.
    pub target_error: f64,
}

/// A utility report: everything computed, ready to render. **Not private** when
/// [`Report::origin`] is [`DataOrigin::Real`]; [`Report::notice`] says so first.
#[derive(Debug, Clone, Serialize)]
pub struct Report {
    /// The first line of every rendering: whether the report may be shared.
    pub notice: String,
    /// Where the numbers come from.
    pub origin: DataOrigin,
    /// The job's name.
    pub job: String,
    /// The data.
    pub source: String,
    /// The job's budget in words.
    pub budget: String,
    /// The job's ε: findings and charts by group size are given at it (or the nearest
    /// swept ε).
    pub reference_epsilon: f64,
    /// The swept ε's.
    pub epsilons: Vec<f64>,
    /// Monte Carlo trials per ε.
    pub trials: u32,
    /// The target relative error of the ε search.
    pub target_error: f64,
    /// How the numbers were computed, and their approximations.
    pub method: Vec<String>,
    /// One per query.
    pub queries: Vec<QueryReport>,
}

/// One query's report.
#[derive(Debug, Clone, Serialize)]
pub struct QueryReport {
    /// The query.
    pub name: String,
    /// Its group-by columns.
    pub group_by: Vec<String>,
    /// Its segment column, if any.
    pub segment: Option<String>,
    /// The job's contribution bounds.
    pub bounds: Contribution,
    /// Groups in the data.
    pub groups: usize,
    /// How much units contribute and what bounding drops.
    pub contributions: ContributionSummary,
    /// Per value column, quantiles of its raw values (to compare with the bounds).
    pub value_quantiles: BTreeMap<String, Vec<(f64, f64)>>,
    /// Per aggregate.
    pub aggregates: Vec<AggregateReport>,
    /// Per ε: how many groups are released.
    pub release: Vec<ReleaseAtEpsilon>,
    /// Per group, largest first: its size and release probability at each ε.
    pub group_release: Vec<GroupRelease>,
    /// Suggested bounds and the smallest ε that meets the target.
    pub tuning: Option<TuningReport>,
    /// Plain-language findings: where the error comes from, who bears it.
    pub findings: Vec<String>,
}

/// Contribution histograms and what the job's bounds drop.
#[derive(Debug, Clone, Serialize)]
pub struct ContributionSummary {
    /// `(groups, units)` before bounding.
    pub groups_per_unit: Vec<(u64, u64)>,
    /// `(rows, unit–group pairs)` before bounding.
    pub rows_per_group: Vec<(u64, u64)>,
    /// Share of units in more groups than L0.
    pub units_over_l0: f64,
    /// Share of unit–group pairs with more rows than L∞.
    pub pairs_over_linf: f64,
    /// Share of rows dropped by L∞.
    pub rows_dropped_by_linf: f64,
    /// Share of rows dropped by L0 (after L∞).
    pub rows_dropped_by_l0: f64,
}

/// One aggregate across the sweep.
#[derive(Debug, Clone, Serialize)]
pub struct AggregateReport {
    /// The output column.
    pub name: String,
    /// What it computes.
    pub kind: AggregateKind,
    /// Its column, if any.
    pub column: Option<String>,
    /// The column's bounds, if any.
    pub bounds: Option<[f64; 2]>,
    /// The bias of bounding, the same at every ε.
    pub bias: BiasSummary,
    /// Per ε.
    pub sweep: Vec<AggregateAtEpsilon>,
}

/// The bias of contribution bounding, relative to the true values: the mean over groups
/// of `bias / |true value|`, signed.
#[derive(Debug, Clone, Copy, Serialize)]
pub struct BiasSummary {
    /// Groups with a non-zero true value (the others have no relative error).
    pub groups: usize,
    /// Clamping values to their bounds.
    pub clamping: f64,
    /// Dropping rows beyond L∞.
    pub linf: f64,
    /// Dropping groups beyond L0.
    pub l0: f64,
    /// All three.
    pub total: f64,
    /// Median over groups of `|bias| / |true value|`.
    pub median_abs: f64,
}

/// Error statistics over groups (and trials): absolute and relative to the true value.
/// A group that is not released counts with its whole true value as error.
#[derive(Debug, Clone, Copy, Serialize)]
pub struct ErrorStats {
    /// Median absolute error.
    pub median_abs: f64,
    /// 90th percentile of the absolute error.
    pub p90_abs: f64,
    /// Root mean squared error.
    pub rmse: f64,
    /// Median relative error.
    pub median_relative: f64,
    /// 90th percentile of the relative error.
    pub p90_relative: f64,
    /// Root mean squared relative error.
    pub rmse_relative: f64,
}

/// Shares of the expected squared error (they add up to 1).
#[derive(Debug, Clone, Copy, Serialize, Default)]
pub struct Decomposition {
    /// Clamping values.
    pub clamping: f64,
    /// L∞ row dropping.
    pub linf: f64,
    /// L0 group dropping.
    pub l0: f64,
    /// Noise.
    pub noise: f64,
    /// Groups lost to partition selection.
    pub selection: f64,
}

/// Errors of one slice of groups (a size bucket or a segment).
#[derive(Debug, Clone, Serialize)]
pub struct SliceStats {
    /// The slice, e.g. `10–99 units` or a segment value.
    pub label: String,
    /// Groups in it.
    pub groups: usize,
    /// Mean release probability.
    pub release_probability: f64,
    /// Analytic median relative error.
    pub median_relative: f64,
    /// Monte Carlo median relative error.
    pub empirical_median_relative: Option<f64>,
}

/// One aggregate at one ε.
#[derive(Debug, Clone, Serialize)]
pub struct AggregateAtEpsilon {
    /// The ε.
    pub epsilon: f64,
    /// Median over groups of the noise's standard deviation on the released value.
    pub noise_std: f64,
    /// Predicted from the noise scales and the true values.
    pub analytic: ErrorStats,
    /// Measured by re-noising the true aggregates.
    pub empirical: Option<ErrorStats>,
    /// Where the expected squared error comes from.
    pub decomposition: Decomposition,
    /// By group size (distinct units, log buckets).
    pub by_size: Vec<SliceStats>,
    /// By segment, when the query names one.
    pub by_segment: Vec<SliceStats>,
}

/// How many groups are released at one ε.
#[derive(Debug, Clone, Copy, Serialize)]
pub struct ReleaseAtEpsilon {
    /// The ε.
    pub epsilon: f64,
    /// Expected released groups.
    pub expected_groups: f64,
    /// Mean released groups over the trials.
    pub empirical_groups: Option<f64>,
    /// The true rows of unreleased groups, expected, as a share of all rows.
    pub rows_lost: f64,
}

/// One group's size and release probability.
#[derive(Debug, Clone, Serialize)]
pub struct GroupRelease {
    /// The group's key.
    pub key: Vec<Option<String>>,
    /// Its segment.
    pub segment: Option<String>,
    /// Distinct units before bounding.
    pub units: f64,
    /// Distinct units after bounding.
    pub bounded_units: f64,
    /// Per ε, the probability it is released.
    pub release_probability: Vec<f64>,
    /// Per ε, the share of trials in which it was released.
    pub empirical_release: Option<Vec<f64>>,
}

/// Suggested bounds for one query.
#[derive(Debug, Clone, Serialize)]
pub struct TuningReport {
    /// What is minimised.
    pub objective: String,
    /// Per swept ε: the job's objective and the best candidate's.
    pub per_epsilon: Vec<TunedAtEpsilon>,
    /// The smallest ε that meets the target.
    pub target: TargetSearch,
}

/// The best bounds at one ε.
#[derive(Debug, Clone, Serialize)]
pub struct TunedAtEpsilon {
    /// The ε.
    pub epsilon: f64,
    /// The objective at the job's bounds.
    pub current: f64,
    /// The best candidate.
    pub best: Candidate,
    /// Its value bounds, per column.
    pub value_bounds: BTreeMap<String, [f64; 2]>,
    /// The objective at the best candidate.
    pub best_objective: f64,
}

/// The smallest ε that meets the target relative error.
#[derive(Debug, Clone, Serialize)]
pub struct TargetSearch {
    /// The target (median relative error of every aggregate).
    pub target: f64,
    /// The smallest ε at the job's bounds, if any ε up to 100 meets it.
    pub epsilon_at_job_bounds: Option<f64>,
    /// The error left by bounding alone at the job's bounds (the largest median relative
    /// bias over aggregates): no ε goes below it.
    pub bias_floor: f64,
    /// The smallest swept ε at which the best bounds meet the target (for the tuned
    /// aggregates), and those bounds.
    pub with_suggested_bounds: Option<(f64, Candidate)>,
}
