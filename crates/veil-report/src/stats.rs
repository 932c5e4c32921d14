//! Error statistics of predictions (analytic) and of trials (empirical), the error's
//! decomposition into bounding, noise and selection, and the bounding's bias.

use crate::dist;
use crate::input::{Contributions, QueryInput};
use crate::model::Prediction;
use crate::output::{BiasSummary, ContributionSummary, Decomposition, ErrorStats};

/// The analytic median relative error of a set of predictions (NaN if no group has a
/// non-zero true value).
pub(crate) fn median_relative<'a>(predictions: impl Iterator<Item = &'a Prediction>) -> f64 {
    let relative: Vec<&Prediction> = predictions.filter(|p| p.truth.abs() > 0.0).collect();
    if relative.is_empty() {
        return f64::NAN;
    }
    dist::invert(0.5, 1.0, |r| relative_error_cdf(&relative, r))
}

/// The share of groups (each with a non-zero true value) whose relative error is at most
/// `r`, a group not released counting with a relative error of 1.
fn relative_error_cdf(relative: &[&Prediction], r: f64) -> f64 {
    #[allow(clippy::cast_precision_loss)]
    let n = relative.len().max(1) as f64;
    relative
        .iter()
        .map(|p| {
            p.release * p.abs_error_cdf(r * p.truth.abs())
                + (1.0 - p.release) * f64::from(u8::from(r >= 1.0))
        })
        .sum::<f64>()
        / n
}

/// Analytic error statistics of a set of predictions.
pub(crate) fn analytic_stats<'a>(
    predictions: impl Iterator<Item = &'a Prediction> + Clone,
) -> ErrorStats {
    let all: Vec<&Prediction> = predictions.collect();
    let relative: Vec<&Prediction> = all
        .iter()
        .copied()
        .filter(|prediction| prediction.truth.abs() > 0.0)
        .collect();
    #[allow(clippy::cast_precision_loss)]
    let n_all = all.len().max(1) as f64;
    #[allow(clippy::cast_precision_loss)]
    let n_relative = relative.len().max(1) as f64;
    let abs_cdf_all = |x: f64| -> f64 {
        all.iter()
            .map(|p| {
                p.release * p.abs_error_cdf(x)
                    + (1.0 - p.release) * f64::from(u8::from(p.truth.abs() <= x))
            })
            .sum::<f64>()
            / n_all
    };
    let relative_cdf = |r: f64| relative_error_cdf(&relative, r);
    let scale = all
        .iter()
        .map(|p| p.truth.abs().max(p.bias().abs() + 10.0 * p.noise_std))
        .fold(0.0_f64, f64::max);
    let mse = all
        .iter()
        .map(|p| {
            p.release * (p.bias().powi(2) + p.noise_std.powi(2))
                + (1.0 - p.release) * p.truth.powi(2)
        })
        .sum::<f64>()
        / n_all;
    let mse_relative = relative
        .iter()
        .map(|p| {
            (p.release * (p.bias().powi(2) + p.noise_std.powi(2))
                + (1.0 - p.release) * p.truth.powi(2))
                / p.truth.powi(2)
        })
        .sum::<f64>()
        / n_relative;
    if all.is_empty() {
        return ErrorStats::nan();
    }
    let has_relative = !relative.is_empty();
    ErrorStats {
        median_abs: dist::invert(0.5, scale, abs_cdf_all),
        p90_abs: dist::invert(0.9, scale, abs_cdf_all),
        rmse: mse.sqrt(),
        median_relative: if has_relative {
            dist::invert(0.5, 1.0, relative_cdf)
        } else {
            f64::NAN
        },
        p90_relative: if has_relative {
            dist::invert(0.9, 1.0, relative_cdf)
        } else {
            f64::NAN
        },
        rmse_relative: if has_relative {
            mse_relative.sqrt()
        } else {
            f64::NAN
        },
    }
}

/// Empirical statistics of `(absolute error, true value)` samples.
pub(crate) fn empirical_stats(samples: &[(f64, f64)]) -> ErrorStats {
    if samples.is_empty() {
        return ErrorStats::nan();
    }
    let mut absolute: Vec<f64> = samples.iter().map(|(error, _)| *error).collect();
    let mut relative: Vec<f64> = samples
        .iter()
        .filter(|(_, truth)| truth.abs() > 0.0)
        .map(|(error, truth)| error / truth.abs())
        .collect();
    absolute.sort_by(f64::total_cmp);
    relative.sort_by(f64::total_cmp);
    #[allow(clippy::cast_precision_loss)]
    let rmse = (absolute.iter().map(|e| e * e).sum::<f64>() / absolute.len() as f64).sqrt();
    #[allow(clippy::cast_precision_loss)]
    let rmse_relative =
        (relative.iter().map(|e| e * e).sum::<f64>() / relative.len().max(1) as f64).sqrt();
    ErrorStats {
        median_abs: dist::sorted_quantile(&absolute, 0.5),
        p90_abs: dist::sorted_quantile(&absolute, 0.9),
        rmse,
        median_relative: dist::sorted_quantile(&relative, 0.5),
        p90_relative: dist::sorted_quantile(&relative, 0.9),
        rmse_relative: if relative.is_empty() {
            f64::NAN
        } else {
            rmse_relative
        },
    }
}

