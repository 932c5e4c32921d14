use alloc::vec::Vec;

use dashu_int::UBig;
use rand_core::{CryptoRng, Rng};

use super::{MechanismKind, Released, exact_ratio};
use crate::sample::{bernoulli_exp_of, uniform_below};
use crate::{Epsilon, ParamError, PrivacyLoss, Rho};

#[cfg(test)]
mod tests;

/// The denominator of a quantile level: levels are multiples of `2^-20`.
pub const LEVEL_DENOMINATOR: u64 = 1 << 20;

/// How a [`QuantileMechanism`] chooses among the candidates.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum QuantileSelection {
    /// Permute-and-flip: `ε`-DP, and at least as accurate as the exponential mechanism.
    PermuteAndFlip,
    /// The exponential mechanism: `ε`-DP and `ε²/8`-zCDP (bounded range), for plans
    /// accounted in zCDP.
    Exponential,
}

/// A quantile level `num / 2^20` in `[0, 1]`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct QuantileLevel(u64);

impl QuantileLevel {
    /// The nearest multiple of `2^-20` to `level`.
    ///
    /// # Errors
    /// [`ParamError::OutOfRange`] if `level` is not in `[0, 1]`.
    pub fn new(level: f64) -> Result<Self, ParamError> {
        if !(0.0..=1.0).contains(&level) {
            return Err(ParamError::OutOfRange {
                param: "quantile level",
                value: level,
                expected: "in [0, 1]",
            });
        }
        #[allow(
            clippy::cast_possible_truncation,
            clippy::cast_sign_loss,
            clippy::cast_precision_loss
        )]
        let numer = libm::round(level * LEVEL_DENOMINATOR as f64) as u64;
        Ok(Self(numer.min(LEVEL_DENOMINATOR)))
    }

    /// The numerator over [`LEVEL_DENOMINATOR`].
    #[must_use]
    pub fn numer(self) -> u64 {
        self.0
    }

    /// The level as an `f64`.
    #[must_use]
    pub fn get(self) -> f64 {
        #[allow(clippy::cast_precision_loss)]
        let level = self.0 as f64 / LEVEL_DENOMINATOR as f64;
        level
    }
}

#[doc = include_str!("PRIVACY.md")]
///
/// # Examples
/// ```
/// use veil_core::Epsilon;
/// use veil_core::mechanism::{QuantileLevel, QuantileMechanism, QuantileSelection};
/// let mut rng = veil_testkit::seeded_rng(4);
/// let median = QuantileMechanism::new(
///     Epsilon::new(1.0)?,
///     5,
///     QuantileSelection::PermuteAndFlip,
/// )?;
/// // 1,000 rows spread evenly over 100 bins: the median is edge 50.
/// let bins = vec![10_u64; 100];
/// let edge = *median.release(&bins, QuantileLevel::new(0.5)?, 0, &mut rng).value();
/// assert!((40..=60).contains(&edge));
/// Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Debug, Clone, PartialEq)]
pub struct QuantileMechanism {
    epsilon: Epsilon,
    /// ε exactly, `(numer, denom)`.
    epsilon_parts: (UBig, UBig),
    max_rows: u64,
    selection: QuantileSelection,
}

impl QuantileMechanism {
    /// The mechanism for one draw at `epsilon`, for units with at most `max_rows` rows in
    /// the group.
    ///
    /// # Errors
    /// [`ParamError::OutOfRange`] if `max_rows` is zero.
    pub fn new(
        epsilon: Epsilon,
        max_rows: u64,
        selection: QuantileSelection,
    ) -> Result<Self, ParamError> {
        if max_rows == 0 {
            return Err(ParamError::OutOfRange {
                param: "max rows per group",
                value: 0.0,
                expected: ">= 1",
            });
        }
        Ok(Self {
            epsilon,
            epsilon_parts: exact_ratio(epsilon.get())?,
            max_rows,
            selection,
        })
    }

    /// The ε of one draw.
    #[must_use]
    pub fn epsilon(&self) -> Epsilon {
        self.epsilon
    }

    /// The bound on one unit's rows in the group.
    #[must_use]
    pub fn max_rows(&self) -> u64 {
        self.max_rows
    }

    /// How candidates are chosen.
    #[must_use]
    pub fn selection(&self) -> QuantileSelection {
        self.selection
    }

    /// The loss of one draw: `Pure(ε)` for permute-and-flip, `Zcdp(ε²/8)` for the
    /// exponential mechanism (which is also `ε`-DP: [`QuantileMechanism::pure_loss`]).
    #[must_use]
    pub fn loss(&self) -> PrivacyLoss {
        match self.selection {
            QuantileSelection::PermuteAndFlip => PrivacyLoss::Pure(self.epsilon),
            QuantileSelection::Exponential => {
                let epsilon = self.epsilon.get();
                // ε²/8, rounded up.
                let rho = crate::rational::next_up(epsilon * epsilon / 8.0);
                Rho::new(rho).map_or(PrivacyLoss::Pure(self.epsilon), PrivacyLoss::Zcdp)
            }
        }
    }

