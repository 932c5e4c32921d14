//! The pair table's bounding (`bounded_pairs`, what a release aggregates, and
//! `pair_table`, what the utility report reads) keeps exactly the rows and pairs of
//! bounding by definition: L∞ a rank of the keyed row hash within each (unit, group), L0 a
//! rank of the keyed pair hash within each unit, as windows over every row (the form
//! Spark's SQL follows).
#![allow(clippy::unwrap_used)]

use polars::prelude::*;
use veil_core::{Bounds, Delta, Epsilon};

use super::bound::{
    KeptColumn, L0_KEPT, PAIR_PRIORITY, ROW_PRIORITY, bounded_pairs, bounding_input, group_exprs,
    pair_table, row_value, unit_and_group,
};
use super::{BoundingKey, Kept, hash, with_unit};
use crate::job::{
    Aggregate, AggregateKind, ContributionBounds, Governance, Job, JobBudget, Output, OutputFormat,
    Partitions, Query, Source, SourceFormat, ValueColumn,
};
use crate::plan::Measure;

/// 40 units with 1 to 12 rows each over 4 countries, values with repeats, some missing.
fn write(path: &std::path::Path) {
    let mut users = Vec::new();
    let mut countries = Vec::new();
    let mut values = Vec::new();
    let names = ["FR", "DE", "IT", "ES"];
    let mut state = 7_u64;
    let mut next = || {
        state = state
            .wrapping_mul(6_364_136_223_846_793_005)
            .wrapping_add(1);
        state >> 33
    };
    for user in 0..40_i64 {
        for _ in 0..=next() % 12 {
            users.push(user);
            countries.push(names[usize::try_from(next() % 4).unwrap()]);
            let draw = next() % 25;
            values.push((draw != 0).then(|| f64::from(u32::try_from(draw % 8).unwrap()) * 15.0));
        }
    }
    let mut frame = df!["user_id" => users, "country" => countries, "value" => values].unwrap();
    ParquetWriter::new(std::fs::File::create(path).unwrap())
        .finish(&mut frame)
        .unwrap();
}

fn job(path: &std::path::Path, max_groups_per_unit: u32, max_rows_per_group: u32) -> Job {
    let column = ValueColumn {
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
            name: "q".into(),
            group_by: vec!["country".into()],
            bounds: ContributionBounds {
                max_groups_per_unit,
                max_rows_per_group,
            },
            partitions: Partitions::Private,
            aggregates: [
                AggregateKind::Count,
                AggregateKind::Sum(column.clone()),
                AggregateKind::Variance(column.clone()),
                AggregateKind::Quantiles {
                    column,
                    levels: vec![0.5],
                    interval: Default::default(),
                },
            ]
            .into_iter()
            .enumerate()
            .map(|(index, kind)| Aggregate {
                name: format!("a{index}"),
                kind,
                weight: 1.0,
            })
            .collect(),
            weight: 1.0,
            drop_missing: Vec::new(),
            selection: Default::default(),
            auto: Vec::new(),
        }],
        output: Output {
            directory: path.with_extension("out"),
            format: OutputFormat::Csv,
        },
        governance: Governance::unrestricted("analytics", 0),
        noise: crate::job::NoisePreference::Auto,
    }
}

/// Ranks by keyed hash: ties (identical hashed values) broken by position, which cannot
/// change an aggregate since the tied rows are identical in every hashed column.
const BY_HASH: RankOptions = RankOptions {
    method: RankMethod::Ordinal,
    descending: false,
};

/// Bounding by definition, with windows: the rows L∞ keeps, and the pairs (with each
/// measure summed over those rows) that L0 keeps.
fn by_windows(
    base: &LazyFrame,
    unit: &str,
    query: &crate::plan::QueryScan,
    key: BoundingKey,
) -> (LazyFrame, LazyFrame) {
    let (rows, columns) = bounding_input(base, unit, query).unwrap();
    let in_pair = col(ROW_PRIORITY)
        .rank(BY_HASH, None)
        .over(unit_and_group(unit, query))
        .unwrap();
    let rows = rows
        .with_column(hash::keyed_hash(&columns, key.words()[0]).alias(ROW_PRIORITY))
        .filter(in_pair.lt_eq(lit(query.bounds.max_rows_per_group)))
        .drop(cols([ROW_PRIORITY]));
    let mut sums = vec![len().alias("__rows")];
    for measure in &query.measures {
        match measure {
            Measure::Histogram { .. } | Measure::Units => {}
            Measure::Rows => sums.push(len().cast(DataType::Int64).alias(measure.key())),
            other => sums.push(row_value(other).sum().alias(other.key())),
        }
    }
    let pairs = rows
        .clone()
        .group_by(unit_and_group(unit, query))
        .agg(sums)
        .drop(cols(["__rows"]))
        .with_column(
            hash::keyed_hash(&query.pair_hash_columns(unit), key.words()[1]).alias(PAIR_PRIORITY),
        )
        .filter(
            col(PAIR_PRIORITY)
                .rank(BY_HASH, None)
                .over([col(unit)])
                .unwrap()
                .lt_eq(lit(query.bounds.max_groups_per_unit)),
        )
        .drop(cols([PAIR_PRIORITY]));
    (rows, pairs)
}

