use std::path::PathBuf;

use veil_core::{Bounds, Delta, Epsilon};
use veil_engine::job::{
    Aggregate, AggregateKind, Consent, ContributionBounds, Governance, Job, JobBudget, Output,
    OutputFormat, Partitions, Purpose, Query, Source, SourceFormat, ValueColumn,
};
use veil_engine::schema::{ColumnKind, SourceSchema};

use super::*;

fn value(kind: fn(ValueColumn) -> AggregateKind) -> Aggregate {
    let kind = kind(ValueColumn {
        name: "value".into(),
        bounds: Bounds::new(0.0, 100.0).expect("valid bounds"),
    });
    Aggregate {
        name: kind.default_name(),
        kind,
        weight: 1.0,
    }
}

fn counted(kind: AggregateKind) -> Aggregate {
    Aggregate {
        name: kind.default_name(),
        kind,
        weight: 1.0,
    }
}

fn query(name: &str, group_by: &[&str], partitions: Partitions) -> Query {
    Query {
        name: name.into(),
        group_by: group_by.iter().map(ToString::to_string).collect(),
        bounds: ContributionBounds {
            max_groups_per_unit: 3,
            max_rows_per_group: 5,
        },
        partitions,
        aggregates: vec![
            counted(AggregateKind::Count),
            counted(AggregateKind::UnitCount),
            value(AggregateKind::Sum),
            value(AggregateKind::Variance),
            Aggregate {
                name: "q".into(),
                kind: AggregateKind::Quantiles {
                    column: ValueColumn {
                        name: "value".into(),
                        bounds: Bounds::new(0.0, 100.0).expect("valid bounds"),
                    },
                    levels: vec![0.5],
                    interval: Default::default(),
                },
                weight: 1.0,
            },
        ],
        weight: 1.0,
        drop_missing: Vec::new(),
        selection: Default::default(),
        auto: Vec::new(),
    }
}

fn job(queries: Vec<Query>, governed: bool) -> Job {
    let mut governance = Governance::unrestricted("analytics", 1_793_491_200_000);
    if governed {
        governance.purpose = Purpose {
            name: "analytics".into(),
            description: String::new(),
            columns: None,
            retention_ms: Some(180 * 86_400_000),
        };
        governance.time_column = Some("event_time".into());
        governance.consent = Some(Consent {
            path: PathBuf::from("/data/consent.parquet"),
            format: SourceFormat::Parquet,
            unit_column: "user_id".into(),
            purpose_column: "purpose".into(),
            action_column: "action".into(),
            time_column: "at".into(),
        });
    }
    Job {
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
        queries,
        output: Output {
            directory: PathBuf::from("/out"),
            format: OutputFormat::Csv,
        },
        governance,
        noise: veil_engine::job::NoisePreference::Auto,
    }
}

fn schema() -> SourceSchema {
    SourceSchema {
        columns: vec![
            ("user_id".into(), ColumnKind::Integer),
            ("event_time".into(), ColumnKind::Timestamp),
            ("country".into(), ColumnKind::String),
            ("feature".into(), ColumnKind::String),
            ("value".into(), ColumnKind::Float),
        ],
    }
}

fn compiled(job: &Job) -> SparkSql {
    let plan = veil_engine::plan::plan(job).expect("the job plans");
    compile(&plan.scan, &schema()).expect("the plan compiles")
}

#[test]
fn views_name_the_files() {
    let sql = compiled(&job(
        vec![query("by_country", &["country"], Partitions::Private)],
        true,
    ));
    assert_eq!(
        sql.setup(),
        [
            "CREATE OR REPLACE TEMPORARY VIEW veil_source\nUSING parquet\nOPTIONS (path '/data/events.parquet', recursiveFileLookup 'true')",
            "CREATE OR REPLACE TEMPORARY VIEW veil_consent_log\nUSING parquet\nOPTIONS (path '/data/consent.parquet', recursiveFileLookup 'true')",
        ]
    );
    assert!(
        sql.to_string()
            .starts_with(&format!("{};\n\n", sql.setup()[0]))
    );
    assert!(sql.to_string().ends_with(&format!("{};\n", sql.query())));
}

