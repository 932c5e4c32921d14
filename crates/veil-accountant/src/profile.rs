//! Mechanisms described exactly enough to compose in every privacy measure.

use veil_core::PrivacyLoss;

/// A mechanism as the accountant sees it: the noise it adds relative to the sensitivity
/// of the query it answers, or, for a mechanism known only by its guarantee, that
/// guarantee.
///
/// Ratios are `noise / sensitivity`: a Laplace of scale 4 on a query of sensitivity 2
/// is `Laplace { scale_over_sensitivity: 2.0 }`, which is 0.5-DP.
#[derive(Debug, Clone, Copy, PartialEq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
#[cfg_attr(feature = "serde", serde(tag = "kind", rename_all = "kebab-case"))]
#[non_exhaustive]
pub enum MechanismProfile {
    /// The continuous Laplace mechanism.
    Laplace {
        /// Noise scale `b` divided by the L1 sensitivity.
        scale_over_sensitivity: f64,
    },
    /// The discrete Laplace on integers, with an integer sensitivity in steps.
    DiscreteLaplace {
        /// Noise scale `t` in steps.
        scale: f64,
        /// Sensitivity in steps.
        sensitivity: u64,
    },
    /// The continuous Gaussian mechanism.
    Gaussian {
        /// σ divided by the L2 sensitivity.
        sigma_over_sensitivity: f64,
    },
    /// The discrete Gaussian on integers, with an integer sensitivity in steps.
    DiscreteGaussian {
        /// σ in steps.
        sigma: f64,
        /// Sensitivity in steps.
        sensitivity: u64,
    },
    /// Randomized response (or any mechanism whose privacy loss is bounded by ε with the
    /// two-point profile of randomized response).
    RandomizedResponse {
        /// The ε of one response.
        epsilon: f64,
    },
    /// The Gaussian mechanism on a Poisson subsample.
    SubsampledGaussian {
        /// σ divided by the L2 sensitivity.
        sigma_over_sensitivity: f64,
        /// The probability that each record is included.
        sampling_rate: f64,
    },
    /// A mechanism known only by its guarantee.
    Guarantee(PrivacyLoss),
}
