//! `veil report`: what each privacy level would cost this job in accuracy, where the
//! error comes from, who bears it, and better bounds.

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Duration;

use anyhow::Context;
use clap::Args;
use indicatif::{ProgressBar, ProgressStyle};
use veil_core::{Bounds, Epsilon};
use veil_engine::job::{AggregateKind, Job, JobBudget, SourceFormat};
use veil_engine::memory::MemoryTables;
use veil_engine::plan::{
    HISTOGRAM_BRANCHING, HISTOGRAM_DEPTH, Measure, MeasureNoise, output_names_of,
};
use veil_engine::scan::BoundingKey;
use veil_engine::utility::{GroupTotals, ReportInputs, StageTotals, UtilityOptions};
use veil_report::{
    AggregateSpec, Candidate, CandidateMoments, CandidateTruths, ColumnMoments, Contribution,
    Contributions, DataOrigin, DeclaredJob, DeclaredQuery, GroupTruth, LeafHistogram, Moments,
    Noise, NoisePlanner, NoiseShape, QuantileTruth, QueryInput, QueryNoise, Report, ReportError,
    ReportInput, ReportOptions, ValueColumn,
};

use crate::commands::explain::budget_text;
use crate::config::{self, LoadedJob};
use crate::exit::{self, Classify, usage_error};
use crate::rng;

/// Show what each privacy level would cost a job in accuracy, before committing to one.
///
/// Scans and bounds the data once, keeps the true per-group aggregates, then for each ε
/// predicts every aggregate's error from the noise scales (analytic) and measures it by
/// re-noising the true aggregates --trials times (Monte Carlo). The report splits the
/// error into bounding bias (L0, L∞, clamping), noise and groups lost to partition
/// selection; shows it by group size and by the query's `segment` column; suggests the
/// contribution bounds that minimise the error at each ε; and finds the smallest ε that
/// meets --target-error.
///
/// Each ε of the sweep replaces the job's ε; δ and everything else stay (a job with a ρ
/// budget is refused). Writes DIR/report.html (self-contained), report.md, report.json
/// and the charts as SVG and PNG (DIR/charts/), and prints a summary.
///
/// A report on real data is NOT private: it shows true values and errors, and says so on
/// its first line. Nothing is charged to the ledger (the ledger file is never opened).
/// Use --sample to run it on sample data, or --analytic-only to use only noise scales and
/// public parameters: those reports can be shared.
///
/// Examples:
///   veil report configs/quickstart.toml --epsilons 0.1,0.25,0.5,1,2,4 --output out/report
///   veil report configs/quickstart.toml --epsilons 0.5,1,2 --target-error 0.05 --output r
///   veil report configs/quickstart.toml --epsilons 1,2 --analytic-only --output shared
#[derive(Debug, Args)]
#[command(verbatim_doc_comment)]
pub(crate) struct ReportArgs {
    /// The job file.
    job: PathBuf,

    #[command(flatten)]
    as_of: super::JobAsOf,

    /// The ε's to sweep, comma-separated (δ and everything else as in the job).
    #[arg(long, value_delimiter = ',', required = true, num_args = 1..)]
    epsilons: Vec<f64>,

    /// Monte Carlo trials per ε (0: analytic only, still reading the data).
    #[arg(long, default_value_t = 200)]
    trials: u32,

    /// The median relative error to reach when searching the smallest ε (0.1 = 10%).
    #[arg(long, default_value_t = 0.1)]
    target_error: f64,

    /// The directory to write report.html, report.md, report.json and charts/ to.
    #[arg(long)]
    output: PathBuf,

    /// Read no data: noise scales, public parameters and hypothetical groups only.
    #[arg(long, conflicts_with = "sample")]
    analytic_only: bool,

    /// Run on this sample or synthetic file (same schema) instead of the job's source.
    #[arg(long)]
    sample: Option<PathBuf>,

    /// Seed the Monte Carlo and the bounding, for a reproducible report.
    #[arg(long)]
    seed: Option<u64>,

    #[command(flatten)]
    memory: crate::memory::MemoryArg,
}

