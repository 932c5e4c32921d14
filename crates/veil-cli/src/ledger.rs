//! Opening the ledger: how long to wait for another process's lock (`--ledger-timeout`),
//! telling the operator at once that the command waits, and [`JobLedger`], the ledger of
//! a run, which creates neither the ledger file nor the registry's budget before the run
//! reserves its cost.

use std::path::{Path, PathBuf};
use std::time::Duration;

use veil_accountant::budget::check_charge;
use veil_accountant::{
    BudgetError, BudgetKey, BudgetLedger, BudgetPeriod, BudgetStatus, Charge, NotPrivateCount,
    PrivacyBudget, ReleaseRecord, Reservation,
};
use veil_core::Compact;
use veil_ledger::{OpenOptions, SqliteLedger};

/// The `--ledger-timeout` flag of the commands that open the ledger.
#[derive(Debug, Clone, Copy, clap::Args)]
pub(crate) struct LockTimeout {
    /// How long to wait when another process holds the ledger (another run, or an SQLite
    /// client with a write transaction open) before failing: 90s, 5m, 1h, 0 to fail at
    /// once. The wait is announced on stderr as soon as it starts.
    #[arg(
        long = "ledger-timeout",
        value_name = "DURATION",
        env = "VEIL_LEDGER_TIMEOUT",
        default_value = "2m",
        value_parser = parse_timeout
    )]
    timeout: Duration,
}

impl LockTimeout {
    /// A timeout of `timeout`.
    pub(crate) fn new(timeout: Duration) -> Self {
        Self { timeout }
    }

    /// Options that wait up to the timeout and say on stderr, at once, that they wait.
    pub(crate) fn options(self) -> OpenOptions {
        let mut options = OpenOptions::new();
        options
            .lock_timeout(self.timeout)
            .on_lock_wait(|path, timeout| {
                errln!(
                    "waiting for the ledger {}: another process holds it (another run, or an SQLite client with a write transaction open); giving up after {} (--ledger-timeout)",
                    path.display(),
                    duration_text(timeout)
                );
            });
        options
    }
}

/// Reads a duration: a number with `ms`, `s`, `m` or `h` (`90s`, `1.5m`), or a bare
/// number of seconds.
pub(crate) fn parse_timeout(text: &str) -> Result<Duration, String> {
    let trimmed = text.trim();
    let split = trimmed
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(trimmed.len());
    let (number, unit) = trimmed.split_at(split);
    let invalid = || format!("{text:?} is not a duration like 90s, 5m, 1h or 0");
    let number: f64 = number.parse().map_err(|_| invalid())?;
    let seconds = match unit.trim() {
        "" | "s" => number,
        "ms" => number / 1000.0,
        "m" | "min" => number * 60.0,
        "h" => number * 3600.0,
        _ => return Err(invalid()),
    };
    Duration::try_from_secs_f64(seconds)
        .ok()
        .filter(|duration| *duration <= Duration::from_secs(7 * 86_400))
        .ok_or_else(|| format!("{text:?}: give a duration between 0 and a week"))
}

/// A duration as people say it: `0.5 s`, `45 s`, `2 min`, `1.5 h`.
pub(crate) fn duration_text(duration: Duration) -> String {
    let seconds = duration.as_secs_f64();
    if seconds < 120.0 {
        format!("{} s", Compact(seconds))
    } else if seconds < 7200.0 {
        format!("{} min", Compact(seconds / 60.0))
    } else if seconds < 2.0 * 86_400.0 {
        format!("{} h", Compact(seconds / 3600.0))
    } else {
        format!("{} days", Compact(seconds / 86_400.0))
    }
}

/// A budget amount with its unit, compact: `ε = 0.75`, `ε = 1 (δ = 1e-6)`, `ρ = 0.125`.
pub(crate) fn budget_text(budget: &PrivacyBudget) -> String {
    match *budget {
        PrivacyBudget::Approx {
            epsilon,
            delta: 0.0,
        } => format!("ε = {}", Compact(epsilon)),
        PrivacyBudget::Approx { epsilon, delta } => {
            format!("ε = {} (δ = {})", Compact(epsilon), Compact(delta))
        }
        PrivacyBudget::Zcdp { rho } => format!("ρ = {}", Compact(rho)),
    }
}

/// The budget a run may create: the purposes registry's, for the job's purpose.
pub(crate) type RegistryBudget = (PrivacyBudget, Option<BudgetPeriod>);

/// The ledger of one run. The file, and the registry's budget in it, are created only
/// when the run reserves its cost, in the same transaction as the reservation, and only
/// if a fresh budget can hold the charge: a run that fails before its reservation, or is
/// refused, creates no ledger file and no budget.
pub(crate) struct JobLedger {
    path: PathBuf,
    options: OpenOptions,
    /// The ledger, once the file exists.
    ledger: Option<SqliteLedger>,
    /// The budget to create if the ledger has none for the run's (dataset, purpose).
    registry: Option<RegistryBudget>,
}

