//! Planted bugs: each is a mechanism, an LDP randomizer or an engine step made wrongly
//! on purpose, next to the correct version, audited against the same claim. The list is
//! the auditor's specification: it must catch every bug and pass every correct version.
//!
//! Bugs are planted without touching production code: a mechanism is built with the
//! wrong parameter, aggregates are computed with a wrong scan plan, or the release step
//! is called with partition selection removed. The claim always comes from the correct
//! version. The engine's bugs are in [`job`], built with the `job` feature (the default).
//!
//! Every audit runs at confidence 1 − 1e-7, so the chance that a correct version fails
//! is below 1e-7 per audit; seeds are fixed, so runs are reproducible.

use rand::rngs::ChaCha20Rng;
use veil_audit::ldp::audit_protocol;
use veil_audit::mechanism::{
    MechanismName, audit_count_threshold, audit_joint, audit_quantile, audit_threshold,
    count_threshold, joint_count_threshold, threshold,
};
use veil_audit::{Claim, Confidence, Verdict, estimate::audit_sampler};
use veil_core::mechanism::{GaussianMechanism, LaplaceMechanism, ThresholdMechanism};
use veil_core::sample::DiscreteGaussian;
use veil_core::{Delta, Epsilon, L1Sensitivity, L2Sensitivity, Rational};
use veil_ldp::{Domain, Longitudinal, OracleName, Protocol, ProtocolConfig};
use veil_testkit::seeded_rng;

#[cfg(feature = "job")]
mod job;

fn confidence() -> Confidence {
    Confidence::new(1.0 - 1e-7).unwrap()
}

fn epsilon(value: f64) -> Epsilon {
    Epsilon::new(value).unwrap()
}

fn delta(value: f64) -> Delta {
    Delta::new(value).unwrap()
}

fn released(value: veil_core::Released<i64>) -> f64 {
    #[allow(clippy::cast_precision_loss)]
    let value = *value.value() as f64;
    value
}

/// One planted bug: what it is, the correct version's verdict and the bug's.
struct Case {
    bug: &'static str,
    correct: fn(&mut ChaCha20Rng) -> Verdict,
    planted: fn(&mut ChaCha20Rng) -> Verdict,
}

const CASES: &[Case] = &[
    Case {
        bug: "Laplace noise scale halved",
        correct: laplace_correct,
        planted: laplace_scale_halved,
    },
    Case {
        bug: "Gaussian noise scale halved",
        correct: gaussian_correct,
        planted: gaussian_scale_halved,
    },
    Case {
        bug: "Laplace noise calibrated from the L2 sensitivity where the L1 was needed",
        correct: vector_laplace_correct,
        planted: vector_laplace_l2_sensitivity,
    },
    Case {
        bug: "partition selection calibrated to δ = 0.2 while claiming δ = 1e-6",
        correct: threshold_correct,
        planted: threshold_wrong_delta,
    },
    Case {
        bug: "LDP keep probability of ε = 1.5 in a protocol that claims ε = 1",
        correct: ldp_correct,
        planted: ldp_wrong_keep_probability,
    },
    Case {
        bug: "median's utility sensitivity halved",
        correct: median_correct,
        planted: median_sensitivity_halved,
    },
    Case {
        bug: "joint draw's scales without their factor d (Δ/ε where d·Δ/ε was needed)",
        correct: joint_correct,
        planted: joint_without_dimension,
    },
    Case {
        bug: "staircase joint draw falling by e^(2ε) per shell (built for ε = 2, claiming 1)",
        correct: staircase_correct,
        planted: staircase_at_twice_its_epsilon,
    },
    Case {
        bug: "joint draw with a plateau falling by e^(2ε) beyond it (built for ε = 2, claiming 1)",
        correct: plateau_correct,
        planted: plateau_at_twice_its_epsilon,
    },
    Case {
        bug: "threshold on a released row count calibrated to δ = 0.05 while claiming 1e-6 (its δ not paid)",
        correct: count_threshold_correct,
        planted: count_threshold_without_its_delta,
    },
    Case {
        bug: "threshold on a row count drawn jointly with a sum calibrated to δ = 0.05 while claiming 1e-6",
        correct: joint_count_threshold_correct,
        planted: joint_count_threshold_without_its_delta,
    },
    Case {
        bug: "the same at ε = 4, on the staircase-shaped joint draw",
        correct: staircase_count_threshold_correct,
        planted: staircase_count_threshold_without_its_delta,
    },
];

