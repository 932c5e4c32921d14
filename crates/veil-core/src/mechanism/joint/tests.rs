use super::*;
use crate::mechanism::DEFAULT_CONFIDENCE;
use veil_testkit::{binomial_consistent, chi_square_cdf, seeded_rng};

fn joint(sensitivities: &[u64], epsilon: f64) -> JointLaplaceMechanism {
    JointLaplaceMechanism::new(sensitivities, Epsilon::new(epsilon).unwrap()).unwrap()
}

/// For every answer, `Δ_i·d/t_i ≤ ε` exactly (the box's corners cost at most ε), and
/// within a hair of it (the scales are not needlessly wide).
#[test]
fn every_corner_of_the_box_costs_at_most_epsilon() {
    for (sensitivities, epsilon) in [
        (vec![5_u64, 250], 1.0),
        (vec![1, 5, 1_000_000_007], 0.1),
        (vec![3, 3], 1.0 / 3.0),
        (vec![7], 2.5),
    ] {
        let mechanism = joint(&sensitivities, epsilon);
        let d = UBig::from(sensitivities.len() as u64);
        let (epsilon_numer, epsilon_denom) = exact_ratio(epsilon).unwrap();
        for (proposal, &steps) in mechanism.proposals.iter().zip(&sensitivities) {
            let scale = proposal.scale();
            // Δ·d/t ≤ ε  ⇔  Δ·d·t_den·ε_den ≤ ε_num·t_num.
            let cost = UBig::from(steps) * &d * UBig::from(scale.denom()) * &epsilon_denom;
            let budget = &epsilon_numer * UBig::from(scale.numer());
            assert!(cost <= budget, "{sensitivities:?} at ε = {epsilon}");
            #[allow(clippy::cast_precision_loss)]
            let ratio = (steps as f64) * (sensitivities.len() as f64) / scale.to_f64() / epsilon;
            assert!(ratio > 1.0 - 1e-12, "{ratio}");
        }
        assert_eq!(
            mechanism.loss(),
            PrivacyLoss::Pure(Epsilon::new(epsilon).unwrap())
        );
    }
}

/// The law `P(z) ∝ exp(−max(w₁|z₁|, w₂|z₂|))` on the window `|z₁| ≤ a`, `|z₂| ≤ b`
/// (holding all but about `e^−40` of it), lattice points in lexicographic order.
struct Lattice {
    weights: (f64, f64),
    window: (i64, i64),
}

impl Lattice {
    fn for_weights(weights: (f64, f64)) -> Self {
        #[allow(clippy::cast_possible_truncation)]
        let reach = |weight: f64| (40.0 / weight).ceil() as i64;
        Self {
            weights,
            window: (reach(weights.0), reach(weights.1)),
        }
    }

    fn index(&self, z: &[i64]) -> i64 {
        (z[0] + self.window.0) * (2 * self.window.1 + 1) + (z[1] + self.window.1)
    }

    fn cdf(&self) -> Vec<f64> {
        let mut weights = Vec::new();
        for z1 in -self.window.0..=self.window.0 {
            for z2 in -self.window.1..=self.window.1 {
                #[allow(clippy::cast_precision_loss)]
                let norm = (self.weights.0 * z1.abs() as f64).max(self.weights.1 * z2.abs() as f64);
                weights.push((-norm).exp());
            }
        }
        let total: f64 = weights.iter().sum();
        let mut cumulative = 0.0;
        weights
            .iter()
            .map(|weight| {
                cumulative += weight / total;
                cumulative
            })
            .collect()
    }

    fn fit(&self, draws: &[Vec<i64>]) -> veil_testkit::GoodnessOfFit {
        let samples: Vec<i64> = draws.iter().map(|z| self.index(z)).collect();
        fit_to_cdf(&samples, &self.cdf())
    }
}

/// The chi-square fit of lattice indices to a cumulative law over them, in 60 cells.
fn fit_to_cdf(samples: &[i64], cdf: &[f64]) -> veil_testkit::GoodnessOfFit {
    let last = cdf.len() - 1;
    chi_square_cdf(
        samples,
        |x| {
            usize::try_from(x)
                .ok()
                .map_or(0.0, |index| cdf[index.min(last)])
        },
        60,
    )
}

/// The fit of 60,000 draws of `mechanism` to the lattice law of `weights`.
fn fit_of(
    mechanism: &JointLaplaceMechanism,
    weights: (f64, f64),
    seed: u64,
) -> veil_testkit::GoodnessOfFit {
    let mut rng = seeded_rng(seed);
    let draws: Vec<Vec<i64>> = (0..60_000).map(|_| mechanism.sample(&mut rng)).collect();
    Lattice::for_weights(weights).fit(&draws)
}

/// Δ = (1, 2) at ε = 1: scales (2, 4), the law `exp(−max(|z₁|, |z₂|/2))`.
#[test]
fn joint_draws_fit_the_lattice_law() {
    let fit = fit_of(&joint(&[1, 2], 1.0), (1.0, 0.5), 41);
    assert!(fit.passes(), "{fit:?}");
}

