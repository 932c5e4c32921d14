//! `run`: the ledger protocol and the written release.

use std::path::Path;

use veil_engine::job::{AggregateKind, JobBudget, OutputFormat};
use veil_engine::sample::{SampleSpec, write_sample};
use veil_engine::{EngineError, RunContext, Stage, run};

use crate::fixtures::{CountingLedger, State, aggregate, approx, job, key, query, value_column};

fn sample(directory: &Path) -> std::path::PathBuf {
    let path = directory.join("events.parquet");
    let mut rng = veil_testkit::seeded_rng(1);
    write_sample(
        SampleSpec {
            rows: 50_000,
            users: 10_000,
        },
        &path,
        &mut rng,
        &mut |_| {},
    )
    .unwrap();
    path
}

fn full_query() -> veil_engine::job::Query {
    query(
        3,
        5,
        vec![
            aggregate(AggregateKind::Count),
            aggregate(AggregateKind::UnitCount),
            aggregate(AggregateKind::Sum(value_column(0.0, 100.0))),
            aggregate(AggregateKind::Mean(value_column(0.0, 100.0))),
            aggregate(AggregateKind::Variance(value_column(0.0, 100.0))),
            aggregate(AggregateKind::Quantiles {
                column: value_column(0.0, 100.0),
                levels: vec![0.5, 0.9],
                interval: Default::default(),
            }),
        ],
    )
}

fn context<'a>(ledger: &'a mut CountingLedger, stages: &'a mut dyn FnMut(Stage)) -> RunContext<'a> {
    RunContext {
        ledger,
        budget_key: key(),
        created_at: "2026-11-26T00:00:00Z".into(),
        not_private: None,
        progress: stages,
        interrupt: None,
    }
}

fn files_in(directory: &Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(directory)
        .map(|entries| {
            entries
                .flatten()
                .map(|entry| entry.file_name().to_string_lossy().to_string())
                .collect()
        })
        .unwrap_or_default();
    names.sort();
    names
}

/// Regression: a query with private partitions but no `unit_count` aggregate released no
/// group at all, because the scan did not count the units its threshold needs.
#[test]
fn private_partitions_release_groups_without_a_unit_count_aggregate() {
    let directory = tempfile::tempdir().unwrap();
    let source = sample(directory.path());
    let output = directory.path().join("out");
    let only_count = query(1, 5, vec![aggregate(AggregateKind::Count)]);
    let job = job(&source, &output, approx(1.0, 1e-6), vec![only_count]);
    let mut ledger = CountingLedger::allowing(5);
    let mut record = |_| {};
    let mut rng = veil_testkit::seeded_rng(4);
    let summary = run(&job, context(&mut ledger, &mut record), &mut rng).unwrap();
    assert!(
        summary.outputs[0].table.groups() > 5,
        "the large countries are released"
    );
}

#[test]
fn run_writes_tables_and_manifest_after_commit() {
    let directory = tempfile::tempdir().unwrap();
    let source = sample(directory.path());
    let output = directory.path().join("out");
    let job = job(&source, &output, approx(1.0, 1e-6), vec![full_query()]);
    let mut ledger = CountingLedger::allowing(5);
    let mut stages = Vec::new();
    let mut record = |stage| stages.push(stage);
    let mut rng = veil_testkit::seeded_rng(2);
    let summary = run(&job, context(&mut ledger, &mut record), &mut rng).unwrap();
    assert_eq!(stages.first(), Some(&Stage::Checking));
    assert_eq!(stages.last(), Some(&Stage::Committing));
    assert_eq!(ledger.states(), [State::Committed]);
    assert_eq!(ledger.releases.len(), 2, "the table and the manifest");
    assert_eq!(files_in(&output), ["by_country.csv", "release.json"]);
    let table = &summary.outputs[0].table;
    assert_eq!(
        summary.counts.rows_read, 50_000,
        "the operator still gets the counts"
    );
    // Regression: rows came out in the scan's order (by each group's smallest unit id),
    // which one added person could change. They are in key order.
    let countries = table.column_as_strings("country").unwrap();
    let mut sorted = countries.clone();
    sorted.sort();
    assert_eq!(countries, sorted);
    let columns = table.columns();
    for expected in [
        "country",
        "count",
        "count_std",
        "count_ci_low",
        "count_ci_high",
        "unit_count",
        "sum_value",
        "mean_value",
        "variance_value",
        "q50_value",
        "q90_value_ci_high",
    ] {
        assert!(
            columns.iter().any(|column| column == expected),
            "missing {expected} in {columns:?}"
        );
    }
    assert!(table.groups() > 5, "the large countries are released");
    let means = table.column_as_f64("mean_value").unwrap();
    assert!(means.iter().all(|mean| (0.0..=100.0).contains(mean)));
    let counts = table.column_as_f64("count").unwrap();
    assert!(counts.iter().all(|count| *count >= 0.0));
    let manifest: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(output.join("release.json")).unwrap())
            .unwrap();
    assert_eq!(manifest["ledger"]["charge_id"], 1);
    assert_eq!(manifest["private"], true);
    assert_eq!(manifest["queries"][0]["groups_released"], table.groups());
    assert_eq!(
        manifest["columns_read"],
        serde_json::json!(["user_id", "country", "value"])
    );
    // Regression: release.json carried the scan's exact counts; comparing two releases
    // then showed how many rows one withdrawn person had. The manifest holds none of them.
    assert!(manifest.get("diagnostics_not_private").is_none());
    let text = std::fs::read_to_string(output.join("release.json")).unwrap();
    assert!(
        !text.contains("rows_read") && !text.contains("50000"),
        "{text}"
    );
}

