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

use std::fmt;
use std::fs::File;
use std::num::NonZeroUsize;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::{Receiver, sync_channel};
use std::thread::JoinHandle;

use polars::prelude as pl;
use polars::prelude::{
    IntoColumn, IntoSeries, LazyFileListReader, NamedFrom, NewChunkedArray, SerReader, SerWriter,
};

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

/// The type of a column.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ColumnType {
    /// Booleans.
    Bool,
    /// 16-bit signed integers.
    I16,
    /// 32-bit signed integers.
    I32,
    /// 64-bit signed integers.
    I64,
    /// 32-bit unsigned integers.
    U32,
    /// 64-bit unsigned integers.
    U64,
    /// 32-bit floating-point numbers.
    F32,
    /// 64-bit floating-point numbers.
    F64,
    /// UTF-8 text.
    Text,
    /// Bytes.
    Binary,
    /// Lists of 32-bit unsigned integers.
    ListU32,
    /// Calendar dates, as days since 1970-01-01.
    Date,
    /// Instants as integers of `unit` since the Unix epoch, in an optional time zone.
    Timestamp {
        /// The unit of the integers.
        unit: TimeUnit,
        /// The time zone (`"UTC"`), if the column has one.
        time_zone: Option<String>,
    },
    /// A type this module does not read, by the reader's name for it.
    Other(String),
}

impl fmt::Display for ColumnType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Bool => f.write_str("boolean"),
            Self::I16 => f.write_str("16-bit integer"),
            Self::I32 => f.write_str("32-bit integer"),
            Self::I64 => f.write_str("64-bit integer"),
            Self::U32 => f.write_str("32-bit unsigned integer"),
            Self::U64 => f.write_str("64-bit unsigned integer"),
            Self::F32 => f.write_str("32-bit float"),
            Self::F64 => f.write_str("64-bit float"),
            Self::Text => f.write_str("text"),
            Self::Binary => f.write_str("binary"),
            Self::ListU32 => f.write_str("list of 32-bit unsigned integers"),
            Self::Date => f.write_str("date"),
            Self::Timestamp { unit, time_zone } => {
                let unit = match unit {
                    TimeUnit::Milliseconds => "ms",
                    TimeUnit::Microseconds => "µs",
                    TimeUnit::Nanoseconds => "ns",
                };
                match time_zone {
                    Some(zone) => write!(f, "timestamp ({unit}, {zone})"),
                    None => write!(f, "timestamp ({unit})"),
                }
            }
            Self::Other(name) => f.write_str(name),
        }
    }
}

/// A column's name and type.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Field {
    /// The column's name.
    pub name: String,
    /// Its type.
    pub column_type: ColumnType,
}

impl Field {
    /// A field named `name` of `column_type`.
    #[must_use]
    pub fn new(name: impl Into<String>, column_type: ColumnType) -> Self {
        Self {
            name: name.into(),
            column_type,
        }
    }
}

/// One cell of a list column.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ListCell<'a> {
    /// The list itself is null.
    Null,
    /// The list holds a null item (only a file read can produce one).
    NullItem,
    /// The list's items.
    Items(&'a [u32]),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum ListState {
    Items,
    Null,
    NullItem,
}

/// A column of lists of `u32`, stored flat: every list's items one after the other.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct U32Lists {
    /// `ends[row]` is one past the last item of `row` in `items`.
    ends: Vec<usize>,
    items: Vec<u32>,
    states: Vec<ListState>,
}

impl U32Lists {
    /// An empty column.
    #[must_use]
    pub fn new() -> Self {
        Self::default()
    }

    /// An empty column with room for `rows` lists and `items` items in all.
    #[must_use]
    pub fn with_capacity(rows: usize, items: usize) -> Self {
        Self {
            ends: Vec::with_capacity(rows),
            items: Vec::with_capacity(items),
            states: Vec::with_capacity(rows),
        }
    }

    /// Appends a list, or a null.
    pub fn push(&mut self, list: Option<&[u32]>) {
        let state = match list {
            Some(items) => {
                self.items.extend_from_slice(items);
                ListState::Items
            }
            None => ListState::Null,
        };
        self.ends.push(self.items.len());
        self.states.push(state);
    }

    fn push_null_item(&mut self) {
        self.ends.push(self.items.len());
        self.states.push(ListState::NullItem);
    }

    /// Removes every list, keeping the memory for reuse.
    pub fn clear(&mut self) {
        self.ends.clear();
        self.items.clear();
        self.states.clear();
    }

    /// The number of lists.
    #[must_use]
    pub fn len(&self) -> usize {
        self.states.len()
    }