/// Scales with denominators (Δ = (1, 2) at ε = 0.75: scales 8/3 and 16/3), as every
/// engine draw has: a bug in the acceptance's rational parts (a denominator dropped) fits
/// integer scales and fails here.
#[test]
fn joint_draws_fit_the_lattice_law_at_fractional_scales() {
    let mechanism = joint(&[1, 2], 0.75);
    assert_eq!(mechanism.proposals[0].scale().denom(), 3);
    let fit = fit_of(&mechanism, (0.75, 0.375), 46);
    assert!(fit.passes(), "{fit:?}");
}

/// The tests above have the power to see a planted bug: independent Laplace draws at the
/// proposal's scales (the acceptance step dropped) do not fit.
#[test]
fn draws_without_the_acceptance_step_fail_the_fit() {
    let mechanism = joint(&[1, 2], 1.0);
    let mut rng = seeded_rng(42);
    let draws: Vec<Vec<i64>> = (0..60_000)
        .map(|_| {
            mechanism
                .proposals
                .iter()
                .map(|proposal| proposal.sample(&mut rng))
                .collect()
        })
        .collect();
    assert!(!Lattice::for_weights((1.0, 0.5)).fit(&draws).passes());
}

/// The stated standard deviation and 95% half-width describe the draws (the continuous
/// law's, at scales where the lattice no longer shows), for two and three answers.
#[test]
fn the_stated_spread_and_interval_hold() {
    for (seed, sensitivities) in [(43, vec![50_u64, 2_500]), (44, vec![40, 40, 4_000])] {
        let mechanism = joint(&sensitivities, 1.0);
        let mut rng = seeded_rng(seed);
        let draws: Vec<Vec<i64>> = (0..40_000).map(|_| mechanism.sample(&mut rng)).collect();
        for index in 0..sensitivities.len() {
            assert_stated_spread(&mechanism, &draws, index);
        }
    }
}

/// The draws' deviation of answer `index` is the stated one within 3%, and its stated 95%
/// half-width holds about 95% of them.
fn assert_stated_spread(mechanism: &JointLaplaceMechanism, draws: &[Vec<i64>], index: usize) {
    let n = draws.len() as u64;
    #[allow(clippy::cast_precision_loss)]
    let variance = draws.iter().map(|z| (z[index] as f64).powi(2)).sum::<f64>() / n as f64;
    let ratio = variance.sqrt() / mechanism.std_dev(index);
    let sensitivities = mechanism.sensitivities();
    assert!(
        (ratio - 1.0).abs() < 0.03,
        "{sensitivities:?}[{index}]: {ratio}"
    );
    let half_width = mechanism.ci_half_width(index, DEFAULT_CONFIDENCE);
    #[allow(clippy::cast_precision_loss)]
    let inside = draws
        .iter()
        .filter(|z| (z[index].unsigned_abs() as f64) <= half_width)
        .count() as u64;
    assert!(
        binomial_consistent(inside, n, 0.95),
        "{sensitivities:?}[{index}]: {inside} of {n} within ±{half_width}"
    );
}

/// Two answers at ε together have half the variance of two Laplace draws at ε/2 each.
#[test]
fn two_answers_together_halve_the_variance_of_an_even_split() {
    let together = joint(&[5, 250], 1.0);
    for (index, steps) in [(0, 5.0), (1, 250.0)] {
        let split = 2.0_f64.sqrt() * steps / 0.5;
        let ratio = together.std_dev(index) / split;
        assert!((ratio - 0.5_f64.sqrt()).abs() < 1e-6, "{ratio}");
    }
}

#[test]
fn release_adds_one_draw_to_each_answer() {
    let mechanism = joint(&[5, 250], 1.0);
    let mut rng = seeded_rng(45);
    let released = mechanism.release(&[1_000, -20_000], &mut rng);
    assert_eq!(released.len(), 2);
    assert_eq!(released[0].mechanism(), MechanismKind::JointLaplace);
    assert_eq!(released[1].loss(), mechanism.loss());
    assert!((released[1].std_dev() - mechanism.std_dev(1)).abs() < 1e-9);
    assert!(JointLaplaceMechanism::new(&[], Epsilon::new(1.0).unwrap()).is_err());
    assert!(JointLaplaceMechanism::new(&[3, 0], Epsilon::new(1.0).unwrap()).is_err());
}

/// The closed-form tail agrees with integrating `P(Gamma(d + 1) > x/u)` over `u`.
#[test]
fn the_tail_in_closed_form_matches_the_integral() {
    for dimension in [1_usize, 2, 3, 5] {
        for x in [0.1, 0.5, 1.0, 2.0, 4.0, 9.0] {
            let steps = 20_000;
            let integral = (0..steps)
                .map(|step| {
                    let u = (f64::from(step) + 0.5) / f64::from(steps);
                    gamma_tail(dimension + 1, x / u)
                })
                .sum::<f64>()
                / f64::from(steps);
            let closed = unit_tail(dimension, x);
            assert!(
                (closed - integral).abs() < 1e-6,
                "d = {dimension}, x = {x}: {closed} vs {integral}"
            );
        }
    }
    // One answer: the Laplace's tail e^(−x).
    assert!((unit_tail(1, 2.0) - (-2.0_f64).exp()).abs() < 1e-12);
}

