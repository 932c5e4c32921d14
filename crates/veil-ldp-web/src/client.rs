//! The device side of a protocol: randomization with memoisation and a lifetime ε cap.

use rand_core::{CryptoRng, Rng};
use serde::{Deserialize, Serialize};
use veil_ldp::report::Payload;
use veil_ldp::{
    Domain, LdpError, Longitudinal, PermanentResponses, Protocol, ProtocolDescriptor, Report,
};

#[cfg(test)]
mod tests;

/// What a device stores between visits for one protocol (as JSON, see [`Client::state`]).
/// It holds no value in the clear: only a count, a cap and (with memoisation) the
/// randomized permanent answers, which are already ε-LDP.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DeviceState {
    /// Always `"veil-ldp-device"`.
    format: String,
    /// The state's version, 1.
    version: u32,
    /// The full id of the protocol the state belongs to.
    protocol: String,
    /// The smallest lifetime ε cap this device was ever given for the protocol.
    lifetime_epsilon: f64,
    /// How many fresh randomizations were charged, at ε each.
    charged: u32,
    /// The permanent answers, for a memoising protocol.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    memo: Option<PermanentResponses>,
}

const STATE_FORMAT: &str = "veil-ldp-device";
const STATE_VERSION: u32 = 1;

/// Why the client refused. Messages name what is wrong and never repeat the person's value.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum WebError {
    /// The descriptor text is neither a TOML nor a JSON descriptor.
    #[error("the protocol descriptor cannot be read as {format}: {reason}")]
    DescriptorSyntax {
        /// `TOML` or `JSON`.
        format: &'static str,
        /// The parser's message.
        reason: String,
    },
    /// The descriptor is invalid, or the value does not fit the protocol.
    #[error(transparent)]
    Protocol(#[from] LdpError),
    /// The stored state cannot be used.
    #[error(
        "the device's stored state for this protocol is unusable: {reason}; nothing was randomized"
    )]
    State {
        /// What is wrong.
        reason: String,
    },
    /// The lifetime cap is not a positive number.
    #[error("the lifetime epsilon cap is {value}: it must be a finite number above 0")]
    LifetimeEpsilon {
        /// The value given.
        value: f64,
    },
    /// Another fresh randomization would pass the device's lifetime cap.
    #[error(
        "this device has spent epsilon = {spent} of its lifetime cap of {cap} for protocol {protocol}, and another report costs {epsilon}: nothing was randomized"
    )]
    Exhausted {
        /// The protocol's id.
        protocol: String,
        /// ε spent so far.
        spent: f64,
        /// The cap.
        cap: f64,
        /// ε per fresh report.
        epsilon: f64,
    },
    /// No random bytes could be read.
    #[error("the browser gave no random bytes ({reason}): nothing was randomized")]
    Randomness {
        /// The source's message.
        reason: String,
    },
}

/// Reads a descriptor from its JSON text (as the collector serves it at `/v1/protocol`, or
/// `veil ldp protocol --json` writes it), or from its TOML text with the `toml` feature.
///
/// # Errors
/// [`WebError::DescriptorSyntax`] for text of neither form.
pub fn parse_descriptor(text: &str) -> Result<ProtocolDescriptor, WebError> {
    if text.trim_start().starts_with('{') {
        return serde_json::from_str(text).map_err(|error| WebError::DescriptorSyntax {
            format: "JSON",
            reason: error.to_string(),
        });
    }
    #[cfg(feature = "toml")]
    {
        toml::from_str(text).map_err(|error| WebError::DescriptorSyntax {
            format: "TOML",
            reason: error.message().to_string(),
        })
    }
    #[cfg(not(feature = "toml"))]
    Err(WebError::DescriptorSyntax {
        format: "JSON",
        reason: "it does not start with '{': give the JSON form (the collector's /v1/protocol, or veil ldp protocol --json); this build reads no TOML".to_string(),
    })
}

/// One protocol on one device.
#[derive(Debug)]
pub struct Client {
    protocol: Protocol,
    state: DeviceState,
}

