//! Consent, purposes and retention: which rows a job may read at all.

use std::path::Path;

use polars::prelude::*;
use veil_engine::job::{AggregateKind, Consent, Governance, Purpose, SourceFormat};
use veil_engine::plan::plan;
use veil_engine::purge::{PurgeRules, purge};
use veil_engine::scan::{Aggregated, BoundingKey, aggregate as scan};
use veil_engine::{EngineError, RunContext, run};

use crate::fixtures::{CountingLedger, aggregate, approx, job, key, query};

const DAY: i64 = 86_400_000;
/// The as-of time of these tests: 2026-11-01T00:00:00Z.
const AS_OF: i64 = 1_793_491_200_000;

/// Writes `(user_id, country, event_time ms)` rows; `None` times are null.
fn write_timed_events(path: &Path, rows: &[(i64, &str, Option<i64>)]) {
    let mut frame = DataFrame::new(
        rows.len(),
        vec![
            Column::new(
                "user_id".into(),
                rows.iter().map(|row| row.0).collect::<Vec<_>>(),
            ),
            Column::new(
                "country".into(),
                rows.iter().map(|row| row.1).collect::<Vec<_>>(),
            ),
            Column::new(
                "event_time".into(),
                rows.iter().map(|row| row.2).collect::<Vec<_>>(),
            )
            .cast(&DataType::Datetime(
                TimeUnit::Microseconds,
                Some(TimeZone::UTC),
            ))
            .unwrap(),
        ],
    )
    .unwrap();
    // Stored in microseconds: convert the test's milliseconds.
    let micros = frame
        .column("event_time")
        .unwrap()
        .cast(&DataType::Int64)
        .unwrap();
    let micros: Vec<Option<i64>> = micros
        .i64()
        .unwrap()
        .iter()
        .map(|value| value.map(|ms| ms * 1000))
        .collect();
    frame
        .with_column(
            Column::new("event_time".into(), micros)
                .cast(&DataType::Datetime(
                    TimeUnit::Microseconds,
                    Some(TimeZone::UTC),
                ))
                .unwrap(),
        )
        .unwrap();
    ParquetWriter::new(std::fs::File::create(path).unwrap())
        .finish(&mut frame)
        .unwrap();
}

/// Writes a consent log `(user_id, purpose, action, at ms)` as CSV with ISO timestamps.
fn write_consent_csv(path: &Path, rows: &[(i64, &str, &str, i64)]) {
    let mut text = String::from("user_id,purpose,action,at\n");
    for (user, purpose, action, at) in rows {
        text.push_str(&format!(
            "{user},{purpose},{action},{}\n",
            veil_engine::as_of_text(*at)
        ));
    }
    std::fs::write(path, text).unwrap();
}

fn governance(retention_days: Option<i64>, consent: Option<&Path>) -> Governance {
    Governance {
        purpose: Purpose {
            name: "analytics".into(),
            description: "test".into(),
            columns: Some(vec!["country".into(), "event_time".into()]),
            retention_ms: retention_days.map(|days| days * DAY),
        },
        consent: consent.map(|path| Consent {
            path: path.to_path_buf(),
            format: SourceFormat::from_path(path),
            unit_column: "user_id".into(),
            purpose_column: "purpose".into(),
            action_column: "action".into(),
            time_column: "at".into(),
        }),
        time_column: Some("event_time".into()),
        as_of_ms: AS_OF,
        min_units: 1,
    }
}

fn counting_job(source: &Path, governance: Governance) -> veil_engine::job::Job {
    let mut job = job(
        source,
        Path::new("unused"),
        approx(1.0, 1e-6),
        vec![query(
            10,
            100,
            vec![
                aggregate(AggregateKind::Count),
                aggregate(AggregateKind::UnitCount),
            ],
        )],
    );
    job.governance = governance;
    job
}

fn total_rows(aggregated: &Aggregated) -> i64 {
    aggregated.queries[0].measure("rows").unwrap().iter().sum()
}

fn scan_job(job: &veil_engine::job::Job) -> Aggregated {
    scan(&plan(job).unwrap().scan, BoundingKey::from_words([1, 2])).unwrap()
}

