//! `veil budget reservations` and `veil budget cancel`: charges reserved by runs that have
//! not committed, and giving back those whose run is gone.

use std::process::ExitCode;

use serde_json::Value;
use veil_accountant::BudgetError;
use veil_core::Compact;
use veil_ledger::CancelCheck;

use crate::exit::Classify;

use super::{
    CancelArgs, ListArgs, age, format_time, now, open, owner_text, print_table, reservation_json,
    run_state,
};

/// `veil budget reservations --json`'s list.
pub(crate) fn reservations_json(args: &ListArgs) -> anyhow::Result<Value> {
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

pub(super) fn reservations(args: &ListArgs) -> anyhow::Result<ExitCode> {
    if args.json {
        outln!("{}", reservations_json(args)?);
        return Ok(ExitCode::SUCCESS);
    }
    let ledger = open(&args.ledger, args.timeout)?;
    let reserved = ledger.reservations()?;
    let now = now();
    if reserved.is_empty() {
        outln!(
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
    outln!();
    outln!(
        "Each counts as spent until its run commits or gives it back. Cancel one whose run is gone with `veil budget cancel --ledger {} --charge <id>` (--force when this host cannot tell).",
        args.ledger.display()
    );
    Ok(ExitCode::SUCCESS)
}

pub(super) fn cancel(args: &CancelArgs) -> anyhow::Result<ExitCode> {
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
    outln!(
        "cancelled charge {}{what}: {} given back to the budget; nothing was published under it",
        record.charge_id,
        if cost.is_empty() {
            "its cost is"
        } else {
            &cost
        },
    );
    outln!(
        "  why the ledger allowed it: {}; recorded in {} (see `veil budget history`)",
        record.evidence,
        args.ledger.display()
    );
    if let Some(owner) = charge.as_ref().and_then(|charge| charge.owner.as_ref()) {
        outln!(
            "  a run killed after staging its release leaves hidden files named .<file>.tmp-{} in its output folder: never published, delete them",
            owner.pid
        );
    }
    Ok(ExitCode::SUCCESS)
}
