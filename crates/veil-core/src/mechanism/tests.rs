use super::*;
use proptest::prelude::*;

fn fixed_point(lower: f64, upper: f64, step: &str) -> FixedPoint {
    let granularity = Granularity::new(step.parse().unwrap()).unwrap();
    FixedPoint::new(Bounds::new(lower, upper).unwrap(), granularity).unwrap()
}

#[test]
fn bounds_round_exactly_to_steps() {
    let grid = fixed_point(0.0, 100.0, "1/1024");
    assert_eq!(grid.bounds_in_steps(), (0, 102_400));
    assert_eq!(grid.max_abs_steps(), 102_400);
    let grid = fixed_point(-2.5, 0.3, "0.1");
    // 0.3 as an f64 is a hair below 0.3 but still rounds to 3 steps; -2.5 is -25 steps.
    assert_eq!(grid.bounds_in_steps(), (-25, 3));
    assert_eq!(grid.max_abs_steps(), 25);
    assert_eq!(grid.width_steps(), 28);
}

#[test]
fn values_clamp_in_integers() {
    let grid = fixed_point(0.0, 10.0, "0.5");
    assert_eq!(grid.to_steps(3.2), Some(6));
    assert_eq!(grid.to_steps(3.25), Some(7));
    assert_eq!(grid.to_steps(-4.0), Some(0));
    assert_eq!(grid.to_steps(1e300), Some(20));
    assert_eq!(grid.to_steps(f64::INFINITY), Some(20));
    assert_eq!(grid.to_steps(f64::NEG_INFINITY), Some(0));
    assert_eq!(grid.to_steps(f64::NAN), None);
    assert!((grid.to_real(7) - 3.5).abs() < 1e-15);
}

#[test]
fn default_granularity_is_a_fine_power_of_two() {
    let granularity = Granularity::for_bounds(Bounds::new(0.0, 100.0).unwrap());
    assert_eq!(granularity.step(), Rational::new(1, 1 << 14).unwrap());
    let granularity = Granularity::for_bounds(Bounds::new(0.0, 0.0).unwrap());
    assert_eq!(granularity, Granularity::unit());
    assert!(Granularity::power_of_two(101).is_err());
    assert!(Granularity::new(Rational::integer(0)).is_err());
}

#[test]
fn bounds_too_far_for_the_grid_are_refused() {
    let granularity = Granularity::power_of_two(-60).unwrap();
    let error = FixedPoint::new(Bounds::new(0.0, 1e6).unwrap(), granularity).unwrap_err();
    assert!(error.to_string().contains("coarser granularity"), "{error}");
}

#[test]
fn released_values_scale_to_real_units() {
    let mut rng = veil_testkit::seeded_rng(5);
    let mechanism = LaplaceMechanism::new(
        crate::L1Sensitivity::integer(4),
        crate::Epsilon::new(1.0).unwrap(),
    )
    .unwrap();
    let released = mechanism.release(40, &mut rng);
    let real = released.to_real(Granularity::new("1/4".parse().unwrap()).unwrap());
    #[allow(clippy::cast_precision_loss)]
    let expected = *released.value() as f64 / 4.0;
    assert!((real.value() - expected).abs() < 1e-12);
    assert!((real.std_dev() - released.std_dev() / 4.0).abs() < 1e-12);
    assert!((real.ci_half_width() - released.ci_half_width() / 4.0).abs() < 1e-12);
    assert_eq!(real.loss(), released.loss());
    let mapped = released.map(|value| value.max(0));
    assert!(*mapped.value() >= 0);
}

#[test]
fn every_release_carries_the_mechanisms_noise_and_interval() {
    let mut rng = veil_testkit::seeded_rng(9);
    let laplace = LaplaceMechanism::new(
        crate::L1Sensitivity::integer(15),
        crate::Epsilon::new(0.3).unwrap(),
    )
    .unwrap();
    let gaussian = GaussianMechanism::new_zcdp(
        crate::L2Sensitivity::integer(7),
        crate::Rho::new(0.02).unwrap(),
    )
    .unwrap();
    for _ in 0..3 {
        let released = laplace.release(100, &mut rng);
        assert_eq!(released.std_dev().to_bits(), laplace.std_dev().to_bits());
        assert_eq!(
            released.ci_half_width().to_bits(),
            laplace.ci_half_width(DEFAULT_CONFIDENCE).to_bits()
        );
        let released = gaussian.release(100, &mut rng);
        assert_eq!(released.std_dev().to_bits(), gaussian.sigma().to_bits());
        assert_eq!(
            released.ci_half_width().to_bits(),
            gaussian.ci_half_width(DEFAULT_CONFIDENCE).to_bits()
        );
    }
    // The stored values are the sampler's: σ = ⌈√σ²⌉ in floating point, the interval wider
    // than σ·1.96.
    let sigma_squared = gaussian.sigma_squared().to_f64();
    assert!(gaussian.sigma() >= sigma_squared.sqrt());
    assert!(gaussian.ci_half_width(DEFAULT_CONFIDENCE) >= 1.959_96 * gaussian.sigma());
}

proptest! {
    #[test]
    fn steps_stay_inside_bounds(lower in -1e6..1e6_f64, width in 0.0..1e6_f64, value in proptest::num::f64::ANY) {
        let bounds = Bounds::new(lower, lower + width).unwrap();
        let grid = FixedPoint::new(bounds, Granularity::for_bounds(bounds)).unwrap();
        let (low, high) = grid.bounds_in_steps();
        if let Some(steps) = grid.to_steps(value) {
            prop_assert!(steps >= low && steps <= high);
            prop_assert!(steps.unsigned_abs() <= grid.max_abs_steps());
        } else {
            prop_assert!(value.is_nan());
        }
    }
}
