use super::*;
use veil_core::special::normal_cdf;

const STEP: f64 = 1e-3;
const TAIL: f64 = 1e-15;

fn pld(profile: MechanismProfile, direction: Direction) -> Pld {
    Pld::for_mechanism(&profile, direction, STEP, TAIL).unwrap()
}

fn total_mass(pld: &Pld) -> f64 {
    pld.masses.iter().sum::<f64>() + pld.infinity
}

/// Checks that `bound` is above `exact` at every ε of a grid, and within `slack` of it.
fn check_dominates(name: &str, bound: &Pld, exact: impl Fn(f64) -> f64, slack: f64) {
    for i in 0..60 {
        let epsilon = f64::from(i) * 0.1;
        let (ours, truth) = (bound.delta(epsilon), exact(epsilon));
        // The reference sums carry their own rounding (about 1e-16 of the mass).
        assert!(
            ours >= truth * (1.0 - 1e-12) - 1e-16,
            "{name}: δ({epsilon}) = {ours} < exact {truth}"
        );
        assert!(
            ours <= truth * (1.0 + slack) + 1e-11,
            "{name}: δ({epsilon}) = {ours} far above exact {truth}"
        );
    }
}

#[test]
fn gaussian_pld_bounds_the_exact_curve() {
    for sigma in [0.5, 1.0, 3.0] {
        let bound = pld(
            MechanismProfile::Gaussian {
                sigma_over_sensitivity: sigma,
            },
            Direction::Remove,
        );
        let exact = |epsilon: f64| {
            normal_cdf(0.5 / sigma - epsilon * sigma)
                - epsilon.exp() * normal_cdf(-0.5 / sigma - epsilon * sigma)
        };
        check_dominates("gaussian", &bound, exact, 1e-3);
        assert!(total_mass(&bound) >= 1.0);
    }
}

#[test]
fn laplace_pld_bounds_the_exact_curve() {
    // δ(ε) = 1 - exp((ε - ε₀)/2) on [-ε₀, ε₀] for the Laplace with ε₀ = Δ/b.
    for epsilon_0 in [0.1, 1.0, 3.0] {
        let bound = pld(
            MechanismProfile::Laplace {
                scale_over_sensitivity: 1.0 / epsilon_0,
            },
            Direction::Remove,
        );
        let exact = |epsilon: f64| {
            if epsilon >= epsilon_0 {
                0.0
            } else {
                -((epsilon - epsilon_0) / 2.0).exp_m1()
            }
        };
        check_dominates("laplace", &bound, exact, 1e-3);
    }
}

/// `Σ_x (P(x) - e^ε Q(x))+` over an explicit list of `P` and `Q` masses.
fn brute_delta(pairs: &[(f64, f64)], epsilon: f64) -> f64 {
    pairs
        .iter()
        .map(|&(p, q)| (p - epsilon.exp() * q).max(0.0))
        .sum()
}

#[test]
fn discrete_laplace_pld_bounds_the_exact_curve() {
    for (scale, sensitivity) in [(2.0, 1_u64), (5.0, 3), (40.0, 25)] {
        let ratio = f64::exp(-1.0 / scale);
        let pmf = |x: i64| (1.0 - ratio) / (1.0 + ratio) * ratio.powi(x.unsigned_abs() as i32);
        let shift = sensitivity as i64;
        let pairs: Vec<(f64, f64)> = (-4000..4000).map(|x| (pmf(x), pmf(x - shift))).collect();
        let bound = pld(
            MechanismProfile::DiscreteLaplace { scale, sensitivity },
            Direction::Remove,
        );
        check_dominates("discrete laplace", &bound, |e| brute_delta(&pairs, e), 1e-3);
    }
}

#[test]
fn discrete_gaussian_pld_bounds_the_exact_curve() {
    // σ = 5000 takes the large-σ (integral) path; the others the exact table.
    for (sigma, sensitivity) in [(0.8, 1_u64), (3.0, 2), (20.0, 7), (5000.0, 4000)] {
        let reach = (45.0 * sigma) as i64 + 50;
        let weight = |x: i64| (-(x as f64).powi(2) / (2.0 * sigma * sigma)).exp();
        let total: f64 = (-reach..=reach).map(weight).sum();
        let shift = sensitivity as i64;
        let pairs: Vec<(f64, f64)> = (-reach..=reach)
            .map(|x| (weight(x) / total, weight(x - shift) / total))
            .collect();
        let bound = pld(
            MechanismProfile::DiscreteGaussian { sigma, sensitivity },
            Direction::Remove,
        );
        check_dominates(
            "discrete gaussian",
            &bound,
            |e| brute_delta(&pairs, e),
            2e-3,
        );
    }
}

#[test]
fn randomized_response_pld_is_exact_on_the_grid() {
    let bound = pld(
        MechanismProfile::RandomizedResponse { epsilon: 1.0 },
        Direction::Remove,
    );
    let p = 1.0_f64.exp() / (1.0 + 1.0_f64.exp());
    let pairs = [(p, 1.0 - p), (1.0 - p, p)];
    check_dominates(
        "randomized response",
        &bound,
        |e| brute_delta(&pairs, e),
        1e-3,
    );
    assert!(bound.delta(1.0 + 2.0 * STEP) == 0.0);
}

