//! Private consent metrics: how many people granted, revoked, and had consent in force, per
//! period — released with noise so that a team can watch withdrawal rates without seeing
//! anyone's choice.
//!
//! Each person adds at most 1 to each of the three counts of each period, so with `n`
//! periods the counts have L1 sensitivity `3n` and squared L2 sensitivity `3n`; the periods
//! are public (fixed windows ending at the as-of time), so no partition selection is
//! needed. The cost is reserved in the ledger before any noise is drawn and committed
//! before the result is returned.

use polars::prelude::*;
use rand_core::{CryptoRng, Rng};
use veil_accountant::{BudgetKey, BudgetLedger, Charge, ChargeItem, MechanismProfile};
use veil_core::mechanism::{GaussianMechanism, LaplaceMechanism};
use veil_core::{L1Sensitivity, Released};

use crate::EngineError;
use crate::job::{Consent, JobBudget};
use crate::scan::scan_source;

/// What to measure.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConsentStatsSpec {
    /// The consent log.
    pub consent: Consent,
    /// The purpose whose consent is counted.
    pub purpose: String,
    /// The end of the last period (ms since the Unix epoch, UTC).
    pub as_of_ms: i64,
    /// The length of a period in milliseconds.
    pub period_ms: i64,
    /// How many periods, ending at `as_of_ms`.
    pub periods: u32,
}

/// One period's released counts.
#[derive(Debug, Clone)]
pub struct ConsentPeriod {
    /// Start of the period (inclusive), ms since the Unix epoch.
    pub from_ms: i64,
    /// End of the period (inclusive), ms since the Unix epoch.
    pub to_ms: i64,
    /// People with at least one grant in the period.
    pub grants: Released<i64>,
    /// People with at least one revocation in the period.
    pub revocations: Released<i64>,
    /// People whose consent was in force at the end of the period.
    pub in_force: Released<i64>,
}

const UNIT: &str = "__veil_unit";
const AT: &str = "__veil_at";
const ACTION: &str = "__veil_action";

/// The true counts per period: `(grants, revocations, in force)`.
fn true_counts(spec: &ConsentStatsSpec) -> Result<Vec<(i64, i64, i64)>, EngineError> {
    let table = &spec.consent;
    let mut log = scan_source(&table.source())?;
    let schema = log
        .collect_schema()
        .map_err(|e| EngineError::polars("reading the consent table's schema", &e))?;
    let per_ms: i64 = match schema.get(&table.time_column) {
        Some(DataType::Datetime(TimeUnit::Milliseconds, _)) => 1,
        Some(DataType::Datetime(TimeUnit::Microseconds, _)) => 1_000,
        Some(DataType::Datetime(TimeUnit::Nanoseconds, _)) => 1_000_000,
        Some(other) => {
            return Err(EngineError::ColumnType {
                key: "consent.time_column".to_string(),
                column: table.time_column.clone(),
                found: other.to_string(),
                expected: "a timestamp column",
            });
        }
        None => {
            return Err(EngineError::ColumnNotFound {
                key: "consent.time_column".to_string(),
                column: table.time_column.clone(),
                path: table.path.clone(),
                available: schema.iter_names().map(ToString::to_string).collect(),
            });
        }
    };
    let events = log
        .filter(
            col(table.purpose_column.as_str())
                .cast(DataType::String)
                .eq(lit(spec.purpose.as_str())),
        )
        .select([
            col(table.unit_column.as_str())
                .cast(DataType::String)
                .alias(UNIT),
            (col(table.time_column.as_str()).cast(DataType::Int64) / lit(per_ms)).alias(AT),
            col(table.action_column.as_str())
                .cast(DataType::String)
                .alias(ACTION),
        ])
        .filter(col(UNIT).is_not_null().and(col(AT).is_not_null()))
        .collect()
        .map_err(|e| EngineError::polars("reading the consent table", &e))?
        .lazy();
    let mut frames = Vec::new();
    for index in 0..spec.periods {
        let (from, to) = window(spec, index);
        let in_window = col(AT).gt_eq(lit(from)).and(col(AT).lt_eq(lit(to)));
        let distinct = |action: &str| {
            events
                .clone()
                .filter(in_window.clone().and(col(ACTION).eq(lit(action))))
                .select([col(UNIT).n_unique().cast(DataType::Int64).alias("n")])
        };
        frames.push(distinct("grant"));
        frames.push(distinct("revoke"));
        // In force at the end: the latest event at or before `to` is a grant (a revoke
        // wins a tie).
        frames.push(
            events
                .clone()
                .filter(col(AT).lt_eq(lit(to)))
                .with_column(
                    col(ACTION)
                        .eq(lit("revoke"))
                        .cast(DataType::Int8)
                        .alias("__veil_revoke"),
                )
                .group_by([col(UNIT)])
                .agg([col(ACTION)
                    .sort_by(
                        [col(AT), col("__veil_revoke")],
                        SortMultipleOptions::default(),
                    )
                    .last()
                    .alias("latest")])
                .select([col("latest")
                    .eq(lit("grant"))
                    .sum()
                    .cast(DataType::Int64)
                    .alias("n")]),
        );
    }
    let plans: Vec<DslPlan> = frames.into_iter().map(|frame| frame.logical_plan).collect();
    let results = LazyFrame::collect_all_with_engine(plans, Engine::Auto, OptFlags::default())
        .map_err(|e| EngineError::polars("counting consent events", &e))?;
    let value = |frame: &DataFrame| -> Result<i64, EngineError> {
        frame
            .column("n")
            .and_then(|column| column.i64().map(|values| values.get(0).unwrap_or(0)))
            .map_err(|e| EngineError::polars("counting consent events", &e))
    };
    results
        .chunks(3)
        .map(|chunk| Ok((value(&chunk[0])?, value(&chunk[1])?, value(&chunk[2])?)))
        .collect()
}