/// One coordinate passes 3.5 standard deviations upwards with probability under 0.25% for
/// two to four answers (the engine's lower bound on a group's rows rests on it).
#[test]
fn a_coordinate_rarely_passes_three_and_a_half_deviations() {
    for dimension in 2_usize..=4 {
        #[allow(clippy::cast_precision_loss)]
        let d = dimension as f64;
        let std = ((d + 1.0) * (d + 2.0) / 3.0).sqrt();
        let upward = 0.5 * unit_tail(dimension, 3.5 * std);
        assert!(upward < 0.0025, "d = {dimension}: {upward}");
    }
}

/// The law of answer `index` of a two-answer draw, by brute force over the lattice: `P[z_index
/// = k]` for `k` in `0..reach` (summed over every other answer within `e^−60` of its mass).
pub(in crate::mechanism) fn marginal_by_brute_force(
    mechanism: &JointLaplaceMechanism,
    index: usize,
) -> Vec<f64> {
    let halves: Vec<f64> = mechanism
        .proposals
        .iter()
        .map(|proposal| proposal.scale().to_f64() / 2.0)
        .collect();
    let (own, other) = (halves[index], halves[1 - index]);
    #[allow(clippy::cast_possible_truncation)]
    let (reach_own, reach_other) = ((60.0 * own).ceil() as i64, (60.0 * other).ceil() as i64);
    #[allow(clippy::cast_precision_loss)]
    let weight = |k: i64| -> f64 {
        (-reach_other..=reach_other)
            .map(|j| (-(k.abs() as f64 / own).max(j.abs() as f64 / other)).exp())
            .sum()
    };
    let weights: Vec<f64> = (0..reach_own).map(weight).collect();
    let total = weights[0] + 2.0 * weights[1..].iter().sum::<f64>();
    weights.iter().map(|weight| weight / total).collect()
}

/// The threshold's tail bound holds the lattice law's tail from above and stays within a
/// millionth of it (so thresholds are not needlessly high), for either answer, at whole and
/// fractional scales; the continuous estimate stays within a few percent.
#[test]
fn the_marginal_tail_bound_holds_the_lattice_tail() {
    for (sensitivities, epsilon) in [
        (vec![1_u64, 3], 1.0),
        (vec![2, 7], 0.7),
        (vec![5, 13], 1.0 / 3.0),
    ] {
        let mechanism = joint(&sensitivities, epsilon);
        for index in 0..2 {
            let pmf = marginal_by_brute_force(&mechanism, index);
            let bound = mechanism.marginal_tail_bound(index).unwrap();
            let mut exact = 0.0;
            let mut tails = vec![0.0; pmf.len()];
            for k in (1..pmf.len()).rev() {
                exact += pmf[k];
                tails[k] = exact;
            }
            for (m, &exact) in tails.iter().enumerate().skip(1) {
                if exact < 1e-15 {
                    break;
                }
                let m = i64::try_from(m).unwrap();
                let bounded = bound(m);
                assert!(
                    bounded >= exact && bounded <= exact * (1.0 + 1e-6),
                    "{sensitivities:?} answer {index}, m = {m}: {bounded} vs {exact}"
                );
                #[allow(clippy::cast_precision_loss)]
                let estimate = mechanism.marginal_tail_estimate(index, m as f64);
                if exact > 1e-9 && m > 2 {
                    assert!(
                        (estimate / exact - 1.0).abs() < 0.1,
                        "{sensitivities:?} answer {index}, m = {m}: estimate {estimate} vs {exact}"
                    );
                }
            }
            assert!((bound(0) - 1.0).abs() < f64::EPSILON && bound(-3) <= 1.0);
        }
    }
}

#[test]
fn a_threshold_reads_one_of_two_answers() {
    assert!(joint(&[5, 250, 7], 1.0).marginal_tail_bound(0).is_err());
    assert!(joint(&[5, 250], 1.0).marginal_tail_bound(2).is_err());
    assert!(joint(&[5], 1.0).marginal_tail_bound(0).is_err());
}

/// A unit in `L0` groups loses the draw's ε once per group, never rounded down.
#[test]
fn loss_over_groups_adds_each_groups_epsilon_and_never_rounds_down() {
    let mechanism = joint(&[5, 250], 0.1);
    let PrivacyLoss::Pure(three) = mechanism.loss_over(3) else {
        panic!("a joint draw is pure");
    };
    assert!(three.get() >= 0.1 * 3.0 && three.get() <= (0.1_f64 * 3.0).next_up());
    assert_eq!(
        mechanism.loss_over(1),
        PrivacyLoss::Pure(Epsilon::new(0.1_f64.next_up()).unwrap())
    );
    let PrivacyLoss::Pure(many) = joint(&[1], 2.5).loss_over(u64::MAX) else {
        panic!("a joint draw is pure");
    };
    #[allow(clippy::cast_precision_loss)]
    let floor = 2.5 * u64::MAX as f64;
    assert!(many.get() > floor);
}

fn staircase(sensitivities: &[u64], epsilon: f64, step: (u32, u32)) -> JointLaplaceMechanism {
    JointLaplaceMechanism::staircase(
        sensitivities,
        Epsilon::new(epsilon).unwrap(),
        Step::new(step.0, step.1).unwrap(),
    )
    .unwrap()
}

