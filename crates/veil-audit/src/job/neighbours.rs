//! The neighbouring datasets: the source with one maximal unit added (in its largest
//! groups, or in a new group) or with its heaviest unit removed, each aggregated by the
//! engine's real scan.

use std::collections::BTreeMap;

use veil_engine::plan::{Measure, ScanPlan};
use veil_engine::scan::{
    Aggregated, BoundingKey, Neighbour, QueryAggregates, aggregate, aggregate_neighbour,
};
use veil_engine::schema::{ColumnKind, SourceSchema};

use super::{Neighbours, Pair, Skipped};
use crate::AuditError;

/// Aggregates the source and its neighbours under each key. Pairs that cannot be built
/// are returned with the reason instead.
///
/// # Errors
/// [`AuditError::Engine`] if the data cannot be read; [`AuditError::Option`] for an
/// overflow of zero.
pub fn neighbours(
    scan: &ScanPlan,
    schema: &SourceSchema,
    keys: &[BoundingKey],
    overflow: u32,
) -> Result<(Vec<Neighbours>, Skipped), AuditError> {
    if overflow == 0 {
        return Err(AuditError::option("--overflow", "must be at least 1"));
    }
    let mut bases = Vec::new();
    for key in keys {
        bases.push(aggregate(scan, *key)?);
    }
    let Some(first) = bases.first() else {
        return Err(AuditError::option("--keys", "must be at least 1"));
    };
    let rows_per_group = scan
        .queries
        .iter()
        .map(|query| u64::from(query.bounds.max_rows_per_group))
        .max()
        .unwrap_or(1)
        .saturating_mul(u64::from(overflow));
    let values = extreme_values(scan);
    let mut pairs = Vec::new();
    let mut skipped = Vec::new();
    // The largest groups of each query, `max_groups_per_unit + 1` of them.
    let existing: Vec<Vec<Vec<Option<String>>>> = scan
        .queries
        .iter()
        .zip(&first.queries)
        .map(|(query, aggregates)| {
            largest_groups(
                aggregates,
                &query.group_by,
                query.bounds.max_groups_per_unit as usize + 1,
            )
        })
        .collect::<Result<_, _>>()?;
    let slots = existing.iter().map(Vec::len).max().unwrap_or(1).max(1);
    let added = unit_rows(scan, &values, rows_per_group, slots, |query, slot| {
        existing[query]
            .get(slot.min(existing[query].len().saturating_sub(1)))
            .cloned()
    });
    pairs.push((Pair::AddUnit, Neighbour::AddUnit(added)));
    match new_group_keys(scan, schema, first) {
        Ok(new_keys) => {
            let added = unit_rows(scan, &values, rows_per_group, 1, |query, _| {
                Some(new_keys[query].clone())
            });
            pairs.push((Pair::AddUnitNewGroup, Neighbour::AddUnit(added)));
        }
        Err(reason) => skipped.push((Pair::AddUnitNewGroup, reason)),
    }
    pairs.push((Pair::RemoveHeaviestUnit, Neighbour::RemoveHeaviestUnit));
    let mut result = Vec::new();
    for (pair, neighbour) in pairs {
        let mut datasets = Vec::new();
        for (key, base) in keys.iter().zip(&bases) {
            let changed = aggregate_neighbour(scan, *key, &neighbour)?;
            datasets.push((base.clone(), changed));
        }
        result.push(Neighbours { pair, datasets });
    }
    Ok((result, skipped))
}

/// The `count` largest groups of a query, by units (or rows), largest first.
fn largest_groups(
    aggregates: &QueryAggregates,
    group_by: &[String],
    count: usize,
) -> Result<Vec<Vec<Option<String>>>, AuditError> {
    let keys = aggregates.group_keys(group_by)?;
    let sizes = aggregates
        .measure(&Measure::Units.key())
        .or_else(|| aggregates.measure(&Measure::Rows.key()))
        .unwrap_or_else(|| vec![0; keys.len()]);
    let mut order: Vec<usize> = (0..keys.len()).collect();
    order.sort_by(|&a, &b| sizes[b].cmp(&sizes[a]).then_with(|| keys[a].cmp(&keys[b])));
    Ok(order
        .into_iter()
        .take(count)
        .map(|row| keys[row].clone())
        .collect())
}

