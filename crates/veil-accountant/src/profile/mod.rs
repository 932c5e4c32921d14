//! Mechanisms described exactly enough to compose in every privacy measure.

use core::fmt;
use core::str::FromStr;

use veil_core::{Delta, Epsilon, PrivacyLoss, Rho, RoundTrip};

use crate::AccountantError;
use crate::numeric::{div_down, div_up, mul_down, mul_up};

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

impl From<&veil_core::mechanism::LaplaceMechanism> for MechanismProfile {
    /// The exact profile of a veil-core Laplace mechanism: a discrete Laplace whose scale
    /// is rounded *down* to an `f64` (less noise, so a loss that is never understated).
    fn from(mechanism: &veil_core::mechanism::LaplaceMechanism) -> Self {
        Self::DiscreteLaplace {
            scale: mechanism.scale().to_f64_down(),
            sensitivity: mechanism.sensitivity(),
        }
    }
}

impl From<&veil_core::mechanism::GaussianMechanism> for MechanismProfile {
    /// The exact profile of a veil-core Gaussian mechanism: a discrete Gaussian whose σ
    /// is rounded *down* (from σ² rounded down).
    fn from(mechanism: &veil_core::mechanism::GaussianMechanism) -> Self {
        Self::DiscreteGaussian {
            sigma: mechanism.sigma_squared().to_f64_down().sqrt().next_down(),
            sensitivity: mechanism.sensitivity(),
        }
    }
}

/// A mechanism run `times` times on the same data: one term of a composition.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Component {
    /// The mechanism.
    pub profile: MechanismProfile,
    /// How many times it runs (0 contributes nothing).
    pub times: u64,
}

impl Component {
    /// `profile`, run `times` times.
    #[must_use]
    pub fn new(profile: MechanismProfile, times: u64) -> Self {
        Self { profile, times }
    }
}

impl From<&crate::ChargeItem> for Component {
    fn from(item: &crate::ChargeItem) -> Self {
        Self::new(item.profile, u64::from(item.times))
    }
}

impl fmt::Display for Component {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{},times={}", self.profile, self.times)
    }
}

impl FromStr for Component {
    type Err = AccountantError;

    /// Parses a spec such as `gaussian:sigma=2,sensitivity=1,times=100`. See
    /// [`MechanismProfile::from_str`] for the mechanisms; `times` defaults to 1.
    fn from_str(text: &str) -> Result<Self, AccountantError> {
        parse_spec(text)
    }
}

impl FromStr for MechanismProfile {
    type Err = AccountantError;

    /// Parses a spec `NAME:KEY=VALUE,...`:
    ///
    /// | spec | mechanism |
    /// |---|---|
    /// | `laplace:scale=4,sensitivity=2` or `laplace:epsilon=0.5` | Laplace |
    /// | `discrete-laplace:scale=10,sensitivity=3` | discrete Laplace (integers) |
    /// | `gaussian:sigma=2,sensitivity=1` | Gaussian (`sensitivity` defaults to 1) |
    /// | `discrete-gaussian:sigma=8,sensitivity=1` | discrete Gaussian (integers) |
    /// | `randomized-response:epsilon=1` | randomized response |
    /// | `subsampled-gaussian:sigma=1.1,rate=0.01` | Poisson-subsampled Gaussian |
    /// | `pure:epsilon=1`, `approx:epsilon=1,delta=1e-7`, `zcdp:rho=0.1` | a guarantee |
    ///
    /// Ratios `noise / sensitivity` are rounded down (toward more privacy loss).
    /// A `times=N` key is refused here; parse a [`Component`] for it.
    fn from_str(text: &str) -> Result<Self, AccountantError> {
        let component = parse_spec(text)?;
        if text.contains("times=") {
            return Err(spec_error(
                text,
                "`times` belongs to a component, not a mechanism",
            ));
        }
        Ok(component.profile)
    }
}

fn spec_error(spec: &str, reason: impl Into<String>) -> AccountantError {
    AccountantError::Spec {
        spec: spec.to_string(),
        reason: reason.into(),
    }
}

