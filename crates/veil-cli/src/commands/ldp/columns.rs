//! Files in and out for the LDP commands, through `veil_engine::table` (Polars underneath,
//! the one columnar library the build compiles).
//!
//! Report files have one row per report: `protocol_id` (UInt64) and the oracle's fields —
//! grr `value`; oue `ones` (list of UInt32); olh `seed`, `value`; hadamard `column`; hcms
//! `hash`, `column`, `positive`; numeric `positive` (Duchi) or `cell` (piecewise), one of
//! the two per row. A file with one binary column `report` in Veil's compact encoding is
//! read as well.

use std::num::NonZeroUsize;
use std::path::Path;

use anyhow::Context;
use veil_engine::table::{
    self, BatchReader, Column, ColumnType, Field, Format, ListCell, Table, TableError, TableWriter,
    U32Lists, Values,
};
use veil_ldp::{LdpError, Oracle, Payload, Protocol, Report};

use crate::exit::{Failure, classified, usage_error};

const BATCH_ROWS: NonZeroUsize = NonZeroUsize::new(1 << 16).expect("a non-zero constant");

/// One input cell, borrowed from its batch.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) enum Value<'a> {
    Null,
    Text(&'a str),
    Integer(i128),
    Number(f64),
}

/// The format of a data file: named by its extension, Parquet otherwise.
pub(crate) fn format_of(path: &Path) -> Format {
    Format::of_path(path).unwrap_or(Format::Parquet)
}

/// A table error as the CLI reports it: an input file's problems (missing, unreadable, no
/// such column, a type Veil does not read) are the user's to fix (exit 2); failures to write
/// are failures while running (exit 1).
pub(crate) fn table_error(error: TableError) -> anyhow::Error {
    let failure = match error {
        TableError::Open { .. }
        | TableError::Unreadable { .. }
        | TableError::ColumnNotFound { .. }
        | TableError::ColumnType { .. } => Some(Failure::Usage),
        _ => None,
    };
    classified(error, failure)
}

fn open_batches(path: &Path, columns: &[&str], what: &str) -> anyhow::Result<BatchReader> {
    table::read_batches(path, format_of(path), columns, BATCH_ROWS)
        .map_err(table_error)
        .with_context(|| format!("reading {what} {}", path.display()))
}

/// The fields of a file, or a usage error naming it.
fn fields_of(path: &Path, what: &str) -> anyhow::Result<Vec<Field>> {
    table::schema(path, format_of(path))
        .map_err(table_error)
        .with_context(|| format!("reading {what} {}", path.display()))
}

/// Reads one column of an input file, batch by batch.
pub(crate) struct ColumnReader {
    reader: BatchReader,
    column: String,
    path: String,
}

/// Whether `veil ldp simulate` reads values of this type.
fn is_value_type(column_type: &ColumnType) -> bool {
    matches!(
        column_type,
        ColumnType::Text
            | ColumnType::I16
            | ColumnType::I32
            | ColumnType::I64
            | ColumnType::U32
            | ColumnType::U64
            | ColumnType::F32
            | ColumnType::F64
    )
}

pub(crate) fn open_column(path: &Path, column: &str) -> anyhow::Result<ColumnReader> {
    let fields = fields_of(path, "input")?;
    let Some(field) = fields.iter().find(|field| field.name == column) else {
        let available: Vec<&str> = fields.iter().map(|field| field.name.as_str()).collect();
        return Err(usage_error(format!(
            "input {} has no column {column:?} (columns: {})",
            path.display(),
            available.join(", ")
        )));
    };
    if !is_value_type(&field.column_type) {
        return Err(usage_error(format!(
            "column {column:?} of {} has type {}, which veil ldp simulate cannot read: give text, integers or floating-point numbers",
            path.display(),
            field.column_type
        )));
    }
    Ok(ColumnReader {
        reader: open_batches(path, &[column], "input")?,
        column: column.to_string(),
        path: path.display().to_string(),
    })
}

impl ColumnReader {
    /// The next batch of the column's values; `None` at the end. Read its cells with
    /// [`cell`].
    pub(crate) fn next_batch(&mut self) -> anyhow::Result<Option<Values>> {
        let Some(batch) = self.reader.next() else {
            return Ok(None);
        };
        let batch = batch
            .map_err(table_error)
            .with_context(|| format!("reading {}", self.path))?;
        match batch.into_columns().pop().map(Column::into_values) {
            Some(values) if is_value_type(&values.column_type()) => Ok(Some(values)),
            _ => anyhow::bail!("column {:?} of {} changed type", self.column, self.path),
        }
    }
}

