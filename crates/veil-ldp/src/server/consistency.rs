//! Post-processing to consistent estimates (Wang, Lopuhaä-Zwakenberg, Li, Škorić,
//! Li 2020). Post-processing of private estimates costs no privacy.

use alloc::vec::Vec;

/// A way to make raw estimates consistent.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Consistency {
    /// Set negative estimates to zero and shift the positive ones by one common amount so
    /// they sum to `n`, repeating until none is negative ("Norm-Sub").
    NormSub,
    /// The Euclidean projection onto `{x >= 0, Σx = n}` (the probability simplex, scaled).
    Projection,
    /// Keep estimates above a Bonferroni-corrected 95% significance threshold
    /// (`z_(0.05/d)` standard errors), set the rest to zero ("base-cut"); does not sum to
    /// `n`.
    BaseCut,
}

impl Consistency {
    /// The method's name on the command line.
    #[must_use]
    pub fn as_str(self) -> &'static str {
        match self {
            Self::NormSub => "norm-sub",
            Self::Projection => "projection",
            Self::BaseCut => "base-cut",
        }
    }
}

/// Norm-Sub: non-negative estimates that sum to `total`, each the raw estimate shifted by
/// a common amount (or zero).
#[must_use]
pub fn norm_sub(estimates: &[f64], total: f64) -> Vec<f64> {
    let mut values: Vec<f64> = estimates.iter().map(|&x| x.max(0.0)).collect();
    if values.is_empty() {
        return values;
    }
    loop {
        let positive = values.iter().filter(|&&x| x > 0.0).count();
        if positive == 0 {
            #[allow(clippy::cast_precision_loss)]
            let share = total / values.len() as f64;
            return values.iter().map(|_| share).collect();
        }
        let sum: f64 = values.iter().sum();
        #[allow(clippy::cast_precision_loss)]
        let shift = (sum - total) / positive as f64;
        let mut negative = false;
        for value in &mut values {
            if *value > 0.0 {
                *value -= shift;
                if *value < 0.0 {
                    negative = true;
                }
            }
        }
        if !negative {
            return values;
        }
        for value in &mut values {
            *value = value.max(0.0);
        }
    }
}

/// The Euclidean projection of `estimates` onto `{x >= 0, Σx = total}` (sort-based,
/// `O(d log d)`).
#[must_use]
pub fn project_simplex(estimates: &[f64], total: f64) -> Vec<f64> {
    if estimates.is_empty() {
        return Vec::new();
    }
    let mut sorted: Vec<f64> = estimates.to_vec();
    sorted.sort_by(|a, b| b.total_cmp(a));
    let mut running = 0.0;
    let mut threshold = 0.0;
    for (i, &value) in sorted.iter().enumerate() {
        running += value;
        #[allow(clippy::cast_precision_loss)]
        let candidate = (running - total) / (i + 1) as f64;
        if value - candidate > 0.0 {
            threshold = candidate;
        }
    }
    estimates
        .iter()
        .map(|&x| (x - threshold).max(0.0))
        .collect()
}

/// Base-cut: estimates below `z` standard errors become zero; the rest are kept.
#[must_use]
pub fn base_cut(estimates: &[f64], std_errors: &[f64], z: f64) -> Vec<f64> {
    estimates
        .iter()
        .zip(std_errors)
        .map(|(&x, &error)| if x > z * error { x } else { 0.0 })
        .collect()
}
