//! `veil explain`: what a job will read, how it bounds and noises, and what it costs,
//! without reading a row.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::Args;
use comfy_table::{ContentArrangement, Table, presets::UTF8_FULL_CONDENSED};
use serde_json::json;
use veil_engine::Executor;
use veil_engine::job::{Job, JobBudget, Partitions};
use veil_engine::plan::{OutputNoise, Plan, PlannedCost, QueryPlan};

use veil_report::format::short;

use crate::config::{self, LoadedJob};
use crate::engine::{Engine, EngineArgs};
use crate::exit::{self, Classify};

/// Show what a job will do, without reading any row
///
/// Prints the columns read (nothing else is), the contribution bounds, the noise and 95%
/// error of every released value, how groups are selected, and what the job costs.
///
/// For a job on the Spark engine it reads the source's schema through Spark and also
/// prints the Spark SQL that a run executes (`--sql` prints it for a local job too).
///
/// Examples:
///   veil explain configs/quickstart.toml
///   veil explain configs/quickstart.toml --sql
///   veil explain configs/quickstart.toml --engine spark --remote sc://localhost:15002
#[derive(Debug, Args)]
#[command(verbatim_doc_comment)]
pub(crate) struct ExplainArgs {
    /// The job file.
    job: PathBuf,

    /// Print JSON instead of text.
    #[arg(long)]
    json: bool,

    #[command(flatten)]
    as_of: super::JobAsOf,

    /// Also print the Spark SQL that runs the job's read, filters, bounding and sums
    /// (always printed for a job on the Spark engine).
    #[arg(long)]
    sql: bool,

    #[command(flatten)]
    engine: EngineArgs,
}

