//! Calibration in reverse: the smallest noise that keeps `times` runs of a mechanism
//! within a target (ε, δ).

use veil_core::{Delta, Epsilon, L2Sensitivity, calibrate};

use crate::{AccountantError, Component, MechanismProfile, Method, compose};

/// A family of mechanisms whose noise is to be calibrated.
#[derive(Debug, Clone, Copy, PartialEq)]
#[non_exhaustive]
pub enum NoiseFamily {
    /// The Gaussian; the answer is σ over the L2 sensitivity.
    Gaussian,
    /// The Laplace; the answer is the scale over the L1 sensitivity.
    Laplace,
    /// The discrete Gaussian with an integer sensitivity; the answer is σ in steps.
    DiscreteGaussian {
        /// Sensitivity in steps.
        sensitivity: u64,
    },
    /// The discrete Laplace with an integer sensitivity; the answer is the scale in steps.
    DiscreteLaplace {
        /// Sensitivity in steps.
        sensitivity: u64,
    },
    /// The Poisson-subsampled Gaussian; the answer is σ over the L2 sensitivity.
    SubsampledGaussian {
        /// The probability that each record is included.
        sampling_rate: f64,
    },
}

impl NoiseFamily {
    /// The mechanism of this family with noise `noise`.
    #[must_use]
    pub fn with_noise(self, noise: f64) -> MechanismProfile {
        match self {
            Self::Gaussian => MechanismProfile::Gaussian {
                sigma_over_sensitivity: noise,
            },
            Self::Laplace => MechanismProfile::Laplace {
                scale_over_sensitivity: noise,
            },
            Self::DiscreteGaussian { sensitivity } => MechanismProfile::DiscreteGaussian {
                sigma: noise,
                sensitivity,
            },
            Self::DiscreteLaplace { sensitivity } => MechanismProfile::DiscreteLaplace {
                scale: noise,
                sensitivity,
            },
            Self::SubsampledGaussian { sampling_rate } => MechanismProfile::SubsampledGaussian {
                sigma_over_sensitivity: noise,
                sampling_rate,
            },
        }
    }
}

/// The smallest noise (σ or scale, as [`NoiseFamily`] says; up to a relative 1e-6, on
/// the safe side) for which `times` runs compose to at most `epsilon` at `delta` by the
/// [`Method::Best`] accountant.
///
/// For the Gaussian the answer is exact: `times` Gaussians with σ are one Gaussian with
/// `σ/√times`, so it is `√times` times the analytic Gaussian's σ (Balle and Wang 2018).
///
/// # Errors
/// [`AccountantError::Param`] if `times` is zero, δ is zero for a Gaussian, or no noise
/// below 1e12 meets the target; [`AccountantError::InvalidProfile`] for a bad rate.
///
/// ```
/// use veil_accountant::{NoiseFamily, smallest_noise};
/// use veil_core::{Delta, Epsilon};
/// let sigma = smallest_noise(NoiseFamily::Gaussian, Epsilon::new(1.0)?, Delta::new(1e-6)?, 100)?;
/// assert!((sigma / 44.0 - 1.0).abs() < 0.05, "{sigma}");
/// Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub fn smallest_noise(
    family: NoiseFamily,
    epsilon: Epsilon,
    delta: Delta,
    times: u64,
) -> Result<f64, AccountantError> {
    if times == 0 {
        return Err(AccountantError::Param(veil_core::ParamError::OutOfRange {
            param: "times",
            value: 0.0,
            expected: ">= 1",
        }));
    }
    family.with_noise(1.0).validate()?;
    if family == NoiseFamily::Gaussian {
        let single = calibrate::analytic_gaussian_sigma(L2Sensitivity::integer(1), epsilon, delta)?;
        #[allow(clippy::cast_precision_loss)]
        let root = (times as f64).sqrt().next_up();
        return Ok((single * root).next_up());
    }
    let passes = |noise: f64| {
        compose(
            &[Component::new(family.with_noise(noise), times)],
            delta,
            Method::Best,
        )
        .is_ok_and(|composition| composition.epsilon.get() <= epsilon.get())
    };
    let mut high = 1.0;
    while !passes(high) {
        high *= 2.0;
        if high > 1e12 {
            return Err(AccountantError::Param(veil_core::ParamError::OutOfRange {
                param: "epsilon",
                value: epsilon.get(),
                expected: "reachable with noise below 1e12",
            }));
        }
    }
    let mut low = high / 2.0;
    while passes(low) && low > 1e-9 {
        high = low;
        low /= 2.0;
    }
    while high - low > high * 1e-6 {
        let middle = 0.5 * (low + high);
        if passes(middle) {
            high = middle;
        } else {
            low = middle;
        }
    }
    Ok(high)
}
