//! The sweep: every query, aggregate and ε, analytic and Monte Carlo, with the error's
//! decomposition and its spread across groups.

use rand::rngs::ChaCha20Rng;
use rand_core::{Rng, SeedableRng};
use veil_core::Epsilon;

use crate::ReportError;
use crate::dist;
use crate::fairness::{Flag, Slice, fairness_findings, fairness_flags, slice_stats, slices};
use crate::format::{percent, short};
use crate::input::{DataOrigin, NoisePlanner, QueryInput, QueryNoise, ReportInput};
use crate::model::{self, Prediction, job_candidate, predictions};
use crate::output::{
    AggregateAtEpsilon, AggregateReport, BiasSummary, GroupRelease, QueryReport, ReleaseAtEpsilon,
    Report, ReportOptions, TuningReport,
};
use crate::parallel::spread;
use crate::selection::selection_finding;
use crate::simulation::Simulation;
use crate::stats::{
    analytic_stats, bias_summary, contribution_summary, decomposition, empirical_stats,
};
use crate::tuning;

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
    let sweep = Sweep {
        planner,
        epsilons: &epsilons,
        reference,
        options,
        origin: input.origin,
    };
    let mut queries = Vec::new();
    for (index, query) in input.queries.iter().enumerate() {
        queries.push(query_report(index, query, &sweep, rng.as_deref_mut())?);
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
    let simulation = Simulation::new(
        &query.aggregates,
        &query.groups,
        noise,
        query.histogram_tree,
    );
    let mut errors: TrialErrors =
        vec![vec![Vec::new(); query.groups.len()]; query.aggregates.len()];
    let mut released_counts = vec![0_u32; query.groups.len()];
    let mut draws = Vec::new();
    for _ in 0..trials {
        for (group_index, group) in query.groups.iter().enumerate() {
            let released = simulation.release(group_index, group, &mut draws, rng);
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

/// What every query's sweep shares.
struct Sweep<'a> {
    planner: &'a dyn NoisePlanner,
    /// The swept ε's, increasing.
    epsilons: &'a [Epsilon],
    /// The index of the job's ε (or the nearest swept one) in `epsilons`.
    reference: usize,
    options: &'a ReportOptions,
    origin: DataOrigin,
}

/// One query's report: each ε in turn ([`QuerySweep::add`]), then the findings at the
/// reference ε and the search for better bounds.
fn query_report<R: Rng + ?Sized>(
    index: usize,
    query: &QueryInput,
    sweep: &Sweep<'_>,
    rng: Option<&mut R>,
) -> Result<QueryReport, ReportError> {
    // The bounds search needs nothing of the sweep: it runs on threads of its own while
    // the sweep predicts and simulates (and draws the Monte Carlo noise in order, so a
    // seeded report is reproducible).
    std::thread::scope(|scope| {
        let tuning = (sweep.origin != DataOrigin::AnalyticOnly).then(|| {
            scope.spawn(|| {
                tuning::tune(
                    index,
                    query,
                    sweep.planner,
                    sweep.epsilons,
                    sweep.options.target_error,
                )
            })
        });
        let swept = sweep_query(index, query, sweep, rng);
        let tuning = match tuning {
            Some(worker) => worker
                .join()
                .unwrap_or_else(|panic| std::panic::resume_unwind(panic))?,
            None => None,
        };
        let (state, mut findings) = swept?;
        if let Some(tuning) = &tuning {
            findings.extend(tuning.findings(query));
        }
        Ok(finish(query, state, tuning, findings))
    })
}

/// The sweep of one query over every ε, and its findings at the reference ε (before the
/// tuning's).
///
/// The ε's are planned in order, then predicted, simulated and summarised on threads of
/// their own (each ε's trials on a generator seeded from `rng` in ε order, so a seeded
/// report is the same on any number of cores), then added to the report in order.
fn sweep_query<R: Rng + ?Sized>(
    index: usize,
    query: &QueryInput,
    sweep: &Sweep<'_>,
    rng: Option<&mut R>,
) -> Result<(QuerySweep, Vec<String>), ReportError> {
    let trials = sweep.options.trials;
    let empirical = trials > 0 && rng.is_some();
    let mut state = QuerySweep::new(query, empirical);
    let candidate = job_candidate(query);
    let mut work = Vec::with_capacity(sweep.epsilons.len());
    let mut rng = rng.filter(|_| empirical);
    for &epsilon in sweep.epsilons {
        let noise = sweep.planner.plan(epsilon, index, &candidate)?;
        let seed = rng.as_deref_mut().map(|rng| {
            let mut seed = <ChaCha20Rng as SeedableRng>::Seed::default();
            rng.fill_bytes(&mut seed);
            seed
        });
        work.push((epsilon, noise, seed));
    }
    let selection = if sweep.origin == DataOrigin::AnalyticOnly {
        None
    } else {
        let (epsilon, noise, _) = &work[sweep.reference];
        selection_finding(index, query, sweep.planner, *epsilon, noise)?
    };
    let slices = (
        state.size_slices.as_slice(),
        state.segment_slices.as_slice(),
    );
    let computed = spread(&work, |(epsilon, noise, seed)| {
        let trials = seed.map(|seed| (trials, ChaCha20Rng::from_seed(seed)));
        at_epsilon(query, *epsilon, noise, trials, slices)
    });
    for (epsilon_index, at) in computed.into_iter().enumerate() {
        state.add(query, at?);
        if epsilon_index == 0 {
            for (report, per_group) in state.aggregates.iter_mut().zip(&state.last_predictions) {
                report.bias = bias_summary(per_group);
            }
        }
        if epsilon_index == sweep.reference && sweep.origin != DataOrigin::AnalyticOnly {
            state.flag_unfair_slices();
        }
    }
    let mut findings = headline(&state.aggregates, sweep.reference);
    let reference_epsilon = sweep.epsilons[sweep.reference].get();
    findings.extend(fairness_findings(
        "groups of",
        reference_epsilon,
        &state.size_flags,
    ));
    if let Some(segment) = &query.segment {
        findings.extend(fairness_findings(
            &format!("groups whose {segment} is"),
            reference_epsilon,
            &state.segment_flags,
        ));
    }
    findings.extend(selection);
    Ok((state, findings))
}

/// Everything one ε adds to a query's report.
struct AtEpsilon {
    epsilon: Epsilon,
    /// Every aggregate's predictions (outer) per group (inner).
    predictions: Vec<Vec<Option<Prediction>>>,
    /// Each group's probability of release.
    probabilities: Vec<f64>,
    /// With trials: how many times each group was released, and the trials.
    released: Option<(Vec<u32>, u32)>,
    /// Each aggregate's statistics.
    aggregates: Vec<AggregateAtEpsilon>,
}

/// One ε of a query: predictions for every group and aggregate, the Monte Carlo trials
/// when given, release probabilities and the error statistics, overall and per slice.
fn at_epsilon<R: Rng>(
    query: &QueryInput,
    epsilon: Epsilon,
    noise: &QueryNoise,
    trials: Option<(u32, R)>,
    (size_slices, segment_slices): (&[Slice], &[Slice]),
) -> Result<AtEpsilon, ReportError> {
    let predictions = predictions(query, noise)?;
    let (errors, released) = match trials {
        Some((trials, mut rng)) => {
            let (errors, counts) = monte_carlo(query, noise, &predictions, trials, &mut rng);
            (Some(errors), Some((counts, trials)))
        }
        None => (None, None),
    };
    let probabilities = query
        .groups
        .iter()
        .map(|group| model::group_release_probability(noise, group))
        .collect();
    let aggregates = predictions
        .iter()
        .enumerate()
        .map(|(aggregate_index, per_group)| {
            let errors = errors.as_ref().map(|errors| &errors[aggregate_index]);
            aggregate_at_epsilon(epsilon, per_group, errors, size_slices, segment_slices)
        })
        .collect();
    Ok(AtEpsilon {
        epsilon,
        predictions,
        probabilities,
        released,
        aggregates,
    })
}

/// One aggregate's statistics at one ε.
fn aggregate_at_epsilon(
    epsilon: Epsilon,
    per_group: &[Option<Prediction>],
    errors: Option<&Vec<Vec<(f64, f64)>>>,
    size_slices: &[Slice],
    segment_slices: &[Slice],
) -> AggregateAtEpsilon {
    let mut noise_stds: Vec<f64> = per_group.iter().flatten().map(|p| p.noise_std).collect();
    noise_stds.sort_by(f64::total_cmp);
    let empirical = errors.map(|errors| {
        let samples: Vec<(f64, f64)> = errors.iter().flatten().copied().collect();
        empirical_stats(&samples)
    });
    AggregateAtEpsilon {
        epsilon: epsilon.get(),
        noise_std: dist::sorted_quantile(&noise_stds, 0.5),
        analytic: analytic_stats(per_group.iter().flatten()),
        empirical,
        decomposition: decomposition(per_group.iter().flatten()),
        by_size: size_slices
            .iter()
            .map(|slice| slice_stats(slice, per_group, errors))
            .collect(),
        by_segment: segment_slices
            .iter()
            .map(|slice| slice_stats(slice, per_group, errors))
            .collect(),
    }
}

/// The query's report from its sweep, tuning and findings.
fn finish(
    query: &QueryInput,
    state: QuerySweep,
    tuning: Option<TuningReport>,
    findings: Vec<String>,
) -> QueryReport {
    let mut group_release = state.group_release;
    group_release.sort_by(|a, b| b.units.total_cmp(&a.units));
    QueryReport {
        name: query.name.clone(),
        group_by: query.group_by.clone(),
        segment: query.segment.clone(),
        bounds: query.bounds,
        groups: query.groups.len(),
        contributions: contribution_summary(query),
        value_quantiles: query.value_quantiles.clone(),
        aggregates: state.aggregates,
        release: state.release,
        group_release,
        tuning,
        findings,
    }
}

/// A query's report as it fills up, one ε at a time.
struct QuerySweep {
    aggregates: Vec<AggregateReport>,
    release: Vec<ReleaseAtEpsilon>,
    group_release: Vec<GroupRelease>,
    size_slices: Vec<Slice>,
    segment_slices: Vec<Slice>,
    size_flags: Vec<Flag>,
    segment_flags: Vec<Flag>,
    /// Every aggregate's predictions (outer) per group (inner) at the last ε added.
    last_predictions: Vec<Vec<Option<Prediction>>>,
}

impl QuerySweep {
    fn new(query: &QueryInput, empirical: bool) -> Self {
        let (size_slices, segment_slices) = slices(query);
        let aggregates = query
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
        let group_release = query
            .groups
            .iter()
            .map(|group| GroupRelease {
                key: group.key.clone(),
                segment: group.segment.clone(),
                units: group.raw.units,
                bounded_units: group.bounded.units,
                release_probability: Vec::new(),
                empirical_release: empirical.then(Vec::new),
            })
            .collect();
        Self {
            aggregates,
            release: Vec::new(),
            group_release,
            size_slices,
            segment_slices,
            size_flags: Vec::new(),
            segment_flags: Vec::new(),
            last_predictions: Vec::new(),
        }
    }

    /// Adds one ε's predictions, releases and statistics.
    fn add(&mut self, query: &QueryInput, at: AtEpsilon) {
        for (group_index, probability) in at.probabilities.iter().enumerate() {
            let entry = &mut self.group_release[group_index];
            entry.release_probability.push(*probability);
            if let (Some(empirical), Some((counts, trials))) =
                (entry.empirical_release.as_mut(), at.released.as_ref())
            {
                empirical.push(f64::from(counts[group_index]) / f64::from(*trials));
            }
        }
        let total_rows: f64 = query.groups.iter().map(|group| group.raw.rows).sum();
        self.release.push(ReleaseAtEpsilon {
            epsilon: at.epsilon.get(),
            expected_groups: at.probabilities.iter().sum(),
            empirical_groups: at
                .released
                .as_ref()
                .map(|(counts, trials)| f64::from(counts.iter().sum::<u32>()) / f64::from(*trials)),
            rows_lost: if total_rows > 0.0 {
                query
                    .groups
                    .iter()
                    .zip(&at.probabilities)
                    .map(|(group, p)| (1.0 - p) * group.raw.rows)
                    .sum::<f64>()
                    / total_rows
            } else {
                0.0
            },
        });
        for (report, statistics) in self.aggregates.iter_mut().zip(at.aggregates) {
            report.sweep.push(statistics);
        }
        self.last_predictions = at.predictions;
    }

    /// Flags the slices (by size, by segment) that bear much more error than the rest, at
    /// the last ε added.
    fn flag_unfair_slices(&mut self) {
        for (report, per_group) in self.aggregates.iter().zip(&self.last_predictions) {
            self.size_flags
                .extend(fairness_flags(&report.name, &self.size_slices, per_group));
            self.segment_flags.extend(fairness_flags(
                &report.name,
                &self.segment_slices,
                per_group,
            ));
        }
    }
}

/// One sentence per aggregate at the reference ε: its median relative error and where
/// the error comes from.
fn headline(aggregates: &[AggregateReport], reference: usize) -> Vec<String> {
    let mut headline = Vec::new();
    for aggregate in aggregates {
        let Some(at) = aggregate.sweep.get(reference) else {
            continue;
        };
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
    headline
}

#[cfg(test)]
mod tests;
