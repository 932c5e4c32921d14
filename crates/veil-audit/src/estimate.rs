//! The estimator: a sound lower bound on ε from two samples of a mechanism's outputs.
//!
//! # Method
//!
//! A mechanism `M` is run `n` times on each of two neighbouring inputs, giving samples
//! `A` (of `M(D)`) and `B` (of `M(D')`). Outputs are real numbers; an output that does
//! not exist (a group that was not released) is `-∞`, below every number. If `M` is
//! (ε, δ)-DP then for **every** event `S`, `P[M(D) ∈ S] <= e^ε · P[M(D') ∈ S] + δ` and the
//! same with `D` and `D'` swapped. An event with `p = P[M(D) ∈ S]` well above
//! `e^ε · P[M(D') ∈ S] + δ` is therefore evidence against the claim.
//!
//! 1. **Choose** the event on the first half of each sample. Candidates are every
//!    threshold event `{x >= t}` and `{x <= t}` for `t` among the outputs seen (with
//!    `-∞` these include "released" and "not released"), in both orders (`A` over `B`
//!    and `B` over `A`); past 1000 distinct outputs, 1000 of them evenly spaced by rank.
//!    Each is scored with Wilson score bounds, and the best is kept.
//! 2. **Bound** on the second half only, which played no part in the choice: with
//!    `k_A` hits of the event among `m` outputs of the likely side and `k_B` among `m`
//!    of the other, `p_low` is the exact Clopper–Pearson lower bound on the likely
//!    side's probability and `p_high` the upper bound on the other's, each at level
//!    `α/2` where `α = 1 - confidence`.
//! 3. **Report** `ε_lb = max(0, ln((p_low − δ) / p_high))`.
//!
//! Because the event is chosen before the second half is looked at, the two bounds hold
//! together with probability at least `1 − α` whatever event was chosen; on that event,
//! a mechanism that is (ε, δ)-DP has `(p_low − δ)/p_high <= (p − δ)/q <= e^ε`. So a
//! **correct mechanism gets `ε_lb > ε` with probability at most `α`**: the verdict
//! `fail` (`ε_lb > claimed ε`) is a false alarm at most `1 − confidence` of the time.
//! Callers that test several pairs or cells at once divide `α` between them
//! ([`Confidence::split`]), so a whole audit keeps that guarantee.
//!
//! Splitting costs half the samples; it buys an argument with no union bound over
//! data-chosen thresholds. The bound is only as tight as the best threshold event: for
//! pure-DP mechanisms (Laplace, randomized response) it approaches ε as `n` grows; for
//! Gaussian noise no single event shows the whole (ε, δ) curve at a small δ, and the
//! bound stays well below ε even for a correct, tightly calibrated mechanism.

use rand_core::Rng;
use veil_core::{Delta, Epsilon};

use crate::AuditError;
use crate::binomial::{clopper_pearson_lower, clopper_pearson_upper, wilson};

/// The confidence of an audit: a correct mechanism fails it with probability at most
/// `1 - confidence`. Invariant: strictly between 0 and 1.
#[derive(Debug, Clone, Copy, PartialEq, PartialOrd)]
pub struct Confidence(f64);

impl Confidence {
    /// The confidence the issue of `veil audit` asks for by default: 99%.
    pub const DEFAULT: Self = Self(0.99);

    /// Checks and wraps a confidence level.
    ///
    /// # Errors
    /// [`AuditError::Option`] unless `0 < value < 1`.
    pub fn new(value: f64) -> Result<Self, AuditError> {
        if value > 0.0 && value < 1.0 {
            Ok(Self(value))
        } else {
            Err(AuditError::option(
                "--confidence",
                format!("{value} is not strictly between 0 and 1, e.g. 0.99"),
            ))
        }
    }

    /// The level.
    #[must_use]
    pub fn get(self) -> f64 {
        self.0
    }

    /// The chance of a false failure, `1 - confidence`.
    #[must_use]
    pub fn alpha(self) -> f64 {
        1.0 - self.0
    }

    /// The confidence of each of `parts` tests whose verdicts are combined (Bonferroni):
    /// if every part keeps its false-failure chance under `alpha / parts`, the combined
    /// verdict keeps it under `alpha`.
    #[must_use]
    pub fn split(self, parts: usize) -> Self {
        #[allow(clippy::cast_precision_loss)]
        let parts = parts.max(1) as f64;
        Self(1.0 - self.alpha() / parts)
    }
}

/// What a mechanism claims for the audited pair of inputs: (ε, δ)-DP.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Claim {
    /// The claimed ε.
    pub epsilon: Epsilon,
    /// The claimed δ (zero for pure DP).
    pub delta: Delta,
}

impl Claim {
    /// Pure ε-DP.
    #[must_use]
    pub fn pure(epsilon: Epsilon) -> Self {
        Self {
            epsilon,
            delta: Delta::new(0.0).expect("zero is a valid delta"),
        }
    }
}

