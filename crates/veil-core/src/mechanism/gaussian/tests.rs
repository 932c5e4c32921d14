use super::*;
use crate::calibrate::analytic_gaussian_sigma;
use crate::mechanism::DEFAULT_CONFIDENCE;
use proptest::prelude::*;
use veil_testkit::{binomial_consistent, seeded_rng};

#[test]
fn zcdp_sigma_is_sensitivity_over_root_two_rho() {
    let mechanism =
        GaussianMechanism::new_zcdp(L2Sensitivity::integer(1), Rho::new(0.5).unwrap()).unwrap();
    assert_eq!(mechanism.sigma_squared(), Rational::integer(1));
    let mechanism =
        GaussianMechanism::new_zcdp(L2Sensitivity::integer(3), Rho::new(0.125).unwrap()).unwrap();
    assert_eq!(mechanism.sigma_squared(), Rational::integer(36));
    assert_eq!(
        mechanism.loss(),
        PrivacyLoss::Zcdp(Rho::new(0.125).unwrap())
    );
}

#[test]
fn squared_sensitivity_allows_real_l2_bounds() {
    // A unit adding at most 5 to each of 3 groups: Δ₂² = 3·25 = 75, Δ₂ ≈ 8.66.
    let mechanism = GaussianMechanism::new_zcdp_squared(75, Rho::new(0.5).unwrap()).unwrap();
    assert_eq!(mechanism.sigma_squared(), Rational::integer(75));
    assert_eq!(mechanism.sensitivity(), 9);
    assert!(GaussianMechanism::new_zcdp_squared(0, Rho::new(0.5).unwrap()).is_err());
    assert_eq!(ceil_sqrt(1), 1);
    assert_eq!(ceil_sqrt(0), 0);
    assert_eq!(
        ceil_sqrt(u128::from(u64::MAX) * u128::from(u64::MAX)),
        u64::MAX
    );
}

#[test]
fn approx_calibration_is_close_to_the_analytic_gaussian() {
    let epsilon = Epsilon::new(1.0).unwrap();
    let delta = Delta::new(1e-5).unwrap();
    let mechanism =
        GaussianMechanism::new_approx(L2Sensitivity::integer(1), epsilon, delta).unwrap();
    let analytic = analytic_gaussian_sigma(L2Sensitivity::integer(1), epsilon, delta).unwrap();
    assert!(
        (mechanism.sigma() / analytic - 1.0).abs() < 0.02,
        "{} vs {analytic}",
        mechanism.sigma()
    );
    let achieved = discrete_gaussian_delta(
        L2Sensitivity::integer(1),
        mechanism.sigma_squared().to_f64(),
        epsilon,
    )
    .unwrap();
    assert!(achieved <= 1e-5);
    assert!(
        GaussianMechanism::new_approx(L2Sensitivity::integer(1), epsilon, Delta::new(0.0).unwrap())
            .is_err()
    );
}

#[test]
fn interval_covers_at_least_the_confidence() {
    let mechanism =
        GaussianMechanism::new_zcdp(L2Sensitivity::integer(1), Rho::new(0.02).unwrap()).unwrap();
    let half_width = mechanism.ci_half_width(DEFAULT_CONFIDENCE);
    assert!(
        (half_width - (5.0 * 1.959_963_984_540_054_f64).ceil()).abs() < 1e-9,
        "{half_width}"
    );
    let mut rng = seeded_rng(131);
    let n = 100_000_u64;
    #[allow(clippy::cast_precision_loss)]
    let inside = (0..n)
        .filter(|_| (mechanism.release(0, &mut rng).into_value().abs() as f64) <= half_width)
        .count() as u64;
    // Coverage is at least 95%: test against 95% one-sidedly at the usual rate.
    assert!(
        inside as f64 / n as f64 >= 0.95 || binomial_consistent(inside, n, 0.95),
        "{inside}/{n}"
    );
}

proptest! {
    #[test]
    fn achieved_rho_never_exceeds_charged(sensitivity in 1..10_000_u64, rho in 0.001..10.0_f64) {
        let mechanism = GaussianMechanism::new_zcdp(L2Sensitivity::integer(sensitivity), Rho::new(rho).unwrap()).unwrap();
        // Δ²/(2σ²) <= ρ  ⇔  Δ²·σ²_denom·ρ_denom <= 2·ρ_numer·σ²_numer.
        let sigma_squared = mechanism.sigma_squared();
        let charged = Rational::from_f64_exact(rho).unwrap();
        let left = UBig::from(sensitivity) * UBig::from(sensitivity) * UBig::from(sigma_squared.denom()) * UBig::from(charged.denom());
        let right = UBig::from(2_u8) * UBig::from(charged.numer()) * UBig::from(sigma_squared.numer());
        prop_assert!(left <= right);
    }
}
