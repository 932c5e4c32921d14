//! Veil's privacy core: units, exact noise samplers, mechanisms and calibration.
//!
//! Everything that decides which noise reaches a release lives here, and none of it
//! touches a file, a terminal or the clock:
//!
//! - **Units** ([`Epsilon`], [`Delta`], [`Rho`], [`L1Sensitivity`], [`L2Sensitivity`],
//!   [`Bounds`], [`PrivacyLoss`]) are newtypes with validating constructors, so a value
//!   that compiles is in range.
//! - **Exact samplers** ([`sample`]) draw Bernoulli, geometric, discrete Laplace and
//!   discrete Gaussian variates with integer arithmetic only, following Canonne, Kamath
//!   and Steinke (2020). Parameters are exact [`Rational`]s.
//! - **Mechanisms** ([`mechanism`]) add that noise to integer answers and to real answers
//!   on a fixed grid ([`Granularity`]), and return a [`Released`] value with its noise
//!   scale and confidence interval. Only a mechanism can create a `Released`.
//! - **Calibration** ([`calibrate`]) finds the smallest noise for a target loss, always
//!   rounding toward more noise.
//! - **Numbers for people** ([`Compact`], [`RoundTrip`]): short text for any magnitude,
//!   scientific outside `[1e-4, 1e6)`, so no message prints ε = 1e308 as 309 digits.
//!
//! No function here creates randomness: callers pass an RNG that implements
//! [`rand_core::CryptoRng`], seeded from the operating system in production.
//!
//! The crate is `no_std + alloc` so that the local-DP client can embed it; the default
//! `std` feature only adds `std::error::Error` implementations.
//!
//! # Example
//!
//! ```
//! use veil_core::{Epsilon, L1Sensitivity, mechanism::LaplaceMechanism};
//! # let mut rng = veil_testkit::seeded_rng(7);
//! // A count: one person changes it by at most 1.
//! let mechanism = LaplaceMechanism::new(L1Sensitivity::integer(1), Epsilon::new(0.5)?)?;
//! let released = mechanism.release(1_000, &mut rng);
//! assert_eq!(mechanism.scale().to_string(), "2");
//! assert!(released.ci_half_width() > 0.0);
//! Ok::<(), Box<dyn std::error::Error>>(())
//! ```
#![cfg_attr(not(test), no_std)]
#![deny(missing_docs)]
#![deny(clippy::print_stdout, clippy::print_stderr)]

extern crate alloc;
#[cfg(all(feature = "std", not(test)))]
extern crate std;

pub mod calibrate;
mod display;
mod error;
pub mod mechanism;
mod params;
mod rational;
pub mod sample;
pub mod special;

pub use display::{Compact, RoundTrip};
pub use error::ParamError;
pub use mechanism::{Granularity, Released};
pub use params::{Bounds, Delta, Epsilon, L1Sensitivity, L2Sensitivity, PrivacyLoss, Rho};
pub use rational::Rational;