/// The staircase's exponent at `z`, computed here in floating point from its definition
/// (`ε·(⌊max_i |z_i|/Δ_i − γ⌋ + 1)`), with a hair of slack so that ties on a shell's edge
/// fall the way exact arithmetic has them.
fn staircase_exponent(z: &[i64], sensitivities: &[u64], epsilon: f64, step: f64) -> f64 {
    #[allow(clippy::cast_precision_loss)]
    let norm = z
        .iter()
        .zip(sensitivities)
        .map(|(&z, &steps)| z.abs() as f64 / steps as f64)
        .fold(0.0, f64::max);
    epsilon * ((norm - step + 1e-12).floor() + 1.0)
}

/// The fit of `draws` to the two-answer staircase law, on a window holding all but about
/// `e^-40` of it.
fn staircase_fit(
    draws: &[Vec<i64>],
    sensitivities: &[u64],
    epsilon: f64,
    step: f64,
) -> veil_testkit::GoodnessOfFit {
    exponent_fit(draws, window(sensitivities, &[0, 0], epsilon), |z| {
        staircase_exponent(z, sensitivities, epsilon, step)
    })
}

/// The reach per answer of a window holding all but about `e^-40` of a two-answer law of
/// these sensitivities and plateau widths at `epsilon`.
fn window(sensitivities: &[u64], widths: &[u64], epsilon: f64) -> [i64; 2] {
    #[allow(clippy::cast_possible_truncation, clippy::cast_precision_loss)]
    let reach = |index: usize| {
        ((42.0 / epsilon + 2.0) * sensitivities[index] as f64).ceil() as i64
            + i64::try_from(widths[index]).unwrap()
    };
    [reach(0), reach(1)]
}

/// The fit of `draws` to the two-answer lattice law `∝ exp(−exponent(z))` on the window
/// `|z_i| ≤ reach[i]`.
fn exponent_fit(
    draws: &[Vec<i64>],
    reach: [i64; 2],
    exponent: impl Fn(&[i64]) -> f64,
) -> veil_testkit::GoodnessOfFit {
    let width = 2 * reach[1] + 1;
    let mut weights = Vec::new();
    for z0 in -reach[0]..=reach[0] {
        for z1 in -reach[1]..=reach[1] {
            weights.push((-exponent(&[z0, z1])).exp());
        }
    }
    let total: f64 = weights.iter().sum();
    let mut cumulative = 0.0;
    let cdf: Vec<f64> = weights
        .iter()
        .map(|weight| {
            cumulative += weight / total;
            cumulative
        })
        .collect();
    let samples: Vec<i64> = draws
        .iter()
        .map(|z| (z[0] + reach[0]) * width + (z[1] + reach[1]))
        .collect();
    fit_to_cdf(&samples, &cdf)
}

/// Draws of the staircase fit its lattice law, at a whole and at a fractional scale, with
/// steps that put shell edges on lattice points (γΔ whole) and between them.
#[test]
fn staircase_draws_fit_the_lattice_law() {
    for (seed, sensitivities, epsilon, step) in [
        (51, [1_u64, 2], 1.0, (1, 2)),
        (52, [2, 3], 0.75, (7, 10)),
        (53, [3, 5], 2.0, (1, 4)),
    ] {
        let mechanism = staircase(&sensitivities, epsilon, step);
        let mut rng = seeded_rng(seed);
        let draws: Vec<Vec<i64>> = (0..60_000).map(|_| mechanism.sample(&mut rng)).collect();
        let gamma = f64::from(step.0) / f64::from(step.1);
        let fit = staircase_fit(&draws, &sensitivities, epsilon, gamma);
        assert!(
            fit.passes(),
            "{sensitivities:?} ε = {epsilon} γ = {gamma}: {fit:?}"
        );
    }
}

/// The fit has the power to tell the staircase from the plain law, and from a staircase
/// whose shells are off by the step (a planted bug: `g = ⌊N⌋ + 1` instead of `⌊N − γ⌋ + 1`).
#[test]
fn plain_or_misaligned_draws_fail_the_staircase_fit() {
    let (sensitivities, epsilon) = ([3_u64, 5], 2.0);
    let mut rng = seeded_rng(54);
    let plain = joint(&sensitivities, epsilon);
    let draws: Vec<Vec<i64>> = (0..60_000).map(|_| plain.sample(&mut rng)).collect();
    assert!(!staircase_fit(&draws, &sensitivities, epsilon, 0.25).passes());
    let shifted = staircase(&sensitivities, epsilon, (1, 1));
    let draws: Vec<Vec<i64>> = (0..60_000).map(|_| shifted.sample(&mut rng)).collect();
    assert!(!staircase_fit(&draws, &sensitivities, epsilon, 0.25).passes());
}

