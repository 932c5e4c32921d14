//! Opening a ledger: its options, the connection, the schema migration.

use std::fmt;
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use rusqlite::{Connection, OpenFlags, OptionalExtension, TransactionBehavior};
use veil_accountant::BudgetError;

use crate::store::At;
use crate::{Owner, SqliteLedger, schema};

impl SqliteLedger {
    /// Opens the ledger at `path`, creating the file and its schema if there is none.
    ///
    /// # Errors
    /// [`BudgetError::Storage`] if the file cannot be opened or created, is not an SQLite
    /// database, belongs to another application, or was written by a newer Veil;
    /// [`BudgetError::Locked`] if another process holds it too long.
    pub fn create(path: &Path) -> Result<Self, BudgetError> {
        Self::create_with(path, &OpenOptions::new())
    }

    /// [`SqliteLedger::create`](crate::SqliteLedger::create) with `options`.
    ///
    /// # Errors
    /// As [`SqliteLedger::create`](crate::SqliteLedger::create).
    pub fn create_with(path: &Path, options: &OpenOptions) -> Result<Self, BudgetError> {
        Self::connect(
            path,
            OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_CREATE,
            options,
        )
    }

    /// Opens an existing ledger at `path`.
    ///
    /// # Errors
    /// [`BudgetError::Storage`] if there is no file at `path` (create one with
    /// `veil budget init`), or as [`SqliteLedger::create`](crate::SqliteLedger::create).
    pub fn open(path: &Path) -> Result<Self, BudgetError> {
        Self::open_with(path, &OpenOptions::new())
    }

    /// [`SqliteLedger::open`](crate::SqliteLedger::open) with `options`.
    ///
    /// # Errors
    /// As [`SqliteLedger::open`](crate::SqliteLedger::open).
    pub fn open_with(path: &Path, options: &OpenOptions) -> Result<Self, BudgetError> {
        if !path.exists() {
            return Err(BudgetError::Storage {
                message: format!(
                    "no ledger at {}; create one with `veil budget init --ledger {} ...`",
                    path.display(),
                    path.display()
                ),
                source: None,
            });
        }
        Self::connect(path, OpenFlags::SQLITE_OPEN_READ_WRITE, options)
    }

    pub(crate) fn connect(
        path: &Path,
        flags: OpenFlags,
        options: &OpenOptions,
    ) -> Result<Self, BudgetError> {
        let at = At {
            path: path.to_path_buf(),
            waited_ms: Arc::new(AtomicU64::new(0)),
        };
        let mut connection =
            Connection::open_with_flags(path, flags | OpenFlags::SQLITE_OPEN_NO_MUTEX)
                .map_err(|error| at.error("cannot open the ledger", error))?;
        let timeout = options.lock_timeout;
        let hook = options.on_lock_wait.clone();
        let waited_ms = Arc::clone(&at.waited_ms);
        let file = path.to_path_buf();
        let mut since = Instant::now();
        let mut told = false;
        // SQLite calls this each time it finds the file locked, `count` being the number
        // of retries so far for this lock; `false` makes the statement fail with BUSY.
        let handler = move |count: i32| -> bool {
            if count == 0 {
                since = Instant::now();
                if !told {
                    told = true;
                    if let Some(hook) = &hook {
                        hook(&file, timeout);
                    }
                }
            }
            let elapsed = since.elapsed();
            waited_ms.store(
                u64::try_from(elapsed.as_millis()).unwrap_or(u64::MAX),
                Ordering::Relaxed,
            );
            if elapsed >= timeout {
                return false;
            }
            std::thread::sleep(backoff(count).min(timeout - elapsed));
            true
        };
        connection
            .busy_handler(Some(handler))
            .map_err(|error| at.error("cannot configure the ledger", error))?;
        let mut ledger = Self {
            connection,
            at,
            clock: Arc::new(system_clock),
            owner: Owner::current(),
        };
        ledger.migrate()?;
        Ok(ledger)
    }

    /// Uses `clock` (Unix seconds) instead of the system clock, e.g. to pin time in tests.
    #[must_use]
    pub fn with_clock(mut self, clock: impl Fn() -> i64 + Send + Sync + 'static) -> Self {
        self.clock = Arc::new(clock);
        self
    }

    /// Stamps this ledger's reservations with `owner` instead of this process (for tests
    /// and for tools that reserve on behalf of another process).
    #[must_use]
    pub fn with_owner(mut self, owner: Owner) -> Self {
        self.owner = owner;
        self
    }

    /// The file.
    #[must_use]
    pub fn path(&self) -> &Path {
        &self.at.path
    }

    /// Checks that the file is a Veil ledger (or empty) and applies missing migrations.
    /// A current ledger is only read, so opening one never waits for the write lock.
    pub(crate) fn migrate(&mut self) -> Result<(), BudgetError> {
        let at = self.at.clone();
        let header = self
            .connection
            .query_row(
                "SELECT (SELECT application_id FROM pragma_application_id),
                        (SELECT user_version FROM pragma_user_version)",
                [],
                |row| Ok((row.get::<_, i32>(0)?, row.get::<_, i64>(1)?)),
            )
            .map_err(at.read())?;
        if header == (schema::APPLICATION_ID, schema::current_version()) {
            return Ok(());
        }
        // A migration may rebuild a table that others reference; SQLite's procedure for
        // that turns foreign-key enforcement off around the transaction (it cannot change
        // inside one) and checks the keys before committing.
        let enforced: bool = self
            .connection
            .pragma_query_value(None, "foreign_keys", |row| row.get(0))
            .map_err(at.read())?;
        self.connection
            .pragma_update(None, "foreign_keys", false)
            .map_err(at.write())?;
        let migrated = self.migrate_locked();
        let restored = self
            .connection
            .pragma_update(None, "foreign_keys", enforced)
            .map_err(at.write());
        migrated.and(restored)
    }

