//! Veil's batch engine: differentially private aggregates from Parquet (or CSV) exports.
//!
//! A job ([`job::Job`]) is planned without reading data ([`plan::plan`]): its measures,
//! contribution bounds, budget split and noise. The plan's non-private part
//! ([`plan::ScanPlan`]) is executed with Polars ([`scan::aggregate`]): read only the
//! declared columns, drop rows without a privacy unit, keep at most `max_rows_per_group`
//! rows per unit and group and `max_groups_per_unit` groups per unit (chosen by a keyed
//! hash), and aggregate per group. Only then is the cost reserved in the ledger, exact
//! noise drawn, groups selected, and the release written ([`run`]).
//!
//! This is the only crate that knows Polars; its public API takes and returns Veil types.
//!
//! ```no_run
//! # fn main() -> Result<(), Box<dyn std::error::Error>> {
//! use veil_engine::job::Job;
//! # let job: Job = unimplemented!();
//! let plan = veil_engine::plan::plan(&job)?;
//! assert!(!plan.queries.is_empty());
//! # Ok(())
//! # }
//! ```
#![deny(missing_docs)]
#![deny(clippy::print_stdout, clippy::print_stderr)]

use std::path::PathBuf;

use rand_core::{CryptoRng, Rng};
use serde_json::json;
use veil_accountant::{BudgetKey, BudgetLedger, Charge, ReleaseRecord};

mod aggregates;
pub mod autobound;
pub mod consent_stats;
mod error;
mod frame;
pub mod job;
pub mod memory;
mod output;
pub mod plan;
pub mod purge;
pub mod release;
pub mod replan;
pub mod sample;
pub mod scan;
pub mod schema;
pub mod synthetic;
pub mod table;
pub mod truth;

pub use error::EngineError;
use job::{AggregateKind, Job, JobBudget, Partitions};
use plan::{Measure, Plan, PlannedCost};
use release::ReleasedTable;
use scan::{Aggregated, BoundingKey};

/// A step of a run, reported to the caller's progress callback.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stage {
    /// Planning and checking the job against the source's schema.
    Checking,
    /// Reading, bounding and aggregating the data.
    Scanning,
    /// Reserving the cost in the ledger.
    Reserving,
    /// Drawing noise and selecting groups.
    Noising,
    /// Writing the release to temporary files.
    Writing,
    /// Committing the charge and publishing the files.
    Committing,
}

impl Stage {
    /// The stage in a few words: `reading, bounding and aggregating`.
    #[must_use]
    pub fn describe(self) -> &'static str {
        match self {
            Self::Checking => "checking the job against the source's schema",
            Self::Scanning => "reading, bounding and aggregating",
            Self::Reserving => "reserving the cost in the ledger",
            Self::Noising => "adding noise and selecting groups",
            Self::Writing => "writing the release",
            Self::Committing => "committing the charge and publishing",
        }
    }
}

/// What a run needs besides the job.
pub struct RunContext<'a> {
    /// The ledger the job is charged to.
    pub ledger: &'a mut dyn BudgetLedger,
    /// Whose budget.
    pub budget_key: BudgetKey,
    /// When the run happens (RFC 3339), for the manifest.
    pub created_at: String,
    /// Why the output is not private (a fixed seed), if it is not.
    pub not_private: Option<String>,
    /// Called at each stage.
    pub progress: &'a mut dyn FnMut(Stage),
    /// Asked before each stage up to the commit (a caller's Ctrl-C): `true` stops the run
    /// there with [`EngineError::Interrupted`], having charged and published nothing (a
    /// reservation already made is given back). Once the commit starts, the run completes.
    pub interrupt: Option<&'a dyn Fn() -> bool>,
}

/// A published file.
#[derive(Debug, Clone)]
pub struct Published {
    /// The query.
    pub query: String,
    /// Where it was written.
    pub path: PathBuf,
    /// The released table (for display).
    pub table: ReleasedTable,
}

/// What a run did.
#[derive(Debug, Clone)]
pub struct RunSummary {
    /// The plan that was executed.
    pub plan: Plan,
    /// The ledger's id of the committed charge.
    pub charge_id: i64,
    /// One file per query.
    pub outputs: Vec<Published>,
    /// The release manifest.
    pub manifest: PathBuf,
    /// What the scan read and dropped (true counts: not private, for the operator).
    pub counts: scan::ScanCounts,
    /// What went wrong after the release was published (for the operator).
    pub warnings: Vec<String>,
    /// The bounds chosen from the data (`auto`), released with the tables.
    pub auto_bounds: Vec<autobound::AutoChoice>,
}