/// The spec parser behind [`Component::from_str`].
fn parse_spec(spec: &str) -> Result<Component, AccountantError> {
    let (name, rest) = spec.split_once(':').ok_or_else(|| {
        spec_error(
            spec,
            "expected NAME:KEY=VALUE,..., e.g. gaussian:sigma=2,sensitivity=1,times=100",
        )
    })?;
    let mut values: Vec<(&str, f64)> = Vec::new();
    for pair in rest.split(',').filter(|pair| !pair.trim().is_empty()) {
        let (key, value) = pair
            .split_once('=')
            .ok_or_else(|| spec_error(spec, format!("{pair:?} is not KEY=VALUE")))?;
        let key = key.trim();
        let number: f64 = value
            .trim()
            .parse()
            .map_err(|_| spec_error(spec, format!("{key} = {value:?} is not a number")))?;
        if values.iter().any(|(seen, _)| *seen == key) {
            return Err(spec_error(spec, format!("{key} is given twice")));
        }
        values.push((key, number));
    }
    let allowed: &[&str] = match name.trim() {
        "laplace" => &["scale", "sensitivity", "epsilon", "times"],
        "discrete-laplace" | "discrete-gaussian" => &["scale", "sigma", "sensitivity", "times"],
        "gaussian" => &["sigma", "sensitivity", "times"],
        "subsampled-gaussian" => &["sigma", "sensitivity", "rate", "times"],
        "randomized-response" | "pure" => &["epsilon", "times"],
        "approx" => &["epsilon", "delta", "times"],
        "zcdp" => &["rho", "times"],
        other => {
            return Err(spec_error(
                spec,
                format!(
                    "unknown mechanism {other:?}; expected laplace, discrete-laplace, gaussian, \
                     discrete-gaussian, randomized-response, subsampled-gaussian, pure, approx or zcdp"
                ),
            ));
        }
    };
    for (key, _) in &values {
        if !allowed.contains(key) {
            return Err(spec_error(
                spec,
                format!("{name} takes {}, not {key}", allowed.join(", ")),
            ));
        }
    }
    let get = |key: &str| values.iter().find(|(k, _)| *k == key).map(|(_, v)| *v);
    let need =
        |key: &str| get(key).ok_or_else(|| spec_error(spec, format!("{name} needs {key}=...")));
    let times = match get("times") {
        None => 1,
        Some(value) if value >= 0.0 && value.fract() == 0.0 && value < 2f64.powi(53) => {
            #[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss)]
            let times = value as u64;
            times
        }
        Some(value) => {
            return Err(spec_error(
                spec,
                format!("times = {value} is not a whole number >= 0"),
            ));
        }
    };
    let integer = |key: &str| -> Result<u64, AccountantError> {
        let value = need(key)?;
        if value >= 0.0 && value.fract() == 0.0 && value < 2f64.powi(53) {
            #[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss)]
            let value = value as u64;
            Ok(value)
        } else {
            Err(spec_error(
                spec,
                format!("{key} = {value} must be a whole number of grid steps"),
            ))
        }
    };
    let sensitivity = get("sensitivity").unwrap_or(1.0);
    let profile = match name.trim() {
        "laplace" => match (get("epsilon"), get("scale")) {
            (Some(epsilon), None) if get("sensitivity").is_none() => MechanismProfile::Laplace {
                scale_over_sensitivity: div_down(1.0, epsilon),
            },
            (None, Some(scale)) => MechanismProfile::Laplace {
                scale_over_sensitivity: div_down(scale, sensitivity),
            },
            _ => {
                return Err(spec_error(
                    spec,
                    "laplace takes either epsilon=E or scale=S[,sensitivity=D]",
                ));
            }
        },
        "discrete-laplace" => MechanismProfile::DiscreteLaplace {
            scale: need("scale")?,
            sensitivity: integer("sensitivity")?,
        },
        "gaussian" => MechanismProfile::Gaussian {
            sigma_over_sensitivity: div_down(need("sigma")?, sensitivity),
        },
        "discrete-gaussian" => MechanismProfile::DiscreteGaussian {
            sigma: need("sigma")?,
            sensitivity: integer("sensitivity")?,
        },
        "subsampled-gaussian" => MechanismProfile::SubsampledGaussian {
            sigma_over_sensitivity: div_down(need("sigma")?, sensitivity),
            sampling_rate: need("rate")?,
        },
        "randomized-response" => MechanismProfile::RandomizedResponse {
            epsilon: need("epsilon")?,
        },
        "pure" => MechanismProfile::Guarantee(PrivacyLoss::Pure(Epsilon::new(need("epsilon")?)?)),
        "approx" => MechanismProfile::Guarantee(PrivacyLoss::Approx(
            Epsilon::new(need("epsilon")?)?,
            Delta::new(need("delta")?)?,
        )),
        "zcdp" => MechanismProfile::Guarantee(PrivacyLoss::Zcdp(Rho::new(need("rho")?)?)),
        _ => unreachable!("names are checked above"),
    };
    if name.trim() != "discrete-laplace"
        && name.trim() != "discrete-gaussian"
        && !(sensitivity.is_finite() && sensitivity > 0.0)
    {
        return Err(spec_error(
            spec,
            format!("sensitivity = {sensitivity} must be finite and > 0"),
        ));
    }
    profile.validate()?;
    Ok(Component::new(profile, times))
}

