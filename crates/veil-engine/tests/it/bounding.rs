//! Contribution bounding: bounds hold exactly, the choice of rows and groups is uniform,
//! and nothing depends on file order.

use veil_engine::job::{AggregateKind, Partitions};
use veil_engine::plan::plan;
use veil_engine::scan::{Aggregated, BoundingKey, aggregate as scan};
use veil_testkit::{binomial_consistent, chi_square_cdf};

use crate::fixtures::{aggregate, approx, job, query, value_column, write_events};

fn run_scan(
    source: &std::path::Path,
    queries: Vec<veil_engine::job::Query>,
    key: BoundingKey,
) -> Aggregated {
    let job = job(
        source,
        std::path::Path::new("unused"),
        approx(1.0, 1e-6),
        queries,
    );
    let plan = plan(&job).unwrap();
    scan(&plan.scan, key).unwrap()
}

/// The per-group sums of `value` in query `index`, in the column's units (the planner fits
/// each sum's grid to its noise, so steps alone say nothing).
fn sums(
    source: &std::path::Path,
    queries: Vec<veil_engine::job::Query>,
    index: usize,
    key: BoundingKey,
) -> Vec<f64> {
    let job = job(
        source,
        std::path::Path::new("unused"),
        approx(1.0, 1e-6),
        queries,
    );
    let plan = plan(&job).unwrap();
    let aggregated = scan(&plan.scan, key).unwrap();
    let query = &aggregated.queries[index];
    let measures = &plan.scan.queries[index].measures;
    // Measured, or derived as mid·values + centred sum (the planner's choice).
    if let Some((key, step)) = measures.iter().find_map(|measure| match measure {
        veil_engine::plan::Measure::Sum { grid, .. } => {
            Some((measure.key(), grid.granularity().to_f64()))
        }
        _ => None,
    }) {
        #[allow(clippy::cast_precision_loss)]
        return query
            .measure(&key)
            .unwrap()
            .into_iter()
            .map(|steps| steps as f64 * step)
            .collect();
    }
    let (key, grid) = measures
        .iter()
        .find_map(|measure| match measure {
            veil_engine::plan::Measure::CenteredSum { grid, .. } => Some((measure.key(), *grid)),
            _ => None,
        })
        .expect("a sum, measured or centred");
    let half_step = grid.granularity().to_f64() / 2.0;
    let (lower, upper) = grid.bounds_in_steps();
    #[allow(clippy::cast_precision_loss)]
    let middle = (lower + upper) as f64 * half_step;
    let values = query.measure("values:value").unwrap();
    #[allow(clippy::cast_precision_loss)]
    query
        .measure(&key)
        .unwrap()
        .into_iter()
        .zip(values)
        .map(|(centered, values)| middle * values as f64 + centered as f64 * half_step)
        .collect()
}

fn key(seed: u64) -> BoundingKey {
    let mut rng = veil_testkit::seeded_rng(seed);
    BoundingKey::random(&mut rng)
}

/// User 1 has 100 rows in each of four countries; users 2..=50 have one row in DE.
fn heavy_user_rows() -> Vec<(Option<i64>, &'static str, Option<f64>)> {
    let mut rows = Vec::new();
    for country in ["DE", "FR", "US", "IT"] {
        for index in 0..100 {
            rows.push((Some(1), country, Some(f64::from(index))));
        }
    }
    for user in 2..=50 {
        rows.push((Some(user), "DE", Some(1.0)));
    }
    rows
}

fn counts_query() -> veil_engine::job::Query {
    query(
        2,
        3,
        vec![
            aggregate(AggregateKind::Count),
            aggregate(AggregateKind::UnitCount),
        ],
    )
}

#[test]
fn bounds_hold_exactly() {
    let directory = tempfile::tempdir().unwrap();
    let source = directory.path().join("events.parquet");
    write_events(&source, &heavy_user_rows());
    for seed in 0..20 {
        let aggregated = run_scan(&source, vec![counts_query()], key(seed));
        let groups = &aggregated.queries[0];
        let rows: i64 = groups.measure("rows").unwrap().iter().sum();
        let units: i64 = groups.measure("units").unwrap().iter().sum();
        assert_eq!(rows, 49 + 2 * 3, "user 1 keeps 2 groups of 3 rows");
        assert_eq!(units, 49 + 2, "user 1 counts in exactly 2 groups");
        assert_eq!(aggregated.counts.rows_read, 449);
    }
}

#[test]
fn kept_groups_are_chosen_uniformly() {
    let directory = tempfile::tempdir().unwrap();
    let source = directory.path().join("events.parquet");
    let rows: Vec<_> = heavy_user_rows()
        .into_iter()
        .filter(|row| row.0 == Some(1))
        .collect();
    write_events(&source, &rows);
    let trials = 300_u64;
    let mut kept_fr = 0;
    for seed in 0..trials {
        let aggregated = run_scan(&source, vec![counts_query()], key(1_000 + seed));
        let groups = &aggregated.queries[0];
        let keys = groups.group_keys(&["country".to_string()]).unwrap();
        assert_eq!(keys.len(), 2);
        if keys.iter().any(|key| key[0].as_deref() == Some("FR")) {
            kept_fr += 1;
        }
    }
    assert!(
        binomial_consistent(kept_fr, trials, 0.5),
        "FR kept {kept_fr} of {trials} times"
    );
}

