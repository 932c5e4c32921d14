//! The private step: partition selection, exact noise on every measure, and
//! post-processing into the released tables.
//!
//! Every released number comes from a [`Released`] value made by a `veil-core` mechanism;
//! counts, sums, means, variances and quantiles are functions of released values only
//! (post-processing, `cells`), derived as the plan says (`plan::Derivation`). With a
//! selection on a released count, that count's noise is drawn first and the group's other
//! noise only if it passes.

use std::borrow::Cow;
use std::collections::BTreeMap;

use polars::prelude::*;
use rand_core::{CryptoRng, Rng};
use veil_core::Released;
use veil_core::mechanism::{QuantileLevel, QuantileMechanism, ThresholdNoise};
use veil_core::special::normal_sf_inverse;

use crate::EngineError;
use crate::frame::{int_column, row_keys};
use crate::job::{AggregateKind, Partitions};
use crate::plan::{
    HISTOGRAM_BRANCHING, HISTOGRAM_DEPTH, MeasureNoise, Plan, QuantileNoise, QueryPlan,
    output_names_of,
};
use crate::scan::{Aggregated, QueryAggregates};

mod cells;

use cells::{Cell, NoisyGroup, QuantileDraws, cells_for};

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

/// The leaf bins of the quantile histograms: per histogram key, per group row, its rows
/// per bin.
fn leaf_counts(
    query: &QueryPlan,
    groups: &DataFrame,
    aggregates: &QueryAggregates,
) -> Result<BTreeMap<String, Vec<Vec<u64>>>, EngineError> {
    let leaves = HISTOGRAM_BRANCHING.pow(HISTOGRAM_DEPTH) as usize;
    let group_by = &query.query.group_by;
    let index: BTreeMap<Vec<String>, usize> = row_keys(groups, group_by)?
        .into_iter()
        .enumerate()
        .map(|(row, key)| (key, row))
        .collect();
    let mut result = BTreeMap::new();
    for (key, histogram) in &aggregates.histograms {
        let histogram_keys = row_keys(histogram, group_by)?;
        let leaf = int_column(histogram, "leaf")?;
        let rows = int_column(histogram, "rows")?;
        let mut counts = vec![vec![0_u64; leaves]; groups.height()];
        for ((group, leaf), rows) in histogram_keys.into_iter().zip(leaf).zip(rows) {
            if let (Some(&row), Ok(leaf), Ok(rows)) = (
                index.get(&group),
                usize::try_from(leaf),
                u64::try_from(rows),
            ) && leaf < leaves
            {
                counts[row][leaf] += rows;
            }
        }
        result.insert(key.clone(), counts);
    }
    Ok(result)
}

/// Draws the noise of one count-like measure.
fn noisy<R: Rng + CryptoRng + ?Sized>(
    noise: &MeasureNoise,
    value: i64,
    rng: &mut R,
) -> Result<Released<i64>, EngineError> {
    match noise {
        MeasureNoise::Laplace(mechanism) => Ok(mechanism.release(value, rng)),
        MeasureNoise::Gaussian(mechanism) => Ok(mechanism.release(value, rng)),
        MeasureNoise::Quantile(_) | MeasureNoise::Joint(_) => Err(EngineError::Internal(
            "a histogram or a joint draw drawn as one count".into(),
        )),
    }
}

/// The quantile draws of one group: per quantile level of each quantiles aggregate, the
/// point's bin edge and the interval's two ends (edges), from the histogram's bins.
fn quantile_draws<R: Rng + CryptoRng + ?Sized>(
    query: &QueryPlan,
    bins: &BTreeMap<String, Vec<Vec<u64>>>,
    row: usize,
    released: &BTreeMap<String, Released<i64>>,
    rng: &mut R,
) -> Result<QuantileDraws, EngineError> {
    let mut draws = BTreeMap::new();
    for (aggregate, derivation) in query.query.aggregates.iter().zip(&query.derivations) {
        let (
            AggregateKind::Quantiles { levels, .. },
            crate::plan::Derivation::Quantiles { histogram },
        ) = (&aggregate.kind, derivation)
        else {
            continue;
        };
        let Some(MeasureNoise::Quantile(noise)) =
            query.noise_of(histogram).map(|noisy| &noisy.noise)
        else {
            return Err(EngineError::Internal(format!(
                "{histogram} has no quantile noise"
            )));
        };
        let empty = vec![0_u64; HISTOGRAM_BRANCHING.pow(HISTOGRAM_DEPTH) as usize];
        let group_bins = bins
            .get(histogram)
            .and_then(|rows| rows.get(row))
            .unwrap_or(&empty);
        let rows_at_least = rows_with_value_at_least(query, histogram, released);
        for &level in levels {
            let level = QuantileLevel::new(level).map_err(|e| EngineError::param("q", e))?;
            let key = (histogram.clone(), level.numer());
            if draws.contains_key(&key) {
                continue;
            }
            let LevelDraws { point, low, high } =
                level_draws(noise, group_bins.len(), level, rows_at_least);
            let point = *point.release(group_bins, level, 0, rng).value();
            let mut end = |aim: Option<i64>, bound: usize| match (&noise.interval, aim) {
                (Some(interval), Some(shift)) => {
                    *interval.release(group_bins, level, shift, rng).value()
                }
                _ => bound,
            };
            let low = end(low, 0);
            let high = end(high, group_bins.len());
            draws.insert(key, (point, low, high));
        }
    }
    Ok(draws)
}