    /// Whether there are no lists.
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.states.is_empty()
    }

    /// The list at `row`, or `None` past the end.
    #[must_use]
    pub fn get(&self, row: usize) -> Option<ListCell<'_>> {
        let state = *self.states.get(row)?;
        Some(match state {
            ListState::Null => ListCell::Null,
            ListState::NullItem => ListCell::NullItem,
            ListState::Items => {
                let start = if row == 0 { 0 } else { self.ends[row - 1] };
                ListCell::Items(&self.items[start..self.ends[row]])
            }
        })
    }

    /// The lists in order.
    pub fn iter(&self) -> impl Iterator<Item = ListCell<'_>> {
        (0..self.len()).filter_map(|row| self.get(row))
    }
}

impl<'a> FromIterator<Option<&'a [u32]>> for U32Lists {
    fn from_iter<I: IntoIterator<Item = Option<&'a [u32]>>>(lists: I) -> Self {
        let mut column = Self::new();
        for list in lists {
            column.push(list);
        }
        column
    }
}

/// A column of text stored flat: every value's bytes one after the other in one string,
/// so a million values cost two allocations, not a million.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Texts {
    /// `ends[row]` is one past the last byte of `row` in `text`.
    ends: Vec<usize>,
    text: String,
    valid: Vec<bool>,
}

impl Texts {
    /// An empty column.
    #[must_use]
    pub fn new() -> Self {
        Self::default()
    }

    /// An empty column with room for `rows` values and `bytes` bytes in all.
    #[must_use]
    pub fn with_capacity(rows: usize, bytes: usize) -> Self {
        Self {
            ends: Vec::with_capacity(rows),
            text: String::with_capacity(bytes),
            valid: Vec::with_capacity(rows),
        }
    }

    /// Appends a value, or a null.
    pub fn push(&mut self, value: Option<&str>) {
        if let Some(value) = value {
            self.text.push_str(value);
        }
        self.ends.push(self.text.len());
        self.valid.push(value.is_some());
    }

    /// The number of values (nulls included).
    #[must_use]
    pub fn len(&self) -> usize {
        self.valid.len()
    }

    /// Whether there are no values.
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.valid.is_empty()
    }

    /// The value at `row`; `None` for a null (or past the end).
    #[must_use]
    pub fn get(&self, row: usize) -> Option<&str> {
        if !*self.valid.get(row)? {
            return None;
        }
        let start = if row == 0 { 0 } else { self.ends[row - 1] };
        Some(&self.text[start..self.ends[row]])
    }

    /// The values in order.
    pub fn iter(&self) -> impl Iterator<Item = Option<&str>> {
        (0..self.len()).map(|row| self.get(row))
    }
}

impl<'a> FromIterator<Option<&'a str>> for Texts {
    fn from_iter<I: IntoIterator<Item = Option<&'a str>>>(values: I) -> Self {
        let mut column = Self::new();
        for value in values {
            column.push(value);
        }
        column
    }
}

impl FromIterator<Option<String>> for Texts {
    fn from_iter<I: IntoIterator<Item = Option<String>>>(values: I) -> Self {
        let mut column = Self::new();
        for value in values {
            column.push(value.as_deref());
        }
        column
    }
}

/// The values of a column, with nulls.
#[derive(Debug, Clone, PartialEq)]
pub enum Values {
    /// Booleans.
    Bool(Vec<Option<bool>>),
    /// 16-bit signed integers.
    I16(Vec<Option<i16>>),
    /// 32-bit signed integers.
    I32(Vec<Option<i32>>),
    /// 64-bit signed integers.
    I64(Vec<Option<i64>>),
    /// 32-bit unsigned integers.
    U32(Vec<Option<u32>>),
    /// 64-bit unsigned integers.
    U64(Vec<Option<u64>>),
    /// 32-bit floats.
    F32(Vec<Option<f32>>),
    /// 64-bit floats.
    F64(Vec<Option<f64>>),
    /// UTF-8 text.
    Text(Texts),
    /// Bytes.
    Binary(Vec<Option<Vec<u8>>>),
    /// Lists of 32-bit unsigned integers.
    ListU32(U32Lists),
    /// Calendar dates, as days since 1970-01-01.
    Date(Vec<Option<i32>>),
    /// Instants as integers of `unit` since the Unix epoch.
    Timestamp {
        /// The unit of the integers.
        unit: TimeUnit,
        /// The time zone (`"UTC"`), if any.
        time_zone: Option<String>,
        /// The integers.
        values: Vec<Option<i64>>,
    },
}

impl Values {
    /// The number of values (nulls included).
    #[must_use]
    pub fn len(&self) -> usize {
        match self {
            Self::Bool(values) => values.len(),
            Self::I16(values) => values.len(),
            Self::I32(values) | Self::Date(values) => values.len(),
            Self::I64(values) | Self::Timestamp { values, .. } => values.len(),
            Self::U32(values) => values.len(),
            Self::U64(values) => values.len(),
            Self::F32(values) => values.len(),
            Self::F64(values) => values.len(),
            Self::Text(values) => values.len(),
            Self::Binary(values) => values.len(),
            Self::ListU32(lists) => lists.len(),
        }
    }

