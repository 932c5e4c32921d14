use std::collections::BTreeMap;

use veil_core::Bounds;

use super::*;
use crate::input::{ColumnMoments, QuantileTruth, SelectedOn, ValueColumn};
use crate::simulation::Simulation;

fn histogram(counts: &[(u32, f64)]) -> LeafHistogram {
    LeafHistogram {
        counts: counts.to_vec(),
    }
}

fn moments(rows: f64, units: f64, sum: f64) -> Moments {
    Moments {
        rows,
        units,
        columns: BTreeMap::from([(
            "value".to_string(),
            ColumnMoments {
                values: rows,
                sum,
                sum_squares: sum * sum / rows,
            },
        )]),
    }
}

fn noise(shape: NoiseShape, std: f64) -> QueryNoise {
    let keys = [
        "rows",
        "units",
        "sum:value",
        "values:value",
        "centered_sum:value",
        "centered_squares:value",
        "histogram:value",
    ];
    QueryNoise {
        selection: None,
        selected_on: SelectedOn::Units,
        measures: keys
            .iter()
            .map(|key| ((*key).to_string(), Noise::new(shape, std).unwrap()))
            .collect(),
    }
}

fn spec(kind: AggregateKind) -> AggregateSpec {
    AggregateSpec {
        name: kind.name().into(),
        kind,
        column: Some(ValueColumn {
            name: "value".into(),
            bounds: Bounds::new(0.0, 10.0).unwrap(),
        }),
    }
}

#[test]
fn value_at_rank_interpolates_inside_leaves() {
    // Four leaves over [0, 4]: 2 rows in leaf 1, 2 rows in leaf 3.
    let h = histogram(&[(1, 2.0), (3, 2.0)]);
    assert!((value_at_rank(&h, 4, 0.0, 4.0, 1.0) - 1.5).abs() < 1e-12);
    assert!((value_at_rank(&h, 4, 0.0, 4.0, 2.0) - 2.0).abs() < 1e-12);
    assert!((value_at_rank(&h, 4, 0.0, 4.0, 3.0) - 3.5).abs() < 1e-12);
    assert!((value_at_rank(&h, 4, 0.0, 4.0, 9.0) - 4.0).abs() < 1e-12);
}

#[test]
fn count_bias_splits_into_clamping_linf_and_l0() {
    let group = GroupTruth {
        raw: moments(100.0, 10.0, 900.0),
        clamped: moments(100.0, 10.0, 700.0),
        row_bounded: moments(60.0, 10.0, 420.0),
        bounded: moments(50.0, 9.0, 350.0),
        ..GroupTruth::default()
    };
    let count = predict(
        &spec(AggregateKind::Count),
        &group,
        &noise(NoiseShape::Laplace, 3.0),
        (16, 3),
    )
    .unwrap()
    .unwrap();
    assert!((count.truth - 100.0).abs() < 1e-12);
    assert!(count.clamping.abs() < 1e-12);
    assert!((count.linf + 40.0).abs() < 1e-12);
    assert!((count.l0 + 10.0).abs() < 1e-12);
    assert!((count.bias() + 50.0).abs() < 1e-12);
    assert!((count.noise_std - 3.0).abs() < 1e-12);
    let sum = predict(
        &spec(AggregateKind::Sum),
        &group,
        &noise(NoiseShape::Laplace, 3.0),
        (16, 3),
    )
    .unwrap()
    .unwrap();
    assert!((sum.clamping + 200.0).abs() < 1e-12);
    assert!((sum.linf + 280.0).abs() < 1e-12);
    assert!((sum.l0 + 70.0).abs() < 1e-12);
}

#[test]
fn mean_noise_follows_the_delta_method() {
    let group = GroupTruth {
        raw: moments(100.0, 10.0, 500.0),
        clamped: moments(100.0, 10.0, 500.0),
        row_bounded: moments(100.0, 10.0, 500.0),
        bounded: moments(100.0, 10.0, 500.0),
        ..GroupTruth::default()
    };
    // Mean 5 is the middle of [0, 10]: the centered sum is 0, so only its noise counts.
    let mean = predict(
        &spec(AggregateKind::Mean),
        &group,
        &noise(NoiseShape::Gaussian, 20.0),
        (16, 3),
    )
    .unwrap()
    .unwrap();
    assert!((mean.truth - 5.0).abs() < 1e-12);
    assert!((mean.noise_std - 0.2).abs() < 1e-12);
}

#[test]
fn simulated_quantiles_stay_in_bounds() {
    let mut group = GroupTruth {
        bounded: moments(8.0, 4.0, 40.0),
        ..GroupTruth::default()
    };
    group.quantiles.insert(
        "value".into(),
        QuantileTruth {
            raw: vec![(0.5, 5.0)],
            row_bounded: histogram(&[(2000, 8.0)]),
            bounded: histogram(&[(2000, 8.0)]),
        },
    );
    let mut rng = veil_testkit::seeded_rng(1);
    let specs = [spec(AggregateKind::Quantile { level: 0.5 })];
    let groups = [group];
    let simulation = Simulation::new(&specs, &groups, &noise(NoiseShape::Laplace, 5.0), (16, 3));
    let mut draws = Vec::new();
    for _ in 0..100 {
        let released = simulation
            .release(0, &groups[0], &mut draws, &mut rng)
            .unwrap();
        assert!((0.0..=10.0).contains(&released[0]));
    }
}

#[test]
fn cumulative_reads_the_histogram_as_a_walk_over_its_leaves_does() {
    // The reading the binary search replaces: leaf by leaf, linear inside a leaf.
    let walk = |histogram: &LeafHistogram, leaves: u32, rank: f64| -> f64 {
        let (lower, upper) = (-10.0, 30.0);
        let width = (upper - lower) / f64::from(leaves);
        let (mut cumulative, mut last) = (0.0, lower);
        for &(leaf, count) in &histogram.counts {
            if count <= 0.0 {
                continue;
            }
            let start = lower + f64::from(leaf) * width;
            if cumulative + count >= rank {
                return (start + ((rank - cumulative) / count).clamp(0.0, 1.0) * width)
                    .clamp(lower, upper);
            }
            cumulative += count;
            last = start + width;
        }
        last.clamp(lower, upper)
    };
    let histograms = [
        histogram(&[]),
        histogram(&[(0, 0.0), (3, 2.0), (4, 0.0), (9, 5.5), (15, 1.0)]),
        histogram(&[(7, 3.0)]),
    ];
    for histogram in &histograms {
        let cumulative = Cumulative::new(histogram);
        assert!((cumulative.total - total(histogram)).abs() < 1e-12);
        for step in 0..=40 {
            let rank = f64::from(step) * 0.25 - 0.5;
            let (fast, slow) = (
                cumulative.value_at(rank, 16, -10.0, 30.0),
                walk(histogram, 16, rank),
            );
            assert!((fast - slow).abs() < 1e-12, "rank {rank}: {fast} vs {slow}");
        }
    }
}
