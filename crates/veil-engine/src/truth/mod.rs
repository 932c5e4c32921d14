//! The truth a utility report compares with: the true aggregates, in one pass over the
//! data.
//!
//! **Not private.** Everything here is computed from the data without noise: true values
//! at each stage of contribution bounding, contribution histograms, value quantiles. It
//! is for the operator's utility report ("what would this privacy level cost on my
//! data?"), which says on its first line that it is not private; none of it may reach a
//! release.
//!
//! The rows are read, filtered and bounded by the same functions as a release
//! (`scan::source_rows`, `scan::with_unit`, `scan::pair_table`), so whatever a release
//! filters out or bounds away, the report does too. All frames are collected together, so the source is
//! scanned once.

use std::collections::BTreeMap;

use polars::prelude::*;

use crate::EngineError;
use crate::plan::Plan;
use crate::scan::{self, BoundingKey};

mod frames;
mod read;

use frames::query_frames;
use read::read_query;

/// What to compute besides the job's own aggregates.
#[derive(Debug, Clone, PartialEq)]
pub struct TruthOptions {
    /// Per query, in the plan's order, a column whose most common value in each group is
    /// reported as the group's segment (for fairness breakdowns).
    pub segments: Vec<Option<String>>,
    /// Candidate L0 values (max groups per unit) for tuning.
    pub max_groups_per_unit: Vec<u32>,
    /// Candidate L∞ values (max rows per unit and group) for tuning.
    pub max_rows_per_group: Vec<u32>,
    /// Factors applied to both ends of each value column's bounds, for tuning.
    pub value_scales: Vec<f64>,
    /// Quantile levels of each value column's raw values, over all rows.
    pub value_levels: Vec<f64>,
}

/// Quantiles of each value column shown beside its bounds in a report.
pub const VALUE_LEVELS: [f64; 5] = [0.5, 0.9, 0.95, 0.99, 0.999];

impl TruthOptions {
    /// The options a report on `job` asks for: one tuning grid for every query (the
    /// defaults of [`crate::replan`] plus each query's own bounds), [`VALUE_LEVELS`], and
    /// the segment column of each query, if any.
    #[must_use]
    pub fn for_job(job: &crate::job::Job, segments: Vec<Option<String>>) -> Self {
        let mut options = Self {
            segments,
            max_groups_per_unit: Vec::new(),
            max_rows_per_group: Vec::new(),
            value_scales: crate::replan::TUNING_VALUE_SCALES.to_vec(),
            value_levels: VALUE_LEVELS.to_vec(),
        };
        for query in &job.queries {
            let (l0, linf) = crate::replan::tuning_grid(query);
            options.max_groups_per_unit.extend(l0);
            options.max_rows_per_group.extend(linf);
        }
        options.max_groups_per_unit.sort_unstable();
        options.max_groups_per_unit.dedup();
        options.max_rows_per_group.sort_unstable();
        options.max_rows_per_group.dedup();
        options
    }
}

/// Sums over one value column in one group, at one stage.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct ColumnTotals {
    /// Rows with a value (not null, not NaN).
    pub values: f64,
    /// Σ x (clamped at every stage but the raw one).
    pub sum: f64,
    /// Σ x².
    pub sum_squares: f64,
}

/// One group's true aggregates at one stage of bounding. **Not private.**
#[derive(Debug, Clone, PartialEq, Default)]
pub struct StageTotals {
    /// Rows.
    pub rows: f64,
    /// Distinct privacy units.
    pub units: f64,
    /// Per value column.
    pub columns: BTreeMap<String, ColumnTotals>,
}

/// Expected aggregates of one group under candidate bounds. **Not private.**
#[derive(Debug, Clone, PartialEq, Default)]
pub struct CandidateTotals {
    /// Expected rows kept.
    pub rows: f64,
    /// Expected distinct units kept.
    pub units: f64,
    /// Per value column: expected values kept, and per value scale the expected sum of
    /// values clamped to the scaled bounds.
    pub columns: BTreeMap<String, (f64, Vec<f64>)>,
}

/// One group's truths. **Not private.**
#[derive(Debug, Clone, PartialEq, Default)]
pub struct GroupTotals {
    /// One text value per group-by column (`None` for null).
    pub key: Vec<Option<String>>,
    /// The most common value of the query's segment column in the group.
    pub segment: Option<String>,
    /// All rows with a unit, values unclamped.
    pub raw: StageTotals,
    /// All rows with a unit, values clamped.
    pub clamped: StageTotals,
    /// After L∞ bounding (no L0), clamped.
    pub row_bounded: StageTotals,
    /// After L∞ and L0 bounding, clamped: what a release adds noise to.
    pub bounded: StageTotals,
    /// Per quantile column, `(level, value)` of the raw values.
    pub raw_quantiles: BTreeMap<String, Vec<(f64, f64)>>,
    /// Per quantile column, `(leaf, rows)` of the quantile histogram after L∞ bounding.
    pub row_bounded_leaves: BTreeMap<String, Vec<(u32, f64)>>,
    /// Per quantile column, `(leaf, rows)` of the quantile histogram after full bounding.
    pub bounded_leaves: BTreeMap<String, Vec<(u32, f64)>>,
    /// Per candidate `(L0 index · |L∞| + L∞ index)` of [`TruthOptions`].
    pub candidates: Vec<CandidateTotals>,
}

