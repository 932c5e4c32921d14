//! A scan in partitions gives the in-memory scan's aggregates bit for bit, for the same
//! key, whatever the number of partitions and however often they are split again.
#![allow(clippy::unwrap_used)]

use polars::prelude::*;
use proptest::prelude::*;
use veil_core::{Bounds, Delta, Epsilon};

use super::{aggregate_in_parts, partition_seed};
use crate::job::{
    Aggregate, AggregateKind, Consent, ContributionBounds, Governance, Job, JobBudget, Output,
    OutputFormat, Partitions, Purpose, Query, Source, SourceFormat, ValueColumn,
};
use crate::scan::{Aggregated, BoundingKey, ScanOptions, ScanProgress, memory};

const DAY_MS: i64 = 86_400_000;

/// 300 units with heavy-tailed rows (1 to ~80) over 5 countries and a nullable tier, values
/// with repeats and missing ones, times over 40 days, some rows without a unit; and a
/// consent log that grants, revokes and grants again.
fn write(directory: &std::path::Path) -> (std::path::PathBuf, std::path::PathBuf) {
    let mut state = 11_u64;
    let mut next = move || {
        state = state
            .wrapping_mul(6_364_136_223_846_793_005)
            .wrapping_add(1_442_695_040_888_963_407);
        state >> 33
    };
    let countries = ["FR", "DE", "IT", "ES", "PT"];
    let (mut units, mut country, mut tier, mut values, mut times) =
        (Vec::new(), Vec::new(), Vec::new(), Vec::new(), Vec::new());
    for unit in 0..300_i64 {
        let rows = 1 + (next() % 9) * (next() % 9);
        for _ in 0..rows {
            units.push((next() % 50 != 0).then_some(unit));
            country.push(countries[usize::try_from(next() % 5).unwrap()]);
            tier.push((next() % 4 != 0).then(|| i32::try_from(next() % 3).unwrap()));
            let draw = next() % 40;
            values.push((draw != 0).then(|| f64::from(u32::try_from(draw % 13).unwrap()) * 9.5));
            times.push(i64::try_from(next() % 40).unwrap() * DAY_MS);
        }
    }
    let mut events = df![
        "user_id" => units,
        "country" => country,
        "tier" => tier,
        "value" => values,
        "at" => times,
    ]
    .unwrap();
    events
        .with_column(
            events
                .column("at")
                .unwrap()
                .cast(&DataType::Datetime(TimeUnit::Milliseconds, None))
                .unwrap(),
        )
        .unwrap();
    let events_path = directory.join("events.parquet");
    ParquetWriter::new(std::fs::File::create(&events_path).unwrap())
        .finish(&mut events)
        .unwrap();
    let (mut who, mut purpose, mut action, mut at) =
        (Vec::new(), Vec::new(), Vec::new(), Vec::new());
    for unit in 0..300_i64 {
        let draw = next() % 10;
        if draw == 0 {
            continue;
        }
        let mut push = |what: &str, day: i64| {
            who.push(unit);
            purpose.push("analytics");
            action.push(what.to_string());
            at.push(day * DAY_MS);
        };
        push("grant", 1);
        if draw < 3 {
            push("revoke", 5);
        }
        if draw == 1 {
            push("grant", 9);
        }
    }
    let mut log =
        df!["user_id" => who, "purpose" => purpose, "action" => action, "at" => at].unwrap();
    log.with_column(
        log.column("at")
            .unwrap()
            .cast(&DataType::Datetime(TimeUnit::Milliseconds, None))
            .unwrap(),
    )
    .unwrap();
    let consent_path = directory.join("consent.parquet");
    ParquetWriter::new(std::fs::File::create(&consent_path).unwrap())
        .finish(&mut log)
        .unwrap();
    (events_path, consent_path)
}

