//! The lazy frames of the report's one scan: per query, every stage of bounding, the
//! quantile histograms, the contribution histograms and the candidates' expected
//! aggregates, all collected together so the source is read once.

use std::collections::BTreeMap;

use polars::prelude::*;

use super::TruthOptions;
use crate::EngineError;
use crate::job::AggregateKind;
use crate::plan::{Measure, Plan, QueryPlan, QueryScan};
use crate::scan::{self, BoundingKey};

/// A value column of a query and its bounds (those of the first aggregate naming it, as
/// the planner's measures do).
pub(super) struct ValueColumn {
    pub(super) name: String,
    lower: f64,
    upper: f64,
}

pub(super) fn value_columns(query: &QueryPlan) -> Vec<ValueColumn> {
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
pub(super) fn quantile_levels(query: &QueryPlan) -> BTreeMap<String, Vec<f64>> {
    let mut levels: BTreeMap<String, Vec<f64>> = BTreeMap::new();
    for aggregate in &query.query.aggregates {
        if let AggregateKind::Quantiles {
            column,
            levels: asked,
            ..
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
pub(super) struct QueryFrames {
    pub(super) frames: Vec<LazyFrame>,
    pub(super) histogram_columns: Vec<String>,
    pub(super) has_segment: bool,
}

pub(super) const PAIR_ROWS: &str = "__veil_rows_of_pair";

pub(super) const UNIT_GROUPS: &str = "__veil_unit_groups";

const PAIRS: &str = "__veil_pairs";

pub(super) fn candidate_name(cell: usize, what: &str) -> String {
    format!("candidate:{cell}:{what}")
}

/// The frames of one query, in the order [`super::read::read_query`] takes them: the raw
/// and clamped stages, the stages after L∞ and after L0, two quantile histograms per
/// quantile column, the two contribution histograms, the candidates' expected
/// aggregates, the value quantiles and the segments.
pub(super) fn query_frames(
    base: &LazyFrame,
    unit: &str,
    plan: &Plan,
    index: usize,
    key: BoundingKey,
    options: &TruthOptions,
) -> Result<QueryFrames, EngineError> {
    let query = &plan.queries[index];
    let scan_query = &plan.scan.queries[index];
    let group_by = &scan_query.group_by;
    let columns = value_columns(query);
    let rows = only_public_groups(base.clone(), group_by, scan_query.public_keys.as_ref())?;
    let mut frames = vec![raw_frame(rows, group_by, &columns, &quantile_levels(query))];
    let (pair_table, histogram_columns) =
        pair_table(base, unit, scan_query, key, &columns, options)?;
    // Every frame below reads the pair table: built once (Polars would otherwise build
    // it again for each, as common-subplan elimination is not compiled in).
    let pair_table = pair_table.cache();
    let kept_pairs = pair_table.clone().filter(col(scan::L0_KEPT));
    frames.extend(stage_frames(
        &pair_table,
        &kept_pairs,
        group_by,
        &columns,
        scan_query.bounds.max_rows_per_group,
    ));
    for column in &histogram_columns {
        for stage in [&pair_table, &kept_pairs] {
            frames.push(leaf_counts(stage, group_by, column));
        }
    }
    frames.extend(contribution_frames(&pair_table));
    frames.push(candidate_frame(pair_table, group_by, &columns, options));
    frames.push(value_quantile_frame(base, &columns, options));
    let segment = options.segments.get(index).cloned().flatten();
    if let Some(segment) = &segment {
        frames.push(segment_frame(base, group_by, segment));
    }
    Ok(QueryFrames {
        frames,
        histogram_columns,
        has_segment: segment.is_some(),
    })
}

/// The raw and clamped stages over every row and the raw quantiles (the distinct units
/// come from the pair table).
fn raw_frame(
    rows: LazyFrame,
    group_by: &[String],
    columns: &[ValueColumn],
    quantiles: &BTreeMap<String, Vec<f64>>,
) -> LazyFrame {
    let mut raw = stage_aggregations(columns, false, "raw:");
    raw.extend(stage_aggregations(columns, true, "clamped:"));
    for (column, levels) in quantiles {
        for (level_index, level) in levels.iter().enumerate() {
            raw.push(
                value(column)
                    .quantile(lit(*level), QuantileMethod::Linear)
                    .alias(format!("quantile:{column}:{level_index}")),
            );
        }
    }
    aggregate_by(rows, group_by, raw)
}

/// Every unit–group pair, from the release's own pair table: unbounded totals (for the
/// contribution histograms and the candidate bounds), the rows L∞ keeps summed and their
/// quantile leaves, whether L0 keeps the pair, and the unit's number of groups. Also the
/// quantile columns, whose leaves the pair table holds.
fn pair_table(
    base: &LazyFrame,
    unit: &str,
    scan_query: &QueryScan,
    key: BoundingKey,
    columns: &[ValueColumn],
    options: &TruthOptions,
) -> Result<(LazyFrame, Vec<String>), EngineError> {
    let mut pair_aggregations = vec![len().cast(DataType::Float64).alias(PAIR_ROWS)];
    for column in columns {
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
    for column in columns {
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
    let table = scan::pair_table(base, unit, scan_query, key, pair_aggregations, kept_columns)?
        .with_column(unit_groups.alias(UNIT_GROUPS));
    Ok((table, histogram_columns))
}

/// The stages of the release's bounding: after L∞ (every pair), after L∞ and L0 (the
/// pairs L0 keeps, one distinct unit each).
fn stage_frames(
    pair_table: &LazyFrame,
    kept_pairs: &LazyFrame,
    group_by: &[String],
    columns: &[ValueColumn],
    max_rows_per_group: u32,
) -> [LazyFrame; 2] {
    let max_rows = f64::from(max_rows_per_group);
    let stage = |prefix: &str| {
        let mut sums = vec![
            col(PAIR_ROWS)
                .clip(lit(0.0), lit(max_rows))
                .sum()
                .alias(format!("{prefix}rows")),
        ];
        for column in columns {
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
    // A group's pairs are its distinct units: before L0 every unit with a row in it.
    let mut row_bounded = stage("row:");
    row_bounded.push(len().cast(DataType::Float64).alias("row:units"));
    let mut bounded = stage("bounded:");
    bounded.push(len().cast(DataType::Float64).alias("bounded:units"));
    [
        aggregate_by(pair_table.clone(), group_by, row_bounded),
        aggregate_by(kept_pairs.clone(), group_by, bounded),
    ]
}

/// A quantile column's histogram at one stage: rows per (group, leaf).
fn leaf_counts(stage: &LazyFrame, group_by: &[String], column: &str) -> LazyFrame {
    let mut by = group_exprs(group_by);
    by.push(col("leaf"));
    let mut selected = group_exprs(group_by);
    selected.push(col(format!("kept:leaf:{column}")).alias("leaf"));
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
        .group_by(by)
        .agg([len().cast(DataType::Float64).alias("rows")])
}

/// Unit–group pairs before bounding: how many units are in k groups, how many pairs hold
/// r rows.
fn contribution_frames(pair_table: &LazyFrame) -> [LazyFrame; 2] {
    [UNIT_GROUPS, PAIR_ROWS].map(|by| {
        pair_table
            .clone()
            .group_by([col(by)])
            .agg([len().cast(DataType::Float64).alias("pairs")])
    })
}

/// Every candidate (L0, L∞, value scale)'s expected aggregates per group. A candidate's
/// weight depends on a pair only through its unit's group count and its row count, so the
/// pairs are first summed per (group, groups of the unit, rows of the pair): a few thousand
/// cells instead of every pair, for each of the candidates' hundreds of sums.
fn candidate_frame(
    pair_table: LazyFrame,
    group_by: &[String],
    columns: &[ValueColumn],
    options: &TruthOptions,
) -> LazyFrame {
    let mut cell_by = group_exprs(group_by);
    cell_by.extend([col(UNIT_GROUPS), col(PAIR_ROWS)]);
    let mut cell_sums = vec![len().cast(DataType::Float64).alias(PAIRS)];
    for column in columns {
        cell_sums.push(col(format!("values:{}", column.name)).sum());
        for scale_index in 0..options.value_scales.len() {
            cell_sums.push(col(format!("sum:{}:{scale_index}", column.name)).sum());
        }
    }
    let cells = pair_table.group_by(cell_by).agg(cell_sums);
    let mut aggregations = Vec::new();
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
            let kept = group_kept.clone() * row_kept;
            aggregations.push(
                (kept.clone() * col(PAIR_ROWS) * col(PAIRS))
                    .sum()
                    .alias(candidate_name(cell, "rows")),
            );
            aggregations.push(
                (group_kept.clone() * col(PAIRS))
                    .sum()
                    .alias(candidate_name(cell, "units")),
            );
            for column in columns {
                let mut sums = vec![format!("values:{}", column.name)];
                sums.extend(
                    (0..options.value_scales.len())
                        .map(|scale_index| format!("sum:{}:{scale_index}", column.name)),
                );
                for name in sums {
                    aggregations.push(
                        (kept.clone() * col(name.as_str()))
                            .sum()
                            .alias(candidate_name(cell, &name)),
                    );
                }
            }
        }
    }
    if aggregations.is_empty() {
        aggregations.push(len().alias("candidate:none"));
    }
    aggregate_by(cells, group_by, aggregations)
}

/// Value quantiles over all rows, at [`TruthOptions::value_levels`].
fn value_quantile_frame(
    base: &LazyFrame,
    columns: &[ValueColumn],
    options: &TruthOptions,
) -> LazyFrame {
    let mut expressions = vec![len().alias("__veil_rows")];
    for column in columns {
        for (level_index, level) in options.value_levels.iter().enumerate() {
            expressions.push(
                value(&column.name)
                    .quantile(lit(*level), QuantileMethod::Linear)
                    .alias(format!("{}:{level_index}", column.name)),
            );
        }
    }
    base.clone().select(expressions)
}

/// Rows per (group, value of the segment column), for each group's most common segment.
fn segment_frame(base: &LazyFrame, group_by: &[String], segment: &str) -> LazyFrame {
    let mut by = group_exprs(group_by);
    by.push(col(segment).cast(DataType::String).alias("__veil_segment"));
    base.clone()
        .group_by(by)
        .agg([len().cast(DataType::Float64).alias("rows")])
}
