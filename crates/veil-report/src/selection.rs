//! Which count private partition selection should threshold, on this data: the released
//! row count the job thresholds, or a count of units of the query's own.
//!
//! A plan cannot choose without the data: thresholding the row count costs no ε but needs
//! `τ / r` units in a group whose units have `r` rows each; a count of units needs fewer
//! units when `r` is large, but takes a share of ε from the released outputs. The report has
//! the data, so it plans both and compares the groups expected and the error. **Not
//! private**, as the whole report.

use veil_core::Epsilon;

use crate::ReportError;
use crate::format::{percent, short};
use crate::input::{NoisePlanner, QueryInput, QueryNoise, SelectedOn};
use crate::model::{group_release_probability, predictions};
use crate::stats::median_relative;

/// Groups expected and the median relative error averaged over the aggregates (groups not
/// released counting as 100% error), under `noise`.
fn outcome(query: &QueryInput, noise: &QueryNoise) -> Result<(f64, f64), ReportError> {
    let groups: f64 = query
        .groups
        .iter()
        .map(|group| group_release_probability(noise, group))
        .sum();
    let errors: Vec<f64> = predictions(query, noise)?
        .iter()
        .map(|per_group| median_relative(per_group.iter().flatten()))
        .filter(|error| error.is_finite())
        .collect();
    #[allow(clippy::cast_precision_loss)]
    let error = errors.iter().sum::<f64>() / errors.len().max(1) as f64;
    Ok((groups, error))
}

/// A finding when the job thresholds a released count of rows or values and a count of
/// units of its own would give a lower error at `epsilon`; `None` otherwise.
///
/// # Errors
/// [`ReportError`] if the planner or the predictions fail.
pub(crate) fn selection_finding(
    index: usize,
    query: &QueryInput,
    planner: &dyn NoisePlanner,
    epsilon: Epsilon,
    current: &QueryNoise,
) -> Result<Option<String>, ReportError> {
    if current.selection.is_none() || current.selected_on == SelectedOn::Units {
        return Ok(None);
    }
    let Some(alternative) = planner.plan_selecting_units(epsilon, index)? else {
        return Ok(None);
    };
    let (groups, error) = outcome(query, current)?;
    let (alternative_groups, alternative_error) = outcome(query, &alternative)?;
    // NaN (no aggregate with an error) suggests nothing.
    if alternative_error.partial_cmp(&error) != Some(std::cmp::Ordering::Less) {
        return Ok(None);
    }
    Ok(Some(format!(
        "Partition selection (not private: computed on the data): at ε = {}, selecting groups on a count of units of their own (`selection = \"units\"` in the query) instead of the released count would release {} groups instead of {} on average and lower the median relative error, averaged over the aggregates with unreleased groups counted as 100%, from {} to {}; it takes a share of ε from the other outputs.",
        short(epsilon.get()),
        short(alternative_groups),
        short(groups),
        percent(error),
        percent(alternative_error),
    )))
}
