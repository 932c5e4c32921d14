//! The protocol descriptor that clients and the server share.
//!
//! One file on purpose: the descriptor is the wire contract between every client and the
//! server; its fields, defaults, validation and versioning are reviewed together.

use alloc::collections::BTreeMap;
use alloc::format;
use alloc::string::{String, ToString};
use alloc::vec::Vec;
use core::fmt;
use core::str::FromStr;

use rand_core::{CryptoRng, Rng};
use veil_core::{Bounds, Epsilon};

use crate::LdpError;
use crate::exact::Prob64;
use crate::hash::sha256;
use crate::numeric::{Duchi, Hybrid, NumericRange, Piecewise, hybrid::HybridReport};
use crate::oracle::{Grr, Hadamard, Hcms, Olh, Oue, check_size};
use crate::report::{Payload, Report};

mod descriptor;
#[cfg(test)]
mod tests;

pub use descriptor::{
    DerivedDescriptor, DomainDescriptor, LongitudinalDescriptor, ProtocolDescriptor,
};

/// The version of the protocol rules (oracles, hashes, encodings) this crate implements.
pub const PROTOCOL_VERSION: u32 = 1;

/// An oracle or numeric mechanism, by name (`auto` lets Veil choose).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum OracleName {
    /// The least-variance oracle for the domain and ε (see [`choose_oracle`]).
    Auto,
    /// Generalized randomized response.
    Grr,
    /// Optimized unary encoding.
    Oue,
    /// Optimized local hashing.
    Olh,
    /// Hadamard response.
    Hadamard,
    /// Hadamard count-mean sketch (open domains).
    Hcms,
    /// Duchi et al. (numeric).
    Duchi,
    /// Piecewise mechanism (numeric).
    Piecewise,
    /// Hybrid of Duchi et al. and piecewise (numeric).
    Hybrid,
}

impl OracleName {
    /// Every name, in the order the CLI lists them.
    pub const ALL: [Self; 9] = [
        Self::Grr,
        Self::Oue,
        Self::Olh,
        Self::Hadamard,
        Self::Hcms,
        Self::Auto,
        Self::Duchi,
        Self::Piecewise,
        Self::Hybrid,
    ];

    /// The name as written in descriptors and on the command line.
    #[must_use]
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Auto => "auto",
            Self::Grr => "grr",
            Self::Oue => "oue",
            Self::Olh => "olh",
            Self::Hadamard => "hadamard",
            Self::Hcms => "hcms",
            Self::Duchi => "duchi",
            Self::Piecewise => "piecewise",
            Self::Hybrid => "hybrid",
        }
    }

    /// Whether the mechanism takes numbers.
    #[must_use]
    pub fn is_numeric(self) -> bool {
        matches!(self, Self::Duchi | Self::Piecewise | Self::Hybrid)
    }
}

impl fmt::Display for OracleName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for OracleName {
    type Err = LdpError;

    fn from_str(text: &str) -> Result<Self, LdpError> {
        Self::ALL
            .into_iter()
            .find(|name| name.as_str() == text)
            .ok_or_else(|| LdpError::Option {
                option: "oracle",
                reason: format!(
                    "{text:?} is not one of grr, oue, olh, hadamard, hcms, auto, duchi, piecewise, hybrid"
                ),
            })
    }
}

/// What a client's value can be.
#[derive(Debug, Clone, PartialEq)]
pub enum Domain {
    /// The indices `0..size`.
    Size(u32),
    /// The listed strings (index = position in the list). Public: they are written in the
    /// descriptor.
    Values(Vec<String>),
    /// Any string, hashed into a count-mean sketch; `candidates` are the strings the server
    /// estimates by default.
    Open {
        /// Number of hash functions `k`.
        hashes: u32,
        /// Sketch width `m` (a power of two).
        width: u32,
        /// The seed that keys the hash functions.
        seed: u64,
        /// Strings to estimate (may be empty: the server can be given them later).
        candidates: Vec<String>,
    },
    /// Real numbers in `[lower, upper]`.
    Numeric(Bounds),
}

