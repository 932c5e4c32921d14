//! Tuning: the contribution bounds that minimise the error at each ε, and the smallest ε
//! that meets a target relative error.
//!
//! Candidate bounds are evaluated on the expected aggregates of [`CandidateTruths`]
//! (computed once, with the data) and on the noise the planner gives for them. The
//! objective is the analytic median relative error averaged over the query's counts, unit
//! counts, sums and means (variances and quantiles are not tuned). The search is a grid
//! over L0 and L∞ at the job's value bounds, then over value-bound scales at the best L0
//! and L∞.

use veil_core::Epsilon;

use crate::ReportError;
use crate::format::{percent, short};
use crate::input::{
    AggregateKind, Candidate, CandidateMoments, CandidateTruths, Contribution, NoisePlanner,
    QueryInput, QueryNoise,
};
use crate::model::{self, Prediction};
use crate::output::{TargetSearch, TunedAtEpsilon, TuningReport};
use crate::stats::median_relative;

fn tunable(kind: AggregateKind) -> bool {
    matches!(
        kind,
        AggregateKind::Count | AggregateKind::UnitCount | AggregateKind::Sum | AggregateKind::Mean
    )
}

/// Predictions of the tunable aggregates under candidate `cell` (an index into
/// [`CandidateTruths::groups`]' inner vectors) at value scale index `scale`.
fn candidate_predictions(
    query: &QueryInput,
    truths: &CandidateTruths,
    cell: usize,
    scale: usize,
    noise: &QueryNoise,
) -> Vec<Vec<Prediction>> {
    let factor = truths.value_scales.get(scale).copied().unwrap_or(1.0);
    query
        .aggregates
        .iter()
        .filter(|spec| tunable(spec.kind))
        .map(|spec| {
            query
                .groups
                .iter()
                .zip(&truths.groups)
                .filter_map(|(group, cells)| {
                    let moments: &CandidateMoments = cells.get(cell)?;
                    let truth = model::value_at(spec, &group.raw);
                    let name = spec
                        .column
                        .as_ref()
                        .map_or("", |column| column.name.as_str());
                    let (values, sums) = moments
                        .columns
                        .get(name)
                        .map_or((0.0, 0.0), |(values, sums)| {
                            (*values, sums.get(scale).copied().unwrap_or(0.0))
                        });
                    let middle = spec.column.as_ref().map_or(0.0, |column| {
                        factor * (column.bounds.lower() + column.bounds.upper()) / 2.0
                    });
                    let measure = |key: String| noise.measures.get(&key).copied();
                    let range = match (spec.kind, &spec.column) {
                        (AggregateKind::Mean, Some(column)) => (
                            factor * column.bounds.lower(),
                            factor * column.bounds.upper(),
                        ),
                        (AggregateKind::Sum, _) => (f64::NEG_INFINITY, f64::INFINITY),
                        _ => (0.0, f64::INFINITY),
                    };
                    let (bounded, noise_std, shape) = match spec.kind {
                        AggregateKind::Count => {
                            let noise = measure("rows".into())?;
                            (moments.rows, noise.std_dev(), noise.shape())
                        }
                        AggregateKind::UnitCount => match &noise.selection {
                            Some(selection) => {
                                let (shape, std) = model::selection_noise(selection);
                                (moments.units, std, shape)
                            }
                            None => {
                                let noise = measure("units".into())?;
                                (moments.units, noise.std_dev(), noise.shape())
                            }
                        },
                        AggregateKind::Sum => {
                            let noise = measure(format!("sum:{name}"))?;
                            (sums, noise.std_dev(), noise.shape())
                        }
                        _ => {
                            let count_noise = measure(format!("values:{name}"))?;
                            let centered_noise = measure(format!("centered_sum:{name}"))?;
                            if values <= 0.0 {
                                return None;
                            }
                            let count = values.max(1.0);
                            let centered = sums - middle * values;
                            let std = ((centered_noise.std_dev() / count).powi(2)
                                + (centered * count_noise.std_dev() / (count * count)).powi(2))
                            .sqrt();
                            (sums / values, std, centered_noise.shape())
                        }
                    };
                    if !truth.is_finite() || !bounded.is_finite() {
                        return None;
                    }
                    Some(Prediction {
                        truth,
                        bounded,
                        clamping: 0.0,
                        linf: 0.0,
                        l0: bounded - truth,
                        noise_std,
                        shape,
                        release: model::release_probability(
                            noise,
                            noise.selected_on.in_candidate(moments),
                        ),
                        range,
                        rank: None,
                        ratio: None,
                    })
                })
                .collect()
        })
        .collect()
}

