//! Data, jobs and comparisons for the live tests.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use rand::rngs::ChaCha20Rng;
use rand::{RngExt, SeedableRng};
use veil_core::{Bounds, Delta, Epsilon};
use veil_engine::job::{
    Aggregate, AggregateKind, Consent, ContributionBounds, Governance, Job, JobBudget, Output,
    OutputFormat, Partitions, Purpose, Query, Source, SourceFormat, ValueColumn,
};
use veil_engine::scan::Aggregated;
use veil_engine::table::{self, Column, Format, Table, TimeUnit, Values};
use veil_spark::{Remote, SparkExecutor};

/// The Spark Connect server of the live tests, or `None` (with a note) when
/// `VEIL_SPARK_REMOTE` is not set.
pub(crate) fn remote() -> Option<Remote> {
    match std::env::var("VEIL_SPARK_REMOTE") {
        Ok(text) => Some(Remote::parse(&text).expect("VEIL_SPARK_REMOTE is an sc:// address")),
        Err(_) => {
            eprintln!(
                "skipped: set VEIL_SPARK_REMOTE=sc://host:port (scripts/spark-test.sh starts a server and does) to run the live Spark tests"
            );
            None
        }
    }
}

/// A connected executor, or `None` when the live tests are not configured.
pub(crate) fn spark() -> Option<SparkExecutor> {
    remote().map(|remote| SparkExecutor::connect(&remote).expect("the Spark server is up"))
}

/// A seeded RNG.
pub(crate) fn rng(seed: u64) -> ChaCha20Rng {
    ChaCha20Rng::seed_from_u64(seed)
}

/// Writes one table to a Parquet file.
pub(crate) fn write_parquet(path: &Path, columns: Vec<(&str, Values)>) {
    let table = Table::new(
        columns
            .into_iter()
            .map(|(name, values)| Column::new(name, values))
            .collect(),
    )
    .expect("a valid table");
    table::write(&table, path, Format::Parquet).expect("written");
}

/// Values that are never null.
fn all<T>(values: Vec<T>) -> Vec<Option<T>> {
    values.into_iter().map(Some).collect()
}

/// UTC timestamps in milliseconds.
fn utc_ms(values: Vec<i64>) -> Values {
    Values::Timestamp {
        unit: TimeUnit::Milliseconds,
        time_zone: Some("UTC".into()),
        values: all(values),
    }
}

/// Text, nulls kept.
fn texts(values: Vec<Option<&str>>) -> Values {
    Values::Text(
        values
            .into_iter()
            .map(|value| value.map(str::to_string))
            .collect(),
    )
}

/// Values that test every rule of the per-row transformations: nulls, NaN, infinities,
/// negative zero, values exactly halfway between grid steps, out-of-bounds values.
const EDGE_VALUES: [Option<f64>; 16] = [
    None,
    Some(f64::NAN),
    Some(f64::INFINITY),
    Some(f64::NEG_INFINITY),
    Some(-0.0),
    Some(0.0),
    Some(2.5),
    Some(-2.5),
    // Halfway between two steps of 2^-14 (the grid of bounds [-100, 100]).
    Some(1.5 / 16_384.0),
    Some(-1.5 / 16_384.0),
    Some(0.499_999_999_999_999_94),
    Some(99.999_999),
    Some(100.0),
    Some(1e300),
    Some(-7.25),
    Some(33.3),
];

/// An events table of `rows` rows over `users` units whose contributions are heavy-tailed
/// (bounding drops rows), with columns of every groupable type and edge values:
/// `user_id` (BIGINT, a few nulls), `country` (STRING, a few nulls), `day` (DATE),
/// `flag` (BOOLEAN), `bucket` (INT), `event_time` (TIMESTAMP, ms), `value` (DOUBLE with
/// edge values), `ratio` (FLOAT), `level` (SMALLINT).
pub(crate) fn write_edge_events(path: &Path, rows: usize, users: i64, seed: u64) {
    write_edge_events_with(path, rows, users, seed, false);
}

