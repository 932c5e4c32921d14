//! The same plan, the same data and the same key give exactly the same bounded aggregates
//! on Polars and on Spark: counts, per-group sums and histogram leaves, before any noise.

use veil_engine::Executor;
use veil_engine::job::{Job, Partitions};
use veil_engine::sample::{SampleSpec, write_sample, write_sample_consent};
use veil_engine::scan::BoundingKey;
use veil_engine::{LocalExecutor, check_with};

use crate::fixtures::*;

/// Runs the job's scan on both engines with each key and asserts equal results; returns
/// how many groups the queries had, so the caller can check the data exercised them.
fn same_on_both(spark: &veil_spark::SparkExecutor, job: &Job, keys: &[[u64; 2]]) -> Vec<usize> {
    let local_plan = veil_engine::check(job).expect("the job checks locally");
    let spark_plan = check_with(job, spark).expect("the job checks on Spark");
    assert_eq!(local_plan.scan, spark_plan.scan);
    let plan = &local_plan.scan;
    let mut sizes = Vec::new();
    for words in keys {
        let key = BoundingKey::from_words(*words);
        let local = LocalExecutor::default()
            .aggregate(plan, key)
            .expect("the local scan runs");
        let remote = spark.aggregate(plan, key).expect("the Spark scan runs");
        assert_eq!(local.counts, remote.counts, "counts differ");
        let local_groups = normalised(&local, plan);
        let remote_groups = normalised(&remote, plan);
        for (index, (ours, theirs)) in local_groups.iter().zip(&remote_groups).enumerate() {
            let name = &plan.queries[index].name;
            assert_eq!(
                ours.keys().collect::<Vec<_>>(),
                theirs.keys().collect::<Vec<_>>(),
                "query {name}: the groups differ"
            );
            for (key, values) in ours {
                assert_eq!(
                    Some(values),
                    theirs.get(key),
                    "query {name}, group {key:?} differs"
                );
            }
        }
        sizes = local_groups
            .iter()
            .map(std::collections::BTreeMap::len)
            .collect();
    }
    sizes
}

#[test]
fn sample_data_with_consent_and_retention() {
    let Some(spark) = spark() else { return };
    let directory = directory();
    let events = file(&directory, "events.parquet");
    let consent = file(&directory, "consent.parquet");
    let mut rng = rng(7);
    write_sample(
        SampleSpec {
            rows: 60_000,
            users: 3_000,
        },
        &events,
        &mut rng,
        &mut |_| {},
    )
    .expect("sample data");
    write_sample_consent(3_000, &["analytics", "marketing"], &consent, &mut rng)
        .expect("a consent log");
    let queries = vec![
        query(
            "by_country",
            &["country"],
            (3, 5),
            Partitions::Private,
            all_aggregates("value", 0.0, 100.0),
        ),
        query(
            "by_country_feature",
            &["country", "feature"],
            (2, 2),
            Partitions::Private,
            all_aggregates("value", -10.0, 1000.0),
        ),
        query(
            "total",
            &[],
            (1, 20),
            Partitions::Private,
            all_aggregates("value", 0.0, 50.0),
        ),
        query(
            "public_countries",
            &["country"],
            (1, 1),
            public(&[&["US"], &["FR"], &["XX"]]),
            all_aggregates("value", 0.0, 100.0),
        ),
    ];
    let job = job(&events, Some(&consent), queries, &file(&directory, "out"));
    let sizes = same_on_both(&spark, &job, &[[1, 2], [u64::MAX, 0x8000_0000_0000_0000]]);
    assert!(sizes[0] > 20 && sizes[1] > 200, "{sizes:?}");
    assert_eq!(sizes[2], 1);
    assert_eq!(sizes[3], 2, "only the listed keys with rows");
}

#[test]
fn edge_values_and_every_group_type() {
    let Some(spark) = spark() else { return };
    let directory = directory();
    let events = file(&directory, "events.parquet");
    write_edge_events(&events, 30_000, 400, 11);
    let queries = vec![
        query(
            "by_country",
            &["country"],
            (2, 3),
            Partitions::Private,
            all_aggregates("value", -100.0, 100.0),
        ),
        query(
            "by_day_flag",
            &["day", "flag"],
            (4, 2),
            Partitions::Private,
            all_aggregates("ratio", -0.5, 1.5),
        ),
        query(
            "by_bucket",
            &["bucket"],
            (3, 4),
            Partitions::Private,
            all_aggregates("level", 0.0, 10.0),
        ),
        query(
            "by_flag_value",
            &["flag"],
            (1, 7),
            Partitions::Private,
            all_aggregates("flag", 0.0, 1.0),
        ),
        query(
            "public_days",
            &["day", "country"],
            (2, 2),
            public(&[
                &["2026-09-01", "FR"],
                &["2026-09-02", "it's"],
                &["2026-09-03", ""],
            ]),
            all_aggregates("value", -1.0, 1.0),
        ),
    ];
    let job = job(&events, None, queries, &file(&directory, "out"));
    let sizes = same_on_both(&spark, &job, &[[3, 4]]);
    assert!(sizes[0] >= 6, "{sizes:?}");
}

#[test]
fn consent_edge_cases_and_text_units() {
    let Some(spark) = spark() else { return };
    let directory = directory();
    for text_units in [false, true] {
        // The log's ids have the source's type (another type is refused before any scan).
        let events = file(&directory, &format!("events-{text_units}.parquet"));
        write_edge_events_with(&events, 20_000, 300, 5, text_units);
        let consent = file(&directory, &format!("consent-{text_units}.parquet"));
        write_edge_consent(&consent, 300, text_units, 9);
        let queries = vec![query(
            "by_country",
            &["country"],
            (2, 3),
            Partitions::Private,
            all_aggregates("value", -100.0, 100.0),
        )];
        let job = job(&events, Some(&consent), queries, &file(&directory, "out"));
        same_on_both(&spark, &job, &[[5, 6]]);
    }
}

#[test]
fn the_key_changes_which_rows_survive() {
    let Some(spark) = spark() else { return };
    let directory = directory();
    let events = file(&directory, "events.parquet");
    write_edge_events(&events, 20_000, 100, 3);
    let queries = vec![query(
        "by_country",
        &["country"],
        (1, 1),
        Partitions::Private,
        all_aggregates("value", -100.0, 100.0),
    )];
    let job = job(&events, None, queries, &file(&directory, "out"));
    let plan = check_with(&job, &spark).expect("checks").scan;
    let run = |words| {
        normalised(
            &spark
                .aggregate(&plan, BoundingKey::from_words(words))
                .expect("runs"),
            &plan,
        )
    };
    assert_ne!(run([1, 1]), run([2, 2]));
    assert_eq!(run([1, 1]), run([1, 1]));
}
