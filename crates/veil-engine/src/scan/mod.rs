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
use std::path::PathBuf;
use std::sync::Arc;

use polars::prelude::*;

use crate::EngineError;
use crate::plan::{Measure, ScanPlan};

mod bound;
mod filter;
mod hash;
pub use hash::NULL_MASK_COLUMNS;
pub(crate) use hash::keyed_hash;
mod kept;
mod memory;
mod neighbour;
mod partition;
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
pub use memory::{MemoryBudget, in_memory_need, report_need};
pub use neighbour::{Neighbour, aggregate_neighbour};
pub use partition::spill_prefix;
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

/// Runs the scan plan in memory: one pass over the source for all queries.
///
/// # Errors
/// [`EngineError`] if the source cannot be read or an aggregation fails.
pub fn aggregate(plan: &ScanPlan, key: BoundingKey) -> Result<Aggregated, EngineError> {
    aggregate_rows(plan, key, source_rows(plan)?)
}

/// Runs the scan plan within `options.memory`: in memory when the estimate fits (exactly
/// [`aggregate`]), otherwise with units split by a keyed hash into partitions that each
/// fit, one partition at a time, spilled to `options.spill_dir`. Both give the same
/// aggregates, bit for bit, for the same key.
///
/// # Errors
/// [`EngineError::MemoryBudget`] if even one partition cannot fit (nothing was charged);
/// [`EngineError`] if the source cannot be read, a spill file cannot be written, or an
/// aggregation fails.
pub fn aggregate_within(
    plan: &ScanPlan,
    key: BoundingKey,
    options: &ScanOptions,
) -> Result<Aggregated, EngineError> {
    let size = memory::source_size(plan)?;
    let budget = options.memory;
    if memory::scan_need(plan, &size, size.rows) <= budget.bytes() {
        return aggregate(plan, key);
    }
    let max_rows = memory::rows_within(plan, &size, budget);
    if max_rows < partition::MIN_PARTITION_ROWS {
        return Err(EngineError::MemoryBudget {
            what: "bounding the source's rows".into(),
            needed: memory::scan_need(plan, &size, partition::MIN_PARTITION_ROWS),
            budget: budget.bytes(),
            advice: memory::RAISE.into(),
        });
    }
    partition::aggregate(plan, key, &size, max_rows, options)
}

/// What a scan may use besides the plan: its memory budget, where it may spill, and who
/// hears of its progress.
#[derive(Clone)]
pub struct ScanOptions {
    /// The memory budget.
    pub memory: MemoryBudget,
    /// The folder in which a partitioned scan creates its spill folder (removed when the
    /// scan ends, whatever its outcome); `None` for the system's temporary folder.
    pub spill_dir: Option<PathBuf>,
    /// Told how far a partitioned scan has come (row counts only, never data values).
    pub progress: Option<OnScanProgress>,
}

impl std::fmt::Debug for ScanOptions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ScanOptions")
            .field("memory", &self.memory)
            .field("spill_dir", &self.spill_dir)
            .field("progress", &self.progress.is_some())
            .finish()
    }
}

impl Default for ScanOptions {
    /// [`MemoryBudget::DEFAULT`], the system's temporary folder, no progress.
    fn default() -> Self {
        Self {
            memory: MemoryBudget::DEFAULT,
            spill_dir: None,
            progress: None,
        }
    }
}

/// A callback told of a scan's progress; called from the engine's worker threads.
pub type OnScanProgress = Arc<dyn Fn(&ScanProgress) + Send + Sync>;

/// How far a partitioned scan has come. Only row and partition counts, which the operator
/// sees anyway; nothing here reaches a release.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum ScanProgress {
    /// Reading the source and writing its rows, split by unit, to `partitions` spill
    /// files: `rows` read so far (inside the retention window) of the source's `total`.
    Partitioning {
        /// Rows read so far.
        rows: u64,
        /// Rows in the source.
        total: u64,
        /// Partitions written.
        partitions: usize,
    },
    /// Bounding and aggregating one partition at a time: partition `pass` of `passes`
    /// starts, after `rows` of the `total` rows to aggregate.
    Aggregating {
        /// The partition starting (from 1).
        pass: usize,
        /// Partitions in all (grows if one had to be split again).
        passes: usize,
        /// Rows aggregated before it.
        rows: u64,
        /// Rows to aggregate in all.
        total: u64,
    },
}

