//! The private step: exact noise on every measure, partition selection, and
//! post-processing into the released tables.
//!
//! Every released number comes from a [`Released`] value made by a `veil-core` mechanism;
//! means, variances and quantiles are functions of released values only (post-processing).

use std::collections::BTreeMap;

use polars::prelude::*;
use rand_core::{CryptoRng, Rng};
use veil_core::Released;
use veil_core::mechanism::FixedPoint;
use veil_core::special::normal_sf_inverse;

use crate::EngineError;
use crate::frame::{int_column, row_keys};
use crate::job::{AggregateKind, Partitions};
use crate::plan::{
    HISTOGRAM_BRANCHING, HISTOGRAM_DEPTH, Measure, MeasureNoise, NoisyMeasure, Plan, QueryPlan,
    output_names_of,
};
use crate::scan::{Aggregated, QueryAggregates};

/// The z-score of the reported intervals (95%).
fn z95() -> f64 {
    normal_sf_inverse(0.025)
}

/// One query's released table.
#[derive(Debug, Clone)]
pub struct ReleasedTable {
    /// The query's name.
    pub query: String,
    /// Group-by columns, then `NAME`, `NAME_std`, `NAME_ci_low`, `NAME_ci_high` per
    /// released value.
    pub(crate) frame: DataFrame,
}

impl ReleasedTable {
    /// Released groups.
    #[must_use]
    pub fn groups(&self) -> usize {
        self.frame.height()
    }

    /// Column names, in order.
    #[must_use]
    pub fn columns(&self) -> Vec<String> {
        self.frame
            .get_column_names()
            .iter()
            .map(|name| name.to_string())
            .collect()
    }

    /// Each row's group key: one text value per column of `group_by`, `None` for null (a
    /// missing column reads as all null).
    #[must_use]
    pub fn group_keys(&self, group_by: &[String]) -> Vec<Vec<Option<String>>> {
        let mut keys = vec![Vec::with_capacity(group_by.len()); self.frame.height()];
        for name in group_by {
            let text = self
                .frame
                .column(name)
                .ok()
                .and_then(|column| column.cast(&DataType::String).ok());
            let values: Vec<Option<String>> = match text.as_ref().and_then(|c| c.str().ok()) {
                Some(values) => values.iter().map(|v| v.map(str::to_string)).collect(),
                None => vec![None; self.frame.height()],
            };
            for (key, value) in keys.iter_mut().zip(values) {
                key.push(value);
            }
        }
        keys
    }

    /// The same table with its rows in `order` (row numbers). For the privacy auditor's
    /// planted-bug tests, which publish rows in another order to check that it notices.
    #[doc(hidden)]
    #[must_use]
    pub fn with_row_order(&self, order: &[usize]) -> Self {
        #[allow(clippy::cast_possible_truncation)]
        let indices = IdxCa::from_vec(
            "rows".into(),
            order.iter().map(|&row| row as IdxSize).collect(),
        );
        Self {
            query: self.query.clone(),
            frame: self
                .frame
                .take(&indices)
                .unwrap_or_else(|_| self.frame.clone()),
        }
    }

    /// One column as text, for display (`None` if there is no such column).
    #[must_use]
    pub fn column_as_strings(&self, name: &str) -> Option<Vec<String>> {
        let column = self.frame.column(name).ok()?;
        let text = column.cast(&DataType::String).ok()?;
        let values = text.str().ok()?;
        Some(
            values
                .iter()
                .map(|value| value.unwrap_or("").to_string())
                .collect(),
        )
    }

    /// One numeric column as `f64` (`None` if missing or not numeric).
    #[must_use]
    pub fn column_as_f64(&self, name: &str) -> Option<Vec<f64>> {
        let column = self
            .frame
            .column(name)
            .ok()?
            .cast(&DataType::Float64)
            .ok()?;
        let values = column.f64().ok()?;
        Some(
            values
                .iter()
                .map(|value| value.unwrap_or(f64::NAN))
                .collect(),
        )
    }
}

/// A released value with its error bars, ready for a column.
#[derive(Debug, Clone, Copy)]
struct Cell {
    value: f64,
    std: f64,
    low: f64,
    high: f64,
}

