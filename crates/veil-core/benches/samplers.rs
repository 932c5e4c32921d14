//! Sampler throughput: Veil's exact samplers next to `rand_distr`'s floating-point ones,
//! driven by the same ChaCha20 generator, in the same run.
//!
//! `cargo bench -p veil-core --bench samplers`

use std::hint::black_box;

use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use rand::RngExt;
use rand_distr::{Distribution, Normal};
use veil_core::mechanism::{JointLaplaceMechanism, best_staircase_step};
use veil_core::sample::{DiscreteGaussian, DiscreteLaplace};
use veil_core::{Epsilon, Rational};

const BATCH: u64 = 10_000;

/// The textbook floating-point Laplace by inverse CDF: the baseline Veil must not use.
fn float_laplace(rng: &mut impl rand::Rng, scale: f64) -> f64 {
    let u: f64 = rng.random::<f64>() - 0.5;
    -scale * u.signum() * (1.0 - 2.0 * u.abs()).ln()
}

fn laplace(c: &mut Criterion) {
    let mut group = c.benchmark_group("laplace");
    group.throughput(Throughput::Elements(BATCH));
    for scale in [1_u64, 100, 1_000_000] {
        let sampler = DiscreteLaplace::new(Rational::integer(scale)).expect("valid scale");
        let mut rng = veil_testkit::seeded_rng(1);
        group.bench_with_input(BenchmarkId::new("veil-exact", scale), &scale, |b, _| {
            b.iter(|| {
                let mut sum = 0_i64;
                for _ in 0..BATCH {
                    sum = sum.wrapping_add(sampler.sample(&mut rng));
                }
                black_box(sum)
            });
        });
        let mut rng = veil_testkit::seeded_rng(1);
        #[allow(clippy::cast_precision_loss)]
        let float_scale = scale as f64;
        group.bench_with_input(
            BenchmarkId::new("float-inverse-cdf", scale),
            &scale,
            |b, _| {
                b.iter(|| {
                    let mut sum = 0.0_f64;
                    for _ in 0..BATCH {
                        sum += float_laplace(&mut rng, float_scale);
                    }
                    black_box(sum)
                });
            },
        );
    }
    group.finish();
}

fn gaussian(c: &mut Criterion) {
    let mut group = c.benchmark_group("gaussian");
    group.throughput(Throughput::Elements(BATCH));
    for sigma in [1_u64, 100, 1_000_000] {
        let sampler = DiscreteGaussian::new(Rational::integer(sigma * sigma)).expect("valid σ²");
        let mut rng = veil_testkit::seeded_rng(2);
        group.bench_with_input(BenchmarkId::new("veil-exact", sigma), &sigma, |b, _| {
            b.iter(|| {
                let mut sum = 0_i64;
                for _ in 0..BATCH {
                    sum = sum.wrapping_add(sampler.sample(&mut rng));
                }
                black_box(sum)
            });
        });
        #[allow(clippy::cast_precision_loss)]
        let normal = Normal::new(0.0, sigma as f64).expect("valid σ");
        let mut rng = veil_testkit::seeded_rng(2);
        group.bench_with_input(
            BenchmarkId::new("rand_distr-normal", sigma),
            &sigma,
            |b, _| {
                b.iter(|| {
                    let mut sum = 0.0_f64;
                    for _ in 0..BATCH {
                        sum += normal.sample(&mut rng);
                    }
                    black_box(sum)
                });
            },
        );
    }
    group.finish();
}

/// A joint draw of a count and a centred sum (the engine's pure count + sum at L∞ = 5 on
/// a grid of 2^20 steps per unit of value), next to the two separate discrete Laplace
/// draws it replaces: answers per second, two per draw.
fn joint(c: &mut Criterion) {
    let mut group = c.benchmark_group("joint");
    group.throughput(Throughput::Elements(2 * BATCH));
    let sensitivities = [5_u64, 250 << 20];
    // A batch of draws of `mechanism`, both answers summed so none is optimised away.
    let mut draws = |name: String, mechanism: &JointLaplaceMechanism| {
        let mut rng = veil_testkit::seeded_rng(1);
        group.bench_function(name, |b| {
            b.iter(|| {
                let mut sum = 0_i64;
                for _ in 0..BATCH {
                    let z = mechanism.sample(&mut rng);
                    sum = sum.wrapping_add(z[0]).wrapping_add(z[1]);
                }
                black_box(sum)
            });
        });
    };
    let epsilon = Epsilon::new(1.0 / 3.0).expect("ε");
    let joint = JointLaplaceMechanism::new(&sensitivities, epsilon).expect("valid joint draw");
    draws("veil-joint".into(), &joint);
    // The plateau law a weighted count's plan draws (`weight = 6` on the count of count +
    // sum + mean): flat on the centred sum out to 3/4 of its bound over ε.
    let width = sensitivities[1] * 9 / 4;
    let plateau = JointLaplaceMechanism::plateau(&sensitivities, epsilon, &[0, width])
        .expect("valid plateau");
    draws("veil-joint-plateau".into(), &plateau);
    // The staircase-shaped law where the planner takes it (ε = 4/3 and 4 per group): more
    // proposals per kept draw.
    for epsilon in [4.0 / 3.0, 4.0] {
        let epsilon = Epsilon::new(epsilon).expect("ε");
        let step = best_staircase_step(&sensitivities, epsilon.get()).expect("a step");
        let plain = JointLaplaceMechanism::new(&sensitivities, epsilon).expect("valid joint draw");
        let staircase = JointLaplaceMechanism::staircase(&sensitivities, epsilon, step)
            .expect("valid staircase");
        for (name, mechanism) in [("plain", &plain), ("staircase", &staircase)] {
            draws(
                format!("veil-joint-{name}-eps{:.2}", epsilon.get()),
                mechanism,
            );
        }
    }
    let separate: Vec<DiscreteLaplace> = sensitivities
        .iter()
        .map(|&steps| DiscreteLaplace::new(Rational::integer(6 * steps)).expect("valid scale"))
        .collect();
    let mut rng = veil_testkit::seeded_rng(1);
    group.bench_function("two-laplace", |b| {
        b.iter(|| {
            let mut sum = 0_i64;
            for _ in 0..BATCH {
                for sampler in &separate {
                    sum = sum.wrapping_add(sampler.sample(&mut rng));
                }
            }
            black_box(sum)
        });
    });
    group.finish();
}

criterion_group!(benches, laplace, gaussian, joint);
criterion_main!(benches);
