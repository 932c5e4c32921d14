use std::path::Path;
use std::sync::Arc;

use veil_accountant::{
    BudgetError, BudgetKey, BudgetLedger, Charge, ChargeItem, ChargeState, Component,
    NotPrivateCount, PrivacyBudget, ReleaseRecord, Reservation,
};

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
    assert!(message.contains("this run needs ε = 0.5"), "{message}");
    assert!(message.contains("ε = 0.75 is spent"), "{message}");
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

/// An owner on this host whose process has ended.
fn finished_process() -> Owner {
    let mut child = std::process::Command::new("true").spawn().unwrap();
    let pid = child.id();
    child.wait().unwrap();
    Owner {
        pid,
        ..Owner::current()
    }
}

fn pure_budget(ledger: &mut SqliteLedger, epsilon: f64) {
    let total = PrivacyBudget::Approx {
        epsilon,
        delta: 0.0,
    };
    ledger.init_budget(&key(), total, None).unwrap();
}

#[test]
fn a_cancelled_reservation_gives_its_budget_back_is_recorded_and_never_commits() {
    if !Path::new("/proc/self/stat").exists() {
        return; // Liveness cannot be checked without /proc.
    }
    let (directory, ledger, now) = ledger_with_clock();
    let path = ledger.path().to_path_buf();
    drop(ledger);
    // A run that reserved and was killed before it committed.
    let mut killed = SqliteLedger::open(&path)
        .unwrap()
        .with_owner(finished_process());
    pure_budget(&mut killed, 1.0);
    let reservation = killed
        .reserve(&key(), &charge("laplace:epsilon=0.75"))
        .unwrap();
    let mut ledger = SqliteLedger::open(&path)
        .unwrap()
        .with_clock(move || now.load(Ordering::SeqCst) + 3600);
    assert!(
        ledger
            .reserve(&key(), &charge("laplace:epsilon=0.5"))
            .is_err()
    );
    let reserved = ledger.reservations().unwrap();
    assert_eq!(reserved.len(), 1);
    assert_eq!(reserved[0].id, reservation.id);
    assert_eq!(
        reserved[0].owner.as_ref().map(|o| o.pid),
        Some(killed.owner.pid)
    );

    let record = ledger
        .cancel(
            reservation.id,
            CancelCheck::RunGone,
            "run killed by the OOM killer",
        )
        .unwrap();
    assert!(
        record.evidence.contains("no process"),
        "{}",
        record.evidence
    );
    assert!((ledger.status(&key()).unwrap().spent.amount()).abs() < 1e-12);
    assert!(ledger.reservations().unwrap().is_empty());
    let history = ledger.history().unwrap();
    assert_eq!(history[0].state, ChargeState::Cancelled);
    let cancellation = history[0].cancellation.as_ref().unwrap();
    assert_eq!(cancellation.note, "run killed by the OOM killer");
    assert_eq!(cancellation.cancelled_at, 1_000_000 + 3600);
    assert_eq!(cancellation.by.pid, std::process::id());

    // The run, had it survived, could not commit now, so it could never publish.
    assert!(matches!(
        killed.commit(&reservation),
        Err(BudgetError::NotReserved { .. })
    ));
    let again = ledger
        .cancel(reservation.id, CancelCheck::OperatorVouches, "")
        .unwrap_err();
    assert!(again.to_string().contains("already given back"), "{again}");
    assert!(
        ledger
            .reserve(&key(), &charge("laplace:epsilon=0.5"))
            .is_ok()
    );
    drop(directory);
}

