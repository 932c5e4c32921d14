//! The report's error type.

/// Why a report could not be built or rendered. Messages name the query, aggregate or
/// parameter at fault and never a value from the data.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ReportError {
    /// An input is inconsistent.
    #[error("{what}: {reason}")]
    Invalid {
        /// What is wrong, e.g. `query "by_country": epsilons`.
        what: String,
        /// Why, and how to fix it.
        reason: String,
    },
    /// The caller's planner could not plan the noise for some parameters.
    #[error("planning the noise at ε = {epsilon} for query {query:?}: {reason}")]
    Planning {
        /// The ε asked for.
        epsilon: f64,
        /// The query.
        query: String,
        /// The planner's message.
        reason: String,
    },
    /// Drawing a chart failed.
    #[error("drawing chart {chart}: {reason}")]
    Chart {
        /// The chart's name.
        chart: String,
        /// What failed.
        reason: String,
    },
    /// Rendering a template failed (a bug in Veil's templates).
    #[error("rendering {template}: {reason}")]
    Template {
        /// The template.
        template: &'static str,
        /// What failed.
        reason: String,
    },
}
