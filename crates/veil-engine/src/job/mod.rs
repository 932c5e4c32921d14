//! A job as the engine sees it: validated domain types, built by the CLI from its job file.

use std::path::PathBuf;

use veil_core::{Bounds, Delta, Epsilon, Rho};

/// Where the data comes from.
#[derive(Debug, Clone, PartialEq)]
pub struct Source {
    /// A file, a directory of files, or a glob (`data/events-*.parquet`).
    pub path: PathBuf,
    /// Parquet or CSV.
    pub format: SourceFormat,
    /// The column that identifies whose privacy is protected (a person, a device).
    pub privacy_unit: String,
}

/// The file format of a source.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SourceFormat {
    /// Apache Parquet.
    Parquet,
    /// Delimited text with a header row.
    Csv {
        /// The field separator (`b','` unless the job says otherwise).
        delimiter: u8,
    },
}

impl SourceFormat {
    /// The format a path's extension suggests: `.csv` (or `.csv.gz`) is CSV, anything else
    /// Parquet.
    #[must_use]
    pub fn from_path(path: &std::path::Path) -> Self {
        let name = path
            .file_name()
            .map(|name| name.to_string_lossy().to_lowercase())
            .unwrap_or_default();
        if name.ends_with(".csv") || name.ends_with(".csv.gz") {
            Self::csv()
        } else {
            Self::Parquet
        }
    }

    /// Comma-separated values.
    #[must_use]
    pub fn csv() -> Self {
        Self::Csv { delimiter: b',' }
    }

    /// Whether this is one of the CSV formats (any delimiter).
    #[must_use]
    pub fn is_csv(self) -> bool {
        matches!(self, Self::Csv { .. })
    }
}

/// What a job may spend, in one privacy measure.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum JobBudget {
    /// Pure ε-DP: Laplace noise; private partition selection is impossible.
    Pure(Epsilon),
    /// (ε, δ)-DP: Gaussian noise accounted in zCDP, converted at the end; δ also pays for
    /// private partition selection.
    Approx(Epsilon, Delta),
    /// ρ-zCDP: Gaussian noise; private partition selection is impossible (it needs a δ).
    Zcdp(Rho),
}

/// How many groups, and rows per group, one privacy unit may contribute.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ContributionBounds {
    /// L0: at most this many groups per unit (at least 1).
    pub max_groups_per_unit: u32,
    /// L∞: at most this many rows per unit in each group (at least 1).
    pub max_rows_per_group: u32,
}

/// Which groups a query may release.
#[derive(Debug, Clone, PartialEq)]
pub enum Partitions {
    /// Groups found in the data, kept only if enough units are in them (costs δ).
    Private,
    /// Exactly these groups: each is released (with noise), including those with no rows,
    /// and no other group is. Each key has one value per group-by column, as text.
    Public {
        /// Where the keys came from, for messages.
        origin: String,
        /// The keys.
        keys: Vec<Vec<String>>,
    },
}

/// Which count private partition selection thresholds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Selection {
    /// A count the query releases anyway (its distinct units, else its rows, else a count
    /// of values), which costs only δ; a count of units of its own only when the query
    /// releases no count.
    #[default]
    Released,
    /// Distinct units, always: a count drawn for the selection alone (a fixed part of the
    /// query's budget) unless the query releases its unit count. Keeps more groups than
    /// thresholding a row count when units have several rows in a group, at the price of
    /// noisier outputs.
    Units,
}

/// What a quantile's 95% interval is about.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum QuantileInterval {
    /// An interval of values, from two more draws aimed beyond the quantile's rank on
    /// either side: a tenth of the quantile's budget. Informative where a group has many
    /// more rows than those draws' rank error; elsewhere it spans the column's bounds. The
    /// ends aim by a released count of the column's rows: a query that releases none
    /// (other than the count selection thresholds) draws no ends and plans as
    /// [`QuantileInterval::Rank`], and `veil explain` says so.
    #[default]
    Value,
    /// No value interval: the whole budget goes to the point, whose rank error (95%, in
    /// rows, the same for every group) `veil explain` and `release.json` state. The value
    /// columns of the interval then hold the column's bounds, an interval that always holds.
    Rank,
}

/// An aggregate to release for each group.
#[derive(Debug, Clone, PartialEq)]
pub struct Aggregate {
    /// The output column name (and prefix of its `_std`, `_ci_low`, `_ci_high` columns).
    pub name: String,
    /// What to compute.
    pub kind: AggregateKind,
    /// How much this aggregate's relative error counts when the planner splits the budget
    /// (default 1; a quantiles aggregate counts once per level).
    pub weight: f64,
}

