//! One simulated release of a group, as the Monte Carlo draws it: the true bounded
//! aggregates plus floating-point noise of the planned shape and standard deviation (a
//! simulation, never a release).
//!
//! Everything a trial looks up (which measures each aggregate reads, their noise, the
//! selection's) is resolved once per query and ε in [`Simulation::new`], so that a trial
//! only draws and adds: the Monte Carlo re-noises every group hundreds of times per ε.

use rand_core::Rng;

use crate::dist;
use crate::input::{AggregateKind, AggregateSpec, GroupTruth, NoiseShape, QueryNoise, SelectedOn};
use crate::model::{Cumulative, middle, rank_std, selection_noise};

/// What one aggregate reads: indices into [`Simulation::measures`] (`None`: the plan has
/// no noise for that measure, which then adds nothing).
#[derive(Debug, Clone)]
enum Reads {
    Count(Option<usize>),
    UnitCount(Option<usize>),
    Sum(Option<usize>),
    Mean {
        values: Option<usize>,
        centered: Option<usize>,
    },
    Variance {
        values: Option<usize>,
        centered: Option<usize>,
        squares: Option<usize>,
    },
    /// A quantile: its level and the rank noise's shape and standard deviation.
    Quantile {
        level: f64,
        rank: Option<(NoiseShape, f64)>,
    },
}

/// One aggregate of the query, resolved.
#[derive(Debug, Clone)]
struct Resolved {
    /// The value column's name (empty for counts).
    column: String,
    /// `(middle, half width, lower, upper)` of its bounds.
    bounds: (f64, f64, f64, f64),
    reads: Reads,
}

/// Private partition selection, resolved.
#[derive(Debug, Clone)]
struct Selected {
    on: SelectedOn,
    shape: NoiseShape,
    std: f64,
    threshold: f64,
    /// The released measure whose noisy value the selection's draw is.
    slot: Option<usize>,
}

/// A query's trials at one ε, resolved once.
#[derive(Debug, Clone)]
pub(crate) struct Simulation {
    /// The selection, if the query selects groups privately: its count, noise, threshold,
    /// and the slot of [`Simulation::measures`] its noisy count is released as, if any.
    selection: Option<Selected>,
    /// Each distinct measure's noise, drawn at most once per trial and shared by the
    /// aggregates that read it, as in a release.
    measures: Vec<(NoiseShape, f64)>,
    aggregates: Vec<Resolved>,
    /// Per group, per aggregate: the bounded histogram a quantile is read from.
    histograms: Vec<Vec<Option<Cumulative>>>,
    /// Leaves of the quantile tree (`branching^depth`).
    leaves: u32,
}

impl Simulation {
    /// Resolves `specs` against `noise` for a quantile tree of shape `tree`, over `groups`.
    pub(crate) fn new(
        specs: &[AggregateSpec],
        groups: &[GroupTruth],
        noise: &QueryNoise,
        tree: (u32, u32),
    ) -> Self {
        let mut keys: Vec<String> = Vec::new();
        let mut measures = Vec::new();
        let mut slot = |key: String| -> Option<usize> {
            let measure = noise.measures.get(&key)?;
            Some(keys.iter().position(|k| *k == key).unwrap_or_else(|| {
                keys.push(key);
                measures.push((measure.shape(), measure.std_dev()));
                keys.len() - 1
            }))
        };
        let aggregates: Vec<Resolved> = specs
            .iter()
            .map(|spec| {
                let column = spec
                    .column
                    .as_ref()
                    .map_or(String::new(), |column| column.name.clone());
                let reads = match spec.kind {
                    AggregateKind::Count => Reads::Count(slot("rows".into())),
                    AggregateKind::UnitCount => Reads::UnitCount(slot("units".into())),
                    AggregateKind::Sum => Reads::Sum(slot(format!("sum:{column}"))),
                    AggregateKind::Mean => Reads::Mean {
                        values: slot(format!("values:{column}")),
                        centered: slot(format!("centered_sum:{column}")),
                    },
                    AggregateKind::Variance => Reads::Variance {
                        values: slot(format!("values:{column}")),
                        centered: slot(format!("centered_sum:{column}")),
                        squares: slot(format!("centered_squares:{column}")),
                    },
                    AggregateKind::Quantile { level } => Reads::Quantile {
                        level,
                        rank: noise
                            .measures
                            .get(&format!("histogram:{column}"))
                            .map(|node| (node.shape(), rank_std(node.std_dev(), level, tree))),
                    },
                };
                Resolved {
                    column,
                    bounds: middle(spec),
                    reads,
                }
            })
            .collect();
        #[allow(clippy::cast_precision_loss)]
        let selection = noise.selection.as_ref().map(|selection| {
            let (shape, std) = selection_noise(selection);
            Selected {
                on: noise.selected_on.clone(),
                shape,
                std,
                threshold: selection.threshold() as f64,
                slot: keys.iter().position(|key| *key == noise.selected_on.key()),
            }
        });
        let histograms = groups
            .iter()
            .map(|group| {
                aggregates
                    .iter()
                    .map(|aggregate| {
                        matches!(aggregate.reads, Reads::Quantile { .. })
                            .then(|| group.quantiles.get(&aggregate.column))
                            .flatten()
                            .map(|truth| Cumulative::new(&truth.bounded))
                    })
                    .collect()
            })
            .collect();
        Self {
            selection,
            measures,
            aggregates,
            histograms,
            leaves: tree.0.pow(tree.1),
        }
    }

