//! Post-processing: each released aggregate's value, standard deviation and 95% interval
//! from the group's noisy measures, as the plan's derivation says. Nothing here reads data.

use std::collections::BTreeMap;

use veil_core::Released;
use veil_core::mechanism::{FixedPoint, QuantileLevel};

use super::z95;
use crate::EngineError;
use crate::job::{Aggregate, AggregateKind};
use crate::plan::{Derivation, HISTOGRAM_BRANCHING, HISTOGRAM_DEPTH, Measure, QueryPlan};

/// A released value with its error bars, ready for a column.
#[derive(Debug, Clone, Copy)]
pub(super) struct Cell {
    pub(super) value: f64,
    pub(super) std: f64,
    pub(super) low: f64,
    pub(super) high: f64,
}

/// Per (histogram key, level numerator), the chosen bin edges: point, low end, high end.
pub(super) type QuantileDraws = BTreeMap<(String, u64), (usize, usize, usize)>;

/// The noisy measures of one group.
pub(super) struct NoisyGroup {
    /// Per measure key, its noisy value in steps.
    pub(super) values: BTreeMap<String, Released<i64>>,
    /// The quantile draws.
    pub(super) quantiles: QuantileDraws,
}

fn missing(what: &str) -> EngineError {
    EngineError::Internal(format!("measure {what} was not planned"))
}

impl NoisyGroup {
    fn get(&self, key: &str) -> Result<&Released<i64>, EngineError> {
        self.values.get(key).ok_or_else(|| missing(key))
    }
}

/// A released count in real units and its standard deviation (at least 1, for dividing).
fn count_of(group: &NoisyGroup, key: &str) -> Result<(f64, f64), EngineError> {
    let released = group.get(key)?;
    #[allow(clippy::cast_precision_loss)]
    let count = (*released.value() as f64).max(1.0);
    Ok((count, released.std_dev()))
}

/// The grid of a planned measure.
fn grid_of(query: &QueryPlan, key: &str) -> Result<FixedPoint, EngineError> {
    match query.noise_of(key).map(|noisy| &noisy.measure) {
        Some(
            Measure::Sum { grid, .. }
            | Measure::CenteredSum { grid, .. }
            | Measure::CenteredSquares { grid, .. },
        ) => Ok(*grid),
        _ => Err(missing(key)),
    }
}

/// The released centred sum `Σ (x − mid)` in real units, its standard deviation, and the
/// middle of the bounds (on the grid).
fn centered_sum(
    query: &QueryPlan,
    group: &NoisyGroup,
    key: &str,
) -> Result<(f64, f64, f64), EngineError> {
    let grid = grid_of(query, key)?;
    let released = group.get(key)?;
    let half_step = grid.granularity().to_f64() / 2.0;
    let (lower, upper) = grid.bounds_in_steps();
    #[allow(clippy::cast_precision_loss)]
    let middle = (lower + upper) as f64 * half_step;
    #[allow(clippy::cast_precision_loss)]
    let sum = *released.value() as f64 * half_step;
    Ok((sum, released.std_dev() * half_step, middle))
}

/// A sum of values bounded on one side of zero keeps that sign (post-processing).
fn sign_clamped(mut cell: Cell, bounds: veil_core::Bounds) -> Cell {
    let (low, high) = match (bounds.lower() >= 0.0, bounds.upper() <= 0.0) {
        (true, _) => (0.0, f64::INFINITY),
        (_, true) => (f64::NEG_INFINITY, 0.0),
        _ => (f64::NEG_INFINITY, f64::INFINITY),
    };
    cell.value = cell.value.clamp(low, high);
    cell.low = cell.low.clamp(low, high);
    cell.high = cell.high.clamp(low, high);
    cell
}

/// A count's cell: clamped at zero; when this count decided the group's selection, its
/// interval is the one that holds given that the group passed.
fn count_cell(query: &QueryPlan, group: &NoisyGroup, key: &str) -> Result<Cell, EngineError> {
    let released = group.get(key)?;
    #[allow(clippy::cast_precision_loss)]
    let value = *released.value() as f64;
    let (low, high) = match (&query.selection, &query.selection_count) {
        (Some(selection), Some(selected)) if selected == key => {
            let interval = selection.conditional_interval(*released.value());
            (interval.low, interval.high)
        }
        _ => (
            value - released.ci_half_width(),
            value + released.ci_half_width(),
        ),
    };
    // The true count is an integer, so the interval's ends move in to the integers they
    // enclose without losing coverage (a millionth of slack absorbs the rounding of
    // `value ± 1.96σ`, which printed 258.999999999 for 259).
    let (inner_low, inner_high) = ((low - 1e-6).ceil(), (high + 1e-6).floor());
    let (low, high) = if inner_low <= inner_high {
        (inner_low, inner_high)
    } else {
        (low, high)
    };
    Ok(Cell {
        value: value.max(0.0),
        std: released.std_dev(),
        low: low.max(0.0),
        high: high.max(0.0),
    })
}

