//! Contribution bounds chosen from the data, privately: `max_groups_per_unit = "auto"`,
//! `max_rows_per_group = "auto"` and `bounds = "auto"`.
//!
//! Bounding, not noise, is most of the error on heavy-tailed data; a bound chosen without
//! looking at the data is a guess. Each `auto` bound is a differentially private quantile
//! of what units contribute, by permute-and-flip ([`QuantileMechanism`]) over fixed
//! candidates, paid from a stated share of the job's budget ([`AUTO_SHARE`], split evenly
//! between the job's `auto` bounds and charged with the rest):
//!
//! - **groups per unit (L0)**: the 90th percentile of each unit's number of groups. Every
//!   unit adds one entry to that histogram, so one unit moves it by one row.
//! - **rows per group (L∞)**: the 90th percentile of the rows of one (unit, group) pair per
//!   unit (the pair with the smallest keyed hash), so one unit moves it by one entry.
//! - **value bounds**: the 1st and 99th percentiles of one value per unit (its row with the
//!   smallest keyed hash), among candidates `0, ±2^k` for `k` in `-20..=60`, with a
//!   preference, the same for every dataset, for candidates near zero among those the data
//!   cannot tell apart (so data without negative values get a lower bound of 0).
//!
//! The chosen bounds are released (in release.json and on the terminal): they are outputs
//! of the mechanism, paid for. Which rows a unit keeps while they are chosen depends on the
//! unit's own rows and the run's secret key only, as in bounding.

use polars::prelude::*;
use rand_core::{CryptoRng, Rng};
use veil_core::Epsilon;
use veil_core::mechanism::{QuantileLevel, QuantileMechanism, QuantileSelection};

use crate::EngineError;
use crate::job::{AggregateKind, AutoBound, Job};
use crate::scan::BoundingKey;

pub use crate::job::AUTO_SHARE;

/// Candidates for groups per unit and rows per group: `1..=LARGEST_COUNT`.
const LARGEST_COUNT: u64 = 1024;

/// The level of the contribution quantiles (groups per unit, rows per group).
const CONTRIBUTION_LEVEL: f64 = 0.9;

/// One bound chosen from the data.
#[derive(Debug, Clone, PartialEq)]
pub struct AutoChoice {
    /// The query.
    pub query: String,
    /// What was chosen: `max_groups_per_unit`, `max_rows_per_group`, or `bounds of COLUMN`.
    pub what: String,
    /// The value chosen, as the job file would write it (`3`, `[0, 128]`).
    pub value: String,
    /// The ε it cost.
    pub epsilon: f64,
}

