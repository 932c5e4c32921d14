//! Exit codes: 0 success, 1 a failure while running, 2 a usage or configuration error,
//! 3 a release refused because the privacy budget would be exceeded.

use std::error::Error;
use std::fmt;
use std::process::ExitCode;

/// Why a command failed, as far as the exit code is concerned.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Failure {
    /// The command line or a configuration file is wrong: fix it and run again.
    Usage,
    /// The ledger refused the charge: the budget is spent.
    BudgetRefused,
}

impl Failure {
    fn code(self) -> u8 {
        match self {
            Self::Usage => 2,
            Self::BudgetRefused => 3,
        }
    }
}

/// An error tagged with its [`Failure`] kind. It displays exactly as the error it wraps,
/// so tagging never changes a message.
#[derive(Debug)]
pub(crate) struct Classified {
    failure: Failure,
    inner: Box<dyn Error + Send + Sync + 'static>,
}

impl fmt::Display for Classified {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(&self.inner, f)
    }
}

impl Error for Classified {
    fn source(&self) -> Option<&(dyn Error + 'static)> {
        self.inner.source()
    }
}

/// Tags an error's exit code.
pub(crate) trait Classify<T> {
    /// Classifies the error as a usage or configuration error (exit 2).
    fn usage(self) -> anyhow::Result<T>;
}

impl<T, E> Classify<T> for Result<T, E>
where
    E: Error + Send + Sync + 'static,
{
    fn usage(self) -> anyhow::Result<T> {
        self.map_err(|error| {
            anyhow::Error::new(Classified {
                failure: Failure::Usage,
                inner: Box::new(error),
            })
        })
    }
}

/// The exit code for an error: that of the first [`Classified`] cause, else 1.
pub(crate) fn code_for(error: &anyhow::Error) -> ExitCode {
    let failure = error
        .chain()
        .find_map(|cause| cause.downcast_ref::<Classified>())
        .map(|tagged| tagged.failure);
    ExitCode::from(failure.map_or(1, Failure::code))
}

/// An engine error, classified: the job, its files and columns are usage errors; a
/// refused charge is `BudgetRefused`; the rest are failures while running.
pub(crate) fn engine(error: veil_engine::EngineError) -> anyhow::Error {
    let failure = engine_failure(&error);
    classified(error, failure)
}

/// The class of an engine error (see [`engine`]).
pub(crate) fn engine_failure(error: &veil_engine::EngineError) -> Option<Failure> {
    use veil_engine::EngineError as E;
    match error {
        E::InvalidJob { .. }
        | E::Param { .. }
        | E::SourceNotFound { .. }
        | E::SourceUnreadable { .. }
        | E::ColumnNotFound { .. }
        | E::ColumnType { .. } => Some(Failure::Usage),
        E::Budget(budget) => budget_failure(budget),
        _ => None,
    }
}

/// The class of a ledger error: exhausted → `BudgetRefused`, no budget or an incompatible
/// charge → `Usage`.
pub(crate) fn budget_failure(error: &veil_accountant::BudgetError) -> Option<Failure> {
    use veil_accountant::BudgetError as B;
    match error {
        B::Exhausted(_) => Some(Failure::BudgetRefused),
        B::NoBudget { .. } | B::Incompatible { .. } => Some(Failure::Usage),
        _ => None,
    }
}

/// Wraps an error with an optional class.
pub(crate) fn classified<E: Error + Send + Sync + 'static>(
    error: E,
    failure: Option<Failure>,
) -> anyhow::Error {
    match failure {
        Some(failure) => anyhow::Error::new(Classified {
            failure,
            inner: Box::new(error),
        }),
        None => anyhow::Error::new(error),
    }
}

/// A usage error with a message.
pub(crate) fn usage_error(message: impl fmt::Display) -> anyhow::Error {
    let inner: Box<dyn Error + Send + Sync> = message.to_string().into();
    anyhow::Error::new(Classified {
        failure: Failure::Usage,
        inner,
    })
}
