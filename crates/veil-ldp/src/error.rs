//! The error type of the local-DP crate.

use alloc::string::String;

/// Why a protocol, a value or a report is refused.
///
/// Messages name the parameter, the descriptor field or the report that is wrong, never a
/// private value: a categorical value outside the domain is reported by its position, not
/// its text.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[non_exhaustive]
pub enum LdpError {
    /// ε outside what a local-DP protocol accepts.
    #[error("epsilon = {value} is out of range for local DP: expected {expected}")]
    Epsilon {
        /// The value given.
        value: f64,
        /// The accepted range, in words.
        expected: &'static str,
    },
    /// A domain that is too small, too large or malformed.
    #[error("domain: {reason}")]
    Domain {
        /// What is wrong and how to fix it.
        reason: String,
    },
    /// A numeric range that cannot be used.
    #[error("numeric range: {reason}")]
    Range {
        /// What is wrong and how to fix it.
        reason: String,
    },
    /// A categorical value index at or past the domain's size.
    #[error("value index {index} is outside the domain of {size} values (0..{size})")]
    OutOfDomain {
        /// The index given.
        index: u64,
        /// The domain size.
        size: u64,
    },
    /// A categorical value that is not one of the descriptor's listed values. The value
    /// itself is not repeated: it may be private.
    #[error("the value is not one of the protocol's {size} domain values")]
    UnknownValue {
        /// How many values the domain lists.
        size: usize,
    },
    /// A numeric value that is NaN: it has no place in any range.
    #[error("a numeric value is NaN; clients must send a number")]
    NotANumber,
    /// The input kind does not fit the protocol (a number for a categorical oracle, …).
    #[error("{oracle} takes {expected}, not {given}")]
    WrongInput {
        /// The protocol's oracle.
        oracle: &'static str,
        /// What it takes.
        expected: &'static str,
        /// What was given.
        given: &'static str,
    },
    /// An option that does not apply to this oracle or domain.
    #[error("{option}: {reason}")]
    Option {
        /// The option's name.
        option: &'static str,
        /// Why it is refused.
        reason: String,
    },
    /// A report made under another protocol descriptor.
    #[error(
        "report was made under protocol {found:016x}, not under this descriptor ({expected:016x}); aggregate it with the descriptor its clients used"
    )]
    WrongProtocol {
        /// The short id of this descriptor.
        expected: u64,
        /// The short id the report carries.
        found: u64,
    },
    /// A report that ends before its last field.
    #[error("report is truncated: {what} is missing")]
    Truncated {
        /// The first field that is missing.
        what: &'static str,
    },
    /// A report whose bytes or fields do not make sense under its descriptor.
    #[error("report is corrupt: {reason}")]
    Corrupt {
        /// What is wrong.
        reason: String,
    },
    /// A descriptor whose fields disagree with each other or with what Veil derives.
    #[error("protocol descriptor: {field}: {reason}")]
    Descriptor {
        /// The descriptor field, e.g. `derived.keep`.
        field: String,
        /// What is wrong and how to fix it.
        reason: String,
    },
    /// A bug in this crate: please report it.
    #[error("internal error (a bug in veil-ldp, please report it): {0}")]
    Internal(String),
}