/// [`aggregate`] on the rows a plan reads (after retention and consent).
pub(crate) fn aggregate_rows(
    plan: &ScanPlan,
    key: BoundingKey,
    projected: LazyFrame,
) -> Result<Aggregated, EngineError> {
    let unit = plan.source.privacy_unit.as_str();
    let base = with_unit(projected.clone(), unit);
    let value_columns = plan.value_columns();
    // Rows in the source and inside the retention window, for the operator.
    let count = || [len().cast(DataType::UInt64).alias("rows")];
    let (in_window, _) = windowed(plan)?;
    let mut checks = vec![
        unit_diagnostics(projected, unit, &value_columns),
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
    let mut checked = collect(checks, engine)?.into_iter();
    let mut next = || {
        checked
            .next()
            .ok_or_else(|| EngineError::Internal("a result frame is missing".into()))
    };
    let diagnostics = next()?;
    let in_source = next()?;
    let in_window = next()?;
    if let Some(consent) = &plan.consent {
        consent.check_actions(read_count(&next()?, "unknown")?)?;
    }
    let diagnostics = UnitDiagnostics::read(&diagnostics, &value_columns)?;
    let counts = ScanCounts::from_passes(
        read_count(&in_source, "rows")?,
        read_count(&in_window, "rows")?,
        read_count(&in_window, "no_unit")?,
        diagnostics.rows,
        diagnostics.units,
        diagnostics.missing_values,
    );
    let queries = query_aggregates(plan, key, &base, engine)?
        .into_iter()
        .zip(&plan.queries)
        .map(|(aggregates, query)| aggregates.checked(query))
        .collect::<Result<Vec<_>, _>>()?;
    Ok(Aggregated { queries, counts })
}

/// Runs `frames` together on `engine`.
pub(crate) fn collect(
    frames: Vec<LazyFrame>,
    engine: Engine,
) -> Result<Vec<DataFrame>, EngineError> {
    let plans: Vec<DslPlan> = frames.into_iter().map(|frame| frame.logical_plan).collect();
    LazyFrame::collect_all_with_engine(plans, engine, OptFlags::default())
        .map_err(|e| EngineError::polars("aggregating", &e))
}

/// The one count in column `name` of a one-row frame.
pub(crate) fn read_count(frame: &DataFrame, name: &str) -> Result<u64, EngineError> {
    frame
        .column(name)
        .and_then(|column| column.u64().map(|values| values.get(0).unwrap_or(0)))
        .map_err(|e| EngineError::polars("counting rows", &e))
}

/// Diagnostics for the operator (not released) over the rows a plan reads (units with
/// consent in force): rows with a unit, distinct units, and missing values per aggregated
/// column among them.
pub(crate) fn unit_diagnostics(
    projected: LazyFrame,
    unit: &str,
    value_columns: &[String],
) -> LazyFrame {
    let with_unit = col(unit).is_not_null();
    let mut diagnostics = vec![
        with_unit.clone().sum().cast(DataType::UInt64).alias("rows"),
        col(unit)
            .drop_nulls()
            .n_unique()
            .cast(DataType::UInt64)
            .alias("units"),
    ];
    for column in value_columns {
        diagnostics.push(
            with_unit
                .clone()
                .and(value_present(column).not())
                .sum()
                .cast(DataType::UInt64)
                .alias(format!("missing:{column}")),
        );
    }
    projected.select(diagnostics)
}

/// What [`unit_diagnostics`] counted.
pub(crate) struct UnitDiagnostics {
    pub(crate) rows: u64,
    pub(crate) units: u64,
    pub(crate) missing_values: BTreeMap<String, u64>,
}

impl UnitDiagnostics {
    pub(crate) fn read(frame: &DataFrame, value_columns: &[String]) -> Result<Self, EngineError> {
        let mut missing_values = BTreeMap::new();
        for column in value_columns {
            missing_values.insert(
                column.clone(),
                read_count(frame, &format!("missing:{column}"))?,
            );
        }
        Ok(Self {
            rows: read_count(frame, "rows")?,
            units: read_count(frame, "units")?,
            missing_values,
        })
    }
}

/// Every query's per-group sums and histogram leaves over `base` (rows with a unit), before
/// the overflow check ([`QueryAggregates::checked`]): sums of partitions add up to the
/// whole's.
pub(crate) fn query_aggregates(
    plan: &ScanPlan,
    key: BoundingKey,
    base: &LazyFrame,
    engine: Engine,
) -> Result<Vec<QueryAggregates>, EngineError> {
    let unit = plan.source.privacy_unit.as_str();
    let mut frames = Vec::new();
    let mut layout = Vec::new();
    for query in &plan.queries {
        let pairs = bounded_pairs(base, unit, query, key)?;
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
    let mut results = collect(frames, engine)?.into_iter();
    let mut queries = Vec::new();
    for histogram_columns in layout {
        let groups = results
            .next()
            .ok_or_else(|| EngineError::Internal("missing aggregate frame".into()))?;
        let mut histograms = BTreeMap::new();
        for column in histogram_columns {
            let frame = results
                .next()
                .ok_or_else(|| EngineError::Internal("missing histogram frame".into()))?;
            histograms.insert(column, frame);
        }
        queries.push(QueryAggregates { groups, histograms });
    }
    Ok(queries)
}

impl QueryAggregates {
    /// Refuses a query whose per-group sums left the range of exact 64-bit integers, and
    /// drops the floating-point twins that showed it.
    pub(crate) fn checked(self, query: &crate::plan::QueryScan) -> Result<Self, EngineError> {
        Ok(Self {
            groups: checked_sums(query, self.groups)?,
            histograms: self.histograms,
        })
    }
}

#[cfg(test)]
mod equivalence;