/// Whether clients memoise a permanent randomized answer per value.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Longitudinal {
    /// Every report is randomized afresh: `k` reports cost `k·ε`.
    Independent,
    /// The first report of each value is remembered and resent (RAPPOR-style permanent
    /// randomized response): repeated reports of one value cost nothing more.
    Memoize,
}

impl Longitudinal {
    /// The name as written in descriptors.
    #[must_use]
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Independent => "independent",
            Self::Memoize => "memoize",
        }
    }
}

/// Everything needed to build a [`Protocol`].
#[derive(Debug, Clone, PartialEq)]
pub struct ProtocolConfig {
    /// The oracle, or `Auto`.
    pub oracle: OracleName,
    /// ε per report.
    pub epsilon: Epsilon,
    /// The domain.
    pub domain: Domain,
    /// Memoisation for repeated reports.
    pub longitudinal: Longitudinal,
}

/// A built oracle with all its derived parameters.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub enum Oracle {
    /// Generalized randomized response.
    Grr(Grr),
    /// Optimized unary encoding.
    Oue(Oue),
    /// Optimized local hashing.
    Olh(Olh),
    /// Hadamard response.
    Hadamard(Hadamard),
    /// Hadamard count-mean sketch.
    Hcms(Hcms),
    /// Duchi et al.
    Duchi(Duchi),
    /// Piecewise mechanism.
    Piecewise(Piecewise),
    /// Hybrid mechanism.
    Hybrid(Hybrid),
}

impl Oracle {
    /// The oracle's name.
    #[must_use]
    pub fn name(&self) -> OracleName {
        match self {
            Self::Grr(_) => OracleName::Grr,
            Self::Oue(_) => OracleName::Oue,
            Self::Olh(_) => OracleName::Olh,
            Self::Hadamard(_) => OracleName::Hadamard,
            Self::Hcms(_) => OracleName::Hcms,
            Self::Duchi(_) => OracleName::Duchi,
            Self::Piecewise(_) => OracleName::Piecewise,
            Self::Hybrid(_) => OracleName::Hybrid,
        }
    }

    /// How likely a report is to support an item, for the known-domain frequency oracles
    /// (`None` for the count-mean sketch and numeric mechanisms).
    #[must_use]
    pub fn support(&self) -> Option<crate::oracle::Support> {
        match self {
            Self::Grr(oracle) => Some(oracle.support()),
            Self::Oue(oracle) => Some(oracle.support()),
            Self::Olh(oracle) => Some(oracle.support()),
            Self::Hadamard(oracle) => Some(oracle.support()),
            _ => None,
        }
    }

    /// The ε of the rounded probabilities (never above the requested ε).
    #[must_use]
    pub fn actual_epsilon(&self) -> f64 {
        match self {
            Self::Grr(oracle) => oracle.actual_epsilon(),
            Self::Oue(oracle) => oracle.actual_epsilon(),
            Self::Olh(oracle) => oracle.actual_epsilon(),
            Self::Hadamard(oracle) => oracle.actual_epsilon(),
            Self::Hcms(oracle) => oracle.actual_epsilon(),
            Self::Duchi(oracle) => oracle.actual_epsilon(),
            Self::Piecewise(oracle) => oracle.actual_epsilon(),
            Self::Hybrid(oracle) => oracle.actual_epsilon(),
        }
    }
}

/// A protocol's identity: SHA-256 of its canonical encoding (oracle, ε, domain,
/// longitudinal mode and every derived integer).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ProtocolId([u8; 32]);

impl ProtocolId {
    /// The 32 bytes.
    #[must_use]
    pub fn as_bytes(&self) -> &[u8; 32] {
        &self.0
    }

