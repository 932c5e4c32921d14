//! Composition: the (ε, δ) of running many mechanisms on the same data, by each method.
//!
//! One file on purpose: every method answers the same question for the same charges, and
//! `Method::Best` compares them, so their soundness arguments are read side by side.

use core::fmt;
use core::str::FromStr;

use rustfft::FftPlanner;
use veil_core::{Delta, Epsilon, L2Sensitivity, PrivacyLoss, calibrate};

use crate::numeric::{add_up, mul_up, pad_up};
use crate::pld::{Direction, Pld};
use crate::rdp::{orders, rdp_curve, rdp_epsilon, rdp_to_epsilon};
use crate::{AccountantError, Component, MechanismProfile};

/// How to compose. Every method returns an upper bound on the true ε at the given δ.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Method {
    /// The smallest of the sound bounds below that apply.
    Best,
    /// Privacy loss distributions, discretised pessimistically and composed by FFT.
    Pld,
    /// Rényi DP on a fine grid of orders, with the improved conversion to (ε, δ).
    Rdp,
    /// ρ-zCDP: ρ adds up; converted with Canonne, Kamath and Steinke's bound.
    Zcdp,
    /// Basic composition: ε and δ add up (δ split evenly between the mechanisms that
    /// need one).
    Basic,
    /// Kairouz, Oh and Viswanath's optimal composition of identical pure-DP mechanisms
    /// (exact for randomized response, an upper bound for every ε-DP mechanism).
    Kov,
}

impl Method {
    /// Every method but `Best`, in the order `Best` tries them.
    pub const ALL: [Method; 5] = [
        Method::Pld,
        Method::Rdp,
        Method::Zcdp,
        Method::Kov,
        Method::Basic,
    ];

    /// The method's name as the command line spells it.
    #[must_use]
    pub fn name(self) -> &'static str {
        match self {
            Self::Best => "best",
            Self::Pld => "pld",
            Self::Rdp => "rdp",
            Self::Zcdp => "zcdp",
            Self::Basic => "basic",
            Self::Kov => "kov",
        }
    }
}

impl fmt::Display for Method {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for Method {
    type Err = AccountantError;

    fn from_str(text: &str) -> Result<Self, AccountantError> {
        [Method::Best]
            .into_iter()
            .chain(Method::ALL)
            .find(|method| method.name() == text)
            .ok_or_else(|| AccountantError::Spec {
                spec: text.to_string(),
                reason: "unknown method; expected best, pld, rdp, zcdp, kov or basic".to_string(),
            })
    }
}

/// Settings of the PLD accountant.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct PldOptions {
    /// The grid step of privacy losses; `None` picks one from the composition's spread
    /// (1/1000 of its standard deviation, finer for many mechanisms), between 1e-6 and
    /// 1e-2. Default `None`.
    pub discretization: Option<f64>,
    /// The mass of each tail folded pessimistically at each step, in `[0, 1e-3]`
    /// (default 1e-15). Folding is always sound; a larger mass only loosens the bound.
    pub tail_mass: f64,
}

impl Default for PldOptions {
    fn default() -> Self {
        Self {
            discretization: None,
            tail_mass: 1e-15,
        }
    }
}

/// The result of a composition.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Composition {
    /// An upper bound on the composition's ε at `delta`.
    pub epsilon: Epsilon,
    /// The δ it holds at.
    pub delta: Delta,
    /// The method that produced the bound (for [`Method::Best`], the tightest one).
    pub method: Method,
}

/// Composes `components` at `delta` with `method`, with default PLD settings.
///
/// # Errors
/// [`AccountantError::InvalidProfile`] for bad parameters, [`AccountantError::Unsupported`]
/// if the method cannot account for a mechanism (never for `Best` unless no method can),
/// [`AccountantError::NoFiniteEpsilon`] if the mechanisms' own δ exceeds `delta`.
///
/// ```
/// use veil_accountant::{Component, MechanismProfile, Method, compose};
/// use veil_core::Delta;
/// let gaussian = MechanismProfile::Gaussian { sigma_over_sensitivity: 20.0 };
/// let best = compose(&[Component::new(gaussian, 100)], Delta::new(1e-6)?, Method::Best)?;
/// let basic = compose(&[Component::new(gaussian, 100)], Delta::new(1e-6)?, Method::Basic)?;
/// assert!(best.epsilon.get() < basic.epsilon.get() / 3.0);
/// Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub fn compose(
    components: &[Component],
    delta: Delta,
    method: Method,
) -> Result<Composition, AccountantError> {
    compose_with(components, delta, method, &PldOptions::default())
}

