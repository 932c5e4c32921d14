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

/// The error and its causes on one line, `context: cause: cause`, each text once. Library
/// errors often quote their source in their own message and return it as their source too
/// (an OS error under "writing out/by_country.csv: Permission denied (os error 13)"), and
/// SQLite's message comes again under its error code: a cause whose text an earlier part
/// already holds is left out, and a cause that holds the previous part whole replaces it.
pub(crate) fn render(error: &anyhow::Error) -> String {
    let mut parts: Vec<String> = Vec::new();
    for cause in error.chain() {
        let text = cause.to_string();
        if text.is_empty() || parts.iter().any(|part| part.contains(&text)) {
            continue;
        }
        match parts.last_mut() {
            Some(last) if text.contains(last.as_str()) => *last = text,
            _ => parts.push(text),
        }
    }
    parts.join(": ")
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
    ExitCode::from(failure_of(error).map_or(1, Failure::code))
}

/// The class of an error: that of its first [`Classified`] cause, if any.
pub(crate) fn failure_of(error: &anyhow::Error) -> Option<Failure> {
    error
        .chain()
        .find_map(|cause| cause.downcast_ref::<Classified>())
        .map(|tagged| tagged.failure)
}

/// An engine error, classified: the job, its files and columns are usage errors; a
/// refused charge is `BudgetRefused`; the rest are failures while running.
pub(crate) fn engine(error: veil_engine::EngineError) -> anyhow::Error {
    let failure = engine_failure(&error);
    classified(error, failure)
}

/// A ledger error, classified as [`budget_failure`] says.
pub(crate) fn budget(error: veil_accountant::BudgetError) -> anyhow::Error {
    let failure = budget_failure(&error);
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
        | E::ColumnType { .. }
        | E::MemoryBudget { .. } => Some(Failure::Usage),
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

#[cfg(test)]
mod tests {
    use super::*;

    /// An error that quotes its source in its message and returns it as its source.
    #[derive(Debug)]
    struct Quoting {
        source: std::io::Error,
    }

    impl fmt::Display for Quoting {
        fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            write!(f, "writing out/t.csv: {}", self.source)
        }
    }

    impl Error for Quoting {
        fn source(&self) -> Option<&(dyn Error + 'static)> {
            Some(&self.source)
        }
    }

    #[test]
    fn each_cause_is_printed_once() {
        let denied = || std::io::Error::from_raw_os_error(13);
        let error = anyhow::Error::new(Quoting { source: denied() }).context("run failed");
        let text = render(&error);
        assert_eq!(text.matches("os error 13").count(), 1, "{text}");
        assert!(
            text.starts_with("run failed: writing out/t.csv: "),
            "{text}"
        );

        // A cause that holds the previous part whole replaces it.
        let inner = anyhow::anyhow!("Error code 26: file is not a database")
            .context("file is not a database")
            .context("not a Veil ledger: l.sqlite");
        assert_eq!(
            render(&inner),
            "not a Veil ledger: l.sqlite: Error code 26: file is not a database"
        );

        // Distinct causes all stay, in order.
        let plain = std::io::Error::other("disk full");
        let error = anyhow::Error::new(plain).context("writing release.json");
        assert_eq!(render(&error), "writing release.json: disk full");
    }
}