#[test]
fn consent_in_force_at_the_as_of_time_decides() {
    let directory = tempfile::tempdir().unwrap();
    let events = directory.path().join("events.parquet");
    let rows: Vec<(i64, &str, Option<i64>)> = (1..=7)
        .map(|user| (user, "DE", Some(AS_OF - DAY)))
        .collect();
    write_timed_events(&events, &rows);
    let consent = directory.path().join("consent.csv");
    write_consent_csv(
        &consent,
        &[
            (1, "analytics", "grant", AS_OF - 10 * DAY), // in force
            (2, "analytics", "grant", AS_OF - 10 * DAY), // revoked later
            (2, "analytics", "revoke", AS_OF - 5 * DAY),
            (3, "analytics", "grant", AS_OF + DAY), // granted after as-of
            (4, "analytics", "grant", AS_OF - 10 * DAY), // grant, revoke, grant
            (4, "analytics", "revoke", AS_OF - 8 * DAY),
            (4, "analytics", "grant", AS_OF - 6 * DAY),
            (5, "recommendations", "grant", AS_OF - 10 * DAY), // another purpose only
            (6, "analytics", "grant", AS_OF - 3 * DAY),        // same-time tie: revoke wins
            (6, "analytics", "revoke", AS_OF - 3 * DAY),
            (7, "analytics", "grant", AS_OF - 20 * DAY), // revoked exactly at as-of
            (7, "analytics", "revoke", AS_OF),
        ],
    );
    let job = counting_job(&events, governance(None, Some(&consent)));
    let aggregated = scan_job(&job);
    assert_eq!(total_rows(&aggregated), 2, "users 1 and 4");
    assert_eq!(aggregated.counts.rows_without_consent, 5);
    // The same job over a hand-filtered file without consent gives the same aggregates.
    let filtered = directory.path().join("filtered.parquet");
    write_timed_events(
        &filtered,
        &[(1, "DE", Some(AS_OF - DAY)), (4, "DE", Some(AS_OF - DAY))],
    );
    let expected = scan_job(&counting_job(&filtered, governance(None, None)));
    assert_eq!(
        aggregated.queries[0].measure("rows"),
        expected.queries[0].measure("rows")
    );
    assert_eq!(
        aggregated.queries[0].measure("units"),
        expected.queries[0].measure("units")
    );
}

#[test]
fn retention_keeps_the_window_inclusive_and_drops_null_times() {
    let directory = tempfile::tempdir().unwrap();
    let events = directory.path().join("events.parquet");
    write_timed_events(
        &events,
        &[
            (1, "DE", Some(AS_OF - 90 * DAY)), // exactly at the cut-off: kept
            (2, "DE", Some(AS_OF - 90 * DAY - 1)), // one millisecond older: never read
            (3, "DE", Some(AS_OF)),            // exactly at as-of: kept
            (4, "DE", Some(AS_OF + 1)),        // after as-of: never read
            (5, "DE", None),                   // no time: never read
            (6, "DE", Some(AS_OF - 30 * DAY)),
        ],
    );
    let aggregated = scan_job(&counting_job(&events, governance(Some(90), None)));
    assert_eq!(total_rows(&aggregated), 3);
    assert_eq!(aggregated.counts.rows_outside_retention, 3);
    assert_eq!(aggregated.counts.rows_read, 6);
}

#[test]
fn columns_outside_the_purpose_are_refused_before_reading() {
    let mut job = counting_job(
        Path::new("/nonexistent.parquet"),
        governance(Some(90), None),
    );
    job.queries[0].group_by = vec!["feature".into()];
    match plan(&job) {
        Err(EngineError::InvalidJob { key, reason }) => {
            assert_eq!(key, "query[0].group_by");
            assert!(
                reason.contains("\"feature\"") && reason.contains("analytics"),
                "{reason}"
            );
        }
        other => panic!("expected a refusal, got {other:?}"),
    }
    let mut no_time = governance(Some(90), None);
    no_time.time_column = None;
    let job = counting_job(Path::new("/nonexistent.parquet"), no_time);
    assert!(
        matches!(plan(&job), Err(EngineError::InvalidJob { key, .. }) if key == "source.time_column")
    );
}

#[test]
fn bad_consent_tables_are_refused_and_nothing_is_charged() {
    let directory = tempfile::tempdir().unwrap();
    let events = directory.path().join("events.parquet");
    write_timed_events(&events, &[(1, "DE", Some(AS_OF - DAY))]);
    let missing_column = directory.path().join("missing.csv");
    std::fs::write(
        &missing_column,
        "user_id,purpose,at\n1,analytics,2026-10-01T00:00:00Z\n",
    )
    .unwrap();
    let unknown_action = directory.path().join("unknown.csv");
    write_consent_csv(&unknown_action, &[(1, "analytics", "maybe", AS_OF - DAY)]);
    for (consent, message) in [
        (&missing_column, "column \"action\" is not in"),
        (&unknown_action, "other than \"grant\" or \"revoke\""),
    ] {
        let output = directory.path().join("out");
        let mut job = counting_job(&events, governance(None, Some(consent)));
        job.output.directory = output.clone();
        let mut ledger = CountingLedger::allowing(5);
        let mut ignore = |_| {};
        let context = RunContext {
            ledger: &mut ledger,
            budget_key: key(),
            created_at: "now".into(),
            not_private: None,
            progress: &mut ignore,
            interrupt: None,
        };
        let error = run(&job, context, &mut veil_testkit::seeded_rng(1)).unwrap_err();
        assert!(error.to_string().contains(message), "{error}");
        assert!(ledger.charges.is_empty());
        assert!(
            std::fs::read_dir(&output)
                .map(|entries| entries.count())
                .unwrap_or(0)
                == 0
        );
    }
}

