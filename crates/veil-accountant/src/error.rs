//! The accountant's error type.

use crate::Method;

/// Why the accountant could not bound a composition.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[non_exhaustive]
pub enum AccountantError {
    /// A mechanism's parameters are out of range.
    #[error("invalid mechanism {mechanism}: {reason}")]
    InvalidProfile {
        /// The mechanism, as a spec (e.g. `gaussian:sigma=-1`).
        mechanism: String,
        /// What is wrong and what is accepted.
        reason: String,
    },
    /// A method cannot account for one of the mechanisms (e.g. zCDP for a subsampled
    /// Gaussian, or RDP for a mechanism known only by its (ε, δ)).
    #[error("the {method} accountant cannot compose {mechanism}: {reason}")]
    Unsupported {
        /// The method asked for.
        method: Method,
        /// The offending mechanism, as a spec.
        mechanism: String,
        /// Why.
        reason: String,
    },
    /// No finite ε exists at this δ: the mechanisms' own δ (or the ledger's share of it)
    /// already exceeds it.
    #[error("no finite epsilon at delta = {delta:e}: {reason}")]
    NoFiniteEpsilon {
        /// The δ asked for.
        delta: f64,
        /// Why.
        reason: String,
    },
    /// A spec string could not be parsed.
    #[error("mechanism spec {spec:?}: {reason}")]
    Spec {
        /// The text given.
        spec: String,
        /// What is wrong, and an example of what is accepted.
        reason: String,
    },
    /// A parameter of the request (δ, a target, a count) is out of range.
    #[error(transparent)]
    Param(#[from] veil_core::ParamError),
}