/// Executes the non-private part of a plan: read, filter, bound, aggregate. The local
/// executor is Polars ([`LocalExecutor`]); another engine can execute the same plan and
/// hand back only the per-group aggregates ([`Aggregated::from_external`]).
pub trait Executor {
    /// The source's columns and their kinds, from metadata only.
    ///
    /// # Errors
    /// [`EngineError`] if the source cannot be found or read.
    fn schema(&self, source: &job::Source) -> Result<schema::SourceSchema, EngineError>;

    /// Reads, bounds and aggregates.
    ///
    /// # Errors
    /// [`EngineError`] if the source cannot be read or the computation fails.
    fn aggregate(&self, plan: &plan::ScanPlan, key: BoundingKey)
    -> Result<Aggregated, EngineError>;

    /// Whether this executor is Polars on this machine (which can also choose `auto`
    /// bounds); another engine runs only the plan.
    fn is_local(&self) -> bool {
        false
    }
}

/// The local executor: Polars on this machine, within a memory budget
/// ([`scan::ScanOptions`]; by default [`scan::MemoryBudget::DEFAULT`]). A source whose
/// scan fits the budget is scanned in memory; a larger one in partitions of units, spilled
/// to disk ([`scan::aggregate_within`]).
#[derive(Debug, Clone, Default)]
pub struct LocalExecutor {
    options: scan::ScanOptions,
}

impl LocalExecutor {
    /// The local executor with `options`.
    #[must_use]
    pub fn new(options: scan::ScanOptions) -> Self {
        Self { options }
    }
}

impl Executor for LocalExecutor {
    fn is_local(&self) -> bool {
        true
    }

    fn schema(&self, source: &job::Source) -> Result<schema::SourceSchema, EngineError> {
        scan::source_schema(source)
    }

    fn aggregate(
        &self,
        plan: &plan::ScanPlan,
        key: BoundingKey,
    ) -> Result<Aggregated, EngineError> {
        scan::aggregate_within(plan, key, &self.options)
    }
}

/// Plans the job and checks it against the source's schema, reading no rows.
///
/// # Errors
/// [`EngineError`] naming the job key, file or column at fault.
pub fn check(job: &Job) -> Result<Plan, EngineError> {
    check_with(job, &LocalExecutor::default())
}

/// [`check`] with the schema read by `executor`.
///
/// # Errors
/// [`EngineError`] naming the job key, file or column at fault.
pub fn check_with(job: &Job, executor: &dyn Executor) -> Result<Plan, EngineError> {
    let plan = plan::plan(job)?;
    let schema = executor.schema(&job.source)?;
    schema::check(job, &schema)?;
    if let Some(consent) = &job.governance.consent {
        schema::check_consent(
            consent,
            &executor.schema(&consent.source())?,
            schema.get(&job.source.privacy_unit),
        )?;
    }
    Ok(plan)
}

/// Runs a job end to end: check, scan, reserve, noise, write, commit, publish.
///
/// The cost is reserved only after everything that reads data has succeeded, and
/// committed only after the release is written to temporary files; anything failing in
/// between aborts the reservation and publishes nothing.
///
/// # Errors
/// [`EngineError`] at any step; [`EngineError::Budget`] if the ledger refuses the charge.
pub fn run<R: Rng + CryptoRng + ?Sized>(
    job: &Job,
    context: RunContext<'_>,
    rng: &mut R,
) -> Result<RunSummary, EngineError> {
    run_with(job, context, &LocalExecutor::default(), rng)
}