/// The cell at `row` of a batch from [`ColumnReader::next_batch`].
pub(crate) fn cell(values: &Values, row: usize) -> Value<'_> {
    fn integer<T: Copy + Into<i128>>(values: &[Option<T>], row: usize) -> Value<'static> {
        values[row].map_or(Value::Null, |value| Value::Integer(value.into()))
    }
    match values {
        Values::Text(texts) => texts.get(row).map_or(Value::Null, Value::Text),
        Values::I16(values) => integer(values, row),
        Values::I32(values) => integer(values, row),
        Values::I64(values) => integer(values, row),
        Values::U32(values) => integer(values, row),
        Values::U64(values) => integer(values, row),
        Values::F32(values) => values[row].map_or(Value::Null, |v| Value::Number(f64::from(v))),
        Values::F64(values) => values[row].map_or(Value::Null, Value::Number),
        // `next_batch` hands out only the types above.
        _ => Value::Null,
    }
}

/// The report columns for a protocol's oracle, after `protocol_id`.
fn report_fields(protocol: &Protocol) -> Vec<Field> {
    let u32_field = |name: &str| Field::new(name, ColumnType::U32);
    match protocol.oracle() {
        Oracle::Grr(_) => vec![u32_field("value")],
        Oracle::Oue(_) => vec![Field::new("ones", ColumnType::ListU32)],
        Oracle::Olh(_) => vec![Field::new("seed", ColumnType::U64), u32_field("value")],
        Oracle::Hadamard(_) => vec![u32_field("column")],
        Oracle::Hcms(_) => vec![
            u32_field("hash"),
            u32_field("column"),
            Field::new("positive", ColumnType::Bool),
        ],
        _ => vec![Field::new("positive", ColumnType::Bool), u32_field("cell")],
    }
}

/// Writes reports to a Parquet file in batches.
pub(crate) struct ReportWriter {
    writer: TableWriter,
    fields: Vec<Field>,
    protocol_ids: Vec<Option<u64>>,
    first: Vec<Option<u32>>,
    seeds: Vec<Option<u64>>,
    second: Vec<Option<u32>>,
    flags: Vec<Option<bool>>,
    lists: U32Lists,
    rows: usize,
    path: String,
}

impl ReportWriter {
    pub(crate) fn create(path: &Path, protocol: &Protocol) -> anyhow::Result<Self> {
        let mut fields = vec![Field::new("protocol_id", ColumnType::U64)];
        fields.extend(report_fields(protocol));
        let writer = TableWriter::create(path, Format::Parquet, &fields)
            .map_err(table_error)
            .with_context(|| format!("creating {}", path.display()))?;
        Ok(Self {
            writer,
            fields,
            protocol_ids: Vec::with_capacity(BATCH_ROWS.get()),
            first: Vec::with_capacity(BATCH_ROWS.get()),
            seeds: Vec::new(),
            second: Vec::new(),
            flags: Vec::new(),
            lists: U32Lists::new(),
            rows: 0,
            path: path.display().to_string(),
        })
    }

    pub(crate) fn push(&mut self, report: &Report) -> anyhow::Result<()> {
        self.protocol_ids.push(Some(report.protocol));
        match &report.payload {
            Payload::Grr { value } | Payload::Hadamard { column: value } => {
                self.first.push(Some(*value));
            }
            Payload::Oue { ones } => self.lists.push(Some(ones)),
            Payload::Olh { seed, value } => {
                self.seeds.push(Some(*seed));
                self.first.push(Some(*value));
            }
            Payload::Hcms {
                hash,
                column,
                positive,
            } => {
                self.first.push(Some(*hash));
                self.second.push(Some(*column));
                self.flags.push(Some(*positive));
            }
            Payload::Duchi { positive } => {
                self.flags.push(Some(*positive));
                self.first.push(None);
            }
            Payload::Piecewise { cell } => {
                self.flags.push(None);
                self.first.push(Some(*cell));
            }
            other => anyhow::bail!("cannot write a {} report", other.kind()),
        }
        self.rows += 1;
        if self.rows >= BATCH_ROWS.get() {
            self.flush()?;
        }
        Ok(())
    }