/// [`write_edge_events`], with the units as text when `text_units`.
pub(crate) fn write_edge_events_with(
    path: &Path,
    rows: usize,
    users: i64,
    seed: u64,
    text_units: bool,
) {
    let mut rng = rng(seed);
    let countries = ["FR", "DE", "US", "it's", "Ωmega", ""];
    let mut user_id = Vec::with_capacity(rows);
    let mut country = Vec::with_capacity(rows);
    let mut day = Vec::with_capacity(rows);
    let mut flag = Vec::with_capacity(rows);
    let mut bucket = Vec::with_capacity(rows);
    let mut event_time = Vec::with_capacity(rows);
    let mut value = Vec::with_capacity(rows);
    let mut ratio = Vec::with_capacity(rows);
    let mut level = Vec::with_capacity(rows);
    let end_ms = veil_engine::sample::SAMPLE_END_MS;
    for _ in 0..rows {
        // A few units hold most rows.
        let draw: f64 = rng.random();
        let unit = ((draw * draw * draw) * users as f64) as i64;
        user_id.push((rng.random_range(0..200) != 0).then_some(unit));
        country.push(
            (rng.random_range(0..50) != 0).then(|| countries[rng.random_range(0..countries.len())]),
        );
        day.push(20_700 + rng.random_range(0..60_i32));
        flag.push(rng.random_range(0..3) == 0);
        bucket.push(rng.random_range(-3..4_i32));
        event_time.push(
            end_ms - rng.random_range(0..200_i64) * 86_400_000 + rng.random_range(0..86_400_000),
        );
        value.push(if rng.random_range(0..4) == 0 {
            EDGE_VALUES[rng.random_range(0..EDGE_VALUES.len())]
        } else {
            Some(rng.random_range(-120.0..120.0))
        });
        ratio.push((rng.random_range(0..10) != 0).then(|| rng.random_range(-1.0..2.0_f32)));
        level.push(rng.random_range(0..20_i16));
    }
    let user_id = if text_units {
        Values::Text(
            user_id
                .iter()
                .map(|unit| unit.map(|unit| unit.to_string()))
                .collect(),
        )
    } else {
        Values::I64(user_id)
    };
    write_parquet(
        path,
        vec![
            ("user_id", user_id),
            ("country", texts(country)),
            ("day", Values::Date(all(day))),
            ("flag", Values::Bool(all(flag))),
            ("bucket", Values::I32(all(bucket))),
            ("event_time", utc_ms(event_time)),
            ("value", Values::F64(value)),
            ("ratio", Values::F32(ratio)),
            ("level", Values::I16(all(level))),
        ],
    );
}

/// A consent log for units `0..users`: grants, revokes, re-grants, a grant and a revoke
/// at the same instant (the revoke wins), events after the as-of time (ignored), events
/// for another purpose, and a few null actions. Units are text when `text_units`.
pub(crate) fn write_edge_consent(path: &Path, users: i64, text_units: bool, seed: u64) {
    let mut rng = rng(seed);
    let as_of = veil_engine::sample::SAMPLE_END_MS;
    let mut unit = Vec::new();
    let mut purpose = Vec::new();
    let mut action: Vec<Option<&str>> = Vec::new();
    let mut at = Vec::new();
    let mut push = |u: i64, p: &'static str, a: Option<&'static str>, t: i64| {
        unit.push(u);
        purpose.push(p);
        action.push(a);
        at.push(t);
    };
    for u in 0..users {
        let t = as_of - rng.random_range(1..300_i64) * 86_400_000;
        match rng.random_range(0..8) {
            0 => {}
            1 => {
                push(u, "analytics", Some("grant"), t);
                push(u, "analytics", Some("revoke"), t);
            }
            2 => {
                push(u, "analytics", Some("grant"), t);
                push(u, "analytics", Some("revoke"), t + 1000);
                push(u, "analytics", Some("grant"), t + 2000);
            }
            3 => {
                push(u, "analytics", Some("grant"), t);
                push(u, "analytics", Some("revoke"), as_of + 1);
            }
            4 => push(u, "marketing", Some("grant"), t),
            5 => {
                push(u, "analytics", Some("grant"), t);
                push(u, "analytics", None, t + 5);
            }
            _ => push(u, "analytics", Some("grant"), t),
        }
    }
    let units = if text_units {
        Values::Text(unit.iter().map(|unit| Some(unit.to_string())).collect())
    } else {
        Values::I64(all(unit))
    };
    write_parquet(
        path,
        vec![
            ("user_id", units),
            ("purpose", texts(all(purpose))),
            ("action", texts(action)),
            ("at", utc_ms(at)),
        ],
    );
}

/// A table whose `event_time` is in nanoseconds (which Spark cannot read) and whose
/// `big` column is an unsigned 64-bit integer (which Spark reads as a decimal).
pub(crate) fn write_unreadable(path: &Path, nanos: bool) {
    let mut columns: Vec<(&str, Values)> = vec![
        ("user_id", Values::I64(all(vec![1, 2, 3]))),
        ("country", texts(all(vec!["FR", "DE", "FR"]))),
        ("big", Values::U64(all(vec![1, 2, 3]))),
        ("value", Values::I64(all(vec![4, 5, 6]))),
    ];
    if nanos {
        columns.push((
            "event_time",
            Values::Timestamp {
                unit: TimeUnit::Nanoseconds,
                time_zone: None,
                values: all(vec![1, 2, 3]),
            },
        ));
    }
    write_parquet(path, columns);
}

pub(crate) fn bounds(lower: f64, upper: f64) -> Bounds {
    Bounds::new(lower, upper).expect("valid bounds")
}

