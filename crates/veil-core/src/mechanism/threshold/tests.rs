use super::*;
use veil_testkit::seeded_rng;

fn eps(value: f64) -> Epsilon {
    Epsilon::new(value).unwrap()
}

fn delta(value: f64) -> Delta {
    Delta::new(value).unwrap()
}

#[test]
fn laplace_threshold_is_the_smallest_meeting_delta() {
    let selection = ThresholdMechanism::laplace(1, eps(1.0), delta(1e-6)).unwrap();
    // Noise truncated to [-k, k]: δ = P[Z = k] = q^k (1 − q) / (1 + q − 2q^(k+1)) <= 1e-6
    // with q = e^-1 ⇔ k = 14, τ = k + 1 = 15.
    assert_eq!(selection.threshold(), 15);
    let q = (-1.0_f64).exp();
    let edge = |k: f64| q.powf(k) * (1.0 - q) / (1.0 + q - 2.0 * q.powf(k + 1.0));
    assert!(edge(14.0) <= 1e-6 && edge(13.0) > 1e-6);
}

/// `P[keep]` of a group of `n` units (n = 0: a group that does not exist, never kept)
/// under noise `p` on `[-k, k]` (index `j + k`) and threshold `k + 1`.
fn keep_probabilities(p: &[f64], k: usize) -> Vec<f64> {
    // tail[i] = P[Z >= i - k], i in 0..=2k+1.
    let mut tail = vec![0.0; 2 * k + 2];
    for i in (0..=2 * k).rev() {
        tail[i] = tail[i + 1] + p[i];
    }
    (0..=2 * k + 2)
        .map(|n| {
            if n == 0 {
                return 0.0;
            }
            // n + Z >= k + 1 ⇔ Z >= k + 1 - n ⇔ index >= 2k + 1 - n.
            let index = (2 * k + 1).saturating_sub(n);
            if n > 2 * k + 1 { 1.0 } else { tail[index] }
        })
        .collect()
}

#[test]
fn truncated_laplace_selection_is_epsilon_delta_for_every_group_size() {
    // Per group, ε' = ε/L0 and δ' = δ/L0 (a unit changes at most L0 groups by one); checked
    // exactly on the keep probabilities of every group size from absent to certain.
    for (groups, epsilon, target) in [
        (1_u64, 1.0, 1e-6),
        (3, 0.1, 1e-6),
        (3, 0.033, 1e-6),
        (10, 2.0, 1e-8),
    ] {
        let selection = ThresholdMechanism::laplace(groups, eps(epsilon), delta(target)).unwrap();
        #[allow(clippy::cast_precision_loss)]
        let (per_epsilon, per_delta) = (epsilon / groups as f64, target / groups as f64);
        let k = usize::try_from(selection.threshold() - 1).unwrap();
        let q = (-per_epsilon).exp();
        #[allow(clippy::cast_precision_loss)]
        let weights: Vec<f64> = (0..=2 * k)
            .map(|i| q.powf((i as f64 - k as f64).abs()))
            .collect();
        let total: f64 = weights.iter().sum();
        let p: Vec<f64> = weights.iter().map(|w| w / total).collect();
        let keep = keep_probabilities(&p, k);
        let slack = 1e-12;
        assert!(
            keep[1] <= per_delta * (1.0 + 1e-9),
            "a group of one unit: {}",
            keep[1]
        );
        for n in 0..keep.len() - 1 {
            let (smaller, larger) = (keep[n], keep[n + 1]);
            // Keep: the larger group at most e^ε' times as likely, plus δ'.
            assert!(
                larger <= per_epsilon.exp() * smaller + per_delta + slack,
                "keep {n}"
            );
            // Drop: the smaller group at most e^ε' times as likely, plus δ'.
            assert!(
                1.0 - smaller <= per_epsilon.exp() * (1.0 - larger) + per_delta + slack,
                "drop {n}"
            );
        }
        // The smallest such threshold: one less and a group of one unit passes too often
        // (the planted bug "selection without its δ").
        assert!(p[2 * k - 1] + p[2 * k] > per_delta, "τ - 1 would also do");
        // And lower than plain thresholding of the untruncated noise.
        #[allow(clippy::cast_precision_loss)]
        let plain = (1..)
            .find(|&tau: &i64| groups as f64 * q.powf((tau - 1) as f64) / (1.0 + q) <= target)
            .unwrap();
        assert!(selection.threshold() <= plain);
    }
}

