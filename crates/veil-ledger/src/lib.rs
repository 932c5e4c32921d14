//! Veil's persistent privacy budget ledger: one SQLite file (rusqlite's bundled SQLite)
//! that holds the budgets of each (dataset, purpose), every charge made against them and
//! every release written under a charge.
//!
//! - [`SqliteLedger`] implements [`veil_accountant::BudgetLedger`]. What a budget has spent
//!   is the accountant's composition of all its reserved and committed charges in the
//!   current period ([`veil_accountant::budget::cost`]), never a sum of epsilons.
//! - Each reserve runs in a transaction that takes SQLite's write lock *before* it reads
//!   the charges, so concurrent jobs on one file never overspend. A process that finds the
//!   file locked by another waits (up to [`OpenOptions::lock_timeout`], telling its
//!   [`OpenOptions::on_lock_wait`] hook at once), then fails with
//!   [`BudgetError::Locked`].
//! - A job reserves before it draws noise and commits before it writes: killed at any
//!   point, it leaves a reserved charge (budget lost, never overspent) or a committed one.
//!   Each reservation records its [`Owner`] (host, process id and start time), and
//!   [`SqliteLedger::cancel`] gives a reserved charge back once its run is gone. A
//!   cancelled charge can never be committed, and a release is published only after its
//!   commit, so nothing released is ever un-charged. Cancellations are recorded.
//! - [`BudgetRecord`] and [`ChargeRecord`] are what `veil budget status`, `history` and
//!   `reservations` show, including a charge's diagnostics: exact counts of its run's
//!   input that are **not private** (table `diagnostics_not_private`). The schema is
//!   versioned ([`schema`]); the file can be read with any SQLite client.
//!
//! ```
//! use veil_accountant::{BudgetKey, BudgetLedger, Charge, ChargeItem, MechanismProfile, PrivacyBudget};
//! use veil_ledger::SqliteLedger;
//! let directory = tempfile::tempdir()?;
//! let mut ledger = SqliteLedger::create(&directory.path().join("ledger.sqlite"))?;
//! let key = BudgetKey { dataset: "events".into(), purpose: "analytics".into() };
//! ledger.init_budget(&key, PrivacyBudget::Approx { epsilon: 1.0, delta: 0.0 }, None)?;
//! let charge = Charge {
//!     job: "daily".into(),
//!     job_hash: "0f3a".into(),
//!     items: vec![ChargeItem {
//!         label: "count".into(),
//!         profile: MechanismProfile::DiscreteLaplace { scale: 4.0, sensitivity: 1 },
//!         times: 1,
//!     }],
//! };
//! let reservation = ledger.reserve(&key, &charge)?;
//! ledger.commit(&reservation)?;
//! assert!((ledger.status(&key)?.remaining.amount() - 0.75).abs() < 1e-9);
//! Ok::<(), Box<dyn std::error::Error>>(())
//! ```
#![deny(missing_docs)]

use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use rusqlite::{
    Connection, ErrorCode, OpenFlags, OptionalExtension, Transaction, TransactionBehavior, params,
};
use veil_accountant::budget::{check_charge, cost};
use veil_accountant::{
    BudgetError, BudgetKey, BudgetLedger, BudgetPeriod, BudgetStatus, Charge, ChargeItem,
    ChargeState, Component, MechanismProfile, NotPrivateCount, PrivacyBudget, ReleaseRecord,
    Reservation,
};

pub mod owner;
pub mod schema;

pub use owner::{Liveness, Owner};

/// A budget with its period and the window now in force.
#[derive(Debug, Clone, PartialEq)]
pub struct BudgetRecord {
    /// The total, spent and remaining amounts.
    pub status: BudgetStatus,
    /// How often the budget renews, if it does.
    pub period: Option<BudgetPeriod>,
    /// When the budget was created (Unix seconds); periods are anchored here.
    pub created_at: i64,
    /// The current window `[start, end)` (Unix seconds) for a renewing budget.
    pub window: Option<(i64, i64)>,
}

/// One charge as the ledger holds it.
#[derive(Debug, Clone, PartialEq)]
pub struct ChargeRecord {
    /// The charge's id (a [`Reservation`]'s `id`).
    pub id: i64,
    /// Whose budget.
    pub key: BudgetKey,
    /// The job's name.
    pub job: String,
    /// The hash of the job file.
    pub job_hash: String,
    /// Reserved, committed, aborted or cancelled.
    pub state: ChargeState,
    /// What the charge cost on its own, in the budget's measure, when it was reserved.
    pub cost: f64,
    /// When it was reserved (Unix seconds).
    pub created_at: i64,
    /// When its state last changed (Unix seconds).
    pub updated_at: i64,
    /// The process that reserved it (`None` for charges made before the ledger recorded
    /// it, schema version 1).
    pub owner: Option<Owner>,
    /// How it was cancelled, if it was.
    pub cancellation: Option<CancellationRecord>,
    /// Its mechanisms.
    pub items: Vec<ChargeItem>,
    /// What was released under it.
    pub releases: Vec<ReleaseRecord>,
    /// Exact counts of its run's input, by name: **not private**, for the operator only.
    pub diagnostics: Vec<NotPrivateCount>,
}

