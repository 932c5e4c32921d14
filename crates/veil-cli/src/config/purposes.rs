//! The purposes registry (`configs/purposes.toml`): what each personalization or
//! analytics purpose may read, for how long, and how much privacy budget it may spend.
//!
//! ```toml
//! [purpose.recommendations]
//! description = "Suggest content from what you watched in the last 90 days"
//! columns = ["country", "feature", "value", "event_time"]
//! retention = "90d"
//! budget = { epsilon = 4.0, delta = 1e-6, period = "30d" }
//! ```
//!
//! `description` may also be a table of languages (`{ en = "...", fr = "..." }`), and an
//! optional `withdraw` says in plain words how a person withdraws consent.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::Deserialize;

use super::ConfigError;

/// A parsed registry.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Registry {
    /// The file it came from.
    pub(crate) file: PathBuf,
    /// Purposes by name, in name order.
    pub(crate) purposes: BTreeMap<String, PurposeEntry>,
}

/// One purpose.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct PurposeEntry {
    /// Description per language code; `en` (or the only one) is the default.
    pub(crate) descriptions: BTreeMap<String, String>,
    /// Columns it may read (the privacy unit column is always allowed).
    pub(crate) columns: Vec<String>,
    /// How far back it may look, in milliseconds.
    pub(crate) retention_ms: Option<i64>,
    /// Its budget, if it declares one.
    pub(crate) budget: Option<PurposeBudget>,
    /// How a person withdraws consent, in plain words.
    pub(crate) withdraw: Option<String>,
}

impl PurposeEntry {
    /// The description in `language`, else English, else any.
    pub(crate) fn description(&self, language: &str) -> String {
        self.descriptions
            .get(language)
            .or_else(|| self.descriptions.get("en"))
            .or_else(|| self.descriptions.values().next())
            .cloned()
            .unwrap_or_default()
    }
}

