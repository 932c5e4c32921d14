//! Audits of local-DP protocols on their worst pair of inputs.
//!
//! A client's report must hide which of any two values it holds. The auditor runs the
//! client's randomizer on two values and reduces each report to one number, then tests
//! every threshold event on that number:
//!
//! - **Frequency oracles** (GRR, OUE, OLH, Hadamard response, count-mean sketch): the
//!   values are the first two of the domain (`"a"` and `"b"` for an open domain), and a
//!   report becomes `support(x) − support(x')`, in `{-1, 0, 1}`, where `support(v)` is
//!   whether the server would count the report for `v`. The event "supports `x` and not
//!   `x'`" has probability ratio exactly `e^ε` for every oracle here, so the bound
//!   approaches ε.
//! - **Numeric mechanisms** (Duchi, piecewise, hybrid): the values are the two ends of the
//!   range, and a report becomes the value the server decodes it to.
//!
//! Every oracle is symmetric in the values it is given (up to OLH's and the sketch's
//! hashing, which does not change the argument), so the first two values are as bad as
//! any pair.

use rand_core::{CryptoRng, Rng};
use veil_core::Epsilon;
use veil_ldp::hash::OlhHash;
use veil_ldp::oracle::{Hadamard, Hcms};
use veil_ldp::{Domain, Oracle, Payload, Protocol, Report};

use crate::AuditError;
use crate::estimate::{Audit, Claim, Confidence, audit_sampler};

/// A client input.
#[derive(Debug, Clone, PartialEq)]
pub enum LdpInput {
    /// A value index of a known domain.
    Index(u32),
    /// A string of an open domain.
    Text(String),
    /// A number of a numeric domain.
    Number(f64),
}

/// The worst pair of inputs the auditor uses for `protocol`.
#[must_use]
pub fn worst_pair(protocol: &Protocol) -> (LdpInput, LdpInput) {
    match protocol.domain() {
        Domain::Numeric(bounds) => (
            LdpInput::Number(bounds.lower()),
            LdpInput::Number(bounds.upper()),
        ),
        Domain::Open { .. } => (LdpInput::Text("a".into()), LdpInput::Text("b".into())),
        Domain::Size(_) | Domain::Values(_) => (LdpInput::Index(0), LdpInput::Index(1)),
    }
}

/// Randomizes `input` with `protocol`, as the client would.
///
/// # Errors
/// [`AuditError::Ldp`] if the protocol refuses the input.
pub fn randomize<R: Rng + CryptoRng + ?Sized>(
    protocol: &Protocol,
    input: &LdpInput,
    rng: &mut R,
) -> Result<Report, AuditError> {
    Ok(match input {
        LdpInput::Index(index) => protocol.randomize_index(*index, rng)?,
        LdpInput::Text(text) => protocol.randomize_value(text, rng)?,
        LdpInput::Number(value) => protocol.randomize_number(*value, rng)?.report,
    })
}

/// The number a report is reduced to for the pair `(first, second)`: the difference of
/// the supports of the two values for a frequency oracle, the decoded value for a
/// numeric mechanism. `NaN` for a report of another oracle (never produced by the
/// protocol's own randomizer).
#[must_use]
pub fn statistic(protocol: &Protocol, first: &LdpInput, second: &LdpInput, report: &Report) -> f64 {
    let support = |input: &LdpInput| -> Option<bool> { supports(protocol.oracle(), input, report) };
    match &report.payload {
        Payload::Duchi { .. } | Payload::Piecewise { .. } => decoded(protocol.oracle(), report),
        _ => match (support(first), support(second)) {
            (Some(a), Some(b)) => f64::from(i8::from(a) - i8::from(b)),
            _ => f64::NAN,
        },
    }
}

/// Whether the server would count `report` for `input`.
fn supports(oracle: &Oracle, input: &LdpInput, report: &Report) -> Option<bool> {
    match (oracle, input, &report.payload) {
        (Oracle::Grr(_), LdpInput::Index(index), Payload::Grr { value }) => Some(value == index),
        (Oracle::Oue(_), LdpInput::Index(index), Payload::Oue { ones }) => {
            Some(ones.binary_search(index).is_ok())
        }
        (Oracle::Olh(oracle), LdpInput::Index(index), Payload::Olh { seed, value }) => {
            Some(OlhHash::new(*seed).bucket(*index, oracle.buckets()) == *value)
        }
        (Oracle::Hadamard(_), LdpInput::Index(index), Payload::Hadamard { column }) => {
            Some(Hadamard::owns(*index, *column))
        }
        (
            Oracle::Hcms(oracle),
            LdpInput::Text(text),
            Payload::Hcms {
                hash,
                column,
                positive,
            },
        ) => {
            let bucket = oracle.bucket(*hash, text.as_bytes());
            Some(Hcms::sign(bucket, *column) == *positive)
        }
        _ => None,
    }
}