/// What an aggregate computes.
#[derive(Debug, Clone, PartialEq)]
pub enum AggregateKind {
    /// Number of rows (after bounding).
    Count,
    /// Number of distinct privacy units.
    UnitCount,
    /// Sum of a column clamped to bounds.
    Sum(ValueColumn),
    /// Mean of a column clamped to bounds.
    Mean(ValueColumn),
    /// Variance of a column clamped to bounds.
    Variance(ValueColumn),
    /// Quantiles of a column clamped to bounds, at levels in `[0, 1]`.
    Quantiles {
        /// The column and its bounds.
        column: ValueColumn,
        /// The levels, e.g. `[0.5, 0.9]`.
        levels: Vec<f64>,
        /// What each level's interval is about.
        interval: QuantileInterval,
    },
}

impl AggregateKind {
    /// The column this aggregate reads, if any.
    #[must_use]
    pub fn column(&self) -> Option<&ValueColumn> {
        match self {
            Self::Count | Self::UnitCount => None,
            Self::Sum(column) | Self::Mean(column) | Self::Variance(column) => Some(column),
            Self::Quantiles { column, .. } => Some(column),
        }
    }

    /// The default output name: `count`, `unit_count`, `sum_<column>`, `mean_<column>`,
    /// `variance_<column>`; quantiles name each level (`q50_<column>`) instead.
    #[must_use]
    pub fn default_name(&self) -> String {
        match self {
            Self::Count => "count".to_string(),
            Self::UnitCount => "unit_count".to_string(),
            Self::Sum(column) => format!("sum_{}", column.name),
            Self::Mean(column) => format!("mean_{}", column.name),
            Self::Variance(column) => format!("variance_{}", column.name),
            Self::Quantiles { column, .. } => format!("quantiles_{}", column.name),
        }
    }
}

/// A numeric column and the bounds its values are clamped to.
#[derive(Debug, Clone, PartialEq)]
pub struct ValueColumn {
    /// The column.
    pub name: String,
    /// Values are clamped into these bounds before aggregation.
    pub bounds: Bounds,
}

/// One query: groups, bounds, and the aggregates released per group.
#[derive(Debug, Clone, PartialEq)]
pub struct Query {
    /// A name unique in the job; the output file is named after it.
    pub name: String,
    /// Zero or more columns to group by.
    pub group_by: Vec<String>,
    /// The contribution bounds.
    pub bounds: ContributionBounds,
    /// Which groups may be released.
    pub partitions: Partitions,
    /// For private partitions, the count whose threshold decides which groups appear.
    pub selection: Selection,
    /// What to release per group.
    pub aggregates: Vec<Aggregate>,
    /// This query's share of the job's budget relative to the others (default 1).
    pub weight: f64,
    /// Rows without a value (null or NaN) in any of these columns are left out of the
    /// whole query, before bounding: its counts then count only rows with values, and
    /// counts and value aggregates can share their noisy measures.
    pub drop_missing: Vec<String>,
    /// Bounds to choose from the data, privately, before the run (`"auto"` in the job
    /// file): their values in `bounds` and in the aggregates are placeholders until then.
    pub auto: Vec<AutoBound>,
}

/// The share of a job's budget that its `auto` bounds take, together (the planner sets it
/// aside; `crate::autobound` spends it).
pub const AUTO_SHARE: f64 = 0.1;

impl Job {
    /// How many `auto` choices the job makes (a value column's two ends count as one).
    #[must_use]
    pub fn auto_choices(&self) -> usize {
        self.queries.iter().map(|query| query.auto.len()).sum()
    }
}

/// A contribution bound chosen from the data under a share of the budget
/// (`crate::autobound`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AutoBound {
    /// `max_groups_per_unit`.
    GroupsPerUnit,
    /// `max_rows_per_group`.
    RowsPerGroup,
    /// The bounds of every aggregate of this column.
    Values(String),
}

/// Where and how outputs are written.
#[derive(Debug, Clone, PartialEq)]
pub struct Output {
    /// A directory: one file per query plus `release.json`.
    pub directory: PathBuf,
    /// The file format.
    pub format: OutputFormat,
}