    /// Whether there are no values.
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The values' type.
    #[must_use]
    pub fn column_type(&self) -> ColumnType {
        match self {
            Self::Bool(_) => ColumnType::Bool,
            Self::I16(_) => ColumnType::I16,
            Self::I32(_) => ColumnType::I32,
            Self::I64(_) => ColumnType::I64,
            Self::U32(_) => ColumnType::U32,
            Self::U64(_) => ColumnType::U64,
            Self::F32(_) => ColumnType::F32,
            Self::F64(_) => ColumnType::F64,
            Self::Text(_) => ColumnType::Text,
            Self::Binary(_) => ColumnType::Binary,
            Self::ListU32(_) => ColumnType::ListU32,
            Self::Date(_) => ColumnType::Date,
            Self::Timestamp {
                unit, time_zone, ..
            } => ColumnType::Timestamp {
                unit: *unit,
                time_zone: time_zone.clone(),
            },
        }
    }
}

/// A named column.
#[derive(Debug, Clone, PartialEq)]
pub struct Column {
    name: String,
    values: Values,
}

impl Column {
    /// A column named `name`.
    #[must_use]
    pub fn new(name: impl Into<String>, values: Values) -> Self {
        Self {
            name: name.into(),
            values,
        }
    }

    /// The column's name.
    #[must_use]
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Its values.
    #[must_use]
    pub fn values(&self) -> &Values {
        &self.values
    }

    /// Its values, owned.
    #[must_use]
    pub fn into_values(self) -> Values {
        self.values
    }

    /// Its name and type.
    #[must_use]
    pub fn field(&self) -> Field {
        Field::new(self.name.clone(), self.values.column_type())
    }
}

/// Columns of equal length with distinct names.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Table {
    columns: Vec<Column>,
    rows: usize,
}

impl Table {
    /// A table of `columns`.
    ///
    /// # Errors
    /// [`TableError::Shape`] if the columns differ in length or two share a name.
    pub fn new(columns: Vec<Column>) -> Result<Self, TableError> {
        let rows = columns.first().map_or(0, |column| column.values.len());
        for (index, column) in columns.iter().enumerate() {
            if column.values.len() != rows {
                return Err(TableError::Shape {
                    reason: format!(
                        "column {:?} has {} values where {:?} has {rows}",
                        column.name,
                        column.values.len(),
                        columns[0].name
                    ),
                });
            }
            if columns[..index]
                .iter()
                .any(|other| other.name == column.name)
            {
                return Err(TableError::Shape {
                    reason: format!("two columns are named {:?}", column.name),
                });
            }
        }
        Ok(Self { columns, rows })
    }

    /// The number of rows.
    #[must_use]
    pub fn rows(&self) -> usize {
        self.rows
    }

    /// The columns, in order.
    #[must_use]
    pub fn columns(&self) -> &[Column] {
        &self.columns
    }

    /// The column named `name`, if there is one.
    #[must_use]
    pub fn column(&self, name: &str) -> Option<&Column> {
        self.columns.iter().find(|column| column.name == name)
    }

    /// The columns, owned.
    #[must_use]
    pub fn into_columns(self) -> Vec<Column> {
        self.columns
    }