#[test]
fn exhausted_budget_releases_nothing() {
    let directory = tempfile::tempdir().unwrap();
    let source = sample(directory.path());
    let output = directory.path().join("out");
    let job = job(&source, &output, approx(1.0, 1e-6), vec![full_query()]);
    let mut ledger = CountingLedger::allowing(0);
    let mut ignore = |_| {};
    let error = run(
        &job,
        context(&mut ledger, &mut ignore),
        &mut veil_testkit::seeded_rng(3),
    )
    .unwrap_err();
    assert!(
        matches!(
            error,
            EngineError::Budget(veil_accountant::BudgetError::Exhausted(_))
        ),
        "{error}"
    );
    assert!(error.to_string().contains("this run needs"), "{error}");
    assert!(ledger.charges.is_empty());
    assert!(files_in(&output).is_empty(), "{:?}", files_in(&output));
}

#[test]
fn bad_input_is_refused_before_the_ledger() {
    let directory = tempfile::tempdir().unwrap();
    let source = sample(directory.path());
    let output = directory.path().join("out");
    let mut ignore = |_| {};
    let cases: Vec<(veil_engine::job::Job, &str)> = vec![
        (
            job(
                &directory.path().join("missing.parquet"),
                &output,
                approx(1.0, 1e-6),
                vec![full_query()],
            ),
            "no such file",
        ),
        (
            {
                let mut query = full_query();
                query.group_by = vec!["colour".into()];
                job(&source, &output, approx(1.0, 1e-6), vec![query])
            },
            "column \"colour\" is not in",
        ),
        (
            {
                let mut query = full_query();
                query.aggregates = vec![aggregate(AggregateKind::Sum(
                    veil_engine::job::ValueColumn {
                        name: "country".into(),
                        bounds: veil_core::Bounds::new(0.0, 1.0).unwrap(),
                    },
                ))];
                job(&source, &output, approx(1.0, 1e-6), vec![query])
            },
            "expected a numeric column",
        ),
        (
            job(
                &source,
                &source.join("out"),
                approx(1.0, 1e-6),
                vec![full_query()],
            ),
            "writing",
        ),
        (
            job(
                &source,
                &output,
                JobBudget::Pure(veil_core::Epsilon::new(1.0).unwrap()),
                vec![full_query()],
            ),
            "need a delta",
        ),
    ];
    for (job, message) in cases {
        let mut ledger = CountingLedger::allowing(5);
        let error = run(
            &job,
            context(&mut ledger, &mut ignore),
            &mut veil_testkit::seeded_rng(4),
        )
        .unwrap_err();
        assert!(
            error.to_string().contains(message),
            "expected {message:?} in {error}"
        );
        assert!(
            ledger.charges.is_empty(),
            "{message}: the ledger must not be touched"
        );
    }
    assert!(files_in(&output).is_empty());
}

#[test]
fn not_parquet_and_empty_files_are_refused() {
    let directory = tempfile::tempdir().unwrap();
    let output = directory.path().join("out");
    for (name, bytes) in [
        ("text.parquet", b"user_id,country\n1,DE\n".as_slice()),
        ("empty.parquet", b"".as_slice()),
    ] {
        let source = directory.path().join(name);
        std::fs::write(&source, bytes).unwrap();
        let job = job(&source, &output, approx(1.0, 1e-6), vec![full_query()]);
        let mut ledger = CountingLedger::allowing(5);
        let mut ignore = |_| {};
        let error = run(
            &job,
            context(&mut ledger, &mut ignore),
            &mut veil_testkit::seeded_rng(5),
        )
        .unwrap_err();
        assert!(
            error.to_string().contains("cannot read it as Parquet"),
            "{name}: {error}"
        );
        assert!(ledger.charges.is_empty());
    }
}

