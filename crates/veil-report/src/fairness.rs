//! Fairness: the error of groups sliced by size and by segment, and the slices that bear
//! much more of it than the rest.

use std::collections::BTreeMap;

use crate::format::{percent, short};
use crate::input::QueryInput;
use crate::model::Prediction;
use crate::output::SliceStats;
use crate::stats::{empirical_stats, median_relative};

/// The size bucket of a group of `units` distinct units: `[10^k, 10^(k+1))`.
pub(crate) fn size_bucket(units: f64) -> (u32, String) {
    #[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss)]
    let exponent = units.max(1.0).log10().floor().max(0.0) as u32;
    let low = 10_u64.saturating_pow(exponent);
    let high = 10_u64.saturating_pow(exponent + 1) - 1;
    (exponent, format!("{low}–{high} units"))
}

pub(crate) struct Slice {
    pub(crate) label: String,
    pub(crate) members: Vec<usize>,
}

pub(crate) fn slices(query: &QueryInput) -> (Vec<Slice>, Vec<Slice>) {
    let mut by_size: BTreeMap<u32, Slice> = BTreeMap::new();
    let mut by_segment: BTreeMap<String, Slice> = BTreeMap::new();
    for (index, group) in query.groups.iter().enumerate() {
        let (bucket, label) = size_bucket(group.raw.units);
        by_size
            .entry(bucket)
            .or_insert_with(|| Slice {
                label,
                members: Vec::new(),
            })
            .members
            .push(index);
        if query.segment.is_some() {
            let label = group.segment.clone().unwrap_or_else(|| "(null)".into());
            by_segment
                .entry(label.clone())
                .or_insert_with(|| Slice {
                    label,
                    members: Vec::new(),
                })
                .members
                .push(index);
        }
    }
    (
        by_size.into_values().collect(),
        by_segment.into_values().collect(),
    )
}

pub(crate) fn slice_stats(
    slice: &Slice,
    predictions: &[Option<Prediction>],
    errors: Option<&Vec<Vec<(f64, f64)>>>,
) -> SliceStats {
    let members: Vec<&Prediction> = slice
        .members
        .iter()
        .filter_map(|&index| predictions[index].as_ref())
        .collect();
    #[allow(clippy::cast_precision_loss)]
    let release_probability =
        members.iter().map(|p| p.release).sum::<f64>() / members.len().max(1) as f64;
    let analytic = median_relative(members.iter().copied());
    let empirical = errors.map(|errors| {
        let samples: Vec<(f64, f64)> = slice
            .members
            .iter()
            .flat_map(|&index| errors[index].iter().copied())
            .collect();
        empirical_stats(&samples).median_relative
    });
    SliceStats {
        label: slice.label.clone(),
        groups: slice.members.len(),
        release_probability,
        median_relative: analytic,
        empirical_median_relative: empirical,
    }
}

/// A slice bearing much more error than the rest: `(slice, aggregate, its median
/// relative error, the other groups')`.
pub(crate) type Flag = (String, String, f64, f64);

/// Flags slices whose median relative error is at least twice that of the other groups
/// (and at least 5 points above it).
pub(crate) fn fairness_flags(
    aggregate: &str,
    slices: &[Slice],
    predictions: &[Option<Prediction>],
) -> Vec<Flag> {
    let mut flags = Vec::new();
    if slices.len() < 2 {
        return flags;
    }
    for slice in slices {
        let inside: Vec<&Prediction> = slice
            .members
            .iter()
            .filter_map(|&index| predictions[index].as_ref())
            .collect();
        let outside: Vec<&Prediction> = predictions
            .iter()
            .enumerate()
            .filter(|(index, _)| !slice.members.contains(index))
            .filter_map(|(_, prediction)| prediction.as_ref())
            .collect();
        if inside.is_empty() || outside.is_empty() {
            continue;
        }
        let here = median_relative(inside.iter().copied());
        let rest = median_relative(outside.iter().copied());
        if here.is_finite() && rest.is_finite() && here >= 2.0 * rest && here >= rest + 0.05 {
            flags.push((slice.label.clone(), aggregate.to_string(), here, rest));
        }
    }
    flags
}

/// One finding per flagged slice, listing its aggregates.
pub(crate) fn fairness_findings(what: &str, epsilon: f64, flags: &[Flag]) -> Vec<String> {
    let mut by_slice: Vec<(&str, Vec<String>)> = Vec::new();
    for (label, aggregate, here, rest) in flags {
        let text = format!("{aggregate} {} vs {}", percent(*here), percent(*rest));
        match by_slice.iter_mut().find(|(existing, _)| existing == label) {
            Some((_, parts)) => parts.push(text),
            None => by_slice.push((label, vec![text])),
        }
    }
    by_slice
        .into_iter()
        .map(|(label, parts)| {
            format!(
                "Fairness: {what} {label} bear at least twice the median relative error of the other groups at ε = {}: {}.",
                short(epsilon),
                parts.join(", ")
            )
        })
        .collect()
}
