use super::*;
use veil_core::Bounds;

fn hybrid(eps: f64) -> Hybrid {
    let range = NumericRange::new(Bounds::new(0.0, 1.0).unwrap()).unwrap();
    Hybrid::new(range, Epsilon::new(eps).unwrap()).unwrap()
}

#[test]
fn worst_case_variance_is_below_both_branches() {
    for eps in [0.8, 1.0, 2.0, 4.0] {
        let mechanism = hybrid(eps);
        let worst =
            |f: &dyn Fn(f64) -> f64| [-1.0, 0.0, 1.0].map(f).into_iter().fold(0.0, f64::max);
        let ours = worst(&|t| mechanism.variance_at(t));
        let duchi = worst(&|t| mechanism.duchi().variance_at(t));
        let piecewise = worst(&|t| mechanism.piecewise().variance_at(t));
        assert!(
            ours <= duchi * 1.0001 && ours <= piecewise * 1.0001,
            "ε={eps}"
        );
        assert!(mechanism.actual_epsilon() <= eps);
    }
    assert_eq!(hybrid(0.5).mix().numerator(), 0);
}

#[test]
fn reports_are_unbiased() {
    let mechanism = hybrid(3.0);
    let mut rng = veil_testkit::seeded_rng(11);
    let n = 100_000;
    let mut sum = 0.0;
    for _ in 0..n {
        let (report, _) = mechanism.randomize(0.9, &mut rng).unwrap();
        sum += match report {
            HybridReport::Duchi(positive) => mechanism.duchi().value(positive),
            HybridReport::Piecewise(cell) => mechanism.piecewise().value(cell),
        };
    }
    let mean = sum / f64::from(n);
    let std_error = (mechanism.variance_at(0.8) / f64::from(n)).sqrt();
    assert!((mean - 0.8).abs() < 5.0 * std_error, "{mean}");
}
