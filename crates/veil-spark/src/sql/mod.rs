//! The scan plan as Spark SQL: the same filters, per-row values, keyed-hash bounding and
//! per-group sums as the Polars scan (`veil_engine::scan`), expression by expression.
//!
//! The output is a few `CREATE TEMPORARY VIEW ... USING parquet` statements that name the
//! files, then **one query** whose result is a `UNION ALL` of every result set: the scan's
//! counts, each query's per-group sums, and each quantile column's leaf counts. One query
//! lets Spark reuse the shuffles that a query's sums and histograms share. Its columns:
//!
//! | column | type | meaning |
//! |---|---|---|
//! | `result` | STRING | `count`, `groups` or `histogram` |
//! | `query` | INT | the query's index in the plan (null for counts) |
//! | `name` | STRING | the counter's name, or the histogram's measure key |
//! | `leaf` | BIGINT | the histogram leaf |
//! | `k0`, `k1`, ... | STRING | the group key, one text value per group-by column |
//! | `v0`, `v1`, ... | BIGINT | the counter, the leaf's rows, or the query's measures in plan order |
//!
//! The bounding key is not in the text: the two hashes read the named parameters
//! `:veil_row_key` and `:veil_pair_key`, bound when the query runs ([`SparkSql::parameters`]).
//!
//! One file on purpose: it mirrors `veil_engine::scan` expression by expression, and the
//! two are reviewed side by side (the bit-identical tests compare their results).

use std::fmt::{self, Write as _};

use veil_core::mechanism::FixedPoint;
use veil_engine::EngineError;
use veil_engine::job::{Source, SourceFormat};
use veil_engine::plan::{
    ConsentFilter, HISTOGRAM_BRANCHING, HISTOGRAM_DEPTH, Measure, QueryScan, ScanPlan,
};
use veil_engine::scan::{BoundingKey, NULL_MASK_COLUMNS};
use veil_engine::schema::{ColumnKind, SourceSchema};

/// The named parameter that keys the row hash (L∞).
pub const ROW_KEY: &str = "veil_row_key";
/// The named parameter that keys the unit–group hash (L0).
pub const PAIR_KEY: &str = "veil_pair_key";

/// The temporary view over the source's files.
pub(crate) const SOURCE_VIEW: &str = "veil_source";
/// The temporary view over the consent log's files.
pub(crate) const CONSENT_VIEW: &str = "veil_consent_log";

/// What the scan counts, by name in the `count` rows.
pub(crate) const ROWS_READ: &str = "rows_read";
pub(crate) const ROWS_IN_WINDOW: &str = "rows_in_window";
pub(crate) const ROWS_WITH_CONSENT: &str = "rows_with_consent";
pub(crate) const ROWS_WITHOUT_UNIT: &str = "rows_without_unit";
pub(crate) const UNITS: &str = "units";
pub(crate) const UNKNOWN_ACTIONS: &str = "unknown_actions";
pub(crate) const MISSING_PREFIX: &str = "missing:";

/// A scan plan compiled to Spark SQL.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SparkSql {
    setup: Vec<String>,
    query: String,
    key_columns: usize,
    value_columns: usize,
}

impl SparkSql {
    /// The statements that define the temporary views the query reads (run first, in
    /// order).
    #[must_use]
    pub fn setup(&self) -> &[String] {
        &self.setup
    }

    /// The query whose result is every aggregate and count of the scan.
    #[must_use]
    pub fn query(&self) -> &str {
        &self.query
    }