/// The `index`-th period (0 is the oldest), inclusive bounds in ms.
fn window(spec: &ConsentStatsSpec, index: u32) -> (i64, i64) {
    let back = i64::from(spec.periods - index);
    let to = spec.as_of_ms - (back - 1) * spec.period_ms;
    (to - spec.period_ms + 1, to)
}

enum Noise {
    Laplace(LaplaceMechanism),
    Gaussian(GaussianMechanism),
}

impl Noise {
    fn release<R: Rng + CryptoRng + ?Sized>(&self, value: i64, rng: &mut R) -> Released<i64> {
        match self {
            Self::Laplace(mechanism) => mechanism.release(value, rng),
            Self::Gaussian(mechanism) => mechanism.release(value, rng),
        }
    }
}

/// Counts, charges and releases the consent metrics.
///
/// # Errors
/// [`EngineError`] if the consent table cannot be read or the ledger refuses the charge
/// (then nothing is released).
pub fn release_consent_stats<R: Rng + CryptoRng + ?Sized>(
    spec: &ConsentStatsSpec,
    budget: JobBudget,
    ledger: &mut dyn BudgetLedger,
    key: &BudgetKey,
    rng: &mut R,
) -> Result<(Vec<ConsentPeriod>, i64), EngineError> {
    if spec.periods == 0 || spec.period_ms <= 0 {
        return Err(EngineError::invalid(
            "periods",
            "count at least one period of positive length",
        ));
    }
    let sensitivity = 3 * u64::from(spec.periods);
    let noise = match budget {
        JobBudget::Pure(epsilon) => Noise::Laplace(
            LaplaceMechanism::new(L1Sensitivity::integer(sensitivity), epsilon)
                .map_err(|e| EngineError::param("epsilon", e))?,
        ),
        JobBudget::Approx(epsilon, delta) => {
            let rho = veil_core::calibrate::epsilon_to_rho(epsilon, delta)
                .map_err(|e| EngineError::param("epsilon", e))?;
            Noise::Gaussian(
                GaussianMechanism::new_zcdp_squared(u128::from(sensitivity), rho)
                    .map_err(|e| EngineError::param("rho", e))?,
            )
        }
        JobBudget::Zcdp(rho) => Noise::Gaussian(
            GaussianMechanism::new_zcdp_squared(u128::from(sensitivity), rho)
                .map_err(|e| EngineError::param("rho", e))?,
        ),
    };
    let counts = true_counts(spec)?;
    let profile = match &noise {
        Noise::Laplace(mechanism) => MechanismProfile::DiscreteLaplace {
            scale: mechanism.scale().to_f64_up(),
            sensitivity: mechanism.sensitivity(),
        },
        Noise::Gaussian(mechanism) => {
            MechanismProfile::Guarantee(veil_core::mechanism::Mechanism::loss(mechanism))
        }
    };
    let charge = Charge {
        job: format!("consent-stats:{}", spec.purpose),
        job_hash: String::new(),
        items: vec![ChargeItem {
            label: format!("consent.{}.counts", spec.purpose),
            profile,
            times: 1,
        }],
    };
    let reservation = ledger.reserve(key, &charge)?;
    let released: Vec<ConsentPeriod> = counts
        .into_iter()
        .enumerate()
        .map(|(index, (grants, revocations, in_force))| {
            let (from_ms, to_ms) = window(spec, u32::try_from(index).unwrap_or(u32::MAX));
            ConsentPeriod {
                from_ms,
                to_ms,
                grants: noise.release(grants, rng),
                revocations: noise.release(revocations, rng),
                in_force: noise.release(in_force, rng),
            }
        })
        .collect();
    ledger.commit(&reservation)?;
    Ok((released, reservation.id))
}
