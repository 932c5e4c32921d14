//! `veil budget history`: every charge, with its state and its releases.

use std::process::ExitCode;

use serde_json::{Value, json};
use veil_accountant::ChargeState;
use veil_core::Compact;
use veil_ledger::ChargeRecord;

use super::{
    ListArgs, age, format_time, now, open, owner_json, print_table, reservation_lines, run_state,
};

/// A charge's state, with the age and the run of a reserved one.
pub(super) fn state_text(charge: &ChargeRecord, now: i64) -> String {
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
pub(crate) fn history_json(args: &ListArgs) -> anyhow::Result<Value> {
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

pub(super) fn history(args: &ListArgs) -> anyhow::Result<ExitCode> {
    if args.json {
        outln!("{}", history_json(args)?);
        return Ok(ExitCode::SUCCESS);
    }
    let ledger = open(&args.ledger, args.timeout)?;
    let charges = ledger.history()?;
    let now = now();
    if charges.is_empty() {
        outln!("no charges in {}", args.ledger.display());
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
        outln!();
        outln!(
            "Reserved, not committed (counted as spent until their run commits or gives them back):"
        );
        for line in reservation_lines(&reserved, &args.ledger, now) {
            outln!("{line}");
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
        outln!();
        outln!("Cancelled (reservations given back; nothing was published under them):");
        for line in cancelled {
            outln!("{line}");
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
        outln!();
        outln!(
            "Diagnostics (not private, for the operator: exact counts of the data, never publish them):"
        );
        for line in diagnostics {
            outln!("{line}");
        }
    }
    Ok(ExitCode::SUCCESS)
}

pub(super) fn charge_json(charge: &ChargeRecord, now: i64) -> Value {
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