    /// The named parameters of [`SparkSql::query`] for a run's bounding key: the row key,
    /// then the pair key, each as a signed 64-bit integer (Spark's `BIGINT`).
    #[must_use]
    pub fn parameters(key: BoundingKey) -> [(&'static str, i64); 2] {
        let [rows, pairs] = key.words();
        [
            (ROW_KEY, i64::from_ne_bytes(rows.to_ne_bytes())),
            (PAIR_KEY, i64::from_ne_bytes(pairs.to_ne_bytes())),
        ]
    }

    /// How many group-key columns (`k0`, `k1`, ...) the result has.
    #[must_use]
    pub fn key_columns(&self) -> usize {
        self.key_columns
    }

    /// How many value columns (`v0`, `v1`, ...) the result has.
    #[must_use]
    pub fn value_columns(&self) -> usize {
        self.value_columns
    }
}

impl fmt::Display for SparkSql {
    /// The whole script: each setup statement, then the query, each ending in `;`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for statement in &self.setup {
            writeln!(f, "{statement};\n")?;
        }
        writeln!(f, "{};", self.query)
    }
}

/// Compiles the non-private part of a job to Spark SQL.
///
/// `schema` is the source's schema as Spark reads it; the compiler needs the kind of the
/// privacy unit (to read the consent log's units as the same type) and of the group-by
/// columns.
///
/// # Errors
/// [`EngineError::InvalidJob`] for what the Spark engine does not run: a CSV source or
/// consent log (Spark's CSV type inference differs from the local engine's, so the two
/// would hash different values), or public partitions over a timestamp column (Spark
/// writes timestamps as text differently).
pub fn compile(plan: &ScanPlan, schema: &SourceSchema) -> Result<SparkSql, EngineError> {
    check_parquet(&plan.source, "source.format")?;
    if let Some(consent) = &plan.consent {
        check_parquet(&consent.table.source(), "consent.format")?;
    }
    let unit = plan.source.privacy_unit.as_str();
    for (index, query) in plan.queries.iter().enumerate() {
        if query.public_keys.is_some() {
            for column in &query.group_by {
                if schema.get(column) == Some(&ColumnKind::Timestamp) {
                    return Err(EngineError::InvalidJob {
                        key: format!("query[{index}].partitions"),
                        reason: format!(
                            "the Spark engine cannot match public partitions on timestamp column {column:?}; group by a date or a text column instead, or run the job locally"
                        ),
                    });
                }
            }
        }
    }
    let key_columns = plan
        .queries
        .iter()
        .map(|query| query.group_by.len())
        .max()
        .unwrap_or(0);
    let value_columns = plan
        .queries
        .iter()
        .map(|query| group_measures(query).count())
        .max()
        .unwrap_or(0)
        .max(1);
    let layout = Layout {
        key_columns,
        value_columns,
    };

    let mut setup = vec![create_view(SOURCE_VIEW, &plan.source)];
    if let Some(consent) = &plan.consent {
        setup.push(create_view(CONSENT_VIEW, &consent.table.source()));
    }

    let mut ctes: Vec<(String, String, String)> = Vec::new();
    let window = plan.time_window.as_ref().map(window_condition);
    if let Some(window) = &plan.time_window {
        ctes.push((
            "windowed".into(),
            format!(
                "Retention: rows whose {} is from {} to {} (UTC, in microseconds).",
                window.column,
                veil_engine::as_of_text(window.from_ms),
                veil_engine::as_of_text(window.to_ms)
            ),
            format!(
                "SELECT * FROM {SOURCE_VIEW}\n  WHERE {}",
                window_condition(window)
            ),
        ));
    }
    let windowed = if plan.time_window.is_some() {
        "windowed"
    } else {
        SOURCE_VIEW
    };
    if let Some(consent) = &plan.consent {
        let unit_kind = schema.get(unit).cloned().unwrap_or(ColumnKind::String);
        let (comment, events, consented) = consent_ctes(consent, &unit_kind);
        ctes.push(("consent_events".into(), comment, events));
        ctes.push((
            "consented".into(),
            "Units with consent in force.".into(),
            consented,
        ));
    }
    let projection = plan
        .columns
        .iter()
        .map(|column| ident(column))
        .collect::<Vec<_>>()
        .join(", ");
    let source_rows = match &plan.consent {
        Some(_) => format!(
            "SELECT {projection} FROM {windowed}\n  WHERE {} IN (SELECT unit FROM consented)",
            ident(unit)
        ),
        None => format!("SELECT {projection} FROM {windowed}"),
    };
    ctes.push((
        "source_rows".into(),
        if plan.consent.is_some() {
            "The columns the job reads, of units with consent in force.".into()
        } else {
            "The columns the job reads.".into()
        },
        source_rows,
    ));

    let mut branches: Vec<String> = Vec::new();
    branches.push(counts_branch(plan, window.as_deref(), &layout));
    for (index, query) in plan.queries.iter().enumerate() {
        let (query_ctes, query_branches) = query_sql(index, query, unit, &layout);
        ctes.extend(query_ctes);
        branches.extend(query_branches);
    }

    let mut text = String::from("WITH\n");
    for (position, (name, comment, body)) in ctes.iter().enumerate() {
        let separator = if position + 1 < ctes.len() { "," } else { "" };
        let _ = write!(
            text,
            "-- {comment}\n{name} AS (\n  {}\n){separator}\n",
            indent(body)
        );
    }
    text.push_str(&branches.join("\nUNION ALL\n"));
    Ok(SparkSql {
        setup,
        query: text,
        key_columns,
        value_columns,
    })
}

