//! Executes a [`ScanPlan`] with Polars: read, drop rows without a unit, bound each
//! unit's contribution, aggregate per group. Nothing here is private yet; the result
//! never leaves the engine except through the release step (or, flagged as not private,
//! to the utility report).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use polars::prelude::*;

use crate::EngineError;

mod hash;
mod kept;
use crate::job::{Source, SourceFormat};
use crate::plan::{
    ConsentFilter, HISTOGRAM_BRANCHING, HISTOGRAM_DEPTH, Measure, QueryScan, ScanPlan,
};
pub(crate) use kept::Kept;

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

/// The per-group aggregates of one query, before noise.
#[derive(Debug, Clone)]
pub struct QueryAggregates {
    /// Group-by columns, then one `Int64` column per measure key.
    pub(crate) groups: DataFrame,
    /// Per histogram column: group-by columns, `leaf`, `rows`.
    pub(crate) histograms: BTreeMap<String, DataFrame>,
}

impl QueryAggregates {
    /// How many groups have at least one unit after bounding.
    #[must_use]
    pub fn group_count(&self) -> usize {
        self.groups.height()
    }

    /// Each group's key, one text value per group-by column (`None` for null).
    ///
    /// # Errors
    /// [`EngineError`] if a group column is missing (a bug).
    pub fn group_keys(&self, group_by: &[String]) -> Result<Vec<Vec<Option<String>>>, EngineError> {
        let keys = crate::release::row_keys(&self.groups, group_by)?;
        Ok(keys
            .into_iter()
            .map(|key| {
                key.into_iter()
                    .map(|value| (value != crate::release::NULL_KEY).then_some(value))
                    .collect()
            })
            .collect())
    }

    /// The true (bounded, not noisy) values of a measure per group, in the order of
    /// [`QueryAggregates::group_keys`]; `None` if the query has no such measure.
    #[must_use]
    pub fn measure(&self, key: &str) -> Option<Vec<i64>> {
        self.groups.column(key).ok()?;
        crate::release::int_column(&self.groups, key).ok()
    }

    /// The true leaf counts of a histogram column: `(group index, leaf, rows)`.
    #[must_use]
    pub fn histogram(&self, column: &str, group_by: &[String]) -> Option<Vec<(usize, i64, i64)>> {
        let frame = self.histograms.get(column)?;
        let index: BTreeMap<Vec<String>, usize> = crate::release::row_keys(&self.groups, group_by)
            .ok()?
            .into_iter()
            .enumerate()
            .map(|(row, key)| (key, row))
            .collect();
        let keys = crate::release::row_keys(frame, group_by).ok()?;
        let leaves = crate::release::int_column(frame, "leaf").ok()?;
        let rows = crate::release::int_column(frame, "rows").ok()?;
        Some(
            keys.into_iter()
                .zip(leaves)
                .zip(rows)
                .filter_map(|((key, leaf), rows)| index.get(&key).map(|&group| (group, leaf, rows)))
                .collect(),
        )
    }
}

/// What a scan produced: the aggregates and what was dropped on the way.
#[derive(Debug, Clone)]
pub struct Aggregated {
    /// Per query, in the plan's order.
    pub queries: Vec<QueryAggregates>,
    /// What was read and dropped.
    pub counts: ScanCounts,
}

/// What a scan read and dropped: true counts from the data, for the operator (not
/// private, never released).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ScanCounts {
    /// Rows in the source.
    pub rows_read: u64,
    /// Rows outside the retention window (or without a time), never used.
    pub rows_outside_retention: u64,
    /// Rows of units without consent in force, never used.
    pub rows_without_consent: u64,
    /// Rows dropped because their privacy unit was null.
    pub rows_without_unit: u64,
    /// Per aggregated column, rows whose value was null or NaN (dropped from that column's
    /// aggregates).
    pub missing_values: BTreeMap<String, u64>,
}

impl ScanCounts {
    /// The counts from what each stage of a scan passed: rows in the source, rows inside the
    /// retention window, rows of units with consent in force (all rows without a consent
    /// filter), rows among those without a unit, and missing values per aggregated column.
    #[must_use]
    pub fn from_passes(
        rows_read: u64,
        rows_in_window: u64,
        rows_with_consent: u64,
        rows_without_unit: u64,
        missing_values: BTreeMap<String, u64>,
    ) -> Self {
        Self {
            rows_read,
            rows_outside_retention: rows_read.saturating_sub(rows_in_window),
            rows_without_consent: rows_in_window.saturating_sub(rows_with_consent),
            rows_without_unit,
            missing_values,
        }
    }
}

/// Per-group aggregates computed by another engine, in Veil types.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct ExternalAggregates {
    /// Group-by columns.
    pub group_by: Vec<String>,
    /// One key per group, one value per group-by column (`None` for null).
    pub keys: Vec<Vec<Option<String>>>,
    /// Per measure key (see `Measure::key`), one value per group.
    pub measures: BTreeMap<String, Vec<i64>>,
    /// Per histogram column: `(group index, leaf, rows)`.
    pub histograms: BTreeMap<String, Vec<(usize, i64, i64)>>,
}

