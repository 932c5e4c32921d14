//! Tables across the Arrow C stream interface: the one module of the engine with `unsafe`
//! code, because the interface is a C ABI (a struct of function pointers that the producer
//! fills in). Every `unsafe` block relies on [`ArrowStream::take`]'s contract and says how.
#![allow(unsafe_code)]

use std::ffi::c_void;
use std::path::Path;
use std::ptr::NonNull;

use polars::prelude::*;
use polars_arrow::array::{Array, DictionaryArray, StructArray};
use polars_arrow::ffi::{ArrowArrayStream, ArrowArrayStreamReader, export_iterator};

use crate::EngineError;
use crate::schema::{ColumnKind, SourceSchema};

/// A stream of record batches in the Arrow C stream interface (`ArrowArrayStream`), owned:
/// how tables cross from and to other Arrow libraries in the same process (pyarrow,
/// pandas, Python's Polars, DuckDB) without a copy and without depending on their version.
///
/// Its layout is the C struct's, so a pointer to it is a pointer to an `ArrowArrayStream`
/// (a Python capsule named `arrow_array_stream` can hold it). Dropping it releases the
/// stream, unless a consumer moved it out first, as the interface lets consumers do.
#[repr(transparent)]
pub struct ArrowStream(pub(super) ArrowArrayStream);

impl std::fmt::Debug for ArrowStream {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("ArrowStream(..)")
    }
}

impl ArrowStream {
    /// Moves the stream at `pointer` into a new value, leaving the struct at `pointer`
    /// released (its `release` callback null), as the interface asks of a consumer that
    /// takes a stream over. Its producer's callbacks are then called only through the
    /// returned value.
    ///
    /// # Safety
    /// `pointer` must be aligned and point to an initialised `ArrowArrayStream` that
    /// follows the Arrow C stream interface (and whose arrays follow the C data
    /// interface), that nothing else reads, writes or releases during this call, and whose
    /// callbacks may be called from any thread afterwards (the interface requires this
    /// of producers that allow it to be moved; pyarrow's and Polars' do).
    #[must_use]
    pub unsafe fn take(pointer: NonNull<c_void>) -> Self {
        let pointer = pointer.cast::<ArrowArrayStream>();
        // SAFETY: the caller guarantees that `pointer` is aligned, initialised and ours for
        // the call; writing an empty stream (all callbacks null) marks it released.
        Self(unsafe { std::ptr::replace(pointer.as_ptr(), ArrowArrayStream::empty()) })
    }
}

/// The kind of values of an Arrow column, as the job check sees it: a dictionary column
/// (a pandas `category`, a Polars `Categorical`) is a column of its values.
fn kind_of(dtype: &ArrowDataType) -> ColumnKind {
    match dtype {
        ArrowDataType::Dictionary(_, values, _) => kind_of(values),
        ArrowDataType::Date64 => ColumnKind::Timestamp,
        ArrowDataType::Time32(_) | ArrowDataType::Time64(_) => ColumnKind::Other("time".into()),
        other => ColumnKind::of(&DataType::from_arrow_dtype(other)),
    }
}

/// Whether a dictionary sits anywhere below the top of `dtype` (a list of categories):
/// the engine decodes top-level dictionaries only.
fn nested_dictionary(dtype: &ArrowDataType) -> bool {
    match dtype {
        ArrowDataType::List(field)
        | ArrowDataType::LargeList(field)
        | ArrowDataType::FixedSizeList(field, _)
        | ArrowDataType::Map(field, _) => {
            matches!(field.dtype, ArrowDataType::Dictionary(..)) || nested_dictionary(&field.dtype)
        }
        ArrowDataType::Struct(fields) => fields.iter().any(|field| {
            matches!(field.dtype, ArrowDataType::Dictionary(..)) || nested_dictionary(&field.dtype)
        }),
        ArrowDataType::Dictionary(_, values, _) => nested_dictionary(values),
        _ => false,
    }
}

/// A dictionary-encoded array as its values (`values[keys[i]]`, null where the key is).
fn decode_dictionary(name: &str, array: &dyn Array) -> PolarsResult<Option<Series>> {
    macro_rules! decode {
        ($($key:ty),*) => {$(
            if let Some(dictionary) = array.as_any().downcast_ref::<DictionaryArray<$key>>() {
                let keys = Series::from_arrow(name.into(), dictionary.keys().clone().boxed())?
                    .strict_cast(&IDX_DTYPE)?;
                let values = Series::from_arrow(name.into(), dictionary.values().clone())?;
                return values.take(keys.idx()?).map(Some);
            }
        )*};
    }
    decode!(i8, i16, i32, i64, u8, u16, u32, u64);
    Ok(None)
}