/// The result's shape: how many key and value columns every branch fills.
struct Layout {
    key_columns: usize,
    value_columns: usize,
}

/// One branch of the union: its columns in the result's order, each `NULL` unless given.
struct Branch<'a> {
    result: &'a str,
    query: Option<usize>,
    name: Option<String>,
    leaf: Option<String>,
    keys: Vec<String>,
    values: Vec<String>,
}

impl Branch<'_> {
    fn select(&self, layout: &Layout) -> String {
        let mut columns = vec![
            format!("{} AS result", string_literal(self.result)),
            match self.query {
                Some(index) => format!("{index} AS query"),
                None => "CAST(NULL AS INT) AS query".to_string(),
            },
            format!(
                "{} AS name",
                self.name
                    .clone()
                    .unwrap_or_else(|| "CAST(NULL AS STRING)".to_string())
            ),
            format!(
                "{} AS leaf",
                self.leaf
                    .clone()
                    .unwrap_or_else(|| "CAST(NULL AS BIGINT)".to_string())
            ),
        ];
        for index in 0..layout.key_columns {
            let key = self
                .keys
                .get(index)
                .cloned()
                .unwrap_or_else(|| "CAST(NULL AS STRING)".to_string());
            columns.push(format!("{key} AS k{index}"));
        }
        for index in 0..layout.value_columns {
            let value = self
                .values
                .get(index)
                .cloned()
                .unwrap_or_else(|| "CAST(NULL AS BIGINT)".to_string());
            columns.push(format!("{value} AS v{index}"));
        }
        format!("SELECT\n  {}", columns.join(",\n  "))
    }
}

fn window_condition(window: &veil_engine::plan::TimeWindow) -> String {
    format!(
        "{} BETWEEN {} AND {}",
        micros(&window.column),
        window.from_ms.saturating_mul(1000),
        window.to_ms.saturating_mul(1000)
    )
}