impl Aggregated {
    /// Aggregates computed elsewhere (another engine executing the same plan), one entry
    /// per query in the plan's order. Group keys become text columns.
    ///
    /// # Errors
    /// [`EngineError::Internal`] if a measure or key has the wrong number of values.
    pub fn from_external(
        queries: Vec<ExternalAggregates>,
        counts: ScanCounts,
    ) -> Result<Self, EngineError> {
        let mut converted = Vec::new();
        for query in queries {
            let height = query.keys.len();
            let mut columns = Vec::new();
            for (index, name) in query.group_by.iter().enumerate() {
                let values: Vec<Option<String>> = query
                    .keys
                    .iter()
                    .map(|key| key.get(index).cloned().flatten())
                    .collect();
                columns.push(Column::new(name.as_str().into(), values));
            }
            for (key, values) in &query.measures {
                if values.len() != height {
                    return Err(EngineError::Internal(format!(
                        "measure {key} has {} values for {height} groups",
                        values.len()
                    )));
                }
                columns.push(Column::new(key.as_str().into(), values.clone()));
            }
            let groups = DataFrame::new(height, columns)
                .map_err(|e| EngineError::polars("reading external aggregates", &e))?;
            let mut histograms = BTreeMap::new();
            for (column, rows) in query.histograms {
                let mut frame_columns = Vec::new();
                for (index, name) in query.group_by.iter().enumerate() {
                    let values: Vec<Option<String>> = rows
                        .iter()
                        .map(|(group, _, _)| {
                            query
                                .keys
                                .get(*group)
                                .and_then(|key| key.get(index).cloned().flatten())
                        })
                        .collect();
                    frame_columns.push(Column::new(name.as_str().into(), values));
                }
                frame_columns.push(Column::new(
                    "leaf".into(),
                    rows.iter().map(|row| row.1).collect::<Vec<_>>(),
                ));
                frame_columns.push(Column::new(
                    "rows".into(),
                    rows.iter().map(|row| row.2).collect::<Vec<_>>(),
                ));
                let frame = DataFrame::new(rows.len(), frame_columns)
                    .map_err(|e| EngineError::polars("reading external aggregates", &e))?;
                histograms.insert(column, frame);
            }
            converted.push(QueryAggregates { groups, histograms });
        }
        Ok(Self {
            queries: converted,
            counts,
        })
    }
}

/// The files a source path names: a file, a directory (every Parquet or CSV file below
/// it), or a glob.
///
/// # Errors
/// [`EngineError::SourceNotFound`] if it names no file; [`EngineError::Output`] if a
/// directory cannot be listed.
pub fn source_files(source: &Source) -> Result<Vec<PathBuf>, EngineError> {
    let path = &source.path;
    let text = path.to_string_lossy();
    let mut files = Vec::new();
    if text.contains(['*', '?', '[']) {
        let (directory, pattern) = match text.rfind('/') {
            Some(at) => (PathBuf::from(&text[..at]), text[at + 1..].to_string()),
            None => (PathBuf::from("."), text.to_string()),
        };
        if let Ok(entries) = std::fs::read_dir(&directory) {
            for entry in entries.flatten() {
                let name = entry.file_name().to_string_lossy().to_string();
                if glob_match(&pattern, &name) && entry.path().is_file() {
                    files.push(entry.path());
                }
            }
        }
    } else if path.is_dir() {
        collect_files(path, source.format, &mut files).map_err(|source| EngineError::Output {
            path: path.clone(),
            source,
        })?;
    } else if path.is_file() {
        files.push(path.clone());
    }
    files.sort();
    if files.is_empty() {
        return Err(EngineError::SourceNotFound { path: path.clone() });
    }
    Ok(files)
}

/// Whether a file written at `path` would be read as part of `source` by a run: it is the
/// source file itself, lies anywhere under a source directory, or is matched by a source glob.
/// Commands check their outputs with it, so that no release ever lands among its own inputs.
#[must_use]
pub fn source_would_read(source: &Source, path: &Path) -> bool {
    let canonical = |path: &Path| std::fs::canonicalize(path).ok();
    // The path itself may not exist yet: canonicalize its folder and keep its name.
    let Some(name) = path.file_name() else {
        return false;
    };
    let folder = match path.parent() {
        Some(parent) if !parent.as_os_str().is_empty() => parent,
        _ => Path::new("."),
    };
    let Some(target) = canonical(folder).map(|folder| folder.join(name)) else {
        return false;
    };
    let text = source.path.to_string_lossy();
    if text.contains(['*', '?', '[']) {
        let (directory, pattern) = match text.rfind('/') {
            Some(at) => (PathBuf::from(&text[..at]), text[at + 1..].to_string()),
            None => (PathBuf::from("."), text.to_string()),
        };
        return canonical(&directory).is_some_and(|directory| {
            target.parent() == Some(directory.as_path())
                && glob_match(&pattern, &name.to_string_lossy())
        });
    }
    match canonical(&source.path) {
        Some(source_path) if source.path.is_dir() => target.starts_with(&source_path),
        Some(source_path) => target == source_path,
        None => false,
    }
}

fn collect_files(
    directory: &Path,
    format: SourceFormat,
    found: &mut Vec<PathBuf>,
) -> std::io::Result<()> {
    for entry in std::fs::read_dir(directory)? {
        let path = entry?.path();
        if path.is_dir() {
            collect_files(&path, format, found)?;
        } else if SourceFormat::from_path(&path) == format
            && !path
                .file_name()
                .is_some_and(|name| name.to_string_lossy().starts_with('.'))
        {
            found.push(path);
        }
    }
    Ok(())
}

