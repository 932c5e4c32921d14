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
//! - [`SqliteLedger::amend_budget`] changes a budget's total and records the change
//!   (table `budget_amendments`, [`AmendmentRecord`]); charges stay spent, the measure
//!   stays, and δ may only fall while charges count.
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

use std::time::Duration;

use rusqlite::{Connection, OptionalExtension, params};

use veil_accountant::{
    BudgetError, BudgetKey, BudgetLedger, BudgetPeriod, BudgetStatus, Charge, ChargeState,
    NotPrivateCount, PrivacyBudget, ReleaseRecord, Reservation,
};

mod history;
mod open;
pub mod owner;
mod records;
pub mod schema;
mod store;

use crate::store::{
    At, budget_id, budget_row, charge_state, counted_components, insert_budget, require_state,
    reserve_in, status_at, total_columns, validate_total, write_transaction,
};
pub use open::{Clock, LockWaitHook, OpenOptions};
pub use records::{
    AmendmentRecord, BudgetRecord, CancelCheck, CancellationRecord, ChargeRecord, TotalChange,
};

pub use owner::{Liveness, Owner};

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

impl SqliteLedger {
    /// How long an operation waits for another process's lock before failing, unless
    /// [`OpenOptions::lock_timeout`] says otherwise.
    pub const DEFAULT_LOCK_TIMEOUT: Duration = Duration::from_secs(120);

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
        let transaction = write_transaction(&mut self.connection, &at)?;
        if budget_id(&transaction, &at, key)?.is_some() {
            return Err(BudgetError::AlreadyExists { key: key.clone() });
        }
        insert_budget(&transaction, &at, key, total, period, now)?;
        transaction.commit().map_err(at.write())
    }

    /// Changes the total of the budget of `key` (see [`TotalChange`]), and records the
    /// change with the operator's `note`: the history of a budget's totals is kept beside
    /// its charges. Returns the record and the budget after it (status, period, window),
    /// read in the same transaction.
    ///
    /// The charges already made stay spent (they count against the new total as they did
    /// against the old); a total below what is spent leaves nothing to spend (until the
    /// period renews, for a renewing budget). The measure stays: an (ε, δ) budget cannot
    /// become a ρ budget, as its charges were checked in their own measure. δ may only fall
    /// while charges count in the current window: spent is composed at the budget's δ, so
    /// a larger δ would spend the same charges for less ε and hand part of them back. A
    /// smaller δ must still compose every counted charge.
    ///
    /// # Errors
    /// [`BudgetError::NoBudget`]; [`BudgetError::InvalidBudget`] for a total out of range,
    /// an empty note, a total in the other measure, a larger δ while charges count, or a δ
    /// the counted charges cannot be composed at; [`BudgetError::Storage`],
    /// [`BudgetError::Locked`].
    pub fn amend_budget(
        &mut self,
        key: &BudgetKey,
        change: TotalChange,
        note: &str,
    ) -> Result<(AmendmentRecord, BudgetRecord), BudgetError> {
        if note.trim().is_empty() {
            return Err(BudgetError::InvalidBudget {
                key: key.clone(),
                source: veil_core::ParamError::Invalid {
                    param: "note",
                    reason: "say why the total changes: the note is kept beside the change"
                        .to_string(),
                },
            });
        }
        let now = (self.clock)();
        let at = self.at.clone();
        let by = Owner::current();
        let transaction = write_transaction(&mut self.connection, &at)?;
        let budget = budget_row(&transaction, &at, key)?;
        let refuse = |what: String, reason: &str| BudgetError::InvalidBudget {
            key: key.clone(),
            source: veil_core::ParamError::Invalid {
                param: "new total",
                reason: format!("{what} for a budget of {}: {reason}", budget.total),
            },
        };
        let total = match (change, budget.total) {
            (TotalChange::Approx { epsilon, delta }, PrivacyBudget::Approx { delta: old, .. }) => {
                PrivacyBudget::Approx {
                    epsilon,
                    delta: delta.unwrap_or(old),
                }
            }
            (TotalChange::Zcdp { rho }, PrivacyBudget::Zcdp { .. }) => PrivacyBudget::Zcdp { rho },
            (change, _) => {
                return Err(refuse(
                    format!("{change}"),
                    "a budget keeps its measure (its charges were composed in it); create a budget for another purpose instead",
                ));
            }
        };
        validate_total(key, &total)?;
        let counted = counted_components(&transaction, &at, &budget, now)?;
        if let (PrivacyBudget::Approx { delta: old, .. }, PrivacyBudget::Approx { delta, .. }) =
            (budget.total, total)
            && delta > old
            && !counted.is_empty()
        {
            return Err(refuse(
                format!(
                    "δ = {} (from {})",
                    veil_core::Compact(delta),
                    veil_core::Compact(old)
                ),
                "charges count in the current window, and spent is composed at the budget's δ: a larger δ would hand part of them back; change ε only, or δ once the period renews",
            ));
        }
        veil_accountant::budget::cost(&total, &counted).map_err(|source| {
            refuse(
                format!("a new total of {total}"),
                &format!("the charges that count now cannot be composed at it: {source}"),
            )
        })?;
        let (old_measure, old_epsilon, old_delta, old_rho) = total_columns(budget.total);
        let (measure, epsilon, delta, rho) = total_columns(total);
        debug_assert_eq!(measure, old_measure);
        transaction
            .execute(
                "INSERT INTO budget_amendments (budget_id, amended_at, old_epsilon, old_delta, old_rho,
                     new_epsilon, new_delta, new_rho, note, by_host, by_pid)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11)",
                params![
                    budget.id,
                    now,
                    old_epsilon,
                    old_delta,
                    old_rho,
                    epsilon,
                    delta,
                    rho,
                    note,
                    by.host,
                    i64::from(by.pid)
                ],
            )
            .map_err(at.write())?;
        transaction
            .execute(
                "UPDATE budgets SET epsilon = ?1, delta = ?2, rho = ?3 WHERE id = ?4",
                params![epsilon, delta, rho, budget.id],
            )
            .map_err(at.write())?;
        let after = status_at(&transaction, &at, key, now)?;
        transaction.commit().map_err(at.write())?;
        Ok((
            AmendmentRecord {
                key: key.clone(),
                amended_at: now,
                from: budget.total,
                to: total,
                note: note.to_string(),
                by,
            },
            after,
        ))
    }

    /// What the budget of `key` would have spent with `charge` added (in the budget's
    /// measure), read in one snapshot and written nowhere: the check [`BudgetLedger::reserve`]
    /// makes, for a plan shown before any run (`veil explain`). Another run may charge in
    /// between, so the answer is a forecast, and `reserve` decides.
    ///
    /// # Errors
    /// As [`BudgetLedger::reserve`]'s refusals: [`BudgetError::NoBudget`],
    /// [`BudgetError::Exhausted`], [`BudgetError::Incompatible`]; and
    /// [`BudgetError::Storage`].
    pub fn check(&self, key: &BudgetKey, charge: &Charge) -> Result<PrivacyBudget, BudgetError> {
        let now = (self.clock)();
        let transaction = self
            .connection
            .unchecked_transaction()
            .map_err(self.at.read())?;
        let budget = budget_row(&transaction, &self.at, key)?;
        let spent = counted_components(&transaction, &self.at, &budget, now)?;
        let after = veil_accountant::budget::check_charge(key, &budget.total, &spent, charge)?;
        transaction.commit().map_err(self.at.read())?;
        Ok(after)
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
        let transaction = write_transaction(&mut self.connection, &at)?;
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
        let transaction = write_transaction(&mut self.connection, &at)?;
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
        let transaction = write_transaction(&mut self.connection, &at)?;
        require_state(&transaction, &at, reservation, "reserved", |id, state| {
            BudgetError::NotReserved { id, state }
        })?;
        transaction
            .execute(
                "UPDATE charges SET state = ?1, updated_at = ?2 WHERE id = ?3 AND state = 'reserved'",
                params![to.name(), now, reservation.id],
            )
            .map_err(at.write())?;
        transaction.commit().map_err(at.write())
    }
}

impl BudgetLedger for SqliteLedger {
    fn reserve(&mut self, key: &BudgetKey, charge: &Charge) -> Result<Reservation, BudgetError> {
        let now = (self.clock)();
        let at = self.at.clone();
        let transaction = write_transaction(&mut self.connection, &at)?;
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
        let transaction = write_transaction(&mut self.connection, &at)?;
        require_state(&transaction, &at, reservation, "committed", |id, state| {
            BudgetError::NotCommitted { id, state }
        })?;
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
        let transaction = write_transaction(&mut self.connection, &at)?;
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
