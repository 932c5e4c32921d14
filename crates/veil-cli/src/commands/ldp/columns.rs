//! Parquet in and out for the LDP commands, through `arrow`/`parquet` (no Polars: these
//! commands must build and run without the batch engine).
//!
//! Report files have one row per report: `protocol_id` (UInt64) and the oracle's fields —
//! grr `value`; oue `ones` (list of UInt32); olh `seed`, `value`; hadamard `column`; hcms
//! `hash`, `column`, `positive`; numeric `positive` (Duchi) or `cell` (piecewise), one of
//! the two per row. A file with one binary column `report` in Veil's compact encoding is
//! read as well.

use std::fs::File;
use std::path::Path;
use std::sync::Arc;

use anyhow::Context;
use arrow_array::builder::{BooleanBuilder, ListBuilder, UInt32Builder, UInt64Builder};
use arrow_array::cast::AsArray;
use arrow_array::types::{
    Float32Type, Float64Type, Int8Type, Int16Type, Int32Type, Int64Type, UInt8Type, UInt16Type,
    UInt32Type, UInt64Type,
};
use arrow_array::{Array, ArrayRef, RecordBatch, RecordBatchReader};
use arrow_schema::{DataType, Field, Schema, SchemaRef};
use parquet::arrow::ArrowWriter;
use parquet::arrow::ProjectionMask;
use parquet::arrow::arrow_reader::{ParquetRecordBatchReader, ParquetRecordBatchReaderBuilder};
use parquet::basic::Compression;
use parquet::file::properties::WriterProperties;
use veil_ldp::{LdpError, Oracle, Payload, Protocol, Report};

use crate::exit::usage_error;

const BATCH_ROWS: usize = 1 << 16;

/// One input cell.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Value {
    Null,
    Text(String),
    Integer(i128),
    Number(f64),
}

fn open_reader(
    path: &Path,
    columns: &[&str],
    what: &str,
) -> anyhow::Result<(ParquetRecordBatchReader, SchemaRef)> {
    let file = File::open(path).with_context(|| format!("opening {what} {}", path.display()))?;
    let builder = ParquetRecordBatchReaderBuilder::try_new(file)
        .with_context(|| format!("reading {what} {} as Parquet", path.display()))?;
    let schema = builder.schema().clone();
    let mut indices = Vec::new();
    for column in columns {
        let index = schema.index_of(column).map_err(|_| {
            let available: Vec<&str> = schema
                .fields()
                .iter()
                .map(|field| field.name().as_str())
                .collect();
            usage_error(format!(
                "{what} {} has no column {column:?} (columns: {})",
                path.display(),
                available.join(", ")
            ))
        })?;
        indices.push(index);
    }
    let mask = ProjectionMask::roots(builder.parquet_schema(), indices);
    let reader = builder
        .with_projection(mask)
        .with_batch_size(BATCH_ROWS)
        .build()
        .with_context(|| format!("reading {what} {}", path.display()))?;
    let projected = reader.schema();
    Ok((reader, projected))
}

/// Reads one column of an input file, batch by batch.
pub(crate) struct ColumnReader {
    reader: ParquetRecordBatchReader,
    column: String,
    path: String,
}

pub(crate) fn open_column(path: &Path, column: &str) -> anyhow::Result<ColumnReader> {
    let (reader, schema) = open_reader(path, &[column], "input")?;
    let data_type = schema.field(0).data_type().clone();
    if convert(&arrow_array::new_empty_array(&data_type)).is_none() {
        return Err(usage_error(format!(
            "column {column:?} of {} has type {data_type}, which veil ldp simulate cannot read: give text, integers or floating-point numbers",
            path.display()
        )));
    }
    Ok(ColumnReader {
        reader,
        column: column.to_string(),
        path: path.display().to_string(),
    })
}

impl ColumnReader {
    pub(crate) fn next_batch(&mut self) -> anyhow::Result<Option<Vec<Value>>> {
        let Some(batch) = self.reader.next() else {
            return Ok(None);
        };
        let batch = batch.with_context(|| format!("reading {}", self.path))?;
        let values = convert(batch.column(0))
            .with_context(|| format!("column {:?} of {} changed type", self.column, self.path))?;
        Ok(Some(values))
    }
}

macro_rules! primitive {
    ($array:expr, $type:ty, $variant:ident, $map:expr) => {
        $array.as_primitive_opt::<$type>().map(|values| {
            values
                .iter()
                .map(|value| value.map_or(Value::Null, |v| Value::$variant($map(v))))
                .collect()
        })
    };
}

