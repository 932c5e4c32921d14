//! From the job file's structs to the engine's validated job, every error with its key
//! path.

use std::path::Path;

use veil_core::{Bounds, Delta, Epsilon, Rho};
use veil_engine::job::{
    Aggregate, AggregateKind, AutoBound, Consent, ContributionBounds, Governance, Job, JobBudget,
    NoisePreference, Output, OutputFormat, Partitions, Purpose, QuantileInterval, Query, Selection,
    Source, SourceFormat, ValueColumn,
};

use super::file::{
    AggregateConfig, AggregateKindName, BoundsOrAuto, BudgetConfig, CountOrAuto, EngineChoice,
    EngineKind, IntervalName, JobFile, NoiseName, OutputFormatName, QueryConfig, SelectionName,
    SourceFormatName, is_auto,
};
use super::{AsOf, ConfigError, LoadedJob, purposes};

pub(super) fn convert(
    path: &Path,
    file: JobFile,
    name: String,
    job_hash: String,
    as_of_ms: AsOf,
) -> Result<LoadedJob, ConfigError> {
    let error = |key: String, reason: String| ConfigError {
        file: path.to_path_buf(),
        key,
        reason,
    };
    let format = source_format(
        file.source.format,
        file.source.delimiter.as_deref(),
        &file.source.path,
    )
    .map_err(|reason| error("source.delimiter".into(), reason))?;
    let min_units = match file.source.min_units {
        Some(0) => {
            return Err(error(
                "source.min_units".into(),
                "must be at least 1: a release about no one is refused anyway".into(),
            ));
        }
        Some(units) => units,
        None => 1,
    };
    if file.source.privacy_unit.trim().is_empty() {
        return Err(error(
            "source.privacy_unit".into(),
            "name the column that identifies a person (or device)".into(),
        ));
    }
    let source = Source {
        path: file.source.path.clone(),
        format,
        privacy_unit: file.source.privacy_unit.clone(),
    };
    let budget = job_budget(&file.budget).map_err(|(key, reason)| error(key, reason))?;
    let engine = match &file.engine {
        None => EngineChoice::default(),
        Some(engine) => {
            let remote = engine
                .remote
                .as_deref()
                .map(veil_spark::Remote::parse)
                .transpose()
                .map_err(|e| error("engine.remote".into(), e.to_string()))?;
            if engine.kind == EngineKind::Local && remote.is_some() {
                return Err(error(
                    "engine.remote".into(),
                    "the local engine takes no remote: set kind = \"spark\" to run on Spark".into(),
                ));
            }
            let memory = engine
                .memory
                .as_deref()
                .map(str::parse)
                .transpose()
                .map_err(|reason| error("engine.memory".into(), reason))?;
            EngineChoice {
                kind: engine.kind,
                remote,
                memory,
            }
        }
    };
    if file.queries.is_empty() {
        return Err(error(
            "query".into(),
            "the job has no [[query]] table: add at least one".into(),
        ));
    }
    let segments: Vec<Option<String>> = file
        .queries
        .iter()
        .map(|query| query.segment.clone())
        .collect();
    let mut queries = Vec::new();
    for (index, query) in file.queries.into_iter().enumerate() {
        queries.push(convert_query(index, query).map_err(|(key, reason)| error(key, reason))?);
    }
    let output = Output {
        directory: file.output.path,
        format: match file.output.format {
            OutputFormatName::Parquet => OutputFormat::Parquet,
            OutputFormatName::Csv => OutputFormat::Csv,
            OutputFormatName::Json => OutputFormat::Json,
        },
    };
    let registry = file
        .budget
        .purposes
        .as_deref()
        .map(purposes::load)
        .transpose()?;
    let purpose = match &registry {
        None => Purpose {
            name: file.budget.purpose.clone(),
            description: String::new(),
            columns: None,
            retention_ms: None,
        },
        Some(registry) => {
            let entry = registry.purposes.get(&file.budget.purpose).ok_or_else(|| {
                error(
                    "budget.purpose".into(),
                    format!(
                        "purpose {:?} is not in the registry {}; it declares: {}",
                        file.budget.purpose,
                        registry.file.display(),
                        registry
                            .purposes
                            .keys()
                            .cloned()
                            .collect::<Vec<_>>()
                            .join(", ")
                    ),
                )
            })?;
            Purpose {
                name: file.budget.purpose.clone(),
                description: entry.description("en"),
                columns: Some(entry.columns.clone()),
                retention_ms: entry.retention_ms,
            }
        }
    };
    let consent_format = match &file.consent {
        Some(consent) => Some(
            source_format(consent.format, consent.delimiter.as_deref(), &consent.path)
                .map_err(|reason| error("consent.delimiter".into(), reason))?,
        ),
        None => None,
    };
    let consent = file.consent.map(|consent| Consent {
        format: consent_format.unwrap_or(SourceFormat::Parquet),
        path: consent.path,
        unit_column: consent
            .unit_column
            .unwrap_or_else(|| file.source.privacy_unit.clone()),
        purpose_column: consent
            .purpose_column
            .unwrap_or_else(|| "purpose".to_string()),
        action_column: consent
            .action_column
            .unwrap_or_else(|| "action".to_string()),
        time_column: consent.time_column.unwrap_or_else(|| "at".to_string()),
    });
    let as_of_ms = match (as_of_ms, &file.as_of) {
        (AsOf::Given(ms), _) => ms,
        (AsOf::Now(_), Some(text)) => {
            crate::clock::parse_as_of(text).map_err(|reason| error("as_of".into(), reason))?
        }
        (AsOf::Now(ms), None) => ms,
    };
    let governance = Governance {
        purpose,
        consent,
        time_column: file.source.time_column.clone(),
        as_of_ms,
        min_units,
    };
    Ok(LoadedJob {
        file: path.to_path_buf(),
        job: Job {
            name,
            job_hash,
            source,
            budget,
            queries,
            output,
            governance,
            noise: match file.budget.noise {
                NoiseName::Auto => NoisePreference::Auto,
                NoiseName::Laplace => NoisePreference::Laplace,
                NoiseName::Gaussian => NoisePreference::Gaussian,
            },
        },
        budget: file.budget,
        registry,
        engine,
        segments,
    })
}

