//! Job files: TOML parsed into typed structs, then converted into the engine's validated
//! domain types. Unknown keys are errors, and every error names its key path
//! (`query[2].aggregates[0].bounds`) and file.

use std::fmt;
use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};

use veil_engine::job::Job;

/// A job file that cannot be used, with the key at fault.
#[derive(Debug)]
pub(crate) struct ConfigError {
    /// The file.
    pub(crate) file: PathBuf,
    /// The key path, e.g. `query[0].aggregates[1].bounds`, or empty for the whole file.
    pub(crate) key: String,
    /// What is wrong.
    pub(crate) reason: String,
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.key.is_empty() {
            write!(f, "{}: {}", self.file.display(), self.reason)
        } else {
            write!(f, "{}: {}: {}", self.file.display(), self.key, self.reason)
        }
    }
}

impl std::error::Error for ConfigError {}

/// A loaded job: the engine's job plus what only the CLI needs.
#[derive(Debug, Clone)]
pub(crate) struct LoadedJob {
    /// The job file.
    pub(crate) file: PathBuf,
    /// The validated job.
    pub(crate) job: Job,
    /// The `[budget]` table (ledger file, dataset, purpose).
    pub(crate) budget: BudgetConfig,
    /// Per query, its `segment` column (for the utility report), if any.
    pub(crate) segments: Vec<Option<String>>,
    /// The purposes registry, if the job names one.
    pub(crate) registry: Option<purposes::Registry>,
    /// The `[engine]` table (local Polars when absent).
    pub(crate) engine: EngineChoice,
}

/// The as-of time of a run: given on the command line (wins over the job file), or now
/// (used when the job file gives none).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum AsOf {
    /// `--as-of`, in ms since the Unix epoch.
    Given(i64),
    /// The current time, in ms since the Unix epoch.
    Now(i64),
}

impl AsOf {
    /// From an optional `--as-of` flag.
    pub(crate) fn from_flag(flag: Option<i64>) -> Self {
        flag.map_or_else(|| Self::Now(crate::clock::now_ms()), Self::Given)
    }
}

/// Reads and validates a job file.
pub(crate) fn load(path: &Path, as_of_ms: AsOf) -> Result<LoadedJob, ConfigError> {
    let error = |key: &str, reason: String| ConfigError {
        file: path.to_path_buf(),
        key: key.to_string(),
        reason,
    };
    let text = std::fs::read_to_string(path)
        .map_err(|e| error("", format!("cannot read the job file: {e}")))?;
    parse(path, &text, as_of_ms)
}

/// Parses job-file text (`path` names it in errors and gives the job its name).
pub(crate) fn parse(path: &Path, text: &str, as_of_ms: AsOf) -> Result<LoadedJob, ConfigError> {
    let name = path.file_stem().map_or_else(
        || "job".to_string(),
        |stem| stem.to_string_lossy().to_string(),
    );
    parse_named(path, name, text, as_of_ms)
}

/// [`parse`], with the job's name given (`path` still names it in errors).
pub(crate) fn parse_named(
    path: &Path,
    name: String,
    text: &str,
    as_of_ms: AsOf,
) -> Result<LoadedJob, ConfigError> {
    let error = |key: &str, reason: String| ConfigError {
        file: path.to_path_buf(),
        key: key.to_string(),
        reason,
    };
    let deserializer =
        toml::Deserializer::parse(text).map_err(|e| error("", e.to_string().trim().to_string()))?;
    let file: JobFile = serde_path_to_error::deserialize(deserializer).map_err(|e| {
        let key = e.path().to_string();
        let key = if key == "." { String::new() } else { key };
        error(&key, e.into_inner().to_string().trim().to_string())
    })?;
    let job_hash = hex(&Sha256::digest(text.as_bytes()));
    convert(path, file, name, job_hash, as_of_ms)
}

/// A job given as a table rather than as text (a program's value: no line numbers to
/// point at); its hash is that of the table printed as TOML.
pub(crate) fn parse_table(
    path: &Path,
    name: String,
    table: toml::Table,
    as_of_ms: AsOf,
) -> Result<LoadedJob, ConfigError> {
    let error = |key: &str, reason: String| ConfigError {
        file: path.to_path_buf(),
        key: key.to_string(),
        reason,
    };
    let text = toml::to_string(&table).map_err(|e| error("", e.to_string()))?;
    let file: JobFile =
        serde_path_to_error::deserialize(toml::Value::Table(table)).map_err(|e| {
            let key = e.path().to_string();
            let key = if key == "." { String::new() } else { key };
            // The value's deserializer repeats the key after the reason (`in `source``).
            let reason = e.into_inner().to_string();
            let reason = reason.split("\nin `").next().unwrap_or_default().trim();
            error(&key, reason.to_string())
        })?;
    let job_hash = hex(&Sha256::digest(text.as_bytes()));
    convert(path, file, name, job_hash, as_of_ms)
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|byte| format!("{byte:02x}")).collect()
}

mod convert;
mod file;
pub(crate) mod purposes;

use convert::convert;
use file::JobFile;
pub(crate) use file::{BudgetConfig, EngineChoice, EngineKind};

#[cfg(test)]
mod tests;
