//! Veil as a library, for programs that embed it (the Python package, `crates/veil-py`):
//! the `veil` command's job files, runs, plans, reports and ledgers, with the command's
//! checks and messages, and results as values instead of text.
//!
//! Every function here runs the code its command runs: a job loads through the same parser
//! (so its errors name the same keys), a run checks its outputs, opens and charges the same
//! ledger and publishes the same files as `veil run`, and an error carries the message the
//! command would print and the class its exit code gives ([`ErrorKind`]). Nothing here
//! prints to stdout; the ledger's notices (a budget created from the registry, a wait for
//! a lock) still go to stderr, as the command's do.
//!
//! A job can read its source or its consent log from tables in memory
//! ([`MemoryTables`]): [`JobOptions`] says which, and the loaded job then names
//! [`DATA_PATH`] or [`CONSENT_PATH`] in place of the files, which the tables stand for.

use std::fmt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde_json::Value;
use veil_accountant::BudgetLedger;
use veil_engine::memory::MemoryTables;
use veil_engine::release::ReleasedTable;
use veil_engine::{EngineError, Executor, LocalExecutor};

use crate::commands::budget::{InitArgs, ListArgs, StatusArgs};
use crate::commands::report::ReportSettings;
use crate::commands::{budget, explain, report, run as run_command};
use crate::config::{self, AsOf, EngineKind, LoadedJob};
use crate::exit::{self, Classify, Failure, usage_error};
use crate::ledger::{LockTimeout, budget_text};

/// The path a job's source stands at when its rows are given as a table in memory.
pub const DATA_PATH: &str = "<data>";
/// The path a job's consent log stands at when it is given as a table in memory.
pub const CONSENT_PATH: &str = "<consent>";

/// What kind of failure an [`Error`] is, as the `veil` command's exit code tells it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum ErrorKind {
    /// The job, its files, columns or arguments are wrong (exit code 2).
    Config,
    /// The ledger refused the charge: the budget would be exceeded (exit code 3).
    BudgetExceeded,
    /// The caller interrupted the run before its commit: nothing was charged or published.
    Interrupted,
    /// Anything else that failed while running (exit code 1).
    Failed,
}

/// A failure, with the message `veil` would print after `error: `.
#[derive(Debug, Clone)]
pub struct Error {
    kind: ErrorKind,
    message: String,
}

impl Error {
    /// What kind of failure it is.
    #[must_use]
    pub fn kind(&self) -> ErrorKind {
        self.kind
    }

