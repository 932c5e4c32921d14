//! Memoised permanent answers for longitudinal privacy (RAPPOR-style).

use alloc::collections::BTreeMap;
use alloc::string::String;

use rand_core::{CryptoRng, Rng};

use crate::{LdpError, Protocol, Report};

/// A client's memoised reports: the first report of each value, resent unchanged whenever
/// the same value is reported again.
///
/// Without memoisation, `k` fresh reports of one value cost `k·ε` and their noise averages
/// away. With it, every report of that value is the same permanent randomized answer, so
/// the value is protected at ε however often it is reported; each *distinct* value costs ε
/// once. Identical reports can be linked to each other, and so to one client; that is the
/// price. The app must persist this store with the rest of its state (it derives serde
/// with the `serde` feature); losing it means the next report of a value is a fresh one and
/// costs ε again.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
pub struct PermanentResponses {
    protocol: u64,
    by_index: BTreeMap<u32, Report>,
    by_text: BTreeMap<String, Report>,
}

impl PermanentResponses {
    /// An empty store for `protocol`.
    #[must_use]
    pub fn new(protocol: &Protocol) -> Self {
        Self {
            protocol: protocol.id().short(),
            ..Self::default()
        }
    }

    /// How many values have a permanent answer.
    #[must_use]
    pub fn len(&self) -> usize {
        self.by_index.len() + self.by_text.len()
    }

    /// Whether no value has a permanent answer yet.
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Whether the value with index `index` already has a permanent answer (reporting it
    /// again costs nothing more).
    #[must_use]
    pub fn has_index(&self, index: u32) -> bool {
        self.by_index.contains_key(&index)
    }

    /// Whether a text value already has a permanent answer (reporting it again costs
    /// nothing more).
    #[must_use]
    pub fn has_value(&self, value: &str) -> bool {
        self.by_text.contains_key(value)
    }

    /// The short id of the protocol this store belongs to.
    #[must_use]
    pub fn protocol(&self) -> u64 {
        self.protocol
    }

    fn check(&self, protocol: &Protocol) -> Result<(), LdpError> {
        if self.protocol == protocol.id().short() {
            Ok(())
        } else {
            Err(LdpError::WrongProtocol {
                expected: protocol.id().short(),
                found: self.protocol,
            })
        }
    }

    /// The permanent report of the value with index `index`, made on first use.
    ///
    /// # Errors
    /// [`LdpError::WrongProtocol`] if this store belongs to another protocol; the errors of
    /// [`Protocol::randomize_index`].
    pub fn report_index<R: Rng + CryptoRng + ?Sized>(
        &mut self,
        protocol: &Protocol,
        index: u32,
        rng: &mut R,
    ) -> Result<Report, LdpError> {
        self.check(protocol)?;
        if let Some(report) = self.by_index.get(&index) {
            return Ok(report.clone());
        }
        let report = protocol.randomize_index(index, rng)?;
        self.by_index.insert(index, report.clone());
        Ok(report)
    }

    /// The permanent report of a text value, made on first use.
    ///
    /// # Errors
    /// [`LdpError::WrongProtocol`] if this store belongs to another protocol; the errors of
    /// [`Protocol::randomize_value`].
    pub fn report_value<R: Rng + CryptoRng + ?Sized>(
        &mut self,
        protocol: &Protocol,
        value: &str,
        rng: &mut R,
    ) -> Result<Report, LdpError> {
        self.check(protocol)?;
        if let Some(report) = self.by_text.get(value) {
            return Ok(report.clone());
        }
        let report = protocol.randomize_value(value, rng)?;
        self.by_text.insert(String::from(value), report.clone());
        Ok(report)
    }
}
