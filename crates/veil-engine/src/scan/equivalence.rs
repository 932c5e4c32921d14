//! The grouped bounding (`bounded_pairs`, what a release aggregates) keeps exactly the
//! rows and pairs of the window bounding (`bounded`, what the utility report and other
//! engines follow), and both keep exactly the pairs that a rank of the keyed pair hash
//! over each unit keeps (the definition of L0 that Spark's SQL follows).
#![allow(clippy::unwrap_used)]

use polars::prelude::*;
use veil_core::{Bounds, Delta, Epsilon};

use super::{
    BY_HASH, BoundingKey, PAIR_PRIORITY, bounded, bounded_pairs, group_exprs, hash, row_value,
    unit_and_group, with_unit,
};
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
                },
            ]
            .into_iter()
            .enumerate()
            .map(|(index, kind)| Aggregate {
                name: format!("a{index}"),
                kind,
            })
            .collect(),
            weight: 1.0,
        }],
        output: Output {
            directory: path.with_extension("out"),
            format: OutputFormat::Csv,
        },
        governance: Governance::unrestricted("analytics", 0),
    }
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
            let (rows, pairs) = bounded(&base, "user_id", query, key).unwrap();
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

            // L0 by definition: the pairs whose keyed hash ranks among the unit's first
            // `max_groups_per_unit`, out of every pair the unit has.
            let by_rank = rows
                .clone()
                .group_by(unit_and_group("user_id", query))
                .agg([len()])
                .with_column(
                    hash::keyed_hash(&query.pair_hash_columns("user_id"), words[1])
                        .alias(PAIR_PRIORITY),
                )
                .filter(
                    col(PAIR_PRIORITY)
                        .rank(BY_HASH, None)
                        .over([col("user_id")])
                        .unwrap()
                        .lt_eq(lit(l0)),
                )
                .select([col("user_id"), col("country")]);
            assert_eq!(
                sorted(by_rank, &["user_id", "country"]),
                sorted(
                    fast.clone().select([col("user_id"), col("country")]),
                    &["user_id", "country"]
                ),
                "L0 = {l0}"
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
