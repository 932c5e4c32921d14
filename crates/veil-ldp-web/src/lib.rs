//! Veil's local-DP client for web pages: [`veil_ldp`] compiled to WebAssembly.
//!
//! A page loads the protocol descriptor the server uses (in JSON, as the collector serves it
//! at `/v1/protocol`; TOML too with the `toml` feature), and randomizes a
//! person's value on their device into a report whose bytes are exactly Veil's compact
//! encoding ([`veil_ldp::Report::encode`]), which `veil ldp collect` stores and
//! `veil ldp aggregate` reads. Around the randomizer, [`Client`] keeps what a device must
//! remember between visits, as a JSON [`state`](Client::state) the page persists
//! (`localStorage` by default, through the JavaScript wrapper in `js/`):
//!
//! - **memoisation** for descriptors with `longitudinal.mode = "memoize"`: the first report
//!   of a value is its permanent answer, resent unchanged, so reporting a value every day
//!   costs ε once (RAPPOR-style);
//! - a **lifetime ε cap** per device and protocol: every fresh randomization is charged ε,
//!   and once the next one would pass the cap the client refuses to randomize.
//!
//! Randomness comes only from the browser's `crypto.getRandomValues` ([`BrowserRng`],
//! through getrandom's `wasm_js` backend); there is no way to seed it. The JavaScript API
//! is the `LdpClient` class ([`bindings`]); `scripts/build-web.sh` builds the npm package.
//!
//! ```
//! use veil_ldp_web::Client;
//! # let shipped = include_str!("../../../configs/ldp-country.toml");
//! # let descriptor = &serde_json::to_string(&toml::from_str::<veil_ldp::ProtocolDescriptor>(shipped)?)?;
//! let mut client = Client::new(descriptor, None, 10.0)?;
//! let report = client.randomize_value("FR", &mut veil_ldp_web::BrowserRng::new()?)?;
//! assert_eq!(veil_ldp::Report::decode(&report)?.protocol, client.protocol().id().short());
//! let state = client.state(); // persist it; give it back to `Client::new` next time
//! assert!(state.contains("\"charged\":1"));
//! Ok::<(), Box<dyn std::error::Error>>(())
//! ```
#![deny(missing_docs)]
#![deny(clippy::print_stdout, clippy::print_stderr)]

mod client;
mod rng;

pub mod bindings;

pub use client::{Client, DeviceState, WebError, describe_report, parse_descriptor};
pub use rng::BrowserRng;
