//! The in-memory ledger through the `BudgetLedger` trait object, as the engine uses it.

use veil_accountant::{
    BudgetError, BudgetKey, BudgetLedger, Charge, ChargeItem, MechanismProfile, MemoryLedger,
    PrivacyBudget, ReleaseRecord,
};

fn run_job(
    ledger: &mut dyn BudgetLedger,
    key: &BudgetKey,
    charge: &Charge,
) -> Result<(), BudgetError> {
    let reservation = ledger.reserve(key, charge)?;
    ledger.commit(&reservation)?;
    ledger.record_release(
        &reservation,
        &ReleaseRecord {
            name: "by_country".to_string(),
            location: "out.csv".to_string(),
        },
    )
}

#[test]
fn jobs_charge_until_the_budget_is_spent() {
    let key = BudgetKey {
        dataset: "events".to_string(),
        purpose: "analytics".to_string(),
    };
    let mut ledger = MemoryLedger::new();
    ledger
        .add_budget(
            &key,
            PrivacyBudget::Approx {
                epsilon: 2.0,
                delta: 1e-6,
            },
            None,
        )
        .expect("budget");
    let charge = Charge {
        job: "daily".to_string(),
        job_hash: "0f3a".to_string(),
        items: vec![
            ChargeItem {
                label: "count".to_string(),
                profile: MechanismProfile::DiscreteGaussian {
                    sigma: 30.0,
                    sensitivity: 1,
                },
                times: 1,
            },
            ChargeItem {
                label: "sum".to_string(),
                profile: MechanismProfile::DiscreteLaplace {
                    scale: 400.0,
                    sensitivity: 20,
                },
                times: 4,
            },
        ],
    };
    let mut jobs = 0;
    loop {
        match run_job(&mut ledger, &key, &charge) {
            Ok(()) => jobs += 1,
            Err(BudgetError::Exhausted(details)) => {
                assert!(details.spent.amount() <= 2.0);
                assert!(details.spent.amount() + details.requested.amount() > 2.0);
                break;
            }
            Err(error) => panic!("{error}"),
        }
    }
    // Each job alone costs ε ≈ 0.30 at δ = 1e-6, so a sum would stop after 6 jobs;
    // composed, 12 jobs cost ε ≈ 1.54: the accountant composes, it does not add.
    assert!(jobs >= 12, "{jobs}");
    let status = ledger.status(&key).expect("status");
    assert!(status.spent.amount() <= 2.0);
}
