use super::*;
use crate::{ChargeItem, Component, MechanismProfile};
use proptest::prelude::*;

fn key() -> BudgetKey {
    BudgetKey {
        dataset: "events".to_string(),
        purpose: "analytics".to_string(),
    }
}

fn charge(spec: &str) -> Charge {
    let component: Component = spec.parse().unwrap();
    Charge {
        job: "job".to_string(),
        job_hash: "hash".to_string(),
        items: vec![ChargeItem {
            label: "value".to_string(),
            profile: component.profile,
            times: u32::try_from(component.times).unwrap(),
        }],
    }
}

fn pure_ledger(epsilon: f64) -> MemoryLedger {
    let mut ledger = MemoryLedger::new();
    ledger
        .add_budget(
            &key(),
            PrivacyBudget::Approx {
                epsilon,
                delta: 0.0,
            },
            None,
        )
        .unwrap();
    ledger
}

#[test]
fn reserve_commit_abort_and_release() {
    let mut ledger = pure_ledger(1.0);
    let first = ledger
        .reserve(&key(), &charge("laplace:epsilon=0.5"))
        .unwrap();
    assert!(matches!(
        ledger.record_release(
            &first,
            &ReleaseRecord {
                name: "q".into(),
                location: "out".into()
            }
        ),
        Err(BudgetError::NotCommitted { .. })
    ));
    ledger.commit(&first).unwrap();
    ledger
        .record_release(
            &first,
            &ReleaseRecord {
                name: "q".into(),
                location: "out".into(),
            },
        )
        .unwrap();
    assert_eq!(ledger.releases(&first).len(), 1);
    assert!(matches!(
        ledger.commit(&first),
        Err(BudgetError::NotReserved { .. })
    ));
    let second = ledger
        .reserve(&key(), &charge("laplace:epsilon=0.5"))
        .unwrap();
    assert!(matches!(
        ledger.reserve(&key(), &charge("laplace:epsilon=0.25")),
        Err(BudgetError::Exhausted(_))
    ));
    ledger.abort(&second).unwrap();
    assert_eq!(ledger.state(second.id), Some(ChargeState::Aborted));
    let status = ledger.status(&key()).unwrap();
    assert!((status.spent.amount() - 0.5).abs() < 1e-9);
    assert!((status.remaining.amount() - 0.5).abs() < 1e-9);
    let other = BudgetKey {
        dataset: "other".into(),
        purpose: "x".into(),
    };
    assert!(matches!(
        ledger.status(&other),
        Err(BudgetError::NoBudget { .. })
    ));
    assert!(matches!(
        ledger.add_budget(&key(), PrivacyBudget::Zcdp { rho: 1.0 }, None),
        Err(BudgetError::AlreadyExists { .. })
    ));
}

#[test]
fn periods_renew_the_budget() {
    let mut ledger = MemoryLedger::new();
    ledger.set_time(1_000);
    let period = "30d".parse().unwrap();
    ledger
        .add_budget(
            &key(),
            PrivacyBudget::Approx {
                epsilon: 1.0,
                delta: 0.0,
            },
            Some(period),
        )
        .unwrap();
    let reservation = ledger
        .reserve(&key(), &charge("laplace:epsilon=1"))
        .unwrap();
    ledger.commit(&reservation).unwrap();
    assert!(
        ledger
            .reserve(&key(), &charge("laplace:epsilon=0.5"))
            .is_err()
    );
    ledger.set_time(1_000 + 30 * 86_400 - 1);
    assert!(
        ledger
            .reserve(&key(), &charge("laplace:epsilon=0.5"))
            .is_err()
    );
    ledger.set_time(1_000 + 30 * 86_400);
    assert!(ledger.status(&key()).unwrap().spent.amount() < 1e-12);
    assert!(
        ledger
            .reserve(&key(), &charge("laplace:epsilon=0.5"))
            .is_ok()
    );
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(24))]

    /// No sequence of charges makes the spending exceed the total.
    #[test]
    fn spending_never_exceeds_the_total(epsilons in proptest::collection::vec(0.01..0.6_f64, 1..12), sigmas in proptest::collection::vec(2.0..30.0_f64, 0..4)) {
        let mut ledger = MemoryLedger::new();
        ledger.add_budget(&key(), PrivacyBudget::Approx { epsilon: 2.0, delta: 1e-6 }, None).unwrap();
        for (index, epsilon) in epsilons.iter().enumerate() {
            let mut request = charge(&format!("laplace:epsilon={epsilon}"));
            if let Some(sigma) = sigmas.get(index) {
                request.items.push(ChargeItem { label: "g".into(), profile: MechanismProfile::Gaussian { sigma_over_sensitivity: *sigma }, times: 3 });
            }
            if let Ok(reservation) = ledger.reserve(&key(), &request) {
                if index % 3 == 2 { ledger.abort(&reservation).unwrap(); } else { ledger.commit(&reservation).unwrap(); }
            }
            let status = ledger.status(&key()).unwrap();
            prop_assert!(status.spent.amount() <= 2.0);
        }
    }
}

#[test]
fn diagnostics_are_kept_per_charge_and_replaced_by_name() {
    let mut ledger = pure_ledger(1.0);
    let first = ledger
        .reserve(&key(), &charge("laplace:epsilon=0.5"))
        .unwrap();
    let count = |name: &str, count: u64| NotPrivateCount {
        name: name.to_string(),
        count,
    };
    ledger
        .record_diagnostics(
            &first,
            &[count("rows_read", 10), count("rows_without_unit", 1)],
        )
        .unwrap();
    ledger
        .record_diagnostics(&first, &[count("rows_read", 12)])
        .unwrap();
    assert_eq!(
        ledger.diagnostics(&first),
        [count("rows_read", 12), count("rows_without_unit", 1)]
    );
    // Diagnostics cost nothing.
    assert!((ledger.status(&key()).unwrap().spent.amount() - 0.5).abs() < 1e-9);
    let unknown = Reservation { id: 9, key: key() };
    assert!(matches!(
        ledger.record_diagnostics(&unknown, &[count("rows_read", 1)]),
        Err(BudgetError::NoCharge { id: 9 })
    ));
    let other_budget = Reservation {
        id: first.id,
        key: BudgetKey {
            dataset: "other".into(),
            purpose: "analytics".into(),
        },
    };
    assert!(ledger.record_diagnostics(&other_budget, &[]).is_err());
}
