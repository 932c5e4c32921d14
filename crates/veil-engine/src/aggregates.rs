//! What a scan hands to the release: per query, the per-group aggregates before noise
//! ([`QueryAggregates`]), and what was read and dropped on the way ([`ScanCounts`], true
//! counts for the operator, never released). Another engine's results enter through
//! [`Aggregated::from_external`].

use std::collections::BTreeMap;

use polars::prelude::*;

use crate::EngineError;
use crate::frame::{NULL_KEY, int_column, row_keys};

/// The per-group aggregates of one query, before noise.
#[derive(Debug, Clone)]
pub struct QueryAggregates {
    /// Group-by columns, then one `Int64` column per measure key.
    pub(crate) groups: DataFrame,
    /// Per histogram measure key: group-by columns, `leaf`, `rows`.
    pub(crate) histograms: BTreeMap<String, DataFrame>,
}

impl QueryAggregates {
    /// How many groups have at least one unit after bounding.
    #[must_use]
    pub fn group_count(&self) -> usize {
        self.groups.height()
    }

    /// Each group's key, one text value per group-by column (`None` for null).
    ///
    /// # Errors
    /// [`EngineError`] if a group column is missing (a bug).
    pub fn group_keys(&self, group_by: &[String]) -> Result<Vec<Vec<Option<String>>>, EngineError> {
        let keys = row_keys(&self.groups, group_by)?;
        Ok(keys
            .into_iter()
            .map(|key| {
                key.into_iter()
                    .map(|value| (value != NULL_KEY).then_some(value))
                    .collect()
            })
            .collect())
    }

    /// The true (bounded, not noisy) values of a measure per group, in the order of
    /// [`QueryAggregates::group_keys`]; `None` if the query has no such measure.
    #[must_use]
    pub fn measure(&self, key: &str) -> Option<Vec<i64>> {
        self.groups.column(key).ok()?;
        int_column(&self.groups, key).ok()
    }

    /// The true leaf counts of a histogram measure (by its key): `(group index, leaf,
    /// rows)`.
    #[must_use]
    pub fn histogram(&self, key: &str, group_by: &[String]) -> Option<Vec<(usize, i64, i64)>> {
        let frame = self.histograms.get(key)?;
        let index: BTreeMap<Vec<String>, usize> = row_keys(&self.groups, group_by)
            .ok()?
            .into_iter()
            .enumerate()
            .map(|(row, key)| (key, row))
            .collect();
        let keys = row_keys(frame, group_by).ok()?;
        let leaves = int_column(frame, "leaf").ok()?;
        let rows = int_column(frame, "rows").ok()?;
        Some(
            keys.into_iter()
                .zip(leaves)
                .zip(rows)
                .filter_map(|((key, leaf), rows)| index.get(&key).map(|&group| (group, leaf, rows)))
                .collect(),
        )
    }
}

/// What a scan produced: the aggregates and what was dropped on the way.
#[derive(Debug, Clone)]
pub struct Aggregated {
    /// Per query, in the plan's order.
    pub queries: Vec<QueryAggregates>,
    /// What was read and dropped.
    pub counts: ScanCounts,
}

/// What a scan read and dropped: true counts from the data, for the operator (not
/// private, never released).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ScanCounts {
    /// Rows in the source.
    pub rows_read: u64,
    /// Rows outside the retention window (or without a time), never used.
    pub rows_outside_retention: u64,
    /// Rows of units without consent in force, never used.
    pub rows_without_consent: u64,
    /// Rows dropped because their privacy unit was null.
    pub rows_without_unit: u64,
    /// Per aggregated column, rows whose value was null or NaN (dropped from that column's
    /// aggregates).
    pub missing_values: BTreeMap<String, u64>,
    /// Distinct privacy units that remain after retention and consent.
    pub units: u64,
}

impl ScanCounts {
    /// The counts from what each stage of a scan passed: rows in the source, rows inside the
    /// retention window and those of them without a unit, rows with a unit whose consent is
    /// in force (every row with a unit, without a consent filter) and their distinct units,
    /// and missing values per aggregated column among them.
    #[must_use]
    pub fn from_passes(
        rows_read: u64,
        rows_in_window: u64,
        rows_without_unit: u64,
        rows_with_consent: u64,
        units: u64,
        missing_values: BTreeMap<String, u64>,
    ) -> Self {
        Self {
            rows_read,
            rows_outside_retention: rows_read.saturating_sub(rows_in_window),
            rows_without_consent: rows_in_window
                .saturating_sub(rows_without_unit)
                .saturating_sub(rows_with_consent),
            rows_without_unit,
            missing_values,
            units,
        }
    }