/// The counts branch: rows read and inside the retention window, rows with consent and
/// without a unit, missing values per aggregated column, unknown consent actions.
fn counts_branch(plan: &ScanPlan, window: Option<&str>, layout: &Layout) -> String {
    let unit = ident(&plan.source.privacy_unit);
    let mut source_counts = vec![(ROWS_READ.to_string(), "COUNT(*)".to_string())];
    source_counts.push((
        ROWS_IN_WINDOW.to_string(),
        window.map_or_else(
            || "COUNT(*)".to_string(),
            |window| format!("COUNT_IF({window})"),
        ),
    ));
    // Rows without a unit are counted in the window, before consent (a null unit never has
    // consent, but it is counted as what it is); the rest among the rows with a unit.
    source_counts.push((
        ROWS_WITHOUT_UNIT.to_string(),
        window.map_or_else(
            || format!("COUNT_IF({unit} IS NULL)"),
            |window| format!("COUNT_IF(({window}) AND {unit} IS NULL)"),
        ),
    ));
    let mut row_counts = vec![
        (
            ROWS_WITH_CONSENT.to_string(),
            format!("COUNT_IF({unit} IS NOT NULL)"),
        ),
        (UNITS.to_string(), format!("COUNT(DISTINCT {unit})")),
    ];
    for column in plan.value_columns() {
        row_counts.push((
            format!("{MISSING_PREFIX}{column}"),
            format!("COUNT_IF({unit} IS NOT NULL AND NOT {})", present(&column)),
        ));
    }
    let mut parts = vec![
        stacked(&source_counts, SOURCE_VIEW, layout),
        stacked(&row_counts, "source_rows", layout),
    ];
    if let Some(consent) = &plan.consent {
        let action = format!("CAST({} AS STRING)", ident(&consent.table.action_column));
        parts.push(stacked(
            &[(
                UNKNOWN_ACTIONS.to_string(),
                format!("COUNT_IF({action} IS NOT NULL AND {action} NOT IN ('grant', 'revoke'))"),
            )],
            CONSENT_VIEW,
            layout,
        ));
    }
    format!(
        "-- The scan's counts, for the operator (not private, never released).\n{}",
        parts.join("\nUNION ALL\n")
    )
}

/// Counters computed in one pass over `from`, one result row each.
fn stacked(counters: &[(String, String)], from: &str, layout: &Layout) -> String {
    let inner = counters
        .iter()
        .enumerate()
        .map(|(index, (_, expression))| format!("{expression} AS c{index}"))
        .collect::<Vec<_>>()
        .join(", ");
    let pairs = counters
        .iter()
        .enumerate()
        .map(|(index, (name, _))| format!("{}, c{index}", string_literal(name)))
        .collect::<Vec<_>>()
        .join(", ");
    let branch = Branch {
        result: "count",
        query: None,
        name: Some("counter".to_string()),
        leaf: None,
        keys: Vec::new(),
        values: vec!["value".to_string()],
    };
    format!(
        "{}\nFROM (\n  SELECT stack({}, {pairs}) AS (counter, value)\n  FROM (SELECT {inner} FROM {from})\n)",
        branch.select(layout),
        counters.len()
    )
}

/// The measures that are per-group sums (every measure but histograms), in plan order.
pub(crate) fn group_measures(query: &QueryScan) -> impl Iterator<Item = &Measure> {
    query
        .measures
        .iter()
        .filter(|measure| !matches!(measure, Measure::Histogram { .. }))
}