    /// The columns' names and types.
    #[must_use]
    pub fn fields(&self) -> Vec<Field> {
        self.columns.iter().map(Column::field).collect()
    }
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

// ---- Reading.

/// The columns of a file, in file order, read from its metadata (Parquet) or its first rows
/// (CSV).
///
/// # Errors
/// [`TableError::Open`] if the file cannot be opened, [`TableError::Unreadable`] if it is not
/// of the format.
pub fn schema(path: &Path, format: Format) -> Result<Vec<Field>, TableError> {
    let (_, schema) = scan(path, format)?;
    Ok(schema
        .iter()
        .map(|(name, dtype)| Field::new(name.to_string(), column_type_of(dtype)))
        .collect())
}

/// Reads `columns` of a file whole, in that order.
///
/// # Errors
/// [`TableError::Open`], [`TableError::Unreadable`], [`TableError::ColumnNotFound`] naming
/// the columns the file has, or [`TableError::ColumnType`] for a column of a type this
/// module does not read.
pub fn read(path: &Path, format: Format, columns: &[&str]) -> Result<Table, TableError> {
    let frame = selected(path, format, columns)?
        .collect()
        .map_err(|error| unreadable(path, format, &error))?;
    table_of(&frame).map_err(|error| unreadable(path, format, &error))
}

/// Reads `columns` of a file in batches of at most `batch_rows` rows (the last may be
/// shorter), in file order, so that memory holds one batch whatever the file's size: a
/// Parquet file is read a slice at a time on the calling thread (Polars decodes only the
/// pages that hold the slice); a CSV file through Polars' streaming engine on a thread of
/// its own.
///
/// The file's schema is checked before this returns.
///
/// # Errors
/// As [`read`], for the file and its schema; errors while reading come from the iterator.
pub fn read_batches(
    path: &Path,
    format: Format,
    columns: &[&str],
    batch_rows: NonZeroUsize,
) -> Result<BatchReader, TableError> {
    let (frame, schema_of) = selected_with_schema(path, format, columns)?;
    let source = match format {
        Format::Parquet => {
            let file = File::open(path).map_err(|source| TableError::Open {
                path: path.to_path_buf(),
                source,
            })?;
            let mut reader = pl::ParquetReader::new(file);
            let metadata = reader
                .get_metadata()
                .map_err(|error| unreadable(path, format, &error))?
                .clone();
            // Slices of a list column cannot be found without decoding what comes before
            // them, so a projection with one is read a row group at a time (and handed
            // out in batches); flat columns are read a batch at a time.
            let nested = columns.iter().any(|column| {
                matches!(
                    schema_of.get(column).map(column_type_of),
                    Some(ColumnType::ListU32)
                )
            });
            let mut ranges = Vec::new();
            let mut start = 0;
            for group in &metadata.row_groups {
                let rows = group.num_rows();
                if nested {
                    ranges.push((start, rows));
                } else {
                    let mut at = 0;
                    while at < rows {
                        let length = (rows - at).min(batch_rows.get());
                        ranges.push((start + at, length));
                        at += length;
                    }
                }
                start += rows;
            }
            Source::Slices {
                metadata,
                columns: columns.iter().map(ToString::to_string).collect(),
                ranges,
                next: 0,
            }
        }
        Format::Csv => Source::Streaming(streaming(path, format, frame, batch_rows)?),
    };
    Ok(BatchReader {
        source,
        current: None,
        batch_rows: batch_rows.get(),
        path: path.to_path_buf(),
        format,
    })
}

/// Runs a query through Polars' streaming engine on a thread of its own, handing out its
/// batches through a channel of one.
fn streaming(
    path: &Path,
    format: Format,
    frame: pl::LazyFrame,
    batch_rows: NonZeroUsize,
) -> Result<Streaming, TableError> {
    let (sender, receiver) = sync_channel::<pl::PolarsResult<pl::DataFrame>>(1);
    let callback_sender = sender.clone();
    let callback = pl::PlanCallback::new(move |batch: pl::DataFrame| {
        // Returning true stops the query: the reader was dropped.
        Ok(callback_sender.send(Ok(batch)).is_err())
    });
    let query = frame
        .sink_batches(callback, true, Some(batch_rows))
        .map_err(|error| unreadable(path, format, &error))?;
    let worker = std::thread::Builder::new()
        .name("veil-table-reader".into())
        .spawn(move || {
            if let Err(error) = query.collect_with_engine(pl::Engine::Streaming) {
                let _ = sender.send(Err(error));
            }
        })
        .map_err(|source| TableError::Open {
            path: path.to_path_buf(),
            source,
        })?;
    Ok(Streaming {
        receiver: Some(receiver),
        worker: Some(worker),
    })
}

/// Batches of a file's rows, from [`read_batches`].
#[derive(Debug)]
pub struct BatchReader {
    source: Source,
    /// The frame being handed out, and the first row not yet handed out.
    current: Option<(pl::DataFrame, usize)>,
    batch_rows: usize,
    path: PathBuf,
    format: Format,
}

#[derive(Debug)]
enum Source {
    /// A Parquet file read a range of rows at a time (the reader decodes only the pages
    /// that hold them).
    Slices {
        metadata: polars::io::parquet::metadata::FileMetadataRef,
        columns: Vec<String>,
        /// `(first row, rows)` to read, in order.
        ranges: Vec<(usize, usize)>,
        next: usize,
    },
    Streaming(Streaming),
    /// Nothing more: the reader failed.
    Done,
}

#[derive(Debug)]
struct Streaming {
    receiver: Option<Receiver<pl::PolarsResult<pl::DataFrame>>>,
    worker: Option<JoinHandle<()>>,
}

impl Streaming {
    /// Stops the query (if it still runs) and waits for its thread.
    fn finish(&mut self) {
        // Dropping the receiver makes the next send fail, which stops the query.
        self.receiver = None;
        if let Some(worker) = self.worker.take() {
            let _ = worker.join();
        }
    }
}

impl Drop for Streaming {
    fn drop(&mut self) {
        self.finish();
    }
}

impl Source {
    /// The next frame of rows, `None` at the end.
    fn next_frame(&mut self, path: &Path) -> Option<pl::PolarsResult<pl::DataFrame>> {
        match self {
            Self::Slices {
                metadata,
                columns,
                ranges,
                next,
            } => {
                let slice = *ranges.get(*next)?;
                *next += 1;
                let read = || -> pl::PolarsResult<pl::DataFrame> {
                    let file = File::open(path)?;
                    let mut reader = pl::ParquetReader::new(file)
                        .with_columns(Some(columns.clone()))
                        .with_slice(Some(slice));
                    reader.set_metadata(metadata.clone());
                    // The reader gives the columns in file order: put them in the order
                    // asked for.
                    reader.finish()?.select(columns.iter().map(String::as_str))
                };
                Some(read())
            }
            Self::Streaming(streaming) => {
                let batch = streaming.receiver.as_ref()?.recv().ok();
                if batch.is_none() {
                    // The query finished and dropped its senders.
                    streaming.finish();
                }
                batch
            }
            Self::Done => None,
        }
    }
}

impl Iterator for BatchReader {
    type Item = Result<Table, TableError>;