/// `*` and `?` matching of one file name.
fn glob_match(pattern: &str, name: &str) -> bool {
    fn matches(pattern: &[char], name: &[char]) -> bool {
        match (pattern.first(), name.first()) {
            (None, None) => true,
            (Some('*'), _) => {
                matches(&pattern[1..], name) || (!name.is_empty() && matches(pattern, &name[1..]))
            }
            (Some('?'), Some(_)) => matches(&pattern[1..], &name[1..]),
            (Some(p), Some(n)) if p == n => matches(&pattern[1..], &name[1..]),
            _ => false,
        }
    }
    let pattern: Vec<char> = pattern.chars().collect();
    let name: Vec<char> = name.chars().collect();
    matches(&pattern, &name)
}

fn format_name(format: SourceFormat) -> &'static str {
    match format {
        SourceFormat::Parquet => "Parquet",
        SourceFormat::Csv => "CSV",
    }
}

/// A lazy scan of the source (nothing is read until it is collected).
pub(crate) fn scan_source(source: &Source) -> Result<LazyFrame, EngineError> {
    let files = source_files(source)?;
    let unreadable = |error: PolarsError| EngineError::SourceUnreadable {
        path: source.path.clone(),
        format: format_name(source.format),
        reason: error.to_string(),
    };
    let paths: Vec<PlRefPath> = files
        .iter()
        .map(|file| PlRefPath::new(file.to_string_lossy().as_ref()))
        .collect();
    match source.format {
        SourceFormat::Parquet => {
            let args = ScanArgsParquet {
                glob: false,
                ..ScanArgsParquet::default()
            };
            LazyFrame::scan_parquet_files(paths.into_iter().collect(), args).map_err(unreadable)
        }
        SourceFormat::Csv => LazyCsvReader::new_paths(paths.into_iter().collect())
            .with_has_header(true)
            .with_infer_schema_length(Some(10_000))
            .with_try_parse_dates(true)
            .finish()
            .map_err(unreadable),
    }
}

/// The source's schema, read from file metadata (Parquet) or the first rows (CSV).
pub(crate) fn source_schema(source: &Source) -> Result<crate::schema::SourceSchema, EngineError> {
    let mut frame = scan_source(source)?;
    let schema = frame
        .collect_schema()
        .map_err(|error| EngineError::SourceUnreadable {
            path: source.path.clone(),
            format: format_name(source.format),
            reason: error.to_string(),
        })?;
    Ok(crate::schema::SourceSchema {
        columns: schema
            .iter()
            .map(|(name, dtype)| (name.to_string(), crate::schema::ColumnKind::of(dtype)))
            .collect(),
    })
}

const ROW_PRIORITY: &str = "__veil_row_priority";
const PAIR_PRIORITY: &str = "__veil_pair_priority";
const PAIR_ROWS: &str = "__veil_pair_rows";
const PAIR_POSITION: &str = "__veil_pair_position";
const ROW_HASHES: &str = "__veil_row_hashes";
const LEAF: &str = "leaf";

/// The rows a plan reads, lazily: only its columns, only inside the retention window, only
/// of units with consent in force.
pub(crate) fn source_rows(plan: &ScanPlan) -> Result<LazyFrame, EngineError> {
    let (rows, _) = filtered_rows(plan)?;
    Ok(rows)
}

/// The source's rows inside the retention window (all of them without one), with the
/// schema of the source.
fn windowed(plan: &ScanPlan) -> Result<(LazyFrame, Schema), EngineError> {
    let mut rows = scan_source(&plan.source)?;
    let schema = rows
        .collect_schema()
        .map_err(|e| EngineError::polars("reading the source's schema", &e))?
        .as_ref()
        .clone();
    if let Some(window) = &plan.time_window {
        let dtype = schema.get(&window.column).cloned().ok_or_else(|| {
            EngineError::Internal(format!("time column {} vanished", window.column))
        })?;
        rows = rows.filter(time_between(
            &window.column,
            &dtype,
            window.from_ms,
            window.to_ms,
        )?);
    }
    Ok((rows, schema))
}

/// [`source_rows`] and the source's schema.
fn filtered_rows(plan: &ScanPlan) -> Result<(LazyFrame, Schema), EngineError> {
    let (rows, schema) = windowed(plan)?;
    let mut rows = rows.select(
        plan.columns
            .iter()
            .map(|name| col(name.as_str()))
            .collect::<Vec<_>>(),
    );
    if let Some(consent) = &plan.consent {
        let unit = plan.source.privacy_unit.as_str();
        let unit_type = schema
            .get(unit)
            .cloned()
            .ok_or_else(|| EngineError::Internal(format!("unit column {unit} vanished")))?;
        let granted = consented_units(consent, unit, &unit_type)?;
        rows = rows.join(
            granted,
            [col(unit)],
            [col(unit)],
            JoinArgs::new(JoinType::Semi),
        );
    }
    Ok((rows, schema))
}

const DAY_MS: i64 = 86_400_000;

/// `column` is within `[from_ms, to_ms]` (and not null), compared in the column's own type
/// so that Parquet statistics can skip whole row groups.
fn time_between(
    column: &str,
    dtype: &DataType,
    from_ms: i64,
    to_ms: i64,
) -> Result<Expr, EngineError> {
    time_bounds(column, dtype, Some(from_ms), Some(to_ms))
}