    /// The first 8 bytes, big-endian: the tag every report carries. Its hex form is the
    /// first 16 hex digits of the id.
    #[must_use]
    pub fn short(&self) -> u64 {
        let mut first = [0_u8; 8];
        first.copy_from_slice(&self.0[..8]);
        u64::from_be_bytes(first)
    }
}

impl fmt::Display for ProtocolId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("sha256:")?;
        for byte in self.0 {
            write!(f, "{byte:02x}")?;
        }
        Ok(())
    }
}

/// A validated local-DP protocol: the oracle with its derived integers, the domain and the
/// longitudinal mode. Clients randomize with it; the server checks reports against it.
///
/// Build it from a [`ProtocolConfig`] ([`Protocol::new`]) or from a shared descriptor
/// ([`Protocol::from_descriptor`]), which re-derives every integer and refuses a descriptor
/// whose fields disagree.
#[derive(Debug, Clone)]
pub struct Protocol {
    epsilon: Epsilon,
    domain: Domain,
    longitudinal: Longitudinal,
    oracle: Oracle,
    lookup: BTreeMap<String, u32>,
    id: ProtocolId,
}

/// A numeric report and whether the value had to be clamped into the range.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NumericReport {
    /// The report.
    pub report: Report,
    /// Whether the value was outside the range (and was clamped, as the client would).
    pub clamped: bool,
}

/// The default number of hash functions of a count-mean sketch.
pub const DEFAULT_SKETCH_HASHES: u32 = 64;
/// The default width of a count-mean sketch.
pub const DEFAULT_SKETCH_WIDTH: u32 = 1024;

impl Protocol {
    /// Builds the protocol: resolves `auto`, derives every probability from ε exactly, and
    /// computes the id.
    ///
    /// # Errors
    /// [`LdpError::Epsilon`] for ε outside `[1e-6, 40]`; [`LdpError::Domain`] for a domain
    /// below 2 values, above 2^24, or with repeated values; [`LdpError::Range`] for an empty
    /// numeric range; [`LdpError::Option`] if the oracle does not fit the domain (a numeric
    /// mechanism on categories, …) or memoisation is asked for numbers.
    pub fn new(config: ProtocolConfig) -> Result<Self, LdpError> {
        let ProtocolConfig {
            oracle,
            epsilon,
            domain,
            longitudinal,
        } = config;
        let lookup = match &domain {
            Domain::Values(values) => index_values(values)?,
            Domain::Open { candidates, .. } => {
                index_values(candidates)?;
                BTreeMap::new()
            }
            _ => BTreeMap::new(),
        };
        let oracle = build_oracle(oracle, epsilon, &domain)?;
        if longitudinal == Longitudinal::Memoize && oracle.name().is_numeric() {
            return Err(LdpError::Option {
                option: "memoize",
                reason: String::from(
                    "memoisation applies to categorical values; bucket numbers into categories to memoise them",
                ),
            });
        }
        let mut protocol = Self {
            epsilon,
            domain,
            longitudinal,
            oracle,
            lookup,
            id: ProtocolId([0; 32]),
        };
        protocol.id = ProtocolId(sha256(&protocol.canonical_bytes()));
        Ok(protocol)
    }

    /// The protocol's id.
    #[must_use]
    pub fn id(&self) -> ProtocolId {
        self.id
    }

    /// The requested ε per report.
    #[must_use]
    pub fn epsilon(&self) -> Epsilon {
        self.epsilon
    }

    /// The ε of the rounded probabilities (never above [`Protocol::epsilon`]).
    #[must_use]
    pub fn actual_epsilon(&self) -> f64 {
        self.oracle.actual_epsilon()
    }

    /// The oracle with its derived parameters.
    #[must_use]
    pub fn oracle(&self) -> &Oracle {
        &self.oracle
    }

    /// The domain.
    #[must_use]
    pub fn domain(&self) -> &Domain {
        &self.domain
    }

    /// The longitudinal mode.
    #[must_use]
    pub fn longitudinal(&self) -> Longitudinal {
        self.longitudinal
    }