pub(crate) fn decomposition<'a>(
    predictions: impl Iterator<Item = &'a Prediction>,
) -> Decomposition {
    let mut parts = Decomposition::default();
    for p in predictions {
        let bias_squared = p.bias().powi(2);
        let split = p.clamping.powi(2) + p.linf.powi(2) + p.l0.powi(2);
        if split > 0.0 {
            parts.clamping += p.release * bias_squared * p.clamping.powi(2) / split;
            parts.linf += p.release * bias_squared * p.linf.powi(2) / split;
            parts.l0 += p.release * bias_squared * p.l0.powi(2) / split;
        }
        parts.noise += p.release * p.noise_std.powi(2);
        parts.selection += (1.0 - p.release) * p.truth.powi(2);
    }
    let total = parts.clamping + parts.linf + parts.l0 + parts.noise + parts.selection;
    if total > 0.0 {
        parts.clamping /= total;
        parts.linf /= total;
        parts.l0 /= total;
        parts.noise /= total;
        parts.selection /= total;
    }
    parts
}

pub(crate) fn bias_summary(predictions: &[Option<Prediction>]) -> BiasSummary {
    let relative: Vec<&Prediction> = predictions
        .iter()
        .flatten()
        .filter(|p| p.truth.abs() > 0.0)
        .collect();
    #[allow(clippy::cast_precision_loss)]
    let n = relative.len().max(1) as f64;
    let mean = |part: fn(&Prediction) -> f64| -> f64 {
        relative
            .iter()
            .map(|p| part(p) / p.truth.abs())
            .sum::<f64>()
            / n
    };
    let mut absolute: Vec<f64> = relative
        .iter()
        .map(|p| p.bias().abs() / p.truth.abs())
        .collect();
    absolute.sort_by(f64::total_cmp);
    BiasSummary {
        groups: relative.len(),
        clamping: mean(|p| p.clamping),
        linf: mean(|p| p.linf),
        l0: mean(|p| p.l0),
        total: mean(Prediction::bias),
        median_abs: dist::sorted_quantile(&absolute, 0.5),
    }
}

pub(crate) fn contribution_summary(query: &QueryInput) -> ContributionSummary {
    let Contributions {
        groups_per_unit,
        rows_per_group,
    } = &query.contributions;
    let l0 = u64::from(query.bounds.max_groups_per_unit);
    let linf = u64::from(query.bounds.max_rows_per_group);
    #[allow(clippy::cast_precision_loss)]
    let share = |part: u64, whole: u64| {
        if whole == 0 {
            0.0
        } else {
            part as f64 / whole as f64
        }
    };
    let units: u64 = groups_per_unit.iter().map(|(_, units)| units).sum();
    let over_l0: u64 = groups_per_unit
        .iter()
        .filter(|(groups, _)| *groups > l0)
        .map(|(_, units)| units)
        .sum();
    let pairs: u64 = rows_per_group.iter().map(|(_, pairs)| pairs).sum();
    let over_linf: u64 = rows_per_group
        .iter()
        .filter(|(rows, _)| *rows > linf)
        .map(|(_, pairs)| pairs)
        .sum();
    let raw_rows: f64 = query.groups.iter().map(|group| group.raw.rows).sum();
    let row_bounded: f64 = query
        .groups
        .iter()
        .map(|group| group.row_bounded.rows)
        .sum();
    let bounded: f64 = query.groups.iter().map(|group| group.bounded.rows).sum();
    let fraction = |part: f64| if raw_rows > 0.0 { part / raw_rows } else { 0.0 };
    ContributionSummary {
        groups_per_unit: groups_per_unit.clone(),
        rows_per_group: rows_per_group.clone(),
        units_over_l0: share(over_l0, units),
        pairs_over_linf: share(over_linf, pairs),
        rows_dropped_by_linf: fraction(raw_rows - row_bounded),
        rows_dropped_by_l0: fraction(row_bounded - bounded),
    }
}

impl ErrorStats {
    fn nan() -> Self {
        Self {
            median_abs: f64::NAN,
            p90_abs: f64::NAN,
            rmse: f64::NAN,
            median_relative: f64::NAN,
            p90_relative: f64::NAN,
            rmse_relative: f64::NAN,
        }
    }
}