/// One column from its Arrow chunks.
fn column(field: &ArrowField, chunks: Vec<ArrayRef>) -> PolarsResult<Column> {
    let name = field.name.as_str();
    if let ArrowDataType::Dictionary(_, values, _) = &field.dtype {
        let mut decoded = Series::new_empty(name.into(), &DataType::from_arrow_dtype(values));
        for chunk in &chunks {
            let part = decode_dictionary(name, chunk.as_ref())?.ok_or_else(
                || polars_err!(ComputeError: "column {name:?}: a dictionary of unknown key type"),
            )?;
            decoded.append_owned(part)?;
        }
        return Ok(decoded.into_column());
    }
    if chunks.is_empty() {
        return Ok(
            Series::new_empty(name.into(), &DataType::from_arrow_field(field)).into_column(),
        );
    }
    Ok(Series::try_from((field, chunks))?.into_column())
}

/// Reads a stream of record batches into a frame of the columns `keep` accepts (all the
/// others are released as they arrive, unread), and the schema of every column.
///
/// # Errors
/// [`EngineError::SourceUnreadable`] naming `path` (where the job would have read the
/// table) if the stream fails, is not a stream of record batches, or holds a column the
/// engine cannot read.
pub(crate) fn read(
    stream: ArrowStream,
    path: &Path,
    keep: &dyn Fn(&str) -> bool,
) -> Result<(DataFrame, SourceSchema), EngineError> {
    let unreadable = |reason: String| EngineError::SourceUnreadable {
        path: path.to_path_buf(),
        format: "an Arrow table",
        reason,
    };
    // SAFETY: `ArrowStream::take`'s contract: the stream follows the C stream interface.
    let mut reader = unsafe { ArrowArrayStreamReader::try_new(Box::new(stream.0)) }
        .map_err(|error| unreadable(error.to_string()))?;
    let ArrowDataType::Struct(fields) = reader.field().dtype().clone() else {
        return Err(unreadable(
            "it is a stream of single arrays, not of record batches (a table)".into(),
        ));
    };
    let schema = SourceSchema {
        columns: fields
            .iter()
            .map(|field| (field.name.to_string(), kind_of(&field.dtype)))
            .collect(),
    };
    let kept: Vec<usize> = (0..fields.len())
        .filter(|&index| keep(fields[index].name.as_str()))
        .collect();
    for &index in &kept {
        if nested_dictionary(&fields[index].dtype) {
            return Err(unreadable(format!(
                "column {:?} holds dictionary-encoded values inside a list or struct; decode them first",
                fields[index].name.as_str()
            )));
        }
    }
    let mut chunks: Vec<Vec<ArrayRef>> = vec![Vec::new(); kept.len()];
    loop {
        // SAFETY: as above; each array the stream yields follows the C data interface.
        let Some(batch) = (unsafe { reader.next() }) else {
            break;
        };
        let batch = batch.map_err(|error| unreadable(error.to_string()))?;
        let Some(batch) = batch.as_any().downcast_ref::<StructArray>() else {
            return Err(unreadable(
                "a batch of the stream is not a record batch".into(),
            ));
        };
        for (slot, &index) in chunks.iter_mut().zip(&kept) {
            let Some(array) = batch.values().get(index) else {
                return Err(unreadable(
                    "a batch of the stream has fewer columns than its schema".into(),
                ));
            };
            slot.push(array.clone());
        }
    }
    drop(reader);
    let columns = kept
        .iter()
        .zip(chunks)
        .map(|(&index, chunks)| {
            column(&fields[index], chunks).map_err(|error| {
                unreadable(format!(
                    "column {:?}: {}",
                    fields[index].name.as_str(),
                    EngineError::polars("reading the column", &error)
                ))
            })
        })
        .collect::<Result<Vec<Column>, EngineError>>()?;
    let frame = DataFrame::new_infer_height(columns).map_err(|error| {
        unreadable(EngineError::polars("assembling the table", &error).to_string())
    })?;
    Ok((frame, schema))
}

/// A frame as a stream of record batches, with text as (large) UTF-8 rather than string
/// views, which every Arrow reader knows.
pub(crate) fn export(frame: &DataFrame) -> ArrowStream {
    let mut frame = frame.clone();
    frame.rechunk_mut();
    let fields: Vec<ArrowField> = frame
        .columns()
        .iter()
        .map(|column| column.field().to_arrow(CompatLevel::oldest()))
        .collect();
    let batches = frame
        .iter_chunks(CompatLevel::oldest(), false)
        .map(|batch| batch.into_arrays())
        .collect();
    from_batches(fields, batches)
}

/// Record batches (each a column's array per field) as a stream.
pub(super) fn from_batches(fields: Vec<ArrowField>, batches: Vec<Vec<ArrayRef>>) -> ArrowStream {
    let dtype = ArrowDataType::Struct(fields);
    let arrays: Vec<PolarsResult<Box<dyn Array>>> = batches
        .into_iter()
        .map(|columns| {
            let length = columns.first().map_or(0, |column| column.len());
            StructArray::try_new(dtype.clone(), length, columns, None).map(|array| array.boxed())
        })
        .collect();
    let field = ArrowField::new(PlSmallStr::EMPTY, dtype, false);
    ArrowStream(export_iterator(Box::new(arrays.into_iter()), field))
}
