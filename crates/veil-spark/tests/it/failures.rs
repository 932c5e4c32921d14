//! Bad input on Spark: a missing source, columns Spark cannot read, a failure while
//! Spark runs. Each gives an error that names what to fix, charges nothing and releases
//! nothing.

use veil_accountant::{BudgetKey, BudgetLedger, MemoryLedger, PrivacyBudget};
use veil_engine::job::Partitions;
use veil_engine::{EngineError, RunContext, run_with};

use crate::fixtures::*;

fn ledger() -> (MemoryLedger, BudgetKey) {
    let key = BudgetKey {
        dataset: "events".into(),
        purpose: "analytics".into(),
    };
    let mut ledger = MemoryLedger::new();
    ledger
        .add_budget(
            &key,
            PrivacyBudget::Approx {
                epsilon: 10.0,
                delta: 1e-5,
            },
            None,
        )
        .expect("a budget");
    (ledger, key)
}

/// Runs `job` end to end on Spark and returns the error, after checking that nothing was
/// charged and nothing written.
fn fails(spark: &veil_spark::SparkExecutor, job: &veil_engine::job::Job) -> EngineError {
    let (mut ledger, key) = ledger();
    let mut progress = |_| {};
    let context = RunContext {
        ledger: &mut ledger,
        budget_key: key.clone(),
        created_at: "2026-11-01T00:00:00Z".into(),
        not_private: None,
        progress: &mut progress,
        interrupt: None,
    };
    let error = run_with(job, context, spark, &mut rng(1)).expect_err("the run fails");
    let status = ledger.status(&key).expect("a status");
    assert_eq!(status.remaining, status.total, "nothing is charged");
    let written = std::fs::read_dir(&job.output.directory)
        .map(|entries| entries.count())
        .unwrap_or(0);
    assert_eq!(written, 0, "nothing is written");
    error
}

fn count_query(group_by: &[&str], column: &str) -> veil_engine::job::Query {
    query(
        "q",
        group_by,
        (1, 1),
        Partitions::Private,
        all_aggregates(column, 0.0, 10.0),
    )
}

#[test]
fn a_run_on_spark_releases_and_charges() {
    let Some(spark) = spark() else { return };
    let directory = directory();
    let events = file(&directory, "events.parquet");
    write_edge_events(&events, 5_000, 100, 1);
    let job = job(
        &events,
        None,
        vec![count_query(&["country"], "value")],
        &file(&directory, "out"),
    );
    let (mut ledger, key) = ledger();
    let mut stages = Vec::new();
    let mut progress = |stage| stages.push(stage);
    let context = RunContext {
        ledger: &mut ledger,
        budget_key: key.clone(),
        created_at: "2026-11-01T00:00:00Z".into(),
        not_private: None,
        progress: &mut progress,
        interrupt: None,
    };
    let summary = run_with(&job, context, &spark, &mut rng(2)).expect("the run succeeds");
    assert_eq!(summary.counts.rows_read, 5_000);
    assert_eq!(summary.outputs.len(), 1);
    assert!(summary.outputs[0].path.exists());
    assert!(summary.manifest.exists());
    let status = ledger.status(&key).expect("a status");
    assert!(status.remaining.amount() < status.total.amount());
}

#[test]
fn a_missing_source_is_named() {
    let Some(spark) = spark() else { return };
    let directory = directory();
    let missing = file(&directory, "nowhere.parquet");
    let job = job(
        &missing,
        None,
        vec![count_query(&["country"], "value")],
        &file(&directory, "out"),
    );
    let error = fails(&spark, &job);
    assert!(
        matches!(&error, EngineError::SourceNotFound { path } if *path == missing),
        "{error}"
    );
}

#[test]
fn columns_spark_reads_differently_are_named() {
    let Some(spark) = spark() else { return };
    let directory = directory();
    let events = file(&directory, "events.parquet");
    write_unreadable(&events, false);
    // Spark reads an unsigned 64-bit column as decimal(20,0): not a number to aggregate.
    let job = job(
        &events,
        None,
        vec![count_query(&["country"], "big")],
        &file(&directory, "out"),
    );
    let error = fails(&spark, &job);
    assert_eq!(
        error.to_string(),
        "query[0].aggregates[2].column: column \"big\" has type decimal(20,0); expected a numeric column"
    );
}

#[test]
fn a_type_spark_cannot_read_is_named() {
    let Some(spark) = spark() else { return };
    let directory = directory();
    let events = file(&directory, "events.parquet");
    write_unreadable(&events, true);
    let job = job(
        &events,
        None,
        vec![count_query(&["country"], "value")],
        &file(&directory, "out"),
    );
    let error = fails(&spark, &job);
    let message = error.to_string();
    assert!(
        matches!(error, EngineError::SourceUnreadable { .. }),
        "{message}"
    );
    // Spark names the Parquet type it refuses (not the column) and the file.
    assert!(message.contains("events.parquet"), "{message}");
    assert!(
        message.ends_with(
            "cannot read it as Parquet: [PARQUET_TYPE_ILLEGAL] Illegal Parquet type: INT64 (TIMESTAMP(NANOS,false))."
        ),
        "{message}"
    );
}

#[test]
fn a_failure_while_spark_runs_charges_nothing() {
    let Some(spark) = spark() else { return };
    let directory = directory();
    let events = file(&directory, "events.parquet");
    write_edge_events(&events, 50_000, 100, 2);
    // Corrupt the data pages but keep the footer: Spark reads the schema, then a task
    // fails while it reads the rows.
    let mut bytes = std::fs::read(&events).expect("readable");
    let middle = bytes.len() / 2;
    for byte in &mut bytes[middle - 2_000..middle + 2_000] {
        *byte = 0xA5;
    }
    for byte in &mut bytes[8..4_000] {
        *byte = 0x5A;
    }
    std::fs::write(&events, bytes).expect("written");
    let job = job(
        &events,
        None,
        vec![count_query(&["country"], "value")],
        &file(&directory, "out"),
    );
    let error = fails(&spark, &job);
    let message = error.to_string();
    assert!(
        message.starts_with("aggregating on Spark failed: Spark reported "),
        "{message}"
    );
}
