//! Local-DP throughput: client randomization per report, server aggregation and decoding.
//!
//! `cargo bench -p veil-ldp --bench ldp`
//!
//! Baselines in the same run: `float-grr` is textbook GRR deciding with `f64` comparisons
//! (what Veil does not do), and `rng-only` draws the 64-bit words a GRR report needs, so
//! the cost of exactness and of the randomizer itself can be read off.

use std::hint::black_box;

use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use rand::RngExt;
use rand_core::Rng;
use veil_core::Epsilon;
use veil_ldp::server::Aggregator;
use veil_ldp::{Domain, Longitudinal, OracleName, Protocol, ProtocolConfig, Report};

const BATCH: u32 = 1_000;

fn protocol(oracle: OracleName, size: u32) -> Protocol {
    Protocol::new(ProtocolConfig {
        oracle,
        epsilon: Epsilon::new(1.0).expect("valid ε"),
        domain: Domain::Size(size),
        longitudinal: Longitudinal::Independent,
    })
    .expect("valid protocol")
}

fn client(c: &mut Criterion) {
    let mut group = c.benchmark_group("client");
    group.throughput(Throughput::Elements(u64::from(BATCH)));
    for oracle in [
        OracleName::Grr,
        OracleName::Olh,
        OracleName::Hadamard,
        OracleName::Oue,
    ] {
        let built = protocol(oracle, 1024);
        let mut rng = veil_testkit::seeded_rng(1);
        group.bench_with_input(
            BenchmarkId::new(oracle.as_str(), 1024),
            &built,
            |b, built| {
                b.iter(|| {
                    for value in 0..BATCH {
                        black_box(
                            built
                                .randomize_index(value % 1024, &mut rng)
                                .expect("in domain"),
                        );
                    }
                });
            },
        );
    }
    // Baselines: float decisions, and the random words alone.
    let keep = 1_f64.exp() / (1_f64.exp() + 1023.0);
    let mut rng = veil_testkit::seeded_rng(1);
    group.bench_function(BenchmarkId::new("float-grr", 1024), |b| {
        b.iter(|| {
            for value in 0..BATCH {
                let report = if rng.random::<f64>() < keep {
                    value % 1024
                } else {
                    let other = rng.random_range(0..1023);
                    if other >= value % 1024 {
                        other + 1
                    } else {
                        other
                    }
                };
                black_box(report);
            }
        });
    });
    let mut rng = veil_testkit::seeded_rng(1);
    group.bench_function(BenchmarkId::new("rng-only", 2), |b| {
        b.iter(|| {
            for _ in 0..BATCH {
                black_box(rng.next_u64() ^ rng.next_u64());
            }
        });
    });
    group.finish();
}

fn reports(built: &Protocol, n: u32) -> Vec<Report> {
    let mut rng = veil_testkit::seeded_rng(2);
    let size = built.domain_size().expect("categorical");
    (0..n)
        .map(|i| {
            built
                .randomize_index((i * 7919) % size, &mut rng)
                .expect("in domain")
        })
        .collect()
}

fn server(c: &mut Criterion) {
    let mut group = c.benchmark_group("server");
    let n = 1_000_000;
    group.throughput(Throughput::Elements(u64::from(n)));
    for oracle in [OracleName::Grr, OracleName::Hadamard] {
        let built = protocol(oracle, 1024);
        let all = reports(&built, n);
        group.bench_function(
            BenchmarkId::new(format!("{}-add", oracle.as_str()), n),
            |b| {
                b.iter(|| {
                    let mut aggregator = Aggregator::new(&built);
                    for report in &all {
                        aggregator.add(report).expect("own report");
                    }
                    black_box(aggregator.reports())
                });
            },
        );
    }
    let built = protocol(OracleName::Grr, 1024);
    let values: Vec<u32> = reports(&built, n)
        .iter()
        .map(|report| match report.payload {
            veil_ldp::Payload::Grr { value } => value,
            _ => 0,
        })
        .collect();
    group.bench_function(BenchmarkId::new("grr-add-values", n), |b| {
        b.iter(|| {
            let mut aggregator = Aggregator::new(&built);
            black_box(aggregator.add_values(&values).expect("grr"));
            black_box(aggregator.reports())
        });
    });
    group.finish();

    let mut group = c.benchmark_group("olh-decode");
    let n = 20_000;
    group.throughput(Throughput::Elements(u64::from(n)));
    let built = protocol(OracleName::Olh, 1024);
    let all = reports(&built, n);
    for threads in [1, 2] {
        group.bench_function(BenchmarkId::new("threads", threads), |b| {
            b.iter(|| {
                let mut aggregator = Aggregator::new(&built);
                aggregator.threads(threads);
                for report in &all {
                    aggregator.add(report).expect("own report");
                }
                black_box(aggregator.finish().expect("estimates"))
            });
        });
    }
    group.finish();

    let mut group = c.benchmark_group("hadamard-decode");
    let built = protocol(OracleName::Hadamard, 1024);
    let all = reports(&built, 10_000);
    let mut aggregator = Aggregator::new(&built);
    for report in &all {
        aggregator.add(report).expect("own report");
    }
    group.bench_function(BenchmarkId::new("finish", 1024), |b| {
        b.iter_batched(
            || {
                let mut copy = Aggregator::new(&built);
                for report in all.iter().take(16) {
                    copy.add(report).expect("own report");
                }
                copy
            },
            |copy| black_box(copy.finish().expect("estimates")),
            criterion::BatchSize::SmallInput,
        );
    });
    group.finish();
}

criterion_group!(benches, client, server);
criterion_main!(benches);
