//! Scans larger than memory: the rows are split by a keyed hash of their unit into
//! partitions, written to spill files in one streaming read of the source, then bounded and
//! aggregated one partition at a time, and the partitions' per-group sums added up.
//!
//! Bounding is per unit and depends only on the unit's own rows and the bounding key, and
//! every row of a unit lands in the same partition, so each partition keeps exactly the rows
//! and pairs the whole would, and the sums (integers) add up to the whole's bit for bit
//! (`tests`). The partition hash is keyed by a word derived from the run's secret bounding
//! key, never a fixed seed, so no one can predict (or crowd) a partition; which partition a
//! unit fell in, and how large each one was, reaches nothing but the operator's progress
//! display.
//!
//! The consent log is split by the same hash, so each partition decides consent for its
//! own units. A partition that turns out larger than its share of the budget (a few units
//! with very many rows) is split again with a key of the next level; a single unit too
//! large for the budget ends the scan with [`EngineError::MemoryBudget`] before anything
//! is charged.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use polars::prelude::file_provider::{FileProviderArgs, FileProviderReturn, FileProviderType};
use polars::prelude::*;

use super::filter::{CONSENT_UNIT, consent_events, latest_grants, unknown_actions, windowed_slice};
use super::hash::{SPARK_SEED, fold_column, hash_long, xxh64};
use super::memory::{self, SourceSize};
use super::source::scan_source;
use super::{
    Aggregated, BoundingKey, QueryAggregates, ScanCounts, ScanOptions, ScanProgress,
    UnitDiagnostics, collect, group_exprs, query_aggregates, read_count, unit_diagnostics,
};
use crate::EngineError;
use crate::plan::ScanPlan;

/// Fewer rows than this per partition: the budget is too small to be worth splitting.
pub(crate) const MIN_PARTITION_ROWS: u64 = 1_000;

/// At most this many partitions are written at once (Polars' open-file limit for a
/// partitioned sink); a partition still too large is split again.
const MAX_PARTITIONS: u64 = 128;

/// Partitions split again at most this many times.
const MAX_LEVEL: u32 = 4;

/// The partition column while spilling (not written).
const PART: &str = "__veil_partition";

/// Rows of a spill file's row group, at most.
const SPILL_ROW_GROUP: u64 = 65_536;

/// One partition of units: its spill files and rows.
struct Part {
    /// The spill files holding its rows.
    files: Vec<PathBuf>,
    /// The consent log's events of its units, if consent is still to be applied.
    consent: Option<Vec<PathBuf>>,
    /// Rows in its files.
    rows: u64,
    /// How many times its units were split (1 for the first split).
    level: u32,
}

/// A spill: per partition its files and rows, and the rows whose unit is null.
#[derive(Default)]
struct Spilled {
    parts: BTreeMap<u32, (Vec<PathBuf>, u64)>,
    null_rows: u64,
}

impl Spilled {
    /// Adds another spill of the same partitions (another slice of the source).
    fn extend(&mut self, other: Self) {
        for (part, (files, rows)) in other.parts {
            let entry = self.parts.entry(part).or_default();
            entry.0.extend(files);
            entry.1 += rows;
        }
        self.null_rows += other.null_rows;
    }
}

/// The keyed partition of `units` (`None` for a null unit): `xxhash64` of the unit keyed by
/// `seed`, scaled onto `0..parts`.
fn partition_of(units: &Column, seed: u64, parts: u32) -> PolarsResult<Vec<Option<u32>>> {
    let mut hashes = vec![seed; units.len()];
    fold_column(&mut hashes, units)?;
    let valid = units.is_not_null();
    Ok(hashes
        .into_iter()
        .zip(valid.iter())
        .map(|(hash, valid)| {
            valid.unwrap_or(false).then(|| {
                let scaled = (u128::from(hash) * u128::from(parts)) >> 64;
                u32::try_from(scaled).unwrap_or(u32::MAX)
            })
        })
        .collect())
}