#[test]
fn planted_bugs_fail_and_correct_versions_pass() {
    check(CASES, 1000);
}

/// Runs each case with its own seed (`first_seed` + its index) and fails with the list of
/// bugs that passed and correct versions that failed.
fn check(cases: &[Case], first_seed: u64) {
    let mut failures = Vec::new();
    for (index, case) in cases.iter().enumerate() {
        let seed = first_seed + index as u64;
        let correct = (case.correct)(&mut seeded_rng(seed));
        let planted = (case.planted)(&mut seeded_rng(seed));
        if correct != Verdict::Pass {
            failures.push(format!("{}: the correct version failed", case.bug));
        }
        if planted != Verdict::Fail {
            failures.push(format!("{}: the bug passed", case.bug));
        }
    }
    assert!(failures.is_empty(), "{failures:#?}");
}

// ---- Laplace: scale Δ/ε, or half of it.

fn laplace_with(scale_epsilon: f64, rng: &mut ChaCha20Rng) -> Verdict {
    let mechanism =
        LaplaceMechanism::new(L1Sensitivity::integer(1), epsilon(scale_epsilon)).unwrap();
    audit_sampler(
        200_000,
        Claim::pure(epsilon(1.0)),
        confidence(),
        rng,
        |rng| released(mechanism.release(0, rng)),
        |rng| released(mechanism.release(1, rng)),
    )
    .unwrap()
    .verdict
}

fn laplace_correct(rng: &mut ChaCha20Rng) -> Verdict {
    laplace_with(1.0, rng)
}

fn laplace_scale_halved(rng: &mut ChaCha20Rng) -> Verdict {
    // Scale Δ/(2ε): what a factor-of-two slip in the calibration gives.
    laplace_with(2.0, rng)
}

// ---- Gaussian: σ from CKS for (ε, δ), or half of it.

fn gaussian_with(divide_sigma_squared: u128, rng: &mut ChaCha20Rng) -> Verdict {
    let (claim_epsilon, claim_delta) = (epsilon(1.0), delta(1e-6));
    let correct =
        GaussianMechanism::new_approx(L2Sensitivity::integer(1), claim_epsilon, claim_delta)
            .unwrap();
    let sigma_squared = correct.sigma_squared();
    let noise = DiscreteGaussian::new(
        Rational::new(
            sigma_squared.numer(),
            sigma_squared.denom() * divide_sigma_squared,
        )
        .unwrap(),
    )
    .unwrap();
    #[allow(clippy::cast_precision_loss)]
    let draw = |value: i64, rng: &mut ChaCha20Rng| (value + noise.sample(rng)) as f64;
    audit_sampler(
        2_000_000,
        Claim {
            epsilon: claim_epsilon,
            delta: claim_delta,
        },
        confidence(),
        rng,
        |rng| draw(0, rng),
        |rng| draw(1, rng),
    )
    .unwrap()
    .verdict
}

fn gaussian_correct(rng: &mut ChaCha20Rng) -> Verdict {
    gaussian_with(1, rng)
}

fn gaussian_scale_halved(rng: &mut ChaCha20Rng) -> Verdict {
    gaussian_with(4, rng)
}

// ---- A vector query: one person adds 1 to each of 4 counts (Δ₁ = 4, Δ₂ = 2). Laplace
// noise needs Δ₁; the bug calibrates it from Δ₂. The audit looks at the sum of the
// released counts.

fn vector_laplace_with(sensitivity: u64, rng: &mut ChaCha20Rng) -> Verdict {
    let mechanism =
        LaplaceMechanism::new(L1Sensitivity::integer(sensitivity), epsilon(1.0)).unwrap();
    let sum = |value: i64, rng: &mut ChaCha20Rng| -> f64 {
        (0..4)
            .map(|_| released(mechanism.release(value, rng)))
            .sum()
    };
    audit_sampler(
        300_000,
        Claim::pure(epsilon(1.0)),
        confidence(),
        rng,
        |rng| sum(0, rng),
        |rng| sum(1, rng),
    )
    .unwrap()
    .verdict
}

fn vector_laplace_correct(rng: &mut ChaCha20Rng) -> Verdict {
    vector_laplace_with(4, rng)
}

