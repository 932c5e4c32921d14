//! The sweep: every query, aggregate and ε, analytic and Monte Carlo, with the error's
//! decomposition and its spread across groups.

use std::collections::BTreeMap;

use rand_core::Rng;
use serde::Serialize;
use veil_core::Epsilon;

use crate::ReportError;
use crate::dist;
use crate::input::{
    AggregateKind, Candidate, Contribution, Contributions, DataOrigin, NoisePlanner, QueryInput,
    QueryNoise, ReportInput,
};
use crate::model::{self, Prediction};
use crate::tuning::{self, TuningReport};

/// What to compute.
#[derive(Debug, Clone, PartialEq)]
pub struct ReportOptions {
    /// The ε's of the sweep, in increasing order.
    pub epsilons: Vec<Epsilon>,
    /// Monte Carlo trials per ε (0: analytic only).
    pub trials: u32,
    /// The relative error to reach (e.g. 0.1) when searching the smallest ε.
    pub target_error: f64,
}

/// A utility report: everything computed, ready to render. **Not private** when
/// [`Report::origin`] is [`DataOrigin::Real`]; [`Report::notice`] says so first.
#[derive(Debug, Clone, Serialize)]
pub struct Report {
    /// The first line of every rendering: whether the report may be shared.
    pub notice: String,
    /// Where the numbers come from.
    pub origin: DataOrigin,
    /// The job's name.
    pub job: String,
    /// The data.
    pub source: String,
    /// The job's budget in words.
    pub budget: String,
    /// The job's ε: findings and charts by group size are given at it (or the nearest
    /// swept ε).
    pub reference_epsilon: f64,
    /// The swept ε's.
    pub epsilons: Vec<f64>,
    /// Monte Carlo trials per ε.
    pub trials: u32,
    /// The target relative error of the ε search.
    pub target_error: f64,
    /// How the numbers were computed, and their approximations.
    pub method: Vec<String>,
    /// One per query.
    pub queries: Vec<QueryReport>,
}

/// One query's report.
#[derive(Debug, Clone, Serialize)]
pub struct QueryReport {
    /// The query.
    pub name: String,
    /// Its group-by columns.
    pub group_by: Vec<String>,
    /// Its segment column, if any.
    pub segment: Option<String>,
    /// The job's contribution bounds.
    pub bounds: Contribution,
    /// Groups in the data.
    pub groups: usize,
    /// How much units contribute and what bounding drops.
    pub contributions: ContributionSummary,
    /// Per value column, quantiles of its raw values (to compare with the bounds).
    pub value_quantiles: BTreeMap<String, Vec<(f64, f64)>>,
    /// Per aggregate.
    pub aggregates: Vec<AggregateReport>,
    /// Per ε: how many groups are released.
    pub release: Vec<ReleaseAtEpsilon>,
    /// Per group, largest first: its size and release probability at each ε.
    pub group_release: Vec<GroupRelease>,
    /// Suggested bounds and the smallest ε that meets the target.
    pub tuning: Option<TuningReport>,
    /// Plain-language findings: where the error comes from, who bears it.
    pub findings: Vec<String>,
}

/// Contribution histograms and what the job's bounds drop.
#[derive(Debug, Clone, Serialize)]
pub struct ContributionSummary {
    /// `(groups, units)` before bounding.
    pub groups_per_unit: Vec<(u64, u64)>,
    /// `(rows, unit–group pairs)` before bounding.
    pub rows_per_group: Vec<(u64, u64)>,
    /// Share of units in more groups than L0.
    pub units_over_l0: f64,
    /// Share of unit–group pairs with more rows than L∞.
    pub pairs_over_linf: f64,
    /// Share of rows dropped by L∞.
    pub rows_dropped_by_linf: f64,
    /// Share of rows dropped by L0 (after L∞).
    pub rows_dropped_by_l0: f64,
}

/// One aggregate across the sweep.
#[derive(Debug, Clone, Serialize)]
pub struct AggregateReport {
    /// The output column.
    pub name: String,
    /// What it computes.
    pub kind: AggregateKind,
    /// Its column, if any.
    pub column: Option<String>,
    /// The column's bounds, if any.
    pub bounds: Option<[f64; 2]>,
    /// The bias of bounding, the same at every ε.
    pub bias: BiasSummary,
    /// Per ε.
    pub sweep: Vec<AggregateAtEpsilon>,
}

