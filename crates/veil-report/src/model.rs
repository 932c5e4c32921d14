//! One aggregate of one group: its true value at each stage of bounding, the noise on
//! what is released, and one simulated release.
//!
//! Released values are modelled as the engine computes them: counts and sums are noisy
//! measures; a mean is `middle + Σ(x − middle) / count` and a variance
//! `Σ(x − middle)² / count − (Σ(x − middle) / count)²`, each from noisy measures and
//! clamped to what the bounds allow. A quantile is modelled by its rank error: the noisy
//! histogram tree shifts the cumulative count at the quantile by noise whose standard
//! deviation the tree's shape gives, and the released value is the true bounded
//! distribution read at the shifted rank (an approximation of the tree descent).

use veil_core::mechanism::{ThresholdMechanism, ThresholdNoise};

use crate::ReportError;
use crate::dist;
use crate::input::{
    AggregateKind, AggregateSpec, Candidate, GroupTruth, LeafHistogram, Moments, Noise, NoiseShape,
    QueryInput, QueryNoise,
};

/// A quantile's error model: the released value is the true bounded distribution read at
/// the noisy rank `rank + Z`, clamped to `[0, n]`.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct RankModel {
    /// Non-empty leaves: `(leaf, rows before it, rows in it)`, in leaf order.
    cumulative: Vec<(u32, f64, f64)>,
    width: f64,
    lower: f64,
    upper: f64,
    rank: f64,
    n: f64,
    rank_std: f64,
}

impl RankModel {
    fn new(
        histogram: &LeafHistogram,
        leaves: u32,
        (lower, upper): (f64, f64),
        rank: f64,
        rank_std: f64,
    ) -> Self {
        let mut before = 0.0;
        let mut cumulative = Vec::with_capacity(histogram.counts.len());
        for &(leaf, count) in &histogram.counts {
            let count = count.max(0.0);
            cumulative.push((leaf, before, count));
            before += count;
        }
        Self {
            cumulative,
            width: (upper - lower) / f64::from(leaves.max(1)),
            lower,
            upper,
            rank,
            n: before,
            rank_std,
        }
    }

    /// The cumulative count at `value` (linear inside a leaf): the inverse of
    /// [`value_at_rank`]. Binary search over the non-empty leaves.
    fn rank_of(&self, value: f64) -> f64 {
        if value <= self.lower {
            return 0.0;
        }
        let position = (value - self.lower) / self.width;
        #[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss)]
        let leaf = position.floor().min(f64::from(u32::MAX)) as u32;
        // The last non-empty leaf at or before `leaf`.
        let index = self.cumulative.partition_point(|(at, _, _)| *at <= leaf);
        if index == 0 {
            return 0.0;
        }
        let (at, before, count) = self.cumulative[index - 1];
        if at == leaf {
            before + count * (position - f64::from(leaf)).clamp(0.0, 1.0)
        } else {
            before + count
        }
    }
}

/// A mean's error model: the released mean is `middle + (C + Zc) / max(N + Zn, 1)`,
/// clamped to the bounds, with independent noises on the centred sum `C` and the count `N`
/// (what the release computes). The delta method's normal approximation misses the
/// ratio's heavy tail when the count's noise is not small against the count.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct RatioModel {
    middle: f64,
    centered: f64,
    centered_std: f64,
    centered_shape: NoiseShape,
    /// The noisy count at each of the integral's nodes (at least 1), computed once: the
    /// error statistics evaluate [`RatioModel::probability`] thousands of times.
    counts: Vec<f64>,
}

/// Equal-probability nodes over the count's noise in [`RatioModel`]'s integral.
const RATIO_NODES: u32 = 64;

impl RatioModel {
    fn new(
        (middle, centered): (f64, f64),
        centered_noise: &Noise,
        count: f64,
        count_noise: &Noise,
    ) -> Self {
        let counts = (0..RATIO_NODES)
            .map(|node| {
                let p = (f64::from(node) + 0.5) / f64::from(RATIO_NODES);
                (count + dist::quantile(count_noise.shape(), count_noise.std_dev(), p)).max(1.0)
            })
            .collect();
        Self {
            middle,
            centered,
            centered_std: centered_noise.std_dev(),
            centered_shape: centered_noise.shape(),
            counts,
        }
    }