/// [`compose`] with explicit PLD settings.
///
/// # Errors
/// As [`compose`].
pub fn compose_with(
    components: &[Component],
    delta: Delta,
    method: Method,
    options: &PldOptions,
) -> Result<Composition, AccountantError> {
    for component in components {
        component.profile.validate()?;
    }
    let components = merged(components);
    if components.is_empty() {
        return Ok(Composition {
            epsilon: positive_epsilon(0.0),
            delta,
            method,
        });
    }
    let epsilon = match method {
        Method::Best => return best(&components, delta, options),
        Method::Pld => pld_epsilon(&components, delta.get(), options)?,
        Method::Rdp => rdp_method(&components, delta.get())?,
        Method::Zcdp => zcdp_method(&components, delta)?,
        Method::Basic => basic_method(&components, delta.get())?,
        Method::Kov => kov_method(&components, delta.get())?,
    };
    Ok(Composition {
        epsilon: positive_epsilon(epsilon),
        delta,
        method,
    })
}

fn best(
    components: &[Component],
    delta: Delta,
    options: &PldOptions,
) -> Result<Composition, AccountantError> {
    let mut best: Option<(f64, Method)> = None;
    let mut first_error = None;
    for method in Method::ALL {
        let result = match method {
            Method::Pld => pld_epsilon(components, delta.get(), options),
            Method::Rdp => rdp_method(components, delta.get()),
            Method::Zcdp => zcdp_method(components, delta),
            Method::Kov => kov_method(components, delta.get()),
            _ => basic_method(components, delta.get()),
        };
        match result {
            Ok(epsilon) if best.is_none_or(|(current, _)| epsilon < current) => {
                best = Some((epsilon, method));
            }
            Ok(_) => {}
            Err(error) => {
                if first_error.is_none() || matches!(error, AccountantError::NoFiniteEpsilon { .. })
                {
                    first_error = Some(error);
                }
            }
        }
    }
    match best {
        Some((epsilon, method)) => Ok(Composition {
            epsilon: positive_epsilon(epsilon),
            delta,
            method,
        }),
        None => Err(first_error.unwrap_or(AccountantError::NoFiniteEpsilon {
            delta: delta.get(),
            reason: "no method applies".to_string(),
        })),
    }
}

/// ε as an [`Epsilon`]: a composition of nothing (or of free mechanisms) costs the
/// smallest positive ε.
fn positive_epsilon(epsilon: f64) -> Epsilon {
    Epsilon::new(epsilon.max(f64::MIN_POSITIVE))
        .unwrap_or_else(|_| Epsilon::new(f64::MAX).expect("f64::MAX is a valid epsilon"))
}

/// Identical mechanisms merged (their counts added), free ones and zero counts dropped.
fn merged(components: &[Component]) -> Vec<Component> {
    let mut out: Vec<Component> = Vec::new();
    for component in components {
        if component.times == 0 || component.profile.is_free() {
            continue;
        }
        match out.iter_mut().find(|c| c.profile == component.profile) {
            Some(existing) => existing.times = existing.times.saturating_add(component.times),
            None => out.push(*component),
        }
    }
    out
}

fn unsupported(method: Method, profile: &MechanismProfile, reason: &str) -> AccountantError {
    AccountantError::Unsupported {
        method,
        mechanism: profile.to_string(),
        reason: reason.to_string(),
    }
}

fn no_finite(delta: f64, reason: impl Into<String>) -> AccountantError {
    AccountantError::NoFiniteEpsilon {
        delta,
        reason: reason.into(),
    }
}

/// The variance of one run's privacy loss (or a bound on it), to size the PLD grid.
fn loss_variance(profile: &MechanismProfile) -> f64 {
    match *profile {
        MechanismProfile::SubsampledGaussian {
            sigma_over_sensitivity,
            sampling_rate,
        } => {
            let gaussian = 1.0 / (sigma_over_sensitivity * sigma_over_sensitivity);
            (sampling_rate * sampling_rate * gaussian.exp_m1()).min(gaussian)
        }
        MechanismProfile::Guarantee(PrivacyLoss::Approx(epsilon, _)) => epsilon.get().powi(2),
        _ => {
            if let Some(epsilon) = profile.pure_epsilon() {
                epsilon * epsilon
            } else {
                2.0 * profile.rho().unwrap_or(1.0)
            }
        }
    }
}

