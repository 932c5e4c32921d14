use super::*;
use crate::ChargeItem;

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

#[test]
fn periods_parse_display_and_window() {
    let period: BudgetPeriod = "30d".parse().unwrap();
    assert_eq!(period.seconds(), 30 * 86_400);
    assert_eq!(period.to_string(), "30d");
    assert_eq!("2w".parse::<BudgetPeriod>().unwrap().to_string(), "2w");
    assert_eq!("90m".parse::<BudgetPeriod>().unwrap().to_string(), "90m");
    assert_eq!("61s".parse::<BudgetPeriod>().unwrap().to_string(), "61s");
    for bad in ["", "30", "d", "30x", "0d", "-1d"] {
        assert!(bad.parse::<BudgetPeriod>().is_err(), "{bad}");
    }
    let day = BudgetPeriod::from_seconds(86_400).unwrap();
    assert_eq!(day.window(1000, 1000), (1000, 87_400));
    assert_eq!(day.window(1000, 87_400), (87_400, 173_800));
    assert_eq!(day.window(1000, 0), (1000, 87_400));
}

#[test]
fn zcdp_budgets_add_rho_and_refuse_approximate_charges() {
    let total = PrivacyBudget::Zcdp { rho: 1.0 };
    let spent = cost(
        &total,
        &[
            "pure:epsilon=1".parse().unwrap(),
            "gaussian:sigma=1".parse().unwrap(),
        ],
    )
    .unwrap();
    assert!(spent.amount() >= 1.0 && spent.amount() < 1.0 + 1e-9);
    assert!(matches!(
        check_charge(&key(), &total, &[], &charge("approx:epsilon=1,delta=1e-9")),
        Err(BudgetError::Incompatible { .. })
    ));
    assert!(matches!(
        check_charge(
            &key(),
            &total,
            &[],
            &charge("subsampled-gaussian:sigma=1,rate=0.1")
        ),
        Err(BudgetError::Incompatible { .. })
    ));
}

#[test]
fn a_refused_charge_says_requested_spent_and_remaining() {
    let total = PrivacyBudget::Approx {
        epsilon: 1.0,
        delta: 0.0,
    };
    let spent: Vec<Component> = vec![
        "laplace:epsilon=0.5".parse().unwrap(),
        "laplace:epsilon=0.25".parse().unwrap(),
    ];
    let error = check_charge(&key(), &total, &spent, &charge("laplace:epsilon=0.5")).unwrap_err();
    let BudgetError::Exhausted(details) = &error else {
        panic!("{error}")
    };
    assert!((details.requested.amount() - 0.5).abs() < 1e-9);
    assert!((details.spent.amount() - 0.75).abs() < 1e-9);
    assert!((details.remaining.amount() - 0.25).abs() < 1e-9);
    let message = error.to_string();
    assert!(message.contains("this run needs ε = 0.5"), "{message}");
    assert!(message.contains("ε = 0.75 is spent"), "{message}");
    assert!(message.contains("ε = 0.25 remains of ε = 1"), "{message}");
    // A pure budget names no δ.
    assert!(!message.contains('δ'), "{message}");
    assert!(check_charge(&key(), &total, &spent, &charge("laplace:epsilon=0.25")).is_ok());
    assert!(matches!(
        check_charge(&key(), &total, &[], &charge("gaussian:sigma=1")),
        Err(BudgetError::Incompatible { .. })
    ));
}

#[test]
fn spending_is_the_composition_not_the_sum() {
    let total = PrivacyBudget::Approx {
        epsilon: 3.0,
        delta: 1e-6,
    };
    let components: Vec<Component> = vec!["gaussian:sigma=20,times=100".parse().unwrap()];
    let spent = cost(&total, &components).unwrap();
    // The naive sum at δ/100 each is above 20; the composition is about 2.25.
    assert!(spent.amount() < 2.3 && spent.amount() > 2.25, "{spent:?}");
    assert!((total.remaining_after(&spent).amount() - (3.0 - spent.amount())).abs() < 1e-15);
    assert!(
        PrivacyBudget::Approx {
            epsilon: -1.0,
            delta: 0.0
        }
        .validate()
        .is_err()
    );
    assert!(
        PrivacyBudget::Approx {
            epsilon: 1.0,
            delta: 1.0
        }
        .validate()
        .is_err()
    );
    assert!(PrivacyBudget::Zcdp { rho: f64::NAN }.validate().is_err());
}

#[test]
fn budget_messages_print_extreme_numbers_compactly() {
    // ε = 1e308 printed as 309 digits and δ = 2.2e-308 as over 300 characters before.
    let total = PrivacyBudget::Approx {
        epsilon: 1e308,
        delta: 2.2e-308,
    };
    assert_eq!(total.to_string(), "ε = 1e308, δ = 2.2e-308");
    let tiny = PrivacyBudget::Approx {
        epsilon: 2.2e-308,
        delta: 0.0,
    };
    let error = check_charge(&key(), &tiny, &[], &charge("laplace:epsilon=1e-10")).unwrap_err();
    let message = error.to_string();
    assert!(message.len() < 250, "{message}");
    assert!(message.contains("needs ε = 1e-10"), "{message}");
    assert!(message.contains("of ε = 2.2e-308"), "{message}");
    assert_eq!(
        PrivacyBudget::Zcdp { rho: 0.123_456 }.to_string(),
        "ρ = 0.1235 (zCDP)"
    );
    assert!(ChargeState::Reserved.counts() && ChargeState::Committed.counts());
    assert!(!ChargeState::Aborted.counts() && !ChargeState::Cancelled.counts());
    assert_eq!("cancelled".parse(), Ok(ChargeState::Cancelled));
}