/// The partition key of a level: a word derived from the run's secret bounding key (so
/// partitions are as unpredictable as the bounding itself), different at every level.
fn partition_seed(key: BoundingKey, level: u32) -> u64 {
    let [rows, pairs] = key.words();
    let mut bytes = Vec::with_capacity(24);
    bytes.extend_from_slice(&rows.to_le_bytes());
    bytes.extend_from_slice(&pairs.to_le_bytes());
    bytes.extend_from_slice(b"unit-partition");
    bytes.extend_from_slice(&level.to_le_bytes());
    let derived = xxh64(&bytes, SPARK_SEED);
    hash_long(i64::from_ne_bytes(derived.to_ne_bytes()), SPARK_SEED)
}

/// Writes `rows` to `parts` partitions of spill files in `dir` (named `{name}-…`) by the
/// keyed hash of `unit`, in one streaming read; calls `on_rows` with the rows read so far.
#[allow(clippy::too_many_arguments)]
fn spill(
    rows: LazyFrame,
    unit: &str,
    seed: u64,
    parts: u32,
    dir: &Path,
    name: &str,
    row_group: u64,
    on_rows: Option<Arc<dyn Fn(u64) + Send + Sync>>,
) -> Result<Spilled, EngineError> {
    let read = Arc::new(AtomicU64::new(0));
    let partition = map_multiple(
        move |columns: &mut [Column]| {
            let [units] = columns else {
                polars_bail!(ComputeError: "the partition takes one unit column");
            };
            let partitions = partition_of(units, seed, parts)?;
            let so_far = read.fetch_add(units.len() as u64, Ordering::Relaxed) + units.len() as u64;
            if let Some(on_rows) = &on_rows {
                on_rows(so_far);
            }
            Ok(Column::new(PlSmallStr::from_static(PART), partitions))
        },
        [col(unit)],
        |_schema: &Schema, _fields: &[Field]| {
            Ok(Field::new(PlSmallStr::from_static(PART), DataType::UInt32))
        },
    );
    let prefix = name.to_string();
    let file_name = move |args: FileProviderArgs| -> PolarsResult<FileProviderReturn> {
        let part = args.partition_keys.column(PART)?.u32()?.get(0);
        let part = part.map_or_else(|| "none".to_string(), |part| format!("{part:05}"));
        Ok(FileProviderReturn::Path(format!(
            "{prefix}-{part}-{:08x}.parquet",
            args.index_in_partition
        )))
    };
    let options = ParquetWriteOptions {
        compression: ParquetCompression::Lz4Raw,
        statistics: StatisticsOptions {
            min_value: false,
            max_value: false,
            distinct_count: false,
            null_count: false,
            binary_statistics_truncate_length: None,
        },
        row_group_size: Some(usize::try_from(row_group).unwrap_or(usize::MAX)),
        ..ParquetWriteOptions::default()
    };
    let spilling = |e: PolarsError| EngineError::polars("writing spill files", &e);
    rows.with_column(partition.alias(PART))
        .sink(
            SinkDestination::Partitioned {
                base_path: PlRefPath::new(dir.to_string_lossy().as_ref()),
                file_path_provider: Some(FileProviderType::Function(PlanCallback::new(file_name))),
                partition_strategy: PartitionStrategy::Keyed {
                    keys: vec![col(PART)],
                    include_keys: false,
                    keys_pre_grouped: false,
                },
                max_rows_per_file: 0,
                approximate_bytes_per_file: 0,
            },
            FileWriteFormat::Parquet(Arc::new(options)),
            UnifiedSinkArgs {
                mkdir: true,
                maintain_order: false,
                ..UnifiedSinkArgs::default()
            },
        )
        .map_err(spilling)?
        .collect_with_engine(Engine::Streaming)
        .map_err(spilling)?;

    // The files each partition got, and their rows (from the files' metadata).
    let mut files: BTreeMap<Option<u32>, Vec<PathBuf>> = BTreeMap::new();
    let listing = std::fs::read_dir(dir).map_err(|source| EngineError::Output {
        path: dir.to_path_buf(),
        source,
    })?;
    for entry in listing.flatten() {
        let file = entry.file_name().to_string_lossy().to_string();
        let Some(rest) = file.strip_prefix(&format!("{name}-")) else {
            continue;
        };
        let part = rest.split('-').next().unwrap_or_default();
        let part =
            if part == "none" {
                None
            } else {
                Some(part.parse::<u32>().map_err(|_| {
                    EngineError::Internal(format!("an unexpected spill file {file}"))
                })?)
            };
        files.entry(part).or_default().push(entry.path());
    }
    let mut spilled = Spilled::default();
    for (part, mut part_files) in files {
        part_files.sort();
        let rows = count_rows(&part_files)?;
        match part {
            None => {
                spilled.null_rows = rows;
                remove(&part_files);
            }
            Some(part) => {
                spilled.parts.insert(part, (part_files, rows));
            }
        }
    }
    Ok(spilled)
}

