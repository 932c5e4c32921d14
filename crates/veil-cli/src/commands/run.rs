//! `veil run`: the main job — read, bound, aggregate, charge, noise, release.

use std::io::IsTerminal;
use std::path::PathBuf;
use std::process::ExitCode;

use crate::config::{self, LoadedJob};
use crate::engine::{self, Engine, EngineArgs};
use crate::exit::{self, Classify, usage_error};
use crate::ledger::{JobLedger, LockTimeout, budget_text};
use crate::memory::{MemoryArg, SpillArg};
use crate::rng;
use clap::Args;
use comfy_table::{Table, presets::UTF8_FULL_CONDENSED};
use indicatif::ProgressStyle;
use rand::rngs::ChaCha20Rng;
use veil_accountant::{BudgetKey, BudgetLedger, BudgetPeriod, PrivacyBudget};
use veil_engine::release::ReleasedTable;
use veil_engine::{Executor, LocalExecutor, RunContext, RunSummary, Stage};

/// Run a job: release differentially private aggregates and charge the privacy budget
///
/// Reads only the job's columns, keeps only rows inside the purpose's retention window and
/// units with consent in force, bounds each unit's contribution, aggregates, reserves the
/// cost in the ledger, adds exact noise, selects groups, writes one file per query and
/// release.json, and commits the charge. Anything that fails before the commit releases
/// nothing and gives the budget back.
///
/// Exit codes: 0 released, 1 failed while running, 2 the job or its files are wrong,
/// 3 the budget would be exceeded (nothing released).
///
/// With `--engine spark` (or `[engine] kind = "spark"` in the job), Apache Spark reads,
/// bounds and aggregates through Spark Connect and prints its progress; only the per-group
/// aggregates come back, and the noise, the charge and the release stay here.
///
/// Examples:
///   veil run configs/quickstart.toml
///   veil run jobs/daily.toml --as-of 2026-11-01
///   veil run configs/quickstart.toml --engine spark --remote sc://localhost:15002
#[derive(Debug, Args)]
#[command(verbatim_doc_comment)]
pub(crate) struct RunArgs {
    /// The job file.
    job: PathBuf,

    #[command(flatten)]
    as_of: super::JobAsOf,

    /// How many groups of each table to print (0 for none).
    #[arg(long, default_value_t = 10)]
    show: usize,

    /// Use this ledger file instead of the job's `[budget] ledger`.
    #[arg(long)]
    ledger: Option<PathBuf>,

    /// Write the release here instead of the job's `[output] path`.
    #[arg(long)]
    output: Option<PathBuf>,

    #[command(flatten)]
    ledger_timeout: LockTimeout,

    #[command(flatten)]
    engine: EngineArgs,

    #[command(flatten)]
    memory: MemoryArg,

    #[command(flatten)]
    spill: SpillArg,

    /// Show no progress (it is shown only when stderr is a terminal anyway).
    #[arg(long, short)]
    quiet: bool,
}

/// The budget the purposes registry declares for the job's purpose, if any.
pub(crate) fn registry_budget(
    loaded: &LoadedJob,
) -> anyhow::Result<Option<(PrivacyBudget, Option<BudgetPeriod>)>> {
    let Some(registry) = &loaded.registry else {
        return Ok(None);
    };
    let Some(budget) = registry
        .purposes
        .get(&loaded.budget.purpose)
        .and_then(|entry| entry.budget)
    else {
        return Ok(None);
    };
    let total = match (budget.epsilon, budget.rho) {
        (Some(epsilon), _) => PrivacyBudget::Approx {
            epsilon,
            delta: budget.delta.unwrap_or(0.0),
        },
        (None, Some(rho)) => PrivacyBudget::Zcdp { rho },
        (None, None) => return Ok(None),
    };
    let period = budget
        .period_ms
        .map(|ms| BudgetPeriod::from_seconds(u64::try_from(ms / 1000).unwrap_or(0)))
        .transpose()
        .usage()?;
    Ok(Some((total, period)))
}

