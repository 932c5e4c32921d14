//! `veil budget init`, `status`, `history`, `reservations` and `cancel`.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::Context;
use clap::{Args, Subcommand};
use serde_json::{Value, json};
use veil_accountant::{BudgetError, BudgetKey, BudgetPeriod, ChargeState, PrivacyBudget};
use veil_core::Compact;
use veil_ledger::{BudgetRecord, CancelCheck, ChargeRecord, Liveness, Owner, SqliteLedger};

use crate::exit::{Classify, usage_error};
use crate::ledger::{LockTimeout, duration_text};

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
    History(HistoryArgs),

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
    Reservations(ReservationsArgs),

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

#[derive(Debug, Args)]
pub(crate) struct HistoryArgs {
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
pub(crate) struct ReservationsArgs {
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
        BudgetCommand::Status(args) => status(&args),
        BudgetCommand::History(args) => history(&args),
        BudgetCommand::Reservations(args) => reservations(&args),
        BudgetCommand::Cancel(args) => cancel(&args),
    }
}

/// Opens an existing ledger; a missing file is the operator's mistake (exit 2).
fn open(path: &Path, timeout: LockTimeout) -> anyhow::Result<SqliteLedger> {
    if !path.exists() {
        return Err(usage_error(format!(
            "no ledger at {}; create one with `veil budget init --ledger {} --dataset <name> --purpose <purpose> --epsilon <total> --delta <total>`",
            path.display(),
            path.display()
        )));
    }
    Ok(SqliteLedger::open_with(path, &timeout.options())?)
}

fn init(args: &InitArgs) -> anyhow::Result<ExitCode> {
    println!("{}", init_budget(args)?);
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
        .usage()
        .context("--period")?;
    let key = BudgetKey {
        dataset: args.dataset.clone(),
        purpose: args.purpose.clone(),
    };
    let mut ledger = SqliteLedger::create_with(&args.ledger, &args.timeout.options())?;
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
        args.ledger.display()
    ))
}

fn budget_json(total: &PrivacyBudget) -> Value {
    match *total {
        PrivacyBudget::Approx { epsilon, delta } => json!({"epsilon": epsilon, "delta": delta}),
        PrivacyBudget::Zcdp { rho } => json!({"rho": rho}),
    }
}

/// Unix seconds now.
fn now() -> i64 {
    crate::clock::now_ms().div_euclid(1000)
}

/// How long ago `seconds` was, in words.
fn age(seconds: i64, now: i64) -> String {
    let elapsed = u64::try_from(now.saturating_sub(seconds)).unwrap_or(0);
    format!(
        "{} ago",
        duration_text(std::time::Duration::from_secs(elapsed))
    )
}

