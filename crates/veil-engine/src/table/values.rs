//! The table model: named columns of equal length, each of one type, with nulls.

use std::fmt;

use super::{TableError, TimeUnit};

/// The type of a column.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ColumnType {
    /// Booleans.
    Bool,
    /// 16-bit signed integers.
    I16,
    /// 32-bit signed integers.
    I32,
    /// 64-bit signed integers.
    I64,
    /// 32-bit unsigned integers.
    U32,
    /// 64-bit unsigned integers.
    U64,
    /// 32-bit floating-point numbers.
    F32,
    /// 64-bit floating-point numbers.
    F64,
    /// UTF-8 text.
    Text,
    /// Bytes.
    Binary,
    /// Lists of 32-bit unsigned integers.
    ListU32,
    /// Calendar dates, as days since 1970-01-01.
    Date,
    /// Instants as integers of `unit` since the Unix epoch, in an optional time zone.
    Timestamp {
        /// The unit of the integers.
        unit: TimeUnit,
        /// The time zone (`"UTC"`), if the column has one.
        time_zone: Option<String>,
    },
    /// A type this module does not read, by the reader's name for it.
    Other(String),
}

/// A column's name and type.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Field {
    /// The column's name.
    pub name: String,
    /// Its type.
    pub column_type: ColumnType,
}

/// One cell of a list column.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ListCell<'a> {
    /// The list itself is null.
    Null,
    /// The list holds a null item (only a file read can produce one).
    NullItem,
    /// The list's items.
    Items(&'a [u32]),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum ListState {
    Items,
    Null,
    NullItem,
}

/// A column of lists of `u32`, stored flat: every list's items one after the other.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct U32Lists {
    /// `ends[row]` is one past the last item of `row` in `items`.
    ends: Vec<usize>,
    pub(super) items: Vec<u32>,
    states: Vec<ListState>,
}

/// A column of text stored flat: every value's bytes one after the other in one string,
/// so a million values cost two allocations, not a million.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Texts {
    /// `ends[row]` is one past the last byte of `row` in `text`.
    ends: Vec<usize>,
    text: String,
    valid: Vec<bool>,
}

/// The values of a column, with nulls.
#[derive(Debug, Clone, PartialEq)]
pub enum Values {
    /// Booleans.
    Bool(Vec<Option<bool>>),
    /// 16-bit signed integers.
    I16(Vec<Option<i16>>),
    /// 32-bit signed integers.
    I32(Vec<Option<i32>>),
    /// 64-bit signed integers.
    I64(Vec<Option<i64>>),
    /// 32-bit unsigned integers.
    U32(Vec<Option<u32>>),
    /// 64-bit unsigned integers.
    U64(Vec<Option<u64>>),
    /// 32-bit floats.
    F32(Vec<Option<f32>>),
    /// 64-bit floats.
    F64(Vec<Option<f64>>),
    /// UTF-8 text.
    Text(Texts),
    /// Bytes.
    Binary(Vec<Option<Vec<u8>>>),
    /// Lists of 32-bit unsigned integers.
    ListU32(U32Lists),
    /// Calendar dates, as days since 1970-01-01.
    Date(Vec<Option<i32>>),
    /// Instants as integers of `unit` since the Unix epoch.
    Timestamp {
        /// The unit of the integers.
        unit: TimeUnit,
        /// The time zone (`"UTC"`), if any.
        time_zone: Option<String>,
        /// The integers.
        values: Vec<Option<i64>>,
    },
}

/// A named column.
#[derive(Debug, Clone, PartialEq)]
pub struct Column {
    name: String,
    values: Values,
}

/// Columns of equal length with distinct names.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Table {
    columns: Vec<Column>,
    rows: usize,
}

impl fmt::Display for ColumnType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Bool => f.write_str("boolean"),
            Self::I16 => f.write_str("16-bit integer"),
            Self::I32 => f.write_str("32-bit integer"),
            Self::I64 => f.write_str("64-bit integer"),
            Self::U32 => f.write_str("32-bit unsigned integer"),
            Self::U64 => f.write_str("64-bit unsigned integer"),
            Self::F32 => f.write_str("32-bit float"),
            Self::F64 => f.write_str("64-bit float"),
            Self::Text => f.write_str("text"),
            Self::Binary => f.write_str("binary"),
            Self::ListU32 => f.write_str("list of 32-bit unsigned integers"),
            Self::Date => f.write_str("date"),
            Self::Timestamp { unit, time_zone } => {
                let unit = match unit {
                    TimeUnit::Milliseconds => "ms",
                    TimeUnit::Microseconds => "µs",
                    TimeUnit::Nanoseconds => "ns",
                };
                match time_zone {
                    Some(zone) => write!(f, "timestamp ({unit}, {zone})"),
                    None => write!(f, "timestamp ({unit})"),
                }
            }
            Self::Other(name) => f.write_str(name),
        }
    }
}