/// One query's CTEs (rows, bounded rows, per-row values, surviving pairs) and its result
/// branches (the groups, then one per histogram).
fn query_sql(
    index: usize,
    query: &QueryScan,
    unit: &str,
    layout: &Layout,
) -> (Vec<(String, String, String)>, Vec<String>) {
    let rows = format!("q{index}_rows");
    let bounded = format!("q{index}_bounded");
    let values = format!("q{index}_values");
    let pairs = format!("q{index}_pairs");
    let hashed = query.row_hash_columns(unit);
    let group_set: Vec<&String> = query.group_by.iter().collect();
    let mut ctes = Vec::new();

    // The rows with a unit; for public partitions, group columns as text and only the
    // listed keys.
    let select_rows = hashed
        .iter()
        .map(|column| {
            if query.public_keys.is_some() && group_set.contains(&column) {
                format!("CAST({0} AS STRING) AS {0}", ident(column))
            } else {
                ident(column)
            }
        })
        .collect::<Vec<_>>()
        .join(", ");
    // Rows without a value in a `drop_missing` column are not part of the query.
    let kept: String = query
        .drop_missing
        .iter()
        .map(|column| format!(" AND {}", present(column)))
        .collect();
    let rows_body = match &query.public_keys {
        None => format!(
            "SELECT {select_rows} FROM source_rows\n  WHERE {} IS NOT NULL{kept}",
            ident(unit)
        ),
        Some(keys) => {
            let key_names: Vec<String> = (0..query.group_by.len())
                .map(|position| format!("veil_k{position}"))
                .collect();
            let tuples = keys
                .iter()
                .map(|key| {
                    format!(
                        "({})",
                        key.iter()
                            .map(|value| string_literal(value))
                            .collect::<Vec<_>>()
                            .join(", ")
                    )
                })
                .collect::<Vec<_>>()
                .join(", ");
            let on = query
                .group_by
                .iter()
                .zip(&key_names)
                .map(|(column, key)| format!("r.{} = veil_keys.{key}", ident(column)))
                .collect::<Vec<_>>()
                .join(" AND ");
            format!(
                "SELECT r.* FROM (\n  SELECT {select_rows} FROM source_rows\n  WHERE {} IS NOT NULL{kept}\n) AS r\nLEFT SEMI JOIN (VALUES {tuples}) AS veil_keys({}) ON {on}",
                ident(unit),
                key_names.join(", ")
            )
        }
    };
    ctes.push((
        rows.clone(),
        format!(
            "Query {:?}: rows with a privacy unit{}.",
            query.name,
            if query.public_keys.is_some() {
                ", of the public partitions only"
            } else {
                ""
            }
        ),
        rows_body,
    ));

    let unit_and_groups: Vec<String> = query
        .pair_hash_columns(unit)
        .iter()
        .map(|column| ident(column))
        .collect();
    let partition = unit_and_groups.join(", ");
    let row_hash = keyed_hash_arguments(ROW_KEY, &hashed);
    ctes.push((
        bounded.clone(),
        format!(
            "L∞: in each (unit, group), the {} rows with the smallest keyed hashes.",
            query.bounds.max_rows_per_group
        ),
        format!(
            "SELECT * FROM (\n  SELECT *, ROW_NUMBER() OVER (PARTITION BY {partition} ORDER BY xxhash64({row_hash})) AS veil_rank\n  FROM {rows}\n) WHERE veil_rank <= {}",
            query.bounds.max_rows_per_group
        ),
    ));

    let mut value_columns = unit_and_groups.clone();
    for measure in &query.measures {
        if let Some(expression) = row_value(measure) {
            value_columns.push(format!("{expression} AS {}", ident(&measure.key())));
        }
    }
    ctes.push((
        values.clone(),
        "Each row's value per measure: fixed-point steps, clamped in integers; null for null or NaN.".into(),
        format!("SELECT\n  {}\nFROM {bounded}", value_columns.join(",\n  ")),
    ));

    let mut pair_columns = unit_and_groups.clone();
    for measure in &query.measures {
        match measure {
            Measure::Histogram { .. } | Measure::Units => {}
            Measure::Rows => pair_columns.push(format!("COUNT(*) AS {}", ident(&measure.key()))),
            other => {
                pair_columns.push(format!("COALESCE(SUM({0}), 0) AS {0}", ident(&other.key())))
            }
        }
    }
    let pair_hash = keyed_hash_arguments(PAIR_KEY, &query.pair_hash_columns(unit));
    // Pairs tie only by a hash collision; their group keys then decide, nulls last, as in
    // the local engine's sort.
    let tie_break: String = query
        .group_by
        .iter()
        .map(|column| format!(", {} ASC NULLS LAST", ident(column)))
        .collect();
    pair_columns.push(format!(
        "ROW_NUMBER() OVER (PARTITION BY {} ORDER BY xxhash64({pair_hash}){tie_break}) AS veil_rank",
        ident(unit)
    ));
    ctes.push((
        pairs.clone(),
        format!(
            "Per (unit, group) sums; L0: each unit's {} groups with the smallest keyed hashes.",
            query.bounds.max_groups_per_unit
        ),
        format!(
            "SELECT * FROM (\n  SELECT\n    {}\n  FROM {values}\n  GROUP BY {partition}\n) WHERE veil_rank <= {}",
            pair_columns.join(",\n    "),
            query.bounds.max_groups_per_unit
        ),
    ));

    let mut branches = Vec::new();
    let keys: Vec<String> = query
        .group_by
        .iter()
        .map(|column| format!("CAST({} AS STRING)", ident(column)))
        .collect();
    let sums: Vec<String> = group_measures(query)
        .map(|measure| match measure {
            Measure::Units => "COUNT(*)".to_string(),
            other => format!("COALESCE(SUM({}), 0)", ident(&other.key())),
        })
        .collect();
    let meaning = group_measures(query)
        .enumerate()
        .map(|(position, measure)| format!("v{position} = {}", measure.key()))
        .collect::<Vec<_>>()
        .join(", ");
    let group_by = if query.group_by.is_empty() {
        String::new()
    } else {
        format!(
            "\nGROUP BY {}",
            query
                .group_by
                .iter()
                .map(|column| ident(column))
                .collect::<Vec<_>>()
                .join(", ")
        )
    };
    let groups = Branch {
        result: "groups",
        query: Some(index),
        name: None,
        leaf: None,
        keys,
        values: sums,
    };
    branches.push(format!(
        "-- Query {:?}: per-group sums ({meaning}).\n{}\nFROM {pairs}{group_by}",
        query.name,
        groups.select(layout)
    ));

    for measure in &query.measures {
        if let Measure::Histogram { column, .. } = measure {
            let leaf = format!("v.{}", ident(&measure.key()));
            // Null-safe: a null group key is a group like any other.
            let on = query
                .pair_hash_columns(unit)
                .iter()
                .map(|column| format!("v.{0} <=> p.{0}", ident(column)))
                .collect::<Vec<_>>()
                .join(" AND ");
            let mut by: Vec<String> = query
                .group_by
                .iter()
                .map(|column| format!("v.{}", ident(column)))
                .collect();
            by.push(leaf.clone());
            let histogram = Branch {
                result: "histogram",
                query: Some(index),
                name: Some(string_literal(&measure.key())),
                leaf: Some(leaf.clone()),
                keys: query
                    .group_by
                    .iter()
                    .map(|column| format!("CAST(v.{} AS STRING)", ident(column)))
                    .collect(),
                values: vec!["COUNT(*)".to_string()],
            };
            branches.push(format!(
                "-- Query {:?}: rows per leaf of the quantile histogram of {column:?}, in the surviving (unit, group) pairs.\n{}\nFROM {values} AS v\nLEFT SEMI JOIN {pairs} AS p ON {on}\nWHERE {leaf} IS NOT NULL\nGROUP BY {}",
                query.name,
                histogram.select(layout),
                by.join(", ")
            ));
        }
    }
    (ctes, branches)
}