/// The value the server decodes a numeric report to.
fn decoded(oracle: &Oracle, report: &Report) -> f64 {
    match (oracle, &report.payload) {
        (Oracle::Duchi(mechanism), Payload::Duchi { positive }) => mechanism.value(*positive),
        (Oracle::Piecewise(mechanism), Payload::Piecewise { cell }) => mechanism.value(*cell),
        (Oracle::Hybrid(mechanism), Payload::Duchi { positive }) => {
            mechanism.duchi().value(*positive)
        }
        (Oracle::Hybrid(mechanism), Payload::Piecewise { cell }) => {
            mechanism.piecewise().value(*cell)
        }
        _ => f64::NAN,
    }
}

/// Audits a protocol's randomizer against ε-LDP at `claimed` (the protocol's own ε for
/// `veil audit ldp`; a test passes another to plant a bug) on its worst pair of inputs.
///
/// # Errors
/// [`AuditError::Ldp`] if the protocol refuses an input; as
/// [`crate::estimate::epsilon_lower_bound`].
pub fn audit_protocol<R: Rng + CryptoRng + ?Sized>(
    protocol: &Protocol,
    claimed: Epsilon,
    trials: usize,
    confidence: Confidence,
    rng: &mut R,
) -> Result<Audit, AuditError> {
    let (first, second) = worst_pair(protocol);
    // Fail early on inputs the protocol refuses, so that sampling cannot.
    randomize(protocol, &first, rng)?;
    randomize(protocol, &second, rng)?;
    let draw = |input: &LdpInput, rng: &mut R| -> f64 {
        randomize(protocol, input, rng).map_or(f64::NAN, |report| {
            statistic(protocol, &first, &second, &report)
        })
    };
    audit_sampler(
        trials,
        Claim::pure(claimed),
        confidence,
        rng,
        |rng| draw(&first, rng),
        |rng| draw(&second, rng),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Verdict;
    use veil_core::Bounds;
    use veil_ldp::{Longitudinal, OracleName, ProtocolConfig};
    use veil_testkit::seeded_rng;

    fn protocol(oracle: OracleName, epsilon: f64) -> Protocol {
        let domain = match oracle {
            OracleName::Duchi | OracleName::Piecewise | OracleName::Hybrid => {
                Domain::Numeric(Bounds::new(0.0, 10.0).unwrap())
            }
            OracleName::Hcms => Domain::Open {
                hashes: 16,
                width: 64,
                seed: 7,
                candidates: Vec::new(),
            },
            _ => Domain::Size(16),
        };
        Protocol::new(ProtocolConfig {
            oracle,
            epsilon: Epsilon::new(epsilon).unwrap(),
            domain,
            longitudinal: Longitudinal::Independent,
        })
        .unwrap()
    }

    #[test]
    fn every_oracle_passes_and_frequency_oracles_are_tight() {
        let mut rng = seeded_rng(21);
        let confidence = Confidence::new(1.0 - 1e-7).unwrap();
        for oracle in OracleName::ALL {
            if oracle == OracleName::Auto {
                continue;
            }
            let protocol = protocol(oracle, 1.0);
            let audit =
                audit_protocol(&protocol, protocol.epsilon(), 100_000, confidence, &mut rng)
                    .unwrap();
            assert_eq!(audit.verdict, Verdict::Pass, "{oracle}: {audit:?}");
            if !oracle.is_numeric() {
                assert!(audit.bound.epsilon > 0.7, "{oracle}: {audit:?}");
            }
        }
    }

    #[test]
    fn statistics_are_in_range() {
        let mut rng = seeded_rng(22);
        for oracle in [
            OracleName::Grr,
            OracleName::Oue,
            OracleName::Olh,
            OracleName::Hadamard,
        ] {
            let protocol = protocol(oracle, 2.0);
            let (first, second) = worst_pair(&protocol);
            for _ in 0..200 {
                let report = randomize(&protocol, &first, &mut rng).unwrap();
                let value = statistic(&protocol, &first, &second, &report);
                assert!([-1.0, 0.0, 1.0].contains(&value), "{oracle}: {value}");
            }
        }
    }
}