#[test]
fn filters_retention_and_consent_in_microseconds() {
    let sql = compiled(&job(
        vec![query("by_country", &["country"], Partitions::Private)],
        true,
    ));
    let query = sql.query();
    // 2026-05-05 to 2026-11-01, UTC, in microseconds.
    assert!(query.contains(
        "unix_micros(CAST(`event_time` AS TIMESTAMP)) BETWEEN 1777939200000000 AND 1793491200000000"
    ));
    assert!(query.contains("ROW_NUMBER() OVER (PARTITION BY TRY_CAST(`user_id` AS BIGINT) ORDER BY unix_micros(CAST(`at` AS TIMESTAMP)) DESC, (CAST(`action` AS STRING) = 'revoke') DESC NULLS LAST) AS latest"));
    assert!(query.contains("WHERE CAST(`purpose` AS STRING) = 'analytics'"));
    assert!(query.contains("AND unix_micros(CAST(`at` AS TIMESTAMP)) <= 1793491200000000"));
    assert!(
        query.contains("SELECT unit FROM consent_events WHERE latest = 1 AND action = 'grant'")
    );
    assert!(query.contains("WHERE `user_id` IN (SELECT unit FROM consented)"));
    assert!(query.contains("'unknown_actions', c0"));
}

#[test]
fn consent_units_are_read_as_the_source_unit_type() {
    let job = job(
        vec![query("by_country", &["country"], Partitions::Private)],
        true,
    );
    let plan = veil_engine::plan::plan(&job).expect("the job plans");
    let mut text_units = schema();
    text_units.columns[0].1 = ColumnKind::String;
    let sql = compile(&plan.scan, &text_units).expect("the plan compiles");
    assert!(sql.query().contains("CAST(`user_id` AS STRING) AS unit"));
    assert!(!sql.query().contains("TRY_CAST"));
}

#[test]
fn without_governance_every_row_counts() {
    let sql = compiled(&job(
        vec![query("by_country", &["country"], Partitions::Private)],
        false,
    ));
    assert_eq!(sql.setup().len(), 1);
    assert!(!sql.query().contains("windowed"));
    assert!(!sql.query().contains("consent_events"));
    assert!(!sql.query().contains(CONSENT_VIEW));
    assert!(
        sql.query()
            .contains("SELECT `user_id`, `country`, `value` FROM veil_source")
    );
    assert!(sql.query().contains("'rows_in_window', c1"));
    assert!(sql.query().contains(
        "COUNT(*) AS c0, COUNT(*) AS c1, COUNT_IF(`user_id` IS NULL) AS c2 FROM veil_source"
    ));
}

#[test]
fn bounds_by_keyed_hashes_of_the_engine_columns() {
    let sql = compiled(&job(
        vec![query("by_country", &["country"], Partitions::Private)],
        false,
    ));
    let query = sql.query();
    // The last argument is the null mask (the local engine's hash appends it alike).
    assert!(query.contains("ROW_NUMBER() OVER (PARTITION BY `user_id`, `country` ORDER BY xxhash64(:veil_row_key, `user_id`, `country`, `value`, (IF(`user_id` IS NULL, 1L, 0L) + IF(`country` IS NULL, 2L, 0L) + IF(`value` IS NULL, 4L, 0L)))) AS veil_rank"));
    assert!(query.contains(") WHERE veil_rank <= 5"));
    assert!(query.contains(
        "ROW_NUMBER() OVER (PARTITION BY `user_id` ORDER BY xxhash64(:veil_pair_key, `user_id`, `country`, (IF(`user_id` IS NULL, 1L, 0L) + IF(`country` IS NULL, 2L, 0L))), `country` ASC NULLS LAST) AS veil_rank"
    ));
    assert!(query.contains(") WHERE veil_rank <= 3"));
    assert!(!query.contains(&format!("{}", u64::MAX)));
}

