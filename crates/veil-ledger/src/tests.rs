use super::*;
use std::sync::atomic::{AtomicI64, Ordering};

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

fn ledger_with_clock() -> (tempfile::TempDir, SqliteLedger, Arc<AtomicI64>) {
    let directory = tempfile::tempdir().unwrap();
    let now = Arc::new(AtomicI64::new(1_000_000));
    let clock = Arc::clone(&now);
    let ledger = SqliteLedger::create(&directory.path().join("ledger.sqlite"))
        .unwrap()
        .with_clock(move || clock.load(Ordering::SeqCst));
    (directory, ledger, now)
}

#[test]
fn spending_is_the_composition_of_all_charges() {
    let (_directory, mut ledger, _) = ledger_with_clock();
    let total = PrivacyBudget::Approx {
        epsilon: 3.0,
        delta: 1e-6,
    };
    ledger.init_budget(&key(), total, None).unwrap();
    for _ in 0..4 {
        let reservation = ledger
            .reserve(&key(), &charge("gaussian:sigma=20,times=25"))
            .unwrap();
        ledger.commit(&reservation).unwrap();
    }
    let status = ledger.status(&key()).unwrap();
    // 100 Gaussians with σ = 20 compose to ε ≈ 2.254 at δ = 1e-6; a sum would be ~24.
    assert!(
        status.spent.amount() > 2.254 && status.spent.amount() < 2.28,
        "{status:?}"
    );
    let history = ledger.history().unwrap();
    assert_eq!(history.len(), 4);
    assert!(history.iter().all(|c| c.state == ChargeState::Committed));
    assert_eq!(history[0].items[0].times, 25);
    assert!(
        history[0].cost > 0.5 && history[0].cost < 1.5,
        "{}",
        history[0].cost
    );
}

#[test]
fn refusals_name_the_amounts_and_leave_no_charge() {
    let (_directory, mut ledger, _) = ledger_with_clock();
    let total = PrivacyBudget::Approx {
        epsilon: 1.0,
        delta: 0.0,
    };
    ledger.init_budget(&key(), total, None).unwrap();
    let first = ledger
        .reserve(&key(), &charge("laplace:epsilon=0.75,times=1"))
        .unwrap();
    let error = ledger
        .reserve(&key(), &charge("laplace:epsilon=0.5"))
        .unwrap_err();
    let message = error.to_string();
    assert!(message.contains("requested ε = 0.5"), "{message}");
    assert!(message.contains("spent ε = 0.75"), "{message}");
    assert!(matches!(
        ledger.reserve(&key(), &charge("gaussian:sigma=3")),
        Err(BudgetError::Incompatible { .. })
    ));
    assert_eq!(ledger.history().unwrap().len(), 1);
    ledger.abort(&first).unwrap();
    assert!(matches!(
        ledger.commit(&first),
        Err(BudgetError::NotReserved { .. })
    ));
    assert!(matches!(
        ledger.record_release(
            &first,
            &ReleaseRecord {
                name: "q".into(),
                location: "x".into()
            }
        ),
        Err(BudgetError::NotCommitted { .. })
    ));
    let missing = Reservation { id: 99, key: key() };
    assert!(matches!(
        ledger.commit(&missing),
        Err(BudgetError::NotReserved { .. })
    ));
    assert!(matches!(
        ledger.init_budget(&key(), total, None),
        Err(BudgetError::AlreadyExists { .. })
    ));
    let unknown = BudgetKey {
        dataset: "x".into(),
        purpose: "y".into(),
    };
    assert!(matches!(
        ledger.status(&unknown),
        Err(BudgetError::NoBudget { .. })
    ));
}

#[test]
fn periods_renew_from_the_creation_time() {
    let (_directory, mut ledger, now) = ledger_with_clock();
    let total = PrivacyBudget::Zcdp { rho: 0.5 };
    ledger
        .init_budget(&key(), total, Some("30d".parse().unwrap()))
        .unwrap();
    let reservation = ledger.reserve(&key(), &charge("gaussian:sigma=1")).unwrap();
    ledger.commit(&reservation).unwrap();
    ledger
        .record_release(
            &reservation,
            &ReleaseRecord {
                name: "q".into(),
                location: "out.csv".into(),
            },
        )
        .unwrap();
    assert!(
        ledger
            .reserve(&key(), &charge("gaussian:sigma=10"))
            .is_err()
    );
    now.fetch_add(30 * 86_400 - 1, Ordering::SeqCst);
    assert!(
        ledger
            .reserve(&key(), &charge("gaussian:sigma=10"))
            .is_err()
    );
    now.fetch_add(1, Ordering::SeqCst);
    let records = ledger.budgets(None).unwrap();
    assert_eq!(records.len(), 1);
    assert!(records[0].status.spent.amount() < 1e-12);
    assert_eq!(
        records[0].window,
        Some((1_000_000 + 30 * 86_400, 1_000_000 + 60 * 86_400))
    );
    assert!(ledger.reserve(&key(), &charge("gaussian:sigma=1")).is_ok());
    assert_eq!(ledger.history().unwrap()[0].releases.len(), 1);
}

#[test]
fn budgets_filter_by_dataset_and_schema_is_current() {
    let (_directory, mut ledger, _) = ledger_with_clock();
    for (dataset, purpose) in [("a", "x"), ("a", "y"), ("b", "x")] {
        let key = BudgetKey {
            dataset: dataset.into(),
            purpose: purpose.into(),
        };
        ledger
            .init_budget(
                &key,
                PrivacyBudget::Approx {
                    epsilon: 1.0,
                    delta: 1e-6,
                },
                None,
            )
            .unwrap();
    }
    assert_eq!(ledger.budgets(None).unwrap().len(), 3);
    assert_eq!(ledger.budgets(Some("a")).unwrap().len(), 2);
    assert_eq!(ledger.schema_version().unwrap(), schema::current_version());
    assert!(matches!(
        ledger.init_budget(
            &key(),
            PrivacyBudget::Approx {
                epsilon: 1.0,
                delta: 2.0
            },
            None
        ),
        Err(BudgetError::InvalidBudget { .. })
    ));
}