/// The bias of contribution bounding, relative to the true values: the mean over groups
/// of `bias / |true value|`, signed.
#[derive(Debug, Clone, Copy, Serialize)]
pub struct BiasSummary {
    /// Groups with a non-zero true value (the others have no relative error).
    pub groups: usize,
    /// Clamping values to their bounds.
    pub clamping: f64,
    /// Dropping rows beyond L∞.
    pub linf: f64,
    /// Dropping groups beyond L0.
    pub l0: f64,
    /// All three.
    pub total: f64,
    /// Median over groups of `|bias| / |true value|`.
    pub median_abs: f64,
}

/// Error statistics over groups (and trials): absolute and relative to the true value.
/// A group that is not released counts with its whole true value as error.
#[derive(Debug, Clone, Copy, Serialize)]
pub struct ErrorStats {
    /// Median absolute error.
    pub median_abs: f64,
    /// 90th percentile of the absolute error.
    pub p90_abs: f64,
    /// Root mean squared error.
    pub rmse: f64,
    /// Median relative error.
    pub median_relative: f64,
    /// 90th percentile of the relative error.
    pub p90_relative: f64,
    /// Root mean squared relative error.
    pub rmse_relative: f64,
}

/// Shares of the expected squared error (they add up to 1).
#[derive(Debug, Clone, Copy, Serialize, Default)]
pub struct Decomposition {
    /// Clamping values.
    pub clamping: f64,
    /// L∞ row dropping.
    pub linf: f64,
    /// L0 group dropping.
    pub l0: f64,
    /// Noise.
    pub noise: f64,
    /// Groups lost to partition selection.
    pub selection: f64,
}

/// Errors of one slice of groups (a size bucket or a segment).
#[derive(Debug, Clone, Serialize)]
pub struct SliceStats {
    /// The slice, e.g. `10–99 units` or a segment value.
    pub label: String,
    /// Groups in it.
    pub groups: usize,
    /// Mean release probability.
    pub release_probability: f64,
    /// Analytic median relative error.
    pub median_relative: f64,
    /// Monte Carlo median relative error.
    pub empirical_median_relative: Option<f64>,
}

/// One aggregate at one ε.
#[derive(Debug, Clone, Serialize)]
pub struct AggregateAtEpsilon {
    /// The ε.
    pub epsilon: f64,
    /// Median over groups of the noise's standard deviation on the released value.
    pub noise_std: f64,
    /// Predicted from the noise scales and the true values.
    pub analytic: ErrorStats,
    /// Measured by re-noising the true aggregates.
    pub empirical: Option<ErrorStats>,
    /// Where the expected squared error comes from.
    pub decomposition: Decomposition,
    /// By group size (distinct units, log buckets).
    pub by_size: Vec<SliceStats>,
    /// By segment, when the query names one.
    pub by_segment: Vec<SliceStats>,
}

/// How many groups are released at one ε.
#[derive(Debug, Clone, Copy, Serialize)]
pub struct ReleaseAtEpsilon {
    /// The ε.
    pub epsilon: f64,
    /// Expected released groups.
    pub expected_groups: f64,
    /// Mean released groups over the trials.
    pub empirical_groups: Option<f64>,
    /// The true rows of unreleased groups, expected, as a share of all rows.
    pub rows_lost: f64,
}

/// One group's size and release probability.
#[derive(Debug, Clone, Serialize)]
pub struct GroupRelease {
    /// The group's key.
    pub key: Vec<Option<String>>,
    /// Its segment.
    pub segment: Option<String>,
    /// Distinct units before bounding.
    pub units: f64,
    /// Distinct units after bounding.
    pub bounded_units: f64,
    /// Per ε, the probability it is released.
    pub release_probability: Vec<f64>,
    /// Per ε, the share of trials in which it was released.
    pub empirical_release: Option<Vec<f64>>,
}