/// One quantile level's draws in one group, decided before any is made.
struct LevelDraws<'a> {
    /// The point's mechanism: the plan's, or one taking the share of the ends not drawn.
    point: Cow<'a, QuantileMechanism>,
    /// The lower end's target shift, `None` when it is left at the column's bound.
    low: Option<i64>,
    /// The upper end's.
    high: Option<i64>,
}

/// Which ends of a level's value interval are drawn ([`interval_aims`], on a released
/// count only) and the point's mechanism: each end not drawn leaves its budget to the
/// point ([`QuantileNoise::point_taking`]). A rank interval draws no ends and its point
/// already has the whole budget.
fn level_draws(
    noise: &QuantileNoise,
    bins: usize,
    level: QuantileLevel,
    rows_at_least: Option<f64>,
) -> LevelDraws<'_> {
    let (low, high) = noise.interval.as_ref().map_or((None, None), |interval| {
        interval_aims(interval, bins, level, rows_at_least)
    });
    let unused = usize::from(low.is_none()) + usize::from(high.is_none());
    let point = noise
        .point_taking(unused)
        .map_or(Cow::Borrowed(&noise.point), Cow::Owned);
    LevelDraws { point, low, high }
}

/// Where the two ends of a quantile's value interval aim: the target shift in rows of
/// each end drawn by `interval`, `None` for an end left at the column's bound.
///
/// Each end targets the rank `K` rows beyond the level, `K` the interval draw's rank-error
/// bound at β = 1.25%. The bound is on the gap to the best candidate, so it keeps the end
/// on its side of the quantile only when the target rank `q·n − K` (or `q·n + K`) lies
/// inside the group's `n` rows: that is checked on a lower bound of `n` from a released
/// count that misses with probability at most 1.25% (post-processing). Where it cannot be
/// checked, the end is the column's bound. Each end misses with probability at most 2.5%.
fn interval_aims(
    interval: &QuantileMechanism,
    bins: usize,
    level: QuantileLevel,
    rows_at_least: Option<f64>,
) -> (Option<i64>, Option<i64>) {
    let margin = interval.rank_error_bound(level, bins + 1, 0.0125).ceil();
    #[allow(clippy::cast_possible_truncation)]
    let shift = margin.min(9.0e18) as i64;
    rows_at_least.map_or((None, None), |rows| {
        (
            (level.get() * rows >= margin).then_some(-shift),
            ((1.0 - level.get()) * rows >= margin).then_some(shift),
        )
    })
}

/// A lower bound on the rows of a group that have a value in the histogram's column,
/// from a released count of exactly those rows, wrong with probability at most 1.25%:
/// the count minus 3.5 of its noise's standard deviations and one row (a Gaussian passes
/// that with probability under 0.03%, a Laplace under 0.4%, one coordinate of a joint draw
/// of two to four measures under 0.25%; the row covers the discrete noises' steps at small
/// scales). `None` when the query releases no such count ([`QueryPlan::interval_count`]:
/// not the one selection thresholded, nor one drawn with it, which lean up once passed).
fn rows_with_value_at_least(
    query: &QueryPlan,
    histogram: &str,
    released: &BTreeMap<String, Released<i64>>,
) -> Option<f64> {
    let column = query.noise_of(histogram)?.measure.column()?;
    let count = query.interval_count(column)?;
    let std = count.noise.std_dev();
    #[allow(clippy::cast_precision_loss)]
    let value = *released.get(&count.measure.key())?.value() as f64;
    Some(value - 3.5 * std - 1.0)
}

