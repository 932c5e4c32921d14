//! Reading Polars frames into Veil values: integer columns, group keys as text, public
//! partition keys as a frame. Shared by the scan, the release and the report's truth.

use polars::prelude::*;

use crate::EngineError;

pub(crate) fn int_column(frame: &DataFrame, name: &str) -> Result<Vec<i64>, EngineError> {
    let column = frame
        .column(name)
        .map_err(|e| EngineError::polars("reading aggregates", &e))?;
    let column = column
        .cast(&DataType::Int64)
        .map_err(|e| EngineError::polars("reading aggregates", &e))?;
    let values = column
        .i64()
        .map_err(|e| EngineError::polars("reading aggregates", &e))?;
    Ok(values.iter().map(|value| value.unwrap_or(0)).collect())
}

/// How a null group value appears in [`row_keys`] (not a valid UTF-8 text a file would hold).
pub(crate) const NULL_KEY: &str = "\u{0}null";

/// Each row's group key as text (for matching rows across frames); null as [`NULL_KEY`].
pub(crate) fn row_keys(
    frame: &DataFrame,
    group_by: &[String],
) -> Result<Vec<Vec<String>>, EngineError> {
    let mut keys = vec![Vec::with_capacity(group_by.len()); frame.height()];
    for name in group_by {
        let column = frame
            .column(name)
            .map_err(|e| EngineError::polars("reading aggregates", &e))?;
        let text = column
            .cast(&DataType::String)
            .map_err(|e| EngineError::polars("reading aggregates", &e))?;
        let values = text
            .str()
            .map_err(|e| EngineError::polars("reading aggregates", &e))?;
        for (key, value) in keys.iter_mut().zip(values.iter()) {
            key.push(value.map_or_else(|| NULL_KEY.to_string(), str::to_string));
        }
    }
    Ok(keys)
}

/// Public partitions' keys as a frame: one text column per group-by column.
pub(crate) fn keys_frame(
    group_by: &[String],
    keys: &[Vec<String>],
) -> Result<DataFrame, EngineError> {
    let columns: Vec<Column> = group_by
        .iter()
        .enumerate()
        .map(|(index, name)| {
            Column::new(
                name.as_str().into(),
                keys.iter()
                    .map(|key| key[index].clone())
                    .collect::<Vec<_>>(),
            )
        })
        .collect();
    DataFrame::new(keys.len(), columns)
        .map_err(|e| EngineError::polars("reading public partitions", &e))
}
