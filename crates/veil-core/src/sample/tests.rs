use super::*;
use veil_testkit::{binomial_consistent, chi_square_cdf, seeded_rng, slow_tests};

fn rational(text: &str) -> Rational {
    text.parse().expect("test rationals parse")
}

fn sample_count() -> usize {
    if slow_tests() { 2_000_000 } else { 200_000 }
}

/// The discrete Laplace CDF in closed form: for x >= 0,
/// `P(X <= x) = 1 - q^(x+1) / (1 + q)`, and symmetric.
fn laplace_cdf(scale: f64) -> impl Fn(i64) -> f64 {
    let q = (-1.0 / scale).exp();
    move |x| {
        #[allow(clippy::cast_precision_loss)]
        if x >= 0 {
            1.0 - q.powf(x as f64 + 1.0) / (1.0 + q)
        } else {
            q.powf(-(x as f64)) / (1.0 + q)
        }
    }
}

/// The discrete Gaussian CDF: summed exactly for small σ, and for large σ the continuous
/// one with continuity correction (they differ by less than exp(-2π²σ²) there).
fn gaussian_cdf(sigma_squared: f64) -> Box<dyn Fn(i64) -> f64> {
    let sigma = sigma_squared.sqrt();
    if sigma > 200.0 {
        return Box::new(move |x| {
            #[allow(clippy::cast_precision_loss)]
            let z = (x as f64 + 0.5) / sigma;
            0.5 * libm::erfc(-z / core::f64::consts::SQRT_2)
        });
    }
    #[allow(clippy::cast_possible_truncation)]
    let reach = (sigma * 40.0) as i64 + 40;
    #[allow(clippy::cast_precision_loss)]
    let weights: Vec<f64> = (-reach..=reach)
        .map(|k| (-(k as f64).powi(2) / (2.0 * sigma_squared)).exp())
        .collect();
    let total: f64 = weights.iter().sum();
    let mut cumulative = Vec::with_capacity(weights.len());
    let mut running = 0.0;
    for weight in &weights {
        running += weight / total;
        cumulative.push(running);
    }
    Box::new(move |x| {
        if x < -reach {
            0.0
        } else if x >= reach {
            1.0
        } else {
            cumulative[usize::try_from(x + reach).expect("inside the table")]
        }
    })
}

#[test]
fn discrete_laplace_fits_its_pmf_at_every_scale() {
    for (seed, scale) in [
        (1, "0.1"),
        (2, "1/3"),
        (3, "1"),
        (4, "5/2"),
        (5, "7"),
        (6, "1000"),
        (7, "1000000"),
        (8, "123456.789"),
    ] {
        let sampler = DiscreteLaplace::new(rational(scale)).unwrap();
        let mut rng = seeded_rng(seed);
        let count = if scale == "0.1" {
            sample_count() * 5
        } else {
            sample_count()
        };
        let samples: Vec<i64> = (0..count).map(|_| sampler.sample(&mut rng)).collect();
        let fit = chi_square_cdf(&samples, laplace_cdf(sampler.scale().to_f64()), 64);
        assert!(fit.passes(), "discrete Laplace scale {scale}: {fit:?}");
        assert!(
            fit.degrees_of_freedom >= 2,
            "scale {scale}: too few bins to test: {fit:?}"
        );
    }
}

#[test]
fn truncated_discrete_laplace_fits_its_pmf_wide_and_narrow() {
    // From a bound far inside the scale (nearly uniform) to one far outside it (untruncated
    // in effect), and the point mass of bound 0.
    for (seed, scale, bound) in [
        (21, "1", 0_u64),
        (22, "1", 3),
        (23, "5/2", 40),
        (24, "1000000", 4),
        (25, "1000", 900),
        (26, "123456.789", 25_000),
    ] {
        let sampler = DiscreteLaplace::new(rational(scale)).unwrap();
        let q = (-1.0 / sampler.scale().to_f64()).exp();
        let bound_signed = i64::try_from(bound).unwrap();
        #[allow(clippy::cast_precision_loss)]
        let weight = |x: i64| q.powf(x.unsigned_abs() as f64);
        let mut rng = seeded_rng(seed);
        let samples: Vec<i64> = (0..sample_count())
            .map(|_| sampler.sample_truncated(&mut rng, bound))
            .collect();
        assert!(samples.iter().all(|x| x.unsigned_abs() <= bound));
        if bound == 0 {
            continue;
        }
        // The CDF as a table summed from the lower edge.
        let mut cumulative: Vec<f64> = (-bound_signed..=bound_signed)
            .scan(0.0, |running, x| {
                *running += weight(x);
                Some(*running)
            })
            .collect();
        let total = *cumulative.last().expect("2·bound + 1 values");
        cumulative.iter_mut().for_each(|value| *value /= total);
        let cdf = move |x: i64| -> f64 {
            if x < -bound_signed {
                0.0
            } else if x >= bound_signed {
                1.0
            } else {
                cumulative[usize::try_from(x + bound_signed).expect("inside the table")]
            }
        };
        let fit = chi_square_cdf(&samples, cdf, 64);
        assert!(
            fit.passes() && fit.degrees_of_freedom >= 2,
            "scale {scale}, bound {bound}: {fit:?}"
        );
    }
}