    /// The number of categorical values (`None` for open and numeric domains).
    #[must_use]
    pub fn domain_size(&self) -> Option<u32> {
        match &self.domain {
            Domain::Size(size) => Some(*size),
            Domain::Values(values) => u32::try_from(values.len()).ok(),
            Domain::Open { .. } | Domain::Numeric(_) => None,
        }
    }

    /// The label of item `index` in estimates: the listed value, or the index itself.
    #[must_use]
    pub fn label(&self, index: u32) -> String {
        match &self.domain {
            Domain::Values(values) => values
                .get(index as usize)
                .cloned()
                .unwrap_or_else(|| index.to_string()),
            _ => index.to_string(),
        }
    }

    /// The index of a listed domain value.
    ///
    /// # Errors
    /// [`LdpError::UnknownValue`] if the value is not listed (the value is not repeated
    /// in the message); [`LdpError::WrongInput`] if the domain lists no values.
    pub fn index_of(&self, value: &str) -> Result<u32, LdpError> {
        match &self.domain {
            Domain::Values(values) => self
                .lookup
                .get(value)
                .copied()
                .ok_or(LdpError::UnknownValue { size: values.len() }),
            _ => Err(self.wrong_input("text")),
        }
    }

    fn wrong_input(&self, given: &'static str) -> LdpError {
        let expected = match (&self.domain, self.oracle.name().is_numeric()) {
            (_, true) => "a number",
            (Domain::Size(_), _) => "a value index",
            (Domain::Values(_), _) => "one of the listed values (or its index)",
            _ => "text",
        };
        LdpError::WrongInput {
            oracle: self.oracle.name().as_str(),
            expected,
            given,
        }
    }

    /// Randomizes the categorical value with index `index`.
    ///
    /// # Errors
    /// [`LdpError::OutOfDomain`] if the index is not below the domain size;
    /// [`LdpError::WrongInput`] for open or numeric domains.
    pub fn randomize_index<R: Rng + CryptoRng + ?Sized>(
        &self,
        index: u32,
        rng: &mut R,
    ) -> Result<Report, LdpError> {
        let payload = match &self.oracle {
            Oracle::Grr(oracle) => Payload::Grr {
                value: oracle.randomize(index, rng)?,
            },
            Oracle::Oue(oracle) => Payload::Oue {
                ones: oracle.randomize(index, rng)?,
            },
            Oracle::Olh(oracle) => {
                let (seed, value) = oracle.randomize(index, rng)?;
                Payload::Olh { seed, value }
            }
            Oracle::Hadamard(oracle) => Payload::Hadamard {
                column: oracle.randomize(index, rng)?,
            },
            Oracle::Hcms(_) => return Err(self.wrong_input("a value index")),
            Oracle::Duchi(_) | Oracle::Piecewise(_) | Oracle::Hybrid(_) => {
                return Err(self.wrong_input("a value index"));
            }
        };
        Ok(self.report(payload))
    }

    /// Randomizes a text value: a listed domain value, or any string for an open domain.
    ///
    /// # Errors
    /// [`LdpError::UnknownValue`] if the domain lists values and this is not one of them
    /// (never mapped to a listed value); [`LdpError::WrongInput`] for size-only and
    /// numeric domains.
    pub fn randomize_value<R: Rng + CryptoRng + ?Sized>(
        &self,
        value: &str,
        rng: &mut R,
    ) -> Result<Report, LdpError> {
        match &self.oracle {
            Oracle::Hcms(oracle) => {
                let (hash, column, positive) = oracle.randomize(value.as_bytes(), rng);
                Ok(self.report(Payload::Hcms {
                    hash,
                    column,
                    positive,
                }))
            }
            _ => {
                let index = self.index_of(value)?;
                self.randomize_index(index, rng)
            }
        }
    }