/// `column >= from_ms` and/or `column <= to_ms`; true when neither bound is given (null
/// times compare as null). Timestamps compare as their physical value (UTC epoch in the
/// column's unit), dates as days, so time zones never change the comparison.
fn time_bounds(
    column: &str,
    dtype: &DataType,
    from_ms: Option<i64>,
    to_ms: Option<i64>,
) -> Result<Expr, EngineError> {
    let (physical, scale): (Expr, Box<dyn Fn(i64, bool) -> Expr>) = match dtype {
        DataType::Datetime(unit, _) => {
            let per_ms: i64 = match unit {
                TimeUnit::Milliseconds => 1,
                TimeUnit::Microseconds => 1_000,
                TimeUnit::Nanoseconds => 1_000_000,
            };
            (
                col(column).cast(DataType::Int64),
                Box::new(move |ms: i64, _| lit(ms.saturating_mul(per_ms))),
            )
        }
        DataType::Date => (
            col(column).cast(DataType::Int32),
            // A date counts as its midnight (UTC).
            Box::new(|ms: i64, rounding_up: bool| {
                let days =
                    ms.div_euclid(DAY_MS) + i64::from(rounding_up && ms.rem_euclid(DAY_MS) != 0);
                lit(i32::try_from(days).unwrap_or(if days < 0 { i32::MIN } else { i32::MAX }))
            }),
        ),
        other => {
            return Err(EngineError::ColumnType {
                key: "source.time_column".to_string(),
                column: column.to_string(),
                found: other.to_string(),
                expected: "a timestamp or date column",
            });
        }
    };
    let lower = from_ms.map(|from| physical.clone().gt_eq(scale(from, true)));
    let upper = to_ms.map(|to| physical.clone().lt_eq(scale(to, false)));
    Ok(match (lower, upper) {
        (Some(lower), Some(upper)) => lower.and(upper),
        (Some(bound), None) | (None, Some(bound)) => bound,
        (None, None) => lit(true),
    })
}

const CONSENT_UNIT: &str = "__veil_consent_unit";
const CONSENT_AT: &str = "__veil_consent_at";
const CONSENT_REVOKE: &str = "__veil_consent_revoke";
const CONSENT_ACTION: &str = "__veil_consent_action";
const CONSENT_LATEST: &str = "__veil_consent_latest";

/// The units whose latest consent event for the purpose at or before the as-of time is a
/// grant, as a one-column frame named like the source's unit column. On a tie in time a
/// revoke wins.
pub(crate) fn consented_units(
    consent: &ConsentFilter,
    unit: &str,
    unit_type: &DataType,
) -> Result<LazyFrame, EngineError> {
    let table = &consent.table;
    let mut log = scan_source(&consent.table.source())?;
    let schema = log
        .collect_schema()
        .map_err(|e| EngineError::polars("reading the consent table's schema", &e))?;
    let at_type = schema
        .get(&table.time_column)
        .cloned()
        .ok_or_else(|| EngineError::Internal("consent time column vanished".into()))?;
    let not_after = time_bounds(&table.time_column, &at_type, None, Some(consent.as_of_ms))
        .map_err(|_| EngineError::ColumnType {
            key: "consent.time_column".to_string(),
            column: table.time_column.clone(),
            found: at_type.to_string(),
            expected: "a timestamp or date column",
        })?;
    let action = col(table.action_column.as_str()).cast(DataType::String);
    Ok(log
        .filter(
            col(table.purpose_column.as_str())
                .cast(DataType::String)
                .eq(lit(consent.purpose.as_str())),
        )
        .filter(not_after)
        .select([
            col(table.unit_column.as_str())
                .cast(unit_type.clone())
                .alias(CONSENT_UNIT),
            col(table.time_column.as_str()).alias(CONSENT_AT),
            action
                .clone()
                .eq(lit("revoke"))
                .cast(DataType::Int8)
                .alias(CONSENT_REVOKE),
            action.alias(CONSENT_ACTION),
        ])
        .filter(col(CONSENT_UNIT).is_not_null())
        .group_by([col(CONSENT_UNIT)])
        .agg([col(CONSENT_ACTION)
            .sort_by(
                [col(CONSENT_AT), col(CONSENT_REVOKE)],
                SortMultipleOptions::default(),
            )
            .last()
            .alias(CONSENT_LATEST)])
        .filter(col(CONSENT_LATEST).eq(lit("grant")))
        .select([col(CONSENT_UNIT).alias(unit)]))
}

/// The distinct units with any consent event at or before `as_of_ms` (any purpose), as a
/// one-column frame named like the source's unit column.
pub(crate) fn consent_log_units(
    consent: &crate::job::Consent,
    unit: &str,
    unit_type: &DataType,
    as_of_ms: i64,
) -> Result<LazyFrame, EngineError> {
    let filter = ConsentFilter {
        table: consent.clone(),
        purpose: String::new(),
        as_of_ms,
    };
    let mut log = scan_source(&filter.table.source())?;
    let schema = log
        .collect_schema()
        .map_err(|e| EngineError::polars("reading the consent table's schema", &e))?;
    let at_type = schema
        .get(&consent.time_column)
        .cloned()
        .ok_or_else(|| EngineError::Internal("consent time column vanished".into()))?;
    let not_after = time_bounds(&consent.time_column, &at_type, None, Some(as_of_ms))?;
    Ok(log
        .filter(not_after)
        .select([col(consent.unit_column.as_str())
            .cast(unit_type.clone())
            .alias(unit)])
        .filter(col(unit).is_not_null())
        .unique(None, UniqueKeepStrategy::Any))
}

