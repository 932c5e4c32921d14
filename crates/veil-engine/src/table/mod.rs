//! Plain tables in and out of Parquet and CSV files, for code that needs columns of values
//! rather than a job: the local-DP commands' reports, inputs and estimates, and test
//! fixtures. Polars does the reading and writing (it is the one columnar library Veil
//! builds); this module's API names only Veil types.
//!
//! A [`Table`] is named [`Column`]s of equal length, each holding [`Values`] of one
//! [`ColumnType`] with nulls. [`read`] reads chosen columns of a file whole; [`read_batches`]
//! streams them in batches of bounded size; [`write()`] and [`TableWriter`] write a table
//! atomically: to a temporary file beside the destination, synced, then renamed into place,
//! so the destination holds either its old content or the whole new table, never part of it.
//!
//! Reading keeps each column's type, except that 8-bit integers and unsigned 16-bit
//! integers are widened to the next type Veil names (`i16`, `u32`), categoricals are read as
//! text, and lists of unsigned integers up to 32 bits as lists of `u32`.
//!
//! ```no_run
//! # fn main() -> Result<(), Box<dyn std::error::Error>> {
//! use veil_engine::table::{self, Column, Format, Table, Values};
//!
//! let table = Table::new(vec![
//!     Column::new("protocol_id", Values::U64(vec![Some(7), Some(7)])),
//!     Column::new("value", Values::U32(vec![Some(3), None])),
//! ])?;
//! table::write(&table, "reports.parquet".as_ref(), Format::Parquet)?;
//! let back = table::read("reports.parquet".as_ref(), Format::Parquet, &["value"])?;
//! assert_eq!(back.column("value").map(Column::values), Some(&Values::U32(vec![Some(3), None])));
//! # Ok(())
//! # }
//! ```

use std::path::{Path, PathBuf};

mod read;
mod values;
mod write;

pub use read::{BatchReader, read, read_batches, schema};
pub use values::{Column, ColumnType, Field, ListCell, Table, Texts, U32Lists, Values};
pub use write::{TableWriter, write};

#[cfg(test)]
mod tests;

/// A file format a table is read from or written to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    /// Apache Parquet.
    Parquet,
    /// Comma-separated values with a header row.
    Csv,
}

impl Format {
    /// The format a file's extension names (`.parquet`/`.pq`, `.csv`), if any.
    #[must_use]
    pub fn of_path(path: &Path) -> Option<Self> {
        let extension = path.extension()?.to_str()?.to_ascii_lowercase();
        match extension.as_str() {
            "parquet" | "pq" => Some(Self::Parquet),
            "csv" => Some(Self::Csv),
            _ => None,
        }
    }

    /// The format's name, for messages.
    #[must_use]
    pub fn name(self) -> &'static str {
        match self {
            Self::Parquet => "Parquet",
            Self::Csv => "CSV",
        }
    }
}

/// The unit of a timestamp's integer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TimeUnit {
    /// Milliseconds since the Unix epoch.
    Milliseconds,
    /// Microseconds since the Unix epoch.
    Microseconds,
    /// Nanoseconds since the Unix epoch.
    Nanoseconds,
}

/// Why a table could not be read or written. Messages name the file and column, and never
/// repeat a value from the data.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum TableError {
    /// The file could not be opened.
    #[error("cannot open {}: {source}", path.display())]
    Open {
        /// The file.
        path: PathBuf,
        /// The operating system's error.
        #[source]
        source: std::io::Error,
    },
    /// The file is not readable as the format.
    #[error("cannot read {} as {format}: {reason}", path.display())]
    Unreadable {
        /// The file.
        path: PathBuf,
        /// `Parquet` or `CSV`.
        format: &'static str,
        /// Why, without data values.
        reason: String,
    },
    /// A column that was asked for is not in the file.
    #[error("{} has no column {column:?} (columns: {})", path.display(), available.join(", "))]
    ColumnNotFound {
        /// The file.
        path: PathBuf,
        /// The missing column.
        column: String,
        /// The columns the file has.
        available: Vec<String>,
    },
    /// A column has a type this module does not read.
    #[error("column {column:?} of {} has type {found}, which Veil does not read", path.display())]
    ColumnType {
        /// The file.
        path: PathBuf,
        /// The column.
        column: String,
        /// Its type, by the reader's name for it.
        found: String,
    },
    /// Columns of different lengths, a repeated name, or a batch whose columns are not the
    /// writer's.
    #[error("malformed table: {reason}")]
    Shape {
        /// What is wrong.
        reason: String,
    },
    /// Writing the file failed.
    #[error("writing {}: {source}", path.display())]
    Write {
        /// The destination (or its temporary file).
        path: PathBuf,
        /// The error.
        #[source]
        source: std::io::Error,
    },
}
