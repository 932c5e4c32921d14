use super::*;
use crate::{Domain, Longitudinal, OracleName, ProtocolConfig};
use alloc::vec;
use veil_core::{Bounds, Epsilon};

fn protocol(oracle: OracleName, eps: f64, domain: Domain) -> Protocol {
    Protocol::new(ProtocolConfig {
        oracle,
        epsilon: Epsilon::new(eps).unwrap(),
        domain,
        longitudinal: Longitudinal::Independent,
    })
    .unwrap()
}

#[test]
fn fwht_matches_the_definition() {
    let input: Vec<i64> = vec![3, -1, 4, 1, -5, 9, 2, 6];
    let mut fast = input.clone();
    fwht(&mut fast);
    for (w, &value) in fast.iter().enumerate() {
        let naive: i64 = input
            .iter()
            .enumerate()
            .map(|(j, &x)| if (w & j).count_ones() % 2 == 0 { x } else { -x })
            .sum();
        assert_eq!(value, naive);
    }
}

#[test]
fn olh_counting_matches_hashing_each_item() {
    let mut rng = veil_testkit::seeded_rng(30);
    let reports: Vec<(u64, u32)> = (0..500)
        .map(|i| (rand_core::Rng::next_u64(&mut rng), i % 5))
        .collect();
    let size = 10_000;
    let mut fast = vec![0_u32; size];
    count_olh(&mut fast, &reports, 5);
    for item in [0_u32, 1, 8191, 8192, 9999] {
        let naive = reports
            .iter()
            .filter(|&&(seed, bucket)| OlhHash::new(seed).bucket(item, 5) == bucket)
            .count();
        assert_eq!(fast[item as usize] as usize, naive, "item {item}");
    }
    let mut counts = vec![0_u64; size];
    count_olh_parallel(&mut counts, &reports, 5, 2);
    assert!(counts.iter().zip(&fast).all(|(&a, &b)| a == u64::from(b)));
}

#[test]
fn consistency_methods() {
    let raw = [50.0, -10.0, 30.0, 40.0];
    let norm = norm_sub(&raw, 100.0);
    assert!((norm.iter().sum::<f64>() - 100.0).abs() < 1e-9);
    assert!(norm.iter().all(|&x| x >= 0.0));
    assert!(norm[1].abs() < 1e-12);
    assert!((norm[0] - norm[2] - 20.0).abs() < 1e-9);
    let projected = project_simplex(&raw, 100.0);
    assert!((projected.iter().sum::<f64>() - 100.0).abs() < 1e-9);
    assert!(projected.iter().all(|&x| x >= 0.0));
    // Below the total, the projection lifts every coordinate that it can.
    let lifted = project_simplex(&[10.0, -1.0, 20.0], 40.0);
    assert!((lifted.iter().sum::<f64>() - 40.0).abs() < 1e-9);
    assert!(lifted[1] > 0.0);
    let kept = norm_sub(&[10.0, -1.0, 20.0], 40.0);
    assert!(kept[1].abs() < 1e-12);
    assert_eq!(base_cut(&raw, &[10.0; 4], 2.0), vec![50.0, 0.0, 30.0, 40.0]);
    assert_eq!(norm_sub(&[-1.0, -2.0], 10.0), vec![5.0, 5.0]);
}

/// Every item's estimate is within 5 standard errors of its true count.
fn check_unbiased(protocol: &Protocol, n: u32) {
    let size = protocol.domain_size().unwrap();
    let mut rng = veil_testkit::seeded_rng(31);
    let mut truth = vec![0_f64; size as usize];
    let mut aggregator = Aggregator::new(protocol);
    for i in 0..n {
        let value = (i * i) % size;
        truth[value as usize] += 1.0;
        let report = protocol.randomize_index(value, &mut rng).unwrap();
        aggregator.add_encoded(&report.encode()).unwrap();
    }
    let estimates = aggregator.finish().unwrap().into_frequencies().unwrap();
    assert_eq!(estimates.reports(), u64::from(n));
    let support = match protocol.oracle() {
        Oracle::Grr(o) => o.support(),
        Oracle::Oue(o) => o.support(),
        Oracle::Olh(o) => o.support(),
        Oracle::Hadamard(o) => o.support(),
        _ => unreachable!(),
    };
    for (item, &count) in estimates.items().iter().zip(&truth) {
        let sd = support.count_variance(count, f64::from(n)).sqrt();
        assert!(
            (item.estimate - count).abs() < 5.0 * sd,
            "{}: {} vs {count} (sd {sd})",
            protocol.oracle().name(),
            item.estimate
        );
    }
    let consistent = estimates.consistent(Consistency::NormSub);
    assert!((consistent.iter().sum::<f64>() - f64::from(n)).abs() < 1e-6 * f64::from(n));
}