/// A threshold event on one output.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Event {
    /// The output is at least this (`-∞`: anything, including "not released").
    AtLeast(f64),
    /// The output is at most this (`-∞`: "not released").
    AtMost(f64),
}

impl Event {
    /// Whether `output` is in the event.
    #[must_use]
    pub fn contains(self, output: f64) -> bool {
        match self {
            Self::AtLeast(threshold) => output >= threshold,
            Self::AtMost(threshold) => output <= threshold,
        }
    }
}

impl std::fmt::Display for Event {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::AtLeast(threshold) if *threshold == f64::NEG_INFINITY => {
                f.write_str("any output")
            }
            Self::AtMost(threshold) if *threshold == f64::NEG_INFINITY => {
                f.write_str("not released")
            }
            Self::AtLeast(threshold) => write!(f, "output >= {threshold}"),
            Self::AtMost(threshold) => write!(f, "output <= {threshold}"),
        }
    }
}

/// Which sample the chosen event is more likely under.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Order {
    /// More likely under the first input.
    FirstOverSecond,
    /// More likely under the second input.
    SecondOverFirst,
}

/// The lower bound and the evidence behind it.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct LowerBound {
    /// `max(0, ln((p_low − δ) / p_high))`: the true ε is at least this, unless the
    /// confidence bounds failed (probability at most `1 − confidence`).
    pub epsilon: f64,
    /// The event, chosen on the first half of the samples.
    pub event: Event,
    /// Which input the event is more likely under.
    pub order: Order,
    /// Hits of the event among the likely side's evaluation outputs.
    pub likely_hits: u64,
    /// Hits of the event among the other side's evaluation outputs.
    pub unlikely_hits: u64,
    /// Outputs per side in the evaluation half.
    pub evaluated: u64,
    /// The Clopper–Pearson lower bound on the likely side's probability.
    pub likely_low: f64,
    /// The Clopper–Pearson upper bound on the other side's probability.
    pub unlikely_high: f64,
}

/// The outcome of testing a claim.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// No evidence against the claim: the lower bound does not exceed the claimed ε.
    Pass,
    /// The lower bound exceeds the claimed ε: the mechanism is not as private as claimed
    /// (or, with probability at most `1 − confidence`, a false alarm).
    Fail,
}

impl Verdict {
    /// `pass` or `fail`.
    #[must_use]
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Pass => "pass",
            Self::Fail => "fail",
        }
    }

    /// `Fail` if either is.
    #[must_use]
    pub fn and(self, other: Self) -> Self {
        if self == Self::Fail || other == Self::Fail {
            Self::Fail
        } else {
            Self::Pass
        }
    }
}

/// One claim tested on one pair of samples.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Audit {
    /// The claim.
    pub claim: Claim,
    /// The confidence this one test was run at.
    pub confidence: Confidence,
    /// The lower bound.
    pub bound: LowerBound,
    /// `Fail` iff the lower bound exceeds the claimed ε.
    pub verdict: Verdict,
}

/// The lower bound on ε from samples `first` (outputs on one input) and `second` (on its
/// neighbour), each in the order drawn. δ is subtracted from the likely side.
///
/// # Errors
/// [`AuditError::Option`] if a sample has fewer than 2 outputs; [`AuditError::NotANumber`]
/// if one holds a NaN.
pub fn epsilon_lower_bound(
    first: &[f64],
    second: &[f64],
    delta: Delta,
    confidence: Confidence,
) -> Result<LowerBound, AuditError> {
    if first.len() < 2 || second.len() < 2 {
        return Err(AuditError::option(
            "--trials",
            "an audit needs at least 2 outputs per input (half choose the event, half bound it)",
        ));
    }
    if first.iter().any(|value| value.is_nan()) {
        return Err(AuditError::NotANumber { sample: "first" });
    }
    if second.iter().any(|value| value.is_nan()) {
        return Err(AuditError::NotANumber { sample: "second" });
    }
    let (choose_first, bound_first) = first.split_at(first.len() / 2);
    let (choose_second, bound_second) = second.split_at(second.len() / 2);
    let alpha = confidence.alpha() / 2.0;
    let (event, order) = choose_event(choose_first, choose_second, delta.get(), alpha);
    let (likely, unlikely) = match order {
        Order::FirstOverSecond => (bound_first, bound_second),
        Order::SecondOverFirst => (bound_second, bound_first),
    };
    let hits = |sample: &[f64]| sample.iter().filter(|&&x| event.contains(x)).count() as u64;
    let (likely_hits, unlikely_hits) = (hits(likely), hits(unlikely));
    let likely_low = clopper_pearson_lower(likely_hits, likely.len() as u64, alpha);
    let unlikely_high = clopper_pearson_upper(unlikely_hits, unlikely.len() as u64, alpha);
    let numerator = likely_low - delta.get();
    let epsilon = if numerator > 0.0 && unlikely_high > 0.0 {
        (numerator / unlikely_high).ln().max(0.0)
    } else {
        0.0
    };
    Ok(LowerBound {
        epsilon,
        event,
        order,
        likely_hits,
        unlikely_hits,
        evaluated: likely.len().min(unlikely.len()) as u64,
        likely_low,
        unlikely_high,
    })
}