impl Cell {
    fn from_released(released: &Released<f64>) -> Self {
        let value = *released.value();
        Self {
            value,
            std: released.std_dev(),
            low: value - released.ci_half_width(),
            high: value + released.ci_half_width(),
        }
    }

    /// A count: clamped at zero (post-processing), interval clamped alike.
    fn count(released: &Released<i64>) -> Self {
        #[allow(clippy::cast_precision_loss)]
        let value = *released.value() as f64;
        Self {
            value: value.max(0.0),
            std: released.std_dev(),
            low: (value - released.ci_half_width()).max(0.0),
            high: (value + released.ci_half_width()).max(0.0),
        }
    }
}

/// The noisy measures of one group.
struct NoisyGroup {
    values: BTreeMap<String, Released<i64>>,
    histograms: BTreeMap<String, Vec<Vec<f64>>>,
}

/// Adds noise to every query's aggregates, selects partitions and post-processes.
///
/// # Errors
/// [`EngineError`] if an aggregate table is malformed (a bug) or a frame cannot be built.
pub fn release<R: Rng + CryptoRng + ?Sized>(
    plan: &Plan,
    aggregated: &Aggregated,
    rng: &mut R,
) -> Result<Vec<ReleasedTable>, EngineError> {
    plan.queries
        .iter()
        .zip(&aggregated.queries)
        .map(|(query, aggregates)| release_query(query, aggregates, rng))
        .collect()
}

/// The groups to consider: the aggregated groups, or for public partitions every key
/// (groups without rows get zeros).
fn candidate_groups(
    query: &QueryPlan,
    aggregates: &QueryAggregates,
) -> Result<DataFrame, EngineError> {
    let Partitions::Public { keys, .. } = &query.query.partitions else {
        return Ok(aggregates.groups.clone());
    };
    let group_by = &query.query.group_by;
    let keys_frame = crate::frame::keys_frame(group_by, keys)?;
    let on: Vec<Expr> = group_by.iter().map(|name| col(name.as_str())).collect();
    let measure_columns: Vec<Expr> = aggregates
        .groups
        .get_column_names()
        .iter()
        .filter(|name| !group_by.iter().any(|group| group.as_str() == name.as_str()))
        .map(|name| col(name.as_str()).fill_null(lit(0_i64)))
        .collect();
    keys_frame
        .lazy()
        .unique_stable(None, UniqueKeepStrategy::First)
        .join(
            aggregates.groups.clone().lazy(),
            on.clone(),
            on,
            JoinArgs::new(JoinType::Left),
        )
        .with_columns(measure_columns)
        .collect()
        .map_err(|e| EngineError::polars("joining public partitions", &e))
}

/// Per histogram column, per group row: leaf counts.
fn leaf_counts(
    query: &QueryPlan,
    groups: &DataFrame,
    aggregates: &QueryAggregates,
) -> Result<BTreeMap<String, Vec<Vec<i64>>>, EngineError> {
    let leaves = HISTOGRAM_BRANCHING.pow(HISTOGRAM_DEPTH) as usize;
    let mut result = BTreeMap::new();
    for (column, histogram) in &aggregates.histograms {
        let group_by = &query.query.group_by;
        // Map each histogram row to its group row by joining on the group columns.
        let group_keys = row_keys(groups, group_by)?;
        let index: BTreeMap<Vec<String>, usize> = group_keys
            .into_iter()
            .enumerate()
            .map(|(row, key)| (key, row))
            .collect();
        let histogram_keys = row_keys(histogram, group_by)?;
        let leaf = int_column(histogram, "leaf")?;
        let rows = int_column(histogram, "rows")?;
        let mut counts = vec![vec![0_i64; leaves]; groups.height()];
        for ((key, leaf), rows) in histogram_keys.into_iter().zip(leaf).zip(rows) {
            if let (Some(&row), Ok(leaf)) = (index.get(&key), usize::try_from(leaf))
                && leaf < leaves
            {
                counts[row][leaf] += rows;
            }
        }
        result.insert(column.clone(), counts);
    }
    Ok(result)
}