/// The privacy argument's one step, checked exactly: a move inside the box changes the
/// shell by at most one, over a window of noise and every move of a small box.
#[test]
fn a_move_inside_the_box_changes_the_shell_by_at_most_one() {
    for (sensitivities, step) in [([3_u64, 5], (1, 4)), ([1, 2], (1, 1)), ([4, 7], (13, 20))] {
        let step = Step::new(step.0, step.1).unwrap();
        let shell = |z: [i64; 2]| {
            z.iter()
                .zip(&sensitivities)
                .map(|(&z, &steps)| step.shell(z, steps))
                .max()
                .unwrap()
        };
        let (d0, d1) = (
            i64::try_from(sensitivities[0]).unwrap(),
            i64::try_from(sensitivities[1]).unwrap(),
        );
        let mut widest = 0;
        for z0 in -4 * d0..=4 * d0 {
            for z1 in -4 * d1..=4 * d1 {
                for v0 in -d0..=d0 {
                    for v1 in -d1..=d1 {
                        let (a, b) = (shell([z0, z1]), shell([z0 + v0, z1 + v1]));
                        widest = widest.max(a.abs_diff(b));
                    }
                }
            }
        }
        // At most one, and one is reached: the law uses its whole ε.
        assert_eq!(widest, 1, "{sensitivities:?}");
    }
}

/// The staircase's threshold tail bound holds its lattice tail from above, within a
/// millionth, for either answer (brute-force sums over the lattice).
#[test]
fn the_staircase_tail_bound_holds_the_lattice_tail() {
    for (sensitivities, epsilon, step) in [
        ([1_u64, 3], 1.0, (1, 2)),
        ([5, 13], 1.3, (7, 10)),
        ([4, 9], 2.5, (1, 5)),
        ([3, 2], 0.8, (1, 1)),
    ] {
        let mechanism = staircase(&sensitivities, epsilon, step);
        let gamma = f64::from(step.0) / f64::from(step.1);
        for index in 0..2 {
            let (own, other) = (sensitivities[index], sensitivities[1 - index]);
            let reach = |steps: u64| {
                #[allow(clippy::cast_possible_truncation, clippy::cast_precision_loss)]
                let reach = ((62.0 / epsilon + 2.0) * steps as f64).ceil() as i64;
                reach
            };
            let weight = |k: i64| -> f64 {
                (-reach(other)..=reach(other))
                    .map(|j| (-staircase_exponent(&[k, j], &[own, other], epsilon, gamma)).exp())
                    .sum()
            };
            let weights: Vec<f64> = (0..reach(own)).map(weight).collect();
            let total = weights[0] + 2.0 * weights[1..].iter().sum::<f64>();
            let bound = mechanism.marginal_tail_bound(index).unwrap();
            let mut exact = 0.0;
            for m in (1..weights.len()).rev() {
                exact += weights[m] / total;
                if exact < 1e-15 {
                    continue;
                }
                let bounded = bound(i64::try_from(m).unwrap());
                assert!(
                    bounded >= exact && bounded <= exact * (1.0 + 1e-6),
                    "{sensitivities:?} answer {index}, m = {m}: {bounded} vs {exact}"
                );
            }
            assert!((bound(0) - 1.0).abs() < f64::EPSILON);
            assert!(bound(1_000_000_000) > 0.0);
        }
    }
}

/// The staircase's stated deviation and 95% half-width describe its draws, and its median
/// error is below the plain law's where the plan would pick it (ε = 1.33 per draw).
#[test]
fn the_staircase_states_its_spread_and_beats_the_plain_median() {
    let (sensitivities, epsilon) = ([50_u64, 2_500], 4.0 / 3.0);
    let step = best_step(&sensitivities, epsilon).expect("a step at ε = 1.33");
    let mechanism =
        JointLaplaceMechanism::staircase(&sensitivities, Epsilon::new(epsilon).unwrap(), step)
            .unwrap();
    let plain = joint(&sensitivities, epsilon);
    let mut rng = seeded_rng(55);
    let n = 40_000_u64;
    let draws: Vec<Vec<i64>> = (0..n).map(|_| mechanism.sample(&mut rng)).collect();
    let plain_draws: Vec<Vec<i64>> = (0..n).map(|_| plain.sample(&mut rng)).collect();
    let median = |draws: &[Vec<i64>], index: usize| {
        let mut magnitudes: Vec<u64> = draws.iter().map(|z| z[index].unsigned_abs()).collect();
        magnitudes.sort_unstable();
        magnitudes[magnitudes.len() / 2]
    };
    for index in 0..2 {
        assert_stated_spread(&mechanism, &draws, index);
        #[allow(clippy::cast_precision_loss)]
        let (stair, flat) = (
            median(&draws, index) as f64,
            median(&plain_draws, index) as f64,
        );
        assert!(
            stair < 0.97 * flat,
            "[{index}]: median {stair} vs plain {flat}"
        );
        assert!(mechanism.ci_half_width(index, 0.5) < plain.ci_half_width(index, 0.5));
        assert!(mechanism.std_dev(index) <= plain.std_dev(index));
    }
    assert_eq!(mechanism.kind(), MechanismKind::JointStaircase);
    assert_eq!(mechanism.loss(), plain.loss());
}

