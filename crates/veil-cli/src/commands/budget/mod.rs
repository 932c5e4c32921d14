//! `veil budget init`, `amend`, `status`, `history`, `reservations` and `cancel`.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use clap::{Args, Subcommand};
use serde_json::{Value, json};
use veil_accountant::{BudgetError, BudgetKey, BudgetPeriod, PrivacyBudget};
use veil_core::Compact;
use veil_ledger::{ChargeRecord, Liveness, Owner, SqliteLedger, TotalChange};

use crate::exit::{Classify, usage_error};
use crate::ledger::{LockTimeout, budget_text, duration_text};

mod history;
mod reservations;
mod status;

use history::history;
pub(crate) use history::history_json;
pub(crate) use reservations::reservations_json;
use reservations::{cancel, reservations};
use status::status;
pub(crate) use status::status_json;

#[derive(Debug, Subcommand)]
pub(crate) enum BudgetCommand {
    /// Create the privacy budget of a dataset and purpose (and the ledger file if needed).
    ///
    /// Give --epsilon with --delta (approximate DP; --delta 0 or none is pure DP), or
    /// --rho for a zCDP budget. With --period, the budget renews: only charges made in
    /// the current window count, windows starting at the budget's creation.
    ///
    /// Examples:
    ///   veil budget init --ledger ledger.sqlite --dataset events --purpose analytics \
    ///       --epsilon 4 --delta 1e-6 --period 30d
    ///   veil budget init --ledger ledger.sqlite --dataset events --purpose research --rho 0.5
    #[command(verbatim_doc_comment)]
    Init(InitArgs),

    /// Show each budget's total, spent and remaining, and any charge still reserved.
    ///
    /// Spent is the accountant's composition of every reserved and committed charge in
    /// the current period (not a sum of epsilons). A reserved charge belongs to a run in
    /// progress, or to one killed between its reservation and its commit: it counts as
    /// spent until its run commits or gives it back, or `veil budget cancel` does.
    ///
    /// Example:
    ///   veil budget status --ledger ledger.sqlite --dataset events --json
    #[command(verbatim_doc_comment)]
    Status(StatusArgs),

    /// List every charge: job, state, cost, mechanisms, releases and diagnostics.
    ///
    /// Reserved charges show their age and whether their run still runs; cancelled ones
    /// show who cancelled them and why. The diagnostics (rows read and dropped, missing
    /// values) are exact counts of the data: not private, for the operator only.
    ///
    /// Example:
    ///   veil budget history --ledger ledger.sqlite
    #[command(verbatim_doc_comment)]
    History(ListArgs),

    /// List the charges reserved but not committed, with their age and whether their run
    /// still runs.
    ///
    /// A run reserves its cost before it draws noise and commits before it publishes. A
    /// run killed in between (kill -9, a crash, a lost machine) leaves its charge
    /// reserved: it counts as spent, and nothing was published under it. If its run is
    /// gone, `veil budget cancel` gives the budget back.
    ///
    /// Example:
    ///   veil budget reservations --ledger ledger.sqlite
    #[command(verbatim_doc_comment)]
    Reservations(ListArgs),

    /// Change the total of an existing budget; the change is kept in the ledger with your
    /// note, and `veil budget history` lists it.
    ///
    /// The charges already made stay spent, against the new total. A budget keeps its
    /// measure: an (ε, δ) budget takes a new --epsilon (and --delta, which keeps the
    /// budget's δ when left out), a zCDP budget a new --rho. While charges count in the
    /// current window δ may only fall (spent is composed at the budget's δ: a larger one
    /// would hand part of them back), and only to a δ they still compose at. A total below
    /// what is spent leaves nothing to spend (until the period renews, if it does). The
    /// purposes registry's total is copied into the ledger only when a budget is created:
    /// after changing it there, apply it here.
    ///
    /// Examples:
    ///   veil budget amend --ledger ledger.sqlite --dataset events --purpose analytics \
    ///       --epsilon 10 --note "privacy board, 2026-12-01: 10 per quarter"
    ///   veil budget amend --ledger ledger.sqlite --dataset events --purpose research \
    ///       --rho 0.25 --note "halved after the audit"
    #[command(verbatim_doc_comment)]
    Amend(AmendArgs),

