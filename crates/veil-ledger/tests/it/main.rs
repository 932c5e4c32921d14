//! Integration tests of the ledger file: processes racing for one budget, jobs killed
//! mid-flight, and files that are not ledgers.

mod concurrency;
mod files;

use veil_accountant::{BudgetKey, Charge, ChargeItem, Component};

pub(crate) fn key() -> BudgetKey {
    BudgetKey {
        dataset: "events".to_string(),
        purpose: "analytics".to_string(),
    }
}

pub(crate) fn charge(spec: &str) -> Charge {
    let component: Component = spec.parse().expect("a valid spec");
    Charge {
        job: "job".to_string(),
        job_hash: "hash".to_string(),
        items: vec![ChargeItem {
            label: "value".to_string(),
            profile: component.profile,
            times: u32::try_from(component.times).expect("small count"),
        }],
    }
}