fn vector_laplace_l2_sensitivity(rng: &mut ChaCha20Rng) -> Verdict {
    vector_laplace_with(2, rng)
}

// ---- Partition selection: Laplace thresholding at (1, 1e-6), or with the threshold of
// δ = 0.2 under the same claim.

fn threshold_with(actual_delta: f64, rng: &mut ChaCha20Rng) -> Verdict {
    let claim = Claim {
        epsilon: epsilon(1.0),
        delta: delta(1e-6),
    };
    let selection = threshold(
        MechanismName::LaplaceThreshold,
        1,
        epsilon(1.0),
        delta(actual_delta),
    )
    .unwrap();
    let pairs = audit_threshold(&selection, claim, 100_000, confidence(), rng).unwrap();
    pairs.iter().fold(Verdict::Pass, |verdict, (_, audit)| {
        verdict.and(audit.verdict)
    })
}

fn threshold_correct(rng: &mut ChaCha20Rng) -> Verdict {
    threshold_with(1e-6, rng)
}

fn threshold_wrong_delta(rng: &mut ChaCha20Rng) -> Verdict {
    threshold_with(0.2, rng)
}

// ---- Local DP: GRR over 16 values, built at the claimed ε or at 1.5 times it.

fn ldp_with(actual_epsilon: f64, rng: &mut ChaCha20Rng) -> Verdict {
    let protocol = Protocol::new(ProtocolConfig {
        oracle: OracleName::Grr,
        epsilon: epsilon(actual_epsilon),
        domain: Domain::Size(16),
        longitudinal: Longitudinal::Independent,
    })
    .unwrap();
    audit_protocol(&protocol, epsilon(1.0), 200_000, confidence(), rng)
        .unwrap()
        .verdict
}

fn ldp_correct(rng: &mut ChaCha20Rng) -> Verdict {
    ldp_with(1.0, rng)
}

fn ldp_wrong_keep_probability(rng: &mut ChaCha20Rng) -> Verdict {
    ldp_with(1.5, rng)
}

// ---- Median by permute-and-flip: units with 4 rows per group, ε = 1; the planted version
// computes its utility's sensitivity for 2 rows.

fn median_with(max_rows: u64, rng: &mut ChaCha20Rng) -> Verdict {
    use veil_core::mechanism::{QuantileMechanism, QuantileSelection};
    let median =
        QuantileMechanism::new(epsilon(1.0), max_rows, QuantileSelection::PermuteAndFlip).unwrap();
    let claim = Claim {
        epsilon: epsilon(1.0),
        delta: delta(0.0),
    };
    let (_, audit) = audit_quantile(&median, 4, claim, 200_000, confidence(), rng).unwrap();
    audit.verdict
}

fn median_correct(rng: &mut ChaCha20Rng) -> Verdict {
    median_with(4, rng)
}

fn median_sensitivity_halved(rng: &mut ChaCha20Rng) -> Verdict {
    median_with(2, rng)
}

// ---- Two answers drawn together at ε = 1, each moved by 2 steps; the planted version's
// scales miss their factor d = 2 (a joint draw built for ε = 2).

fn joint_with(built_for: f64, rng: &mut ChaCha20Rng) -> Verdict {
    let joint =
        veil_core::mechanism::JointLaplaceMechanism::new(&[2, 2], epsilon(built_for)).unwrap();
    joint_verdict(&joint, rng)
}

/// The audit of a joint draw against the claim ε = 1, 200,000 trials.
fn joint_verdict(
    joint: &veil_core::mechanism::JointLaplaceMechanism,
    rng: &mut ChaCha20Rng,
) -> Verdict {
    let (_, audit) =
        audit_joint(joint, Claim::pure(epsilon(1.0)), 200_000, confidence(), rng).unwrap();
    audit.verdict
}

fn joint_correct(rng: &mut ChaCha20Rng) -> Verdict {
    joint_with(1.0, rng)
}

fn joint_without_dimension(rng: &mut ChaCha20Rng) -> Verdict {
    joint_with(2.0, rng)
}

// ---- The staircase-shaped joint draw at ε = 1, each answer moved by 2 steps, step 1/2;
// the planted version falls by e^(2ε) from shell to shell (built for ε = 2).