#[test]
fn purge_then_run_equals_run_as_of() {
    let directory = tempfile::tempdir().unwrap();
    let events = directory.path().join("events.parquet");
    let mut rows = Vec::new();
    for user in 1..=40 {
        for day in [1, 50, 100, 200] {
            rows.push((
                user,
                if user % 2 == 0 { "DE" } else { "FR" },
                Some(AS_OF - day * DAY),
            ));
        }
    }
    write_timed_events(&events, &rows);
    let consent = directory.path().join("consent.csv");
    let mut log = Vec::new();
    for user in 1..=40 {
        log.push((user, "analytics", "grant", AS_OF - 300 * DAY));
        if user % 5 == 0 {
            log.push((user, "analytics", "revoke", AS_OF - 2 * DAY));
        }
    }
    write_consent_csv(&consent, &log);
    let governed = counting_job(&events, governance(Some(120), Some(&consent)));
    let before = scan_job(&governed);

    let rules = PurgeRules {
        time_column: Some("event_time".into()),
        keep_from_ms: Some(AS_OF - 120 * DAY),
        consent: Some((
            governed.governance.consent.clone().unwrap(),
            vec!["analytics".into()],
        )),
        as_of_ms: AS_OF,
    };
    let original = std::fs::read(&events).unwrap();
    let dry = purge(&governed.source, &rules, true).unwrap();
    assert_eq!(
        std::fs::read(&events).unwrap(),
        original,
        "a dry run changes nothing"
    );
    assert_eq!(dry[0].removed_by_retention, 40);
    assert_eq!(dry[0].removed_by_withdrawal, 8 * 3);
    let done = purge(&governed.source, &rules, false).unwrap();
    assert!(done[0].rewritten);
    let after = scan_job(&governed);
    assert_eq!(
        before.queries[0].measure("rows"),
        after.queries[0].measure("rows")
    );
    assert_eq!(after.counts.rows_read, 160 - 40 - 24);
    assert_eq!(after.counts.rows_outside_retention, 0);
    assert_eq!(after.counts.rows_without_consent, 0);
    // No hidden temporary file is left behind.
    let names: Vec<String> = std::fs::read_dir(directory.path())
        .unwrap()
        .flatten()
        .map(|entry| entry.file_name().to_string_lossy().to_string())
        .collect();
    assert!(
        names.iter().all(|name| !name.contains(".tmp-")),
        "{names:?}"
    );
}

/// Writes `(user_id, country, time)` rows with the time column stored as `dtype`.
fn write_events_with_time_type(path: &Path, rows: &[(i64, &str, i64)], dtype: &DataType) {
    let physical: Vec<i64> = rows
        .iter()
        .map(|row| match dtype {
            DataType::Date => row.2.div_euclid(DAY),
            DataType::Datetime(TimeUnit::Nanoseconds, _) => row.2 * 1_000_000,
            _ => row.2,
        })
        .collect();
    let time = if *dtype == DataType::Date {
        Column::new(
            "event_time".into(),
            physical
                .iter()
                .map(|days| i32::try_from(*days).unwrap())
                .collect::<Vec<_>>(),
        )
        .cast(dtype)
        .unwrap()
    } else {
        Column::new("event_time".into(), physical)
            .cast(dtype)
            .unwrap()
    };
    let mut frame = DataFrame::new(
        rows.len(),
        vec![
            Column::new(
                "user_id".into(),
                rows.iter().map(|row| row.0).collect::<Vec<_>>(),
            ),
            Column::new(
                "country".into(),
                rows.iter().map(|row| row.1).collect::<Vec<_>>(),
            ),
            time,
        ],
    )
    .unwrap();
    ParquetWriter::new(std::fs::File::create(path).unwrap())
        .finish(&mut frame)
        .unwrap();
}

#[test]
fn retention_works_for_naive_timestamps_nanoseconds_and_dates() {
    let directory = tempfile::tempdir().unwrap();
    let rows = [
        (1, "DE", AS_OF - 10 * DAY),
        (2, "DE", AS_OF - 100 * DAY),
        (3, "DE", AS_OF - 30 * DAY - 1),
    ];
    for (name, dtype, expected) in [
        // Timestamps without a time zone are read as UTC.
        ("naive", DataType::Datetime(TimeUnit::Milliseconds, None), 1),
        (
            "nanos",
            DataType::Datetime(TimeUnit::Nanoseconds, Some(TimeZone::UTC)),
            1,
        ),
        // A date counts as its midnight: the row of AS_OF - 30 days - 1 ms falls on the day
        // before the cut-off and is dropped; AS_OF - 10 days is kept.
        ("date", DataType::Date, 1),
    ] {
        let path = directory.path().join(format!("{name}.parquet"));
        write_events_with_time_type(&path, &rows, &dtype);
        let aggregated = scan_job(&counting_job(&path, governance(Some(30), None)));
        assert_eq!(total_rows(&aggregated), expected, "{name}");
        assert_eq!(
            aggregated.counts.rows_outside_retention,
            3 - u64::try_from(expected).unwrap(),
            "{name}"
        );
    }
}
