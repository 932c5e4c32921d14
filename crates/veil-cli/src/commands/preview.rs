//! `veil preview`: a job's release on sample data, next to the true values, charging
//! nothing.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use clap::Args;
use comfy_table::{Table, presets::UTF8_FULL_CONDENSED};
use veil_accountant::{
    BudgetError, BudgetKey, BudgetLedger, BudgetStatus, Charge, ReleaseRecord, Reservation,
};
use veil_engine::job::SourceFormat;
use veil_engine::scan::BoundingKey;
use veil_engine::truth::{GroupTotals, QueryTotals, TruthOptions};
use veil_engine::{RunContext, Stage};
use veil_report::format::short;
use veil_report::{AggregateSpec, GroupTruth};

use crate::config;
use crate::exit::{self, Classify};
use crate::rng;

/// Preview a job's release on sample or synthetic data: see what a release at this ε
/// looks like before any real data is touched
///
/// Runs the job exactly as a release would (bounding, exact noise, partition selection,
/// post-processing) on --sample instead of the job's source, writes the tables to
/// --output under the query names with -preview appended (by_country-preview.csv) and a
/// release.json that says "preview, not a release", and prints each released table next
/// to the true values of the sample.
/// Nothing is charged: the job's ledger file is never opened.
///
/// Make a sample with the job's schema (never copying values) with
///   veil sample-data --like JOB.toml --out sample.parquet
///
/// Examples:
///   veil preview configs/quickstart.toml --sample data/events.parquet
///   veil preview configs/quickstart.toml --sample sample.parquet --output out/preview
#[derive(Debug, Args)]
#[command(verbatim_doc_comment)]
pub(crate) struct PreviewArgs {
    /// The job file.
    job: PathBuf,

    /// Sample or synthetic data with the job's schema (Parquet or CSV).
    #[arg(long)]
    sample: PathBuf,

    /// Where to write the preview [default: the job's output path + "-preview"].
    #[arg(long)]
    output: Option<PathBuf>,

    /// Groups shown per query.
    #[arg(long, default_value_t = 15)]
    rows: usize,

    /// Seed the noise (reproducible; the output is a preview either way).
    #[arg(long)]
    seed: Option<u64>,

    /// Write the preview only: skip the second pass that computes the true values.
    #[arg(long)]
    no_compare: bool,

    #[command(flatten)]
    as_of: super::JobAsOf,

    #[command(flatten)]
    memory: crate::memory::MemoryArg,

    #[command(flatten)]
    spill: crate::memory::SpillArg,
}

/// A ledger that records nothing and refuses nothing: previews are not releases.
struct PreviewLedger;

impl BudgetLedger for PreviewLedger {
    fn reserve(&mut self, key: &BudgetKey, _charge: &Charge) -> Result<Reservation, BudgetError> {
        Ok(Reservation {
            id: 0,
            key: key.clone(),
        })
    }

    fn commit(&mut self, _reservation: &Reservation) -> Result<(), BudgetError> {
        Ok(())
    }

    fn abort(&mut self, _reservation: &Reservation) -> Result<(), BudgetError> {
        Ok(())
    }

    fn record_release(
        &mut self,
        _reservation: &Reservation,
        _release: &ReleaseRecord,
    ) -> Result<(), BudgetError> {
        Ok(())
    }

    fn record_diagnostics(
        &mut self,
        _reservation: &Reservation,
        _counts: &[veil_accountant::NotPrivateCount],
    ) -> Result<(), BudgetError> {
        Ok(())
    }

    fn status(&self, key: &BudgetKey) -> Result<BudgetStatus, BudgetError> {
        Err(BudgetError::NoBudget { key: key.clone() })
    }
}

/// A number in a preview table: `—` where there is none (a mean over no values).
fn cell(value: f64) -> String {
    if value.is_finite() {
        short(value)
    } else {
        "—".into()
    }
}

/// The suffix of every preview table's name.
pub(crate) const PREVIEW_SUFFIX: &str = "-preview";