/// `column >= from_ms` in the column's own type; rows with no time are kept (`true`).
pub(crate) fn time_at_least(
    rows: &LazyFrame,
    column: &str,
    from_ms: i64,
) -> Result<Expr, EngineError> {
    let schema = rows
        .clone()
        .collect_schema()
        .map_err(|e| EngineError::polars("reading the source's schema", &e))?;
    let dtype = schema
        .get(column)
        .cloned()
        .ok_or_else(|| EngineError::ColumnNotFound {
            key: "source.time_column".to_string(),
            column: column.to_string(),
            path: std::path::PathBuf::new(),
            available: schema.iter_names().map(ToString::to_string).collect(),
        })?;
    let between = time_bounds(column, &dtype, Some(from_ms), None)?;
    Ok(between.fill_null(lit(true)))
}

/// Counts consent events whose action is neither `grant` nor `revoke` (an error).
fn unknown_actions(consent: &ConsentFilter) -> Result<LazyFrame, EngineError> {
    let action = col(consent.table.action_column.as_str()).cast(DataType::String);
    let known = action
        .clone()
        .eq(lit("grant"))
        .or(action.clone().eq(lit("revoke")));
    Ok(scan_source(&consent.table.source())?.select([known
        .not()
        .and(action.is_not_null())
        .sum()
        .cast(DataType::UInt64)
        .alias("unknown")]))
}

/// `rows` without the rows whose privacy unit is null.
pub(crate) fn with_unit(rows: LazyFrame, unit: &str) -> LazyFrame {
    rows.filter(col(unit).is_not_null())
}

/// The per-row value of a measure (null where the column has no value).
pub(crate) fn row_value(measure: &Measure) -> Expr {
    match measure {
        Measure::Rows | Measure::Units => lit(1_i64),
        Measure::Sum { column, grid } => steps(column, grid),
        Measure::ValueCount { column } => value_present(column).cast(DataType::Int64),
        Measure::CenteredSum { column, grid } => centered(column, grid),
        Measure::CenteredSquares { column, grid } => {
            let centered = centered(column, grid);
            centered.clone() * centered
        }
        Measure::Histogram { column, bounds } => leaf(column, *bounds),
    }
}

pub(crate) fn value_present(column: &str) -> Expr {
    col(column).is_not_null().and(
        col(column)
            .cast(DataType::Float64)
            .is_nan()
            .not()
            .fill_null(lit(false)),
    )
}

/// The value in steps of the grid, rounded and clamped in integers; null for null or NaN.
fn steps(column: &str, grid: &veil_core::mechanism::FixedPoint) -> Expr {
    let (lower, upper) = grid.bounds_in_steps();
    let inverse = 1.0 / grid.granularity().to_f64();
    #[allow(clippy::cast_precision_loss)]
    let scaled = (col(column).cast(DataType::Float64) * lit(inverse))
        .round(0, RoundMode::HalfAwayFromZero)
        .clip(lit(lower as f64), lit(upper as f64));
    when(value_present(column))
        .then(scaled.cast(DataType::Int64).clip(lit(lower), lit(upper)))
        .otherwise(lit(NULL).cast(DataType::Int64))
}

/// `2·steps − lower − upper`: twice the distance to the middle of the bounds, in steps.
fn centered(column: &str, grid: &veil_core::mechanism::FixedPoint) -> Expr {
    let (lower, upper) = grid.bounds_in_steps();
    lit(2_i64) * steps(column, grid) - lit(lower + upper)
}

/// The leaf bin of the quantile histogram; null for null or NaN.
fn leaf(column: &str, bounds: veil_core::Bounds) -> Expr {
    let leaves = i64::from(HISTOGRAM_BRANCHING.pow(HISTOGRAM_DEPTH));
    #[allow(clippy::cast_precision_loss)]
    let per_unit = leaves as f64 / (bounds.upper() - bounds.lower());
    let bin = ((col(column).cast(DataType::Float64) - lit(bounds.lower())) * lit(per_unit))
        .floor()
        .clip(lit(0.0), lit(leaves_as_f64(leaves) - 1.0));
    when(value_present(column))
        .then(bin.cast(DataType::Int64).clip(lit(0_i64), lit(leaves - 1)))
        .otherwise(lit(NULL).cast(DataType::Int64))
}

#[allow(clippy::cast_precision_loss)]
fn leaves_as_f64(leaves: i64) -> f64 {
    leaves as f64
}

fn group_exprs(group_by: &[String]) -> Vec<Expr> {
    group_by.iter().map(|name| col(name.as_str())).collect()
}

/// The rows one query bounds: its unit, group and value columns, and, with public
/// partitions, only the rows of listed groups (so no contribution is spent on others).
/// Returns them with the columns the row hash covers.
fn bounding_input(
    base: &LazyFrame,
    unit: &str,
    query: &QueryScan,
) -> Result<(LazyFrame, Vec<String>), EngineError> {
    let columns = query.row_hash_columns(unit);
    let mut rows = base.clone().select(
        columns
            .iter()
            .map(|name| col(name.as_str()))
            .collect::<Vec<_>>(),
    );
    if let Some(keys) = &query.public_keys {
        rows = only_listed_groups(rows, &query.group_by, keys)?;
    }
    Ok((rows, columns))
}