/// [`run`] with the non-private part (schema, read, filter, bound, aggregate) executed by
/// `executor`; everything private (reservation, noise, selection, release) stays here.
///
/// # Errors
/// As [`run`]; a failure of the executor happens before the reservation, so it charges
/// nothing and publishes nothing.
pub fn run_with<R: Rng + CryptoRng + ?Sized>(
    job: &Job,
    context: RunContext<'_>,
    executor: &dyn Executor,
    rng: &mut R,
) -> Result<RunSummary, EngineError> {
    let RunContext {
        ledger,
        budget_key,
        created_at,
        not_private,
        progress,
        interrupt,
    } = context;
    let interrupted = |before: Stage| -> Result<(), EngineError> {
        match interrupt {
            Some(interrupt) if interrupt() => Err(EngineError::Interrupted { before }),
            _ => Ok(()),
        }
    };
    progress(Stage::Checking);
    let plan = check_with(job, executor)?;
    // `auto` bounds are chosen from the data now, privately, and the job planned again
    // with them (the plan already set their share of the budget aside).
    let (resolved, auto_choices) = if job.auto_choices() > 0 {
        if !executor.is_local() {
            return Err(EngineError::invalid(
                "query",
                "bounds set to \"auto\" are chosen by the local engine; run this job with --engine local, or give the bounds",
            ));
        }
        autobound::resolve(job, plan.auto_epsilon, rng)?
    } else {
        (job.clone(), Vec::new())
    };
    let job = &resolved;
    let plan = if auto_choices.is_empty() {
        plan
    } else {
        check_with(job, executor)?
    };
    // Kept to the end: if nothing is published, the folders this run created go again.
    let _output_directory = output::prepare_directory(&job.output.directory)?;

    interrupted(Stage::Scanning)?;
    progress(Stage::Scanning);
    let aggregated = executor.aggregate(&plan.scan, BoundingKey::random(rng))?;
    aggregated.counts.check_units(job.governance.min_units)?;

    interrupted(Stage::Reserving)?;
    progress(Stage::Reserving);
    let charge = Charge {
        job: job.name.clone(),
        job_hash: job.job_hash.clone(),
        items: plan.charge_items(),
    };
    let reservation = ledger.reserve(&budget_key, &charge)?;

    let staged = (|| {
        interrupted(Stage::Noising)?;
        progress(Stage::Noising);
        let tables = release::release(&plan, &aggregated, rng)?;
        progress(Stage::Writing);
        let mut staged = Vec::new();
        for table in &tables {
            match output::stage_table(table, &job.output.directory, job.output.format) {
                Ok(file) => staged.push(file),
                Err(error) => {
                    staged.into_iter().for_each(output::Staged::discard);
                    return Err(error);
                }
            }
        }
        let mut manifest = manifest(
            job,
            &plan,
            &tables,
            reservation.id,
            &budget_key,
            &created_at,
            not_private.as_deref(),
        );
        if !auto_choices.is_empty() {
            manifest["auto_bounds"] = serde_json::Value::Array(
                auto_choices
                    .iter()
                    .map(|choice| {
                        json!({
                            "query": choice.query,
                            "bound": choice.what,
                            "value": choice.value,
                            "epsilon": choice.epsilon,
                            "how": "a private quantile of what units contribute (permute-and-flip), paid from the job's budget",
                        })
                    })
                    .collect(),
            );
        }
        let manifest_path = job.output.directory.join("release.json");
        let staged_manifest = output::stage(manifest_path, |writer| {
            serde_json::to_writer_pretty(&mut *writer, &manifest).map_err(|e| EngineError::Output {
                path: job.output.directory.join("release.json"),
                source: std::io::Error::other(e),
            })
        });
        match staged_manifest {
            Ok(file) => Ok((tables, staged, file)),
            Err(error) => {
                staged.into_iter().for_each(output::Staged::discard);
                Err(error)
            }
        }
    })();
    let (tables, staged, staged_manifest) = match staged {
        Ok(staged) => staged,
        Err(error) => {
            // Nothing was published: give the budget back. If even that fails the charge
            // stays reserved (budget lost, never overspent).
            let _ = ledger.abort(&reservation);
            return Err(error);
        }
    };

    if let Err(error) = interrupted(Stage::Committing) {
        staged.into_iter().for_each(output::Staged::discard);
        staged_manifest.discard();
        let _ = ledger.abort(&reservation);
        return Err(error);
    }
    progress(Stage::Committing);
    if let Err(error) = ledger.commit(&reservation) {
        staged.into_iter().for_each(output::Staged::discard);
        staged_manifest.discard();
        return Err(error.into());
    }
    let mut outputs = Vec::new();
    for (file, table) in staged.into_iter().zip(tables) {
        let path = file.publish()?;
        outputs.push(Published {
            query: table.query.clone(),
            path,
            table,
        });
    }
    let manifest_path = staged_manifest.publish()?;
    output::sync_directory(&job.output.directory);
    for published in &outputs {
        ledger.record_release(
            &reservation,
            &ReleaseRecord {
                name: published.query.clone(),
                location: published.path.display().to_string(),
            },
        )?;
    }
    ledger.record_release(
        &reservation,
        &ReleaseRecord {
            name: "release.json".to_string(),
            location: manifest_path.display().to_string(),
        },
    )?;
    // The scan's exact counts go to the ledger beside the charge, marked not private, for
    // the operator: never into the published folder. The release is out already, so a
    // failure here is a warning, not a failed run.
    let mut warnings = Vec::new();
    if let Err(error) = ledger.record_diagnostics(&reservation, &aggregated.counts.not_private()) {
        warnings.push(format!(
            "released, but the scan's counts could not be kept in the ledger: {error}"
        ));
    }
    Ok(RunSummary {
        plan,
        charge_id: reservation.id,
        outputs,
        manifest: manifest_path,
        counts: aggregated.counts,
        warnings,
        auto_bounds: auto_choices,
    })
}

