//! Reading the report's frames back into per-group totals.

use std::collections::BTreeMap;

use polars::prelude::*;

use super::frames::{
    PAIR_ROWS, QueryFrames, UNIT_GROUPS, ValueColumn, candidate_name, quantile_levels,
    value_columns,
};
use super::{CandidateTotals, ColumnTotals, GroupTotals, QueryTotals, StageTotals, TruthOptions};
use crate::EngineError;
use crate::frame::{NULL_KEY, row_keys};
use crate::plan::Plan;

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

/// One query's totals from its frames, taken from `results` in the order
/// [`super::frames::query_frames`] made them.
pub(super) fn read_query(
    plan: &Plan,
    index: usize,
    layout: &QueryFrames,
    results: &mut impl Iterator<Item = DataFrame>,
    options: &TruthOptions,
) -> Result<QueryTotals, EngineError> {
    let mut next = || {
        results
            .next()
            .ok_or_else(|| EngineError::Internal("missing report frame".into()))
    };
    let query = &plan.queries[index];
    let group_by = &plan.scan.queries[index].group_by;
    let columns = value_columns(query);
    let raw = StageFrame::new(next()?, group_by)?;
    let row_bounded = StageFrame::new(next()?, group_by)?;
    let bounded = StageFrame::new(next()?, group_by)?;
    let mut histograms = Vec::new();
    for column in &layout.histogram_columns {
        let row_bounded = histogram(&next()?, group_by)?;
        let bounded = histogram(&next()?, group_by)?;
        histograms.push((column.clone(), row_bounded, bounded));
    }
    let groups_per_unit = counts(&next()?, UNIT_GROUPS, 1.0)?;
    let rows_per_group = counts(&next()?, PAIR_ROWS, 0.0)?;
    let mut frames = Stages {
        raw,
        row_bounded,
        bounded,
        histograms,
        candidates: StageFrame::new(next()?, group_by)?,
    };
    let value_quantiles = value_quantiles(&next()?, &columns, options)?;
    let segments = if layout.has_segment {
        most_common_segments(&next()?, group_by)?
    } else {
        BTreeMap::new()
    };
    let quantiles = quantile_levels(query);
    // In key order: a group-by's order is not deterministic, and the report's Monte Carlo
    // draws for the groups in turn.
    let mut keys = row_keys(&frames.raw.frame, group_by)?;
    keys.sort_unstable();
    let mut groups = Vec::with_capacity(keys.len());
    for key in keys {
        let mut group = frames.group(&key, &columns, &quantiles, options)?;
        group.segment = segments
            .get(&key)
            .cloned()
            .filter(|value| value != NULL_KEY);
        groups.push(group);
    }
    Ok(QueryTotals {
        groups,
        groups_per_unit,
        rows_per_group,
        value_quantiles,
    })
}

/// A query's frames, read by group key.
struct Stages {
    raw: StageFrame,
    row_bounded: StageFrame,
    bounded: StageFrame,
    /// Per quantile column: its leaves after L∞ and after full bounding.
    histograms: Vec<(String, Leaves, Leaves)>,
    candidates: StageFrame,
}