/// The format of released tables.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OutputFormat {
    /// Apache Parquet.
    Parquet,
    /// CSV with a header row.
    Csv,
    /// A JSON array of objects, one per group.
    Json,
}

impl OutputFormat {
    /// The file extension.
    #[must_use]
    pub fn extension(self) -> &'static str {
        match self {
            Self::Parquet => "parquet",
            Self::Csv => "csv",
            Self::Json => "json",
        }
    }
}

/// The purpose a job serves, as its registry declares it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Purpose {
    /// Its name (the ledger's purpose).
    pub name: String,
    /// What it is for, in plain language.
    pub description: String,
    /// The columns it may read besides the privacy unit; `None` when the job names no
    /// registry (any column may be read).
    pub columns: Option<Vec<String>>,
    /// How far back it may look, in milliseconds; `None` for no limit.
    pub retention_ms: Option<i64>,
}

/// Where consent comes from: a log of grant and revoke events per unit and purpose.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Consent {
    /// The consent table (Parquet or CSV).
    pub path: PathBuf,
    /// Its format.
    pub format: SourceFormat,
    /// The column holding the privacy unit.
    pub unit_column: String,
    /// The column holding the purpose.
    pub purpose_column: String,
    /// The column holding the action: `grant` or `revoke`.
    pub action_column: String,
    /// The column holding when the event happened.
    pub time_column: String,
}

impl Consent {
    /// The consent table as a source to read, keyed by its unit column.
    #[must_use]
    pub fn source(&self) -> Source {
        Source {
            path: self.path.clone(),
            format: self.format,
            privacy_unit: self.unit_column.clone(),
        }
    }
}

/// Consent, purpose and retention: which rows a job may read at all.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Governance {
    /// The purpose.
    pub purpose: Purpose,
    /// Consent; `None` when the job names no consent table (every unit contributes).
    pub consent: Option<Consent>,
    /// The source's time column (needed when the purpose has a retention period).
    pub time_column: Option<String>,
    /// The time the job runs as of, in milliseconds since the Unix epoch (UTC): consent in
    /// force then, and the retention window ending then.
    pub as_of_ms: i64,
    /// The fewest privacy units that may remain after retention and consent for a release
    /// (at least 1: a job with no one left is refused before anything is charged).
    pub min_units: u64,
}

impl Governance {
    /// No registry, no consent table, no retention: a job that only names its purpose.
    #[must_use]
    pub fn unrestricted(purpose: &str, as_of_ms: i64) -> Self {
        Self {
            purpose: Purpose {
                name: purpose.to_string(),
                description: String::new(),
                columns: None,
                retention_ms: None,
            },
            consent: None,
            time_column: None,
            as_of_ms,
            min_units: 1,
        }
    }
}

/// A complete, validated job.
#[derive(Debug, Clone, PartialEq)]
pub struct Job {
    /// The job's name (from its file name).
    pub name: String,
    /// A hash of the job file, recorded with every charge and release.
    pub job_hash: String,
    /// The data.
    pub source: Source,
    /// What the job may spend.
    pub budget: JobBudget,
    /// The queries, in order.
    pub queries: Vec<Query>,
    /// Where the release goes.
    pub output: Output,
    /// Purpose, consent and retention.
    pub governance: Governance,
    /// Which noise family the planner may use.
    pub noise: NoisePreference,
}

/// Which noise family a job's plan uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum NoisePreference {
    /// The family whose predicted error of the released outputs is lower.
    #[default]
    Auto,
    /// Discrete Laplace noise (pure ε; δ only pays for choosing groups).
    Laplace,
    /// Discrete Gaussian noise (zCDP, or (ε, δ) through its exact privacy curve).
    Gaussian,
}

/// The value columns an aggregate writes (each also gets `_std`, `_ci_low`, `_ci_high`).
#[must_use]
pub fn output_names_of(aggregate: &crate::job::Aggregate) -> Vec<String> {
    match &aggregate.kind {
        AggregateKind::Quantiles { column, levels, .. } => levels
            .iter()
            .map(|level| {
                let percent = level * 100.0;
                let label = if (percent - percent.round()).abs() < 1e-9 {
                    format!("{percent:.0}")
                } else {
                    format!("{percent}").replace('.', "_")
                };
                if aggregate.name == aggregate.kind.default_name() {
                    format!("q{label}_{}", column.name)
                } else {
                    format!("{}_q{label}", aggregate.name)
                }
            })
            .collect(),
        _ => vec![aggregate.name.clone()],
    }
}

mod validate;
