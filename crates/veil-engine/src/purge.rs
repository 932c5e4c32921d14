//! Retention and deletion at rest: rewriting exports without the rows no purpose may read
//! any more and without the people who withdrew all consent.
//!
//! Each file is rewritten atomically: the kept rows go to a hidden temporary file in the
//! same directory, which is synced and then renamed over the original. Interrupted at any
//! point, a file is either the old one or the new one, never a broken one.

use std::path::PathBuf;

use polars::prelude::*;

use crate::EngineError;
use crate::job::{Consent, Source, SourceFormat};
use crate::plan::ConsentFilter;
use crate::scan::{consent_log_units, scan_source, source_files};

/// What to remove.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PurgeRules {
    /// The source's time column, needed to apply retention.
    pub time_column: Option<String>,
    /// Rows older than this (ms since the Unix epoch, UTC) are past every purpose's
    /// retention; `None` keeps rows of every age (some purpose keeps data forever).
    pub keep_from_ms: Option<i64>,
    /// The consent log and the purposes it covers: units that have consent events and no
    /// purpose in force at `as_of_ms` are removed.
    pub consent: Option<(Consent, Vec<String>)>,
    /// The time the rules apply as of.
    pub as_of_ms: i64,
}

/// What happened to one file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PurgedFile {
    /// The file.
    pub path: PathBuf,
    /// Rows before.
    pub rows_before: u64,
    /// Rows removed because they are past every purpose's retention.
    pub removed_by_retention: u64,
    /// Rows removed because their unit withdrew all consent.
    pub removed_by_withdrawal: u64,
    /// Whether the file was rewritten (false for a dry run or when nothing was removed).
    pub rewritten: bool,
}

/// Rewrites each file of `source` without the rows `rules` remove; with `dry_run`, only
/// counts them.
///
/// # Errors
/// [`EngineError`] if a file cannot be read or written; a failed rewrite leaves the file
/// as it was.
pub fn purge(
    source: &Source,
    rules: &PurgeRules,
    dry_run: bool,
) -> Result<Vec<PurgedFile>, EngineError> {
    if source.format != SourceFormat::Parquet {
        return Err(EngineError::invalid(
            "source",
            "veil purge rewrites Parquet exports only",
        ));
    }
    if rules.keep_from_ms.is_some() && rules.time_column.is_none() {
        return Err(EngineError::invalid(
            "source.time_column",
            "retention needs the source's time column: pass --time-column",
        ));
    }
    let withdrawn = match &rules.consent {
        Some((consent, purposes)) => {
            Some(withdrawn_units(source, consent, purposes, rules.as_of_ms)?)
        }
        None => None,
    };
    let mut results = Vec::new();
    for path in source_files(source)? {
        let file_source = Source {
            path: path.clone(),
            ..source.clone()
        };
        let rows = scan_source(&file_source)?;
        let in_retention = match (&rules.time_column, rules.keep_from_ms) {
            (Some(column), Some(from)) => crate::scan::time_at_least(&rows, column, from)?,
            _ => lit(true),
        };
        let not_withdrawn = match &withdrawn {
            Some(units) => col(source.privacy_unit.as_str())
                .is_in(lit(units.clone()).implode(false), false)
                .not(),
            None => lit(true),
        };
        let counts = rows
            .clone()
            .select([
                len().cast(DataType::UInt64).alias("rows"),
                in_retention
                    .clone()
                    .not()
                    .sum()
                    .cast(DataType::UInt64)
                    .alias("old"),
                in_retention
                    .clone()
                    .and(not_withdrawn.clone().not())
                    .sum()
                    .cast(DataType::UInt64)
                    .alias("withdrawn"),
            ])
            .collect()
            .map_err(|e| EngineError::polars("counting rows to purge", &e))?;
        let read = |name: &str| -> Result<u64, EngineError> {
            counts
                .column(name)
                .and_then(|column| column.u64().map(|values| values.get(0).unwrap_or(0)))
                .map_err(|e| EngineError::polars("counting rows to purge", &e))
        };
        let (rows_before, removed_by_retention, removed_by_withdrawal) =
            (read("rows")?, read("old")?, read("withdrawn")?);
        let remove = removed_by_retention + removed_by_withdrawal;
        let rewritten = !dry_run && remove > 0;
        if rewritten {
            let mut kept = rows
                .filter(in_retention.and(not_withdrawn))
                .collect_with_engine(Engine::Streaming)
                .map_err(|e| EngineError::polars("reading rows to keep", &e))?
                .unwrap_single();
            let staged = crate::output::stage(path.clone(), |writer| {
                ParquetWriter::new(writer)
                    .finish(&mut kept)
                    .map(|_| ())
                    .map_err(|e| EngineError::Output {
                        path: path.clone(),
                        source: std::io::Error::other(e.to_string()),
                    })
            })?;
            staged.publish()?;
            if let Some(directory) = path.parent() {
                crate::output::sync_directory(directory);
            }
        }
        results.push(PurgedFile {
            path,
            rows_before,
            removed_by_retention,
            removed_by_withdrawal,
            rewritten,
        });
    }
    Ok(results)
}

/// Units with at least one consent event for the covered purposes and none of them in
/// force at `as_of_ms`, as a series of the source's unit type.
fn withdrawn_units(
    source: &Source,
    consent: &Consent,
    purposes: &[String],
    as_of_ms: i64,
) -> Result<Series, EngineError> {
    let mut schema_frame = scan_source(source)?;
    let schema = schema_frame
        .collect_schema()
        .map_err(|e| EngineError::polars("reading the source's schema", &e))?;
    let unit = source.privacy_unit.as_str();
    let unit_type = schema
        .get(unit)
        .cloned()
        .ok_or_else(|| EngineError::ColumnNotFound {
            key: "source.privacy_unit".to_string(),
            column: unit.to_string(),
            path: source.path.clone(),
            available: schema.iter_names().map(ToString::to_string).collect(),
        })?;
    let mut in_force: Option<LazyFrame> = None;
    for purpose in purposes {
        let filter = ConsentFilter {
            table: consent.clone(),
            purpose: purpose.clone(),
            as_of_ms,
        };
        let granted = crate::scan::consented_units(&filter, unit, &unit_type)?;
        in_force = Some(match in_force {
            None => granted,
            Some(frame) => concat([frame, granted], UnionArgs::default())
                .map_err(|e| EngineError::polars("reading consent", &e))?,
        });
    }
    let with_events = consent_log_units(consent, unit, &unit_type, as_of_ms)?;
    let withdrawn = match in_force {
        Some(in_force) => with_events.join(
            in_force,
            [col(unit)],
            [col(unit)],
            JoinArgs::new(JoinType::Anti),
        ),
        None => with_events,
    };
    let frame = withdrawn
        .unique(None, UniqueKeepStrategy::Any)
        .collect()
        .map_err(|e| EngineError::polars("reading consent", &e))?;
    frame
        .column(unit)
        .map(|column| column.as_materialized_series().clone())
        .map_err(|e| EngineError::polars("reading consent", &e))
}
