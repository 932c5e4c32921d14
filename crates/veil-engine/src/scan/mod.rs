//! Executes a [`ScanPlan`] with Polars: read, drop rows without a unit, bound each
//! unit's contribution, aggregate per group. Nothing here is private yet; the result
//! never leaves the engine except through the release step (or, flagged as not private,
//! to the utility report).
//!
//! - `source`: the files a source names, lazy scans of them, their schema.
//! - `filter`: retention, consent and null units: the rows a purpose may read.
//! - `bound`: per-row values on each query's grid, L∞ and L0 as one pair table.
//! - `kept`: the flat pass that keeps each pair's smallest-hash rows; `hash`: Spark's keyed
//!   `xxhash64`, bit for bit.
//! - `neighbour`: the auditor's neighbouring datasets.
//!
//! This file runs them: the scan counts' pass, then every query's per-group sums.

use std::collections::BTreeMap;

use polars::prelude::*;

use crate::EngineError;
use crate::plan::{Measure, ScanPlan};

mod bound;
mod filter;
mod hash;
pub use hash::NULL_MASK_COLUMNS;
pub(crate) use hash::keyed_hash;
mod kept;
mod neighbour;
mod source;

pub use crate::aggregates::{Aggregated, ExternalAggregates, QueryAggregates, ScanCounts};
use bound::group_exprs;
pub(crate) use bound::{
    KeptColumn, L0_KEPT, bounded_pairs, only_listed_groups, pair_table, row_value, value_present,
};
pub(crate) use filter::{
    consent_log_units, consented_units, source_rows, time_at_least, with_unit,
};
use filter::{unknown_actions, windowed};
pub(crate) use kept::Kept;
pub use neighbour::{Neighbour, aggregate_neighbour};
use source::scan_engine;
pub(crate) use source::{scan_source, source_schema};
pub use source::{source_files, source_would_read};

/// The secret that decides which rows and groups survive bounding: a keyed hash of each
/// row (and of each unit–group pair), so the choice is uniform, reproducible within a
/// run, and independent of other units' data and of file order. Drawn fresh per run
/// from the caller's cryptographic RNG.
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct BoundingKey([u64; 2]);

impl std::fmt::Debug for BoundingKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("BoundingKey(..)")
    }
}

impl BoundingKey {
    /// A fresh key from `rng`.
    pub fn random<R: rand_core::Rng + rand_core::CryptoRng + ?Sized>(rng: &mut R) -> Self {
        let mut key = [0_u64; 2];
        for word in &mut key {
            *word = rng.next_u64();
        }
        Self(key)
    }

    /// A fixed key, for tests and for comparing engines on the same data: the first word
    /// keys the row hash (L∞), the second the unit–group hash (L0).
    #[must_use]
    pub fn from_words(words: [u64; 2]) -> Self {
        Self(words)
    }

    /// The two key words (rows, then unit–group pairs), for an engine that computes the
    /// same hashes elsewhere.
    #[must_use]
    pub fn words(&self) -> [u64; 2] {
        self.0
    }
}

const LEAF: &str = "leaf";
/// The prefix of a sum's floating-point twin, which checks it for overflow.
const OVERFLOW_CHECK: &str = "__veil_float_sum:";

/// Refuses a query whose per-group sum of a measure left the range where 64-bit integers
/// hold it exactly (a group of more than 2^62 grid steps), then drops the check columns.
fn checked_sums(
    query: &crate::plan::QueryScan,
    groups: DataFrame,
) -> Result<DataFrame, EngineError> {
    let mut checks = Vec::new();
    for name in groups.get_column_names() {
        let Some(measure) = name.as_str().strip_prefix(OVERFLOW_CHECK) else {
            continue;
        };
        let largest = groups
            .column(name)
            .and_then(|column| {
                column
                    .f64()
                    .map(|values| values.iter().flatten().map(f64::abs).fold(0.0, f64::max))
            })
            .map_err(|e| EngineError::polars("checking sums", &e))?;
        if largest >= 2f64.powi(62) {
            return Err(EngineError::invalid(
                format!("query {:?}", query.name),
                format!(
                    "a group's {measure} exceeds what 64-bit integers hold exactly (2^62 grid steps): narrow the value bounds or lower max_rows_per_group ({})",
                    query.bounds.max_rows_per_group
                ),
            ));
        }
        checks.push(name.clone());
    }
    Ok(groups.drop_many(checks))
}

/// Runs the scan plan: one pass over the source for all queries.
///
/// # Errors
/// [`EngineError`] if the source cannot be read or an aggregation fails.
pub fn aggregate(plan: &ScanPlan, key: BoundingKey) -> Result<Aggregated, EngineError> {
    aggregate_rows(plan, key, source_rows(plan)?)
}