/// Candidate L0 values tried by the tuning (plus the job's own).
const TUNING_L0: [u32; 6] = [1, 2, 3, 5, 10, 20];
/// Candidate L∞ values tried by the tuning (plus the job's own).
const TUNING_LINF: [u32; 6] = [1, 2, 5, 10, 20, 50];
/// Value-bound scales tried by the tuning.
const TUNING_SCALES: [f64; 5] = [0.25, 0.5, 1.0, 2.0, 4.0];
/// Quantiles of each value column shown beside its bounds.
const VALUE_LEVELS: [f64; 5] = [0.5, 0.9, 0.95, 0.99, 0.999];

/// Plans a job's noise with another ε and other bounds, through the engine's planner.
pub(crate) struct EnginePlanner {
    job: Job,
}

impl EnginePlanner {
    pub(crate) fn new(job: Job) -> Self {
        Self { job }
    }
}

fn scaled(bounds: Bounds, scale: f64) -> Bounds {
    Bounds::new(bounds.lower() * scale, bounds.upper() * scale).unwrap_or(bounds)
}

impl NoisePlanner for EnginePlanner {
    fn plan(
        &self,
        epsilon: Epsilon,
        query: usize,
        candidate: &Candidate,
    ) -> Result<QueryNoise, ReportError> {
        let mut job = self.job.clone();
        job.budget = match job.budget {
            JobBudget::Pure(_) => JobBudget::Pure(epsilon),
            JobBudget::Approx(_, delta) => JobBudget::Approx(epsilon, delta),
            JobBudget::Zcdp(rho) => JobBudget::Zcdp(rho),
        };
        let name = job
            .queries
            .get(query)
            .map(|query| query.name.clone())
            .unwrap_or_default();
        let planning = |reason: String| ReportError::Planning {
            epsilon: epsilon.get(),
            query: name.clone(),
            reason,
        };
        let target = job
            .queries
            .get_mut(query)
            .ok_or_else(|| planning("no such query".into()))?;
        target.bounds.max_groups_per_unit = candidate.contribution.max_groups_per_unit;
        target.bounds.max_rows_per_group = candidate.contribution.max_rows_per_group;
        if (candidate.value_scale - 1.0).abs() > 1e-12 {
            for aggregate in &mut target.aggregates {
                match &mut aggregate.kind {
                    AggregateKind::Sum(column)
                    | AggregateKind::Mean(column)
                    | AggregateKind::Variance(column)
                    | AggregateKind::Quantiles { column, .. } => {
                        column.bounds = scaled(column.bounds, candidate.value_scale);
                    }
                    AggregateKind::Count | AggregateKind::UnitCount => {}
                }
            }
        }
        let plan = veil_engine::plan::plan(&job).map_err(|e| planning(e.to_string()))?;
        let query_plan = plan
            .queries
            .get(query)
            .ok_or_else(|| planning("no such query".into()))?;
        let measures = report_noise(query_plan)?;
        Ok(QueryNoise {
            selection: query_plan.selection.clone(),
            measures,
        })
    }
}

