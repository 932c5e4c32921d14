//! The plan's non-private part: each query's measures, the columns read, the retention
//! window and the consent filter ([`ScanPlan`]).

use super::{ConsentFilter, Measure, QueryScan, ScanPlan, TimeWindow};
use crate::EngineError;
use crate::job::{Job, Partitions, Query};

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
