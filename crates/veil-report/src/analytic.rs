//! The report that reads no data: noise scales and public parameters only, on
//! hypothetical groups. It can be shared.

use std::collections::BTreeMap;

use veil_core::Epsilon;

use crate::ReportError;
use crate::input::{
    AggregateKind, AggregateSpec, ColumnMoments, Contribution, Contributions, DataOrigin,
    GroupTruth, Moments, NoisePlanner, QueryInput, ReportInput,
};
use crate::output::{Report, ReportOptions};
use crate::sweep;

/// Group sizes (distinct units) of the hypothetical groups.
pub const HYPOTHETICAL_UNITS: [u32; 5] = [10, 100, 1_000, 10_000, 100_000];

/// A query as the job declares it: no data.
#[derive(Debug, Clone, PartialEq)]
pub struct DeclaredQuery {
    /// The query's name.
    pub name: String,
    /// Group-by columns.
    pub group_by: Vec<String>,
    /// Contribution bounds.
    pub bounds: Contribution,
    /// What is released per group.
    pub aggregates: Vec<AggregateSpec>,
}

/// A job as declared: what an analytic-only report needs.
#[derive(Debug, Clone, PartialEq)]
pub struct DeclaredJob {
    /// The job's name.
    pub job: String,
    /// The budget in words.
    pub budget: String,
    /// The job's ε.
    pub epsilon: Epsilon,
    /// The queries.
    pub queries: Vec<DeclaredQuery>,
}

/// No randomness: the analytic-only report draws nothing.
enum NoRandomness {}

impl rand_core::TryRng for NoRandomness {
    type Error = core::convert::Infallible;

    fn try_next_u32(&mut self) -> Result<u32, Self::Error> {
        match *self {}
    }

    fn try_next_u64(&mut self) -> Result<u64, Self::Error> {
        match *self {}
    }

    fn try_fill_bytes(&mut self, _: &mut [u8]) -> Result<(), Self::Error> {
        match *self {}
    }
}

/// A hypothetical group of `units` units, each with one row whose value is the middle of
/// each column's bounds: no bounding bias, so the error is the noise (and selection).
fn hypothetical(units: u32, aggregates: &[AggregateSpec]) -> GroupTruth {
    let n = f64::from(units);
    let mut columns = BTreeMap::new();
    for spec in aggregates {
        if let Some(column) = &spec.column {
            let middle = (column.bounds.lower() + column.bounds.upper()) / 2.0;
            columns.insert(
                column.name.clone(),
                ColumnMoments {
                    values: n,
                    sum: n * middle,
                    sum_squares: n * middle * middle,
                },
            );
        }
    }
    let moments = Moments {
        rows: n,
        units: n,
        columns,
    };
    GroupTruth {
        key: vec![Some(format!("{units} units"))],
        segment: None,
        raw: moments.clone(),
        clamped: moments.clone(),
        row_bounded: moments.clone(),
        bounded: moments,
        quantiles: BTreeMap::new(),
    }
}

/// A report from noise scales and public parameters only: for each query, aggregate and
/// ε, the noise and the error of hypothetical groups of 10 to 100,000 units (one row
/// each, values at the middle of their bounds), and their release probabilities.
/// Variances and quantiles depend on the data's distribution and are left out.
///
/// # Errors
/// [`ReportError`] if the sweep is empty or the planner fails.
pub fn analytic_only(
    job: &DeclaredJob,
    planner: &dyn NoisePlanner,
    epsilons: Vec<Epsilon>,
    target_error: f64,
) -> Result<Report, ReportError> {
    let queries = job
        .queries
        .iter()
        .map(|query| {
            let aggregates: Vec<AggregateSpec> = query
                .aggregates
                .iter()
                .filter(|spec| {
                    !matches!(
                        spec.kind,
                        AggregateKind::Variance | AggregateKind::Quantile { .. }
                    )
                })
                .cloned()
                .collect();
            QueryInput {
                name: query.name.clone(),
                group_by: query.group_by.clone(),
                segment: None,
                bounds: query.bounds,
                groups: HYPOTHETICAL_UNITS
                    .iter()
                    .map(|&units| hypothetical(units, &aggregates))
                    .collect(),
                aggregates,
                contributions: Contributions::default(),
                value_quantiles: BTreeMap::new(),
                candidates: None,
                histogram_tree: (16, 3),
            }
        })
        .collect();
    let input = ReportInput {
        job: job.job.clone(),
        origin: DataOrigin::AnalyticOnly,
        source: "no data".into(),
        budget: job.budget.clone(),
        epsilon: job.epsilon,
        queries,
    };
    let options = ReportOptions {
        epsilons,
        trials: 0,
        target_error,
    };
    sweep::build_with::<NoRandomness>(&input, planner, &options, None)
}
