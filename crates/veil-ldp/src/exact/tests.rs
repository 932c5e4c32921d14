use super::*;

fn epsilon(value: f64) -> Epsilon {
    Epsilon::new(value).unwrap()
}

#[test]
fn exp_lower_bound_is_below_and_close_to_exp() {
    for eps in [1e-6, 0.01, 0.5, 1.0, 2.0, 4.0, 10.0, 40.0] {
        let bound = ExpLower::of_epsilon(epsilon(eps)).unwrap().to_f64();
        let exact = libm::exp(eps);
        assert!(bound <= exact * (1.0 + 1e-15), "ε={eps}: {bound} > {exact}");
        assert!(
            bound >= exact * (1.0 - 1e-14),
            "ε={eps}: {bound} far below {exact}"
        );
    }
}

#[test]
fn exp_lower_bound_is_rigorous_against_a_rational_upper_bound() {
    // 2.718281828459045 < e < 2.71828182845904524, and L is within 2^-120 of e.
    let bound = ExpLower::of_epsilon(epsilon(1.0)).unwrap();
    let above = UBig::from(271_828_182_845_904_524_u64);
    let below = UBig::from(2_718_281_828_459_045_u64);
    assert!(!bound.bounds_ratio(&above, &UBig::from(100_000_000_000_000_000_u64)));
    assert!(bound.bounds_ratio(&below, &UBig::from(1_000_000_000_000_000_u64)));
}

#[test]
fn epsilon_range_is_enforced() {
    for bad in [1e-7, 40.5, 1e9] {
        assert!(matches!(
            ExpLower::of_epsilon(epsilon(bad)),
            Err(LdpError::Epsilon { .. })
        ));
    }
}

#[test]
fn prob64_round_trips_as_text() {
    let p = Prob64::from_numerator(12_345);
    assert_eq!(p.to_string(), "12345/2^64");
    assert_eq!("12345/2^64".parse::<Prob64>().unwrap(), p);
    assert!("0.5".parse::<Prob64>().is_err());
    assert!("1/2".parse::<Prob64>().is_err());
}

#[test]
fn bernoulli_mask_has_the_right_rate_per_lane() {
    let mut rng = veil_testkit::seeded_rng(12);
    for p in [
        Prob64::HALF,
        Prob64::from_numerator(1 << 62),
        Prob64::from_numerator(4_962_966_270_476_460_000),
    ] {
        let trials = 20_000_u64;
        let mut per_lane = [0_u64; 64];
        for _ in 0..trials {
            let mask = bernoulli_mask(&mut rng, p);
            for (lane, count) in per_lane.iter_mut().enumerate() {
                *count += (mask >> lane) & 1;
            }
        }
        for &count in &per_lane {
            assert!(
                veil_testkit::binomial_consistent(count, trials, p.to_f64()),
                "{p}"
            );
        }
        let total: u64 = per_lane.iter().sum();
        assert!(veil_testkit::binomial_consistent(
            total,
            trials * 64,
            p.to_f64()
        ));
    }
    assert_eq!(bernoulli_mask(&mut rng, Prob64::from_numerator(0)), 0);
}

#[test]
fn bernoulli_mask_lanes_are_independent() {
    // Pairs of lanes both succeed with probability p².
    let mut rng = veil_testkit::seeded_rng(13);
    let p = Prob64::from_numerator(1 << 62);
    let trials = 100_000_u64;
    let mut both = 0_u64;
    for _ in 0..trials {
        let mask = bernoulli_mask(&mut rng, p);
        both += (mask & (mask >> 1) & 1) + ((mask >> 10) & (mask >> 50) & 1);
    }
    assert!(veil_testkit::binomial_consistent(
        both,
        2 * trials,
        1.0 / 16.0
    ));
}

#[test]
fn uniform_below_is_uniform() {
    let mut rng = veil_testkit::seeded_rng(14);
    let trials = 70_000_u64;
    let mut counts = [0_u64; 7];
    for _ in 0..trials {
        counts[uniform_below_u32(&mut rng, 7) as usize] += 1;
    }
    for &count in &counts {
        assert!(veil_testkit::binomial_consistent(count, trials, 1.0 / 7.0));
    }
    let big = (1_u32 << 31) + 3;
    assert!((0..1000).all(|_| uniform_below_u32(&mut rng, big) < big));
}
