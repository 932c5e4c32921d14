//! Shared pieces of Veil's end-to-end benchmarks: the benchmark data, the job under test,
//! and the plain-Polars baselines it is measured against.
//!
//! The job is the reference: count and sum of `value` per `country`, each user in
//! at most 3 countries with at most 5 rows in each, ε = 1, δ = 1e-6.
#![deny(missing_docs)]

use std::path::{Path, PathBuf};

use polars::prelude::*;
use rand_core::SeedableRng;
use veil_accountant::{BudgetKey, MemoryLedger, PrivacyBudget};
use veil_core::{Bounds, Delta, Epsilon};
use veil_engine::job::{
    Aggregate, AggregateKind, ContributionBounds, Governance, Job, JobBudget, Output, OutputFormat,
    Partitions, Query, Source, SourceFormat, ValueColumn,
};

/// The benchmark dataset for `rows` rows (users = rows / 10), generated once per size in
/// the system's temporary directory and reused.
///
/// # Panics
/// If the file cannot be written (a benchmark has nothing to measure then).
#[must_use]
pub fn dataset(rows: u64) -> PathBuf {
    let path = std::env::temp_dir().join(format!("veil-bench-events-{rows}.parquet"));
    if !path.exists() {
        let mut rng = rand::rngs::ChaCha20Rng::seed_from_u64(42);
        let spec = veil_engine::sample::SampleSpec {
            rows,
            users: rows / 10,
        };
        veil_engine::sample::write_sample(spec, &path, &mut rng, &mut |_| {})
            .expect("the benchmark data can be written");
    }
    path
}

/// The job under test on `source`, writing into `output`.
///
/// # Panics
/// Never: its parameters are constants in range.
#[must_use]
pub fn job(source: &Path, output: &Path) -> Job {
    let value = ValueColumn {
        name: "value".into(),
        bounds: Bounds::new(0.0, 100.0).expect("valid bounds"),
    };
    Job {
        name: "bench".into(),
        job_hash: "bench".into(),
        source: Source {
            path: source.to_path_buf(),
            format: SourceFormat::Parquet,
            privacy_unit: "user_id".into(),
        },
        budget: JobBudget::Approx(
            Epsilon::new(1.0).expect("valid ε"),
            Delta::new(1e-6).expect("valid δ"),
        ),
        queries: vec![Query {
            name: "by_country".into(),
            group_by: vec!["country".into()],
            bounds: ContributionBounds {
                max_groups_per_unit: 3,
                max_rows_per_group: 5,
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
                    kind: AggregateKind::Sum(value),
                    weight: 1.0,
                },
            ],
            weight: 1.0,
            drop_missing: Vec::new(),
            selection: Default::default(),
            auto: Vec::new(),
        }],
        output: Output {
            directory: output.to_path_buf(),
            format: OutputFormat::Parquet,
        },
        governance: Governance::unrestricted("analytics", veil_engine::sample::SAMPLE_END_MS),
        noise: veil_engine::job::NoisePreference::Auto,
    }
}

/// A ledger with room for any number of runs of the job.
///
/// # Panics
/// Never: the budget is a constant in range.
#[must_use]
pub fn ledger() -> (MemoryLedger, BudgetKey) {
    let key = BudgetKey {
        dataset: "events".into(),
        purpose: "analytics".into(),
    };
    let mut ledger = MemoryLedger::new();
    ledger
        .add_budget(
            &key,
            PrivacyBudget::Approx {
                epsilon: 1e12,
                delta: 0.5,
            },
            None,
        )
        .expect("a valid budget");
    (ledger, key)
}

fn scan(source: &Path) -> PolarsResult<LazyFrame> {
    LazyFrame::scan_parquet(
        PlRefPath::new(source.to_string_lossy().as_ref()),
        ScanArgsParquet::default(),
    )
}

/// Baseline 1, the physical floor: `group_by(country).agg(len, sum)` with no bounding.
///
/// # Errors
/// Polars errors.
pub fn polars_floor(source: &Path) -> PolarsResult<DataFrame> {
    scan(source)?
        .group_by([col("country")])
        .agg([len(), col("value").sum()])
        .collect()
}

/// The least any per-unit bounding must do: group the rows by (user, country) and count
/// them, with no bounding, no hash and no second aggregation. Not one of the targets, a
/// yardstick: it shows how much of baseline 2's cost over the floor no bounded engine can
/// avoid.
///
/// # Errors
/// Polars errors.
pub fn polars_pairs(source: &Path) -> PolarsResult<DataFrame> {
    scan(source)?
        .group_by([col("user_id"), col("country")])
        .agg([len(), col("value").sum()])
        .collect()
}

/// Baseline 2 on Polars' streaming engine (which falls back to in-memory execution for
/// the steps it cannot stream): the larger-than-memory comparison of `scripts/scale.sh`.
///
/// # Errors
/// Polars errors.
pub fn polars_bounded_streaming(source: &Path) -> PolarsResult<DataFrame> {
    bounded_plan(source)?
        .collect_with_engine(Engine::Streaming)
        .map(|result| result.unwrap_single())
}

/// Baseline 2: the same bounding done in plain Polars, without noise: cap rows per
/// (user, country) at 5 and countries per user at 3 (first rows, first groups), clamp,
/// then aggregate per country.
///
/// # Errors
/// Polars errors.
pub fn polars_bounded(source: &Path) -> PolarsResult<DataFrame> {
    bounded_plan(source)?.collect()
}

fn bounded_plan(source: &Path) -> PolarsResult<LazyFrame> {
    Ok(scan(source)?
        .select([col("user_id"), col("country"), col("value")])
        .filter(col("user_id").is_not_null())
        .group_by([col("user_id"), col("country")])
        .agg([
            len().alias("rows"),
            col("value")
                .clip(lit(0.0), lit(100.0))
                .head(Some(5))
                .sum()
                .alias("sum"),
        ])
        .filter(
            col("country")
                .rank(
                    RankOptions {
                        method: RankMethod::Ordinal,
                        descending: false,
                    },
                    None,
                )
                .over([col("user_id")])?
                .lt_eq(lit(3)),
        )
        .group_by([col("country")])
        .agg([
            col("rows")
                .clip(lit(0_u32), lit(5_u32))
                .sum()
                .alias("count"),
            col("sum").sum(),
            len().alias("units"),
        ]))
}
