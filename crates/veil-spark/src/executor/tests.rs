use std::path::PathBuf;

use veil_core::{Bounds, Delta, Epsilon};
use veil_engine::job::{
    Aggregate, AggregateKind, ContributionBounds, Governance, Job, JobBudget, Output, OutputFormat,
    Partitions, Query, Source, SourceFormat, ValueColumn,
};

use super::*;

fn plan(group_by: &[&str]) -> ScanPlan {
    let column = ValueColumn {
        name: "value".into(),
        bounds: Bounds::new(0.0, 10.0).expect("valid bounds"),
    };
    let aggregates = [
        AggregateKind::Count,
        AggregateKind::Sum(column.clone()),
        AggregateKind::Quantiles {
            column,
            levels: vec![0.5],
            interval: Default::default(),
        },
    ]
    .into_iter()
    .map(|kind| Aggregate {
        name: kind.default_name(),
        kind,
        weight: 1.0,
    })
    .collect();
    let job = Job {
        name: "test".into(),
        job_hash: "abc".into(),
        source: Source {
            path: PathBuf::from("/data/events.parquet"),
            format: SourceFormat::Parquet,
            privacy_unit: "user_id".into(),
        },
        budget: JobBudget::Approx(
            Epsilon::new(1.0).expect("valid"),
            Delta::new(1e-6).expect("valid"),
        ),
        queries: vec![Query {
            name: "q".into(),
            group_by: group_by.iter().map(ToString::to_string).collect(),
            bounds: ContributionBounds {
                max_groups_per_unit: 1,
                max_rows_per_group: 1,
            },
            partitions: Partitions::Private,
            aggregates,
            weight: 1.0,
            drop_missing: Vec::new(),
            selection: Default::default(),
            auto: Vec::new(),
        }],
        output: Output {
            directory: PathBuf::from("/out"),
            format: OutputFormat::Csv,
        },
        governance: Governance::unrestricted("analytics", 0),
        noise: veil_engine::job::NoisePreference::Auto,
    };
    veil_engine::plan::plan(&job).expect("the job plans").scan
}

fn compiled(plan: &ScanPlan) -> SparkSql {
    let schema = SourceSchema {
        columns: vec![
            ("user_id".into(), ColumnKind::Integer),
            ("country".into(), ColumnKind::String),
            ("value".into(), ColumnKind::Float),
        ],
    };
    sql::compile(plan, &schema).expect("compiles")
}

/// A result row: result, query, name, leaf, the key columns, then values.
fn row(
    result: &str,
    query: Option<i32>,
    name: Option<&str>,
    leaf: Option<i64>,
    key: &[Option<&str>],
    values: &[Option<i64>],
) -> Row {
    let text = |value: Option<&str>| value.map_or(Value::Null, |text| Value::String(text.into()));
    let long = |value: Option<i64>| value.map_or(Value::Null, Value::Long);
    let mut cells = vec![
        text(Some(result)),
        query.map_or(Value::Null, Value::Integer),
        text(name),
        long(leaf),
    ];
    cells.extend(key.iter().copied().map(text));
    cells.extend(values.iter().copied().map(long));
    let names = (0..cells.len()).map(|index| format!("c{index}")).collect();
    Row::new(names, cells)
}

fn counts(keys: usize) -> Vec<Row> {
    [
        ("rows_read", 10),
        ("rows_in_window", 9),
        ("rows_with_consent", 7),
        ("rows_without_unit", 1),
        ("units", 3),
        ("missing:value", 2),
    ]
    .into_iter()
    .map(|(name, count)| {
        row(
            "count",
            None,
            Some(name),
            None,
            &vec![None; keys],
            &[Some(count), None],
        )
    })
    .collect()
}