/// A file's format: the one named, else the extension's; a `delimiter` makes it CSV (and is
/// refused for Parquet).
pub(super) fn source_format(
    named: Option<SourceFormatName>,
    delimiter: Option<&str>,
    path: &Path,
) -> Result<SourceFormat, String> {
    let format = match named {
        Some(SourceFormatName::Parquet) => SourceFormat::Parquet,
        Some(SourceFormatName::Csv) => SourceFormat::csv(),
        None if delimiter.is_some() => SourceFormat::csv(),
        None => SourceFormat::from_path(path),
    };
    let Some(text) = delimiter else {
        return Ok(format);
    };
    if format == SourceFormat::Parquet {
        return Err(
            "a delimiter is for CSV files; this one is Parquet (set format = \"csv\" if it is not)"
                .into(),
        );
    }
    let delimiter = match text {
        "\\t" | "tab" => b'\t',
        _ => match text.as_bytes() {
            [byte] if byte.is_ascii() && *byte != b'"' && *byte != b'\n' && *byte != b'\r' => *byte,
            _ => {
                return Err(format!(
                    "{text:?} is not a field separator: give one ASCII character such as \",\", \";\", \"|\" or \"\\t\" (a tab)"
                ));
            }
        },
    };
    Ok(SourceFormat::Csv { delimiter })
}

pub(super) type KeyError = (String, String);

pub(super) fn job_budget(budget: &BudgetConfig) -> Result<JobBudget, KeyError> {
    let param =
        |key: &str, error: veil_core::ParamError| (format!("budget.{key}"), error.to_string());
    match (budget.epsilon, budget.delta, budget.rho) {
        (Some(epsilon), delta, None) => {
            let epsilon = Epsilon::new(epsilon).map_err(|e| param("epsilon", e))?;
            match delta {
                None => Ok(JobBudget::Pure(epsilon)),
                Some(delta) => {
                    let delta = Delta::new(delta).map_err(|e| param("delta", e))?;
                    Ok(if delta.get() == 0.0 {
                        JobBudget::Pure(epsilon)
                    } else {
                        JobBudget::Approx(epsilon, delta)
                    })
                }
            }
        }
        (None, None, Some(rho)) => Ok(JobBudget::Zcdp(Rho::new(rho).map_err(|e| param("rho", e))?)),
        (None, Some(_), None) => Err((
            "budget.epsilon".into(),
            "delta needs an epsilon: give epsilon (and delta), or rho".into(),
        )),
        (None, None, None) => Err((
            "budget".into(),
            "give epsilon (and optionally delta), or rho for zCDP".into(),
        )),
        (Some(_), _, Some(_)) | (None, Some(_), Some(_)) => Err((
            "budget.rho".into(),
            "give either epsilon (and delta) or rho, not both".into(),
        )),
    }
}