/// Mean and maximum over aggregates of the analytic median relative error.
fn objective(predictions: &[Vec<Prediction>]) -> (f64, f64) {
    let medians: Vec<f64> = predictions
        .iter()
        .map(|per_group| median_relative(per_group.iter()))
        .filter(|value| value.is_finite())
        .collect();
    if medians.is_empty() {
        return (f64::NAN, f64::NAN);
    }
    #[allow(clippy::cast_precision_loss)]
    let mean = medians.iter().sum::<f64>() / medians.len() as f64;
    (mean, medians.iter().copied().fold(0.0, f64::max))
}

struct Evaluated {
    candidate: Candidate,
    mean: f64,
    max: f64,
}

fn evaluate(
    planner: &dyn NoisePlanner,
    epsilon: Epsilon,
    index: usize,
    query: &QueryInput,
    truths: &CandidateTruths,
    cell: (usize, usize),
    scale: usize,
) -> Option<Evaluated> {
    let candidate = Candidate {
        contribution: Contribution {
            max_groups_per_unit: *truths.max_groups_per_unit.get(cell.0)?,
            max_rows_per_group: *truths.max_rows_per_group.get(cell.1)?,
        },
        value_scale: *truths.value_scales.get(scale)?,
    };
    // A candidate the planner refuses (e.g. too sensitive) is skipped, not fatal.
    let noise = planner.plan(epsilon, index, &candidate).ok()?;
    let flat = cell.0 * truths.max_rows_per_group.len() + cell.1;
    let predictions = candidate_predictions(query, truths, flat, scale, &noise);
    let (mean, max) = objective(&predictions);
    mean.is_finite().then_some(Evaluated {
        candidate,
        mean,
        max,
    })
}

/// The search of one query's bounds, at any ε.
struct Search<'a> {
    planner: &'a dyn NoisePlanner,
    index: usize,
    query: &'a QueryInput,
    truths: &'a CandidateTruths,
    /// The job's own (L0, L∞) in the grid, where it is in it.
    job_cell: (Option<usize>, Option<usize>),
    /// The index of the value scale 1 (the job's own value bounds).
    unit_scale: usize,
}

impl Search<'_> {
    /// [`Search::at`] at every ε, in order, spread over the machine's cores (each ε is
    /// planned and predicted independently; the result does not depend on the split).
    fn at_each(&self, epsilons: &[Epsilon]) -> Vec<Option<(TunedAtEpsilon, f64)>> {
        crate::parallel::spread(epsilons, |&epsilon| self.at(epsilon))
    }

    /// The best bounds at `epsilon` (L0 and L∞ over the grid at the job's value bounds,
    /// then the value scales at the best of them) and the worst aggregate's error there;
    /// `None` when no candidate can be planned.
    fn at(&self, epsilon: Epsilon) -> Option<(TunedAtEpsilon, f64)> {
        let Self {
            planner,
            index,
            query,
            truths,
            job_cell,
            unit_scale,
        } = *self;
        let current = match job_cell {
            (Some(l0), Some(linf)) => evaluate(
                planner,
                epsilon,
                index,
                query,
                truths,
                (l0, linf),
                unit_scale,
            )
            .map_or(f64::NAN, |evaluated| evaluated.mean),
            _ => f64::NAN,
        };
        let mut best: Option<(Evaluated, (usize, usize))> = None;
        for l0 in 0..truths.max_groups_per_unit.len() {
            for linf in 0..truths.max_rows_per_group.len() {
                if let Some(evaluated) = evaluate(
                    planner,
                    epsilon,
                    index,
                    query,
                    truths,
                    (l0, linf),
                    unit_scale,
                ) && best
                    .as_ref()
                    .is_none_or(|(incumbent, _)| evaluated.mean < incumbent.mean)
                {
                    best = Some((evaluated, (l0, linf)));
                }
            }
        }
        let (mut best_evaluated, cell) = best?;
        for scale in 0..truths.value_scales.len() {
            if scale == unit_scale {
                continue;
            }
            if let Some(evaluated) = evaluate(planner, epsilon, index, query, truths, cell, scale)
                && evaluated.mean < best_evaluated.mean
            {
                best_evaluated = evaluated;
            }
        }
        let factor = best_evaluated.candidate.value_scale;
        let value_bounds = query
            .aggregates
            .iter()
            .filter_map(|spec| spec.column.as_ref())
            .map(|column| {
                (
                    column.name.clone(),
                    [
                        factor * column.bounds.lower(),
                        factor * column.bounds.upper(),
                    ],
                )
            })
            .collect();
        Some((
            TunedAtEpsilon {
                epsilon: epsilon.get(),
                current,
                best: best_evaluated.candidate,
                value_bounds,
                best_objective: best_evaluated.mean,
            },
            best_evaluated.max,
        ))
    }
}