    fn flush(&mut self) -> anyhow::Result<()> {
        if self.rows == 0 {
            return Ok(());
        }
        let hcms = self.fields.len() == 4;
        let mut columns = Vec::with_capacity(self.fields.len());
        for field in &self.fields {
            let values = match field.name.as_str() {
                "protocol_id" => Values::U64(std::mem::take(&mut self.protocol_ids)),
                "ones" => Values::ListU32(std::mem::take(&mut self.lists)),
                "seed" => Values::U64(std::mem::take(&mut self.seeds)),
                "positive" => Values::Bool(std::mem::take(&mut self.flags)),
                "column" if hcms => Values::U32(std::mem::take(&mut self.second)),
                _ => Values::U32(std::mem::take(&mut self.first)),
            };
            columns.push(Column::new(field.name.clone(), values));
        }
        let batch = Table::new(columns).map_err(table_error)?;
        self.writer
            .write_batch(&batch)
            .map_err(table_error)
            .with_context(|| format!("writing {}", self.path))?;
        // The buffers go back, emptied, for the next batch: no allocation per batch.
        for (field, column) in self.fields.iter().zip(batch.into_columns()) {
            match (field.name.as_str(), column.into_values()) {
                ("protocol_id", Values::U64(mut values)) => {
                    values.clear();
                    self.protocol_ids = values;
                }
                ("seed", Values::U64(mut values)) => {
                    values.clear();
                    self.seeds = values;
                }
                ("ones", Values::ListU32(mut lists)) => {
                    lists.clear();
                    self.lists = lists;
                }
                ("positive", Values::Bool(mut values)) => {
                    values.clear();
                    self.flags = values;
                }
                ("column", Values::U32(mut values)) if hcms => {
                    values.clear();
                    self.second = values;
                }
                (_, Values::U32(mut values)) => {
                    values.clear();
                    self.first = values;
                }
                _ => {}
            }
        }
        self.rows = 0;
        Ok(())
    }

    /// Writes the last batch and renames the file into place.
    pub(crate) fn finish(mut self) -> anyhow::Result<()> {
        self.flush()?;
        let path = self.path;
        self.writer
            .finish()
            .map_err(table_error)
            .with_context(|| format!("finishing {path}"))
    }
}

/// Reads reports from a Parquet file in batches; each row is a report or the reason it is
/// not one.
pub(crate) struct ReportReader {
    reader: BatchReader,
    binary: bool,
    path: String,
    numeric: bool,
    fields: Vec<Field>,
}

impl ReportReader {
    pub(crate) fn open(path: &Path, protocol: &Protocol) -> anyhow::Result<Self> {
        let fields = fields_of(path, "reports")?;
        let has = |name: &str| fields.iter().any(|field| field.name == name);
        let binary = has("report") && !has("protocol_id");
        let expected = if binary {
            vec![Field::new("report", ColumnType::Binary)]
        } else {
            let mut expected = vec![Field::new("protocol_id", ColumnType::U64)];
            expected.extend(report_fields(protocol));
            expected
        };
        for field in &expected {
            let found = fields.iter().find(|found| found.name == field.name);
            if let Some(found) = found.filter(|found| found.column_type != field.column_type) {
                return Err(wrong_type(path, field, &found.column_type));
            }
        }
        let names: Vec<&str> = expected.iter().map(|field| field.name.as_str()).collect();
        let reader = open_batches(path, &names, "reports")?;
        Ok(Self {
            reader,
            binary,
            path: path.display().to_string(),
            numeric: protocol.oracle().name().is_numeric(),
            fields: expected,
        })
    }

    /// Replaces `reports` with the next batch's rows, each a report or the reason it is
    /// not one (the vector is reused from batch to batch); `false` at the end.
    pub(crate) fn next_batch(
        &mut self,
        reports: &mut Vec<Result<Report, LdpError>>,
    ) -> anyhow::Result<bool> {
        reports.clear();
        let Some(batch) = self.reader.next() else {
            return Ok(false);
        };
        let batch = batch
            .map_err(table_error)
            .with_context(|| format!("reading {}", self.path))?;
        if self.binary {
            match batch.columns().first().map(Column::values) {
                Some(Values::Binary(values)) => {
                    reports.extend(values.iter().map(|value| match value {
                        Some(bytes) => Report::decode(bytes),
                        None => Err(LdpError::Truncated { what: "report" }),
                    }));
                    return Ok(true);
                }
                _ => {
                    return Err(usage_error(format!(
                        "column \"report\" of {} is not binary",
                        self.path
                    )));
                }
            }
        }
        let wrong_type = |name: &str| {
            let found = batch
                .column(name)
                .map_or(ColumnType::Other("none".into()), |c| {
                    c.values().column_type()
                });
            match self.fields.iter().find(|field| field.name == name) {
                Some(field) => wrong_type(Path::new(&self.path), field, &found),
                None => usage_error(format!(
                    "column {name:?} of {} is not in the report schema",
                    self.path
                )),
            }
        };
        let u64s = |name: &str| match batch.column(name).map(Column::values) {
            Some(Values::U64(values)) => Ok(values.as_slice()),
            _ => Err(wrong_type(name)),
        };
        let u32s = |name: &str| match batch.column(name).map(Column::values) {
            Some(Values::U32(values)) => Ok(values.as_slice()),
            _ => Err(wrong_type(name)),
        };
        let bools = |name: &str| match batch.column(name).map(Column::values) {
            Some(Values::Bool(values)) => Ok(values.as_slice()),
            _ => Err(wrong_type(name)),
        };
        let has = |name: &str| self.fields.iter().any(|field| field.name == name);
        let ids = u64s("protocol_id")?;
        let columns = if self.numeric {
            PayloadColumns::Numeric(bools("positive")?, u32s("cell")?)
        } else if has("ones") {
            match batch.column("ones").map(Column::values) {
                Some(Values::ListU32(lists)) => PayloadColumns::Oue(lists),
                _ => return Err(wrong_type("ones")),
            }
        } else if has("seed") {
            PayloadColumns::Olh(u64s("seed")?, u32s("value")?)
        } else if has("hash") {
            PayloadColumns::Hcms(u32s("hash")?, u32s("column")?, bools("positive")?)
        } else if has("column") {
            PayloadColumns::Hadamard(u32s("column")?)
        } else {
            PayloadColumns::Grr(u32s("value")?)
        };
        reports.extend(ids.iter().enumerate().map(|(row, id)| match id {
            None => Err(null("protocol_id")),
            Some(protocol) => columns.payload(row).map(|payload| Report {
                protocol: *protocol,
                payload,
            }),
        }));
        Ok(true)
    }
}

