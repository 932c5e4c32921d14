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

/// The release's folder, as a run found it: the folders of its path that did not exist.
/// Staging a file creates them; dropping this removes again, deepest first, those of them
/// that are still empty, so a run that fails or is refused leaves no empty folder behind
/// (a folder holding anything, a published file or another run's, is never removed).
#[derive(Debug)]
pub(crate) struct OutputDirectory {
    /// Folders missing when the run started, deepest first.
    missing: Vec<PathBuf>,
}

impl Drop for OutputDirectory {
    fn drop(&mut self) {
        for directory in &self.missing {
            // Fails, as it should, on a folder that is not empty.
            let _ = fs::remove_dir(directory);
        }
    }
}

/// Checks that files can be created in the output directory, so that a read-only or
/// unreachable directory fails before the ledger is touched. A missing directory is
/// created for the check and removed again: it is created for good only when the release
/// is staged, after the reservation.
pub(crate) fn prepare_directory(directory: &Path) -> Result<OutputDirectory, EngineError> {
    let folder = OutputDirectory {
        missing: directory
            .ancestors()
            .take_while(|ancestor| !ancestor.as_os_str().is_empty() && !ancestor.exists())
            .map(Path::to_path_buf)
            .collect(),
    };
    // On an error, dropping `folder` removes what was created for the check.
    fs::create_dir_all(directory).map_err(output_error(directory))?;
    let probe = directory.join(format!(".veil-write-check-{}", std::process::id()));
    File::create(&probe).map_err(output_error(directory))?;
    fs::remove_file(&probe).map_err(output_error(directory))?;
    for created in &folder.missing {
        let _ = fs::remove_dir(created);
    }
    Ok(folder)
}

/// Writes `bytes_of` to a temporary file next to `path`, synced to disk, creating its
/// folder if needed.
pub(crate) fn stage(
    path: PathBuf,
    write: impl FnOnce(&mut BufWriter<&File>) -> Result<(), EngineError>,
) -> Result<Staged, EngineError> {
    if let Some(folder) = path.parent() {
        fs::create_dir_all(folder).map_err(output_error(folder))?;
    }
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
                let text = csv_text(&frame).map_err(polars_error)?;
                writer
                    .write_all(text.as_bytes())
                    .map_err(output_error(&error_path))?;
            }
            OutputFormat::Json => {
                let text = json_rows(&frame).map_err(polars_error)?;
                writer
                    .write_all(text.as_bytes())
                    .map_err(output_error(&error_path))?;
            }
        }
        Ok(())
    })
}

/// The frame as CSV (RFC 4180): a header, then one line per row. A null is an empty field
/// and an empty text is `""`, so the two read back apart (a null group key is not the
/// empty key); text is quoted where it holds a comma, a quote or a line break; numbers are
/// written in their shortest exact form.
fn csv_text(frame: &DataFrame) -> PolarsResult<String> {
    fn quoted(text: &str) -> String {
        if text.is_empty() || text.contains([',', '"', '\n', '\r']) {
            format!("\"{}\"", text.replace('"', "\"\""))
        } else {
            text.to_string()
        }
    }
    let mut columns: Vec<Vec<String>> = Vec::new();
    for column in frame.columns() {
        let dtype = column.dtype();
        let cells: Vec<String> = if dtype.is_integer() {
            let values = column.cast(&DataType::Int64)?;
            values
                .i64()?
                .iter()
                .map(|value| value.map_or_else(String::new, |value| value.to_string()))
                .collect()
        } else if dtype.is_float() {
            let values = column.cast(&DataType::Float64)?;
            values
                .f64()?
                .iter()
                .map(|value| value.map_or_else(String::new, float_text))
                .collect()
        } else {
            let values = column.cast(&DataType::String)?;
            values
                .str()?
                .iter()
                .map(|value| value.map_or_else(String::new, quoted))
                .collect()
        };
        columns.push(cells);
    }
    let header: Vec<String> = frame
        .get_column_names()
        .iter()
        .map(|name| quoted(name.as_str()))
        .collect();
    let mut text = header.join(",");
    text.push('\n');
    for row in 0..frame.height() {
        let line: Vec<&str> = columns.iter().map(|cells| cells[row].as_str()).collect();
        text.push_str(&line.join(","));
        text.push('\n');
    }
    Ok(text)
}

/// A float in its shortest form that reads back exactly; `NaN`, `inf`, `-inf` as such.
fn float_text(value: f64) -> String {
    if value.is_nan() {
        "NaN".to_string()
    } else if value.is_infinite() {
        if value > 0.0 { "inf" } else { "-inf" }.to_string()
    } else if value != 0.0 && (value.abs() >= 1e16 || value.abs() < 1e-5) {
        format!("{value:e}")
    } else {
        format!("{value}")
    }
}

/// The frame as a JSON array of objects, one per row, keys in the table's column order
/// (group columns first), numbers as numbers (NaN as null), null keys as `null`.
fn json_rows(frame: &DataFrame) -> PolarsResult<String> {
    let mut columns: Vec<(String, Vec<serde_json::Value>)> = Vec::new();
    for column in frame.columns() {
        let dtype = column.dtype();
        let values: Vec<serde_json::Value> = if dtype.is_integer() {
            let values = column.cast(&DataType::Int64)?;
            values
                .i64()?
                .iter()
                .map(|value| value.map_or(serde_json::Value::Null, serde_json::Value::from))
                .collect()
        } else if dtype.is_float() {
            let values = column.cast(&DataType::Float64)?;
            values
                .f64()?
                .iter()
                .map(|value| {
                    value
                        .and_then(serde_json::Number::from_f64)
                        .map_or(serde_json::Value::Null, serde_json::Value::Number)
                })
                .collect()
        } else {
            let values = column.cast(&DataType::String)?;
            values
                .str()?
                .iter()
                .map(|value| value.map_or(serde_json::Value::Null, serde_json::Value::from))
                .collect()
        };
        columns.push((
            serde_json::Value::from(column.name().as_str()).to_string(),
            values,
        ));
    }
    let mut text = String::from("[");
    for row in 0..frame.height() {
        text.push_str(if row == 0 { "\n  {" } else { ",\n  {" });
        for (index, (name, values)) in columns.iter().enumerate() {
            text.push_str(if index == 0 { "\n    " } else { ",\n    " });
            text.push_str(name);
            text.push_str(": ");
            text.push_str(&values[row].to_string());
        }
        text.push_str("\n  }");
    }
    text.push_str(if frame.height() == 0 { "]\n" } else { "\n]\n" });
    Ok(text)
}

/// Syncs a directory so that renames in it survive a crash (best effort where the
/// platform cannot open directories).
pub(crate) fn sync_directory(directory: &Path) {
    if let Ok(handle) = File::open(directory) {
        let _ = handle.sync_all();
    }
}