/// The noise of each aggregate as the report reads it: per aggregate, under the keys of
/// the measures it would have had alone (`sum:NAME`, `values:NAME`, `centered_sum:NAME`,
/// `histogram:NAME`, `rows`, `units`), from the plan's shared and derived measures.
fn report_noise(
    query: &veil_engine::plan::QueryPlan,
) -> Result<std::collections::BTreeMap<String, Noise>, ReportError> {
    use veil_engine::plan::Derivation;
    let shape_of = |noise: &MeasureNoise| match noise {
        MeasureNoise::Gaussian(_) => NoiseShape::Gaussian,
        MeasureNoise::Laplace(_) | MeasureNoise::Quantile(_) => NoiseShape::Laplace,
    };
    // A measure's noise in real units: counts in rows, sums in the column's units.
    let real = |key: &str| -> Option<(NoiseShape, f64)> {
        let noisy = query.noise_of(key)?;
        let unit = match &noisy.measure {
            Measure::Sum { grid, .. } => grid.granularity().to_f64(),
            Measure::CenteredSum { grid, .. } => grid.granularity().to_f64() / 2.0,
            Measure::CenteredSquares { grid, .. } => (grid.granularity().to_f64() / 2.0).powi(2),
            Measure::Rows
            | Measure::Units
            | Measure::ValueCount { .. }
            | Measure::Histogram { .. } => 1.0,
        };
        Some((shape_of(&noisy.noise), noisy.noise.std_dev() * unit))
    };
    let mut measures = std::collections::BTreeMap::new();
    let mut put = |key: String, (shape, std): (NoiseShape, f64)| -> Result<(), ReportError> {
        measures.insert(key, Noise::new(shape, std)?);
        Ok(())
    };
    for key in ["rows", "units"] {
        if let Some(noise) = real(key) {
            put(key.to_string(), noise)?;
        }
    }
    for (aggregate, derivation) in query.query.aggregates.iter().zip(&query.derivations) {
        let Some(column) = aggregate.kind.column() else {
            continue;
        };
        let name = &column.name;
        let middle = f64::midpoint(column.bounds.lower(), column.bounds.upper());
        match derivation {
            Derivation::Sum { sum } => {
                if let Some(noise) = real(sum) {
                    put(format!("sum:{name}"), noise)?;
                }
            }
            Derivation::CenteredSum { count, centered } => {
                if let (Some((_, count_std)), Some((shape, centered_std))) =
                    (real(count), real(centered))
                {
                    put(
                        format!("sum:{name}"),
                        (shape, (middle * count_std).hypot(centered_std)),
                    )?;
                }
            }
            Derivation::Mean { count, centered }
            | Derivation::Variance {
                count, centered, ..
            } => {
                if let (Some(count), Some(centered)) = (real(count), real(centered)) {
                    put(format!("values:{name}"), count)?;
                    put(format!("centered_sum:{name}"), centered)?;
                }
                if let Derivation::Variance { squares, .. } = derivation
                    && let Some(squares) = real(squares)
                {
                    put(format!("centered_squares:{name}"), squares)?;
                }
            }
            Derivation::Quantiles { histogram } => {
                // The report models a quantile's error as a shift in rank whose spread it
                // derives from a histogram node's noise; give the node the noise whose
                // spread at the median is the point draw's typical rank error, √2·L∞/ε.
                if let Some(noisy) = query.noise_of(histogram)
                    && let MeasureNoise::Quantile(noise) = &noisy.noise
                {
                    let rank_std = std::f64::consts::SQRT_2
                        * f64::from(query.query.bounds.max_rows_per_group)
                        / noise.point.epsilon().get();
                    let (branching, depth) =
                        (f64::from(HISTOGRAM_BRANCHING), f64::from(HISTOGRAM_DEPTH));
                    let per_node =
                        (((branching - 1.0) * depth).sqrt() / 2.0).hypot(0.5 * branching.sqrt());
                    put(
                        format!("histogram:{name}"),
                        (shape_of(&noisy.noise), rank_std / per_node),
                    )?;
                }
            }
            Derivation::Count { .. } | Derivation::UnitCount { .. } => {}
        }
    }
    Ok(measures)
}