impl Field {
    /// A field named `name` of `column_type`.
    #[must_use]
    pub fn new(name: impl Into<String>, column_type: ColumnType) -> Self {
        Self {
            name: name.into(),
            column_type,
        }
    }
}

impl U32Lists {
    /// An empty column.
    #[must_use]
    pub fn new() -> Self {
        Self::default()
    }

    /// An empty column with room for `rows` lists and `items` items in all.
    #[must_use]
    pub fn with_capacity(rows: usize, items: usize) -> Self {
        Self {
            ends: Vec::with_capacity(rows),
            items: Vec::with_capacity(items),
            states: Vec::with_capacity(rows),
        }
    }

    /// Appends a list, or a null.
    pub fn push(&mut self, list: Option<&[u32]>) {
        let state = match list {
            Some(items) => {
                self.items.extend_from_slice(items);
                ListState::Items
            }
            None => ListState::Null,
        };
        self.ends.push(self.items.len());
        self.states.push(state);
    }

    pub(super) fn push_null_item(&mut self) {
        self.ends.push(self.items.len());
        self.states.push(ListState::NullItem);
    }

    /// Removes every list, keeping the memory for reuse.
    pub fn clear(&mut self) {
        self.ends.clear();
        self.items.clear();
        self.states.clear();
    }

    /// The number of lists.
    #[must_use]
    pub fn len(&self) -> usize {
        self.states.len()
    }

    /// Whether there are no lists.
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.states.is_empty()
    }

    /// The list at `row`, or `None` past the end.
    #[must_use]
    pub fn get(&self, row: usize) -> Option<ListCell<'_>> {
        let state = *self.states.get(row)?;
        Some(match state {
            ListState::Null => ListCell::Null,
            ListState::NullItem => ListCell::NullItem,
            ListState::Items => {
                let start = if row == 0 { 0 } else { self.ends[row - 1] };
                ListCell::Items(&self.items[start..self.ends[row]])
            }
        })
    }

    /// The lists in order.
    pub fn iter(&self) -> impl Iterator<Item = ListCell<'_>> {
        (0..self.len()).filter_map(|row| self.get(row))
    }
}

impl<'a> FromIterator<Option<&'a [u32]>> for U32Lists {
    fn from_iter<I: IntoIterator<Item = Option<&'a [u32]>>>(lists: I) -> Self {
        let mut column = Self::new();
        for list in lists {
            column.push(list);
        }
        column
    }
}

impl Texts {
    /// An empty column.
    #[must_use]
    pub fn new() -> Self {
        Self::default()
    }

    /// An empty column with room for `rows` values and `bytes` bytes in all.
    #[must_use]
    pub fn with_capacity(rows: usize, bytes: usize) -> Self {
        Self {
            ends: Vec::with_capacity(rows),
            text: String::with_capacity(bytes),
            valid: Vec::with_capacity(rows),
        }
    }

    /// Appends a value, or a null.
    pub fn push(&mut self, value: Option<&str>) {
        if let Some(value) = value {
            self.text.push_str(value);
        }
        self.ends.push(self.text.len());
        self.valid.push(value.is_some());
    }

    /// The number of values (nulls included).
    #[must_use]
    pub fn len(&self) -> usize {
        self.valid.len()
    }

    /// Whether there are no values.
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.valid.is_empty()
    }

    /// The value at `row`; `None` for a null (or past the end).
    #[must_use]
    pub fn get(&self, row: usize) -> Option<&str> {
        if !*self.valid.get(row)? {
            return None;
        }
        let start = if row == 0 { 0 } else { self.ends[row - 1] };
        Some(&self.text[start..self.ends[row]])
    }

    /// The values in order.
    pub fn iter(&self) -> impl Iterator<Item = Option<&str>> {
        (0..self.len()).map(|row| self.get(row))
    }
}