/// The per-row value of a measure (as `veil_engine::scan::row_value`); `None` for rows
/// and units, which only count.
fn row_value(measure: &Measure) -> Option<String> {
    match measure {
        Measure::Rows | Measure::Units => None,
        Measure::Sum { column, grid, .. } => Some(steps(column, grid)),
        Measure::ValueCount { column } => {
            Some(format!("CASE WHEN {} THEN 1 ELSE 0 END", present(column)))
        }
        Measure::CenteredSum { column, grid, .. } => Some(centered(column, grid)),
        Measure::CenteredSquares { column, grid, .. } => {
            let centered = centered(column, grid);
            Some(format!("({centered}) * ({centered})"))
        }
        Measure::Histogram { column, bounds } => {
            let leaves = i64::from(HISTOGRAM_BRANCHING.pow(HISTOGRAM_DEPTH));
            #[allow(clippy::cast_precision_loss)]
            let leaves_f64 = leaves as f64;
            let per_unit = leaves_f64 / (bounds.upper() - bounds.lower());
            // floor, then clamp to [0, leaves - 1], equals clamp, then floor: clamping first
            // keeps FLOOR's BIGINT result in range.
            Some(format!(
                "CASE WHEN {} THEN CAST(FLOOR(LEAST(GREATEST((CAST({} AS DOUBLE) - {}) * {}, 0.0D), {})) AS BIGINT) END",
                present(column),
                ident(column),
                double_literal(bounds.lower()),
                double_literal(per_unit),
                double_literal(leaves_f64 - 1.0)
            ))
        }
    }
}