#[test]
fn parses_groups_histograms_and_counts() {
    let plan = plan(&["country"]);
    let compiled = compiled(&plan);
    assert_eq!((compiled.key_columns(), compiled.value_columns()), (1, 2));
    let mut rows = counts(1);
    rows.push(row(
        "groups",
        Some(0),
        None,
        None,
        &[Some("FR")],
        &[Some(3), Some(40)],
    ));
    rows.push(row(
        "groups",
        Some(0),
        None,
        None,
        &[None],
        &[Some(1), Some(-2)],
    ));
    rows.push(row(
        "histogram",
        Some(0),
        Some("histogram:value[0,10]"),
        Some(7),
        &[None],
        &[Some(1), None],
    ));
    rows.push(row(
        "histogram",
        Some(0),
        Some("histogram:value[0,10]"),
        Some(4095),
        &[Some("FR")],
        &[Some(2), None],
    ));
    let parsed = parse(&plan, &compiled, &rows).expect("parses");
    assert_eq!(
        parsed.counts,
        ScanCounts {
            rows_read: 10,
            rows_outside_retention: 1,
            // 9 in the window, 7 with consent, 1 without a unit (not counted twice).
            rows_without_consent: 1,
            rows_without_unit: 1,
            missing_values: [("value".to_string(), 2)].into(),
            units: 3,
        }
    );
    let query = &parsed.queries[0];
    assert_eq!(query.group_by, ["country"]);
    assert_eq!(query.keys, [vec![Some("FR".to_string())], vec![None]]);
    assert_eq!(query.measures["rows"], [3, 1]);
    // The count is released and thresholded for selection: no separate unit count.
    assert_eq!(query.measures["sum:value[0,10]"], [40, -2]);
    assert!(!query.measures.contains_key("units"));
    assert_eq!(
        query.histograms["histogram:value[0,10]"],
        [(1, 7, 1), (0, 4095, 2)]
    );
    Aggregated::from_external(parsed.queries, parsed.counts).expect("the engine takes them");
}

#[test]
fn a_query_without_groups_still_has_its_measures() {
    let plan = plan(&[]);
    let compiled = compiled(&plan);
    assert_eq!(compiled.key_columns(), 0);
    let parsed = parse(&plan, &compiled, &counts(0)).expect("parses");
    let query = &parsed.queries[0];
    assert!(query.keys.is_empty());
    assert_eq!(query.measures.len(), 2);
    assert!(query.measures.values().all(Vec::is_empty));
    assert_eq!(
        query.histograms.keys().collect::<Vec<_>>(),
        ["histogram:value[0,10]"]
    );
}

#[test]
fn malformed_results_are_internal_errors() {
    let plan = plan(&["country"]);
    let compiled = compiled(&plan);
    let check = |rows: Vec<Row>, expected: &str| {
        let error = parse(&plan, &compiled, &rows).expect_err("refused");
        assert!(
            matches!(&error, EngineError::Internal(message) if message.contains(expected)),
            "{error}"
        );
    };
    check(Vec::new(), "counter rows_read is missing");
    let mut rows = counts(1);
    rows.push(row(
        "groups",
        Some(3),
        None,
        None,
        &[Some("FR")],
        &[Some(1), Some(1)],
    ));
    check(rows, "a row names no query of the plan");
    let mut rows = counts(1);
    rows.push(row(
        "groups",
        Some(0),
        None,
        None,
        &[Some("FR")],
        &[None, Some(1)],
    ));
    check(rows, "value 0 is null");
    let mut rows = counts(1);
    rows.push(row("mystery", None, None, None, &[None], &[None, None]));
    check(rows, "unknown result kind");
}