/// Opens the job's ledger. When the job's purposes registry declares a budget for its
/// purpose, the ledger file and that budget are created if missing, but only when the run
/// reserves its cost ([`JobLedger`]): a run that fails or is refused before creates
/// nothing. Otherwise a missing ledger is a usage error that says how to create it.
pub(crate) fn open_ledger(loaded: &LoadedJob, timeout: LockTimeout) -> anyhow::Result<JobLedger> {
    let path = &loaded.budget.ledger;
    let registry = registry_budget(loaded)?;
    if registry.is_none() && !path.exists() {
        return Err(usage_error(format!(
            "budget.ledger: no ledger at {}; create it and the budget with `veil budget init --ledger {} --dataset {} --purpose {} --epsilon <total> --delta <total>`",
            path.display(),
            path.display(),
            loaded.budget.dataset,
            loaded.budget.purpose
        )));
    }
    let folder = path
        .parent()
        .filter(|folder| !folder.as_os_str().is_empty());
    if let Some(folder) = folder.filter(|folder| !folder.is_dir()) {
        return Err(usage_error(format!(
            "budget.ledger: {} cannot be created: folder {} does not exist",
            path.display(),
            folder.display()
        )));
    }
    let ledger = JobLedger::new(path, timeout.options(), registry).map_err(exit::budget)?;
    let key = BudgetKey {
        dataset: loaded.budget.dataset.clone(),
        purpose: loaded.budget.purpose.clone(),
    };
    refuse_a_new_dataset_for_the_purpose(loaded, &ledger, &key, registry)?;
    if let (Some((total, _)), Some(opened)) = (registry, ledger.opened())
        && let Ok(status) = opened.status(&key)
        && status.total != total
    {
        errln!(
            "warning: the ledger's budget for {key} is {}, the registry now says {}; the ledger's stands (`veil budget amend` changes it)",
            budget_text(&status.total),
            budget_text(&total)
        );
    }
    Ok(ledger)
}

/// Refuses to create, from the registry, a budget for a dataset the ledger has never seen
/// when it already holds a budget for the same purpose under another dataset name: a typo
/// in `[budget] dataset` ("event" for "events") would otherwise open a fresh budget over
/// the same people, whose privacy the old one protects. A new dataset for a purpose is
/// created on purpose, with `veil budget init`; a new purpose (which the registry must
/// declare) and a new ledger are still created by the first run.
fn refuse_a_new_dataset_for_the_purpose(
    loaded: &LoadedJob,
    ledger: &JobLedger,
    key: &BudgetKey,
    registry: Option<(PrivacyBudget, Option<BudgetPeriod>)>,
) -> anyhow::Result<()> {
    let (Some(opened), Some((total, period))) = (ledger.opened(), registry) else {
        return Ok(());
    };
    // A ledger that cannot answer refuses the run: the guard never fails open.
    let datasets = opened.datasets_of(&key.purpose).map_err(exit::budget)?;
    if datasets.is_empty() || datasets.contains(&key.dataset) {
        return Ok(());
    }
    let path = &loaded.budget.ledger;
    let quoted: Vec<String> = datasets.iter().map(|name| format!("{name:?}")).collect();
    let amounts = match total {
        PrivacyBudget::Approx { epsilon, delta } => {
            format!("--epsilon {epsilon} --delta {delta:e}")
        }
        PrivacyBudget::Zcdp { rho } => format!("--rho {rho}"),
    };
    let period = period.map_or(String::new(), |period| format!(" --period {period}"));
    Err(usage_error(format!(
        "budget.dataset: {} holds no budget for dataset {:?} under purpose {:?}, only for dataset {}: check the job's [budget] dataset (another name would open a fresh budget over the same people); to give a new dataset its own budget, create it with `veil budget init --ledger {} --dataset {} --purpose {} {amounts}{period}`",
        path.display(),
        key.dataset,
        key.purpose,
        quoted.join(", "),
        path.display(),
        key.dataset,
        key.purpose
    )))
}

/// The datasets (quoted, sorted) that the ledger at `path` holds a budget for under
/// `key`'s purpose, other than `key`'s own (empty when it cannot be read).
pub(crate) fn other_datasets(path: &std::path::Path, key: &BudgetKey) -> Vec<String> {
    veil_ledger::SqliteLedger::open(path)
        .and_then(|ledger| ledger.datasets_of(&key.purpose))
        .unwrap_or_default()
        .into_iter()
        .filter(|dataset| *dataset != key.dataset)
        .map(|dataset| format!("{dataset:?}"))
        .collect()
}

