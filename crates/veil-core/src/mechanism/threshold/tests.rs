use super::*;
use veil_testkit::seeded_rng;

fn eps(value: f64) -> Epsilon {
    Epsilon::new(value).unwrap()
}

fn delta(value: f64) -> Delta {
    Delta::new(value).unwrap()
}

#[test]
fn laplace_threshold_is_the_smallest_meeting_delta() {
    let selection = ThresholdMechanism::laplace(1, eps(1.0), delta(1e-6)).unwrap();
    // δ = P[Z >= τ - 1] = e^{-(τ-1)} / (1 + e^{-1}) <= 1e-6  ⇔  τ - 1 >= 13.5  ⇔  τ = 15.
    assert_eq!(selection.threshold(), 15);
    let q = (-1.0_f64).exp();
    let achieved = (-(14.0_f64)).exp() / (1.0 + q);
    let previous = (-(13.0_f64)).exp() / (1.0 + q);
    assert!(achieved <= 1e-6 && previous > 1e-6);
}

#[test]
fn gaussian_wins_for_many_groups_per_unit() {
    // Each calibrated to the same (ε, δ) = (1, 1e-6) on its own: Laplace thresholding
    // directly; Gaussian thresholding with half of δ for the threshold and the ρ that the
    // other half converts to.
    let rho = crate::calibrate::epsilon_to_rho(eps(1.0), delta(5e-7)).unwrap();
    for (max_partitions, gaussian_better) in [(1_u64, false), (10, true), (100, true)] {
        let laplace = ThresholdMechanism::laplace(max_partitions, eps(1.0), delta(1e-6)).unwrap();
        let gaussian = ThresholdMechanism::gaussian(max_partitions, rho, delta(5e-7)).unwrap();
        assert_eq!(
            gaussian.units_for_half() < laplace.units_for_half(),
            gaussian_better,
            "L0 = {max_partitions}: Gaussian {} vs Laplace {}",
            gaussian.units_for_half(),
            laplace.units_for_half()
        );
    }
}

#[test]
fn small_groups_stay_hidden_and_large_ones_appear() {
    let selection = ThresholdMechanism::gaussian(3, Rho::new(0.1).unwrap(), delta(1e-7)).unwrap();
    let mut rng = seeded_rng(201);
    let released_single = (0..100_000)
        .filter(|_| selection.release(1, &mut rng).is_some())
        .count();
    assert_eq!(
        released_single, 0,
        "a group of one unit must (practically) never be released"
    );
    let large = 10 * selection.threshold();
    assert!((0..1_000).all(|_| selection.release(large, &mut rng).is_some()));
}

#[test]
fn release_probability_matches_simulation() {
    let selection = ThresholdMechanism::laplace(2, eps(0.5), delta(1e-5)).unwrap();
    let units = selection.units_for_half();
    let p = selection.release_probability(units);
    let mut rng = seeded_rng(202);
    let n = 100_000_u64;
    let released = (0..n)
        .filter(|_| {
            selection
                .release(i64::try_from(units).unwrap(), &mut rng)
                .is_some()
        })
        .count();
    assert!(
        veil_testkit::binomial_consistent(released as u64, n, p),
        "{released}/{n} vs {p}"
    );
    assert!(p >= 0.5 && selection.release_probability(units - 1) < 0.5);
}

#[test]
fn parameters_are_checked() {
    assert!(ThresholdMechanism::laplace(0, eps(1.0), delta(1e-6)).is_err());
    assert!(ThresholdMechanism::laplace(1, eps(1.0), delta(0.0)).is_err());
    assert!(ThresholdMechanism::gaussian(1, Rho::new(1.0).unwrap(), delta(0.0)).is_err());
}