/// The rows in spill files, from their metadata.
fn count_rows(files: &[PathBuf]) -> Result<u64, EngineError> {
    let frame = scan_spill(files)?
        .select([len().cast(DataType::UInt64).alias("rows")])
        .collect()
        .map_err(|e| EngineError::polars("reading spill files", &e))?;
    read_count(&frame, "rows")
}

/// A lazy scan of spill files.
fn scan_spill(files: &[PathBuf]) -> Result<LazyFrame, EngineError> {
    let paths: Vec<PlRefPath> = files
        .iter()
        .map(|file| PlRefPath::new(file.to_string_lossy().as_ref()))
        .collect();
    LazyFrame::scan_parquet_files(
        paths.into_iter().collect(),
        ScanArgsParquet {
            glob: false,
            ..ScanArgsParquet::default()
        },
    )
    .map_err(|e| EngineError::polars("reading spill files", &e))
}

/// Removes spill files that are no longer needed (the folder goes at the end anyway).
fn remove(files: &[PathBuf]) {
    for file in files {
        let _ = std::fs::remove_file(file);
    }
}

/// The spill folder: created in the chosen folder, removed with everything in it when the
/// scan ends, whatever its outcome. Its name says which process made it
/// (`.veil-spill-PID-…`), so that a handler for Ctrl-C can find it.
fn spill_folder(options: &ScanOptions) -> Result<tempfile::TempDir, EngineError> {
    let parent = options.spill_dir.clone().unwrap_or_else(std::env::temp_dir);
    tempfile::Builder::new()
        .prefix(&spill_prefix(std::process::id()))
        .tempdir_in(&parent)
        .map_err(|source| EngineError::Output {
            path: parent,
            source,
        })
}

/// The start of the name of every spill folder process `pid` creates.
#[must_use]
pub fn spill_prefix(pid: u32) -> String {
    format!(".veil-spill-{pid}-")
}

/// Sums per-group aggregates of partitions: `frames` have the same columns, groups keyed
/// by `group_by`, every other column a sum.
fn add_up(frames: Vec<DataFrame>, group_by: &[String]) -> Result<DataFrame, EngineError> {
    let Some(first) = frames.first() else {
        return Err(EngineError::Internal("no aggregates to add up".into()));
    };
    let sums: Vec<Expr> = first
        .get_column_names()
        .into_iter()
        .filter(|name| !group_by.iter().any(|group| group.as_str() == name.as_str()))
        .map(|name| col(name.as_str()).sum())
        .collect();
    let frames: Vec<LazyFrame> = frames.into_iter().map(IntoLazy::lazy).collect();
    let all = concat(frames, UnionArgs::default())
        .map_err(|e| EngineError::polars("adding up partitions", &e))?;
    let added = if group_by.is_empty() {
        all.select(sums)
    } else {
        all.group_by(group_exprs(group_by)).agg(sums)
    };
    added
        .collect()
        .map_err(|e| EngineError::polars("adding up partitions", &e))
}

/// The running totals of every query over the partitions aggregated so far.
struct Totals {
    queries: Vec<Option<QueryAggregates>>,
}

