//! Synthetic event tables for examples, tests and benchmarks.
//!
//! The generator mimics product analytics exports: a heavy-tailed number of events per
//! user (a few users with thousands of events, most with a handful), a skewed country
//! distribution with users who travel, skewed feature usage, a heavy-tailed numeric value
//! with some values missing, and timestamps over the 180 days before a fixed date. It is
//! deterministic for a given RNG and writes row groups as it goes, so files larger than
//! memory can be made.
//!
//! No real data is involved: every value is drawn from fixed distributions.

use std::path::Path;

use polars::prelude::*;
use rand_core::Rng;

use crate::EngineError;

/// The countries of the sample data, most common first.
pub const COUNTRIES: [&str; 50] = [
    "US", "IN", "BR", "DE", "GB", "FR", "JP", "MX", "ID", "IT", "ES", "CA", "TR", "KR", "PL", "NG",
    "AR", "PH", "VN", "EG", "NL", "CO", "ZA", "TH", "AU", "SE", "BE", "CH", "PK", "CL", "AT", "PT",
    "RO", "CZ", "GR", "IL", "DK", "FI", "NO", "IE", "NZ", "HU", "UA", "MA", "KE", "PE", "SG", "MY",
    "BD", "LU",
];

/// The features of the sample data, most used first.
pub const FEATURES: [&str; 20] = [
    "home",
    "search",
    "play",
    "browse",
    "profile",
    "settings",
    "share",
    "like",
    "comment",
    "download",
    "upload",
    "notify",
    "playlist",
    "subscribe",
    "cast",
    "offline",
    "lyrics",
    "radio",
    "podcast",
    "help",
];

/// The end of the sample's time range: 2026-11-01T00:00:00Z, in milliseconds.
pub const SAMPLE_END_MS: i64 = 1_793_491_200_000;

/// How many days of events the sample covers, ending at [`SAMPLE_END_MS`].
pub const SAMPLE_DAYS: i64 = 180;

/// What to generate.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SampleSpec {
    /// Rows (events).
    pub rows: u64,
    /// Distinct users the events are spread over (some may end up with none).
    pub users: u64,
}

/// What was written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SampleSummary {
    /// Rows written.
    pub rows: u64,
    /// Users with at least one row.
    pub users_with_rows: u64,
}

const CHUNK_ROWS: u64 = 1 << 20;

/// A uniform draw in `[0, 1)` with 53 random bits.
pub(crate) fn unit_uniform<R: Rng + ?Sized>(rng: &mut R) -> f64 {
    #[allow(clippy::cast_precision_loss)]
    let value = (rng.next_u64() >> 11) as f64;
    value / 9_007_199_254_740_992.0
}

/// A standard normal draw (Box–Muller); synthetic data only.
pub(crate) fn normal<R: Rng + ?Sized>(rng: &mut R) -> f64 {
    let u = unit_uniform(rng).max(f64::MIN_POSITIVE);
    let v = unit_uniform(rng);
    (-2.0 * u.ln()).sqrt() * (std::f64::consts::TAU * v).cos()
}

/// Walker's alias table for sampling an index with given weights.
pub(crate) struct Alias {
    probability: Vec<f64>,
    alias: Vec<u32>,
}

impl Alias {
    pub(crate) fn new(weights: &[f64]) -> Self {
        let total: f64 = weights.iter().sum();
        #[allow(clippy::cast_precision_loss)]
        let n = weights.len() as f64;
        let mut scaled: Vec<f64> = weights.iter().map(|weight| weight * n / total).collect();
        let mut alias = vec![0_u32; weights.len()];
        let (mut small, mut large): (Vec<usize>, Vec<usize>) =
            (0..weights.len()).partition(|&i| scaled[i] < 1.0);
        while let (Some(low), Some(&high)) = (small.pop(), large.last()) {
            alias[low] = u32::try_from(high).unwrap_or(u32::MAX);
            scaled[high] -= 1.0 - scaled[low];
            if scaled[high] < 1.0 {
                large.pop();
                small.push(high);
            }
        }
        for index in small.into_iter().chain(large) {
            scaled[index] = 1.0;
        }
        Self {
            probability: scaled,
            alias,
        }
    }

    pub(crate) fn sample<R: Rng + ?Sized>(&self, rng: &mut R) -> usize {
        #[allow(
            clippy::cast_precision_loss,
            clippy::cast_possible_truncation,
            clippy::cast_sign_loss
        )]
        let index = ((unit_uniform(rng) * self.probability.len() as f64) as usize)
            .min(self.probability.len() - 1);
        if unit_uniform(rng) < self.probability[index] {
            index
        } else {
            self.alias[index] as usize
        }
    }
}