pub(super) fn convert_query(index: usize, query: QueryConfig) -> Result<Query, KeyError> {
    let key = |field: &str| format!("query[{index}].{field}");
    let mut auto = Vec::new();
    let mut required = |value: Option<CountOrAuto>,
                        field: &str,
                        which: AutoBound|
     -> Result<u32, KeyError> {
        match value {
            None => Err((
                key(field),
                "missing: every query on unit-keyed data needs contribution bounds (max_groups_per_unit and max_rows_per_group; a number, or \"auto\")".into(),
            )),
            Some(CountOrAuto::Count(count)) => Ok(count),
            Some(CountOrAuto::Auto(text)) => {
                is_auto(&text).map_err(|reason| (key(field), reason))?;
                auto.push(which);
                // A placeholder until the run chooses it.
                Ok(1)
            }
        }
    };
    let bounds = ContributionBounds {
        max_groups_per_unit: required(
            query.max_groups_per_unit,
            "max_groups_per_unit",
            AutoBound::GroupsPerUnit,
        )?,
        max_rows_per_group: required(
            query.max_rows_per_group,
            "max_rows_per_group",
            AutoBound::RowsPerGroup,
        )?,
    };
    let partitions = partitions(query.partitions.as_ref(), &query.group_by)
        .map_err(|reason| (key("partitions"), reason))?;
    let selection = match (query.selection, &partitions) {
        (None | Some(SelectionName::Released), _) => Selection::Released,
        (Some(SelectionName::Units), Partitions::Private) => Selection::Units,
        (Some(SelectionName::Units), Partitions::Public { .. }) => {
            return Err((
                key("selection"),
                "selection applies to private partitions only: these are public, every listed group is released".into(),
            ));
        }
    };
    let mut aggregates = Vec::new();
    for (aggregate_index, aggregate) in query.aggregates.into_iter().enumerate() {
        let aggregate_key =
            |field: &str| format!("query[{index}].aggregates[{aggregate_index}].{field}");
        let auto_bounds = matches!(aggregate.bounds, Some(BoundsOrAuto::Auto(_)));
        let aggregate = convert_aggregate(aggregate)
            .map_err(|(field, reason)| (aggregate_key(&field), reason))?;
        if auto_bounds
            && let Some(column) = aggregate.kind.column()
            && !auto.contains(&AutoBound::Values(column.name.clone()))
        {
            auto.push(AutoBound::Values(column.name.clone()));
        }
        aggregates.push(aggregate);
    }
    Ok(Query {
        name: query.name,
        group_by: query.group_by,
        bounds,
        partitions,
        aggregates,
        weight: query.weight.unwrap_or(1.0),
        drop_missing: query.drop_missing,
        selection,
        auto,
    })
}

