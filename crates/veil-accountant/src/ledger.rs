//! The interface between a job and the budget it spends: [`BudgetLedger`].

use core::fmt;
use core::time::Duration;

use veil_core::Compact;

use crate::MechanismProfile;

/// Whose budget a charge is made against: a dataset and the purpose it is used for.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
pub struct BudgetKey {
    /// The dataset, as the operator names it (e.g. `events`).
    pub dataset: String,
    /// The purpose the data is used for (e.g. `analytics`).
    pub purpose: String,
}

impl fmt::Display for BudgetKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "dataset {:?}, purpose {:?}", self.dataset, self.purpose)
    }
}

/// A total privacy budget, in the measure the budget is kept in. Also used for amounts
/// spent and remaining ([`PrivacyBudget::amount`] is the headline number).
#[derive(Debug, Clone, Copy, PartialEq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
#[cfg_attr(feature = "serde", serde(rename_all = "snake_case"))]
pub enum PrivacyBudget {
    /// Approximate DP: the composition of all charges must stay (ε, δ)-DP.
    /// `delta = 0` is pure DP.
    Approx {
        /// Total ε (finite, >= 0).
        epsilon: f64,
        /// Total δ (in `[0, 1)`).
        delta: f64,
    },
    /// Zero-concentrated DP: the ρ of all charges must add up to at most `rho`.
    Zcdp {
        /// Total ρ (finite, >= 0).
        rho: f64,
    },
}

impl fmt::Display for PrivacyBudget {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            Self::Approx {
                epsilon,
                delta: 0.0,
            } => {
                write!(f, "ε = {}", Compact(epsilon))
            }
            Self::Approx { epsilon, delta } => {
                write!(f, "ε = {}, δ = {}", Compact(epsilon), Compact(delta))
            }
            Self::Zcdp { rho } => write!(f, "ρ = {} (zCDP)", Compact(rho)),
        }
    }
}

/// One mechanism of a charge.
#[derive(Debug, Clone, PartialEq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
pub struct ChargeItem {
    /// What it releases, e.g. `by_country.sum_value`.
    pub label: String,
    /// The mechanism.
    pub profile: MechanismProfile,
    /// How many times it runs on the same data (e.g. one per quantile level); at least 1.
    pub times: u32,
}

/// Everything one job asks to spend: its mechanisms, composed by the accountant.
#[derive(Debug, Clone, PartialEq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
pub struct Charge {
    /// The job's name.
    pub job: String,
    /// A hash of the job file, to trace a charge back to the configuration that made it.
    pub job_hash: String,
    /// The mechanisms released.
    pub items: Vec<ChargeItem>,
}

/// A charge that the ledger has reserved: budget set aside, nothing released yet.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reservation {
    /// The ledger's identifier of the charge.
    pub id: i64,
    /// The budget it is charged to.
    pub key: BudgetKey,
}

/// What a release wrote, recorded against its charge.
#[derive(Debug, Clone, PartialEq, Eq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
pub struct ReleaseRecord {
    /// What was released, e.g. the query name.
    pub name: String,
    /// Where it was written.
    pub location: String,
}

/// An exact count about a run's input, kept in the ledger beside its charge for the
/// operator: rows read, rows outside retention, without consent or without a privacy unit,
/// missing values per column.
///
/// **Not private.** These are true counts of the data, without noise: comparing two of
/// them can reveal how many rows one person had. They belong in the operator's ledger and
/// log, never in anything published (a release, its manifest, a report).
#[derive(Debug, Clone, PartialEq, Eq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
pub struct NotPrivateCount {
    /// What was counted, e.g. `rows_read` or `missing_values.price`.
    pub name: String,
    /// The exact count.
    pub count: u64,
}

/// A budget and what has been spent of it.
#[derive(Debug, Clone, PartialEq)]
pub struct BudgetStatus {
    /// Whose budget.
    pub key: BudgetKey,
    /// The total.
    pub total: PrivacyBudget,
    /// The composition of every committed and reserved charge in the budget's current
    /// period, in the budget's measure (for an approximate-DP budget: the accountant's
    /// [`Method::Best`](crate::Method::Best) ε at the budget's δ; for a zCDP budget: the
    /// sum of ρ). See [`budget::cost`](crate::budget::cost).
    pub spent: PrivacyBudget,
    /// What is left, in the budget's measure.
    pub remaining: PrivacyBudget,
}

