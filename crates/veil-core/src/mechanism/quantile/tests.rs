use super::*;
use veil_testkit::{chi_square_cdf, seeded_rng};

fn mechanism(epsilon: f64, max_rows: u64, selection: QuantileSelection) -> QuantileMechanism {
    QuantileMechanism::new(Epsilon::new(epsilon).unwrap(), max_rows, selection).unwrap()
}

/// Each candidate's trial probability `exp(−ε(u* − u_j)/(2Δ))`, in floating point.
fn acceptance(mechanism: &QuantileMechanism, bins: &[u64], level: QuantileLevel) -> Vec<f64> {
    let utilities = utilities(bins, level, 0);
    let best = *utilities.iter().max().unwrap();
    #[allow(clippy::cast_precision_loss)]
    let delta = mechanism.sensitivity(level) as f64;
    utilities
        .iter()
        .map(|&utility| {
            #[allow(clippy::cast_precision_loss)]
            let gap = (best - utility) as f64;
            (-mechanism.epsilon().get() * gap / (2.0 * delta)).exp()
        })
        .collect()
}

/// Permute-and-flip's output distribution, by enumerating every order of the candidates.
fn permute_and_flip_distribution(accept: &[f64]) -> Vec<f64> {
    fn visit(remaining: &mut Vec<usize>, reach: f64, accept: &[f64], out: &mut [f64]) {
        // Every remaining candidate is next with equal probability.
        #[allow(clippy::cast_precision_loss)]
        let each = reach / remaining.len() as f64;
        for index in 0..remaining.len() {
            let candidate = remaining.remove(index);
            out[candidate] += each * accept[candidate];
            if accept[candidate] < 1.0 && !remaining.is_empty() {
                visit(remaining, each * (1.0 - accept[candidate]), accept, out);
            }
            remaining.insert(index, candidate);
        }
    }
    let mut out = vec![0.0; accept.len()];
    visit(&mut (0..accept.len()).collect(), 1.0, accept, &mut out);
    out
}

fn goodness_of_fit(samples: &[usize], expected: &[f64]) {
    let samples: Vec<i64> = samples.iter().map(|&s| i64::try_from(s).unwrap()).collect();
    let cdf = |x: i64| -> f64 {
        if x < 0 {
            return 0.0;
        }
        let upto = usize::try_from(x).unwrap().min(expected.len() - 1);
        expected[..=upto].iter().sum::<f64>().min(1.0)
    };
    let fit = chi_square_cdf(&samples, cdf, expected.len());
    assert!(fit.passes(), "{:?}", fit.bins);
}

#[test]
fn the_exponential_mechanism_draws_in_proportion_to_its_weights() {
    let mechanism = mechanism(2.0, 1, QuantileSelection::Exponential);
    let bins = [3, 1, 0, 2, 4];
    let level = QuantileLevel::new(0.5).unwrap();
    let accept = acceptance(&mechanism, &bins, level);
    let total: f64 = accept.iter().sum();
    let expected: Vec<f64> = accept.iter().map(|weight| weight / total).collect();
    let mut rng = seeded_rng(7);
    let samples: Vec<usize> = (0..100_000)
        .map(|_| *mechanism.release(&bins, level, 0, &mut rng).value())
        .collect();
    goodness_of_fit(&samples, &expected);
}

#[test]
fn permute_and_flip_draws_its_exact_distribution() {
    let mechanism = mechanism(2.0, 1, QuantileSelection::PermuteAndFlip);
    let bins = [3, 1, 0, 2, 4];
    let level = QuantileLevel::new(0.5).unwrap();
    let expected = permute_and_flip_distribution(&acceptance(&mechanism, &bins, level));
    assert!((expected.iter().sum::<f64>() - 1.0).abs() < 1e-9);
    let mut rng = seeded_rng(8);
    let samples: Vec<usize> = (0..100_000)
        .map(|_| *mechanism.release(&bins, level, 0, &mut rng).value())
        .collect();
    goodness_of_fit(&samples, &expected);
}