/// A purpose's total budget and how often it renews.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) struct PurposeBudget {
    /// Total ε (with `delta`), or `None` for a ρ budget.
    pub(crate) epsilon: Option<f64>,
    /// Total δ.
    pub(crate) delta: Option<f64>,
    /// Total ρ (zCDP).
    pub(crate) rho: Option<f64>,
    /// The budget renews every this many milliseconds.
    pub(crate) period_ms: Option<i64>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RegistryFile {
    #[serde(default)]
    purpose: BTreeMap<String, PurposeFile>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct PurposeFile {
    description: Description,
    columns: Vec<String>,
    retention: Option<String>,
    budget: Option<BudgetFile>,
    withdraw: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(untagged)]
enum Description {
    One(String),
    Languages(BTreeMap<String, String>),
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct BudgetFile {
    epsilon: Option<f64>,
    delta: Option<f64>,
    rho: Option<f64>,
    period: Option<String>,
}

/// Reads `90d`, `12h`, `30m`, `45s` or `2w` as milliseconds.
pub(crate) fn parse_duration(text: &str) -> Result<i64, String> {
    let text = text.trim();
    let split = text
        .find(|c: char| !c.is_ascii_digit())
        .unwrap_or(text.len());
    let (number, unit) = text.split_at(split);
    let number: i64 = number
        .parse()
        .map_err(|_| format!("{text:?} is not a duration like 90d, 12h or 2w"))?;
    let unit_ms: i64 = match unit.trim() {
        "s" => 1_000,
        "m" => 60_000,
        "h" => 3_600_000,
        "d" => 86_400_000,
        "w" => 7 * 86_400_000,
        _ => {
            return Err(format!(
                "{text:?}: the unit must be s, m, h, d or w (e.g. 90d)"
            ));
        }
    };
    if number <= 0 {
        return Err(format!("{text:?} must be longer than zero"));
    }
    number
        .checked_mul(unit_ms)
        .ok_or_else(|| format!("{text:?} is too long"))
}

/// Reads and checks a registry.
pub(crate) fn load(path: &Path) -> Result<Registry, ConfigError> {
    let error = |key: String, reason: String| ConfigError {
        file: path.to_path_buf(),
        key,
        reason,
    };
    let text = std::fs::read_to_string(path).map_err(|e| {
        error(
            String::new(),
            format!("cannot read the purposes registry: {e}"),
        )
    })?;
    parse(path, &text)
}

/// Parses and checks registry text (`path` names it in errors).
pub(crate) fn parse(path: &Path, text: &str) -> Result<Registry, ConfigError> {
    let error = |key: String, reason: String| ConfigError {
        file: path.to_path_buf(),
        key,
        reason,
    };
    let deserializer = toml::Deserializer::parse(text)
        .map_err(|e| error(String::new(), e.to_string().trim().to_string()))?;
    let file: RegistryFile = serde_path_to_error::deserialize(deserializer).map_err(|e| {
        let key = e.path().to_string();
        error(
            if key == "." { String::new() } else { key },
            e.into_inner().to_string().trim().to_string(),
        )
    })?;
    if file.purpose.is_empty() {
        return Err(error(
            "purpose".into(),
            "the registry declares no [purpose.<name>] table".into(),
        ));
    }
    let mut purposes = BTreeMap::new();
    for (name, entry) in file.purpose {
        let key = |field: &str| format!("purpose.{name}.{field}");
        let descriptions = match entry.description {
            Description::One(text) => BTreeMap::from([("en".to_string(), text)]),
            Description::Languages(languages) => languages,
        };
        if descriptions.values().all(|text| text.trim().is_empty()) {
            return Err(error(
                key("description"),
                "say in plain language what the purpose is for".into(),
            ));
        }
        let retention_ms = entry
            .retention
            .as_deref()
            .map(parse_duration)
            .transpose()
            .map_err(|reason| error(key("retention"), reason))?;
        let budget = match entry.budget {
            None => None,
            Some(budget) => {
                let period_ms = budget
                    .period
                    .as_deref()
                    .map(parse_duration)
                    .transpose()
                    .map_err(|reason| error(key("budget.period"), reason))?;
                match (budget.epsilon, budget.rho) {
                    (Some(epsilon), None) if epsilon.is_finite() && epsilon > 0.0 => {}
                    (None, Some(rho)) if rho.is_finite() && rho > 0.0 && budget.delta.is_none() => {
                    }
                    _ => {
                        return Err(error(
                            key("budget"),
                            "give epsilon > 0 (and optionally delta), or rho > 0 for zCDP".into(),
                        ));
                    }
                }
                if let Some(delta) = budget.delta
                    && !(0.0..1.0).contains(&delta)
                {
                    return Err(error(
                        key("budget.delta"),
                        format!("delta = {delta} is out of range: expected in [0, 1)"),
                    ));
                }
                Some(PurposeBudget {
                    epsilon: budget.epsilon,
                    delta: budget.delta,
                    rho: budget.rho,
                    period_ms,
                })
            }
        };
        purposes.insert(
            name,
            PurposeEntry {
                descriptions,
                columns: entry.columns,
                retention_ms,
                budget,
                withdraw: entry.withdraw,
            },
        );
    }
    Ok(Registry {
        file: path.to_path_buf(),
        purposes,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations() {
        assert_eq!(parse_duration("90d"), Ok(90 * 86_400_000));
        assert_eq!(parse_duration("12h"), Ok(12 * 3_600_000));
        assert_eq!(parse_duration("2w"), Ok(14 * 86_400_000));
        assert!(parse_duration("0d").is_err());
        assert!(parse_duration("90").is_err());
        assert!(parse_duration("d").is_err());
        assert!(parse_duration("3 months").is_err());
    }

    fn load_text(text: &str) -> Result<Registry, ConfigError> {
        let directory = tempfile::tempdir().unwrap();
        let path = directory.path().join("purposes.toml");
        std::fs::write(&path, text).unwrap();
        load(&path)
    }

    #[test]
    fn registry_parses_and_checks() {
        let registry = load_text(
            r#"
[purpose.recommendations]
description = { en = "Suggest content", fr = "Suggérer du contenu" }
columns = ["country", "event_time"]
retention = "90d"
budget = { epsilon = 4.0, delta = 1e-6, period = "30d" }
"#,
        )
        .unwrap();
        let entry = &registry.purposes["recommendations"];
        assert_eq!(entry.description("fr"), "Suggérer du contenu");
        assert_eq!(entry.description("de"), "Suggest content");
        assert_eq!(entry.retention_ms, Some(90 * 86_400_000));
        assert_eq!(entry.budget.unwrap().period_ms, Some(30 * 86_400_000));

        let error =
            load_text("[purpose.a]\ndescription = \"x\"\ncolumns = []\nretention = \"90 days\"\n")
                .unwrap_err();
        assert_eq!(error.key, "purpose.a.retention");
        let error = load_text(
            "[purpose.a]\ndescription = \"x\"\ncolumns = []\nbudget = { epsilon = -1.0 }\n",
        )
        .unwrap_err();
        assert_eq!(error.key, "purpose.a.budget");
        let error = load_text("[purpose.a]\ndescription = \"x\"\n").unwrap_err();
        assert!(error.reason.contains("missing field `columns`"), "{error}");
        let error =
            load_text("[purpose.a]\ndescription = \"x\"\ncolumns = []\ncolour = 1\n").unwrap_err();
        assert_eq!(error.key, "purpose.a.colour");
    }
}
