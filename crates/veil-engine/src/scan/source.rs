//! Source discovery: the files a source path names (a file, a directory, a glob), lazy
//! scans of them, their schema, and which Polars engine scans them.

use std::path::{Path, PathBuf};

use polars::prelude::*;

use crate::EngineError;
use crate::job::{Source, SourceFormat};

/// The files a source path names: a file, a directory (every Parquet or CSV file below
/// it), or a glob.
///
/// # Errors
/// [`EngineError::SourceNotFound`] if it names no file; [`EngineError::Output`] if a
/// directory cannot be listed.
pub fn source_files(source: &Source) -> Result<Vec<PathBuf>, EngineError> {
    let path = &source.path;
    let text = path.to_string_lossy();
    let mut files = Vec::new();
    if text.contains(['*', '?', '[']) {
        let (directory, pattern) = match text.rfind('/') {
            Some(at) => (PathBuf::from(&text[..at]), text[at + 1..].to_string()),
            None => (PathBuf::from("."), text.to_string()),
        };
        if let Ok(entries) = std::fs::read_dir(&directory) {
            for entry in entries.flatten() {
                let name = entry.file_name().to_string_lossy().to_string();
                if glob_match(&pattern, &name) && entry.path().is_file() {
                    files.push(entry.path());
                }
            }
        }
    } else if path.is_dir() {
        collect_files(path, source.format, &mut files).map_err(|source| EngineError::Output {
            path: path.clone(),
            source,
        })?;
    } else if path.is_file() {
        files.push(path.clone());
    }
    files.sort();
    if files.is_empty() {
        return Err(EngineError::SourceNotFound { path: path.clone() });
    }
    Ok(files)
}

/// Whether a file written at `path` would be read as part of `source` by a run: it is the
/// source file itself, lies anywhere under a source directory, or is matched by a source glob.
/// Commands check their outputs with it, so that no release ever lands among its own inputs.
#[must_use]
pub fn source_would_read(source: &Source, path: &Path) -> bool {
    let canonical = |path: &Path| std::fs::canonicalize(path).ok();
    // The path itself may not exist yet: canonicalize its folder and keep its name.
    let Some(name) = path.file_name() else {
        return false;
    };
    let folder = match path.parent() {
        Some(parent) if !parent.as_os_str().is_empty() => parent,
        _ => Path::new("."),
    };
    let Some(target) = canonical(folder).map(|folder| folder.join(name)) else {
        return false;
    };
    let text = source.path.to_string_lossy();
    if text.contains(['*', '?', '[']) {
        let (directory, pattern) = match text.rfind('/') {
            Some(at) => (PathBuf::from(&text[..at]), text[at + 1..].to_string()),
            None => (PathBuf::from("."), text.to_string()),
        };
        return canonical(&directory).is_some_and(|directory| {
            target.parent() == Some(directory.as_path())
                && glob_match(&pattern, &name.to_string_lossy())
        });
    }
    match canonical(&source.path) {
        Some(source_path) if source.path.is_dir() => target.starts_with(&source_path),
        Some(source_path) => target == source_path,
        None => false,
    }
}

fn collect_files(
    directory: &Path,
    format: SourceFormat,
    found: &mut Vec<PathBuf>,
) -> std::io::Result<()> {
    for entry in std::fs::read_dir(directory)? {
        let path = entry?.path();
        if path.is_dir() {
            collect_files(&path, format, found)?;
        } else if SourceFormat::from_path(&path).is_csv() == format.is_csv()
            && !path
                .file_name()
                .is_some_and(|name| name.to_string_lossy().starts_with('.'))
        {
            found.push(path);
        }
    }
    Ok(())
}

/// `*` and `?` matching of one file name.
fn glob_match(pattern: &str, name: &str) -> bool {
    fn matches(pattern: &[char], name: &[char]) -> bool {
        match (pattern.first(), name.first()) {
            (None, None) => true,
            (Some('*'), _) => {
                matches(&pattern[1..], name) || (!name.is_empty() && matches(pattern, &name[1..]))
            }
            (Some('?'), Some(_)) => matches(&pattern[1..], &name[1..]),
            (Some(p), Some(n)) if p == n => matches(&pattern[1..], &name[1..]),
            _ => false,
        }
    }
    let pattern: Vec<char> = pattern.chars().collect();
    let name: Vec<char> = name.chars().collect();
    matches(&pattern, &name)
}