fn release_query<R: Rng + CryptoRng + ?Sized>(
    query: &QueryPlan,
    aggregates: &QueryAggregates,
    rng: &mut R,
) -> Result<ReleasedTable, EngineError> {
    let groups = candidate_groups(query, aggregates)?;
    let bins = leaf_counts(query, &groups, aggregates)?;
    let measure_values: BTreeMap<String, Vec<i64>> = query
        .measures
        .iter()
        .map(|noisy| noisy.measure.key())
        .chain(std::iter::once(crate::plan::Measure::Units.key()))
        .filter(|key| groups.column(key).is_ok())
        .map(|key| int_column(&groups, &key).map(|values| (key, values)))
        .collect::<Result<_, _>>()?;
    let true_value =
        |key: &str, row: usize| measure_values.get(key).map_or(0, |values| values[row]);

    let joint_selection = joint_selection(query)?;
    // Selection first: with a selection on a released count, that count is drawn first and
    // the rest only for groups that pass; a separate selection draws its own unit counts.
    let mut kept = Vec::new();
    let mut noisy_groups = Vec::new();
    for row in 0..groups.height() {
        let mut values = BTreeMap::new();
        match (&query.selection, &query.selection_count) {
            (Some(selection), Some(key)) => {
                // A count drawn jointly with another measure: one draw of both, kept whole
                // if the count passes (the threshold rests on the joint law's answer).
                if let Some(joint) = joint_selection {
                    let truths: Vec<i64> =
                        joint.keys.iter().map(|key| true_value(key, row)).collect();
                    let Some(released) = selection.release_joint(&truths, rng) else {
                        continue;
                    };
                    values.extend(joint.keys.iter().cloned().zip(released));
                } else {
                    // The selection draws the count with the count's own noise (truncated
                    // for Laplace: the threshold assumes it) and keeps it if it passes.
                    let Some(released) = selection.release(true_value(key, row), rng) else {
                        continue;
                    };
                    values.insert(key.clone(), released);
                }
            }
            (Some(selection), None) => {
                let units = true_value(&crate::plan::Measure::Units.key(), row);
                if selection.release(units, rng).is_none() {
                    continue;
                }
            }
            (None, _) => {}
        }
        for noisy_measure in &query.measures {
            let key = noisy_measure.measure.key();
            if values.contains_key(&key) || matches!(noisy_measure.noise, MeasureNoise::Quantile(_))
            {
                continue;
            }
            if let MeasureNoise::Joint(joint) = &noisy_measure.noise {
                // One draw for every measure of the joint draw, at its first.
                let truths: Vec<i64> = joint.keys.iter().map(|key| true_value(key, row)).collect();
                for (key, released) in joint.keys.iter().zip(joint.mechanism.release(&truths, rng))
                {
                    values.insert(key.clone(), released);
                }
                continue;
            }
            values.insert(
                key.clone(),
                noisy(&noisy_measure.noise, true_value(&key, row), rng)?,
            );
        }
        let quantiles = quantile_draws(query, &bins, row, &values, rng)?;
        #[allow(clippy::cast_possible_truncation, clippy::cast_possible_wrap)]
        kept.push(row as IdxSize);
        noisy_groups.push(NoisyGroup { values, quantiles });
    }

    let kept = IdxCa::from_vec("rows".into(), kept);
    let released_groups = groups
        .select(query.query.group_by.iter().map(String::as_str))
        .and_then(|frame| frame.take(&kept))
        .map_err(|e| EngineError::polars("selecting released groups", &e))?;
    let mut columns: Vec<Column> = released_groups.columns().to_vec();
    for (aggregate, derivation) in query.query.aggregates.iter().zip(&query.derivations) {
        let names = output_names_of(aggregate);
        let cells: Vec<Vec<Cell>> = noisy_groups
            .iter()
            .map(|group| cells_for(query, aggregate, derivation, group))
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

/// The joint draw that holds the count selection thresholds, when it is one; checked once,
/// before any group: the selection must threshold that very draw's count (the same
/// mechanism, the same answer), and a count drawn jointly is never thresholded alone.
fn joint_selection(query: &QueryPlan) -> Result<Option<&crate::plan::JointNoise>, EngineError> {
    let (Some(selection), Some(key)) = (&query.selection, &query.selection_count) else {
        return Ok(None);
    };
    let joint = match query.noise_of(key).map(|noisy| &noisy.noise) {
        Some(MeasureNoise::Joint(joint)) => Some(joint),
        _ => None,
    };
    match (selection.noise(), joint) {
        (ThresholdNoise::Joint { mechanism, index }, Some(joint))
            if *mechanism == joint.mechanism && *index == joint.index =>
        {
            Ok(Some(joint))
        }
        (ThresholdNoise::Joint { .. }, _) | (_, Some(_)) => Err(EngineError::Internal(format!(
            "the selection's noise and the noise of {key}, the count it thresholds, disagree"
        ))),
        _ => Ok(None),
    }
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

#[cfg(test)]
mod tests {
    use veil_core::Epsilon;
    use veil_core::mechanism::{QuantileLevel, QuantileMechanism, QuantileSelection};

    use super::{LevelDraws, interval_aims, level_draws};
    use crate::plan::QuantileNoise;

    /// An end aims its margin beyond the quantile only where the released count's lower
    /// bound shows that many rows on its side; elsewhere, or with no count, it is left at
    /// the bound (and its share goes to the point).
    #[test]
    fn interval_ends_aim_only_where_the_count_shows_rows_on_their_side() {
        let interval = QuantileMechanism::new(
            Epsilon::new(0.05).unwrap(),
            5,
            QuantileSelection::Exponential,
        )
        .unwrap();
        let bins = 4096;
        let p90 = QuantileLevel::new(0.9).unwrap();
        let margin = interval.rank_error_bound(p90, bins + 1, 0.0125).ceil();
        #[allow(clippy::cast_possible_truncation)]
        let shift = margin as i64;
        assert_eq!(interval_aims(&interval, bins, p90, None), (None, None));
        // Enough rows below the 90th percentile for the lower end, not above it for the upper.
        let rows = margin / 0.9 + 1.0;
        assert_eq!(
            interval_aims(&interval, bins, p90, Some(rows)),
            (Some(-shift), None)
        );
        let rows = margin / 0.1 + 1.0;
        assert_eq!(
            interval_aims(&interval, bins, p90, Some(rows)),
            (Some(-shift), Some(shift))
        );
        assert_eq!(
            interval_aims(&interval, bins, p90, Some(margin / 0.9 - 1.0)),
            (None, None)
        );
    }

    /// Per group and level, the point and the ends actually drawn spend at most what the
    /// plan charges (`ε_p + 2ε_i`, or `ρ_p + 2ρ_i`), whatever the released count says, and
    /// the point takes exactly the share of the ends left at their bounds.
    #[test]
    fn a_groups_draws_spend_at_most_the_planned_share_whatever_the_count() {
        let quantile = |epsilon: f64, selection| {
            QuantileMechanism::new(Epsilon::new(epsilon).unwrap(), 5, selection).unwrap()
        };
        for selection in [
            QuantileSelection::PermuteAndFlip,
            QuantileSelection::Exponential,
        ] {
            let noise = QuantileNoise {
                point: quantile(0.3, selection),
                interval: Some(quantile(1.0 / 60.0, QuantileSelection::Exponential)),
                draws: 1.0,
                groups: 3.0,
            };
            let cost = |epsilon: f64| match selection {
                QuantileSelection::PermuteAndFlip => epsilon,
                QuantileSelection::Exponential => epsilon * epsilon / 8.0,
            };
            let (point, end) = (0.3, 1.0 / 60.0);
            let planned = cost(point) + 2.0 * cost(end);
            let median = QuantileLevel::new(0.5).unwrap();
            let margin = noise
                .interval
                .as_ref()
                .unwrap()
                .rank_error_bound(median, 4097, 0.0125)
                .ceil();
            let mut seen = [false; 3];
            for rows in [None, Some(0.0), Some(2.0 * margin - 1.0), Some(1e9)] {
                let LevelDraws {
                    point: mechanism,
                    low,
                    high,
                } = level_draws(&noise, 4096, median, rows);
                let drawn = usize::from(low.is_some()) + usize::from(high.is_some());
                seen[drawn] = true;
                #[allow(clippy::cast_precision_loss)]
                let spent = cost(mechanism.epsilon().get()) + drawn as f64 * cost(end);
                assert!(spent <= planned, "{rows:?}: {spent} > {planned}");
                assert!(
                    spent > planned * (1.0 - 1e-9),
                    "{rows:?}: {spent} < {planned}"
                );
                assert_eq!(mechanism.selection(), selection);
            }
            assert_eq!(seen, [true, false, true], "none or both ends at the median");
        }
    }
}
