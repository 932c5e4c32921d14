//! Composition speed: 1,000 heterogeneous mechanisms by PLD (the target is under 100 ms),
//! with RDP and the naive sum on the same input as baselines, and self-composition of
//! Gaussians and subsampled Gaussians.
//!
//! `cargo bench -p veil-accountant --bench compose`

use criterion::{Criterion, criterion_group, criterion_main};
use std::hint::black_box;
use veil_accountant::{Component, MechanismProfile, Method, compose};
use veil_core::Delta;

/// 1,000 distinct mechanisms, as a large job might release: Gaussians and discrete
/// Gaussians of many noise levels, Laplace and discrete Laplace counts, randomized
/// responses. Deterministic.
fn heterogeneous() -> Vec<Component> {
    (0..1000_u32)
        .map(|i| {
            let x = f64::from(i);
            let profile = match i % 5 {
                0 => MechanismProfile::Gaussian {
                    sigma_over_sensitivity: 40.0 + x * 0.1,
                },
                1 => MechanismProfile::DiscreteGaussian {
                    sigma: 60.0 + x * 0.05,
                    sensitivity: 1 + u64::from(i % 3),
                },
                2 => MechanismProfile::Laplace {
                    scale_over_sensitivity: 200.0 + x,
                },
                3 => MechanismProfile::DiscreteLaplace {
                    scale: 300.0 + x,
                    sensitivity: 1,
                },
                _ => MechanismProfile::RandomizedResponse {
                    epsilon: 0.002 + x * 1e-6,
                },
            };
            Component::new(profile, 1)
        })
        .collect()
}

fn bench(c: &mut Criterion) {
    let delta = Delta::new(1e-6).expect("valid delta");
    let mechanisms = heterogeneous();
    let mut group = c.benchmark_group("compose_1000_heterogeneous");
    group.sample_size(20);
    for method in [Method::Pld, Method::Rdp, Method::Basic, Method::Best] {
        group.bench_function(method.name(), |b| {
            b.iter(|| compose(black_box(&mechanisms), delta, method).expect("composes"));
        });
    }
    group.finish();

    let mut group = c.benchmark_group("self_compose");
    group.sample_size(20);
    let gaussian = [Component::new(
        MechanismProfile::Gaussian {
            sigma_over_sensitivity: 2.0,
        },
        100,
    )];
    group.bench_function("gaussian_x100_pld", |b| {
        b.iter(|| compose(black_box(&gaussian), delta, Method::Pld).expect("composes"));
    });
    let subsampled = [Component::new(
        MechanismProfile::SubsampledGaussian {
            sigma_over_sensitivity: 1.1,
            sampling_rate: 0.01,
        },
        10_000,
    )];
    group.bench_function("subsampled_gaussian_x10000_pld", |b| {
        b.iter(|| compose(black_box(&subsampled), delta, Method::Pld).expect("composes"));
    });
    group.bench_function("subsampled_gaussian_x10000_rdp", |b| {
        b.iter(|| compose(black_box(&subsampled), delta, Method::Rdp).expect("composes"));
    });
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
