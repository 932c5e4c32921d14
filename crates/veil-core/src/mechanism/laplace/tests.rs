use super::*;
use crate::mechanism::DEFAULT_CONFIDENCE;
use proptest::prelude::*;
use veil_testkit::{binomial_consistent, chi_square_cdf, seeded_rng};

fn mechanism(sensitivity: u64, epsilon: f64) -> LaplaceMechanism {
    LaplaceMechanism::new(
        L1Sensitivity::integer(sensitivity),
        Epsilon::new(epsilon).unwrap(),
    )
    .unwrap()
}

#[test]
fn scale_is_sensitivity_over_epsilon_exactly() {
    assert_eq!(mechanism(1, 0.5).scale(), Rational::integer(2));
    assert_eq!(mechanism(2, 0.5).scale(), Rational::integer(4));
    assert_eq!(mechanism(3, 2.0).scale(), Rational::new(3, 2).unwrap());
    assert_eq!(mechanism(1, 1.0).scale(), Rational::integer(1));
    // 0.1 is not a dyadic rational: the scale is Δ/ε for the f64 ε, exactly.
    let tenth = mechanism(1, 0.1).scale();
    let epsilon = Rational::from_f64_exact(0.1).unwrap();
    assert_eq!(
        UBig::from(tenth.numer()) * UBig::from(epsilon.numer()),
        UBig::from(tenth.denom()) * UBig::from(epsilon.denom()),
    );
}

#[test]
fn loss_is_the_requested_epsilon() {
    assert_eq!(
        mechanism(5, 0.25).loss(),
        PrivacyLoss::Pure(Epsilon::new(0.25).unwrap())
    );
}

#[test]
fn sensitivity_must_be_a_positive_integer() {
    let epsilon = Epsilon::new(1.0).unwrap();
    assert!(LaplaceMechanism::new(L1Sensitivity::new(0.5).unwrap(), epsilon).is_err());
    assert!(LaplaceMechanism::new(L1Sensitivity::integer(0), epsilon).is_err());
}

#[test]
fn noise_follows_the_discrete_laplace() {
    let mechanism = mechanism(3, 0.7);
    let mut rng = seeded_rng(101);
    let samples: Vec<i64> = (0..200_000)
        .map(|_| mechanism.release(1_000, &mut rng).into_value() - 1_000)
        .collect();
    let q = (-1.0 / mechanism.scale().to_f64()).exp();
    #[allow(clippy::cast_precision_loss)]
    let cdf = move |x: i64| {
        if x >= 0 {
            1.0 - q.powf(x as f64 + 1.0) / (1.0 + q)
        } else {
            q.powf(-(x as f64)) / (1.0 + q)
        }
    };
    let fit = chi_square_cdf(&samples, cdf, 50);
    assert!(fit.passes(), "{fit:?}");
}

#[test]
fn interval_covers_at_least_the_confidence() {
    for (seed, sensitivity, epsilon) in [(111, 1, 1.0), (112, 10, 0.1), (113, 1, 8.0)] {
        let mechanism = mechanism(sensitivity, epsilon);
        let half_width = mechanism.ci_half_width(DEFAULT_CONFIDENCE);
        // The exact coverage of ±k is 1 - 2q^(k+1)/(1+q): at least 95%, and k - 1 is not enough.
        let q = (-1.0 / mechanism.scale().to_f64()).exp();
        let coverage = |k: f64| 1.0 - 2.0 * q.powf(k + 1.0) / (1.0 + q);
        assert!(coverage(half_width) >= 0.95, "ε = {epsilon}");
        assert!(
            half_width == 0.0 || coverage(half_width - 1.0) < 0.95,
            "ε = {epsilon}: not the smallest"
        );
        let mut rng = seeded_rng(seed);
        let n = 100_000;
        #[allow(clippy::cast_precision_loss)]
        let inside = (0..n)
            .filter(|_| (mechanism.release(0, &mut rng).into_value().abs() as f64) <= half_width)
            .count();
        assert!(
            binomial_consistent(inside as u64, n, coverage(half_width)),
            "ε = {epsilon}: {inside}/{n}"
        );
    }
}

#[test]
fn release_never_overflows() {
    let mechanism = mechanism(1, 0.01);
    let mut rng = seeded_rng(121);
    for _ in 0..1_000 {
        let high = mechanism.release(i64::MAX, &mut rng);
        let low = mechanism.release(i64::MIN, &mut rng);
        assert!(*high.value() > i64::MAX - 100_000 && *low.value() < i64::MIN + 100_000);
    }
}

#[test]
fn std_dev_matches_variance_formula() {
    let mechanism = mechanism(1, 1.0);
    let q = (-1.0_f64).exp();
    let expected = (2.0 * q / (1.0 - q).powi(2)).sqrt();
    assert!((mechanism.std_dev() - expected).abs() < 1e-12);
}

proptest! {
    /// The privacy map: the ε actually achieved, Δ₁/scale, is never above the one charged.
    #[test]
    fn achieved_epsilon_never_exceeds_charged(sensitivity in 1..1_000_000_u64, epsilon in veil_testkit::strategies::epsilon()) {
        let mechanism = mechanism(sensitivity, epsilon);
        let scale = mechanism.scale();
        let charged = Rational::from_f64_exact(epsilon).unwrap();
        // Δ/scale <= ε  ⇔  Δ·scale_denom·ε_denom <= ε_numer·scale_numer.
        let left = UBig::from(sensitivity) * UBig::from(scale.denom()) * UBig::from(charged.denom());
        let right = UBig::from(charged.numer()) * UBig::from(scale.numer());
        prop_assert!(left <= right);
        // And the rounding costs at most one part in 2^40 of the noise.
        prop_assert!(scale.to_f64() <= sensitivity as f64 / epsilon * (1.0 + 1e-12));
    }

    /// The noise scale grows with the sensitivity (the map is monotone).
    #[test]
    fn scale_is_monotone_in_sensitivity(sensitivity in 1..1_000_000_u64, epsilon in veil_testkit::strategies::epsilon()) {
        prop_assert!(mechanism(sensitivity, epsilon).scale() <= mechanism(sensitivity + 1, epsilon).scale());
    }
}
