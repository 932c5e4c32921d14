use veil_core::{Delta, Epsilon};

use super::*;
use crate::job::{
    Aggregate, ContributionBounds, Governance, NoisePreference, Output, OutputFormat, Partitions,
    Source, SourceFormat, ValueColumn,
};

fn value_column() -> ValueColumn {
    ValueColumn {
        name: "value".into(),
        bounds: Bounds::new(0.0, 100.0).unwrap(),
    }
}

fn aggregate(kind: AggregateKind) -> Aggregate {
    Aggregate {
        name: kind.default_name(),
        kind,
        weight: 1.0,
    }
}

fn job(budget: JobBudget) -> Job {
    let query = |name: &str, l0: u32, linf: u32| Query {
        name: name.into(),
        group_by: vec!["country".into()],
        bounds: ContributionBounds {
            max_groups_per_unit: l0,
            max_rows_per_group: linf,
        },
        partitions: Partitions::Public {
            origin: "keys.csv".into(),
            keys: vec![vec!["DE".into()]],
        },
        aggregates: vec![
            aggregate(AggregateKind::Count),
            aggregate(AggregateKind::Sum(value_column())),
            aggregate(AggregateKind::Mean(value_column())),
        ],
        weight: 1.0,
        drop_missing: Vec::new(),
        selection: Default::default(),
        auto: Vec::new(),
    };
    Job {
        name: "replan".into(),
        job_hash: "0".into(),
        source: Source {
            path: "events.parquet".into(),
            format: SourceFormat::Parquet,
            privacy_unit: "user_id".into(),
        },
        budget,
        queries: vec![query("first", 3, 5), query("second", 2, 4)],
        output: Output {
            directory: "out".into(),
            format: OutputFormat::Csv,
        },
        governance: Governance::unrestricted("analytics", 0),
        noise: NoisePreference::Auto,
    }
}

fn pure(epsilon: f64) -> JobBudget {
    JobBudget::Pure(Epsilon::new(epsilon).unwrap())
}

fn at(epsilon: f64, l0: u32, linf: u32, value_scale: f64) -> Alternative {
    Alternative {
        epsilon: Epsilon::new(epsilon).unwrap(),
        max_groups_per_unit: l0,
        max_rows_per_group: linf,
        value_scale,
    }
}

#[test]
fn job_at_changes_one_query_and_the_budget_only() {
    let base = job(JobBudget::Approx(
        Epsilon::new(1.0).unwrap(),
        Delta::new(1e-6).unwrap(),
    ));
    let changed = job_at(&base, 1, &at(0.25, 7, 9, 2.0)).unwrap();
    assert_eq!(
        changed.budget,
        JobBudget::Approx(Epsilon::new(0.25).unwrap(), Delta::new(1e-6).unwrap())
    );
    assert_eq!(changed.queries[0], base.queries[0]);
    let second = &changed.queries[1];
    assert_eq!(second.bounds.max_groups_per_unit, 7);
    assert_eq!(second.bounds.max_rows_per_group, 9);
    let AggregateKind::Sum(column) = &second.aggregates[1].kind else {
        panic!("the second aggregate is a sum");
    };
    assert_eq!((column.bounds.lower(), column.bounds.upper()), (0.0, 200.0));
    assert!(matches!(
        job_at(&base, 2, &at(1.0, 1, 1, 1.0)),
        Err(EngineError::InvalidJob { .. })
    ));
}

#[test]
fn the_job_itself_replans_to_its_own_plan() {
    let base = job(pure(1.0));
    let own = replan(&base, 0, &at(1.0, 3, 5, 1.0)).unwrap();
    let planned = crate::plan::plan(&base).unwrap();
    assert_eq!(aggregate_noise(&own), aggregate_noise(&planned.queries[0]));
}

#[test]
fn laplace_noise_per_aggregate_scales_with_one_over_epsilon_and_with_the_bounds() {
    let base = job(pure(1.0));
    let one = aggregate_noise(&replan(&base, 0, &at(1.0, 3, 5, 1.0)).unwrap());
    let two = aggregate_noise(&replan(&base, 0, &at(2.0, 3, 5, 1.0)).unwrap());
    for key in ["rows", "sum:value", "values:value", "centered_sum:value"] {
        let (a, b) = (one[key], two[key]);
        assert_eq!(a.family, NoiseFamily::Laplace, "{key}");
        assert!(
            (a.std / b.std - 2.0).abs() < 0.02,
            "{key}: {} at ε = 1, {} at ε = 2",
            a.std,
            b.std
        );
    }
    // Twice the rows per group: every measure's sensitivity doubles. Alone, the query's
    // noise doubles; beside another query, the split moves budget to it, so its noise
    // grows by less.
    let mut alone = base.clone();
    alone.queries.truncate(1);
    let before = aggregate_noise(&replan(&alone, 0, &at(1.0, 3, 5, 1.0)).unwrap());
    let wide = aggregate_noise(&replan(&alone, 0, &at(1.0, 3, 10, 1.0)).unwrap());
    for (key, noise) in &before {
        assert!((wide[key].std / noise.std - 2.0).abs() < 0.02, "{key}");
    }
    let shared = aggregate_noise(&replan(&base, 0, &at(1.0, 3, 10, 1.0)).unwrap());
    let growth = shared["rows"].std / one["rows"].std;
    assert!(1.0 < growth && growth < 2.0, "{growth}");
    // A sum derived from a value count C and a centred sum S: hypot(m·σ_C, σ_S).
    let middle = 50.0;
    let derived = (middle * one["values:value"].std).hypot(one["centered_sum:value"].std);
    assert!(
        (one["sum:value"].std / derived - 1.0).abs() < 1e-9,
        "{} vs {derived}",
        one["sum:value"].std
    );
}

#[test]
fn the_tuning_grid_holds_the_query_own_bounds_once_in_order() {
    let base = job(pure(1.0));
    let mut query = base.queries[0].clone();
    query.bounds.max_groups_per_unit = 4;
    query.bounds.max_rows_per_group = 5;
    let (l0, linf) = tuning_grid(&query);
    assert_eq!(l0, vec![1, 2, 3, 4, 5, 10, 20]);
    assert_eq!(linf, vec![1, 2, 5, 10, 20, 50]);
}