#[test]
fn committed_running_and_unknown_reservations_are_not_cancelled() {
    let (_directory, mut ledger, _) = ledger_with_clock();
    pure_budget(&mut ledger, 10.0);
    // Committed: its release may be published.
    let committed = ledger
        .reserve(&key(), &charge("laplace:epsilon=1"))
        .unwrap();
    ledger.commit(&committed).unwrap();
    for check in [CancelCheck::RunGone, CancelCheck::OperatorVouches] {
        let error = ledger.cancel(committed.id, check, "").unwrap_err();
        assert!(
            matches!(&error, BudgetError::CannotCancel { reason, .. } if reason.contains("committed")),
            "{error}"
        );
    }
    // Reserved by this very process: its run is still going.
    let running = ledger
        .reserve(&key(), &charge("laplace:epsilon=1"))
        .unwrap();
    if Path::new("/proc/self/stat").exists() {
        for check in [CancelCheck::RunGone, CancelCheck::OperatorVouches] {
            let error = ledger.cancel(running.id, check, "").unwrap_err();
            assert!(error.to_string().contains("still running"), "{error}");
        }
    }
    // Reserved on another host: only the operator can say that its run is gone.
    let elsewhere = Owner {
        host: "another-host.example".to_string(),
        ..Owner::current()
    };
    let path = ledger.path().to_path_buf();
    let mut remote = SqliteLedger::open(&path).unwrap().with_owner(elsewhere);
    let remote_charge = remote
        .reserve(&key(), &charge("laplace:epsilon=1"))
        .unwrap();
    let error = ledger
        .cancel(remote_charge.id, CancelCheck::RunGone, "")
        .unwrap_err();
    let message = error.to_string();
    assert!(message.contains("another-host.example"), "{message}");
    assert!(message.contains("--force"), "{message}");
    let record = ledger
        .cancel(
            remote_charge.id,
            CancelCheck::OperatorVouches,
            "host retired",
        )
        .unwrap();
    assert!(record.evidence.contains("vouched"), "{}", record.evidence);
    assert!(matches!(
        ledger.cancel(99, CancelCheck::OperatorVouches, ""),
        Err(BudgetError::NoCharge { id: 99 })
    ));
    // What counts: the committed charge and the running reservation.
    assert!((ledger.status(&key()).unwrap().spent.amount() - 2.0).abs() < 1e-9);
}

#[test]
fn diagnostics_are_kept_beside_the_charge_marked_not_private() {
    let (_directory, mut ledger, _) = ledger_with_clock();
    pure_budget(&mut ledger, 1.0);
    let reservation = ledger
        .reserve(&key(), &charge("laplace:epsilon=0.5"))
        .unwrap();
    let count = |name: &str, count: u64| NotPrivateCount {
        name: name.to_string(),
        count,
    };
    ledger
        .record_diagnostics(
            &reservation,
            &[count("rows_read", 363), count("missing_values.value", 4)],
        )
        .unwrap();
    ledger.commit(&reservation).unwrap();
    ledger
        .record_diagnostics(&reservation, &[count("rows_read", 364)])
        .unwrap();
    let history = ledger.history().unwrap();
    assert_eq!(
        history[0].diagnostics,
        [count("missing_values.value", 4), count("rows_read", 364)]
    );
    let missing = Reservation { id: 42, key: key() };
    assert!(matches!(
        ledger.record_diagnostics(&missing, &[count("rows_read", 1)]),
        Err(BudgetError::NoCharge { id: 42 })
    ));
    assert!(matches!(
        ledger.record_diagnostics(&reservation, &[count("huge", u64::MAX)]),
        Err(BudgetError::Storage { .. })
    ));
    // The table's name says what its numbers are.
    let rows: i64 = ledger
        .connection
        .query_row("SELECT count(*) FROM diagnostics_not_private", [], |row| {
            row.get(0)
        })
        .unwrap();
    assert_eq!(rows, 2);
}

