//! Writing tables atomically: to a temporary file beside the destination, synced, then
//! renamed into place.

use std::fmt;
use std::fs::File;
use std::path::{Path, PathBuf};
use std::sync::atomic::AtomicU64;
use std::sync::atomic::Ordering;

use polars::prelude as pl;
use polars::prelude::{IntoColumn, IntoSeries, NamedFrom, NewChunkedArray, SerWriter};

use super::{ColumnType, Field, Format, ListCell, Table, TableError, TimeUnit, Values};

/// Distinguishes the temporary files of one process's writers.
static TEMPORARY_FILES: AtomicU64 = AtomicU64::new(0);

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
        .columns()
        .iter()
        .map(|column| polars_column(column.name(), column.values()))
        .collect::<pl::PolarsResult<Vec<_>>>()?;
    pl::DataFrame::new(table.rows(), columns)
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

impl fmt::Debug for TableWriter {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TableWriter")
            .field("path", &self.path)
            .field("temporary", &self.temporary)
            .field("fields", &self.fields)
            .finish_non_exhaustive()
    }
}

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
