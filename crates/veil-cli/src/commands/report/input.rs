//! The report's input from the engine's truth, and the engine's planner behind the
//! report's [`NoisePlanner`]: conversions between the two crates' types, no maths.

use std::collections::BTreeMap;

use veil_core::Epsilon;
use veil_engine::job::{AggregateKind, Job, Selection};
use veil_engine::plan::{HISTOGRAM_BRANCHING, HISTOGRAM_DEPTH, NoiseFamily, output_names_of};
use veil_engine::replan::{Alternative, aggregate_noise, replan};
use veil_engine::truth::{GroupTotals, ReportInputs, StageTotals, TruthOptions};
use veil_report::{
    AggregateSpec, Candidate, CandidateMoments, CandidateTruths, ColumnMoments, Contribution,
    Contributions, DataOrigin, GroupTruth, LeafHistogram, Moments, Noise, NoisePlanner, NoiseShape,
    QuantileTruth, QueryInput, QueryNoise, ReportError, ReportInput, SelectedOn, ValueColumn,
};

use super::job_epsilon;
use crate::commands::explain::budget_text;
use crate::config::LoadedJob;

/// The report's planner: the engine's, through [`veil_engine::replan`].
pub(crate) struct EnginePlanner {
    job: Job,
}

impl EnginePlanner {
    pub(crate) fn new(job: Job) -> Self {
        Self { job }
    }
}

impl EnginePlanner {
    /// Query `query` of `job` planned at `alternative`, as the report reads its noise.
    fn noise(
        job: &Job,
        query: usize,
        alternative: &Alternative,
    ) -> Result<QueryNoise, ReportError> {
        let planned = replan(job, query, alternative).map_err(|e| ReportError::Planning {
            epsilon: alternative.epsilon.get(),
            query: job
                .queries
                .get(query)
                .map(|query| query.name.clone())
                .unwrap_or_default(),
            reason: e.to_string(),
        })?;
        let mut measures = BTreeMap::new();
        for (key, noise) in aggregate_noise(&planned) {
            let shape = match (noise.family, noise.joint, noise.shape) {
                (_, _, Some(shape)) => NoiseShape::JointShaped(shape),
                (_, Some(dimension), None) => NoiseShape::Joint {
                    dimension: u8::try_from(dimension).unwrap_or(u8::MAX),
                },
                (NoiseFamily::Laplace, None, None) => NoiseShape::Laplace,
                (NoiseFamily::Gaussian, None, None) => NoiseShape::Gaussian,
            };
            measures.insert(key, Noise::new(shape, noise.std)?);
        }
        let selected_on = match planned.selection_count.as_deref() {
            None | Some("units") => SelectedOn::Units,
            Some("rows") => SelectedOn::Rows,
            Some(key) => SelectedOn::Values(
                planned
                    .noise_of(key)
                    .and_then(|noisy| noisy.measure.column())
                    .unwrap_or_default()
                    .to_string(),
            ),
        };
        Ok(QueryNoise {
            selection: planned.selection,
            selected_on,
            measures,
        })
    }
}

impl NoisePlanner for EnginePlanner {
    fn plan(
        &self,
        epsilon: Epsilon,
        query: usize,
        candidate: &Candidate,
    ) -> Result<QueryNoise, ReportError> {
        let alternative = Alternative {
            epsilon,
            max_groups_per_unit: candidate.contribution.max_groups_per_unit,
            max_rows_per_group: candidate.contribution.max_rows_per_group,
            value_scale: candidate.value_scale,
        };
        Self::noise(&self.job, query, &alternative)
    }

    fn plan_selecting_units(
        &self,
        epsilon: Epsilon,
        query: usize,
    ) -> Result<Option<QueryNoise>, ReportError> {
        let Some(bounds) = self.job.queries.get(query).map(|query| query.bounds) else {
            return Ok(None);
        };
        let mut job = self.job.clone();
        job.queries[query].selection = Selection::Units;
        let alternative = Alternative {
            epsilon,
            max_groups_per_unit: bounds.max_groups_per_unit,
            max_rows_per_group: bounds.max_rows_per_group,
            value_scale: 1.0,
        };
        Self::noise(&job, query, &alternative).map(Some)
    }
}

