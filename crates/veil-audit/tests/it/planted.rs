//! Planted bugs: each is a mechanism, an LDP randomizer or an engine step made wrongly
//! on purpose, next to the correct version, audited against the same claim. The list is
//! the auditor's specification: it must catch every bug and pass every correct version.
//!
//! Bugs are planted without touching production code: a mechanism is built with the
//! wrong parameter, aggregates are computed with a wrong scan plan, or the release step
//! is called with partition selection removed. The claim always comes from the correct
//! version.
//!
//! Every audit runs at confidence 1 − 1e-7, so the chance that a correct version fails
//! is below 1e-7 per audit; seeds are fixed, so runs are reproducible.

use std::path::Path;

use rand::rngs::ChaCha20Rng;
use veil_audit::job::{
    JobAuditOptions, Neighbours, audit_neighbours, audit_neighbours_with, neighbours,
};
use veil_audit::ldp::audit_protocol;
use veil_audit::mechanism::{
    MechanismName, audit_count_threshold, audit_quantile, audit_threshold, count_threshold,
    threshold,
};
use veil_audit::{Claim, Confidence, Verdict, estimate::audit_sampler};
use veil_core::mechanism::{GaussianMechanism, LaplaceMechanism};
use veil_core::sample::DiscreteGaussian;
use veil_core::{Bounds, Delta, Epsilon, L1Sensitivity, L2Sensitivity, Rational};
use veil_engine::job::{
    Aggregate, AggregateKind, ContributionBounds, Governance, Job, JobBudget, Output, OutputFormat,
    Partitions, Query, Source, SourceFormat, ValueColumn,
};
use veil_engine::plan::Plan;
use veil_engine::scan::BoundingKey;
use veil_engine::{Executor, LocalExecutor};
use veil_ldp::{Domain, Longitudinal, OracleName, Protocol, ProtocolConfig};
use veil_testkit::seeded_rng;

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
        bug: "L∞ bound not applied by the scan",
        correct: job_correct,
        planted: job_without_linf,
    },
    Case {
        bug: "groups released without partition selection",
        correct: job_correct,
        planted: job_without_selection,
    },
    Case {
        bug: "rows published in the scan's order instead of by key",
        correct: order_correct,
        planted: order_of_the_scan,
    },
    Case {
        bug: "median's utility sensitivity halved",
        correct: median_correct,
        planted: median_sensitivity_halved,
    },
    Case {
        bug: "threshold on a released row count calibrated to δ = 0.05 while claiming 1e-6 (its δ not paid)",
        correct: count_threshold_correct,
        planted: count_threshold_without_its_delta,
    },
];

