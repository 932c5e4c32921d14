//! Empirical variance of each frequency oracle against its theoretical variance.
//!
//! For each oracle the test randomizes `n` values drawn from a skewed distribution, decodes
//! the reports, and compares `Σ (estimate - truth)²` over all items (and repetitions) with
//! `Σ Var` from the oracle's exact variance formula at the true counts. The ratio has a
//! relative standard deviation of about `sqrt(2 Σσ⁴)/Σσ²` (errors are close to Gaussian);
//! the fast version accepts `|ratio - 1|` up to 4.9 of those (false failure rate below
//! 1e-6), or 10% if that is wider. `VEIL_SLOW_TESTS=1` runs the issue's setting: `n = 10^6`
//! with enough repetitions that 10% is itself a 4.9σ band, and requires `|ratio - 1| <= 10%`.

use rand_core::Rng;
use veil_core::Epsilon;
use veil_ldp::server::Aggregator;
use veil_ldp::{Domain, Longitudinal, OracleName, Protocol, ProtocolConfig};

struct Outcome {
    ratio: f64,
    relative_sd: f64,
}

fn measure(oracle: OracleName, size: u32, epsilon: f64, n: u32, repetitions: u32) -> Outcome {
    let protocol = Protocol::new(ProtocolConfig {
        oracle,
        epsilon: Epsilon::new(epsilon).expect("valid ε"),
        domain: Domain::Size(size),
        longitudinal: Longitudinal::Independent,
    })
    .expect("valid protocol");
    let support = protocol.oracle().support().expect("a frequency oracle");
    let mut rng = veil_testkit::seeded_rng(u64::from(size) * 1000 + u64::from(n % 997));
    let (mut squared_error, mut variance, mut variance_squared) = (0.0, 0.0, 0.0);
    for _ in 0..repetitions {
        let mut truth = vec![0_u32; size as usize];
        let mut aggregator = Aggregator::new(&protocol);
        for _ in 0..n {
            // Skewed: P(v) decreasing in v (the square of a uniform).
            let uniform = f64::from(rng.next_u32()) / 4_294_967_296.0;
            #[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss)]
            let value = ((uniform * uniform) * f64::from(size)) as u32;
            truth[value as usize] += 1;
            let report = protocol
                .randomize_index(value, &mut rng)
                .expect("in domain");
            aggregator.add(&report).expect("own report");
        }
        let estimates = aggregator
            .finish()
            .expect("estimates")
            .into_frequencies()
            .expect("frequencies");
        for (item, &count) in estimates.items().iter().zip(&truth) {
            let error = item.estimate - f64::from(count);
            squared_error += error * error;
            let item_variance = support.count_variance(f64::from(count), f64::from(n));
            variance += item_variance;
            variance_squared += item_variance * item_variance;
        }
    }
    Outcome {
        ratio: squared_error / variance,
        relative_sd: (2.0 * variance_squared).sqrt() / variance,
    }
}

fn check(oracle: OracleName, size: u32, epsilon: f64) {
    let slow = veil_testkit::slow_tests();
    let (n, repetitions) = if slow {
        // Enough items·repetitions that 10% is 4.9 standard deviations.
        let needed = 2.0 * (4.9_f64 / 0.10).powi(2) / f64::from(size);
        #[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss)]
        let repetitions = needed.ceil() as u32 + 1;
        (1_000_000, repetitions)
    } else {
        (100_000, if size < 256 { 4 } else { 1 })
    };
    let outcome = measure(oracle, size, epsilon, n, repetitions);
    let tolerance = if slow {
        0.10
    } else {
        (4.9 * outcome.relative_sd).max(0.10)
    };
    eprintln!(
        "{oracle} d={size} ε={epsilon} n={n} ×{repetitions}: empirical/theoretical variance = {:.4} (tolerance ±{tolerance:.3}, σ = {:.4})",
        outcome.ratio, outcome.relative_sd
    );
    assert!(
        (outcome.ratio - 1.0).abs() <= tolerance,
        "{oracle} d={size} ε={epsilon}: ratio {} outside ±{tolerance}",
        outcome.ratio
    );
}

#[test]
fn grr_variance_matches_theory() {
    check(OracleName::Grr, 1024, 1.0);
    check(OracleName::Grr, 64, 4.0);
}

#[test]
fn oue_variance_matches_theory() {
    check(OracleName::Oue, 1024, 1.0);
    check(OracleName::Oue, 64, 4.0);
}

#[test]
fn olh_variance_matches_theory() {
    check(OracleName::Olh, 1024, 1.0);
    check(OracleName::Olh, 64, 4.0);
}

#[test]
fn hadamard_variance_matches_theory() {
    check(OracleName::Hadamard, 1024, 1.0);
    check(OracleName::Hadamard, 64, 4.0);
}

#[test]
fn reference_variances_match_the_issue() {
    // At d = 1024, ε = 1 the per-item n·Var of rare items is 4e^ε/(e^ε-1)² ≈ 3.68 for
    // OUE (and OLH, up to its integer g) and (e^ε + d - 2)/(e^ε - 1)² ≈ 348 for GRR.
    let rare = |oracle| {
        let protocol = Protocol::new(ProtocolConfig {
            oracle,
            epsilon: Epsilon::new(1.0).expect("valid ε"),
            domain: Domain::Size(1024),
            longitudinal: Longitudinal::Independent,
        })
        .expect("valid protocol");
        let support = protocol.oracle().support().expect("frequency oracle");
        support.count_variance(0.0, 1.0)
    };
    let e = 1_f64.exp();
    let oue = 4.0 * e / ((e - 1.0) * (e - 1.0));
    let grr = (e + 1022.0) / ((e - 1.0) * (e - 1.0));
    assert!((rare(OracleName::Oue) / oue - 1.0).abs() < 1e-9);
    assert!((rare(OracleName::Grr) / grr - 1.0).abs() < 1e-6);
    assert!((rare(OracleName::Olh) / oue - 1.0).abs() < 0.01);
    assert!((oue - 3.68).abs() < 0.01 && (grr - 348.0).abs() < 1.0);
}