impl Totals {
    fn add(&mut self, plan: &ScanPlan, part: Vec<QueryAggregates>) -> Result<(), EngineError> {
        for ((total, part), query) in self.queries.iter_mut().zip(part).zip(&plan.queries) {
            *total = Some(match total.take() {
                None => part,
                Some(total) => {
                    let groups = add_up(vec![total.groups, part.groups], &query.group_by)?;
                    let mut histograms = BTreeMap::new();
                    let mut by = query.group_by.clone();
                    by.push(super::LEAF.to_string());
                    let mut theirs = part.histograms;
                    for (key, frame) in total.histograms {
                        let frames = match theirs.remove(&key) {
                            Some(other) => vec![frame, other],
                            None => vec![frame],
                        };
                        histograms.insert(key, add_up(frames, &by)?);
                    }
                    QueryAggregates { groups, histograms }
                }
            });
        }
        Ok(())
    }
}

/// The columns a partition's rows need: the plan's, without the time column when only
/// the retention window (applied before spilling) reads it.
fn spilled_columns(plan: &ScanPlan) -> Vec<String> {
    let window = plan
        .time_window
        .as_ref()
        .map(|window| window.column.as_str());
    plan.columns
        .iter()
        .filter(|column| {
            Some(column.as_str()) != window
                || plan.source.privacy_unit == **column
                || plan.queries.iter().any(|query| {
                    query
                        .row_hash_columns(&plan.source.privacy_unit)
                        .contains(column)
                        || query.drop_missing.contains(column)
                })
        })
        .cloned()
        .collect()
}

/// Runs the scan plan partition by partition. `max_rows` is how many rows one partition
/// may hold; the first split makes partitions of about three quarters of that.
pub(crate) fn aggregate(
    plan: &ScanPlan,
    key: BoundingKey,
    size: &SourceSize,
    max_rows: u64,
    options: &ScanOptions,
) -> Result<Aggregated, EngineError> {
    let wanted = size
        .rows
        .div_ceil((max_rows / 4 * 3).max(1))
        .clamp(2, MAX_PARTITIONS);
    aggregate_in_parts(
        plan,
        key,
        size,
        max_rows,
        u32::try_from(wanted).unwrap_or(2),
        options,
    )
}

