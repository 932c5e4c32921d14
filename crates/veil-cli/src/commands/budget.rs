//! `veil budget init`, `veil budget status` and `veil budget history`.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use clap::{Args, Subcommand};
use serde_json::{Value, json};
use veil_accountant::{BudgetError, BudgetKey, BudgetPeriod, PrivacyBudget};
use veil_ledger::{BudgetRecord, ChargeRecord, SqliteLedger};

use crate::exit::{Classify, usage_error};

#[derive(Debug, Subcommand)]
pub(crate) enum BudgetCommand {
    /// Create the privacy budget of a dataset and purpose (and the ledger file if needed).
    ///
    /// Give --epsilon with --delta (approximate DP; --delta 0 or none is pure DP), or
    /// --rho for a zCDP budget. With --period, the budget renews: only charges made in
    /// the current window count, windows starting at the budget's creation.
    ///
    /// Examples:
    ///   veil budget init --ledger ledger.sqlite --dataset events --purpose analytics --epsilon 4 --delta 1e-6 --period 30d
    ///   veil budget init --ledger ledger.sqlite --dataset events --purpose research --rho 0.5
    #[command(verbatim_doc_comment)]
    Init(InitArgs),

    /// Show each budget's total, spent and remaining.
    ///
    /// Spent is the accountant's composition of every reserved and committed charge in
    /// the current period (not a sum of epsilons).
    ///
    /// Example:
    ///   veil budget status --ledger ledger.sqlite --dataset events --json
    #[command(verbatim_doc_comment)]
    Status(StatusArgs),

    /// List every charge: job, state, cost, mechanisms and releases.
    ///
    /// Example:
    ///   veil budget history --ledger ledger.sqlite
    #[command(verbatim_doc_comment)]
    History(HistoryArgs),
}

#[derive(Debug, Args)]
pub(crate) struct InitArgs {
    /// The ledger file (created if missing).
    #[arg(long)]
    pub(crate) ledger: PathBuf,

    /// The dataset's name.
    #[arg(long)]
    pub(crate) dataset: String,

    /// The purpose the data is used for.
    #[arg(long)]
    pub(crate) purpose: String,

    /// Total ε (finite, >= 0).
    #[arg(long, required_unless_present = "rho", conflicts_with = "rho")]
    pub(crate) epsilon: Option<f64>,

    /// Total δ in [0, 1); default 0 (pure DP).
    #[arg(long, requires = "epsilon")]
    pub(crate) delta: Option<f64>,

    /// Total ρ of a zCDP budget, instead of --epsilon and --delta.
    #[arg(long)]
    pub(crate) rho: Option<f64>,

    /// Renew the budget every period: 30d, 12h, 2w, 90m or 3600s.
    #[arg(long)]
    pub(crate) period: Option<String>,
}

#[derive(Debug, Args)]
pub(crate) struct StatusArgs {
    /// The ledger file.
    #[arg(long)]
    pub(crate) ledger: PathBuf,

    /// Only this dataset's budgets.
    #[arg(long)]
    pub(crate) dataset: Option<String>,

    /// Print JSON instead of a table.
    #[arg(long)]
    pub(crate) json: bool,
}

#[derive(Debug, Args)]
pub(crate) struct HistoryArgs {
    /// The ledger file.
    #[arg(long)]
    pub(crate) ledger: PathBuf,

    /// Print JSON instead of a table.
    #[arg(long)]
    pub(crate) json: bool,
}

pub(crate) fn run(command: BudgetCommand) -> anyhow::Result<ExitCode> {
    match command {
        BudgetCommand::Init(args) => init(&args),
        BudgetCommand::Status(args) => status(&args),
        BudgetCommand::History(args) => history(&args),
    }
}

/// Opens an existing ledger; a missing file is the operator's mistake (exit 2).
fn open(path: &std::path::Path) -> anyhow::Result<SqliteLedger> {
    if !path.exists() {
        return Err(usage_error(format!(
            "no ledger at {}; create one with `veil budget init --ledger {} --dataset <name> --purpose <purpose> --epsilon <total> --delta <total>`",
            path.display(),
            path.display()
        )));
    }
    Ok(SqliteLedger::open(path)?)
}

fn init(args: &InitArgs) -> anyhow::Result<ExitCode> {
    let total = match (args.epsilon, args.rho) {
        (Some(epsilon), None) => PrivacyBudget::Approx {
            epsilon,
            delta: args.delta.unwrap_or(0.0),
        },
        (None, Some(rho)) => PrivacyBudget::Zcdp { rho },
        _ => return Err(usage_error("give --epsilon (with --delta) or --rho")),
    };
    let period = args
        .period
        .as_deref()
        .map(str::parse::<BudgetPeriod>)
        .transpose()
        .usage()
        .context("--period")?;
    let key = BudgetKey {
        dataset: args.dataset.clone(),
        purpose: args.purpose.clone(),
    };
    let mut ledger = SqliteLedger::create(&args.ledger)?;
    match ledger.init_budget(&key, total, period) {
        Ok(()) => {}
        Err(error @ (BudgetError::AlreadyExists { .. } | BudgetError::InvalidBudget { .. })) => {
            return Err(error).usage();
        }
        Err(error) => return Err(error.into()),
    }
    let renewal = period.map_or(String::new(), |p| format!(", renewing every {p}"));
    println!(
        "created a budget of {total} for {key}{renewal} in {}",
        args.ledger.display()
    );
    Ok(ExitCode::SUCCESS)
}

fn budget_json(total: &PrivacyBudget) -> Value {
    match *total {
        PrivacyBudget::Approx { epsilon, delta } => json!({"epsilon": epsilon, "delta": delta}),
        PrivacyBudget::Zcdp { rho } => json!({"rho": rho}),
    }
}