    /// Give back the budget of a reserved charge whose run is gone; the cancellation is
    /// recorded in the ledger.
    ///
    /// Only a reserved charge can be cancelled: it was never committed, and a release is
    /// published only after its charge commits, so nothing was published under it, and
    /// once cancelled it can never be committed. A committed charge is refused (its
    /// release may be out). So is a charge whose run still runs on this host (each
    /// reservation records its host, process id and start time): wait for it, or stop
    /// it first. A charge reserved on another host (or before the ledger recorded who
    /// reserves, schema version 1) cannot be checked from here: cancel it with --force once
    /// you know that its run is gone.
    ///
    /// Examples:
    ///   veil budget cancel --ledger ledger.sqlite --charge 7 --note "run killed by the OOM killer"
    ///   veil budget cancel --ledger ledger.sqlite --charge 9 --force --note "batch host retired"
    #[command(verbatim_doc_comment)]
    Cancel(CancelArgs),
}

/// Which budget: its ledger file, dataset and purpose.
#[derive(Debug, Args)]
pub(crate) struct BudgetOf {
    /// The ledger file (`init` creates it if missing).
    #[arg(long)]
    pub(crate) ledger: PathBuf,

    /// The dataset's name.
    #[arg(long)]
    pub(crate) dataset: String,

    /// The purpose the data is used for.
    #[arg(long)]
    pub(crate) purpose: String,
}

impl BudgetOf {
    fn key(&self) -> BudgetKey {
        BudgetKey {
            dataset: self.dataset.clone(),
            purpose: self.purpose.clone(),
        }
    }
}

#[derive(Debug, Args)]
pub(crate) struct InitArgs {
    #[command(flatten)]
    pub(crate) of: BudgetOf,

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

    #[command(flatten)]
    pub(crate) timeout: LockTimeout,
}

#[derive(Debug, Args)]
pub(crate) struct AmendArgs {
    #[command(flatten)]
    pub(crate) of: BudgetOf,

    /// The new total ε (finite, >= 0), for an (ε, δ) budget.
    #[arg(long, required_unless_present = "rho", conflicts_with = "rho")]
    pub(crate) epsilon: Option<f64>,

    /// The new total δ in [0, 1); left out, the budget's δ stays.
    #[arg(long, requires = "epsilon")]
    pub(crate) delta: Option<f64>,

    /// The new total ρ, for a zCDP budget.
    #[arg(long)]
    pub(crate) rho: Option<f64>,

    /// Why the total changes (required): kept in the ledger beside the change.
    #[arg(long)]
    pub(crate) note: String,

    #[command(flatten)]
    pub(crate) timeout: LockTimeout,
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

    #[command(flatten)]
    pub(crate) timeout: LockTimeout,
}

/// The arguments of a listing of one ledger (`history`, `reservations`).
#[derive(Debug, Args)]
pub(crate) struct ListArgs {
    /// The ledger file.
    #[arg(long)]
    pub(crate) ledger: PathBuf,

    /// Print JSON instead of a table.
    #[arg(long)]
    pub(crate) json: bool,

    #[command(flatten)]
    pub(crate) timeout: LockTimeout,
}

#[derive(Debug, Args)]
pub(crate) struct CancelArgs {
    /// The ledger file.
    #[arg(long)]
    pub(crate) ledger: PathBuf,

    /// The charge to cancel (its id, as `veil budget reservations` lists it).
    #[arg(long)]
    pub(crate) charge: i64,

    /// Cancel even though this host cannot tell whether the run that reserved the charge
    /// still runs (it was reserved on another host, or before the ledger recorded who
    /// reserves). Never cancels a charge whose run is seen running, nor a committed one.
    #[arg(long)]
    pub(crate) force: bool,

    /// Why, kept in the ledger with the cancellation.
    #[arg(long, default_value = "")]
    pub(crate) note: String,

    #[command(flatten)]
    pub(crate) timeout: LockTimeout,
}

pub(crate) fn run(command: BudgetCommand) -> anyhow::Result<ExitCode> {
    match command {
        BudgetCommand::Init(args) => init(&args),
        BudgetCommand::Amend(args) => amend(&args),
        BudgetCommand::Status(args) => status(&args),
        BudgetCommand::History(args) => history(&args),
        BudgetCommand::Reservations(args) => reservations(&args),
        BudgetCommand::Cancel(args) => cancel(&args),
    }
}