/// The record of a cancelled reservation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CancellationRecord {
    /// The charge.
    pub charge_id: i64,
    /// When it was cancelled (Unix seconds).
    pub cancelled_at: i64,
    /// Why the ledger allowed it: how its run was known to be gone, or that the operator
    /// vouched for it.
    pub evidence: String,
    /// The operator's note.
    pub note: String,
    /// The process that cancelled it.
    pub by: Owner,
}

/// How sure [`SqliteLedger::cancel`] must be that the run that reserved a charge is gone.
/// A run that is known to be running is refused either way.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CancelCheck {
    /// Only when this process can tell that the run is gone: it ran on this host, and its
    /// process has ended (or the host has restarted since).
    RunGone,
    /// Also when this process cannot tell (the run was on another host, or was reserved
    /// before the ledger recorded owners): the operator vouches that it is gone.
    OperatorVouches,
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

/// The persistent [`BudgetLedger`] in one SQLite file.
pub struct SqliteLedger {
    connection: Connection,
    at: At,
    clock: Clock,
    owner: Owner,
}

impl fmt::Debug for SqliteLedger {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SqliteLedger")
            .field("path", &self.at.path)
            .finish_non_exhaustive()
    }
}

/// Where errors happen: the file, and how long the last wait for its lock lasted. Cloned
/// into error closures so that they do not borrow the ledger.
#[derive(Debug, Clone)]
struct At {
    path: PathBuf,
    /// Milliseconds the busy handler last waited (shared with it).
    waited_ms: Arc<AtomicU64>,
}

impl At {
    /// A storage error naming the file; a lock held too long is [`BudgetError::Locked`],
    /// a file that is not a database is told apart.
    fn error(&self, what: &str, error: rusqlite::Error) -> BudgetError {
        let code = match &error {
            rusqlite::Error::SqliteFailure(failure, _) => Some(failure.code),
            _ => None,
        };
        if matches!(
            code,
            Some(ErrorCode::DatabaseBusy | ErrorCode::DatabaseLocked)
        ) {
            return BudgetError::Locked {
                ledger: self.path.display().to_string(),
                waited: Duration::from_millis(self.waited_ms.load(Ordering::Relaxed)),
            };
        }
        let what = if matches!(
            code,
            Some(ErrorCode::NotADatabase | ErrorCode::DatabaseCorrupt)
        ) {
            "not a Veil ledger (not an SQLite database, or a corrupt one):"
        } else {
            what
        };
        // SQLite's own message often repeats its error code's description ("unable to
        // open database file: <path>" under "Error code 14: unable to open database
        // file"): it is kept only when it says more.
        let (detail, source): (String, Box<dyn std::error::Error + Send + Sync>) = match error {
            rusqlite::Error::SqliteFailure(failure, detail) => {
                let generic = failure.to_string();
                let description = generic.split_once(": ").map_or("", |(_, text)| text);
                let detail = detail
                    .filter(|detail| description.is_empty() || !detail.starts_with(description))
                    .map_or_else(String::new, |detail| format!(" ({detail})"));
                (detail, Box::new(failure))
            }
            other => (String::new(), Box::new(other)),
        };
        BudgetError::Storage {
            message: format!("{what} {}{detail}", self.path.display()),
            source: Some(source),
        }
    }

    fn read(&self) -> impl Fn(rusqlite::Error) -> BudgetError + '_ {
        move |error| self.error("cannot read", error)
    }

    fn write(&self) -> impl Fn(rusqlite::Error) -> BudgetError + '_ {
        move |error| self.error("cannot write", error)
    }

    /// A ledger whose content is not what this Veil wrote.
    fn corrupt(&self, what: &str) -> BudgetError {
        BudgetError::Storage {
            message: format!("{}: {what}", self.path.display()),
            source: None,
        }
    }
}

fn system_clock() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |elapsed| {
            i64::try_from(elapsed.as_secs()).unwrap_or(i64::MAX)
        })
}

/// The pause before the `count`-th retry of a locked file: 1, 2, 4, … ms, at most 100 ms.
fn backoff(count: i32) -> Duration {
    Duration::from_millis(1_u64 << count.clamp(0, 7)).min(Duration::from_millis(100))
}

