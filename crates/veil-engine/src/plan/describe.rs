//! The noise of each released output, predicted from the plan alone (no data): what
//! `veil explain` prints and `release.json` records.

use super::{
    Derivation, Measure, MeasureNoise, QuantileNoise, QueryPlan, Unaimed, output_names_of,
};
use crate::job::{AggregateKind, QuantileInterval};

/// How much noise one released output carries, in its own units.
#[derive(Debug, Clone, PartialEq)]
pub struct OutputNoise {
    /// The output column.
    pub name: String,
    /// The measures it is computed from (their keys), and how.
    pub formula: String,
    /// The measures' keys.
    pub measures: Vec<String>,
    /// The standard deviation of its noise, where it does not depend on the data (counts
    /// and sums).
    pub std: Option<f64>,
    /// For a mean or a variance: the noise's standard deviation times `n`, the number of
    /// values in the group (its noise is about `std_times_n / n`).
    pub std_times_n: Option<f64>,
    /// For a quantile: the rank error (in rows) that the point estimate stays within with
    /// probability 95%, plus the rows of one histogram bin.
    pub rank_error: Option<f64>,
    /// The factor from `std` (or `std_times_n`) to the half-width the noise stays within
    /// with probability 95%: `ln 20 / √2 ≈ 2.12` when a Laplace measure is in it (exact
    /// for one; an upper bound for a sum of several), `1.96` for Gaussian noise alone.
    pub half_width_95: f64,
}

impl OutputNoise {
    /// The half-width the noise stays within with probability 95% (counts and sums).
    #[must_use]
    pub fn error_95(&self) -> Option<f64> {
        self.std.map(|std| self.half_width_95 * std)
    }

    /// For a mean or a variance: [`OutputNoise::error_95`] times `n`.
    #[must_use]
    pub fn error_95_times_n(&self) -> Option<f64> {
        self.std_times_n.map(|std| self.half_width_95 * std)
    }
}

/// A measure's noise standard deviation in its real units (rows, or the column's units;
/// a centred sum in units of `x − mid`, centred squares in units of `(x − mid)²`).
#[must_use]
pub fn real_std(query: &QueryPlan, key: &str) -> Option<f64> {
    let noisy = query.noise_of(key)?;
    let unit = match &noisy.measure {
        Measure::Sum { grid, .. } => grid.granularity().to_f64(),
        Measure::CenteredSum { grid, .. } => grid.granularity().to_f64() / 2.0,
        Measure::CenteredSquares { grid, .. } => (grid.granularity().to_f64() / 2.0).powi(2),
        Measure::Rows | Measure::Units | Measure::ValueCount { .. } | Measure::Histogram { .. } => {
            1.0
        }
    };
    let std = noisy.noise.std_dev() * unit;
    std.is_finite().then_some(std)
}

