//! The job file's shape, as serde reads it: every key, its type and its default.

use std::path::PathBuf;

use serde::Deserialize;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct JobFile {
    /// Consent and retention are judged as of this time (RFC 3339 or a date); the command
    /// line's `--as-of` wins; default now.
    pub(super) as_of: Option<String>,
    pub(super) source: SourceConfig,
    pub(super) budget: BudgetConfig,
    pub(super) consent: Option<ConsentConfig>,
    #[serde(rename = "query", default)]
    pub(super) queries: Vec<QueryConfig>,
    pub(super) output: OutputConfig,
    pub(super) engine: Option<EngineConfig>,
}

/// The `[engine]` table: where the non-private part of the job runs.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct EngineConfig {
    #[serde(default)]
    pub(super) kind: EngineKind,
    pub(super) remote: Option<String>,
    /// The local engine's memory budget (`4GiB`, `512MiB`); `--memory` wins.
    pub(super) memory: Option<String>,
}

/// Which engine reads, bounds and aggregates.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub(crate) enum EngineKind {
    /// Polars on this machine.
    #[default]
    Local,
    /// Apache Spark, through Spark Connect.
    Spark,
}

/// The engine a job names: its kind and, for Spark, the server's address.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct EngineChoice {
    /// Which engine.
    pub(crate) kind: EngineKind,
    /// The Spark Connect server (`[engine] remote`), if given.
    pub(crate) remote: Option<veil_spark::Remote>,
    /// The local engine's memory budget (`[engine] memory`), if given.
    pub(crate) memory: Option<veil_engine::scan::MemoryBudget>,
}

/// The `[consent]` table: where the consent log is and how its columns are named.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct ConsentConfig {
    pub(super) path: PathBuf,
    pub(super) format: Option<SourceFormatName>,
    pub(super) delimiter: Option<String>,
    pub(super) unit_column: Option<String>,
    pub(super) purpose_column: Option<String>,
    pub(super) action_column: Option<String>,
    pub(super) time_column: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct SourceConfig {
    pub(super) path: PathBuf,
    pub(super) privacy_unit: String,
    pub(super) format: Option<SourceFormatName>,
    /// The field separator of a CSV source: one character (`","`, `";"`, `"\t"`).
    pub(super) delimiter: Option<String>,
    pub(super) time_column: Option<String>,
    /// Refuse to release when fewer units remain after retention and consent.
    pub(super) min_units: Option<u64>,
}

#[derive(Debug, Clone, Copy, Deserialize)]
#[serde(rename_all = "lowercase")]
pub(super) enum SourceFormatName {
    Parquet,
    Csv,
}

/// The `[budget]` table: what the job spends, and against which ledger budget.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct BudgetConfig {
    /// The ledger file.
    pub(crate) ledger: PathBuf,
    /// The dataset's name in the ledger.
    pub(crate) dataset: String,
    /// The purpose's name in the ledger (and in the registry, if there is one).
    pub(crate) purpose: String,
    /// The purposes registry.
    pub(crate) purposes: Option<PathBuf>,
    pub(super) epsilon: Option<f64>,
    pub(super) delta: Option<f64>,
    pub(super) rho: Option<f64>,
    /// `auto` (default), `laplace` or `gaussian`: the noise family.
    #[serde(default)]
    pub(super) noise: NoiseName,
}

#[derive(Debug, Clone, Copy, Default, Deserialize)]
#[serde(rename_all = "lowercase")]
pub(super) enum NoiseName {
    #[default]
    Auto,
    Laplace,
    Gaussian,
}

/// What a quantile's interval is about.
#[derive(Debug, Clone, Copy, Deserialize)]
#[serde(rename_all = "lowercase")]
pub(super) enum IntervalName {
    Value,
    Rank,
}

