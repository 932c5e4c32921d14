//! `veil report`: what each privacy level would cost this job in accuracy, where the
//! error comes from, who bears it, and better bounds.

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Duration;

use anyhow::Context;
use clap::Args;
use indicatif::{ProgressBar, ProgressStyle};
use veil_core::Epsilon;
use veil_engine::job::{Job, JobBudget, SourceFormat};
use veil_engine::memory::MemoryTables;
use veil_engine::scan::BoundingKey;
use veil_engine::truth::TruthOptions;
use veil_report::format::{percent, short};
use veil_report::{Contribution, DataOrigin, DeclaredJob, DeclaredQuery, Report, ReportOptions};

use crate::commands::explain::budget_text;
use crate::config::{self, LoadedJob};
use crate::exit::{self, Classify, usage_error};
use crate::rng;

mod input;

use input::report_input;
pub(crate) use input::{EnginePlanner, aggregate_specs, group_truth};

/// Show what each privacy level would cost a job in accuracy, before committing to one
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

/// The job's ε, or a usage error for a ρ budget.
pub(crate) fn job_epsilon(job: &Job) -> anyhow::Result<Epsilon> {
    match job.budget {
        JobBudget::Pure(epsilon) | JobBudget::Approx(epsilon, _) => Ok(epsilon),
        JobBudget::Zcdp(_) => Err(usage_error(
            "budget: veil report sweeps ε; give the job an epsilon (and delta) budget instead of rho",
        )),
    }
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

/// Puts first among a query's findings each bound chosen for it from the data, and the
/// bias of bounding left at the bounds the report used.
fn auto_findings(report: &mut Report, choices: &[veil_engine::autobound::AutoChoice]) {
    for query in &mut report.queries {
        let chosen: Vec<String> = choices
            .iter()
            .filter(|choice| choice.query == query.name)
            .map(|choice| format!("{} = {}", choice.what, choice.value))
            .collect();
        let Some(epsilon) = choices
            .iter()
            .find(|choice| choice.query == query.name)
            .map(|choice| choice.epsilon)
        else {
            continue;
        };
        let bias: Vec<String> = query
            .aggregates
            .iter()
            .filter(|aggregate| aggregate.bias.median_abs.is_finite())
            .map(|aggregate| format!("{} {}", aggregate.name, percent(aggregate.bias.median_abs)))
            .collect();
        query.findings.insert(
            0,
            format!(
                "Auto bounds (private): {} drawn from the data as `veil run` draws them (ε = {} each, from the job's budget; not charged by this report, and a run draws them afresh). This report is computed at these bounds; bounding leaves a median relative bias of {}.",
                chosen.join(", "),
                short(epsilon),
                if bias.is_empty() { "n/a".to_string() } else { bias.join(", ") }
            ),
        );
    }
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
    crate::guard::refuse_release_directory("the report", &args.output)?;
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
    out!("{}", report.to_text());
    errln!(
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
        let mut plan =
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
        // Bounds set to "auto" are drawn as `veil run` draws them (privately, nothing
        // charged: the report is never released), so the report shows the error at the
        // bounds a run would use, not at their placeholders.
        let auto_choices = if job.auto_choices() > 0 {
            let (resolved, choices) = tables
                .scope(|| veil_engine::autobound::resolve(&job, plan.auto_epsilon, &mut rng))
                .map_err(exit::engine)
                .with_context(|| {
                    format!(
                        "choosing the \"auto\" bounds from {}",
                        job.source.path.display()
                    )
                })?;
            job = resolved;
            plan = veil_engine::check_with(&job, tables).map_err(exit::engine)?;
            choices
        } else {
            Vec::new()
        };
        // One tuning grid for every query: the defaults plus each query's own bounds.
        let options = TruthOptions::for_job(&job, loaded.segments.clone());
        let started = std::time::Instant::now();
        let bar = spinner(
            settings.chatty,
            &format!("scanning and bounding {}", job.source.path.display()),
        );
        let key = BoundingKey::random(&mut rng);
        let inputs = tables
            .scope(|| veil_engine::truth::report_inputs(&plan, key, &options))
            .map_err(exit::engine)
            .with_context(|| format!("reading {}", job.source.path.display()));
        bar.finish_and_clear();
        let inputs = inputs?;
        let scanned = started.elapsed();
        if settings.chatty {
            errln!(
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
            errln!(
                "swept, simulated and tuned in {:.2} s",
                (started.elapsed() - scanned).as_secs_f64()
            );
        }
        let mut report = report?;
        auto_findings(&mut report, &auto_choices);
        report
    };
    Ok(report)
}