    /// Randomizes a number, clamping it into the protocol's range first.
    ///
    /// # Errors
    /// [`LdpError::NotANumber`] for NaN; [`LdpError::WrongInput`] for categorical
    /// protocols.
    pub fn randomize_number<R: Rng + CryptoRng + ?Sized>(
        &self,
        value: f64,
        rng: &mut R,
    ) -> Result<NumericReport, LdpError> {
        let (payload, clamped) = match &self.oracle {
            Oracle::Duchi(mechanism) => {
                let (positive, clamped) = mechanism.randomize(value, rng)?;
                (Payload::Duchi { positive }, clamped)
            }
            Oracle::Piecewise(mechanism) => {
                let (cell, clamped) = mechanism.randomize(value, rng)?;
                (Payload::Piecewise { cell }, clamped)
            }
            Oracle::Hybrid(mechanism) => {
                let (report, clamped) = mechanism.randomize(value, rng)?;
                let payload = match report {
                    HybridReport::Duchi(positive) => Payload::Duchi { positive },
                    HybridReport::Piecewise(cell) => Payload::Piecewise { cell },
                };
                (payload, clamped)
            }
            _ => return Err(self.wrong_input("a number")),
        };
        Ok(NumericReport {
            report: self.report(payload),
            clamped,
        })
    }

    fn report(&self, payload: Payload) -> Report {
        Report {
            protocol: self.id.short(),
            payload,
        }
    }

    /// Checks that a report was made under this protocol and that its fields are in range.
    ///
    /// # Errors
    /// [`LdpError::WrongProtocol`] for another descriptor's report;
    /// [`LdpError::Corrupt`] for a payload of another oracle or a field out of range.
    pub fn check(&self, report: &Report) -> Result<(), LdpError> {
        if report.protocol != self.id.short() {
            return Err(LdpError::WrongProtocol {
                expected: self.id.short(),
                found: report.protocol,
            });
        }
        let in_range = |value: u32, limit: u32, what: &str| {
            if value < limit {
                Ok(())
            } else {
                Err(LdpError::Corrupt {
                    reason: format!("{what} {value} is not below {limit}"),
                })
            }
        };
        match (&self.oracle, &report.payload) {
            (Oracle::Grr(oracle), Payload::Grr { value }) => {
                in_range(*value, oracle.size(), "value")
            }
            (Oracle::Oue(oracle), Payload::Oue { ones }) => {
                if !ones.windows(2).all(|pair| pair[0] < pair[1]) {
                    return Err(LdpError::Corrupt {
                        reason: String::from("OUE positions are not strictly increasing"),
                    });
                }
                ones.last()
                    .map_or(Ok(()), |&last| in_range(last, oracle.size(), "position"))
            }
            (Oracle::Olh(oracle), Payload::Olh { value, .. }) => {
                in_range(*value, oracle.buckets(), "bucket")
            }
            (Oracle::Hadamard(oracle), Payload::Hadamard { column }) => {
                in_range(*column, oracle.order(), "column")
            }
            (Oracle::Hcms(oracle), Payload::Hcms { hash, column, .. }) => {
                in_range(*hash, oracle.hashes(), "hash index")?;
                in_range(*column, oracle.width(), "column")
            }
            (Oracle::Duchi(_) | Oracle::Hybrid(_), Payload::Duchi { .. }) => Ok(()),
            (Oracle::Piecewise(mechanism), Payload::Piecewise { cell }) => {
                in_range(*cell, mechanism.cells(), "cell")
            }
            (Oracle::Hybrid(mechanism), Payload::Piecewise { cell }) => {
                in_range(*cell, mechanism.piecewise().cells(), "cell")
            }
            (oracle, payload) => Err(LdpError::Corrupt {
                reason: format!(
                    "a {} payload in a report for oracle {}",
                    payload.kind(),
                    oracle.name()
                ),
            }),
        }
    }