fn format_name(format: SourceFormat) -> &'static str {
    match format {
        SourceFormat::Parquet => "Parquet",
        SourceFormat::Csv { .. } => "CSV",
    }
}

/// A lazy scan of the source (nothing is read until it is collected).
pub(crate) fn scan_source(source: &Source) -> Result<LazyFrame, EngineError> {
    if let Some(table) = crate::memory::lookup(&source.path) {
        return Ok(table);
    }
    let files = source_files(source)?;
    let unreadable = |error: PolarsError| EngineError::SourceUnreadable {
        path: source.path.clone(),
        format: format_name(source.format),
        reason: error.to_string(),
    };
    let paths: Vec<PlRefPath> = files
        .iter()
        .map(|file| PlRefPath::new(file.to_string_lossy().as_ref()))
        .collect();
    match source.format {
        SourceFormat::Parquet => {
            let args = ScanArgsParquet {
                glob: false,
                ..ScanArgsParquet::default()
            };
            LazyFrame::scan_parquet_files(paths.into_iter().collect(), args).map_err(unreadable)
        }
        SourceFormat::Csv { delimiter } => LazyCsvReader::new_paths(paths.into_iter().collect())
            .with_separator(delimiter)
            .with_has_header(true)
            .with_infer_schema_length(Some(10_000))
            .with_try_parse_dates(true)
            .finish()
            .map_err(unreadable),
    }
}

/// The source's schema, read from file metadata (Parquet) or the first rows (CSV).
pub(crate) fn source_schema(source: &Source) -> Result<crate::schema::SourceSchema, EngineError> {
    let mut frame = scan_source(source)?;
    let schema = frame
        .collect_schema()
        .map_err(|error| EngineError::SourceUnreadable {
            path: source.path.clone(),
            format: format_name(source.format),
            reason: error.to_string(),
        })?;
    Ok(crate::schema::SourceSchema {
        columns: schema
            .iter()
            .map(|(name, dtype)| (name.to_string(), crate::schema::ColumnKind::of(dtype)))
            .collect(),
    })
}

/// Sources up to this size on disk are scanned by Polars' in-memory engine, larger ones by
/// its streaming engine.
const STREAMING_FROM_BYTES: u64 = 512 << 20;

/// The Polars engine for a scan: `VEIL_POLARS_ENGINE=streaming`, `in-memory` or `auto`
/// (Polars' choice); by default the streaming engine, which holds only a part of the
/// source in memory at a time, for sources over [`STREAMING_FROM_BYTES`] on disk (or of
/// unknown size), and the in-memory engine, 1.2–1.6× faster on the bounding's group-bys,
/// for smaller ones (see BENCHMARKS.md). A table in memory ([`crate::memory`]) is in
/// memory already: the in-memory engine.
pub(crate) fn scan_engine(source: &Source) -> Engine {
    if crate::memory::lookup(&source.path).is_some() {
        return Engine::InMemory;
    }
    match std::env::var("VEIL_POLARS_ENGINE").as_deref() {
        Ok("in-memory") => Engine::InMemory,
        Ok("streaming") => Engine::Streaming,
        Ok("auto") => Engine::Auto,
        _ => {
            let bytes = source_files(source).ok().and_then(|files| {
                files
                    .iter()
                    .map(|file| std::fs::metadata(file).ok().map(|meta| meta.len()))
                    .sum::<Option<u64>>()
            });
            match bytes {
                Some(bytes) if bytes <= STREAMING_FROM_BYTES => Engine::InMemory,
                _ => Engine::Streaming,
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::glob_match;

    #[test]
    fn globs_match_file_names() {
        assert!(glob_match("events-*.parquet", "events-2026.parquet"));
        assert!(glob_match("*.parquet", "a.parquet"));
        assert!(!glob_match("*.parquet", "a.csv"));
        assert!(glob_match("part-?.csv", "part-1.csv"));
        assert!(!glob_match("part-?.csv", "part-12.csv"));
    }
}
