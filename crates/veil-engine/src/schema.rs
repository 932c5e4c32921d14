//! A source's schema, and the check of a job against it before any row is read.

use std::fmt;

use polars::prelude::DataType;

use crate::EngineError;
use crate::job::{Consent, Job, SourceFormat};

/// The kind of values a source column holds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ColumnKind {
    /// Integers of any width.
    Integer,
    /// Floating-point numbers.
    Float,
    /// Booleans.
    Boolean,
    /// Text (including categoricals).
    String,
    /// Calendar dates.
    Date,
    /// Timestamps.
    Timestamp,
    /// Anything else, by the reader's name for it.
    Other(String),
}

impl fmt::Display for ColumnKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Integer => f.write_str("integer"),
            Self::Float => f.write_str("float"),
            Self::Boolean => f.write_str("boolean"),
            Self::String => f.write_str("string"),
            Self::Date => f.write_str("date"),
            Self::Timestamp => f.write_str("timestamp"),
            Self::Other(name) => f.write_str(name),
        }
    }
}

impl ColumnKind {
    pub(crate) fn of(dtype: &DataType) -> Self {
        match dtype {
            dtype if dtype.is_integer() => Self::Integer,
            dtype if dtype.is_float() => Self::Float,
            DataType::Boolean => Self::Boolean,
            DataType::String | DataType::Categorical(..) | DataType::Enum(..) => Self::String,
            DataType::Date => Self::Date,
            DataType::Datetime(..) => Self::Timestamp,
            other => Self::Other(other.to_string()),
        }
    }

    /// Whether values of this kind can be aggregated as numbers.
    #[must_use]
    pub fn is_numeric(&self) -> bool {
        matches!(self, Self::Integer | Self::Float | Self::Boolean)
    }

    /// Whether values of this kind can be group keys.
    #[must_use]
    pub fn is_groupable(&self) -> bool {
        matches!(
            self,
            Self::Integer | Self::Boolean | Self::String | Self::Date | Self::Timestamp
        )
    }
}

/// A source's columns and the kinds of their values, in file order.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct SourceSchema {
    /// `(name, kind)` per column.
    pub columns: Vec<(String, ColumnKind)>,
}

impl SourceSchema {
    /// The kind of a column, if the source has it.
    #[must_use]
    pub fn get(&self, name: &str) -> Option<&ColumnKind> {
        self.columns
            .iter()
            .find(|(column, _)| column == name)
            .map(|(_, kind)| kind)
    }
}

/// Every column the job names exists in `schema` with a usable type.
///
/// # Errors
/// [`EngineError::ColumnNotFound`] or [`EngineError::ColumnType`] naming the job key.
pub fn check(job: &Job, schema: &SourceSchema) -> Result<(), EngineError> {
    let available: Vec<String> = schema
        .columns
        .iter()
        .map(|(name, _)| name.clone())
        .collect();
    let find = |key: &str, column: &str| -> Result<ColumnKind, EngineError> {
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
    let unit = find("source.privacy_unit", &job.source.privacy_unit).map_err(|error| {
        match (job.source.format, available.as_slice()) {
            // One column whose name holds another separator: the file is delimited by it.
            (SourceFormat::Csv { delimiter }, [only])
                if only.contains([';', '\t', '|']) && !only.contains(char::from(delimiter)) =>
            {
                let found = [(';', "\";\""), ('\t', "\"\\t\" (a tab)"), ('|', "\"|\"")]
                    .into_iter()
                    .find(|(separator, _)| only.contains(*separator))
                    .map_or("another character", |(_, name)| name);
                EngineError::InvalidJob {
                    key: "source.delimiter".to_string(),
                    reason: format!(
                        "{} reads as one column {only:?} with the delimiter {:?}, so column {:?} is not found: its header seems separated by {found}; set `delimiter = {found}` in [source]",
                        job.source.path.display(),
                        char::from(delimiter).to_string(),
                        job.source.privacy_unit
                    ),
                }
            }
            _ => error,
        }
    })?;
    if !matches!(unit, ColumnKind::Integer | ColumnKind::String) {
        return Err(EngineError::ColumnType {
            key: "source.privacy_unit".to_string(),
            column: job.source.privacy_unit.clone(),
            found: unit.to_string(),
            expected: "an identifier (integer or string)",
        });
    }
    if let Some(column) = &job.governance.time_column {
        let kind = find("source.time_column", column)?;
        if !matches!(kind, ColumnKind::Timestamp | ColumnKind::Date) {
            return Err(EngineError::ColumnType {
                key: "source.time_column".to_string(),
                column: column.clone(),
                found: kind.to_string(),
                expected: "a timestamp or date column",
            });
        }
    }
    for (index, query) in job.queries.iter().enumerate() {
        for column in &query.group_by {
            let key = format!("query[{index}].group_by");
            let dtype = find(&key, column)?;
            if !dtype.is_groupable() {
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
                if !dtype.is_numeric() {
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

/// The consent table has the four columns a consent log needs, with usable types.
///
/// # Errors
/// [`EngineError::ColumnNotFound`] or [`EngineError::ColumnType`] naming the `consent` key.
pub fn check_consent(
    consent: &Consent,
    schema: &SourceSchema,
    source_unit: Option<&ColumnKind>,
) -> Result<(), EngineError> {
    let available: Vec<String> = schema
        .columns
        .iter()
        .map(|(name, _)| name.clone())
        .collect();
    let columns = [
        ("consent.unit_column", &consent.unit_column, None),
        (
            "consent.purpose_column",
            &consent.purpose_column,
            Some((ColumnKind::String, "a string column")),
        ),
        (
            "consent.action_column",
            &consent.action_column,
            Some((ColumnKind::String, "a string column of grant or revoke")),
        ),
        ("consent.time_column", &consent.time_column, None),
    ];
    for (key, column, expected) in columns {
        let kind = schema
            .get(column)
            .ok_or_else(|| EngineError::ColumnNotFound {
                key: key.to_string(),
                column: column.clone(),
                path: consent.path.clone(),
                available: available.clone(),
            })?;
        if let Some((expected_kind, expected_text)) = expected
            && *kind != expected_kind
        {
            return Err(EngineError::ColumnType {
                key: key.to_string(),
                column: column.clone(),
                found: kind.to_string(),
                expected: expected_text,
            });
        }
    }
    // A log whose ids are text where the source's are integers (or the reverse) matches no
    // one: every row would be dropped as without consent, silently.
    if let (Some(source_kind), Some(log_kind)) = (source_unit, schema.get(&consent.unit_column))
        && source_kind != log_kind
    {
        return Err(EngineError::InvalidJob {
            key: "consent.unit_column".to_string(),
            reason: format!(
                "column {:?} of {} holds {log_kind} ids but the source's privacy unit holds {source_kind} ids: no one would match and every row would count as without consent; write the log with ids of the source's type",
                consent.unit_column,
                consent.path.display()
            ),
        });
    }
    let time = schema
        .get(&consent.time_column)
        .cloned()
        .unwrap_or(ColumnKind::Other(String::new()));
    if !matches!(time, ColumnKind::Timestamp | ColumnKind::Date) {
        return Err(EngineError::ColumnType {
            key: "consent.time_column".to_string(),
            column: consent.time_column.clone(),
            found: time.to_string(),
            expected: "a timestamp or date column",
        });
    }
    Ok(())
}
