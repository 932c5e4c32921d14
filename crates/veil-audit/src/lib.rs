//! Veil's privacy auditor: empirical lower bounds on ε, to catch privacy bugs that unit
//! tests miss.
//!
//! A mechanism that claims (ε, δ)-DP must make any event about as likely on two
//! neighbouring inputs. The auditor runs the real code many times on such a pair, finds
//! the event whose probabilities differ the most, and bounds the ratio from below with
//! exact binomial confidence bounds ([`estimate`]). If the lower bound exceeds the
//! claimed ε, the claim is false (or, with probability at most `1 − confidence`, the
//! samples were unlucky).
//!
//! - [`estimate`]: the statistics — [`epsilon_lower_bound`], [`audit_samples`],
//!   [`Confidence`], [`Claim`], [`Verdict`].
//! - [`mechanism`]: `veil-core`'s mechanisms on their worst pair of inputs
//!   ([`mechanism::audit_mechanism`]).
//! - [`ldp`]: every local-DP oracle on its worst pair of inputs
//!   ([`ldp::audit_protocol`]).
//! - `job` (feature `job`, on by default): a whole job through the engine, on
//!   neighbouring datasets made by adding a maximal unit or removing the heaviest one
//!   (`job::audit_job`). It is the only part that needs Polars: without the feature, the
//!   mechanism and LDP audits build and test in seconds.
//!
//! The auditor is a test: it draws noise from the generator it is given (seeded, for
//! reproducible audits) and publishes nothing. It creates no randomness and prints
//! nothing; `veil audit` does that.
//!
//! # Example
//!
//! ```
//! use veil_audit::{Confidence, Verdict};
//! use veil_audit::mechanism::{MechanismName, MechanismSpec, audit_mechanism};
//! use veil_core::{Delta, Epsilon, L1Sensitivity};
//! let mut rng = veil_testkit::seeded_rng(7);
//! let spec = MechanismSpec {
//!     name: MechanismName::DiscreteLaplace,
//!     epsilon: Epsilon::new(1.0)?,
//!     delta: Delta::new(0.0)?,
//!     sensitivity: L1Sensitivity::integer(1),
//! };
//! let audit = audit_mechanism(spec, 20_000, Confidence::DEFAULT, &mut rng)?;
//! assert_eq!(audit.verdict, Verdict::Pass);
//! assert!(audit.epsilon_lower_bound <= 1.0);
//! Ok::<(), Box<dyn std::error::Error>>(())
//! ```
#![deny(missing_docs)]
#![deny(clippy::print_stdout, clippy::print_stderr)]

pub mod binomial;
mod error;
pub mod estimate;
#[cfg(feature = "job")]
pub mod job;
pub mod ldp;
pub mod mechanism;

pub use error::AuditError;
pub use estimate::{
    Audit, Claim, Confidence, Event, LowerBound, Order, Verdict, audit_samples, epsilon_lower_bound,
};