/// Whether a column has a value: not null and not NaN.
fn present(column: &str) -> String {
    format!(
        "({0} IS NOT NULL AND NOT isnan(CAST({0} AS DOUBLE)))",
        ident(column)
    )
}

/// The value in grid steps: `round half away from zero(value / step)` clamped to the
/// grid's bounds in steps; null for null or NaN. Clamping before rounding gives the same
/// integer (the bounds are integers) and keeps infinities out of `ROUND`.
fn steps(column: &str, grid: &FixedPoint) -> String {
    let (lower, upper) = grid.bounds_in_steps();
    let inverse = 1.0 / grid.granularity().to_f64();
    #[allow(clippy::cast_precision_loss)]
    let (lower_f64, upper_f64) = (lower as f64, upper as f64);
    let clamped = format!(
        "CAST(ROUND(LEAST(GREATEST(CAST({} AS DOUBLE) * {}, {}), {}), 0) AS BIGINT)",
        ident(column),
        double_literal(inverse),
        double_literal(lower_f64),
        double_literal(upper_f64)
    );
    #[allow(clippy::cast_possible_truncation)]
    let exact = lower_f64 as i64 == lower && upper_f64 as i64 == upper;
    let value = if exact {
        clamped
    } else {
        // Bounds beyond 2^53 steps are not exact doubles: clamp again in integers.
        format!("LEAST(GREATEST({clamped}, {lower}), {upper})")
    };
    format!("CASE WHEN {} THEN {value} END", present(column))
}

/// `2·steps − lower − upper`, in steps.
fn centered(column: &str, grid: &FixedPoint) -> String {
    let (lower, upper) = grid.bounds_in_steps();
    format!(
        "2 * {} - {}",
        steps(column, grid),
        bigint_literal(lower.wrapping_add(upper))
    )
}

/// The consent CTEs: each unit's latest event for the purpose at or before the as-of time
/// (a revoke winning ties), and the units whose latest event is a grant.
fn consent_ctes(consent: &ConsentFilter, unit_kind: &ColumnKind) -> (String, String, String) {
    let table = &consent.table;
    let unit = match unit_kind {
        ColumnKind::Integer => format!("TRY_CAST({} AS BIGINT)", ident(&table.unit_column)),
        _ => format!("CAST({} AS STRING)", ident(&table.unit_column)),
    };
    let action = format!("CAST({} AS STRING)", ident(&table.action_column));
    let at = micros(&table.time_column);
    let events = format!(
        "SELECT {unit} AS unit, {action} AS action,\n    ROW_NUMBER() OVER (PARTITION BY {unit} ORDER BY {at} DESC, ({action} = 'revoke') DESC NULLS LAST) AS latest\n  FROM {CONSENT_VIEW}\n  WHERE CAST({} AS STRING) = {}\n    AND {at} <= {}\n    AND {unit} IS NOT NULL",
        ident(&table.purpose_column),
        string_literal(&consent.purpose),
        consent.as_of_ms.saturating_mul(1000)
    );
    let comment = format!(
        "Consent: each unit's latest event for purpose {:?} at or before {} (a revoke wins ties).",
        consent.purpose,
        veil_engine::as_of_text(consent.as_of_ms)
    );
    let consented =
        "SELECT unit FROM consent_events WHERE latest = 1 AND action = 'grant'".to_string();
    (comment, events, consented)
}

