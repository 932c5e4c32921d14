#![allow(clippy::unwrap_used)]
use crate::job::AggregateKind;
use crate::plan::Measure;

use polars::prelude::*;
use veil_core::{Bounds, Delta, Epsilon};

use super::*;
use crate::job::{
    Aggregate, ContributionBounds, Job, JobBudget, Output, OutputFormat, Partitions, Query, Source,
    SourceFormat, ValueColumn as JobColumn,
};

/// Unit 1: 4 rows in FR (values 10, 20, 30, 200), 1 in DE; unit 2: 1 row in FR (5);
/// unit 3: 2 rows in DE (null, 7).
fn write(path: &std::path::Path) {
    let mut frame = df![
        "user_id" => [1_i64, 1, 1, 1, 1, 2, 3, 3],
        "country" => ["FR", "FR", "FR", "FR", "DE", "FR", "DE", "DE"],
        "region" => ["eu", "eu", "eu", "eu", "eu", "eu", "eu", "eu"],
        "value" => [Some(10.0), Some(20.0), Some(30.0), Some(200.0), Some(1.0), Some(5.0), None, Some(7.0)],
    ]
    .unwrap();
    ParquetWriter::new(std::fs::File::create(path).unwrap())
        .finish(&mut frame)
        .unwrap();
}