    /// The migrations themselves, in one write transaction.
    pub(crate) fn migrate_locked(&mut self) -> Result<(), BudgetError> {
        let at = self.at.clone();
        let transaction = self
            .connection
            .transaction_with_behavior(TransactionBehavior::Immediate)
            .map_err(|error| at.error("cannot lock", error))?;
        let application_id: i32 = transaction
            .query_row("PRAGMA application_id", [], |row| row.get(0))
            .map_err(at.read())?;
        let version: i64 = transaction
            .query_row("PRAGMA user_version", [], |row| row.get(0))
            .map_err(at.read())?;
        let tables: i64 = transaction
            .query_row(
                "SELECT count(*) FROM sqlite_master WHERE type = 'table'",
                [],
                |row| row.get(0),
            )
            .map_err(at.read())?;
        if application_id != schema::APPLICATION_ID && (application_id != 0 || tables > 0) {
            return Err(BudgetError::Storage {
                message: format!(
                    "{} is an SQLite database but not a Veil ledger (application id {application_id:#x}, {tables} tables); give another --ledger path",
                    at.path.display()
                ),
                source: None,
            });
        }
        if version > schema::current_version() {
            return Err(BudgetError::Storage {
                message: format!(
                    "{} has ledger schema version {version}, newer than this Veil's {}; upgrade Veil",
                    at.path.display(),
                    schema::current_version()
                ),
                source: None,
            });
        }
        let start = usize::try_from(version).unwrap_or(0);
        for (index, migration) in schema::MIGRATIONS.iter().enumerate().skip(start) {
            transaction.execute_batch(migration).map_err(|error| {
                at.error(
                    &format!("cannot migrate to schema version {}:", index + 1),
                    error,
                )
            })?;
        }
        let broken: Option<String> = transaction
            .query_row("PRAGMA foreign_key_check", [], |row| row.get(0))
            .optional()
            .map_err(at.read())?;
        if let Some(table) = broken {
            return Err(at.corrupt(&format!(
                "table {table} refers to rows that do not exist; the ledger was not migrated"
            )));
        }
        transaction
            .execute_batch(&format!(
                "PRAGMA application_id = {}; PRAGMA user_version = {};",
                schema::APPLICATION_ID,
                schema::current_version()
            ))
            .map_err(at.write())?;
        transaction.commit().map_err(at.write())
    }

    /// The schema version of the file.
    ///
    /// # Errors
    /// [`BudgetError::Storage`].
    pub fn schema_version(&self) -> Result<i64, BudgetError> {
        self.connection
            .query_row("PRAGMA user_version", [], |row| row.get(0))
            .map_err(self.at.read())
    }
}

/// A source of the current time in Unix seconds.
pub type Clock = Arc<dyn Fn() -> i64 + Send + Sync>;

/// Called once, as soon as a ledger finds its file locked by another process, with the
/// file and how long it will wait.
pub type LockWaitHook = Arc<dyn Fn(&Path, Duration) + Send + Sync>;

/// How a ledger is opened: how long it waits for another process's lock, and whom it
/// tells that it waits.
#[derive(Clone)]
pub struct OpenOptions {
    lock_timeout: Duration,
    on_lock_wait: Option<LockWaitHook>,
}

pub(crate) fn system_clock() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |elapsed| {
            i64::try_from(elapsed.as_secs()).unwrap_or(i64::MAX)
        })
}

/// The pause before the `count`-th retry of a locked file: 1, 2, 4, … ms, at most 100 ms.
pub(crate) fn backoff(count: i32) -> Duration {
    Duration::from_millis(1_u64 << count.clamp(0, 7)).min(Duration::from_millis(100))
}

impl fmt::Debug for OpenOptions {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("OpenOptions")
            .field("lock_timeout", &self.lock_timeout)
            .field("on_lock_wait", &self.on_lock_wait.is_some())
            .finish()
    }
}

impl Default for OpenOptions {
    fn default() -> Self {
        Self::new()
    }
}

impl OpenOptions {
    /// Waits up to [`SqliteLedger::DEFAULT_LOCK_TIMEOUT`], telling no one.
    #[must_use]
    pub fn new() -> Self {
        Self {
            lock_timeout: SqliteLedger::DEFAULT_LOCK_TIMEOUT,
            on_lock_wait: None,
        }
    }

    /// How long an operation waits for a lock another process holds before it fails with
    /// [`BudgetError::Locked`]; zero fails at once. Default:
    /// [`SqliteLedger::DEFAULT_LOCK_TIMEOUT`].
    pub fn lock_timeout(&mut self, timeout: Duration) -> &mut Self {
        self.lock_timeout = timeout;
        self
    }

    /// Calls `hook` (once per ledger) as soon as the file is found locked, before waiting.
    /// Default: none.
    pub fn on_lock_wait(
        &mut self,
        hook: impl Fn(&Path, Duration) + Send + Sync + 'static,
    ) -> &mut Self {
        self.on_lock_wait = Some(Arc::new(hook));
        self
    }
}