impl fmt::Display for MechanismProfile {
    /// The canonical spec, which [`MechanismProfile::from_str`] reads back exactly.
    /// Numbers are written with the fewest digits that read back to the same `f64`,
    /// in scientific notation outside `[1e-4, 1e6)` ([`RoundTrip`]).
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            Self::Laplace {
                scale_over_sensitivity,
            } => write!(f, "laplace:scale={}", RoundTrip(scale_over_sensitivity)),
            Self::DiscreteLaplace { scale, sensitivity } => {
                write!(
                    f,
                    "discrete-laplace:scale={},sensitivity={sensitivity}",
                    RoundTrip(scale)
                )
            }
            Self::Gaussian {
                sigma_over_sensitivity,
            } => write!(f, "gaussian:sigma={}", RoundTrip(sigma_over_sensitivity)),
            Self::DiscreteGaussian { sigma, sensitivity } => {
                write!(
                    f,
                    "discrete-gaussian:sigma={},sensitivity={sensitivity}",
                    RoundTrip(sigma)
                )
            }
            Self::RandomizedResponse { epsilon } => {
                write!(f, "randomized-response:epsilon={}", RoundTrip(epsilon))
            }
            Self::SubsampledGaussian {
                sigma_over_sensitivity,
                sampling_rate,
            } => write!(
                f,
                "subsampled-gaussian:sigma={},rate={}",
                RoundTrip(sigma_over_sensitivity),
                RoundTrip(sampling_rate)
            ),
            Self::Guarantee(PrivacyLoss::Pure(epsilon)) => {
                write!(f, "pure:epsilon={}", RoundTrip(epsilon.get()))
            }
            Self::Guarantee(PrivacyLoss::Approx(epsilon, delta)) => {
                write!(
                    f,
                    "approx:epsilon={},delta={}",
                    RoundTrip(epsilon.get()),
                    RoundTrip(delta.get())
                )
            }
            Self::Guarantee(PrivacyLoss::Zcdp(rho)) => {
                write!(f, "zcdp:rho={}", RoundTrip(rho.get()))
            }
        }
    }
}

fn positive(value: f64) -> bool {
    value.is_finite() && value > 0.0
}