fn job(path: &std::path::Path) -> Job {
    let column = JobColumn {
        name: "value".into(),
        bounds: Bounds::new(0.0, 100.0).unwrap(),
    };
    Job {
        name: "t".into(),
        job_hash: "h".into(),
        source: Source {
            path: path.to_path_buf(),
            format: SourceFormat::Parquet,
            privacy_unit: "user_id".into(),
        },
        budget: JobBudget::Approx(Epsilon::new(1.0).unwrap(), Delta::new(1e-6).unwrap()),
        queries: vec![Query {
            name: "by_country".into(),
            group_by: vec!["country".into()],
            bounds: ContributionBounds {
                max_groups_per_unit: 1,
                max_rows_per_group: 2,
            },
            partitions: Partitions::Private,
            aggregates: vec![
                Aggregate {
                    name: "count".into(),
                    kind: AggregateKind::Count,
                    weight: 1.0,
                },
                Aggregate {
                    name: "sum_value".into(),
                    kind: AggregateKind::Sum(column.clone()),
                    weight: 1.0,
                },
                Aggregate {
                    name: "median".into(),
                    kind: AggregateKind::Quantiles {
                        column,
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
        }],
        output: Output {
            directory: path.with_extension("out"),
            format: OutputFormat::Csv,
        },
        governance: crate::job::Governance::unrestricted("analytics", 0),
        noise: crate::job::NoisePreference::Auto,
    }
}

fn options() -> TruthOptions {
    TruthOptions {
        segments: vec![Some("region".into())],
        max_groups_per_unit: vec![1, 10],
        max_rows_per_group: vec![2, 100],
        value_scales: vec![1.0, 3.0],
        value_levels: vec![0.5],
    }
}

#[test]
fn stages_histograms_and_candidates_follow_the_data() {
    let directory = tempfile::tempdir().unwrap();
    let path = directory.path().join("events.parquet");
    write(&path);
    let plan = crate::plan::plan(&job(&path)).unwrap();
    let inputs = report_inputs(&plan, BoundingKey::from_words([1, 2]), &options()).unwrap();
    assert_eq!(inputs.rows_read, 8);
    let query = &inputs.queries[0];
    assert_eq!(query.groups_per_unit, vec![(1, 2), (2, 1)]);
    assert_eq!(query.rows_per_group, vec![(1, 2), (2, 1), (4, 1)]);
    let fr = query
        .groups
        .iter()
        .find(|group| group.key == vec![Some("FR".to_string())])
        .unwrap();
    assert_eq!(fr.segment.as_deref(), Some("eu"));
    assert!((fr.raw.rows - 5.0).abs() < 1e-9);
    assert!((fr.raw.units - 2.0).abs() < 1e-9);
    let raw = fr.raw.columns["value"];
    assert!((raw.sum - 265.0).abs() < 1e-9);
    let clamped = fr.clamped.columns["value"];
    assert!((clamped.sum - 165.0).abs() < 1e-9);
    // L∞ = 2: unit 1 keeps 2 of its 4 FR rows.
    assert!((fr.row_bounded.rows - 3.0).abs() < 1e-9);
    // L0 = 1: unit 1 keeps FR or DE, not both.
    assert!(fr.bounded.rows <= fr.row_bounded.rows);
    assert!((fr.raw_quantiles["value"][0].1 - 20.0).abs() < 1e-9);
    let leaves: f64 = fr.row_bounded_leaves["value"].iter().map(|(_, n)| n).sum();
    assert!((leaves - 3.0).abs() < 1e-9);
    // Candidate (L0 = 1, L∞ = 2): unit 1 keeps FR with probability 1/2 and 2 of 4 rows;
    // unit 2 keeps its row: 0.5·2 + 1 = 2 rows expected.
    assert!((fr.candidates[0].rows - 2.0).abs() < 1e-9);
    assert!((fr.candidates[0].units - 1.5).abs() < 1e-9);
    // Candidate (L0 = 10, L∞ = 100) keeps everything; scale 3 clamps to [0, 300].
    let all = &fr.candidates[3];
    assert!((all.rows - 5.0).abs() < 1e-9);
    assert!((all.columns["value"].1[0] - 165.0).abs() < 1e-9);
    assert!((all.columns["value"].1[1] - 265.0).abs() < 1e-9);
    assert!((query.value_quantiles["value"][0].1 - 10.0).abs() < 1e-9);
}

#[test]
fn an_unknown_segment_column_names_its_key() {
    let directory = tempfile::tempdir().unwrap();
    let path = directory.path().join("events.parquet");
    write(&path);
    let plan = crate::plan::plan(&job(&path)).unwrap();
    let mut options = options();
    options.segments = vec![Some("continent".into())];
    let error = report_inputs(&plan, BoundingKey::from_words([1, 2]), &options).unwrap_err();
    assert!(error.to_string().contains("query[0].segment"), "{error}");
}

#[test]
fn the_bounded_stage_is_what_a_release_aggregates() {
    let directory = tempfile::tempdir().unwrap();
    let path = directory.path().join("events.parquet");
    write(&path);
    check_bounded_stage(&job(&path));
}

#[test]
fn with_public_partitions_the_report_bounds_only_the_listed_groups() {
    let directory = tempfile::tempdir().unwrap();
    let path = directory.path().join("events.parquet");
    write(&path);
    let mut public = job(&path);
    public.queries[0].partitions = Partitions::Public {
        origin: "test".into(),
        keys: vec![vec!["DE".into()], vec!["IT".into()]],
    };
    check_bounded_stage(&public);
    // Unit 1's FR rows never enter bounding, so its DE row is its one group under L0 = 1.
    let plan = crate::plan::plan(&public).unwrap();
    let inputs = report_inputs(&plan, BoundingKey::from_words([1, 2]), &options()).unwrap();
    let de = inputs.queries[0]
        .groups
        .iter()
        .find(|group| group.key == vec![Some("DE".to_string())])
        .unwrap();
    assert!((de.bounded.rows - 3.0).abs() < 1e-9);
    assert!((de.bounded.units - 2.0).abs() < 1e-9);
    assert!(
        inputs.queries[0]
            .groups
            .iter()
            .all(|group| group.key != vec![Some("FR".to_string())])
    );
}

fn check_bounded_stage(job: &Job) {
    let plan = crate::plan::plan(job).unwrap();
    for words in [[1, 2], [7, 3], [11, 40], [5, 5]] {
        let key = BoundingKey::from_words(words);
        let inputs = report_inputs(&plan, key, &options()).unwrap();
        let released = crate::scan::aggregate(&plan.scan, key).unwrap();
        let query = &released.queries[0];
        let keys = query.group_keys(&plan.scan.queries[0].group_by).unwrap();
        let rows = query.measure(&Measure::Rows.key()).unwrap();
        let histogram = query
            .histogram(
                &plan.scan.queries[0]
                    .measures
                    .iter()
                    .find(|measure| matches!(measure, Measure::Histogram { .. }))
                    .unwrap()
                    .key(),
                &plan.scan.queries[0].group_by,
            )
            .unwrap();
        assert!(!keys.is_empty());
        for (index, (key, rows)) in keys.iter().zip(rows).enumerate() {
            let group = inputs.queries[0]
                .groups
                .iter()
                .find(|group| &group.key == key)
                .unwrap();
            #[allow(clippy::cast_precision_loss)]
            let rows = rows as f64;
            assert!(
                (group.bounded.rows - rows).abs() < 1e-9,
                "{key:?} {words:?}"
            );
            let leaves: i64 = histogram
                .iter()
                .filter(|(group, _, _)| *group == index)
                .map(|(_, _, rows)| rows)
                .sum();
            let report_leaves: f64 = group.bounded_leaves["value"].iter().map(|(_, n)| n).sum();
            #[allow(clippy::cast_precision_loss)]
            let leaves = leaves as f64;
            assert!((report_leaves - leaves).abs() < 1e-9, "{key:?} {words:?}");
        }
    }
}