    fn next(&mut self) -> Option<Self::Item> {
        loop {
            if let Some((frame, offset)) = &mut self.current {
                if *offset < frame.height() {
                    let length = self.batch_rows.min(frame.height() - *offset);
                    let batch = frame.slice(i64::try_from(*offset).unwrap_or(i64::MAX), length);
                    *offset += length;
                    return Some(
                        table_of(&batch)
                            .map_err(|error| unreadable(&self.path, self.format, &error)),
                    );
                }
                self.current = None;
            }
            match self.source.next_frame(&self.path)? {
                Ok(frame) => self.current = Some((frame, 0)),
                Err(error) => {
                    // No batch after an error.
                    self.source = Source::Done;
                    return Some(Err(unreadable(&self.path, self.format, &error)));
                }
            }
        }
    }
}

/// A lazy scan of the file and its schema, after checking that the file can be opened.
fn scan(path: &Path, format: Format) -> Result<(pl::LazyFrame, pl::SchemaRef), TableError> {
    File::open(path).map_err(|source| TableError::Open {
        path: path.to_path_buf(),
        source,
    })?;
    let file = pl::PlRefPath::new(path.to_string_lossy().as_ref());
    let frame = match format {
        Format::Parquet => pl::LazyFrame::scan_parquet(
            file,
            pl::ScanArgsParquet {
                glob: false,
                ..pl::ScanArgsParquet::default()
            },
        ),
        Format::Csv => pl::LazyCsvReader::new(file)
            .with_glob(false)
            .with_has_header(true)
            .with_infer_schema_length(Some(10_000))
            .finish(),
    };
    let mut frame = frame.map_err(|error| unreadable(path, format, &error))?;
    let schema = frame
        .collect_schema()
        .map_err(|error| unreadable(path, format, &error))?;
    Ok((frame, schema))
}

/// A scan of `columns`, after checking that the file has them and that they are readable.
fn selected(path: &Path, format: Format, columns: &[&str]) -> Result<pl::LazyFrame, TableError> {
    selected_with_schema(path, format, columns).map(|(frame, _)| frame)
}

/// [`selected`], and the file's schema.
fn selected_with_schema(
    path: &Path,
    format: Format,
    columns: &[&str],
) -> Result<(pl::LazyFrame, pl::SchemaRef), TableError> {
    let (frame, schema) = scan(path, format)?;
    for column in columns {
        let Some(dtype) = schema.get(column) else {
            return Err(TableError::ColumnNotFound {
                path: path.to_path_buf(),
                column: (*column).to_string(),
                available: schema.iter_names().map(ToString::to_string).collect(),
            });
        };
        if let ColumnType::Other(found) = column_type_of(dtype) {
            return Err(TableError::ColumnType {
                path: path.to_path_buf(),
                column: (*column).to_string(),
                found,
            });
        }
    }
    let frame = frame.select(
        columns
            .iter()
            .map(|column| pl::col(*column))
            .collect::<Vec<_>>(),
    );
    Ok((frame, schema))
}

/// The reader's error without data values: Polars' messages about parsing and computing
/// can quote cells, so only those about files and schemas are kept whole.
fn unreadable(path: &Path, format: Format, error: &pl::PolarsError) -> TableError {
    TableError::Unreadable {
        path: path.to_path_buf(),
        format: format.name(),
        reason: crate::error::polars_reason(error),
    }
}

/// The Veil type a Polars type is read as.
fn column_type_of(dtype: &pl::DataType) -> ColumnType {
    use pl::DataType as D;
    match dtype {
        D::Boolean => ColumnType::Bool,
        D::Int8 | D::Int16 => ColumnType::I16,
        D::Int32 => ColumnType::I32,
        D::Int64 => ColumnType::I64,
        D::UInt8 | D::UInt16 | D::UInt32 => ColumnType::U32,
        D::UInt64 => ColumnType::U64,
        D::Float32 => ColumnType::F32,
        D::Float64 => ColumnType::F64,
        D::String | D::Categorical(..) | D::Enum(..) => ColumnType::Text,
        D::Binary | D::BinaryOffset => ColumnType::Binary,
        D::List(inner) if matches!(inner.as_ref(), D::UInt8 | D::UInt16 | D::UInt32) => {
            ColumnType::ListU32
        }
        D::Date => ColumnType::Date,
        D::Datetime(unit, zone) => ColumnType::Timestamp {
            unit: match unit {
                pl::TimeUnit::Milliseconds => TimeUnit::Milliseconds,
                pl::TimeUnit::Microseconds => TimeUnit::Microseconds,
                pl::TimeUnit::Nanoseconds => TimeUnit::Nanoseconds,
            },
            time_zone: zone.as_ref().map(ToString::to_string),
        },
        other => ColumnType::Other(other.to_string()),
    }
}

/// The Polars type a Veil type is written as.
fn dtype_of(column_type: &ColumnType) -> pl::PolarsResult<pl::DataType> {
    use pl::DataType as D;
    Ok(match column_type {
        ColumnType::Bool => D::Boolean,
        ColumnType::I16 => D::Int16,
        ColumnType::I32 => D::Int32,
        ColumnType::I64 => D::Int64,
        ColumnType::U32 => D::UInt32,
        ColumnType::U64 => D::UInt64,
        ColumnType::F32 => D::Float32,
        ColumnType::F64 => D::Float64,
        ColumnType::Text => D::String,
        ColumnType::Binary => D::Binary,
        ColumnType::ListU32 => D::List(Box::new(D::UInt32)),
        ColumnType::Date => D::Date,
        ColumnType::Timestamp { unit, time_zone } => D::Datetime(
            match unit {
                TimeUnit::Milliseconds => pl::TimeUnit::Milliseconds,
                TimeUnit::Microseconds => pl::TimeUnit::Microseconds,
                TimeUnit::Nanoseconds => pl::TimeUnit::Nanoseconds,
            },
            pl::TimeZone::opt_try_new(time_zone.clone())?,
        ),
        ColumnType::Other(name) => {
            return Err(pl::PolarsError::InvalidOperation(
                format!("cannot write a column of type {name}").into(),
            ));
        }
    })
}

/// A Polars frame as a table.
fn table_of(frame: &pl::DataFrame) -> pl::PolarsResult<Table> {
    let mut columns = Vec::with_capacity(frame.width());
    for column in frame.columns() {
        let series = column.as_materialized_series();
        columns.push(Column::new(column.name().to_string(), values_of(series)?));
    }
    Table::new(columns).map_err(|error| pl::PolarsError::ShapeMismatch(error.to_string().into()))
}

fn values_of(series: &pl::Series) -> pl::PolarsResult<Values> {
    use pl::DataType as D;
    let cast = |dtype: D| series.cast(&dtype);
    Ok(match column_type_of(series.dtype()) {
        ColumnType::Bool => Values::Bool(series.bool()?.iter().collect()),
        ColumnType::I16 => Values::I16(cast(D::Int16)?.i16()?.iter().collect()),
        ColumnType::I32 => Values::I32(series.i32()?.iter().collect()),
        ColumnType::I64 => Values::I64(series.i64()?.iter().collect()),
        ColumnType::U32 => Values::U32(cast(D::UInt32)?.u32()?.iter().collect()),
        ColumnType::U64 => Values::U64(series.u64()?.iter().collect()),
        ColumnType::F32 => Values::F32(series.f32()?.iter().collect()),
        ColumnType::F64 => Values::F64(series.f64()?.iter().collect()),
        ColumnType::Text => {
            let strings = if series.dtype() == &D::String {
                series.clone()
            } else {
                cast(D::String)?
            };
            let strings = strings.str()?;
            let mut texts = Texts::with_capacity(strings.len(), strings.len() * 8);
            for text in strings.iter() {
                texts.push(text);
            }
            Values::Text(texts)
        }
        ColumnType::Binary => Values::Binary(
            cast(D::Binary)?
                .binary()?
                .iter()
                .map(|bytes| bytes.map(<[u8]>::to_vec))
                .collect(),
        ),
        ColumnType::ListU32 => Values::ListU32(u32_lists(&cast(D::List(Box::new(D::UInt32)))?)?),
        ColumnType::Date => Values::Date(cast(D::Int32)?.i32()?.iter().collect()),
        ColumnType::Timestamp { unit, time_zone } => Values::Timestamp {
            unit,
            time_zone,
            values: cast(D::Int64)?.i64()?.iter().collect(),
        },
        ColumnType::Other(name) => {
            return Err(pl::PolarsError::SchemaMismatch(
                format!("column {:?} has type {name}", series.name()).into(),
            ));
        }
    })
}

fn u32_lists(series: &pl::Series) -> pl::PolarsResult<U32Lists> {
    let lists = series.list()?;
    let mut column = U32Lists::with_capacity(lists.len(), 0);
    // Straight from the Arrow arrays: offsets into one flat array of items, read as a
    // slice when it has no nulls (no per-row Series).
    for array in lists.downcast_iter() {
        let offsets = array.offsets().as_slice();
        let items = pl::Series::try_from((pl::PlSmallStr::EMPTY, array.values().clone()))?;
        let items = items.u32()?;
        let flat = items.cont_slice().ok();
        let validity = array.validity();
        for row in 0..array.len() {
            if validity.is_some_and(|valid| !valid.get_bit(row)) {
                column.push(None);
                continue;
            }
            let start = usize::try_from(offsets[row]).unwrap_or(0);
            let end = usize::try_from(offsets[row + 1]).unwrap_or(0);
            match flat {
                Some(flat) => column.push(Some(&flat[start..end])),
                None => {
                    let row_items: Option<Vec<u32>> =
                        (start..end).map(|at| items.get(at)).collect();
                    match row_items {
                        Some(row_items) => column.push(Some(&row_items)),
                        None => column.push_null_item(),
                    }
                }
            }
        }
    }
    Ok(column)
}

// ---- Writing.

/// Writes `table` to `path` atomically (see [`TableWriter`]).
///
/// # Errors
/// [`TableError::Write`] naming the file, if it cannot be created, written, synced or
/// renamed into place; the destination is then left as it was.
pub fn write(table: &Table, path: &Path, format: Format) -> Result<(), TableError> {
    let mut writer = TableWriter::create(path, format, &table.fields())?;
    writer.write_batch(table)?;
    writer.finish()
}

/// Writes a table batch by batch to a temporary file beside its destination (hidden, named
/// after it), and on [`finish`](Self::finish) syncs it and renames it into place, then syncs
/// the directory. Dropped unfinished, it deletes the temporary file: the destination is
/// never truncated or half written.
pub struct TableWriter {
    sink: Option<Sink>,
    file: File,
    fields: Vec<Field>,
    temporary: PathBuf,
    path: PathBuf,
}

enum Sink {
    Parquet(Box<polars::io::parquet::write::BatchedWriter<File>>),
    Csv(polars::io::csv::write::BatchedWriter<File>),
}

impl fmt::Debug for TableWriter {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TableWriter")
            .field("path", &self.path)
            .field("temporary", &self.temporary)
            .field("fields", &self.fields)
            .finish_non_exhaustive()
    }
}

