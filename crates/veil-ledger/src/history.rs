//! Reading the ledger back: budgets with what they spent, charges and reservations.

use rusqlite::{OptionalExtension, params};
use veil_accountant::{
    BudgetError, BudgetKey, ChargeItem, ChargeState, NotPrivateCount, ReleaseRecord,
};

use crate::records::{AmendmentRecord, BudgetRecord, CancellationRecord, ChargeRecord};
use crate::store::{parse_item, status_at, total_of};
use crate::{Owner, SqliteLedger};

impl SqliteLedger {
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

    /// Every change to a budget's total (`amend_budget`), oldest first.
    ///
    /// # Errors
    /// [`BudgetError::Storage`], also for a stored total that does not read back.
    pub fn amendments(&self) -> Result<Vec<AmendmentRecord>, BudgetError> {
        let mut statement = self
            .connection
            .prepare(
                "SELECT b.dataset, b.purpose, a.amended_at, a.old_epsilon, a.old_delta, a.old_rho,
                        a.new_epsilon, a.new_delta, a.new_rho, a.note, a.by_host, a.by_pid, a.id
                 FROM budget_amendments a JOIN budgets b ON b.id = a.budget_id ORDER BY a.id",
            )
            .map_err(self.at.read())?;
        let rows = statement
            .query_map([], |row| {
                Ok((
                    BudgetKey {
                        dataset: row.get(0)?,
                        purpose: row.get(1)?,
                    },
                    row.get::<_, i64>(2)?,
                    [
                        row.get::<_, Option<f64>>(3)?,
                        row.get::<_, Option<f64>>(4)?,
                        row.get::<_, Option<f64>>(5)?,
                        row.get::<_, Option<f64>>(6)?,
                        row.get::<_, Option<f64>>(7)?,
                        row.get::<_, Option<f64>>(8)?,
                    ],
                    row.get::<_, String>(9)?,
                    row.get::<_, String>(10)?,
                    row.get::<_, i64>(11)?,
                    row.get::<_, i64>(12)?,
                ))
            })
            .map_err(self.at.read())?;
        let mut amendments = Vec::new();
        for row in rows {
            let (key, amended_at, totals, note, host, pid, id) = row.map_err(self.at.read())?;
            let (Some(from), Some(to)) = (
                total_of(totals[0], totals[1], totals[2]),
                total_of(totals[3], totals[4], totals[5]),
            ) else {
                return Err(self
                    .at
                    .corrupt(&format!("amendment {id} has an unreadable total")));
            };
            amendments.push(AmendmentRecord {
                key,
                amended_at,
                from,
                to,
                note,
                by: Owner {
                    host,
                    pid: u32::try_from(pid).unwrap_or(0),
                    started: None,
                    boot: None,
                },
            });
        }
        Ok(amendments)
    }

    /// The datasets that hold a budget for `purpose`, in name order (no spending is
    /// composed: a cheap read for a run's checks before it reserves).
    ///
    /// # Errors
    /// [`BudgetError::Storage`].
    pub fn datasets_of(&self, purpose: &str) -> Result<Vec<String>, BudgetError> {
        let mut statement = self
            .connection
            .prepare("SELECT dataset FROM budgets WHERE purpose = ?1 ORDER BY dataset")
            .map_err(self.at.read())?;
        let rows = statement
            .query_map(params![purpose], |row| row.get::<_, String>(0))
            .map_err(self.at.read())?;
        rows.collect::<Result<_, _>>().map_err(self.at.read())
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
    /// spent until their run commits or aborts, or [`SqliteLedger::cancel`](crate::SqliteLedger::cancel)(crate::SqliteLedger::cancel) gives them
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
}

/// Which charges [`SqliteLedger::charges`](crate::SqliteLedger::charges) reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Which {
    All,
    Reserved,
}