/// Whether the run that reserved a charge still runs: a short word, and how it is known.
fn run_state(owner: Option<&Owner>) -> (&'static str, String) {
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

fn owner_text(owner: Option<&Owner>) -> String {
    owner.map_or_else(|| "an unrecorded process".to_string(), Owner::to_string)
}

fn owner_json(owner: Option<&Owner>) -> Value {
    owner.map_or(
        Value::Null,
        |owner| json!({"host": owner.host, "pid": owner.pid}),
    )
}

/// One line per reserved charge, saying how old it is, whose it is and what to do.
fn reservation_lines(charges: &[&ChargeRecord], ledger: &Path, now: i64) -> Vec<String> {
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

/// Each budget (of `dataset`, or all) with what is reserved against it.
fn budgets_and_reservations(
    args: &StatusArgs,
) -> anyhow::Result<(Vec<BudgetRecord>, Vec<ChargeRecord>)> {
    let mut ledger = open(&args.ledger, args.timeout)?;
    let records = ledger.budgets(args.dataset.as_deref())?;
    let reserved: Vec<ChargeRecord> = ledger
        .reservations()?
        .into_iter()
        .filter(|charge| {
            args.dataset
                .as_deref()
                .is_none_or(|dataset| charge.key.dataset == dataset)
        })
        .collect();
    Ok((records, reserved))
}

/// `veil budget status --json`'s list.
pub(crate) fn status_json(args: &StatusArgs) -> anyhow::Result<Value> {
    let (records, reserved) = budgets_and_reservations(args)?;
    let now = now();
    let list: Vec<Value> = records
        .iter()
        .map(|record| {
            let mut value = record_json(record);
            value["reserved"] = reserved
                .iter()
                .filter(|charge| charge.key == record.status.key)
                .map(|charge| reservation_json(charge, now))
                .collect();
            value
        })
        .collect();
    Ok(Value::Array(list))
}

fn status(args: &StatusArgs) -> anyhow::Result<ExitCode> {
    if args.json {
        println!("{}", status_json(args)?);
        return Ok(ExitCode::SUCCESS);
    }
    let (records, reserved) = budgets_and_reservations(args)?;
    let now = now();
    if records.is_empty() {
        println!("no budgets in {}", args.ledger.display());
        return Ok(ExitCode::SUCCESS);
    }
    let rows: Vec<[String; 7]> = records
        .iter()
        .map(|record| {
            let status = &record.status;
            let held = reserved
                .iter()
                .filter(|charge| charge.key == status.key)
                .count();
            [
                status.key.dataset.clone(),
                status.key.purpose.clone(),
                status.total.to_string(),
                format_amount(&status.spent),
                format_amount(&status.remaining),
                if held == 0 {
                    "-".to_string()
                } else {
                    held.to_string()
                },
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
            "reserved",
            "period",
        ],
        &rows,
    );
    if !reserved.is_empty() {
        println!();
        println!(
            "Reserved, not committed (counted as spent until their run commits or gives them back):"
        );
        let charges: Vec<&ChargeRecord> = reserved.iter().collect();
        for line in reservation_lines(&charges, &args.ledger, now) {
            println!("{line}");
        }
    }
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
        PrivacyBudget::Approx { epsilon, .. } => format!("ε = {}", Compact(epsilon)),
        PrivacyBudget::Zcdp { rho } => format!("ρ = {}", Compact(rho)),
    }
}

/// A charge's state, with the age and the run of a reserved one.
fn state_text(charge: &ChargeRecord, now: i64) -> String {
    match charge.state {
        ChargeState::Reserved => {
            let (run, _) = run_state(charge.owner.as_ref());
            format!(
                "reserved {}, run {run}",
                age(charge.created_at, now).trim_end_matches(" ago")
            )
        }
        state => state.to_string(),
    }
}

/// `veil budget history --json`'s list.
pub(crate) fn history_json(args: &HistoryArgs) -> anyhow::Result<Value> {
    let ledger = open(&args.ledger, args.timeout)?;
    let now = now();
    Ok(Value::Array(
        ledger
            .history()?
            .iter()
            .map(|charge| charge_json(charge, now))
            .collect(),
    ))
}

fn history(args: &HistoryArgs) -> anyhow::Result<ExitCode> {
    if args.json {
        println!("{}", history_json(args)?);
        return Ok(ExitCode::SUCCESS);
    }
    let ledger = open(&args.ledger, args.timeout)?;
    let charges = ledger.history()?;
    let now = now();
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
                state_text(charge, now),
                Compact(charge.cost).to_string(),
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
    let reserved: Vec<&ChargeRecord> = charges
        .iter()
        .filter(|charge| charge.state == ChargeState::Reserved)
        .collect();
    if !reserved.is_empty() {
        println!();
        println!(
            "Reserved, not committed (counted as spent until their run commits or gives them back):"
        );
        for line in reservation_lines(&reserved, &args.ledger, now) {
            println!("{line}");
        }
    }
    let cancelled: Vec<String> = charges
        .iter()
        .filter_map(|charge| {
            let cancellation = charge.cancellation.as_ref()?;
            let note = if cancellation.note.is_empty() {
                String::new()
            } else {
                format!("; note: {:?}", cancellation.note)
            };
            Some(format!(
                "  charge {}: cancelled {} by {}: {}{note}",
                charge.id,
                format_time(cancellation.cancelled_at),
                cancellation.by,
                cancellation.evidence
            ))
        })
        .collect();
    if !cancelled.is_empty() {
        println!();
        println!("Cancelled (reservations given back; nothing was published under them):");
        for line in cancelled {
            println!("{line}");
        }
    }
    let diagnostics: Vec<String> = charges
        .iter()
        .filter(|charge| !charge.diagnostics.is_empty())
        .map(|charge| {
            let counts: Vec<String> = charge
                .diagnostics
                .iter()
                .map(|count| format!("{} {}", count.name, count.count))
                .collect();
            format!("  charge {}: {}", charge.id, counts.join(", "))
        })
        .collect();
    if !diagnostics.is_empty() {
        println!();
        println!(
            "Diagnostics (not private, for the operator: exact counts of the data, never publish them):"
        );
        for line in diagnostics {
            println!("{line}");
        }
    }
    Ok(ExitCode::SUCCESS)
}

fn reservation_json(charge: &ChargeRecord, now: i64) -> Value {
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

fn charge_json(charge: &ChargeRecord, now: i64) -> Value {
    let mut value = json!({
        "id": charge.id,
        "dataset": charge.key.dataset,
        "purpose": charge.key.purpose,
        "job": charge.job,
        "job_hash": charge.job_hash,
        "state": charge.state.name(),
        "cost": charge.cost,
        "created_at": format_time(charge.created_at),
        "updated_at": format_time(charge.updated_at),
        "owner": owner_json(charge.owner.as_ref()),
        "mechanisms": charge.items.iter().map(|item| json!({
            "label": item.label,
            "mechanism": item.profile.to_string(),
            "times": item.times,
        })).collect::<Vec<_>>(),
        "releases": charge.releases.iter().map(|release| json!({
            "name": release.name,
            "location": release.location,
        })).collect::<Vec<_>>(),
        "cancellation": charge.cancellation.as_ref().map(|cancellation| json!({
            "cancelled_at": format_time(cancellation.cancelled_at),
            "evidence": cancellation.evidence,
            "note": cancellation.note,
            "by": {"host": cancellation.by.host, "pid": cancellation.by.pid},
        })),
        "diagnostics_not_private": charge.diagnostics.iter()
            .map(|count| (count.name.clone(), json!(count.count)))
            .collect::<serde_json::Map<String, Value>>(),
    });
    if charge.state == ChargeState::Reserved {
        let (run, how) = run_state(charge.owner.as_ref());
        value["age_seconds"] = json!(now.saturating_sub(charge.created_at).max(0));
        value["run"] = json!(run);
        value["run_detail"] = json!(how);
    }
    value
}

/// `veil budget reservations --json`'s list.
pub(crate) fn reservations_json(args: &ReservationsArgs) -> anyhow::Result<Value> {
    let ledger = open(&args.ledger, args.timeout)?;
    let now = now();
    Ok(Value::Array(
        ledger
            .reservations()?
            .iter()
            .map(|charge| reservation_json(charge, now))
            .collect(),
    ))
}

fn reservations(args: &ReservationsArgs) -> anyhow::Result<ExitCode> {
    if args.json {
        println!("{}", reservations_json(args)?);
        return Ok(ExitCode::SUCCESS);
    }
    let ledger = open(&args.ledger, args.timeout)?;
    let reserved = ledger.reservations()?;
    let now = now();
    if reserved.is_empty() {
        println!(
            "no reserved charges in {}: every charge is committed or given back",
            args.ledger.display()
        );
        return Ok(ExitCode::SUCCESS);
    }
    let rows: Vec<[String; 8]> = reserved
        .iter()
        .map(|charge| {
            let (run, how) = run_state(charge.owner.as_ref());
            [
                charge.id.to_string(),
                format_time(charge.created_at),
                age(charge.created_at, now),
                format!("{}/{}", charge.key.dataset, charge.key.purpose),
                charge.job.clone(),
                Compact(charge.cost).to_string(),
                owner_text(charge.owner.as_ref()),
                if run == "running" {
                    run.to_string()
                } else {
                    format!("{run}: {how}")
                },
            ]
        })
        .collect();
    print_table(
        &[
            "id", "reserved", "age", "budget", "job", "cost", "by", "run",
        ],
        &rows,
    );
    println!();
    println!(
        "Each counts as spent until its run commits or gives it back. Cancel one whose run is gone with `veil budget cancel --ledger {} --charge <id>` (--force when this host cannot tell).",
        args.ledger.display()
    );
    Ok(ExitCode::SUCCESS)
}

fn cancel(args: &CancelArgs) -> anyhow::Result<ExitCode> {
    let mut ledger = open(&args.ledger, args.timeout)?;
    let charge = ledger
        .history()?
        .into_iter()
        .find(|charge| charge.id == args.charge);
    let check = if args.force {
        CancelCheck::OperatorVouches
    } else {
        CancelCheck::RunGone
    };
    let record = match ledger.cancel(args.charge, check, &args.note) {
        Ok(record) => record,
        Err(error @ (BudgetError::CannotCancel { .. } | BudgetError::NoCharge { .. })) => {
            return Err(error).usage();
        }
        Err(error) => return Err(error.into()),
    };
    let (what, cost) = charge.as_ref().map_or_else(
        || (String::new(), String::new()),
        |charge| {
            (
                format!(
                    " (job {:?}, dataset {:?}, purpose {:?})",
                    charge.job, charge.key.dataset, charge.key.purpose
                ),
                format!("its cost, {}, is", Compact(charge.cost)),
            )
        },
    );
    println!(
        "cancelled charge {}{what}: {} given back to the budget; nothing was published under it",
        record.charge_id,
        if cost.is_empty() {
            "its cost is"
        } else {
            &cost
        },
    );
    println!(
        "  why the ledger allowed it: {}; recorded in {} (see `veil budget history`)",
        record.evidence,
        args.ledger.display()
    );
    if let Some(owner) = charge.as_ref().and_then(|charge| charge.owner.as_ref()) {
        println!(
            "  a run killed after staging its release leaves hidden files named .<file>.tmp-{} in its output folder: never published, delete them",
            owner.pid
        );
    }
    Ok(ExitCode::SUCCESS)
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