pub(crate) fn run(args: &ExplainArgs) -> anyhow::Result<ExitCode> {
    let loaded = config::load(&args.job, args.as_of.get()).usage()?;
    let engine = args.engine.resolve(&loaded.engine)?;
    let (plan, sql) = match &engine {
        Engine::Local => {
            let plan = veil_engine::check(&loaded.job).map_err(exit::engine)?;
            let sql = if args.sql {
                let schema = veil_engine::LocalExecutor::default()
                    .schema(&loaded.job.source)
                    .map_err(exit::engine)?;
                Some(veil_spark::compile(&plan.scan, &schema).map_err(exit::engine)?)
            } else {
                None
            };
            (plan, sql)
        }
        Engine::Spark(remote) => {
            let spark = crate::engine::connect(remote, &indicatif::ProgressBar::hidden(), false)?;
            let plan =
                veil_engine::check_with(&loaded.job, spark.as_ref()).map_err(exit::engine)?;
            let schema = spark.schema(&loaded.job.source).map_err(exit::engine)?;
            let sql = veil_spark::compile(&plan.scan, &schema).map_err(exit::engine)?;
            (plan, Some(sql))
        }
    };
    let engine_text = match &engine {
        Engine::Local => "local (Polars on this machine)".to_string(),
        Engine::Spark(remote) => format!("spark at {remote} (only per-group aggregates come back)"),
    };
    if args.json {
        let mut json = plan_json(&loaded, &plan);
        json["engine"] = json!(engine_text);
        json["spark_sql"] = json!(sql.as_ref().map(ToString::to_string));
        outln!("{}", serde_json::to_string_pretty(&json)?);
    } else {
        out!("{}", describe(&args.job, &loaded, &plan));
        outln!("\nEngine: {engine_text}");
        if let Some(sql) = &sql {
            outln!(
                "\nSpark SQL (the run's secret bounding key is bound to :{} and :{}):\n\n{sql}",
                veil_spark::ROW_KEY,
                veil_spark::PAIR_KEY
            );
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// The plan of a job as `veil explain --json` prints it, with the source's schema read by
/// `executor`, which `engine` describes.
pub(crate) fn json_with(
    loaded: &LoadedJob,
    executor: &dyn Executor,
    engine: &str,
) -> anyhow::Result<serde_json::Value> {
    let plan = veil_engine::check_with(&loaded.job, executor).map_err(exit::engine)?;
    let mut json = plan_json(loaded, &plan);
    json["engine"] = json!(engine);
    json["spark_sql"] = serde_json::Value::Null;
    Ok(json)
}

/// The job's budget in words.
pub(crate) fn budget_text(budget: JobBudget) -> String {
    match budget {
        JobBudget::Pure(epsilon) => format!("ε = {epsilon}"),
        JobBudget::Approx(epsilon, delta) => format!("ε = {epsilon}, δ = {:e}", delta.get()),
        JobBudget::Zcdp(rho) => format!("ρ = {rho} (zCDP)"),
    }
}

fn cost_text(cost: PlannedCost) -> String {
    match cost {
        PlannedCost::Basic {
            epsilon,
            delta: 0.0,
        } => format!("ε = {} (sum of the parts)", round(epsilon)),
        PlannedCost::Basic { epsilon, delta } => {
            format!("ε = {}, δ = {delta:e} (sums of the parts)", round(epsilon))
        }
        PlannedCost::Zcdp {
            rho,
            conversion_delta,
            epsilon,
            selection_delta,
        } if conversion_delta > 0.0 => format!(
            "ρ = {} (zCDP) → ε = {} at δ = {conversion_delta:e}, plus δ = {selection_delta:e} for partition selection",
            round(rho),
            round(epsilon)
        ),
        PlannedCost::Zcdp { rho, .. } => format!("ρ = {} (zCDP)", round(rho)),
    }
}

fn round(value: f64) -> String {
    format!("{value:.6}")
        .trim_end_matches('0')
        .trim_end_matches('.')
        .to_string()
}

/// The noise of one released value, in its own units, in words: `(std, 95% error)`.
fn noise_text(noise: &OutputNoise) -> (String, String) {
    match (noise.std, noise.std_times_n, noise.rank_error) {
        (Some(std), _, _) => (
            short(std),
            format!("± {}", short(noise.error_95().unwrap_or(f64::NAN))),
        ),
        (None, Some(std), _) => (
            format!("≈ {} / n", short(std)),
            format!(
                "≈ ± {} / n (n values in the group)",
                short(noise.error_95_times_n().unwrap_or(f64::NAN))
            ),
        ),
        (None, None, Some(rank)) => (
            "rank error".to_string(),
            format!("rank within ± {} rows (95%), plus one bin", short(rank)),
        ),
        (None, None, None) => Default::default(),
    }
}

fn selection_text(query: &QueryPlan) -> String {
    match (&query.query.partitions, &query.selection) {
        (Partitions::Public { origin, keys }, _) => {
            format!("public: exactly the {} keys in {origin}", keys.len())
        }
        (Partitions::Private, Some(selection)) => {
            let noise = selection.noise_description();
            match &query.selection_count {
                Some(count) => format!(
                    "private: a group is released if its released noisy {count} count reaches {} ({noise}; the selection costs only δ = {:e})",
                    selection.threshold(),
                    selection.delta().get(),
                ),
                None => format!(
                    "private: a group is released if its noisy count of units reaches {} ({noise}, δ = {:e}); a group of {} units has even odds",
                    selection.threshold(),
                    selection.delta().get(),
                    selection.units_for_half()
                ),
            }
        }
        (Partitions::Private, None) => "one group for all rows".to_string(),
    }
}

/// The plan in words, for people.
pub(crate) fn describe(path: &std::path::Path, loaded: &LoadedJob, plan: &Plan) -> String {
    let job: &Job = &loaded.job;
    let mut text = String::new();
    let mut line = |value: String| {
        text.push_str(&value);
        text.push('\n');
    };
    line(format!(
        "Job {} (sha256 {}…)",
        path.display(),
        &job.job_hash[..12]
    ));
    let format = match job.source.format {
        veil_engine::job::SourceFormat::Parquet => "Parquet".to_string(),
        veil_engine::job::SourceFormat::Csv { delimiter: b',' } => "CSV".to_string(),
        veil_engine::job::SourceFormat::Csv { delimiter: b'\t' } => {
            "CSV, tab-separated".to_string()
        }
        veil_engine::job::SourceFormat::Csv { delimiter } => {
            format!("CSV, separated by {:?}", char::from(delimiter))
        }
    };
    line(format!(
        "  source        {} ({format}), privacy unit {:?}",
        job.source.path.display(),
        job.source.privacy_unit
    ));
    line(format!(
        "  columns read  {} (nothing else is read)",
        plan.scan.columns.join(", ")
    ));
    line(format!(
        "  budget        {} from ledger {}, dataset {:?}, purpose {:?}",
        budget_text(job.budget),
        loaded.budget.ledger.display(),
        loaded.budget.dataset,
        loaded.budget.purpose
    ));
    for governance_line in governance_lines(loaded, plan) {
        line(governance_line);
    }
    line(format!("  budget left   {}", budget_left(loaded, plan)));
    line(format!(
        "  noise         {} (exact, discrete); planned cost {}",
        plan.family,
        cost_text(plan.cost)
    ));
    line(format!(
        "  output        {}/<query>.{} and release.json",
        job.output.directory.display(),
        job.output.format.extension()
    ));
    for query in &plan.queries {
        let group_by = if query.query.group_by.is_empty() {
            "(all rows)".to_string()
        } else {
            query.query.group_by.join(", ")
        };
        line(String::new());
        line(format!("Query {:?}: group by {group_by}", query.query.name));
        if query.query.auto.is_empty() {
            line(format!(
                "  bounds        at most {} groups per unit, {} rows per unit in each group",
                query.query.bounds.max_groups_per_unit, query.query.bounds.max_rows_per_group
            ));
        } else {
            let what: Vec<String> = query
                .query
                .auto
                .iter()
                .map(|auto| match auto {
                    veil_engine::job::AutoBound::GroupsPerUnit => "max_groups_per_unit".to_string(),
                    veil_engine::job::AutoBound::RowsPerGroup => "max_rows_per_group".to_string(),
                    veil_engine::job::AutoBound::Values(column) => {
                        format!("the bounds of {column}")
                    }
                })
                .collect();
            line(format!(
                "  bounds        auto: {} chosen from the data at run time, privately (ε = {} of the job's, set aside); the noise below is for placeholder bounds",
                what.join(", "),
                short(plan.auto_epsilon)
            ));
        }
        line(format!("  groups        {}", selection_text(query)));
        // Each joint draw once, at its first measure.
        for joint in query
            .measures
            .iter()
            .filter_map(|noisy| match &noisy.noise {
                veil_engine::plan::MeasureNoise::Joint(joint) if joint.index == 0 => Some(joint),
                _ => None,
            })
        {
            // The member that holds the plateau, and how far it reaches.
            let plateau = query.measures.iter().find_map(|noisy| match &noisy.noise {
                veil_engine::plan::MeasureNoise::Joint(member) if member.keys == joint.keys => {
                    let reach = member.plateau_reach()?;
                    (reach > 0.0).then(|| (noisy.measure.key(), reach))
                }
                _ => None,
            });
            let (shape, outcome) = match (joint.mechanism.step(), plateau) {
                (Some(step), _) => (
                    format!(", staircase-shaped with step {}", step.get()),
                    "a lower predicted error than separate draws".to_string(),
                ),
                (None, Some((key, reach))) => (
                    format!(", flat out to {} of a unit's move on {key}", short(reach)),
                    format!(
                        "more noise on {key} and less on the rest than the plain draw, as the aggregates' weights ask"
                    ),
                ),
                (None, None) => (
                    String::new(),
                    "a lower predicted error than separate draws".to_string(),
                ),
            };
            line(format!(
                "  joint draw    {} drawn together in each group (ℓ∞ K-norm noise{shape}, ε = {} per group, charged once): {outcome}",
                joint.keys.join(" + "),
                short(joint.mechanism.epsilon().get()),
            ));
        }
        let mut table = Table::new();
        table
            .load_style(UTF8_FULL_CONDENSED)
            .set_content_arrangement(ContentArrangement::Dynamic)
            // Two spaces of indent before each row.
            .set_width(super::table_width().saturating_sub(2))
            .set_header(["value", "clamped to", "noise std", "95% error", "from"]);
        for (index, aggregate) in query.query.aggregates.iter().enumerate() {
            let bounds = aggregate.kind.column().map_or_else(String::new, |column| {
                format!(
                    "{} in [{}, {}]",
                    column.name,
                    column.bounds.lower(),
                    column.bounds.upper()
                )
            });
            for noise in query.output_noise(index) {
                let (std, error) = noise_text(&noise);
                table.add_row([noise.name, bounds.clone(), std, error, noise.formula]);
            }
        }
        for row in table.to_string().lines() {
            line(format!("  {row}"));
        }
    }
    text
}

/// The budget left for the job in its ledger, and whether this job's charge fits in it
/// (the ledger's own check, written nowhere): a plan that `veil run` would refuse says so
/// here, before anything is read.
pub(crate) fn budget_left(loaded: &LoadedJob, plan: &Plan) -> String {
    use veil_accountant::{BudgetError, BudgetKey, Charge, PrivacyBudget};
    let key = BudgetKey {
        dataset: loaded.budget.dataset.clone(),
        purpose: loaded.budget.purpose.clone(),
    };
    let amount = |budget: &PrivacyBudget| match budget {
        PrivacyBudget::Approx { epsilon, delta } if *delta == 0.0 => format!("ε = {epsilon:.4}"),
        PrivacyBudget::Approx { epsilon, delta } => format!("ε = {epsilon:.4} (δ = {delta:e})"),
        PrivacyBudget::Zcdp { rho } => format!("ρ = {rho:.4}"),
    };
    let charge = Charge {
        job: loaded.job.name.clone(),
        job_hash: loaded.job.job_hash.clone(),
        items: plan.charge_items(),
    };
    // What a refused charge would say, as a warning after the amounts.
    let refusal = |error: BudgetError| match error {
        BudgetError::Exhausted(refusal) => {
            format!("; THIS JOB DOES NOT FIT: `veil run` would refuse it (exit 3): {refusal}")
        }
        BudgetError::Incompatible { reason, .. } => {
            format!("; THIS JOB CANNOT BE CHARGED TO IT: {reason}")
        }
        other => format!("; cannot check this job against it: {other}"),
    };
    let registry = super::run::registry_budget(loaded).ok().flatten();
    let first_run = |registry: Option<PrivacyBudget>| match registry {
        Some(total) => {
            let fit = veil_accountant::budget::check_charge(&key, &total, &[], &charge)
                .err()
                .map(refusal)
                .unwrap_or_default();
            format!(
                "the first run creates it from the purposes registry ({}){fit}",
                amount(&total)
            )
        }
        None => "create it with `veil budget init` before running".to_string(),
    };
    let registry_total = registry.map(|(total, _)| total);
    if !loaded.budget.ledger.exists() {
        return format!(
            "no ledger at {} yet; {}",
            loaded.budget.ledger.display(),
            first_run(registry_total)
        );
    }
    let ledger = match veil_ledger::SqliteLedger::open(&loaded.budget.ledger) {
        Ok(ledger) => ledger,
        Err(error) => return format!("cannot read the ledger: {error}"),
    };
    match veil_accountant::BudgetLedger::status(&ledger, &key) {
        Ok(status) => {
            let fit = match ledger.check(&key, &charge) {
                Ok(after) => format!(
                    "; this job leaves {}",
                    amount(&status.total.remaining_after(&after))
                ),
                Err(error) => refusal(error),
            };
            format!(
                "{} of {} in {} (this period){fit}",
                amount(&status.remaining),
                amount(&status.total),
                loaded.budget.ledger.display()
            )
        }
        Err(BudgetError::NoBudget { .. }) => {
            let others = super::run::other_datasets(&loaded.budget.ledger, &key);
            let next = if others.is_empty() {
                first_run(registry_total)
            } else {
                format!(
                    "it holds this purpose's budget for dataset {} only: `veil run` would refuse a new dataset name until `veil budget init` creates its budget (check [budget] dataset)",
                    others.join(", ")
                )
            };
            format!(
                "no budget for {key} in {}; {next}",
                loaded.budget.ledger.display()
            )
        }
        Err(error) => format!("cannot read the ledger: {error}"),
    }
}

/// Purpose, retention and consent, in words.
pub(crate) fn governance_lines(loaded: &LoadedJob, plan: &Plan) -> Vec<String> {
    let governance = &loaded.job.governance;
    let mut lines = Vec::new();
    let registry = loaded.registry.as_ref().map_or_else(
        || "no purposes registry".to_string(),
        |registry| format!("registry {}", registry.file.display()),
    );
    if governance.purpose.description.is_empty() {
        lines.push(format!(
            "  purpose       {:?} ({registry})",
            governance.purpose.name
        ));
    } else {
        lines.push(format!(
            "  purpose       {:?}: {} ({registry})",
            governance.purpose.name, governance.purpose.description
        ));
    }
    match &plan.scan.time_window {
        Some(window) => lines.push(format!(
            "  retention     only rows with {} from {} to {} ({}); older and later rows are never read",
            window.column,
            veil_engine::as_of_text(window.from_ms),
            veil_engine::as_of_text(window.to_ms),
            veil_engine::plan::describe_duration(governance.purpose.retention_ms.unwrap_or_default())
        )),
        None => lines.push("  retention     none declared: rows of any age are read".to_string()),
    }
    match &plan.scan.consent {
        Some(consent) => lines.push(format!(
            "  consent       only units whose latest consent event for {:?} at or before {} is a grant ({})",
            consent.purpose,
            veil_engine::as_of_text(consent.as_of_ms),
            consent.table.path.display()
        )),
        None => lines.push("  consent       no consent table: every unit in the source contributes".to_string()),
    }
    lines
}

fn plan_json(loaded: &LoadedJob, plan: &Plan) -> serde_json::Value {
    let job = &loaded.job;
    let queries: Vec<serde_json::Value> = plan
        .queries
        .iter()
        .map(|query| {
            let aggregates: Vec<serde_json::Value> = (0..query.query.aggregates.len())
                .flat_map(|index| query.output_noise(index))
                .map(|noise| {
                    json!({
                        "output": noise.name,
                        "from": noise.measures,
                        "formula": noise.formula,
                        "noise_std": noise.std,
                        "error_95": noise.error_95(),
                        "noise_std_times_n": noise.std_times_n,
                        "rank_error_95": noise.rank_error,
                    })
                })
                .collect();
            let measures: Vec<serde_json::Value> = query
                .measures
                .iter()
                .map(|noisy| json!({
                    "measure": noisy.measure.key(),
                    "budget_share": noisy.share,
                    "loss": noisy.noise.loss().to_string(),
                    "drawn_with": match &noisy.noise {
                        veil_engine::plan::MeasureNoise::Joint(joint) => Some(&joint.keys),
                        _ => None,
                    },
                    "noise_std": veil_engine::plan::real_std(query, &noisy.measure.key()),
                    "noise_std_in_steps": noisy.noise.std_dev().is_finite().then(|| noisy.noise.std_dev()),
                }))
                .collect();
            json!({
                "name": query.query.name,
                "group_by": query.query.group_by,
                "max_groups_per_unit": query.query.bounds.max_groups_per_unit,
                "max_rows_per_group": query.query.bounds.max_rows_per_group,
                "groups": selection_text(query),
                "selection_threshold": query.selection.as_ref().map(veil_core::mechanism::ThresholdMechanism::threshold),
                "aggregates": aggregates,
                "measures": measures,
            })
        })
        .collect();
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
            "composition": "zcdp", "rho": rho, "epsilon": epsilon, "delta": conversion_delta + selection_delta,
        }),
    };
    json!({
        "job": job.name,
        "job_hash": job.job_hash,
        "source": job.source.path,
        "privacy_unit": job.source.privacy_unit,
        "columns_read": plan.scan.columns,
        "budget": budget_text(job.budget),
        "ledger": loaded.budget.ledger,
        "dataset": loaded.budget.dataset,
        "purpose": loaded.budget.purpose,
        "purpose_description": job.governance.purpose.description,
        "budget_left": budget_left(loaded, plan),
        "as_of": veil_engine::as_of_text(job.governance.as_of_ms),
        "retention_window": plan.scan.time_window.as_ref().map(|window| json!({
            "column": window.column,
            "from": veil_engine::as_of_text(window.from_ms),
            "to": veil_engine::as_of_text(window.to_ms),
        })),
        "consent_table": plan.scan.consent.as_ref().map(|consent| consent.table.path.clone()),
        "noise": plan.family.to_string(),
        "cost": cost,
        "queries": queries,
    })
}