pub(crate) fn run(args: &PreviewArgs) -> anyhow::Result<ExitCode> {
    let loaded = config::load(&args.job, args.as_of.get()).usage()?;
    let mut job = loaded.job.clone();
    super::check_sample_is_not_the_source(&args.sample, &job.source)?;
    if job.governance.consent.take().is_some() {
        // Sample rows stand for nobody, so no consent log can name them; the purpose's
        // columns and retention window still apply.
        errln!("note: the consent filter is not applied to sample data");
    }
    job.name = format!("{}{PREVIEW_SUFFIX}", job.name);
    job.source.path.clone_from(&args.sample);
    job.source.format = SourceFormat::from_path(&args.sample);
    for query in &mut job.queries {
        query.name = format!("{}{PREVIEW_SUFFIX}", query.name);
    }
    job.output.directory = args.output.clone().unwrap_or_else(|| {
        let mut directory = job.output.directory.clone().into_os_string();
        directory.push(PREVIEW_SUFFIX);
        PathBuf::from(directory)
    });
    crate::guard::refuse_release_directory("the preview", &job.output.directory)?;
    let budget = args.memory.resolve(loaded.engine.memory)?;
    let spill_dir = args.spill.resolve(&job.output.directory)?;
    crate::memory::check_auto_bounds_fit(&job, budget)?;
    if !args.no_compare {
        // The comparison's true values come from the report's scan, which runs in memory.
        let plan = veil_engine::plan::plan(&job).map_err(exit::engine)?;
        crate::memory::check_report_fits(
            &plan.scan,
            budget,
            "the preview's comparison with true values",
            "or preview without the comparison (--no-compare): the preview itself bounds its memory",
        )?;
    }
    // A preview charges nothing: any stage may stop at once.
    let _interrupts = crate::memory::watch_interrupts(&spill_dir);
    let local = veil_engine::LocalExecutor::new(crate::memory::scan_options(
        budget,
        spill_dir,
        &indicatif::ProgressBar::hidden(),
    ));
    let mut rng = rng::from_optional_seed(args.seed)?;
    let mut ledger = PreviewLedger;
    let mut progress = |stage: Stage| {
        if stage == Stage::Scanning {
            errln!("previewing on {}", args.sample.display());
        }
    };
    let summary = veil_engine::run_with(
        &job,
        RunContext {
            ledger: &mut ledger,
            budget_key: BudgetKey {
                dataset: "(preview: nothing charged)".into(),
                purpose: "(preview: nothing charged)".into(),
            },
            created_at: jiff::Timestamp::now().to_string(),
            not_private: Some(format!(
                "preview, not a release: computed on sample data {}, charged to no ledger",
                args.sample.display()
            )),
            progress: &mut progress,
            interrupt: None,
        },
        &local,
        &mut rng,
    )
    .map_err(exit::engine)
    .with_context(|| {
        format!(
            "previewing {} on {}",
            args.job.display(),
            args.sample.display()
        )
    })?;

    if args.no_compare {
        outln!(
            "PREVIEW, NOT A RELEASE: job {} on sample data {}; nothing was charged.",
            loaded.job.name,
            args.sample.display()
        );
        for published in &summary.outputs {
            outln!(
                "{}: {} groups released, {}",
                published.query,
                published.table.groups(),
                published.path.display()
            );
        }
        return Ok(ExitCode::SUCCESS);
    }
    // The sample's true values (not private: the sample is not real data).
    let plan = veil_engine::plan::plan(&job).map_err(exit::engine)?;
    let truths = veil_engine::truth::report_inputs(
        &plan,
        BoundingKey::random(&mut rng),
        &TruthOptions {
            segments: vec![None; job.queries.len()],
            max_groups_per_unit: Vec::new(),
            max_rows_per_group: Vec::new(),
            value_scales: Vec::new(),
            value_levels: Vec::new(),
        },
    )
    .map_err(exit::engine)?;

    outln!(
        "PREVIEW, NOT A RELEASE: job {} at {} on sample data {}; nothing was charged.",
        loaded.job.name,
        crate::commands::explain::budget_text(job.budget),
        args.sample.display()
    );
    for ((published, query), totals) in summary
        .outputs
        .iter()
        .zip(&job.queries)
        .zip(&truths.queries)
    {
        print_comparison(&published.table, query, totals, args.rows);
    }
    errln!(
        "wrote the preview to {} (release.json says \"preview, not a release\")",
        job.output.directory.display()
    );
    Ok(ExitCode::SUCCESS)
}