pub(crate) fn zipf_weights(n: usize, exponent: f64) -> Vec<f64> {
    #[allow(clippy::cast_precision_loss)]
    (1..=n)
        .map(|rank| 1.0 / (rank as f64).powf(exponent))
        .collect()
}

/// Writes a synthetic events table (`user_id`, `event_time`, `country`, `feature`,
/// `value`) to `path` as Parquet, calling `progress` with the rows written so far.
///
/// # Errors
/// [`EngineError::InvalidJob`] for zero rows or users; [`EngineError::Output`] if the file
/// cannot be written.
pub fn write_sample<R: Rng + ?Sized>(
    spec: SampleSpec,
    path: &Path,
    rng: &mut R,
    progress: &mut dyn FnMut(u64),
) -> Result<SampleSummary, EngineError> {
    if spec.rows == 0 || spec.users == 0 {
        return Err(EngineError::invalid(
            "sample-data",
            "--rows and --users must be at least 1",
        ));
    }
    let users = usize::try_from(spec.users)
        .map_err(|_| EngineError::invalid("sample-data", "too many users"))?;
    // Activity per user: log-normal with σ = 1.55, so the median user has a third of the
    // mean's events and the most active have thousands of times more.
    let activity: Vec<f64> = (0..users).map(|_| (1.55 * normal(rng)).exp()).collect();
    let pick_user = Alias::new(&activity);
    let pick_country = Alias::new(&zipf_weights(COUNTRIES.len(), 1.1));
    let pick_feature = Alias::new(&zipf_weights(FEATURES.len(), 1.0));
    let home: Vec<u8> = (0..users)
        .map(|_| u8::try_from(pick_country.sample(rng)).unwrap_or(0))
        .collect();
    let mut seen = vec![false; users];

    let io_error = |source: std::io::Error| EngineError::Output {
        path: path.to_path_buf(),
        source,
    };
    let file = std::fs::File::create(path).map_err(io_error)?;
    let schema = Schema::from_iter([
        Field::new("user_id".into(), DataType::Int64),
        Field::new(
            "event_time".into(),
            DataType::Datetime(TimeUnit::Milliseconds, Some(TimeZone::UTC)),
        ),
        Field::new("country".into(), DataType::String),
        Field::new("feature".into(), DataType::String),
        Field::new("value".into(), DataType::Float64),
    ]);
    let mut writer = ParquetWriter::new(file)
        .with_compression(ParquetCompression::Snappy)
        .batched(&schema)
        .map_err(|e| EngineError::polars("writing sample data", &e))?;
    let span_ms = SAMPLE_DAYS * 86_400_000;
    let mut written = 0_u64;
    while written < spec.rows {
        let chunk = (spec.rows - written).min(CHUNK_ROWS);
        let capacity = usize::try_from(chunk).unwrap_or(usize::MAX);
        let mut user_ids = Vec::with_capacity(capacity);
        let mut times = Vec::with_capacity(capacity);
        let mut countries = Vec::with_capacity(capacity);
        let mut features = Vec::with_capacity(capacity);
        let mut values: Vec<Option<f64>> = Vec::with_capacity(capacity);
        for _ in 0..chunk {
            let user = pick_user.sample(rng);
            seen[user] = true;
            user_ids.push(i64::try_from(user).unwrap_or(i64::MAX) + 1);
            #[allow(clippy::cast_precision_loss, clippy::cast_possible_truncation)]
            let offset = (unit_uniform(rng) * span_ms as f64) as i64;
            times.push(SAMPLE_END_MS - span_ms + offset);
            // 85% of a user's events are in their home country; the rest travel.
            let country = if unit_uniform(rng) < 0.85 {
                usize::from(home[user])
            } else {
                pick_country.sample(rng)
            };
            countries.push(COUNTRIES[country]);
            features.push(FEATURES[pick_feature.sample(rng)]);
            // Minutes of use: log-normal around 12 with a long tail past 100; 1% missing.
            values.push(if unit_uniform(rng) < 0.01 {
                None
            } else {
                Some(((2.5 + normal(rng)).exp() * 100.0).round() / 100.0)
            });
        }
        let columns = vec![
            Column::new("user_id".into(), user_ids),
            Column::new("event_time".into(), times)
                .cast(&DataType::Datetime(
                    TimeUnit::Milliseconds,
                    Some(TimeZone::UTC),
                ))
                .map_err(|e| EngineError::polars("writing sample data", &e))?,
            Column::new("country".into(), countries),
            Column::new("feature".into(), features),
            Column::new("value".into(), values),
        ];
        let frame = DataFrame::new(capacity, columns)
            .map_err(|e| EngineError::polars("writing sample data", &e))?;
        writer
            .write_batch(&frame)
            .map_err(|e| EngineError::polars("writing sample data", &e))?;
        written += chunk;
        progress(written);
    }
    writer
        .finish()
        .map_err(|e| EngineError::polars("writing sample data", &e))?;
    let users_with_rows = seen.iter().filter(|&&seen| seen).count() as u64;
    Ok(SampleSummary {
        rows: written,
        users_with_rows,
    })
}

