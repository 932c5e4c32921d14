//! The release's folder: created only when the release is staged, after the reservation,
//! and gone again when a run that created it publishes nothing.

use std::path::Path;

use veil_accountant::{
    BudgetError, BudgetKey, BudgetLedger, BudgetStatus, Charge, NotPrivateCount, ReleaseRecord,
    Reservation,
};
use veil_engine::job::AggregateKind;
use veil_engine::{RunContext, Stage, run};

use crate::fixtures::{CountingLedger, aggregate, approx, job, key, query, write_events};

/// A ledger that refuses every commit, as a ledger whose disk fails would.
struct FailingCommit(CountingLedger);

impl BudgetLedger for FailingCommit {
    fn reserve(&mut self, key: &BudgetKey, charge: &Charge) -> Result<Reservation, BudgetError> {
        self.0.reserve(key, charge)
    }

    fn commit(&mut self, _: &Reservation) -> Result<(), BudgetError> {
        Err(BudgetError::Storage {
            message: "disk failed".into(),
            source: None,
        })
    }

    fn abort(&mut self, reservation: &Reservation) -> Result<(), BudgetError> {
        self.0.abort(reservation)
    }

    fn record_release(
        &mut self,
        r: &Reservation,
        release: &ReleaseRecord,
    ) -> Result<(), BudgetError> {
        self.0.record_release(r, release)
    }

    fn status(&self, key: &BudgetKey) -> Result<BudgetStatus, BudgetError> {
        self.0.status(key)
    }

    fn record_diagnostics(
        &mut self,
        r: &Reservation,
        c: &[NotPrivateCount],
    ) -> Result<(), BudgetError> {
        self.0.record_diagnostics(r, c)
    }
}

fn events(directory: &Path) -> std::path::PathBuf {
    let path = directory.join("events.parquet");
    let rows: Vec<(Option<i64>, &str, Option<f64>)> = (0..300)
        .map(|user| {
            (
                Some(user),
                ["US", "DE"][usize::try_from(user % 2).unwrap()],
                Some(1.0),
            )
        })
        .collect();
    write_events(&path, &rows);
    path
}

fn run_into(output: &Path, ledger: &mut dyn BudgetLedger) -> Result<(), veil_engine::EngineError> {
    // The source sits two levels above the output: `<case>/out` under the test folder.
    let source = output.parent().and_then(Path::parent).map(events).unwrap();
    let count = query(1, 1, vec![aggregate(AggregateKind::Count)]);
    let job = job(&source, output, approx(1.0, 1e-6), vec![count]);
    let mut ignore = |_: Stage| {};
    let context = RunContext {
        ledger,
        budget_key: key(),
        created_at: "2026-11-26T00:00:00Z".into(),
        not_private: None,
        progress: &mut ignore,
        interrupt: None,
    };
    run(&job, context, &mut veil_testkit::seeded_rng(5)).map(|_| ())
}

#[test]
fn runs_that_publish_nothing_leave_no_output_folder() {
    let directory = tempfile::tempdir().unwrap();
    // Refused by the budget: the folder (two levels of it) was never created.
    let refused = directory.path().join("refused").join("out");
    let mut ledger = CountingLedger::allowing(0);
    let error = run_into(&refused, &mut ledger).unwrap_err();
    assert!(error.to_string().contains("this run needs"), "{error}");
    assert!(!refused.exists() && !refused.parent().unwrap().exists());

    // Failed after the release was staged: the staged files and the folder go again.
    let failed = directory.path().join("failed").join("out");
    std::fs::create_dir(failed.parent().unwrap()).unwrap();
    let mut ledger = FailingCommit(CountingLedger::allowing(5));
    let error = run_into(&failed, &mut ledger).unwrap_err();
    assert!(error.to_string().contains("disk failed"), "{error}");
    assert!(!failed.exists(), "an empty output folder was left behind");
    assert!(
        failed.parent().unwrap().exists(),
        "a folder that existed stays"
    );

    // A folder that existed before the run stays, even when the run fails.
    let existing = directory.path().join("existing").join("out");
    std::fs::create_dir_all(&existing).unwrap();
    let mut ledger = FailingCommit(CountingLedger::allowing(5));
    run_into(&existing, &mut ledger).unwrap_err();
    assert!(existing.is_dir());
    assert_eq!(std::fs::read_dir(&existing).unwrap().count(), 0);

    // Released: the folder is created and holds the release.
    let released = directory.path().join("released").join("out");
    let mut ledger = CountingLedger::allowing(5);
    run_into(&released, &mut ledger).unwrap();
    assert!(released.join("release.json").is_file());
}