fn noisy<R: Rng + CryptoRng + ?Sized>(
    noise: &MeasureNoise,
    value: i64,
    rng: &mut R,
) -> Released<i64> {
    match noise {
        MeasureNoise::Laplace(mechanism) => mechanism.release(value, rng),
        MeasureNoise::Gaussian(mechanism) => mechanism.release(value, rng),
    }
}

/// Noisy counts for every node of a histogram tree, level by level (level 0 has
/// `branching` nodes, the last has every leaf).
fn noisy_tree<R: Rng + CryptoRng + ?Sized>(
    noise: &MeasureNoise,
    leaves: &[i64],
    rng: &mut R,
) -> Vec<Vec<f64>> {
    let branching = HISTOGRAM_BRANCHING as usize;
    let mut levels: Vec<Vec<i64>> = vec![leaves.to_vec()];
    while levels.last().is_some_and(|level| level.len() > branching) {
        let below = levels.last().expect("a level exists");
        levels.push(
            below
                .chunks(branching)
                .map(|chunk| chunk.iter().sum())
                .collect(),
        );
    }
    levels.reverse();
    levels
        .into_iter()
        .map(|level| {
            level
                .into_iter()
                .map(|count| {
                    #[allow(clippy::cast_precision_loss)]
                    let value = *noisy(noise, count, rng).value() as f64;
                    value
                })
                .collect()
        })
        .collect()
}

/// The value at quantile level `level` of a noisy histogram tree over `[lower, upper]`:
/// descend from the top level, at each node picking the child where the (non-negative)
/// noisy cumulative count crosses the target, then interpolate inside the leaf.
fn tree_quantile(tree: &[Vec<f64>], level: f64, lower: f64, upper: f64) -> f64 {
    let branching = HISTOGRAM_BRANCHING as usize;
    let mut start = 0_usize;
    let mut fraction = level.clamp(0.0, 1.0);
    for nodes in tree {
        let children: Vec<f64> = nodes[start..start + branching]
            .iter()
            .map(|count| count.max(0.0))
            .collect();
        let total: f64 = children.iter().sum();
        if total <= 0.0 {
            // No signal below this node: spread uniformly.
            #[allow(
                clippy::cast_precision_loss,
                clippy::cast_possible_truncation,
                clippy::cast_sign_loss
            )]
            let child = ((fraction * branching as f64) as usize).min(branching - 1);
            #[allow(clippy::cast_precision_loss)]
            {
                fraction = (fraction * branching as f64 - child as f64).clamp(0.0, 1.0);
            }
            start = (start + child) * branching;
            continue;
        }
        let target = fraction * total;
        let mut cumulative = 0.0;
        let mut chosen = branching - 1;
        for (index, count) in children.iter().enumerate() {
            if cumulative + count >= target && *count > 0.0 {
                chosen = index;
                break;
            }
            cumulative += count;
        }
        let count = children[chosen];
        fraction = if count > 0.0 {
            ((target - cumulative) / count).clamp(0.0, 1.0)
        } else {
            0.0
        };
        start = (start + chosen) * branching;
    }
    // `start` is now (leaf index) * branching.
    let leaf = start / branching;
    let leaves = HISTOGRAM_BRANCHING.pow(HISTOGRAM_DEPTH);
    let width = (upper - lower) / f64::from(leaves);
    #[allow(clippy::cast_precision_loss)]
    let value = lower + (leaf as f64 + fraction) * width;
    value.clamp(lower, upper)
}