/// A budget row.
struct BudgetRow {
    id: i64,
    total: PrivacyBudget,
    period: Option<BudgetPeriod>,
    created_at: i64,
}

/// Which charges [`SqliteLedger::charges`] reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Which {
    All,
    Reserved,
}

impl SqliteLedger {
    /// How long an operation waits for another process's lock before failing, unless
    /// [`OpenOptions::lock_timeout`] says otherwise.
    pub const DEFAULT_LOCK_TIMEOUT: Duration = Duration::from_secs(120);

    /// Opens the ledger at `path`, creating the file and its schema if there is none.
    ///
    /// # Errors
    /// [`BudgetError::Storage`] if the file cannot be opened or created, is not an SQLite
    /// database, belongs to another application, or was written by a newer Veil;
    /// [`BudgetError::Locked`] if another process holds it too long.
    pub fn create(path: &Path) -> Result<Self, BudgetError> {
        Self::create_with(path, &OpenOptions::new())
    }

    /// [`SqliteLedger::create`] with `options`.
    ///
    /// # Errors
    /// As [`SqliteLedger::create`].
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
    /// `veil budget init`), or as [`SqliteLedger::create`].
    pub fn open(path: &Path) -> Result<Self, BudgetError> {
        Self::open_with(path, &OpenOptions::new())
    }

    /// [`SqliteLedger::open`] with `options`.
    ///
    /// # Errors
    /// As [`SqliteLedger::open`].
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

