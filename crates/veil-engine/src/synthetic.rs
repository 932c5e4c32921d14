//! Synthetic tables shaped like a job's source: the same columns and types, values drawn
//! from fixed distributions within public parameters (declared bounds, category counts),
//! never from the source's values. For previews and reports that can be shared.

use std::path::Path;

use polars::prelude::*;
use rand_core::Rng;

use crate::EngineError;
use crate::sample::{
    Alias, SAMPLE_DAYS, SAMPLE_END_MS, SampleSummary, normal, unit_uniform, zipf_weights,
};

/// How one synthetic column is drawn.
#[derive(Debug, Clone, PartialEq)]
pub enum Synthetic {
    /// The privacy unit: heavy-tailed rows per unit (log-normal activity).
    Unit {
        /// Integers `1..=units`, or text `u1`, `u2`, ….
        text: bool,
    },
    /// Numbers from `lower + width · exp(N(−1, 0.8))`, skewed towards `lower` and kept
    /// inside `[lower, upper]` (what the job declares), 1% missing.
    Number {
        /// The low end.
        lower: f64,
        /// The high end.
        upper: f64,
        /// Rounded to integers (and typed as integers).
        integer: bool,
    },
    /// `count` text values `PREFIX_1` … `PREFIX_count`, Zipf-skewed; each unit has a home
    /// value it uses 85% of the time.
    Category {
        /// The prefix.
        prefix: String,
        /// Distinct values.
        count: u32,
    },
    /// Timestamps (UTC, milliseconds) uniform over the sample's 180 days.
    Timestamp,
    /// Dates uniform over the sample's 180 days.
    Date,
    /// Booleans, true half the time.
    Boolean,
}

/// A column to generate.
#[derive(Debug, Clone, PartialEq)]
pub struct SyntheticColumn {
    /// Its name.
    pub name: String,
    /// How it is drawn.
    pub kind: Synthetic,
}

/// What to generate.
#[derive(Debug, Clone, PartialEq)]
pub struct LikeSpec {
    /// Rows.
    pub rows: u64,
    /// Distinct units the rows are spread over.
    pub units: u64,
    /// The columns, in order (one of them a [`Synthetic::Unit`]).
    pub columns: Vec<SyntheticColumn>,
}

const CHUNK_ROWS: u64 = 1 << 18;

enum Values {
    Integers(Vec<Option<i64>>),
    Floats(Vec<Option<f64>>),
    Texts(Vec<String>),
    Booleans(Vec<bool>),
}

/// Writes a synthetic table to `path` as Parquet, calling `progress` with the rows written.
///
/// # Errors
/// [`EngineError::InvalidJob`] for zero rows or units, or no unit column;
/// [`EngineError::Output`] if the file cannot be written.
pub fn write_like<R: Rng + ?Sized>(
    spec: &LikeSpec,
    path: &Path,
    rng: &mut R,
    progress: &mut dyn FnMut(u64),
) -> Result<SampleSummary, EngineError> {
    if spec.rows == 0 || spec.units == 0 {
        return Err(EngineError::invalid(
            "sample-data",
            "--rows and --users must be at least 1",
        ));
    }
    if !spec
        .columns
        .iter()
        .any(|column| matches!(column.kind, Synthetic::Unit { .. }))
    {
        return Err(EngineError::invalid(
            "sample-data --like",
            "no privacy-unit column: name it with --unit",
        ));
    }
    let units = usize::try_from(spec.units)
        .map_err(|_| EngineError::invalid("sample-data", "too many users"))?;
    let activity: Vec<f64> = (0..units).map(|_| (1.55 * normal(rng)).exp()).collect();
    let pick_unit = Alias::new(&activity);
    let mut seen = vec![false; units];
    // Per categorical column: its alias table and each unit's home value.
    let mut categories: Vec<Option<(Alias, Vec<u32>)>> = Vec::new();
    for column in &spec.columns {
        categories.push(match &column.kind {
            Synthetic::Category { count, .. } => {
                let alias = Alias::new(&zipf_weights((*count).max(1) as usize, 1.1));
                let homes = (0..units)
                    .map(|_| u32::try_from(alias.sample(rng)).unwrap_or(0))
                    .collect();
                Some((alias, homes))
            }
            _ => None,
        });
    }
    let io_error = |source: std::io::Error| EngineError::Output {
        path: path.to_path_buf(),
        source,
    };
    let polars_error = |e: PolarsError| EngineError::polars("writing synthetic data", &e);
    let datetime = DataType::Datetime(TimeUnit::Milliseconds, Some(TimeZone::UTC));
    let schema = Schema::from_iter(spec.columns.iter().map(|column| {
        let dtype = match &column.kind {
            Synthetic::Unit { text: true } | Synthetic::Category { .. } => DataType::String,
            Synthetic::Unit { text: false } | Synthetic::Number { integer: true, .. } => {
                DataType::Int64
            }
            Synthetic::Number { integer: false, .. } => DataType::Float64,
            Synthetic::Timestamp => datetime.clone(),
            Synthetic::Date => DataType::Date,
            Synthetic::Boolean => DataType::Boolean,
        };
        Field::new(column.name.as_str().into(), dtype)
    }));
    let file = std::fs::File::create(path).map_err(io_error)?;
    let mut writer = ParquetWriter::new(file)
        .with_compression(ParquetCompression::Snappy)
        .batched(&schema)
        .map_err(polars_error)?;
    let mut written = 0_u64;
    while written < spec.rows {
        let chunk = (spec.rows - written).min(CHUNK_ROWS);
        let capacity = usize::try_from(chunk).unwrap_or(usize::MAX);
        let row_units: Vec<usize> = (0..chunk).map(|_| pick_unit.sample(rng)).collect();
        for &unit in &row_units {
            seen[unit] = true;
        }
        let mut columns = Vec::with_capacity(spec.columns.len());
        for (column, category) in spec.columns.iter().zip(&categories) {
            let values = column_values(&column.kind, category.as_ref(), &row_units, rng)?;
            let name = column.name.as_str().into();
            let built = match values {
                Values::Integers(values) => Column::new(name, values),
                Values::Floats(values) => Column::new(name, values),
                Values::Texts(values) => Column::new(name, values),
                Values::Booleans(values) => Column::new(name, values),
            };
            let built = match &column.kind {
                Synthetic::Timestamp => built.cast(&datetime).map_err(polars_error)?,
                Synthetic::Date => built
                    .cast(&DataType::Int32)
                    .and_then(|days| days.cast(&DataType::Date))
                    .map_err(polars_error)?,
                _ => built,
            };
            columns.push(built);
        }
        let frame = DataFrame::new(capacity, columns).map_err(polars_error)?;
        writer.write_batch(&frame).map_err(polars_error)?;
        written += chunk;
        progress(written);
    }
    writer.finish().map_err(polars_error)?;
    Ok(SampleSummary {
        rows: written,
        users_with_rows: seen.iter().filter(|&&seen| seen).count() as u64,
    })
}