/// The amounts of a refused charge.
#[derive(Debug, Clone, PartialEq)]
pub struct Exhausted {
    /// Whose budget.
    pub key: BudgetKey,
    /// What this charge costs on its own.
    pub requested: PrivacyBudget,
    /// What had been spent before it.
    pub spent: PrivacyBudget,
    /// What was left before it.
    pub remaining: PrivacyBudget,
    /// The total.
    pub total: PrivacyBudget,
}

impl fmt::Display for Exhausted {
    /// The amounts in the budget's one measure: ε at the budget's own δ (the ledger
    /// composes every charge there, so a job's ε at its own δ reads differently), or ρ.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let amount = |budget: &PrivacyBudget| match *budget {
            PrivacyBudget::Approx { epsilon, .. } if epsilon.is_infinite() => {
                "no finite ε".to_string()
            }
            PrivacyBudget::Approx { epsilon, .. } => format!("ε = {}", Compact(epsilon)),
            PrivacyBudget::Zcdp { rho } => format!("ρ = {}", Compact(rho)),
        };
        write!(
            f,
            "privacy budget exceeded for {}: this run needs {}, {} is spent and {} remains of {}",
            self.key,
            amount(&self.requested),
            amount(&self.spent),
            amount(&self.remaining),
            amount(&self.total)
        )?;
        match self.total {
            PrivacyBudget::Approx { delta, .. } if delta > 0.0 => write!(
                f,
                " (every ε at the budget's δ = {}, at which the ledger composes its charges)",
                Compact(delta)
            )?,
            PrivacyBudget::Zcdp { .. } => write!(f, " (zCDP)")?,
            PrivacyBudget::Approx { .. } => {}
        }
        write!(
            f,
            ": lower the job's privacy parameters to fit what remains"
        )
    }
}

/// Why a ledger refused or failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum BudgetError {
    /// No budget exists for this dataset and purpose.
    #[error(
        "no privacy budget for {key}; create one with `veil budget init --ledger <file> --dataset {} --purpose {} --epsilon <total> --delta <total>`",
        key.dataset,
        key.purpose
    )]
    NoBudget {
        /// The missing budget.
        key: BudgetKey,
    },
    /// The charge would take the composition of all charges past the budget.
    #[error("{0}")]
    Exhausted(Box<Exhausted>),
    /// A charge cannot be expressed in the budget's measure (e.g. a pure-DP budget asked
    /// to pay for a Gaussian mechanism).
    #[error("cannot charge {what} to a budget of {total} for {key}: {reason}")]
    Incompatible {
        /// Whose budget.
        key: BudgetKey,
        /// The total.
        total: PrivacyBudget,
        /// The offending item.
        what: String,
        /// Why it cannot be composed.
        reason: String,
    },
    /// A reservation that does not exist or is no longer reserved.
    #[error("charge {id} is not a reserved charge in this ledger (state: {state})")]
    NotReserved {
        /// The charge's id.
        id: i64,
        /// Its state, or `missing`.
        state: String,
    },
    /// No charge has this id (in this budget).
    #[error("no charge {id} in this ledger")]
    NoCharge {
        /// The id asked for.
        id: i64,
    },
    /// A charge that must not be cancelled: committed (its release may have been
    /// published), already given back, or reserved by a run that may still be running.
    #[error("cannot cancel charge {id}: {reason}")]
    CannotCancel {
        /// The charge's id.
        id: i64,
        /// Why, and what to do instead.
        reason: String,
    },
    /// Another process held the ledger's lock for longer than this process would wait.
    #[error(
        "the ledger {ledger} is held by another process (another run, or an SQLite client with a write transaction open); gave up after waiting {} s",
        Compact(waited.as_secs_f64())
    )]
    Locked {
        /// The ledger (its file).
        ledger: String,
        /// How long this process waited.
        waited: Duration,
    },
    /// A record was expected to be committed (e.g. to record a release under it).
    #[error("charge {id} is not committed (state: {state}); record releases only after commit")]
    NotCommitted {
        /// The charge's id.
        id: i64,
        /// Its state, or `missing`.
        state: String,
    },
    /// A budget already exists for this dataset and purpose.
    #[error("a privacy budget already exists for {key}; see it with `veil budget status`")]
    AlreadyExists {
        /// The existing budget.
        key: BudgetKey,
    },
    /// A budget's total is out of range.
    #[error("invalid budget for {key}: {source}")]
    InvalidBudget {
        /// Whose budget.
        key: BudgetKey,
        /// What is wrong.
        #[source]
        source: veil_core::ParamError,
    },
    /// The accountant refused a charge's mechanisms (invalid parameters).
    #[error("cannot account for a charge to {key}: {source}")]
    Accountant {
        /// Whose budget.
        key: BudgetKey,
        /// The accountant's error.
        #[source]
        source: crate::AccountantError,
    },
    /// The ledger's storage failed or is not a Veil ledger.
    #[error("ledger storage: {message}")]
    Storage {
        /// What went wrong, naming the file where there is one.
        message: String,
        /// The underlying error.
        #[source]
        source: Option<Box<dyn std::error::Error + Send + Sync>>,
    },
}

