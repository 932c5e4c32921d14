//! Contribution bounding per query: each row's value on the query's grid, then L∞ (the
//! rows of each unit–group pair with the smallest keyed hashes, [`super::kept`]) and L0
//! (each unit's pairs with the smallest keyed pair hashes), as one pair table.

use polars::prelude::*;

use super::kept::{self, Kept};
use super::{BoundingKey, hash};
use crate::EngineError;
use crate::frame::keys_frame;
use crate::plan::{HISTOGRAM_BRANCHING, HISTOGRAM_DEPTH, Measure, QueryScan};

pub(crate) const ROW_PRIORITY: &str = "__veil_row_priority";

pub(crate) const PAIR_PRIORITY: &str = "__veil_pair_priority";

const PAIR_ROWS: &str = "__veil_pair_rows";

const PAIR_POSITION: &str = "__veil_pair_position";

const ROW_HASHES: &str = "__veil_row_hashes";

/// The per-row value of a measure (null where the column has no value).
pub(crate) fn row_value(measure: &Measure) -> Expr {
    match measure {
        Measure::Rows | Measure::Units => lit(1_i64),
        Measure::Sum { column, grid, .. } => steps(column, grid),
        Measure::ValueCount { column } => value_present(column).cast(DataType::Int64),
        Measure::CenteredSum { column, grid, .. } => centered(column, grid),
        Measure::CenteredSquares { column, grid, .. } => {
            let centered = centered(column, grid);
            centered.clone() * centered
        }
        Measure::Histogram { column, bounds } => leaf(column, *bounds),
    }
}

pub(crate) fn value_present(column: &str) -> Expr {
    col(column).is_not_null().and(
        col(column)
            .cast(DataType::Float64)
            .is_nan()
            .not()
            .fill_null(lit(false)),
    )
}

/// The value in steps of the grid, rounded and clamped in integers; null for null or NaN.
fn steps(column: &str, grid: &veil_core::mechanism::FixedPoint) -> Expr {
    let (lower, upper) = grid.bounds_in_steps();
    let inverse = 1.0 / grid.granularity().to_f64();
    #[allow(clippy::cast_precision_loss)]
    let scaled = (col(column).cast(DataType::Float64) * lit(inverse))
        .round(0, RoundMode::HalfAwayFromZero)
        .clip(lit(lower as f64), lit(upper as f64));
    when(value_present(column))
        .then(scaled.cast(DataType::Int64).clip(lit(lower), lit(upper)))
        .otherwise(lit(NULL).cast(DataType::Int64))
}

/// `2·steps − lower − upper`: twice the distance to the middle of the bounds, in steps.
fn centered(column: &str, grid: &veil_core::mechanism::FixedPoint) -> Expr {
    let (lower, upper) = grid.bounds_in_steps();
    lit(2_i64) * steps(column, grid) - lit(lower + upper)
}

/// The leaf bin of the quantile histogram; null for null or NaN.
fn leaf(column: &str, bounds: veil_core::Bounds) -> Expr {
    let leaves = i64::from(HISTOGRAM_BRANCHING.pow(HISTOGRAM_DEPTH));
    #[allow(clippy::cast_precision_loss)]
    let per_unit = leaves as f64 / (bounds.upper() - bounds.lower());
    let bin = ((col(column).cast(DataType::Float64) - lit(bounds.lower())) * lit(per_unit))
        .floor()
        .clip(lit(0.0), lit(leaves_as_f64(leaves) - 1.0));
    when(value_present(column))
        .then(bin.cast(DataType::Int64).clip(lit(0_i64), lit(leaves - 1)))
        .otherwise(lit(NULL).cast(DataType::Int64))
}

#[allow(clippy::cast_precision_loss)]
fn leaves_as_f64(leaves: i64) -> f64 {
    leaves as f64
}

pub(crate) fn group_exprs(group_by: &[String]) -> Vec<Expr> {
    group_by.iter().map(|name| col(name.as_str())).collect()
}

