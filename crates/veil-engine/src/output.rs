//! Writing released tables: to a hidden temporary file first (written and synced), then
//! renamed into place only after the ledger has committed the charge. A crash leaves
//! either no output or a complete one, never half a file.

use std::fs::{self, File};
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};

use polars::prelude::*;

use crate::EngineError;
use crate::job::OutputFormat;
use crate::release::ReleasedTable;

/// A file written under a temporary name, waiting to be published.
#[derive(Debug)]
pub(crate) struct Staged {
    temporary: PathBuf,
    /// Where it will be published.
    pub(crate) path: PathBuf,
}

impl Staged {
    /// Renames the file into place.
    pub(crate) fn publish(self) -> Result<PathBuf, EngineError> {
        fs::rename(&self.temporary, &self.path).map_err(|source| EngineError::Output {
            path: self.path.clone(),
            source,
        })?;
        Ok(self.path)
    }

    /// Deletes the temporary file (best effort: it is hidden and named as temporary).
    pub(crate) fn discard(self) {
        let _ = fs::remove_file(&self.temporary);
    }
}

fn output_error(path: &Path) -> impl Fn(std::io::Error) -> EngineError + '_ {
    move |source| EngineError::Output {
        path: path.to_path_buf(),
        source,
    }
}

/// Creates the output directory if needed and checks that files can be created in it, so
/// that a read-only or missing directory fails before the ledger is touched.
pub(crate) fn prepare_directory(directory: &Path) -> Result<(), EngineError> {
    fs::create_dir_all(directory).map_err(output_error(directory))?;
    let probe = directory.join(format!(".veil-write-check-{}", std::process::id()));
    File::create(&probe).map_err(output_error(directory))?;
    fs::remove_file(&probe).map_err(output_error(directory))?;
    Ok(())
}

/// Writes `bytes_of` to a temporary file next to `path`, synced to disk.
pub(crate) fn stage(
    path: PathBuf,
    write: impl FnOnce(&mut BufWriter<&File>) -> Result<(), EngineError>,
) -> Result<Staged, EngineError> {
    let name = path
        .file_name()
        .map(|name| name.to_string_lossy().to_string())
        .unwrap_or_default();
    let temporary = path.with_file_name(format!(".{name}.tmp-{}", std::process::id()));
    let file = File::create(&temporary).map_err(output_error(&temporary))?;
    let result = (|| {
        let mut writer = BufWriter::new(&file);
        write(&mut writer)?;
        writer.flush().map_err(output_error(&temporary))?;
        drop(writer);
        file.sync_all().map_err(output_error(&temporary))
    })();
    match result {
        Ok(()) => Ok(Staged { temporary, path }),
        Err(error) => {
            let _ = fs::remove_file(&temporary);
            Err(error)
        }
    }
}

/// Stages one released table in `format`.
pub(crate) fn stage_table(
    table: &ReleasedTable,
    directory: &Path,
    format: OutputFormat,
) -> Result<Staged, EngineError> {
    let path = directory.join(format!("{}.{}", table.query, format.extension()));
    let mut frame = table.frame.clone();
    let error_path = path.clone();
    stage(path, |writer| {
        let polars_error = |e: PolarsError| EngineError::Output {
            path: error_path.clone(),
            source: std::io::Error::other(e.to_string()),
        };
        match format {
            OutputFormat::Parquet => {
                ParquetWriter::new(writer)
                    .finish(&mut frame)
                    .map_err(polars_error)?;
            }
            OutputFormat::Csv => {
                CsvWriter::new(writer)
                    .include_header(true)
                    .finish(&mut frame)
                    .map_err(polars_error)?;
            }
            OutputFormat::Json => {
                let rows = json_rows(&frame).map_err(polars_error)?;
                serde_json::to_writer_pretty(&mut *writer, &rows).map_err(|e| {
                    EngineError::Output {
                        path: error_path.clone(),
                        source: std::io::Error::other(e),
                    }
                })?;
                writer.write_all(b"\n").map_err(output_error(&error_path))?;
            }
        }
        Ok(())
    })
}

/// The frame as a JSON array of objects, numbers as numbers (NaN as null).
fn json_rows(frame: &DataFrame) -> PolarsResult<Vec<serde_json::Map<String, serde_json::Value>>> {
    let mut rows = vec![serde_json::Map::new(); frame.height()];
    for column in frame.columns() {
        let name = column.name().to_string();
        let dtype = column.dtype();
        if dtype.is_integer() {
            let values = column.cast(&DataType::Int64)?;
            for (row, value) in rows.iter_mut().zip(values.i64()?.iter()) {
                row.insert(
                    name.clone(),
                    value.map_or(serde_json::Value::Null, serde_json::Value::from),
                );
            }
        } else if dtype.is_float() {
            let values = column.cast(&DataType::Float64)?;
            for (row, value) in rows.iter_mut().zip(values.f64()?.iter()) {
                let value = value
                    .and_then(serde_json::Number::from_f64)
                    .map_or(serde_json::Value::Null, serde_json::Value::Number);
                row.insert(name.clone(), value);
            }
        } else {
            let values = column.cast(&DataType::String)?;
            for (row, value) in rows.iter_mut().zip(values.str()?.iter()) {
                row.insert(
                    name.clone(),
                    value.map_or(serde_json::Value::Null, |text| {
                        serde_json::Value::from(text.to_string())
                    }),
                );
            }
        }
    }
    Ok(rows)
}

/// Syncs a directory so that renames in it survive a crash (best effort where the
/// platform cannot open directories).
pub(crate) fn sync_directory(directory: &Path) {
    if let Ok(handle) = File::open(directory) {
        let _ = handle.sync_all();
    }
}