fn text_values<'a>(values: impl Iterator<Item = Option<&'a str>>) -> Vec<Value> {
    values
        .map(|value| value.map_or(Value::Null, |text| Value::Text(text.to_string())))
        .collect()
}

/// The cells of a column, or `None` for a type the simulator does not read.
fn convert(array: &ArrayRef) -> Option<Vec<Value>> {
    match array.data_type() {
        DataType::Utf8 => array.as_string_opt::<i32>().map(|a| text_values(a.iter())),
        DataType::LargeUtf8 => array.as_string_opt::<i64>().map(|a| text_values(a.iter())),
        DataType::Utf8View => array.as_string_view_opt().map(|a| text_values(a.iter())),
        DataType::Dictionary(_, value_type)
            if matches!(
                value_type.as_ref(),
                DataType::Utf8 | DataType::LargeUtf8 | DataType::Utf8View
            ) =>
        {
            let dictionary = array.as_any_dictionary_opt()?;
            let values = convert(dictionary.values())?;
            let keys = dictionary.normalized_keys();
            Some(
                keys.iter()
                    .enumerate()
                    .map(|(row, &key)| {
                        if array.is_null(row) {
                            Value::Null
                        } else {
                            values.get(key).cloned().unwrap_or(Value::Null)
                        }
                    })
                    .collect(),
            )
        }
        DataType::Int8 => primitive!(array, Int8Type, Integer, i128::from),
        DataType::Int16 => primitive!(array, Int16Type, Integer, i128::from),
        DataType::Int32 => primitive!(array, Int32Type, Integer, i128::from),
        DataType::Int64 => primitive!(array, Int64Type, Integer, i128::from),
        DataType::UInt8 => primitive!(array, UInt8Type, Integer, i128::from),
        DataType::UInt16 => primitive!(array, UInt16Type, Integer, i128::from),
        DataType::UInt32 => primitive!(array, UInt32Type, Integer, i128::from),
        DataType::UInt64 => primitive!(array, UInt64Type, Integer, i128::from),
        DataType::Float32 => primitive!(array, Float32Type, Number, f64::from),
        DataType::Float64 => primitive!(array, Float64Type, Number, |v: f64| v),
        _ => None,
    }
}

/// The report columns for a protocol's oracle, after `protocol_id`.
fn report_fields(protocol: &Protocol) -> Vec<Field> {
    let u32_field = |name: &str| Field::new(name, DataType::UInt32, false);
    match protocol.oracle() {
        Oracle::Grr(_) => vec![u32_field("value")],
        Oracle::Oue(_) => vec![Field::new(
            "ones",
            DataType::List(Arc::new(Field::new("item", DataType::UInt32, true))),
            false,
        )],
        Oracle::Olh(_) => vec![
            Field::new("seed", DataType::UInt64, false),
            u32_field("value"),
        ],
        Oracle::Hadamard(_) => vec![u32_field("column")],
        Oracle::Hcms(_) => vec![
            u32_field("hash"),
            u32_field("column"),
            Field::new("positive", DataType::Boolean, false),
        ],
        _ => vec![
            Field::new("positive", DataType::Boolean, true),
            Field::new("cell", DataType::UInt32, true),
        ],
    }
}

/// Writes reports to a Parquet file in batches.
pub(crate) struct ReportWriter {
    writer: ArrowWriter<File>,
    schema: SchemaRef,
    protocol_ids: UInt64Builder,
    first: UInt32Builder,
    seeds: UInt64Builder,
    second: UInt32Builder,
    flags: BooleanBuilder,
    lists: ListBuilder<UInt32Builder>,
    rows: usize,
    path: String,
}

impl ReportWriter {
    pub(crate) fn create(path: &Path, protocol: &Protocol) -> anyhow::Result<Self> {
        let mut fields = vec![Field::new("protocol_id", DataType::UInt64, false)];
        fields.extend(report_fields(protocol));
        let schema = Arc::new(Schema::new(fields));
        let file = File::create(path).with_context(|| format!("creating {}", path.display()))?;
        let properties = WriterProperties::builder()
            .set_compression(Compression::SNAPPY)
            .build();
        let writer = ArrowWriter::try_new(file, schema.clone(), Some(properties))
            .with_context(|| format!("writing {}", path.display()))?;
        Ok(Self {
            writer,
            schema,
            protocol_ids: UInt64Builder::new(),
            first: UInt32Builder::new(),
            seeds: UInt64Builder::new(),
            second: UInt32Builder::new(),
            flags: BooleanBuilder::new(),
            lists: ListBuilder::new(UInt32Builder::new()),
            rows: 0,
            path: path.display().to_string(),
        })
    }