/// The rows one query bounds: its unit, group and value columns, and, with public
/// partitions, only the rows of listed groups (so no contribution is spent on others).
/// Returns them with the columns the row hash covers.
pub(crate) fn bounding_input(
    base: &LazyFrame,
    unit: &str,
    query: &QueryScan,
) -> Result<(LazyFrame, Vec<String>), EngineError> {
    let columns = query.row_hash_columns(unit);
    let mut rows = base.clone();
    // Rows without a value in a `drop_missing` column are not part of the query at all.
    for column in &query.drop_missing {
        rows = rows.filter(value_present(column));
    }
    let mut rows = rows.select(
        columns
            .iter()
            .map(|name| col(name.as_str()))
            .collect::<Vec<_>>(),
    );
    if let Some(keys) = &query.public_keys {
        rows = only_listed_groups(rows, &query.group_by, keys)?;
    }
    Ok((rows, columns))
}

/// `rows` of the listed groups only, group columns as text: with public partitions, rows
/// of other groups are dropped before bounding so that no contribution is spent on them.
pub(crate) fn only_listed_groups(
    rows: LazyFrame,
    group_by: &[String],
    keys: &[Vec<String>],
) -> Result<LazyFrame, EngineError> {
    Ok(rows
        .with_columns(
            group_by
                .iter()
                .map(|name| col(name.as_str()).cast(DataType::String))
                .collect::<Vec<_>>(),
        )
        .join(
            keys_frame(group_by, keys)?.lazy(),
            group_exprs(group_by),
            group_exprs(group_by),
            JoinArgs::new(JoinType::Semi),
        ))
}

/// The unit and group columns: one (unit, group) pair per distinct value.
pub(crate) fn unit_and_group(unit: &str, query: &QueryScan) -> Vec<Expr> {
    let mut partition = vec![col(unit)];
    partition.extend(group_exprs(&query.group_by));
    partition
}

/// `rows` aggregated per (unit, group) by `aggregates` (which may be empty: a query that
/// only counts distinct units needs the pairs and nothing else).
fn pair_aggregation(
    rows: LazyFrame,
    unit: &str,
    query: &QueryScan,
    mut aggregates: Vec<Expr>,
) -> LazyFrame {
    aggregates.push(len().alias(PAIR_ROWS));
    rows.group_by(unit_and_group(unit, query))
        .agg(aggregates)
        .drop(cols([PAIR_ROWS]))
}

/// The column [`pair_table`] adds: whether L0 keeps the pair.
pub(crate) const L0_KEPT: &str = "__veil_l0_kept";

/// L0: flags ([`L0_KEPT`]) each unit's `max_groups_per_unit` pairs with the smallest keyed
/// hashes of (unit, group).
///
/// The pairs are sorted by unit, then hash; a pair's place among its unit's pairs is its
/// position minus the position of the unit's first pair (a minimum over the unit, which
/// Polars computes as one grouped aggregation). A rank over each unit's pairs gives the
/// same pairs, but Polars ranks group by group, about six times slower (BENCHMARKS.md).
fn with_l0_flag(
    pairs: LazyFrame,
    unit: &str,
    query: &QueryScan,
    key: BoundingKey,
) -> Result<LazyFrame, EngineError> {
    let first_of_unit = col(PAIR_POSITION)
        .min()
        .over([col(unit)])
        .map_err(|e| EngineError::polars("planning the scan", &e))?;
    let kept = (col(PAIR_POSITION) - first_of_unit).lt(lit(query.bounds.max_groups_per_unit));
    Ok(pairs
        .with_column(
            hash::keyed_hash(&query.pair_hash_columns(unit), key.0[1]).alias(PAIR_PRIORITY),
        )
        // Two pairs of a unit tie only by a collision of the hash; their group keys (nulls
        // last) then decide, so the choice never depends on the order of the data.
        .sort_by_exprs(
            std::iter::once(col(unit))
                .chain(std::iter::once(col(PAIR_PRIORITY)))
                .chain(group_exprs(&query.group_by))
                .collect::<Vec<_>>(),
            SortMultipleOptions::default().with_nulls_last(true),
        )
        .with_row_index(PAIR_POSITION, None)
        .with_column(kept.alias(L0_KEPT))
        .drop(cols([PAIR_PRIORITY, PAIR_POSITION])))
}

