//! Reading tables: a file's schema, chosen columns whole, or in batches of bounded size
//! (Polars' streaming engine on a thread, batches handed over a bounded channel).

use std::fs::File;
use std::num::NonZeroUsize;
use std::path::{Path, PathBuf};
use std::sync::mpsc::{Receiver, sync_channel};
use std::thread::JoinHandle;

use polars::prelude as pl;
use polars::prelude::{LazyFileListReader, SerReader};

use super::{
    Column, ColumnType, Field, Format, Table, TableError, Texts, TimeUnit, U32Lists, Values,
};

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