#[test]
fn json_and_parquet_outputs() {
    let directory = tempfile::tempdir().unwrap();
    let source = sample(directory.path());
    for format in [OutputFormat::Json, OutputFormat::Parquet] {
        let output = directory.path().join(format.extension());
        let mut job = job(&source, &output, approx(2.0, 1e-6), vec![full_query()]);
        job.output.format = format;
        let mut ledger = CountingLedger::allowing(1);
        let mut ignore = |_| {};
        run(
            &job,
            context(&mut ledger, &mut ignore),
            &mut veil_testkit::seeded_rng(6),
        )
        .unwrap();
        assert_eq!(
            files_in(&output),
            [
                format!("by_country.{}", format.extension()),
                "release.json".to_string()
            ]
        );
    }
    let rows: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(directory.path().join("json/by_country.json")).unwrap(),
    )
    .unwrap();
    assert!(rows.as_array().unwrap()[0]["count"].is_i64());
}

/// An interrupt before any stage up to the commit stops the run there: nothing committed,
/// a reservation made already given back, no file published, no output folder left.
#[test]
fn an_interrupted_run_charges_and_publishes_nothing() {
    let directory = tempfile::tempdir().unwrap();
    let source = sample(directory.path());
    for (asked, before, reserved) in [
        (1, Stage::Scanning, false),
        (2, Stage::Reserving, false),
        (3, Stage::Noising, true),
        (4, Stage::Committing, true),
    ] {
        let output = directory.path().join(format!("out-{asked}"));
        let job = job(&source, &output, approx(1.0, 1e-6), vec![full_query()]);
        let mut ledger = CountingLedger::allowing(5);
        let calls = std::cell::Cell::new(0);
        let interrupt = || {
            calls.set(calls.get() + 1);
            calls.get() == asked
        };
        let mut ignore = |_| {};
        let mut context = context(&mut ledger, &mut ignore);
        context.interrupt = Some(&interrupt);
        let error = run(&job, context, &mut veil_testkit::seeded_rng(5)).unwrap_err();
        assert!(
            matches!(error, EngineError::Interrupted { before: stage } if stage == before),
            "{error}"
        );
        assert!(
            error
                .to_string()
                .contains("nothing was charged or published")
        );
        let expected: &[State] = if reserved { &[State::Aborted] } else { &[] };
        assert_eq!(ledger.states(), expected, "interrupted before {before:?}");
        assert!(!output.exists(), "interrupted before {before:?}");
    }
}

/// With private partitions under Laplace noise, a count and a sum are drawn in one joint
/// draw and the selection thresholds its count: every released group's count reaches the
/// threshold (a count drawn again after the selection read it could fall below), and the
/// manifest names the joint thresholding.
#[test]
fn private_count_and_sum_are_drawn_together_and_selected_on_that_draw() {
    let directory = tempfile::tempdir().unwrap();
    let source = sample(directory.path());
    let output = directory.path().join("out");
    let count_sum = query(
        3,
        5,
        vec![
            aggregate(AggregateKind::Count),
            aggregate(AggregateKind::Sum(value_column(0.0, 100.0))),
        ],
    );
    let job = job(&source, &output, approx(1.0, 1e-6), vec![count_sum]);
    let plan = veil_engine::plan::plan(&job).unwrap();
    let selection = plan.queries[0].selection.as_ref().unwrap();
    assert!(matches!(
        selection.noise(),
        veil_core::mechanism::ThresholdNoise::Joint { .. }
    ));
    #[allow(clippy::cast_precision_loss)]
    let threshold = selection.threshold() as f64;
    let mut ledger = CountingLedger::allowing(5);
    let mut record = |_| {};
    let mut rng = veil_testkit::seeded_rng(9);
    let summary = run(&job, context(&mut ledger, &mut record), &mut rng).unwrap();
    let table = &summary.outputs[0].table;
    assert!(table.groups() > 5, "the large countries are released");
    let counts = table.column_as_f64("count").unwrap();
    assert!(
        counts.iter().all(|count| *count >= threshold),
        "{counts:?} against τ = {threshold}"
    );
    let sums = table.column_as_f64("sum_value").unwrap();
    let sum_std = table.column_as_f64("sum_value_std").unwrap();
    assert!(
        sums.iter()
            .zip(&sum_std)
            .all(|(sum, std)| *sum >= 0.0 && *std > 0.0),
        "{sums:?} {sum_std:?} {counts:?}"
    );
    let manifest: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(output.join("release.json")).unwrap())
            .unwrap();
    assert_eq!(
        manifest["queries"][0]["selection"]["mechanism"],
        "joint laplace thresholding"
    );
}