#[test]
fn discrete_gaussian_fits_its_pmf_at_every_scale() {
    for (seed, sigma_squared) in [
        (11, "0.1"),
        (12, "1/4"),
        (13, "1"),
        (14, "9"),
        (15, "13.69"),
        (16, "1000000"),
        (17, "1000000000000"),
        (18, "2/3"),
    ] {
        let sampler = DiscreteGaussian::new(rational(sigma_squared)).unwrap();
        let mut rng = seeded_rng(seed);
        let count = if sigma_squared == "0.1" {
            sample_count() * 5
        } else {
            sample_count()
        };
        let samples: Vec<i64> = (0..count).map(|_| sampler.sample(&mut rng)).collect();
        let fit = chi_square_cdf(&samples, gaussian_cdf(sampler.sigma_squared().to_f64()), 64);
        assert!(
            fit.passes(),
            "discrete Gaussian σ² {sigma_squared}: {fit:?}"
        );
        assert!(
            fit.degrees_of_freedom >= 2,
            "σ² {sigma_squared}: too few bins to test: {fit:?}"
        );
    }
}

#[test]
fn discrete_gaussian_with_tiny_sigma_is_almost_surely_zero() {
    // σ = 0.1: P(X != 0) is about 2·exp(-50), below 4e-22.
    let sampler = DiscreteGaussian::new(rational("0.01")).unwrap();
    let mut rng = seeded_rng(10);
    assert!((0..sample_count()).all(|_| sampler.sample(&mut rng) == 0));
}

#[test]
fn discrete_gaussian_big_integer_path_fits() {
    // σ² with 63-bit parts forces 2·a·b·t² past 128 bits.
    let sigma_squared = Rational::new((1 << 63) + 1, (1 << 63) - 1).unwrap();
    let sampler = DiscreteGaussian::new(sigma_squared).unwrap();
    assert!(
        sampler.denominator.is_none(),
        "the test must exercise the big-integer path"
    );
    let mut rng = seeded_rng(19);
    let samples: Vec<i64> = (0..20_000).map(|_| sampler.sample(&mut rng)).collect();
    let fit = chi_square_cdf(&samples, gaussian_cdf(sigma_squared.to_f64()), 32);
    assert!(fit.passes(), "{fit:?}");
}

#[test]
fn geometric_fits_its_pmf() {
    for (seed, scale) in [(21, "0.5"), (22, "3"), (23, "2500/3")] {
        let sampler = Geometric::new(rational(scale)).unwrap();
        let mut rng = seeded_rng(seed);
        let samples: Vec<i64> = (0..sample_count())
            .map(|_| i64::try_from(sampler.sample(&mut rng)).unwrap())
            .collect();
        let q = (-1.0 / sampler.scale().to_f64()).exp();
        #[allow(clippy::cast_precision_loss)]
        let cdf = move |x: i64| {
            if x < 0 {
                0.0
            } else {
                1.0 - q.powf(x as f64 + 1.0)
            }
        };
        let fit = chi_square_cdf(&samples, cdf, 48);
        assert!(fit.passes(), "geometric scale {scale}: {fit:?}");
    }
}

#[test]
fn samplers_are_symmetric() {
    let laplace = DiscreteLaplace::new(rational("3/2")).unwrap();
    let gaussian = DiscreteGaussian::new(rational("5")).unwrap();
    let mut rng = seeded_rng(31);
    let n = sample_count() as u64;
    let (mut positive, mut negative) = (0_u64, 0_u64);
    for _ in 0..n {
        match laplace.sample(&mut rng).signum() {
            1 => positive += 1,
            -1 => negative += 1,
            _ => {}
        }
    }
    assert!(
        binomial_consistent(positive, positive + negative, 0.5),
        "Laplace: {positive} vs {negative}"
    );
    let (mut positive, mut negative) = (0_u64, 0_u64);
    for _ in 0..n {
        match gaussian.sample(&mut rng).signum() {
            1 => positive += 1,
            -1 => negative += 1,
            _ => {}
        }
    }
    assert!(
        binomial_consistent(positive, positive + negative, 0.5),
        "Gaussian: {positive} vs {negative}"
    );
}

