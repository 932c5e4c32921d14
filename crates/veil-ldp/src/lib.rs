//! Local differential privacy for Veil: the client's randomizers and the server's
//! estimators.
//!
//! A value is randomized on the device, so what leaves it is already private (ε-LDP): no
//! server, operator or breach sees the true value. The pieces:
//!
//! - **[`Protocol`]**, built from a [`ProtocolConfig`] or loaded from a shared
//!   [`ProtocolDescriptor`]: the oracle, ε, the domain and every derived integer, with a
//!   SHA-256 [`ProtocolId`] that every [`Report`] carries.
//! - **Frequency oracles** ([`oracle`]): [`Grr`](oracle::Grr), [`Oue`](oracle::Oue),
//!   [`Olh`](oracle::Olh), [`Hadamard`](oracle::Hadamard) response, and the Hadamard
//!   count-mean sketch [`Hcms`](oracle::Hcms) for open domains. [`choose_oracle`] picks the
//!   one with least variance (`auto`).
//! - **Numeric mechanisms** ([`numeric`]) for means over a range: [`Duchi`](numeric::Duchi),
//!   [`Piecewise`](numeric::Piecewise) and their [`Hybrid`](numeric::Hybrid).
//! - **[`Report`]** with a compact binary encoding, and [`PermanentResponses`] for
//!   memoised (longitudinal) reporting.
//! - **Server side** (feature `server`, on by default): [`server::Aggregator`] decodes
//!   reports into unbiased estimates with their variance, standard error and 95% interval,
//!   and [`server::Consistency`] post-processes them (Norm-Sub, projection, base-cut).
//!
//! Every randomization decision is exact: probabilities are integers over 2^64 derived from
//! ε with exact arithmetic, rounded so that the true ε never exceeds the requested one
//! (each oracle's `PRIVACY.md`). This crate creates no randomness: callers pass an RNG that
//! implements [`rand_core::CryptoRng`], seeded from the operating system in production.
//!
//! Without default features the crate is `no_std + alloc` (the client part only), for
//! mobile, embedded and WebAssembly clients.
//!
//! # Example
//!
//! ```
//! use veil_core::Epsilon;
//! use veil_ldp::{Domain, Longitudinal, OracleName, Protocol, ProtocolConfig};
//! use veil_ldp::server::Aggregator;
//! # let mut rng = veil_testkit::seeded_rng(7);
//! let protocol = Protocol::new(ProtocolConfig {
//!     oracle: OracleName::Auto,
//!     epsilon: Epsilon::new(1.0)?,
//!     domain: Domain::Size(1024),
//!     longitudinal: Longitudinal::Independent,
//! })?;
//! assert_eq!(protocol.oracle().name().as_str(), "olh");
//!
//! // On each client: value in, report out.
//! let report = protocol.randomize_index(42, &mut rng)?;
//! let bytes = report.encode();
//!
//! // On the server: reports in, estimates out.
//! let mut aggregator = Aggregator::new(&protocol);
//! aggregator.add_encoded(&bytes)?;
//! let estimates = aggregator.finish()?.into_frequencies().expect("a frequency oracle");
//! assert_eq!(estimates.items().len(), 1024);
//! Ok::<(), Box<dyn std::error::Error>>(())
//! ```
#![cfg_attr(not(any(feature = "std", test)), no_std)]
#![deny(missing_docs)]
#![deny(clippy::print_stdout, clippy::print_stderr)]

extern crate alloc;

mod error;
pub mod exact;
pub mod hash;
mod memo;
pub mod numeric;
pub mod oracle;
mod protocol;
pub mod report;
#[cfg(feature = "server")]
pub mod server;

pub use error::LdpError;
pub use exact::Prob64;
pub use memo::PermanentResponses;
pub use protocol::{
    DEFAULT_SKETCH_HASHES, DEFAULT_SKETCH_WIDTH, DerivedDescriptor, Domain, DomainDescriptor,
    Longitudinal, LongitudinalDescriptor, NumericReport, Oracle, OracleName, PROTOCOL_VERSION,
    Protocol, ProtocolConfig, ProtocolDescriptor, ProtocolId, choose_oracle,
};
pub use report::{Payload, Report};