pub(super) fn convert_aggregate(aggregate: AggregateConfig) -> Result<Aggregate, KeyError> {
    let needs_column = !matches!(
        aggregate.kind,
        AggregateKindName::Count | AggregateKindName::UnitCount
    );
    let value_column = if needs_column {
        let name = aggregate.column.clone().ok_or_else(|| {
            (
                "column".to_string(),
                "this aggregate needs a column".to_string(),
            )
        })?;
        let bounds = match aggregate.bounds.as_ref() {
            None => {
                return Err((
                    "bounds".to_string(),
                    "give the bounds values are clamped to, e.g. bounds = [0.0, 100.0], or \"auto\"".to_string(),
                ));
            }
            Some(BoundsOrAuto::Auto(text)) => {
                is_auto(text).map_err(|reason| ("bounds".to_string(), reason))?;
                // A placeholder until the run chooses them.
                &vec![0.0, 1.0]
            }
            Some(BoundsOrAuto::Bounds(bounds)) => bounds,
        };
        let [lower, upper] = bounds.as_slice() else {
            return Err((
                "bounds".into(),
                format!(
                    "expected two numbers [lower, upper], found {}",
                    bounds.len()
                ),
            ));
        };
        let bounds =
            Bounds::new(*lower, *upper).map_err(|e| ("bounds".to_string(), e.to_string()))?;
        Some(ValueColumn { name, bounds })
    } else {
        for (field, present) in [
            ("column", aggregate.column.is_some()),
            ("bounds", aggregate.bounds.is_some()),
        ] {
            if present {
                return Err((
                    field.into(),
                    "count and unit_count take no column or bounds".into(),
                ));
            }
        }
        None
    };
    if aggregate.q.is_some() && aggregate.kind != AggregateKindName::Quantiles {
        return Err(("q".into(), "only quantiles take q".into()));
    }
    if aggregate.interval.is_some() && aggregate.kind != AggregateKindName::Quantiles {
        return Err((
            "interval".into(),
            "only quantiles take interval: the other aggregates' intervals come with their noise, at no cost".into(),
        ));
    }
    let kind = match (aggregate.kind, value_column) {
        (AggregateKindName::Count, _) => AggregateKind::Count,
        (AggregateKindName::UnitCount, _) => AggregateKind::UnitCount,
        (AggregateKindName::Sum, Some(column)) => AggregateKind::Sum(column),
        (AggregateKindName::Mean, Some(column)) => AggregateKind::Mean(column),
        (AggregateKindName::Variance, Some(column)) => AggregateKind::Variance(column),
        (AggregateKindName::Quantiles, Some(column)) => {
            let levels = aggregate.q.ok_or_else(|| {
                (
                    "q".to_string(),
                    "give the quantile levels, e.g. q = [0.5, 0.9]".to_string(),
                )
            })?;
            let interval = match aggregate.interval {
                None | Some(IntervalName::Value) => QuantileInterval::Value,
                Some(IntervalName::Rank) => QuantileInterval::Rank,
            };
            AggregateKind::Quantiles {
                column,
                levels,
                interval,
            }
        }
        (_, None) => return Err(("column".into(), "this aggregate needs a column".into())),
    };
    let name = aggregate.name.unwrap_or_else(|| kind.default_name());
    let weight = match aggregate.weight {
        None => 1.0,
        Some(weight) if weight.is_finite() && weight > 0.0 => weight,
        Some(weight) => {
            return Err((
                "weight".into(),
                format!(
                    "{weight} must be finite and > 0 (it weighs this aggregate's error when the budget is split)"
                ),
            ));
        }
    };
    Ok(Aggregate { name, kind, weight })
}

pub(super) fn partitions(
    value: Option<&toml::Value>,
    group_by: &[String],
) -> Result<Partitions, String> {
    match value {
        None => Ok(Partitions::Private),
        Some(toml::Value::String(text)) if text == "private" => Ok(Partitions::Private),
        Some(toml::Value::Table(table)) if table.len() == 1 && table.contains_key("public") => {
            let Some(toml::Value::String(path)) = table.get("public") else {
                return Err("public = \"path/to/keys.csv\": a CSV file whose header names the group_by columns".into());
            };
            let keys = read_keys(Path::new(path), group_by)?;
            Ok(Partitions::Public {
                origin: path.clone(),
                keys,
            })
        }
        Some(_) => Err("expected \"private\" or { public = \"path/to/keys.csv\" }".into()),
    }
}

/// Reads a public-partitions keys file: a CSV whose header names the group-by columns.
pub(super) fn read_keys(path: &Path, group_by: &[String]) -> Result<Vec<Vec<String>>, String> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| format!("cannot read keys file {}: {e}", path.display()))?;
    let mut lines = text.lines().filter(|line| !line.trim().is_empty());
    let header: Vec<String> = lines
        .next()
        .ok_or_else(|| {
            format!(
                "keys file {} is empty: its first line must name the group_by columns",
                path.display()
            )
        })?
        .split(',')
        .map(|field| field.trim().trim_matches('"').to_string())
        .collect();
    let mut positions = Vec::new();
    for column in group_by {
        let position = header
            .iter()
            .position(|name| name == column)
            .ok_or_else(|| {
                format!(
                    "keys file {} has no column {column:?} (its header is {})",
                    path.display(),
                    header.join(",")
                )
            })?;
        positions.push(position);
    }
    let mut keys = Vec::new();
    for (line_number, line) in lines.enumerate() {
        let fields: Vec<&str> = line
            .split(',')
            .map(|field| field.trim().trim_matches('"'))
            .collect();
        if fields.len() != header.len() {
            return Err(format!(
                "keys file {} line {}: {} fields, the header has {}",
                path.display(),
                line_number + 2,
                fields.len(),
                header.len()
            ));
        }
        keys.push(
            positions
                .iter()
                .map(|&position| fields[position].to_string())
                .collect(),
        );
    }
    if keys.is_empty() {
        return Err(format!("keys file {} lists no keys", path.display()));
    }
    Ok(keys)
}
