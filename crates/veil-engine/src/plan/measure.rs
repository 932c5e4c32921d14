//! What the scan measures per group, before noise: counts, sums on a grid, histograms.

use veil_core::Bounds;
use veil_core::mechanism::FixedPoint;

use super::Unaimed;
use crate::job::{ContributionBounds, Query};

/// Leaves of the quantile histogram: 16³ bins between the bounds.
pub const HISTOGRAM_BRANCHING: u32 = 16;

/// Levels of the quantile histogram tree.
pub const HISTOGRAM_DEPTH: u32 = 3;

/// A non-private per-group aggregate: what the scan computes before any noise.
#[derive(Debug, Clone, PartialEq)]
pub enum Measure {
    /// Rows per group (after bounding).
    Rows,
    /// Distinct privacy units per group.
    Units,
    /// Σ of a column's values, in steps of `grid`.
    Sum {
        /// The column.
        column: String,
        /// The bounds its values are clamped to.
        bounds: Bounds,
        /// The grid.
        grid: FixedPoint,
    },
    /// How many rows have a value (not null, not NaN) in a column.
    ValueCount {
        /// The column.
        column: String,
    },
    /// Σ of `2·steps − lower − upper`: twice the distance to the middle of the bounds.
    CenteredSum {
        /// The column.
        column: String,
        /// The bounds its values are clamped to.
        bounds: Bounds,
        /// The grid.
        grid: FixedPoint,
    },
    /// Σ of `(2·steps − lower − upper)²`, on a coarser grid.
    CenteredSquares {
        /// The column.
        column: String,
        /// The bounds its values are clamped to.
        bounds: Bounds,
        /// The (coarse) grid.
        grid: FixedPoint,
    },
    /// Rows per leaf bin of a column: `branching^depth` equal bins between the bounds.
    Histogram {
        /// The column.
        column: String,
        /// The bounds.
        bounds: Bounds,
    },
}

impl Measure {
    /// The count of `query`'s rows that have a value in `column`: the rows themselves when
    /// the query drops rows missing it (`drop_missing`), else the column's value count.
    #[must_use]
    pub fn count_of(query: &Query, column: &str) -> Self {
        if query.drop_missing.iter().any(|dropped| dropped == column) {
            Self::Rows
        } else {
            Self::ValueCount {
                column: column.to_string(),
            }
        }
    }

    /// The released count that a value interval's ends on `column` are checked against
    /// (an end aims a margin of rows beyond its quantile, which lands on its side only in a
    /// group with that many rows there): [`Measure::count_of`], when `released(key)` says
    /// the query releases it and selection does not threshold it (a count that passed a
    /// threshold leans up). Otherwise no end could ever leave the column's bounds, so no
    /// end is drawn and the plan gives their share to the point.
    ///
    /// # Errors
    /// [`Unaimed::Selected`] or [`Unaimed::NotReleased`].
    pub fn interval_count(
        query: &Query,
        column: &str,
        selection_count: Option<&str>,
        released: impl Fn(&str) -> bool,
    ) -> Result<String, Unaimed> {
        let count = Self::count_of(query, column).key();
        if selection_count == Some(count.as_str()) {
            Err(Unaimed::Selected)
        } else if released(&count) {
            Ok(count)
        } else {
            Err(Unaimed::NotReleased)
        }
    }

    /// The name of its column in the aggregated table. Measures of one column with other
    /// bounds are other measures (`sum:value[0,100]`, `sum:value[0,1]`).
    #[must_use]
    pub fn key(&self) -> String {
        let bounded = |kind: &str, column: &str, bounds: &Bounds| {
            format!(
                "{kind}:{column}[{},{}]",
                number_text(bounds.lower()),
                number_text(bounds.upper())
            )
        };
        match self {
            Self::Rows => "rows".to_string(),
            Self::Units => "units".to_string(),
            Self::Sum { column, bounds, .. } => bounded("sum", column, bounds),
            Self::ValueCount { column } => format!("values:{column}"),
            Self::CenteredSum { column, bounds, .. } => bounded("centered_sum", column, bounds),
            Self::CenteredSquares { column, bounds, .. } => {
                bounded("centered_squares", column, bounds)
            }
            Self::Histogram { column, bounds } => bounded("histogram", column, bounds),
        }
    }

    /// The column it reads, if any.
    #[must_use]
    pub fn column(&self) -> Option<&str> {
        match self {
            Self::Rows | Self::Units => None,
            Self::Sum { column, .. }
            | Self::ValueCount { column }
            | Self::CenteredSum { column, .. }
            | Self::CenteredSquares { column, .. }
            | Self::Histogram { column, .. } => Some(column),
        }
    }

    /// How much one unit can change this measure in one group, in steps, given its bounds
    /// (for a histogram: its rows).
    #[must_use]
    pub fn per_group_bound(&self, bounds: ContributionBounds) -> u128 {
        let rows = u128::from(bounds.max_rows_per_group);
        match self {
            Self::Rows | Self::ValueCount { .. } => rows,
            Self::Units => 1,
            Self::Sum { grid, .. } => rows * u128::from(grid.max_abs_steps()),
            Self::CenteredSum { grid, .. } => rows * u128::from(grid.width_steps()),
            Self::CenteredSquares { grid, .. } => {
                let width = u128::from(grid.width_steps());
                rows * width * width
            }
            Self::Histogram { .. } => rows,
        }
    }
}

/// A number as short text: an integer when it is one, else the shortest exact form.
fn number_text(value: f64) -> String {
    if value.fract() == 0.0 && value.abs() < 1e15 {
        #[allow(clippy::cast_possible_truncation)]
        let whole = value as i64;
        whole.to_string()
    } else {
        format!("{value}")
    }
}