/// The release manifest: what was released, how, at what cost, under which charge. It is
/// published beside the tables, so it holds nothing computed from the data but what the
/// mechanisms released: the scan's exact counts (rows read, without consent, ...) go to the
/// operator only (`RunSummary::counts`), never here.
#[allow(clippy::too_many_arguments)]
fn manifest(
    job: &Job,
    plan: &Plan,
    tables: &[ReleasedTable],
    charge_id: i64,
    budget_key: &BudgetKey,
    created_at: &str,
    not_private: Option<&str>,
) -> serde_json::Value {
    let budget = match job.budget {
        JobBudget::Pure(epsilon) => json!({ "epsilon": epsilon.get(), "delta": 0.0 }),
        JobBudget::Approx(epsilon, delta) => {
            json!({ "epsilon": epsilon.get(), "delta": delta.get() })
        }
        JobBudget::Zcdp(rho) => json!({ "rho": rho.get() }),
    };
    let cost = match plan.cost {
        PlannedCost::Basic { epsilon, delta } => {
            json!({ "composition": "basic", "epsilon": epsilon, "delta": delta })
        }
        PlannedCost::Zcdp {
            rho,
            conversion_delta,
            epsilon,
            selection_delta,
        } => json!({
            "composition": "zcdp",
            "rho": rho,
            "epsilon": epsilon,
            "delta": conversion_delta + selection_delta,
            "conversion_delta": conversion_delta,
            "selection_delta": selection_delta,
        }),
    };
    let queries: Vec<serde_json::Value> = plan
        .queries
        .iter()
        .zip(tables)
        .map(|(query, table)| {
            let selection = query.selection.as_ref().map(|selection| {
                json!({
                    "mechanism": format!("{} thresholding", selection.noise_name()),
                    "threshold": selection.threshold(),
                    "noise_truncated_to": selection.truncation(),
                    "on": query.selection_count.clone().unwrap_or_else(|| "units (drawn for the selection alone)".to_string()),
                    "noise_std": selection.std_dev(),
                    "delta": selection.delta().get(),
                    "count_for_even_odds": selection.units_for_half(),
                })
            });
            let measures: Vec<serde_json::Value> = query
                .measures
                .iter()
                .map(|noisy| {
                    let std = noisy.noise.std_dev();
                    // A joint draw's loss is shared by the measures drawn with it.
                    let drawn_with = match &noisy.noise {
                        plan::MeasureNoise::Joint(joint) => Some(&joint.keys),
                        _ => None,
                    };
                    json!({
                        "measure": noisy.measure.key(),
                        "mechanism": noisy.noise.mechanism_name(),
                        "budget_share": noisy.share,
                        "loss": noisy.noise.loss().to_string(),
                        "drawn_with": drawn_with,
                        "noise_std_in_steps": std.is_finite().then_some(std),
                        "step": measure_step(&noisy.measure),
                    })
                })
                .collect();
            let aggregates: Vec<serde_json::Value> = query
                .query
                .aggregates
                .iter()
                .zip(&query.derivations)
                .map(|(aggregate, derivation)| {
                    let column = aggregate.kind.column().map(|column| {
                        json!({ "name": column.name, "bounds": [column.bounds.lower(), column.bounds.upper()] })
                    });
                    json!({
                        "name": aggregate.name,
                        "kind": kind_name(&aggregate.kind),
                        "column": column,
                        "outputs": plan::output_names_of(aggregate),
                        "from": query.derivation_measures(derivation),
                        "formula": query.formula_of(derivation),
                    })
                })
                .collect();
            json!({
                "name": query.query.name,
                "file": format!("{}.{}", query.query.name, job.output.format.extension()),
                "groups_released": table.groups(),
                "group_by": query.query.group_by,
                "max_groups_per_unit": query.query.bounds.max_groups_per_unit,
                "max_rows_per_group": query.query.bounds.max_rows_per_group,
                "partitions": match &query.query.partitions {
                    Partitions::Private => json!("private"),
                    Partitions::Public { origin, keys } => json!({ "public": origin, "keys": keys.len() }),
                },
                "selection": selection,
                "aggregates": aggregates,
                "measures": measures,
            })
        })
        .collect();
    json!({
        "veil_version": env!("CARGO_PKG_VERSION"),
        "job": job.name,
        "job_hash": job.job_hash,
        "created_at": created_at,
        "private": not_private.is_none(),
        "not_private_because": not_private,
        "ledger": { "charge_id": charge_id, "dataset": budget_key.dataset, "purpose": budget_key.purpose },
        "budget": budget,
        "noise": plan.family.to_string(),
        "cost": cost,
        "purpose": {
            "name": job.governance.purpose.name,
            "description": job.governance.purpose.description,
        },
        "columns_read": plan.scan.columns,
        "as_of": as_of_text(job.governance.as_of_ms),
        "retention_window": plan.scan.time_window.as_ref().map(|window| json!({
            "column": window.column,
            "from": as_of_text(window.from_ms),
            "to": as_of_text(window.to_ms),
        })),
        "consent": plan.scan.consent.as_ref().map(|consent| json!({
            "table": consent.table.path,
            "rule": format!("units whose latest event for purpose {:?} at or before the as-of time is a grant", consent.purpose),
            "as_of": as_of_text(consent.as_of_ms),
        })),
        "bounding": "rows and groups kept per unit are chosen by a keyed hash with a fresh secret key per run",
        "queries": queries,
        "post_processing": [
            "counts and unit counts are clamped at 0, and so are their interval ends",
            "sums of values bounded below by 0 (or above by 0) are clamped to that sign, interval ends too",
            "means, variances and quantiles are clamped to the values their bounds allow",
            "intervals are 95%: exact for counts and sums, delta-method approximations for means and variances",
            "a count that selected its group is the noisy count itself, biased upwards near the threshold (only groups whose noise pushed them over are released); its interval holds the true count with 95% probability given that the group was released",
            "a quantile is a bin edge chosen by permute-and-flip (or the exponential mechanism) among the histogram's bin edges; its interval's ends are two more such choices, aimed that many rows below and above the level that each misses with probability at most 2.5%, widened by one bin, and used only where a released count of the group's values (not one that selected the group, nor one drawn with it) shows that many rows on that side (otherwise the end is the column's bound and its share of the budget goes to the point): 95% where values have no point masses or wide gaps at the bin's scale, approximate otherwise",
            "a group's quantiles rise with their levels: where independent draws crossed, the points are sorted and handed out in level order, and each interval is widened to the lowest low of the levels at or above it and the highest high of those at or below it (it holds the interval it replaces, so its 95% stands)",
        ],
    })
}