/// Prints one query's released values beside the sample's true values, largest groups
/// first, `shown` of them.
fn print_comparison(
    table: &veil_engine::release::ReleasedTable,
    query: &veil_engine::job::Query,
    totals: &QueryTotals,
    shown: usize,
) {
    let by_key: BTreeMap<Vec<String>, &GroupTotals> = totals
        .groups
        .iter()
        .map(|group| {
            (
                group
                    .key
                    .iter()
                    .map(|value| value.clone().unwrap_or_default())
                    .collect(),
                group,
            )
        })
        .collect();
    let keys: Vec<Vec<String>> = {
        let columns: Vec<Vec<String>> = query
            .group_by
            .iter()
            .map(|name| table.column_as_strings(name).unwrap_or_default())
            .collect();
        (0..table.groups())
            .map(|row| columns.iter().map(|column| column[row].clone()).collect())
            .collect()
    };
    let mut header: Vec<String> = query.group_by.clone();
    let specs: Vec<AggregateSpec> = super::report::aggregate_specs(query);
    for spec in &specs {
        header.push(format!("{} released (95% CI)", spec.name));
        header.push(format!("{} true (all rows)", spec.name));
    }
    // Each released column converted once, not once per row.
    let column = |name: &str| table.column_as_f64(name);
    let released: Vec<_> = specs
        .iter()
        .map(|AggregateSpec { name, .. }| {
            (
                column(name),
                column(&format!("{name}_ci_low")),
                column(&format!("{name}_ci_high")),
            )
        })
        .collect();
    let at = |values: &Option<Vec<f64>>, row: usize| values.as_ref().map_or(f64::NAN, |v| v[row]);
    let mut rows: Vec<(f64, Vec<String>)> = Vec::new();
    for (row, key) in keys.iter().enumerate() {
        let group = by_key.get(key);
        let truth = group.map(|group| super::report::group_truth(group));
        let mut cells = key.clone();
        for (spec, (values, lows, highs)) in specs.iter().zip(&released) {
            let (value, low, high) = (at(values, row), at(lows, row), at(highs, row));
            cells.push(format!("{} [{}, {}]", cell(value), cell(low), cell(high)));
            cells.push(truth.as_ref().map_or_else(
                || "—".into(),
                |truth: &GroupTruth| cell(veil_report::true_value(spec, truth)),
            ));
        }
        rows.push((group.map_or(0.0, |group| group.raw.units), cells));
    }
    rows.sort_by(|a, b| b.0.total_cmp(&a.0));
    let mut display = Table::new();
    display.load_style(UTF8_FULL_CONDENSED).set_header(header);
    for (_, cells) in rows.iter().take(shown) {
        display.add_row(cells.clone());
    }
    outln!();
    outln!(
        "{} (preview): {} of {} groups released; {} shown, largest first",
        query.name,
        table.groups(),
        totals.groups.len(),
        rows.len().min(shown)
    );
    outln!("{display}");
    outln!(
        "true (all rows) = every row of the sample with a unit, before bounding ({} groups and {} \
         rows per unit) and clamping; the 95% CI is the noise's around the bounded value, so a \
         true value outside it is bounding's bias (`veil report` splits the error)",
        query.bounds.max_groups_per_unit,
        query.bounds.max_rows_per_group
    );
}

#[cfg(test)]
mod tests {
    use veil_core::Bounds;
    use veil_engine::truth::{ColumnTotals, GroupTotals};
    use veil_report::{AggregateKind, AggregateSpec, ValueColumn};

    use super::cell;
    use crate::commands::report::group_truth;

    fn group(values: f64, sum: f64, sum_squares: f64) -> GroupTotals {
        let mut group = GroupTotals::default();
        group.raw.rows = 4.0;
        group.raw.columns.insert(
            "value".into(),
            ColumnTotals {
                values,
                sum,
                sum_squares,
            },
        );
        group
    }

    fn shown(kind: AggregateKind, group: &GroupTotals) -> String {
        let spec = AggregateSpec {
            name: "value".into(),
            kind,
            column: Some(ValueColumn {
                name: "value".into(),
                bounds: Bounds::new(0.0, 10.0).unwrap(),
            }),
        };
        cell(veil_report::true_value(&spec, &group_truth(group)))
    }

    #[test]
    fn a_group_without_values_has_no_mean_or_variance() {
        let empty = group(0.0, 0.0, 0.0);
        assert_eq!(shown(AggregateKind::Mean, &empty), "—");
        assert_eq!(shown(AggregateKind::Variance, &empty), "—");
        assert_eq!(shown(AggregateKind::Count, &empty), "4");
        // Values 1 and 3: mean 2, variance 1.
        let two = group(2.0, 4.0, 10.0);
        assert_eq!(shown(AggregateKind::Mean, &two), "2");
        assert_eq!(shown(AggregateKind::Variance, &two), "1");
    }
}