impl<'a> FromIterator<Option<&'a str>> for Texts {
    fn from_iter<I: IntoIterator<Item = Option<&'a str>>>(values: I) -> Self {
        let mut column = Self::new();
        for value in values {
            column.push(value);
        }
        column
    }
}

impl FromIterator<Option<String>> for Texts {
    fn from_iter<I: IntoIterator<Item = Option<String>>>(values: I) -> Self {
        let mut column = Self::new();
        for value in values {
            column.push(value.as_deref());
        }
        column
    }
}

impl Values {
    /// The number of values (nulls included).
    #[must_use]
    pub fn len(&self) -> usize {
        match self {
            Self::Bool(values) => values.len(),
            Self::I16(values) => values.len(),
            Self::I32(values) | Self::Date(values) => values.len(),
            Self::I64(values) | Self::Timestamp { values, .. } => values.len(),
            Self::U32(values) => values.len(),
            Self::U64(values) => values.len(),
            Self::F32(values) => values.len(),
            Self::F64(values) => values.len(),
            Self::Text(values) => values.len(),
            Self::Binary(values) => values.len(),
            Self::ListU32(lists) => lists.len(),
        }
    }

    /// Whether there are no values.
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The values' type.
    #[must_use]
    pub fn column_type(&self) -> ColumnType {
        match self {
            Self::Bool(_) => ColumnType::Bool,
            Self::I16(_) => ColumnType::I16,
            Self::I32(_) => ColumnType::I32,
            Self::I64(_) => ColumnType::I64,
            Self::U32(_) => ColumnType::U32,
            Self::U64(_) => ColumnType::U64,
            Self::F32(_) => ColumnType::F32,
            Self::F64(_) => ColumnType::F64,
            Self::Text(_) => ColumnType::Text,
            Self::Binary(_) => ColumnType::Binary,
            Self::ListU32(_) => ColumnType::ListU32,
            Self::Date(_) => ColumnType::Date,
            Self::Timestamp {
                unit, time_zone, ..
            } => ColumnType::Timestamp {
                unit: *unit,
                time_zone: time_zone.clone(),
            },
        }
    }
}

impl Column {
    /// A column named `name`.
    #[must_use]
    pub fn new(name: impl Into<String>, values: Values) -> Self {
        Self {
            name: name.into(),
            values,
        }
    }

    /// The column's name.
    #[must_use]
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Its values.
    #[must_use]
    pub fn values(&self) -> &Values {
        &self.values
    }

    /// Its values, owned.
    #[must_use]
    pub fn into_values(self) -> Values {
        self.values
    }

    /// Its name and type.
    #[must_use]
    pub fn field(&self) -> Field {
        Field::new(self.name.clone(), self.values.column_type())
    }
}

impl Table {
    /// A table of `columns`.
    ///
    /// # Errors
    /// [`TableError::Shape`] if the columns differ in length or two share a name.
    pub fn new(columns: Vec<Column>) -> Result<Self, TableError> {
        let rows = columns.first().map_or(0, |column| column.values.len());
        for (index, column) in columns.iter().enumerate() {
            if column.values.len() != rows {
                return Err(TableError::Shape {
                    reason: format!(
                        "column {:?} has {} values where {:?} has {rows}",
                        column.name,
                        column.values.len(),
                        columns[0].name
                    ),
                });
            }
            if columns[..index]
                .iter()
                .any(|other| other.name == column.name)
            {
                return Err(TableError::Shape {
                    reason: format!("two columns are named {:?}", column.name),
                });
            }
        }
        Ok(Self { columns, rows })
    }

    /// The number of rows.
    #[must_use]
    pub fn rows(&self) -> usize {
        self.rows
    }

    /// The columns, in order.
    #[must_use]
    pub fn columns(&self) -> &[Column] {
        &self.columns
    }

    /// The column named `name`, if there is one.
    #[must_use]
    pub fn column(&self, name: &str) -> Option<&Column> {
        self.columns.iter().find(|column| column.name == name)
    }

    /// The columns, owned.
    #[must_use]
    pub fn into_columns(self) -> Vec<Column> {
        self.columns
    }

    /// The columns' names and types.
    #[must_use]
    pub fn fields(&self) -> Vec<Field> {
        self.columns.iter().map(Column::field).collect()
    }
}
