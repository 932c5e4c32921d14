//! The plan's non-private part: each query's measures, the columns read, the retention
//! window and the consent filter ([`ScanPlan`]).

use super::Measure;
use std::collections::BTreeSet;

use crate::EngineError;
use crate::job::{ContributionBounds, Job, Query};

use crate::job::Partitions;

/// The non-private part of a job whose queries need `measures` (one list per query).
pub(super) fn scan_plan(job: &Job, measures: Vec<Vec<Measure>>) -> Result<ScanPlan, EngineError> {
    let governance = &job.governance;
    let mut columns = vec![job.source.privacy_unit.clone()];
    // Where each column is named, for data-minimisation errors.
    let mut named_at: Vec<(String, String)> = Vec::new();
    let mut queries = Vec::new();
    for ((index, query), measures) in job.queries.iter().enumerate().zip(measures) {
        for column in &query.drop_missing {
            named_at.push((column.clone(), format!("query[{index}].drop_missing")));
        }
        for column in &query.group_by {
            named_at.push((column.clone(), format!("query[{index}].group_by")));
        }
        for (aggregate_index, aggregate) in query.aggregates.iter().enumerate() {
            if let Some(column) = aggregate.kind.column() {
                named_at.push((
                    column.name.clone(),
                    format!("query[{index}].aggregates[{aggregate_index}].column"),
                ));
            }
        }
        for column in query
            .group_by
            .iter()
            .map(String::as_str)
            .chain(query.drop_missing.iter().map(String::as_str))
            .chain(measures.iter().filter_map(Measure::column))
        {
            if !columns.iter().any(|existing| existing == column) {
                columns.push(column.to_string());
            }
        }
        let public_keys = match &query.partitions {
            Partitions::Public { keys, .. } => Some(keys.clone()),
            Partitions::Private => None,
        };
        queries.push(QueryScan {
            name: query.name.clone(),
            group_by: query.group_by.clone(),
            bounds: query.bounds,
            public_keys,
            drop_missing: query.drop_missing.clone(),
            measures,
        });
    }
    let time_window = match (governance.purpose.retention_ms, &governance.time_column) {
        (Some(retention), Some(column)) => {
            named_at.push((column.clone(), "source.time_column".to_string()));
            if !columns.contains(column) {
                columns.push(column.clone());
            }
            Some(TimeWindow {
                column: column.clone(),
                from_ms: governance.as_of_ms.saturating_sub(retention),
                to_ms: governance.as_of_ms,
            })
        }
        (Some(retention), None) => {
            return Err(EngineError::invalid(
                "source.time_column",
                format!(
                    "purpose {:?} keeps data for {}: name the source's timestamp column with `time_column` so older rows are never read",
                    governance.purpose.name,
                    describe_duration(retention)
                ),
            ));
        }
        (None, _) => None,
    };
    if let Some(allowed) = &governance.purpose.columns {
        for (column, key) in &named_at {
            if column != &job.source.privacy_unit && !allowed.contains(column) {
                return Err(EngineError::invalid(
                    key.clone(),
                    format!(
                        "column {column:?} is not among the columns purpose {:?} may read ({}); add it to the purpose in the registry or use another column",
                        governance.purpose.name,
                        allowed.join(", ")
                    ),
                ));
            }
        }
    }
    let consent = governance.consent.as_ref().map(|table| ConsentFilter {
        table: table.clone(),
        purpose: governance.purpose.name.clone(),
        as_of_ms: governance.as_of_ms,
    });
    Ok(ScanPlan {
        source: job.source.clone(),
        columns,
        time_window,
        consent,
        queries,
    })
}

/// A duration in words: `90 days`, `12 hours`.
#[must_use]
pub fn describe_duration(milliseconds: i64) -> String {
    const DAY: i64 = 86_400_000;
    const HOUR: i64 = 3_600_000;
    if milliseconds % DAY == 0 {
        let days = milliseconds / DAY;
        if days == 1 {
            "1 day".to_string()
        } else {
            format!("{days} days")
        }
    } else if milliseconds % HOUR == 0 {
        format!("{} hours", milliseconds / HOUR)
    } else {
        format!("{} seconds", milliseconds / 1000)
    }
}