    /// The canonical encoding that the id hashes: every field that changes what a report
    /// means.
    fn canonical_bytes(&self) -> Vec<u8> {
        let mut out = Vec::new();
        let mut field = |name: &str, value: &[u8]| {
            out.extend_from_slice(name.as_bytes());
            out.push(b'=');
            out.extend_from_slice(&(value.len() as u64).to_le_bytes());
            out.extend_from_slice(value);
        };
        field("format", b"veil-ldp-protocol");
        field("version", &PROTOCOL_VERSION.to_le_bytes());
        field("oracle", self.oracle.name().as_str().as_bytes());
        field("epsilon", &self.epsilon.get().to_bits().to_le_bytes());
        field("longitudinal", self.longitudinal.as_str().as_bytes());
        match &self.domain {
            Domain::Size(size) => field("domain.size", &size.to_le_bytes()),
            Domain::Values(values) => {
                field("domain.values", &(values.len() as u64).to_le_bytes());
                for value in values {
                    field("value", value.as_bytes());
                }
            }
            Domain::Open {
                hashes,
                width,
                seed,
                candidates,
            } => {
                field("domain.hashes", &hashes.to_le_bytes());
                field("domain.width", &width.to_le_bytes());
                field("domain.seed", &seed.to_le_bytes());
                field(
                    "domain.candidates",
                    &(candidates.len() as u64).to_le_bytes(),
                );
                for candidate in candidates {
                    field("candidate", candidate.as_bytes());
                }
            }
            Domain::Numeric(bounds) => {
                field("domain.lower", &bounds.lower().to_bits().to_le_bytes());
                field("domain.upper", &bounds.upper().to_bits().to_le_bytes());
            }
        }
        let derived = self.derived();
        let prob = |value: Option<Prob64>| value.map_or(0, Prob64::numerator).to_le_bytes();
        field("derived.keep", &prob(derived.keep));
        field("derived.one", &prob(derived.one));
        field("derived.inside", &prob(derived.inside));
        field("derived.flip", &prob(derived.flip));
        field("derived.mix", &prob(derived.mix));
        field(
            "derived.buckets",
            &derived.buckets.unwrap_or(0).to_le_bytes(),
        );
        field("derived.order", &derived.order.unwrap_or(0).to_le_bytes());
        field("derived.cells", &derived.cells.unwrap_or(0).to_le_bytes());
        field("derived.band", &derived.band.unwrap_or(0).to_le_bytes());
        field("derived.slope", &derived.slope.unwrap_or(0).to_le_bytes());
        out
    }
}

/// The oracle `auto` picks for a categorical domain of `size` values at `epsilon`:
///
/// - GRR when `d < 3e^ε + 2` (its variance is then the smallest);
/// - Hadamard response above 2^16 values, where OLH's `O(d)` server work per report and
///   OUE's `d`-bit reports stop being practical;
/// - otherwise the one of OUE, OLH and Hadamard response with the smallest variance for
///   rare items, counting any within 5% of the smallest as tied and breaking ties by report
///   size (so OLH's 72 bits beat OUE's `d` bits once `d > 72`).
///
/// # Errors
/// As [`Grr::new`] and friends, for a size or ε they refuse.
pub fn choose_oracle(size: u32, epsilon: Epsilon) -> Result<OracleName, LdpError> {
    check_size(size)?;
    let exp = libm::exp(epsilon.get());
    if f64::from(size) < 3.0 * exp + 2.0 {
        return Ok(OracleName::Grr);
    }
    if size > 1 << 16 {
        return Ok(OracleName::Hadamard);
    }
    let rare = |support: crate::oracle::Support| support.count_variance(0.0, 1.0);
    let oue = Oue::new(size, epsilon)?;
    let olh = Olh::new(size, epsilon)?;
    let hadamard = Hadamard::new(size, epsilon)?;
    let bits_olh = 64.0 + f64::from(32 - (olh.buckets() - 1).leading_zeros());
    let candidates = [
        (OracleName::Oue, rare(oue.support()), f64::from(size)),
        (OracleName::Olh, rare(olh.support()), bits_olh),
        (
            OracleName::Hadamard,
            rare(hadamard.support()),
            f64::from(hadamard.order().trailing_zeros()),
        ),
    ];
    let best = candidates
        .iter()
        .map(|candidate| candidate.1)
        .fold(f64::INFINITY, f64::min);
    let chosen = candidates
        .iter()
        .filter(|candidate| candidate.1 <= best * 1.05)
        .min_by(|a, b| a.2.total_cmp(&b.2))
        .map_or(OracleName::Olh, |candidate| candidate.0);
    Ok(chosen)
}