fn release_query<R: Rng + CryptoRng + ?Sized>(
    query: &QueryPlan,
    aggregates: &QueryAggregates,
    rng: &mut R,
) -> Result<ReleasedTable, EngineError> {
    let groups = candidate_groups(query, aggregates)?;
    let leaf_counts = leaf_counts(query, &groups, aggregates)?;
    let measure_values: BTreeMap<String, Vec<i64>> = query
        .measures
        .iter()
        .map(|noisy| noisy.measure.key())
        .chain(std::iter::once(Measure::Units.key()))
        .filter(|key| groups.column(key).is_ok())
        .map(|key| int_column(&groups, &key).map(|values| (key, values)))
        .collect::<Result<_, _>>()?;

    // Selection first: noise for groups that are not released is never drawn.
    let mut kept = Vec::new();
    let mut noisy_groups = Vec::new();
    for row in 0..groups.height() {
        let mut values = BTreeMap::new();
        if let Some(selection) = &query.selection {
            let units = measure_values
                .get(&Measure::Units.key())
                .map_or(0, |units| units[row]);
            match selection.release(units, rng) {
                Some(released) => {
                    values.insert(Measure::Units.key(), released);
                }
                None => continue,
            }
        }
        let mut histograms = BTreeMap::new();
        for NoisyMeasure { measure, noise, .. } in &query.measures {
            if let Measure::Histogram { column, .. } = measure {
                let leaves = leaf_counts
                    .get(column)
                    .map(|counts| counts[row].clone())
                    .unwrap_or_default();
                histograms.insert(column.clone(), noisy_tree(noise, &leaves, rng));
            } else {
                let value = measure_values
                    .get(&measure.key())
                    .map_or(0, |values| values[row]);
                values.insert(measure.key(), noisy(noise, value, rng));
            }
        }
        #[allow(clippy::cast_possible_truncation, clippy::cast_possible_wrap)]
        kept.push(row as IdxSize);
        noisy_groups.push(NoisyGroup { values, histograms });
    }

    let kept = IdxCa::from_vec("rows".into(), kept);
    let released_groups = groups
        .select(query.query.group_by.iter().map(String::as_str))
        .and_then(|frame| frame.take(&kept))
        .map_err(|e| EngineError::polars("selecting released groups", &e))?;
    let mut columns: Vec<Column> = released_groups.columns().to_vec();
    for aggregate in &query.query.aggregates {
        let names = output_names_of(aggregate);
        let cells: Vec<Vec<Cell>> = noisy_groups
            .iter()
            .map(|group| cells_for(query, &aggregate.kind, group))
            .collect::<Result<_, _>>()?;
        for (index, name) in names.iter().enumerate() {
            let pick = |field: fn(&Cell) -> f64| -> Vec<f64> {
                cells.iter().map(|row| field(&row[index])).collect()
            };
            let is_count = matches!(
                aggregate.kind,
                AggregateKind::Count | AggregateKind::UnitCount
            );
            if is_count {
                #[allow(clippy::cast_possible_truncation)]
                let values: Vec<i64> = pick(|cell| cell.value)
                    .into_iter()
                    .map(|value| value.round() as i64)
                    .collect();
                columns.push(Column::new(name.as_str().into(), values));
            } else {
                columns.push(Column::new(name.as_str().into(), pick(|cell| cell.value)));
            }
            columns.push(Column::new(
                format!("{name}_std").into(),
                pick(|cell| cell.std),
            ));
            columns.push(Column::new(
                format!("{name}_ci_low").into(),
                pick(|cell| cell.low),
            ));
            columns.push(Column::new(
                format!("{name}_ci_high").into(),
                pick(|cell| cell.high),
            ));
        }
    }
    let frame = DataFrame::new(noisy_groups.len(), columns)
        .map_err(|e| EngineError::polars("building the released table", &e))?;
    let frame = in_key_order(frame, &query.query.group_by)?;
    Ok(ReleasedTable {
        query: query.query.name.clone(),
        frame,
    })
}

/// The released rows ordered by their group keys (each column's natural order, nulls
/// last): a function of the released keys alone. The scan's output comes in an order set by
/// the data (for example by each group's smallest unit id), and a published row order
/// that moves when one person is added would leak them with no noise involved.
fn in_key_order(frame: DataFrame, group_by: &[String]) -> Result<DataFrame, EngineError> {
    if group_by.is_empty() || frame.height() < 2 {
        return Ok(frame);
    }
    frame
        .sort(
            group_by.iter().map(String::as_str).collect::<Vec<_>>(),
            SortMultipleOptions::default()
                .with_nulls_last(true)
                .with_maintain_order(true),
        )
        .map_err(|e| EngineError::polars("ordering the released table", &e))
}

fn measure_grid(query: &QueryPlan, key: &str) -> Option<FixedPoint> {
    query.noise_of(key).and_then(|noisy| match &noisy.measure {
        Measure::Sum { grid, .. }
        | Measure::CenteredSum { grid, .. }
        | Measure::CenteredSquares { grid, .. } => Some(*grid),
        _ => None,
    })
}

