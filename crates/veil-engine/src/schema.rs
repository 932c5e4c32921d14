//! Checks a job against the source's schema before any row is read.

use polars::prelude::{DataType, Schema};

use crate::EngineError;
use crate::job::Job;

/// Whether a column type can hold numeric values to aggregate.
fn is_numeric(dtype: &DataType) -> bool {
    dtype.is_primitive_numeric() || matches!(dtype, DataType::Boolean)
}

/// Whether a column type can be a group key.
fn is_groupable(dtype: &DataType) -> bool {
    matches!(
        dtype,
        DataType::String
            | DataType::Boolean
            | DataType::Date
            | DataType::Datetime(..)
            | DataType::Categorical(..)
            | DataType::Enum(..)
    ) || dtype.is_integer()
}

/// Every column the job names exists in `schema` with a usable type.
///
/// # Errors
/// [`EngineError::ColumnNotFound`] or [`EngineError::ColumnType`] naming the job key.
pub fn check(job: &Job, schema: &Schema) -> Result<(), EngineError> {
    let available: Vec<String> = schema.iter_names().map(|name| name.to_string()).collect();
    let find = |key: &str, column: &str| -> Result<DataType, EngineError> {
        schema
            .get(column)
            .cloned()
            .ok_or_else(|| EngineError::ColumnNotFound {
                key: key.to_string(),
                column: column.to_string(),
                path: job.source.path.clone(),
                available: available.clone(),
            })
    };
    let unit = find("source.privacy_unit", &job.source.privacy_unit)?;
    if matches!(unit, DataType::Float32 | DataType::Float64) || unit.is_nested() {
        return Err(EngineError::ColumnType {
            key: "source.privacy_unit".to_string(),
            column: job.source.privacy_unit.clone(),
            found: unit.to_string(),
            expected: "an identifier (integer or string)",
        });
    }
    for (index, query) in job.queries.iter().enumerate() {
        for column in &query.group_by {
            let key = format!("query[{index}].group_by");
            let dtype = find(&key, column)?;
            if !is_groupable(&dtype) {
                return Err(EngineError::ColumnType {
                    key,
                    column: column.clone(),
                    found: dtype.to_string(),
                    expected: "a string, integer, boolean, date or categorical column (bin numbers before grouping)",
                });
            }
        }
        for (aggregate_index, aggregate) in query.aggregates.iter().enumerate() {
            if let Some(column) = aggregate.kind.column() {
                let key = format!("query[{index}].aggregates[{aggregate_index}].column");
                let dtype = find(&key, &column.name)?;
                if !is_numeric(&dtype) {
                    return Err(EngineError::ColumnType {
                        key,
                        column: column.name.clone(),
                        found: dtype.to_string(),
                        expected: "a numeric column",
                    });
                }
            }
        }
    }
    Ok(())
}