    fn connect(path: &Path, flags: OpenFlags, options: &OpenOptions) -> Result<Self, BudgetError> {
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
    fn migrate(&mut self) -> Result<(), BudgetError> {
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
    fn migrate_locked(&mut self) -> Result<(), BudgetError> {
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

    /// Creates the budget of `key` with `total`, renewing every `period` if given.
    ///
    /// # Errors
    /// [`BudgetError::AlreadyExists`], [`BudgetError::InvalidBudget`],
    /// [`BudgetError::Storage`], [`BudgetError::Locked`].
    pub fn init_budget(
        &mut self,
        key: &BudgetKey,
        total: PrivacyBudget,
        period: Option<BudgetPeriod>,
    ) -> Result<(), BudgetError> {
        validate_total(key, &total)?;
        let now = (self.clock)();
        let at = self.at.clone();
        let transaction = self
            .connection
            .transaction_with_behavior(TransactionBehavior::Immediate)
            .map_err(at.write())?;
        if budget_id(&transaction, &at, key)?.is_some() {
            return Err(BudgetError::AlreadyExists { key: key.clone() });
        }
        insert_budget(&transaction, &at, key, total, period, now)?;
        transaction.commit().map_err(at.write())
    }

    /// Reserves `charge` against the budget of `key`, first creating that budget with
    /// `total` (renewing every `period`) if the ledger has none, in one transaction: a
    /// refused charge leaves no budget behind. Returns the reservation and whether the
    /// budget was created. An existing budget is used as it is, whatever `total` says.
    ///
    /// # Errors
    /// As [`BudgetLedger::reserve`], and [`BudgetError::InvalidBudget`] for a total out
    /// of range.
    pub fn reserve_creating_budget(
        &mut self,
        key: &BudgetKey,
        charge: &Charge,
        total: PrivacyBudget,
        period: Option<BudgetPeriod>,
    ) -> Result<(Reservation, bool), BudgetError> {
        validate_total(key, &total)?;
        let now = (self.clock)();
        let at = self.at.clone();
        let transaction = self
            .connection
            .transaction_with_behavior(TransactionBehavior::Immediate)
            .map_err(at.write())?;
        let created = budget_id(&transaction, &at, key)?.is_none();
        if created {
            insert_budget(&transaction, &at, key, total, period, now)?;
        }
        let id = reserve_in(&transaction, &at, key, charge, now, &self.owner)?;
        transaction.commit().map_err(at.write())?;
        Ok((
            Reservation {
                id,
                key: key.clone(),
            },
            created,
        ))
    }

    /// Every budget (or the budgets of one dataset) with what it has spent now.
    ///
    /// # Errors
    /// [`BudgetError::Storage`]; [`BudgetError::Accountant`] if a stored charge no longer
    /// composes.
    pub fn budgets(&mut self, dataset: Option<&str>) -> Result<Vec<BudgetRecord>, BudgetError> {
        let now = (self.clock)();
        let at = self.at.clone();
        let transaction = self.connection.transaction().map_err(at.read())?;
        let keys: Vec<BudgetKey> = {
            let mut statement = transaction
                .prepare("SELECT dataset, purpose FROM budgets WHERE ?1 IS NULL OR dataset = ?1 ORDER BY dataset, purpose")
                .map_err(at.read())?;
            let rows = statement
                .query_map(params![dataset], |row| {
                    Ok(BudgetKey {
                        dataset: row.get(0)?,
                        purpose: row.get(1)?,
                    })
                })
                .map_err(at.read())?;
            rows.collect::<Result<_, _>>().map_err(at.read())?
        };
        let records = keys
            .iter()
            .map(|key| status_at(&transaction, &at, key, now))
            .collect();
        transaction.commit().map_err(at.read())?;
        records
    }

    /// Every charge, oldest first, with its owner, cancellation, mechanisms, releases and
    /// diagnostics.
    ///
    /// # Errors
    /// [`BudgetError::Storage`].
    pub fn history(&self) -> Result<Vec<ChargeRecord>, BudgetError> {
        self.charges(Which::All)
    }

    /// The charges reserved but neither committed nor given back, oldest first: runs in
    /// progress, or killed between their reservation and their commit. They count as
    /// spent until their run commits or aborts, or [`SqliteLedger::cancel`] gives them
    /// back.
    ///
    /// # Errors
    /// [`BudgetError::Storage`].
    pub fn reservations(&self) -> Result<Vec<ChargeRecord>, BudgetError> {
        self.charges(Which::Reserved)
    }

    fn charges(&self, which: Which) -> Result<Vec<ChargeRecord>, BudgetError> {
        let at = &self.at;
        let fail = at.read();
        // One snapshot for every table read below.
        let transaction = self.connection.unchecked_transaction().map_err(&fail)?;
        let mut statement = transaction
            .prepare(
                "SELECT charges.id, budgets.dataset, budgets.purpose, charges.job, charges.job_hash,
                        charges.state, charges.cost, charges.created_at, charges.updated_at,
                        charges.owner_host, charges.owner_pid, charges.owner_started,
                        charges.owner_boot
                 FROM charges JOIN budgets ON budgets.id = charges.budget_id
                 WHERE ?1 = 0 OR charges.state = 'reserved'
                 ORDER BY charges.id",
            )
            .map_err(&fail)?;
        let rows = statement
            .query_map(params![i64::from(which == Which::Reserved)], |row| {
                let owner = match (
                    row.get::<_, Option<String>>(9)?,
                    row.get::<_, Option<i64>>(10)?,
                ) {
                    (Some(host), Some(pid)) => Some(Owner {
                        host,
                        pid: u32::try_from(pid).unwrap_or(0),
                        started: row
                            .get::<_, Option<i64>>(11)?
                            .and_then(|ticks| u64::try_from(ticks).ok()),
                        boot: row.get(12)?,
                    }),
                    _ => None,
                };
                Ok((
                    ChargeRecord {
                        id: row.get(0)?,
                        key: BudgetKey {
                            dataset: row.get(1)?,
                            purpose: row.get(2)?,
                        },
                        job: row.get(3)?,
                        job_hash: row.get(4)?,
                        state: ChargeState::Reserved,
                        cost: row.get(6)?,
                        created_at: row.get(7)?,
                        updated_at: row.get(8)?,
                        owner,
                        cancellation: None,
                        items: Vec::new(),
                        releases: Vec::new(),
                        diagnostics: Vec::new(),
                    },
                    row.get::<_, String>(5)?,
                ))
            })
            .map_err(&fail)?;
        let mut records = Vec::new();
        for row in rows {
            let (mut record, state) = row.map_err(&fail)?;
            record.state = state
                .parse()
                .map_err(|_| at.corrupt(&format!("charge {} has state {state:?}", record.id)))?;
            records.push(record);
        }
        let mut items = transaction
            .prepare(
                "SELECT label, mechanism, times FROM charge_items WHERE charge_id = ?1 ORDER BY id",
            )
            .map_err(&fail)?;
        let mut releases = transaction
            .prepare("SELECT name, location FROM releases WHERE charge_id = ?1 ORDER BY id")
            .map_err(&fail)?;
        let mut cancellations = transaction
            .prepare(
                "SELECT cancelled_at, evidence, note, by_host, by_pid
                 FROM cancellations WHERE charge_id = ?1",
            )
            .map_err(&fail)?;
        let mut diagnostics = transaction
            .prepare(
                "SELECT name, count FROM diagnostics_not_private WHERE charge_id = ?1 ORDER BY name",
            )
            .map_err(&fail)?;
        for record in &mut records {
            let rows = items
                .query_map(params![record.id], |row| {
                    Ok((
                        row.get::<_, String>(0)?,
                        row.get::<_, String>(1)?,
                        row.get::<_, i64>(2)?,
                    ))
                })
                .map_err(&fail)?;
            for row in rows {
                let (label, mechanism, times) = row.map_err(&fail)?;
                let component = parse_item(at, &mechanism, times)?;
                record.items.push(ChargeItem {
                    label,
                    profile: component.profile,
                    times: u32::try_from(component.times).unwrap_or(u32::MAX),
                });
            }
            let rows = releases
                .query_map(params![record.id], |row| {
                    Ok(ReleaseRecord {
                        name: row.get(0)?,
                        location: row.get(1)?,
                    })
                })
                .map_err(&fail)?;
            record.releases = rows.collect::<Result<_, _>>().map_err(&fail)?;
            let charge_id = record.id;
            record.cancellation = cancellations
                .query_row(params![record.id], |row| {
                    Ok(CancellationRecord {
                        charge_id,
                        cancelled_at: row.get(0)?,
                        evidence: row.get(1)?,
                        note: row.get(2)?,
                        by: Owner {
                            host: row.get(3)?,
                            pid: u32::try_from(row.get::<_, i64>(4)?).unwrap_or(0),
                            started: None,
                            boot: None,
                        },
                    })
                })
                .optional()
                .map_err(&fail)?;
            let rows = diagnostics
                .query_map(params![record.id], |row| {
                    Ok(NotPrivateCount {
                        name: row.get(0)?,
                        count: u64::try_from(row.get::<_, i64>(1)?).unwrap_or(0),
                    })
                })
                .map_err(&fail)?;
            record.diagnostics = rows.collect::<Result<_, _>>().map_err(&fail)?;
        }
        Ok(records)
    }

    /// Gives back the budget of charge `id`, reserved by a run that will never commit it
    /// (killed between its reservation and its commit), and records the cancellation with
    /// its evidence and the operator's `note`.
    ///
    /// Only a reserved charge can be cancelled. It was never committed, and a release is
    /// published only after its charge commits, so nothing was published under it; once
    /// cancelled it can never be committed (a commit needs the reserved state, checked
    /// under the same write lock), so nothing ever will be. The run that reserved it must
    /// be gone: a charge whose process still runs on this host is refused, and one whose
    /// process this host cannot check (another host, or a charge from before the ledger
    /// recorded owners) is refused unless `check` is [`CancelCheck::OperatorVouches`].
    ///
    /// # Errors
    /// [`BudgetError::NoCharge`]; [`BudgetError::CannotCancel`] for a charge that is
    /// committed, already given back, or whose run may still be running;
    /// [`BudgetError::Storage`], [`BudgetError::Locked`].
    pub fn cancel(
        &mut self,
        id: i64,
        check: CancelCheck,
        note: &str,
    ) -> Result<CancellationRecord, BudgetError> {
        let now = (self.clock)();
        let at = self.at.clone();
        let by = Owner::current();
        let transaction = self
            .connection
            .transaction_with_behavior(TransactionBehavior::Immediate)
            .map_err(at.write())?;
        let row = transaction
            .query_row(
                "SELECT state, owner_host, owner_pid, owner_started, owner_boot,
                        (SELECT count(*) FROM releases WHERE releases.charge_id = charges.id)
                 FROM charges WHERE id = ?1",
                params![id],
                |row| {
                    Ok((
                        row.get::<_, String>(0)?,
                        row.get::<_, Option<String>>(1)?,
                        row.get::<_, Option<i64>>(2)?,
                        row.get::<_, Option<i64>>(3)?,
                        row.get::<_, Option<String>>(4)?,
                        row.get::<_, i64>(5)?,
                    ))
                },
            )
            .optional()
            .map_err(at.read())?;
        let Some((state, host, pid, started, boot, releases)) = row else {
            return Err(BudgetError::NoCharge { id });
        };
        let refuse = |reason: String| Err(BudgetError::CannotCancel { id, reason });
        match state.as_str() {
            "reserved" => {}
            "committed" => {
                return refuse(
                    "it is committed: its release may have been published, so its cost stays spent"
                        .to_string(),
                );
            }
            other => {
                return refuse(format!("it is {other}: its budget was already given back"));
            }
        }
        if releases > 0 {
            // Cannot happen (releases are recorded only under committed charges), but a
            // recorded release is proof of publication: never give its budget back.
            return refuse(format!("{releases} releases are recorded under it"));
        }
        let owner = match (host, pid) {
            (Some(host), Some(pid)) => Some(Owner {
                host,
                pid: u32::try_from(pid).unwrap_or(0),
                started: started.and_then(|ticks| u64::try_from(ticks).ok()),
                boot,
            }),
            _ => None,
        };
        let liveness = owner.as_ref().map_or_else(
            || {
                Liveness::Unknown(
                    "it was reserved before this ledger recorded which process reserves a charge"
                        .to_string(),
                )
            },
            Owner::liveness,
        );
        let evidence = match (liveness, check) {
            (Liveness::Running, _) => {
                let owner = owner.map_or_else(String::new, |owner| owner.to_string());
                return refuse(format!(
                    "the run that reserved it ({owner}) is still running; it commits or gives the budget back itself (stop it first if it hangs)"
                ));
            }
            (Liveness::Gone(how), _) => how,
            (Liveness::Unknown(why), CancelCheck::RunGone) => {
                return refuse(format!(
                    "cannot tell whether the run that reserved it is still running: {why}; if you know it is not, cancel with --force"
                ));
            }
            (Liveness::Unknown(why), CancelCheck::OperatorVouches) => {
                format!("the operator vouched that its run is gone ({why})")
            }
        };
        transaction
            .execute(
                "UPDATE charges SET state = 'cancelled', updated_at = ?1 WHERE id = ?2 AND state = 'reserved'",
                params![now, id],
            )
            .map_err(at.write())?;
        transaction
            .execute(
                "INSERT INTO cancellations (charge_id, cancelled_at, evidence, note, by_host, by_pid)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
                params![id, now, evidence, note, by.host, i64::from(by.pid)],
            )
            .map_err(at.write())?;
        transaction.commit().map_err(at.write())?;
        Ok(CancellationRecord {
            charge_id: id,
            cancelled_at: now,
            evidence,
            note: note.to_string(),
            by,
        })
    }

    /// Moves a reserved charge to `to`.
    fn transition(
        &mut self,
        reservation: &Reservation,
        to: ChargeState,
    ) -> Result<(), BudgetError> {
        let now = (self.clock)();
        let at = self.at.clone();
        let transaction = self
            .connection
            .transaction_with_behavior(TransactionBehavior::Immediate)
            .map_err(at.write())?;
        let state = charge_state(&transaction, &at, reservation)?;
        if state.as_deref() != Some("reserved") {
            return Err(BudgetError::NotReserved {
                id: reservation.id,
                state: state.unwrap_or_else(|| "missing".to_string()),
            });
        }
        transaction
            .execute(
                "UPDATE charges SET state = ?1, updated_at = ?2 WHERE id = ?3 AND state = 'reserved'",
                params![to.name(), now, reservation.id],
            )
            .map_err(at.write())?;
        transaction.commit().map_err(at.write())
    }
}

fn validate_total(key: &BudgetKey, total: &PrivacyBudget) -> Result<(), BudgetError> {
    total
        .validate()
        .map_err(|source| BudgetError::InvalidBudget {
            key: key.clone(),
            source,
        })
}

fn budget_id(
    connection: &Connection,
    at: &At,
    key: &BudgetKey,
) -> Result<Option<i64>, BudgetError> {
    connection
        .query_row(
            "SELECT id FROM budgets WHERE dataset = ?1 AND purpose = ?2",
            params![key.dataset, key.purpose],
            |row| row.get(0),
        )
        .optional()
        .map_err(at.read())
}

fn insert_budget(
    transaction: &Transaction<'_>,
    at: &At,
    key: &BudgetKey,
    total: PrivacyBudget,
    period: Option<BudgetPeriod>,
    now: i64,
) -> Result<(), BudgetError> {
    let (measure, epsilon, delta, rho) = match total {
        PrivacyBudget::Approx { epsilon, delta } => ("approx", Some(epsilon), Some(delta), None),
        PrivacyBudget::Zcdp { rho } => ("zcdp", None, None, Some(rho)),
    };
    let period = period.map(|p| i64::try_from(p.seconds()).unwrap_or(i64::MAX));
    transaction
        .execute(
            "INSERT INTO budgets (dataset, purpose, measure, epsilon, delta, rho, period_seconds, created_at)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
            params![key.dataset, key.purpose, measure, epsilon, delta, rho, period, now],
        )
        .map_err(at.write())?;
    Ok(())
}

fn budget_row(connection: &Connection, at: &At, key: &BudgetKey) -> Result<BudgetRow, BudgetError> {
    let row = connection
        .query_row(
            "SELECT id, measure, epsilon, delta, rho, period_seconds, created_at
             FROM budgets WHERE dataset = ?1 AND purpose = ?2",
            params![key.dataset, key.purpose],
            |row| {
                Ok((
                    row.get::<_, i64>(0)?,
                    row.get::<_, String>(1)?,
                    row.get::<_, Option<f64>>(2)?,
                    row.get::<_, Option<f64>>(3)?,
                    row.get::<_, Option<f64>>(4)?,
                    row.get::<_, Option<i64>>(5)?,
                    row.get::<_, i64>(6)?,
                ))
            },
        )
        .optional()
        .map_err(at.read())?;
    let Some((id, measure, epsilon, delta, rho, period, created_at)) = row else {
        return Err(BudgetError::NoBudget { key: key.clone() });
    };
    let corrupt = |what: &str| at.corrupt(&format!("budget {id} has {what}"));
    let total = match (measure.as_str(), epsilon, delta, rho) {
        ("approx", Some(epsilon), Some(delta), None) => PrivacyBudget::Approx { epsilon, delta },
        ("zcdp", None, None, Some(rho)) => PrivacyBudget::Zcdp { rho },
        _ => return Err(corrupt("an unreadable total")),
    };
    let period = match period {
        None => None,
        Some(seconds) => Some(
            u64::try_from(seconds)
                .ok()
                .and_then(|s| BudgetPeriod::from_seconds(s).ok())
                .ok_or_else(|| corrupt("an invalid period"))?,
        ),
    };
    Ok(BudgetRow {
        id,
        total,
        period,
        created_at,
    })
}

/// The components of the charges that count against `budget` at `now`.
fn counted_components(
    connection: &Connection,
    at: &At,
    budget: &BudgetRow,
    now: i64,
) -> Result<Vec<Component>, BudgetError> {
    let start = budget
        .period
        .map_or(i64::MIN, |period| period.window(budget.created_at, now).0);
    let mut statement = connection
        .prepare(
            "SELECT charge_items.mechanism, charge_items.times
             FROM charge_items JOIN charges ON charges.id = charge_items.charge_id
             WHERE charges.budget_id = ?1 AND charges.state IN ('reserved', 'committed')
               AND charges.created_at >= ?2",
        )
        .map_err(at.read())?;
    let rows = statement
        .query_map(params![budget.id, start], |row| {
            Ok((row.get::<_, String>(0)?, row.get::<_, i64>(1)?))
        })
        .map_err(at.read())?;
    let mut components = Vec::new();
    for row in rows {
        let (mechanism, times) = row.map_err(at.read())?;
        components.push(parse_item(at, &mechanism, times)?);
    }
    Ok(components)
}

fn status_at(
    connection: &Connection,
    at: &At,
    key: &BudgetKey,
    now: i64,
) -> Result<BudgetRecord, BudgetError> {
    let budget = budget_row(connection, at, key)?;
    let components = counted_components(connection, at, &budget, now)?;
    let spent = cost(&budget.total, &components).map_err(|source| BudgetError::Accountant {
        key: key.clone(),
        source,
    })?;
    Ok(BudgetRecord {
        status: BudgetStatus {
            key: key.clone(),
            total: budget.total,
            spent,
            remaining: budget.total.remaining_after(&spent),
        },
        period: budget.period,
        created_at: budget.created_at,
        window: budget
            .period
            .map(|period| period.window(budget.created_at, now)),
    })
}

/// Checks `charge` against the budget of `key` and inserts it as reserved by `owner`;
/// returns its id. The caller holds the write lock.
fn reserve_in(
    transaction: &Transaction<'_>,
    at: &At,
    key: &BudgetKey,
    charge: &Charge,
    now: i64,
    owner: &Owner,
) -> Result<i64, BudgetError> {
    let budget = budget_row(transaction, at, key)?;
    let spent = counted_components(transaction, at, &budget, now)?;
    check_charge(key, &budget.total, &spent, charge)?;
    let own: Vec<Component> = charge.items.iter().map(Component::from).collect();
    let own_cost = cost(&budget.total, &own).map_or(f64::INFINITY, |amount| amount.amount());
    transaction
        .execute(
            "INSERT INTO charges (budget_id, job, job_hash, state, cost, created_at, updated_at,
                                  owner_host, owner_pid, owner_started, owner_boot)
             VALUES (?1, ?2, ?3, 'reserved', ?4, ?5, ?5, ?6, ?7, ?8, ?9)",
            params![
                budget.id,
                charge.job,
                charge.job_hash,
                own_cost,
                now,
                owner.host,
                i64::from(owner.pid),
                owner.started.and_then(|ticks| i64::try_from(ticks).ok()),
                owner.boot,
            ],
        )
        .map_err(at.write())?;
    let id = transaction.last_insert_rowid();
    for item in &charge.items {
        transaction
            .execute(
                "INSERT INTO charge_items (charge_id, label, mechanism, times) VALUES (?1, ?2, ?3, ?4)",
                params![id, item.label, item.profile.to_string(), i64::from(item.times)],
            )
            .map_err(at.write())?;
    }
    Ok(id)
}

/// The state of the charge behind `reservation`, if it belongs to that budget.
fn charge_state(
    connection: &Connection,
    at: &At,
    reservation: &Reservation,
) -> Result<Option<String>, BudgetError> {
    connection
        .query_row(
            "SELECT charges.state FROM charges JOIN budgets ON budgets.id = charges.budget_id
             WHERE charges.id = ?1 AND budgets.dataset = ?2 AND budgets.purpose = ?3",
            params![
                reservation.id,
                reservation.key.dataset,
                reservation.key.purpose
            ],
            |row| row.get(0),
        )
        .optional()
        .map_err(at.read())
}

fn parse_item(at: &At, mechanism: &str, times: i64) -> Result<Component, BudgetError> {
    let profile: MechanismProfile = mechanism.parse().map_err(|error| BudgetError::Storage {
        message: format!(
            "{}: a stored mechanism cannot be read back: {mechanism}",
            at.path.display()
        ),
        source: Some(Box::new(error)),
    })?;
    Ok(Component::new(profile, u64::try_from(times).unwrap_or(0)))
}

impl BudgetLedger for SqliteLedger {
    fn reserve(&mut self, key: &BudgetKey, charge: &Charge) -> Result<Reservation, BudgetError> {
        let now = (self.clock)();
        let at = self.at.clone();
        // IMMEDIATE takes the write lock before anything is read: two jobs cannot both
        // read the same spending and both fit under it.
        let transaction = self
            .connection
            .transaction_with_behavior(TransactionBehavior::Immediate)
            .map_err(at.write())?;
        let id = reserve_in(&transaction, &at, key, charge, now, &self.owner)?;
        transaction.commit().map_err(at.write())?;
        Ok(Reservation {
            id,
            key: key.clone(),
        })
    }

    fn commit(&mut self, reservation: &Reservation) -> Result<(), BudgetError> {
        self.transition(reservation, ChargeState::Committed)
    }

    fn abort(&mut self, reservation: &Reservation) -> Result<(), BudgetError> {
        self.transition(reservation, ChargeState::Aborted)
    }

    fn record_release(
        &mut self,
        reservation: &Reservation,
        release: &ReleaseRecord,
    ) -> Result<(), BudgetError> {
        let now = (self.clock)();
        let at = self.at.clone();
        let transaction = self
            .connection
            .transaction_with_behavior(TransactionBehavior::Immediate)
            .map_err(at.write())?;
        let state = charge_state(&transaction, &at, reservation)?;
        if state.as_deref() != Some("committed") {
            return Err(BudgetError::NotCommitted {
                id: reservation.id,
                state: state.unwrap_or_else(|| "missing".to_string()),
            });
        }
        transaction
            .execute(
                "INSERT INTO releases (charge_id, name, location, created_at) VALUES (?1, ?2, ?3, ?4)",
                params![reservation.id, release.name, release.location, now],
            )
            .map_err(at.write())?;
        transaction.commit().map_err(at.write())
    }

    fn status(&self, key: &BudgetKey) -> Result<BudgetStatus, BudgetError> {
        let now = (self.clock)();
        // A deferred transaction: one consistent snapshot for the budget and its charges.
        let transaction = self
            .connection
            .unchecked_transaction()
            .map_err(self.at.read())?;
        let record = status_at(&transaction, &self.at, key, now)?;
        transaction.commit().map_err(self.at.read())?;
        Ok(record.status)
    }

    fn record_diagnostics(
        &mut self,
        reservation: &Reservation,
        counts: &[NotPrivateCount],
    ) -> Result<(), BudgetError> {
        let now = (self.clock)();
        let at = self.at.clone();
        let transaction = self
            .connection
            .transaction_with_behavior(TransactionBehavior::Immediate)
            .map_err(at.write())?;
        if charge_state(&transaction, &at, reservation)?.is_none() {
            return Err(BudgetError::NoCharge { id: reservation.id });
        }
        for count in counts {
            let value = i64::try_from(count.count).map_err(|_| BudgetError::Storage {
                message: format!(
                    "{}: diagnostic {} = {} does not fit the ledger's 64-bit integers",
                    at.path.display(),
                    count.name,
                    count.count
                ),
                source: None,
            })?;
            transaction
                .execute(
                    "INSERT INTO diagnostics_not_private (charge_id, name, count, recorded_at)
                     VALUES (?1, ?2, ?3, ?4)
                     ON CONFLICT (charge_id, name) DO UPDATE
                     SET count = excluded.count, recorded_at = excluded.recorded_at",
                    params![reservation.id, count.name, value, now],
                )
                .map_err(at.write())?;
        }
        transaction.commit().map_err(at.write())
    }
}

#[cfg(test)]
mod tests;