/// The grid step for a composition: 1/1000 of the composed loss's standard deviation,
/// and fine enough that the connect-the-dots error of `k` mechanisms (at most `k·h²/4`
/// of variance) stays below 0.2% of the total variance; never so fine that the composed
/// distribution needs more than about 2^20 grid points. Measured: within 0.01% of the
/// ε at a 10× finer grid on the benchmark compositions (BENCHMARKS.md).
fn auto_step(components: &[Component]) -> f64 {
    let mut variance = 0.0;
    let mut count = 0.0;
    for component in components {
        #[allow(clippy::cast_precision_loss)]
        let times = component.times as f64;
        variance += times * loss_variance(&component.profile);
        count += times;
    }
    let spread = variance.sqrt();
    let step = (spread / 1000.0).min(0.09 * spread / count.max(1.0).sqrt());
    let step = if step.is_finite() && step > 0.0 {
        step.clamp(1e-6, 1e-2)
    } else {
        1e-4
    };
    // The composed PLD spans about 20 standard deviations; keep it within 2^20 points
    // (memory and FFT size), coarsening the grid for enormous compositions.
    step.max(20.0 * spread / f64::from(1_u32 << 20))
}

/// The most mechanism runs the PLD accountant composes. Each run's PLD carries padding
/// for floating-point error (about 1e-12 of its mass), which compounds over the runs;
/// past 2^30 runs RDP and zCDP are as tight (the composition is Gaussian by then) and
/// far cheaper.
const PLD_RUN_LIMIT: u64 = 1 << 30;

/// The grid step to use, after checking the options and the size of the composition.
fn checked_step(components: &[Component], options: &PldOptions) -> Result<f64, AccountantError> {
    let runs = components
        .iter()
        .fold(0_u64, |total, c| total.saturating_add(c.times));
    if runs > PLD_RUN_LIMIT {
        return Err(AccountantError::Unsupported {
            method: Method::Pld,
            mechanism: format!("{runs} mechanism runs"),
            reason: format!(
                "the PLD accountant composes at most {PLD_RUN_LIMIT} runs; use rdp or zcdp"
            ),
        });
    }
    if !(0.0..=1e-3).contains(&options.tail_mass) {
        return Err(AccountantError::Param(veil_core::ParamError::OutOfRange {
            param: "tail mass",
            value: options.tail_mass,
            expected: "in [0, 1e-3]",
        }));
    }
    let step = options
        .discretization
        .unwrap_or_else(|| auto_step(components));
    if step.is_finite() && step > 0.0 {
        Ok(step)
    } else {
        Err(AccountantError::Param(veil_core::ParamError::OutOfRange {
            param: "discretization",
            value: step,
            expected: "finite and > 0",
        }))
    }
}

fn pld_epsilon(
    components: &[Component],
    delta: f64,
    options: &PldOptions,
) -> Result<f64, AccountantError> {
    let step = checked_step(components, options)?;
    let asymmetric = components.iter().any(|c| !c.profile.is_symmetric());
    let directions: &[Direction] = if asymmetric {
        &[Direction::Remove, Direction::Add]
    } else {
        &[Direction::Remove]
    };
    let mut planner = FftPlanner::new();
    let mut worst: f64 = 0.0;
    for &direction in directions {
        let composed = compose_plds(components, direction, step, options.tail_mass, &mut planner)?;
        let epsilon = composed.epsilon(delta).ok_or_else(|| {
            no_finite(
                delta,
                format!(
                    "the mechanisms' own δ and the PLD's folded tails add up to {:e}",
                    composed.infinity()
                ),
            )
        })?;
        worst = worst.max(epsilon);
    }
    Ok(worst)
}

/// An upper bound on the δ at which `components` together are (ε, δ)-DP, from their
/// privacy loss distributions (the worse of the two directions of neighbouring datasets):
/// a point of the composition's privacy curve.
///
/// # Errors
/// [`AccountantError::InvalidProfile`]; [`AccountantError::Unsupported`] for a mechanism
/// known only by its zCDP ρ.
///
/// ```
/// use veil_accountant::{Component, MechanismProfile, PldOptions, compose_delta};
/// use veil_core::Epsilon;
/// let gaussian = Component::new(MechanismProfile::Gaussian { sigma_over_sensitivity: 4.0 }, 16);
/// let delta = compose_delta(&[gaussian], Epsilon::new(1.0)?, &PldOptions::default())?;
/// assert!(delta > 0.12 && delta < 0.13); // 16 Gaussians with σ = 4 are one with σ = 1
/// Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub fn compose_delta(
    components: &[Component],
    epsilon: Epsilon,
    options: &PldOptions,
) -> Result<f64, AccountantError> {
    for component in components {
        component.profile.validate()?;
    }
    let components = merged(components);
    if components.is_empty() {
        return Ok(0.0);
    }
    let step = checked_step(&components, options)?;
    let asymmetric = components.iter().any(|c| !c.profile.is_symmetric());
    let directions: &[Direction] = if asymmetric {
        &[Direction::Remove, Direction::Add]
    } else {
        &[Direction::Remove]
    };
    let mut planner = FftPlanner::new();
    let mut worst: f64 = 0.0;
    for &direction in directions {
        let composed = compose_plds(
            &components,
            direction,
            step,
            options.tail_mass,
            &mut planner,
        )?;
        worst = worst.max(composed.delta(epsilon.get()));
    }
    Ok(worst)
}