fn missing(what: &str) -> EngineError {
    EngineError::Internal(format!("measure {what} was not planned"))
}

/// The released cells of one aggregate for one group (one per quantile level).
fn cells_for(
    query: &QueryPlan,
    kind: &AggregateKind,
    group: &NoisyGroup,
) -> Result<Vec<Cell>, EngineError> {
    let get = |key: &str| group.values.get(key).ok_or_else(|| missing(key));
    Ok(match kind {
        AggregateKind::Count => vec![Cell::count(get(&Measure::Rows.key())?)],
        AggregateKind::UnitCount => vec![Cell::count(get(&Measure::Units.key())?)],
        AggregateKind::Sum(column) => {
            let key = format!("sum:{}", column.name);
            let grid = measure_grid(query, &key).ok_or_else(|| missing(&key))?;
            let mut cell = Cell::from_released(&get(&key)?.to_real(grid.granularity()));
            // A sum of values that are all >= 0 (or all <= 0) keeps that sign
            // (post-processing).
            let (low, high) = match (column.bounds.lower() >= 0.0, column.bounds.upper() <= 0.0) {
                (true, _) => (0.0, f64::INFINITY),
                (_, true) => (f64::NEG_INFINITY, 0.0),
                _ => (f64::NEG_INFINITY, f64::INFINITY),
            };
            cell.value = cell.value.clamp(low, high);
            cell.low = cell.low.clamp(low, high);
            cell.high = cell.high.clamp(low, high);
            vec![cell]
        }
        AggregateKind::Mean(column) => vec![mean_cell(query, &column.name, column.bounds, group)?],
        AggregateKind::Variance(column) => {
            vec![variance_cell(query, &column.name, column.bounds, group)?]
        }
        AggregateKind::Quantiles { column, levels } => {
            let tree = group
                .histograms
                .get(&column.name)
                .ok_or_else(|| missing(&column.name))?;
            let noise = query
                .noise_of(&format!("histogram:{}", column.name))
                .ok_or_else(|| missing(&column.name))?;
            let total: f64 = tree
                .first()
                .map_or(0.0, |top| top.iter().map(|count| count.max(0.0)).sum());
            // The noise on a cumulative count sums at most (branching - 1) nodes per level.
            let cumulative_std = noise.noise.std_dev()
                * f64::from((HISTOGRAM_BRANCHING - 1) * HISTOGRAM_DEPTH).sqrt()
                / 2.0;
            let spread = if total > 0.0 {
                z95() * cumulative_std / total
            } else {
                0.5
            };
            let (lower, upper) = (column.bounds.lower(), column.bounds.upper());
            levels
                .iter()
                .map(|&level| {
                    let value = tree_quantile(tree, level, lower, upper);
                    let low = tree_quantile(tree, (level - spread).max(0.0), lower, upper);
                    let high = tree_quantile(tree, (level + spread).min(1.0), lower, upper);
                    Cell {
                        value,
                        std: (high - low) / (2.0 * z95()),
                        low,
                        high,
                    }
                })
                .collect()
        }
    })
}

/// The released value count of a column (at least 1) and its standard deviation.
fn value_count(group: &NoisyGroup, column: &str) -> Result<(f64, f64), EngineError> {
    let key = format!("values:{column}");
    let released = group.values.get(&key).ok_or_else(|| missing(&key))?;
    #[allow(clippy::cast_precision_loss)]
    let count = (*released.value() as f64).max(1.0);
    Ok((count, released.std_dev()))
}

/// The released centered sum of a column in real units (Σ (x − mid)) and its standard
/// deviation, with the middle of the bounds.
fn centered_sum(
    query: &QueryPlan,
    group: &NoisyGroup,
    key: &str,
) -> Result<(f64, f64, f64), EngineError> {
    let grid = measure_grid(query, key).ok_or_else(|| missing(key))?;
    let released = group.values.get(key).ok_or_else(|| missing(key))?;
    let half_step = grid.granularity().to_f64() / 2.0;
    let (lower, upper) = grid.bounds_in_steps();
    #[allow(clippy::cast_precision_loss)]
    let middle = (lower + upper) as f64 * half_step;
    #[allow(clippy::cast_precision_loss)]
    let sum = *released.value() as f64 * half_step;
    Ok((sum, released.std_dev() * half_step, middle))
}

