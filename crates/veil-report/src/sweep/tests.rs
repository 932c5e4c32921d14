use super::*;
use crate::fairness::{fairness_flags, size_bucket};
use crate::input::NoiseShape;

fn prediction(truth: f64, bounded: f64, noise_std: f64, release: f64) -> Prediction {
    Prediction {
        truth,
        bounded,
        clamping: 0.0,
        linf: bounded - truth,
        l0: 0.0,
        noise_std,
        shape: NoiseShape::Gaussian,
        release,
        range: (0.0, f64::INFINITY),
        rank: None,
        ratio: None,
    }
}

#[test]
fn size_buckets_are_decades() {
    assert_eq!(size_bucket(1.0).1, "1–9 units");
    assert_eq!(size_bucket(9.0).1, "1–9 units");
    assert_eq!(size_bucket(10.0).1, "10–99 units");
    assert_eq!(size_bucket(12_345.0).1, "10000–99999 units");
    assert_eq!(size_bucket(0.0).0, 0);
}

#[test]
fn nearest_epsilon_is_nearest_in_log_scale() {
    let epsilons = [0.1, 0.25, 0.5, 1.0, 2.0, 4.0];
    assert_eq!(nearest(&epsilons, 1.0), 3);
    assert_eq!(nearest(&epsilons, 0.7), 2);
    assert_eq!(nearest(&epsilons, 100.0), 5);
}

#[test]
fn bias_without_noise_gives_exact_statistics() {
    // Relative biases 10%, 20%, 30%, 40%: median (nearest rank below) 20%.
    let predictions: Vec<Prediction> = [0.1, 0.2, 0.3, 0.4]
        .iter()
        .map(|bias| prediction(100.0, 100.0 * (1.0 - bias), 0.0, 1.0))
        .collect();
    let stats = analytic_stats(predictions.iter());
    assert!((stats.median_relative - 0.2).abs() < 1e-9);
    assert!((stats.p90_relative - 0.4).abs() < 1e-9);
    assert!((stats.median_abs - 20.0).abs() < 1e-6);
    let rmse = ((100.0 + 400.0 + 900.0 + 1600.0) / 4.0_f64).sqrt();
    assert!((stats.rmse - rmse).abs() < 1e-9);
}

#[test]
fn lost_groups_count_as_whole_errors() {
    let predictions = [prediction(50.0, 50.0, 0.0, 0.0)];
    let stats = analytic_stats(predictions.iter());
    assert!((stats.median_relative - 1.0).abs() < 1e-9);
    let parts = decomposition(predictions.iter());
    assert!((parts.selection - 1.0).abs() < 1e-12);
}

#[test]
fn decomposition_shares_add_up_to_one() {
    let predictions = [
        prediction(100.0, 80.0, 5.0, 0.9),
        prediction(10.0, 9.0, 5.0, 0.3),
    ];
    let parts = decomposition(predictions.iter());
    let total = parts.clamping + parts.linf + parts.l0 + parts.noise + parts.selection;
    assert!((total - 1.0).abs() < 1e-12);
    assert!(parts.linf > 0.0 && parts.noise > 0.0 && parts.selection > 0.0);
}

#[test]
fn small_groups_with_large_errors_are_flagged() {
    let predictions: Vec<Option<Prediction>> = vec![
        Some(prediction(5.0, 2.0, 1.0, 0.5)),
        Some(prediction(1000.0, 990.0, 1.0, 1.0)),
        Some(prediction(2000.0, 1990.0, 1.0, 1.0)),
    ];
    let slices = [
        Slice {
            label: "1–9 units".into(),
            members: vec![0],
        },
        Slice {
            label: "1000–9999 units".into(),
            members: vec![1, 2],
        },
    ];
    let flags = fairness_flags("count", &slices, &predictions);
    assert_eq!(flags.len(), 1, "{flags:?}");
    let findings = fairness_findings("groups of", 1.0, &flags);
    assert_eq!(findings.len(), 1, "{findings:?}");
    assert!(findings[0].contains("1–9 units"));
    assert!(findings[0].contains("count"));
}

#[test]
fn numbers_are_short() {
    assert_eq!(short(1234.5678), "1235");
    assert_eq!(short(0.012_345), "0.0123");
    assert_eq!(short(2.0), "2");
    assert_eq!(percent(0.1234), "12%");
    assert_eq!(percent(0.012_34), "1.2%");
}