    pub(crate) fn push(&mut self, report: &Report) -> anyhow::Result<()> {
        self.protocol_ids.append_value(report.protocol);
        match &report.payload {
            Payload::Grr { value } | Payload::Hadamard { column: value } => {
                self.first.append_value(*value);
            }
            Payload::Oue { ones } => {
                self.lists.values().append_slice(ones);
                self.lists.append(true);
            }
            Payload::Olh { seed, value } => {
                self.seeds.append_value(*seed);
                self.first.append_value(*value);
            }
            Payload::Hcms {
                hash,
                column,
                positive,
            } => {
                self.first.append_value(*hash);
                self.second.append_value(*column);
                self.flags.append_value(*positive);
            }
            Payload::Duchi { positive } => {
                self.flags.append_value(*positive);
                self.first.append_null();
            }
            Payload::Piecewise { cell } => {
                self.flags.append_null();
                self.first.append_value(*cell);
            }
            other => anyhow::bail!("cannot write a {} report", other.kind()),
        }
        self.rows += 1;
        if self.rows >= BATCH_ROWS {
            self.flush()?;
        }
        Ok(())
    }

    fn flush(&mut self) -> anyhow::Result<()> {
        if self.rows == 0 {
            return Ok(());
        }
        let mut columns: Vec<ArrayRef> = vec![Arc::new(self.protocol_ids.finish())];
        for field in self.schema.fields().iter().skip(1) {
            let column: ArrayRef = match field.name().as_str() {
                "ones" => Arc::new(self.lists.finish()),
                "seed" => Arc::new(self.seeds.finish()),
                "positive" => Arc::new(self.flags.finish()),
                "column" if self.schema.fields().len() == 4 => Arc::new(self.second.finish()),
                _ => Arc::new(self.first.finish()),
            };
            columns.push(column);
        }
        let batch = RecordBatch::try_new(self.schema.clone(), columns)
            .with_context(|| format!("building a batch of reports for {}", self.path))?;
        self.writer
            .write(&batch)
            .with_context(|| format!("writing {}", self.path))?;
        self.rows = 0;
        Ok(())
    }

    pub(crate) fn finish(mut self) -> anyhow::Result<()> {
        self.flush()?;
        self.writer
            .close()
            .with_context(|| format!("finishing {}", self.path))?;
        Ok(())
    }
}

/// Reads reports from a Parquet file in batches; each row is a report or the reason it is
/// not one.
pub(crate) struct ReportReader {
    reader: ParquetRecordBatchReader,
    binary: bool,
    path: String,
    numeric: bool,
}

impl ReportReader {
    pub(crate) fn open(path: &Path, protocol: &Protocol) -> anyhow::Result<Self> {
        let probe = File::open(path).with_context(|| format!("opening {}", path.display()))?;
        let schema = ParquetRecordBatchReaderBuilder::try_new(probe)
            .with_context(|| format!("reading {} as Parquet", path.display()))?
            .schema()
            .clone();
        let binary = schema.index_of("report").is_ok() && schema.index_of("protocol_id").is_err();
        let fields = report_fields(protocol);
        let mut names = vec!["protocol_id"];
        names.extend(fields.iter().map(|field| field.name().as_str()));
        let names = if binary { vec!["report"] } else { names };
        let (reader, _) = open_reader(path, &names, "reports")?;
        Ok(Self {
            reader,
            binary,
            path: path.display().to_string(),
            numeric: protocol.oracle().name().is_numeric(),
        })
    }

