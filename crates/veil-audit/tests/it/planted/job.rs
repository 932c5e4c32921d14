//! Planted bugs in a whole job through the engine: the scan, partition selection and the
//! order of released rows. Seeds start at 2000, apart from the mechanisms' cases.

use std::path::Path;

use rand::rngs::ChaCha20Rng;
use veil_audit::Verdict;
use veil_audit::job::{
    JobAuditOptions, Neighbours, audit_neighbours, audit_neighbours_with, neighbours,
};
use veil_core::Bounds;
use veil_engine::job::{
    Aggregate, AggregateKind, ContributionBounds, Governance, Job, JobBudget, Output, OutputFormat,
    Partitions, Query, Source, SourceFormat, ValueColumn,
};
use veil_engine::plan::Plan;
use veil_engine::scan::BoundingKey;
use veil_engine::{Executor, LocalExecutor};
use veil_testkit::seeded_rng;

use super::{Case, check, confidence, delta, epsilon};

const CASES: &[Case] = &[
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
        bug: "groups released without partition selection, 3 groups per person (the count drawn jointly with the sum)",
        correct: job3_correct,
        planted: job3_without_selection,
    },
    Case {
        bug: "rows published in the scan's order instead of by key",
        correct: order_correct,
        planted: order_of_the_scan,
    },
];

#[test]
fn planted_bugs_in_a_job_fail_and_correct_versions_pass() {
    check(CASES, 2000);
}

/// A job audit reports its progress once per trial of each neighbouring pair, up to the
/// total it announces (what `veil audit job` shows on a terminal).
#[test]
fn a_job_audit_reports_every_trial() {
    let (_directory, job) = sample_job();
    let options = JobAuditOptions {
        trials: 20,
        ..options()
    };
    let mut calls: Vec<(usize, usize)> = Vec::new();
    veil_audit::job::audit_job_with_progress(
        &job,
        options,
        &mut seeded_rng(1999),
        &mut |done, total| calls.push((done, total)),
    )
    .unwrap();
    let total = calls.first().map(|call| call.1).unwrap();
    assert!(total >= 20 && total.is_multiple_of(20), "{total}");
    assert_eq!(calls.len(), total);
    for (at, (done, announced)) in calls.iter().enumerate() {
        assert_eq!((*done, *announced), (at + 1, total));
    }
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
            selection: Default::default(),
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

/// The sample job with `groups` groups per person.
fn sample_job_with(groups: u32) -> (tempfile::TempDir, Job) {
    let (directory, mut job) = sample_job();
    job.queries[0].bounds.max_groups_per_unit = groups;
    (directory, job)
}

fn job_correct(rng: &mut ChaCha20Rng) -> Verdict {
    correct_with(sample_job(), rng)
}

/// At 3 groups per person the plan draws the count and the sum jointly (ε/3 per group) and
/// thresholds that count (δ = 3·tail): the whole job's claim must still hold.
fn job3_correct(rng: &mut ChaCha20Rng) -> Verdict {
    let (directory, job) = sample_job_with(3);
    let plan = veil_engine::check(&job).unwrap();
    assert!(matches!(
        plan.queries[0].selection.as_ref().unwrap().noise(),
        veil_core::mechanism::ThresholdNoise::Joint { .. }
    ));
    correct_with((directory, job), rng)
}

fn correct_with((_directory, job): (tempfile::TempDir, Job), rng: &mut ChaCha20Rng) -> Verdict {
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
    without_selection(sample_job(), rng)
}

fn job3_without_selection(rng: &mut ChaCha20Rng) -> Verdict {
    without_selection(sample_job_with(3), rng)
}

fn without_selection(
    (_directory, job): (tempfile::TempDir, Job),
    rng: &mut ChaCha20Rng,
) -> Verdict {
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
