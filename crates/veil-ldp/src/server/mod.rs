//! The server side: decoding reports into unbiased estimates, with their variance, standard
//! error and 95% interval, and consistent post-processed versions beside the raw ones.
//!
//! Decoding is one pass over the reports for every oracle. GRR, OUE and Hadamard response
//! only count; Hadamard response then applies one fast Walsh–Hadamard transform
//! (`O(n + K log K)`); the count-mean sketch transforms each of its `k` rows. OLH has to test
//! every domain item against every report (`O(n·d)`): reports are buffered and counted in
//! parallel (one slice of reports per thread, the domain in cache-sized blocks), with a loop
//! that needs one addition and one comparison per item.

use alloc::string::String;
use alloc::vec;
use alloc::vec::Vec;

use crate::hash::{OlhHash, bucket_start};
use crate::oracle::Support;
use crate::{Domain, LdpError, Oracle, Payload, Protocol, Report};

mod consistency;
#[cfg(test)]
mod tests;

pub use consistency::{Consistency, base_cut, norm_sub, project_simplex};

/// The two-sided 95% normal quantile.
pub const Z_95: f64 = 1.959_963_984_540_054;

/// Reports buffered before OLH counts them.
const OLH_BATCH: usize = 1 << 16;
/// Domain items per block in OLH counting (32 KiB of `u32` counters).
const OLH_BLOCK: usize = 1 << 13;

/// Accumulates reports for one protocol and turns them into estimates.
#[derive(Debug)]
pub struct Aggregator<'p> {
    protocol: &'p Protocol,
    state: State,
    reports: u64,
    threads: usize,
}

#[derive(Debug)]
enum State {
    /// GRR and OUE: per item; Hadamard response: per column.
    Counts(Vec<u64>),
    Olh {
        counts: Vec<u64>,
        pending: Vec<(u64, u32)>,
    },
    /// `k × m` signed sums of the sketch's bits.
    Sketch(Vec<i64>),
    Numeric(NumericSums),
}

#[derive(Debug, Default)]
struct NumericSums {
    positive: u64,
    negative: u64,
    cells: u64,
    cell_sum: u128,
    cell_squares: u128,
}

/// Estimates for a frequency oracle or a mean.
#[derive(Debug, Clone, PartialEq)]
pub enum Estimates {
    /// Counts per domain item (or per candidate of an open domain).
    Frequencies(FrequencyEstimates),
    /// The mean of a numeric value.
    Mean(MeanEstimate),
}

impl Estimates {
    /// The frequency estimates, if these are.
    #[must_use]
    pub fn into_frequencies(self) -> Option<FrequencyEstimates> {
        match self {
            Self::Frequencies(estimates) => Some(estimates),
            Self::Mean(_) => None,
        }
    }

    /// The mean estimate, if this is one.
    #[must_use]
    pub fn into_mean(self) -> Option<MeanEstimate> {
        match self {
            Self::Mean(estimate) => Some(estimate),
            Self::Frequencies(_) => None,
        }
    }
}

/// The estimated count of one item.
#[derive(Debug, Clone, PartialEq)]
pub struct ItemEstimate {
    /// The item: its listed value, its index, or the candidate string.
    pub label: String,
    /// The unbiased count estimate (may be negative or above `n`).
    pub estimate: f64,
    /// The estimate's variance, with the true count replaced by the estimate clamped to
    /// `[0, n]` (the exact formula is in each oracle's `PRIVACY.md`).
    pub variance: f64,
    /// `sqrt(variance)`, in counts.
    pub std_error: f64,
    /// `estimate - 1.96·std_error`.
    pub ci_low: f64,
    /// `estimate + 1.96·std_error`.
    pub ci_high: f64,
}

/// Count estimates for every item of a known domain, or the candidates of an open one.
#[derive(Debug, Clone, PartialEq)]
pub struct FrequencyEstimates {
    reports: u64,
    items: Vec<ItemEstimate>,
    complete: bool,
}

impl FrequencyEstimates {
    /// The number of reports decoded.
    #[must_use]
    pub fn reports(&self) -> u64 {
        self.reports
    }

