//! The cost of one charge (reserve + commit) on a ledger that already holds `n` committed
//! charges, each with a different discrete Gaussian: every reserve re-composes them all.
//!
//! `cargo bench -p veil-ledger --bench charge`

use criterion::{BenchmarkId, Criterion, criterion_group, criterion_main};
use veil_accountant::{
    BudgetKey, BudgetLedger, Charge, ChargeItem, MechanismProfile, PrivacyBudget,
};
use veil_ledger::SqliteLedger;

fn charge(index: u32) -> Charge {
    Charge {
        job: format!("job-{index}"),
        job_hash: "0f3a".to_string(),
        items: vec![ChargeItem {
            label: "count".to_string(),
            profile: MechanismProfile::DiscreteGaussian {
                sigma: 200.0 + f64::from(index),
                sensitivity: 1,
            },
            times: 1,
        }],
    }
}

fn bench(c: &mut Criterion) {
    let key = BudgetKey {
        dataset: "events".to_string(),
        purpose: "analytics".to_string(),
    };
    let mut group = c.benchmark_group("reserve_commit");
    group.sample_size(20);
    for existing in [0_u32, 100, 1000] {
        let directory = tempfile::tempdir().expect("temp dir");
        let mut ledger =
            SqliteLedger::create(&directory.path().join("ledger.sqlite")).expect("ledger");
        ledger
            .init_budget(
                &key,
                PrivacyBudget::Approx {
                    epsilon: 1e6,
                    delta: 1e-6,
                },
                None,
            )
            .expect("budget");
        for index in 0..existing {
            let reservation = ledger.reserve(&key, &charge(index)).expect("reserve");
            ledger.commit(&reservation).expect("commit");
        }
        group.bench_with_input(BenchmarkId::from_parameter(existing), &existing, |b, _| {
            b.iter(|| {
                let reservation = ledger.reserve(&key, &charge(5000)).expect("reserve");
                ledger.abort(&reservation).expect("abort");
            });
        });
    }
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
