//! How much memory a scan needs, and the budget it must stay within.
//!
//! The scan's peak memory grows with the rows it bounds at once: the bounding groups every
//! row by (unit, group), and Polars holds those groups, the rows' hashes and their values
//! together. The estimate is a fixed part plus a cost per row, from the source's metadata
//! (row count, column types) and the plan (queries and what each keeps per row); its
//! constants were measured on this machine (BENCHMARKS.md, "A billion rows"). A scan whose
//! estimate fits the budget runs in memory as before; a larger one is split into
//! partitions of units ([`super::partition`]), each estimated the same way.

use std::fmt;
use std::str::FromStr;

use polars::prelude::*;

use super::source::scan_source;
use crate::EngineError;
use crate::plan::{Measure, QueryScan, ScanPlan};

/// A budget of memory for a scan, in bytes: the engine keeps its estimated peak within it,
/// splitting the work into partitions of units when the whole does not fit, and refuses
/// (before anything is charged) what cannot fit at all.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct MemoryBudget(u64);

/// The setting that gives a scan more memory, as error messages name it.
pub(crate) const RAISE: &str =
    "raise the memory budget (`memory` in the job's [engine] table, or --memory)";

/// What every scan needs besides its rows: Polars' thread pools and buffers, the binary,
/// the plan, the results.
pub(crate) const FIXED_BYTES: u64 = 160 << 20;

/// The smallest budget accepted: the fixed part and room for some rows.
const MIN_BYTES: u64 = FIXED_BYTES + (16 << 20);

impl MemoryBudget {
    /// 4 GiB: the budget when none is set.
    pub const DEFAULT: Self = Self(4 << 30);

    /// A budget of `bytes`.
    ///
    /// # Errors
    /// [`EngineError::InvalidJob`] (key `engine.memory`) below 176 MiB, the least a scan
    /// needs besides its rows.
    pub fn from_bytes(bytes: u64) -> Result<Self, EngineError> {
        if bytes < MIN_BYTES {
            return Err(EngineError::invalid(
                "engine.memory",
                format!(
                    "{} is below the {} the engine needs to run at all",
                    Self::text(bytes),
                    Self::text(MIN_BYTES)
                ),
            ));
        }
        Ok(Self(bytes))
    }

    /// The budget in bytes.
    #[must_use]
    pub fn bytes(self) -> u64 {
        self.0
    }

    /// `bytes` in binary units with up to one decimal: `4 GiB`, `1.5 GiB`, `176 MiB`.
    #[must_use]
    pub fn text(bytes: u64) -> String {
        const UNITS: [&str; 5] = ["bytes", "KiB", "MiB", "GiB", "TiB"];
        #[allow(clippy::cast_precision_loss)]
        let mut value = bytes as f64;
        let mut unit = 0;
        while value >= 1024.0 && unit + 1 < UNITS.len() {
            value /= 1024.0;
            unit += 1;
        }
        if unit == 0 || (value - value.round()).abs() < 0.05 {
            format!("{value:.0} {}", UNITS[unit])
        } else {
            format!("{value:.1} {}", UNITS[unit])
        }
    }
}

impl fmt::Display for MemoryBudget {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&Self::text(self.0))
    }
}

impl FromStr for MemoryBudget {
    type Err = String;