#[test]
fn truncation_lowers_the_threshold_where_epsilon_is_small() {
    // ε = 0.033 over L0 = 3 groups (a third of ε = 0.1): the edge carries a factor 1 − q ≈ ε/L0.
    let selection = ThresholdMechanism::laplace(3, eps(0.033), delta(1e-6)).unwrap();
    // Plain thresholding of the untruncated noise: L0 · q^(τ−1) / (1 + q) <= δ.
    let q = (-0.033_f64 / 3.0).exp();
    #[allow(clippy::cast_precision_loss)]
    let plain = (1..)
        .find(|&tau: &i64| 3.0 * q.powf((tau - 1) as f64) / (1.0 + q) <= 1e-6)
        .unwrap();
    #[allow(clippy::cast_precision_loss)]
    let ratio = selection.threshold() as f64 / plain as f64;
    assert!(ratio < 0.72, "{} vs {plain}", selection.threshold());
}

#[test]
fn truncated_noise_has_its_distribution() {
    // L0 = 1, ε = 1, δ = 1e-3: k = 7; a group of 2k + 1 units always passes, so the noise
    // is seen whole.
    let selection = ThresholdMechanism::laplace(1, eps(1.0), delta(1e-3)).unwrap();
    let k = selection.threshold() - 1;
    assert_eq!(k, 7);
    let units = 2 * k + 1;
    let mut rng = seeded_rng(77);
    let draws = 200_000_u32;
    let mut counts = vec![0_u32; usize::try_from(2 * k + 1).unwrap()];
    for _ in 0..draws {
        let released = selection.release(units, &mut rng).expect("always passes");
        let noise = *released.value() - units;
        assert!(noise.abs() <= k, "noise {noise} outside [-{k}, {k}]");
        counts[usize::try_from(noise + k).unwrap()] += 1;
    }
    // A released count's noise is truncated the same way.
    let rows = released_rows(0.5, 5, 3);
    let edge = rows.threshold() - 1;
    for _ in 0..20_000 {
        let units = 2 * edge + 1;
        let released = rows.release(units, &mut rng).expect("always passes");
        assert!((*released.value() - units).abs() <= edge);
    }
    let q = (-1.0_f64).exp();
    #[allow(clippy::cast_precision_loss)]
    let weights: Vec<f64> = (-k..=k).map(|j| q.powf(j.abs() as f64)).collect();
    let total: f64 = weights.iter().sum();
    for (count, weight) in counts.iter().zip(&weights) {
        let expected = f64::from(draws) * weight / total;
        let sigma = expected.sqrt();
        assert!(
            (f64::from(*count) - expected).abs() <= 5.0 * sigma,
            "{count} drawn where {expected:.0} expected"
        );
    }
}

#[test]
fn gaussian_wins_for_many_groups_per_unit() {
    // Each calibrated to the same (ε, δ) = (1, 1e-6) on its own: Laplace thresholding
    // directly; Gaussian thresholding with half of δ for the threshold and the ρ that the
    // other half converts to.
    let rho = crate::calibrate::epsilon_to_rho(eps(1.0), delta(5e-7)).unwrap();
    for (max_partitions, gaussian_better) in [(1_u64, false), (10, true), (100, true)] {
        let laplace = ThresholdMechanism::laplace(max_partitions, eps(1.0), delta(1e-6)).unwrap();
        let gaussian = ThresholdMechanism::gaussian(max_partitions, rho, delta(5e-7)).unwrap();
        assert_eq!(
            gaussian.units_for_half() < laplace.units_for_half(),
            gaussian_better,
            "L0 = {max_partitions}: Gaussian {} vs Laplace {}",
            gaussian.units_for_half(),
            laplace.units_for_half()
        );
    }
}