/// No step where the plain law is as good (a small ε per draw); for a count of 5 rows and
/// a centred sum the step falls as ε grows; and where one is taken, no answer's stated
/// deviation exceeds the plain law's.
#[test]
fn the_best_step_falls_as_epsilon_grows() {
    let sensitivities = [5_u64, 25_000];
    assert_eq!(best_step(&sensitivities, 0.33), None);
    assert_eq!(best_step(&sensitivities, 0.1), None);
    assert_eq!(best_step(&[5], 3.0), None);
    let mut steps = Vec::new();
    for epsilon in [1.33, 2.0, 3.0, 4.0] {
        let step = best_step(&sensitivities, epsilon).expect("a step");
        steps.push(step.get());
        let chosen =
            JointLaplaceMechanism::staircase(&sensitivities, Epsilon::new(epsilon).unwrap(), step)
                .unwrap();
        let plain = joint(&sensitivities, epsilon);
        for index in 0..2 {
            assert!(
                chosen.std_dev(index) <= plain.std_dev(index),
                "ε = {epsilon}"
            );
            assert!(chosen.ci_half_width(index, 0.5) <= plain.ci_half_width(index, 0.5));
        }
    }
    assert!(steps.windows(2).all(|pair| pair[1] <= pair[0]), "{steps:?}");
}

/// The stated deviation and 95% half-width are the lattice law's, also where the lattice
/// shows (a count of 5 rows at ε = 4, where the continuous mixture understated them): the
/// deviation within 2% of 200,000 draws', the half-width the smallest whole one holding 95%.
#[test]
fn the_staircase_states_its_lattice_spread_at_a_large_epsilon() {
    let (sensitivities, epsilon) = ([5_u64, 7], 4.0);
    let mechanism = staircase(&sensitivities, epsilon, (1, 5));
    let mut rng = seeded_rng(56);
    let draws: Vec<Vec<i64>> = (0..200_000).map(|_| mechanism.sample(&mut rng)).collect();
    for index in 0..2 {
        #[allow(clippy::cast_precision_loss)]
        let variance =
            draws.iter().map(|z| (z[index] as f64).powi(2)).sum::<f64>() / draws.len() as f64;
        let ratio = variance.sqrt() / mechanism.std_dev(index);
        assert!((ratio - 1.0).abs() < 0.02, "[{index}]: {ratio}");
        let half_width = mechanism.ci_half_width(index, DEFAULT_CONFIDENCE);
        #[allow(clippy::cast_precision_loss, clippy::cast_possible_truncation)]
        let outside = |h: f64| {
            draws
                .iter()
                .filter(|z| z[index].unsigned_abs() > h as u64)
                .count() as f64
                / draws.len() as f64
        };
        assert!(
            outside(half_width) <= 0.05 + 0.003,
            "[{index}]: {}",
            outside(half_width)
        );
        assert!(
            outside(half_width - 1.0) > 0.05 - 0.003,
            "[{index}]: h − 1 holds 95%"
        );
    }
    // Beyond a few scales, the estimate of the tail is the lattice's own.
    let estimate = mechanism.marginal_tail_estimate(0, 3.0);
    #[allow(clippy::cast_precision_loss)]
    let seen = draws.iter().filter(|z| z[0] >= 3).count() as f64 / draws.len() as f64;
    assert!((estimate / seen - 1.0).abs() < 0.05, "{estimate} vs {seen}");
}

fn plateau(sensitivities: &[u64], epsilon: f64, widths: &[u64]) -> JointLaplaceMechanism {
    JointLaplaceMechanism::plateau(sensitivities, Epsilon::new(epsilon).unwrap(), widths).unwrap()
}

/// The plateau law's exponent at `z`, from its definition: `ε·max_i (|z_i| − W_i)₊/Δ_i`.
#[allow(clippy::cast_precision_loss)]
fn plateau_exponent(z: &[i64], sensitivities: &[u64], widths: &[u64], epsilon: f64) -> f64 {
    z.iter()
        .zip(sensitivities.iter().zip(widths))
        .map(|(&z, (&steps, &width))| {
            (z.unsigned_abs() as f64 - width as f64).max(0.0) / steps as f64
        })
        .fold(0.0, f64::max)
        * epsilon
}

fn plateau_fit(
    draws: &[Vec<i64>],
    sensitivities: &[u64],
    widths: &[u64],
    epsilon: f64,
) -> veil_testkit::GoodnessOfFit {
    exponent_fit(draws, window(sensitivities, widths, epsilon), |z| {
        plateau_exponent(z, sensitivities, widths, epsilon)
    })
}

/// Draws of the plateau law fit its lattice law: a plateau on either answer, on both, at
/// whole and fractional scales.
#[test]
fn plateau_draws_fit_the_lattice_law() {
    for (seed, sensitivities, widths, epsilon) in [
        (61, [1_u64, 2], [0_u64, 3], 1.0),
        (62, [2, 3], [2, 0], 0.75),
        (63, [3, 5], [1, 4], 2.0),
    ] {
        let mechanism = plateau(&sensitivities, epsilon, &widths);
        assert_eq!(mechanism.kind(), MechanismKind::JointPlateau);
        assert_eq!(mechanism.plateau_widths(), Some(&widths[..]));
        let mut rng = seeded_rng(seed);
        let draws: Vec<Vec<i64>> = (0..60_000).map(|_| mechanism.sample(&mut rng)).collect();
        let fit = plateau_fit(&draws, &sensitivities, &widths, epsilon);
        assert!(
            fit.passes(),
            "{sensitivities:?} {widths:?} ε = {epsilon}: {fit:?}"
        );
    }
}