/// The composed PLD of `components` in `direction` on a grid of `step`: each mechanism
/// self-composed by repeated squaring, then all merged smallest first.
pub(crate) fn compose_plds(
    components: &[Component],
    direction: Direction,
    step: f64,
    tail_mass: f64,
    planner: &mut FftPlanner<f64>,
) -> Result<Pld, AccountantError> {
    let mut plds: Vec<Pld> = Vec::with_capacity(components.len());
    // Each run's upper tail goes to +∞, and k runs add k of them: past a thousand runs
    // the tail folded per mechanism shrinks so that the total stays near `1000·tail_mass`.
    #[allow(clippy::cast_precision_loss)]
    let runs = components.iter().map(|c| c.times as f64).sum::<f64>();
    let single_tail = tail_mass * (1e3 / runs).min(1.0);
    for component in components {
        let single = Pld::for_mechanism(&component.profile, direction, step, single_tail)?;
        plds.push(single.self_compose(component.times, tail_mass, planner));
    }
    // Merge the two shortest until one is left (keeps FFT sizes small).
    while plds.len() > 1 {
        plds.sort_by_key(|pld| core::cmp::Reverse(pld.len()));
        let first = plds.pop().expect("at least two PLDs");
        let second = plds.pop().expect("at least two PLDs");
        plds.push(first.compose(&second, planner).truncate(tail_mass));
    }
    Ok(plds.pop().unwrap_or_else(|| Pld::identity(step)))
}

fn rdp_method(components: &[Component], delta: f64) -> Result<f64, AccountantError> {
    if delta <= 0.0 {
        return Err(unsupported_delta(Method::Rdp));
    }
    let orders = orders();
    let curve = rdp_curve(components, &orders)?;
    Ok(rdp_to_epsilon(&curve, &orders, delta))
}

fn unsupported_delta(method: Method) -> AccountantError {
    AccountantError::Unsupported {
        method,
        mechanism: "any mechanism".to_string(),
        reason: "this method needs δ > 0".to_string(),
    }
}

/// zCDP composition. Mechanisms known only by an approximate-DP guarantee (ε_i, δ_i) join
/// by basic composition: the zCDP part (ρ = Σρ) is converted at the δ they leave,
/// `δ − Σδ_i`, and their ε_i are added. This is the bound of approximate zCDP (Bun and
/// Steinke 2016, Section 8) for a zCDP block composed with (ε, δ)-DP mechanisms, e.g.
/// Gaussian measurements plus the δ of partition selection.
fn zcdp_method(components: &[Component], delta: Delta) -> Result<f64, AccountantError> {
    let (approximate, concentrated): (Vec<Component>, Vec<Component>) = components.iter().copied().partition(|component| {
        matches!(component.profile, MechanismProfile::Guarantee(PrivacyLoss::Approx(_, d)) if d.get() > 0.0)
    });
    let mut approximate_epsilon = 0.0;
    let mut approximate_delta = 0.0;
    for component in &approximate {
        if let MechanismProfile::Guarantee(PrivacyLoss::Approx(epsilon, own_delta)) =
            component.profile
        {
            #[allow(clippy::cast_precision_loss)]
            let times = component.times as f64;
            approximate_epsilon = add_up(approximate_epsilon, mul_up(epsilon.get(), times));
            approximate_delta = add_up(approximate_delta, mul_up(own_delta.get(), times));
        }
    }
    let rho = total_rho(&concentrated)?;
    if rho <= 0.0 {
        if approximate_delta > delta.get() {
            return Err(no_finite(
                delta.get(),
                format!("the mechanisms' own δ add up to {approximate_delta:e}"),
            ));
        }
        return Ok(approximate_epsilon);
    }
    // The δ left for converting the zCDP part, rounded down.
    let left = (delta.get() - approximate_delta) * (1.0 - 1e-12);
    if left <= 0.0 {
        return Err(if delta.get() <= 0.0 {
            unsupported_delta(Method::Zcdp)
        } else {
            no_finite(
                delta.get(),
                "no δ is left for the zCDP part after the approximate-DP mechanisms' own δ",
            )
        });
    }
    let rho = veil_core::Rho::new(rho)?;
    let converted = calibrate::rho_to_epsilon(rho, Delta::new(left)?)?.get();
    Ok(add_up(converted, approximate_epsilon))
}

