//! Which noisy measures answer a query, and how each released aggregate is derived from
//! them: the fewest measures, shared between aggregates, with every output a
//! post-processing of released measures.
//!
//! - a count is the row count `R`, a unit count the distinct-unit count `U`;
//! - a mean is `mid + C/N`, where `C = Σ (x − mid)` is the centred sum (its sensitivity is
//!   half the width of the bounds, not their largest absolute value) and `N` counts the
//!   rows with a value: the value count `V`, or `R` itself when the query drops rows without
//!   a value in that column (`drop_missing`), so that a count and a mean share `R`;
//! - a variance adds the centred squares `Q = Σ (x − mid)²`;
//! - a sum is either measured directly (`S`) or derived as `mid·N + C` from the mean's
//!   measures: the planner tries both and keeps the one whose outputs it predicts to be
//!   more accurate (derived wins when `N` and `C` are released anyway, or when the bounds
//!   sit far from zero);
//! - quantiles come from the exponential mechanism on the group's histogram.
//!
//! Private partition selection thresholds a count that is released anyway — `U` if it is
//! measured, else `R`, else `V` — costing only δ; only a query without any count (or one
//! whose job asks `selection = "units"` without releasing `U`) gets a distinct-unit count of
//! its own, for the selection alone.

use veil_core::Bounds;
use veil_core::mechanism::{FixedPoint, Granularity};

use super::Measure;
use crate::EngineError;
use crate::job::{AggregateKind, Query, Selection};

/// How one aggregate is computed from measures (by their keys).
#[derive(Debug, Clone, PartialEq)]
pub enum Derivation {
    /// A row count: `R`.
    Count {
        /// The row count's key.
        rows: String,
    },
    /// A distinct-unit count: `U`.
    UnitCount {
        /// The unit count's key.
        units: String,
    },
    /// A sum measured directly: `S`.
    Sum {
        /// The sum's key.
        sum: String,
    },
    /// A sum derived from a count and a centred sum: `mid·N + C`.
    CenteredSum {
        /// The count of rows with a value (`V`, or `R`).
        count: String,
        /// The centred sum's key.
        centered: String,
    },
    /// A mean: `mid + C/N`.
    Mean {
        /// The count of rows with a value.
        count: String,
        /// The centred sum's key.
        centered: String,
    },
    /// A variance: `Q/N − (C/N)²`.
    Variance {
        /// The count of rows with a value.
        count: String,
        /// The centred sum's key.
        centered: String,
        /// The centred squares' key.
        squares: String,
    },
    /// Quantiles by the exponential mechanism on the histogram.
    Quantiles {
        /// The histogram's key.
        histogram: String,
    },
}

impl Derivation {
    /// The keys of the measures it reads.
    #[must_use]
    pub fn measures(&self) -> Vec<&str> {
        match self {
            Self::Count { rows: key }
            | Self::UnitCount { units: key }
            | Self::Sum { sum: key }
            | Self::Quantiles { histogram: key } => vec![key],
            Self::CenteredSum { count, centered } | Self::Mean { count, centered } => {
                vec![count, centered]
            }
            Self::Variance {
                count,
                centered,
                squares,
            } => vec![count, centered, squares],
        }
    }

    /// In words, for `veil explain` and release.json: `mid·values:value + centered_sum:…`.
    #[must_use]
    pub fn formula(&self) -> String {
        match self {
            Self::Count { rows } => rows.clone(),
            Self::UnitCount { units } => units.clone(),
            Self::Sum { sum } => sum.clone(),
            Self::CenteredSum { count, centered } => format!("mid·{count} + {centered}"),
            Self::Mean { count, centered } => format!("mid + {centered} / {count}"),
            Self::Variance {
                count,
                centered,
                squares,
            } => format!("{squares} / {count} − ({centered} / {count})²"),
            Self::Quantiles { histogram } => {
                format!("permute-and-flip (or exponential mechanism) on {histogram}")
            }
        }
    }
}

/// How a query's sums are answered: measured, or derived from centred measures.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum SumForm {
    /// `S`, measured.
    Measured,
    /// `mid·N + C`.
    Centered,
}