#[test]
fn a_budget_created_with_a_refused_charge_is_not_left_behind() {
    let (_directory, mut ledger, _) = ledger_with_clock();
    let total = PrivacyBudget::Approx {
        epsilon: 0.5,
        delta: 0.0,
    };
    let error = ledger
        .reserve_creating_budget(&key(), &charge("laplace:epsilon=1"), total, None)
        .unwrap_err();
    assert!(matches!(error, BudgetError::Exhausted(_)), "{error}");
    assert!(ledger.budgets(None).unwrap().is_empty());
    let (reservation, created) = ledger
        .reserve_creating_budget(&key(), &charge("laplace:epsilon=0.25"), total, None)
        .unwrap();
    assert!(created);
    let bigger = PrivacyBudget::Approx {
        epsilon: 5.0,
        delta: 0.0,
    };
    let (_, created) = ledger
        .reserve_creating_budget(&key(), &charge("laplace:epsilon=0.25"), bigger, None)
        .unwrap();
    assert!(!created, "an existing budget stands");
    assert_eq!(ledger.budgets(None).unwrap()[0].status.total, total);
    assert_eq!(reservation.id, 1);
}

/// `check` answers what `reserve` would (the spend with the charge, or the refusal with
/// its amounts) and writes nothing: `veil explain` forecasts a run with it.
#[test]
fn a_check_forecasts_a_reservation_and_writes_nothing() {
    let (_directory, mut ledger, _) = ledger_with_clock();
    assert!(matches!(
        ledger.check(&key(), &charge("laplace:epsilon=0.5")),
        Err(BudgetError::NoBudget { .. })
    ));
    pure_budget(&mut ledger, 1.0);
    let after = ledger
        .check(&key(), &charge("laplace:epsilon=0.5"))
        .unwrap();
    assert!((after.amount() - 0.5).abs() < 1e-9, "{after:?}");
    let reservation = ledger
        .reserve(&key(), &charge("laplace:epsilon=0.75"))
        .unwrap();
    ledger.commit(&reservation).unwrap();
    let Err(BudgetError::Exhausted(refusal)) = ledger.check(&key(), &charge("laplace:epsilon=0.5"))
    else {
        panic!("a charge past the budget is forecast as refused")
    };
    assert!((refusal.remaining.amount() - 0.25).abs() < 1e-9);
    assert!(matches!(
        ledger.check(&key(), &charge("gaussian:sigma=1")),
        Err(BudgetError::Incompatible { .. })
    ));
    assert_eq!(ledger.history().unwrap().len(), 1, "checks are not charges");
}

/// `datasets_of` lists the datasets with a budget for a purpose, without composing any
/// spending (a run's typo check reads it before it reserves).
#[test]
fn datasets_of_a_purpose_are_listed_by_name() {
    let (_directory, mut ledger, _) = ledger_with_clock();
    assert!(ledger.datasets_of("analytics").unwrap().is_empty());
    let total = PrivacyBudget::Approx {
        epsilon: 1.0,
        delta: 0.0,
    };
    for (dataset, purpose) in [
        ("orders", "analytics"),
        ("events", "analytics"),
        ("events", "ads"),
    ] {
        let key = BudgetKey {
            dataset: dataset.to_string(),
            purpose: purpose.to_string(),
        };
        ledger.init_budget(&key, total, None).unwrap();
    }
    assert_eq!(
        ledger.datasets_of("analytics").unwrap(),
        ["events", "orders"]
    );
    assert_eq!(ledger.datasets_of("ads").unwrap(), ["events"]);
}