/// The total ρ of `components`, rounded up.
///
/// # Errors
/// [`AccountantError::Unsupported`] for a mechanism without a zCDP bound.
pub fn total_rho(components: &[Component]) -> Result<f64, AccountantError> {
    let mut rho = 0.0;
    for component in components.iter().filter(|c| c.times > 0) {
        let single = component.profile.rho().ok_or_else(|| {
            unsupported(
                Method::Zcdp,
                &component.profile,
                "it has no zCDP bound (approximate DP, or a subsampled Gaussian)",
            )
        })?;
        #[allow(clippy::cast_precision_loss)]
        let times = component.times as f64;
        rho = add_up(rho, mul_up(single, times));
    }
    Ok(rho)
}

fn basic_method(components: &[Component], delta: f64) -> Result<f64, AccountantError> {
    let mut epsilon = 0.0;
    let mut own_delta = 0.0;
    let mut needs_delta = 0.0;
    for component in components {
        #[allow(clippy::cast_precision_loss)]
        let times = component.times as f64;
        if let Some(pure) = component.profile.pure_epsilon() {
            epsilon = add_up(epsilon, mul_up(pure, times));
        } else if let MechanismProfile::Guarantee(PrivacyLoss::Approx(e, d)) = component.profile {
            epsilon = add_up(epsilon, mul_up(e.get(), times));
            own_delta = add_up(own_delta, mul_up(d.get(), times));
        } else {
            needs_delta += times;
        }
    }
    if own_delta > delta {
        return Err(no_finite(
            delta,
            format!("the mechanisms' own δ add up to {own_delta:e}"),
        ));
    }
    if needs_delta > 0.0 {
        // Each share is rounded down a little so that the shares never add up past δ.
        let share = (delta - own_delta) / needs_delta * (1.0 - 1e-12);
        if share <= 0.0 {
            return Err(no_finite(
                delta,
                "no δ is left for the mechanisms that need one",
            ));
        }
        for component in components {
            if component.profile.pure_epsilon().is_some()
                || matches!(
                    component.profile,
                    MechanismProfile::Guarantee(PrivacyLoss::Approx(..))
                )
            {
                continue;
            }
            #[allow(clippy::cast_precision_loss)]
            let times = component.times as f64;
            epsilon = add_up(
                epsilon,
                pad_up(single_epsilon(&component.profile, share)? * times),
            );
        }
    }
    Ok(epsilon)
}

/// The ε of one run of a mechanism that needs δ, at `delta`, by its tightest single bound.
fn single_epsilon(profile: &MechanismProfile, delta: f64) -> Result<f64, AccountantError> {
    let target = Delta::new(delta)?;
    match *profile {
        MechanismProfile::Gaussian {
            sigma_over_sensitivity,
        } => Ok(smallest_epsilon(|epsilon| {
            calibrate::gaussian_delta(L2Sensitivity::integer(1), sigma_over_sensitivity, epsilon)
                <= delta
        })),
        MechanismProfile::DiscreteGaussian { .. } => {
            // Its own PLD on a grid of 1/200 of its loss's spread (an upper bound, tight
            // to about 1e-5 for one mechanism).
            let step = (loss_variance(profile).sqrt() / 200.0).clamp(1e-7, 1e-2);
            Pld::for_mechanism(profile, Direction::Remove, step, 1e-15)?
                .epsilon(delta)
                .ok_or_else(|| no_finite(delta, "the mechanism's tail exceeds its share of δ"))
        }
        MechanismProfile::Guarantee(PrivacyLoss::Zcdp(rho)) => {
            Ok(calibrate::rho_to_epsilon(rho, target)?.get())
        }
        _ => {
            let orders = orders();
            let curve: Option<Vec<f64>> = orders.iter().map(|&a| rdp_epsilon(profile, a)).collect();
            let curve = curve
                .ok_or_else(|| unsupported(Method::Basic, profile, "no single-mechanism bound"))?;
            Ok(rdp_to_epsilon(&curve, &orders, delta))
        }
    }
}