#[test]
fn planted_bugs_fail_and_correct_versions_pass() {
    let mut failures = Vec::new();
    for (index, case) in CASES.iter().enumerate() {
        let seed = 1000 + index as u64;
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

// ---- A job through the engine: counts per country, at most 1 country per person with
// at most 5 events, private partitions, ε = 1, δ = 1e-6 (a Laplace plan).

const JOB_TRIALS: usize = 1000;

fn options() -> JobAuditOptions {
    JobAuditOptions {
        trials: JOB_TRIALS,
        confidence: confidence(),
        overflow: 10,
        keys: 1,
    }
}

/// Synthetic events in a temporary directory (kept alive by the returned guard).
fn sample_job() -> (tempfile::TempDir, Job) {
    let directory = tempfile::tempdir().unwrap();
    let path = directory.path().join("events.parquet");
    veil_engine::sample::write_sample(
        veil_engine::sample::SampleSpec {
            rows: 20_000,
            users: 2_000,
        },
        &path,
        &mut seeded_rng(5),
        &mut |_| {},
    )
    .unwrap();
    let job = job_on(&path, directory.path());
    (directory, job)
}

fn job_on(source: &Path, output: &Path) -> Job {
    let count = AggregateKind::Count;
    Job {
        name: "planted".into(),
        job_hash: "planted".into(),
        source: Source {
            path: source.to_path_buf(),
            format: SourceFormat::Parquet,
            privacy_unit: "user_id".into(),
        },
        budget: JobBudget::Approx(epsilon(1.0), delta(1e-6)),
        queries: vec![Query {
            name: "by_country".into(),
            group_by: vec!["country".into()],
            bounds: ContributionBounds {
                max_groups_per_unit: 1,
                max_rows_per_group: 5,
            },
            partitions: Partitions::Private,
            aggregates: vec![
                Aggregate {
                    name: count.default_name(),
                    kind: count,
                    weight: 1.0,
                },
                Aggregate {
                    name: "sum_value".into(),
                    kind: AggregateKind::Sum(ValueColumn {
                        name: "value".into(),
                        bounds: Bounds::new(0.0, 100.0).unwrap(),
                    }),
                    weight: 1.0,
                },
            ],
            weight: 1.0,
            drop_missing: Vec::new(),
            auto: Vec::new(),
        }],
        output: Output {
            directory: output.join("out"),
            format: OutputFormat::Csv,
        },
        governance: Governance::unrestricted("analytics", veil_engine::sample::SAMPLE_END_MS),
        noise: veil_engine::job::NoisePreference::Auto,
    }
}

fn job_neighbours(job: &Job, scan: &veil_engine::plan::ScanPlan) -> Vec<Neighbours> {
    let schema = LocalExecutor::default().schema(&job.source).unwrap();
    let key = BoundingKey::from_words([11, 12]);
    let (neighbours, skipped) = neighbours(scan, &schema, &[key], 10).unwrap();
    assert!(skipped.is_empty(), "{skipped:?}");
    neighbours
}

fn job_correct(rng: &mut ChaCha20Rng) -> Verdict {
    let (_directory, job) = sample_job();
    let plan = veil_engine::check(&job).unwrap();
    let neighbours = job_neighbours(&job, &plan.scan);
    let audit = audit_neighbours(&plan, &neighbours, options(), rng).unwrap();
    assert!(
        audit.cells.iter().any(|cell| cell.output == "presence"),
        "the new group's presence is tested"
    );
    audit.verdict
}

fn job_without_linf(rng: &mut ChaCha20Rng) -> Verdict {
    let (_directory, job) = sample_job();
    let plan = veil_engine::check(&job).unwrap();
    // The scan keeps 10 times the rows the plan's noise was calibrated for: L∞ is, in
    // effect, not applied to the added unit.
    let mut scan = plan.scan.clone();
    scan.queries[0].bounds.max_rows_per_group *= 10;
    let neighbours = job_neighbours(&job, &scan);
    audit_neighbours(&plan, &neighbours, options(), rng)
        .unwrap()
        .verdict
}

fn job_without_selection(rng: &mut ChaCha20Rng) -> Verdict {
    let (_directory, job) = sample_job();
    let plan = veil_engine::check(&job).unwrap();
    let neighbours = job_neighbours(&job, &plan.scan);
    let release =
        |plan: &Plan, aggregated: &veil_engine::scan::Aggregated, rng: &mut ChaCha20Rng| {
            // Every group found in the data is released: no threshold on its unit count.
            let mut plan = plan.clone();
            for query in &mut plan.queries {
                query.selection = None;
            }
            veil_engine::release::release(&plan, aggregated, rng)
        };
    audit_neighbours_with(&plan, &neighbours, options(), rng, release)
        .unwrap()
        .verdict
}

// ---- Row order: three large groups; one added person moves group "B" to the front of the
// scan's output (as a scan ordered by each group's smallest unit id would). A release
// that keeps the scan's order publishes that move; one ordered by key does not.

fn order_aggregates(order: &[&str], units_of_b: i64) -> veil_engine::scan::Aggregated {
    let units = |key: &str| if key == "B" { units_of_b } else { 5_000 };
    veil_engine::scan::Aggregated::from_external(
        vec![veil_engine::scan::ExternalAggregates {
            group_by: vec!["country".into()],
            keys: order
                .iter()
                .map(|key| vec![Some((*key).to_string())])
                .collect(),
            measures: [
                (
                    "rows".to_string(),
                    order.iter().map(|key| units(key) * 3).collect(),
                ),
                (
                    "units".to_string(),
                    order.iter().map(|key| units(key)).collect(),
                ),
            ]
            .into_iter()
            .collect(),
            histograms: std::collections::BTreeMap::new(),
        }],
        veil_engine::scan::ScanCounts::default(),
    )
    .unwrap()
}

fn order_audit(rng: &mut ChaCha20Rng, keep_scan_order: bool) -> Verdict {
    let directory = tempfile::tempdir().unwrap();
    let mut job = job_on(&directory.path().join("none.parquet"), directory.path());
    job.queries[0].aggregates.truncate(1);
    let plan = veil_engine::plan::plan(&job).unwrap();
    let neighbours = vec![Neighbours {
        pair: veil_audit::job::Pair::AddUnit,
        datasets: vec![(
            order_aggregates(&["A", "B", "C"], 5_000),
            order_aggregates(&["B", "A", "C"], 5_001),
        )],
    }];
    let release =
        |plan: &Plan, aggregated: &veil_engine::scan::Aggregated, rng: &mut ChaCha20Rng| {
            let tables = veil_engine::release::release(plan, aggregated, rng)?;
            if !keep_scan_order {
                return Ok(tables);
            }
            Ok(tables
                .into_iter()
                .zip(&plan.queries)
                .zip(&aggregated.queries)
                .map(|((table, query), aggregates)| {
                    let scan_order = aggregates.group_keys(&query.query.group_by).unwrap();
                    let mut rows: Vec<usize> = (0..table.groups()).collect();
                    let keys = table.group_keys(&query.query.group_by);
                    rows.sort_by_key(|&row| scan_order.iter().position(|key| *key == keys[row]));
                    table.with_row_order(&rows)
                })
                .collect())
        };
    let audit = audit_neighbours_with(&plan, &neighbours, options(), rng, release).unwrap();
    assert!(
        audit.cells.iter().any(|cell| cell.output == "position"),
        "the group's row is tested"
    );
    audit.verdict
}

fn order_correct(rng: &mut ChaCha20Rng) -> Verdict {
    order_audit(rng, false)
}

fn order_of_the_scan(rng: &mut ChaCha20Rng) -> Verdict {
    order_audit(rng, true)
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

// ---- Selection on a released row count: units with 5 rows per group, ε = 1, δ = 1e-6;
// the planted version's threshold is calibrated to δ = 0.05.

fn count_threshold_with(actual_delta: f64, rng: &mut ChaCha20Rng) -> Verdict {
    let selection = count_threshold(5, 5, epsilon(1.0), delta(actual_delta)).unwrap();
    let claim = Claim {
        epsilon: epsilon(1.0),
        delta: delta(1e-6),
    };
    let pairs = audit_count_threshold(&selection, 5, claim, 100_000, confidence(), rng).unwrap();
    pairs.iter().fold(Verdict::Pass, |verdict, (_, audit)| {
        verdict.and(audit.verdict)
    })
}

fn count_threshold_correct(rng: &mut ChaCha20Rng) -> Verdict {
    count_threshold_with(1e-6, rng)
}

fn count_threshold_without_its_delta(rng: &mut ChaCha20Rng) -> Verdict {
    count_threshold_with(0.05, rng)
}
