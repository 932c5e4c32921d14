//! Small datasets and a ledger double for the engine's tests.

use std::path::Path;

use polars::prelude::*;
use veil_accountant::{
    BudgetError, BudgetKey, BudgetLedger, BudgetStatus, Charge, Exhausted, PrivacyBudget,
    ReleaseRecord, Reservation,
};
use veil_core::{Bounds, Delta, Epsilon};
use veil_engine::job::{
    Aggregate, AggregateKind, ContributionBounds, Governance, Job, JobBudget, Output, OutputFormat,
    Partitions, Query, Source, SourceFormat, ValueColumn,
};

/// Writes rows `(user_id, country, value)` to a Parquet file.
pub(crate) fn write_events(path: &Path, rows: &[(Option<i64>, &str, Option<f64>)]) {
    let users: Vec<Option<i64>> = rows.iter().map(|row| row.0).collect();
    let countries: Vec<&str> = rows.iter().map(|row| row.1).collect();
    let values: Vec<Option<f64>> = rows.iter().map(|row| row.2).collect();
    let mut frame = DataFrame::new(
        rows.len(),
        vec![
            Column::new("user_id".into(), users),
            Column::new("country".into(), countries),
            Column::new("value".into(), values),
        ],
    )
    .unwrap();
    let file = std::fs::File::create(path).unwrap();
    ParquetWriter::new(file).finish(&mut frame).unwrap();
}

pub(crate) fn value_column(lower: f64, upper: f64) -> ValueColumn {
    ValueColumn {
        name: "value".into(),
        bounds: Bounds::new(lower, upper).unwrap(),
    }
}

pub(crate) fn aggregate(kind: AggregateKind) -> Aggregate {
    Aggregate {
        name: kind.default_name(),
        kind,
        weight: 1.0,
    }
}

pub(crate) fn query(l0: u32, linf: u32, aggregates: Vec<Aggregate>) -> Query {
    Query {
        name: "by_country".into(),
        group_by: vec!["country".into()],
        bounds: ContributionBounds {
            max_groups_per_unit: l0,
            max_rows_per_group: linf,
        },
        partitions: Partitions::Private,
        aggregates,
        weight: 1.0,
        drop_missing: Vec::new(),
        selection: Default::default(),
        auto: Vec::new(),
    }
}

pub(crate) fn job(source: &Path, output: &Path, budget: JobBudget, queries: Vec<Query>) -> Job {
    Job {
        name: "test".into(),
        job_hash: "abc".into(),
        source: Source {
            path: source.to_path_buf(),
            format: SourceFormat::from_path(source),
            privacy_unit: "user_id".into(),
        },
        budget,
        queries,
        output: Output {
            directory: output.to_path_buf(),
            format: OutputFormat::Csv,
        },
        governance: Governance::unrestricted("analytics", veil_engine::sample::SAMPLE_END_MS),
        noise: veil_engine::job::NoisePreference::Auto,
    }
}

pub(crate) fn approx(epsilon: f64, delta: f64) -> JobBudget {
    JobBudget::Approx(Epsilon::new(epsilon).unwrap(), Delta::new(delta).unwrap())
}

/// State of a charge in [`CountingLedger`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum State {
    Reserved,
    Committed,
    Aborted,
}

/// A ledger that allows a fixed number of charges: enough to test the protocol the
/// engine follows (the real composition is tested in veil-ledger).
#[derive(Debug, Default)]
pub(crate) struct CountingLedger {
    pub(crate) allowed: usize,
    pub(crate) charges: Vec<(Charge, State)>,
    pub(crate) releases: Vec<ReleaseRecord>,
}

impl CountingLedger {
    pub(crate) fn allowing(allowed: usize) -> Self {
        Self {
            allowed,
            ..Self::default()
        }
    }

    pub(crate) fn states(&self) -> Vec<State> {
        self.charges.iter().map(|(_, state)| *state).collect()
    }

    fn budget(count: usize) -> PrivacyBudget {
        #[allow(clippy::cast_precision_loss)]
        let epsilon = count as f64;
        PrivacyBudget::Approx {
            epsilon,
            delta: 0.0,
        }
    }
}

impl BudgetLedger for CountingLedger {
    fn reserve(&mut self, key: &BudgetKey, charge: &Charge) -> Result<Reservation, BudgetError> {
        let spent = self
            .charges
            .iter()
            .filter(|(_, state)| *state != State::Aborted)
            .count();
        if spent >= self.allowed {
            return Err(BudgetError::Exhausted(Box::new(Exhausted {
                key: key.clone(),
                requested: Self::budget(1),
                spent: Self::budget(spent),
                remaining: Self::budget(0),
                total: Self::budget(self.allowed),
            })));
        }
        self.charges.push((charge.clone(), State::Reserved));
        Ok(Reservation {
            id: i64::try_from(self.charges.len()).unwrap(),
            key: key.clone(),
        })
    }

    fn commit(&mut self, reservation: &Reservation) -> Result<(), BudgetError> {
        self.transition(reservation, State::Committed)
    }

    fn abort(&mut self, reservation: &Reservation) -> Result<(), BudgetError> {
        self.transition(reservation, State::Aborted)
    }

    fn record_release(
        &mut self,
        _: &Reservation,
        release: &ReleaseRecord,
    ) -> Result<(), BudgetError> {
        self.releases.push(release.clone());
        Ok(())
    }

    fn record_diagnostics(
        &mut self,
        _: &Reservation,
        _: &[veil_accountant::NotPrivateCount],
    ) -> Result<(), BudgetError> {
        Ok(())
    }

    fn status(&self, key: &BudgetKey) -> Result<BudgetStatus, BudgetError> {
        let spent = self
            .charges
            .iter()
            .filter(|(_, state)| *state != State::Aborted)
            .count();
        Ok(BudgetStatus {
            key: key.clone(),
            total: Self::budget(self.allowed),
            spent: Self::budget(spent),
            remaining: Self::budget(self.allowed.saturating_sub(spent)),
        })
    }
}

impl CountingLedger {
    fn transition(&mut self, reservation: &Reservation, to: State) -> Result<(), BudgetError> {
        let index = usize::try_from(reservation.id - 1).unwrap();
        match self.charges.get_mut(index) {
            Some((_, state)) if *state == State::Reserved => {
                *state = to;
                Ok(())
            }
            other => Err(BudgetError::NotReserved {
                id: reservation.id,
                state: format!("{:?}", other.map(|c| c.1)),
            }),
        }
    }
}

pub(crate) fn key() -> BudgetKey {
    BudgetKey {
        dataset: "events".into(),
        purpose: "analytics".into(),
    }
}
