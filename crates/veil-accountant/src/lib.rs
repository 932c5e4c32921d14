//! Privacy accounting for Veil: what each mechanism costs, how costs compose, and the
//! [`BudgetLedger`] trait through which every release is charged.
//!
//! - [`MechanismProfile`] describes a mechanism exactly (its noise and sensitivity), so
//!   that an accountant can compose it in any measure; a [`Component`] is a mechanism
//!   run some number of times. Both parse from specs such as
//!   `gaussian:sigma=2,sensitivity=1,times=100`.
//! - [`compose`] bounds the ε of a composition at a δ by a [`Method`]: privacy loss
//!   distributions (PLD, connect-the-dots discretisation composed by FFT), Rényi DP,
//!   zCDP, Kairouz–Oh–Viswanath's optimal composition of pure DP, basic composition, or
//!   [`Method::Best`], the smallest of them. Every method returns an upper bound on the
//!   true ε. [`compose_delta`] gives the other side of the privacy curve: δ at an ε.
//! - [`smallest_noise`] calibrates in reverse: the least noise for a target after `k` runs.
//! - [`Charge`] is what a job asks to spend; [`BudgetLedger`] is what the engine needs
//!   from a ledger: reserve a charge against the budget of a (dataset, purpose), commit
//!   or abort it, record what was released, read what is left. [`budget::cost`] and
//!   [`budget::check_charge`] are the arithmetic every ledger shares; [`MemoryLedger`] is
//!   an in-memory ledger for tests.
//!
//! No I/O happens here.
//!
//! ```
//! use veil_accountant::{Charge, ChargeItem, Component, MechanismProfile, Method, compose};
//! use veil_core::{Delta, Epsilon, PrivacyLoss};
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
//!
//! let spec: Component = "gaussian:sigma=2,sensitivity=1,times=100".parse()?;
//! let composition = compose(&[spec], Delta::new(1e-6)?, Method::Best)?;
//! assert!(composition.epsilon.get() > 35.5 && composition.epsilon.get() < 36.0);
//! Ok::<(), Box<dyn std::error::Error>>(())
//! ```
#![deny(missing_docs)]
#![deny(clippy::print_stdout, clippy::print_stderr)]

pub mod budget;
mod calibrate;
mod compose;
mod error;
mod ledger;
mod memory;
mod numeric;
mod pld;
mod profile;
pub mod rdp;

pub use budget::{BudgetPeriod, ChargeState};
pub use calibrate::{NoiseFamily, smallest_noise};
pub use compose::{
    Composition, Method, PldOptions, compose, compose_delta, compose_with, kov_delta, total_rho,
};
pub use error::AccountantError;
pub use ledger::{
    BudgetError, BudgetKey, BudgetLedger, BudgetStatus, Charge, ChargeItem, Exhausted,
    NotPrivateCount, PrivacyBudget, ReleaseRecord, Reservation,
};
pub use memory::MemoryLedger;
pub use numeric::NUMERIC_MARGIN;
pub use profile::{Component, MechanismProfile};
