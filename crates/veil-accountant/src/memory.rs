//! [`MemoryLedger`]: the [`BudgetLedger`] for tests and simulations, in memory.

use std::collections::BTreeMap;

use crate::budget::{check_charge, components_of, cost};
use crate::{
    BudgetError, BudgetKey, BudgetLedger, BudgetPeriod, BudgetStatus, Charge, ChargeState,
    NotPrivateCount, PrivacyBudget, ReleaseRecord, Reservation,
};

/// A ledger in memory with the same accounting as the persistent one: spending is the
/// accountant's composition of every reserved and committed charge in the budget's
/// current period.
///
/// Its clock is a number of Unix seconds that the owner sets ([`MemoryLedger::set_time`]);
/// it starts at 0, so that tests are reproducible.
///
/// ```
/// use veil_accountant::{BudgetKey, BudgetLedger, Charge, ChargeItem, MechanismProfile, MemoryLedger, PrivacyBudget};
/// let key = BudgetKey { dataset: "events".into(), purpose: "analytics".into() };
/// let mut ledger = MemoryLedger::new();
/// ledger.add_budget(&key, PrivacyBudget::Approx { epsilon: 1.0, delta: 1e-6 }, None)?;
/// let charge = Charge {
///     job: "daily".into(),
///     job_hash: "0f3a".into(),
///     items: vec![ChargeItem {
///         label: "count".into(),
///         profile: MechanismProfile::DiscreteGaussian { sigma: 20.0, sensitivity: 1 },
///         times: 10,
///     }],
/// };
/// let reservation = ledger.reserve(&key, &charge)?;
/// ledger.commit(&reservation)?;
/// assert!(ledger.status(&key)?.spent.amount() < 1.0);
/// Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Debug, Clone, Default)]
pub struct MemoryLedger {
    budgets: BTreeMap<BudgetKey, Budget>,
    charges: Vec<StoredCharge>,
    releases: Vec<(i64, ReleaseRecord)>,
    /// Per charge id, its diagnostics (not private), by name.
    diagnostics: BTreeMap<i64, BTreeMap<String, u64>>,
    now: i64,
}

#[derive(Debug, Clone)]
struct Budget {
    total: PrivacyBudget,
    period: Option<BudgetPeriod>,
    created_at: i64,
}

#[derive(Debug, Clone)]
struct StoredCharge {
    key: BudgetKey,
    charge: Charge,
    state: ChargeState,
    created_at: i64,
}

impl MemoryLedger {
    /// An empty ledger whose clock reads 0.
    #[must_use]
    pub fn new() -> Self {
        Self::default()
    }

    /// Sets the clock (Unix seconds) that charges are stamped with and periods read.
    pub fn set_time(&mut self, unix_seconds: i64) {
        self.now = unix_seconds;
    }

    /// Creates the budget of `key`, renewing every `period` if one is given.
    ///
    /// # Errors
    /// [`BudgetError::AlreadyExists`]; [`BudgetError::InvalidBudget`] for a total out of
    /// range.
    pub fn add_budget(
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
        if self.budgets.contains_key(key) {
            return Err(BudgetError::AlreadyExists { key: key.clone() });
        }
        self.budgets.insert(
            key.clone(),
            Budget {
                total,
                period,
                created_at: self.now,
            },
        );
        Ok(())
    }

    /// The releases recorded under `reservation`.
    #[must_use]
    pub fn releases(&self, reservation: &Reservation) -> Vec<ReleaseRecord> {
        self.releases
            .iter()
            .filter(|(id, _)| *id == reservation.id)
            .map(|(_, release)| release.clone())
            .collect()
    }

    /// The diagnostics recorded under `reservation` (not private), by name.
    #[must_use]
    pub fn diagnostics(&self, reservation: &Reservation) -> Vec<NotPrivateCount> {
        self.diagnostics
            .get(&reservation.id)
            .map(|counts| {
                counts
                    .iter()
                    .map(|(name, count)| NotPrivateCount {
                        name: name.clone(),
                        count: *count,
                    })
                    .collect()
            })
            .unwrap_or_default()
    }

    /// The state of charge `id`, if it exists.
    #[must_use]
    pub fn state(&self, id: i64) -> Option<ChargeState> {
        self.index(id).map(|index| self.charges[index].state)
    }

    fn index(&self, id: i64) -> Option<usize> {
        usize::try_from(id)
            .ok()
            .and_then(|id| id.checked_sub(1))
            .filter(|&i| i < self.charges.len())
    }

    fn budget(&self, key: &BudgetKey) -> Result<&Budget, BudgetError> {
        self.budgets
            .get(key)
            .ok_or_else(|| BudgetError::NoBudget { key: key.clone() })
    }

    /// The charges that count against `key` now.
    fn counted(&self, key: &BudgetKey, budget: &Budget) -> Vec<&Charge> {
        let start = budget.period.map_or(i64::MIN, |period| {
            period.window(budget.created_at, self.now).0
        });
        self.charges
            .iter()
            .filter(|c| &c.key == key && c.state.counts() && c.created_at >= start)
            .map(|c| &c.charge)
            .collect()
    }

    fn transition(
        &mut self,
        reservation: &Reservation,
        to: ChargeState,
    ) -> Result<(), BudgetError> {
        let index = self.index(reservation.id).ok_or(BudgetError::NotReserved {
            id: reservation.id,
            state: "missing".to_string(),
        })?;
        let stored = &mut self.charges[index];
        if stored.state != ChargeState::Reserved || stored.key != reservation.key {
            return Err(BudgetError::NotReserved {
                id: reservation.id,
                state: stored.state.to_string(),
            });
        }
        stored.state = to;
        Ok(())
    }
}

impl BudgetLedger for MemoryLedger {
    fn reserve(&mut self, key: &BudgetKey, charge: &Charge) -> Result<Reservation, BudgetError> {
        let budget = self.budget(key)?;
        let spent = components_of(self.counted(key, budget));
        check_charge(key, &budget.total, &spent, charge)?;
        self.charges.push(StoredCharge {
            key: key.clone(),
            charge: charge.clone(),
            state: ChargeState::Reserved,
            created_at: self.now,
        });
        Ok(Reservation {
            id: i64::try_from(self.charges.len()).unwrap_or(i64::MAX),
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
        match self.state(reservation.id) {
            Some(ChargeState::Committed) => {
                self.releases.push((reservation.id, release.clone()));
                Ok(())
            }
            state => Err(BudgetError::NotCommitted {
                id: reservation.id,
                state: state.map_or("missing".to_string(), |s| s.to_string()),
            }),
        }
    }

    fn record_diagnostics(
        &mut self,
        reservation: &Reservation,
        counts: &[NotPrivateCount],
    ) -> Result<(), BudgetError> {
        let known = self
            .index(reservation.id)
            .is_some_and(|index| self.charges[index].key == reservation.key);
        if !known {
            return Err(BudgetError::NoCharge { id: reservation.id });
        }
        let stored = self.diagnostics.entry(reservation.id).or_default();
        for count in counts {
            stored.insert(count.name.clone(), count.count);
        }
        Ok(())
    }

    fn status(&self, key: &BudgetKey) -> Result<BudgetStatus, BudgetError> {
        let budget = self.budget(key)?;
        let spent =
            cost(&budget.total, &components_of(self.counted(key, budget))).map_err(|source| {
                BudgetError::Accountant {
                    key: key.clone(),
                    source,
                }
            })?;
        Ok(BudgetStatus {
            key: key.clone(),
            total: budget.total,
            spent,
            remaining: budget.total.remaining_after(&spent),
        })
    }
}

#[cfg(test)]
mod tests;