/// The size bucket of a group of `units` distinct units: `[10^k, 10^(k+1))`.
pub(crate) fn size_bucket(units: f64) -> (u32, String) {
    #[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss)]
    let exponent = units.max(1.0).log10().floor().max(0.0) as u32;
    let low = 10_u64.saturating_pow(exponent);
    let high = 10_u64.saturating_pow(exponent + 1) - 1;
    (exponent, format!("{low}–{high} units"))
}

/// The notice that opens a report.
pub(crate) fn notice(origin: DataOrigin, job: &str, source: &str) -> String {
    match origin {
        DataOrigin::Real => format!(
            "NOT PRIVATE: this report was computed on the real data of job {job} ({source}) and shows true values and true errors. Do not share it. Nothing was charged to the privacy budget."
        ),
        DataOrigin::Sample => format!(
            "Computed on sample data ({source}), not on real data: it may be shared if that sample holds no real person's data."
        ),
        DataOrigin::AnalyticOnly => format!(
            "Computed from noise scales and public parameters only (no data was read for job {job}): it may be shared."
        ),
    }
}

pub(crate) fn method_notes(trials: u32) -> Vec<String> {
    let mut notes = vec![
        "True values: every row with a privacy unit, values unclamped, no bounding. Error = released − true; a group that is not released counts with its whole true value as error (relative error 100%).".to_string(),
        "Bias of bounding, split into clamping (values clamped, all rows), L∞ (at most max_rows_per_group rows per unit and group) and L0 (at most max_groups_per_unit groups per unit), applied in that order.".to_string(),
        "Analytic: true bounded values plus noise of the planned shape (Laplace or Gaussian) and standard deviation, clamped as the release clamps (counts at 0, means and quantiles to their bounds); means and variances by the delta method; quantiles by the noise on the cumulative count read through the true bounded distribution; release probabilities exact from the threshold mechanism; RMSE ignores the clamping.".to_string(),
        "Decomposition: shares of the expected squared error; a group's squared bias is split between clamping, L∞ and L0 in proportion to their squares.".to_string(),
    ];
    if trials > 0 {
        notes.push(format!(
            "Monte Carlo: the true bounded aggregates re-noised {trials} times per ε with floating-point noise of the planned shape and standard deviation (a simulation, never a release); partition selection re-drawn each time."
        ));
    }
    notes
}

/// The index in `epsilons` nearest to `reference` (in log scale).
pub(crate) fn nearest(epsilons: &[f64], reference: f64) -> usize {
    epsilons
        .iter()
        .enumerate()
        .min_by(|a, b| {
            let da = (a.1.ln() - reference.ln()).abs();
            let db = (b.1.ln() - reference.ln()).abs();
            da.total_cmp(&db)
        })
        .map_or(0, |(index, _)| index)
}

/// Builds the report: for each query and ε, plans the noise, predicts every group's
/// error, re-noises the true aggregates `trials` times, and searches better bounds.
///
/// # Errors
/// [`ReportError::Invalid`] for an empty sweep or an inconsistent input;
/// [`ReportError::Planning`] if the planner fails.
pub fn build<R: Rng + ?Sized>(
    input: &ReportInput,
    planner: &dyn NoisePlanner,
    options: &ReportOptions,
    rng: &mut R,
) -> Result<Report, ReportError> {
    build_with(input, planner, options, Some(rng))
}

/// [`build`] with an optional RNG: without one, no Monte Carlo is run.
pub(crate) fn build_with<R: Rng + ?Sized>(
    input: &ReportInput,
    planner: &dyn NoisePlanner,
    options: &ReportOptions,
    mut rng: Option<&mut R>,
) -> Result<Report, ReportError> {
    if options.epsilons.is_empty() {
        return Err(ReportError::Invalid {
            what: "epsilons".into(),
            reason: "give at least one ε to sweep, e.g. 0.1,0.5,1,2".into(),
        });
    }
    let mut epsilons = options.epsilons.clone();
    epsilons.sort_by(|a, b| a.get().total_cmp(&b.get()));
    epsilons.dedup();
    let values: Vec<f64> = epsilons.iter().map(|epsilon| epsilon.get()).collect();
    let reference = nearest(&values, input.epsilon.get());
    let mut queries = Vec::new();
    for (index, query) in input.queries.iter().enumerate() {
        queries.push(query_report(
            index,
            query,
            planner,
            &epsilons,
            reference,
            options,
            input.origin,
            rng.as_deref_mut(),
        )?);
    }
    Ok(Report {
        notice: notice(input.origin, &input.job, &input.source),
        origin: input.origin,
        job: input.job.clone(),
        source: input.source.clone(),
        budget: input.budget.clone(),
        reference_epsilon: values[reference],
        epsilons: values,
        trials: options.trials,
        target_error: options.target_error,
        method: method_notes(options.trials),
        queries,
    })
}

