//! The descriptor: the protocol as plain data, for TOML files shared by clients and the
//! server.

use alloc::format;
use alloc::string::{String, ToString};
use alloc::vec::Vec;

use veil_core::{Bounds, Epsilon};

use super::{Domain, Longitudinal, Oracle, OracleName, PROTOCOL_VERSION, Protocol, ProtocolConfig};
use crate::LdpError;
use crate::exact::{Prob64, repeated_cost_text};

/// The `format` field of every descriptor.
pub(crate) const FORMAT: &str = "veil-ldp-protocol";

/// A protocol as plain data: what `veil ldp protocol` writes and clients load.
///
/// Every derived integer is written out, so a client in another language can implement
/// the protocol from the descriptor alone; [`Protocol::from_descriptor`] re-derives them
/// and refuses a descriptor that disagrees (an edited file, or another version's rules).
#[derive(Debug, Clone, PartialEq)]
#[cfg_attr(
    feature = "serde",
    derive(serde::Serialize, serde::Deserialize),
    serde(deny_unknown_fields)
)]
pub struct ProtocolDescriptor {
    /// Always `"veil-ldp-protocol"`.
    pub format: String,
    /// The protocol rules' version ([`PROTOCOL_VERSION`]).
    pub version: u32,
    /// `sha256:` and the hex digest of the canonical encoding; reports carry its first 16
    /// hex digits.
    pub id: String,
    /// The oracle (never `auto`: the descriptor records the choice).
    pub oracle: String,
    /// ε per report, as requested.
    pub epsilon: f64,
    /// The domain.
    pub domain: DomainDescriptor,
    /// Memoisation and what repeated reports cost.
    pub longitudinal: LongitudinalDescriptor,
    /// Every integer derived from ε and the domain.
    pub derived: DerivedDescriptor,
}

/// The domain, as plain data.
#[derive(Debug, Clone, PartialEq, Default)]
#[cfg_attr(
    feature = "serde",
    derive(serde::Serialize, serde::Deserialize),
    serde(deny_unknown_fields)
)]
pub struct DomainDescriptor {
    /// `size`, `values`, `open` or `numeric`.
    pub kind: String,
    /// For `size`: the number of values.
    #[cfg_attr(
        feature = "serde",
        serde(default, skip_serializing_if = "Option::is_none")
    )]
    pub size: Option<u32>,
    /// For `values`: the values, in index order.
    #[cfg_attr(
        feature = "serde",
        serde(default, skip_serializing_if = "Option::is_none")
    )]
    pub values: Option<Vec<String>>,
    /// For `open`: the number of hash functions.
    #[cfg_attr(
        feature = "serde",
        serde(default, skip_serializing_if = "Option::is_none")
    )]
    pub hashes: Option<u32>,
    /// For `open`: the sketch width.
    #[cfg_attr(
        feature = "serde",
        serde(default, skip_serializing_if = "Option::is_none")
    )]
    pub width: Option<u32>,
    /// For `open`: the hash seed, as a decimal string (TOML integers are 63-bit).
    #[cfg_attr(
        feature = "serde",
        serde(default, skip_serializing_if = "Option::is_none")
    )]
    pub seed: Option<String>,
    /// For `open`: the candidate strings the server estimates by default.
    #[cfg_attr(
        feature = "serde",
        serde(default, skip_serializing_if = "Option::is_none")
    )]
    pub candidates: Option<Vec<String>>,
    /// For `numeric`: the lower bound.
    #[cfg_attr(
        feature = "serde",
        serde(default, skip_serializing_if = "Option::is_none")
    )]
    pub lower: Option<f64>,
    /// For `numeric`: the upper bound.
    #[cfg_attr(
        feature = "serde",
        serde(default, skip_serializing_if = "Option::is_none")
    )]
    pub upper: Option<f64>,
}

/// Memoisation and its cost, as plain data.
#[derive(Debug, Clone, PartialEq)]
#[cfg_attr(
    feature = "serde",
    derive(serde::Serialize, serde::Deserialize),
    serde(deny_unknown_fields)
)]
pub struct LongitudinalDescriptor {
    /// `independent` or `memoize`.
    pub mode: String,
    /// What repeated reports cost, in words (informative; not read back).
    #[cfg_attr(feature = "serde", serde(default))]
    pub repeated_reports: String,
}

