//! The engine's error type.

use std::path::PathBuf;

use veil_accountant::BudgetError;
use veil_core::ParamError;

/// Why a job was refused or failed. Every variant names what the operator must fix (a
/// file, a column, a key) and never repeats a value from the data.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum EngineError {
    /// The job is inconsistent; `key` is its path in the job file.
    #[error("{key}: {reason}")]
    InvalidJob {
        /// The key path, e.g. `query[1].partitions`.
        key: String,
        /// What is wrong and how to fix it.
        reason: String,
    },
    /// A privacy parameter of the job is out of range.
    #[error("{key}: {source}")]
    Param {
        /// The key path.
        key: String,
        /// The parameter error.
        #[source]
        source: ParamError,
    },
    /// No file matches the source path.
    #[error("source {}: no such file or directory", path.display())]
    SourceNotFound {
        /// The path or glob.
        path: PathBuf,
    },
    /// The source exists but cannot be read as the expected format.
    #[error("source {}: cannot read it as {format}: {reason}", path.display())]
    SourceUnreadable {
        /// The path.
        path: PathBuf,
        /// `Parquet` or `CSV`.
        format: &'static str,
        /// Why (the reader's message, which names no data value).
        reason: String,
    },
    /// The job reads a column the source does not have.
    #[error("{key}: column {column:?} is not in {}; its columns are: {}", path.display(), available.join(", "))]
    ColumnNotFound {
        /// Where the job names it.
        key: String,
        /// The missing column.
        column: String,
        /// The source.
        path: PathBuf,
        /// The columns it has.
        available: Vec<String>,
    },
    /// A column has a type the job cannot use.
    #[error("{key}: column {column:?} has type {found}; expected {expected}")]
    ColumnType {
        /// Where the job names it.
        key: String,
        /// The column.
        column: String,
        /// Its type in the source.
        found: String,
        /// What the job needs.
        expected: &'static str,
    },
    /// Reading or aggregating the data failed.
    #[error("{stage} failed: {reason}")]
    Execution {
        /// What the engine was doing.
        stage: &'static str,
        /// The kind of failure (without data values).
        reason: String,
    },
    /// Writing the release failed.
    #[error("writing {}: {source}", path.display())]
    Output {
        /// The file or directory.
        path: PathBuf,
        /// The I/O error.
        #[source]
        source: std::io::Error,
    },
    /// The ledger refused the charge or failed.
    #[error(transparent)]
    Budget(#[from] BudgetError),
    /// Fewer privacy units remain after retention and consent than the job requires: the
    /// run stops before anything is charged. The counts are exact (for the operator; this
    /// message is never published).
    #[error(
        "{found} of the source's privacy units remain after retention and consent, and the job requires at least {required} (source.min_units); nothing was released or charged{why}"
    )]
    TooFewUnits {
        /// Units that remain.
        found: u64,
        /// `source.min_units`.
        required: u64,
        /// What emptied the source, if a stage did: `": ..."`, or empty.
        why: String,
    },
    /// The work cannot be done within the memory budget: refused before anything is
    /// charged or written. The sizes are estimates from the source's metadata.
    #[error(
        "{what} needs about {} of memory, more than the memory budget of {}: {advice}",
        crate::scan::MemoryBudget::text(*needed),
        crate::scan::MemoryBudget::text(*budget)
    )]
    MemoryBudget {
        /// What needs the memory.
        what: String,
        /// About how many bytes it needs.
        needed: u64,
        /// The budget, in bytes.
        budget: u64,
        /// The setting to change.
        advice: String,
    },
    /// The caller interrupted the run (its `RunContext::interrupt` said so) before
    /// `before`: nothing was charged or published.
    #[error("interrupted before {}: nothing was charged or published", before.describe())]
    Interrupted {
        /// The stage that did not start.
        before: crate::Stage,
    },
    /// A bug in Veil: please report it.
    #[error("internal error (a bug in Veil, please report it): {0}")]
    Internal(String),
}

impl EngineError {
    /// Wraps a Polars error from `stage` without repeating data values: Polars messages
    /// about computations can quote cell values, so only the error's kind is kept for
    /// those; messages about files and schemas are kept whole.
    pub(crate) fn polars(stage: &'static str, error: &polars::error::PolarsError) -> Self {
        Self::Execution {
            stage,
            reason: polars_reason(error),
        }
    }

    /// The key path of a parameter error.
    pub(crate) fn param(key: impl Into<String>, source: ParamError) -> Self {
        Self::Param {
            key: key.into(),
            source,
        }
    }

    /// An invalid job.
    pub(crate) fn invalid(key: impl Into<String>, reason: impl Into<String>) -> Self {
        Self::InvalidJob {
            key: key.into(),
            reason: reason.into(),
        }
    }
}

/// A Polars error's message without data values: Polars messages about computations can
/// quote cell values, so only the error's kind is kept for those; messages about files and
/// schemas are kept whole.
pub(crate) fn polars_reason(error: &polars::error::PolarsError) -> String {
    use polars::error::PolarsError;
    match error {
        PolarsError::IO { .. }
        | PolarsError::ColumnNotFound(_)
        | PolarsError::SchemaMismatch(_) => error.to_string(),
        PolarsError::ComputeError(_) => {
            "a computation failed (details withheld: they may quote data values)".to_string()
        }
        PolarsError::InvalidOperation(_) => {
            "an operation is not valid for the data's types".to_string()
        }
        PolarsError::OutOfBounds(_) => "an index went out of bounds".to_string(),
        PolarsError::ShapeMismatch(_) => "columns of different lengths".to_string(),
        PolarsError::NoData(_) => "the source has no data".to_string(),
        other => error_kind(other).to_string(),
    }
}

fn error_kind(error: &polars::error::PolarsError) -> &'static str {
    use polars::error::PolarsError;
    match error {
        PolarsError::Duplicate(_) => "duplicate column",
        PolarsError::StringCacheMismatch(_) => "categorical mismatch",
        PolarsError::StructFieldNotFound(_) => "struct field not found",
        PolarsError::AssertionError(_) => "assertion failed",
        PolarsError::SQLInterface(_) | PolarsError::SQLSyntax(_) => "SQL error",
        _ => "the data engine reported an error",
    }
}