/// Writes a consent log for users `1..=users` of a sample table: per user and purpose, a
/// grant for most users (at a time in the year before [`SAMPLE_END_MS`]), a later revoke
/// for some, a grant again for a few, and nothing for others. Columns: `user_id`,
/// `purpose`, `action` (`grant` or `revoke`), `at` (UTC timestamp).
///
/// # Errors
/// [`EngineError::Output`] if the file cannot be written.
pub fn write_sample_consent<R: Rng + ?Sized>(
    users: u64,
    purposes: &[&str],
    path: &Path,
    rng: &mut R,
) -> Result<u64, EngineError> {
    let year_ms = 365 * 86_400_000_i64;
    let failed = |e: PolarsError| EngineError::polars("writing sample consent", &e);
    let file = std::fs::File::create(path).map_err(|source| EngineError::Output {
        path: path.to_path_buf(),
        source,
    })?;
    let datetime = DataType::Datetime(TimeUnit::Milliseconds, Some(TimeZone::UTC));
    let schema = Schema::from_iter([
        Field::new("user_id".into(), DataType::Int64),
        Field::new("purpose".into(), DataType::String),
        Field::new("action".into(), DataType::String),
        Field::new("at".into(), datetime.clone()),
    ]);
    let mut writer = ParquetWriter::new(file)
        .with_compression(ParquetCompression::Snappy)
        .batched(&schema)
        .map_err(failed)?;
    // Written a batch of users at a time, so that memory stays bounded for any number of
    // users.
    let mut rows = 0_usize;
    let mut first = 1;
    while first <= users {
        let last = users.min(first.saturating_add(CHUNK_ROWS / 2) - 1);
        let mut user_ids = Vec::new();
        let mut purpose_names = Vec::new();
        let mut actions = Vec::new();
        let mut times = Vec::new();
        let mut push = |user: u64, purpose: &str, action: &str, at: i64| {
            user_ids.push(i64::try_from(user).unwrap_or(i64::MAX));
            purpose_names.push(purpose.to_string());
            actions.push(action.to_string());
            times.push(at);
        };
        for user in first..=last {
            for purpose in purposes {
                let draw = unit_uniform(rng);
                #[allow(clippy::cast_precision_loss, clippy::cast_possible_truncation)]
                let granted_at =
                    SAMPLE_END_MS - year_ms + (unit_uniform(rng) * (year_ms / 2) as f64) as i64;
                #[allow(clippy::cast_precision_loss, clippy::cast_possible_truncation)]
                let later = |rng: &mut R, after: i64| {
                    after + 1 + (unit_uniform(rng) * ((SAMPLE_END_MS - after) as f64 * 0.9)) as i64
                };
                if draw < 0.06 {
                    continue; // never asked, or never answered: no consent
                }
                push(user, purpose, "grant", granted_at);
                if draw < 0.16 {
                    let revoked_at = later(rng, granted_at);
                    push(user, purpose, "revoke", revoked_at);
                    if draw < 0.09 {
                        let regranted_at = later(rng, revoked_at);
                        push(user, purpose, "grant", regranted_at);
                    }
                }
            }
        }
        let height = user_ids.len();
        let frame = DataFrame::new(
            height,
            vec![
                Column::new("user_id".into(), user_ids),
                Column::new("purpose".into(), purpose_names),
                Column::new("action".into(), actions),
                Column::new("at".into(), times)
                    .cast(&datetime)
                    .map_err(failed)?,
            ],
        )
        .map_err(failed)?;
        writer.write_batch(&frame).map_err(failed)?;
        rows += height;
        first = last + 1;
    }
    writer.finish().map_err(failed)?;
    Ok(rows as u64)
}