/// A batch's payload columns, by oracle.
enum PayloadColumns<'a> {
    Numeric(&'a [Option<bool>], &'a [Option<u32>]),
    Oue(&'a U32Lists),
    Olh(&'a [Option<u64>], &'a [Option<u32>]),
    Hcms(&'a [Option<u32>], &'a [Option<u32>], &'a [Option<bool>]),
    Hadamard(&'a [Option<u32>]),
    Grr(&'a [Option<u32>]),
}

fn null(field: &str) -> LdpError {
    LdpError::Corrupt {
        reason: format!("field {field} is null"),
    }
}

impl PayloadColumns<'_> {
    /// The payload of `row`, or why it is not one.
    fn payload(&self, row: usize) -> Result<Payload, LdpError> {
        let cell = |values: &[Option<u32>], field: &str| values[row].ok_or_else(|| null(field));
        match self {
            Self::Numeric(flags, cells) => match (flags[row], cells[row]) {
                (Some(positive), None) => Ok(Payload::Duchi { positive }),
                (None, Some(cell)) => Ok(Payload::Piecewise { cell }),
                _ => Err(LdpError::Corrupt {
                    reason: "exactly one of positive and cell must be set".to_string(),
                }),
            },
            Self::Oue(lists) => match lists.get(row) {
                Some(ListCell::Items(ones)) => Ok(Payload::Oue {
                    ones: ones.to_vec(),
                }),
                Some(ListCell::NullItem) => Err(null("ones[]")),
                _ => Err(null("ones")),
            },
            Self::Olh(seeds, values) => {
                let seed = seeds[row].ok_or_else(|| null("seed"))?;
                Ok(Payload::Olh {
                    seed,
                    value: cell(values, "value")?,
                })
            }
            Self::Hcms(hashes, columns, flags) => Ok(Payload::Hcms {
                hash: cell(hashes, "hash")?,
                column: cell(columns, "column")?,
                positive: flags[row].ok_or_else(|| null("positive"))?,
            }),
            Self::Hadamard(columns) => Ok(Payload::Hadamard {
                column: cell(columns, "column")?,
            }),
            Self::Grr(values) => Ok(Payload::Grr {
                value: cell(values, "value")?,
            }),
        }
    }
}

/// A report column of the wrong type, as a usage error that says what it should be.
fn wrong_type(path: &Path, field: &Field, found: &ColumnType) -> anyhow::Error {
    usage_error(format!(
        "column {:?} of {} has type {found}, not the report schema's {}: reports are written by `veil ldp simulate`, or given as one binary column \"report\" in Veil's compact encoding",
        field.name,
        path.display(),
        field.column_type,
    ))
}

/// Writes a table of estimates: CSV, or Parquet when the file name says so.
pub(crate) fn write_table(path: &Path, columns: Vec<Column>) -> anyhow::Result<()> {
    let format = Format::of_path(path).unwrap_or(Format::Csv);
    Table::new(columns)
        .and_then(|estimates| table::write(&estimates, path, format))
        .map_err(table_error)
        .with_context(|| format!("writing {}", path.display()))
}