/// A budget's total changes, the change is recorded with its note and who made it, the
/// charges already made stay spent against the new total; a total in the other measure, a
/// larger δ while charges count, an empty note and a total out of range are refused and
/// leave nothing changed.
#[test]
fn an_amended_total_keeps_its_charges_and_its_history() {
    let (_directory, mut ledger, now) = ledger_with_clock();
    pure_budget(&mut ledger, 1.0);
    let reservation = ledger
        .reserve(&key(), &charge("pure:epsilon=0.75"))
        .unwrap();
    ledger.commit(&reservation).unwrap();
    // ε = 0.5 more does not fit under 1, and does under 2.
    assert!(matches!(
        ledger.check(&key(), &charge("pure:epsilon=0.5")),
        Err(BudgetError::Exhausted(_))
    ));
    now.store(1_000_500, Ordering::SeqCst);
    let raised = PrivacyBudget::Approx {
        epsilon: 2.0,
        delta: 0.0,
    };
    let (record, after) = ledger
        .amend_budget(
            &key(),
            TotalChange::Approx {
                epsilon: 2.0,
                delta: None,
            },
            "new policy for Q1",
        )
        .unwrap();
    let status = after.status;
    assert_eq!(record.amended_at, 1_000_500);
    assert_eq!(record.to, raised);
    assert_eq!(status.total, raised);
    assert!((status.spent.amount() - 0.75).abs() < 1e-9, "{status:?}");
    assert_eq!(ledger.status(&key()).unwrap(), status);
    assert!(ledger.check(&key(), &charge("pure:epsilon=0.5")).is_ok());

    let refusals = [
        (TotalChange::Zcdp { rho: 1.0 }, "typo", "keeps its measure"),
        // δ from 0 to 1e-6 would recompose the pure charge for less ε.
        (
            TotalChange::Approx {
                epsilon: 2.0,
                delta: Some(1e-6),
            },
            "more δ",
            "hand part of them back",
        ),
        (
            TotalChange::Approx {
                epsilon: -1.0,
                delta: None,
            },
            "negative",
            "invalid budget",
        ),
        (
            TotalChange::Approx {
                epsilon: 3.0,
                delta: None,
            },
            " ",
            "say why",
        ),
    ];
    for (change, note, says) in refusals {
        let refused = ledger.amend_budget(&key(), change, note).unwrap_err();
        assert!(refused.to_string().contains(says), "{change}: {refused}");
    }
    assert_eq!(ledger.status(&key()).unwrap().total, raised);
    let amendments = ledger.amendments().unwrap();
    assert_eq!(amendments.len(), 1);
    assert_eq!(
        amendments[0].from,
        PrivacyBudget::Approx {
            epsilon: 1.0,
            delta: 0.0
        }
    );
    assert_eq!(amendments[0].to, raised);
    assert_eq!(amendments[0].note, "new policy for Q1");
    assert_eq!(amendments[0].by.pid, std::process::id());
    // No budget, no amendment.
    let other = BudgetKey {
        dataset: "other".to_string(),
        purpose: "analytics".to_string(),
    };
    assert!(matches!(
        ledger.amend_budget(&other, TotalChange::Zcdp { rho: 1.0 }, "none"),
        Err(BudgetError::NoBudget { .. })
    ));
}

/// δ may fall while charges count, as long as they still compose at it: a Gaussian
/// charge cannot be composed at δ = 0, so that change is refused and the budget stays
/// readable; without charges in the window, δ may rise.
#[test]
fn a_smaller_delta_must_still_compose_the_charges() {
    let (_directory, mut ledger, _) = ledger_with_clock();
    let total = PrivacyBudget::Approx {
        epsilon: 4.0,
        delta: 1e-5,
    };
    ledger.init_budget(&key(), total, None).unwrap();
    let approx = |epsilon, delta| TotalChange::Approx {
        epsilon,
        delta: Some(delta),
    };
    // No charge yet: δ may rise.
    ledger
        .amend_budget(&key(), approx(4.0, 1e-4), "room")
        .unwrap();
    let reservation = ledger
        .reserve(&key(), &charge("gaussian:sigma=20,times=1"))
        .unwrap();
    ledger.commit(&reservation).unwrap();
    let refused = ledger
        .amend_budget(&key(), approx(4.0, 0.0), "pure now")
        .unwrap_err();
    assert!(
        refused.to_string().contains("cannot be composed"),
        "{refused}"
    );
    assert!(ledger.status(&key()).is_ok());
    let (_, after) = ledger
        .amend_budget(&key(), approx(4.0, 1e-6), "tighter")
        .unwrap();
    assert!(after.status.spent.amount() > 0.0, "{after:?}");
    assert_eq!(ledger.amendments().unwrap().len(), 2);
}
