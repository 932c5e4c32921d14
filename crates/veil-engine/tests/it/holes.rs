//! Regressions from a privacy review and a data team's walk through Veil: each test failed
//! before its fix.

use std::path::Path;

use polars::prelude::*;
use veil_engine::job::{AggregateKind, OutputFormat, Partitions};
use veil_engine::{RunContext, run};

use crate::fixtures::{CountingLedger, aggregate, approx, job, key, query};

/// Writes rows `(user_id, country)` to a Parquet file.
fn write_countries(path: &Path, rows: &[(Option<i64>, Option<&str>)]) {
    let users: Vec<Option<i64>> = rows.iter().map(|row| row.0).collect();
    let countries: Vec<Option<&str>> = rows.iter().map(|row| row.1).collect();
    let mut frame = DataFrame::new(
        rows.len(),
        vec![
            Column::new("user_id".into(), users),
            Column::new("country".into(), countries),
        ],
    )
    .unwrap();
    ParquetWriter::new(std::fs::File::create(path).unwrap())
        .finish(&mut frame)
        .unwrap();
}

/// 500 users in each of a null country, the empty country `""` and `"FR"`, plus 7 rows
/// without a user.
fn null_and_empty_keys(path: &Path) {
    let mut rows = Vec::new();
    for user in 0..1500_i64 {
        let country = match user % 3 {
            0 => None,
            1 => Some(""),
            _ => Some("FR"),
        };
        rows.push((Some(user), country));
    }
    rows.extend(std::iter::repeat_n((None, Some("FR")), 7));
    write_countries(path, &rows);
}

fn released_text(format: OutputFormat) -> (String, veil_engine::RunSummary) {
    let directory = tempfile::tempdir().unwrap();
    let source = directory.path().join("events.parquet");
    null_and_empty_keys(&source);
    let output = directory.path().join("out");
    let mut job = job(
        &source,
        &output,
        approx(1.0, 1e-6),
        vec![query(1, 1, vec![aggregate(AggregateKind::Count)])],
    );
    job.queries[0].partitions = Partitions::Private;
    job.output.format = format;
    // Everyone with a unit consented.
    let consent = directory.path().join("consent.csv");
    let mut log = String::from("user_id,purpose,action,at\n");
    for user in 0..1500 {
        log.push_str(&format!("{user},analytics,grant,2026-01-01T00:00:00Z\n"));
    }
    std::fs::write(&consent, log).unwrap();
    job.governance.consent = Some(veil_engine::job::Consent {
        path: consent,
        format: veil_engine::job::SourceFormat::csv(),
        unit_column: "user_id".into(),
        purpose_column: "purpose".into(),
        action_column: "action".into(),
        time_column: "at".into(),
    });
    let mut ledger = CountingLedger::allowing(1);
    let summary = run(
        &job,
        RunContext {
            ledger: &mut ledger,
            budget_key: key(),
            created_at: "2026-11-26T00:00:00Z".into(),
            not_private: None,
            progress: &mut |_| {},
        },
        &mut veil_testkit::seeded_rng(3),
    )
    .unwrap();
    let file = output.join(format!("by_country.{}", format.extension()));
    (std::fs::read_to_string(file).unwrap(), summary)
}

/// Regression: a null group key was released as `""`, the same as a real empty key.
#[test]
fn a_null_group_key_is_released_as_null_apart_from_the_empty_key() {
    let (csv, _) = released_text(OutputFormat::Csv);
    let lines: Vec<&str> = csv.lines().collect();
    assert!(lines[0].starts_with("country,count,"), "{csv}");
    // Key order: the empty key, "FR", then null last.
    assert!(lines[1].starts_with("\"\","), "{csv}");
    assert!(lines[2].starts_with("FR,"), "{csv}");
    assert!(lines[3].starts_with(','), "{csv}");
    let (json, _) = released_text(OutputFormat::Json);
    let rows: Vec<serde_json::Value> = serde_json::from_str(&json).unwrap();
    let keys: Vec<&serde_json::Value> = rows.iter().map(|row| &row["country"]).collect();
    assert_eq!(
        keys,
        [
            &serde_json::json!(""),
            &serde_json::json!("FR"),
            &serde_json::Value::Null
        ]
    );
    // The group column comes first, in the table's order, not alphabetically.
    assert!(
        json.trim_start().starts_with("[\n  {\n    \"country\""),
        "{json}"
    );
}

/// Regression: with a consent log, rows whose unit is null were counted as "without
/// consent".
#[test]
fn rows_without_a_unit_are_counted_as_such() {
    let (_, summary) = released_text(OutputFormat::Csv);
    assert_eq!(summary.counts.rows_without_unit, 7);
    assert_eq!(summary.counts.rows_without_consent, 0);
    assert_eq!(summary.counts.rows_read, 1507);
}
