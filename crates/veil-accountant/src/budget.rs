//! Budget arithmetic shared by every ledger: what charges cost in a budget's measure,
//! whether a new charge fits, and budget periods.

use core::fmt;
use core::str::FromStr;

use veil_core::{Delta, PrivacyLoss};

use crate::compose::total_rho;
use crate::ledger::Exhausted;
use crate::{
    AccountantError, BudgetError, BudgetKey, Charge, Component, MechanismProfile, Method,
    PrivacyBudget, compose,
};

/// How often a budget renews: spending counts only the charges made in the current
/// window. Windows are anchored at the budget's creation time. Invariant: at least one
/// second.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
#[cfg_attr(
    feature = "serde",
    derive(serde::Serialize, serde::Deserialize),
    serde(try_from = "String", into = "String")
)]
pub struct BudgetPeriod(u64);

impl TryFrom<String> for BudgetPeriod {
    type Error = veil_core::ParamError;

    fn try_from(text: String) -> Result<Self, veil_core::ParamError> {
        text.parse()
    }
}

impl From<BudgetPeriod> for String {
    fn from(period: BudgetPeriod) -> String {
        period.to_string()
    }
}

impl BudgetPeriod {
    /// A period of `seconds`.
    ///
    /// # Errors
    /// [`veil_core::ParamError::OutOfRange`] if `seconds` is zero or above 2^40.
    pub fn from_seconds(seconds: u64) -> Result<Self, veil_core::ParamError> {
        if (1..=1 << 40).contains(&seconds) {
            Ok(Self(seconds))
        } else {
            #[allow(clippy::cast_precision_loss)]
            let value = seconds as f64;
            Err(veil_core::ParamError::OutOfRange {
                param: "period",
                value,
                expected: "between 1 second and 2^40 seconds",
            })
        }
    }

    /// The period in seconds.
    #[must_use]
    pub fn seconds(self) -> u64 {
        self.0
    }

    /// The window `[start, end)` (Unix seconds) that holds `now`, for a budget created at
    /// `created_at`. Before the creation time, the first window.
    #[must_use]
    pub fn window(self, created_at: i64, now: i64) -> (i64, i64) {
        let length = i64::try_from(self.0).unwrap_or(i64::MAX);
        let elapsed = now.saturating_sub(created_at).max(0);
        let start = created_at.saturating_add(elapsed / length * length);
        (start, start.saturating_add(length))
    }
}

impl fmt::Display for BudgetPeriod {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (unit, seconds) in [("w", 604_800), ("d", 86_400), ("h", 3_600), ("m", 60)] {
            if self.0.is_multiple_of(seconds) {
                return write!(f, "{}{unit}", self.0 / seconds);
            }
        }
        write!(f, "{}s", self.0)
    }
}

impl FromStr for BudgetPeriod {
    type Err = veil_core::ParamError;

    /// Reads `30d`, `12h`, `90m`, `2w` or `3600s`.
    fn from_str(text: &str) -> Result<Self, veil_core::ParamError> {
        let invalid = || veil_core::ParamError::Invalid {
            param: "period",
            reason: format!(
                "{text:?} is not a duration: write a whole number and a unit, e.g. 30d, 12h, 90m, 2w or 3600s"
            ),
        };
        let text_trimmed = text.trim();
        let split = text_trimmed
            .find(|c: char| !c.is_ascii_digit())
            .ok_or_else(invalid)?;
        let (number, unit) = text_trimmed.split_at(split);
        let number: u64 = number.parse().map_err(|_| invalid())?;
        let unit_seconds = match unit {
            "s" => 1,
            "m" => 60,
            "h" => 3_600,
            "d" => 86_400,
            "w" => 604_800,
            _ => return Err(invalid()),
        };
        Self::from_seconds(number.checked_mul(unit_seconds).ok_or_else(invalid)?)
    }
}

/// The state of a charge in a ledger.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
#[cfg_attr(feature = "serde", serde(rename_all = "snake_case"))]
pub enum ChargeState {
    /// Budget set aside; nothing released yet. Counts as spent.
    Reserved,
    /// Final: the release may be published. Counts as spent.
    Committed,
    /// Given back by its run: nothing was released. Does not count.
    Aborted,
    /// Reserved by a run that ended without committing or aborting (killed), and given
    /// back later by the operator. It was never committed, so nothing was published under
    /// it, and it can never be committed. Does not count.
    Cancelled,
}