    /// The message, with its causes, as the command prints it.
    #[must_use]
    pub fn message(&self) -> &str {
        &self.message
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for Error {}

impl From<anyhow::Error> for Error {
    fn from(error: anyhow::Error) -> Self {
        let interrupted = error.chain().any(|cause| {
            matches!(
                cause.downcast_ref::<EngineError>(),
                Some(EngineError::Interrupted { .. })
            )
        });
        let kind = match exit::failure_of(&error) {
            _ if interrupted => ErrorKind::Interrupted,
            Some(Failure::Usage) => ErrorKind::Config,
            Some(Failure::BudgetRefused) => ErrorKind::BudgetExceeded,
            None => ErrorKind::Failed,
        };
        Self {
            kind,
            message: exit::render(&error),
        }
    }
}

impl From<EngineError> for Error {
    /// Classified as the command classifies it: the job, its files and columns are
    /// [`ErrorKind::Config`], a refused charge [`ErrorKind::BudgetExceeded`].
    fn from(error: EngineError) -> Self {
        exit::engine(error).into()
    }
}

/// How to load a job besides its text.
#[derive(Debug, Clone, Default)]
pub struct JobOptions {
    /// Judge consent and retention as of this time (RFC 3339 or a date), as `--as-of`;
    /// default: the job's `as_of`, else now.
    pub as_of: Option<String>,
    /// The source's rows are given as a table: the job reads [`DATA_PATH`] instead of
    /// `source.path` (which it may then leave out), and its `source.format` and
    /// `source.delimiter`, which describe a file, are dropped.
    pub data_in_memory: bool,
    /// The consent log is given as a table: the job reads [`CONSENT_PATH`] instead of
    /// `consent.path` (a `[consent]` table with the default column names is added if the
    /// job has none).
    pub consent_in_memory: bool,
}

/// A loaded and validated job.
#[derive(Debug, Clone)]
pub struct Job {
    loaded: LoadedJob,
}

impl Job {
    /// Loads a job file, as `veil run FILE` does.
    ///
    /// # Errors
    /// [`ErrorKind::Config`] naming the file and key at fault.
    pub fn from_file(path: &Path, options: &JobOptions) -> Result<Self, Error> {
        let text = std::fs::read_to_string(path)
            .map_err(|error| config::ConfigError {
                file: path.to_path_buf(),
                key: String::new(),
                reason: format!("cannot read the job file: {error}"),
            })
            .usage()?;
        let name = path.file_stem().map_or_else(
            || "job".to_string(),
            |stem| stem.to_string_lossy().to_string(),
        );
        let as_of = as_of(options)?;
        let loaded = if options.data_in_memory || options.consent_in_memory {
            let table = toml::from_str(&text)
                .map_err(|error| config::ConfigError {
                    file: path.to_path_buf(),
                    key: String::new(),
                    reason: error.to_string().trim().to_string(),
                })
                .usage()?;
            config::parse_table(path, name, in_memory(path, table, options)?, as_of)
        } else {
            config::parse_named(path, name, &text, as_of)
        };
        Self::checked(path, loaded.usage()?)
    }

    /// Loads a job given as a JSON value with the job file's structure (a Python dict):
    /// `name` names the job in the ledger and in error messages.
    ///
    /// # Errors
    /// [`ErrorKind::Config`] naming the key at fault.
    pub fn from_json(name: &str, value: &Value, options: &JobOptions) -> Result<Self, Error> {
        let file = PathBuf::from(name);
        let table = match toml::Value::try_from(value) {
            Ok(toml::Value::Table(table)) => table,
            Ok(_) => return Err(usage_error(format!("{name}: a job is a table of tables")).into()),
            Err(error) => {
                return Err(usage_error(format!(
                    "{name}: cannot be a job: {error} (a job holds tables, arrays, strings, numbers and booleans; leave a key out instead of setting it to None)"
                ))
                .into());
            }
        };
        let loaded = config::parse_table(
            &file,
            name.to_string(),
            in_memory(&file, table, options)?,
            as_of(options)?,
        );
        Self::checked(&file, loaded.usage()?)
    }

    fn checked(file: &Path, loaded: LoadedJob) -> Result<Self, Error> {
        if loaded.engine.kind == EngineKind::Spark {
            return Err(usage_error(format!(
                "{}: engine.kind: this job runs on Spark; run it with the `veil` command (built with --features spark), or set kind = \"local\"",
                file.display()
            ))
            .into());
        }
        Ok(Self { loaded })
    }

    /// The job's name, as the ledger records its charges.
    #[must_use]
    pub fn name(&self) -> &str {
        &self.loaded.job.name
    }

    /// The columns of the source that the job reads: the privacy unit, the time column,
    /// group, value and segment columns. Nothing else of a table given in memory needs to
    /// be read.
    ///
    /// # Errors
    /// [`ErrorKind::Config`] if the job cannot be planned.
    pub fn source_columns(&self) -> Result<Vec<String>, Error> {
        let plan = veil_engine::plan::plan(&self.loaded.job).map_err(exit::engine)?;
        let mut columns = plan.scan.columns;
        for segment in self.loaded.segments.iter().flatten() {
            if !columns.contains(segment) {
                columns.push(segment.clone());
            }
        }
        Ok(columns)
    }

    /// The columns of the consent log that the job reads, if it has one.
    #[must_use]
    pub fn consent_columns(&self) -> Option<Vec<String>> {
        self.loaded.job.governance.consent.as_ref().map(|consent| {
            vec![
                consent.unit_column.clone(),
                consent.purpose_column.clone(),
                consent.action_column.clone(),
                consent.time_column.clone(),
            ]
        })
    }

    /// The ledger file the job charges.
    #[must_use]
    pub fn ledger(&self) -> &Path {
        &self.loaded.budget.ledger
    }
}

/// The as-of time of the options, as the job loader takes it.
fn as_of(options: &JobOptions) -> Result<AsOf, Error> {
    Ok(match &options.as_of {
        Some(text) => AsOf::Given(
            crate::clock::parse_as_of(text)
                .map_err(|reason| usage_error(format!("as_of: {reason}")))?,
        ),
        None => AsOf::Now(crate::clock::now_ms()),
    })
}

/// The job with its source or consent log pointed at the tables in memory.
fn in_memory(
    file: &Path,
    mut job: toml::Table,
    options: &JobOptions,
) -> Result<toml::Table, Error> {
    let mut point = |table: &str, path: &str| -> Result<(), Error> {
        let entry = job
            .entry(table)
            .or_insert_with(|| toml::Value::Table(toml::Table::new()));
        let toml::Value::Table(entry) = entry else {
            return Err(
                usage_error(format!("{}: {table}: expected a table", file.display())).into(),
            );
        };
        entry.insert("path".into(), toml::Value::String(path.into()));
        entry.remove("format");
        entry.remove("delimiter");
        Ok(())
    };
    if options.data_in_memory {
        point("source", DATA_PATH)?;
    }
    if options.consent_in_memory {
        point("consent", CONSENT_PATH)?;
    }
    Ok(job)
}

/// The engine of a job: its tables in memory, if any, else the files through Polars
/// (`local`, with its memory budget).
fn executor<'a>(tables: Option<&'a MemoryTables>, local: &'a LocalExecutor) -> &'a dyn Executor {
    match tables {
        Some(tables) => tables,
        None => local,
    }
}

/// How to run a job besides the job itself: `veil run`'s options.
pub struct RunOptions<'a> {
    /// Charge this ledger file instead of the job's `[budget] ledger` (`--ledger`).
    pub ledger: Option<PathBuf>,
    /// Write the release here instead of the job's `[output] path` (`--output`).
    pub output: Option<PathBuf>,
    /// How long to wait for another process's lock on the ledger (`--ledger-timeout`).
    pub ledger_timeout: Duration,
    /// Asked before each stage up to the commit; `true` stops the run, which then charges
    /// and publishes nothing ([`ErrorKind::Interrupted`]).
    pub interrupt: Option<&'a dyn Fn() -> bool>,
}

impl fmt::Debug for RunOptions<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RunOptions")
            .field("ledger", &self.ledger)
            .field("output", &self.output)
            .field("ledger_timeout", &self.ledger_timeout)
            .field("interrupt", &self.interrupt.is_some())
            .finish()
    }
}