/// Three queries: per country with every kind of measure, per (country, tier) with
/// tight bounds, and one global count and sum; consent and a 30-day retention window.
fn job(events: &std::path::Path, consent: &std::path::Path) -> Job {
    let value = ValueColumn {
        name: "value".into(),
        bounds: Bounds::new(0.0, 100.0).unwrap(),
    };
    let aggregates = |kinds: Vec<AggregateKind>| -> Vec<Aggregate> {
        kinds
            .into_iter()
            .enumerate()
            .map(|(index, kind)| Aggregate {
                name: format!("a{index}"),
                kind,
                weight: 1.0,
            })
            .collect()
    };
    let query = |name: &str, group_by: Vec<&str>, l0, linf, kinds| Query {
        name: name.into(),
        group_by: group_by.into_iter().map(String::from).collect(),
        bounds: ContributionBounds {
            max_groups_per_unit: l0,
            max_rows_per_group: linf,
        },
        partitions: Partitions::Private,
        aggregates: aggregates(kinds),
        weight: 1.0,
        drop_missing: Vec::new(),
        selection: Default::default(),
        auto: Vec::new(),
    };
    let mut governance = Governance::unrestricted("analytics", 40 * DAY_MS);
    governance.purpose = Purpose {
        name: "analytics".into(),
        description: String::new(),
        columns: None,
        retention_ms: Some(30 * DAY_MS),
    };
    governance.time_column = Some("at".into());
    governance.consent = Some(Consent {
        path: consent.to_path_buf(),
        format: SourceFormat::Parquet,
        unit_column: "user_id".into(),
        purpose_column: "purpose".into(),
        action_column: "action".into(),
        time_column: "at".into(),
    });
    Job {
        name: "t".into(),
        job_hash: "h".into(),
        source: Source {
            path: events.to_path_buf(),
            format: SourceFormat::Parquet,
            privacy_unit: "user_id".into(),
        },
        budget: JobBudget::Approx(Epsilon::new(1.0).unwrap(), Delta::new(1e-6).unwrap()),
        queries: vec![
            query(
                "by_country",
                vec!["country"],
                2,
                3,
                vec![
                    AggregateKind::Count,
                    AggregateKind::UnitCount,
                    AggregateKind::Sum(value.clone()),
                    AggregateKind::Variance(value.clone()),
                    AggregateKind::Quantiles {
                        column: value.clone(),
                        levels: vec![0.5, 0.9],
                        interval: Default::default(),
                    },
                ],
            ),
            query(
                "by_country_tier",
                vec!["country", "tier"],
                1,
                1,
                vec![AggregateKind::Count, AggregateKind::Mean(value.clone())],
            ),
            query(
                "overall",
                Vec::new(),
                3,
                2,
                vec![AggregateKind::Count, AggregateKind::Sum(value)],
            ),
        ],
        output: Output {
            directory: events.with_extension("out"),
            format: OutputFormat::Csv,
        },
        governance,
        noise: crate::job::NoisePreference::Auto,
    }
}

/// A frame sorted by every column, for comparing results in any row order.
fn sorted(frame: &DataFrame) -> DataFrame {
    let by: Vec<String> = frame
        .get_column_names()
        .iter()
        .map(|name| name.to_string())
        .collect();
    frame
        .sort(by, SortMultipleOptions::default().with_nulls_last(true))
        .unwrap()
}

fn assert_same(whole: &Aggregated, parts: &Aggregated) {
    assert_eq!(whole.counts, parts.counts);
    assert_eq!(whole.queries.len(), parts.queries.len());
    for (ours, theirs) in whole.queries.iter().zip(&parts.queries) {
        let (ours_groups, theirs_groups) = (sorted(&ours.groups), sorted(&theirs.groups));
        assert!(ours_groups.height() > 0);
        assert_eq!(ours_groups.schema(), theirs_groups.schema());
        assert!(
            ours_groups.equals_missing(&theirs_groups),
            "{ours_groups}\n{theirs_groups}"
        );
        assert_eq!(
            ours.histograms.keys().collect::<Vec<_>>(),
            theirs.histograms.keys().collect::<Vec<_>>()
        );
        for (key, histogram) in &ours.histograms {
            let (ours, theirs) = (sorted(histogram), sorted(&theirs.histograms[key]));
            assert!(ours.equals_missing(&theirs), "{key}: {ours}\n{theirs}");
        }
    }
}

fn in_parts(
    plan: &crate::plan::ScanPlan,
    key: BoundingKey,
    parts: u32,
    max_rows: u64,
    spill: &std::path::Path,
) -> Aggregated {
    let size = memory::source_size(plan).unwrap();
    let options = ScanOptions {
        spill_dir: Some(spill.to_path_buf()),
        ..ScanOptions::default()
    };
    aggregate_in_parts(plan, key, &size, max_rows, parts, &options).unwrap()
}

