//! The SQL beneath the ledger: budget rows, the composition of their charges, reserving
//! under the write lock, and the timing of lock waits.

use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use rusqlite::{
    Connection, ErrorCode, OptionalExtension, Transaction, TransactionBehavior, params,
};
use veil_accountant::budget::{check_charge, cost};
use veil_accountant::{
    BudgetError, BudgetKey, BudgetPeriod, BudgetStatus, Charge, Component, MechanismProfile,
    PrivacyBudget, Reservation,
};

use crate::Owner;
use crate::records::BudgetRecord;

/// Where errors happen: the file, and how long the last wait for its lock lasted. Cloned
/// into error closures so that they do not borrow the ledger.
#[derive(Debug, Clone)]
pub(crate) struct At {
    pub(crate) path: PathBuf,
    /// Milliseconds the busy handler last waited (shared with it).
    pub(crate) waited_ms: Arc<AtomicU64>,
}

/// A budget row.
pub(crate) struct BudgetRow {
    pub(crate) id: i64,
    pub(crate) total: PrivacyBudget,
    pub(crate) period: Option<BudgetPeriod>,
    pub(crate) created_at: i64,
}

pub(crate) fn validate_total(key: &BudgetKey, total: &PrivacyBudget) -> Result<(), BudgetError> {
    total
        .validate()
        .map_err(|source| BudgetError::InvalidBudget {
            key: key.clone(),
            source,
        })
}

pub(crate) fn budget_id(
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

pub(crate) fn insert_budget(
    transaction: &Transaction<'_>,
    at: &At,
    key: &BudgetKey,
    total: PrivacyBudget,
    period: Option<BudgetPeriod>,
    now: i64,
) -> Result<(), BudgetError> {
    let (measure, epsilon, delta, rho) = total_columns(total);
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

/// A total's columns: `(measure, epsilon, delta, rho)`.
pub(crate) fn total_columns(
    total: PrivacyBudget,
) -> (&'static str, Option<f64>, Option<f64>, Option<f64>) {
    match total {
        PrivacyBudget::Approx { epsilon, delta } => ("approx", Some(epsilon), Some(delta), None),
        PrivacyBudget::Zcdp { rho } => ("zcdp", None, None, Some(rho)),
    }
}

/// The total stored as `(epsilon, delta, rho)` columns, or `None` if they do not make one.
pub(crate) fn total_of(
    epsilon: Option<f64>,
    delta: Option<f64>,
    rho: Option<f64>,
) -> Option<PrivacyBudget> {
    match (epsilon, delta, rho) {
        (Some(epsilon), Some(delta), None) => Some(PrivacyBudget::Approx { epsilon, delta }),
        (None, None, Some(rho)) => Some(PrivacyBudget::Zcdp { rho }),
        _ => None,
    }
}

pub(crate) fn budget_row(
    connection: &Connection,
    at: &At,
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
        .map_err(at.read())?;
    let Some((id, measure, epsilon, delta, rho, period, created_at)) = row else {
        return Err(BudgetError::NoBudget { key: key.clone() });
    };
    let corrupt = |what: &str| at.corrupt(&format!("budget {id} has {what}"));
    let total = total_of(epsilon, delta, rho)
        .filter(|total| total_columns(*total).0 == measure)
        .ok_or_else(|| corrupt("an unreadable total"))?;
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
pub(crate) fn counted_components(
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

pub(crate) fn status_at(
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
pub(crate) fn reserve_in(
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
/// Opens a write transaction that takes SQLite's write lock before anything is read
/// (`IMMEDIATE`): two runs cannot both read the same spending and both fit under it.
pub(crate) fn write_transaction<'c>(
    connection: &'c mut Connection,
    at: &At,
) -> Result<Transaction<'c>, BudgetError> {
    connection
        .transaction_with_behavior(TransactionBehavior::Immediate)
        .map_err(at.write())
}

/// Checks, inside `transaction`, that the charge of `reservation` is in state `expected`;
/// otherwise the error `wrong` builds from the charge's id and its state (`missing` for none).
pub(crate) fn require_state(
    transaction: &Transaction<'_>,
    at: &At,
    reservation: &Reservation,
    expected: &str,
    wrong: fn(i64, String) -> BudgetError,
) -> Result<(), BudgetError> {
    match charge_state(transaction, at, reservation)? {
        Some(state) if state == expected => Ok(()),
        state => Err(wrong(
            reservation.id,
            state.unwrap_or_else(|| "missing".to_string()),
        )),
    }
}

pub(crate) fn charge_state(
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

pub(crate) fn parse_item(at: &At, mechanism: &str, times: i64) -> Result<Component, BudgetError> {
    let profile: MechanismProfile = mechanism.parse().map_err(|error| BudgetError::Storage {
        message: format!(
            "{}: a stored mechanism cannot be read back: {mechanism}",
            at.path.display()
        ),
        source: Some(Box::new(error)),
    })?;
    Ok(Component::new(profile, u64::try_from(times).unwrap_or(0)))
}

impl At {
    /// A storage error naming the file; a lock held too long is [`BudgetError::Locked`],
    /// a file that is not a database is told apart.
    pub(crate) fn error(&self, what: &str, error: rusqlite::Error) -> BudgetError {
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

    pub(crate) fn read(&self) -> impl Fn(rusqlite::Error) -> BudgetError + '_ {
        move |error| self.error("cannot read", error)
    }

    pub(crate) fn write(&self) -> impl Fn(rusqlite::Error) -> BudgetError + '_ {
        move |error| self.error("cannot write", error)
    }

    /// A ledger whose content is not what this Veil wrote.
    pub(crate) fn corrupt(&self, what: &str) -> BudgetError {
        BudgetError::Storage {
            message: format!("{}: {what}", self.path.display()),
            source: None,
        }
    }
}
