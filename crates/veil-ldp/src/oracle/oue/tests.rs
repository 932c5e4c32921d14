use super::*;
use crate::exact::ExpLower;
use dashu_int::UBig;

fn epsilon(value: f64) -> Epsilon {
    Epsilon::new(value).unwrap()
}

#[test]
fn q_is_the_smallest_private_probability() {
    for eps in [0.1, 1.0, 4.0, 20.0] {
        let oue = Oue::new(100, epsilon(eps)).unwrap();
        let bound = ExpLower::of_epsilon(epsilon(eps)).unwrap();
        let q = oue.one();
        assert!(bound.bounds_ratio(&UBig::from(q.complement()), &UBig::from(q.numerator())));
        let smaller = Prob64::from_numerator(q.numerator() - 1);
        assert!(!bound.bounds_ratio(
            &UBig::from(smaller.complement()),
            &UBig::from(smaller.numerator())
        ));
        let expected = 1.0 / (eps.exp() + 1.0);
        assert!((q.to_f64() - expected).abs() < 1e-12 * expected.max(1e-300) + 1e-15);
        assert!(oue.actual_epsilon() <= eps);
    }
}

#[test]
fn reports_are_sorted_in_domain_positions() {
    let oue = Oue::new(130, epsilon(1.0)).unwrap();
    let mut rng = veil_testkit::seeded_rng(3);
    for index in [0, 63, 64, 129] {
        let ones = oue.randomize(index, &mut rng).unwrap();
        assert!(ones.windows(2).all(|pair| pair[0] < pair[1]));
        assert!(ones.iter().all(|&position| position < 130));
    }
    assert!(matches!(
        oue.randomize(130, &mut rng),
        Err(LdpError::OutOfDomain { .. })
    ));
}

#[test]
fn bit_frequencies_match_the_probabilities() {
    let oue = Oue::new(70, epsilon(1.0)).unwrap();
    let mut rng = veil_testkit::seeded_rng(4);
    let trials = 50_000_u64;
    let mut counts = [0_u64; 70];
    for _ in 0..trials {
        for position in oue.randomize(65, &mut rng).unwrap() {
            counts[position as usize] += 1;
        }
    }
    let support = oue.support();
    for (position, &count) in counts.iter().enumerate() {
        let p = if position == 65 {
            support.p_true
        } else {
            support.p_other
        };
        assert!(
            veil_testkit::binomial_consistent(count, trials, p),
            "position {position}: {count}"
        );
    }
}
