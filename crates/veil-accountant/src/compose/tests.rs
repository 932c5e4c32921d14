use super::*;
use proptest::prelude::*;
use veil_core::special::normal_cdf;

fn delta(value: f64) -> Delta {
    Delta::new(value).unwrap()
}

fn gaussian(sigma: f64, times: u64) -> Component {
    Component::new(
        MechanismProfile::Gaussian {
            sigma_over_sensitivity: sigma,
        },
        times,
    )
}

fn laplace(epsilon: f64, times: u64) -> Component {
    Component::new(
        MechanismProfile::Laplace {
            scale_over_sensitivity: 1.0 / epsilon,
        },
        times,
    )
}

fn epsilon_of(components: &[Component], target: f64, method: Method) -> f64 {
    compose(components, delta(target), method)
        .unwrap()
        .epsilon
        .get()
}

/// The exact ε of one Gaussian with σ/Δ = `sigma` at `delta` (Balle and Wang 2018,
/// Theorem 8), by bisection, without padding.
fn exact_gaussian_epsilon(sigma: f64, delta: f64) -> f64 {
    // e^ε·Φ(b) as exp(ε + ln Φ(b)): finite for every ε here (b > -38).
    let delta_at = |epsilon: f64| {
        normal_cdf(0.5 / sigma - epsilon * sigma)
            - (epsilon + normal_cdf(-0.5 / sigma - epsilon * sigma).ln()).exp()
    };
    let (mut low, mut high) = (0.0, 1e6);
    for _ in 0..200 {
        let middle = 0.5 * (low + high);
        if delta_at(middle) > delta {
            low = middle;
        } else {
            high = middle;
        }
    }
    high
}

/// k Gaussians with σ are one Gaussian with σ/√k: `Best` must be above that exact ε and
/// within 1% of it.
fn check_gaussian(sigma: f64, times: u64, target: f64) {
    #[allow(clippy::cast_precision_loss)]
    let exact = exact_gaussian_epsilon(sigma / (times as f64).sqrt(), target);
    let best = compose(&[gaussian(sigma, times)], delta(target), Method::Best).unwrap();
    let value = best.epsilon.get();
    assert!(
        value >= exact,
        "σ={sigma} k={times}: {value} below exact {exact}"
    );
    assert!(
        value <= exact * 1.01,
        "σ={sigma} k={times}: {value} vs exact {exact}"
    );
}

#[test]
fn gaussian_compositions_match_the_closed_form() {
    check_gaussian(1.0, 1, 1e-6);
    check_gaussian(2.0, 100, 1e-6);
    check_gaussian(20.0, 100, 1e-6);
    check_gaussian(5.0, 1000, 1e-5);
    check_gaussian(50.0, 10, 1e-9);
    check_gaussian(0.5, 3, 1e-3);
}

#[test]
fn heterogeneous_gaussians_match_the_closed_form() {
    // Gaussians with σ_i compose to one with σ = (Σ σ_i^-2)^-1/2.
    let components = [gaussian(3.0, 4), gaussian(5.0, 9), gaussian(10.0, 25)];
    let precision: f64 = 4.0 / 9.0 + 9.0 / 25.0 + 25.0 / 100.0;
    let exact = exact_gaussian_epsilon(1.0 / precision.sqrt(), 1e-6);
    let value = epsilon_of(&components, 1e-6, Method::Best);
    assert!(
        value >= exact && value <= exact * 1.01,
        "{value} vs {exact}"
    );
}

/// The exact δ of `count` randomized responses by enumerating every outcome's loss.
fn brute_kov_delta(epsilon: f64, count: u32, total: f64) -> f64 {
    let p = epsilon.exp() / (1.0 + epsilon.exp());
    (0..=count)
        .map(|flips| {
            let choose =
                (0..flips).fold(1.0, |acc, i| acc * f64::from(count - i) / f64::from(i + 1));
            let probability =
                choose * p.powi((count - flips) as i32) * (1.0 - p).powi(flips as i32);
            let loss = f64::from(count) * epsilon - 2.0 * f64::from(flips) * epsilon;
            probability * (1.0 - (total - loss).exp()).max(0.0)
        })
        .sum()
}