impl ChargeState {
    /// The state's name as ledgers store it.
    #[must_use]
    pub fn name(self) -> &'static str {
        match self {
            Self::Reserved => "reserved",
            Self::Committed => "committed",
            Self::Aborted => "aborted",
            Self::Cancelled => "cancelled",
        }
    }

    /// Whether a charge in this state counts against the budget.
    #[must_use]
    pub fn counts(self) -> bool {
        !matches!(self, Self::Aborted | Self::Cancelled)
    }
}

impl fmt::Display for ChargeState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for ChargeState {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, String> {
        match text {
            "reserved" => Ok(Self::Reserved),
            "committed" => Ok(Self::Committed),
            "aborted" => Ok(Self::Aborted),
            "cancelled" => Ok(Self::Cancelled),
            other => Err(format!("unknown charge state {other:?}")),
        }
    }
}

impl PrivacyBudget {
    /// Checks a total: ε finite and `>= 0`, δ in `[0, 1)`, ρ finite and `>= 0`.
    ///
    /// # Errors
    /// [`veil_core::ParamError::OutOfRange`] naming the parameter.
    pub fn validate(&self) -> Result<(), veil_core::ParamError> {
        let check = |param: &'static str, value: f64, ok: bool, expected: &'static str| {
            if ok {
                Ok(())
            } else {
                Err(veil_core::ParamError::OutOfRange {
                    param,
                    value,
                    expected,
                })
            }
        };
        match *self {
            Self::Approx { epsilon, delta } => {
                check(
                    "epsilon",
                    epsilon,
                    epsilon.is_finite() && epsilon >= 0.0,
                    "finite and >= 0",
                )?;
                check("delta", delta, (0.0..1.0).contains(&delta), "in [0, 1)")
            }
            Self::Zcdp { rho } => {
                check("rho", rho, rho.is_finite() && rho >= 0.0, "finite and >= 0")
            }
        }
    }

    /// Nothing spent, in the measure of `self`.
    #[must_use]
    pub fn zero_like(&self) -> Self {
        match *self {
            Self::Approx { delta, .. } => Self::Approx {
                epsilon: 0.0,
                delta,
            },
            Self::Zcdp { .. } => Self::Zcdp { rho: 0.0 },
        }
    }

    /// The headline amount: ε for an approximate-DP budget, ρ for a zCDP one.
    #[must_use]
    pub fn amount(&self) -> f64 {
        match *self {
            Self::Approx { epsilon, .. } => epsilon,
            Self::Zcdp { rho } => rho,
        }
    }

    /// `self - spent`, never below zero, in the measure of `self`.
    #[must_use]
    pub fn remaining_after(&self, spent: &Self) -> Self {
        match *self {
            Self::Approx { epsilon, delta } => Self::Approx {
                epsilon: (epsilon - spent.amount()).max(0.0),
                delta,
            },
            Self::Zcdp { rho } => Self::Zcdp {
                rho: (rho - spent.amount()).max(0.0),
            },
        }
    }
}