/// Public partitions' keys as a frame: one text column per group-by column.
pub(crate) fn keys_frame(
    group_by: &[String],
    keys: &[Vec<String>],
) -> Result<DataFrame, EngineError> {
    let columns: Vec<Column> = group_by
        .iter()
        .enumerate()
        .map(|(index, name)| {
            Column::new(
                name.as_str().into(),
                keys.iter()
                    .map(|key| key[index].clone())
                    .collect::<Vec<_>>(),
            )
        })
        .collect();
    DataFrame::new(keys.len(), columns)
        .map_err(|e| EngineError::polars("reading public partitions", &e))
}

/// `rows` of the listed groups only, group columns as text: with public partitions, rows
/// of other groups are dropped before bounding so that no contribution is spent on them.
pub(crate) fn only_listed_groups(
    rows: LazyFrame,
    group_by: &[String],
    keys: &[Vec<String>],
) -> Result<LazyFrame, EngineError> {
    Ok(rows
        .with_columns(
            group_by
                .iter()
                .map(|name| col(name.as_str()).cast(DataType::String))
                .collect::<Vec<_>>(),
        )
        .join(
            keys_frame(group_by, keys)?.lazy(),
            group_exprs(group_by),
            group_exprs(group_by),
            JoinArgs::new(JoinType::Semi),
        ))
}

/// The unit and group columns: one (unit, group) pair per distinct value.
fn unit_and_group(unit: &str, query: &QueryScan) -> Vec<Expr> {
    let mut partition = vec![col(unit)];
    partition.extend(group_exprs(&query.group_by));
    partition
}

/// `rows` aggregated per (unit, group) by `aggregates` (which may be empty: a query that
/// only counts distinct units needs the pairs and nothing else).
fn pair_aggregation(
    rows: LazyFrame,
    unit: &str,
    query: &QueryScan,
    mut aggregates: Vec<Expr>,
) -> LazyFrame {
    aggregates.push(len().alias(PAIR_ROWS));
    rows.group_by(unit_and_group(unit, query))
        .agg(aggregates)
        .drop(cols([PAIR_ROWS]))
}

/// The column [`pair_table`] adds: whether L0 keeps the pair.
pub(crate) const L0_KEPT: &str = "__veil_l0_kept";

/// L0: flags ([`L0_KEPT`]) each unit's `max_groups_per_unit` pairs with the smallest keyed
/// hashes of (unit, group).
///
/// The pairs are sorted by unit, then hash; a pair's place among its unit's pairs is its
/// position minus the position of the unit's first pair (a minimum over the unit, which
/// Polars computes as one grouped aggregation). A rank over each unit's pairs gives the
/// same pairs, but Polars ranks group by group, about six times slower (BENCHMARKS.md).
fn with_l0_flag(
    pairs: LazyFrame,
    unit: &str,
    query: &QueryScan,
    key: BoundingKey,
) -> Result<LazyFrame, EngineError> {
    let first_of_unit = col(PAIR_POSITION)
        .min()
        .over([col(unit)])
        .map_err(|e| EngineError::polars("planning the scan", &e))?;
    let kept = (col(PAIR_POSITION) - first_of_unit).lt(lit(query.bounds.max_groups_per_unit));
    Ok(pairs
        .with_column(
            hash::keyed_hash(&query.pair_hash_columns(unit), key.0[1]).alias(PAIR_PRIORITY),
        )
        .sort([unit, PAIR_PRIORITY], SortMultipleOptions::default())
        .with_row_index(PAIR_POSITION, None)
        .with_column(kept.alias(L0_KEPT))
        .drop(cols([PAIR_PRIORITY, PAIR_POSITION])))
}

/// A per-row value of one query, reduced per pair over the rows L∞ keeps.
pub(crate) struct KeptColumn {
    /// The value of each row.
    pub(crate) per_row: Expr,
    /// The pair table's columns made of it: each one's name and what it keeps.
    pub(crate) outputs: Vec<(String, Kept)>,
}

/// Every unit–group pair of one query, with `aggregates` over all of its rows, each of
/// `kept_columns` over the rows L∞ keeps (the pair's `max_rows_per_group` rows with the
/// smallest keyed hashes, [`kept`]), and [`L0_KEPT`]. The release keeps the flagged pairs;
/// the utility report also looks at the others.
///
/// The pair aggregation gathers each pair's row hashes and per-row values as lists, which
/// `kept` reduces in one flat pass after it: the same rows as a rank of the row hashes
/// within each pair, without Polars' per-group cost (several times faster).
pub(crate) fn pair_table(
    base: &LazyFrame,
    unit: &str,
    query: &QueryScan,
    key: BoundingKey,
    mut aggregates: Vec<Expr>,
    kept_columns: Vec<KeptColumn>,
) -> Result<LazyFrame, EngineError> {
    let (rows, columns) = bounding_input(base, unit, query)?;
    let max_rows = query.bounds.max_rows_per_group;
    let mut reductions = Vec::new();
    let mut lists = vec![ROW_HASHES.to_string()];
    for (index, column) in kept_columns.into_iter().enumerate() {
        let list = format!("__veil_row_values_{index}");
        aggregates.push(column.per_row.alias(list.as_str()));
        for (name, kept) in column.outputs {
            reductions.push(
                kept::kept_in_pairs(col(list.as_str()), col(ROW_HASHES), max_rows, kept)
                    .alias(name),
            );
        }
        lists.push(list);
    }
    let pairs = if reductions.is_empty() {
        // Counts only: no row needs choosing.
        pair_aggregation(rows, unit, query, aggregates)
    } else {
        aggregates.push(col(ROW_PRIORITY).alias(ROW_HASHES));
        let hashed = rows.with_column(hash::keyed_hash(&columns, key.0[0]).alias(ROW_PRIORITY));
        pair_aggregation(hashed, unit, query, aggregates)
            .with_columns(reductions)
            .drop(cols(lists))
    };
    with_l0_flag(pairs, unit, query, key)
}