#[test]
fn kov_matches_enumeration_and_pld_matches_kov() {
    for (epsilon, count) in [(0.1_f64, 50_u32), (1.0, 10), (0.5, 30)] {
        for total in [0.5, 1.0, 2.0] {
            let exact = brute_kov_delta(epsilon, count, total);
            let ours = kov_delta(epsilon, u64::from(count), total);
            assert!(
                (ours - exact).abs() <= 1e-12 + 1e-9 * exact,
                "{ours} vs {exact}"
            );
        }
        let response = Component::new(
            MechanismProfile::RandomizedResponse { epsilon },
            u64::from(count),
        );
        let kov = epsilon_of(&[response], 1e-6, Method::Kov);
        assert!(kov_delta(epsilon, u64::from(count), kov) <= 1e-6);
        assert!(kov_delta(epsilon, u64::from(count), kov * 0.999) > 1e-6);
        let pld = epsilon_of(&[response], 1e-6, Method::Pld);
        assert!(
            pld >= kov * (1.0 - 1e-9) && pld <= kov * 1.01,
            "pld {pld} vs kov {kov}"
        );
    }
}

#[test]
fn pure_dp_at_delta_zero_is_the_sum() {
    let components = [laplace(0.25, 3), laplace(0.5, 1)];
    let best = compose(&components, delta(0.0), Method::Best).unwrap();
    assert!(best.epsilon.get() >= 1.25 && best.epsilon.get() <= 1.25 * (1.0 + 1e-9));
    assert!(compose(&[gaussian(1.0, 1)], delta(0.0), Method::Best).is_err());
}

#[test]
fn approximate_guarantees_consume_their_delta() {
    let approx = Component::new(
        MechanismProfile::Guarantee(PrivacyLoss::Approx(
            Epsilon::new(0.5).unwrap(),
            Delta::new(1e-6).unwrap(),
        )),
        3,
    );
    let within = epsilon_of(&[approx], 1e-5, Method::Best);
    assert!(within <= 1.5 * (1.0 + 1e-9), "{within}");
    for method in [Method::Best, Method::Pld, Method::Basic] {
        assert!(matches!(
            compose(&[approx], delta(2e-6), method),
            Err(AccountantError::NoFiniteEpsilon { .. })
        ));
    }
    assert!(matches!(
        compose(&[approx], delta(1e-5), Method::Rdp),
        Err(AccountantError::Unsupported { .. })
    ));
}

#[test]
fn best_is_the_smallest_method_and_methods_parse() {
    let components = [gaussian(8.0, 20), laplace(0.05, 10)];
    let best = epsilon_of(&components, 1e-6, Method::Best);
    for method in Method::ALL {
        if let Ok(result) = compose(&components, delta(1e-6), method) {
            assert!(best <= result.epsilon.get(), "{method}");
        }
    }
    for method in Method::ALL {
        assert_eq!(method.name().parse::<Method>().unwrap(), method);
    }
    assert!("optimal".parse::<Method>().is_err());
}

#[test]
fn subsampled_gaussian_pld_beats_rdp_and_is_never_below_it_by_much() {
    let component = Component::new(
        MechanismProfile::SubsampledGaussian {
            sigma_over_sensitivity: 1.1,
            sampling_rate: 0.01,
        },
        1000,
    );
    let pld = epsilon_of(&[component], 1e-6, Method::Pld);
    let rdp = epsilon_of(&[component], 1e-6, Method::Rdp);
    assert!(pld < rdp, "pld {pld} rdp {rdp}");
    assert!(pld > rdp * 0.7, "pld {pld} rdp {rdp}");
    assert!(compose(&[component], delta(1e-6), Method::Zcdp).is_err());
}