#[test]
fn small_groups_stay_hidden_and_large_ones_appear() {
    let selection = ThresholdMechanism::gaussian(3, Rho::new(0.1).unwrap(), delta(1e-7)).unwrap();
    let mut rng = seeded_rng(201);
    let released_single = (0..100_000)
        .filter(|_| selection.release(1, &mut rng).is_some())
        .count();
    assert_eq!(
        released_single, 0,
        "a group of one unit must (practically) never be released"
    );
    let large = 10 * selection.threshold();
    assert!((0..1_000).all(|_| selection.release(large, &mut rng).is_some()));
}

#[test]
fn release_probability_matches_simulation() {
    let selection = ThresholdMechanism::laplace(2, eps(0.5), delta(1e-5)).unwrap();
    let units = selection.units_for_half();
    let p = selection.release_probability(units);
    let mut rng = seeded_rng(202);
    let n = 100_000_u64;
    let released = (0..n)
        .filter(|_| {
            selection
                .release(i64::try_from(units).unwrap(), &mut rng)
                .is_some()
        })
        .count();
    assert!(
        veil_testkit::binomial_consistent(released as u64, n, p),
        "{released}/{n} vs {p}"
    );
    assert!(p >= 0.5 && selection.release_probability(units - 1) < 0.5);
}

#[test]
fn parameters_are_checked() {
    assert!(ThresholdMechanism::laplace(0, eps(1.0), delta(1e-6)).is_err());
    assert!(ThresholdMechanism::laplace(1, eps(1.0), delta(0.0)).is_err());
    assert!(ThresholdMechanism::gaussian(1, Rho::new(1.0).unwrap(), delta(0.0)).is_err());
}

fn released_rows(epsilon: f64, max_rows: u64, max_partitions: u64) -> ThresholdMechanism {
    // A row count: L1 sensitivity L0·L∞, thresholded at what one unit's L∞ rows can reach.
    let noise = LaplaceMechanism::new(
        L1Sensitivity::integer(max_partitions * max_rows),
        Epsilon::new(epsilon).unwrap(),
    )
    .unwrap();
    ThresholdMechanism::on_released(
        ThresholdNoise::Laplace(noise),
        max_rows,
        max_partitions,
        Delta::new(1e-6).unwrap(),
    )
    .unwrap()
}

/// The discrete Laplace of `scale` truncated to `[-k, k]` (index `j + k`).
#[allow(clippy::cast_precision_loss)]
fn truncated_pmf(scale: f64, k: i64) -> Vec<f64> {
    let weights: Vec<f64> = (-k..=k)
        .map(|j| (-(j.abs() as f64) / scale).exp())
        .collect();
    let total: f64 = weights.iter().sum();
    weights.iter().map(|w| w / total).collect()
}

/// The least δ with `P[M(a) ∈ S] <= e^ε P[M(b) ∈ S] + δ` for every set `S`, where `M(n)`
/// releases `n + Z` if it reaches `k + 1` and nothing otherwise, `n = 0` being a group that
/// does not exist (never released).
fn hockey_stick(p: &[f64], k: i64, a: i64, b: i64, epsilon: f64) -> f64 {
    let released = |n: i64, y: i64| -> f64 {
        if n == 0 || y < k + 1 || (y - n).abs() > k {
            0.0
        } else {
            p[usize::try_from(y - n + k).unwrap()]
        }
    };
    let not_released = |n: i64| 1.0 - (k + 1..=n + k).map(|y| released(n, y)).sum::<f64>();
    let low = a.min(b) - k;
    let high = a.max(b) + k;
    let values: f64 = (low..=high)
        .map(|y| (released(a, y) - epsilon.exp() * released(b, y)).max(0.0))
        .sum();
    values + (not_released(a) - epsilon.exp() * not_released(b)).max(0.0)
}