/// The unit–group pairs of one query that survive L0, with each measure summed over the
/// rows that L∞ keeps, and each quantile histogram's kept leaves as a list.
pub(crate) fn bounded_pairs(
    base: &LazyFrame,
    unit: &str,
    query: &QueryScan,
    key: BoundingKey,
) -> Result<LazyFrame, EngineError> {
    let mut aggregates = Vec::new();
    let mut kept_columns = Vec::new();
    for measure in &query.measures {
        let kept = match measure {
            Measure::Units => continue,
            Measure::Rows => {
                // The kept rows' count needs no choosing.
                aggregates.push(
                    len()
                        .cast(DataType::Int64)
                        .clip(lit(0_i64), lit(i64::from(query.bounds.max_rows_per_group)))
                        .alias(measure.key()),
                );
                continue;
            }
            Measure::Histogram { .. } => Kept::Values,
            _ => Kept::Sum,
        };
        kept_columns.push(KeptColumn {
            per_row: row_value(measure),
            outputs: vec![(measure.key(), kept)],
        });
    }
    Ok(
        pair_table(base, unit, query, key, aggregates, kept_columns)?
            .filter(col(L0_KEPT))
            .drop(cols([L0_KEPT])),
    )
}

/// Runs the scan plan: one pass over the source for all queries.
///
/// # Errors
/// [`EngineError`] if the source cannot be read or an aggregation fails.
pub fn aggregate(plan: &ScanPlan, key: BoundingKey) -> Result<Aggregated, EngineError> {
    aggregate_rows(plan, key, source_rows(plan)?)
}

/// How a neighbouring dataset differs from the source: one privacy unit more, or one
/// fewer. For the privacy auditor (`veil audit job`), which compares a job's releases on
/// the source and on a neighbour; a run never uses one.
#[derive(Debug, Clone, PartialEq)]
pub enum Neighbour {
    /// One more unit with these rows, added after retention and consent (as a unit whose
    /// rows are all inside the window and whose consent is in force). Each row gives
    /// values as text per column, cast to the column's type; columns it does not name
    /// are null. The unit's id is new: the largest id plus one (integer ids) or the
    /// largest id with a suffix (text ids).
    AddUnit(Vec<BTreeMap<String, String>>),
    /// Without any row of the unit that has the most rows after retention and consent
    /// (the smallest id among ties). Which unit it is never leaves the engine.
    RemoveHeaviestUnit,
}

/// [`aggregate`] on a neighbour of the source: every step of the scan (bounding with
/// `key` included) runs unchanged on the source's rows with one unit added or removed.
///
/// # Errors
/// [`EngineError`] if the source cannot be read or an aggregation fails;
/// [`EngineError::InvalidJob`] if a value of an added row does not fit its column or the
/// privacy unit is neither integer nor text.
pub fn aggregate_neighbour(
    plan: &ScanPlan,
    key: BoundingKey,
    neighbour: &Neighbour,
) -> Result<Aggregated, EngineError> {
    let rows = source_rows(plan)?;
    let unit = plan.source.privacy_unit.as_str();
    let rows = match neighbour {
        Neighbour::AddUnit(added) => {
            let extra = added_unit(rows.clone(), unit, added)?;
            concat([rows, extra], UnionArgs::default())
                .map_err(|e| EngineError::polars("adding a unit", &e))?
        }
        Neighbour::RemoveHeaviestUnit => {
            let heaviest = rows
                .clone()
                .filter(col(unit).is_not_null())
                .group_by([col(unit)])
                .agg([len().alias("__veil_unit_rows")])
                .sort_by_exprs(
                    [col("__veil_unit_rows"), col(unit)],
                    SortMultipleOptions::default().with_order_descending_multi([true, false]),
                )
                .limit(1)
                .select([col(unit)]);
            rows.join(
                heaviest,
                [col(unit)],
                [col(unit)],
                JoinArgs::new(JoinType::Anti),
            )
        }
    };
    aggregate_rows(plan, key, rows)
}