/// What `components` cost in the measure of `total`: for an approximate-DP budget, the
/// [`Method::Best`] composition's ε at the budget's δ (at δ = 0 only pure-DP mechanisms
/// fit); for a zCDP budget, the sum of ρ (a pure ε-DP mechanism costs ε²/2).
///
/// # Errors
/// [`AccountantError::Unsupported`] if a mechanism cannot be charged to this measure;
/// [`AccountantError::NoFiniteEpsilon`] if no finite ε holds at the budget's δ.
pub fn cost(
    total: &PrivacyBudget,
    components: &[Component],
) -> Result<PrivacyBudget, AccountantError> {
    for component in components {
        component.profile.validate()?;
    }
    let active: Vec<Component> = components
        .iter()
        .copied()
        .filter(|c| c.times > 0 && !c.profile.is_free())
        .collect();
    match *total {
        PrivacyBudget::Approx { delta, .. } => {
            if active.is_empty() {
                return Ok(total.zero_like());
            }
            if delta <= 0.0
                && let Some(bad) = active.iter().find(|c| c.profile.pure_epsilon().is_none())
            {
                return Err(AccountantError::Unsupported {
                    method: Method::Best,
                    mechanism: bad.profile.to_string(),
                    reason: "a pure-DP budget (delta = 0) accepts only pure-DP mechanisms; \
                             a job that spends δ (private partitions, Gaussian noise) needs a \
                             budget with δ > 0, or δ = 0 with public partitions"
                        .to_string(),
                });
            }
            let composition = compose(&active, Delta::new(delta)?, Method::Best)?;
            Ok(PrivacyBudget::Approx {
                epsilon: composition.epsilon.get(),
                delta,
            })
        }
        PrivacyBudget::Zcdp { .. } => {
            if let Some(bad) = active.iter().find(|c| {
                matches!(
                    c.profile,
                    MechanismProfile::Guarantee(PrivacyLoss::Approx(..))
                )
            }) {
                return Err(AccountantError::Unsupported {
                    method: Method::Zcdp,
                    mechanism: bad.profile.to_string(),
                    reason: "an approximate-DP charge cannot go to a zCDP budget".to_string(),
                });
            }
            Ok(PrivacyBudget::Zcdp {
                rho: total_rho(&active)?,
            })
        }
    }
}

/// The components of every charge in `charges`.
#[must_use]
pub fn components_of<'a>(charges: impl IntoIterator<Item = &'a Charge>) -> Vec<Component> {
    charges
        .into_iter()
        .flat_map(|charge| charge.items.iter().map(Component::from))
        .collect()
}

fn accountant_error(key: &BudgetKey, total: &PrivacyBudget, error: AccountantError) -> BudgetError {
    match error {
        AccountantError::Unsupported {
            mechanism, reason, ..
        } => BudgetError::Incompatible {
            key: key.clone(),
            total: *total,
            what: mechanism,
            reason,
        },
        other => BudgetError::Accountant {
            key: key.clone(),
            source: other,
        },
    }
}

/// Whether `charge` fits in `total` on top of `spent_components` (what the budget's
/// current window has reserved or committed). Returns what would be spent with it.
///
/// # Errors
/// [`BudgetError::Exhausted`] with the amounts if it does not fit (a composition with no
/// finite ε at the budget's δ does not fit either); [`BudgetError::Incompatible`] if a
/// mechanism cannot be charged to the budget's measure; [`BudgetError::Accountant`] for
/// invalid mechanism parameters.
pub fn check_charge(
    key: &BudgetKey,
    total: &PrivacyBudget,
    spent_components: &[Component],
    charge: &Charge,
) -> Result<PrivacyBudget, BudgetError> {
    let new: Vec<Component> = charge.items.iter().map(Component::from).collect();
    // Incompatibilities are reported for the new charge alone, before any amounts.
    let requested = match cost(total, &new) {
        Ok(requested) => Some(requested),
        Err(AccountantError::NoFiniteEpsilon { .. }) => None,
        Err(error) => return Err(accountant_error(key, total, error)),
    };
    let mut all = spent_components.to_vec();
    all.extend(new);
    let after = match cost(total, &all) {
        Ok(after) => Some(after),
        Err(AccountantError::NoFiniteEpsilon { .. }) => None,
        Err(error) => return Err(accountant_error(key, total, error)),
    };
    match after {
        Some(after) if after.amount() <= total.amount() => Ok(after),
        _ => {
            // Only a refusal needs what was spent before (one more composition).
            let spent = cost(total, spent_components)
                .map_err(|error| accountant_error(key, total, error))?;
            let infinite = match *total {
                PrivacyBudget::Approx { delta, .. } => PrivacyBudget::Approx {
                    epsilon: f64::INFINITY,
                    delta,
                },
                PrivacyBudget::Zcdp { .. } => PrivacyBudget::Zcdp { rho: f64::INFINITY },
            };
            Err(BudgetError::Exhausted(Box::new(Exhausted {
                key: key.clone(),
                requested: requested.unwrap_or(infinite),
                spent,
                remaining: total.remaining_after(&spent),
                total: *total,
            })))
        }
    }
}

#[cfg(test)]
mod tests;