#[test]
fn partitions_give_the_in_memory_aggregates_bit_for_bit() {
    let directory = tempfile::tempdir().unwrap();
    let (events, consent) = write(directory.path());
    let plan = crate::plan::plan(&job(&events, &consent)).unwrap().scan;
    let spill = directory.path().join("spill");
    std::fs::create_dir(&spill).unwrap();
    for words in [[1, 2], [0xdead_beef, 7]] {
        let key = BoundingKey::from_words(words);
        let whole = super::super::aggregate(&plan, key).unwrap();
        assert!(whole.counts.rows_without_consent > 0 && whole.counts.rows_outside_retention > 0);
        // From 2 to 128 partitions, and partitions split again and again (at most 150
        // rows each, then 40: units of up to ~80 rows, so some need a third level).
        for (parts, max_rows) in [
            (2, u64::MAX),
            (7, u64::MAX),
            (128, u64::MAX),
            (3, 150),
            (2, 90),
        ] {
            let partitioned = in_parts(&plan, key, parts, max_rows, &spill);
            assert_same(&whole, &partitioned);
        }
        // Nothing is left in the spill folder.
        assert_eq!(std::fs::read_dir(&spill).unwrap().count(), 0);
    }
}

#[test]
fn a_unit_too_large_for_the_budget_is_refused() {
    let directory = tempfile::tempdir().unwrap();
    let (events, consent) = write(directory.path());
    let plan = crate::plan::plan(&job(&events, &consent)).unwrap().scan;
    let size = memory::source_size(&plan).unwrap();
    let spill = directory.path().join("spill");
    std::fs::create_dir(&spill).unwrap();
    let options = ScanOptions {
        spill_dir: Some(spill.clone()),
        ..ScanOptions::default()
    };
    let error = aggregate_in_parts(
        &plan,
        BoundingKey::from_words([1, 2]),
        &size,
        3,
        2,
        &options,
    )
    .unwrap_err();
    assert!(
        matches!(error, crate::EngineError::MemoryBudget { .. }),
        "{error}"
    );
    assert!(error.to_string().contains("--memory"), "{error}");
    assert_eq!(std::fs::read_dir(&spill).unwrap().count(), 0);
}

#[test]
fn progress_counts_rows_and_passes() {
    let directory = tempfile::tempdir().unwrap();
    let (events, consent) = write(directory.path());
    let plan = crate::plan::plan(&job(&events, &consent)).unwrap().scan;
    let size = memory::source_size(&plan).unwrap();
    let seen = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
    let heard = seen.clone();
    let options = ScanOptions {
        spill_dir: Some(directory.path().to_path_buf()),
        progress: Some(std::sync::Arc::new(move |event: &ScanProgress| {
            heard.lock().unwrap().push(*event);
        })),
        ..ScanOptions::default()
    };
    aggregate_in_parts(
        &plan,
        BoundingKey::from_words([1, 2]),
        &size,
        u64::MAX,
        4,
        &options,
    )
    .unwrap();
    let seen = seen.lock().unwrap();
    assert!(seen.iter().any(|event| matches!(
        event,
        ScanProgress::Partitioning { total, partitions: 4, .. } if *total == size.rows
    )));
    let passes: Vec<usize> = seen
        .iter()
        .filter_map(|event| match event {
            ScanProgress::Aggregating {
                pass, passes: 4, ..
            } => Some(*pass),
            _ => None,
        })
        .collect();
    assert_eq!(passes, vec![1, 2, 3, 4]);
}

#[test]
fn partition_keys_come_from_the_bounding_key() {
    let one = BoundingKey::from_words([1, 2]);
    let other = BoundingKey::from_words([1, 3]);
    assert_ne!(partition_seed(one, 1), partition_seed(other, 1));
    assert_ne!(partition_seed(one, 1), partition_seed(one, 2));
    assert_eq!(partition_seed(one, 1), partition_seed(one, 1));
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(12))]

    /// Any key, any number of partitions, any share per partition that some split can
    /// reach: the same aggregates as in memory.
    #[test]
    fn any_partitioning_gives_the_same_aggregates(
        words in any::<[u64; 2]>(),
        parts in 2_u32..=40,
        max_rows in prop_oneof![Just(u64::MAX), 200_u64..2_000],
    ) {
        let directory = tempfile::tempdir().unwrap();
        let (events, consent) = write(directory.path());
        let plan = crate::plan::plan(&job(&events, &consent)).unwrap().scan;
        let key = BoundingKey::from_words(words);
        let whole = super::super::aggregate(&plan, key).unwrap();
        assert_same(&whole, &in_parts(&plan, key, parts, max_rows, directory.path()));
    }
}
