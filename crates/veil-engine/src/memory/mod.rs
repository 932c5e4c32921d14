//! Tables given in memory instead of files: a job's source, its consent log, or both, handed
//! over through the Arrow C stream interface ([`ArrowStream`]) by a program that embeds
//! Veil (the Python package's `data=` and `consent=`).
//!
//! [`MemoryTables`] is an [`Executor`]: it answers schema questions about its tables
//! itself, and runs the same scan as the files' ([`scan::aggregate`]) with each table read
//! where the job would have read the file it stands for. So a job on data in memory goes
//! through the same plan, the same consent, retention and column checks, the same
//! bounding and the same release as a job on files; only the first step of the scan, the
//! lazy read, differs. A table stands for a path (the job's `source.path` or
//! `consent.path`) only on the thread that runs [`MemoryTables::scope`], and only during
//! that call.

use std::cell::RefCell;
use std::path::{Path, PathBuf};

use polars::prelude::*;

use crate::plan::ScanPlan;
use crate::release::ReleasedTable;
use crate::scan::{self, Aggregated, BoundingKey};
use crate::schema::SourceSchema;
use crate::{EngineError, Executor, job};

mod stream;
pub use stream::ArrowStream;

/// One table in memory, and the path it stands for.
#[derive(Debug, Clone)]
struct MemoryTable {
    path: PathBuf,
    frame: DataFrame,
    schema: SourceSchema,
}

/// Tables in memory, each standing for a path that a job reads; every other path is read
/// from its files, as by [`crate::LocalExecutor`].
#[derive(Debug, Clone, Default)]
pub struct MemoryTables {
    tables: Vec<MemoryTable>,
}

thread_local! {
    /// The tables of the [`MemoryTables::scope`] running on this thread, if any.
    static IN_SCOPE: RefCell<Vec<(PathBuf, DataFrame)>> = const { RefCell::new(Vec::new()) };
}

/// The table standing for `path` in the scope running on this thread, as a lazy frame.
pub(crate) fn lookup(path: &Path) -> Option<LazyFrame> {
    IN_SCOPE.with(|tables| {
        tables
            .borrow()
            .iter()
            .find(|(stands_for, _)| stands_for == path)
            .map(|(_, frame)| frame.clone().lazy())
    })
}

/// Puts the previous scope back when a scope ends, even by a panic.
struct Restore(Vec<(PathBuf, DataFrame)>);

impl Drop for Restore {
    fn drop(&mut self) {
        let previous = std::mem::take(&mut self.0);
        IN_SCOPE.with(|tables| *tables.borrow_mut() = previous);
    }
}

impl MemoryTables {
    /// No tables: every path is read from its files.
    #[must_use]
    pub fn new() -> Self {
        Self::default()
    }

    /// Reads `stream` as the table that stands for `path`, keeping only the columns that
    /// `keep` accepts (the others are released unread, so a job reads no column it does
    /// not declare); the schema of every column is kept for the job's checks. A table
    /// already standing for `path` is replaced.
    ///
    /// Dictionary-encoded columns (pandas' `category`, Polars' `Categorical`) are read as
    /// their values.
    ///
    /// # Errors
    /// [`EngineError::SourceUnreadable`] naming `path` if the stream fails, is not a
    /// stream of record batches, or holds a kept column of a type the engine cannot read.
    pub fn insert(
        &mut self,
        path: impl Into<PathBuf>,
        stream: ArrowStream,
        keep: &dyn Fn(&str) -> bool,
    ) -> Result<(), EngineError> {
        let path = path.into();
        let (frame, schema) = stream::read(stream, &path, keep)?;
        self.tables.retain(|table| table.path != path);
        self.tables.push(MemoryTable {
            path,
            frame,
            schema,
        });
        Ok(())
    }

    /// Whether a table stands for `path`.
    #[must_use]
    pub fn contains(&self, path: &Path) -> bool {
        self.tables.iter().any(|table| table.path == path)
    }

    /// Runs `work` with these tables read in place of the files they stand for, on this
    /// thread (where the engine builds its scans), for scans that do not go through
    /// [`Executor::aggregate`] (the utility report's).
    pub fn scope<T>(&self, work: impl FnOnce() -> T) -> T {
        let tables = self
            .tables
            .iter()
            .map(|table| (table.path.clone(), table.frame.clone()))
            .collect();
        let previous = IN_SCOPE.with(|scope| std::mem::replace(&mut *scope.borrow_mut(), tables));
        let _restore = Restore(previous);
        work()
    }
}

impl Executor for MemoryTables {
    fn schema(&self, source: &job::Source) -> Result<SourceSchema, EngineError> {
        match self.tables.iter().find(|table| table.path == source.path) {
            Some(table) => Ok(table.schema.clone()),
            None => scan::source_schema(source),
        }
    }

    fn aggregate(&self, plan: &ScanPlan, key: BoundingKey) -> Result<Aggregated, EngineError> {
        self.scope(|| scan::aggregate(plan, key))
    }
}

impl ReleasedTable {
    /// The table as an Arrow stream of record batches: the same columns, in the same order,
    /// as the file the release wrote.
    #[must_use]
    pub fn to_arrow(&self) -> ArrowStream {
        stream::export(&self.frame)
    }
}

#[cfg(test)]
mod tests;