    /// The counts as the ledger keeps them beside a charge (not private, for the
    /// operator): `rows_read`, `rows_outside_retention`, `rows_without_consent`,
    /// `rows_without_unit`, `units` and `missing_values.<column>`.
    #[must_use]
    pub fn not_private(&self) -> Vec<veil_accountant::NotPrivateCount> {
        let count = |name: &str, count: u64| veil_accountant::NotPrivateCount {
            name: name.to_string(),
            count,
        };
        let mut counts = vec![
            count("rows_read", self.rows_read),
            count("rows_outside_retention", self.rows_outside_retention),
            count("rows_without_consent", self.rows_without_consent),
            count("rows_without_unit", self.rows_without_unit),
            count("units", self.units),
        ];
        for (column, missing) in &self.missing_values {
            counts.push(count(&format!("missing_values.{column}"), *missing));
        }
        counts
    }

    /// Refuses a scan that left fewer than `required` units, saying which stage emptied
    /// the source when one did.
    ///
    /// # Errors
    /// [`EngineError::TooFewUnits`].
    pub fn check_units(&self, required: u64) -> Result<(), EngineError> {
        if self.units >= required.max(1) {
            return Ok(());
        }
        let in_window = self.rows_read - self.rows_outside_retention;
        let why = if self.rows_read == 0 {
            ": the source has no rows".to_string()
        } else if in_window == 0 {
            format!(
                ": all {} rows are outside the purpose's retention window (check the time column and --as-of)",
                self.rows_read
            )
        } else if self.rows_without_consent + self.rows_without_unit == in_window {
            format!(
                ": none of the {in_window} rows inside the retention window has a unit whose consent for the purpose was in force at the as-of time (check the consent log's purposes, actions and dates, and --as-of)"
            )
        } else {
            String::new()
        };
        Err(EngineError::TooFewUnits {
            found: self.units,
            required: required.max(1),
            why,
        })
    }
}

/// Per-group aggregates computed by another engine, in Veil types.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct ExternalAggregates {
    /// Group-by columns.
    pub group_by: Vec<String>,
    /// One key per group, one value per group-by column (`None` for null).
    pub keys: Vec<Vec<Option<String>>>,
    /// Per measure key (see `Measure::key`), one value per group.
    pub measures: BTreeMap<String, Vec<i64>>,
    /// Per histogram column: `(group index, leaf, rows)`.
    pub histograms: BTreeMap<String, Vec<(usize, i64, i64)>>,
}

impl Aggregated {
    /// Aggregates computed elsewhere (another engine executing the same plan), one entry
    /// per query in the plan's order. Group keys become text columns.
    ///
    /// # Errors
    /// [`EngineError::Internal`] if a measure or key has the wrong number of values.
    pub fn from_external(
        queries: Vec<ExternalAggregates>,
        counts: ScanCounts,
    ) -> Result<Self, EngineError> {
        let mut converted = Vec::new();
        for query in queries {
            let height = query.keys.len();
            let mut columns = Vec::new();
            for (index, name) in query.group_by.iter().enumerate() {
                let values: Vec<Option<String>> = query
                    .keys
                    .iter()
                    .map(|key| key.get(index).cloned().flatten())
                    .collect();
                columns.push(Column::new(name.as_str().into(), values));
            }
            for (key, values) in &query.measures {
                if values.len() != height {
                    return Err(EngineError::Internal(format!(
                        "measure {key} has {} values for {height} groups",
                        values.len()
                    )));
                }
                columns.push(Column::new(key.as_str().into(), values.clone()));
            }
            let groups = DataFrame::new(height, columns)
                .map_err(|e| EngineError::polars("reading external aggregates", &e))?;
            let mut histograms = BTreeMap::new();
            for (column, rows) in query.histograms {
                let mut frame_columns = Vec::new();
                for (index, name) in query.group_by.iter().enumerate() {
                    let values: Vec<Option<String>> = rows
                        .iter()
                        .map(|(group, _, _)| {
                            query
                                .keys
                                .get(*group)
                                .and_then(|key| key.get(index).cloned().flatten())
                        })
                        .collect();
                    frame_columns.push(Column::new(name.as_str().into(), values));
                }
                frame_columns.push(Column::new(
                    "leaf".into(),
                    rows.iter().map(|row| row.1).collect::<Vec<_>>(),
                ));
                frame_columns.push(Column::new(
                    "rows".into(),
                    rows.iter().map(|row| row.2).collect::<Vec<_>>(),
                ));
                let frame = DataFrame::new(rows.len(), frame_columns)
                    .map_err(|e| EngineError::polars("reading external aggregates", &e))?;
                histograms.insert(column, frame);
            }
            converted.push(QueryAggregates { groups, histograms });
        }
        Ok(Self {
            queries: converted,
            counts,
        })
    }
}
