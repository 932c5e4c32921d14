use super::*;
use veil_testkit::seeded_rng;

/// A uniform draw in `[0, 1)`.
fn uniform(rng: &mut impl Rng) -> f64 {
    #[allow(clippy::cast_precision_loss)]
    let value = (rng.next_u64() >> 11) as f64;
    value / 9_007_199_254_740_992.0
}

/// Randomized response on one bit at `epsilon`: the true bit with probability
/// `e^ε / (1 + e^ε)`. Exactly ε-DP, and tight on the event "output is 1".
fn randomized_response(rng: &mut impl Rng, bit: bool, epsilon: f64) -> f64 {
    let keep = epsilon.exp() / (1.0 + epsilon.exp());
    let output = if uniform(rng) < keep { bit } else { !bit };
    f64::from(u8::from(output))
}

fn zero() -> Delta {
    Delta::new(0.0).unwrap()
}

#[test]
fn identical_distributions_give_a_small_bound() {
    let mut rng = seeded_rng(1);
    let first: Vec<f64> = (0..20_000).map(|_| uniform(&mut rng).floor()).collect();
    let second: Vec<f64> = (0..20_000)
        .map(|_| (uniform(&mut rng) * 10.0).floor())
        .collect();
    let same: Vec<f64> = (0..20_000)
        .map(|_| (uniform(&mut rng) * 10.0).floor())
        .collect();
    let bound = epsilon_lower_bound(&second, &same, zero(), Confidence::DEFAULT).unwrap();
    assert!(bound.epsilon < 0.05, "{bound:?}");
    // A constant against itself: every event has probability 0 or 1 on both sides.
    let bound = epsilon_lower_bound(&first, &first, zero(), Confidence::DEFAULT).unwrap();
    assert!(bound.epsilon.abs() < 1e-12, "{bound:?}");
}

#[test]
fn randomized_response_is_bounded_close_to_its_epsilon() {
    let mut rng = seeded_rng(2);
    let epsilon = 1.0;
    let audit = audit_sampler(
        400_000,
        Claim::pure(Epsilon::new(epsilon).unwrap()),
        Confidence::new(1.0 - 1e-7).unwrap(),
        &mut rng,
        |rng| randomized_response(rng, true, epsilon),
        |rng| randomized_response(rng, false, epsilon),
    )
    .unwrap();
    assert_eq!(audit.verdict, Verdict::Pass, "{audit:?}");
    assert!(audit.bound.epsilon > 0.95, "{audit:?}");
    assert!(audit.bound.epsilon <= epsilon, "{audit:?}");
}

#[test]
fn an_understated_epsilon_fails() {
    let mut rng = seeded_rng(3);
    let audit = audit_sampler(
        100_000,
        Claim::pure(Epsilon::new(1.0).unwrap()),
        Confidence::new(1.0 - 1e-7).unwrap(),
        &mut rng,
        |rng| randomized_response(rng, false, 2.0),
        |rng| randomized_response(rng, true, 2.0),
    )
    .unwrap();
    assert_eq!(audit.verdict, Verdict::Fail, "{audit:?}");
    assert!(audit.bound.epsilon > 1.5, "{audit:?}");
}

/// The guarantee itself: over many audits of a mechanism that is exactly ε-DP, the bound
/// exceeds ε at most `α` of the time. With 4000 audits at α = 0.05 the count of false
/// failures is at most Bin(4000, 0.05); 290 is beyond its 1 − 1e-7 quantile.
#[test]
fn false_failures_stay_under_alpha() {
    let mut rng = seeded_rng(4);
    let epsilon = 0.5;
    let claim = Claim::pure(Epsilon::new(epsilon).unwrap());
    let confidence = Confidence::new(0.95).unwrap();
    let mut failures = 0;
    for _ in 0..4000 {
        let audit = audit_sampler(
            400,
            claim,
            confidence,
            &mut rng,
            |rng| randomized_response(rng, true, epsilon),
            |rng| randomized_response(rng, false, epsilon),
        )
        .unwrap();
        failures += usize::from(audit.verdict == Verdict::Fail);
    }
    assert!(failures <= 290, "{failures} false failures of 4000");
}

#[test]
fn absent_outputs_are_events_too() {
    // Released with probability 1 on one input and never on the other: a group released
    // without partition selection.
    let first = vec![f64::NEG_INFINITY; 10_000];
    let second = vec![5.0; 10_000];
    let bound = epsilon_lower_bound(&first, &second, zero(), Confidence::DEFAULT).unwrap();
    assert!(bound.epsilon > 6.0, "{bound:?}");
    assert_eq!(bound.likely_hits, 5_000);
    assert_eq!(bound.unlikely_hits, 0);
    // δ forgives exactly such an event when it is rare enough.
    let delta = Delta::new(0.999_999).unwrap();
    let bound = epsilon_lower_bound(&first, &second, delta, Confidence::DEFAULT).unwrap();
    assert!(bound.epsilon.abs() < 1e-12, "{bound:?}");
}

#[test]
fn the_event_is_chosen_on_the_first_half_only() {
    // The first halves differ, the second halves are identical: the chosen event finds no
    // difference where the bound is computed.
    let mut first = vec![1.0; 1000];
    first.extend(vec![0.0; 1000]);
    let mut second = vec![0.0; 1000];
    second.extend(vec![0.0; 1000]);
    let bound = epsilon_lower_bound(&first, &second, zero(), Confidence::DEFAULT).unwrap();
    assert!(bound.epsilon.abs() < 1e-12, "{bound:?}");
}

#[test]
fn nan_and_tiny_samples_are_refused() {
    let nan = [1.0, f64::NAN, 2.0];
    let fine = [1.0, 2.0, 3.0];
    assert!(matches!(
        epsilon_lower_bound(&nan, &fine, zero(), Confidence::DEFAULT),
        Err(AuditError::NotANumber { sample: "first" })
    ));
    assert!(matches!(
        epsilon_lower_bound(&fine, &nan, zero(), Confidence::DEFAULT),
        Err(AuditError::NotANumber { sample: "second" })
    ));
    assert!(matches!(
        epsilon_lower_bound(&[1.0], &fine, zero(), Confidence::DEFAULT),
        Err(AuditError::Option {
            option: "--trials",
            ..
        })
    ));
}

#[test]
fn confidence_is_checked_and_split() {
    for bad in [0.0, 1.0, -0.5, 2.0, f64::NAN] {
        assert!(Confidence::new(bad).is_err(), "{bad}");
    }
    let split = Confidence::DEFAULT.split(10);
    assert!((split.alpha() - 0.001).abs() < 1e-15);
    assert!((Confidence::DEFAULT.split(0).alpha() - 0.01).abs() < 1e-15);
}