/// One chunk's values of one column, for the units in `row_units` (one per row).
fn column_values<R: Rng + ?Sized>(
    kind: &Synthetic,
    category: Option<&(Alias, Vec<u32>)>,
    row_units: &[usize],
    rng: &mut R,
) -> Result<Values, EngineError> {
    let span_ms = SAMPLE_DAYS * 86_400_000;
    let values = match kind {
        Synthetic::Unit { text } => {
            if *text {
                Values::Texts(
                    row_units
                        .iter()
                        .map(|unit| format!("u{}", unit + 1))
                        .collect(),
                )
            } else {
                Values::Integers(
                    row_units
                        .iter()
                        .map(|unit| Some(i64::try_from(*unit).unwrap_or(i64::MAX) + 1))
                        .collect(),
                )
            }
        }
        Synthetic::Number {
            lower,
            upper,
            integer,
        } => {
            let width = (upper - lower).max(f64::MIN_POSITIVE);
            let draws: Vec<Option<f64>> = (0..row_units.len())
                .map(|_| {
                    if unit_uniform(rng) < 0.01 {
                        None
                    } else {
                        // The declared bounds are a promise about the data: the
                        // sample keeps it (rounding included).
                        let x =
                            (lower + width * (0.8 * normal(rng) - 1.0).exp()).clamp(*lower, *upper);
                        Some(if *integer {
                            x.round().clamp(lower.ceil(), upper.floor())
                        } else {
                            ((x * 100.0).round() / 100.0).clamp(*lower, *upper)
                        })
                    }
                })
                .collect();
            if *integer {
                #[allow(clippy::cast_possible_truncation)]
                Values::Integers(draws.into_iter().map(|x| x.map(|x| x as i64)).collect())
            } else {
                Values::Floats(draws)
            }
        }
        Synthetic::Category { prefix, .. } => {
            let Some((alias, homes)) = category else {
                return Err(EngineError::Internal("category without a table".into()));
            };
            Values::Texts(
                row_units
                    .iter()
                    .map(|&unit| {
                        let value = if unit_uniform(rng) < 0.85 {
                            homes[unit] as usize
                        } else {
                            alias.sample(rng)
                        };
                        format!("{prefix}_{}", value + 1)
                    })
                    .collect(),
            )
        }
        Synthetic::Timestamp | Synthetic::Date => Values::Integers(
            (0..row_units.len())
                .map(|_| {
                    #[allow(clippy::cast_precision_loss, clippy::cast_possible_truncation)]
                    let offset = (unit_uniform(rng) * span_ms as f64) as i64;
                    let ms = SAMPLE_END_MS - span_ms + offset;
                    Some(if matches!(kind, Synthetic::Date) {
                        ms / 86_400_000
                    } else {
                        ms
                    })
                })
                .collect(),
        ),
        Synthetic::Boolean => Values::Booleans(
            (0..row_units.len())
                .map(|_| unit_uniform(rng) < 0.5)
                .collect(),
        ),
    };
    Ok(values)
}