#[test]
fn bernoulli_exp_matches_exp_minus_gamma() {
    let n = sample_count() as u64;
    for (seed, gamma) in [
        (41, "0"),
        (42, "1/1000"),
        (43, "1/2"),
        (44, "1"),
        (45, "7/3"),
        (46, "5"),
        (47, "123456789/98765432"),
    ] {
        let gamma = rational(gamma);
        let mut rng = seeded_rng(seed);
        let successes = (0..n).filter(|_| bernoulli_exp(&mut rng, gamma)).count() as u64;
        let p = (-gamma.to_f64()).exp();
        assert!(
            binomial_consistent(successes, n, p),
            "γ = {gamma}: {successes}/{n}, p = {p}"
        );
    }
}

#[test]
fn bernoulli_exp_big_path_matches() {
    let n = 100_000_u64;
    let mut rng = seeded_rng(48);
    // 2^100 + 1 over 2^101: γ just above 1/2, parts beyond 64 bits.
    let numer = (UBig::ONE << 100_usize) + UBig::ONE;
    let denom = UBig::ONE << 101_usize;
    let successes = (0..n)
        .filter(|_| bernoulli_exp_big(&mut rng, &numer, &denom))
        .count() as u64;
    assert!(
        binomial_consistent(successes, n, (-0.5_f64).exp()),
        "{successes}/{n}"
    );
}

#[test]
fn bernoulli_matches_rational_probability() {
    let n = sample_count() as u64;
    for (seed, p) in [
        (51, "0"),
        (52, "1"),
        (53, "1/3"),
        (54, "999/1000"),
        (55, "1/18446744073709551617"),
    ] {
        let probability = rational(p);
        let mut rng = seeded_rng(seed);
        let successes = (0..n)
            .filter(|_| bernoulli(&mut rng, probability).unwrap())
            .count() as u64;
        assert!(
            binomial_consistent(successes, n, probability.to_f64()),
            "p = {p}: {successes}/{n}"
        );
    }
    assert!(bernoulli(&mut seeded_rng(56), rational("3/2")).is_err());
}

#[test]
fn uniform_draws_are_uniform() {
    let mut rng = seeded_rng(61);
    for n in [3_u32, 7, 1000] {
        let samples: Vec<i64> = (0..100_000)
            .map(|_| i64::from(uniform_below_u32(&mut rng, n)))
            .collect();
        #[allow(clippy::cast_precision_loss)]
        let cdf = |x: i64| ((x + 1).clamp(0, i64::from(n)) as f64) / f64::from(n);
        let fit = chi_square_cdf(&samples, cdf, 50);
        assert!(fit.passes(), "n = {n}: {fit:?}");
    }
    let huge = (1_u128 << 100) + 12345;
    for _ in 0..10_000 {
        assert!(uniform_below_u128(&mut rng, huge) < huge);
        assert!(uniform_below_u64(&mut rng, 3) < 3);
    }
    let big = UBig::from(huge) * UBig::from(huge);
    for _ in 0..1_000 {
        assert!(uniform_below_big(&mut rng, &big) < big);
    }
}

#[test]
fn floor_sqrt_is_exact() {
    assert_eq!(floor_sqrt_ratio(9, 1), 3);
    assert_eq!(floor_sqrt_ratio(8, 1), 2);
    assert_eq!(floor_sqrt_ratio(1, 4), 0);
    assert_eq!(floor_sqrt_ratio(25, 4), 2);
    let square = u128::from(u64::MAX) * u128::from(u64::MAX);
    assert_eq!(floor_sqrt_ratio(square, 1), u64::MAX);
    assert_eq!(floor_sqrt_ratio(square - 1, 1), u64::MAX - 1);
}

#[test]
fn sampler_parameters_are_checked() {
    assert!(DiscreteLaplace::new(rational("0")).is_err());
    assert!(DiscreteGaussian::new(rational("0")).is_err());
    let oversized = Rational::new(u128::from(u64::MAX) + 2, 3).unwrap();
    let error = DiscreteLaplace::new(oversized).unwrap_err();
    assert!(
        alloc::string::ToString::to_string(&error).contains("above 2^64"),
        "{error}"
    );
}

#[test]
fn variance_formula_matches_samples() {
    let sampler = DiscreteLaplace::new(rational("4")).unwrap();
    let mut rng = seeded_rng(71);
    let n = sample_count();
    #[allow(clippy::cast_precision_loss)]
    let mean_square = (0..n)
        .map(|_| (sampler.sample(&mut rng) as f64).powi(2))
        .sum::<f64>()
        / n as f64;
    let relative = (mean_square - sampler.variance()).abs() / sampler.variance();
    assert!(
        relative < 0.05,
        "sample variance {mean_square} vs {}",
        sampler.variance()
    );
}