#[test]
fn spark_types_map_to_column_kinds() {
    assert_eq!(column_kind(&DataType::Short), ColumnKind::Integer);
    assert_eq!(column_kind(&DataType::Long), ColumnKind::Integer);
    assert_eq!(column_kind(&DataType::Float), ColumnKind::Float);
    assert_eq!(column_kind(&DataType::Boolean), ColumnKind::Boolean);
    assert_eq!(
        column_kind(&DataType::String {
            collation: String::new()
        }),
        ColumnKind::String
    );
    assert_eq!(column_kind(&DataType::Date), ColumnKind::Date);
    assert_eq!(column_kind(&DataType::TimestampNtz), ColumnKind::Timestamp);
    assert_eq!(
        column_kind(&DataType::Decimal {
            precision: 20,
            scale: 0
        }),
        ColumnKind::Other("decimal(20,0)".into())
    );
}

fn remote() -> Remote {
    Remote::parse("sc://spark.example:15002/;token=secret").expect("valid")
}

#[test]
fn failures_while_running_withhold_spark_messages() {
    let mut error = spark_connect::SparkError::value(
        "CAST_INVALID_INPUT",
        &[
            ("expression", "'4111-1111-1111-1111'"),
            ("sourceType", "\"STRING\""),
            ("targetType", "\"BIGINT\""),
            ("columnName", "`card`"),
        ],
    );
    error.sql_state = Some("22018".into());
    let message = failure(&remote(), "aggregating on Spark", &error).to_string();
    assert_eq!(
        message,
        "aggregating on Spark failed: Spark reported CAST_INVALID_INPUT (columnName `card`); the rest of its message is withheld, as it may quote data values (see the Spark server's log)"
    );
    assert!(!message.contains("4111"));
}

#[test]
fn plan_errors_keep_spark_messages() {
    let mut error = spark_connect::SparkError::connect_msg(
        "[UNRESOLVED_COLUMN.WITH_SUGGESTION] A column `amount` cannot be resolved. SQLSTATE: 42703\nplan...",
    );
    error.error_class = "UNRESOLVED_COLUMN.WITH_SUGGESTION".into();
    error.sql_state = Some("42703".into());
    error.params.clear();
    let message = failure(&remote(), "aggregating on Spark", &error).to_string();
    assert!(
        message.contains("UNRESOLVED_COLUMN.WITH_SUGGESTION"),
        "{message}"
    );
    assert!(!message.contains("plan..."));
}

#[test]
fn connection_failures_name_the_remote() {
    let error = spark_connect::SparkError::connect_msg("[Unavailable] channel not ready");
    let message = failure(&remote(), "aggregating on Spark", &error).to_string();
    assert_eq!(
        message,
        "aggregating on Spark failed: lost the Spark Connect server at sc://spark.example:15002: [Unavailable] channel not ready"
    );
}

#[test]
fn an_unreachable_server_fails_at_once() {
    // Bind a port, then free it: nothing listens there.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|listener| listener.local_addr())
        .expect("a free port")
        .port();
    let remote = Remote::parse(&format!("sc://127.0.0.1:{port}")).expect("valid");
    let started = std::time::Instant::now();
    let error = SparkExecutor::connect(&remote).expect_err("nothing listens");
    assert!(started.elapsed() < Duration::from_secs(10));
    let message = error.to_string();
    assert!(
        message.starts_with(&format!(
            "connecting to Spark failed: cannot reach the Spark Connect server at sc://127.0.0.1:{port} ("
        )),
        "{message}"
    );
    assert!(message.ends_with("start it, or point [engine] remote (or --remote) at a running one"));
}

#[test]
fn first_line_keeps_one_error_class_and_no_sql_state() {
    assert_eq!(
        first_line(
            "[PARQUET_TYPE_ILLEGAL] [PARQUET_TYPE_ILLEGAL] Illegal Parquet type: INT64 (TIMESTAMP(NANOS,false)). SQLSTATE: 42846\nmore"
        ),
        "[PARQUET_TYPE_ILLEGAL] Illegal Parquet type: INT64 (TIMESTAMP(NANOS,false))."
    );
    assert_eq!(first_line("[A] [B] message"), "[A] [B] message");
    assert_eq!(first_line("plain message"), "plain message");
}