/// Distinguishes the temporary files of one process's writers.
static TEMPORARY_FILES: AtomicU64 = AtomicU64::new(0);

impl TableWriter {
    /// Starts writing a table of `fields` to `path`.
    ///
    /// # Errors
    /// [`TableError::Write`] if the temporary file cannot be created (a missing or
    /// read-only directory) or a field's type cannot be written in `format`.
    pub fn create(path: &Path, format: Format, fields: &[Field]) -> Result<Self, TableError> {
        let name = path
            .file_name()
            .map(|name| name.to_string_lossy().to_string())
            .unwrap_or_default();
        let temporary = path.with_file_name(format!(
            ".{name}.tmp-{}-{}",
            std::process::id(),
            TEMPORARY_FILES.fetch_add(1, Ordering::Relaxed)
        ));
        let write_error = |source: std::io::Error| TableError::Write {
            path: path.to_path_buf(),
            source,
        };
        let file = File::create_new(&temporary).map_err(write_error)?;
        let mut writer = Self {
            sink: None,
            file,
            fields: fields.to_vec(),
            temporary,
            path: path.to_path_buf(),
        };
        let sink = (|| {
            let schema = pl::Schema::from_iter(
                fields
                    .iter()
                    .map(|field| {
                        Ok(pl::Field::new(
                            field.name.as_str().into(),
                            dtype_of(&field.column_type)?,
                        ))
                    })
                    .collect::<pl::PolarsResult<Vec<_>>>()?,
            );
            let handle = writer.file.try_clone()?;
            Ok::<_, pl::PolarsError>(match format {
                Format::Parquet => Sink::Parquet(Box::new(
                    pl::ParquetWriter::new(handle)
                        .with_compression(pl::ParquetCompression::Snappy)
                        .batched(&schema)?,
                )),
                Format::Csv => Sink::Csv(
                    pl::CsvWriter::new(handle)
                        .include_header(true)
                        .batched(&schema)?,
                ),
            })
        })()
        .map_err(|error| writer.polars_error(&error))?;
        writer.sink = Some(sink);
        Ok(writer)
    }