    /// `4GiB`, `4 GiB`, `4G`, `512MiB`, `512M`, `1.5GiB` (binary units; `KiB`, `MiB`,
    /// `GiB`, `TiB` and their one-letter forms), or a number of bytes.
    fn from_str(text: &str) -> Result<Self, Self::Err> {
        let text = text.trim();
        let split = text
            .find(|c: char| !(c.is_ascii_digit() || c == '.'))
            .unwrap_or(text.len());
        let (number, unit) = text.split_at(split);
        let shift = match unit.trim().to_ascii_lowercase().as_str() {
            "" | "b" => 0,
            "k" | "kib" | "kb" => 10,
            "m" | "mib" | "mb" => 20,
            "g" | "gib" | "gb" => 30,
            "t" | "tib" | "tb" => 40,
            other => {
                return Err(format!(
                    "unknown unit {other:?} in {text:?}: write e.g. 4GiB or 512MiB"
                ));
            }
        };
        let value: f64 = number
            .parse()
            .map_err(|_| format!("{text:?} is not a size: write e.g. 4GiB or 512MiB"))?;
        #[allow(
            clippy::cast_precision_loss,
            clippy::cast_possible_truncation,
            clippy::cast_sign_loss
        )]
        let bytes = (value * (1_u64 << shift) as f64).round() as u64;
        Self::from_bytes(bytes).map_err(|error| match error {
            EngineError::InvalidJob { reason, .. } => reason,
            other => other.to_string(),
        })
    }
}

/// What the source holds, from its metadata: rows and, per row, the bytes in memory of
/// the columns the plan reads.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) struct SourceSize {
    /// Rows in the source (before retention and consent).
    pub(crate) rows: u64,
    /// Bytes per row of the columns read, as Polars holds them.
    pub(crate) row_bytes: f64,
}

/// The rows of the source and the in-memory width of the plan's columns.
pub(crate) fn source_size(plan: &ScanPlan) -> Result<SourceSize, EngineError> {
    let mut scan = scan_source(&plan.source)?;
    let schema = scan
        .collect_schema()
        .map_err(|e| EngineError::polars("reading the source's schema", &e))?;
    // Parquet answers from its metadata; a CSV source is counted by a streaming read.
    let rows = scan
        .select([len().cast(DataType::UInt64).alias("rows")])
        .collect_with_engine(Engine::Streaming)
        .and_then(|result| {
            result
                .unwrap_single()
                .column("rows")
                .and_then(|column| column.u64().map(|rows| rows.get(0).unwrap_or(0)))
        })
        .map_err(|e| EngineError::polars("counting the source's rows", &e))?;
    let row_bytes = plan
        .columns
        .iter()
        .map(|name| schema.get(name).map_or(8.0, dtype_bytes))
        .sum();
    Ok(SourceSize { rows, row_bytes })
}

/// The bytes one value of `dtype` takes in memory (text as Polars' 16-byte views).
fn dtype_bytes(dtype: &DataType) -> f64 {
    match dtype {
        DataType::Boolean => 1.0,
        DataType::Int8 | DataType::UInt8 => 1.0,
        DataType::Int16 | DataType::UInt16 => 2.0,
        DataType::Int32 | DataType::UInt32 | DataType::Float32 | DataType::Date => 4.0,
        DataType::String | DataType::Binary => 20.0,
        _ => 8.0,
    }
}

/// Per row, what the bounding of one query holds besides the rows themselves: its keys'
/// hash table and row encoding, the row hash, and one list element per kept value.
fn query_row_bytes(query: &QueryScan) -> f64 {
    let kept_values = query
        .measures
        .iter()
        .filter(|measure| !matches!(measure, Measure::Units | Measure::Rows))
        .count();
    #[allow(clippy::cast_precision_loss)]
    let keys = (1 + query.group_by.len()) as f64;
    #[allow(clippy::cast_precision_loss)]
    let kept = kept_values as f64;
    QUERY_ROW_BYTES + KEY_ROW_BYTES * keys + KEPT_ROW_BYTES * kept
}

/// Per row and query: group indices, the row hash and its list, the pair's bookkeeping.
const QUERY_ROW_BYTES: f64 = 40.0;
/// Per row, query and key column: the key's row encoding and hash.
const KEY_ROW_BYTES: f64 = 12.0;
/// Per row, query and kept value: the value, its list element and the gathered copy.
const KEPT_ROW_BYTES: f64 = 24.0;
/// The rows themselves are held about twice (the scan's frame and the bounded input).
const ROW_COPIES: f64 = 2.0;