/// The derived integers, as plain data. Probabilities are `"<numerator>/2^64"`.
#[derive(Debug, Clone, PartialEq, Default)]
#[cfg_attr(
    feature = "serde",
    derive(serde::Serialize, serde::Deserialize),
    serde(deny_unknown_fields)
)]
pub struct DerivedDescriptor {
    /// The ε of the rounded probabilities, rounded up: never above `epsilon`.
    pub epsilon_actual: f64,
    /// GRR, OLH: the probability of keeping the true value (bucket).
    #[cfg_attr(
        feature = "serde",
        serde(default, skip_serializing_if = "Option::is_none")
    )]
    pub keep: Option<Prob64>,
    /// OUE: the probability that a bit other than the true one is 1.
    #[cfg_attr(
        feature = "serde",
        serde(default, skip_serializing_if = "Option::is_none")
    )]
    pub one: Option<Prob64>,
    /// Hadamard, piecewise: the probability of reporting from the value's own half (band).
    #[cfg_attr(
        feature = "serde",
        serde(default, skip_serializing_if = "Option::is_none")
    )]
    pub inside: Option<Prob64>,
    /// HCMS: the probability of flipping the bit.
    #[cfg_attr(
        feature = "serde",
        serde(default, skip_serializing_if = "Option::is_none")
    )]
    pub flip: Option<Prob64>,
    /// Hybrid: the probability of the piecewise branch.
    #[cfg_attr(
        feature = "serde",
        serde(default, skip_serializing_if = "Option::is_none")
    )]
    pub mix: Option<Prob64>,
    /// OLH: the number of hash buckets `g`.
    #[cfg_attr(
        feature = "serde",
        serde(default, skip_serializing_if = "Option::is_none")
    )]
    pub buckets: Option<u32>,
    /// Hadamard: the matrix order `K`.
    #[cfg_attr(
        feature = "serde",
        serde(default, skip_serializing_if = "Option::is_none")
    )]
    pub order: Option<u32>,
    /// Piecewise, hybrid: the number of output cells `M`.
    #[cfg_attr(
        feature = "serde",
        serde(default, skip_serializing_if = "Option::is_none")
    )]
    pub cells: Option<u32>,
    /// Piecewise, hybrid: the band width `W`.
    #[cfg_attr(
        feature = "serde",
        serde(default, skip_serializing_if = "Option::is_none")
    )]
    pub band: Option<u32>,
    /// Duchi, hybrid: the slope `c`, an integer over `2^40`.
    #[cfg_attr(
        feature = "serde",
        serde(default, skip_serializing_if = "Option::is_none")
    )]
    pub slope: Option<u64>,
}

impl Protocol {
    /// The derived integers.
    pub(crate) fn derived(&self) -> DerivedDescriptor {
        let mut derived = DerivedDescriptor {
            epsilon_actual: self.actual_epsilon(),
            ..DerivedDescriptor::default()
        };
        match &self.oracle {
            Oracle::Grr(oracle) => derived.keep = Some(oracle.keep()),
            Oracle::Oue(oracle) => derived.one = Some(oracle.one()),
            Oracle::Olh(oracle) => {
                derived.keep = Some(oracle.keep());
                derived.buckets = Some(oracle.buckets());
            }
            Oracle::Hadamard(oracle) => {
                derived.inside = Some(oracle.inside());
                derived.order = Some(oracle.order());
            }
            Oracle::Hcms(oracle) => derived.flip = Some(oracle.flip()),
            Oracle::Duchi(mechanism) => derived.slope = Some(mechanism.slope()),
            Oracle::Piecewise(mechanism) => {
                derived.inside = Some(mechanism.inside());
                derived.cells = Some(mechanism.cells());
                derived.band = Some(mechanism.band());
            }
            Oracle::Hybrid(mechanism) => {
                derived.slope = Some(mechanism.duchi().slope());
                derived.inside = Some(mechanism.piecewise().inside());
                derived.cells = Some(mechanism.piecewise().cells());
                derived.band = Some(mechanism.piecewise().band());
                derived.mix = Some(mechanism.mix());
            }
        }
        derived
    }