/// A per-row value of one query, reduced per pair over the rows L∞ keeps.
pub(crate) struct KeptColumn {
    /// The value of each row.
    pub(crate) per_row: Expr,
    /// The pair table's columns made of it: each one's name and what it keeps.
    pub(crate) outputs: Vec<(String, Kept)>,
}

/// Every unit–group pair of one query, with `aggregates` over all of its rows, each of
/// `kept_columns` over the rows L∞ keeps (the pair's `max_rows_per_group` rows with the
/// smallest keyed hashes, [`kept`]), and [`L0_KEPT`]. The release keeps the flagged pairs;
/// the utility report also looks at the others.
///
/// The pair aggregation gathers each pair's row hashes and per-row values as lists, which
/// `kept` reduces in one flat pass after it: the same rows as a rank of the row hashes
/// within each pair, without Polars' per-group cost (several times faster).
pub(crate) fn pair_table(
    base: &LazyFrame,
    unit: &str,
    query: &QueryScan,
    key: BoundingKey,
    mut aggregates: Vec<Expr>,
    kept_columns: Vec<KeptColumn>,
) -> Result<LazyFrame, EngineError> {
    let (rows, columns) = bounding_input(base, unit, query)?;
    let max_rows = query.bounds.max_rows_per_group;
    let mut reductions = Vec::new();
    let mut lists = vec![ROW_HASHES.to_string()];
    for (index, column) in kept_columns.into_iter().enumerate() {
        let list = format!("__veil_row_values_{index}");
        aggregates.push(column.per_row.alias(list.as_str()));
        for (name, kept) in column.outputs {
            reductions.push(
                kept::kept_in_pairs(col(list.as_str()), col(ROW_HASHES), max_rows, kept)
                    .alias(name),
            );
        }
        lists.push(list);
    }
    let pairs = if reductions.is_empty() {
        // Counts only: no row needs choosing.
        pair_aggregation(rows, unit, query, aggregates)
    } else {
        aggregates.push(col(ROW_PRIORITY).alias(ROW_HASHES));
        let hashed = rows.with_column(hash::keyed_hash(&columns, key.0[0]).alias(ROW_PRIORITY));
        pair_aggregation(hashed, unit, query, aggregates)
            .with_columns(reductions)
            .drop(cols(lists))
    };
    with_l0_flag(pairs, unit, query, key)
}

/// The unit–group pairs of one query that survive L0, with each measure summed over the
/// rows that L∞ keeps, and each quantile histogram's kept leaves as a list.
pub(crate) fn bounded_pairs(
    base: &LazyFrame,
    unit: &str,
    query: &QueryScan,
    key: BoundingKey,
) -> Result<LazyFrame, EngineError> {
    let mut aggregates = Vec::new();
    let mut kept_columns = Vec::new();
    for measure in &query.measures {
        let kept = match measure {
            Measure::Units => continue,
            Measure::Rows => {
                // The kept rows' count needs no choosing.
                aggregates.push(
                    len()
                        .cast(DataType::Int64)
                        .clip(lit(0_i64), lit(i64::from(query.bounds.max_rows_per_group)))
                        .alias(measure.key()),
                );
                continue;
            }
            Measure::Histogram { .. } => Kept::Values,
            _ => Kept::Sum,
        };
        kept_columns.push(KeptColumn {
            per_row: row_value(measure),
            outputs: vec![(measure.key(), kept)],
        });
    }
    Ok(
        pair_table(base, unit, query, key, aggregates, kept_columns)?
            .filter(col(L0_KEPT))
            .drop(cols([L0_KEPT])),
    )
}
