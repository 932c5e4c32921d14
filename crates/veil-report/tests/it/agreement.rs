//! The analytic prediction against the Monte Carlo measurement.

use veil_core::Epsilon;
use veil_report::{DataOrigin, NoiseShape, ReportOptions, build};

use crate::fixtures::{Planner, input};

/// Median relative errors of count, sum and mean: analytic within 5% (relative) of Monte
/// Carlo, for both noise shapes, with partition selection, across a 16-fold range of ε.
#[test]
fn analytic_median_relative_error_agrees_with_monte_carlo() {
    let input = input(40, DataOrigin::Sample);
    for shape in [NoiseShape::Laplace, NoiseShape::Gaussian] {
        let planner = Planner {
            shape,
            selection: true,
        };
        let options = ReportOptions {
            epsilons: [0.25, 1.0, 4.0]
                .into_iter()
                .map(|e| Epsilon::new(e).unwrap())
                .collect(),
            trials: 400,
            target_error: 0.1,
        };
        let mut rng = veil_testkit::seeded_rng(11);
        let report = build(&input, &planner, &options, &mut rng).unwrap();
        for aggregate in &report.queries[0].aggregates {
            if !["count", "sum_value", "mean_value"].contains(&aggregate.name.as_str()) {
                continue;
            }
            for at in &aggregate.sweep {
                let analytic = at.analytic.median_relative;
                let empirical = at.empirical.unwrap().median_relative;
                let gap = (analytic - empirical).abs() / empirical;
                assert!(
                    gap < 0.05,
                    "{shape:?} {} at ε = {}: analytic {analytic}, Monte Carlo {empirical}",
                    aggregate.name,
                    at.epsilon
                );
            }
        }
    }
}

/// Without bounding bias or selection, and far from the clamp at zero, the median
/// absolute error is the noise's own median: ln 2 · b for Laplace.
#[test]
fn noise_only_error_is_the_noise_median() {
    let mut input = input(5, DataOrigin::Sample);
    for group in &mut input.queries[0].groups {
        group.bounded.rows += 100_000.0;
        group.raw = group.bounded.clone();
        group.clamped = group.bounded.clone();
        group.row_bounded = group.bounded.clone();
    }
    let planner = Planner {
        shape: NoiseShape::Laplace,
        selection: false,
    };
    let options = ReportOptions {
        epsilons: vec![Epsilon::new(1.0).unwrap()],
        trials: 2000,
        target_error: 0.1,
    };
    let mut rng = veil_testkit::seeded_rng(3);
    let report = build(&input, &planner, &options, &mut rng).unwrap();
    let count = &report.queries[0].aggregates[0].sweep[0];
    // Laplace scale b = L0·L∞/(ε/5) = 75: median |noise| = 75 ln 2.
    let expected = 75.0 * std::f64::consts::LN_2;
    assert!((count.analytic.median_abs - expected).abs() < 1e-6 * expected);
    let measured = count.empirical.unwrap().median_abs;
    assert!(
        (measured - expected).abs() < 0.05 * expected,
        "{measured} vs {expected}"
    );
    assert!(count.decomposition.noise > 0.999);
}