    /// The raw (unbiased) estimates, in domain order.
    #[must_use]
    pub fn items(&self) -> &[ItemEstimate] {
        &self.items
    }

    /// Whether the items cover the whole domain (so the counts must sum to `n`); false for
    /// an open domain's candidates.
    #[must_use]
    pub fn is_complete(&self) -> bool {
        self.complete
    }

    /// Consistent estimates (non-negative; summing to `n` for a complete domain, except
    /// base-cut), in item order. For an open domain's candidates, whose true counts need not
    /// sum to `n`, every method clamps into `[0, n]` instead.
    #[must_use]
    pub fn consistent(&self, method: Consistency) -> Vec<f64> {
        #[allow(clippy::cast_precision_loss)]
        let total = self.reports as f64;
        let raw: Vec<f64> = self.items.iter().map(|item| item.estimate).collect();
        if !self.complete {
            return raw.iter().map(|&x| x.clamp(0.0, total)).collect();
        }
        match method {
            Consistency::NormSub => norm_sub(&raw, total),
            Consistency::Projection => project_simplex(&raw, total),
            Consistency::BaseCut => {
                let errors: Vec<f64> = self.items.iter().map(|item| item.std_error).collect();
                #[allow(clippy::cast_precision_loss)]
                let tests = self.items.len().max(1) as f64;
                let z = veil_core::special::normal_sf_inverse(0.05 / tests);
                base_cut(&raw, &errors, z)
            }
        }
    }

    /// The `k` items with the largest estimates, largest first.
    #[must_use]
    pub fn top(&self, k: usize) -> Vec<&ItemEstimate> {
        let mut sorted: Vec<&ItemEstimate> = self.items.iter().collect();
        sorted.sort_by(|a, b| b.estimate.total_cmp(&a.estimate));
        sorted.truncate(k);
        sorted
    }
}

/// The estimated mean of a numeric value.
#[derive(Debug, Clone, PartialEq)]
pub struct MeanEstimate {
    /// The number of reports decoded.
    pub reports: u64,
    /// The unbiased estimate of the mean of the clamped values.
    pub mean: f64,
    /// The standard error: the sample standard deviation of the report values over
    /// `sqrt(n)`. Reports are independent, so this is unbiased for the error against the
    /// population mean; it includes the spread of the clients' own values, so it is
    /// conservative for the mean of exactly these clients.
    pub std_error: f64,
    /// The worst-case standard error over inputs, from the mechanism's variance.
    pub worst_case_std_error: f64,
    /// `mean - 1.96·std_error`.
    pub ci_low: f64,
    /// `mean + 1.96·std_error`.
    pub ci_high: f64,
    /// The mean clamped into the range (post-processing).
    pub consistent: f64,
}

impl<'p> Aggregator<'p> {
    /// An empty aggregator for `protocol`, counting OLH reports on as many threads as the
    /// machine offers.
    #[must_use]
    pub fn new(protocol: &'p Protocol) -> Self {
        let state = match protocol.oracle() {
            Oracle::Grr(oracle) => State::Counts(vec![0; oracle.size() as usize]),
            Oracle::Oue(oracle) => State::Counts(vec![0; oracle.size() as usize]),
            Oracle::Hadamard(oracle) => State::Counts(vec![0; oracle.order() as usize]),
            Oracle::Olh(oracle) => State::Olh {
                counts: vec![0; oracle.size() as usize],
                pending: Vec::with_capacity(OLH_BATCH),
            },
            Oracle::Hcms(oracle) => {
                State::Sketch(vec![0; oracle.hashes() as usize * oracle.width() as usize])
            }
            Oracle::Duchi(_) | Oracle::Piecewise(_) | Oracle::Hybrid(_) => {
                State::Numeric(NumericSums::default())
            }
        };
        Self {
            protocol,
            state,
            reports: 0,
            threads: std::thread::available_parallelism().map_or(1, usize::from),
        }
    }

    /// Sets the number of threads for OLH counting (default: the machine's parallelism;
    /// at least 1).
    pub fn threads(&mut self, threads: usize) -> &mut Self {
        self.threads = threads.max(1);
        self
    }