/// [`aggregate`] with `parts` first-level partitions.
pub(crate) fn aggregate_in_parts(
    plan: &ScanPlan,
    key: BoundingKey,
    size: &SourceSize,
    max_rows: u64,
    parts: u32,
    options: &ScanOptions,
) -> Result<Aggregated, EngineError> {
    let unit = plan.source.privacy_unit.as_str();
    let budget = options.memory;
    let progress = options.progress.clone();
    let tell = |event: ScanProgress| {
        if let Some(progress) = &progress {
            progress(&event);
        }
    };
    // A bad consent log fails before anything is read or written.
    if let Some(consent) = &plan.consent {
        let unknown = collect(vec![unknown_actions(consent)?], Engine::Streaming)?;
        let unknown = unknown
            .first()
            .ok_or_else(|| EngineError::Internal("a result frame is missing".into()))?;
        consent.check_actions(read_count(unknown, "unknown")?)?;
    }
    let in_source = collect(
        vec![scan_source(&plan.source)?.select([len().cast(DataType::UInt64).alias("rows")])],
        Engine::Streaming,
    )?;
    let rows_read = read_count(
        in_source
            .first()
            .ok_or_else(|| EngineError::Internal("a result frame is missing".into()))?,
        "rows",
    )?;
    let folder = spill_folder(options)?;
    let dir = folder.path();

    // The first pass: every row inside the retention window, by partition. The source is
    // read in slices: the reader maps the file, and the pages it touched count as this
    // process's memory until the slice's read ends.
    let columns = spilled_columns(plan);
    // Each partition buffers a row group before it writes: keep all of them in the budget.
    let buffered = budget.bytes().saturating_sub(memory::FIXED_BYTES) / 2;
    #[allow(
        clippy::cast_precision_loss,
        clippy::cast_possible_truncation,
        clippy::cast_sign_loss
    )]
    let row_group = ((buffered as f64 / (f64::from(parts) * size.row_bytes.max(1.0) * 2.0)) as u64)
        .clamp(1_024, SPILL_ROW_GROUP);
    let seed = partition_seed(key, 1);
    let slice_rows = slice_rows(plan, size, budget);
    let mut spilled = Spilled::default();
    let (_, schema) = windowed_slice(plan, None)?;
    let mut offset = 0;
    let mut slice = 0;
    loop {
        let (in_window, _) = windowed_slice(plan, Some((offset, slice_rows)))?;
        let rows = in_window.select(
            columns
                .iter()
                .map(|name| col(name.as_str()))
                .collect::<Vec<_>>(),
        );
        let on_rows: Option<Arc<dyn Fn(u64) + Send + Sync>> =
            options.progress.clone().map(|progress| {
                let total = size.rows;
                let partitions = parts as usize;
                Arc::new(move |rows: u64| {
                    progress(&ScanProgress::Partitioning {
                        rows: offset + rows,
                        total,
                        partitions,
                    });
                }) as Arc<dyn Fn(u64) + Send + Sync>
            });
        let name = format!("rows{slice}");
        spilled.extend(spill(
            rows, unit, seed, parts, dir, &name, row_group, on_rows,
        )?);
        offset += slice_rows;
        slice += 1;
        if offset >= size.rows {
            break;
        }
    }
    let mut consent = match &plan.consent {
        None => BTreeMap::new(),
        Some(consent) => {
            let unit_type = schema
                .get(unit)
                .cloned()
                .ok_or_else(|| EngineError::Internal(format!("unit column {unit} vanished")))?;
            spill(
                consent_events(consent, &unit_type)?,
                CONSENT_UNIT,
                seed,
                parts,
                dir,
                "consent",
                row_group,
                None,
            )?
            .parts
        }
    };
    let rows_in_window =
        spilled.parts.values().map(|(_, rows)| rows).sum::<u64>() + spilled.null_rows;
    let mut queue: Vec<Part> = spilled
        .parts
        .into_iter()
        .map(|(part, (files, rows))| Part {
            files,
            consent: plan.consent.as_ref().map(|_| {
                consent
                    .remove(&part)
                    .map(|(files, _)| files)
                    .unwrap_or_default()
            }),
            rows,
            level: 1,
        })
        .collect();
    for (files, _) in consent.values() {
        remove(files);
    }
    queue.reverse();

    // The second pass: one partition at a time.
    let value_columns = plan.value_columns();
    let mut totals = Totals {
        queries: vec![None; plan.queries.len()],
    };
    let mut rows_with_consent = 0;
    let mut units = 0;
    let mut missing_values: BTreeMap<String, u64> = BTreeMap::new();
    let total_rows = rows_in_window - spilled.null_rows;
    let mut done_rows = 0;
    let mut passes = queue.len();
    let mut pass = 0;
    let mut splits = 0;
    while let Some(part) = queue.pop() {
        let mut rows = scan_spill(&part.files)?;
        if let Some(consent) = &part.consent {
            let granted = if consent.is_empty() {
                DataFrame::empty_with_schema(&Schema::from_iter([Field::new(
                    unit.into(),
                    schema.get(unit).cloned().unwrap_or(DataType::Null),
                )]))
                .lazy()
            } else {
                latest_grants(scan_spill(consent)?, unit)
            };
            rows = rows.join(
                granted,
                [col(unit)],
                [col(unit)],
                JoinArgs::new(JoinType::Semi),
            );
        }
        if part.rows > max_rows {
            // Too large for its share: split its units again, with the next level's key.
            if part.level >= MAX_LEVEL {
                return Err(too_large(plan, size, part.rows, budget));
            }
            let level = part.level + 1;
            let wanted = part
                .rows
                .div_ceil((max_rows / 4 * 3).max(1))
                .clamp(2, MAX_PARTITIONS);
            let wanted = u32::try_from(wanted).unwrap_or(2);
            splits += 1;
            let children = spill(
                rows,
                unit,
                partition_seed(key, level),
                wanted,
                dir,
                &format!("split{splits}"),
                row_group,
                None,
            )?;
            remove(&part.files);
            if let Some(consent) = &part.consent {
                remove(consent);
            }
            if children.parts.values().any(|(_, rows)| *rows == part.rows) {
                // Every row is one unit's (or hashed alike at every level): no split helps.
                return Err(too_large(plan, size, part.rows, budget));
            }
            passes += children.parts.len() - 1;
            for (files, rows) in children.parts.into_values().rev() {
                queue.push(Part {
                    files,
                    consent: None,
                    rows,
                    level,
                });
            }
            continue;
        }
        pass += 1;
        tell(ScanProgress::Aggregating {
            pass,
            passes,
            rows: done_rows,
            total: total_rows,
        });
        let base = rows;
        let diagnostics = collect(
            vec![unit_diagnostics(base.clone(), unit, &value_columns)],
            Engine::InMemory,
        )?;
        let diagnostics = UnitDiagnostics::read(
            diagnostics
                .first()
                .ok_or_else(|| EngineError::Internal("a result frame is missing".into()))?,
            &value_columns,
        )?;
        rows_with_consent += diagnostics.rows;
        units += diagnostics.units;
        for (column, missing) in diagnostics.missing_values {
            *missing_values.entry(column).or_default() += missing;
        }
        if diagnostics.rows > 0 {
            totals.add(plan, query_aggregates(plan, key, &base, Engine::InMemory)?)?;
        }
        remove(&part.files);
        if let Some(consent) = &part.consent {
            remove(consent);
        }
        done_rows += part.rows;
    }
    let mut queries = Vec::new();
    for (total, query) in totals.queries.into_iter().zip(&plan.queries) {
        let total = match total {
            Some(total) => total,
            // No rows at all: the aggregates of no rows, as the in-memory scan gives them.
            None => empty_aggregates(plan, key, &schema, &columns)?
                .into_iter()
                .nth(queries.len())
                .ok_or_else(|| EngineError::Internal("a query's aggregates are missing".into()))?,
        };
        queries.push(total.checked(query)?);
    }
    drop(folder);
    let counts = ScanCounts::from_passes(
        rows_read,
        rows_in_window,
        spilled.null_rows,
        rows_with_consent,
        units,
        missing_values,
    );
    Ok(Aggregated { queries, counts })
}