    /// One simulated release of `group`, the `index`th of the groups given to
    /// [`Simulation::new`]: `None` if the group is not released, else the released value of
    /// each aggregate (NaN where it has none). `draws` is scratch space reused between
    /// trials.
    pub(crate) fn release<R: Rng + ?Sized>(
        &self,
        index: usize,
        group: &GroupTruth,
        draws: &mut Vec<Option<f64>>,
        rng: &mut R,
    ) -> Option<Vec<f64>> {
        draws.clear();
        draws.resize(self.measures.len(), None);
        if let Some(selected) = &self.selection {
            let shift = dist::draw(selected.shape, selected.std, rng);
            // The engine's noise is on integers: a continuous draw is released at the
            // threshold minus a half (a continuity correction).
            if selected.on.in_moments(&group.bounded) + shift < selected.threshold - 0.5 {
                return None;
            }
            // A released count that selected the group is released with that same noise.
            if let Some(slot) = selected.slot {
                draws[slot] = Some(shift);
            }
        }
        let mut draw = |slot: Option<usize>, rng: &mut R| -> f64 {
            let Some(slot) = slot else {
                return 0.0;
            };
            *draws[slot].get_or_insert_with(|| {
                let (shape, std) = self.measures[slot];
                dist::draw(shape, std, rng)
            })
        };
        let mut released = Vec::with_capacity(self.aggregates.len());
        for (aggregate, histogram) in self.aggregates.iter().zip(&self.histograms[index]) {
            let (middle, half_width, lower, upper) = aggregate.bounds;
            let column = group
                .bounded
                .columns
                .get(&aggregate.column)
                .copied()
                .unwrap_or_default();
            let value = match aggregate.reads {
                Reads::Count(rows) => (group.bounded.rows + draw(rows, rng)).round().max(0.0),
                Reads::UnitCount(units) => {
                    (group.bounded.units + draw(units, rng)).round().max(0.0)
                }
                Reads::Sum(sum) => column.sum + draw(sum, rng),
                Reads::Mean { values, centered } => {
                    let count = (column.values + draw(values, rng)).max(1.0);
                    let centered = column.sum - middle * column.values + draw(centered, rng);
                    (middle + centered / count).clamp(lower, upper)
                }
                Reads::Variance {
                    values,
                    centered,
                    squares,
                } => {
                    let count = (column.values + draw(values, rng)).max(1.0);
                    let centered = column.sum - middle * column.values + draw(centered, rng);
                    let squares = column.sum_squares - 2.0 * middle * column.sum
                        + middle * middle * column.values
                        + draw(squares, rng);
                    let offset = centered / count;
                    (squares / count - offset * offset).clamp(0.0, half_width * half_width)
                }
                Reads::Quantile { level, rank } => match histogram {
                    Some(histogram) => {
                        let n = histogram.total;
                        let shift = rank.map_or(0.0, |(shape, std)| dist::draw(shape, std, rng));
                        if n > 0.0 {
                            let rank = (level * n + shift).clamp(0.0, n);
                            histogram.value_at(rank, self.leaves, lower, upper)
                        } else {
                            f64::NAN
                        }
                    }
                    None => f64::NAN,
                },
            };
            released.push(value);
        }
        Some(released)
    }
}
