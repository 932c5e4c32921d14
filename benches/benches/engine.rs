//! Veil's batch engine end to end against plain Polars, in the same run.
//!
//! `cargo bench -p veil-bench --bench engine` (sizes from `VEIL_BENCH_ROWS`, default
//! `1000000`; e.g. `VEIL_BENCH_ROWS=1000000,10000000`).

use std::hint::black_box;

use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use veil_engine::scan::BoundingKey;
use veil_engine::{RunContext, run};

fn sizes() -> Vec<u64> {
    std::env::var("VEIL_BENCH_ROWS")
        .ok()
        .map(|text| {
            text.split(',')
                .filter_map(|size| size.trim().parse().ok())
                .collect()
        })
        .filter(|sizes: &Vec<u64>| !sizes.is_empty())
        .unwrap_or_else(|| vec![1_000_000])
}

fn engine(c: &mut Criterion) {
    let mut group = c.benchmark_group("engine");
    group.sample_size(10);
    for rows in sizes() {
        let source = veil_bench::dataset(rows);
        let output = std::env::temp_dir().join(format!("veil-bench-out-{rows}"));
        let job = veil_bench::job(&source, &output);
        let plan = veil_engine::plan::plan(&job).expect("the benchmark job plans");
        group.throughput(Throughput::Elements(rows));
        group.bench_with_input(BenchmarkId::new("polars-floor", rows), &rows, |b, _| {
            b.iter(|| black_box(veil_bench::polars_floor(&source).expect("baseline runs")));
        });
        group.bench_with_input(BenchmarkId::new("polars-pairs", rows), &rows, |b, _| {
            b.iter(|| black_box(veil_bench::polars_pairs(&source).expect("baseline runs")));
        });
        group.bench_with_input(BenchmarkId::new("polars-bounded", rows), &rows, |b, _| {
            b.iter(|| black_box(veil_bench::polars_bounded(&source).expect("baseline runs")));
        });
        group.bench_with_input(BenchmarkId::new("veil-scan", rows), &rows, |b, _| {
            b.iter(|| {
                black_box(
                    veil_engine::scan::aggregate(&plan.scan, BoundingKey::from_words([1, 2]))
                        .expect("scan runs"),
                )
            });
        });
        group.bench_with_input(BenchmarkId::new("veil-run", rows), &rows, |b, _| {
            let (mut ledger, key) = veil_bench::ledger();
            let mut rng = veil_testkit_free_rng();
            b.iter(|| {
                let mut ignore = |_| {};
                let context = RunContext {
                    ledger: &mut ledger,
                    budget_key: key.clone(),
                    created_at: "bench".into(),
                    not_private: Some("benchmark".into()),
                    progress: &mut ignore,
                    interrupt: None,
                };
                black_box(run(&job, context, &mut rng).expect("the job runs"))
            });
        });
    }
    group.finish();
}

/// A ChaCha20 generator with a fixed seed: the benchmark measures speed, not privacy.
fn veil_testkit_free_rng() -> rand::rngs::ChaCha20Rng {
    rand_core::SeedableRng::seed_from_u64(7)
}

criterion_group!(benches, engine);
criterion_main!(benches);