#[test]
fn frequency_oracles_are_unbiased() {
    for oracle in [
        OracleName::Grr,
        OracleName::Oue,
        OracleName::Olh,
        OracleName::Hadamard,
    ] {
        check_unbiased(&protocol(oracle, 2.0, Domain::Size(20)), 20_000);
    }
}

#[test]
fn sketch_estimates_heavy_candidates() {
    let built = protocol(
        OracleName::Hcms,
        3.0,
        Domain::Open {
            hashes: 32,
            width: 256,
            seed: 5,
            candidates: vec!["paris".into(), "rome".into(), "absent".into()],
        },
    );
    let mut rng = veil_testkit::seeded_rng(32);
    let mut aggregator = Aggregator::new(&built);
    let n = 40_000;
    for i in 0..n {
        let value = match i % 4 {
            0 | 1 => "paris",
            2 => "rome",
            _ => "other",
        };
        aggregator
            .add(&built.randomize_value(value, &mut rng).unwrap())
            .unwrap();
    }
    let estimates = aggregator.finish().unwrap().into_frequencies().unwrap();
    assert!(!estimates.is_complete());
    let expect = [20_000.0, 10_000.0, 0.0];
    for (item, truth) in estimates.items().iter().zip(expect) {
        assert!(
            (item.estimate - truth).abs() < 5.0 * item.std_error + 0.02 * f64::from(n),
            "{}: {} vs {truth} ± {}",
            item.label,
            item.estimate,
            item.std_error
        );
    }
    assert_eq!(estimates.top(1)[0].label, "paris");
}

#[test]
fn numeric_means_are_unbiased() {
    for oracle in [OracleName::Duchi, OracleName::Piecewise, OracleName::Hybrid] {
        let built = protocol(
            oracle,
            2.0,
            Domain::Numeric(Bounds::new(10.0, 20.0).unwrap()),
        );
        let mut rng = veil_testkit::seeded_rng(33);
        let mut aggregator = Aggregator::new(&built);
        let n = 50_000;
        let mut truth = 0.0;
        for i in 0..n {
            let value = 10.0 + f64::from(i % 11);
            truth += value.min(20.0);
            aggregator
                .add(&built.randomize_number(value, &mut rng).unwrap().report)
                .unwrap();
        }
        let truth = truth / f64::from(n);
        let estimate = aggregator.finish().unwrap().into_mean().unwrap();
        assert!(
            (estimate.mean - truth).abs() < 5.0 * estimate.std_error,
            "{oracle}: {} vs {truth} ± {}",
            estimate.mean,
            estimate.std_error
        );
        // The sample variance also holds the spread of the values themselves (at most 1 in
        // [-1, 1] units), so it may exceed the mechanism's worst case by that much.
        let spread = (1.0 / f64::from(n)).sqrt() * 5.0;
        assert!(
            estimate.std_error
                <= (estimate.worst_case_std_error.powi(2) + spread * spread).sqrt() * 1.05,
            "{oracle}: {} > {}",
            estimate.std_error,
            estimate.worst_case_std_error
        );
        assert!((10.0..=20.0).contains(&estimate.consistent));
    }
}

#[test]
fn bad_reports_are_refused_and_not_counted() {
    let built = protocol(OracleName::Grr, 1.0, Domain::Size(8));
    let other = protocol(OracleName::Grr, 1.0, Domain::Size(9));
    let mut rng = veil_testkit::seeded_rng(34);
    let mut aggregator = Aggregator::new(&built);
    let good = built.randomize_index(1, &mut rng).unwrap().encode();
    aggregator.add_encoded(&good).unwrap();
    assert!(matches!(
        aggregator.add_encoded(&good[..5]),
        Err(LdpError::Truncated { .. })
    ));
    let foreign = other.randomize_index(1, &mut rng).unwrap().encode();
    assert!(matches!(
        aggregator.add_encoded(&foreign),
        Err(LdpError::WrongProtocol { .. })
    ));
    assert_eq!(aggregator.reports(), 1);
}

#[test]
fn merged_aggregators_equal_one() {
    let built = protocol(OracleName::Olh, 1.0, Domain::Size(50));
    let mut rng = veil_testkit::seeded_rng(35);
    let reports: Vec<Report> = (0..1000)
        .map(|i| built.randomize_index(i % 50, &mut rng).unwrap())
        .collect();
    let mut whole = Aggregator::new(&built);
    let (mut left, mut right) = (Aggregator::new(&built), Aggregator::new(&built));
    for (i, report) in reports.iter().enumerate() {
        whole.add(report).unwrap();
        if i % 2 == 0 {
            left.add(report).unwrap()
        } else {
            right.add(report).unwrap()
        }
    }
    left.merge(right).unwrap();
    assert_eq!(left.finish().unwrap(), whole.finish().unwrap());
}