/// The bytes per row that bounding and aggregating `plan` holds at its peak.
pub(crate) fn plan_row_bytes(plan: &ScanPlan, size: &SourceSize) -> f64 {
    ROW_COPIES * size.row_bytes + plan.queries.iter().map(query_row_bytes).sum::<f64>()
}

/// The estimated peak memory of scanning `rows` rows of `plan` at once.
pub(crate) fn scan_need(plan: &ScanPlan, size: &SourceSize, rows: u64) -> u64 {
    #[allow(
        clippy::cast_precision_loss,
        clippy::cast_possible_truncation,
        clippy::cast_sign_loss
    )]
    let per_rows = (rows as f64 * plan_row_bytes(plan, size)).ceil() as u64;
    FIXED_BYTES.saturating_add(per_rows)
}

/// How many rows of `plan` fit in `budget` at once (0 if none do).
pub(crate) fn rows_within(plan: &ScanPlan, size: &SourceSize, budget: MemoryBudget) -> u64 {
    let room = budget.bytes().saturating_sub(FIXED_BYTES);
    #[allow(
        clippy::cast_precision_loss,
        clippy::cast_possible_truncation,
        clippy::cast_sign_loss
    )]
    let rows = (room as f64 / plan_row_bytes(plan, size).max(1.0)).floor() as u64;
    rows
}

/// The report's scan holds more per row than a release's: every stage of bounding (raw,
/// clamped, L∞, L0), distinct units and exact quantiles over every row, and the candidate
/// bounds. Measured: about three times the release's per row.
const REPORT_FACTOR: f64 = 3.0;

/// The estimated peak memory of scanning all of `plan`'s source at once, in bytes: what
/// the in-memory scan needs (a partitioned scan needs less).
///
/// # Errors
/// [`EngineError`] if the source's metadata cannot be read.
pub fn in_memory_need(plan: &ScanPlan) -> Result<u64, EngineError> {
    let size = source_size(plan)?;
    Ok(scan_need(plan, &size, size.rows))
}

/// The estimated peak memory of the utility report's scan of `plan`'s source, in bytes
/// (it runs in memory, never in partitions).
///
/// # Errors
/// [`EngineError`] if the source's metadata cannot be read.
pub fn report_need(plan: &ScanPlan) -> Result<u64, EngineError> {
    let size = source_size(plan)?;
    #[allow(
        clippy::cast_precision_loss,
        clippy::cast_possible_truncation,
        clippy::cast_sign_loss
    )]
    let per_rows = (size.rows as f64 * plan_row_bytes(plan, &size) * REPORT_FACTOR).ceil() as u64;
    Ok(FIXED_BYTES.saturating_add(per_rows))
}

#[cfg(test)]
mod tests {
    use super::MemoryBudget;

    #[test]
    fn sizes_parse_in_binary_units() {
        let parse = |text: &str| text.parse::<MemoryBudget>().map(MemoryBudget::bytes);
        assert_eq!(parse("4GiB"), Ok(4 << 30));
        assert_eq!(parse("4 GiB"), Ok(4 << 30));
        assert_eq!(parse("4g"), Ok(4 << 30));
        assert_eq!(parse("512MiB"), Ok(512 << 20));
        assert_eq!(parse("1.5GiB"), Ok(3 << 29));
        assert_eq!(parse("1073741824"), Ok(1 << 30));
        assert!(parse("4 parsecs").is_err());
        assert!(parse("lots").is_err());
        assert!(parse("1MiB").unwrap_err().contains("below"));
    }

    #[test]
    fn sizes_print_in_binary_units() {
        assert_eq!(MemoryBudget::text(4 << 30), "4 GiB");
        assert_eq!(MemoryBudget::text(3 << 29), "1.5 GiB");
        assert_eq!(MemoryBudget::text(512 << 20), "512 MiB");
        assert_eq!(MemoryBudget::text(100), "100 bytes");
    }
}
