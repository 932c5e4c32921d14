use super::*;
use crate::exact::ExpLower;
use dashu_int::UBig;

fn epsilon(value: f64) -> Epsilon {
    Epsilon::new(value).unwrap()
}

#[test]
fn keep_probability_never_exceeds_e_epsilon_ratio() {
    for (size, eps) in [
        (2, 0.1),
        (4, 1.0),
        (1024, 1.0),
        (64, 4.0),
        (3, 40.0),
        (1 << 24, 1e-6),
    ] {
        let grr = Grr::new(size, epsilon(eps)).unwrap();
        let bound = ExpLower::of_epsilon(epsilon(eps)).unwrap();
        let numer = UBig::from(grr.keep().numerator()) * UBig::from(size - 1);
        let denom = UBig::from(grr.keep().complement());
        assert!(bound.bounds_ratio(&numer, &denom), "d={size} ε={eps}");
        // One more step would break it: the probability is as large as privacy allows.
        let next = Prob64::from_numerator(grr.keep().numerator() + 1);
        let numer = UBig::from(next.numerator()) * UBig::from(size - 1);
        assert!(!bound.bounds_ratio(&numer, &UBig::from(next.complement())));
        assert!(grr.actual_epsilon() <= eps);
        // At very large ε, 1 - p is a few units of 2^-64 and rounding costs a little ε.
        let slack = if eps > 10.0 { 1e-2 * eps } else { 1e-9 };
        assert!(
            eps - grr.actual_epsilon() < slack,
            "{}",
            grr.actual_epsilon()
        );
    }
}

#[test]
fn keep_probability_matches_the_closed_form() {
    let grr = Grr::new(1024, epsilon(1.0)).unwrap();
    let e = 1_f64.exp();
    let expected = e / (e + 1023.0);
    assert!((grr.keep().to_f64() - expected).abs() < 1e-15);
}

#[test]
fn rejects_small_domains_and_out_of_domain_values() {
    assert!(matches!(
        Grr::new(1, epsilon(1.0)),
        Err(LdpError::Domain { .. })
    ));
    assert!(matches!(
        Grr::new(0, epsilon(1.0)),
        Err(LdpError::Domain { .. })
    ));
    let grr = Grr::new(10, epsilon(1.0)).unwrap();
    let mut rng = veil_testkit::seeded_rng(1);
    assert_eq!(
        grr.randomize(10, &mut rng),
        Err(LdpError::OutOfDomain {
            index: 10,
            size: 10
        })
    );
}

#[test]
fn output_frequencies_match_the_probabilities() {
    let grr = Grr::new(5, epsilon(1.0)).unwrap();
    let mut rng = veil_testkit::seeded_rng(2);
    let trials = 200_000_u64;
    let mut counts = [0_u64; 5];
    for _ in 0..trials {
        counts[grr.randomize(2, &mut rng).unwrap() as usize] += 1;
    }
    let support = grr.support();
    for (value, &count) in counts.iter().enumerate() {
        let p = if value == 2 {
            support.p_true
        } else {
            support.p_other
        };
        assert!(
            veil_testkit::binomial_consistent(count, trials, p),
            "{counts:?}"
        );
    }
}