    /// The protocol as plain data, for a descriptor file.
    #[must_use]
    pub fn descriptor(&self) -> ProtocolDescriptor {
        let domain = match &self.domain {
            Domain::Size(size) => DomainDescriptor {
                kind: String::from("size"),
                size: Some(*size),
                ..DomainDescriptor::default()
            },
            Domain::Values(values) => DomainDescriptor {
                kind: String::from("values"),
                values: Some(values.clone()),
                ..DomainDescriptor::default()
            },
            Domain::Open {
                hashes,
                width,
                seed,
                candidates,
            } => DomainDescriptor {
                kind: String::from("open"),
                hashes: Some(*hashes),
                width: Some(*width),
                seed: Some(seed.to_string()),
                candidates: (!candidates.is_empty()).then(|| candidates.clone()),
                ..DomainDescriptor::default()
            },
            Domain::Numeric(bounds) => DomainDescriptor {
                kind: String::from("numeric"),
                lower: Some(bounds.lower()),
                upper: Some(bounds.upper()),
                ..DomainDescriptor::default()
            },
        };
        ProtocolDescriptor {
            format: String::from(FORMAT),
            version: PROTOCOL_VERSION,
            id: self.id.to_string(),
            oracle: self.oracle.name().as_str().to_string(),
            epsilon: self.epsilon.get(),
            domain,
            longitudinal: LongitudinalDescriptor {
                mode: self.longitudinal.as_str().to_string(),
                repeated_reports: repeated_cost_text(self.longitudinal == Longitudinal::Memoize),
            },
            derived: self.derived(),
        }
    }

    /// Loads a descriptor: rebuilds the protocol from its oracle, ε, domain and mode, then
    /// checks every derived integer and the id against what it wrote.
    ///
    /// # Errors
    /// [`LdpError::Descriptor`] naming the field that is missing, malformed or disagrees
    /// (an edited file, or a descriptor from another version of the rules); the errors of
    /// [`Protocol::new`] for invalid parameters.
    pub fn from_descriptor(descriptor: &ProtocolDescriptor) -> Result<Self, LdpError> {
        let field_error = |field: &str, reason: String| LdpError::Descriptor {
            field: field.to_string(),
            reason,
        };
        if descriptor.format != FORMAT {
            return Err(field_error(
                "format",
                format!("is {:?}, expected {FORMAT:?}", descriptor.format),
            ));
        }
        if descriptor.version != PROTOCOL_VERSION {
            return Err(field_error(
                "version",
                format!(
                    "is {}, but this Veil implements protocol version {PROTOCOL_VERSION}",
                    descriptor.version
                ),
            ));
        }
        let oracle: OracleName = descriptor
            .oracle
            .parse()
            .map_err(|error: LdpError| field_error("oracle", error.to_string()))?;
        if oracle == OracleName::Auto {
            return Err(field_error(
                "oracle",
                String::from("a descriptor names the chosen oracle, not auto"),
            ));
        }
        let epsilon = Epsilon::new(descriptor.epsilon)
            .map_err(|error| field_error("epsilon", error.to_string()))?;
        let domain = domain_of(&descriptor.domain)?;
        let longitudinal = match descriptor.longitudinal.mode.as_str() {
            "independent" => Longitudinal::Independent,
            "memoize" => Longitudinal::Memoize,
            other => {
                return Err(field_error(
                    "longitudinal.mode",
                    format!("{other:?} is not independent or memoize"),
                ));
            }
        };
        let protocol = Self::new(ProtocolConfig {
            oracle,
            epsilon,
            domain,
            longitudinal,
        })?;
        let expected = protocol.derived();
        let given = &descriptor.derived;
        let mismatch = |field: &str, expected: String, found: String| {
            field_error(
                field,
                format!(
                    "is {found}, but epsilon and the domain give {expected}; regenerate the descriptor instead of editing it"
                ),
            )
        };
        macro_rules! compare {
            ($name:ident) => {
                if expected.$name != given.$name {
                    let field = concat!("derived.", stringify!($name));
                    return Err(match (&expected.$name, &given.$name) {
                        (Some(expected), Some(given)) => {
                            mismatch(field, expected.to_string(), given.to_string())
                        }
                        (Some(expected), None) => field_error(
                            field,
                            format!(
                                "is missing, but epsilon and the domain give {expected}; regenerate the descriptor instead of editing it"
                            ),
                        ),
                        (None, _) => field_error(
                            field,
                            format!(
                                "does not apply to oracle {}; regenerate the descriptor instead of editing it",
                                protocol.oracle().name()
                            ),
                        ),
                    });
                }
            };
        }
        compare!(keep);
        compare!(one);
        compare!(inside);
        compare!(flip);
        compare!(mix);
        compare!(buckets);
        compare!(order);
        compare!(cells);
        compare!(band);
        compare!(slope);
        let actual = expected.epsilon_actual;
        if (given.epsilon_actual - actual).abs() > 1e-9 * actual.max(1e-300) {
            return Err(mismatch(
                "derived.epsilon_actual",
                actual.to_string(),
                given.epsilon_actual.to_string(),
            ));
        }
        let id = protocol.id().to_string();
        if descriptor.id != id {
            return Err(field_error(
                "id",
                format!(
                    "is {}, but the descriptor's contents hash to {id}; regenerate the descriptor instead of editing it",
                    descriptor.id
                ),
            ));
        }
        Ok(protocol)
    }
}

