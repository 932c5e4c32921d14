//! What privacy costs: the utility report.
//!
//! Before anyone commits a privacy level, a report shows what it costs in accuracy,
//! where the error comes from (bounding, noise, groups lost to selection) and who bears
//! it (small groups, segments), and suggests better contribution bounds.
//!
//! The inputs are the true per-group aggregates at each stage of bounding, computed once
//! from the data ([`ReportInput`], built by the caller from the engine's scan), and a
//! [`NoisePlanner`] that tells the noise of a query under another ε or other bounds.
//! [`build`] sweeps the ε's: for each query, aggregate and ε it predicts the error
//! analytically (from noise scales and the true values) and measures it by re-noising the
//! true aggregates many times (Monte Carlo: aggregate once, noise many times). The
//! [`Report`] renders as text, Markdown, JSON and self-contained HTML, with [`charts`] as
//! SVG and PNG. [`analytic_only`] needs no data at all.
//!
//! **Not private.** A report built from real data shows true values and true errors; its
//! first line ([`Report::notice`]) says so. Reports from sample data or from noise scales
//! alone can be shared. Monte Carlo noise is floating point: a simulation, never a release.
//!
//! This crate does no I/O: it returns strings and bytes for the caller to write.
//!
//! ```
//! use std::collections::BTreeMap;
//! use veil_core::Epsilon;
//! use veil_report::{
//!     AggregateKind, AggregateSpec, Candidate, Contribution, DataOrigin, GroupTruth, Moments,
//!     Noise, NoisePlanner, NoiseShape, QueryInput, QueryNoise, ReportError, ReportInput,
//!     ReportOptions, SelectedOn,
//! };
//!
//! /// Laplace noise of standard deviation 2·L0·L∞/ε on the count.
//! struct Planner;
//! impl NoisePlanner for Planner {
//!     fn plan(&self, epsilon: Epsilon, _: usize, candidate: &Candidate) -> Result<QueryNoise, ReportError> {
//!         let sensitivity = f64::from(candidate.contribution.max_groups_per_unit
//!             * candidate.contribution.max_rows_per_group);
//!         let std = std::f64::consts::SQRT_2 * sensitivity / epsilon.get();
//!         Ok(QueryNoise {
//!             selection: None,
//!             selected_on: SelectedOn::Units,
//!             measures: BTreeMap::from([("rows".to_string(), Noise::new(NoiseShape::Laplace, std)?)]),
//!         })
//!     }
//! }
//!
//! let stage = |rows: f64| Moments { rows, units: rows / 2.0, columns: BTreeMap::new() };
//! let group = GroupTruth {
//!     key: vec![Some("FR".into())],
//!     raw: stage(120.0),
//!     clamped: stage(120.0),
//!     row_bounded: stage(100.0),
//!     bounded: stage(90.0),
//!     ..GroupTruth::default()
//! };
//! let input = ReportInput {
//!     job: "example".into(),
//!     origin: DataOrigin::Sample,
//!     source: "synthetic".into(),
//!     budget: "ε = 1".into(),
//!     epsilon: Epsilon::new(1.0)?,
//!     queries: vec![QueryInput {
//!         name: "by_country".into(),
//!         group_by: vec!["country".into()],
//!         segment: None,
//!         bounds: Contribution { max_groups_per_unit: 1, max_rows_per_group: 5 },
//!         aggregates: vec![AggregateSpec { name: "count".into(), kind: AggregateKind::Count, column: None }],
//!         groups: vec![group],
//!         contributions: Default::default(),
//!         value_quantiles: BTreeMap::new(),
//!         candidates: None,
//!         histogram_tree: (16, 3),
//!     }],
//! };
//! let options = ReportOptions {
//!     epsilons: vec![Epsilon::new(0.5)?, Epsilon::new(1.0)?],
//!     trials: 100,
//!     target_error: 0.1,
//! };
//! let mut rng = veil_testkit::seeded_rng(7);
//! let report = veil_report::build(&input, &Planner, &options, &mut rng)?;
//! assert!(report.to_markdown().contains("Utility report"));
//! let count = &report.queries[0].aggregates[0];
//! // Bounding drops 30 of 120 rows: a quarter of the count, whatever ε.
//! assert!((count.bias.total + 0.25).abs() < 1e-9);
//! Ok::<(), Box<dyn std::error::Error>>(())
//! ```
#![deny(missing_docs)]
#![deny(clippy::print_stdout, clippy::print_stderr)]

mod analytic;
mod chart;
mod dist;
mod error;
mod fairness;
pub mod format;
mod input;
mod model;
mod output;
mod parallel;
mod render;
mod selection;
mod simulation;
mod stats;
mod sweep;
mod tuning;

pub use analytic::{DeclaredJob, DeclaredQuery, HYPOTHETICAL_UNITS, analytic_only};
pub use chart::{Chart, charts};
pub use error::ReportError;
pub use input::{
    AggregateKind, AggregateSpec, Candidate, CandidateMoments, CandidateTruths, ColumnMoments,
    Contribution, Contributions, DataOrigin, GroupTruth, LeafHistogram, Moments, Noise,
    NoisePlanner, NoiseShape, QuantileTruth, QueryInput, QueryNoise, ReportInput, SelectedOn,
    ValueColumn,
};
pub use model::true_value;
pub use output::{
    AggregateAtEpsilon, AggregateReport, BiasSummary, ContributionSummary, Decomposition,
    ErrorStats, GroupRelease, QueryReport, ReleaseAtEpsilon, Report, ReportOptions, SliceStats,
    TargetSearch, TunedAtEpsilon, TuningReport,
};
pub use sweep::build;