    /// `P(clamp(released) ∈ [from, to])` for `from < to` inside or across `range`.
    fn probability(&self, (from, to): (f64, f64), (low, high): (f64, f64)) -> f64 {
        let lower = if from <= low { f64::NEG_INFINITY } else { from };
        let upper = if to >= high { f64::INFINITY } else { to };
        let mut total = 0.0;
        for &count in &self.counts {
            // middle + (C + Zc)/count ∈ [lower, upper] ⇔ Zc ∈ [(lower − middle)·count − C, …].
            let bound = |value: f64| {
                if value.is_infinite() {
                    value
                } else {
                    (value - self.middle) * count - self.centered
                }
            };
            let cdf = |z: f64| {
                if z == f64::INFINITY {
                    1.0
                } else if z == f64::NEG_INFINITY {
                    0.0
                } else {
                    dist::cdf(self.centered_shape, self.centered_std, z)
                }
            };
            total += (cdf(bound(upper)) - cdf(bound(lower))).clamp(0.0, 1.0);
        }
        total / f64::from(RATIO_NODES)
    }
}

/// The error model of one aggregate in one group at one ε.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Prediction {
    /// The answer without privacy (raw data, no bounding, no clamping).
    pub(crate) truth: f64,
    /// The value the noise is added to.
    pub(crate) bounded: f64,
    /// Bias from clamping values to their bounds.
    pub(crate) clamping: f64,
    /// Bias from keeping at most L∞ rows per unit and group.
    pub(crate) linf: f64,
    /// Bias from keeping at most L0 groups per unit.
    pub(crate) l0: f64,
    /// Standard deviation of the noise on the released value (delta method for ratios).
    pub(crate) noise_std: f64,
    /// Its shape.
    pub(crate) shape: NoiseShape,
    /// Probability that the group is released.
    pub(crate) release: f64,
    /// The range the released value is clamped to (post-processing): `[0, ∞)` for counts,
    /// the bounds for means and quantiles.
    pub(crate) range: (f64, f64),
    /// For quantiles, the rank-noise model (the error is not additive).
    pub(crate) rank: Option<Box<RankModel>>,
    /// For means, the ratio model (the count's noise divides).
    pub(crate) ratio: Option<Box<RatioModel>>,
}

impl Prediction {
    /// The total bias of the released value (before noise).
    pub(crate) fn bias(&self) -> f64 {
        self.bounded - self.truth
    }

    /// `P(|clamp(bounded + Z) − truth| <= x)` for a released group: the noisy value,
    /// clamped to [`Prediction::range`] as the release does, within `x` of the truth.
    pub(crate) fn abs_error_cdf(&self, x: f64) -> f64 {
        if x < 0.0 {
            return 0.0;
        }
        if let Some(model) = &self.rank {
            // The released value is within x of the truth iff the noisy rank falls between
            // the ranks of truth − x and truth + x (open-ended past the bounds).
            let (from, to) = (self.truth - x, self.truth + x);
            if from > model.upper || to < model.lower {
                return 0.0;
            }
            let low = model.rank_of(from);
            let high = model.rank_of(to);
            let low = if from <= model.lower || low <= 0.0 {
                f64::NEG_INFINITY
            } else {
                low
            };
            let high = if to >= model.upper || high >= model.n {
                f64::INFINITY
            } else {
                high
            };
            let cdf = |y: f64| -> f64 {
                if y == f64::INFINITY {
                    1.0
                } else if y == f64::NEG_INFINITY {
                    0.0
                } else {
                    dist::cdf(self.shape, model.rank_std, y - model.rank)
                }
            };
            return (cdf(high) - cdf(low)).clamp(0.0, 1.0);
        }
        let (low, high) = self.range;
        let (from, to) = (self.truth - x, self.truth + x);
        if from > high || to < low {
            return 0.0;
        }
        if let Some(ratio) = &self.ratio {
            return ratio.probability((from, to), (low, high));
        }
        // The clamped value is in [from, to] iff the unclamped one is in this interval.
        let lower = if from <= low { f64::NEG_INFINITY } else { from };
        let upper = if to >= high { f64::INFINITY } else { to };
        let cdf = |y: f64| -> f64 {
            if y == f64::INFINITY {
                1.0
            } else if y == f64::NEG_INFINITY {
                0.0
            } else {
                dist::cdf(self.shape, self.noise_std, y - self.bounded)
            }
        };
        (cdf(upper) - cdf(lower)).clamp(0.0, 1.0)
    }
}