/// The smallest ε (to 1e-10 relative, on the passing side) for which `passes` holds; `passes`
/// must be monotone.
fn smallest_epsilon(passes: impl Fn(Epsilon) -> bool) -> f64 {
    let check = |value: f64| Epsilon::new(value).is_ok_and(&passes);
    let mut high = 1.0;
    while !check(high) {
        high *= 2.0;
        if high > 1e6 {
            return f64::INFINITY;
        }
    }
    let mut low = 0.0;
    // At most 200 halvings: enough for 1e-10 relative from any start, and it stops when
    // the answer is below any ε worth reporting (then `high` is still a passing ε).
    for _ in 0..200 {
        if high - low <= high * 1e-10 || high < 1e-15 {
            break;
        }
        let middle = 0.5 * (low + high);
        if check(middle) {
            high = middle;
        } else {
            low = middle;
        }
    }
    high
}

/// The largest count for which KOV's exact sum is evaluated.
const KOV_LIMIT: u64 = 1 << 20;

fn kov_method(components: &[Component], delta: f64) -> Result<f64, AccountantError> {
    let mut epsilon_each: Option<f64> = None;
    let mut count = 0_u64;
    for component in components {
        let epsilon = component.profile.pure_epsilon().ok_or_else(|| {
            unsupported(
                Method::Kov,
                &component.profile,
                "optimal composition is for pure DP",
            )
        })?;
        if epsilon_each.is_some_and(|e| e.to_bits() != epsilon.to_bits()) {
            return Err(unsupported(
                Method::Kov,
                &component.profile,
                "the closed form is for identical ε (the PLD accountant composes mixed ones)",
            ));
        }
        epsilon_each = Some(epsilon);
        count = count.saturating_add(component.times);
    }
    let Some(epsilon) = epsilon_each else {
        return Ok(0.0);
    };
    if count > KOV_LIMIT {
        return Err(AccountantError::Unsupported {
            method: Method::Kov,
            mechanism: format!("{count} mechanisms"),
            reason: format!("the exact sum is evaluated for at most {KOV_LIMIT}"),
        });
    }
    Ok(kov_epsilon(epsilon, count, delta))
}

/// The exact δ(ε_total) of `count` randomized responses with `epsilon` each:
/// `Σ_j C(k,j) p^(k-j) (1-p)^j (1 - e^(ε_total - (k-2j)ε))+`, `p = e^ε/(1+e^ε)`
/// (Kairouz, Oh and Viswanath 2015, Theorem 3.3).
#[must_use]
pub fn kov_delta(epsilon: f64, count: u64, epsilon_total: f64) -> f64 {
    let log_p = -(-epsilon).exp().ln_1p();
    let log_q = -epsilon.exp().ln_1p();
    #[allow(clippy::cast_precision_loss)]
    let k = count as f64;
    let mut log_binomial = 0.0_f64;
    let mut delta = 0.0;
    for j in 0..=count {
        #[allow(clippy::cast_precision_loss)]
        let j_f = j as f64;
        if j > 0 {
            log_binomial += ((k - j_f + 1.0) / j_f).ln();
        }
        let loss = (k - 2.0 * j_f) * epsilon;
        if loss <= epsilon_total {
            break;
        }
        let weight = (log_binomial + (k - j_f) * log_p + j_f * log_q).exp();
        delta += weight * (-(epsilon_total - loss).exp_m1());
    }
    delta
}

/// The smallest ε_total with `kov_delta <= delta`, by bisection, rounded up.
fn kov_epsilon(epsilon: f64, count: u64, delta: f64) -> f64 {
    #[allow(clippy::cast_precision_loss)]
    let top = mul_up(epsilon, count as f64);
    let allowed = delta * (1.0 - 1e-9);
    if allowed <= 0.0 {
        // At δ = 0 the optimal composition of pure DP is the sum.
        return top;
    }
    if kov_delta(epsilon, count, 0.0) <= allowed {
        return 0.0;
    }
    let (mut low, mut high) = (0.0, top);
    for _ in 0..200 {
        let middle = 0.5 * (low + high);
        if kov_delta(epsilon, count, middle) <= allowed {
            high = middle;
        } else {
            low = middle;
        }
        if high - low <= 1e-13 * high {
            break;
        }
    }
    pad_up(high).min(top)
}

#[cfg(test)]
mod tests;