#[test]
fn thresholding_a_released_count_accounts_for_a_units_whole_contribution() {
    let rows = released_rows(0.5, 5, 3);
    let scale = 30.0_f64; // L0·L∞/ε
    let k = rows.threshold() - 1;
    let p = truncated_pmf(scale, k);
    let band = |k: i64| {
        let p = truncated_pmf(scale, k);
        p[p.len() - 5..].iter().sum::<f64>()
    };
    // The noise is truncated to [-k, k] and τ = k + 1: a new group of at most 5 rows passes,
    // and a shift of at most 5 rows leaves the support, with probability band(k), and
    // L0 · band(k) <= δ where L0 · band(k − 1) is not.
    assert!(3.0 * band(k) <= 1e-6 * (1.0 + 1e-9));
    assert!(3.0 * band(k - 1) > 1e-6);
    // Per group, exactly: a count moved by d <= 5 rows (from absent to certain) costs
    // e^(d/scale) and at most band(k).
    for n in 0..=2 * k + 2 {
        for d in 1..=5 {
            #[allow(clippy::cast_precision_loss)]
            let epsilon = d as f64 / scale;
            let up = hockey_stick(&p, k, n + d, n, epsilon);
            let down = hockey_stick(&p, k, n, n + d, epsilon);
            assert!(
                up <= band(k) + 1e-12 && down <= band(k) + 1e-12,
                "n = {n}, d = {d}: {up}, {down}"
            );
        }
    }
    // Lower than plain thresholding of the untruncated noise (L0 · P[Z >= τ − 5] <= δ).
    let q = (-1.0 / scale).exp();
    #[allow(clippy::cast_precision_loss)]
    let plain = (1..)
        .find(|&tau: &i64| 3.0 * (-((tau - 5) as f64) / scale).exp() / (1.0 + q) <= 1e-6)
        .unwrap();
    assert!(rows.threshold() < plain, "{} vs {plain}", rows.threshold());
    // Counting units instead (contribution 1) needs a lower threshold on the same noise.
    let units =
        ThresholdMechanism::on_released(rows.noise().clone(), 1, 3, Delta::new(1e-6).unwrap())
            .unwrap();
    assert!(units.threshold() < rows.threshold());
    assert!(
        ThresholdMechanism::on_released(units.noise().clone(), 0, 3, Delta::new(1e-6).unwrap())
            .is_err()
    );
}

/// Regression: a group just above the threshold was over-reported (about +9.5 for 20
/// people at threshold 28) and its interval, centred on the noisy count, missed the truth
/// there. Given that it passed, the conditional interval holds the true count at least 95%
/// of the time, near the threshold and far above it.
#[test]
fn the_interval_of_a_count_that_passed_covers_given_that_it_passed() {
    for mechanism in [
        ThresholdMechanism::laplace(1, Epsilon::new(0.5).unwrap(), Delta::new(1e-6).unwrap())
            .unwrap(),
        ThresholdMechanism::gaussian(3, Rho::new(0.05).unwrap(), Delta::new(1e-6).unwrap())
            .unwrap(),
        joint_rows(0.5, 1),
    ] {
        let mut rng = seeded_rng(21);
        let tau = mechanism.threshold();
        for offset in [-15_i64, -5, 0, 10, 60] {
            let truth = (tau + offset).max(1);
            #[allow(clippy::cast_precision_loss)]
            let truth_f = truth as f64;
            let (mut covered, mut naive_covered, mut passed) = (0_u64, 0_u64, 0_u64);
            while passed < 4000 {
                let Some(released) = mechanism.release(truth, &mut rng) else {
                    continue;
                };
                passed += 1;
                let interval = mechanism.conditional_interval(*released.value());
                if interval.low <= truth_f && truth_f <= interval.high {
                    covered += 1;
                }
                #[allow(clippy::cast_precision_loss)]
                let noisy = *released.value() as f64;
                if (noisy - truth_f).abs() <= released.ci_half_width() {
                    naive_covered += 1;
                }
            }
            #[allow(clippy::cast_precision_loss)]
            let (coverage, naive) = (
                covered as f64 / passed as f64,
                naive_covered as f64 / passed as f64,
            );
            assert!(coverage >= 0.94, "offset {offset}: coverage {coverage}");
            if offset == -15 {
                assert!(naive < 0.9, "the plain interval fails below τ: {naive}");
            }
        }
    }
}

