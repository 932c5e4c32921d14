use super::*;
use veil_core::Bounds;

fn duchi(eps: f64) -> Duchi {
    let range = NumericRange::new(Bounds::new(0.0, 100.0).unwrap()).unwrap();
    Duchi::new(range, Epsilon::new(eps).unwrap()).unwrap()
}

#[test]
fn slope_is_private_and_tight() {
    for eps in [1e-3, 0.5, 1.0, 4.0, 30.0] {
        let mechanism = duchi(eps);
        let expected = (eps.exp() - 1.0) / (eps.exp() + 1.0);
        #[allow(clippy::cast_precision_loss)]
        let slope = mechanism.slope() as f64 / 1_099_511_627_776.0;
        assert!(
            slope <= expected + 1e-15 && slope > expected - 1e-11,
            "{eps}"
        );
        assert!(mechanism.actual_epsilon() <= eps);
    }
}

#[test]
fn reports_are_unbiased() {
    let mechanism = duchi(1.0);
    let mut rng = veil_testkit::seeded_rng(8);
    let n = 200_000;
    let mut sum = 0.0;
    for _ in 0..n {
        let (positive, clamped) = mechanism.randomize(75.0, &mut rng).unwrap();
        assert!(!clamped);
        sum += mechanism.value(positive);
    }
    let mean = sum / f64::from(n);
    let std_error = (mechanism.variance_at(0.5) / f64::from(n)).sqrt();
    assert!((mean - 0.5).abs() < 5.0 * std_error, "{mean}");
}

#[test]
fn clamps_and_refuses_nan() {
    let mechanism = duchi(1.0);
    let mut rng = veil_testkit::seeded_rng(9);
    assert!(mechanism.randomize(1e9, &mut rng).unwrap().1);
    assert_eq!(
        mechanism.randomize(f64::NAN, &mut rng),
        Err(LdpError::NotANumber)
    );
}