    /// The number of reports accepted so far.
    #[must_use]
    pub fn reports(&self) -> u64 {
        self.reports
    }

    /// Adds one report.
    ///
    /// # Errors
    /// [`LdpError::WrongProtocol`] or [`LdpError::Corrupt`] (see [`Protocol::check`]); the
    /// report is then not counted.
    pub fn add(&mut self, report: &Report) -> Result<(), LdpError> {
        self.protocol.check(report)?;
        self.add_checked(&report.payload);
        Ok(())
    }

    /// Decodes and adds one report in the binary encoding.
    ///
    /// # Errors
    /// [`LdpError::Truncated`], [`LdpError::Corrupt`] or [`LdpError::WrongProtocol`]; the
    /// report is then not counted.
    pub fn add_encoded(&mut self, bytes: &[u8]) -> Result<(), LdpError> {
        let report = Report::decode(bytes)?;
        self.add(&report)
    }

    /// Adds GRR values or Hadamard columns in bulk, all made under this protocol (the
    /// caller has checked the protocol id, e.g. once per file). Values out of range are
    /// counted in the returned number and skipped.
    ///
    /// # Errors
    /// [`LdpError::WrongInput`] if the protocol is not GRR or Hadamard response.
    pub fn add_values(&mut self, values: &[u32]) -> Result<u64, LdpError> {
        match (&mut self.state, self.protocol.oracle()) {
            (State::Counts(counts), Oracle::Grr(_) | Oracle::Hadamard(_)) => {
                let mut skipped = 0_u64;
                for &value in values {
                    match counts.get_mut(value as usize) {
                        Some(count) => *count += 1,
                        None => skipped += 1,
                    }
                }
                self.reports += values.len() as u64 - skipped;
                Ok(skipped)
            }
            _ => Err(LdpError::WrongInput {
                oracle: self.protocol.oracle().name().as_str(),
                expected: "reports",
                given: "bare values",
            }),
        }
    }

    fn add_checked(&mut self, payload: &Payload) {
        self.reports += 1;
        match (&mut self.state, payload) {
            (
                State::Counts(counts),
                Payload::Grr { value } | Payload::Hadamard { column: value },
            ) => counts[*value as usize] += 1,
            (State::Counts(counts), Payload::Oue { ones }) => {
                for &position in ones {
                    counts[position as usize] += 1;
                }
            }
            (State::Olh { counts, pending }, Payload::Olh { seed, value }) => {
                pending.push((*seed, *value));
                if pending.len() >= OLH_BATCH {
                    let buckets = olh_buckets(self.protocol);
                    count_olh_parallel(counts, pending, buckets, self.threads);
                    pending.clear();
                }
            }
            (
                State::Sketch(cells),
                Payload::Hcms {
                    hash,
                    column,
                    positive,
                },
            ) => {
                let width = sketch_width(self.protocol);
                let cell = &mut cells[*hash as usize * width + *column as usize];
                *cell += if *positive { 1 } else { -1 };
            }
            (State::Numeric(sums), Payload::Duchi { positive }) => {
                if *positive {
                    sums.positive += 1;
                } else {
                    sums.negative += 1;
                }
            }
            (State::Numeric(sums), Payload::Piecewise { cell }) => {
                let cell = u128::from(*cell);
                sums.cells += 1;
                sums.cell_sum += cell;
                sums.cell_squares += cell * cell;
            }
            // `Protocol::check` admits only payloads of the protocol's oracle.
            _ => self.reports -= 1,
        }
    }