/// One published table of a release.
#[derive(Debug, Clone)]
pub struct PublishedTable {
    /// The query.
    pub query: String,
    /// The file written.
    pub path: PathBuf,
    /// Its content.
    pub table: ReleasedTable,
}

/// What a run released.
#[derive(Debug, Clone)]
pub struct Release {
    /// The ledger's id of the committed charge.
    pub charge_id: i64,
    /// The ledger charged.
    pub ledger: PathBuf,
    /// One table per query.
    pub tables: Vec<PublishedTable>,
    /// Where `release.json` was written.
    pub manifest_path: PathBuf,
    /// `release.json`'s text, as written.
    pub manifest: String,
    /// What is left of the budget (`ε = 3 (δ = 1e-6) of ε = 4 (δ = 1e-6)`), if the ledger
    /// could tell.
    pub budget_left: Option<String>,
    /// What went wrong after the release was published, for the operator.
    pub warnings: Vec<String>,
}

/// Runs a job, as `veil run` does: check, scan (the tables in memory, or the files),
/// reserve, noise, write, commit, publish.
///
/// # Errors
/// [`ErrorKind::Config`] for the job's mistakes, [`ErrorKind::BudgetExceeded`] when the
/// ledger refuses the charge, [`ErrorKind::Interrupted`] when `options.interrupt` stopped
/// it, [`ErrorKind::Failed`] otherwise; in every case nothing was charged or published.
pub fn run(
    job: &Job,
    tables: Option<&MemoryTables>,
    options: &RunOptions<'_>,
) -> Result<Release, Error> {
    let mut loaded = job.loaded.clone();
    if let Some(ledger) = &options.ledger {
        loaded.budget.ledger.clone_from(ledger);
    }
    if let Some(output) = &options.output {
        loaded.job.output.directory.clone_from(output);
    }
    let mut prepared = run_command::prepare(&loaded, LockTimeout::new(options.ledger_timeout))?;
    // Files are read within the job's memory budget (`[engine] memory`, else the default),
    // spilling beside the output, as `veil run` does; tables in memory are already held.
    let memory = crate::memory::MemoryArg::default().resolve(loaded.engine.memory)?;
    let spill_dir = crate::memory::SpillArg::default().resolve(&loaded.job.output.directory)?;
    let local = LocalExecutor::new(crate::memory::scan_options(
        memory,
        spill_dir,
        &indicatif::ProgressBar::hidden(),
    ));
    let summary = run_command::execute(
        &loaded,
        &mut prepared,
        executor(tables, &local),
        &mut |_| {},
        options.interrupt,
    )?;
    let mut warnings = summary.warnings;
    let manifest = std::fs::read_to_string(&summary.manifest).unwrap_or_else(|error| {
        warnings.push(format!(
            "released, but {} cannot be read back: {error}",
            summary.manifest.display()
        ));
        "null".to_string()
    });
    let budget_left = match prepared.ledger.status(&prepared.key) {
        Ok(status) => Some(format!(
            "{} of {}",
            budget_text(&status.remaining),
            budget_text(&status.total)
        )),
        Err(error) => {
            warnings.push(format!(
                "released, but the budget's status cannot be read: {error}"
            ));
            None
        }
    };
    Ok(Release {
        charge_id: summary.charge_id,
        ledger: loaded.budget.ledger.clone(),
        tables: summary
            .outputs
            .into_iter()
            .map(|published| PublishedTable {
                query: published.query,
                path: published.path,
                table: published.table,
            })
            .collect(),
        manifest_path: summary.manifest,
        manifest,
        budget_left,
        warnings,
    })
}

