use super::*;
use crate::exact::ExpLower;
use dashu_int::UBig;

fn epsilon(value: f64) -> Epsilon {
    Epsilon::new(value).unwrap()
}

#[test]
fn buckets_follow_e_epsilon_plus_one() {
    assert_eq!(Olh::new(1024, epsilon(1.0)).unwrap().buckets(), 4);
    assert_eq!(Olh::new(64, epsilon(4.0)).unwrap().buckets(), 56);
    assert_eq!(Olh::new(64, epsilon(0.1)).unwrap().buckets(), 2);
    assert_eq!(Olh::new(64, epsilon(40.0)).unwrap().buckets(), MAX_BUCKETS);
}

#[test]
fn keep_probability_is_private() {
    for eps in [0.1, 1.0, 4.0, 12.0] {
        let olh = Olh::new(1000, epsilon(eps)).unwrap();
        let bound = ExpLower::of_epsilon(epsilon(eps)).unwrap();
        let numer = UBig::from(olh.keep().numerator()) * UBig::from(olh.buckets() - 1);
        assert!(bound.bounds_ratio(&numer, &UBig::from(olh.keep().complement())));
        assert!(olh.actual_epsilon() <= eps);
    }
}

#[test]
fn reports_support_other_items_with_probability_one_over_g() {
    let olh = Olh::new(16, epsilon(1.0)).unwrap();
    let mut rng = veil_testkit::seeded_rng(5);
    let trials = 200_000_u64;
    let (mut true_support, mut other_support) = (0_u64, 0_u64);
    for _ in 0..trials {
        let (seed, bucket) = olh.randomize(3, &mut rng).unwrap();
        let hash = OlhHash::new(seed);
        true_support += u64::from(hash.bucket(3, olh.buckets()) == bucket);
        other_support += u64::from(hash.bucket(11, olh.buckets()) == bucket);
    }
    let support = olh.support();
    assert!(veil_testkit::binomial_consistent(
        true_support,
        trials,
        support.p_true
    ));
    assert!(veil_testkit::binomial_consistent(
        other_support,
        trials,
        support.p_other
    ));
}