/// Opens an existing ledger; a missing file is the operator's mistake (exit 2).
pub(super) fn open(path: &Path, timeout: LockTimeout) -> anyhow::Result<SqliteLedger> {
    if !path.exists() {
        return Err(usage_error(format!(
            "no ledger at {}; create one with `veil budget init --ledger {} --dataset <name> --purpose <purpose> --epsilon <total> --delta <total>`",
            path.display(),
            path.display()
        )));
    }
    Ok(SqliteLedger::open_with(path, &timeout.options())?)
}

pub(super) fn init(args: &InitArgs) -> anyhow::Result<ExitCode> {
    outln!("{}", init_budget(args)?);
    Ok(ExitCode::SUCCESS)
}

/// Creates a budget (and the ledger file if needed), as `veil budget init` does; returns
/// what it did, in words.
pub(crate) fn init_budget(args: &InitArgs) -> anyhow::Result<String> {
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
        // The parser's error already says "period: …".
        .map_err(|error| usage_error(format!("--{error}")))?;
    let key = args.of.key();
    let mut ledger = SqliteLedger::create_with(&args.of.ledger, &args.timeout.options())?;
    match ledger.init_budget(&key, total, period) {
        Ok(()) => {}
        Err(error @ (BudgetError::AlreadyExists { .. } | BudgetError::InvalidBudget { .. })) => {
            return Err(error).usage();
        }
        Err(error) => return Err(error.into()),
    }
    let renewal = period.map_or(String::new(), |p| format!(", renewing every {p}"));
    Ok(format!(
        "created a budget of {total} for {key}{renewal} in {}",
        args.of.ledger.display()
    ))
}

/// `veil budget amend`: changes a budget's total and records why.
fn amend(args: &AmendArgs) -> anyhow::Result<ExitCode> {
    let (said, warning) = amend_budget(args)?;
    outln!("{said}");
    if let Some(warning) = warning {
        errln!("warning: {warning}");
    }
    Ok(ExitCode::SUCCESS)
}

/// Changes a budget's total, as `veil budget amend` does; returns what it did, in words,
/// and a warning when the budget has spent more than its new total.
pub(crate) fn amend_budget(args: &AmendArgs) -> anyhow::Result<(String, Option<String>)> {
    if args.note.trim().is_empty() {
        return Err(usage_error(
            "--note must say why the total changes: it is kept in the ledger beside the change",
        ));
    }
    let change = match (args.epsilon, args.rho) {
        (Some(epsilon), None) => TotalChange::Approx {
            epsilon,
            delta: args.delta,
        },
        (None, Some(rho)) => TotalChange::Zcdp { rho },
        _ => return Err(usage_error("give --epsilon (with --delta) or --rho")),
    };
    let key = args.of.key();
    let mut ledger = open(&args.of.ledger, args.timeout)?;
    let (record, after) = match ledger.amend_budget(&key, change, args.note.trim()) {
        Ok(done) => done,
        Err(error @ (BudgetError::InvalidBudget { .. } | BudgetError::NoBudget { .. })) => {
            return Err(error).usage();
        }
        Err(error) => return Err(error.into()),
    };
    let status = &after.status;
    let said = format!(
        "changed the budget of {key} in {}: {} → {}; spent {}, left {}",
        args.of.ledger.display(),
        budget_text(&record.from),
        budget_text(&record.to),
        budget_text(&status.spent),
        budget_text(&status.remaining)
    );
    let warning = (status.spent.amount() > status.total.amount()).then(|| {
        format!(
            "{key} has spent more than its new total; no run fits until {}",
            if after.period.is_some() {
                "the period renews"
            } else {
                "the total is raised"
            }
        )
    });
    Ok((said, warning))
}

pub(super) fn budget_json(total: &PrivacyBudget) -> Value {
    match *total {
        PrivacyBudget::Approx { epsilon, delta } => json!({"epsilon": epsilon, "delta": delta}),
        PrivacyBudget::Zcdp { rho } => json!({"rho": rho}),
    }
}

/// Unix seconds now.
pub(super) fn now() -> i64 {
    crate::clock::now_ms().div_euclid(1000)
}