impl Stages {
    /// One group's totals at every stage, its quantiles, leaves and candidates (without its
    /// segment).
    fn group(
        &mut self,
        key: &[String],
        columns: &[ValueColumn],
        quantiles: &BTreeMap<String, Vec<f64>>,
        options: &TruthOptions,
    ) -> Result<GroupTotals, EngineError> {
        let mut raw = self.raw.totals(key, "raw:", columns)?;
        raw.units = self.row_bounded.value(key, "row:units")?;
        let mut clamped = self.raw.totals(key, "clamped:", columns)?;
        clamped.units = raw.units;
        let mut row_bounded = self.row_bounded.totals(key, "row:", columns)?;
        row_bounded.units = raw.units;
        let mut bounded = self.bounded.totals(key, "bounded:", columns)?;
        bounded.units = self.bounded.value(key, "bounded:units")?;
        let mut raw_quantiles = BTreeMap::new();
        for (column, levels) in quantiles {
            let mut values = Vec::new();
            for (level_index, level) in levels.iter().enumerate() {
                values.push((
                    *level,
                    self.raw
                        .value(key, &format!("quantile:{column}:{level_index}"))?,
                ));
            }
            raw_quantiles.insert(column.clone(), values);
        }
        let mut row_bounded_leaves = BTreeMap::new();
        let mut bounded_leaves = BTreeMap::new();
        for (column, row_histogram, bounded_histogram) in &self.histograms {
            let leaves = |histogram: &Leaves| histogram.get(key).cloned().unwrap_or_default();
            row_bounded_leaves.insert(column.clone(), leaves(row_histogram));
            bounded_leaves.insert(column.clone(), leaves(bounded_histogram));
        }
        Ok(GroupTotals {
            key: key
                .iter()
                .map(|value| (value != NULL_KEY).then(|| value.clone()))
                .collect(),
            segment: None,
            raw,
            clamped,
            row_bounded,
            bounded,
            raw_quantiles,
            row_bounded_leaves,
            bounded_leaves,
            candidates: self.candidates(key, columns, options)?,
        })
    }

    /// The group's expected aggregates under every candidate, in the order of
    /// [`CandidateTotals`]' cells.
    fn candidates(
        &mut self,
        key: &[String],
        columns: &[ValueColumn],
        options: &TruthOptions,
    ) -> Result<Vec<CandidateTotals>, EngineError> {
        let cells = options.max_groups_per_unit.len() * options.max_rows_per_group.len();
        let frame = &mut self.candidates;
        let mut candidates = Vec::with_capacity(cells);
        for cell in 0..cells {
            let mut totals = CandidateTotals {
                rows: frame.value(key, &candidate_name(cell, "rows"))?,
                units: frame.value(key, &candidate_name(cell, "units"))?,
                columns: BTreeMap::new(),
            };
            for column in columns {
                let values = frame.value(
                    key,
                    &candidate_name(cell, &format!("values:{}", column.name)),
                )?;
                let mut sums = Vec::new();
                for scale_index in 0..options.value_scales.len() {
                    sums.push(frame.value(
                        key,
                        &candidate_name(cell, &format!("sum:{}:{scale_index}", column.name)),
                    )?);
                }
                totals.columns.insert(column.name.clone(), (values, sums));
            }
            candidates.push(totals);
        }
        Ok(candidates)
    }
}

/// Per value column, its quantiles over all rows at [`TruthOptions::value_levels`].
fn value_quantiles(
    frame: &DataFrame,
    columns: &[ValueColumn],
    options: &TruthOptions,
) -> Result<BTreeMap<String, Vec<(f64, f64)>>, EngineError> {
    let mut quantiles = BTreeMap::new();
    for column in columns {
        let mut levels = Vec::new();
        for (level_index, level) in options.value_levels.iter().enumerate() {
            let values = floats(frame, &format!("{}:{level_index}", column.name), f64::NAN)?;
            levels.push((*level, values.first().copied().unwrap_or(f64::NAN)));
        }
        quantiles.insert(column.name.clone(), levels);
    }
    Ok(quantiles)
}

/// Per group, the segment value with the most rows (the smallest on a tie).
fn most_common_segments(
    frame: &DataFrame,
    group_by: &[String],
) -> Result<BTreeMap<Vec<String>, String>, EngineError> {
    let keys = row_keys(frame, group_by)?;
    let values = row_keys(frame, &["__veil_segment".to_string()])?;
    let rows = floats(frame, "rows", 0.0)?;
    let mut best: BTreeMap<Vec<String>, (f64, String)> = BTreeMap::new();
    for ((key, value), rows) in keys.into_iter().zip(values).zip(rows) {
        let value = value.into_iter().next().unwrap_or_default();
        let entry = best.entry(key).or_insert((-1.0, String::new()));
        if rows > entry.0 || ((rows - entry.0).abs() < f64::EPSILON && value < entry.1) {
            *entry = (rows, value);
        }
    }
    Ok(best
        .into_iter()
        .map(|(key, (_, value))| (key, value))
        .collect())
}