/// The middle of a column's bounds and its half-width.
pub(crate) fn middle(spec: &AggregateSpec) -> (f64, f64, f64, f64) {
    spec.column.as_ref().map_or((0.0, 0.0, 0.0, 0.0), |column| {
        let (lower, upper) = (column.bounds.lower(), column.bounds.upper());
        ((lower + upper) / 2.0, (upper - lower) / 2.0, lower, upper)
    })
}

/// The value of a non-quantile aggregate at one stage.
pub(crate) fn value_at(spec: &AggregateSpec, moments: &Moments) -> f64 {
    let column = spec
        .column
        .as_ref()
        .and_then(|column| moments.columns.get(&column.name))
        .copied()
        .unwrap_or_default();
    match spec.kind {
        AggregateKind::Count => moments.rows,
        AggregateKind::UnitCount => moments.units,
        AggregateKind::Sum => column.sum,
        AggregateKind::Mean => {
            if column.values > 0.0 {
                column.sum / column.values
            } else {
                f64::NAN
            }
        }
        AggregateKind::Variance => {
            if column.values > 0.0 {
                let mean = column.sum / column.values;
                (column.sum_squares / column.values - mean * mean).max(0.0)
            } else {
                f64::NAN
            }
        }
        AggregateKind::Quantile { .. } => f64::NAN,
    }
}

/// The true value of an aggregate in a group: over every row, unclamped and unbounded
/// (the report's truth). NaN where it has none (a mean over no values, a quantile not
/// computed). **Not private.**
#[must_use]
pub fn true_value(spec: &AggregateSpec, group: &GroupTruth) -> f64 {
    match spec.kind {
        AggregateKind::Quantile { level } => spec
            .column
            .as_ref()
            .and_then(|column| group.quantiles.get(&column.name))
            .and_then(|truth| truth.raw.iter().find(|(at, _)| (at - level).abs() < 1e-12))
            .map_or(f64::NAN, |(_, value)| *value),
        _ => value_at(spec, &group.raw),
    }
}

/// The value at cumulative count `rank` of a leaf histogram over `[lower, upper]`
/// (linear inside a leaf).
pub(crate) fn value_at_rank(
    histogram: &LeafHistogram,
    leaves: u32,
    lower: f64,
    upper: f64,
    rank: f64,
) -> f64 {
    Cumulative::new(histogram).value_at(rank, leaves, lower, upper)
}

/// A leaf histogram's non-empty leaves with the rows before each, for reading values at
/// ranks by binary search (the Monte Carlo reads each group's hundreds of times).
#[derive(Debug, Clone, PartialEq, Default)]
pub(crate) struct Cumulative {
    /// `(leaf, rows before it, rows in it)`, in the histogram's (leaf) order.
    leaves: Vec<(u32, f64, f64)>,
    /// All rows.
    pub(crate) total: f64,
}

impl Cumulative {
    pub(crate) fn new(histogram: &LeafHistogram) -> Self {
        let mut before = 0.0;
        let mut leaves = Vec::with_capacity(histogram.counts.len());
        for &(leaf, count) in &histogram.counts {
            if count > 0.0 {
                leaves.push((leaf, before, count));
                before += count;
            }
        }
        Self {
            leaves,
            total: before,
        }
    }

    /// The value at cumulative count `rank` of a histogram of `leaves` leaves over `[lower,
    /// upper]` (linear inside a leaf; the end of the last leaf past the total).
    pub(crate) fn value_at(&self, rank: f64, leaves: u32, lower: f64, upper: f64) -> f64 {
        let width = (upper - lower) / f64::from(leaves.max(1));
        let start = |leaf: u32| lower + f64::from(leaf) * width;
        let index = self
            .leaves
            .partition_point(|&(_, before, count)| before + count < rank);
        match self.leaves.get(index) {
            Some(&(leaf, before, count)) => {
                let fraction = ((rank - before) / count).clamp(0.0, 1.0);
                (start(leaf) + fraction * width).clamp(lower, upper)
            }
            None => self
                .leaves
                .last()
                .map_or(lower, |&(leaf, _, _)| start(leaf) + width)
                .clamp(lower, upper),
        }
    }
}

pub(crate) fn total(histogram: &LeafHistogram) -> f64 {
    histogram
        .counts
        .iter()
        .map(|(_, count)| count.max(0.0))
        .sum()
}

/// The quantile at `level` of a leaf histogram (NaN if it is empty).
fn histogram_quantile(
    histogram: &LeafHistogram,
    leaves: u32,
    lower: f64,
    upper: f64,
    level: f64,
) -> f64 {
    let n = total(histogram);
    if n <= 0.0 {
        return f64::NAN;
    }
    value_at_rank(histogram, leaves, lower, upper, level * n)
}