fn status(args: &StatusArgs) -> anyhow::Result<ExitCode> {
    let mut ledger = open(&args.ledger)?;
    let records = ledger.budgets(args.dataset.as_deref())?;
    if args.json {
        let list: Vec<Value> = records.iter().map(record_json).collect();
        println!("{}", Value::Array(list));
        return Ok(ExitCode::SUCCESS);
    }
    if records.is_empty() {
        println!("no budgets in {}", args.ledger.display());
        return Ok(ExitCode::SUCCESS);
    }
    let rows: Vec<[String; 6]> = records
        .iter()
        .map(|record| {
            let status = &record.status;
            [
                status.key.dataset.clone(),
                status.key.purpose.clone(),
                status.total.to_string(),
                format_amount(&status.spent),
                format_amount(&status.remaining),
                record.period.map_or("-".to_string(), |period| {
                    let (_, end) = record.window.unwrap_or((0, 0));
                    format!("{period} (renews {})", format_time(end))
                }),
            ]
        })
        .collect();
    print_table(
        &[
            "dataset",
            "purpose",
            "total",
            "spent",
            "remaining",
            "period",
        ],
        &rows,
    );
    Ok(ExitCode::SUCCESS)
}

fn record_json(record: &BudgetRecord) -> Value {
    let status = &record.status;
    json!({
        "dataset": status.key.dataset,
        "purpose": status.key.purpose,
        "measure": match status.total { PrivacyBudget::Approx { .. } => "approx", PrivacyBudget::Zcdp { .. } => "zcdp" },
        "total": budget_json(&status.total),
        "spent": budget_json(&status.spent),
        "remaining": budget_json(&status.remaining),
        "period": record.period.map(|p| p.to_string()),
        "window": record.window.map(|(start, end)| json!({"start": format_time(start), "end": format_time(end)})),
        "created_at": format_time(record.created_at),
    })
}

/// The headline amount of a spent or remaining budget.
fn format_amount(amount: &PrivacyBudget) -> String {
    match *amount {
        PrivacyBudget::Approx { epsilon, .. } => format!("ε = {epsilon:.6}"),
        PrivacyBudget::Zcdp { rho } => format!("ρ = {rho:.6}"),
    }
}

fn history(args: &HistoryArgs) -> anyhow::Result<ExitCode> {
    let ledger = open(&args.ledger)?;
    let charges = ledger.history()?;
    if args.json {
        let list: Vec<Value> = charges.iter().map(charge_json).collect();
        println!("{}", Value::Array(list));
        return Ok(ExitCode::SUCCESS);
    }
    if charges.is_empty() {
        println!("no charges in {}", args.ledger.display());
        return Ok(ExitCode::SUCCESS);
    }
    let rows: Vec<[String; 8]> = charges
        .iter()
        .map(|charge| {
            let mechanisms: Vec<String> = charge
                .items
                .iter()
                .map(|item| format!("{} {}×{}", item.label, item.profile, item.times))
                .collect();
            let releases: Vec<String> = charge
                .releases
                .iter()
                .map(|release| format!("{} → {}", release.name, release.location))
                .collect();
            [
                charge.id.to_string(),
                format_time(charge.created_at),
                format!("{}/{}", charge.key.dataset, charge.key.purpose),
                charge.job.clone(),
                charge.state.to_string(),
                format!("{:.6}", charge.cost),
                mechanisms.join("; "),
                releases.join("; "),
            ]
        })
        .collect();
    print_table(
        &[
            "id",
            "time",
            "budget",
            "job",
            "state",
            "cost",
            "mechanisms",
            "releases",
        ],
        &rows,
    );
    Ok(ExitCode::SUCCESS)
}

fn charge_json(charge: &ChargeRecord) -> Value {
    json!({
        "id": charge.id,
        "dataset": charge.key.dataset,
        "purpose": charge.key.purpose,
        "job": charge.job,
        "job_hash": charge.job_hash,
        "state": charge.state.name(),
        "cost": charge.cost,
        "created_at": format_time(charge.created_at),
        "updated_at": format_time(charge.updated_at),
        "mechanisms": charge.items.iter().map(|item| json!({
            "label": item.label,
            "mechanism": item.profile.to_string(),
            "times": item.times,
        })).collect::<Vec<_>>(),
        "releases": charge.releases.iter().map(|release| json!({
            "name": release.name,
            "location": release.location,
        })).collect::<Vec<_>>(),
    })
}

fn print_table<const N: usize>(header: &[&str; N], rows: &[[String; N]]) {
    let mut widths = header.map(|h| h.chars().count());
    for row in rows {
        for (width, cell) in widths.iter_mut().zip(row) {
            *width = (*width).max(cell.chars().count());
        }
    }
    let line = |cells: Vec<&str>| {
        let padded: Vec<String> = cells
            .iter()
            .zip(&widths)
            .map(|(cell, width)| format!("{cell:<width$}"))
            .collect();
        println!("{}", padded.join("  ").trim_end());
    };
    line(header.to_vec());
    for row in rows {
        line(row.iter().map(String::as_str).collect());
    }
}

/// Unix seconds as `YYYY-MM-DDTHH:MM:SSZ` (proleptic Gregorian, UTC).
fn format_time(seconds: i64) -> String {
    veil_engine::as_of_text(seconds.saturating_mul(1000))
}

#[cfg(test)]
mod tests {
    use super::format_time;

    #[test]
    fn times_format_as_utc() {
        assert_eq!(format_time(0), "1970-01-01T00:00:00Z");
        assert_eq!(format_time(951_782_400), "2000-02-29T00:00:00Z");
        assert_eq!(format_time(1_764_115_200), "2025-11-26T00:00:00Z");
        assert_eq!(format_time(-1), "1969-12-31T23:59:59Z");
    }
}