fn domain_of(domain: &DomainDescriptor) -> Result<Domain, LdpError> {
    let missing = |field: &str| LdpError::Descriptor {
        field: format!("domain.{field}"),
        reason: format!("is required for a {} domain", domain.kind),
    };
    let unexpected = |fields: &[(&str, bool)]| -> Result<(), LdpError> {
        match fields.iter().find(|(_, present)| *present) {
            Some((field, _)) => Err(LdpError::Descriptor {
                field: format!("domain.{field}"),
                reason: format!("does not apply to a {} domain", domain.kind),
            }),
            None => Ok(()),
        }
    };
    let open_fields = [
        ("hashes", domain.hashes.is_some()),
        ("width", domain.width.is_some()),
        ("seed", domain.seed.is_some()),
        ("candidates", domain.candidates.is_some()),
    ];
    let numeric_fields = [
        ("lower", domain.lower.is_some()),
        ("upper", domain.upper.is_some()),
    ];
    let categorical_fields = [
        ("size", domain.size.is_some()),
        ("values", domain.values.is_some()),
    ];
    match domain.kind.as_str() {
        "size" => {
            unexpected(&open_fields)?;
            unexpected(&numeric_fields)?;
            unexpected(&[("values", domain.values.is_some())])?;
            Ok(Domain::Size(domain.size.ok_or_else(|| missing("size"))?))
        }
        "values" => {
            unexpected(&open_fields)?;
            unexpected(&numeric_fields)?;
            unexpected(&[("size", domain.size.is_some())])?;
            Ok(Domain::Values(
                domain.values.clone().ok_or_else(|| missing("values"))?,
            ))
        }
        "open" => {
            unexpected(&categorical_fields)?;
            unexpected(&numeric_fields)?;
            let seed = domain.seed.as_deref().ok_or_else(|| missing("seed"))?;
            let seed = seed.parse::<u64>().map_err(|_| LdpError::Descriptor {
                field: String::from("domain.seed"),
                reason: format!("{seed:?} is not a decimal integer below 2^64"),
            })?;
            Ok(Domain::Open {
                hashes: domain.hashes.ok_or_else(|| missing("hashes"))?,
                width: domain.width.ok_or_else(|| missing("width"))?,
                seed,
                candidates: domain.candidates.clone().unwrap_or_default(),
            })
        }
        "numeric" => {
            unexpected(&categorical_fields)?;
            unexpected(&open_fields)?;
            let lower = domain.lower.ok_or_else(|| missing("lower"))?;
            let upper = domain.upper.ok_or_else(|| missing("upper"))?;
            let bounds = Bounds::new(lower, upper).map_err(|error| LdpError::Descriptor {
                field: String::from("domain"),
                reason: error.to_string(),
            })?;
            Ok(Domain::Numeric(bounds))
        }
        other => Err(LdpError::Descriptor {
            field: String::from("domain.kind"),
            reason: format!("{other:?} is not size, values, open or numeric"),
        }),
    }
}