/// The plan of a job, as `veil explain --json` prints it: columns read, purpose,
/// retention, consent, bounds, noise and cost. Reads the schema of the source (or of the
/// tables in memory), no rows.
///
/// # Errors
/// [`ErrorKind::Config`] naming the key, file or column at fault.
pub fn explain(job: &Job, tables: Option<&MemoryTables>) -> Result<Value, Error> {
    let engine = if tables.is_some_and(|tables| tables.contains(Path::new(DATA_PATH))) {
        "local (Polars on this machine), on a table in memory"
    } else {
        "local (Polars on this machine)"
    };
    Ok(explain::json_with(
        &job.loaded,
        executor(tables, &LocalExecutor::default()),
        engine,
    )?)
}

/// What a report is asked for: `veil report`'s options.
#[derive(Debug, Clone)]
pub struct ReportOptions {
    /// The ε's to sweep (each replaces the job's; δ stays).
    pub epsilons: Vec<f64>,
    /// Monte Carlo trials per ε.
    pub trials: u32,
    /// The median relative error to reach when searching the smallest ε.
    pub target_error: f64,
    /// The directory to write report.html, report.md, report.json and charts/ to.
    pub output: PathBuf,
    /// Read no data: noise scales and public parameters only.
    pub analytic_only: bool,
    /// Read this sample file instead of the job's source.
    pub sample: Option<PathBuf>,
}

/// A utility report.
#[derive(Debug, Clone)]
pub struct Report {
    /// `report.json`'s text.
    pub json: String,
    /// The self-contained HTML page.
    pub html: PathBuf,
    /// Every file written.
    pub files: Vec<PathBuf>,
    /// The summary `veil report` prints.
    pub text: String,
}

/// The utility report of a job, as `veil report` writes it: the error of every aggregate at
/// each ε, where it comes from, who bears it, better bounds. Charges nothing; not private
/// on real data (its first line says so).
///
/// # Errors
/// [`ErrorKind::Config`] for the job's or the options' mistakes, [`ErrorKind::Failed`]
/// otherwise.
pub fn report(
    job: &Job,
    tables: Option<&MemoryTables>,
    options: &ReportOptions,
) -> Result<Report, Error> {
    if options.sample.is_some()
        && tables.is_some_and(|tables| tables.contains(Path::new(DATA_PATH)))
    {
        return Err(usage_error(
            "give the data in memory or a sample file, not both: a report reads one of them",
        )
        .into());
    }
    let settings = ReportSettings {
        epsilons: options.epsilons.clone(),
        trials: options.trials,
        target_error: options.target_error,
        analytic_only: options.analytic_only,
        sample: options.sample.clone(),
        seed: None,
        chatty: false,
        memory: crate::memory::MemoryArg::default().resolve(job.loaded.engine.memory)?,
    };
    let built = report::build(&job.loaded, &settings, tables)?;
    let files = report::write_report(&built, &options.output)?;
    let json =
        std::fs::read_to_string(options.output.join("report.json")).map_err(anyhow::Error::from)?;
    Ok(Report {
        json,
        html: options.output.join("report.html"),
        files,
        text: built.to_text(),
    })
}

/// A budget to create in a ledger: `veil budget init`'s options.
#[derive(Debug, Clone)]
pub struct BudgetInit {
    /// The dataset's name.
    pub dataset: String,
    /// The purpose.
    pub purpose: String,
    /// Total ε (with `delta`), or none for a zCDP budget.
    pub epsilon: Option<f64>,
    /// Total δ; default 0 (pure DP).
    pub delta: Option<f64>,
    /// Total ρ of a zCDP budget.
    pub rho: Option<f64>,
    /// Renewal period: `30d`, `12h`, `2w`, `90m`, `3600s`.
    pub period: Option<String>,
}

