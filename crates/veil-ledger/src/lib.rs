//! Veil's persistent privacy budget ledger: one SQLite file (rusqlite's bundled SQLite)
//! that holds the budgets of each (dataset, purpose), every charge made against them and
//! every release written under a charge.
//!
//! - [`SqliteLedger`] implements [`veil_accountant::BudgetLedger`]. What a budget has spent
//!   is the accountant's composition of all its reserved and committed charges in the
//!   current period ([`veil_accountant::budget::cost`]), never a sum of epsilons.
//! - Each reserve runs in a transaction that takes SQLite's write lock *before* it reads
//!   the charges, so concurrent jobs on one file never overspend; others wait (up to
//!   [`SqliteLedger::BUSY_TIMEOUT`]).
//! - A job reserves before it draws noise and commits before it writes: killed at any
//!   point, it leaves a reserved charge (budget lost, never overspent) or a committed one.
//! - [`BudgetRecord`] and [`ChargeRecord`] are what `veil budget status` and
//!   `veil budget history` show. The schema is versioned ([`schema`]); the file can be
//!   read with any SQLite client.
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
use std::time::Duration;

use rusqlite::{Connection, OpenFlags, OptionalExtension, TransactionBehavior, params};
use veil_accountant::budget::{check_charge, cost};
use veil_accountant::{
    BudgetError, BudgetKey, BudgetLedger, BudgetPeriod, BudgetStatus, Charge, ChargeItem,
    ChargeState, Component, MechanismProfile, PrivacyBudget, ReleaseRecord, Reservation,
};

pub mod schema;

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
    /// Reserved, committed or aborted.
    pub state: ChargeState,
    /// What the charge cost on its own, in the budget's measure, when it was reserved.
    pub cost: f64,
    /// When it was reserved (Unix seconds).
    pub created_at: i64,
    /// When its state last changed (Unix seconds).
    pub updated_at: i64,
    /// Its mechanisms.
    pub items: Vec<ChargeItem>,
    /// What was released under it.
    pub releases: Vec<ReleaseRecord>,
}

/// A source of the current time in Unix seconds.
pub type Clock = Arc<dyn Fn() -> i64 + Send + Sync>;

/// The persistent [`BudgetLedger`] in one SQLite file.
pub struct SqliteLedger {
    connection: Connection,
    path: PathBuf,
    clock: Clock,
}

impl fmt::Debug for SqliteLedger {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SqliteLedger")
            .field("path", &self.path)
            .finish_non_exhaustive()
    }
}

fn storage(
    path: &Path,
    what: &str,
    error: impl std::error::Error + Send + Sync + 'static,
) -> BudgetError {
    BudgetError::Storage {
        message: format!("{what} {}", path.display()),
        source: Some(Box::new(error)),
    }
}

/// A storage error naming the file, told apart for files that are not databases.
fn classify(path: &Path, what: &str, error: rusqlite::Error) -> BudgetError {
    let not_a_database = matches!(
        error,
        rusqlite::Error::SqliteFailure(ref code, _)
            if code.code == rusqlite::ErrorCode::NotADatabase
                || code.code == rusqlite::ErrorCode::DatabaseCorrupt
    );
    if not_a_database {
        storage(
            path,
            "not a Veil ledger (not an SQLite database, or a corrupt one):",
            error,
        )
    } else {
        storage(path, what, error)
    }
}

fn system_clock() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |elapsed| {
            i64::try_from(elapsed.as_secs()).unwrap_or(i64::MAX)
        })
}

/// A budget row.
struct BudgetRow {
    id: i64,
    total: PrivacyBudget,
    period: Option<BudgetPeriod>,
    created_at: i64,
}

impl SqliteLedger {
    /// How long an operation waits for another process's write lock before failing.
    pub const BUSY_TIMEOUT: Duration = Duration::from_secs(120);

    /// Opens the ledger at `path`, creating the file and its schema if there is none.
    ///
    /// # Errors
    /// [`BudgetError::Storage`] if the file cannot be opened or created, is not an SQLite
    /// database, belongs to another application, or was written by a newer Veil.
    pub fn create(path: &Path) -> Result<Self, BudgetError> {
        Self::open_with(
            path,
            OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_CREATE,
        )
    }

    /// Opens an existing ledger at `path`.
    ///
    /// # Errors
    /// [`BudgetError::Storage`] if there is no file at `path` (create one with
    /// `veil budget init`), or as [`SqliteLedger::create`].
    pub fn open(path: &Path) -> Result<Self, BudgetError> {
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
        Self::open_with(path, OpenFlags::SQLITE_OPEN_READ_WRITE)
    }