#[test]
fn the_band_never_falls_as_the_scale_grows() {
    // The calibration rounds the scale up, which is sound only if the band does not fall
    // as the scale grows (for m >= 1; m < 1 is bounded by 1).
    for contribution in [1_u64, 2, 5, 50] {
        for m in (1..40).chain((40..2_000).step_by(97)) {
            let mut previous = 0.0;
            for step in 0..300 {
                let scale = 0.05 * 1.05_f64.powi(step);
                let band = truncated_laplace_band(scale, contribution)(m);
                assert!(
                    band >= previous * (1.0 - 1e-12),
                    "c = {contribution}, m = {m}: {band} after {previous} at scale {scale}"
                );
                previous = band;
            }
        }
    }
    assert!((truncated_laplace_band(1e3, 3)(0) - 1.0).abs() < f64::EPSILON);
}

#[test]
fn the_band_keeps_its_digits_when_the_support_is_far_below_the_scale() {
    // Scale 1e12, k = 2, c = 1: the truncated law is uniform on five values to 12 digits,
    // so the band (its top value) is 1/5. Computing 1 + q − 2q³ directly loses about five
    // of those digits.
    let band = truncated_laplace_band(1e12, 1)(2);
    assert!((band - 0.2).abs() < 1e-9, "{band}");
}

#[test]
fn a_selection_with_epsilon_far_below_delta_draws_quickly() {
    // ε = 1e-6, δ = 1e-3: k is tiny next to the scale of 1e6, so redrawing until inside
    // [-k, k] would take about 1e6/k draws per group. The direct sampler takes a few.
    let selection = ThresholdMechanism::laplace(1, eps(1e-6), delta(1e-3)).unwrap();
    let k = selection.truncation().unwrap();
    assert!(k < 1_000, "k = {k}");
    let mut rng = seeded_rng(31);
    let units = 2 * k + 1;
    let mut seen = std::collections::BTreeSet::new();
    for _ in 0..20_000 {
        let released = selection.release(units, &mut rng).expect("always passes");
        let noise = *released.value() - units;
        assert!(noise.abs() <= k);
        seen.insert(noise);
    }
    // Nearly uniform over the 2k + 1 values: all of them appear.
    assert_eq!(seen.len(), usize::try_from(2 * k + 1).unwrap());
}

/// The threshold on a released count rests on that count's noise covering a unit's whole
/// contribution: noise calibrated for 1 row in each of 3 groups cannot threshold a count
/// to which a unit adds 5 rows (its δ would be about seven times the claim).
#[test]
fn a_released_count_calibrated_for_less_than_the_contribution_is_refused() {
    let delta = Delta::new(1e-6).unwrap();
    let laplace = |l1| {
        ThresholdNoise::Laplace(
            LaplaceMechanism::new(L1Sensitivity::integer(l1), Epsilon::new(1.0).unwrap()).unwrap(),
        )
    };
    assert!(ThresholdMechanism::on_released(laplace(3), 5, 3, delta).is_err());
    assert!(ThresholdMechanism::on_released(laplace(3), 1, 3, delta).is_ok());
    assert!(ThresholdMechanism::on_released(laplace(15), 5, 3, delta).is_ok());
    let gaussian = |squared| {
        ThresholdNoise::Gaussian(
            GaussianMechanism::new_zcdp_squared(squared, Rho::new(0.5).unwrap()).unwrap(),
        )
    };
    // L2² = L0·c² = 75 for 5 rows in 3 groups.
    assert!(ThresholdMechanism::on_released(gaussian(3), 5, 3, delta).is_err());
    assert!(ThresholdMechanism::on_released(gaussian(75), 5, 3, delta).is_ok());
}

/// A count released through a Laplace threshold states its whole loss: (ε, δ), not ε.
#[test]
fn a_thresholded_laplace_count_states_its_delta() {
    let delta = Delta::new(1e-6).unwrap();
    let noise =
        LaplaceMechanism::new(L1Sensitivity::integer(15), Epsilon::new(1.0).unwrap()).unwrap();
    let selection =
        ThresholdMechanism::on_released(ThresholdNoise::Laplace(noise), 5, 3, delta).unwrap();
    let mut rng = seeded_rng(7);
    let released = selection.release(100_000, &mut rng).expect("far above τ");
    assert_eq!(
        released.loss(),
        PrivacyLoss::Approx(Epsilon::new(1.0).unwrap(), delta)
    );
}

