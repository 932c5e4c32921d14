use super::*;
use veil_core::Bounds;

fn piecewise(eps: f64) -> Piecewise {
    let range = NumericRange::new(Bounds::new(-5.0, 5.0).unwrap()).unwrap();
    Piecewise::new(range, Epsilon::new(eps).unwrap()).unwrap()
}

/// The continuous mechanism's variance at `t` (Wang et al. 2019, Lemma 2).
fn continuous_variance(eps: f64, t: f64) -> f64 {
    let half = (eps / 2.0).exp();
    t * t / (half - 1.0) + (half + 3.0) / (3.0 * (half - 1.0) * (half - 1.0))
}

#[test]
fn matches_the_continuous_mechanism() {
    for eps in [0.5, 1.0, 4.0] {
        let mechanism = piecewise(eps);
        assert!(mechanism.actual_epsilon() <= eps);
        assert!(mechanism.actual_epsilon() > eps - 1e-9);
        for t in [-1.0, 0.0, 0.5, 1.0] {
            let ours = mechanism.variance_at(t);
            let theirs = continuous_variance(eps, t);
            assert!(
                (ours / theirs - 1.0).abs() < 1e-3,
                "ε={eps} t={t}: {ours} vs {theirs}"
            );
        }
    }
}

#[test]
fn reports_are_unbiased() {
    let mechanism = piecewise(2.0);
    let mut rng = veil_testkit::seeded_rng(10);
    let n = 200_000;
    let mut sum = 0.0;
    for _ in 0..n {
        let (cell, clamped) = mechanism.randomize(-2.5, &mut rng).unwrap();
        assert!(!clamped && cell < CELLS);
        sum += mechanism.value(cell);
    }
    let mean = sum / f64::from(n);
    let std_error = (mechanism.variance_at(-0.5) / f64::from(n)).sqrt();
    assert!((mean + 0.5).abs() < 5.0 * std_error, "{mean}");
}