/// The queries' aggregates over no rows.
fn empty_aggregates(
    plan: &ScanPlan,
    key: BoundingKey,
    schema: &Schema,
    columns: &[String],
) -> Result<Vec<QueryAggregates>, EngineError> {
    let empty = DataFrame::empty_with_schema(&Schema::from_iter(columns.iter().map(|name| {
        Field::new(
            name.as_str().into(),
            schema.get(name).cloned().unwrap_or(DataType::Null),
        )
    })));
    query_aggregates(plan, key, &empty.lazy(), Engine::InMemory)
}

/// Rows of the source read at once in the first pass: the pages of the source file that a
/// read touches stay mapped until it ends, so a slice's share of the file is kept to a
/// quarter of the budget.
fn slice_rows(plan: &ScanPlan, size: &SourceSize, budget: memory::MemoryBudget) -> u64 {
    let bytes: u64 = super::source_files(&plan.source)
        .unwrap_or_default()
        .iter()
        .filter_map(|file| std::fs::metadata(file).ok().map(|meta| meta.len()))
        .sum();
    if size.rows == 0 || bytes == 0 {
        return size.rows.max(1);
    }
    #[allow(
        clippy::cast_precision_loss,
        clippy::cast_possible_truncation,
        clippy::cast_sign_loss
    )]
    let rows = (budget.bytes() as f64 / 4.0 / (bytes as f64 / size.rows as f64)) as u64;
    rows.max(1_000_000)
}

/// The error for rows that no split brings within the budget.
fn too_large(
    plan: &ScanPlan,
    size: &SourceSize,
    rows: u64,
    budget: memory::MemoryBudget,
) -> EngineError {
    EngineError::MemoryBudget {
        what: "the rows of the fewest privacy units that can be bounded together (a few units have very many rows)"
            .into(),
        needed: memory::scan_need(plan, size, rows),
        budget: budget.bytes(),
        advice: memory::RAISE.into(),
    }
}

#[cfg(test)]
#[path = "partition_tests.rs"]
mod tests;