fn build_oracle(name: OracleName, epsilon: Epsilon, domain: &Domain) -> Result<Oracle, LdpError> {
    let categorical_size = match domain {
        Domain::Size(size) => Some(*size),
        Domain::Values(values) => {
            Some(u32::try_from(values.len()).map_err(|_| LdpError::Domain {
                reason: format!("{} values are too many", values.len()),
            })?)
        }
        _ => None,
    };
    let name = match (name, domain) {
        (OracleName::Auto, Domain::Numeric(_)) => OracleName::Hybrid,
        (OracleName::Auto, Domain::Open { .. }) => OracleName::Hcms,
        (OracleName::Auto, _) => choose_oracle(categorical_size.unwrap_or(0), epsilon)?,
        (name, _) => name,
    };
    let mismatch = |expected: &str| LdpError::Option {
        option: "oracle",
        reason: format!("{name} needs {expected}"),
    };
    match (name, domain) {
        (
            OracleName::Duchi | OracleName::Piecewise | OracleName::Hybrid,
            Domain::Numeric(bounds),
        ) => {
            let range = NumericRange::new(*bounds)?;
            Ok(match name {
                OracleName::Duchi => Oracle::Duchi(Duchi::new(range, epsilon)?),
                OracleName::Piecewise => Oracle::Piecewise(Piecewise::new(range, epsilon)?),
                _ => Oracle::Hybrid(Hybrid::new(range, epsilon)?),
            })
        }
        (OracleName::Duchi | OracleName::Piecewise | OracleName::Hybrid, _) => {
            Err(mismatch("a numeric range (--numeric a,b)"))
        }
        (
            OracleName::Hcms,
            Domain::Open {
                hashes,
                width,
                seed,
                ..
            },
        ) => Ok(Oracle::Hcms(Hcms::new(*hashes, *width, *seed, epsilon)?)),
        (OracleName::Hcms, _) => Err(mismatch("an open domain (strings hashed into a sketch)")),
        (_, Domain::Numeric(_)) => Err(mismatch(
            "a categorical domain; for numbers use duchi, piecewise, hybrid or auto",
        )),
        (_, Domain::Open { .. }) => Err(mismatch(
            "a known domain; for an open domain use hcms or auto",
        )),
        (name, _) => {
            let size = categorical_size.unwrap_or(0);
            Ok(match name {
                OracleName::Grr => Oracle::Grr(Grr::new(size, epsilon)?),
                OracleName::Oue => Oracle::Oue(Oue::new(size, epsilon)?),
                OracleName::Olh => Oracle::Olh(Olh::new(size, epsilon)?),
                _ => Oracle::Hadamard(Hadamard::new(size, epsilon)?),
            })
        }
    }
}

fn index_values(values: &[String]) -> Result<BTreeMap<String, u32>, LdpError> {
    let mut lookup = BTreeMap::new();
    for (position, value) in values.iter().enumerate() {
        let index = u32::try_from(position).map_err(|_| LdpError::Domain {
            reason: format!("{} values are too many", values.len()),
        })?;
        if let Some(first) = lookup.insert(value.clone(), index) {
            return Err(LdpError::Domain {
                reason: format!(
                    "value {} (position {position}) repeats position {first}: each value must be listed once",
                    quote(value)
                ),
            });
        }
    }
    Ok(lookup)
}

/// A domain value quoted for a message (domain values are public: they are in the
/// descriptor).
fn quote(value: &str) -> String {
    format!("{value:?}")
}
