//! What the ledger reads back: budgets with what they spent, charges, cancellations.

use veil_accountant::{
    BudgetKey, BudgetPeriod, BudgetStatus, ChargeItem, ChargeState, NotPrivateCount, PrivacyBudget,
    ReleaseRecord,
};

use crate::Owner;

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
    /// The charge's id (a [`Reservation`](veil_accountant::Reservation)'s `id`).
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

/// The record of a change to a budget's total.
#[derive(Debug, Clone, PartialEq)]
pub struct AmendmentRecord {
    /// Whose budget.
    pub key: BudgetKey,
    /// When it was changed (Unix seconds).
    pub amended_at: i64,
    /// The total before.
    pub from: PrivacyBudget,
    /// The total after.
    pub to: PrivacyBudget,
    /// Why, in the operator's words.
    pub note: String,
    /// The process that changed it.
    pub by: Owner,
}

/// A budget's new total, for [`SqliteLedger::amend_budget`](crate::SqliteLedger::amend_budget).
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum TotalChange {
    /// A new ε for an (ε, δ) budget, and a new δ (`None` keeps the budget's).
    Approx {
        /// The new total ε.
        epsilon: f64,
        /// The new total δ, or `None` to keep it.
        delta: Option<f64>,
    },
    /// A new ρ for a zCDP budget.
    Zcdp {
        /// The new total ρ.
        rho: f64,
    },
}

impl std::fmt::Display for TotalChange {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match *self {
            Self::Approx {
                epsilon,
                delta: None,
            } => write!(f, "ε = {}", veil_core::Compact(epsilon)),
            Self::Approx {
                epsilon,
                delta: Some(delta),
            } => write!(
                f,
                "ε = {}, δ = {}",
                veil_core::Compact(epsilon),
                veil_core::Compact(delta)
            ),
            Self::Zcdp { rho } => write!(f, "ρ = {} (zCDP)", veil_core::Compact(rho)),
        }
    }
}

/// How sure [`SqliteLedger::cancel`](crate::SqliteLedger::cancel) must be that the run that reserved a charge is gone.
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
