//! The checks of a job that its types cannot express.

use std::collections::BTreeSet;

use super::{AggregateKind, Job, Partitions, QuantileInterval, output_names_of};
use crate::EngineError;

impl Job {
    /// Checks what the types cannot: names, bounds, duplicates, quantile levels, public
    /// partition keys.
    ///
    /// # Errors
    /// [`EngineError::InvalidJob`] naming the job key at fault.
    pub fn validate(&self) -> Result<(), EngineError> {
        let job = self;
        if job.queries.is_empty() {
            return Err(EngineError::invalid(
                "query",
                "the job has no [[query]]: add at least one",
            ));
        }
        let mut names = BTreeSet::new();
        for (index, query) in job.queries.iter().enumerate() {
            let key = format!("query[{index}]");
            if query.name.trim().is_empty() {
                return Err(EngineError::invalid(
                    format!("{key}.name"),
                    "a query needs a non-empty name",
                ));
            }
            if !query
                .name
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
            {
                return Err(EngineError::invalid(
                    format!("{key}.name"),
                    format!(
                        "{:?} names an output file: use letters, digits, '_' and '-' only",
                        query.name
                    ),
                ));
            }
            if query.name.eq_ignore_ascii_case("release") {
                return Err(EngineError::invalid(
                    format!("{key}.name"),
                    format!(
                        "{:?} is the release manifest's name (release.json beside the tables): \
                         choose another",
                        query.name
                    ),
                ));
            }
            if !names.insert(query.name.as_str()) {
                return Err(EngineError::invalid(
                    format!("{key}.name"),
                    format!("duplicate query name {:?}", query.name),
                ));
            }
            if query.bounds.max_groups_per_unit == 0 {
                return Err(EngineError::invalid(
                    format!("{key}.max_groups_per_unit"),
                    "must be at least 1",
                ));
            }
            if query.bounds.max_rows_per_group == 0 {
                return Err(EngineError::invalid(
                    format!("{key}.max_rows_per_group"),
                    "must be at least 1",
                ));
            }
            if !(query.weight.is_finite() && query.weight > 0.0) {
                return Err(EngineError::invalid(
                    format!("{key}.weight"),
                    format!("{} must be finite and > 0", query.weight),
                ));
            }
            let mut seen = BTreeSet::new();
            for column in &query.group_by {
                if *column == job.source.privacy_unit {
                    return Err(EngineError::invalid(
                        format!("{key}.group_by"),
                        format!(
                            "{column:?} is the privacy unit: grouping by it would release one row per person"
                        ),
                    ));
                }
                if !seen.insert(column) {
                    return Err(EngineError::invalid(
                        format!("{key}.group_by"),
                        format!("{column:?} appears twice"),
                    ));
                }
            }
            if query.aggregates.is_empty() {
                return Err(EngineError::invalid(
                    format!("{key}.aggregates"),
                    "a query needs at least one aggregate",
                ));
            }
            if let Partitions::Public { keys, origin } = &query.partitions {
                if query.group_by.is_empty() {
                    return Err(EngineError::invalid(
                        format!("{key}.partitions"),
                        "public partitions need group_by columns to match",
                    ));
                }
                for (row, values) in keys.iter().enumerate() {
                    if values.len() != query.group_by.len() {
                        return Err(EngineError::invalid(
                            format!("{key}.partitions"),
                            format!(
                                "key {} of {origin} has {} values for {} group_by columns",
                                row + 1,
                                values.len(),
                                query.group_by.len()
                            ),
                        ));
                    }
                }
            }
            let mut output_names = BTreeSet::new();
            // Quantiles of one column and bounds share their draws' budget, and so their
            // kind of interval: (column, bounds, interval, where it was set).
            let mut intervals: Vec<(&String, veil_core::Bounds, QuantileInterval, String)> =
                Vec::new();
            for (aggregate_index, aggregate) in query.aggregates.iter().enumerate() {
                let aggregate_key = format!("{key}.aggregates[{aggregate_index}]");
                if let AggregateKind::Quantiles {
                    column, interval, ..
                } = &aggregate.kind
                {
                    match intervals.iter().find(|(name, bounds, ..)| {
                        **name == column.name && *bounds == column.bounds
                    }) {
                        Some((_, _, other, at)) if other != interval => {
                            return Err(EngineError::invalid(
                                format!("{aggregate_key}.interval"),
                                format!(
                                    "quantiles of {:?} with these bounds ask for a {} interval in {at} and a {} one here; they share one set of draws: give both the same interval",
                                    column.name,
                                    interval_name(*other),
                                    interval_name(*interval),
                                ),
                            ));
                        }
                        Some(_) => {}
                        None => intervals.push((
                            &column.name,
                            column.bounds,
                            *interval,
                            aggregate_key.clone(),
                        )),
                    }
                }
                if let Some(column) = aggregate.kind.column() {
                    if column.name == job.source.privacy_unit {
                        return Err(EngineError::invalid(
                            format!("{aggregate_key}.column"),
                            format!(
                                "{:?} is the privacy unit: aggregate another column",
                                column.name
                            ),
                        ));
                    }
                    if column.bounds.lower() >= column.bounds.upper() {
                        return Err(EngineError::invalid(
                            format!("{aggregate_key}.bounds"),
                            format!(
                                "[{}, {}] is empty: the lower bound must be below the upper bound",
                                column.bounds.lower(),
                                column.bounds.upper()
                            ),
                        ));
                    }
                }
                if let AggregateKind::Quantiles { levels, .. } = &aggregate.kind {
                    if levels.is_empty() {
                        return Err(EngineError::invalid(
                            format!("{aggregate_key}.q"),
                            "give at least one quantile level, e.g. q = [0.5]",
                        ));
                    }
                    for (at, level) in levels.iter().enumerate() {
                        if !(0.0..=1.0).contains(level) {
                            return Err(EngineError::invalid(
                                format!("{aggregate_key}.q"),
                                format!("{level} is not in [0, 1]"),
                            ));
                        }
                        // Levels are drawn at a fixed resolution (0.5 and 0.5000001 share
                        // a draw), so they are compared there.
                        let drawn = |level: f64| {
                            veil_core::mechanism::QuantileLevel::new(level)
                                .map(|level| level.numer())
                                .ok()
                        };
                        if levels[..at]
                            .iter()
                            .any(|earlier| drawn(*earlier) == drawn(*level))
                        {
                            return Err(EngineError::invalid(
                                format!("{aggregate_key}.q"),
                                format!("level {level} is given twice: list each level once"),
                            ));
                        }
                    }
                }
                for name in output_names_of(aggregate) {
                    if !output_names.insert(name.clone()) || query.group_by.contains(&name) {
                        return Err(EngineError::invalid(
                            format!("{aggregate_key}.name"),
                            format!(
                                "output column {name:?} appears twice in query {:?}; set `name` to tell them apart",
                                query.name
                            ),
                        ));
                    }
                }
            }
        }
        Ok(())
    }
}

/// A quantile interval's name in a job file.
fn interval_name(interval: QuantileInterval) -> &'static str {
    match interval {
        QuantileInterval::Value => "value",
        QuantileInterval::Rank => "rank",
    }
}