/// A row count drawn jointly with a centred sum (5 rows and 250 steps per unit and group),
/// thresholded for `L0` groups per unit.
fn joint_rows(epsilon_per_group: f64, max_partitions: u64) -> ThresholdMechanism {
    let mechanism = JointLaplaceMechanism::new(&[5, 250], eps(epsilon_per_group)).unwrap();
    ThresholdMechanism::on_released(
        ThresholdNoise::Joint {
            mechanism,
            index: 0,
        },
        5,
        max_partitions,
        delta(1e-6),
    )
    .unwrap()
}

/// `P[z >= m]` of the thresholded answer of a two-answer joint draw, by brute force over
/// the lattice (`m >= 1`).
fn joint_tail_by_brute_force(selection: &ThresholdMechanism, m: i64) -> f64 {
    let ThresholdNoise::Joint { mechanism, index } = selection.noise() else {
        panic!("joint noise expected");
    };
    let pmf = crate::mechanism::joint::tests::marginal_by_brute_force(mechanism, *index);
    pmf[usize::try_from(m).unwrap()..].iter().sum()
}

/// The threshold on a joint answer is the smallest τ with `L0·P[z ≥ τ − L∞] <= δ` for the
/// lattice law itself (by brute force): a tail taken from a lighter law (a Laplace of the
/// answer's deviation, the joint law without its other answer's mass) would set τ lower and
/// fail the first check.
#[test]
fn a_threshold_on_a_joint_answer_meets_its_delta_and_no_lower_one_does() {
    for (epsilon, partitions) in [(1.0, 1_u64), (1.0 / 3.0, 3)] {
        let selection = joint_rows(epsilon, partitions);
        let tau = selection.threshold();
        #[allow(clippy::cast_precision_loss)]
        let partitions_f = partitions as f64;
        let at = partitions_f * joint_tail_by_brute_force(&selection, tau - 5);
        let below = partitions_f * joint_tail_by_brute_force(&selection, tau - 6);
        assert!(at <= 1e-6 && below > 1e-6, "τ = {tau}: {at}, {below}");
        assert_eq!(selection.truncation(), None);
    }
}

/// The planner's case (ε = 1 for a count and a sum, L0 = 3, L∞ = 5, δ = 1e-6): drawn
/// jointly at ε/3 per group, the count needs a lower threshold than the same count drawn
/// alone at half of ε with truncated noise, and its noise is smaller.
#[test]
fn a_joint_count_needs_a_lower_threshold_than_a_truncated_one_at_the_same_budget() {
    let joint = joint_rows(1.0 / 3.0, 3);
    let alone = released_rows(0.5, 5, 3);
    assert!(
        joint.threshold() < alone.threshold(),
        "{} vs {}",
        joint.threshold(),
        alone.threshold()
    );
    assert!(joint.std_dev() < alone.std_dev());
    // The three groups' draws at ε/3 each, rounded up.
    let PrivacyLoss::Pure(total) = joint.noise_loss() else {
        panic!("a pure loss expected");
    };
    assert!(total.get() >= 1.0 && total.get() < 1.0 + 1e-12);
}

/// A joint draw releases every answer or none, on its thresholded answer alone; the
/// answers carry δ in their loss.
#[test]
fn a_joint_draw_is_released_whole_when_its_count_passes() {
    let selection = joint_rows(1.0, 1);
    let mut rng = seeded_rng(31);
    let tau = selection.threshold();
    for _ in 0..200 {
        assert!(selection.release_joint(&[1, 0], &mut rng).is_none());
        let released = selection
            .release_joint(&[tau + 2_000, -77], &mut rng)
            .unwrap();
        assert_eq!(released.len(), 2);
        assert!(
            released
                .iter()
                .all(|value| value.loss() == PrivacyLoss::Approx(eps(1.0), delta(1e-6)))
        );
        assert!(selection.passes(*released[0].value()));
    }
    // Near τ the decision is the released count's: passed draws hold a count at τ or above.
    let mut seen = 0;
    for _ in 0..2_000 {
        if let Some(released) = selection.release_joint(&[tau, 10], &mut rng) {
            assert!(*released[0].value() >= tau);
            seen += 1;
        }
    }
    assert!((700..1_300).contains(&seen), "{seen}");
    let laplace = released_rows(0.5, 5, 3);
    assert!(laplace.release_joint(&[1, 2], &mut rng).is_none());
}