fn staircase_with(built_for: f64, rng: &mut ChaCha20Rng) -> Verdict {
    let joint = veil_core::mechanism::JointLaplaceMechanism::staircase(
        &[2, 2],
        epsilon(built_for),
        veil_core::mechanism::StaircaseStep::new(1, 2).unwrap(),
    )
    .unwrap();
    joint_verdict(&joint, rng)
}

fn staircase_correct(rng: &mut ChaCha20Rng) -> Verdict {
    staircase_with(1.0, rng)
}

fn staircase_at_twice_its_epsilon(rng: &mut ChaCha20Rng) -> Verdict {
    staircase_with(2.0, rng)
}

// ---- The joint draw with a plateau on its second answer out to 2 steps, at ε = 1, each
// answer moved by 2 steps; the planted version falls by e^(2ε) beyond the plateau.

fn plateau_with(built_for: f64, rng: &mut ChaCha20Rng) -> Verdict {
    let joint =
        veil_core::mechanism::JointLaplaceMechanism::plateau(&[2, 2], epsilon(built_for), &[0, 2])
            .unwrap();
    joint_verdict(&joint, rng)
}

fn plateau_correct(rng: &mut ChaCha20Rng) -> Verdict {
    plateau_with(1.0, rng)
}

fn plateau_at_twice_its_epsilon(rng: &mut ChaCha20Rng) -> Verdict {
    plateau_with(2.0, rng)
}

// ---- Selection on a released row count: units with 5 rows per group, ε = 1, δ = 1e-6;
// the planted version's threshold is calibrated to δ = 0.05.

/// A threshold on a released row count built by `build` for δ = `actual_delta`, audited
/// against the claim δ = 1e-6.
fn released_count_threshold_with(
    build: fn(u64, u64, Epsilon, Delta) -> Result<ThresholdMechanism, veil_audit::AuditError>,
    actual_delta: f64,
    rng: &mut ChaCha20Rng,
) -> Verdict {
    released_count_threshold_at(build, 1.0, actual_delta, rng)
}

/// The same at ε = `at`.
fn released_count_threshold_at(
    build: fn(u64, u64, Epsilon, Delta) -> Result<ThresholdMechanism, veil_audit::AuditError>,
    at: f64,
    actual_delta: f64,
    rng: &mut ChaCha20Rng,
) -> Verdict {
    let selection = build(5, 5, epsilon(at), delta(actual_delta)).unwrap();
    let claim = Claim {
        epsilon: epsilon(at),
        delta: delta(1e-6),
    };
    let pairs = audit_count_threshold(&selection, 5, claim, 100_000, confidence(), rng).unwrap();
    pairs.iter().fold(Verdict::Pass, |verdict, (_, audit)| {
        verdict.and(audit.verdict)
    })
}

fn count_threshold_with(actual_delta: f64, rng: &mut ChaCha20Rng) -> Verdict {
    released_count_threshold_with(count_threshold, actual_delta, rng)
}

fn count_threshold_correct(rng: &mut ChaCha20Rng) -> Verdict {
    count_threshold_with(1e-6, rng)
}

fn count_threshold_without_its_delta(rng: &mut ChaCha20Rng) -> Verdict {
    count_threshold_with(0.05, rng)
}

// ---- The same, the row count drawn jointly with a centred sum (the engine's private
// count + sum under pure ε).

fn joint_count_threshold_with(actual_delta: f64, rng: &mut ChaCha20Rng) -> Verdict {
    released_count_threshold_with(joint_count_threshold, actual_delta, rng)
}

fn joint_count_threshold_correct(rng: &mut ChaCha20Rng) -> Verdict {
    joint_count_threshold_with(1e-6, rng)
}

fn joint_count_threshold_without_its_delta(rng: &mut ChaCha20Rng) -> Verdict {
    joint_count_threshold_with(0.05, rng)
}

// ---- The same at ε = 4, where the joint draw is staircase-shaped and the threshold is set
// on the staircase's tail.

fn staircase_count_threshold_correct(rng: &mut ChaCha20Rng) -> Verdict {
    released_count_threshold_at(joint_count_threshold, 4.0, 1e-6, rng)
}

fn staircase_count_threshold_without_its_delta(rng: &mut ChaCha20Rng) -> Verdict {
    released_count_threshold_at(joint_count_threshold, 4.0, 0.05, rng)
}