/// [`aggregate`] on the rows a plan reads (after retention and consent).
pub(crate) fn aggregate_rows(
    plan: &ScanPlan,
    key: BoundingKey,
    projected: LazyFrame,
) -> Result<Aggregated, EngineError> {
    let unit = plan.source.privacy_unit.as_str();
    let base = with_unit(projected.clone(), unit);

    // Diagnostics for the operator (not released): rows of units with consent in force,
    // and missing values per aggregated column among them; rows inside the retention window
    // without a unit (a null unit never has consent, but it is counted as what it is).
    let value_columns = plan.value_columns();
    let with_unit = col(unit).is_not_null();
    let mut diagnostics = vec![
        with_unit.clone().sum().cast(DataType::UInt64).alias("rows"),
        col(unit)
            .drop_nulls()
            .n_unique()
            .cast(DataType::UInt64)
            .alias("units"),
    ];
    for column in &value_columns {
        diagnostics.push(
            with_unit
                .clone()
                .and(value_present(column).not())
                .sum()
                .cast(DataType::UInt64)
                .alias(format!("missing:{column}")),
        );
    }
    // Rows in the source and inside the retention window, for the operator.
    let count = || [len().cast(DataType::UInt64).alias("rows")];
    let (in_window, _) = windowed(plan)?;
    let mut checks = vec![
        projected.select(diagnostics),
        scan_source(&plan.source)?.select(count()),
        in_window.select([
            len().cast(DataType::UInt64).alias("rows"),
            col(unit)
                .null_count()
                .cast(DataType::UInt64)
                .alias("no_unit"),
        ]),
    ];
    if let Some(consent) = &plan.consent {
        checks.push(unknown_actions(consent)?);
    }
    // The counts and checks run as a pass of their own, before the queries: in the queries'
    // `collect_all` they would share the scan with the bounding, which keeps the scanned
    // rows cached for both (16 MB more peak memory at 1M rows, BENCHMARKS.md) to save one
    // cheap read of two columns; and a bad consent log fails before any bounding runs.
    let engine = scan_engine(&plan.source);
    let collect = |frames: Vec<LazyFrame>| {
        let plans: Vec<DslPlan> = frames.into_iter().map(|frame| frame.logical_plan).collect();
        LazyFrame::collect_all_with_engine(plans, engine, OptFlags::default())
            .map_err(|e| EngineError::polars("aggregating", &e))
    };
    let mut checked = collect(checks)?.into_iter();
    let mut next = || {
        checked
            .next()
            .ok_or_else(|| EngineError::Internal("a result frame is missing".into()))
    };
    let diagnostics = next()?;
    let in_source = next()?;
    let in_window = next()?;
    let read = |frame: &DataFrame, name: &str| -> Result<u64, EngineError> {
        frame
            .column(name)
            .and_then(|column| column.u64().map(|values| values.get(0).unwrap_or(0)))
            .map_err(|e| EngineError::polars("counting rows", &e))
    };
    if let Some(consent) = &plan.consent {
        consent.check_actions(read(&next()?, "unknown")?)?;
    }
    let mut missing_values = BTreeMap::new();
    for column in &value_columns {
        missing_values.insert(
            column.clone(),
            read(&diagnostics, &format!("missing:{column}"))?,
        );
    }
    let counts = ScanCounts::from_passes(
        read(&in_source, "rows")?,
        read(&in_window, "rows")?,
        read(&in_window, "no_unit")?,
        read(&diagnostics, "rows")?,
        read(&diagnostics, "units")?,
        missing_values,
    );

    let mut frames = Vec::new();
    let mut layout = Vec::new();
    for query in &plan.queries {
        let pairs = bounded_pairs(&base, unit, query, key)?;
        let mut sums: Vec<Expr> = Vec::new();
        for measure in &query.measures {
            match measure {
                Measure::Histogram { .. } => {}
                Measure::Units => sums.push(len().cast(DataType::Int64).alias(measure.key())),
                other => {
                    sums.push(
                        col(other.key())
                            .sum()
                            .cast(DataType::Int64)
                            .alias(other.key()),
                    );
                    // The same sum in floating point: a 64-bit integer sum wraps silently,
                    // this one shows when it would have.
                    sums.push(
                        col(other.key())
                            .cast(DataType::Float64)
                            .sum()
                            .alias(format!("{OVERFLOW_CHECK}{}", other.key())),
                    );
                }
            }
        }
        let groups = if query.group_by.is_empty() {
            pairs.clone().select(sums)
        } else {
            pairs
                .clone()
                .group_by(group_exprs(&query.group_by))
                .agg(sums)
        };
        frames.push(groups);
        let mut histogram_columns = Vec::new();
        for measure in &query.measures {
            if let Measure::Histogram { .. } = measure {
                let mut selected = group_exprs(&query.group_by);
                selected.push(col(measure.key()).alias(LEAF));
                let mut by = group_exprs(&query.group_by);
                by.push(col(LEAF));
                let histogram = pairs
                    .clone()
                    .select(selected)
                    .explode(
                        cols([LEAF]),
                        ExplodeOptions {
                            empty_as_null: false,
                            keep_nulls: false,
                        },
                    )
                    .group_by(by)
                    .agg([len().cast(DataType::Int64).alias("rows")]);
                frames.push(histogram);
                histogram_columns.push(measure.key());
            }
        }
        layout.push(histogram_columns);
    }
    let mut results = collect(frames)?.into_iter();
    let mut queries = Vec::new();
    for (query, histogram_columns) in plan.queries.iter().zip(layout) {
        let groups = results
            .next()
            .ok_or_else(|| EngineError::Internal("missing aggregate frame".into()))?;
        let groups = checked_sums(query, groups)?;
        let mut histograms = BTreeMap::new();
        for column in histogram_columns {
            let frame = results
                .next()
                .ok_or_else(|| EngineError::Internal("missing histogram frame".into()))?;
            histograms.insert(column, frame);
        }
        queries.push(QueryAggregates { groups, histograms });
    }
    Ok(Aggregated { queries, counts })
}

#[cfg(test)]
mod equivalence;