/// A query's measures (their grids still the default ones: the budget decides them) and
/// each aggregate's derivation.
#[derive(Debug, Clone, PartialEq)]
pub(super) struct Design {
    pub(super) measures: Vec<Measure>,
    pub(super) derivations: Vec<Derivation>,
    /// The released count that private partition selection thresholds, if any.
    pub(super) selection_count: Option<String>,
    /// Whether the query needs a distinct-unit count for its selection alone.
    pub(super) separate_selection: bool,
}

/// How many sums a query has (each can take either form).
pub(super) fn sums_of(query: &Query) -> usize {
    query
        .aggregates
        .iter()
        .filter(|aggregate| matches!(aggregate.kind, AggregateKind::Sum(_)))
        .count()
}

/// The design of `query` with its sums in `forms` (one per sum, in order).
///
/// # Errors
/// [`EngineError::Param`] naming the aggregate if its bounds give no grid.
pub(super) fn design(
    query: &Query,
    forms: &[SumForm],
    selects_privately: bool,
) -> Result<Design, EngineError> {
    let mut measures: Vec<Measure> = Vec::new();
    let mut add = |measure: Measure| -> String {
        let key = measure.key();
        if !measures.iter().any(|existing| existing.key() == key) {
            measures.push(measure);
        }
        key
    };
    let mut forms = forms.iter();
    let mut derivations = Vec::new();
    for (index, aggregate) in query.aggregates.iter().enumerate() {
        let key = format!("query {:?}, aggregates[{index}]", query.name);
        let count_of = |column: &str| Measure::count_of(query, column);
        let centered_sum = |column: &crate::job::ValueColumn| -> Result<Measure, EngineError> {
            Ok(Measure::CenteredSum {
                column: column.name.clone(),
                bounds: column.bounds,
                grid: default_grid(column.bounds, &key)?,
            })
        };
        let derivation = match &aggregate.kind {
            AggregateKind::Count => Derivation::Count {
                rows: add(Measure::Rows),
            },
            AggregateKind::UnitCount => Derivation::UnitCount {
                units: add(Measure::Units),
            },
            AggregateKind::Sum(column) => {
                match forms.next().copied().unwrap_or(SumForm::Measured) {
                    SumForm::Measured => Derivation::Sum {
                        sum: add(Measure::Sum {
                            column: column.name.clone(),
                            bounds: column.bounds,
                            grid: default_grid(column.bounds, &key)?,
                        }),
                    },
                    SumForm::Centered => Derivation::CenteredSum {
                        count: add(count_of(&column.name)),
                        centered: add(centered_sum(column)?),
                    },
                }
            }
            AggregateKind::Mean(column) => Derivation::Mean {
                count: add(count_of(&column.name)),
                centered: add(centered_sum(column)?),
            },
            AggregateKind::Variance(column) => Derivation::Variance {
                count: add(count_of(&column.name)),
                centered: add(centered_sum(column)?),
                squares: add(Measure::CenteredSquares {
                    column: column.name.clone(),
                    bounds: column.bounds,
                    grid: default_grid(column.bounds, &key)?,
                }),
            },
            AggregateKind::Quantiles { column, .. } => Derivation::Quantiles {
                histogram: add(Measure::Histogram {
                    column: column.name.clone(),
                    bounds: column.bounds,
                }),
            },
        };
        derivations.push(derivation);
    }
    let (selection_count, separate_selection) = if selects_privately {
        let released = [Measure::Units, Measure::Rows]
            .iter()
            .map(Measure::key)
            .chain(
                measures
                    .iter()
                    .filter(|measure| matches!(measure, Measure::ValueCount { .. }))
                    .map(Measure::key),
            )
            .find(|key| measures.iter().any(|measure| measure.key() == *key));
        let units_released = measures.contains(&Measure::Units);
        match released {
            Some(key) if query.selection == Selection::Released || units_released => {
                (Some(key), false)
            }
            _ => {
                // Nothing counted is released, or the job asks for units: the scan counts
                // units for the selection alone.
                measures.push(Measure::Units);
                (None, true)
            }
        }
    } else {
        (None, false)
    };
    Ok(Design {
        measures,
        derivations,
        selection_count,
        separate_selection,
    })
}

/// A fine grid for `bounds` (the budget later coarsens it to the noise).
fn default_grid(bounds: Bounds, key: &str) -> Result<FixedPoint, EngineError> {
    FixedPoint::new(bounds, Granularity::for_bounds(bounds))
        .map_err(|e| EngineError::param(format!("{key}.bounds"), e))
}
