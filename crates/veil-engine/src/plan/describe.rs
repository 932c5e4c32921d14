//! The noise of each released output, predicted from the plan alone (no data): what
//! `veil explain` prints and `release.json` records.

use super::{Derivation, Measure, MeasureNoise, QueryPlan, output_names_of};

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
        let measures: Vec<String> = derivation
            .measures()
            .into_iter()
            .map(str::to_string)
            .collect();
        let mut formula = derivation.formula();
        if let Derivation::Quantiles { histogram } = derivation
            && let Some(MeasureNoise::Quantile(noise)) =
                self.noise_of(histogram).map(|noisy| &noisy.noise)
        {
            formula.push_str(if noise.interval.is_some() {
                "; its value interval from two more draws"
            } else {
                "; no value interval (rank only: the ci columns hold the bounds)"
            });
        }
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
            Derivation::Quantiles { histogram } => {
                let bound = self
                    .noise_of(histogram)
                    .and_then(|noisy| match &noisy.noise {
                        MeasureNoise::Quantile(noise) => {
                            let level = veil_core::mechanism::QuantileLevel::new(0.5).ok()?;
                            let candidates =
                                super::HISTOGRAM_BRANCHING.pow(super::HISTOGRAM_DEPTH) as usize + 1;
                            Some(noise.point.rank_error_bound(level, candidates, 0.05))
                        }
                        _ => None,
                    });
                noise(None, None, bound)
            }
        };
        let laplace = measures.iter().any(|key| {
            self.noise_of(key)
                .is_some_and(|noisy| matches!(noisy.noise, MeasureNoise::Laplace(_)))
        });
        let half_width_95 = if laplace {
            20_f64.ln() / std::f64::consts::SQRT_2
        } else {
            veil_core::special::normal_sf_inverse(0.025)
        };
        output_names_of(aggregate)
            .into_iter()
            .map(|name| OutputNoise {
                name,
                formula: formula.clone(),
                measures: measures.clone(),
                std,
                std_times_n,
                rank_error,
                half_width_95,
            })
            .collect()
    }
}
