//! The error type for invalid privacy parameters.

use alloc::string::String;

/// A privacy parameter, scale or bound that Veil refuses.
///
/// Every variant names the parameter and, where there is one, the accepted range, so the
/// message can be shown to an operator as it is.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[non_exhaustive]
pub enum ParamError {
    /// A number outside its accepted range (or not finite).
    #[error("{param} = {} is out of range: expected {expected}", crate::RoundTrip(*value))]
    OutOfRange {
        /// The parameter's name, e.g. `epsilon`.
        param: &'static str,
        /// The value that was given.
        value: f64,
        /// The accepted range, in words, e.g. `finite, > 0`.
        expected: &'static str,
    },
    /// Text that does not parse as the expected kind of number.
    #[error("{param}: cannot read {input:?} as {expected}")]
    Parse {
        /// The parameter's name.
        param: &'static str,
        /// The text that was given.
        input: String,
        /// What was expected, e.g. `a non-negative integer, decimal or fraction like 5/2`.
        expected: &'static str,
    },
    /// A combination of parameters that cannot work, explained in `reason`.
    #[error("{param}: {reason}")]
    Invalid {
        /// The parameter's name.
        param: &'static str,
        /// Why it is refused.
        reason: String,
    },
}