/// Milliseconds since the Unix epoch as an RFC 3339 UTC timestamp (`2026-11-01T00:00:00Z`).
#[must_use]
pub fn as_of_text(milliseconds: i64) -> String {
    let days = milliseconds.div_euclid(86_400_000);
    let rest = milliseconds.rem_euclid(86_400_000);
    // Civil date from days since 1970-01-01 (Howard Hinnant's algorithm).
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let day_of_era = z.rem_euclid(146_097);
    let year_of_era =
        (day_of_era - day_of_era / 1460 + day_of_era / 36_524 - day_of_era / 146_096) / 365;
    let day_of_year = day_of_era - (365 * year_of_era + year_of_era / 4 - year_of_era / 100);
    let month_index = (5 * day_of_year + 2) / 153;
    let day = day_of_year - (153 * month_index + 2) / 5 + 1;
    let month = if month_index < 10 {
        month_index + 3
    } else {
        month_index - 9
    };
    let year = year_of_era + era * 400 + i64::from(month <= 2);
    let (hours, minutes, seconds, millis) = (
        rest / 3_600_000,
        rest / 60_000 % 60,
        rest / 1000 % 60,
        rest % 1000,
    );
    if millis == 0 {
        format!("{year:04}-{month:02}-{day:02}T{hours:02}:{minutes:02}:{seconds:02}Z")
    } else {
        format!("{year:04}-{month:02}-{day:02}T{hours:02}:{minutes:02}:{seconds:02}.{millis:03}Z")
    }
}

fn measure_step(measure: &Measure) -> Option<f64> {
    match measure {
        Measure::Sum { grid, .. } => Some(grid.granularity().to_f64()),
        Measure::CenteredSum { grid, .. } | Measure::CenteredSquares { grid, .. } => {
            Some(grid.granularity().to_f64() / 2.0)
        }
        _ => None,
    }
}

fn kind_name(kind: &AggregateKind) -> &'static str {
    match kind {
        AggregateKind::Count => "count",
        AggregateKind::UnitCount => "unit_count",
        AggregateKind::Sum(_) => "sum",
        AggregateKind::Mean(_) => "mean",
        AggregateKind::Variance(_) => "variance",
        AggregateKind::Quantiles { .. } => "quantiles",
    }
}