#[test]
fn empty_and_free_compositions_cost_nothing() {
    let free = Component::new(
        MechanismProfile::DiscreteGaussian {
            sigma: 1.0,
            sensitivity: 0,
        },
        5,
    );
    for method in Method::ALL {
        let result = compose(&[free], delta(1e-6), method).unwrap();
        assert!(result.epsilon.get() < 1e-8, "{method}");
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(12))]

    #[test]
    fn composition_is_monotone_in_count_and_noise(sigma in 1.0..20.0_f64, times in 1..50_u64) {
        let base = epsilon_of(&[gaussian(sigma, times)], 1e-6, Method::Best);
        let more = epsilon_of(&[gaussian(sigma, times + 1)], 1e-6, Method::Best);
        let noisier = epsilon_of(&[gaussian(sigma * 1.05, times)], 1e-6, Method::Best);
        prop_assert!(more >= base);
        prop_assert!(noisier <= base);
    }

    #[test]
    fn composition_is_never_below_any_part(sigma in 1.0..20.0_f64, epsilon in 0.01..1.0_f64, times in 1..20_u64) {
        let parts = [gaussian(sigma, times), laplace(epsilon, times)];
        let whole = epsilon_of(&parts, 1e-6, Method::Best);
        for part in parts {
            prop_assert!(whole >= epsilon_of(&[part], 1e-6, Method::Best));
        }
    }
}

#[test]
fn compose_delta_bounds_the_exact_gaussian_curve() {
    // 25 Gaussians with σ = 5 are one with σ = 1.
    let components = [gaussian(5.0, 25)];
    for epsilon in [0.5, 1.0, 2.0, 4.0] {
        let exact = normal_cdf(0.5 - epsilon) - f64::exp(epsilon) * normal_cdf(-0.5 - epsilon);
        let ours = compose_delta(
            &components,
            Epsilon::new(epsilon).unwrap(),
            &PldOptions::default(),
        )
        .unwrap();
        assert!(
            ours >= exact && ours <= exact * 1.001 + 1e-12,
            "ε={epsilon}: {ours} vs {exact}"
        );
    }
}

#[test]
fn pld_options_are_checked() {
    let bad = [
        PldOptions {
            discretization: Some(0.0),
            tail_mass: 1e-15,
        },
        PldOptions {
            discretization: Some(f64::NAN),
            tail_mass: 1e-15,
        },
        PldOptions {
            discretization: None,
            tail_mass: 0.5,
        },
    ];
    for options in bad {
        assert!(matches!(
            compose_with(&[gaussian(1.0, 2)], delta(1e-6), Method::Pld, &options),
            Err(AccountantError::Param(_))
        ));
    }
    let folded = PldOptions {
        discretization: None,
        tail_mass: 1e-9,
    };
    let loose = compose_with(&[gaussian(1.0, 2)], delta(1e-6), Method::Pld, &folded).unwrap();
    let tight = compose(&[gaussian(1.0, 2)], delta(1e-6), Method::Pld).unwrap();
    assert!(loose.epsilon.get() >= tight.epsilon.get() * (1.0 - 1e-6));
}

#[test]
fn extreme_parameters_finish_and_stay_sound() {
    // Almost no privacy loss: ε is tiny but the answer comes back.
    let quiet = epsilon_of(&[gaussian(1e9, 1)], 1e-6, Method::Best);
    assert!(quiet < 1e-6);
    // An enormous composition: PLD declines, Best answers from zCDP and RDP, above the
    // mean privacy loss Σρ (ε at δ < 1/2 always is).
    let times = 1_u64 << 31;
    assert!(matches!(
        compose(&[gaussian(1.0, times)], delta(1e-6), Method::Pld),
        Err(AccountantError::Unsupported { .. })
    ));
    let huge = epsilon_of(&[gaussian(1.0, times)], 1e-6, Method::Best);
    #[allow(clippy::cast_precision_loss)]
    let mean_loss = 0.5 * times as f64;
    assert!(huge > mean_loss && huge < mean_loss * 1.001, "{huge}");
}