/// The job's own bounds as a candidate.
pub(crate) fn job_candidate(query: &QueryInput) -> Candidate {
    Candidate {
        contribution: query.bounds,
        value_scale: 1.0,
    }
}

/// Predictions of every aggregate (outer) for every group (inner; `None` where the
/// aggregate has no value).
pub(crate) fn predictions(
    query: &QueryInput,
    noise: &QueryNoise,
) -> Result<Vec<Vec<Option<Prediction>>>, ReportError> {
    query
        .aggregates
        .iter()
        .map(|spec| {
            query
                .groups
                .iter()
                .map(|group| model::predict(spec, group, noise, query.histogram_tree))
                .collect()
        })
        .collect()
}

/// The analytic median relative error of a set of predictions (NaN if no group has a
/// non-zero true value).
pub(crate) fn median_relative<'a>(predictions: impl Iterator<Item = &'a Prediction>) -> f64 {
    let relative: Vec<&Prediction> = predictions.filter(|p| p.truth.abs() > 0.0).collect();
    if relative.is_empty() {
        return f64::NAN;
    }
    #[allow(clippy::cast_precision_loss)]
    let n = relative.len() as f64;
    dist::invert(0.5, 1.0, |r| {
        relative
            .iter()
            .map(|p| {
                p.release * p.abs_error_cdf(r * p.truth.abs())
                    + (1.0 - p.release) * f64::from(u8::from(r >= 1.0))
            })
            .sum::<f64>()
            / n
    })
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
    let relative_cdf = |r: f64| -> f64 {
        relative
            .iter()
            .map(|p| {
                p.release * p.abs_error_cdf(r * p.truth.abs())
                    + (1.0 - p.release) * f64::from(u8::from(r >= 1.0))
            })
            .sum::<f64>()
            / n_relative
    };
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

/// Empirical statistics of `(absolute error, true value)` samples.
fn empirical_stats(samples: &[(f64, f64)]) -> ErrorStats {
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

fn decomposition<'a>(predictions: impl Iterator<Item = &'a Prediction>) -> Decomposition {
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

fn bias_summary(predictions: &[Option<Prediction>]) -> BiasSummary {
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

fn contribution_summary(query: &QueryInput) -> ContributionSummary {
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

/// Per aggregate, per group: `(absolute error, true value)` of each trial.
type TrialErrors = Vec<Vec<Vec<(f64, f64)>>>;

/// Re-noises every group `trials` times.
fn monte_carlo<R: Rng + ?Sized>(
    query: &QueryInput,
    noise: &QueryNoise,
    predictions: &[Vec<Option<Prediction>>],
    trials: u32,
    rng: &mut R,
) -> (TrialErrors, Vec<u32>) {
    let mut errors: TrialErrors =
        vec![vec![Vec::new(); query.groups.len()]; query.aggregates.len()];
    let mut released_counts = vec![0_u32; query.groups.len()];
    for _ in 0..trials {
        for (group_index, group) in query.groups.iter().enumerate() {
            let released =
                model::simulate(&query.aggregates, group, noise, query.histogram_tree, rng);
            if released.is_some() {
                released_counts[group_index] += 1;
            }
            for (aggregate_index, per_group) in predictions.iter().enumerate() {
                let Some(prediction) = &per_group[group_index] else {
                    continue;
                };
                let error = match &released {
                    Some(values) => (values[aggregate_index] - prediction.truth).abs(),
                    None => prediction.truth.abs(),
                };
                if error.is_finite() {
                    errors[aggregate_index][group_index].push((error, prediction.truth));
                }
            }
        }
    }
    (errors, released_counts)
}

pub(crate) struct Slice {
    pub(crate) label: String,
    pub(crate) members: Vec<usize>,
}

fn slices(query: &QueryInput) -> (Vec<Slice>, Vec<Slice>) {
    let mut by_size: BTreeMap<u32, Slice> = BTreeMap::new();
    let mut by_segment: BTreeMap<String, Slice> = BTreeMap::new();
    for (index, group) in query.groups.iter().enumerate() {
        let (bucket, label) = size_bucket(group.raw.units);
        by_size
            .entry(bucket)
            .or_insert_with(|| Slice {
                label,
                members: Vec::new(),
            })
            .members
            .push(index);
        if query.segment.is_some() {
            let label = group.segment.clone().unwrap_or_else(|| "(null)".into());
            by_segment
                .entry(label.clone())
                .or_insert_with(|| Slice {
                    label,
                    members: Vec::new(),
                })
                .members
                .push(index);
        }
    }
    (
        by_size.into_values().collect(),
        by_segment.into_values().collect(),
    )
}

fn slice_stats(
    slice: &Slice,
    predictions: &[Option<Prediction>],
    errors: Option<&Vec<Vec<(f64, f64)>>>,
) -> SliceStats {
    let members: Vec<&Prediction> = slice
        .members
        .iter()
        .filter_map(|&index| predictions[index].as_ref())
        .collect();
    #[allow(clippy::cast_precision_loss)]
    let release_probability =
        members.iter().map(|p| p.release).sum::<f64>() / members.len().max(1) as f64;
    let analytic = median_relative(members.iter().copied());
    let empirical = errors.map(|errors| {
        let samples: Vec<(f64, f64)> = slice
            .members
            .iter()
            .flat_map(|&index| errors[index].iter().copied())
            .collect();
        empirical_stats(&samples).median_relative
    });
    SliceStats {
        label: slice.label.clone(),
        groups: slice.members.len(),
        release_probability,
        median_relative: analytic,
        empirical_median_relative: empirical,
    }
}

/// A slice bearing much more error than the rest: `(slice, aggregate, its median
/// relative error, the other groups')`.
pub(crate) type Flag = (String, String, f64, f64);

/// Flags slices whose median relative error is at least twice that of the other groups
/// (and at least 5 points above it).
pub(crate) fn fairness_flags(
    aggregate: &str,
    slices: &[Slice],
    predictions: &[Option<Prediction>],
) -> Vec<Flag> {
    let mut flags = Vec::new();
    if slices.len() < 2 {
        return flags;
    }
    for slice in slices {
        let inside: Vec<&Prediction> = slice
            .members
            .iter()
            .filter_map(|&index| predictions[index].as_ref())
            .collect();
        let outside: Vec<&Prediction> = predictions
            .iter()
            .enumerate()
            .filter(|(index, _)| !slice.members.contains(index))
            .filter_map(|(_, prediction)| prediction.as_ref())
            .collect();
        if inside.is_empty() || outside.is_empty() {
            continue;
        }
        let here = median_relative(inside.iter().copied());
        let rest = median_relative(outside.iter().copied());
        if here.is_finite() && rest.is_finite() && here >= 2.0 * rest && here >= rest + 0.05 {
            flags.push((slice.label.clone(), aggregate.to_string(), here, rest));
        }
    }
    flags
}

/// One finding per flagged slice, listing its aggregates.
pub(crate) fn fairness_findings(what: &str, epsilon: f64, flags: &[Flag]) -> Vec<String> {
    let mut by_slice: Vec<(&str, Vec<String>)> = Vec::new();
    for (label, aggregate, here, rest) in flags {
        let text = format!("{aggregate} {} vs {}", percent(*here), percent(*rest));
        match by_slice.iter_mut().find(|(existing, _)| existing == label) {
            Some((_, parts)) => parts.push(text),
            None => by_slice.push((label, vec![text])),
        }
    }
    by_slice
        .into_iter()
        .map(|(label, parts)| {
            format!(
                "Fairness: {what} {label} bear at least twice the median relative error of the other groups at ε = {}: {}.",
                short(epsilon),
                parts.join(", ")
            )
        })
        .collect()
}

/// A share as a percentage with two significant digits.
pub(crate) fn percent(value: f64) -> String {
    if !value.is_finite() {
        return "n/a".into();
    }
    let percent = value * 100.0;
    if percent >= 10.0 {
        format!("{percent:.0}%")
    } else if percent >= 1.0 {
        format!("{percent:.1}%")
    } else {
        format!("{percent:.2}%")
    }
}

/// A number with about three significant digits.
pub(crate) fn short(value: f64) -> String {
    if value == 0.0 {
        return "0".into();
    }
    if !value.is_finite() {
        return "n/a".into();
    }
    let magnitude = value.abs().log10().floor();
    if (-3.0..6.0).contains(&magnitude) {
        #[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss)]
        let decimals = (2.0 - magnitude).max(0.0) as usize;
        let text = format!("{value:.decimals$}");
        if text.contains('.') {
            text.trim_end_matches('0').trim_end_matches('.').to_string()
        } else {
            text
        }
    } else {
        format!("{value:.2e}")
    }
}

#[allow(clippy::too_many_arguments, clippy::too_many_lines)]
fn query_report<R: Rng + ?Sized>(
    index: usize,
    query: &QueryInput,
    planner: &dyn NoisePlanner,
    epsilons: &[Epsilon],
    reference: usize,
    options: &ReportOptions,
    origin: DataOrigin,
    mut rng: Option<&mut R>,
) -> Result<QueryReport, ReportError> {
    let candidate = job_candidate(query);
    let (size_slices, segment_slices) = slices(query);
    let mut aggregates: Vec<AggregateReport> = query
        .aggregates
        .iter()
        .map(|spec| AggregateReport {
            name: spec.name.clone(),
            kind: spec.kind,
            column: spec.column.as_ref().map(|column| column.name.clone()),
            bounds: spec
                .column
                .as_ref()
                .map(|column| [column.bounds.lower(), column.bounds.upper()]),
            bias: BiasSummary {
                groups: 0,
                clamping: 0.0,
                linf: 0.0,
                l0: 0.0,
                total: 0.0,
                median_abs: f64::NAN,
            },
            sweep: Vec::new(),
        })
        .collect();
    let mut release = Vec::new();
    let mut group_release: Vec<GroupRelease> = query
        .groups
        .iter()
        .map(|group| GroupRelease {
            key: group.key.clone(),
            segment: group.segment.clone(),
            units: group.raw.units,
            bounded_units: group.bounded.units,
            release_probability: Vec::new(),
            empirical_release: (options.trials > 0 && rng.is_some()).then(Vec::new),
        })
        .collect();
    let mut size_flags = Vec::new();
    let mut segment_flags = Vec::new();
    let total_rows: f64 = query.groups.iter().map(|group| group.raw.rows).sum();
    for (epsilon_index, &epsilon) in epsilons.iter().enumerate() {
        let noise = planner.plan(epsilon, index, &candidate)?;
        let predictions = predictions(query, &noise)?;
        let (errors, released_counts) = match rng.as_deref_mut() {
            Some(rng) if options.trials > 0 => {
                let (errors, counts) =
                    monte_carlo(query, &noise, &predictions, options.trials, rng);
                (Some(errors), Some(counts))
            }
            _ => (None, None),
        };
        let probabilities: Vec<f64> = query
            .groups
            .iter()
            .map(|group| model::release_probability(&noise, group.bounded.units))
            .collect();
        for (group_index, probability) in probabilities.iter().enumerate() {
            let entry = &mut group_release[group_index];
            entry.release_probability.push(*probability);
            if let (Some(empirical), Some(counts)) =
                (entry.empirical_release.as_mut(), released_counts.as_ref())
            {
                empirical.push(f64::from(counts[group_index]) / f64::from(options.trials));
            }
        }
        release.push(ReleaseAtEpsilon {
            epsilon: epsilon.get(),
            expected_groups: probabilities.iter().sum(),
            empirical_groups: released_counts
                .as_ref()
                .map(|counts| f64::from(counts.iter().sum::<u32>()) / f64::from(options.trials)),
            rows_lost: if total_rows > 0.0 {
                query
                    .groups
                    .iter()
                    .zip(&probabilities)
                    .map(|(group, p)| (1.0 - p) * group.raw.rows)
                    .sum::<f64>()
                    / total_rows
            } else {
                0.0
            },
        });
        for (aggregate_index, per_group) in predictions.iter().enumerate() {
            let report = &mut aggregates[aggregate_index];
            if epsilon_index == 0 {
                report.bias = bias_summary(per_group);
            }
            let mut noise_stds: Vec<f64> =
                per_group.iter().flatten().map(|p| p.noise_std).collect();
            noise_stds.sort_by(f64::total_cmp);
            let aggregate_errors = errors.as_ref().map(|errors| &errors[aggregate_index]);
            let empirical = aggregate_errors.map(|errors| {
                let samples: Vec<(f64, f64)> = errors.iter().flatten().copied().collect();
                empirical_stats(&samples)
            });
            report.sweep.push(AggregateAtEpsilon {
                epsilon: epsilon.get(),
                noise_std: dist::sorted_quantile(&noise_stds, 0.5),
                analytic: analytic_stats(per_group.iter().flatten()),
                empirical,
                decomposition: decomposition(per_group.iter().flatten()),
                by_size: size_slices
                    .iter()
                    .map(|slice| slice_stats(slice, per_group, aggregate_errors))
                    .collect(),
                by_segment: segment_slices
                    .iter()
                    .map(|slice| slice_stats(slice, per_group, aggregate_errors))
                    .collect(),
            });
            if epsilon_index == reference && origin != DataOrigin::AnalyticOnly {
                size_flags.extend(fairness_flags(&report.name, &size_slices, per_group));
                segment_flags.extend(fairness_flags(&report.name, &segment_slices, per_group));
            }
        }
    }
    let reference_epsilon = epsilons[reference].get();
    let mut findings = fairness_findings("groups of", reference_epsilon, &size_flags);
    if let Some(segment) = &query.segment {
        findings.extend(fairness_findings(
            &format!("groups whose {segment} is"),
            reference_epsilon,
            &segment_flags,
        ));
    }
    let mut headline = Vec::new();
    for aggregate in &aggregates {
        if let Some(at) = aggregate.sweep.get(reference) {
            let parts = at.decomposition;
            let bounding = parts.clamping + parts.linf + parts.l0;
            let (largest, share) = [
                ("clamping", parts.clamping),
                ("L∞ row dropping", parts.linf),
                ("L0 group dropping", parts.l0),
                ("noise", parts.noise),
                ("partition selection", parts.selection),
            ]
            .into_iter()
            .max_by(|a, b| a.1.total_cmp(&b.1))
            .unwrap_or(("noise", 0.0));
            if at.analytic.median_relative.is_finite() {
                headline.push(format!(
                    "{}: median relative error {} at ε = {}; {} of the expected squared error comes from bounding, {} from noise, {} from groups lost to selection (largest part: {largest}, {}).",
                    aggregate.name,
                    percent(at.analytic.median_relative),
                    short(at.epsilon),
                    percent(bounding),
                    percent(parts.noise),
                    percent(parts.selection),
                    percent(share),
                ));
            }
        }
    }
    headline.extend(findings);
    let tuning = if origin == DataOrigin::AnalyticOnly {
        None
    } else {
        tuning::tune(index, query, planner, epsilons, options.target_error)?
    };
    if let Some(tuning) = &tuning {
        headline.extend(tuning.findings(query));
    }
    group_release.sort_by(|a, b| b.units.total_cmp(&a.units));
    Ok(QueryReport {
        name: query.name.clone(),
        group_by: query.group_by.clone(),
        segment: query.segment.clone(),
        bounds: query.bounds,
        groups: query.groups.len(),
        contributions: contribution_summary(query),
        value_quantiles: query.value_quantiles.clone(),
        aggregates,
        release,
        group_release,
        tuning,
        findings: headline,
    })
}

#[cfg(test)]
mod tests;