/// The released cells of one aggregate for one group (one per quantile level).
pub(super) fn cells_for(
    query: &QueryPlan,
    aggregate: &Aggregate,
    derivation: &Derivation,
    group: &NoisyGroup,
) -> Result<Vec<Cell>, EngineError> {
    let bounds = aggregate.kind.column().map(|column| column.bounds);
    Ok(match (derivation, bounds) {
        (Derivation::Count { rows: key } | Derivation::UnitCount { units: key }, _) => {
            vec![count_cell(query, group, key)?]
        }
        (Derivation::Sum { sum }, Some(bounds)) => {
            let grid = grid_of(query, sum)?;
            let released = group.get(sum)?.to_real(grid.granularity());
            let value = *released.value();
            let cell = Cell {
                value,
                std: released.std_dev(),
                low: value - released.ci_half_width(),
                high: value + released.ci_half_width(),
            };
            vec![sign_clamped(cell, bounds)]
        }
        (Derivation::CenteredSum { count, centered }, Some(bounds)) => {
            // Σx = mid·N + Σ(x − mid); the two noises are independent.
            let released = group.get(count)?;
            #[allow(clippy::cast_precision_loss)]
            let values = *released.value() as f64;
            let (sum, sum_std, middle) = centered_sum(query, group, centered)?;
            let value = middle * values + sum;
            let std = (middle * released.std_dev()).hypot(sum_std);
            let cell = Cell {
                value,
                std,
                low: value - z95() * std,
                high: value + z95() * std,
            };
            vec![sign_clamped(cell, bounds)]
        }
        (Derivation::Mean { count, centered }, Some(bounds)) => {
            let (values, values_std) = count_of(group, count)?;
            let (sum, sum_std, middle) = centered_sum(query, group, centered)?;
            let value = (middle + sum / values).clamp(bounds.lower(), bounds.upper());
            // Delta method: Var(S/N) ≈ Var(S)/N² + S²·Var(N)/N⁴.
            let std = (sum_std / values).hypot(sum * values_std / (values * values));
            vec![Cell {
                value,
                std,
                low: (value - z95() * std).max(bounds.lower()),
                high: (value + z95() * std).min(bounds.upper()),
            }]
        }
        (
            Derivation::Variance {
                count,
                centered,
                squares,
            },
            Some(bounds),
        ) => {
            let (values, values_std) = count_of(group, count)?;
            let (sum, sum_std, _) = centered_sum(query, group, centered)?;
            let grid = grid_of(query, squares)?;
            let released = group.get(squares)?;
            let half_step = grid.granularity().to_f64() / 2.0;
            let scale = half_step * half_step;
            #[allow(clippy::cast_precision_loss)]
            let squared = *released.value() as f64 * scale;
            let squared_std = released.std_dev() * scale;
            let offset = sum / values;
            let max_variance = (bounds.width() / 2.0).powi(2);
            let value = (squared / values - offset * offset).clamp(0.0, max_variance);
            // Delta method over (squares, sum, count).
            let by_squares = squared_std / values;
            let by_sum = 2.0 * offset * sum_std / values;
            let by_count =
                (-squared / (values * values) + 2.0 * offset * offset / values) * values_std;
            let std = (by_squares.powi(2) + by_sum.powi(2) + by_count.powi(2)).sqrt();
            vec![Cell {
                value,
                std,
                low: (value - z95() * std).max(0.0),
                high: (value + z95() * std).min(max_variance),
            }]
        }
        (Derivation::Quantiles { histogram }, Some(bounds)) => {
            let AggregateKind::Quantiles { levels, .. } = &aggregate.kind else {
                return Err(missing(histogram));
            };
            let bins = HISTOGRAM_BRANCHING.pow(HISTOGRAM_DEPTH);
            let width = bounds.width() / f64::from(bins);
            #[allow(clippy::cast_precision_loss)]
            let edge = |index: usize| {
                (bounds.lower() + index as f64 * width).clamp(bounds.lower(), bounds.upper())
            };
            let cells = levels
                .iter()
                .map(|&level| {
                    let level =
                        QuantileLevel::new(level).map_err(|e| EngineError::param("q", e))?;
                    let (point, low, high) = group
                        .quantiles
                        .get(&(histogram.clone(), level.numer()))
                        .copied()
                        .ok_or_else(|| missing(histogram))?;
                    let value = edge(point);
                    // One bin beyond each end: an end's edge can sit on either side of the
                    // bin that holds its target rank.
                    let low = (edge(low.min(point)) - width).max(bounds.lower());
                    let high = (edge(high.max(point)) + width).min(bounds.upper());
                    Ok(Cell {
                        value,
                        std: (high - low) / (2.0 * z95()),
                        low,
                        high,
                    })
                })
                .collect::<Result<Vec<_>, EngineError>>()?;
            in_level_order(levels, cells)
        }
        (_, None) => return Err(missing("a value column")),
    })
}

