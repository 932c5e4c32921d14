//! The auditor's error type.

use veil_core::ParamError;
#[cfg(feature = "job")]
use veil_engine::EngineError;
use veil_ldp::LdpError;

/// Why an audit could not run. A failed audit is not an error: it is a
/// [`Verdict::Fail`](crate::Verdict::Fail).
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum AuditError {
    /// An option of the audit is out of range; `option` names it.
    #[error("{option}: {reason}")]
    Option {
        /// The option, as the command line spells it (`--trials`).
        option: &'static str,
        /// What is wrong and what is accepted.
        reason: String,
    },
    /// A sample of a mechanism's outputs holds a NaN, which no event can order.
    #[error("sample {sample} holds a NaN output: an audited mechanism must output numbers")]
    NotANumber {
        /// `first` or `second`.
        sample: &'static str,
    },
    /// A privacy parameter is out of range.
    #[error(transparent)]
    Param(#[from] ParamError),
    /// The local-DP protocol refused a parameter or an input.
    #[error(transparent)]
    Ldp(#[from] LdpError),
    /// The engine refused the job or failed while reading its data.
    #[cfg(feature = "job")]
    #[error(transparent)]
    Engine(#[from] EngineError),
}

impl AuditError {
    pub(crate) fn option(option: &'static str, reason: impl Into<String>) -> Self {
        Self::Option {
            option,
            reason: reason.into(),
        }
    }
}