/// The fit has the power to see a planted bug: the plain law's draws, and a plateau on the
/// wrong answer, do not fit.
#[test]
fn plain_or_misplaced_draws_fail_the_plateau_fit() {
    let (sensitivities, epsilon) = ([2_u64, 3], 0.75);
    let mut rng = seeded_rng(64);
    let plain = joint(&sensitivities, epsilon);
    let draws: Vec<Vec<i64>> = (0..60_000).map(|_| plain.sample(&mut rng)).collect();
    assert!(!plateau_fit(&draws, &sensitivities, &[0, 3], epsilon).passes());
    let misplaced = plateau(&sensitivities, epsilon, &[3, 0]);
    let draws: Vec<Vec<i64>> = (0..60_000).map(|_| misplaced.sample(&mut rng)).collect();
    assert!(!plateau_fit(&draws, &sensitivities, &[0, 3], epsilon).passes());
}

/// The privacy argument's one step, checked over a window of noise and every move of a
/// small box: the exponent rises by at most ε (with a hair for floating point).
#[test]
fn a_move_inside_the_box_raises_the_plateau_exponent_by_at_most_epsilon() {
    for (sensitivities, widths) in [([3_u64, 5], [0_u64, 7]), ([1, 2], [2, 2]), ([4, 7], [5, 0])] {
        let epsilon = 0.9;
        let mut largest = 0.0_f64;
        let reach = [
            3 * sensitivities[0] as i64 + 8,
            3 * sensitivities[1] as i64 + 8,
        ];
        for z0 in -reach[0]..=reach[0] {
            for z1 in -reach[1]..=reach[1] {
                let at = plateau_exponent(&[z0, z1], &sensitivities, &widths, epsilon);
                for v0 in -(sensitivities[0] as i64)..=sensitivities[0] as i64 {
                    for v1 in -(sensitivities[1] as i64)..=sensitivities[1] as i64 {
                        let moved = [z0 + v0, z1 + v1];
                        let after = plateau_exponent(&moved, &sensitivities, &widths, epsilon);
                        largest = largest.max(after - at);
                    }
                }
            }
        }
        assert!(
            largest <= epsilon + 1e-12,
            "{sensitivities:?} {widths:?}: {largest}"
        );
        assert!(
            largest >= epsilon - 1e-12,
            "the bound is reached: {largest}"
        );
    }
}

/// The stated deviation and 95% half-width hold on draws, and the plateau moves noise: a
/// plateau on the second answer lowers the first's deviation and median below the plain
/// law's and raises the second's.
#[test]
fn the_plateau_states_its_spread_and_moves_noise_between_answers() {
    let (sensitivities, epsilon) = ([50_u64, 2_500], 1.0);
    let mechanism = plateau(&sensitivities, epsilon, &[0, 1_250]);
    let mut rng = seeded_rng(65);
    let draws: Vec<Vec<i64>> = (0..40_000).map(|_| mechanism.sample(&mut rng)).collect();
    for index in 0..2 {
        assert_stated_spread(&mechanism, &draws, index);
    }
    let plain = joint(&sensitivities, epsilon);
    assert!(mechanism.std_dev(0) < 0.95 * plain.std_dev(0));
    assert!(mechanism.ci_half_width(0, 0.5) < 0.95 * plain.ci_half_width(0, 0.5));
    assert!(mechanism.std_dev(1) > plain.std_dev(1));
    assert!(mechanism.relative_std(0) < plain.relative_std(0));
    assert!((plain.relative_std(0) - 2.0_f64.sqrt()).abs() < 1e-12);
    // The stated figures against the continuous law at a plateau of zero: the plain law's.
    let flat = Plateau::new(&[0, 0], &sensitivities, epsilon);
    assert!((flat.unit_std(0) * 50.0 / plain.std_dev(0) - 1.0).abs() < 1e-9);
    let half = flat.unit_quantile(1, 0.05) * 2_500.0;
    assert!((half - plain.ci_half_width(1, DEFAULT_CONFIDENCE)).abs() <= 1.0);
    // The tail estimate: half the two-sided tail.
    let estimate = mechanism.marginal_tail_estimate(1, mechanism.ci_half_width(1, 0.9));
    assert!((estimate - 0.05).abs() < 0.002, "{estimate}");
}

/// No threshold is calibrated on the plateau law, widths are checked, and zero widths are
/// the plain law.
#[test]
fn a_plateau_refuses_thresholds_and_bad_widths() {
    let mechanism = plateau(&[5, 250], 1.0, &[0, 100]);
    assert!(mechanism.marginal_tail_bound(0).is_err());
    let epsilon = Epsilon::new(1.0).unwrap();
    assert!(JointLaplaceMechanism::plateau(&[5, 250], epsilon, &[0]).is_err());
    assert!(JointLaplaceMechanism::plateau(&[5, 250], epsilon, &[0, 1_001]).is_err());
    assert!(JointLaplaceMechanism::plateau(&[5, 250], epsilon, &[0, 1_000]).is_ok());
    assert_eq!(
        JointLaplaceMechanism::plateau(&[5, 250], epsilon, &[0, 0]).unwrap(),
        joint(&[5, 250], 1.0)
    );
}

