//! The rows a purpose may read: only the plan's columns, only inside the retention window,
//! only of units whose consent is in force, never a row without a privacy unit.

use polars::prelude::*;

use super::source::scan_source;
use crate::EngineError;
use crate::plan::{ConsentFilter, ScanPlan};

/// The rows a plan reads, lazily: only its columns, only inside the retention window, only
/// of units with consent in force.
pub(crate) fn source_rows(plan: &ScanPlan) -> Result<LazyFrame, EngineError> {
    let (rows, _) = filtered_rows(plan)?;
    Ok(rows)
}

/// The source's rows inside the retention window (all of them without one), with the
/// schema of the source.
pub(crate) fn windowed(plan: &ScanPlan) -> Result<(LazyFrame, Schema), EngineError> {
    windowed_slice(plan, None)
}

/// [`windowed`] of the source's rows `offset..offset + len` (in file order) when a slice
/// is given.
pub(crate) fn windowed_slice(
    plan: &ScanPlan,
    slice: Option<(u64, u64)>,
) -> Result<(LazyFrame, Schema), EngineError> {
    let mut rows = scan_source(&plan.source)?;
    let schema = rows
        .collect_schema()
        .map_err(|e| EngineError::polars("reading the source's schema", &e))?
        .as_ref()
        .clone();
    if let Some((offset, len)) = slice {
        rows = rows.slice(
            i64::try_from(offset).unwrap_or(i64::MAX),
            IdxSize::try_from(len).unwrap_or(IdxSize::MAX),
        );
    }
    if let Some(window) = &plan.time_window {
        let dtype = schema.get(&window.column).cloned().ok_or_else(|| {
            EngineError::Internal(format!("time column {} vanished", window.column))
        })?;
        rows = rows.filter(time_between(
            &window.column,
            &dtype,
            window.from_ms,
            window.to_ms,
        )?);
    }
    Ok((rows, schema))
}

/// [`source_rows`] and the source's schema.
fn filtered_rows(plan: &ScanPlan) -> Result<(LazyFrame, Schema), EngineError> {
    let (rows, schema) = windowed(plan)?;
    let mut rows = rows.select(
        plan.columns
            .iter()
            .map(|name| col(name.as_str()))
            .collect::<Vec<_>>(),
    );
    if let Some(consent) = &plan.consent {
        let unit = plan.source.privacy_unit.as_str();
        let unit_type = schema
            .get(unit)
            .cloned()
            .ok_or_else(|| EngineError::Internal(format!("unit column {unit} vanished")))?;
        let granted = consented_units(consent, unit, &unit_type)?;
        rows = rows.join(
            granted,
            [col(unit)],
            [col(unit)],
            JoinArgs::new(JoinType::Semi),
        );
    }
    Ok((rows, schema))
}

const DAY_MS: i64 = 86_400_000;

/// `column` is within `[from_ms, to_ms]` (and not null), compared in the column's own type
/// so that Parquet statistics can skip whole row groups.
fn time_between(
    column: &str,
    dtype: &DataType,
    from_ms: i64,
    to_ms: i64,
) -> Result<Expr, EngineError> {
    time_bounds(column, dtype, Some(from_ms), Some(to_ms))
}

/// `column >= from_ms` and/or `column <= to_ms`; true when neither bound is given (null
/// times compare as null). Timestamps compare as their physical value (UTC epoch in the
/// column's unit), dates as days, so time zones never change the comparison.
fn time_bounds(
    column: &str,
    dtype: &DataType,
    from_ms: Option<i64>,
    to_ms: Option<i64>,
) -> Result<Expr, EngineError> {
    let (physical, scale): (Expr, Box<dyn Fn(i64, bool) -> Expr>) = match dtype {
        DataType::Datetime(unit, _) => {
            let per_ms: i64 = match unit {
                TimeUnit::Milliseconds => 1,
                TimeUnit::Microseconds => 1_000,
                TimeUnit::Nanoseconds => 1_000_000,
            };
            (
                col(column).cast(DataType::Int64),
                Box::new(move |ms: i64, _| lit(ms.saturating_mul(per_ms))),
            )
        }
        DataType::Date => (
            col(column).cast(DataType::Int32),
            // A date counts as its midnight (UTC).
            Box::new(|ms: i64, rounding_up: bool| {
                let days =
                    ms.div_euclid(DAY_MS) + i64::from(rounding_up && ms.rem_euclid(DAY_MS) != 0);
                lit(i32::try_from(days).unwrap_or(if days < 0 { i32::MIN } else { i32::MAX }))
            }),
        ),
        other => {
            return Err(EngineError::ColumnType {
                key: "source.time_column".to_string(),
                column: column.to_string(),
                found: other.to_string(),
                expected: "a timestamp or date column",
            });
        }
    };
    let lower = from_ms.map(|from| physical.clone().gt_eq(scale(from, true)));
    let upper = to_ms.map(|to| physical.clone().lt_eq(scale(to, false)));
    Ok(match (lower, upper) {
        (Some(lower), Some(upper)) => lower.and(upper),
        (Some(bound), None) | (None, Some(bound)) => bound,
        (None, None) => lit(true),
    })
}

/// The unit column of [`consent_events`].
pub(crate) const CONSENT_UNIT: &str = "__veil_consent_unit";

const CONSENT_AT: &str = "__veil_consent_at";

const CONSENT_REVOKE: &str = "__veil_consent_revoke";

const CONSENT_ACTION: &str = "__veil_consent_action";

const CONSENT_LATEST: &str = "__veil_consent_latest";