/// The exact δ(ε) of the Poisson-subsampled Gaussian in both directions, written out
/// independently: the loss is monotone in x, so each δ is a difference of normal tails
/// at the crossing point `x*` where `P(x)/Q(x) = e^ε`.
fn subsampled_exact(sigma: f64, rate: f64, epsilon: f64) -> (f64, f64) {
    let sf = |x: f64| 0.5 * libm_erfc(x / (sigma * core::f64::consts::SQRT_2));
    // Remove: P = (1-q)N(0) + qN(1), Q = N(0); P/Q = (1-q) + q·exp((2x-1)/2σ²).
    let remove = if (epsilon.exp() - (1.0 - rate)) <= 0.0 {
        1.0 - epsilon.exp()
    } else {
        let x = sigma * sigma * ((epsilon.exp() - (1.0 - rate)) / rate).ln() + 0.5;
        (1.0 - rate) * sf(x) + rate * sf(x - 1.0) - epsilon.exp() * sf(x)
    };
    // Add: P = N(0), Q = mixture; P/Q > e^ε where (1-q) + q·exp(...) < e^-ε.
    let add = if (-epsilon).exp() - (1.0 - rate) <= 0.0 {
        0.0
    } else {
        let x = sigma * sigma * (((-epsilon).exp() - (1.0 - rate)) / rate).ln() + 0.5;
        (1.0 - sf(x)) - epsilon.exp() * ((1.0 - rate) * (1.0 - sf(x)) + rate * (1.0 - sf(x - 1.0)))
    };
    (remove, add)
}

fn libm_erfc(x: f64) -> f64 {
    2.0 * veil_core::special::normal_sf(x * core::f64::consts::SQRT_2)
}

#[test]
fn subsampled_gaussian_pld_bounds_both_directions() {
    for (sigma, rate) in [(0.8, 0.3), (1.1, 0.01), (2.0, 0.9)] {
        let profile = MechanismProfile::SubsampledGaussian {
            sigma_over_sensitivity: sigma,
            sampling_rate: rate,
        };
        let remove = pld(profile, Direction::Remove);
        let add = pld(profile, Direction::Add);
        check_dominates(
            "subsampled remove",
            &remove,
            |e| subsampled_exact(sigma, rate, e).0,
            1e-3,
        );
        check_dominates(
            "subsampled add",
            &add,
            |e| subsampled_exact(sigma, rate, e).1,
            1e-3,
        );
    }
}

#[test]
fn approximate_guarantee_keeps_its_delta_at_infinity() {
    let epsilon = veil_core::Epsilon::new(0.5).unwrap();
    let delta = veil_core::Delta::new(1e-5).unwrap();
    let bound = pld(
        MechanismProfile::Guarantee(PrivacyLoss::Approx(epsilon, delta)),
        Direction::Remove,
    );
    assert!((bound.infinity() - 1e-5).abs() < 1e-18);
    assert!(bound.delta(0.5 + 2.0 * STEP) <= 1e-5 + 1e-15);
    assert!(bound.epsilon(1e-6).is_none());
    let zcdp = MechanismProfile::Guarantee(PrivacyLoss::Zcdp(veil_core::Rho::new(0.1).unwrap()));
    assert!(Pld::for_mechanism(&zcdp, Direction::Remove, STEP, TAIL).is_err());
}

#[test]
fn fft_and_direct_convolution_agree() {
    let first: Vec<f64> = (0..3000).map(|i| f64::exp(-f64::from(i) / 300.0)).collect();
    let second: Vec<f64> = (0..2500)
        .map(|i| f64::exp(-(f64::from(i) - 1000.0).powi(2) / 1e5))
        .collect();
    let mut planner = FftPlanner::new();
    let (fast, bound) = convolve(&first, &second, &mut planner, DIRECT_LIMIT);
    let mut direct = vec![0.0; first.len() + second.len() - 1];
    for (i, a) in first.iter().enumerate() {
        for (j, b) in second.iter().enumerate() {
            direct[i + j] += a * b;
        }
    }
    let error: f64 = fast.iter().zip(&direct).map(|(x, y)| (x - y).abs()).sum();
    assert!(
        bound > 0.0 && error <= bound,
        "error {error} above the bound {bound}"
    );
}

#[test]
fn epsilon_and_delta_are_consistent() {
    let single = pld(
        MechanismProfile::Gaussian {
            sigma_over_sensitivity: 0.7,
        },
        Direction::Remove,
    );
    let mut planner = FftPlanner::new();
    let composed = single.self_compose(10, TAIL, &mut planner);
    assert!(total_mass(&composed) >= 1.0 - 1e-12);
    for target in [1e-3, 1e-6, 1e-9] {
        let epsilon = composed.epsilon(target).unwrap();
        assert!(composed.delta(epsilon) <= target, "δ({epsilon}) > {target}");
        assert!(composed.delta(epsilon - 1e-3) > target);
    }
}

#[test]
fn self_composition_matches_repeated_composition() {
    let single = pld(
        MechanismProfile::RandomizedResponse { epsilon: 0.3 },
        Direction::Remove,
    );
    let mut planner = FftPlanner::new();
    let squared = single.self_compose(5, TAIL, &mut planner);
    let mut chained = Pld::identity(STEP);
    for _ in 0..5 {
        chained = chained.compose(&single, &mut planner);
    }
    // They differ only by the FFT's error bound, folded to +∞ on one path.
    for epsilon in [0.0, 0.3, 0.9] {
        assert!((squared.delta(epsilon) - chained.delta(epsilon)).abs() < 1e-10);
    }
}
