//! `veil budget status`: every budget with what it spent and what is reserved.

use std::process::ExitCode;

use serde_json::{Value, json};
use veil_accountant::PrivacyBudget;
use veil_core::Compact;
use veil_ledger::{BudgetRecord, ChargeRecord};

use super::{
    StatusArgs, budget_json, format_time, now, open, owner_json, print_table, reservation_json,
    reservation_lines,
};

/// Each budget (of `dataset`, or all) with what is reserved against it.
pub(super) fn budgets_and_reservations(
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

/// `veil budget status --json`'s list: each budget with its reserved charges and the
/// changes to its total (`veil budget amend`).
pub(crate) fn status_json(args: &StatusArgs) -> anyhow::Result<Value> {
    let (records, reserved) = budgets_and_reservations(args)?;
    let amendments = open(&args.ledger, args.timeout)?.amendments()?;
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
            value["amendments"] = amendments
                .iter()
                .filter(|amendment| amendment.key == record.status.key)
                .map(|amendment| {
                    json!({
                        "amended_at": format_time(amendment.amended_at),
                        "from": budget_json(&amendment.from),
                        "to": budget_json(&amendment.to),
                        "note": amendment.note,
                        "by": owner_json(Some(&amendment.by)),
                    })
                })
                .collect();
            value
        })
        .collect();
    Ok(Value::Array(list))
}

pub(super) fn status(args: &StatusArgs) -> anyhow::Result<ExitCode> {
    if args.json {
        outln!("{}", status_json(args)?);
        return Ok(ExitCode::SUCCESS);
    }
    let (records, reserved) = budgets_and_reservations(args)?;
    let now = now();
    if records.is_empty() {
        outln!("no budgets in {}", args.ledger.display());
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
        outln!();
        outln!(
            "Reserved, not committed (counted as spent until their run commits or gives them back):"
        );
        let charges: Vec<&ChargeRecord> = reserved.iter().collect();
        for line in reservation_lines(&charges, &args.ledger, now) {
            outln!("{line}");
        }
    }
    Ok(ExitCode::SUCCESS)
}

pub(super) fn record_json(record: &BudgetRecord) -> Value {
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
pub(super) fn format_amount(amount: &PrivacyBudget) -> String {
    match *amount {
        PrivacyBudget::Approx { epsilon, .. } => format!("ε = {}", Compact(epsilon)),
        PrivacyBudget::Zcdp { rho } => format!("ρ = {}", Compact(rho)),
    }
}
