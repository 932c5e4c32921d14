//! `veil budget history`: every charge, with its state and its releases.

use std::process::ExitCode;

use serde_json::{Value, json};
use veil_accountant::ChargeState;
use veil_core::Compact;
use veil_ledger::{AmendmentRecord, ChargeRecord};

use crate::ledger::budget_text;

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
    let amendments = ledger.amendments()?;
    let now = now();
    if charges.is_empty() {
        outln!("no charges in {}", args.ledger.display());
        print_amendments(&amendments);
        return Ok(ExitCode::SUCCESS);
    }
    let rows: Vec<[String; 8]> = charges
        .iter()
        .map(|charge| {
            [
                charge.id.to_string(),
                format_time(charge.created_at),
                format!("{}/{}", charge.key.dataset, charge.key.purpose),
                charge.job.clone(),
                state_text(charge, now),
                Compact(charge.cost).to_string(),
                charge.items.len().to_string(),
                charge.releases.len().to_string(),
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
    // Listed below the table, wrapped: a job's mechanisms and files ran one line to 500
    // columns.
    let width = usize::from(crate::commands::table_width());
    outln!();
    outln!("Mechanisms of each charge (label, loss, times):");
    for charge in &charges {
        let items: Vec<String> = charge
            .items
            .iter()
            .map(|item| format!("{} {}×{}", item.label, item.profile, item.times))
            .collect();
        for line in wrapped(&format!("  charge {}: ", charge.id), &items, width) {
            outln!("{line}");
        }
    }
    if charges.iter().any(|charge| !charge.releases.is_empty()) {
        outln!();
        outln!("Files each charge released:");
        for charge in charges.iter().filter(|charge| !charge.releases.is_empty()) {
            let files: Vec<String> = charge
                .releases
                .iter()
                .map(|release| format!("{} → {}", release.name, release.location))
                .collect();
            for line in wrapped(&format!("  charge {}: ", charge.id), &files, width) {
                outln!("{line}");
            }
        }
    }
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
    print_amendments(&amendments);
    Ok(ExitCode::SUCCESS)
}

/// The changes to budgets' totals (`veil budget amend`), oldest first.
fn print_amendments(amendments: &[AmendmentRecord]) {
    if amendments.is_empty() {
        return;
    }
    outln!();
    outln!("Budget totals changed (veil budget amend):");
    for amendment in amendments {
        outln!(
            "  {} {}: {} → {} by {}; note: {:?}",
            format_time(amendment.amended_at),
            amendment.key,
            budget_text(&amendment.from),
            budget_text(&amendment.to),
            amendment.by,
            amendment.note
        );
    }
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

/// `items` after `head`, separated by "; ", in lines of at most `width` characters where
/// an item allows (an item longer than a line gets one of its own); continuation lines
/// are indented under the first item.
fn wrapped(head: &str, items: &[String], width: usize) -> Vec<String> {
    let indent = " ".repeat(head.chars().count());
    let mut lines = Vec::new();
    let mut line = head.to_string();
    let mut empty = true;
    for (at, item) in items.iter().enumerate() {
        let piece = if at + 1 < items.len() {
            format!("{item};")
        } else {
            item.clone()
        };
        let extra = piece.chars().count() + usize::from(!empty);
        if !empty && line.chars().count() + extra > width {
            lines.push(std::mem::replace(&mut line, indent.clone()));
            empty = true;
        }
        if !empty {
            line.push(' ');
        }
        line.push_str(&piece);
        empty = false;
    }
    lines.push(line);
    lines
}

#[cfg(test)]
mod tests {
    use super::wrapped;

    #[test]
    fn mechanisms_wrap_under_their_charge() {
        let items: Vec<String> = (0..6)
            .map(|at| format!("query.measure{at} laplace:epsilon=0.1×1"))
            .collect();
        let lines = wrapped("  charge 7: ", &items, 80);
        assert!(lines.len() > 1, "{lines:?}");
        assert!(lines[0].starts_with("  charge 7: query.measure0"));
        for line in &lines {
            assert!(line.chars().count() <= 80, "{line:?}");
        }
        assert!(lines[1].starts_with("            query."), "{lines:?}");
        assert_eq!(lines.join(" ").matches("laplace").count(), 6);
    }
}