/// The units whose latest consent event for the purpose at or before the as-of time is a
/// grant, as a one-column frame named like the source's unit column. On a tie in time a
/// revoke wins.
pub(crate) fn consented_units(
    consent: &ConsentFilter,
    unit: &str,
    unit_type: &DataType,
) -> Result<LazyFrame, EngineError> {
    Ok(latest_grants(consent_events(consent, unit_type)?, unit))
}

/// The consent log's events for the purpose at or before the as-of time, each with its
/// unit (as [`CONSENT_UNIT`], cast to the source's unit type, never null), time, action and
/// whether it revokes: what [`latest_grants`] decides from. Split by unit, each part
/// decides for its own units.
pub(crate) fn consent_events(
    consent: &ConsentFilter,
    unit_type: &DataType,
) -> Result<LazyFrame, EngineError> {
    let table = &consent.table;
    let mut log = scan_source(&consent.table.source())?;
    let schema = log
        .collect_schema()
        .map_err(|e| EngineError::polars("reading the consent table's schema", &e))?;
    let at_type = schema
        .get(&table.time_column)
        .cloned()
        .ok_or_else(|| EngineError::Internal("consent time column vanished".into()))?;
    let not_after = time_bounds(&table.time_column, &at_type, None, Some(consent.as_of_ms))
        .map_err(|_| EngineError::ColumnType {
            key: "consent.time_column".to_string(),
            column: table.time_column.clone(),
            found: at_type.to_string(),
            expected: "a timestamp or date column",
        })?;
    let action = col(table.action_column.as_str()).cast(DataType::String);
    Ok(log
        .filter(
            col(table.purpose_column.as_str())
                .cast(DataType::String)
                .eq(lit(consent.purpose.as_str())),
        )
        .filter(not_after)
        .select([
            col(table.unit_column.as_str())
                .cast(unit_type.clone())
                .alias(CONSENT_UNIT),
            col(table.time_column.as_str()).alias(CONSENT_AT),
            action
                .clone()
                .eq(lit("revoke"))
                .cast(DataType::Int8)
                .alias(CONSENT_REVOKE),
            action.alias(CONSENT_ACTION),
        ])
        .filter(col(CONSENT_UNIT).is_not_null()))
}

/// Of [`consent_events`], the units whose latest event is a grant, as a one-column frame
/// named `unit`.
pub(crate) fn latest_grants(events: LazyFrame, unit: &str) -> LazyFrame {
    events
        .group_by([col(CONSENT_UNIT)])
        .agg([col(CONSENT_ACTION)
            .sort_by(
                [col(CONSENT_AT), col(CONSENT_REVOKE)],
                SortMultipleOptions::default(),
            )
            .last()
            .alias(CONSENT_LATEST)])
        .filter(col(CONSENT_LATEST).eq(lit("grant")))
        .select([col(CONSENT_UNIT).alias(unit)])
}

/// The distinct units with any consent event at or before `as_of_ms` (any purpose), as a
/// one-column frame named like the source's unit column.
pub(crate) fn consent_log_units(
    consent: &crate::job::Consent,
    unit: &str,
    unit_type: &DataType,
    as_of_ms: i64,
) -> Result<LazyFrame, EngineError> {
    let filter = ConsentFilter {
        table: consent.clone(),
        purpose: String::new(),
        as_of_ms,
    };
    let mut log = scan_source(&filter.table.source())?;
    let schema = log
        .collect_schema()
        .map_err(|e| EngineError::polars("reading the consent table's schema", &e))?;
    let at_type = schema
        .get(&consent.time_column)
        .cloned()
        .ok_or_else(|| EngineError::Internal("consent time column vanished".into()))?;
    let not_after = time_bounds(&consent.time_column, &at_type, None, Some(as_of_ms))?;
    Ok(log
        .filter(not_after)
        .select([col(consent.unit_column.as_str())
            .cast(unit_type.clone())
            .alias(unit)])
        .filter(col(unit).is_not_null())
        .unique(None, UniqueKeepStrategy::Any))
}

/// `column >= from_ms` in the column's own type; rows with no time are kept (`true`).
pub(crate) fn time_at_least(
    rows: &LazyFrame,
    column: &str,
    from_ms: i64,
) -> Result<Expr, EngineError> {
    let schema = rows
        .clone()
        .collect_schema()
        .map_err(|e| EngineError::polars("reading the source's schema", &e))?;
    let dtype = schema
        .get(column)
        .cloned()
        .ok_or_else(|| EngineError::ColumnNotFound {
            key: "source.time_column".to_string(),
            column: column.to_string(),
            path: std::path::PathBuf::new(),
            available: schema.iter_names().map(ToString::to_string).collect(),
        })?;
    let between = time_bounds(column, &dtype, Some(from_ms), None)?;
    Ok(between.fill_null(lit(true)))
}

/// Counts consent events whose action is neither `grant` nor `revoke` (an error).
pub(crate) fn unknown_actions(consent: &ConsentFilter) -> Result<LazyFrame, EngineError> {
    let action = col(consent.table.action_column.as_str()).cast(DataType::String);
    let known = action
        .clone()
        .eq(lit("grant"))
        .or(action.clone().eq(lit("revoke")));
    Ok(scan_source(&consent.table.source())?.select([known
        .not()
        .and(action.is_not_null())
        .sum()
        .cast(DataType::UInt64)
        .alias("unknown")]))
}

/// `rows` without the rows whose privacy unit is null.
pub(crate) fn with_unit(rows: LazyFrame, unit: &str) -> LazyFrame {
    rows.filter(col(unit).is_not_null())
}
