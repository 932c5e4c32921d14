//! Privacy accounting for Veil: what each mechanism costs, how costs compose, and the
//! [`BudgetLedger`] trait through which every release is charged.
//!
//! - [`MechanismProfile`] describes a mechanism exactly (its noise and sensitivity), so
//!   that an accountant can compose it in any measure.
//! - [`Charge`] is what a job asks to spend: its mechanisms, with a label each.
//! - [`BudgetLedger`] is what the engine needs from a ledger: reserve a charge against
//!   the budget of a (dataset, purpose), commit or abort it, record what was released,
//!   read what is left. How it is stored is the implementation's business.
//!
//! No I/O happens here.
//!
//! ```
//! use veil_accountant::{Charge, ChargeItem, MechanismProfile};
//! use veil_core::{Epsilon, PrivacyLoss};
//! let charge = Charge {
//!     job: "daily-counts".into(),
//!     job_hash: "0f3a".into(),
//!     items: vec![ChargeItem {
//!         label: "by_country.count".into(),
//!         profile: MechanismProfile::Guarantee(PrivacyLoss::Pure(Epsilon::new(0.5)?)),
//!         times: 1,
//!     }],
//! };
//! assert_eq!(charge.items.len(), 1);
//! Ok::<(), Box<dyn std::error::Error>>(())
//! ```
#![deny(missing_docs)]
#![deny(clippy::print_stdout, clippy::print_stderr)]

mod ledger;
mod profile;

pub use ledger::{
    BudgetError, BudgetKey, BudgetLedger, BudgetStatus, Charge, ChargeItem, Exhausted,
    PrivacyBudget, ReleaseRecord, Reservation,
};
pub use profile::MechanismProfile;