    fn open_with(path: &Path, flags: OpenFlags) -> Result<Self, BudgetError> {
        let connection = Connection::open_with_flags(path, flags | OpenFlags::SQLITE_OPEN_NO_MUTEX)
            .map_err(|error| storage(path, "cannot open the ledger", error))?;
        connection
            .busy_timeout(Self::BUSY_TIMEOUT)
            .map_err(|error| storage(path, "cannot configure the ledger", error))?;
        let mut ledger = Self {
            connection,
            path: path.to_path_buf(),
            clock: Arc::new(system_clock),
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

    /// The file.
    #[must_use]
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Checks that the file is a Veil ledger (or empty) and applies missing migrations.
    /// A current ledger is only read, so opening one never waits for the write lock.
    fn migrate(&mut self) -> Result<(), BudgetError> {
        let path = self.path.clone();
        let fail = |what: &str, error: rusqlite::Error| classify(&path, what, error);
        let header = self
            .connection
            .query_row(
                "SELECT (SELECT application_id FROM pragma_application_id),
                        (SELECT user_version FROM pragma_user_version)",
                [],
                |row| Ok((row.get::<_, i32>(0)?, row.get::<_, i64>(1)?)),
            )
            .map_err(|error| fail("cannot read", error))?;
        if header == (schema::APPLICATION_ID, schema::current_version()) {
            return Ok(());
        }
        let transaction = self
            .connection
            .transaction_with_behavior(TransactionBehavior::Immediate)
            .map_err(|error| fail("cannot lock", error))?;
        let application_id: i32 = transaction
            .query_row("PRAGMA application_id", [], |row| row.get(0))
            .map_err(|error| fail("cannot read", error))?;
        let version: i64 = transaction
            .query_row("PRAGMA user_version", [], |row| row.get(0))
            .map_err(|error| fail("cannot read", error))?;
        let tables: i64 = transaction
            .query_row(
                "SELECT count(*) FROM sqlite_master WHERE type = 'table'",
                [],
                |row| row.get(0),
            )
            .map_err(|error| fail("cannot read", error))?;
        if application_id != schema::APPLICATION_ID && (application_id != 0 || tables > 0) {
            return Err(BudgetError::Storage {
                message: format!(
                    "{} is an SQLite database but not a Veil ledger (application id {application_id:#x}, {tables} tables); give another --ledger path",
                    path.display()
                ),
                source: None,
            });
        }
        if version > schema::current_version() {
            return Err(BudgetError::Storage {
                message: format!(
                    "{} has ledger schema version {version}, newer than this Veil's {}; upgrade Veil",
                    path.display(),
                    schema::current_version()
                ),
                source: None,
            });
        }
        let start = usize::try_from(version).unwrap_or(0);
        for (index, migration) in schema::MIGRATIONS.iter().enumerate().skip(start) {
            transaction.execute_batch(migration).map_err(|error| {
                fail(
                    &format!("cannot migrate to schema version {}:", index + 1),
                    error,
                )
            })?;
        }
        transaction
            .execute_batch(&format!(
                "PRAGMA application_id = {}; PRAGMA user_version = {};",
                schema::APPLICATION_ID,
                schema::current_version()
            ))
            .map_err(|error| fail("cannot write", error))?;
        transaction
            .commit()
            .map_err(|error| fail("cannot write", error))
    }

    /// The schema version of the file.
    ///
    /// # Errors
    /// [`BudgetError::Storage`].
    pub fn schema_version(&self) -> Result<i64, BudgetError> {
        self.connection
            .query_row("PRAGMA user_version", [], |row| row.get(0))
            .map_err(|error| classify(&self.path, "cannot read", error))
    }

    /// Creates the budget of `key` with `total`, renewing every `period` if given.
    ///
    /// # Errors
    /// [`BudgetError::AlreadyExists`], [`BudgetError::InvalidBudget`],
    /// [`BudgetError::Storage`].
    pub fn init_budget(
        &mut self,
        key: &BudgetKey,
        total: PrivacyBudget,
        period: Option<BudgetPeriod>,
    ) -> Result<(), BudgetError> {
        total
            .validate()
            .map_err(|source| BudgetError::InvalidBudget {
                key: key.clone(),
                source,
            })?;
        let now = (self.clock)();
        let path = self.path.clone();
        let fail = move |error| storage(&path, "cannot write", error);
        let transaction = self
            .connection
            .transaction_with_behavior(TransactionBehavior::Immediate)
            .map_err(&fail)?;
        let exists: Option<i64> = transaction
            .query_row(
                "SELECT id FROM budgets WHERE dataset = ?1 AND purpose = ?2",
                params![key.dataset, key.purpose],
                |row| row.get(0),
            )
            .optional()
            .map_err(&fail)?;
        if exists.is_some() {
            return Err(BudgetError::AlreadyExists { key: key.clone() });
        }
        let (measure, epsilon, delta, rho) = match total {
            PrivacyBudget::Approx { epsilon, delta } => {
                ("approx", Some(epsilon), Some(delta), None)
            }
            PrivacyBudget::Zcdp { rho } => ("zcdp", None, None, Some(rho)),
        };
        let period = period.map(|p| i64::try_from(p.seconds()).unwrap_or(i64::MAX));
        transaction
            .execute(
                "INSERT INTO budgets (dataset, purpose, measure, epsilon, delta, rho, period_seconds, created_at)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
                params![key.dataset, key.purpose, measure, epsilon, delta, rho, period, now],
            )
            .map_err(&fail)?;
        transaction.commit().map_err(&fail)
    }

    fn budget_row(
        connection: &Connection,
        path: &Path,
        key: &BudgetKey,
    ) -> Result<BudgetRow, BudgetError> {
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
            .map_err(|error| storage(path, "cannot read", error))?;
        let Some((id, measure, epsilon, delta, rho, period, created_at)) = row else {
            return Err(BudgetError::NoBudget { key: key.clone() });
        };
        let corrupt = |what: &str| BudgetError::Storage {
            message: format!("{}: budget {id} has {what}", path.display()),
            source: None,
        };
        let total = match (measure.as_str(), epsilon, delta, rho) {
            ("approx", Some(epsilon), Some(delta), None) => {
                PrivacyBudget::Approx { epsilon, delta }
            }
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
        path: &Path,
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
            .map_err(|error| storage(path, "cannot read", error))?;
        let rows = statement
            .query_map(params![budget.id, start], |row| {
                Ok((row.get::<_, String>(0)?, row.get::<_, i64>(1)?))
            })
            .map_err(|error| storage(path, "cannot read", error))?;
        let mut components = Vec::new();
        for row in rows {
            let (mechanism, times) = row.map_err(|error| storage(path, "cannot read", error))?;
            components.push(parse_item(path, &mechanism, times)?);
        }
        Ok(components)
    }

    fn status_at(
        connection: &Connection,
        path: &Path,
        key: &BudgetKey,
        now: i64,
    ) -> Result<BudgetRecord, BudgetError> {
        let budget = Self::budget_row(connection, path, key)?;
        let components = Self::counted_components(connection, path, &budget, now)?;
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

    /// Every budget (or the budgets of one dataset) with what it has spent now.
    ///
    /// # Errors
    /// [`BudgetError::Storage`]; [`BudgetError::Accountant`] if a stored charge no longer
    /// composes.
    pub fn budgets(&mut self, dataset: Option<&str>) -> Result<Vec<BudgetRecord>, BudgetError> {
        let now = (self.clock)();
        let path = self.path.clone();
        let fail = |error| storage(&path, "cannot read", error);
        let transaction = self.connection.transaction().map_err(fail)?;
        let keys: Vec<BudgetKey> = {
            let mut statement = transaction
                .prepare("SELECT dataset, purpose FROM budgets WHERE ?1 IS NULL OR dataset = ?1 ORDER BY dataset, purpose")
                .map_err(fail)?;
            let rows = statement
                .query_map(params![dataset], |row| {
                    Ok(BudgetKey {
                        dataset: row.get(0)?,
                        purpose: row.get(1)?,
                    })
                })
                .map_err(fail)?;
            rows.collect::<Result<_, _>>().map_err(fail)?
        };
        let records = keys
            .iter()
            .map(|key| Self::status_at(&transaction, &path, key, now))
            .collect();
        transaction.commit().map_err(fail)?;
        records
    }

    /// Every charge, oldest first, with its mechanisms and releases.
    ///
    /// # Errors
    /// [`BudgetError::Storage`].
    pub fn history(&self) -> Result<Vec<ChargeRecord>, BudgetError> {
        let fail = |error| storage(&self.path, "cannot read", error);
        let mut statement = self
            .connection
            .prepare(
                "SELECT charges.id, budgets.dataset, budgets.purpose, charges.job, charges.job_hash,
                        charges.state, charges.cost, charges.created_at, charges.updated_at
                 FROM charges JOIN budgets ON budgets.id = charges.budget_id ORDER BY charges.id",
            )
            .map_err(fail)?;
        let rows = statement
            .query_map([], |row| {
                Ok(ChargeRecord {
                    id: row.get(0)?,
                    key: BudgetKey {
                        dataset: row.get(1)?,
                        purpose: row.get(2)?,
                    },
                    job: row.get(3)?,
                    job_hash: row.get(4)?,
                    state: row
                        .get::<_, String>(5)?
                        .parse()
                        .unwrap_or(ChargeState::Reserved),
                    cost: row.get(6)?,
                    created_at: row.get(7)?,
                    updated_at: row.get(8)?,
                    items: Vec::new(),
                    releases: Vec::new(),
                })
            })
            .map_err(fail)?;
        let mut records: Vec<ChargeRecord> = rows.collect::<Result<_, _>>().map_err(fail)?;
        let mut items = self
            .connection
            .prepare(
                "SELECT label, mechanism, times FROM charge_items WHERE charge_id = ?1 ORDER BY id",
            )
            .map_err(fail)?;
        let mut releases = self
            .connection
            .prepare("SELECT name, location FROM releases WHERE charge_id = ?1 ORDER BY id")
            .map_err(fail)?;
        for record in &mut records {
            let rows = items
                .query_map(params![record.id], |row| {
                    Ok((
                        row.get::<_, String>(0)?,
                        row.get::<_, String>(1)?,
                        row.get::<_, i64>(2)?,
                    ))
                })
                .map_err(fail)?;
            for row in rows {
                let (label, mechanism, times) = row.map_err(fail)?;
                let component = parse_item(&self.path, &mechanism, times)?;
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
                .map_err(fail)?;
            record.releases = rows.collect::<Result<_, _>>().map_err(fail)?;
        }
        Ok(records)
    }

    /// Moves a reserved charge to `to`.
    fn transition(
        &mut self,
        reservation: &Reservation,
        to: ChargeState,
    ) -> Result<(), BudgetError> {
        let now = (self.clock)();
        let path = self.path.clone();
        let fail = |error| storage(&path, "cannot write", error);
        let transaction = self
            .connection
            .transaction_with_behavior(TransactionBehavior::Immediate)
            .map_err(fail)?;
        let state = charge_state(&transaction, reservation)?;
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
            .map_err(fail)?;
        transaction.commit().map_err(fail)
    }
}

/// The state of the charge behind `reservation`, if it belongs to that budget.
fn charge_state(
    connection: &Connection,
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
        .map_err(|error| BudgetError::Storage {
            message: "cannot read a charge's state".to_string(),
            source: Some(Box::new(error)),
        })
}

fn parse_item(path: &Path, mechanism: &str, times: i64) -> Result<Component, BudgetError> {
    let profile: MechanismProfile = mechanism.parse().map_err(|error| BudgetError::Storage {
        message: format!(
            "{}: a stored mechanism cannot be read back: {mechanism}",
            path.display()
        ),
        source: Some(Box::new(error)),
    })?;
    Ok(Component::new(profile, u64::try_from(times).unwrap_or(0)))
}

impl BudgetLedger for SqliteLedger {
    fn reserve(&mut self, key: &BudgetKey, charge: &Charge) -> Result<Reservation, BudgetError> {
        let now = (self.clock)();
        let path = self.path.clone();
        let fail = |error| storage(&path, "cannot write", error);
        // IMMEDIATE takes the write lock before anything is read: two jobs cannot both
        // read the same spending and both fit under it.
        let transaction = self
            .connection
            .transaction_with_behavior(TransactionBehavior::Immediate)
            .map_err(fail)?;
        let budget = Self::budget_row(&transaction, &path, key)?;
        let spent = Self::counted_components(&transaction, &path, &budget, now)?;
        check_charge(key, &budget.total, &spent, charge)?;
        let own: Vec<Component> = charge.items.iter().map(Component::from).collect();
        let own_cost = cost(&budget.total, &own).map_or(f64::INFINITY, |amount| amount.amount());
        transaction
            .execute(
                "INSERT INTO charges (budget_id, job, job_hash, state, cost, created_at, updated_at)
                 VALUES (?1, ?2, ?3, 'reserved', ?4, ?5, ?5)",
                params![budget.id, charge.job, charge.job_hash, own_cost, now],
            )
            .map_err(fail)?;
        let id = transaction.last_insert_rowid();
        for item in &charge.items {
            transaction
                .execute(
                    "INSERT INTO charge_items (charge_id, label, mechanism, times) VALUES (?1, ?2, ?3, ?4)",
                    params![id, item.label, item.profile.to_string(), i64::from(item.times)],
                )
                .map_err(fail)?;
        }
        transaction.commit().map_err(fail)?;
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
        let path = self.path.clone();
        let fail = |error| storage(&path, "cannot write", error);
        let transaction = self
            .connection
            .transaction_with_behavior(TransactionBehavior::Immediate)
            .map_err(fail)?;
        let state = charge_state(&transaction, reservation)?;
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
            .map_err(fail)?;
        transaction.commit().map_err(fail)
    }

    fn status(&self, key: &BudgetKey) -> Result<BudgetStatus, BudgetError> {
        let now = (self.clock)();
        // A deferred transaction: one consistent snapshot for the budget and its charges.
        let fail = |error| storage(&self.path, "cannot read", error);
        self.connection
            .execute_batch("BEGIN DEFERRED")
            .map_err(fail)?;
        let record = Self::status_at(&self.connection, &self.path, key, now);
        self.connection.execute_batch("COMMIT").map_err(fail)?;
        Ok(record?.status)
    }
}

#[cfg(test)]
mod tests;