fn noise_of<'a>(noise: &'a QueryNoise, key: &str) -> Result<&'a Noise, ReportError> {
    noise.measures.get(key).ok_or_else(|| ReportError::Invalid {
        what: format!("noise of measure {key}"),
        reason: "the plan has no noise for it (the planner and the inputs disagree)".into(),
    })
}

/// The standard deviation of the rank noise at `level` for a tree of `branching^depth`
/// leaves whose nodes each get noise of standard deviation `node_std`: a cumulative
/// count sums about `(branching − 1)·depth / 2` nodes on average, and the level is
/// taken of a noisy total (the `branching` top nodes).
pub(crate) fn rank_std(node_std: f64, level: f64, tree: (u32, u32)) -> f64 {
    let (branching, depth) = tree;
    let cumulative = node_std * f64::from((branching.max(2) - 1) * depth.max(1)).sqrt() / 2.0;
    let total = node_std * f64::from(branching.max(1)).sqrt();
    (cumulative * cumulative + (level * total) * (level * total)).sqrt()
}

/// The selection's noise shape and standard deviation.
pub(crate) fn selection_noise(selection: &ThresholdMechanism) -> (NoiseShape, f64) {
    let shape = match selection.noise() {
        ThresholdNoise::Laplace(_) => NoiseShape::Laplace,
        ThresholdNoise::Gaussian(_) => NoiseShape::Gaussian,
        ThresholdNoise::Joint { mechanism, index } => mechanism.answer_shape(*index).map_or(
            NoiseShape::Joint {
                dimension: u8::try_from(mechanism.dimension()).unwrap_or(u8::MAX),
            },
            NoiseShape::JointShaped,
        ),
    };
    (shape, selection.std_dev())
}

/// The probability that a group is released whose selection count (after bounding: see
/// [`crate::input::SelectedOn`]) is `count`.
pub(crate) fn release_probability(noise: &QueryNoise, count: f64) -> f64 {
    noise.selection.as_ref().map_or(1.0, |selection| {
        #[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss)]
        let count = count.max(0.0).round() as u64;
        selection.release_probability(count)
    })
}

/// The probability that `group` is released under `noise`.
pub(crate) fn group_release_probability(noise: &QueryNoise, group: &GroupTruth) -> f64 {
    release_probability(noise, noise.selected_on.in_moments(&group.bounded))
}

