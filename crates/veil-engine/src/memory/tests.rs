use std::path::Path;

use polars::prelude::*;
use polars_arrow::array::{DictionaryArray, PrimitiveArray, Utf8Array};
use veil_core::{Bounds, Delta, Epsilon};

use super::*;
use crate::job::{
    Aggregate, AggregateKind, Consent, ContributionBounds, Governance, Job, JobBudget,
    NoisePreference, Output, OutputFormat, Partitions, Query, Source, SourceFormat, ValueColumn,
};
use crate::sample::{SAMPLE_END_MS, SampleSpec, write_sample, write_sample_consent};
use crate::schema::ColumnKind;

fn read_parquet(path: &Path) -> DataFrame {
    LazyFrame::scan_parquet(
        PlRefPath::new(path.to_string_lossy().as_ref()),
        ScanArgsParquet::default(),
    )
    .unwrap()
    .collect()
    .unwrap()
}

fn everything(_: &str) -> bool {
    true
}

fn job(source: &Path, consent: Option<&Path>) -> Job {
    let value = ValueColumn {
        name: "value".into(),
        bounds: Bounds::new(0.0, 100.0).unwrap(),
    };
    let aggregates = [
        AggregateKind::Count,
        AggregateKind::UnitCount,
        AggregateKind::Sum(value.clone()),
        AggregateKind::Quantiles {
            column: value,
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
    let mut governance = Governance::unrestricted("analytics", SAMPLE_END_MS);
    governance.consent = consent.map(|path| Consent {
        path: path.to_path_buf(),
        format: SourceFormat::Parquet,
        unit_column: "user_id".into(),
        purpose_column: "purpose".into(),
        action_column: "action".into(),
        time_column: "at".into(),
    });
    Job {
        name: "memory".into(),
        job_hash: "abc".into(),
        source: Source {
            path: source.to_path_buf(),
            format: SourceFormat::Parquet,
            privacy_unit: "user_id".into(),
        },
        budget: JobBudget::Approx(Epsilon::new(1.0).unwrap(), Delta::new(1e-6).unwrap()),
        queries: vec![Query {
            name: "by_country".into(),
            group_by: vec!["country".into()],
            bounds: ContributionBounds {
                max_groups_per_unit: 3,
                max_rows_per_group: 5,
            },
            partitions: Partitions::Private,
            aggregates,
            weight: 1.0,
            drop_missing: Vec::new(),
            selection: Default::default(),
            auto: Vec::new(),
        }],
        output: Output {
            directory: "out".into(),
            format: OutputFormat::Csv,
        },
        governance,
        noise: NoisePreference::Auto,
    }
}

#[test]
fn a_frame_survives_the_stream_both_ways() {
    let frame = df!(
        "user_id" => [Some(1_i64), None, Some(3)],
        "country" => ["FR", "DE", "FR"],
        "value" => [1.5, 2.0, f64::NAN],
    )
    .unwrap();
    let (read, schema) =
        stream::read(stream::export(&frame), Path::new("<data>"), &everything).unwrap();
    assert!(read.equals_missing(&frame), "{read}");
    assert_eq!(
        schema.columns,
        vec![
            ("user_id".to_string(), ColumnKind::Integer),
            ("country".to_string(), ColumnKind::String),
            ("value".to_string(), ColumnKind::Float),
        ]
    );
}

#[test]
fn only_kept_columns_are_read_but_all_are_in_the_schema() {
    let frame =
        df!("user_id" => [1_i64, 2], "secret" => ["a", "b"], "country" => ["FR", "DE"]).unwrap();
    let keep = |name: &str| name != "secret";
    let (read, schema) = stream::read(stream::export(&frame), Path::new("<data>"), &keep).unwrap();
    let names: Vec<&str> = read
        .get_column_names()
        .iter()
        .map(|name| name.as_str())
        .collect();
    assert_eq!(names, ["user_id", "country"]);
    assert_eq!(schema.get("secret"), Some(&ColumnKind::String));
}

#[test]
fn dictionary_columns_are_read_as_their_values() {
    let keys = PrimitiveArray::<i8>::from([Some(1), Some(0), None, Some(1)]);
    let values = Utf8Array::<i64>::from_slice(["DE", "FR"]).boxed();
    let countries = DictionaryArray::try_from_keys(keys, values, false)
        .unwrap()
        .boxed();
    let users = PrimitiveArray::<i64>::from_slice([1, 2, 3, 4]).boxed();
    let fields = vec![
        ArrowField::new("user_id".into(), ArrowDataType::Int64, false),
        ArrowField::new("country".into(), countries.dtype().clone(), true),
    ];
    let stream = stream::from_batches(fields, vec![vec![users, countries]]);
    let (read, schema) = stream::read(stream, Path::new("<data>"), &everything).unwrap();
    assert_eq!(schema.get("country"), Some(&ColumnKind::String));
    let countries: Vec<Option<&str>> = read
        .column("country")
        .unwrap()
        .str()
        .unwrap()
        .iter()
        .collect();
    assert_eq!(countries, [Some("FR"), Some("DE"), None, Some("FR")]);
}

#[test]
fn a_stream_of_single_arrays_is_refused_by_the_path_it_stands_for() {
    let users = PrimitiveArray::<i64>::from_slice([1, 2]).boxed();
    let field = ArrowField::new("user_id".into(), ArrowDataType::Int64, false);
    let stream = ArrowStream(polars_arrow::ffi::export_iterator(
        Box::new(std::iter::once(Ok(users))),
        field,
    ));
    let error = stream::read(stream, Path::new("<data>"), &everything).unwrap_err();
    assert!(
        error
            .to_string()
            .starts_with("source <data>: cannot read it as an Arrow table: "),
        "{error}"
    );
}

#[test]
fn a_table_stands_for_its_path_only_inside_its_scope() {
    let frame = df!("user_id" => [1_i64]).unwrap();
    let mut tables = MemoryTables::new();
    tables
        .insert("<data>", stream::export(&frame), &everything)
        .unwrap();
    assert!(lookup(Path::new("<data>")).is_none());
    tables.scope(|| {
        assert!(lookup(Path::new("<data>")).is_some());
        MemoryTables::new().scope(|| assert!(lookup(Path::new("<data>")).is_none()));
        assert!(lookup(Path::new("<data>")).is_some());
        assert!(lookup(Path::new("events.parquet")).is_none());
    });
    assert!(lookup(Path::new("<data>")).is_none());
}

/// The same rows in memory and in a file, with the same bounding key, aggregate to the
/// same sums and counts: only the read differs.
#[test]
fn memory_and_file_aggregate_alike() {
    let directory = tempfile::tempdir().unwrap();
    let source = directory.path().join("events.parquet");
    let consent = directory.path().join("consent.parquet");
    let mut rng = veil_testkit::seeded_rng(7);
    let spec = SampleSpec {
        rows: 20_000,
        users: 2_000,
    };
    write_sample(spec, &source, &mut rng, &mut |_| {}).unwrap();
    write_sample_consent(2_000, &["analytics"], &consent, &mut rng).unwrap();
    let key = BoundingKey::from_words([11, 13]);

    let on_files = job(&source, Some(&consent));
    let plan = crate::check(&on_files).unwrap();
    let from_files = scan::aggregate(&plan.scan, key).unwrap();

    let in_memory = job(Path::new("<data>"), Some(Path::new("<consent>")));
    let mut tables = MemoryTables::new();
    let columns = plan.scan.columns.clone();
    let keep = move |name: &str| columns.iter().any(|column| column == name);
    tables
        .insert("<data>", stream::export(&read_parquet(&source)), &keep)
        .unwrap();
    tables
        .insert(
            "<consent>",
            stream::export(&read_parquet(&consent)),
            &everything,
        )
        .unwrap();
    let plan = crate::check_with(&in_memory, &tables).unwrap();
    let from_memory = tables.aggregate(&plan.scan, key).unwrap();

    assert_eq!(from_files.counts, from_memory.counts);
    assert!(from_memory.counts.rows_without_consent > 0);
    assert_eq!(
        format!("{:?}", from_files.queries),
        format!("{:?}", from_memory.queries)
    );
}

#[test]
fn a_job_on_memory_is_checked_against_the_tables_columns() {
    let frame = df!("user_id" => [1_i64], "country" => ["FR"]).unwrap();
    let mut tables = MemoryTables::new();
    tables
        .insert("<data>", stream::export(&frame), &everything)
        .unwrap();
    let error = crate::check_with(&job(Path::new("<data>"), None), &tables).unwrap_err();
    assert!(
        matches!(&error, crate::EngineError::ColumnNotFound { column, .. } if column == "value"),
        "{error}"
    );
}