/// What a run needs before it reads anything: its outputs checked, its ledger open, its
/// randomness.
pub(crate) struct Prepared {
    /// The job's ledger.
    pub(crate) ledger: JobLedger,
    /// Whose budget.
    pub(crate) key: BudgetKey,
    rng: ChaCha20Rng,
}

/// Checks that the release would overwrite none of the job's inputs, opens the ledger and
/// seeds the noise from the operating system.
pub(crate) fn prepare(loaded: &LoadedJob, timeout: LockTimeout) -> anyhow::Result<Prepared> {
    crate::guard::check_job_outputs(loaded)?;
    let ledger = open_ledger(loaded, timeout)?;
    let key = BudgetKey {
        dataset: loaded.budget.dataset.clone(),
        purpose: loaded.budget.purpose.clone(),
    };
    let rng = rng::os_seeded()?;
    Ok(Prepared { ledger, key, rng })
}

/// Runs the job through `executor`: check, scan, reserve, noise, write, commit, publish.
pub(crate) fn execute(
    loaded: &LoadedJob,
    prepared: &mut Prepared,
    executor: &dyn Executor,
    progress: &mut dyn FnMut(Stage),
    interrupt: Option<&dyn Fn() -> bool>,
) -> anyhow::Result<RunSummary> {
    let context = RunContext {
        ledger: &mut prepared.ledger,
        budget_key: prepared.key.clone(),
        created_at: crate::clock::now_text(),
        not_private: None,
        progress,
        interrupt,
    };
    veil_engine::run_with(&loaded.job, context, executor, &mut prepared.rng).map_err(exit::engine)
}

pub(crate) fn run(args: &RunArgs) -> anyhow::Result<ExitCode> {
    let mut loaded = config::load(&args.job, args.as_of.get()).usage()?;
    if let Some(ledger) = &args.ledger {
        loaded.budget.ledger.clone_from(ledger);
    }
    if let Some(output) = &args.output {
        loaded.job.output.directory.clone_from(output);
    }
    let engine = args.engine.resolve(&loaded.engine)?;
    let memory = args.memory.resolve(loaded.engine.memory)?;
    let spill_dir = args.spill.resolve(&loaded.job.output.directory)?;
    // From here on, Ctrl-C stops the run as `Interrupts` says (at once while it waits for
    // the ledger or scans; before its commit once it has reserved).
    let interrupts = crate::memory::watch_interrupts(&spill_dir);
    let mut prepared = prepare(&loaded, args.ledger_timeout)?;
    if matches!(engine, Engine::Local) {
        crate::memory::check_auto_bounds_fit(&loaded.job, memory)?;
    }
    let terminal = std::io::stderr().is_terminal();
    let spinner = crate::memory::spinner(args.quiet);
    let spark = match &engine {
        Engine::Local => None,
        Engine::Spark(remote) => match engine::connect(remote, &spinner, terminal && !args.quiet) {
            Ok(spark) => Some(spark),
            Err(error) => {
                spinner.finish_and_clear();
                return Err(error);
            }
        },
    };
    let mut progress = |stage: Stage| {
        interrupts.entered(stage);
        if stage != Stage::Scanning {
            // The scan's progress bar, if it showed one, gives way to the stages again.
            spinner.set_style(
                ProgressStyle::with_template("{spinner} {msg} ({elapsed})")
                    .expect("the template is valid"),
            );
        }
        spinner.set_message(stage.describe());
    };
    let local = LocalExecutor::new(crate::memory::scan_options(memory, spill_dir, &spinner));
    let executor: &dyn Executor = match &spark {
        None => &local,
        Some(spark) => spark.as_ref(),
    };
    let interrupt = || interrupts.pending();
    let summary = execute(
        &loaded,
        &mut prepared,
        executor,
        &mut progress,
        Some(&interrupt),
    );
    spinner.finish_and_clear();
    let summary = summary?;
    if interrupts.pending() {
        errln!("warning: interrupted after the commit: the release stands and its cost is charged");
    }
    report(&loaded, &summary, args.show);
    for choice in &summary.auto_bounds {
        errln!(
            "chosen from the data, privately (ε = {:.4}): query {:?}, {} = {}",
            choice.epsilon,
            choice.query,
            choice.what,
            choice.value
        );
    }
    for warning in &summary.warnings {
        errln!("warning: {warning}");
    }
    let key = &prepared.key;
    match prepared.ledger.status(key) {
        Ok(status) => errln!(
            "budget left for dataset {:?}, purpose {:?}: {} of {}",
            key.dataset,
            key.purpose,
            budget_text(&status.remaining),
            budget_text(&status.total)
        ),
        Err(error) => {
            errln!("warning: released, but the budget's status cannot be read: {error}")
        }
    }
    Ok(ExitCode::SUCCESS)
}