/// The job with every `auto` bound replaced by one chosen privately from its data, and the
/// choices. `epsilon` is what all of the job's choices may spend together.
///
/// # Errors
/// [`EngineError`] if the data cannot be read or a mechanism refuses its parameters.
pub fn resolve<R: Rng + CryptoRng + ?Sized>(
    job: &Job,
    epsilon: f64,
    rng: &mut R,
) -> Result<(Job, Vec<AutoChoice>), EngineError> {
    let count = job.auto_choices();
    if count == 0 {
        return Ok((job.clone(), Vec::new()));
    }
    #[allow(clippy::cast_precision_loss)]
    let each = Epsilon::new((epsilon / count as f64).next_down())
        .map_err(|e| EngineError::param("budget.epsilon", e))?;
    let plan = crate::plan::plan(job)?;
    let unit = job.source.privacy_unit.as_str();
    let base = crate::scan::with_unit(crate::scan::source_rows(&plan.scan)?, unit);
    let key = BoundingKey::random(rng);
    let mut resolved = job.clone();
    let mut choices = Vec::new();
    for (index, query) in resolved.queries.iter_mut().enumerate() {
        let group: Vec<Expr> = query
            .group_by
            .iter()
            .map(|name| col(name.as_str()))
            .collect();
        let mut pair: Vec<Expr> = vec![col(unit)];
        pair.extend(group.iter().cloned());
        let pair_columns: Vec<String> = std::iter::once(unit.to_string())
            .chain(query.group_by.iter().cloned())
            .collect();
        let pair_hash = crate::scan::keyed_hash(&pair_columns, key.words()[1]);
        for auto in query.auto.clone() {
            let (what, value) = match auto {
                AutoBound::GroupsPerUnit => {
                    // Each unit's number of groups: one entry per unit.
                    let per_unit = base
                        .clone()
                        .select(pair.clone())
                        .unique(None, UniqueKeepStrategy::Any)
                        .group_by([col(unit)])
                        .agg([len().cast(DataType::UInt64).alias("count")]);
                    let chosen = count_quantile(per_unit, 1, each, rng)?;
                    query.bounds.max_groups_per_unit = chosen;
                    ("max_groups_per_unit".to_string(), chosen.to_string())
                }
                AutoBound::RowsPerGroup => {
                    // The rows of one pair per unit (the one with the smallest keyed hash):
                    // one entry per unit.
                    let groups = 1_u32;
                    let per_pair = base
                        .clone()
                        .group_by(pair.clone())
                        .agg([len().cast(DataType::UInt64).alias("count")])
                        .with_column(pair_hash.clone().alias("__veil_auto_hash"))
                        .sort([unit, "__veil_auto_hash"], SortMultipleOptions::default())
                        .group_by([col(unit)])
                        .agg([col("count").head(Some(groups as usize))])
                        .explode(
                            cols(["count"]),
                            ExplodeOptions {
                                empty_as_null: false,
                                keep_nulls: false,
                            },
                        );
                    let chosen = count_quantile(per_pair, 1, each, rng)?;
                    query.bounds.max_rows_per_group = chosen;
                    ("max_rows_per_group".to_string(), chosen.to_string())
                }
                AutoBound::Values(column) => {
                    // One value per unit (its row with the smallest keyed hash): one entry
                    // per unit, a sample of the rows weighted alike for every unit.
                    let per_unit = 1_u64;
                    let row_columns: Vec<String> = pair_columns
                        .iter()
                        .cloned()
                        .chain(std::iter::once(column.clone()))
                        .collect();
                    let row_hash = crate::scan::keyed_hash(&row_columns, key.words()[0]);
                    let values = base
                        .clone()
                        .filter(crate::scan::value_present(&column))
                        .with_column(row_hash.alias("__veil_auto_hash"))
                        .select([
                            col(unit),
                            col("__veil_auto_hash"),
                            col(column.as_str()).cast(DataType::Float64).alias("value"),
                        ])
                        .sort([unit, "__veil_auto_hash"], SortMultipleOptions::default())
                        .group_by([col(unit)])
                        .agg([col("value")
                            .head(Some(usize::try_from(per_unit).unwrap_or(usize::MAX)))])
                        .explode(
                            cols(["value"]),
                            ExplodeOptions {
                                empty_as_null: false,
                                keep_nulls: false,
                            },
                        );
                    let (lower, upper) = value_bounds(values, per_unit, each, rng)?;
                    let bounds = veil_core::Bounds::new(lower, upper).map_err(|e| {
                        EngineError::param(format!("query[{index}] bounds of {column}"), e)
                    })?;
                    for aggregate in &mut query.aggregates {
                        if let AggregateKind::Sum(value)
                        | AggregateKind::Mean(value)
                        | AggregateKind::Variance(value)
                        | AggregateKind::Quantiles { column: value, .. } = &mut aggregate.kind
                            && value.name == column
                        {
                            value.bounds = bounds;
                        }
                    }
                    (
                        format!("bounds of {column}"),
                        format!("[{}, {}]", number(lower), number(upper)),
                    )
                }
            };
            choices.push(AutoChoice {
                query: query.name.clone(),
                what,
                value,
                epsilon: each.get(),
            });
        }
    }
    Ok((resolved, choices))
}

fn number(value: f64) -> String {
    if value.fract() == 0.0 && value.abs() < 1e15 {
        format!("{value:.0}")
    } else {
        format!("{value}")
    }
}

/// The 90th percentile of the `count` column (one entry per row of `frame`, each unit
/// adding at most `per_unit` entries), among `1..=LARGEST_COUNT`.
fn count_quantile<R: Rng + CryptoRng + ?Sized>(
    frame: LazyFrame,
    per_unit: u64,
    epsilon: Epsilon,
    rng: &mut R,
) -> Result<u32, EngineError> {
    let counts = frame
        .select([col("count")])
        .collect()
        .map_err(|e| EngineError::polars("choosing a bound", &e))?;
    let values = counts
        .column("count")
        .and_then(|column| column.cast(&DataType::UInt64))
        .map_err(|e| EngineError::polars("choosing a bound", &e))?;
    // Bin i holds the entries of value i + 1 (the last bin also the larger ones), so that
    // edge j (with j bins below it) stands for the bound j.
    let mut bins = vec![0_u64; usize::try_from(LARGEST_COUNT).unwrap_or(1024)];
    if let Ok(values) = values.u64() {
        for value in values.iter().flatten() {
            let bin = usize::try_from(value.clamp(1, LARGEST_COUNT) - 1).unwrap_or(0);
            bins[bin] += 1;
        }
    }
    let mechanism =
        QuantileMechanism::new(epsilon, per_unit.max(1), QuantileSelection::PermuteAndFlip)
            .map_err(|e| EngineError::param("auto bounds", e))?;
    let level =
        QuantileLevel::new(CONTRIBUTION_LEVEL).map_err(|e| EngineError::param("auto bounds", e))?;
    // Every candidate above the largest count ties with the best; a preference for smaller
    // bounds, the same for every dataset, breaks the tie towards the smallest: each step up
    // costs 4/ε rows, so its weight falls by about e^-2.
    #[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss)]
    let step_penalty = (4.0 * per_unit.max(1) as f64 / epsilon.get()).ceil() as u64;
    let edge = *mechanism
        .release_preferring(
            &bins,
            level,
            0,
            |candidate| candidate as u64 * step_penalty,
            rng,
        )
        .value();
    Ok(u32::try_from(edge.max(1)).unwrap_or(u32::MAX))
}