impl Client {
    /// Loads a descriptor (JSON; TOML too with the `toml` feature) and the device's
    /// stored state for it (`None` on a device that never reported under it).
    ///
    /// The cap in force is the smaller of `lifetime_epsilon` and the one stored, so a later
    /// version of a page cannot raise what a device already promised.
    ///
    /// # Errors
    /// [`WebError::DescriptorSyntax`] or [`WebError::Protocol`] for a descriptor that does not
    /// load (an edited one is refused); [`WebError::State`] for a state that is not JSON of
    /// this form or belongs to another protocol; [`WebError::LifetimeEpsilon`].
    pub fn new(
        descriptor: &str,
        state: Option<&str>,
        lifetime_epsilon: f64,
    ) -> Result<Self, WebError> {
        if !(lifetime_epsilon.is_finite() && lifetime_epsilon > 0.0) {
            return Err(WebError::LifetimeEpsilon {
                value: lifetime_epsilon,
            });
        }
        let protocol = Protocol::from_descriptor(&parse_descriptor(descriptor)?)?;
        let id = protocol.id().to_string();
        let memoize = protocol.longitudinal() == Longitudinal::Memoize;
        let state = match state {
            None => DeviceState {
                format: STATE_FORMAT.to_string(),
                version: STATE_VERSION,
                protocol: id,
                lifetime_epsilon,
                charged: 0,
                memo: memoize.then(|| PermanentResponses::new(&protocol)),
            },
            Some(text) => {
                let mut stored: DeviceState =
                    serde_json::from_str(text).map_err(|error| WebError::State {
                        reason: error.to_string(),
                    })?;
                let problem = if stored.format != STATE_FORMAT || stored.version != STATE_VERSION {
                    Some(format!(
                        "it is {:?} version {}, not {STATE_FORMAT:?} version {STATE_VERSION}",
                        stored.format, stored.version
                    ))
                } else if stored.protocol != id {
                    Some(format!(
                        "it belongs to protocol {}, not to this descriptor's {id}",
                        stored.protocol
                    ))
                } else if !(stored.lifetime_epsilon.is_finite() && stored.lifetime_epsilon > 0.0) {
                    Some(format!(
                        "its lifetime cap {} is not a number above 0",
                        stored.lifetime_epsilon
                    ))
                } else if stored.memo.is_some() != memoize
                    || stored
                        .memo
                        .as_ref()
                        .is_some_and(|memo| memo.protocol() != protocol.id().short())
                {
                    Some("its permanent answers do not match the protocol".to_string())
                } else {
                    None
                };
                if let Some(reason) = problem {
                    return Err(WebError::State { reason });
                }
                stored.lifetime_epsilon = stored.lifetime_epsilon.min(lifetime_epsilon);
                stored
            }
        };
        Ok(Self { protocol, state })
    }

    /// The protocol.
    #[must_use]
    pub fn protocol(&self) -> &Protocol {
        &self.protocol
    }

    /// ε spent by this device under the protocol (fresh randomizations × ε).
    #[must_use]
    pub fn spent_epsilon(&self) -> f64 {
        f64::from(self.state.charged) * self.protocol.epsilon().get()
    }

    /// The lifetime cap in force.
    #[must_use]
    pub fn lifetime_epsilon(&self) -> f64 {
        self.state.lifetime_epsilon
    }

    /// What reporting `value` would cost now: 0 when its permanent answer is memoised, ε
    /// otherwise.
    #[must_use]
    pub fn cost_of_value(&self, value: &str) -> f64 {
        match &self.state.memo {
            Some(memo) if memo.has_value(value) => 0.0,
            _ => self.protocol.epsilon().get(),
        }
    }

    /// The state to persist, as JSON. Persist it before sending the report: a device that
    /// sent a report but lost its state would charge the report again, never less.
    #[must_use]
    pub fn state(&self) -> String {
        serde_json::to_string(&self.state).unwrap_or_else(|error| {
            // Serializing plain strings and numbers cannot fail; should it, no state is
            // better than a wrong one (the next load refuses it).
            format!("{{\"error\":{:?}}}", error.to_string())
        })
    }

    /// Randomizes a listed value (or any string, for an open domain) into the encoded
    /// report.
    ///
    /// # Errors
    /// [`WebError::Protocol`] for a value outside the domain or a protocol of another kind,
    /// and [`WebError::Exhausted`] when the cap would be passed; either way before anything
    /// is randomized or charged.
    pub fn randomize_value<R: Rng + CryptoRng + ?Sized>(
        &mut self,
        value: &str,
        rng: &mut R,
    ) -> Result<Vec<u8>, WebError> {
        if !matches!(self.protocol.domain(), Domain::Open { .. }) {
            self.protocol.index_of(value)?;
        }
        if let Some(memo) = &mut self.state.memo {
            if !memo.has_value(value) {
                charge(
                    &self.protocol,
                    &mut self.state.charged,
                    self.state.lifetime_epsilon,
                )?;
            }
            return Ok(memo.report_value(&self.protocol, value, rng)?.encode());
        }
        self.charge()?;
        Ok(self.protocol.randomize_value(value, rng)?.encode())
    }