/// Searches the best bounds at each ε and the smallest ε that meets `target`.
///
/// # Errors
/// [`ReportError::Planning`] if the planner fails at the job's own bounds.
pub(crate) fn tune(
    index: usize,
    query: &QueryInput,
    planner: &dyn NoisePlanner,
    epsilons: &[Epsilon],
    target: f64,
) -> Result<Option<TuningReport>, ReportError> {
    let Some(truths) = &query.candidates else {
        return Ok(None);
    };
    if truths.groups.len() != query.groups.len() {
        return Err(ReportError::Invalid {
            what: format!("query {:?}: candidate truths", query.name),
            reason: "one entry per group is needed".into(),
        });
    }
    let job_cell = (
        truths
            .max_groups_per_unit
            .iter()
            .position(|&l0| l0 == query.bounds.max_groups_per_unit),
        truths
            .max_rows_per_group
            .iter()
            .position(|&linf| linf == query.bounds.max_rows_per_group),
    );
    let unit_scale = truths
        .value_scales
        .iter()
        .position(|scale| (scale - 1.0).abs() < 1e-12);
    let has_tunable = query.aggregates.iter().any(|spec| tunable(spec.kind));
    let mut per_epsilon = Vec::new();
    let mut with_suggested_bounds = None;
    if has_tunable && let Some(unit_scale) = unit_scale {
        let search = Search {
            planner,
            index,
            query,
            truths,
            job_cell,
            unit_scale,
        };
        for (epsilon, tuned) in epsilons.iter().zip(search.at_each(epsilons)) {
            let Some((tuned, max)) = tuned else {
                continue;
            };
            if with_suggested_bounds.is_none() && max <= target {
                with_suggested_bounds = Some((epsilon.get(), tuned.best));
            }
            per_epsilon.push(tuned);
        }
    }
    let (epsilon_at_job_bounds, bias_floor) = target_epsilon(index, query, planner, target)?;
    Ok(Some(TuningReport {
        objective: "median relative error (analytic), averaged over the query's counts, unit counts, sums and means; expected values under each candidate's bounding".into(),
        per_epsilon,
        target: TargetSearch {
            target,
            epsilon_at_job_bounds,
            bias_floor,
            with_suggested_bounds,
        },
    }))
}

/// The worst median relative error over the query's aggregates at `epsilon`, job bounds.
fn worst_error(
    index: usize,
    query: &QueryInput,
    planner: &dyn NoisePlanner,
    epsilon: Epsilon,
) -> Option<f64> {
    let noise = planner
        .plan(epsilon, index, &model::job_candidate(query))
        .ok()?;
    let predictions = model::predictions(query, &noise).ok()?;
    predictions
        .iter()
        .map(|per_group| median_relative(per_group.iter().flatten()))
        .filter(|value| value.is_finite())
        .reduce(f64::max)
}