/// The candidate value bounds: `0` and `±2^k` for `k` in `-20..=60`, ascending.
fn value_candidates() -> Vec<f64> {
    let positive: Vec<f64> = (-20..=60).map(|k| 2f64.powi(k)).collect();
    positive
        .iter()
        .rev()
        .map(|value| -value)
        .chain(std::iter::once(0.0))
        .chain(positive.iter().copied())
        .collect()
}

/// The 1st and 99th percentiles of the `value` column among [`value_candidates`] (the
/// lower one 0 when the chosen percentile is not negative and no candidate below 0 is
/// chosen), each unit adding at most `per_unit` values.
fn value_bounds<R: Rng + CryptoRng + ?Sized>(
    frame: LazyFrame,
    per_unit: u64,
    epsilon: Epsilon,
    rng: &mut R,
) -> Result<(f64, f64), EngineError> {
    let values = frame
        .select([col("value")])
        .collect()
        .map_err(|e| EngineError::polars("choosing value bounds", &e))?;
    let candidates = value_candidates();
    // Bin i holds the values between candidates i and i + 1 (the ends also those beyond),
    // so that edge j is candidate j.
    let mut bins = vec![0_u64; candidates.len() - 1];
    if let Ok(values) = values
        .column("value")
        .and_then(|column| column.f64().cloned())
    {
        for value in values.iter().flatten().filter(|value| !value.is_nan()) {
            let at = candidates.partition_point(|candidate| *candidate <= value);
            let last = bins.len() - 1;
            bins[at.saturating_sub(1).min(last)] += 1;
        }
    }
    // Two draws share the choice's ε.
    let half =
        Epsilon::new(epsilon.get() / 2.0).map_err(|e| EngineError::param("auto bounds", e))?;
    let mechanism =
        QuantileMechanism::new(half, per_unit.max(1), QuantileSelection::PermuteAndFlip)
            .map_err(|e| EngineError::param("auto bounds", e))?;
    // Candidates the data cannot tell apart (every negative one when no value is negative,
    // every one above the largest value) tie; a preference for candidates near zero, the same
    // for every dataset, breaks the tie towards the narrower bounds: each doubling away from
    // zero costs 4/ε rows (its weight falls by about e^-2 a step).
    let zero = candidates.partition_point(|candidate| *candidate < 0.0);
    let step_penalty = (4.0 * per_unit as f64 / half.get()).ceil() as u64;
    let penalty = |candidate: usize| -> u64 {
        (candidate.abs_diff(zero) as u64).saturating_mul(step_penalty)
    };
    let draw = |level: f64, rng: &mut R| -> Result<f64, EngineError> {
        let level = QuantileLevel::new(level).map_err(|e| EngineError::param("auto bounds", e))?;
        Ok(candidates[*mechanism
            .release_preferring(&bins, level, 0, penalty, rng)
            .value()])
    };
    let lower = draw(0.01, rng)?;
    let upper = draw(0.99, rng)?;
    let (lower, upper) = (lower.min(upper), lower.max(upper));
    // A lower end within a thousandth of the upper one's size is zero for every purpose:
    // say so (post-processing of the released ends).
    let lower = if lower.abs() < upper.abs() / 1024.0 {
        0.0
    } else {
        lower
    };
    // Equal ends leave no width: widen to the next candidate up.
    let upper = if upper > lower {
        upper
    } else {
        candidates
            .iter()
            .copied()
            .find(|candidate| *candidate > lower)
            .unwrap_or(lower + 1.0)
    };
    Ok((lower, upper))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn value_candidates_ascend_through_zero() {
        let candidates = value_candidates();
        assert!(candidates.windows(2).all(|pair| pair[0] < pair[1]));
        assert!(candidates.contains(&0.0) && candidates.contains(&128.0));
    }
}