#[test]
fn sensitivity_is_max_rows_times_the_larger_side_of_the_level() {
    let median = mechanism(1.0, 5, QuantileSelection::PermuteAndFlip);
    assert_eq!(
        median.sensitivity(QuantileLevel::new(0.5).unwrap()),
        5 * u128::from(LEVEL_DENOMINATOR / 2)
    );
    let ninetieth = QuantileLevel::new(0.9).unwrap();
    assert_eq!(
        median.sensitivity(ninetieth),
        5 * u128::from(ninetieth.numer())
    );
}

/// The privacy property itself, by exact distributions: on neighbouring bins (one unit's
/// `max_rows` rows added anywhere), no outcome's probability moves by more than `e^ε`.
#[test]
fn neighbouring_groups_change_no_outcome_by_more_than_e_to_the_epsilon() {
    for selection in [
        QuantileSelection::Exponential,
        QuantileSelection::PermuteAndFlip,
    ] {
        let mechanism = mechanism(1.0, 2, selection);
        let base = [4_u64, 0, 3, 1, 2];
        for level in [0.1, 0.5, 0.9] {
            let level = QuantileLevel::new(level).unwrap();
            let distribution = |bins: &[u64]| {
                let accept = acceptance(&mechanism, bins, level);
                match selection {
                    QuantileSelection::Exponential => {
                        let total: f64 = accept.iter().sum();
                        accept
                            .iter()
                            .map(|weight| weight / total)
                            .collect::<Vec<_>>()
                    }
                    QuantileSelection::PermuteAndFlip => permute_and_flip_distribution(&accept),
                }
            };
            let before = distribution(&base);
            for first in 0..base.len() {
                for second in first..base.len() {
                    let mut added = base;
                    added[first] += 1;
                    added[second] += 1;
                    let after = distribution(&added);
                    for (p, q) in before.iter().zip(&after) {
                        let ratio = (p / q).max(q / p);
                        assert!(
                            ratio <= 1.0_f64.exp() * (1.0 + 1e-9),
                            "{selection:?}: {ratio}"
                        );
                    }
                }
            }
        }
    }
}

#[test]
fn the_median_of_many_rows_lands_near_the_middle() {
    let mechanism = mechanism(1.0, 5, QuantileSelection::PermuteAndFlip);
    let level = QuantileLevel::new(0.5).unwrap();
    let bins = vec![100_u64; 4096];
    let bound = mechanism.rank_error_bound(level, bins.len() + 1, 1e-6);
    let mut rng = seeded_rng(9);
    for _ in 0..50 {
        let edge = *mechanism.release(&bins, level, 0, &mut rng).value();
        #[allow(clippy::cast_precision_loss)]
        let rank_error = (edge as f64 * 100.0 - 204_800.0).abs();
        assert!(rank_error <= bound + 100.0, "{rank_error} > {bound}");
    }
    // A shift moves the target by that many rows.
    let edge = *mechanism.release(&bins, level, 10_000, &mut rng).value();
    assert!((2100..=2200).contains(&edge), "{edge}");
}

#[test]
fn levels_are_on_a_grid_of_two_to_the_minus_twenty() {
    assert_eq!(QuantileLevel::new(0.5).unwrap().numer(), 1 << 19);
    assert_eq!(QuantileLevel::new(1.0).unwrap().numer(), 1 << 20);
    assert!(QuantileLevel::new(1.5).is_err());
    assert!((QuantileLevel::new(0.9).unwrap().get() - 0.9).abs() < 1e-6);
}

#[test]
fn loss_is_pure_for_permute_and_flip_and_bounded_range_for_the_exponential() {
    let epsilon = Epsilon::new(0.4).unwrap();
    let flip = QuantileMechanism::new(epsilon, 3, QuantileSelection::PermuteAndFlip).unwrap();
    assert_eq!(flip.loss(), PrivacyLoss::Pure(epsilon));
    let exponential = QuantileMechanism::new(epsilon, 3, QuantileSelection::Exponential).unwrap();
    match exponential.loss() {
        PrivacyLoss::Zcdp(rho) => assert!(rho.get() >= 0.02 && rho.get() < 0.020_001),
        other => panic!("{other:?}"),
    }
}