/// What the engine needs from a budget ledger.
///
/// The protocol of a job: [`reserve`](BudgetLedger::reserve) before any noise is drawn,
/// [`commit`](BudgetLedger::commit) before anything is published,
/// [`abort`](BudgetLedger::abort) if anything fails before the commit, then
/// [`record_release`](BudgetLedger::record_release) for each artifact written. A job
/// killed at any point leaves a reserved charge (budget lost, never overspent) or a
/// committed one; nothing is published without a committed charge. A ledger may let its
/// operator cancel a reserved charge whose run is gone
/// ([`ChargeState::Cancelled`](crate::ChargeState::Cancelled)): like an abort, and the
/// charge can then never be committed, so its release can never be published.
pub trait BudgetLedger {
    /// Sets `charge` aside against the budget of `key`.
    ///
    /// # Errors
    /// [`BudgetError::NoBudget`], [`BudgetError::Exhausted`] if the composition of every
    /// committed and reserved charge plus this one would exceed the total,
    /// [`BudgetError::Incompatible`], [`BudgetError::Storage`].
    fn reserve(&mut self, key: &BudgetKey, charge: &Charge) -> Result<Reservation, BudgetError>;

    /// Makes a reservation final.
    ///
    /// # Errors
    /// [`BudgetError::NotReserved`] if it is not reserved; [`BudgetError::Storage`].
    fn commit(&mut self, reservation: &Reservation) -> Result<(), BudgetError>;

    /// Gives a reservation's budget back (nothing was released).
    ///
    /// # Errors
    /// [`BudgetError::NotReserved`] if it is not reserved; [`BudgetError::Storage`].
    fn abort(&mut self, reservation: &Reservation) -> Result<(), BudgetError>;

    /// Records an artifact written under a committed charge.
    ///
    /// # Errors
    /// [`BudgetError::NotCommitted`] if the charge is not committed (the ledgers in Veil
    /// refuse it); [`BudgetError::Storage`].
    fn record_release(
        &mut self,
        reservation: &Reservation,
        release: &ReleaseRecord,
    ) -> Result<(), BudgetError>;

    /// The budget of `key` and what has been spent of it.
    ///
    /// # Errors
    /// [`BudgetError::NoBudget`], [`BudgetError::Storage`].
    fn status(&self, key: &BudgetKey) -> Result<BudgetStatus, BudgetError>;

    /// Keeps exact counts about the run of a charge (in any state) beside it, for the
    /// operator: **not private** (see [`NotPrivateCount`]). A count recorded again under
    /// the same name replaces the earlier one. Costs nothing and releases nothing.
    ///
    /// # Errors
    /// [`BudgetError::NoCharge`] if the ledger has no such charge for the reservation's
    /// budget; [`BudgetError::Storage`].
    fn record_diagnostics(
        &mut self,
        reservation: &Reservation,
        counts: &[NotPrivateCount],
    ) -> Result<(), BudgetError>;
}