/// The smallest ε in `[0.01, 100]` at which every aggregate's median relative error is at
/// most `target` (bisection in log ε), and the bias floor.
fn target_epsilon(
    index: usize,
    query: &QueryInput,
    planner: &dyn NoisePlanner,
    target: f64,
) -> Result<(Option<f64>, f64), ReportError> {
    let noise = planner.plan(
        Epsilon::new(1.0).map_err(|e| ReportError::Invalid {
            what: "epsilon".into(),
            reason: e.to_string(),
        })?,
        index,
        &model::job_candidate(query),
    )?;
    let bias_floor = model::predictions(query, &noise)?
        .iter()
        .map(|per_group| {
            let mut relative: Vec<f64> = per_group
                .iter()
                .flatten()
                .filter(|p| p.truth.abs() > 0.0)
                .map(|p| p.bias().abs() / p.truth.abs())
                .collect();
            relative.sort_by(f64::total_cmp);
            crate::dist::sorted_quantile(&relative, 0.5)
        })
        .filter(|value| value.is_finite())
        .fold(0.0, f64::max);
    let meets = |log_epsilon: f64| -> bool {
        Epsilon::new(log_epsilon.exp())
            .ok()
            .and_then(|epsilon| worst_error(index, query, planner, epsilon))
            .is_some_and(|error| error <= target)
    };
    let (mut low, mut high) = (0.01_f64.ln(), 100.0_f64.ln());
    if !meets(high) {
        return Ok((None, bias_floor));
    }
    if meets(low) {
        return Ok((Some(0.01), bias_floor));
    }
    for _ in 0..24 {
        let middle = 0.5 * (low + high);
        if meets(middle) {
            high = middle;
        } else {
            low = middle;
        }
    }
    Ok((Some(high.exp()), bias_floor))
}

impl TuningReport {
    /// Plain-language findings.
    pub(crate) fn findings(&self, query: &QueryInput) -> Vec<String> {
        let mut findings = Vec::new();
        for tuned in &self.per_epsilon {
            let best = tuned.best;
            let same = best.contribution == query.bounds && (best.value_scale - 1.0).abs() < 1e-12;
            if !same && tuned.best_objective < 0.9 * tuned.current {
                let bounds: Vec<String> = tuned
                    .value_bounds
                    .iter()
                    .map(|(column, [lower, upper])| {
                        format!("{column} in [{}, {}]", short(*lower), short(*upper))
                    })
                    .collect();
                findings.push(format!(
                    "Tuning (not private: read off this data's true contributions; bounds set to \"auto\" are chosen privately instead): at ε = {}, max_groups_per_unit = {}, max_rows_per_group = {}{} would give a median relative error of {} instead of {} (job's bounds).",
                    short(tuned.epsilon),
                    best.contribution.max_groups_per_unit,
                    best.contribution.max_rows_per_group,
                    if bounds.is_empty() { String::new() } else { format!(", {}", bounds.join(", ")) },
                    percent(tuned.best_objective),
                    percent(tuned.current),
                ));
            }
        }
        let target = &self.target;
        findings.push(match target.epsilon_at_job_bounds {
            Some(epsilon) => format!(
                "Target: every aggregate reaches a median relative error of {} from ε ≈ {} with the job's bounds.",
                percent(target.target),
                short(epsilon)
            ),
            None => format!(
                "Target: no ε up to 100 reaches a median relative error of {} with the job's bounds (bounding alone leaves {}); change the bounds.",
                percent(target.target),
                percent(target.bias_floor)
            ),
        });
        if let Some((epsilon, candidate)) = target.with_suggested_bounds {
            findings.push(format!(
                "Target with suggested bounds (not private, as above): ε = {} suffices with max_groups_per_unit = {}, max_rows_per_group = {} and value bounds × {} (counts, unit counts, sums and means).",
                short(epsilon),
                candidate.contribution.max_groups_per_unit,
                candidate.contribution.max_rows_per_group,
                short(candidate.value_scale)
            ));
        }
        findings
    }
}