    /// Merges another aggregator's counts for the same protocol (e.g. from another
    /// thread or machine).
    ///
    /// # Errors
    /// [`LdpError::WrongProtocol`] if the two protocols differ.
    pub fn merge(&mut self, mut other: Aggregator<'_>) -> Result<(), LdpError> {
        if self.protocol.id() != other.protocol.id() {
            return Err(LdpError::WrongProtocol {
                expected: self.protocol.id().short(),
                found: other.protocol.id().short(),
            });
        }
        other.flush();
        self.reports += other.reports;
        match (&mut self.state, other.state) {
            (State::Counts(mine), State::Counts(theirs))
            | (State::Olh { counts: mine, .. }, State::Olh { counts: theirs, .. }) => {
                for (a, b) in mine.iter_mut().zip(theirs) {
                    *a += b;
                }
            }
            (State::Sketch(mine), State::Sketch(theirs)) => {
                for (a, b) in mine.iter_mut().zip(theirs) {
                    *a += b;
                }
            }
            (State::Numeric(mine), State::Numeric(theirs)) => {
                mine.positive += theirs.positive;
                mine.negative += theirs.negative;
                mine.cells += theirs.cells;
                mine.cell_sum += theirs.cell_sum;
                mine.cell_squares += theirs.cell_squares;
            }
            _ => {
                return Err(LdpError::Internal(String::from(
                    "aggregators of one protocol hold different states",
                )));
            }
        }
        Ok(())
    }

    fn flush(&mut self) {
        let buckets = if matches!(self.state, State::Olh { .. }) {
            olh_buckets(self.protocol)
        } else {
            return;
        };
        if let State::Olh { counts, pending } = &mut self.state {
            count_olh_parallel(counts, pending, buckets, self.threads);
            pending.clear();
        }
    }

    /// The estimates. For an open domain, the descriptor's candidates are estimated (see
    /// [`Aggregator::finish_candidates`] for others).
    ///
    /// # Errors
    /// [`LdpError::Internal`] only on a bug.
    pub fn finish(self) -> Result<Estimates, LdpError> {
        let candidates = match self.protocol.domain() {
            Domain::Open { candidates, .. } => candidates.clone(),
            _ => Vec::new(),
        };
        self.finish_candidates(&candidates)
    }

    /// The estimates, with `candidates` as the items of an open domain (ignored for known
    /// domains and numeric protocols).
    ///
    /// # Errors
    /// [`LdpError::Internal`] only on a bug.
    pub fn finish_candidates(mut self, candidates: &[String]) -> Result<Estimates, LdpError> {
        self.flush();
        let protocol = self.protocol;
        #[allow(clippy::cast_precision_loss)]
        let n = self.reports as f64;
        let estimates = match (self.state, protocol.oracle()) {
            (State::Counts(counts), Oracle::Grr(oracle)) => {
                frequency(protocol, self.reports, &counts, oracle.support())
            }
            (State::Counts(counts), Oracle::Oue(oracle)) => {
                frequency(protocol, self.reports, &counts, oracle.support())
            }
            (State::Olh { counts, .. }, Oracle::Olh(oracle)) => {
                frequency(protocol, self.reports, &counts, oracle.support())
            }
            (State::Counts(histogram), Oracle::Hadamard(oracle)) => {
                let mut transformed: Vec<i64> = histogram
                    .iter()
                    .map(|&count| i64::try_from(count).unwrap_or(i64::MAX))
                    .collect();
                fwht(&mut transformed);
                // Reports in item v's half: (n + W[v + 1]) / 2.
                let support: Vec<u64> = (1..=oracle.size() as usize)
                    .map(|row| {
                        let inside = (i128::from(self.reports) + i128::from(transformed[row])) / 2;
                        u64::try_from(inside).unwrap_or(0)
                    })
                    .collect();
                frequency(protocol, self.reports, &support, oracle.support())
            }
            (State::Sketch(mut cells), Oracle::Hcms(oracle)) => {
                let width = oracle.width() as usize;
                for row in cells.chunks_exact_mut(width) {
                    fwht(row);
                }
                let q = oracle.flip().to_f64();
                let gain = 1.0 - 2.0 * q;
                let m = f64::from(oracle.width());
                let correction = m / (m - 1.0);
                let items = candidates
                    .iter()
                    .map(|candidate| {
                        let sum: i64 = (0..oracle.hashes())
                            .map(|index| {
                                let bucket = oracle.bucket(index, candidate.as_bytes()) as usize;
                                cells[index as usize * width + bucket]
                            })
                            .sum::<i64>();
                        // Each report sits in exactly one row, so the sum runs over all n
                        // reports: E[sum] = (1 - 2q)(f + (n - f)/m).
                        #[allow(clippy::cast_precision_loss)]
                        let sum = sum as f64;
                        let estimate = correction * (sum / gain - n / m);
                        let count = estimate.clamp(0.0, n);
                        let supporting = count + (n - count) / m;
                        let variance = correction * correction * (n - gain * gain * supporting)
                            / (gain * gain);
                        item(candidate.clone(), estimate, variance.max(0.0))
                    })
                    .collect();
                Estimates::Frequencies(FrequencyEstimates {
                    reports: self.reports,
                    items,
                    complete: false,
                })
            }
            (State::Numeric(sums), oracle) => Estimates::Mean(mean(oracle, self.reports, &sums)?),
            _ => {
                return Err(LdpError::Internal(String::from(
                    "the aggregator's state does not match its oracle",
                )));
            }
        };
        Ok(estimates)
    }
}