fn sorted(frame: LazyFrame, by: &[&str]) -> DataFrame {
    frame
        .sort(by.to_vec(), SortMultipleOptions::default())
        .collect()
        .unwrap()
}

#[test]
fn grouped_ranks_keep_the_rows_and_pairs_of_the_window() {
    let directory = tempfile::tempdir().unwrap();
    let path = directory.path().join("events.parquet");
    write(&path);
    for (l0, linf) in [(1, 1), (2, 3), (3, 100)] {
        let plan = crate::plan::plan(&job(&path, l0, linf)).unwrap();
        let query = &plan.scan.queries[0];
        let base = with_unit(super::source_rows(&plan.scan).unwrap(), "user_id");
        for words in [[1, 2], [99, 5]] {
            let key = BoundingKey::from_words(words);
            let (rows, pairs) = by_windows(&base, "user_id", query, key);
            let fast = bounded_pairs(&base, "user_id", query, key).unwrap();
            let mut sums = Vec::new();
            for measure in &query.measures {
                if !matches!(measure, Measure::Histogram { .. } | Measure::Units) {
                    sums.push(col(measure.key()));
                }
            }
            let mut selected = vec![col("user_id"), col("country")];
            selected.extend(sums);
            let window = sorted(
                pairs.clone().select(selected.clone()),
                &["user_id", "country"],
            );
            let grouped = sorted(fast.clone().select(selected), &["user_id", "country"]);
            assert!(window.height() > 0);
            assert!(window.equals_missing(&grouped), "{window}\n{grouped}");

            // The report's pair table: every pair, flagged by L0, with the same sums over
            // the rows L∞ keeps (in floating point).
            let table = pair_table(
                &base,
                "user_id",
                query,
                key,
                Vec::new(),
                vec![KeptColumn {
                    per_row: col("value"),
                    outputs: vec![("sum".into(), Kept::FloatSum)],
                }],
            )
            .unwrap();
            let flagged = sorted(
                table
                    .clone()
                    .filter(col(L0_KEPT))
                    .select([col("user_id"), col("country")]),
                &["user_id", "country"],
            );
            assert_eq!(
                flagged,
                sorted(
                    pairs.clone().select([col("user_id"), col("country")]),
                    &["user_id", "country"]
                )
            );
            let all_pairs = rows
                .clone()
                .group_by([col("user_id"), col("country")])
                .agg([col("value").sum().alias("sum")]);
            assert_eq!(
                sorted(
                    table.select([col("user_id"), col("country"), col("sum")]),
                    &["user_id", "country"]
                ),
                sorted(all_pairs, &["user_id", "country"]),
                "L∞ = {linf}"
            );

            // The quantile histogram's leaves per pair.
            let histogram = query
                .measures
                .iter()
                .find(|measure| matches!(measure, Measure::Histogram { .. }))
                .unwrap();
            let mut on = vec![col("user_id")];
            on.extend(group_exprs(&query.group_by));
            let from_rows = rows
                .join(
                    pairs.select(on.clone()),
                    on.clone(),
                    on,
                    JoinArgs::new(JoinType::Semi),
                )
                .select([
                    col("user_id"),
                    col("country"),
                    row_value(histogram).alias("leaf"),
                ])
                .filter(col("leaf").is_not_null());
            let from_lists = fast
                .select([
                    col("user_id"),
                    col("country"),
                    col(histogram.key()).alias("leaf"),
                ])
                .explode(
                    cols(["leaf"]),
                    ExplodeOptions {
                        empty_as_null: false,
                        keep_nulls: false,
                    },
                );
            let order = ["user_id", "country", "leaf"];
            assert_eq!(
                sorted(from_rows, &order),
                sorted(from_lists, &order),
                "L0 = {l0}, L∞ = {linf}"
            );
        }
    }
}