/// Tests `claim` on two samples: [`epsilon_lower_bound`] and the verdict.
///
/// # Errors
/// As [`epsilon_lower_bound`].
pub fn audit_samples(
    first: &[f64],
    second: &[f64],
    claim: Claim,
    confidence: Confidence,
) -> Result<Audit, AuditError> {
    let bound = epsilon_lower_bound(first, second, claim.delta, confidence)?;
    Ok(Audit {
        claim,
        confidence,
        bound,
        verdict: verdict(claim, &bound),
    })
}

/// Runs `first` and `second` (a mechanism on two neighbouring inputs) `trials` times each
/// and tests `claim` on the outputs.
///
/// # Errors
/// As [`epsilon_lower_bound`].
pub fn audit_sampler<R: Rng + ?Sized>(
    trials: usize,
    claim: Claim,
    confidence: Confidence,
    rng: &mut R,
    mut first: impl FnMut(&mut R) -> f64,
    mut second: impl FnMut(&mut R) -> f64,
) -> Result<Audit, AuditError> {
    let first: Vec<f64> = (0..trials).map(|_| first(rng)).collect();
    let second: Vec<f64> = (0..trials).map(|_| second(rng)).collect();
    audit_samples(&first, &second, claim, confidence)
}

/// `Fail` iff the bound exceeds the claimed ε.
#[must_use]
pub fn verdict(claim: Claim, bound: &LowerBound) -> Verdict {
    if bound.epsilon > claim.epsilon.get() {
        Verdict::Fail
    } else {
        Verdict::Pass
    }
}

/// The most threshold values [`choose_event`] considers.
const MAX_THRESHOLDS: usize = 1000;

/// The event (and order) with the best Wilson-score lower bound on the selection halves.
fn choose_event(first: &[f64], second: &[f64], delta: f64, alpha: f64) -> (Event, Order) {
    let mut first = first.to_vec();
    let mut second = second.to_vec();
    first.sort_by(f64::total_cmp);
    second.sort_by(f64::total_cmp);
    let z = veil_core::special::normal_sf_inverse(alpha);
    let (n_first, n_second) = (first.len() as u64, second.len() as u64);
    let score = |likely: u64, n_likely: u64, unlikely: u64, n_unlikely: u64| -> f64 {
        let (low, _) = wilson(likely, n_likely, z);
        let (_, high) = wilson(unlikely, n_unlikely, z);
        if low - delta > 0.0 && high > 0.0 {
            ((low - delta) / high).ln()
        } else {
            f64::NEG_INFINITY
        }
    };
    let mut best = (
        f64::NEG_INFINITY,
        Event::AtLeast(f64::INFINITY),
        Order::FirstOverSecond,
    );
    let mut consider = |value: f64, event: Event, order: Order| {
        if value > best.0 {
            best = (value, event, order);
        }
    };
    let mut thresholds: Vec<f64> = first.iter().chain(&second).copied().collect();
    thresholds.sort_by(f64::total_cmp);
    thresholds.dedup_by(|a, b| a.total_cmp(b).is_eq());
    // Among hundreds of thousands of distinct outputs (real-valued noise), the best-looking
    // threshold is mostly luck in the selection half, and its bound on the other half is
    // poor. Keeping evenly spaced candidates (by rank; the smallest, `-∞` for "not
    // released", always stays) leaves little to overfit and loses little resolution.
    if thresholds.len() > MAX_THRESHOLDS {
        let stride = thresholds.len().div_ceil(MAX_THRESHOLDS);
        thresholds = thresholds.into_iter().step_by(stride).collect();
    }
    for threshold in thresholds {
        // Outputs below and at most `threshold` in each sorted sample.
        let below_first = first.partition_point(|x| *x < threshold) as u64;
        let below_second = second.partition_point(|x| *x < threshold) as u64;
        let upto_first = first.partition_point(|x| *x <= threshold) as u64;
        let upto_second = second.partition_point(|x| *x <= threshold) as u64;
        let at_least = (n_first - below_first, n_second - below_second);
        let at_most = (upto_first, upto_second);
        for (event, (hits_first, hits_second)) in [
            (Event::AtLeast(threshold), at_least),
            (Event::AtMost(threshold), at_most),
        ] {
            consider(
                score(hits_first, n_first, hits_second, n_second),
                event,
                Order::FirstOverSecond,
            );
            consider(
                score(hits_second, n_second, hits_first, n_first),
                event,
                Order::SecondOverFirst,
            );
        }
    }
    (best.1, best.2)
}

#[cfg(test)]
mod tests;