impl QueryPlan {
    /// The predicted noise of every released output of aggregate `index`.
    #[must_use]
    pub fn output_noise(&self, index: usize) -> Vec<OutputNoise> {
        let (Some(aggregate), Some(derivation)) = (
            self.query.aggregates.get(index),
            self.derivations.get(index),
        ) else {
            return Vec::new();
        };
        let measures = self.derivation_measures(derivation);
        let formula = self.formula_of(derivation);
        // Per quantile level: its rank error and how its interval is made.
        let levels: Vec<(Option<f64>, String)> = match (derivation, &aggregate.kind) {
            (
                Derivation::Quantiles { histogram },
                AggregateKind::Quantiles {
                    levels, interval, ..
                },
            ) => {
                let column = self
                    .noise_of(histogram)
                    .and_then(|noisy| noisy.measure.column());
                // Value intervals asked for, but no count to aim their ends by: none drawn.
                let unaimed = match (interval, column) {
                    (QuantileInterval::Value, Some(column)) => self
                        .interval_count_or_why(column)
                        .err()
                        .map(|why| unaimed_in_words(why, column)),
                    _ => None,
                };
                let level_formula = unaimed.as_ref().map_or_else(
                    || formula.clone(),
                    |why| {
                        format!(
                            "{formula}; no value interval ends: {why}, and they aim by one, so the point took their share"
                        )
                    },
                );
                match self.noise_of(histogram).map(|noisy| &noisy.noise) {
                    Some(MeasureNoise::Quantile(noise)) => levels
                        .iter()
                        .map(|&level| {
                            quantile_level_noise(noise, unaimed.is_none(), level, &level_formula)
                        })
                        .collect(),
                    _ => Vec::new(),
                }
            }
            _ => Vec::new(),
        };
        let middle = aggregate.kind.column().map_or(0.0, |column| {
            f64::midpoint(column.bounds.lower(), column.bounds.upper())
        });
        let noise = |std: Option<f64>, std_times_n: Option<f64>, rank_error: Option<f64>| {
            (std, std_times_n, rank_error)
        };
        let (std, std_times_n, rank_error) = match derivation {
            Derivation::Count { rows: key } | Derivation::UnitCount { units: key } => {
                noise(real_std(self, key), None, None)
            }
            Derivation::Sum { sum } => noise(real_std(self, sum), None, None),
            Derivation::CenteredSum { count, centered } => noise(
                real_std(self, count)
                    .zip(real_std(self, centered))
                    .map(|(count, centered)| (middle * count).hypot(centered)),
                None,
                None,
            ),
            Derivation::Mean { centered, .. } => noise(None, real_std(self, centered), None),
            Derivation::Variance { squares, .. } => noise(None, real_std(self, squares), None),
            Derivation::Quantiles { .. } => noise(None, None, None),
        };
        let laplace = measures.iter().any(|key| {
            self.noise_of(key)
                .is_some_and(|noisy| matches!(noisy.noise, MeasureNoise::Laplace(_)))
        });
        // A joint draw's noise: its own 95% half-width over its deviation (the widest of
        // the output's measures).
        let joint = measures
            .iter()
            .filter_map(|key| match &self.noise_of(key)?.noise {
                noise @ MeasureNoise::Joint(_) => Some(noise.ci_half_width() / noise.std_dev()),
                _ => None,
            })
            .reduce(f64::max);
        let half_width_95 = match (joint, laplace) {
            (Some(ratio), _) => ratio,
            (None, true) => 20_f64.ln() / std::f64::consts::SQRT_2,
            (None, false) => veil_core::special::normal_sf_inverse(0.025),
        };
        output_names_of(aggregate)
            .into_iter()
            .enumerate()
            .map(|(index, name)| {
                let (rank_error, formula) = levels
                    .get(index)
                    .cloned()
                    .unwrap_or((rank_error, formula.clone()));
                OutputNoise {
                    name,
                    formula,
                    measures: measures.clone(),
                    std,
                    std_times_n,
                    rank_error,
                    half_width_95,
                }
            })
            .collect()
    }
}

/// Why `column`'s quantiles have no count to aim value interval ends by, in words.
fn unaimed_in_words(why: Unaimed, column: &str) -> String {
    match why {
        Unaimed::Selected => format!(
            "the count of {column}'s rows is the one selection thresholds, which leans up once passed (selection = \"units\" frees it)"
        ),
        Unaimed::DrawnWithSelected => format!(
            "the count of {column}'s rows is drawn together with the one selection thresholds, which leans up once passed"
        ),
        Unaimed::NotReleased => format!(
            "the query releases no count of {column}'s rows (add a count or mean of {column})"
        ),
    }
}

/// One quantile level's rank error (95%, in rows, the same for every group) and its
/// formula, which says how its interval is made: two more draws (when `aimed`: a count
/// to aim them by), whose ends leave the column's bounds only in groups with enough rows
/// on their side (the margin `release::interval_aims` aims beyond the quantile, over `q`
/// or `1 − q`), or none.
fn quantile_level_noise(
    noise: &QuantileNoise,
    aimed: bool,
    level: f64,
    formula: &str,
) -> (Option<f64>, String) {
    let candidates = super::HISTOGRAM_BRANCHING.pow(super::HISTOGRAM_DEPTH) as usize + 1;
    let Ok(at) = veil_core::mechanism::QuantileLevel::new(level) else {
        return (None, formula.to_string());
    };
    let rank_error = noise.point.rank_error_bound(at, candidates, 0.05);
    let text = match noise.interval.as_ref().filter(|_| aimed) {
        Some(interval) => {
            let margin = interval.rank_error_bound(at, candidates, 0.0125).ceil();
            let rows = |side: f64| {
                if side > 0.0 {
                    format!("{:.0}", (margin / side).ceil())
                } else {
                    "no".to_string()
                }
            };
            format!(
                "{formula}; value interval from two more draws, inside the bounds from about {} rows in the group (lower end), {} (upper end); an end left at its bound leaves its share to the point",
                rows(at.get()),
                rows(1.0 - at.get()),
            )
        }
        None => format!("{formula}; no value interval (rank only: the ci columns hold the bounds)"),
    };
    (Some(rank_error), text)
}