    /// Appends a batch whose columns are the writer's fields, in order.
    ///
    /// # Errors
    /// [`TableError::Shape`] if the batch's columns differ from the writer's fields,
    /// [`TableError::Write`] if writing fails.
    pub fn write_batch(&mut self, batch: &Table) -> Result<(), TableError> {
        if batch.fields() != self.fields {
            return Err(TableError::Shape {
                reason: format!(
                    "a batch for {} has columns {:?}, not the writer's {:?}",
                    self.path.display(),
                    batch.fields(),
                    self.fields
                ),
            });
        }
        let frame = frame_of(batch).map_err(|error| self.polars_error(&error))?;
        let result = match self.sink.as_mut() {
            Some(Sink::Parquet(sink)) => sink.write_batch(&frame),
            Some(Sink::Csv(sink)) => sink.write_batch(&frame),
            None => return Err(self.io_error(std::io::Error::other("the writer is closed"))),
        };
        result.map_err(|error| self.polars_error(&error))
    }

    /// Finishes the file, syncs it, renames it into place and syncs its directory.
    ///
    /// # Errors
    /// [`TableError::Write`] if any step fails; the temporary file is then deleted and the
    /// destination left as it was.
    pub fn finish(mut self) -> Result<(), TableError> {
        let result = match self.sink.take() {
            Some(Sink::Parquet(sink)) => sink.finish().map(drop),
            Some(Sink::Csv(mut sink)) => sink.finish(),
            None => Ok(()),
        };
        result.map_err(|error| self.polars_error(&error))?;
        self.file
            .sync_all()
            .map_err(|source| self.io_error(source))?;
        std::fs::rename(&self.temporary, &self.path).map_err(|source| self.io_error(source))?;
        // The rename is durable once the directory is synced.
        sync_directory(&self.path);
        // Nothing left to delete.
        self.temporary = PathBuf::new();
        Ok(())
    }