    /// The pure-DP loss of one draw, whichever the selection.
    #[must_use]
    pub fn pure_loss(&self) -> PrivacyLoss {
        PrivacyLoss::Pure(self.epsilon)
    }

    /// The utility's sensitivity `Δ = max_rows · max(num, den − num)` at `level`.
    #[must_use]
    pub fn sensitivity(&self, level: QuantileLevel) -> u128 {
        let numer = level.numer();
        u128::from(self.max_rows) * u128::from(numer.max(LEVEL_DENOMINATOR - numer).max(1))
    }

    /// With probability at least `1 − beta`, the chosen candidate's rank is within this
    /// many rows of its target (plus the rows of the bin that holds the target): the
    /// exponential mechanism's bound `(2Δ/ε)(ln(B + 1) + ln(1/β))` in rows.
    #[must_use]
    pub fn rank_error_bound(&self, level: QuantileLevel, candidates: usize, beta: f64) -> f64 {
        #[allow(clippy::cast_precision_loss)]
        let (delta, candidates, den) = (
            self.sensitivity(level) as f64,
            candidates as f64,
            LEVEL_DENOMINATOR as f64,
        );
        crate::rational::next_up(
            2.0 * delta / self.epsilon.get() * (libm::log(candidates) - libm::log(beta)) / den,
        )
    }

    /// Chooses a bin edge (`0..=bins.len()`) for target rank `level·n + shift` rows, where
    /// `bins` holds the group's rows per bin and `n` their total.
    pub fn release<R: Rng + CryptoRng + ?Sized>(
        &self,
        bins: &[u64],
        level: QuantileLevel,
        shift: i64,
        rng: &mut R,
    ) -> Released<usize> {
        self.release_preferring(bins, level, shift, |_| 0, rng)
    }

    /// [`QuantileMechanism::release`] with a data-independent preference: candidate `j`'s
    /// utility is lowered by `penalty(j)` rows (for example to prefer zero among candidates
    /// the data cannot tell apart). A penalty that depends only on the candidate moves every
    /// dataset's utilities alike, so the sensitivity and the privacy are unchanged.
    pub fn release_preferring<R: Rng + CryptoRng + ?Sized>(
        &self,
        bins: &[u64],
        level: QuantileLevel,
        shift: i64,
        penalty: impl Fn(usize) -> u64,
        rng: &mut R,
    ) -> Released<usize> {
        let den = i128::from(LEVEL_DENOMINATOR);
        let utilities: Vec<i128> = utilities(bins, level, shift)
            .into_iter()
            .enumerate()
            .map(|(candidate, utility)| utility - den * i128::from(penalty(candidate)))
            .collect();
        let best = utilities.iter().copied().max().unwrap_or(0);
        let (epsilon_numer, epsilon_denom) = &self.epsilon_parts;
        let denom = epsilon_denom * UBig::from(2 * self.sensitivity(level));
        // Candidate j survives its trial with probability exp(−ε(u* − u_j)/(2Δ)).
        let survives = |rng: &mut R, candidate: usize| {
            let gap = best.abs_diff(utilities[candidate]);
            gap == 0 || bernoulli_exp_of(rng, &(epsilon_numer * UBig::from(gap)), &denom)
        };
        let count = utilities.len();
        let chosen = match self.selection {
            QuantileSelection::PermuteAndFlip => {
                // A Fisher–Yates shuffle drawn lazily: position i takes a uniform pick of
                // the candidates not yet visited. The best candidate always survives, so
                // the loop ends by the last position at the latest.
                let mut order: Vec<usize> = (0..count).collect();
                let mut chosen = order.last().copied().unwrap_or(0);
                for position in 0..count {
                    #[allow(clippy::cast_possible_truncation)]
                    let pick = position + uniform_below(rng, (count - position) as u64) as usize;
                    order.swap(position, pick);
                    if survives(rng, order[position]) {
                        chosen = order[position];
                        break;
                    }
                }
                chosen
            }
            QuantileSelection::Exponential => loop {
                #[allow(clippy::cast_possible_truncation)]
                let candidate = uniform_below(rng, count as u64) as usize;
                if survives(rng, candidate) {
                    break candidate;
                }
            },
        };
        Released::new(
            chosen,
            MechanismKind::Exponential,
            self.loss(),
            f64::NAN,
            f64::NAN,
        )
    }
}

/// Each bin edge's utility `−|den·below_j − num·n − den·shift|` (as a signed 128-bit
/// integer: the largest is the best).
fn utilities(bins: &[u64], level: QuantileLevel, shift: i64) -> Vec<i128> {
    let total: i128 = bins.iter().map(|&count| i128::from(count)).sum();
    let den = i128::from(LEVEL_DENOMINATOR);
    let target = i128::from(level.numer()) * total + den * i128::from(shift);
    let mut below: i128 = 0;
    let mut utilities = Vec::with_capacity(bins.len() + 1);
    utilities.push(-(den * below - target).abs());
    for &count in bins {
        below += i128::from(count);
        utilities.push(-(den * below - target).abs());
    }
    utilities
}