/// The exponent the audit reads is each law's own.
#[test]
fn the_exponent_is_each_laws_own() {
    let z = [7_i64, -400];
    assert!((joint(&[5, 250], 1.0).exponent(&z, 1.0) - 1.6).abs() < 1e-12);
    assert!((plateau(&[5, 250], 1.0, &[0, 150]).exponent(&z, 2.0) - 2.8).abs() < 1e-12);
    let staircase = staircase(&[5, 250], 1.0, (1, 2));
    assert!((staircase.exponent(&z, 1.0) - 2.0).abs() < 1e-12);
}

/// Draws from a shape's mixture (floating point, as a report simulates).
fn mixture_draws(shape: &AnswerShape, n: usize, seed: u64) -> Vec<f64> {
    use rand_core::Rng;
    let mut rng = seeded_rng(seed);
    #[allow(clippy::cast_precision_loss)]
    let mut uniform = move || (rng.next_u64() >> 11) as f64 / (1_u64 << 53) as f64;
    (0..n)
        .map(|_| {
            let component = shape.component(uniform());
            let gamma: f64 = (0..component.gamma_shape)
                .map(|_| -(1.0 - uniform()).ln())
                .sum();
            (component.shift + component.scale * gamma) * (2.0 * uniform() - 1.0)
        })
        .collect()
}

/// The scale-free shapes a report models the plateau's and the staircase's answers with
/// are the mechanisms' laws: their quantiles times the stated deviation are the stated
/// half-widths (within the lattice's step), and draws from their mixtures have unit
/// deviation and the same 95% reach.
#[test]
fn the_answer_shapes_are_the_laws_own() {
    let mechanisms = [
        plateau(&[5, 250], 1.0 / 3.0, &[0, 375]),
        staircase(&[5, 25_000], 4.0 / 3.0, (7, 10)),
    ];
    for (at, mechanism) in mechanisms.iter().enumerate() {
        for index in 0..2 {
            let shape = mechanism.answer_shape(index).unwrap();
            for confidence in [0.5, DEFAULT_CONFIDENCE] {
                let scaled = shape.quantile(1.0 - confidence) * mechanism.std_dev(index);
                let stated = mechanism.ci_half_width(index, confidence);
                // The plateau's stated half-width is its continuous quantile rounded up;
                // the staircase's is the lattice law's, which the spread law holds to half
                // a step either side.
                let (below, above) = if at == 0 { (0.0, 1.0) } else { (0.5, 0.5) };
                assert!(
                    stated - scaled >= -below - 1e-6 && stated - scaled <= above + 1e-6,
                    "{at}/{index}: {scaled} against {stated}"
                );
                let tail = shape.tail(shape.quantile(1.0 - confidence));
                assert!((tail - (1.0 - confidence)).abs() < 1e-9, "{tail}");
            }
            let draws = mixture_draws(&shape, 100_000, 66 + index as u64);
            #[allow(clippy::cast_precision_loss)]
            let variance = draws.iter().map(|z| z * z).sum::<f64>() / draws.len() as f64;
            assert!(
                (variance.sqrt() - 1.0).abs() < 0.02,
                "{at}/{index}: {variance}"
            );
            let reach = shape.quantile(0.05);
            let inside = draws.iter().filter(|z| z.abs() <= reach).count() as u64;
            assert!(
                binomial_consistent(inside, draws.len() as u64, 0.95),
                "{inside}"
            );
        }
    }
    assert_eq!(joint(&[5, 250], 1.0).answer_shape(0), None);
}

/// A staircase answer's shape is its lattice law spread over cells, in units of the
/// lattice law's deviation, even where the lattice is coarse (one row per unit at ε = 4):
/// `P(|z| > (k + ½)/σ)` of the shape is the lattice law's `P(|z| ≥ k + 1)`.
#[test]
fn the_staircase_shape_holds_the_lattice_tail_on_a_coarse_lattice() {
    for (sensitivities, epsilon) in [([1_u64, 25_000], 4.0), ([5, 25_000], 4.0), ([1, 250], 2.0)] {
        let step = best_step(&sensitivities, epsilon).unwrap_or(Step::new(1, 2).unwrap());
        let mechanism = staircase(&sensitivities, epsilon, step.parts());
        for index in 0..2 {
            let shape = mechanism.answer_shape(index).unwrap();
            let sigma = mechanism.std_dev(index);
            for k in [0_u32, 1, 2, 5, 40] {
                let spread = shape.tail((f64::from(k) + 0.5) / sigma);
                let lattice = 2.0 * mechanism.marginal_tail_estimate(index, f64::from(k + 1));
                assert!(
                    (spread - lattice).abs() <= 1e-9 + 1e-6 * lattice,
                    "{sensitivities:?} ε = {epsilon} [{index}] k = {k}: {spread} against {lattice}"
                );
            }
        }
    }
}