/// Whether a query selects partitions privately: private partitions with at least one
/// group-by column (the single global group of a query without one always exists, so it
/// is released like a public partition).
pub(super) fn selects_privately(query: &Query) -> bool {
    query.partitions == Partitions::Private && !query.group_by.is_empty()
}

/// The non-private part of a query: what to read, bound and aggregate per group.
#[derive(Debug, Clone, PartialEq)]
pub struct QueryScan {
    /// The query's name.
    pub name: String,
    /// Group-by columns.
    pub group_by: Vec<String>,
    /// Contribution bounds.
    pub bounds: ContributionBounds,
    /// For public partitions, the keys (as text); rows of other groups are dropped
    /// before bounding.
    pub public_keys: Option<Vec<Vec<String>>>,
    /// Rows without a value in any of these columns are left out before bounding.
    pub drop_missing: Vec<String>,
    /// The per-group aggregates to compute.
    pub measures: Vec<Measure>,
}

/// The non-private part of a job, as data: read these columns, drop rows with no privacy
/// unit, bound each unit's contribution per query, and aggregate per group. The local
/// engine executes it with Polars; another engine can execute the same plan.
#[derive(Debug, Clone, PartialEq)]
pub struct ScanPlan {
    /// The source.
    pub source: crate::job::Source,
    /// Every column read (data minimisation: nothing else is).
    pub columns: Vec<String>,
    /// Rows outside this time window are never read (retention).
    pub time_window: Option<TimeWindow>,
    /// Only units with consent in force contribute any row.
    pub consent: Option<ConsentFilter>,
    /// One entry per query.
    pub queries: Vec<QueryScan>,
}

/// The retention window: rows whose time is outside `[from_ms, to_ms]` (or null) are not
/// read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TimeWindow {
    /// The source's time column.
    pub column: String,
    /// The earliest time kept (as-of minus retention), in ms since the Unix epoch, UTC.
    pub from_ms: i64,
    /// The latest time kept (the as-of time).
    pub to_ms: i64,
}

/// Consent: a unit contributes only if its latest consent event for `purpose` at or before
/// `as_of_ms` is a grant. No event means no consent.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConsentFilter {
    /// The consent table and its columns.
    pub table: crate::job::Consent,
    /// The job's purpose.
    pub purpose: String,
    /// The as-of time, in ms since the Unix epoch, UTC.
    pub as_of_ms: i64,
}

impl QueryScan {
    /// The columns the row hash (L∞) covers, in order: the unit, the group-by columns,
    /// then each measure's column once. Every engine hashes exactly these, so that they
    /// keep the same rows.
    #[must_use]
    pub fn row_hash_columns(&self, unit: &str) -> Vec<String> {
        let mut columns = self.pair_hash_columns(unit);
        for measure in &self.measures {
            if let Some(column) = measure.column()
                && !columns.iter().any(|existing| existing == column)
            {
                columns.push(column.to_string());
            }
        }
        columns
    }

    /// The columns the unit–group hash (L0) covers, in order: the unit, then the
    /// group-by columns.
    #[must_use]
    pub fn pair_hash_columns(&self, unit: &str) -> Vec<String> {
        let mut columns = vec![unit.to_string()];
        columns.extend(self.group_by.iter().cloned());
        columns
    }
}

impl ScanPlan {
    /// The columns any query aggregates, sorted, each once: the columns whose missing
    /// values a scan counts.
    #[must_use]
    pub fn value_columns(&self) -> Vec<String> {
        self.queries
            .iter()
            .flat_map(|query| query.measures.iter().filter_map(Measure::column))
            .map(str::to_string)
            .collect::<BTreeSet<_>>()
            .into_iter()
            .collect()
    }
}

impl ConsentFilter {
    /// Refuses a consent log in which `unknown` events have an action other than `grant`
    /// or `revoke` (as counted by the engine that read it).
    ///
    /// # Errors
    /// [`EngineError::InvalidJob`] naming the log and its action column if `unknown > 0`.
    pub fn check_actions(&self, unknown: u64) -> Result<(), EngineError> {
        if unknown == 0 {
            return Ok(());
        }
        Err(EngineError::InvalidJob {
            key: "consent.action_column".to_string(),
            reason: format!(
                "{unknown} rows of {} have an action other than \"grant\" or \"revoke\" in column {:?}; fix the consent log before running",
                self.table.path.display(),
                self.table.action_column
            ),
        })
    }
}