fn olh_buckets(protocol: &Protocol) -> u32 {
    match protocol.oracle() {
        Oracle::Olh(oracle) => oracle.buckets(),
        _ => 2,
    }
}

fn sketch_width(protocol: &Protocol) -> usize {
    match protocol.oracle() {
        Oracle::Hcms(oracle) => oracle.width() as usize,
        _ => 1,
    }
}

fn item(label: String, estimate: f64, variance: f64) -> ItemEstimate {
    let std_error = libm::sqrt(variance);
    ItemEstimate {
        label,
        estimate,
        variance,
        std_error,
        ci_low: estimate - Z_95 * std_error,
        ci_high: estimate + Z_95 * std_error,
    }
}

fn frequency(protocol: &Protocol, reports: u64, support: &[u64], oracle: Support) -> Estimates {
    #[allow(clippy::cast_precision_loss)]
    let n = reports as f64;
    let items = support
        .iter()
        .enumerate()
        .map(|(index, &count)| {
            #[allow(clippy::cast_precision_loss)]
            let estimate = oracle.estimate(count as f64, n);
            let variance = oracle.count_variance(estimate.clamp(0.0, n), n);
            #[allow(clippy::cast_possible_truncation)]
            let label = protocol.label(index as u32);
            item(label, estimate, variance)
        })
        .collect();
    Estimates::Frequencies(FrequencyEstimates {
        reports,
        items,
        complete: true,
    })
}

fn mean(oracle: &Oracle, reports: u64, sums: &NumericSums) -> Result<MeanEstimate, LdpError> {
    let (duchi, piecewise, range) = match oracle {
        Oracle::Duchi(mechanism) => (Some(mechanism), None, mechanism.range()),
        Oracle::Piecewise(mechanism) => (None, Some(mechanism), mechanism.range()),
        Oracle::Hybrid(mechanism) => (
            Some(mechanism.duchi()),
            Some(mechanism.piecewise()),
            mechanism.duchi().range(),
        ),
        _ => {
            return Err(LdpError::Internal(String::from(
                "a numeric state for a frequency oracle",
            )));
        }
    };
    #[allow(clippy::cast_precision_loss)]
    let n = reports as f64;
    let (mut sum, mut squares) = (0.0, 0.0);
    if let Some(duchi) = duchi {
        let magnitude = duchi.magnitude();
        #[allow(clippy::cast_precision_loss)]
        let (positive, negative) = (sums.positive as f64, sums.negative as f64);
        sum += (positive - negative) * magnitude;
        squares += (positive + negative) * magnitude * magnitude;
    }
    if let Some(piecewise) = piecewise {
        // value = (cell - c)/s with c = (M - 1)/2; sums of cells are exact integers.
        let center = (f64::from(piecewise.cells()) - 1.0) / 2.0;
        let slope = 1.0 / piecewise.scale();
        #[allow(clippy::cast_precision_loss)]
        let (count, cell_sum, cell_squares) = (
            sums.cells as f64,
            sums.cell_sum as f64,
            sums.cell_squares as f64,
        );
        let centered_sum = cell_sum - count * center;
        let centered_squares = cell_squares - 2.0 * center * cell_sum + count * center * center;
        sum += centered_sum * slope;
        squares += centered_squares * slope * slope;
    }
    let unit_mean = if reports == 0 { 0.0 } else { sum / n };
    let sample_variance = if reports > 1 {
        ((squares - n * unit_mean * unit_mean) / (n - 1.0)).max(0.0)
    } else {
        0.0
    };
    let worst = [-1.0, 0.0, 1.0]
        .into_iter()
        .map(|t| match oracle {
            Oracle::Duchi(mechanism) => mechanism.variance_at(t),
            Oracle::Piecewise(mechanism) => mechanism.variance_at(t),
            Oracle::Hybrid(mechanism) => mechanism.variance_at(t),
            _ => 0.0,
        })
        .fold(0.0, f64::max);
    let unit_scale = range.unit_scale();
    let mean = range.from_unit(unit_mean);
    let std_error = libm::sqrt(sample_variance / n.max(1.0)) * unit_scale;
    Ok(MeanEstimate {
        reports,
        mean,
        std_error,
        worst_case_std_error: libm::sqrt(worst / n.max(1.0)) * unit_scale,
        ci_low: mean - Z_95 * std_error,
        ci_high: mean + Z_95 * std_error,
        consistent: mean.clamp(range.lower(), range.upper()),
    })
}