/// A joint answer calibrated for fewer rows than a unit adds to a group is refused, as is a
/// joint draw of more than two answers.
#[test]
fn a_joint_answer_calibrated_for_less_than_the_contribution_is_refused() {
    let mechanism = JointLaplaceMechanism::new(&[4, 250], eps(1.0)).unwrap();
    let noise = ThresholdNoise::Joint {
        mechanism,
        index: 0,
    };
    assert!(ThresholdMechanism::on_released(noise.clone(), 5, 1, delta(1e-6)).is_err());
    assert!(ThresholdMechanism::on_released(noise, 4, 1, delta(1e-6)).is_ok());
    let three = JointLaplaceMechanism::new(&[5, 250, 9], eps(1.0)).unwrap();
    let noise = ThresholdNoise::Joint {
        mechanism: three,
        index: 0,
    };
    assert!(ThresholdMechanism::on_released(noise, 5, 1, delta(1e-6)).is_err());
}

/// A tiny δ ends: the tail's far end is bounded in closed form, not summed down to
/// subnormal numbers (where a relative stopping rule underflows and never stops).
#[test]
fn a_joint_threshold_for_a_tiny_delta_ends() {
    let mechanism = JointLaplaceMechanism::new(&[5, 250], eps(1.0 / 3.0)).unwrap();
    let noise = ThresholdNoise::Joint {
        mechanism,
        index: 0,
    };
    let mut last = 0;
    for tiny in [1e-200, 1e-300, 1e-320] {
        let selection = ThresholdMechanism::on_released(noise.clone(), 5, 3, delta(tiny)).unwrap();
        assert!(selection.threshold() > last, "δ = {tiny}");
        last = selection.threshold();
    }
}

/// The staircase-shaped joint count (at ε = 4/3 per group, where a plan picks it) is
/// thresholded on its own lattice tail: `L0·P[z ≥ τ − L∞] ≤ δ` there and not at τ − 1
/// (the tail summed over the lattice here), and at the benchmark's bounds (5 rows and
/// 25,000 steps per unit and group, `L0 = 3`, δ = 1e-6) τ is the plain joint count's.
#[test]
fn a_staircase_count_meets_its_delta_at_the_plain_laws_threshold() {
    let epsilon = 4.0 / 3.0;
    let step = crate::mechanism::best_staircase_step(&[5, 25_000], epsilon).expect("a step at 4/3");
    let on = |mechanism: JointLaplaceMechanism| {
        ThresholdMechanism::on_released(
            ThresholdNoise::Joint {
                mechanism,
                index: 0,
            },
            5,
            3,
            delta(1e-6),
        )
        .unwrap()
    };
    let wide = on(JointLaplaceMechanism::staircase(&[5, 25_000], eps(epsilon), step).unwrap());
    let plain = on(JointLaplaceMechanism::new(&[5, 25_000], eps(epsilon)).unwrap());
    assert_eq!(wide.threshold(), plain.threshold());
    assert_eq!(wide.noise_description(), "joint staircase noise");
    // The exact check on a sum-sized lattice small enough to brute-force.
    let selection = on(JointLaplaceMechanism::staircase(&[5, 250], eps(epsilon), step).unwrap());
    let (a, b) = step.parts();
    let gamma = f64::from(a) / f64::from(b);
    #[allow(clippy::cast_precision_loss)]
    let weight = |k: i64| -> f64 {
        (-20_000_i64..=20_000)
            .map(|j| {
                let norm = (k.abs() as f64 / 5.0).max(j.abs() as f64 / 250.0);
                (-epsilon * ((norm - gamma + 1e-12).floor() + 1.0)).exp()
            })
            .sum()
    };
    let weights: Vec<f64> = (0..400).map(weight).collect();
    let total = weights[0] + 2.0 * weights[1..].iter().sum::<f64>();
    let tail = |m: i64| weights[usize::try_from(m).unwrap()..].iter().sum::<f64>() / total;
    let tau = selection.threshold();
    assert!(3.0 * tail(tau - 5) <= 1e-6, "τ = {tau}");
    assert!(3.0 * tail(tau - 6) > 1e-6, "τ − 1 = {} would do", tau - 1);
}