/// The quantile cells of one group made to rise with their levels. Each level is drawn on
/// its own, so a group's median could come out above its 90th percentile (24 of 50 groups
/// crossed somewhere among three quartiles, at L0 = 5 with rank intervals). The points are
/// sorted and handed out in level order; each interval is widened to the lowest low of
/// the levels at or above it and the highest high of those at or below it. Both are
/// post-processing of released values (no privacy cost). A widened interval contains the
/// one it replaces, so each keeps its own coverage, and the ends rise with the level too;
/// each sorted point stays inside its interval (of the levels at or above a level, one has
/// a point at or below that level's sorted point, so a low at or below it; likewise above).
fn in_level_order(levels: &[f64], mut cells: Vec<Cell>) -> Vec<Cell> {
    let mut order: Vec<usize> = (0..levels.len()).collect();
    order.sort_by(|&a, &b| levels[a].total_cmp(&levels[b]));
    let mut points: Vec<f64> = cells.iter().map(|cell| cell.value).collect();
    points.sort_by(f64::total_cmp);
    // Running extremes in level order: highs from below, lows from above.
    let mut highs = Vec::with_capacity(order.len());
    let mut highest = f64::NEG_INFINITY;
    for &at in &order {
        highest = highest.max(cells[at].high);
        highs.push(highest);
    }
    let mut lows = vec![0.0; order.len()];
    let mut lowest = f64::INFINITY;
    for (rank, &at) in order.iter().enumerate().rev() {
        lowest = lowest.min(cells[at].low);
        lows[rank] = lowest;
    }
    for (rank, &at) in order.iter().enumerate() {
        let cell = &mut cells[at];
        cell.value = points[rank];
        cell.low = lows[rank];
        cell.high = highs[rank];
        cell.std = (cell.high - cell.low) / (2.0 * z95());
    }
    cells
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cell(value: f64, low: f64, high: f64) -> Cell {
        Cell {
            value,
            std: 0.0,
            low,
            high,
        }
    }

    /// Crossed quantiles (the 25th percentile above the median, levels given out of order)
    /// come out rising with their levels, each interval holding the one it replaces (so
    /// its own coverage) and its point.
    #[test]
    fn crossed_quantiles_are_rearranged_by_level() {
        let levels = [0.9, 0.25, 0.5];
        let before = vec![
            cell(70.0, 60.0, 80.0),
            cell(66.0, 50.0, 75.0),
            cell(6.0, 5.0, 8.0),
        ];
        let cells = in_level_order(&levels, before.clone());
        let at = |level: f64| {
            levels
                .iter()
                .position(|&l| l.total_cmp(&level).is_eq())
                .unwrap()
        };
        let (q25, q50, q90) = (&cells[at(0.25)], &cells[at(0.5)], &cells[at(0.9)]);
        assert_eq!((q25.value, q50.value, q90.value), (6.0, 66.0, 70.0));
        assert_eq!((q25.low, q50.low, q90.low), (5.0, 5.0, 60.0));
        assert_eq!((q25.high, q50.high, q90.high), (75.0, 75.0, 80.0));
        for (cell, old) in cells.iter().zip(&before) {
            assert!(cell.low <= cell.value && cell.value <= cell.high);
            assert!(
                cell.low <= old.low && old.high <= cell.high,
                "covers what it replaced"
            );
            assert!((cell.std - (cell.high - cell.low) / (2.0 * z95())).abs() < 1e-12);
        }
    }
}