/// A time column as UTC microseconds since the epoch: timestamps as their instant (the
/// session's time zone is UTC, so a timestamp without zone counts as UTC), dates as their
/// midnight. This compares as the local engine compares physical values.
fn micros(column: &str) -> String {
    format!("unix_micros(CAST({} AS TIMESTAMP))", ident(column))
}

fn check_parquet(source: &Source, key: &str) -> Result<(), EngineError> {
    match source.format {
        SourceFormat::Parquet => Ok(()),
        SourceFormat::Csv { .. } => Err(EngineError::InvalidJob {
            key: key.to_string(),
            reason: format!(
                "the Spark engine reads Parquet only, and {} is CSV (Spark infers CSV types differently, so rows would hash differently); convert it to Parquet or run the job locally",
                source.path.display()
            ),
        }),
    }
}

/// `CREATE TEMPORARY VIEW` over a source's Parquet files (every file below a directory,
/// as the local engine reads them).
pub(crate) fn create_view(name: &str, source: &Source) -> String {
    format!(
        "CREATE OR REPLACE TEMPORARY VIEW {name}\nUSING parquet\nOPTIONS (path {}, recursiveFileLookup 'true')",
        string_literal(&location(source))
    )
}

/// Where Spark finds a source: a URI (`s3a://...`, `hdfs://...`, `file:/...`) as given, a
/// local path made absolute (the server does not share the client's working directory).
pub(crate) fn location(source: &Source) -> String {
    let text = source.path.to_string_lossy();
    if text.contains("://") || text.starts_with("file:") {
        return text.to_string();
    }
    std::path::absolute(&source.path)
        .unwrap_or_else(|_| source.path.clone())
        .to_string_lossy()
        .to_string()
}

/// A quoted identifier.
pub(crate) fn ident(name: &str) -> String {
    format!("`{}`", name.replace('`', "``"))
}

/// A quoted string literal (Spark reads backslash escapes in literals).
pub(crate) fn string_literal(text: &str) -> String {
    format!("'{}'", text.replace('\\', "\\\\").replace('\'', "\\'"))
}

/// A `BIGINT` literal (`i64::MIN` has no positive counterpart to negate).
fn bigint_literal(value: i64) -> String {
    if value == i64::MIN {
        "(-9223372036854775807L - 1L)".to_string()
    } else {
        format!("{value}L")
    }
}

/// A `DOUBLE` literal that Spark reads back as exactly `value`.
fn double_literal(value: f64) -> String {
    if value.is_nan() {
        "CAST('NaN' AS DOUBLE)".to_string()
    } else if value.is_infinite() {
        if value > 0.0 {
            "CAST('Infinity' AS DOUBLE)".to_string()
        } else {
            "CAST('-Infinity' AS DOUBLE)".to_string()
        }
    } else {
        // `{:e}` is the shortest text that reads back as the same double.
        format!("{value:e}D")
    }
}

/// Indents the continuation lines of a CTE body.
fn indent(body: &str) -> String {
    body.replace('\n', "\n  ")
}

/// The arguments of the keyed `xxhash64` over `columns`: the key parameter, the columns,
/// then one null mask per `NULL_MASK_COLUMNS` columns (`IF(c IS NULL, 2^j, 0)` summed as a
/// `BIGINT`), exactly as the local engine hashes (`veil_engine::scan`'s hash module).
fn keyed_hash_arguments(key: &str, columns: &[String]) -> String {
    let mut arguments = vec![format!(":{key}")];
    arguments.extend(columns.iter().map(|column| ident(column)));
    for chunk in columns.chunks(NULL_MASK_COLUMNS) {
        let bits: Vec<String> = chunk
            .iter()
            .enumerate()
            .map(|(bit, column)| format!("IF({} IS NULL, {}L, 0L)", ident(column), 1_i64 << bit))
            .collect();
        arguments.push(format!("({})", bits.join(" + ")));
    }
    arguments.join(", ")
}

#[cfg(test)]
mod tests;