    /// Randomizes the value with index `index` (a categorical protocol).
    ///
    /// # Errors
    /// As [`randomize_value`](Self::randomize_value).
    pub fn randomize_index<R: Rng + CryptoRng + ?Sized>(
        &mut self,
        index: u32,
        rng: &mut R,
    ) -> Result<Vec<u8>, WebError> {
        let name = self.protocol.oracle().name();
        let size = match self.protocol.domain() {
            Domain::Size(size) => *size,
            Domain::Values(values) => u32::try_from(values.len()).unwrap_or(u32::MAX),
            _ => {
                return Err(LdpError::WrongInput {
                    oracle: name.as_str(),
                    expected: if name.is_numeric() {
                        "a number"
                    } else {
                        "text"
                    },
                    given: "a value index",
                }
                .into());
            }
        };
        if index >= size {
            return Err(LdpError::OutOfDomain {
                index: u64::from(index),
                size: u64::from(size),
            }
            .into());
        }
        if let Some(memo) = &mut self.state.memo {
            if !memo.has_index(index) {
                charge(
                    &self.protocol,
                    &mut self.state.charged,
                    self.state.lifetime_epsilon,
                )?;
            }
            return Ok(memo.report_index(&self.protocol, index, rng)?.encode());
        }
        self.charge()?;
        Ok(self.protocol.randomize_index(index, rng)?.encode())
    }

    /// Randomizes a number (a numeric protocol), clamped into its range first.
    ///
    /// # Errors
    /// As [`randomize_value`](Self::randomize_value); NaN is refused.
    pub fn randomize_number<R: Rng + CryptoRng + ?Sized>(
        &mut self,
        number: f64,
        rng: &mut R,
    ) -> Result<Vec<u8>, WebError> {
        let name = self.protocol.oracle().name();
        if !name.is_numeric() {
            return Err(LdpError::WrongInput {
                oracle: name.as_str(),
                expected: "a category",
                given: "a number",
            }
            .into());
        }
        if number.is_nan() {
            return Err(LdpError::NotANumber.into());
        }
        self.charge()?;
        Ok(self.protocol.randomize_number(number, rng)?.report.encode())
    }

    fn charge(&mut self) -> Result<(), WebError> {
        charge(
            &self.protocol,
            &mut self.state.charged,
            self.state.lifetime_epsilon,
        )
    }
}

/// Charges one fresh randomization to `charged`, or refuses if it would pass `cap`. Called
/// after the input was checked and before anything is randomized: a refused report is never
/// made, and a made one is always charged.
fn charge(protocol: &Protocol, charged: &mut u32, cap: f64) -> Result<(), WebError> {
    let epsilon = protocol.epsilon().get();
    let next = f64::from(charged.saturating_add(1)) * epsilon;
    // A relative margin for the float product; the cap is never passed by more.
    if next > cap * (1.0 + 1e-12) {
        return Err(WebError::Exhausted {
            protocol: protocol.id().to_string(),
            spent: f64::from(*charged) * epsilon,
            cap,
            epsilon,
        });
    }
    *charged += 1;
    Ok(())
}

/// The report in words, for a person to see before it is sent: what the randomized
/// answer says (which may or may not be their true value).
///
/// # Errors
/// [`WebError::Protocol`] if the bytes are not a report of this protocol.
pub fn describe_report(protocol: &Protocol, bytes: &[u8]) -> Result<String, WebError> {
    let report = Report::decode(bytes)?;
    protocol.check(&report)?;
    let label = |index: u32| match protocol.domain() {
        Domain::Values(values) => values
            .get(usize::try_from(index).unwrap_or(usize::MAX))
            .map_or_else(|| format!("value #{index}"), |value| format!("\"{value}\"")),
        _ => format!("value #{index}"),
    };
    Ok(match &report.payload {
        Payload::Grr { value } => format!("the answer {}", label(*value)),
        Payload::Oue { ones } => {
            let shown: Vec<String> = ones.iter().take(8).map(|one| label(*one)).collect();
            let more = if ones.len() > 8 {
                format!(" and {} more", ones.len() - 8)
            } else {
                String::new()
            };
            if ones.is_empty() {
                "no answer marked".to_string()
            } else {
                format!("the answers {}{more} marked", shown.join(", "))
            }
        }
        Payload::Olh { seed, value } => {
            format!("group {value} of a random grouping of the answers (grouping {seed:016x})")
        }
        Payload::Hadamard { column } => format!("column {column} of a fixed ±1 code"),
        Payload::Hcms {
            hash,
            column,
            positive,
        } => format!(
            "a {} bit in column {column} of sketch row {hash}",
            if *positive { "+1" } else { "-1" }
        ),
        Payload::Duchi { positive } => format!(
            "the {} end of the range",
            if *positive { "upper" } else { "lower" }
        ),
        Payload::Piecewise { cell } => match protocol.descriptor().derived.cells {
            Some(cells) => format!("cell {cell} of {cells} on a widened scale of the range"),
            None => format!("cell {cell}"),
        },
        other => format!("a {} report", other.kind()),
    })
}