/// Per value column, a value past the far end of its bounds (the end farther from zero),
/// which bounding must clamp.
fn extreme_values(scan: &ScanPlan) -> BTreeMap<String, f64> {
    let mut values: BTreeMap<String, f64> = BTreeMap::new();
    for query in &scan.queries {
        for measure in &query.measures {
            let bounds = match measure {
                Measure::Sum { column, grid, .. }
                | Measure::CenteredSum { column, grid, .. }
                | Measure::CenteredSquares { column, grid, .. } => {
                    let (lower, upper) = grid.bounds_in_steps();
                    Some((column, grid.to_real(lower), grid.to_real(upper)))
                }
                Measure::Histogram { column, bounds } => {
                    Some((column, bounds.lower(), bounds.upper()))
                }
                Measure::ValueCount { column } => Some((column, 0.0, 1.0)),
                Measure::Rows | Measure::Units => None,
            };
            if let Some((column, lower, upper)) = bounds {
                let width = upper - lower;
                let value = if upper.abs() >= lower.abs() {
                    upper + width
                } else {
                    lower - width
                };
                let entry = values.entry(column.clone()).or_insert(value);
                if value.abs() > entry.abs() {
                    *entry = value;
                }
            }
        }
    }
    values
}

/// The added unit's rows: `slots` sets of `rows_per_group` rows; in slot `s`, query `q`'s
/// group columns hold `group(q, s)` (null when there is none).
fn unit_rows(
    scan: &ScanPlan,
    values: &BTreeMap<String, f64>,
    rows_per_group: u64,
    slots: usize,
    group: impl Fn(usize, usize) -> Option<Vec<Option<String>>>,
) -> Vec<BTreeMap<String, String>> {
    let mut rows = Vec::new();
    for slot in 0..slots {
        let mut row: BTreeMap<String, String> = values
            .iter()
            .map(|(column, value)| (column.clone(), value.to_string()))
            .collect();
        for (index, query) in scan.queries.iter().enumerate() {
            let Some(key) = group(index, slot) else {
                continue;
            };
            for (column, value) in query.group_by.iter().zip(key) {
                if let Some(value) = value {
                    row.entry(column.clone()).or_insert(value);
                }
            }
        }
        for _ in 0..rows_per_group {
            rows.push(row.clone());
        }
    }
    rows
}

/// Per query, a key that no group has: text for text columns, one past the largest for
/// numbers.
fn new_group_keys(
    scan: &ScanPlan,
    schema: &SourceSchema,
    aggregated: &Aggregated,
) -> Result<Vec<Vec<Option<String>>>, String> {
    let mut result = Vec::new();
    for (query, aggregates) in scan.queries.iter().zip(&aggregated.queries) {
        let keys = aggregates
            .group_keys(&query.group_by)
            .map_err(|error| error.to_string())?;
        let mut key = Vec::new();
        for (index, column) in query.group_by.iter().enumerate() {
            let existing = keys.iter().filter_map(|key| key[index].as_deref());
            let value = match schema.get(column) {
                Some(ColumnKind::String) => "veil-audit-new-group".to_string(),
                Some(ColumnKind::Integer) => {
                    let largest = existing.filter_map(|value| value.parse::<i64>().ok()).max();
                    largest
                        .unwrap_or(0)
                        .checked_add(1)
                        .ok_or_else(|| format!("column {column:?} has no room for a new group"))?
                        .to_string()
                }
                Some(kind) => {
                    return Err(format!(
                        "no new group can be made for group column {column:?} of type {kind}"
                    ));
                }
                None => return Err(format!("group column {column:?} is not in the source")),
            };
            key.push(Some(value));
        }
        result.push(key);
    }
    Ok(result)
}