/// Every aggregate over `column` in `[lower, upper]`, plus counts.
pub(crate) fn all_aggregates(column: &str, lower: f64, upper: f64) -> Vec<Aggregate> {
    let value = || ValueColumn {
        name: column.into(),
        bounds: bounds(lower, upper),
    };
    [
        AggregateKind::Count,
        AggregateKind::UnitCount,
        AggregateKind::Sum(value()),
        AggregateKind::Mean(value()),
        AggregateKind::Variance(value()),
        AggregateKind::Quantiles {
            column: value(),
            levels: vec![0.1, 0.5, 0.9],
            interval: Default::default(),
        },
    ]
    .into_iter()
    .map(|kind| Aggregate {
        name: kind.default_name(),
        kind,
        weight: 1.0,
    })
    .collect()
}

pub(crate) fn query(
    name: &str,
    group_by: &[&str],
    (l0, linf): (u32, u32),
    partitions: Partitions,
    aggregates: Vec<Aggregate>,
) -> Query {
    Query {
        name: name.into(),
        group_by: group_by.iter().map(ToString::to_string).collect(),
        bounds: ContributionBounds {
            max_groups_per_unit: l0,
            max_rows_per_group: linf,
        },
        partitions,
        aggregates,
        weight: 1.0,
        drop_missing: Vec::new(),
        selection: Default::default(),
        auto: Vec::new(),
    }
}

pub(crate) fn public(keys: &[&[&str]]) -> Partitions {
    Partitions::Public {
        origin: "test".into(),
        keys: keys
            .iter()
            .map(|key| key.iter().map(ToString::to_string).collect())
            .collect(),
    }
}

/// A job over `source`; with `consent`, a 90-day retention on `event_time` and that
/// consent log.
pub(crate) fn job(
    source: &Path,
    consent: Option<&Path>,
    queries: Vec<Query>,
    output: &Path,
) -> Job {
    let mut governance = Governance::unrestricted("analytics", veil_engine::sample::SAMPLE_END_MS);
    if let Some(consent) = consent {
        governance.purpose = Purpose {
            name: "analytics".into(),
            description: String::new(),
            columns: None,
            retention_ms: Some(90 * 86_400_000),
        };
        governance.time_column = Some("event_time".into());
        governance.consent = Some(Consent {
            path: consent.to_path_buf(),
            format: SourceFormat::Parquet,
            unit_column: "user_id".into(),
            purpose_column: "purpose".into(),
            action_column: "action".into(),
            time_column: "at".into(),
        });
    }
    Job {
        name: "live".into(),
        job_hash: "0".into(),
        source: Source {
            path: source.to_path_buf(),
            format: SourceFormat::Parquet,
            privacy_unit: "user_id".into(),
        },
        budget: JobBudget::Approx(
            Epsilon::new(1.0).expect("valid"),
            Delta::new(1e-6).expect("valid"),
        ),
        queries,
        output: Output {
            directory: output.to_path_buf(),
            format: OutputFormat::Csv,
        },
        governance,
        noise: veil_engine::job::NoisePreference::Auto,
    }
}

/// One query's aggregates keyed by group text: measures, then per histogram column the
/// non-zero leaves.
pub(crate) type Groups =
    BTreeMap<Vec<Option<String>>, (BTreeMap<String, i64>, BTreeMap<String, BTreeMap<i64, i64>>)>;

/// The aggregates of a scan with group keys as text, so that a local and a Spark scan
/// compare whatever types their group columns have.
pub(crate) fn normalised(
    aggregated: &Aggregated,
    plan: &veil_engine::plan::ScanPlan,
) -> Vec<Groups> {
    plan.queries
        .iter()
        .zip(&aggregated.queries)
        .map(|(query, aggregates)| {
            let keys = aggregates.group_keys(&query.group_by).expect("group keys");
            let mut groups: Groups = BTreeMap::new();
            for key in &keys {
                groups.insert(key.clone(), Default::default());
            }
            for measure in &query.measures {
                if let veil_engine::plan::Measure::Histogram { column, .. } = measure {
                    for (group, leaf, rows) in aggregates
                        .histogram(&measure.key(), &query.group_by)
                        .expect("a histogram")
                    {
                        let entry = groups.get_mut(&keys[group]).expect("a known group");
                        *entry
                            .1
                            .entry(column.clone())
                            .or_default()
                            .entry(leaf)
                            .or_default() += rows;
                    }
                } else {
                    let values = aggregates.measure(&measure.key()).expect("a measure");
                    for (key, value) in keys.iter().zip(values) {
                        groups
                            .get_mut(key)
                            .expect("a known group")
                            .0
                            .insert(measure.key(), value);
                    }
                }
            }
            groups
        })
        .collect()
}

/// A fresh temporary directory.
pub(crate) fn directory() -> tempfile::TempDir {
    tempfile::tempdir().expect("a temporary directory")
}

/// `name` in `directory`.
pub(crate) fn file(directory: &tempfile::TempDir, name: &str) -> PathBuf {
    directory.path().join(name)
}