impl MechanismProfile {
    /// Checks the parameters: noise finite and positive, a sampling rate in `(0, 1]`.
    ///
    /// # Errors
    /// [`AccountantError::InvalidProfile`] naming the parameter.
    pub fn validate(&self) -> Result<(), AccountantError> {
        let invalid = |reason: &str| {
            Err(AccountantError::InvalidProfile {
                mechanism: self.to_string(),
                reason: reason.to_string(),
            })
        };
        match *self {
            Self::Laplace {
                scale_over_sensitivity: ratio,
            }
            | Self::Gaussian {
                sigma_over_sensitivity: ratio,
            } if !positive(ratio) => invalid("the noise over sensitivity must be finite and > 0"),
            Self::DiscreteLaplace { scale: noise, .. }
            | Self::DiscreteGaussian { sigma: noise, .. }
                if !positive(noise) =>
            {
                invalid("the noise must be finite and > 0 (in grid steps)")
            }
            Self::RandomizedResponse { epsilon } if !positive(epsilon) => {
                invalid("epsilon must be finite and > 0")
            }
            Self::SubsampledGaussian {
                sigma_over_sensitivity,
                sampling_rate,
            } => {
                if !positive(sigma_over_sensitivity) {
                    invalid("sigma over sensitivity must be finite and > 0")
                } else if !(sampling_rate > 0.0 && sampling_rate <= 1.0) {
                    invalid("the sampling rate must be in (0, 1]")
                } else {
                    Ok(())
                }
            }
            _ => Ok(()),
        }
    }

    /// Whether the mechanism can reveal nothing (a zero sensitivity): it costs nothing.
    #[must_use]
    pub fn is_free(&self) -> bool {
        matches!(
            self,
            Self::DiscreteLaplace { sensitivity: 0, .. }
                | Self::DiscreteGaussian { sensitivity: 0, .. }
        )
    }

    /// The pure-DP ε of the mechanism, rounded up, or `None` if it is not pure DP.
    #[must_use]
    pub fn pure_epsilon(&self) -> Option<f64> {
        match *self {
            Self::Laplace {
                scale_over_sensitivity,
            } => Some(div_up(1.0, scale_over_sensitivity)),
            Self::DiscreteLaplace { scale, sensitivity } => {
                #[allow(clippy::cast_precision_loss)]
                let sensitivity = sensitivity as f64;
                Some(div_up(sensitivity, scale))
            }
            Self::RandomizedResponse { epsilon } => Some(epsilon),
            Self::Guarantee(PrivacyLoss::Pure(epsilon)) => Some(epsilon.get()),
            _ => None,
        }
    }

    /// The ρ of zero-concentrated DP, rounded up, or `None` if the mechanism has none
    /// (a subsampled Gaussian, an approximate-DP guarantee).
    ///
    /// Gaussians (continuous and discrete) are exactly `Δ²/(2σ²)`-zCDP (Bun and Steinke
    /// 2016; Canonne, Kamath and Steinke 2020); a pure ε-DP mechanism is `ε²/2`-zCDP
    /// (Bun and Steinke 2016, Proposition 1.4).
    #[must_use]
    pub fn rho(&self) -> Option<f64> {
        if self.is_free() {
            return Some(0.0);
        }
        if let Some(epsilon) = self.pure_epsilon() {
            return Some(mul_up(epsilon, epsilon) / 2.0);
        }
        match *self {
            Self::Gaussian {
                sigma_over_sensitivity,
            }
            | Self::SubsampledGaussian {
                sigma_over_sensitivity,
                sampling_rate: 1.0,
            } => Some(div_up(
                1.0,
                mul_down(2.0 * sigma_over_sensitivity, sigma_over_sensitivity),
            )),
            Self::DiscreteGaussian { sigma, sensitivity } => {
                #[allow(clippy::cast_precision_loss)]
                let sensitivity = sensitivity as f64;
                Some(div_up(
                    mul_up(sensitivity, sensitivity),
                    mul_down(2.0 * sigma, sigma),
                ))
            }
            Self::Guarantee(PrivacyLoss::Zcdp(rho)) => Some(rho.get()),
            _ => None,
        }
    }

    /// Whether swapping the neighbouring datasets leaves the privacy loss distribution
    /// unchanged (true of every mechanism here except the subsampled Gaussian).
    #[must_use]
    pub fn is_symmetric(&self) -> bool {
        !matches!(self, Self::SubsampledGaussian { sampling_rate, .. } if *sampling_rate < 1.0)
    }
}

#[cfg(test)]
mod tests;
