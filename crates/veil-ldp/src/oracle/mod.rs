//! Frequency oracles: randomizers for one categorical value out of a known domain (GRR,
//! OUE, OLH, Hadamard response) or an open one (Hadamard count-mean sketch).
//!
//! Each oracle derives its probabilities from ε exactly (see [`crate::exact`]) and keeps
//! its privacy argument in its module's `PRIVACY.md`, shown in its rustdoc.

use crate::LdpError;
use alloc::format;

pub mod grr;
pub mod hadamard;
pub mod hcms;
pub mod olh;
pub mod oue;

pub use grr::Grr;
pub use hadamard::Hadamard;
pub use hcms::Hcms;
pub use olh::Olh;
pub use oue::Oue;

/// The largest categorical domain a protocol accepts (2^24 values).
pub const MAX_DOMAIN_SIZE: u32 = 1 << 24;

/// How likely a report is to "support" an item: `p_true` when the client's value is that
/// item, `p_other` when it is any other item. Every oracle here is unbiased with
/// `estimate = (support_count - n·p_other) / (p_true - p_other)`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Support {
    /// P(a report supports item v | the value is v).
    pub p_true: f64,
    /// P(a report supports item v | the value is another item).
    pub p_other: f64,
}

impl Support {
    /// The variance of the count estimate for an item with true count `count` among `n`
    /// reports: `(f·p(1-p) + (n-f)·q(1-q)) / (p - q)²`.
    #[must_use]
    pub fn count_variance(&self, count: f64, n: f64) -> f64 {
        let (p, q) = (self.p_true, self.p_other);
        let gap = p - q;
        (count * p * (1.0 - p) + (n - count) * q * (1.0 - q)) / (gap * gap)
    }

    /// The unbiased count estimate from the number of supporting reports.
    #[must_use]
    pub fn estimate(&self, support_count: f64, n: f64) -> f64 {
        (support_count - n * self.p_other) / (self.p_true - self.p_other)
    }
}

/// Checks a categorical domain size.
pub(crate) fn check_size(size: u32) -> Result<(), LdpError> {
    if size < 2 {
        return Err(LdpError::Domain {
            reason: format!(
                "domain size {size} is too small: a frequency oracle needs at least 2 values"
            ),
        });
    }
    if size > MAX_DOMAIN_SIZE {
        return Err(LdpError::Domain {
            reason: format!(
                "domain size {size} is above the limit of {MAX_DOMAIN_SIZE}; hash the values into an open domain (oracle hcms)"
            ),
        });
    }
    Ok(())
}

/// Checks a categorical index against the domain.
#[inline]
pub(crate) fn check_index(index: u32, size: u32) -> Result<(), LdpError> {
    if index < size {
        Ok(())
    } else {
        Err(LdpError::OutOfDomain {
            index: u64::from(index),
            size: u64::from(size),
        })
    }
}