/// How long ago `seconds` was, in words.
pub(super) fn age(seconds: i64, now: i64) -> String {
    let elapsed = u64::try_from(now.saturating_sub(seconds)).unwrap_or(0);
    format!(
        "{} ago",
        duration_text(std::time::Duration::from_secs(elapsed))
    )
}

pub(super) fn print_table<const N: usize>(header: &[&str; N], rows: &[[String; N]]) {
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
        outln!("{}", padded.join("  ").trim_end());
    };
    line(header.to_vec());
    for row in rows {
        line(row.iter().map(String::as_str).collect());
    }
}

/// Unix seconds as `YYYY-MM-DDTHH:MM:SSZ` (proleptic Gregorian, UTC).
pub(super) fn format_time(seconds: i64) -> String {
    veil_engine::as_of_text(seconds.saturating_mul(1000))
}

/// Whether the run that reserved a charge still runs: a short word, and how it is known.
pub(super) fn run_state(owner: Option<&Owner>) -> (&'static str, String) {
    match owner.map(Owner::liveness) {
        None => (
            "unknown",
            "it was reserved before the ledger recorded who reserves a charge".to_string(),
        ),
        Some(Liveness::Running) => ("running", "its process is running".to_string()),
        Some(Liveness::Gone(how)) => ("gone", how),
        Some(Liveness::Unknown(why)) => ("unknown", why),
    }
}

pub(super) fn owner_text(owner: Option<&Owner>) -> String {
    owner.map_or_else(|| "an unrecorded process".to_string(), Owner::to_string)
}

pub(super) fn owner_json(owner: Option<&Owner>) -> Value {
    owner.map_or(
        Value::Null,
        |owner| json!({"host": owner.host, "pid": owner.pid}),
    )
}

/// One line per reserved charge, saying how old it is, whose it is and what to do.
pub(super) fn reservation_lines(charges: &[&ChargeRecord], ledger: &Path, now: i64) -> Vec<String> {
    charges
        .iter()
        .map(|charge| {
            let (state, how) = run_state(charge.owner.as_ref());
            let advice = match state {
                "running" => "it commits or gives the budget back when its run ends".to_string(),
                "gone" => format!(
                    "its run is gone ({how}): give the budget back with `veil budget cancel --ledger {} --charge {}`",
                    ledger.display(),
                    charge.id
                ),
                _ => format!(
                    "this host cannot tell whether its run still runs ({how}); once you know it is gone: `veil budget cancel --ledger {} --charge {} --force`",
                    ledger.display(),
                    charge.id
                ),
            };
            format!(
                "  charge {} (job {:?}, {}/{}, cost {}) reserved {} by {}; {advice}",
                charge.id,
                charge.job,
                charge.key.dataset,
                charge.key.purpose,
                Compact(charge.cost),
                age(charge.created_at, now),
                owner_text(charge.owner.as_ref()),
            )
        })
        .collect()
}

pub(super) fn reservation_json(charge: &ChargeRecord, now: i64) -> Value {
    let (run, how) = run_state(charge.owner.as_ref());
    json!({
        "id": charge.id,
        "dataset": charge.key.dataset,
        "purpose": charge.key.purpose,
        "job": charge.job,
        "cost": charge.cost,
        "reserved_at": format_time(charge.created_at),
        "age_seconds": now.saturating_sub(charge.created_at).max(0),
        "owner": owner_json(charge.owner.as_ref()),
        "run": run,
        "run_detail": how,
    })
}

#[cfg(test)]
mod tests {
    use super::{age, format_time};

    #[test]
    fn times_format_as_utc() {
        assert_eq!(format_time(0), "1970-01-01T00:00:00Z");
        assert_eq!(format_time(951_782_400), "2000-02-29T00:00:00Z");
        assert_eq!(format_time(1_764_115_200), "2025-11-26T00:00:00Z");
        assert_eq!(format_time(-1), "1969-12-31T23:59:59Z");
    }

    #[test]
    fn ages_read_in_words() {
        assert_eq!(age(100, 145), "45 s ago");
        assert_eq!(age(0, 3 * 3600), "3 h ago");
        assert_eq!(age(0, 3 * 86_400), "3 days ago");
        assert_eq!(age(10, 0), "0 s ago");
    }
}