fn mean_cell(
    query: &QueryPlan,
    column: &str,
    bounds: veil_core::Bounds,
    group: &NoisyGroup,
) -> Result<Cell, EngineError> {
    let (count, count_std) = value_count(group, column)?;
    let (sum, sum_std, middle) = centered_sum(query, group, &format!("centered_sum:{column}"))?;
    let value = (middle + sum / count).clamp(bounds.lower(), bounds.upper());
    // Delta method: Var(S/N) ≈ Var(S)/N² + S²·Var(N)/N⁴.
    let std = ((sum_std / count).powi(2) + (sum * count_std / (count * count)).powi(2)).sqrt();
    Ok(Cell {
        value,
        std,
        low: (value - z95() * std).max(bounds.lower()),
        high: (value + z95() * std).min(bounds.upper()),
    })
}

fn variance_cell(
    query: &QueryPlan,
    column: &str,
    bounds: veil_core::Bounds,
    group: &NoisyGroup,
) -> Result<Cell, EngineError> {
    let (count, count_std) = value_count(group, column)?;
    let (sum, sum_std, _) = centered_sum(query, group, &format!("centered_sum:{column}"))?;
    let squares_key = format!("centered_squares:{column}");
    let grid = measure_grid(query, &squares_key).ok_or_else(|| missing(&squares_key))?;
    let released = group
        .values
        .get(&squares_key)
        .ok_or_else(|| missing(&squares_key))?;
    let half_step = grid.granularity().to_f64() / 2.0;
    let scale = half_step * half_step;
    #[allow(clippy::cast_precision_loss)]
    let squares = *released.value() as f64 * scale;
    let squares_std = released.std_dev() * scale;
    let mean_offset = sum / count;
    let max_variance = (bounds.width() / 2.0).powi(2);
    let value = (squares / count - mean_offset * mean_offset).clamp(0.0, max_variance);
    // Delta method over (squares, sum, count).
    let d_squares = squares_std / count;
    let d_sum = 2.0 * mean_offset * sum_std / count;
    let d_count =
        (-squares / (count * count) + 2.0 * mean_offset * mean_offset / count) * count_std;
    let std = (d_squares.powi(2) + d_sum.powi(2) + d_count.powi(2)).sqrt();
    Ok(Cell {
        value,
        std,
        low: (value - z95() * std).max(0.0),
        high: (value + z95() * std).min(max_variance),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn flat_tree(leaves: &[f64]) -> Vec<Vec<f64>> {
        let branching = HISTOGRAM_BRANCHING as usize;
        let mut levels = vec![leaves.to_vec()];
        while levels.last().unwrap().len() > branching {
            let below = levels.last().unwrap();
            levels.push(
                below
                    .chunks(branching)
                    .map(|chunk| chunk.iter().sum())
                    .collect(),
            );
        }
        levels.reverse();
        levels
    }

    #[test]
    fn quantiles_of_an_exact_uniform_tree() {
        let leaves = vec![1.0; HISTOGRAM_BRANCHING.pow(HISTOGRAM_DEPTH) as usize];
        let tree = flat_tree(&leaves);
        for level in [0.1, 0.5, 0.9] {
            let value = tree_quantile(&tree, level, 0.0, 100.0);
            assert!(
                (value - level * 100.0).abs() < 0.05,
                "level {level}: {value}"
            );
        }
    }

    #[test]
    fn quantiles_of_a_point_mass() {
        let mut leaves = vec![0.0; HISTOGRAM_BRANCHING.pow(HISTOGRAM_DEPTH) as usize];
        leaves[1000] = 50.0;
        let tree = flat_tree(&leaves);
        let width = 100.0 / f64::from(HISTOGRAM_BRANCHING.pow(HISTOGRAM_DEPTH));
        for level in [0.01, 0.5, 0.99] {
            let value = tree_quantile(&tree, level, 0.0, 100.0);
            assert!(
                value >= 1000.0 * width && value <= 1001.0 * width,
                "level {level}: {value}"
            );
        }
    }
}