#[test]
fn parameters_are_the_key_words_as_bigints() {
    let key = BoundingKey::from_words([1, u64::MAX]);
    assert_eq!(
        SparkSql::parameters(key),
        [("veil_row_key", 1), ("veil_pair_key", -1)]
    );
}

#[test]
fn values_are_fixed_point_steps() {
    let sql = compiled(&job(
        vec![query("by_country", &["country"], Partitions::Private)],
        false,
    ));
    let query = sql.query();
    // The sum is derived from the variance's count and centred sum (mid·N + C), so no raw
    // sum is scanned; the centred sum's grid is fitted to its noise (a power of two).
    let present = "(`value` IS NOT NULL AND NOT isnan(CAST(`value` AS DOUBLE)))";
    assert!(!query.contains("AS `sum:value"), "{query}");
    assert!(query.contains(&format!(
        "CASE WHEN {present} THEN 1 ELSE 0 END AS `values:value`"
    )));
    let centered = format!(
        "2 * CASE WHEN {present} THEN CAST(ROUND(LEAST(GREATEST(CAST(`value` AS DOUBLE) * "
    );
    assert!(query.contains(&centered), "{query}");
    assert!(query.contains("AS `centered_sum:value[0,100]`"));
    assert!(query.contains("AS `centered_squares:value[0,100]`"));
    assert!(query.contains(&format!("CASE WHEN {present} THEN CAST(FLOOR(LEAST(GREATEST((CAST(`value` AS DOUBLE) - 0e0D) * 4.096e1D, 0.0D), 4.095e3D)) AS BIGINT) END AS `histogram:value[0,100]`")));
    assert!(query.contains("COUNT(*) AS `rows`"));
    assert!(
        query.contains(
            "COALESCE(SUM(`centered_sum:value[0,100]`), 0) AS `centered_sum:value[0,100]`"
        )
    );
}

#[test]
fn one_result_branch_per_result_set() {
    let sql = compiled(&job(
        vec![
            query("by_country", &["country"], Partitions::Private),
            query("by_pair", &["country", "feature"], Partitions::Private),
            query("total", &[], Partitions::Private),
        ],
        false,
    ));
    assert_eq!(sql.key_columns(), 2);
    // rows, units, value count, centered sum, centered squares (the sum is derived).
    assert_eq!(sql.value_columns(), 5);
    let query = sql.query();
    assert_eq!(query.matches("'groups' AS result").count(), 3);
    assert_eq!(query.matches("'histogram' AS result").count(), 3);
    assert_eq!(query.matches("'count' AS result").count(), 2);
    assert!(query.contains("FROM q1_pairs\nGROUP BY `country`, `feature`"));
    assert!(query.contains("FROM q2_pairs\nUNION ALL"));
    assert!(query.contains(
        "LEFT SEMI JOIN q0_pairs AS p ON v.`user_id` <=> p.`user_id` AND v.`country` <=> p.`country`"
    ));
    assert!(query.contains("GROUP BY v.`country`, v.`histogram:value[0,100]`"));
    // Every branch has the same columns.
    for branch in query.split("UNION ALL") {
        assert!(branch.contains("AS k1"), "{branch}");
        assert!(branch.contains("AS v4"), "{branch}");
    }
}

#[test]
fn public_partitions_match_keys_as_text() {
    let keys = Partitions::Public {
        origin: "keys.csv".into(),
        keys: vec![vec!["FR".into()], vec!["it's".into()]],
    };
    let sql = compiled(&job(vec![query("by_country", &["country"], keys)], false));
    let query = sql.query();
    assert!(query.contains(
        "SELECT `user_id`, CAST(`country` AS STRING) AS `country`, `value` FROM source_rows"
    ));
    assert!(query.contains(
        "LEFT SEMI JOIN (VALUES ('FR'), ('it\\'s')) AS veil_keys(veil_k0) ON r.`country` = veil_keys.veil_k0"
    ));
}

