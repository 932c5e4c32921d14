//! Neighbouring datasets for the privacy auditor: the source's rows with one unit added or
//! the heaviest removed, scanned exactly as a run scans the source.

use std::collections::BTreeMap;

use polars::prelude::*;

use super::filter::source_rows;
use super::{BoundingKey, aggregate_rows};
use crate::EngineError;
use crate::aggregates::Aggregated;
use crate::plan::ScanPlan;

/// How a neighbouring dataset differs from the source: one privacy unit more, or one
/// fewer. For the privacy auditor (`veil audit job`), which compares a job's releases on
/// the source and on a neighbour; a run never uses one.
#[derive(Debug, Clone, PartialEq)]
pub enum Neighbour {
    /// One more unit with these rows, added after retention and consent (as a unit whose
    /// rows are all inside the window and whose consent is in force). Each row gives
    /// values as text per column, cast to the column's type; columns it does not name
    /// are null. The unit's id is new and sorts before every other where it can: the
    /// smallest id minus one (integer ids) or the empty text (text ids), else the largest id
    /// plus one or with a suffix.
    AddUnit(Vec<BTreeMap<String, String>>),
    /// Without any row of the unit that has the most rows after retention and consent
    /// (the smallest id among ties). Which unit it is never leaves the engine.
    RemoveHeaviestUnit,
}

/// [`aggregate`](super::aggregate) on a neighbour of the source: every step of the scan (bounding with
/// `key` included) runs unchanged on the source's rows with one unit added or removed.
///
/// # Errors
/// [`EngineError`] if the source cannot be read or an aggregation fails;
/// [`EngineError::InvalidJob`] if a value of an added row does not fit its column or the
/// privacy unit is neither integer nor text.
pub fn aggregate_neighbour(
    plan: &ScanPlan,
    key: BoundingKey,
    neighbour: &Neighbour,
) -> Result<Aggregated, EngineError> {
    let rows = source_rows(plan)?;
    let unit = plan.source.privacy_unit.as_str();
    let rows = match neighbour {
        Neighbour::AddUnit(added) => {
            let extra = added_unit(rows.clone(), unit, added)?;
            concat([rows, extra], UnionArgs::default())
                .map_err(|e| EngineError::polars("adding a unit", &e))?
        }
        Neighbour::RemoveHeaviestUnit => {
            let heaviest = rows
                .clone()
                .filter(col(unit).is_not_null())
                .group_by([col(unit)])
                .agg([len().alias("__veil_unit_rows")])
                .sort_by_exprs(
                    [col("__veil_unit_rows"), col(unit)],
                    SortMultipleOptions::default().with_order_descending_multi([true, false]),
                )
                .limit(1)
                .select([col(unit)]);
            rows.join(
                heaviest,
                [col(unit)],
                [col(unit)],
                JoinArgs::new(JoinType::Anti),
            )
        }
    };
    aggregate_rows(plan, key, rows)
}

/// The rows of a new unit, shaped like `rows`.
fn added_unit(
    mut rows: LazyFrame,
    unit: &str,
    added: &[BTreeMap<String, String>],
) -> Result<LazyFrame, EngineError> {
    let schema = rows
        .collect_schema()
        .map_err(|e| EngineError::polars("reading the source's schema", &e))?;
    let unit_type = schema
        .get(unit)
        .cloned()
        .ok_or_else(|| EngineError::Internal(format!("unit column {unit} vanished")))?;
    let extremes = rows
        .select([col(unit).min().alias("min"), col(unit).max().alias("max")])
        .collect()
        .map_err(|e| EngineError::polars("finding a new unit id", &e))?;
    let extreme = |name: &str| {
        extremes
            .column(name)
            .cloned()
            .map_err(|e| EngineError::polars("finding a new unit id", &e))
    };
    let (smallest, largest) = (extreme("min")?, extreme("max")?);
    // The new id sorts before every other (else after): an engine whose output order
    // follows the smallest id of a group would move that group, and the audit sees it.
    let id = if unit_type.is_integer() {
        let read = |column: &Column| {
            column
                .cast(&DataType::Int64)
                .and_then(|column| column.i64().map(|values| values.get(0)))
                .map_err(|e| EngineError::polars("finding a new unit id", &e))
        };
        let below = read(&smallest)?.and_then(|smallest| {
            let below = smallest.checked_sub(1)?;
            (below >= 0
                || matches!(
                    unit_type,
                    DataType::Int8 | DataType::Int16 | DataType::Int32 | DataType::Int64
                ))
            .then_some(below)
        });
        let id = match read(&largest)? {
            None => Some(1),
            Some(largest) => below.or_else(|| largest.checked_add(1)),
        };
        Column::new(
            unit.into(),
            [id.ok_or_else(|| {
                EngineError::invalid(
                    "source.privacy_unit",
                    "the unit ids leave no room for a new one",
                )
            })?],
        )
    } else if matches!(unit_type, DataType::String) {
        let read = |column: &Column| {
            column
                .str()
                .map(|values| values.get(0).map(str::to_string))
                .map_err(|e| EngineError::polars("finding a new unit id", &e))
        };
        let id = match (read(&smallest)?, read(&largest)?) {
            (Some(smallest), _) if !smallest.is_empty() => String::new(),
            (_, Some(largest)) => format!("{largest}+"),
            _ => "unit".to_string(),
        };
        Column::new(unit.into(), [id])
    } else {
        return Err(EngineError::invalid(
            "source.privacy_unit",
            format!("a unit can be added only to an integer or text unit column, not {unit_type}"),
        ));
    };
    let height = added.len();
    let mut columns = Vec::new();
    for (name, dtype) in schema.iter() {
        let text: Column = if name.as_str() == unit {
            id.new_from_index(0, height)
        } else {
            Column::new(
                name.clone(),
                added
                    .iter()
                    .map(|row| row.get(name.as_str()).cloned())
                    .collect::<Vec<Option<String>>>(),
            )
        };
        let typed = text.strict_cast(dtype).map_err(|_| {
            EngineError::invalid(
                format!("audit.added_unit.{name}"),
                format!("a value given for the added unit does not fit the column's type {dtype}"),
            )
        })?;
        columns.push(typed);
    }
    let frame =
        DataFrame::new(height, columns).map_err(|e| EngineError::polars("adding a unit", &e))?;
    Ok(frame.lazy())
}