fn report(loaded: &LoadedJob, summary: &RunSummary, show: usize) {
    outln!(
        "Released {} {} under charge {} in {} (as of {}).",
        summary.outputs.len(),
        if summary.outputs.len() == 1 {
            "table"
        } else {
            "tables"
        },
        summary.charge_id,
        loaded.budget.ledger.display(),
        veil_engine::as_of_text(loaded.job.governance.as_of_ms)
    );
    for published in &summary.outputs {
        outln!(
            "  {}: {} groups → {}",
            published.query,
            published.table.groups(),
            published.path.display()
        );
        if show > 0 {
            for line in preview(&published.table, show).lines() {
                outln!("    {line}");
            }
        }
    }
    outln!("  manifest → {}", summary.manifest.display());
    let counts = &summary.counts;
    errln!(
        "not private, for you only: read {} rows; {} outside retention, {} without consent, {} without a privacy unit",
        counts.rows_read,
        counts.rows_outside_retention,
        counts.rows_without_consent,
        counts.rows_without_unit
    );
    for (column, missing) in &counts.missing_values {
        if *missing > 0 {
            errln!(
                "  {missing} rows had no value in {column:?} and were left out of its aggregates"
            );
        }
    }
}

/// The first `rows` groups of a table: keys and each value with its 95% interval.
fn preview(table: &ReleasedTable, rows: usize) -> String {
    let columns = table.columns();
    let values: Vec<&String> = columns
        .iter()
        .filter(|name| {
            !name.ends_with("_std") && !name.ends_with("_ci_low") && !name.ends_with("_ci_high")
        })
        .collect();
    let mut header = Vec::new();
    let mut cells: Vec<Vec<String>> = vec![Vec::new(); table.groups().min(rows)];
    for name in &values {
        let interval = columns.contains(&format!("{name}_ci_low"));
        header.push(if interval {
            format!("{name} (95% CI)")
        } else {
            (*name).clone()
        });
        let text = table.column_as_strings(name).unwrap_or_default();
        let low = table.column_as_f64(&format!("{name}_ci_low"));
        let high = table.column_as_f64(&format!("{name}_ci_high"));
        for (row, cell) in cells.iter_mut().enumerate() {
            let value = text.get(row).cloned().unwrap_or_default();
            let shown = match (&low, &high) {
                (Some(low), Some(high)) => format!(
                    "{} [{}, {}]",
                    short(&value),
                    round(low[row]),
                    round(high[row])
                ),
                _ => value,
            };
            cell.push(shown);
        }
    }
    let mut out = Table::new();
    out.load_style(UTF8_FULL_CONDENSED).set_header(header);
    for row in cells {
        out.add_row(row);
    }
    let mut text = out.to_string();
    if table.groups() > rows {
        text.push_str(&format!("\n… and {} more groups", table.groups() - rows));
    }
    text
}

fn round(value: f64) -> String {
    if value.abs() >= 100.0 {
        format!("{value:.0}")
    } else {
        format!("{value:.2}")
    }
}

fn short(text: &str) -> String {
    text.parse::<f64>().map_or_else(
        |_| text.to_string(),
        |value| {
            if text.contains('.') {
                round(value)
            } else {
                text.to_string()
            }
        },
    )
}