/// The job's ε, or a usage error for a ρ budget.
pub(crate) fn job_epsilon(job: &Job) -> anyhow::Result<Epsilon> {
    match job.budget {
        JobBudget::Pure(epsilon) | JobBudget::Approx(epsilon, _) => Ok(epsilon),
        JobBudget::Zcdp(_) => Err(usage_error(
            "budget: veil report sweeps ε; give the job an epsilon (and delta) budget instead of rho",
        )),
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

fn group_truth(group: &GroupTotals) -> GroupTruth {
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
                let leaves =
                    |map: &std::collections::BTreeMap<String, Vec<(u32, f64)>>| LeafHistogram {
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

/// The tuning grid, with the job's own bounds in it.
fn grid(query: &veil_engine::job::Query) -> (Vec<u32>, Vec<u32>) {
    let mut l0: Vec<u32> = TUNING_L0.to_vec();
    l0.push(query.bounds.max_groups_per_unit);
    l0.sort_unstable();
    l0.dedup();
    let mut linf: Vec<u32> = TUNING_LINF.to_vec();
    linf.push(query.bounds.max_rows_per_group);
    linf.sort_unstable();
    linf.dedup();
    (l0, linf)
}

fn report_input(
    loaded: &LoadedJob,
    job: &Job,
    inputs: &ReportInputs,
    options: &UtilityOptions,
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

fn spinner(shown: bool, message: &str) -> ProgressBar {
    if !shown {
        return ProgressBar::hidden();
    }
    let bar = ProgressBar::new_spinner().with_style(
        ProgressStyle::with_template("{spinner} {msg} ({elapsed})").expect("the template is valid"),
    );
    bar.set_message(message.to_string());
    bar.enable_steady_tick(Duration::from_millis(120));
    bar
}

fn write(path: &Path, bytes: &[u8]) -> anyhow::Result<()> {
    std::fs::write(path, bytes).with_context(|| format!("writing {}", path.display()))
}

/// Writes every rendering and chart of `report` into `directory`.
pub(crate) fn write_report(report: &Report, directory: &Path) -> anyhow::Result<Vec<PathBuf>> {
    let charts_directory = directory.join("charts");
    std::fs::create_dir_all(&charts_directory)
        .with_context(|| format!("creating {}", charts_directory.display()))?;
    let charts = veil_report::charts(report)?;
    let mut written = Vec::new();
    for chart in &charts {
        let svg = charts_directory.join(format!("{}.svg", chart.name));
        write(&svg, chart.svg.as_bytes())?;
        let png = charts_directory.join(format!("{}.png", chart.name));
        write(&png, &chart.png)?;
        written.push(svg);
        written.push(png);
    }
    for (name, text) in [
        ("report.html", report.to_html(&charts)?),
        ("report.md", report.to_markdown()),
        ("report.json", report.to_json()?),
    ] {
        let path = directory.join(name);
        write(&path, text.as_bytes())?;
        written.push(path);
    }
    Ok(written)
}

fn epsilons(values: &[f64]) -> anyhow::Result<Vec<Epsilon>> {
    values
        .iter()
        .map(|value| {
            Epsilon::new(*value).map_err(|e| usage_error(format!("--epsilons: {value}: {e}")))
        })
        .collect()
}

/// What a report is asked for, besides the job: `veil report`'s options.
pub(crate) struct ReportSettings {
    /// The ε's to sweep.
    pub(crate) epsilons: Vec<f64>,
    /// Monte Carlo trials per ε.
    pub(crate) trials: u32,
    /// The median relative error the tuning aims for.
    pub(crate) target_error: f64,
    /// Read no data.
    pub(crate) analytic_only: bool,
    /// A sample file to read instead of the job's source.
    pub(crate) sample: Option<PathBuf>,
    /// A seed for the Monte Carlo and the bounding.
    pub(crate) seed: Option<u64>,
    /// Whether to show spinners and timings on stderr.
    pub(crate) chatty: bool,
    /// The memory budget a report on real data must fit in.
    pub(crate) memory: veil_engine::scan::MemoryBudget,
}

pub(crate) fn run(args: &ReportArgs) -> anyhow::Result<ExitCode> {
    let loaded = config::load(&args.job, args.as_of.get()).usage()?;
    let settings = ReportSettings {
        epsilons: args.epsilons.clone(),
        trials: args.trials,
        target_error: args.target_error,
        analytic_only: args.analytic_only,
        sample: args.sample.clone(),
        seed: args.seed,
        chatty: true,
        memory: args.memory.resolve(loaded.engine.memory)?,
    };
    let report = build(&loaded, &settings, None)?;
    let written = write_report(&report, &args.output)?;
    print!("{}", report.to_text());
    eprintln!(
        "wrote {} files to {} (open report.html)",
        written.len(),
        args.output.display()
    );
    Ok(ExitCode::SUCCESS)
}

/// Builds the report of a job, reading its source (through `tables` for the tables given
/// in memory), a sample, or no data at all, as `settings` say.
pub(crate) fn build(
    loaded: &LoadedJob,
    settings: &ReportSettings,
    tables: Option<&MemoryTables>,
) -> anyhow::Result<Report> {
    let mut job = loaded.job.clone();
    job_epsilon(&job)?;
    let sweep = epsilons(&settings.epsilons)?;
    if !(settings.target_error.is_finite() && settings.target_error > 0.0) {
        return Err(usage_error(
            "--target-error must be a positive number, e.g. 0.1",
        ));
    }
    let report = if settings.analytic_only {
        // The job is planned (to check it) but its source is never opened.
        veil_engine::plan::plan(&job).map_err(exit::engine)?;
        let declared = DeclaredJob {
            job: job.name.clone(),
            budget: budget_text(job.budget),
            epsilon: job_epsilon(&job)?,
            queries: job
                .queries
                .iter()
                .map(|query| DeclaredQuery {
                    name: query.name.clone(),
                    group_by: query.group_by.clone(),
                    bounds: Contribution {
                        max_groups_per_unit: query.bounds.max_groups_per_unit,
                        max_rows_per_group: query.bounds.max_rows_per_group,
                    },
                    aggregates: aggregate_specs(query),
                })
                .collect(),
        };
        let planner = EnginePlanner::new(job.clone());
        veil_report::analytic_only(&declared, &planner, sweep, settings.target_error)
            .map_err(|e| exit::classified(e, Some(exit::Failure::Usage)))?
    } else {
        let origin = match &settings.sample {
            Some(sample) => {
                super::check_sample_is_not_the_source(sample, &job.source)?;
                job.source.path.clone_from(sample);
                job.source.format = SourceFormat::from_path(sample);
                DataOrigin::Sample
            }
            None => DataOrigin::Real,
        };
        let no_tables = MemoryTables::new();
        let plan =
            veil_engine::check_with(&job, tables.unwrap_or(&no_tables)).map_err(exit::engine)?;
        if tables.is_none() {
            crate::memory::check_report_fits(
                &plan.scan,
                settings.memory,
                "the utility report",
                &format!(
                    "or report on a sample: `veil sample-data --like {} --rows 1000000 --out sample.parquet`, then --sample sample.parquet",
                    loaded.file.display()
                ),
            )?;
        }
        let tables = tables.unwrap_or(&no_tables);
        let mut rng = rng::from_optional_seed(settings.seed)?;
        // One tuning grid for every query: the defaults plus each query's own bounds.
        let mut options = UtilityOptions {
            segments: loaded.segments.clone(),
            max_groups_per_unit: Vec::new(),
            max_rows_per_group: Vec::new(),
            value_scales: TUNING_SCALES.to_vec(),
            value_levels: VALUE_LEVELS.to_vec(),
        };
        for query in &job.queries {
            let (l0, linf) = grid(query);
            options.max_groups_per_unit.extend(l0);
            options.max_rows_per_group.extend(linf);
        }
        options.max_groups_per_unit.sort_unstable();
        options.max_groups_per_unit.dedup();
        options.max_rows_per_group.sort_unstable();
        options.max_rows_per_group.dedup();
        let started = std::time::Instant::now();
        let bar = spinner(
            settings.chatty,
            &format!("scanning and bounding {}", job.source.path.display()),
        );
        let key = BoundingKey::random(&mut rng);
        let inputs = tables
            .scope(|| veil_engine::utility::report_inputs(&plan, key, &options))
            .map_err(exit::engine)
            .with_context(|| format!("reading {}", job.source.path.display()));
        bar.finish_and_clear();
        let inputs = inputs?;
        let scanned = started.elapsed();
        if settings.chatty {
            eprintln!(
                "read {} rows ({} without a privacy unit, dropped) in {:.2} s",
                inputs.rows_read,
                inputs.rows_without_unit,
                scanned.as_secs_f64()
            );
        }
        let input = report_input(loaded, &job, &inputs, &options, origin)?;
        let planner = EnginePlanner::new(job.clone());
        let bar = spinner(
            settings.chatty,
            &format!(
                "sweeping {} ε × {} trials, tuning bounds",
                sweep.len(),
                settings.trials
            ),
        );
        let report = veil_report::build(
            &input,
            &planner,
            &ReportOptions {
                epsilons: sweep,
                trials: settings.trials,
                target_error: settings.target_error,
            },
            &mut rng,
        );
        bar.finish_and_clear();
        if settings.chatty {
            eprintln!(
                "swept, simulated and tuned in {:.2} s",
                (started.elapsed() - scanned).as_secs_f64()
            );
        }
        report?
    };
    Ok(report)
}