#[test]
fn refuses_what_spark_would_compute_differently() {
    let mut csv = job(
        vec![query("by_country", &["country"], Partitions::Private)],
        false,
    );
    csv.source.path = PathBuf::from("/data/events.csv");
    csv.source.format = SourceFormat::csv();
    let plan = veil_engine::plan::plan(&csv).expect("the job plans");
    let error = compile(&plan.scan, &schema()).expect_err("CSV is refused");
    assert!(
        error
            .to_string()
            .starts_with("source.format: the Spark engine reads Parquet only")
    );

    let keys = Partitions::Public {
        origin: "keys.csv".into(),
        keys: vec![vec!["2026-11-01 00:00:00".into()]],
    };
    let by_time = job(vec![query("by_time", &["event_time"], keys)], false);
    let plan = veil_engine::plan::plan(&by_time).expect("the job plans");
    let error = compile(&plan.scan, &schema()).expect_err("timestamp keys are refused");
    assert!(error.to_string().starts_with("query[0].partitions: the Spark engine cannot match public partitions on timestamp column \"event_time\""));
}

#[test]
fn literals_read_back_exactly() {
    for value in [0.1, 1e-300, 123_456.789, -2.5, 1.0 / 3.0, f64::MAX, 5e-324] {
        let text = double_literal(value);
        let digits = text.strip_suffix('D').expect("a double literal");
        assert_eq!(
            digits.parse::<f64>().expect("a number").to_bits(),
            value.to_bits()
        );
    }
    assert_eq!(double_literal(f64::NAN), "CAST('NaN' AS DOUBLE)");
    assert_eq!(
        double_literal(f64::NEG_INFINITY),
        "CAST('-Infinity' AS DOUBLE)"
    );
    assert_eq!(bigint_literal(-3), "-3L");
    assert_eq!(bigint_literal(i64::MIN), "(-9223372036854775807L - 1L)");
    assert_eq!(ident("a`b"), "`a``b`");
    assert_eq!(string_literal(r"it's a \ path"), r"'it\'s a \\ path'");
}

#[test]
fn locations_are_absolute_or_uris() {
    let source = |path: &str| Source {
        path: PathBuf::from(path),
        format: SourceFormat::Parquet,
        privacy_unit: "user_id".into(),
    };
    assert_eq!(
        location(&source("s3a://bucket/events/")),
        "s3a://bucket/events/"
    );
    assert_eq!(
        location(&source("file:/data/x.parquet")),
        "file:/data/x.parquet"
    );
    let relative = location(&source("data/events.parquet"));
    assert!(relative.starts_with('/') && relative.ends_with("/data/events.parquet"));
}

/// Compares `actual` with the golden file `golden/{name}.sql` beside this module; with
/// `VEIL_BLESS=1` in the environment, writes it instead (review the diff, then commit).
fn check_golden(name: &str, actual: &str) {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("src/sql/golden")
        .join(format!("{name}.sql"));
    if std::env::var_os("VEIL_BLESS").is_some() {
        std::fs::create_dir_all(path.parent().expect("a golden file has a directory"))
            .expect("the golden directory can be created");
        std::fs::write(&path, actual).expect("the golden file can be written");
        return;
    }
    let expected = std::fs::read_to_string(&path).unwrap_or_else(|error| {
        panic!(
            "reading {}: {error} (VEIL_BLESS=1 writes it)",
            path.display()
        )
    });
    assert!(
        expected == actual,
        "the SQL for {name} differs from {} (VEIL_BLESS=1 rewrites it):\n{actual}",
        path.display()
    );
}

#[test]
fn golden_governed_job() {
    let sql = compiled(&job(
        vec![
            query("by_country", &["country"], Partitions::Private),
            query("total", &[], Partitions::Private),
        ],
        true,
    ));
    check_golden("governed", &sql.to_string());
}

#[test]
fn golden_public_partitions_without_governance() {
    let keys = Partitions::Public {
        origin: "keys.csv".into(),
        keys: vec![
            vec!["FR".into(), "search".into()],
            vec!["DE".into(), "feed".into()],
        ],
    };
    let sql = compiled(&job(
        vec![query("by_pair", &["country", "feature"], keys)],
        false,
    ));
    check_golden("public_partitions", &sql.to_string());
}