/// The report's view of a job's aggregates: one per released value column.
pub(crate) fn aggregate_specs(query: &veil_engine::job::Query) -> Vec<AggregateSpec> {
    let mut specs = Vec::new();
    for aggregate in &query.aggregates {
        let column = aggregate.kind.column().map(|column| ValueColumn {
            name: column.name.clone(),
            bounds: column.bounds,
        });
        let kind = match &aggregate.kind {
            AggregateKind::Count => veil_report::AggregateKind::Count,
            AggregateKind::UnitCount => veil_report::AggregateKind::UnitCount,
            AggregateKind::Sum(_) => veil_report::AggregateKind::Sum,
            AggregateKind::Mean(_) => veil_report::AggregateKind::Mean,
            AggregateKind::Variance(_) => veil_report::AggregateKind::Variance,
            AggregateKind::Quantiles { levels, .. } => {
                for (name, level) in output_names_of(aggregate).into_iter().zip(levels) {
                    specs.push(AggregateSpec {
                        name,
                        kind: veil_report::AggregateKind::Quantile { level: *level },
                        column: column.clone(),
                    });
                }
                continue;
            }
        };
        specs.push(AggregateSpec {
            name: aggregate.name.clone(),
            kind,
            column,
        });
    }
    specs
}

fn moments(stage: &StageTotals) -> Moments {
    Moments {
        rows: stage.rows,
        units: stage.units,
        columns: stage
            .columns
            .iter()
            .map(|(name, totals)| {
                (
                    name.clone(),
                    ColumnMoments {
                        values: totals.values,
                        sum: totals.sum,
                        sum_squares: totals.sum_squares,
                    },
                )
            })
            .collect(),
    }
}

pub(crate) fn group_truth(group: &GroupTotals) -> GroupTruth {
    GroupTruth {
        key: group.key.clone(),
        segment: group.segment.clone(),
        raw: moments(&group.raw),
        clamped: moments(&group.clamped),
        row_bounded: moments(&group.row_bounded),
        bounded: moments(&group.bounded),
        quantiles: group
            .raw_quantiles
            .iter()
            .map(|(column, raw)| {
                let leaves = |map: &BTreeMap<String, Vec<(u32, f64)>>| LeafHistogram {
                    counts: map.get(column).cloned().unwrap_or_default(),
                };
                (
                    column.clone(),
                    QuantileTruth {
                        raw: raw.clone(),
                        row_bounded: leaves(&group.row_bounded_leaves),
                        bounded: leaves(&group.bounded_leaves),
                    },
                )
            })
            .collect(),
    }
}

pub(super) fn report_input(
    loaded: &LoadedJob,
    job: &Job,
    inputs: &ReportInputs,
    options: &TruthOptions,
    origin: DataOrigin,
) -> anyhow::Result<ReportInput> {
    let queries = job
        .queries
        .iter()
        .zip(&inputs.queries)
        .enumerate()
        .map(|(index, (query, totals))| {
            let candidates = CandidateTruths {
                max_groups_per_unit: options.max_groups_per_unit.clone(),
                max_rows_per_group: options.max_rows_per_group.clone(),
                value_scales: options.value_scales.clone(),
                groups: totals
                    .groups
                    .iter()
                    .map(|group| {
                        group
                            .candidates
                            .iter()
                            .map(|candidate| CandidateMoments {
                                rows: candidate.rows,
                                units: candidate.units,
                                columns: candidate.columns.clone(),
                            })
                            .collect()
                    })
                    .collect(),
            };
            QueryInput {
                name: query.name.clone(),
                group_by: query.group_by.clone(),
                segment: loaded.segments.get(index).cloned().flatten(),
                bounds: Contribution {
                    max_groups_per_unit: query.bounds.max_groups_per_unit,
                    max_rows_per_group: query.bounds.max_rows_per_group,
                },
                aggregates: aggregate_specs(query),
                groups: totals.groups.iter().map(group_truth).collect(),
                contributions: Contributions {
                    groups_per_unit: totals.groups_per_unit.clone(),
                    rows_per_group: totals.rows_per_group.clone(),
                },
                value_quantiles: totals.value_quantiles.clone(),
                candidates: Some(candidates),
                histogram_tree: (HISTOGRAM_BRANCHING, HISTOGRAM_DEPTH),
            }
        })
        .collect();
    Ok(ReportInput {
        job: job.name.clone(),
        origin,
        source: job.source.path.display().to_string(),
        budget: budget_text(job.budget),
        epsilon: job_epsilon(job)?,
        queries,
    })
}