#[test]
fn kept_rows_are_chosen_uniformly() {
    let directory = tempfile::tempdir().unwrap();
    let source = directory.path().join("events.parquet");
    let rows: Vec<_> = (0..20)
        .map(|index| (Some(1), "DE", Some(f64::from(index))))
        .collect();
    write_events(&source, &rows);
    let sum = query(
        1,
        1,
        vec![aggregate(AggregateKind::Sum(value_column(0.0, 100.0)))],
    );
    let mut kept = Vec::new();
    for seed in 0..400 {
        let kept_value = sums(&source, vec![sum.clone()], 0, key(5_000 + seed))[0];
        #[allow(clippy::cast_possible_truncation)]
        kept.push(kept_value.round() as i64);
    }
    #[allow(clippy::cast_precision_loss)]
    let cdf = |x: i64| ((x + 1).clamp(0, 20) as f64) / 20.0;
    let fit = chi_square_cdf(&kept, cdf, 20);
    assert!(fit.passes(), "{fit:?}");
}

#[test]
fn file_order_does_not_matter() {
    let directory = tempfile::tempdir().unwrap();
    let forward = directory.path().join("forward.parquet");
    let backward = directory.path().join("backward.parquet");
    let rows = heavy_user_rows();
    write_events(&forward, &rows);
    write_events(&backward, &rows.iter().rev().copied().collect::<Vec<_>>());
    let sum = query(
        2,
        3,
        vec![
            aggregate(AggregateKind::Count),
            aggregate(AggregateKind::Sum(value_column(0.0, 100.0))),
        ],
    );
    // Every measure of every group, keyed by group.
    let sorted = |source: &std::path::Path| {
        let aggregated = run_scan(source, vec![sum.clone()], key(77));
        let groups = &aggregated.queries[0];
        let keys = groups.group_keys(&["country".to_string()]).unwrap();
        let mut measures: Vec<(String, Vec<i64>)> = ["rows", "values:value"]
            .into_iter()
            .chain(["sum:value[0,100]", "centered_sum:value[0,100]"])
            .filter_map(|key| groups.measure(key).map(|values| (key.to_string(), values)))
            .collect();
        measures.sort();
        let mut rows: Vec<_> = keys
            .into_iter()
            .enumerate()
            .map(|(row, key)| {
                let values: Vec<i64> = measures.iter().map(|(_, values)| values[row]).collect();
                (key, values)
            })
            .collect();
        rows.sort();
        (rows, sums(source, vec![sum.clone()], 0, key(77)).len())
    };
    assert_eq!(sorted(&forward), sorted(&backward));
}

#[test]
fn missing_units_and_values_are_dropped_and_counted() {
    let directory = tempfile::tempdir().unwrap();
    let source = directory.path().join("events.parquet");
    let rows = vec![
        (Some(1), "DE", Some(10.0)),
        (None, "DE", Some(10.0)),
        (Some(2), "DE", None),
        (Some(3), "DE", Some(f64::NAN)),
        (Some(4), "DE", Some(f64::INFINITY)),
        (Some(5), "DE", Some(-50.0)),
        (Some(6), "DE", Some(1e300)),
    ];
    write_events(&source, &rows);
    let mean = query(
        1,
        1,
        vec![
            aggregate(AggregateKind::Count),
            aggregate(AggregateKind::Mean(value_column(0.0, 100.0))),
        ],
    );
    let sum = query(
        1,
        1,
        vec![aggregate(AggregateKind::Sum(value_column(0.0, 100.0)))],
    );
    let mut sum = sum;
    sum.name = "sums".into();
    let aggregated = run_scan(&source, vec![mean.clone(), sum.clone()], key(3));
    assert_eq!(aggregated.counts.rows_read, 7);
    assert_eq!(aggregated.counts.rows_without_unit, 1);
    assert_eq!(
        aggregated.counts.missing_values.get("value"),
        Some(&2),
        "null and NaN"
    );
    let groups = &aggregated.queries[0];
    assert_eq!(
        groups.measure("rows").unwrap(),
        [6],
        "rows with a unit, whatever their value"
    );
    assert_eq!(
        groups.measure("values:value").unwrap(),
        [4],
        "values present: 10, inf, -50, 1e300"
    );
    // Clamped to [0, 100]: 10 + 100 + 0 + 100 = 210.
    assert_eq!(sums(&source, vec![mean, sum], 1, key(3)), [210.0]);
}

#[test]
fn public_partitions_drop_other_groups_before_bounding() {
    let directory = tempfile::tempdir().unwrap();
    let source = directory.path().join("events.parquet");
    write_events(&source, &heavy_user_rows());
    let mut public = query(1, 5, vec![aggregate(AggregateKind::Count)]);
    public.partitions = Partitions::Public {
        origin: "test".into(),
        keys: vec![vec!["FR".into()], vec!["XX".into()]],
    };
    let aggregated = run_scan(&source, vec![public], key(9));
    let groups = &aggregated.queries[0];
    // User 1's one allowed group must be FR: the only public key it has rows in.
    assert_eq!(
        groups.group_keys(&["country".to_string()]).unwrap(),
        [[Some("FR".to_string())]]
    );
    assert_eq!(groups.measure("rows").unwrap(), [5]);
}
