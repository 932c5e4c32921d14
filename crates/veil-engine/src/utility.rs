//! The true aggregates a utility report needs, in one pass over the data.
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
use crate::frame::{NULL_KEY, row_keys};
use crate::job::AggregateKind;
use crate::plan::{Measure, Plan, QueryPlan};
use crate::scan::{self, BoundingKey};

/// What to compute besides the job's own aggregates.
#[derive(Debug, Clone, PartialEq)]
pub struct UtilityOptions {
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
    /// Per candidate `(L0 index · |L∞| + L∞ index)` of [`UtilityOptions`].
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

/// A value column of a query and its bounds (those of the first aggregate naming it, as
/// the planner's measures do).
struct ValueColumn {
    name: String,
    lower: f64,
    upper: f64,
}

fn value_columns(query: &QueryPlan) -> Vec<ValueColumn> {
    let mut columns: Vec<ValueColumn> = Vec::new();
    for aggregate in &query.query.aggregates {
        if let Some(column) = aggregate.kind.column()
            && !columns.iter().any(|existing| existing.name == column.name)
        {
            columns.push(ValueColumn {
                name: column.name.clone(),
                lower: column.bounds.lower(),
                upper: column.bounds.upper(),
            });
        }
    }
    columns
}

/// Per quantile column, the levels asked for.
fn quantile_levels(query: &QueryPlan) -> BTreeMap<String, Vec<f64>> {
    let mut levels: BTreeMap<String, Vec<f64>> = BTreeMap::new();
    for aggregate in &query.query.aggregates {
        if let AggregateKind::Quantiles {
            column,
            levels: asked,
        } = &aggregate.kind
        {
            let entry = levels.entry(column.name.clone()).or_default();
            for level in asked {
                if !entry
                    .iter()
                    .any(|existing| (existing - level).abs() < 1e-12)
                {
                    entry.push(*level);
                }
            }
        }
    }
    levels
}

fn group_exprs(group_by: &[String]) -> Vec<Expr> {
    group_by.iter().map(|name| col(name.as_str())).collect()
}

/// The value as a float, null where it has none.
fn value(column: &str) -> Expr {
    when(scan::value_present(column))
        .then(col(column).cast(DataType::Float64))
        .otherwise(lit(NULL).cast(DataType::Float64))
}

fn clamped(column: &ValueColumn, scale: f64) -> Expr {
    value(&column.name).clip(lit(column.lower * scale), lit(column.upper * scale))
}

/// Aggregations of a stage: rows, then per column values, Σx and Σx².
fn stage_aggregations(columns: &[ValueColumn], clamp: bool, prefix: &str) -> Vec<Expr> {
    let mut expressions = vec![len().cast(DataType::Float64).alias(format!("{prefix}rows"))];
    for column in columns {
        let x = if clamp {
            clamped(column, 1.0)
        } else {
            value(&column.name)
        };
        expressions.push(
            scan::value_present(&column.name)
                .cast(DataType::Float64)
                .sum()
                .alias(format!("{prefix}values:{}", column.name)),
        );
        expressions.push(
            x.clone()
                .sum()
                .alias(format!("{prefix}sum:{}", column.name)),
        );
        expressions.push(
            (x.clone() * x)
                .sum()
                .alias(format!("{prefix}squares:{}", column.name)),
        );
    }
    expressions
}

fn aggregate_by(frame: LazyFrame, group_by: &[String], expressions: Vec<Expr>) -> LazyFrame {
    if group_by.is_empty() {
        frame.select(expressions)
    } else {
        frame.group_by(group_exprs(group_by)).agg(expressions)
    }
}

/// Rows of other groups dropped, for public partitions (as the release's bounding does).
fn only_public_groups(
    rows: LazyFrame,
    group_by: &[String],
    keys: Option<&Vec<Vec<String>>>,
) -> Result<LazyFrame, EngineError> {
    match keys {
        Some(keys) => scan::only_listed_groups(rows, group_by, keys),
        None => Ok(rows),
    }
}

/// The frames of one query, in the order [`read_query`] takes them.
struct QueryFrames {
    frames: Vec<LazyFrame>,
    histogram_columns: Vec<String>,
    has_segment: bool,
}

const PAIR_ROWS: &str = "__veil_rows_of_pair";
const UNIT_GROUPS: &str = "__veil_unit_groups";
const PAIRS: &str = "__veil_pairs";

fn candidate_name(cell: usize, what: &str) -> String {
    format!("candidate:{cell}:{what}")
}

#[allow(clippy::too_many_lines)]
fn query_frames(
    base: &LazyFrame,
    unit: &str,
    plan: &Plan,
    index: usize,
    key: BoundingKey,
    options: &UtilityOptions,
) -> Result<QueryFrames, EngineError> {
    let query = &plan.queries[index];
    let scan_query = &plan.scan.queries[index];
    let group_by = &scan_query.group_by;
    let columns = value_columns(query);
    let quantiles = quantile_levels(query);
    let rows = only_public_groups(base.clone(), group_by, scan_query.public_keys.as_ref())?;
    let mut frames = Vec::new();

    // Raw and clamped stages over every row.
    let mut raw = stage_aggregations(&columns, false, "raw:");
    raw.extend(stage_aggregations(&columns, true, "clamped:"));
    raw.push(
        col(unit)
            .n_unique()
            .cast(DataType::Float64)
            .alias("raw:units"),
    );
    for (column, levels) in &quantiles {
        for (level_index, level) in levels.iter().enumerate() {
            raw.push(
                value(column)
                    .quantile(lit(*level), QuantileMethod::Linear)
                    .alias(format!("quantile:{column}:{level_index}")),
            );
        }
    }
    frames.push(aggregate_by(rows.clone(), group_by, raw));

    // Every unit–group pair, from the release's own pair table: unbounded totals (for the
    // contribution histograms and the candidate bounds), the rows L∞ keeps summed and
    // their quantile leaves, and whether L0 keeps the pair.
    let mut pair_aggregations = vec![len().cast(DataType::Float64).alias(PAIR_ROWS)];
    for column in &columns {
        pair_aggregations.push(
            scan::value_present(&column.name)
                .cast(DataType::Float64)
                .sum()
                .alias(format!("values:{}", column.name)),
        );
        for (scale_index, scale) in options.value_scales.iter().enumerate() {
            pair_aggregations.push(
                clamped(column, *scale)
                    .sum()
                    .alias(format!("sum:{}:{scale_index}", column.name)),
            );
        }
    }
    let mut kept_columns = Vec::new();
    for column in &columns {
        let name = |what: &str| format!("kept:{what}:{}", column.name);
        kept_columns.push(scan::KeptColumn {
            per_row: clamped(column, 1.0),
            outputs: vec![
                (name("values"), scan::Kept::FloatCount),
                (name("sum"), scan::Kept::FloatSum),
                (name("squares"), scan::Kept::FloatSquares),
            ],
        });
    }
    let mut histogram_columns = Vec::new();
    for measure in &scan_query.measures {
        if let Measure::Histogram { column, .. } = measure {
            kept_columns.push(scan::KeptColumn {
                per_row: scan::row_value(measure),
                outputs: vec![(format!("kept:leaf:{column}"), scan::Kept::Values)],
            });
            histogram_columns.push(column.clone());
        }
    }
    let unit_groups = len()
        .cast(DataType::Float64)
        .over([col(unit)])
        .map_err(|e| EngineError::polars("planning the report's scan", &e))?;
    // From `base`: the pair table drops the rows of unlisted groups itself.
    let pair_table =
        scan::pair_table(base, unit, scan_query, key, pair_aggregations, kept_columns)?
            .with_column(unit_groups.alias(UNIT_GROUPS));

    // The stages of the release's bounding: after L∞ (every pair), after L∞ and L0 (the
    // pairs L0 keeps, one distinct unit each).
    let max_rows = f64::from(scan_query.bounds.max_rows_per_group);
    let stage = |prefix: &str| {
        let mut sums = vec![
            col(PAIR_ROWS)
                .clip(lit(0.0), lit(max_rows))
                .sum()
                .alias(format!("{prefix}rows")),
        ];
        for column in &columns {
            for what in ["values", "sum", "squares"] {
                sums.push(
                    col(format!("kept:{what}:{}", column.name))
                        .sum()
                        .alias(format!("{prefix}{what}:{}", column.name)),
                );
            }
        }
        sums
    };
    frames.push(aggregate_by(pair_table.clone(), group_by, stage("row:")));
    let kept_pairs = pair_table.clone().filter(col(scan::L0_KEPT));
    let mut bounded_aggregations = stage("bounded:");
    bounded_aggregations.push(len().cast(DataType::Float64).alias("bounded:units"));
    frames.push(aggregate_by(
        kept_pairs.clone(),
        group_by,
        bounded_aggregations,
    ));

    // Quantile histograms after L∞ and after full bounding.
    for column in &histogram_columns {
        let mut by = group_exprs(group_by);
        by.push(col("leaf"));
        for stage in [&pair_table, &kept_pairs] {
            let mut selected = group_exprs(group_by);
            selected.push(col(format!("kept:leaf:{column}")).alias("leaf"));
            frames.push(
                stage
                    .clone()
                    .select(selected)
                    .explode(
                        cols(["leaf"]),
                        ExplodeOptions {
                            empty_as_null: false,
                            keep_nulls: false,
                        },
                    )
                    .group_by(by.clone())
                    .agg([len().cast(DataType::Float64).alias("rows")]),
            );
        }
    }

    // Unit–group pairs before bounding: contribution histograms and candidate bounds.
    frames.push(
        pair_table
            .clone()
            .group_by([col(UNIT_GROUPS)])
            .agg([len().cast(DataType::Float64).alias("pairs")]),
    );
    frames.push(
        pair_table
            .clone()
            .group_by([col(PAIR_ROWS)])
            .agg([len().cast(DataType::Float64).alias("pairs")]),
    );
    // Every candidate's weight depends on a pair only through its unit's group count and
    // its row count, so the pairs are first summed per (group, groups of the unit, rows of
    // the pair): a few thousand cells instead of every pair, for each of the candidates'
    // hundreds of sums.
    let mut cell_by = group_exprs(group_by);
    cell_by.extend([col(UNIT_GROUPS), col(PAIR_ROWS)]);
    let mut cell_sums = vec![len().cast(DataType::Float64).alias(PAIRS)];
    for column in &columns {
        cell_sums.push(col(format!("values:{}", column.name)).sum());
        for scale_index in 0..options.value_scales.len() {
            cell_sums.push(col(format!("sum:{}:{scale_index}", column.name)).sum());
        }
    }
    let cells = pair_table.group_by(cell_by).agg(cell_sums);
    let mut candidate_aggregations = Vec::new();
    let linf_count = options.max_rows_per_group.len();
    for (l0_index, l0) in options.max_groups_per_unit.iter().enumerate() {
        let l0 = f64::from(*l0);
        // A unit in k groups keeps each with probability min(1, L0/k).
        let group_kept = when(col(UNIT_GROUPS).gt(lit(l0)))
            .then(lit(l0) / col(UNIT_GROUPS))
            .otherwise(lit(1.0));
        for (linf_index, linf) in options.max_rows_per_group.iter().enumerate() {
            let linf = f64::from(*linf);
            let cell = l0_index * linf_count + linf_index;
            // A pair of r rows keeps each row with probability min(1, L∞/r).
            let row_kept = when(col(PAIR_ROWS).gt(lit(linf)))
                .then(lit(linf) / col(PAIR_ROWS))
                .otherwise(lit(1.0));
            candidate_aggregations.push(
                (group_kept.clone() * row_kept.clone() * col(PAIR_ROWS) * col(PAIRS))
                    .sum()
                    .alias(candidate_name(cell, "rows")),
            );
            candidate_aggregations.push(
                (group_kept.clone() * col(PAIRS))
                    .sum()
                    .alias(candidate_name(cell, "units")),
            );
            for column in &columns {
                candidate_aggregations.push(
                    (group_kept.clone()
                        * row_kept.clone()
                        * col(format!("values:{}", column.name)))
                    .sum()
                    .alias(candidate_name(cell, &format!("values:{}", column.name))),
                );
                for scale_index in 0..options.value_scales.len() {
                    candidate_aggregations.push(
                        (group_kept.clone()
                            * row_kept.clone()
                            * col(format!("sum:{}:{scale_index}", column.name)))
                        .sum()
                        .alias(candidate_name(
                            cell,
                            &format!("sum:{}:{scale_index}", column.name),
                        )),
                    );
                }
            }
        }
    }
    if candidate_aggregations.is_empty() {
        candidate_aggregations.push(len().alias("candidate:none"));
    }
    frames.push(aggregate_by(cells, group_by, candidate_aggregations));

    // Value quantiles over all rows.
    let mut quantile_expressions = vec![len().alias("__veil_rows")];
    for column in &columns {
        for (level_index, level) in options.value_levels.iter().enumerate() {
            quantile_expressions.push(
                value(&column.name)
                    .quantile(lit(*level), QuantileMethod::Linear)
                    .alias(format!("{}:{level_index}", column.name)),
            );
        }
    }
    frames.push(base.clone().select(quantile_expressions));

    // The segment: the most common value of its column in each group.
    let segment = options.segments.get(index).cloned().flatten();
    if let Some(segment) = &segment {
        let mut by = group_exprs(group_by);
        by.push(
            col(segment.as_str())
                .cast(DataType::String)
                .alias("__veil_segment"),
        );
        frames.push(
            base.clone()
                .group_by(by)
                .agg([len().cast(DataType::Float64).alias("rows")]),
        );
    }
    Ok(QueryFrames {
        frames,
        histogram_columns,
        has_segment: segment.is_some(),
    })
}

fn floats(frame: &DataFrame, name: &str, missing: f64) -> Result<Vec<f64>, EngineError> {
    let column = frame
        .column(name)
        .map_err(|e| EngineError::polars("reading report aggregates", &e))?
        .cast(&DataType::Float64)
        .map_err(|e| EngineError::polars("reading report aggregates", &e))?;
    let values = column
        .f64()
        .map_err(|e| EngineError::polars("reading report aggregates", &e))?;
    Ok(values
        .iter()
        .map(|value| value.unwrap_or(missing))
        .collect())
}

fn stage_totals(
    frame: &DataFrame,
    row: usize,
    prefix: &str,
    columns: &[ValueColumn],
    cache: &mut BTreeMap<String, Vec<f64>>,
) -> Result<StageTotals, EngineError> {
    let mut get = |name: String| -> Result<f64, EngineError> {
        if !cache.contains_key(&name) {
            let values = floats(frame, &name, 0.0)?;
            cache.insert(name.clone(), values);
        }
        Ok(cache
            .get(&name)
            .and_then(|values| values.get(row))
            .copied()
            .unwrap_or(0.0))
    };
    let mut totals = StageTotals {
        rows: get(format!("{prefix}rows"))?,
        units: 0.0,
        columns: BTreeMap::new(),
    };
    for column in columns {
        totals.columns.insert(
            column.name.clone(),
            ColumnTotals {
                values: get(format!("{prefix}values:{}", column.name))?,
                sum: get(format!("{prefix}sum:{}", column.name))?,
                sum_squares: get(format!("{prefix}squares:{}", column.name))?,
            },
        );
    }
    Ok(totals)
}

/// Row index of each group key in `frame`.
fn index_by_key(
    frame: &DataFrame,
    group_by: &[String],
) -> Result<BTreeMap<Vec<String>, usize>, EngineError> {
    Ok(row_keys(frame, group_by)?
        .into_iter()
        .enumerate()
        .map(|(row, key)| (key, row))
        .collect())
}

struct StageFrame {
    frame: DataFrame,
    index: BTreeMap<Vec<String>, usize>,
    cache: BTreeMap<String, Vec<f64>>,
}

impl StageFrame {
    fn new(frame: DataFrame, group_by: &[String]) -> Result<Self, EngineError> {
        let index = index_by_key(&frame, group_by)?;
        Ok(Self {
            frame,
            index,
            cache: BTreeMap::new(),
        })
    }