/// The fast Walsh–Hadamard transform in place (Sylvester order), for a power-of-two length:
/// `out[w] = Σ_j (-1)^popcount(w & j) · in[j]`.
pub fn fwht(values: &mut [i64]) {
    let length = values.len();
    let mut half = 1;
    while half < length {
        for block in values.chunks_exact_mut(2 * half) {
            let (low, high) = block.split_at_mut(half);
            for (a, b) in low.iter_mut().zip(high.iter_mut()) {
                let (x, y) = (*a, *b);
                *a = x + y;
                *b = x - y;
            }
        }
        half *= 2;
    }
}

/// Counts, for every item, the OLH reports whose bucket its hash falls in.
fn count_olh_parallel(counts: &mut [u64], pending: &[(u64, u32)], buckets: u32, threads: usize) {
    if pending.is_empty() {
        return;
    }
    let threads = threads.min(pending.len().div_ceil(1024)).max(1);
    if threads == 1 {
        let mut local = vec![0_u32; counts.len()];
        count_olh(&mut local, pending, buckets);
        for (total, add) in counts.iter_mut().zip(local) {
            *total += u64::from(add);
        }
        return;
    }
    let chunk = pending.len().div_ceil(threads);
    let partials: Vec<Vec<u32>> = std::thread::scope(|scope| {
        let handles: Vec<_> = pending
            .chunks(chunk)
            .map(|reports| {
                let size = counts.len();
                scope.spawn(move || {
                    let mut local = vec![0_u32; size];
                    count_olh(&mut local, reports, buckets);
                    local
                })
            })
            .collect();
        handles
            .into_iter()
            .map(|handle| handle.join().unwrap_or_default())
            .collect()
    });
    for partial in partials {
        for (total, add) in counts.iter_mut().zip(partial) {
            *total += u64::from(add);
        }
    }
}

/// OLH counting for one slice of reports: item `v` is supported by `(seed, y)` iff
/// `a·v + b` lies in bucket `y`'s interval `[start, start + width)` of `2^64`, i.e.
/// `(a·v + b - start) mod 2^64 < width`. Walking `v` upwards adds `a` each step.
pub fn count_olh(counts: &mut [u32], reports: &[(u64, u32)], buckets: u32) {
    for (block_index, block) in counts.chunks_mut(OLH_BLOCK).enumerate() {
        let first = (block_index * OLH_BLOCK) as u64;
        for &(seed, bucket) in reports {
            let hash = OlhHash::new(seed);
            let start = bucket_start(bucket, buckets);
            let end = bucket_start(bucket + 1, buckets);
            #[allow(clippy::cast_possible_truncation)]
            let width = (end - start) as u64;
            #[allow(clippy::cast_possible_truncation)]
            let start = start as u64;
            let step = hash.multiplier();
            let mut position = step
                .wrapping_mul(first)
                .wrapping_add(hash.offset())
                .wrapping_sub(start);
            for count in block.iter_mut() {
                *count += u32::from(position < width);
                position = position.wrapping_add(step);
            }
        }
    }
}