/// The rows of a new unit, shaped like `rows`.
fn added_unit(
    mut rows: LazyFrame,
    unit: &str,
    added: &[BTreeMap<String, String>],
) -> Result<LazyFrame, EngineError> {
    let schema = rows
        .collect_schema()
        .map_err(|e| EngineError::polars("reading the source's schema", &e))?;
    let unit_type = schema
        .get(unit)
        .cloned()
        .ok_or_else(|| EngineError::Internal(format!("unit column {unit} vanished")))?;
    let largest = rows
        .select([col(unit).max()])
        .collect()
        .map_err(|e| EngineError::polars("finding a new unit id", &e))?;
    let largest = largest
        .column(unit)
        .map_err(|e| EngineError::polars("finding a new unit id", &e))?;
    let id = if unit_type.is_integer() {
        let largest = largest
            .cast(&DataType::Int64)
            .and_then(|column| column.i64().map(|values| values.get(0)))
            .map_err(|e| EngineError::polars("finding a new unit id", &e))?;
        let id = largest.map_or(Some(1), |largest| largest.checked_add(1));
        Column::new(
            unit.into(),
            [id.ok_or_else(|| {
                EngineError::invalid(
                    "source.privacy_unit",
                    "the largest unit id leaves no room for a new one",
                )
            })?],
        )
    } else if matches!(unit_type, DataType::String) {
        let largest = largest
            .str()
            .map(|values| values.get(0).map(str::to_string))
            .map_err(|e| EngineError::polars("finding a new unit id", &e))?;
        Column::new(
            unit.into(),
            [largest.map_or_else(|| "unit".to_string(), |largest| format!("{largest}+"))],
        )
    } else {
        return Err(EngineError::invalid(
            "source.privacy_unit",
            format!("a unit can be added only to an integer or text unit column, not {unit_type}"),
        ));
    };
    let height = added.len();
    let mut columns = Vec::new();
    for (name, dtype) in schema.iter() {
        let text: Column = if name.as_str() == unit {
            id.new_from_index(0, height)
        } else {
            Column::new(
                name.clone(),
                added
                    .iter()
                    .map(|row| row.get(name.as_str()).cloned())
                    .collect::<Vec<Option<String>>>(),
            )
        };
        let typed = text.strict_cast(dtype).map_err(|_| {
            EngineError::invalid(
                format!("audit.added_unit.{name}"),
                format!("a value given for the added unit does not fit the column's type {dtype}"),
            )
        })?;
        columns.push(typed);
    }
    let frame =
        DataFrame::new(height, columns).map_err(|e| EngineError::polars("adding a unit", &e))?;
    Ok(frame.lazy())
}

/// [`aggregate`] on the rows a plan reads (after retention and consent).
fn aggregate_rows(
    plan: &ScanPlan,
    key: BoundingKey,
    projected: LazyFrame,
) -> Result<Aggregated, EngineError> {
    let unit = plan.source.privacy_unit.as_str();
    let base = with_unit(projected.clone(), unit);

    // Diagnostics for the operator (not released): rows read, rows without a unit, and
    // missing values per aggregated column.
    let value_columns = plan.value_columns();
    let mut diagnostics = vec![
        len().cast(DataType::UInt64).alias("rows"),
        col(unit)
            .null_count()
            .cast(DataType::UInt64)
            .alias("no_unit"),
    ];
    for column in &value_columns {
        diagnostics.push(
            value_present(column)
                .not()
                .sum()
                .cast(DataType::UInt64)
                .alias(format!("missing:{column}")),
        );
    }
    // Rows in the source and inside the retention window, for the operator.
    let count = || [len().cast(DataType::UInt64).alias("rows")];
    let mut checks = vec![
        projected.select(diagnostics),
        scan_source(&plan.source)?.select(count()),
        windowed(plan)?.0.select(count()),
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
    let rows_read = read(&in_source, "rows")?;
    let rows_in_window = read(&in_window, "rows")?;
    let rows_with_consent = read(&diagnostics, "rows")?;
    let mut missing_values = BTreeMap::new();
    for column in &value_columns {
        missing_values.insert(
            column.clone(),
            read(&diagnostics, &format!("missing:{column}"))?,
        );
    }
    let counts = ScanCounts::from_passes(
        rows_read,
        rows_in_window,
        rows_with_consent,
        read(&diagnostics, "no_unit")?,
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
                other => sums.push(
                    col(other.key())
                        .sum()
                        .cast(DataType::Int64)
                        .alias(other.key()),
                ),
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
            if let Measure::Histogram { column, .. } = measure {
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
                histogram_columns.push(column.clone());
            }
        }
        layout.push(histogram_columns);
    }
    let mut results = collect(frames)?.into_iter();
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
    Ok(Aggregated { queries, counts })
}

/// Sources up to this size on disk are scanned by Polars' in-memory engine, larger ones by
/// its streaming engine.
const STREAMING_FROM_BYTES: u64 = 512 << 20;

/// The Polars engine for a scan: `VEIL_POLARS_ENGINE=streaming`, `in-memory` or `auto`
/// (Polars' choice); by default the streaming engine, which holds only a part of the
/// source in memory at a time, for sources over [`STREAMING_FROM_BYTES`] on disk (or of
/// unknown size), and the in-memory engine, 1.2–1.6× faster on the bounding's group-bys,
/// for smaller ones (see BENCHMARKS.md).
fn scan_engine(source: &Source) -> Engine {
    match std::env::var("VEIL_POLARS_ENGINE").as_deref() {
        Ok("in-memory") => Engine::InMemory,
        Ok("streaming") => Engine::Streaming,
        Ok("auto") => Engine::Auto,
        _ => {
            let bytes = source_files(source).ok().and_then(|files| {
                files
                    .iter()
                    .map(|file| std::fs::metadata(file).ok().map(|meta| meta.len()))
                    .sum::<Option<u64>>()
            });
            match bytes {
                Some(bytes) if bytes <= STREAMING_FROM_BYTES => Engine::InMemory,
                _ => Engine::Streaming,
            }
        }
    }
}

#[cfg(test)]
mod equivalence;

#[cfg(test)]
mod tests {
    use super::glob_match;

    #[test]
    fn globs_match_file_names() {
        assert!(glob_match("events-*.parquet", "events-2026.parquet"));
        assert!(glob_match("*.parquet", "a.parquet"));
        assert!(!glob_match("*.parquet", "a.csv"));
        assert!(glob_match("part-?.csv", "part-1.csv"));
        assert!(!glob_match("part-?.csv", "part-12.csv"));
    }
}