    fn totals(
        &mut self,
        key: &[String],
        prefix: &str,
        columns: &[ValueColumn],
    ) -> Result<StageTotals, EngineError> {
        match self.index.get(key) {
            Some(&row) => stage_totals(&self.frame, row, prefix, columns, &mut self.cache),
            None => Ok(StageTotals {
                columns: columns
                    .iter()
                    .map(|column| (column.name.clone(), ColumnTotals::default()))
                    .collect(),
                ..StageTotals::default()
            }),
        }
    }

    fn value(&mut self, key: &[String], name: &str) -> Result<f64, EngineError> {
        let Some(&row) = self.index.get(key) else {
            return Ok(0.0);
        };
        if !self.cache.contains_key(name) {
            let values = floats(&self.frame, name, f64::NAN)?;
            self.cache.insert(name.to_string(), values);
        }
        Ok(self
            .cache
            .get(name)
            .and_then(|values| values.get(row))
            .copied()
            .unwrap_or(0.0))
    }
}

/// Per group key, `(leaf, rows)` in leaf order.
type Leaves = BTreeMap<Vec<String>, Vec<(u32, f64)>>;

fn histogram(frame: &DataFrame, group_by: &[String]) -> Result<Leaves, EngineError> {
    let keys = row_keys(frame, group_by)?;
    let leaves = floats(frame, "leaf", 0.0)?;
    let rows = floats(frame, "rows", 0.0)?;
    let mut result: BTreeMap<Vec<String>, Vec<(u32, f64)>> = BTreeMap::new();
    for ((key, leaf), rows) in keys.into_iter().zip(leaves).zip(rows) {
        #[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss)]
        result.entry(key).or_default().push((leaf as u32, rows));
    }
    for leaves in result.values_mut() {
        leaves.sort_by_key(|(leaf, _)| *leaf);
    }
    Ok(result)
}

fn counts(frame: &DataFrame, by: &str, per: f64) -> Result<Vec<(u64, u64)>, EngineError> {
    let values = floats(frame, by, 0.0)?;
    let pairs = floats(frame, "pairs", 0.0)?;
    let mut result: Vec<(u64, u64)> = values
        .into_iter()
        .zip(pairs)
        .map(|(value, pairs)| {
            // For groups per unit, `pairs` counts each unit once per group it is in.
            let count = if per > 0.0 {
                pairs / value.max(1.0)
            } else {
                pairs
            };
            #[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss)]
            (value.round() as u64, count.round() as u64)
        })
        .collect();
    result.sort_unstable();
    Ok(result)
}

#[allow(clippy::too_many_lines)]
fn read_query(
    plan: &Plan,
    index: usize,
    layout: &QueryFrames,
    results: &mut impl Iterator<Item = DataFrame>,
    options: &UtilityOptions,
) -> Result<QueryTotals, EngineError> {
    let mut next = || {
        results
            .next()
            .ok_or_else(|| EngineError::Internal("missing report frame".into()))
    };
    let query = &plan.queries[index];
    let group_by = &plan.scan.queries[index].group_by;
    let columns = value_columns(query);
    let quantiles = quantile_levels(query);
    let raw_frame = next()?;
    let mut row_frame = StageFrame::new(next()?, group_by)?;
    let mut bounded_frame = StageFrame::new(next()?, group_by)?;
    let mut histograms = Vec::new();
    for column in &layout.histogram_columns {
        let row_bounded = histogram(&next()?, group_by)?;
        let bounded = histogram(&next()?, group_by)?;
        histograms.push((column.clone(), row_bounded, bounded));
    }
    let groups_per_unit = counts(&next()?, UNIT_GROUPS, 1.0)?;
    let rows_per_group = counts(&next()?, PAIR_ROWS, 0.0)?;
    let mut candidate_frame = StageFrame::new(next()?, group_by)?;
    let quantile_frame = next()?;
    let segments: BTreeMap<Vec<String>, String> = if layout.has_segment {
        let frame = next()?;
        let keys = row_keys(&frame, group_by)?;
        let values = row_keys(&frame, &["__veil_segment".to_string()])?;
        let rows = floats(&frame, "rows", 0.0)?;
        let mut best: BTreeMap<Vec<String>, (f64, String)> = BTreeMap::new();
        for ((key, value), rows) in keys.into_iter().zip(values).zip(rows) {
            let value = value.into_iter().next().unwrap_or_default();
            let entry = best.entry(key).or_insert((-1.0, String::new()));
            if rows > entry.0 || ((rows - entry.0).abs() < f64::EPSILON && value < entry.1) {
                *entry = (rows, value);
            }
        }
        best.into_iter()
            .map(|(key, (_, value))| (key, value))
            .collect()
    } else {
        BTreeMap::new()
    };

    let mut value_quantiles = BTreeMap::new();
    for column in &columns {
        let mut levels = Vec::new();
        for (level_index, level) in options.value_levels.iter().enumerate() {
            let values = floats(
                &quantile_frame,
                &format!("{}:{level_index}", column.name),
                f64::NAN,
            )?;
            levels.push((*level, values.first().copied().unwrap_or(f64::NAN)));
        }
        value_quantiles.insert(column.name.clone(), levels);
    }

    let mut raw_stage = StageFrame::new(raw_frame, group_by)?;
    let keys = row_keys(&raw_stage.frame, group_by)?;
    let cells = options.max_groups_per_unit.len() * options.max_rows_per_group.len();
    let mut groups = Vec::with_capacity(keys.len());
    for key in keys {
        let mut raw = raw_stage.totals(&key, "raw:", &columns)?;
        raw.units = raw_stage.value(&key, "raw:units")?;
        let mut clamped = raw_stage.totals(&key, "clamped:", &columns)?;
        clamped.units = raw.units;
        let mut row_bounded = row_frame.totals(&key, "row:", &columns)?;
        row_bounded.units = raw.units;
        let mut bounded = bounded_frame.totals(&key, "bounded:", &columns)?;
        bounded.units = bounded_frame.value(&key, "bounded:units")?;
        let mut raw_quantiles = BTreeMap::new();
        for (column, levels) in &quantiles {
            let mut values = Vec::new();
            for (level_index, level) in levels.iter().enumerate() {
                values.push((
                    *level,
                    raw_stage.value(&key, &format!("quantile:{column}:{level_index}"))?,
                ));
            }
            raw_quantiles.insert(column.clone(), values);
        }
        let mut row_bounded_leaves = BTreeMap::new();
        let mut bounded_leaves = BTreeMap::new();
        for (column, row_histogram, bounded_histogram) in &histograms {
            row_bounded_leaves.insert(
                column.clone(),
                row_histogram.get(&key).cloned().unwrap_or_default(),
            );
            bounded_leaves.insert(
                column.clone(),
                bounded_histogram.get(&key).cloned().unwrap_or_default(),
            );
        }
        let mut candidates = Vec::with_capacity(cells);
        for cell in 0..cells {
            let mut totals = CandidateTotals {
                rows: candidate_frame.value(&key, &candidate_name(cell, "rows"))?,
                units: candidate_frame.value(&key, &candidate_name(cell, "units"))?,
                columns: BTreeMap::new(),
            };
            for column in &columns {
                let values = candidate_frame.value(
                    &key,
                    &candidate_name(cell, &format!("values:{}", column.name)),
                )?;
                let mut sums = Vec::new();
                for scale_index in 0..options.value_scales.len() {
                    sums.push(candidate_frame.value(
                        &key,
                        &candidate_name(cell, &format!("sum:{}:{scale_index}", column.name)),
                    )?);
                }
                totals.columns.insert(column.name.clone(), (values, sums));
            }
            candidates.push(totals);
        }
        let segment = segments.get(&key).cloned();
        groups.push(GroupTotals {
            key: key
                .iter()
                .map(|value| (value != NULL_KEY).then(|| value.clone()))
                .collect(),
            segment: segment.filter(|value| value != NULL_KEY),
            raw,
            clamped,
            row_bounded,
            bounded,
            raw_quantiles,
            row_bounded_leaves,
            bounded_leaves,
            candidates,
        });
    }
    Ok(QueryTotals {
        groups,
        groups_per_unit,
        rows_per_group,
        value_quantiles,
    })
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
    options: &UtilityOptions,
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