/// Creates a budget (and the ledger file if needed), as `veil budget init` does; returns
/// what it did, in words.
///
/// # Errors
/// [`ErrorKind::Config`] if the budget exists or its amounts are invalid.
pub fn budget_init(ledger: &Path, budget: &BudgetInit, timeout: Duration) -> Result<String, Error> {
    if budget.epsilon.is_some() == budget.rho.is_some()
        || (budget.rho.is_some() && budget.delta.is_some())
    {
        return Err(usage_error("give epsilon (with delta) or rho").into());
    }
    Ok(budget::init_budget(&InitArgs {
        of: budget::BudgetOf {
            ledger: ledger.to_path_buf(),
            dataset: budget.dataset.clone(),
            purpose: budget.purpose.clone(),
        },
        epsilon: budget.epsilon,
        delta: budget.delta,
        rho: budget.rho,
        period: budget.period.clone(),
        timeout: LockTimeout::new(timeout),
    })?)
}

/// A change to a budget's total: `veil budget amend`'s options.
#[derive(Debug, Clone)]
pub struct BudgetAmend {
    /// The dataset's name.
    pub dataset: String,
    /// The purpose.
    pub purpose: String,
    /// The new total ε of an (ε, δ) budget, or none for a zCDP budget.
    pub epsilon: Option<f64>,
    /// The new total δ; none keeps the budget's.
    pub delta: Option<f64>,
    /// The new total ρ of a zCDP budget.
    pub rho: Option<f64>,
    /// Why (required): kept in the ledger beside the change.
    pub note: String,
}

/// Changes a budget's total and records why, as `veil budget amend` does; returns what it
/// did, in words (with a warning appended when the budget has spent more than its new
/// total).
///
/// # Errors
/// [`ErrorKind::Config`] if there is no such budget, the note is empty, or the new total
/// is refused (out of range, another measure, a larger δ while charges count).
pub fn budget_amend(
    ledger: &Path,
    change: &BudgetAmend,
    timeout: Duration,
) -> Result<String, Error> {
    if change.epsilon.is_some() == change.rho.is_some()
        || (change.rho.is_some() && change.delta.is_some())
    {
        return Err(usage_error("give epsilon (with delta) or rho").into());
    }
    let (said, warning) = budget::amend_budget(&budget::AmendArgs {
        of: budget::BudgetOf {
            ledger: ledger.to_path_buf(),
            dataset: change.dataset.clone(),
            purpose: change.purpose.clone(),
        },
        epsilon: change.epsilon,
        delta: change.delta,
        rho: change.rho,
        note: change.note.clone(),
        timeout: LockTimeout::new(timeout),
    })?;
    Ok(match warning {
        Some(warning) => format!("{said}\nwarning: {warning}"),
        None => said,
    })
}

/// Each budget of the ledger (of `dataset`, or all): total, spent, remaining, period and
/// reserved charges, as `veil budget status --json` prints them.
///
/// # Errors
/// [`ErrorKind::Config`] if there is no ledger at `ledger`; [`ErrorKind::Failed`] if it
/// cannot be read.
pub fn budget_status(
    ledger: &Path,
    dataset: Option<&str>,
    timeout: Duration,
) -> Result<Value, Error> {
    Ok(budget::status_json(&StatusArgs {
        ledger: ledger.to_path_buf(),
        dataset: dataset.map(str::to_string),
        json: true,
        timeout: LockTimeout::new(timeout),
    })?)
}

/// Every charge of the ledger: job, state, cost, mechanisms, releases and (not private)
/// diagnostics, as `veil budget history --json` prints them.
///
/// # Errors
/// As [`budget_status`].
pub fn budget_history(ledger: &Path, timeout: Duration) -> Result<Value, Error> {
    Ok(budget::history_json(&ListArgs {
        ledger: ledger.to_path_buf(),
        json: true,
        timeout: LockTimeout::new(timeout),
    })?)
}

/// The charges reserved but not committed, as `veil budget reservations --json` prints
/// them.
///
/// # Errors
/// As [`budget_status`].
pub fn budget_reservations(ledger: &Path, timeout: Duration) -> Result<Value, Error> {
    Ok(budget::reservations_json(&ListArgs {
        ledger: ledger.to_path_buf(),
        json: true,
        timeout: LockTimeout::new(timeout),
    })?)
}