/// The error model of `spec` in `group` under `noise`; `None` when the aggregate has no
/// value in the group (e.g. a mean over no values).
///
/// # Errors
/// [`ReportError::Invalid`] if the noise lacks a measure the aggregate needs.
pub(crate) fn predict(
    spec: &AggregateSpec,
    group: &GroupTruth,
    noise: &QueryNoise,
    tree: (u32, u32),
) -> Result<Option<Prediction>, ReportError> {
    let release = group_release_probability(noise, group);
    let (middle, _, lower, upper) = middle(spec);
    let column_name = spec.column.as_ref().map(|column| column.name.as_str());
    let bounded_column = column_name
        .and_then(|name| group.bounded.columns.get(name))
        .copied()
        .unwrap_or_default();
    let stages: [f64; 4];
    let mut model = None;
    let mut ratio = None;
    let (noise_std, shape) = match spec.kind {
        AggregateKind::Count => {
            stages = stage_values(spec, group);
            let noise = noise_of(noise, "rows")?;
            (noise.std_dev(), noise.shape())
        }
        AggregateKind::UnitCount => {
            stages = stage_values(spec, group);
            match &noise.selection {
                Some(selection) => {
                    let (shape, std) = selection_noise(selection);
                    (std, shape)
                }
                None => {
                    let noise = noise_of(noise, "units")?;
                    (noise.std_dev(), noise.shape())
                }
            }
        }
        AggregateKind::Sum => {
            stages = stage_values(spec, group);
            let noise = noise_of(noise, &format!("sum:{}", column_name.unwrap_or("")))?;
            (noise.std_dev(), noise.shape())
        }
        AggregateKind::Mean | AggregateKind::Variance => {
            stages = stage_values(spec, group);
            let name = column_name.unwrap_or("");
            let values_noise = noise_of(noise, &format!("values:{name}"))?;
            let centered_noise = noise_of(noise, &format!("centered_sum:{name}"))?;
            let count = bounded_column.values.max(1.0);
            let centered = bounded_column.sum - middle * bounded_column.values;
            if spec.kind == AggregateKind::Mean {
                ratio = Some(Box::new(RatioModel::new(
                    (middle, centered),
                    centered_noise,
                    bounded_column.values,
                    values_noise,
                )));
            }
            let std = if spec.kind == AggregateKind::Mean {
                ((centered_noise.std_dev() / count).powi(2)
                    + (centered * values_noise.std_dev() / (count * count)).powi(2))
                .sqrt()
            } else {
                let squares_noise = noise_of(noise, &format!("centered_squares:{name}"))?;
                let squares = bounded_column.sum_squares - 2.0 * middle * bounded_column.sum
                    + middle * middle * bounded_column.values;
                let offset = centered / count;
                let d_squares = squares_noise.std_dev() / count;
                let d_sum = 2.0 * offset * centered_noise.std_dev() / count;
                let d_count = (-squares / (count * count) + 2.0 * offset * offset / count)
                    * values_noise.std_dev();
                (d_squares.powi(2) + d_sum.powi(2) + d_count.powi(2)).sqrt()
            };
            (std, centered_noise.shape())
        }
        AggregateKind::Quantile { level } => {
            let name = column_name.unwrap_or("");
            let Some(truth) = group.quantiles.get(name) else {
                return Ok(None);
            };
            let leaves = tree.0.pow(tree.1);
            let raw = truth
                .raw
                .iter()
                .find(|(raw_level, _)| (raw_level - level).abs() < 1e-12)
                .map_or(f64::NAN, |(_, value)| *value);
            stages = [
                raw,
                raw.clamp(lower, upper),
                histogram_quantile(&truth.row_bounded, leaves, lower, upper, level),
                histogram_quantile(&truth.bounded, leaves, lower, upper, level),
            ];
            let node = noise_of(noise, &format!("histogram:{name}"))?;
            let n = total(&truth.bounded);
            let spread = rank_std(node.std_dev(), level, tree);
            let rank = level * n;
            let high = value_at_rank(&truth.bounded, leaves, lower, upper, (rank + spread).min(n));
            let low = value_at_rank(
                &truth.bounded,
                leaves,
                lower,
                upper,
                (rank - spread).max(0.0),
            );
            if n > 0.0 {
                model = Some(Box::new(RankModel::new(
                    &truth.bounded,
                    leaves,
                    (lower, upper),
                    rank,
                    spread,
                )));
            }
            ((high - low) / 2.0, node.shape())
        }
    };
    let [raw, clamped, row_bounded, bounded] = stages;
    let range = match spec.kind {
        AggregateKind::Count | AggregateKind::UnitCount => (0.0, f64::INFINITY),
        AggregateKind::Sum => (f64::NEG_INFINITY, f64::INFINITY),
        AggregateKind::Mean | AggregateKind::Quantile { .. } => (lower, upper),
        AggregateKind::Variance => (0.0, ((upper - lower) / 2.0).powi(2)),
    };
    if ![raw, clamped, row_bounded, bounded]
        .iter()
        .all(|value| value.is_finite())
    {
        return Ok(None);
    }
    Ok(Some(Prediction {
        truth: raw,
        bounded,
        clamping: clamped - raw,
        linf: row_bounded - clamped,
        l0: bounded - row_bounded,
        noise_std,
        shape,
        release,
        range,
        rank: model,
        ratio,
    }))
}

fn stage_values(spec: &AggregateSpec, group: &GroupTruth) -> [f64; 4] {
    [
        value_at(spec, &group.raw),
        value_at(spec, &group.clamped),
        value_at(spec, &group.row_bounded),
        value_at(spec, &group.bounded),
    ]
}

/// The job's own bounds as a candidate.
pub(crate) fn job_candidate(query: &QueryInput) -> Candidate {
    Candidate {
        contribution: query.bounds,
        value_scale: 1.0,
    }
}

/// Predictions of every aggregate (outer) for every group (inner; `None` where the
/// aggregate has no value).
pub(crate) fn predictions(
    query: &QueryInput,
    noise: &QueryNoise,
) -> Result<Vec<Vec<Option<Prediction>>>, ReportError> {
    query
        .aggregates
        .iter()
        .map(|spec| {
            query
                .groups
                .iter()
                .map(|group| predict(spec, group, noise, query.histogram_tree))
                .collect()
        })
        .collect()
}

#[cfg(test)]
mod tests;
