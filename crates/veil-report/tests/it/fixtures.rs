//! A small synthetic job: groups of many sizes, heavy-tailed contributions, and a planner
//! that mimics the engine's (noise ∝ sensitivity / ε, Gaussian thresholding).

use std::collections::BTreeMap;

use veil_core::mechanism::ThresholdMechanism;
use veil_core::{Bounds, Delta, Epsilon, Rho};
use veil_report::{
    AggregateKind, AggregateSpec, Candidate, CandidateMoments, CandidateTruths, ColumnMoments,
    Contribution, Contributions, DataOrigin, GroupTruth, LeafHistogram, Moments, Noise,
    NoisePlanner, NoiseShape, QuantileTruth, QueryInput, QueryNoise, ReportError, ReportInput,
    SelectedOn, ValueColumn,
};

pub(crate) const L0: u32 = 3;
pub(crate) const LINF: u32 = 5;
const UPPER: f64 = 100.0;

/// Noise like the engine's plan: the budget split over 5 parts, Gaussian (zCDP) noise of
/// σ = Δ₂ / sqrt(2ρ), Gaussian thresholding at δ = 1e-6.
pub(crate) struct Planner {
    pub(crate) shape: NoiseShape,
    pub(crate) selection: bool,
}

impl NoisePlanner for Planner {
    fn plan(
        &self,
        epsilon: Epsilon,
        _query: usize,
        candidate: &Candidate,
    ) -> Result<QueryNoise, ReportError> {
        let l0 = f64::from(candidate.contribution.max_groups_per_unit);
        let linf = f64::from(candidate.contribution.max_rows_per_group);
        let upper = UPPER * candidate.value_scale;
        let part = epsilon.get() / 5.0;
        let std = |per_group: f64| match self.shape {
            // ρ = ε²/2 per part (a simple stand-in for the engine's conversion).
            NoiseShape::Gaussian => l0.sqrt() * per_group / part,
            NoiseShape::Laplace | NoiseShape::Joint { .. } | NoiseShape::JointShaped(_) => {
                std::f64::consts::SQRT_2 * l0 * per_group / part
            }
        };
        let noise = |per_group: f64| Noise::new(self.shape, std(per_group)).unwrap();
        let measures = BTreeMap::from([
            ("rows".to_string(), noise(linf)),
            ("units".to_string(), noise(1.0)),
            ("sum:value".to_string(), noise(linf * upper)),
            ("values:value".to_string(), noise(linf)),
            ("centered_sum:value".to_string(), noise(linf * upper / 2.0)),
            (
                "centered_squares:value".to_string(),
                noise(linf * upper * upper / 4.0),
            ),
            ("histogram:value".to_string(), noise(linf * 3.0_f64.sqrt())),
        ]);
        let selection = if self.selection {
            let rho = Rho::new(part * part / 2.0).unwrap();
            Some(
                ThresholdMechanism::gaussian(
                    u64::from(candidate.contribution.max_groups_per_unit),
                    rho,
                    Delta::new(1e-6).unwrap(),
                )
                .map_err(|e| ReportError::Planning {
                    epsilon: epsilon.get(),
                    query: "q".into(),
                    reason: e.to_string(),
                })?,
            )
        } else {
            None
        };
        Ok(QueryNoise {
            selection,
            selected_on: SelectedOn::Units,
            measures,
        })
    }
}

fn column(values: f64, sum: f64, mean_square: f64) -> BTreeMap<String, ColumnMoments> {
    BTreeMap::from([(
        "value".to_string(),
        ColumnMoments {
            values,
            sum,
            sum_squares: values * mean_square,
        },
    )])
}

/// A group of `units` units: heavy-tailed rows per unit, so L∞ drops a share of rows; L0
/// drops a further share; clamping lowers the mean.
fn group(index: usize, units: f64) -> GroupTruth {
    let rows = units * 6.0;
    let mean = 40.0 + 3.0 * f64::from(u32::try_from(index % 7).unwrap());
    let stage = |rows: f64, units: f64, mean: f64| Moments {
        rows,
        units,
        columns: column(rows * 0.99, rows * 0.99 * mean, mean * mean * 1.6),
    };
    let leaves: Vec<(u32, f64)> = (0..40)
        .map(|leaf| (leaf * 100 + 100, rows * 0.55 / 40.0))
        .collect();
    GroupTruth {
        key: vec![Some(format!("g{index:02}"))],
        segment: Some(
            if index.is_multiple_of(3) {
                "north"
            } else {
                "south"
            }
            .to_string(),
        ),
        raw: stage(rows, units, mean * 1.3),
        clamped: stage(rows, units, mean),
        row_bounded: stage(rows * 0.6, units, mean * 0.97),
        bounded: stage(rows * 0.55, (units * 0.95).round(), mean * 0.96),
        quantiles: BTreeMap::from([(
            "value".to_string(),
            QuantileTruth {
                raw: vec![(0.5, mean * 1.1)],
                row_bounded: LeafHistogram {
                    counts: leaves
                        .iter()
                        .map(|(leaf, n)| (*leaf, n * 0.6 / 0.55))
                        .collect(),
                },
                bounded: LeafHistogram { counts: leaves },
            },
        )]),
    }
}