    fn io_error(&self, source: std::io::Error) -> TableError {
        TableError::Write {
            path: self.path.clone(),
            source,
        }
    }

    fn polars_error(&self, error: &pl::PolarsError) -> TableError {
        match error {
            pl::PolarsError::IO { error, .. } => {
                self.io_error(std::io::Error::new(error.kind(), error.to_string()))
            }
            other => self.io_error(std::io::Error::other(crate::error::polars_reason(other))),
        }
    }
}

impl Drop for TableWriter {
    fn drop(&mut self) {
        if !self.temporary.as_os_str().is_empty() {
            // Best effort: the file is hidden and named as temporary.
            let _ = std::fs::remove_file(&self.temporary);
        }
    }
}

/// Syncs the directory holding `path`, so that a rename into it survives a crash. Best
/// effort: some file systems cannot sync a directory, and the data itself is synced.
pub(crate) fn sync_directory(path: &Path) {
    let directory = match path.parent() {
        Some(parent) if !parent.as_os_str().is_empty() => parent,
        _ => Path::new("."),
    };
    if let Ok(handle) = File::open(directory) {
        let _ = handle.sync_all();
    }
}

/// A table as a Polars frame.
fn frame_of(table: &Table) -> pl::PolarsResult<pl::DataFrame> {
    let columns = table
        .columns
        .iter()
        .map(|column| polars_column(column.name(), column.values()))
        .collect::<pl::PolarsResult<Vec<_>>>()?;
    pl::DataFrame::new(table.rows, columns)
}

fn polars_column(name: &str, values: &Values) -> pl::PolarsResult<pl::Column> {
    let name: pl::PlSmallStr = name.into();
    Ok(match values {
        Values::Bool(values) => pl::Column::new(name, values),
        Values::I16(values) => pl::Column::new(name, values),
        Values::I32(values) => pl::Column::new(name, values),
        Values::I64(values) => pl::Column::new(name, values),
        Values::U32(values) => pl::Column::new(name, values),
        Values::U64(values) => pl::Column::new(name, values),
        Values::F32(values) => pl::Column::new(name, values),
        Values::F64(values) => pl::Column::new(name, values),
        Values::Text(values) => {
            pl::StringChunked::from_iter_options(name, values.iter()).into_column()
        }
        Values::Binary(values) => {
            pl::BinaryChunked::from_iter_options(name, values.iter().map(Option::as_deref))
                .into_column()
        }
        Values::ListU32(lists) => {
            let mut builder = pl::ListPrimitiveChunkedBuilder::<pl::UInt32Type>::new(
                name,
                lists.len(),
                lists.items.len(),
                pl::DataType::UInt32,
            );
            let null_item = pl::Series::new(pl::PlSmallStr::EMPTY, [None::<u32>]);
            for list in lists.iter() {
                match list {
                    ListCell::Null => builder.append_opt_slice(None),
                    ListCell::Items(items) => builder.append_slice(items),
                    ListCell::NullItem => {
                        pl::ListBuilderTrait::append_series(&mut builder, &null_item)?;
                    }
                }
            }
            pl::ListBuilderTrait::finish(&mut builder)
                .into_series()
                .into_column()
        }
        Values::Date(values) => pl::Column::new(name, values).cast(&pl::DataType::Date)?,
        Values::Timestamp {
            unit,
            time_zone,
            values,
        } => pl::Column::new(name, values).cast(&dtype_of(&ColumnType::Timestamp {
            unit: *unit,
            time_zone: time_zone.clone(),
        })?)?,
    })
}