    pub(crate) fn next_batch(&mut self) -> anyhow::Result<Option<Vec<Result<Report, LdpError>>>> {
        let Some(batch) = self.reader.next() else {
            return Ok(None);
        };
        let batch = batch.with_context(|| format!("reading {}", self.path))?;
        if self.binary {
            return Ok(Some(decode_binary(batch.column(0)).ok_or_else(|| {
                usage_error(format!("column \"report\" of {} is not binary", self.path))
            })?));
        }
        let rows = batch.num_rows();
        let wrong_type = |name: &str| {
            usage_error(format!(
                "column {name:?} of {} has type {}, not the report schema's",
                self.path,
                batch
                    .column_by_name(name)
                    .map_or_else(|| "?".to_string(), |c| c.data_type().to_string())
            ))
        };
        let u64s = |name: &str| {
            batch
                .column_by_name(name)
                .and_then(|c| c.as_primitive_opt::<UInt64Type>())
                .ok_or_else(|| wrong_type(name))
        };
        let u32s = |name: &str| {
            batch
                .column_by_name(name)
                .and_then(|c| c.as_primitive_opt::<UInt32Type>())
                .ok_or_else(|| wrong_type(name))
        };
        let bools = |name: &str| {
            batch
                .column_by_name(name)
                .and_then(|c| c.as_boolean_opt())
                .ok_or_else(|| wrong_type(name))
        };
        let ids = u64s("protocol_id")?;
        let null = |field: &str| LdpError::Corrupt {
            reason: format!("field {field} is null"),
        };
        let mut reports = Vec::with_capacity(rows);
        let names: Vec<String> = batch
            .schema()
            .fields()
            .iter()
            .map(|f| f.name().clone())
            .collect();
        let has = |name: &str| names.iter().any(|n| n == name);
        for row in 0..rows {
            if ids.is_null(row) {
                reports.push(Err(null("protocol_id")));
                continue;
            }
            let protocol = ids.value(row);
            let get32 = |array: &arrow_array::UInt32Array, field: &str| {
                if array.is_null(row) {
                    Err(null(field))
                } else {
                    Ok(array.value(row))
                }
            };
            let payload = if self.numeric {
                let flags = bools("positive")?;
                let cells = u32s("cell")?;
                match (flags.is_null(row), cells.is_null(row)) {
                    (false, true) => Ok(Payload::Duchi {
                        positive: flags.value(row),
                    }),
                    (true, false) => Ok(Payload::Piecewise {
                        cell: cells.value(row),
                    }),
                    _ => Err(LdpError::Corrupt {
                        reason: "exactly one of positive and cell must be set".to_string(),
                    }),
                }
            } else if has("ones") {
                let lists = batch
                    .column_by_name("ones")
                    .and_then(|c| c.as_list_opt::<i32>())
                    .ok_or_else(|| wrong_type("ones"))?;
                if lists.is_null(row) {
                    Err(null("ones"))
                } else {
                    let values = lists.value(row);
                    match values.as_primitive_opt::<UInt32Type>() {
                        Some(positions) if positions.null_count() == 0 => Ok(Payload::Oue {
                            ones: positions.values().to_vec(),
                        }),
                        Some(_) => Err(null("ones[]")),
                        None => return Err(wrong_type("ones")),
                    }
                }
            } else if has("seed") {
                let seeds = u64s("seed")?;
                if seeds.is_null(row) {
                    Err(null("seed"))
                } else {
                    get32(u32s("value")?, "value").map(|value| Payload::Olh {
                        seed: seeds.value(row),
                        value,
                    })
                }
            } else if has("hash") {
                let flags = bools("positive")?;
                let columns = u32s("column")?;
                get32(u32s("hash")?, "hash").and_then(|hash| {
                    let column = get32(columns, "column")?;
                    if flags.is_null(row) {
                        return Err(null("positive"));
                    }
                    Ok(Payload::Hcms {
                        hash,
                        column,
                        positive: flags.value(row),
                    })
                })
            } else if has("column") {
                get32(u32s("column")?, "column").map(|column| Payload::Hadamard { column })
            } else {
                get32(u32s("value")?, "value").map(|value| Payload::Grr { value })
            };
            reports.push(payload.map(|payload| Report { protocol, payload }));
        }
        Ok(Some(reports))
    }
}

fn decode_binary(array: &ArrayRef) -> Option<Vec<Result<Report, LdpError>>> {
    let decode = |value: Option<&[u8]>| match value {
        Some(bytes) => Report::decode(bytes),
        None => Err(LdpError::Truncated { what: "report" }),
    };
    match array.data_type() {
        DataType::Binary => array
            .as_binary_opt::<i32>()
            .map(|a| a.iter().map(decode).collect()),
        DataType::LargeBinary => array
            .as_binary_opt::<i64>()
            .map(|a| a.iter().map(decode).collect()),
        DataType::BinaryView => array
            .as_binary_view_opt()
            .map(|a| a.iter().map(decode).collect()),
        _ => None,
    }
}