/// Regression: losses above ~700 overflowed `exp` in the final ε solve, which returned an
/// ε below the true one. References: the exact ε of one Gaussian with σ = 1/√k at
/// δ = 1e-6, solved in log space with scipy (`norm.logcdf`, `brentq`).
#[test]
fn large_epsilons_are_solved_without_overflow() {
    for (times, exact) in [
        (1_000_u64, 649.385_089_471_481_6),
        (10_000, 5_474.365_500_194_638),
        (100_000, 51_502.172_194_660_28),
    ] {
        let value = epsilon_of(&[gaussian(1.0, times)], 1e-6, Method::Pld);
        assert!(
            value >= exact && value <= exact * 1.01,
            "k = {times}: {value} vs {exact}"
        );
    }
}

#[test]
fn zcdp_measurements_compose_with_approximate_selection() {
    // Gaussian measurements known by their ρ, plus partition selection's δ: the zCDP part
    // converts at the δ left, the approximate parts add their ε and δ.
    let zcdp = |rho: f64| {
        Component::new(
            MechanismProfile::Guarantee(PrivacyLoss::Zcdp(veil_core::Rho::new(rho).unwrap())),
            1,
        )
    };
    let approx = |epsilon: f64, d: f64| {
        Component::new(
            MechanismProfile::Guarantee(PrivacyLoss::Approx(
                Epsilon::new(epsilon).unwrap(),
                delta(d),
            )),
            1,
        )
    };
    let parts = [zcdp(0.01), zcdp(0.01), approx(f64::MIN_POSITIVE, 5e-7)];
    let ours = epsilon_of(&parts, 1e-6, Method::Zcdp);
    let expected = calibrate::rho_to_epsilon(
        veil_core::Rho::new(0.02).unwrap(),
        delta(5e-7 * (1.0 - 1e-12)),
    )
    .unwrap()
    .get();
    assert!(
        ours >= expected && ours <= expected * (1.0 + 1e-9),
        "{ours} vs {expected}"
    );
    // Best is never looser than this, and never below the zCDP part alone at the full δ.
    let best = epsilon_of(&parts, 1e-6, Method::Best);
    assert!(best <= ours);
    assert!(
        best >= calibrate::rho_to_epsilon(veil_core::Rho::new(0.02).unwrap(), delta(1e-6))
            .unwrap()
            .get()
    );
    // An approximate part with a real ε adds it.
    let with_epsilon = epsilon_of(&[zcdp(0.02), approx(0.3, 1e-7)], 1e-6, Method::Zcdp);
    let zcdp_only = calibrate::rho_to_epsilon(
        veil_core::Rho::new(0.02).unwrap(),
        delta(9e-7 * (1.0 - 1e-12)),
    )
    .unwrap()
    .get();
    assert!(
        (with_epsilon - zcdp_only - 0.3).abs() < 1e-9,
        "{with_epsilon}"
    );
    // Their own δ may not exceed the target.
    assert!(compose(&[zcdp(0.02), approx(0.1, 2e-6)], delta(1e-6), Method::Zcdp).is_err());
    // A large δ (a budget that allows much) leaves a zCDP part whose conversion is at most
    // zero: still a bound, not an error that would refuse every charge.
    let loose = epsilon_of(&[zcdp(0.0076), approx(0.1, 1e-7)], 0.5, Method::Best);
    assert!((0.1..0.2).contains(&loose), "{loose}");
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(40))]

    /// Over a wide range of noise, counts and δ, the PLD bound is never below the exact
    /// ε of the equivalent single Gaussian, and within 1% (or 1e-6) of it.
    #[test]
    fn pld_is_never_below_the_exact_gaussian(
        effective in 0.05..20.0_f64,
        times in 1..2000_u64,
        log_delta in -10.0..-3.0_f64,
    ) {
        let target = 10_f64.powf(log_delta);
        #[allow(clippy::cast_precision_loss)]
        let sigma = effective * (times as f64).sqrt();
        let exact = exact_gaussian_epsilon(effective, target);
        let ours = epsilon_of(&[gaussian(sigma, times)], target, Method::Pld);
        prop_assert!(ours >= exact, "σ={sigma} k={times} δ={target}: {ours} < {exact}");
        prop_assert!(ours <= exact * 1.01 + 1e-6, "σ={sigma} k={times} δ={target}: {ours} vs {exact}");
    }
}