#[derive(Debug, Clone, Copy, Deserialize)]
#[serde(rename_all = "lowercase")]
pub(super) enum SelectionName {
    Released,
    Units,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct QueryConfig {
    pub(super) name: String,
    #[serde(default)]
    pub(super) group_by: Vec<String>,
    pub(super) max_groups_per_unit: Option<CountOrAuto>,
    pub(super) max_rows_per_group: Option<CountOrAuto>,
    pub(super) partitions: Option<toml::Value>,
    /// `released` (default) or `units`: the count private partition selection thresholds.
    pub(super) selection: Option<SelectionName>,
    pub(super) weight: Option<f64>,
    /// Columns whose missing values leave the row out of the whole query.
    #[serde(default)]
    pub(super) drop_missing: Vec<String>,
    /// A column whose values split the groups for the utility report's fairness
    /// breakdowns (e.g. a region for groups by country).
    pub(super) segment: Option<String>,
    #[serde(default)]
    pub(super) aggregates: Vec<AggregateConfig>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct AggregateConfig {
    pub(super) kind: AggregateKindName,
    pub(super) name: Option<String>,
    pub(super) column: Option<String>,
    pub(super) bounds: Option<BoundsOrAuto>,
    pub(super) q: Option<Vec<f64>>,
    /// Quantiles only: `value` (default) or `rank`, what the 95% interval is about.
    pub(super) interval: Option<IntervalName>,
    pub(super) weight: Option<f64>,
}

/// A contribution bound: a number, or `"auto"` (chosen from the data, privately).
#[derive(Debug, Clone)]
pub(super) enum CountOrAuto {
    Count(u32),
    Auto(String),
}

/// Value bounds: `[lower, upper]`, or `"auto"` (chosen from the data, privately).
#[derive(Debug, Clone)]
pub(super) enum BoundsOrAuto {
    Bounds(Vec<f64>),
    Auto(String),
}

/// `"auto"`, checked.
pub(super) fn is_auto(text: &str) -> Result<(), String> {
    if text == "auto" {
        Ok(())
    } else {
        Err(format!(
            "{text:?} is neither a number nor \"auto\" (auto chooses it from the data, privately, for a tenth of the budget)"
        ))
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub(super) enum AggregateKindName {
    Count,
    UnitCount,
    Sum,
    Mean,
    Variance,
    Quantiles,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct OutputConfig {
    pub(super) path: PathBuf,
    #[serde(default = "default_output_format")]
    pub(super) format: OutputFormatName,
}

#[derive(Debug, Clone, Copy, Deserialize)]
#[serde(rename_all = "lowercase")]
pub(super) enum OutputFormatName {
    Parquet,
    Csv,
    Json,
}

pub(super) fn default_output_format() -> OutputFormatName {
    OutputFormatName::Parquet
}

impl<'de> Deserialize<'de> for BoundsOrAuto {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct Visitor;
        impl<'de> serde::de::Visitor<'de> for Visitor {
            type Value = BoundsOrAuto;
            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("[lower, upper] or \"auto\"")
            }
            fn visit_str<E: serde::de::Error>(self, value: &str) -> Result<BoundsOrAuto, E> {
                Ok(BoundsOrAuto::Auto(value.to_string()))
            }
            fn visit_seq<A: serde::de::SeqAccess<'de>>(
                self,
                mut seq: A,
            ) -> Result<BoundsOrAuto, A::Error> {
                let mut bounds = Vec::new();
                while let Some(value) = seq.next_element::<f64>()? {
                    bounds.push(value);
                }
                Ok(BoundsOrAuto::Bounds(bounds))
            }
        }
        deserializer.deserialize_any(Visitor)
    }
}

impl<'de> Deserialize<'de> for CountOrAuto {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct Visitor;
        impl serde::de::Visitor<'_> for Visitor {
            type Value = CountOrAuto;
            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("a whole number of at least 1, or \"auto\"")
            }
            fn visit_i64<E: serde::de::Error>(self, value: i64) -> Result<CountOrAuto, E> {
                u32::try_from(value)
                    .map(CountOrAuto::Count)
                    .map_err(|_| E::invalid_value(serde::de::Unexpected::Signed(value), &self))
            }
            fn visit_u64<E: serde::de::Error>(self, value: u64) -> Result<CountOrAuto, E> {
                u32::try_from(value)
                    .map(CountOrAuto::Count)
                    .map_err(|_| E::invalid_value(serde::de::Unexpected::Unsigned(value), &self))
            }
            fn visit_str<E: serde::de::Error>(self, value: &str) -> Result<CountOrAuto, E> {
                Ok(CountOrAuto::Auto(value.to_string()))
            }
        }
        deserializer.deserialize_any(Visitor)
    }
}