/// One query's truths. **Not private.**
#[derive(Debug, Clone, PartialEq, Default)]
pub struct QueryTotals {
    /// Every group with rows (for public partitions, only public keys).
    pub groups: Vec<GroupTotals>,
    /// `(groups, units)`: units contributing to exactly that many groups.
    pub groups_per_unit: Vec<(u64, u64)>,
    /// `(rows, pairs)`: unit–group pairs with exactly that many rows.
    pub rows_per_group: Vec<(u64, u64)>,
    /// Per value column, `(level, value)` quantiles of its raw values over all rows.
    pub value_quantiles: BTreeMap<String, Vec<(f64, f64)>>,
}

/// Everything a utility report needs from the data. **Not private.**
#[derive(Debug, Clone, PartialEq, Default)]
pub struct ReportInputs {
    /// Rows read.
    pub rows_read: u64,
    /// Rows dropped for a null privacy unit.
    pub rows_without_unit: u64,
    /// Per query, in the plan's order.
    pub queries: Vec<QueryTotals>,
}

/// Scans once and computes, per query and group, the true aggregates at each stage of
/// bounding (raw, clamped, L∞-bounded, fully bounded), the quantile histograms, the
/// contribution histograms, the expected aggregates under candidate bounds, the value
/// quantiles and the segments. **The result is not private.**
///
/// Bounding uses `key` exactly as a release would; use a fresh random key.
///
/// # Errors
/// [`EngineError::ColumnNotFound`] for a segment column the source lacks;
/// [`EngineError`] if the source cannot be read or a computation fails.
pub fn report_inputs(
    plan: &Plan,
    key: BoundingKey,
    options: &TruthOptions,
) -> Result<ReportInputs, EngineError> {
    let mut scan_plan = plan.scan.clone();
    let schema = scan::source_schema(&scan_plan.source)?;
    for (index, segment) in options.segments.iter().enumerate() {
        if let Some(segment) = segment {
            if schema.get(segment).is_none() {
                return Err(EngineError::ColumnNotFound {
                    key: format!("query[{index}].segment"),
                    column: segment.clone(),
                    path: scan_plan.source.path.clone(),
                    available: schema
                        .columns
                        .iter()
                        .map(|(name, _)| name.clone())
                        .collect(),
                });
            }
            if !scan_plan.columns.contains(segment) {
                scan_plan.columns.push(segment.clone());
            }
        }
    }
    let unit = scan_plan.source.privacy_unit.clone();
    let projected = scan::source_rows(&scan_plan)?;
    let base = scan::with_unit(projected.clone(), &unit);
    let mut frames = vec![
        projected.select([
            len().cast(DataType::UInt64).alias("rows"),
            col(unit.as_str())
                .null_count()
                .cast(DataType::UInt64)
                .alias("no_unit"),
        ]),
    ];
    let mut layouts = Vec::new();
    for index in 0..plan.queries.len() {
        let layout = query_frames(&base, &unit, plan, index, key, options)?;
        frames.extend(layout.frames.iter().cloned());
        layouts.push(layout);
    }
    let plans: Vec<DslPlan> = frames.into_iter().map(|frame| frame.logical_plan).collect();
    let mut results = LazyFrame::collect_all_with_engine(plans, Engine::Auto, OptFlags::default())
        .map_err(|e| EngineError::polars("computing the report's aggregates", &e))?
        .into_iter();
    let diagnostics = results
        .next()
        .ok_or_else(|| EngineError::Internal("no diagnostics frame".into()))?;
    let read = |name: &str| -> Result<u64, EngineError> {
        diagnostics
            .column(name)
            .and_then(|column| column.u64().map(|values| values.get(0).unwrap_or(0)))
            .map_err(|e| EngineError::polars("counting rows", &e))
    };
    let rows_read = read("rows")?;
    let rows_without_unit = read("no_unit")?;
    let mut queries = Vec::new();
    for (index, layout) in layouts.iter().enumerate() {
        queries.push(read_query(plan, index, layout, &mut results, options)?);
    }
    Ok(ReportInputs {
        rows_read,
        rows_without_unit,
        queries,
    })
}

#[cfg(test)]
mod tests;