impl JobLedger {
    /// The ledger at `path`, opened now if the file exists (so a file that is not a
    /// ledger fails before anything is read), else when the run reserves.
    pub(crate) fn new(
        path: &Path,
        options: OpenOptions,
        registry: Option<RegistryBudget>,
    ) -> Result<Self, BudgetError> {
        let ledger = if path.exists() {
            Some(SqliteLedger::open_with(path, &options)?)
        } else {
            None
        };
        Ok(Self {
            path: path.to_path_buf(),
            options,
            ledger,
            registry,
        })
    }

    /// The ledger, if its file exists.
    pub(crate) fn opened(&self) -> Option<&SqliteLedger> {
        self.ledger.as_ref()
    }

    fn existing(&mut self, id: i64) -> Result<&mut SqliteLedger, BudgetError> {
        self.ledger.as_mut().ok_or(BudgetError::NoCharge { id })
    }
}

impl BudgetLedger for JobLedger {
    fn reserve(&mut self, key: &BudgetKey, charge: &Charge) -> Result<Reservation, BudgetError> {
        let Some((total, period)) = self.registry else {
            return match &mut self.ledger {
                Some(ledger) => ledger.reserve(key, charge),
                None => Err(BudgetError::NoBudget { key: key.clone() }),
            };
        };
        let ledger = match &mut self.ledger {
            Some(ledger) => ledger,
            None => {
                // Refuse a charge that even a fresh budget cannot hold before the file
                // exists: a refused run leaves no ledger behind.
                check_charge(key, &total, &[], charge)?;
                self.ledger
                    .insert(SqliteLedger::create_with(&self.path, &self.options)?)
            }
        };
        let (reservation, created) = ledger.reserve_creating_budget(key, charge, total, period)?;
        if created {
            errln!(
                "created the budget for {key} from the registry: {}{} in {}",
                budget_text(&total),
                period.map_or_else(String::new, |period| format!(", renewing every {period}")),
                self.path.display()
            );
        }
        Ok(reservation)
    }

    fn commit(&mut self, reservation: &Reservation) -> Result<(), BudgetError> {
        self.existing(reservation.id)?.commit(reservation)
    }

    fn abort(&mut self, reservation: &Reservation) -> Result<(), BudgetError> {
        self.existing(reservation.id)?.abort(reservation)
    }

    fn record_release(
        &mut self,
        reservation: &Reservation,
        release: &ReleaseRecord,
    ) -> Result<(), BudgetError> {
        self.existing(reservation.id)?
            .record_release(reservation, release)
    }

    fn status(&self, key: &BudgetKey) -> Result<BudgetStatus, BudgetError> {
        match &self.ledger {
            Some(ledger) => ledger.status(key),
            None => Err(BudgetError::NoBudget { key: key.clone() }),
        }
    }

    fn record_diagnostics(
        &mut self,
        reservation: &Reservation,
        counts: &[NotPrivateCount],
    ) -> Result<(), BudgetError> {
        self.existing(reservation.id)?
            .record_diagnostics(reservation, counts)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timeouts_read_as_people_write_them() {
        assert_eq!(parse_timeout("90s"), Ok(Duration::from_secs(90)));
        assert_eq!(parse_timeout("2m"), Ok(Duration::from_secs(120)));
        assert_eq!(parse_timeout("1.5h"), Ok(Duration::from_secs(5400)));
        assert_eq!(parse_timeout("250ms"), Ok(Duration::from_millis(250)));
        assert_eq!(parse_timeout("0"), Ok(Duration::ZERO));
        assert_eq!(parse_timeout("30"), Ok(Duration::from_secs(30)));
        for bad in ["", "soon", "-5s", "5 parsecs", "1e9", "9w", "NaN"] {
            assert!(parse_timeout(bad).is_err(), "{bad}");
        }
        assert_eq!(duration_text(Duration::from_millis(500)), "0.5 s");
        assert_eq!(duration_text(Duration::from_secs(120)), "2 min");
        assert_eq!(duration_text(Duration::from_secs(5400)), "90 min");
        assert_eq!(duration_text(Duration::from_secs(3 * 3600)), "3 h");
    }

    #[test]
    fn budgets_print_compactly() {
        let huge = PrivacyBudget::Approx {
            epsilon: 1e308,
            delta: 2.2e-308,
        };
        assert_eq!(budget_text(&huge), "ε = 1e308 (δ = 2.2e-308)");
        let pure = PrivacyBudget::Approx {
            epsilon: 0.123_456,
            delta: 0.0,
        };
        assert_eq!(budget_text(&pure), "ε = 0.1235");
    }
}