pub(crate) fn aggregates() -> Vec<AggregateSpec> {
    let value = || {
        Some(ValueColumn {
            name: "value".into(),
            bounds: Bounds::new(0.0, UPPER).unwrap(),
        })
    };
    vec![
        AggregateSpec {
            name: "count".into(),
            kind: AggregateKind::Count,
            column: None,
        },
        AggregateSpec {
            name: "unit_count".into(),
            kind: AggregateKind::UnitCount,
            column: None,
        },
        AggregateSpec {
            name: "sum_value".into(),
            kind: AggregateKind::Sum,
            column: value(),
        },
        AggregateSpec {
            name: "mean_value".into(),
            kind: AggregateKind::Mean,
            column: value(),
        },
        AggregateSpec {
            name: "variance_value".into(),
            kind: AggregateKind::Variance,
            column: value(),
        },
        AggregateSpec {
            name: "q50_value".into(),
            kind: AggregateKind::Quantile { level: 0.5 },
            column: value(),
        },
    ]
}

/// Expected aggregates on a 3 × 3 grid of bounds: more generous bounds keep more rows.
fn candidates(groups: &[GroupTruth]) -> CandidateTruths {
    let l0s = vec![1, L0, 10];
    let linfs = vec![1, LINF, 20];
    let scales = vec![0.5, 1.0, 2.0];
    let cells = groups
        .iter()
        .map(|group| {
            let mut cells = Vec::new();
            for l0 in &l0s {
                for linf in &linfs {
                    let keep = (f64::from(*l0).ln_1p() / 11.0_f64.ln()).min(1.0) * 0.5
                        + (f64::from(*linf).ln_1p() / 21.0_f64.ln()).min(1.0) * 0.5;
                    let rows = group.raw.rows * keep;
                    let mean = 45.0;
                    cells.push(CandidateMoments {
                        rows,
                        units: group.raw.units * (0.8 + 0.2 * keep),
                        columns: BTreeMap::from([(
                            "value".to_string(),
                            (
                                rows * 0.99,
                                scales
                                    .iter()
                                    .map(|scale| rows * 0.99 * mean * (0.8 + 0.1 * scale))
                                    .collect(),
                            ),
                        )]),
                    });
                }
            }
            cells
        })
        .collect();
    CandidateTruths {
        max_groups_per_unit: l0s,
        max_rows_per_group: linfs,
        value_scales: scales,
        groups: cells,
    }
}

/// The synthetic job's inputs: `groups` groups from 3 to about 30,000 units.
pub(crate) fn input(groups: usize, origin: DataOrigin) -> ReportInput {
    let truths: Vec<GroupTruth> = (0..groups)
        .map(|index| {
            #[allow(clippy::cast_precision_loss)]
            let exponent = 0.5 + 4.0 * index as f64 / groups.max(2) as f64;
            group(index, 10_f64.powf(exponent).round())
        })
        .collect();
    ReportInput {
        job: "synthetic".into(),
        origin,
        source: "a synthetic table".into(),
        budget: "ε = 1, δ = 1e-6".into(),
        epsilon: Epsilon::new(1.0).unwrap(),
        queries: vec![QueryInput {
            name: "by_group".into(),
            group_by: vec!["group".into()],
            segment: Some("region".into()),
            bounds: Contribution {
                max_groups_per_unit: L0,
                max_rows_per_group: LINF,
            },
            aggregates: aggregates(),
            candidates: Some(candidates(&truths)),
            groups: truths,
            contributions: Contributions {
                groups_per_unit: vec![(1, 500), (2, 200), (3, 90), (4, 40), (9, 10), (40, 2)],
                rows_per_group: vec![(1, 300), (2, 200), (5, 100), (6, 90), (30, 20), (900, 1)],
            },
            value_quantiles: BTreeMap::from([(
                "value".to_string(),
                vec![(0.5, 12.0), (0.9, 60.0), (0.99, 240.0)],
            )]),
            histogram_tree: (16, 3),
        }],
    }
}
