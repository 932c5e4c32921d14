//! End-to-end audits of a job: the engine's real path on neighbouring datasets.
//!
//! # What runs
//!
//! The job is planned and checked as `veil run` does. The engine aggregates the job's
//! source once per bounding key ([`veil_engine::scan::aggregate`]), and once per key on
//! each neighbour ([`veil_engine::scan::aggregate_neighbour`]): every step of the scan —
//! retention, consent, the L∞ and L0 bounding by keyed hash, aggregation — runs unchanged
//! on the neighbour's rows. Then, `trials` times, the release step
//! ([`veil_engine::release::release`]: partition selection, noise, post-processing) runs
//! on both datasets' aggregates with fresh noise, and every released cell of every
//! affected group is compared between the two. Scanning once and releasing many times
//! tests the bounding for the chosen keys (bounding is deterministic given its key) and
//! the release for every trial; `keys` draws several keys and picks one at random per
//! trial, so the samples come from the mixture over keys, as in real runs.
//!
//! # Neighbours
//!
//! Three pairs of neighbouring datasets, each the source and one changed privacy unit:
//!
//! - **`add-unit`**: one new unit in the `max_groups_per_unit + 1` largest groups of each
//!   query with `overflow × max_rows_per_group` rows in each, every value past the far
//!   end of its bounds. A correct engine keeps `max_groups_per_unit` groups and
//!   `max_rows_per_group` rows of each, clamped: as much as the job allows, no more.
//! - **`add-unit-new-group`**: the same unit in a group that no one else is in, which
//!   private partition selection must (almost) never release.
//! - **`remove-heaviest-unit`**: the source without the unit that has the most rows.
//!
//! # Cells and claims
//!
//! Groups whose aggregates are equal on both datasets have identically distributed
//! outputs and cannot show a difference; the audit releases and tests only the groups
//! that differ. For each such group, every output column, the group's presence and its
//! row number in the published table are one cell each: the output of a trial is the
//! released value (or the row number), or `-∞` when the group was not released. Row
//! numbers are observed in releases of every group (by the plan reduced to its partition
//! selection), since where a group lands depends on the groups around it: a table whose
//! row order follows anything but the released keys fails there. A cell's claim is the plan's loss for what it is computed from: the
//! measures behind the column (a mean uses the value count and the centered sum) and,
//! when the query selects groups privately, the partition selection (presence gates
//! every cell; presence and position claim the selection alone). Laplace losses add up; Gaussian losses add up in zCDP and convert to
//! (ε, δ) at the plan's conversion δ (`1e-6` for a job budgeted in ρ alone); the
//! selection's δ is added. This is never more than the job's total, also reported.
//! Every cell is one test; the confidence is split evenly between them, so a correct
//! engine fails the whole audit with probability at most `1 − confidence`.
//!
//! Noise in an audit comes from the caller's generator, which `veil audit` seeds when
//! asked: the audit's releases are never published, so reproducibility costs nothing.

use std::collections::{BTreeMap, BTreeSet};

use rand_core::{CryptoRng, Rng};
use veil_engine::job::{Job, Partitions};
use veil_engine::plan::{Measure, Plan, QueryPlan, output_names_of};
use veil_engine::release::ReleasedTable;
use veil_engine::scan::{Aggregated, BoundingKey, ExternalAggregates, QueryAggregates};
use veil_engine::{EngineError, Executor, LocalExecutor};

use crate::AuditError;
use crate::estimate::{Audit, Claim, Confidence, Verdict, audit_samples};

mod claim;
mod neighbours;

use claim::cell_claim;
pub use claim::job_claim;
pub use neighbours::neighbours;

/// The δ at which a job budgeted in ρ alone has its zCDP losses converted to (ε, δ).
pub const RHO_ONLY_DELTA: f64 = 1e-6;

/// How thoroughly to audit a job.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct JobAuditOptions {
    /// Releases per dataset.
    pub trials: usize,
    /// The confidence of the whole audit (split between its cells).
    pub confidence: Confidence,
    /// The added unit has this many times `max_rows_per_group` rows in each group.
    pub overflow: u32,
    /// Bounding keys to draw (each costs one scan per dataset).
    pub keys: usize,
}

/// A pair of neighbouring datasets.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Pair {
    /// The source and the source with one more unit in existing groups.
    AddUnit,
    /// The source and the source with one more unit alone in a new group.
    AddUnitNewGroup,
    /// The source and the source without its heaviest unit.
    RemoveHeaviestUnit,
}

impl Pair {
    /// The pair's name in reports.
    #[must_use]
    pub fn as_str(self) -> &'static str {
        match self {
            Self::AddUnit => "add-unit",
            Self::AddUnitNewGroup => "add-unit-new-group",
            Self::RemoveHeaviestUnit => "remove-heaviest-unit",
        }
    }
}

/// One pair's aggregates, per bounding key: `(source, neighbour)`.
#[derive(Debug, Clone)]
pub struct Neighbours {
    /// Which pair.
    pub pair: Pair,
    /// Per key, the source's and the neighbour's aggregates.
    pub datasets: Vec<(Aggregated, Aggregated)>,
}

/// Pairs that could not be built, with why.
pub type Skipped = Vec<(Pair, String)>;

/// One audited cell.
#[derive(Debug, Clone, PartialEq)]
pub struct CellAudit {
    /// The pair of datasets.
    pub pair: Pair,
    /// The query.
    pub query: String,
    /// The group's key, one text value per group-by column (`None` for null).
    pub group: Vec<Option<String>>,
    /// The output column, or `presence`.
    pub output: String,
    /// The test.
    pub audit: Audit,
}

/// The audit of a job.
#[derive(Debug, Clone, PartialEq)]
pub struct JobAudit {
    /// What the plan claims for the whole job.
    pub job_claim: Claim,
    /// Every cell tested.
    pub cells: Vec<CellAudit>,
    /// Pairs that could not be built, with why (e.g. no new group can be made for a
    /// boolean group column).
    pub skipped: Skipped,
    /// `Fail` if any cell fails.
    pub verdict: Verdict,
    /// The largest lower bound over the cells.
    pub epsilon_lower_bound: f64,
}

/// Audits a job end to end (see the module's documentation).
///
/// # Errors
/// [`AuditError::Engine`] if the job is refused or its data cannot be read;
/// [`AuditError::Option`] for zero trials or keys.
pub fn audit_job<R: Rng + CryptoRng + ?Sized>(
    job: &Job,
    options: JobAuditOptions,
    rng: &mut R,
) -> Result<JobAudit, AuditError> {
    audit_job_with_progress(job, options, rng, &mut |_, _| {})
}

/// [`audit_job`], calling `progress(done, total)` as its releases are made (`total` =
/// trials × the neighbouring pairs that touch a group; four releases each), for a command
/// that shows how far a long audit is.
///
/// # Errors
/// As [`audit_job`].
pub fn audit_job_with_progress<R: Rng + CryptoRng + ?Sized>(
    job: &Job,
    options: JobAuditOptions,
    rng: &mut R,
    progress: &mut dyn FnMut(usize, usize),
) -> Result<JobAudit, AuditError> {
    let plan = veil_engine::check(job)?;
    let schema = LocalExecutor::default().schema(&job.source)?;
    if options.keys == 0 {
        return Err(AuditError::option("--keys", "must be at least 1"));
    }
    let keys: Vec<BoundingKey> = (0..options.keys)
        .map(|_| BoundingKey::random(rng))
        .collect();
    let (neighbours, skipped) = neighbours(&plan.scan, &schema, &keys, options.overflow)?;
    let mut audit = audit_releases(
        &plan,
        &neighbours,
        options,
        rng,
        |plan, aggregated, rng| veil_engine::release::release(plan, aggregated, rng),
        progress,
    )?;
    audit.skipped = skipped;
    Ok(audit)
}

/// Audits a plan's release on precomputed neighbours. Tests call this with aggregates
/// made wrongly on purpose (for example without L∞ bounding) to check that the auditor
/// notices.
///
/// # Errors
/// [`AuditError::Engine`] if a release fails; [`AuditError::Option`] for zero trials.
pub fn audit_neighbours<R: Rng + CryptoRng + ?Sized>(
    plan: &Plan,
    neighbours: &[Neighbours],
    options: JobAuditOptions,
    rng: &mut R,
) -> Result<JobAudit, AuditError> {
    audit_neighbours_with(plan, neighbours, options, rng, |plan, aggregated, rng| {
        veil_engine::release::release(plan, aggregated, rng)
    })
}

/// [`audit_neighbours`] with another release step in place of
/// [`veil_engine::release::release`] (it gets the plan reduced to the affected groups).
/// Claims still come from `plan`. Tests plant release bugs this way.
///
/// # Errors
/// As [`audit_neighbours`].
pub fn audit_neighbours_with<R, F>(
    plan: &Plan,
    neighbours: &[Neighbours],
    options: JobAuditOptions,
    rng: &mut R,
    release: F,
) -> Result<JobAudit, AuditError>
where
    R: Rng + CryptoRng + ?Sized,
    F: FnMut(&Plan, &Aggregated, &mut R) -> Result<Vec<ReleasedTable>, EngineError>,
{
    audit_releases(plan, neighbours, options, rng, release, &mut |_, _| {})
}

/// [`audit_neighbours_with`], calling `progress(done, total)` after each trial.
fn audit_releases<R, F>(
    plan: &Plan,
    neighbours: &[Neighbours],
    options: JobAuditOptions,
    rng: &mut R,
    mut release: F,
    progress: &mut dyn FnMut(usize, usize),
) -> Result<JobAudit, AuditError>
where
    R: Rng + CryptoRng + ?Sized,
    F: FnMut(&Plan, &Aggregated, &mut R) -> Result<Vec<ReleasedTable>, EngineError>,
{
    if options.trials < 2 {
        return Err(AuditError::option("--trials", "must be at least 2"));
    }
    // What to test: per pair, the groups that differ under some key. Their values and
    // presence are observed in releases of those groups alone (the others are released
    // alike on both datasets); their row numbers in releases of every group, by a plan
    // that keeps only what decides which groups are published, since a group's row depends
    // on the others around it.
    let position_plan = presence_only(plan);
    let mut setups = Vec::new();
    for neighbours in neighbours {
        let touched = touched_groups(plan, &neighbours.datasets)?;
        let restricted_plan = restrict_plan(plan, &touched);
        let mut datasets = Vec::new();
        for (base, changed) in &neighbours.datasets {
            datasets.push((
                restrict(plan, base, &touched)?,
                restrict(plan, changed, &touched)?,
            ));
        }
        let mut cells = Vec::new();
        for (index, query) in plan.queries.iter().enumerate() {
            // Each output of the query, the group's presence and its row in the table, with
            // their claims: the same for every group. Presence and position depend on which
            // groups are released, so they claim what the selection costs.
            let mut outputs: Vec<Observed> = query
                .query
                .aggregates
                .iter()
                .flat_map(output_names_of)
                .map(Observed::Value)
                .collect();
            outputs.push(Observed::Presence);
            outputs.push(Observed::Position);
            let claimed = outputs
                .into_iter()
                .map(|output| {
                    let column = match &output {
                        Observed::Value(name) => Some(name.as_str()),
                        Observed::Presence | Observed::Position => None,
                    };
                    Ok((cell_claim(plan, query, column)?, output))
                })
                .collect::<Result<Vec<_>, AuditError>>()?;
            for group in &touched[index] {
                for (claim, output) in &claimed {
                    cells.push(CellSetup {
                        query: index,
                        group: group.clone(),
                        claim: *claim,
                        output: output.clone(),
                    });
                }
            }
        }
        setups.push((
            neighbours.pair,
            restricted_plan,
            datasets,
            &neighbours.datasets,
            cells,
        ));
    }
    let total_cells: usize = setups.iter().map(|setup| setup.4.len()).sum();
    let each = options.confidence.split(total_cells);
    let total_trials = options.trials * setups.iter().filter(|setup| !setup.4.is_empty()).count();
    let mut done = 0;
    let mut cells = Vec::new();
    for (pair, restricted_plan, datasets, full, setup) in setups {
        if setup.is_empty() {
            continue;
        }
        let mut first = vec![Vec::with_capacity(options.trials); setup.len()];
        let mut second = vec![Vec::with_capacity(options.trials); setup.len()];
        for _ in 0..options.trials {
            let pick = if datasets.len() > 1 {
                usize::try_from(rng.next_u64() % datasets.len() as u64).unwrap_or(0)
            } else {
                0
            };
            let (base, changed) = &datasets[pick];
            let released_base = release(&restricted_plan, base, rng)?;
            let released_changed = release(&restricted_plan, changed, rng)?;
            let (full_base, full_changed) = &full[pick];
            let ordered_base = release(&position_plan, full_base, rng)?;
            let ordered_changed = release(&position_plan, full_changed, rng)?;
            for (index, cell) in setup.iter().enumerate() {
                let (base, changed, plan) = if cell.output == Observed::Position {
                    (&ordered_base, &ordered_changed, &position_plan)
                } else {
                    (&released_base, &released_changed, &restricted_plan)
                };
                first[index].push(observe(plan, base, cell));
                second[index].push(observe(plan, changed, cell));
            }
            done += 1;
            progress(done, total_trials);
        }
        for ((cell, first), second) in setup.into_iter().zip(first).zip(second) {
            let audit = audit_samples(&first, &second, cell.claim, each)?;
            cells.push(CellAudit {
                pair,
                query: plan.queries[cell.query].query.name.clone(),
                group: cell.group,
                output: cell.output.name(),
                audit,
            });
        }
    }
    let verdict = cells.iter().fold(Verdict::Pass, |verdict, cell| {
        verdict.and(cell.audit.verdict)
    });
    let epsilon_lower_bound = cells
        .iter()
        .map(|cell| cell.audit.bound.epsilon)
        .fold(0.0, f64::max);
    Ok(JobAudit {
        job_claim: job_claim(plan)?,
        cells,
        skipped: Vec::new(),
        verdict,
        epsilon_lower_bound,
    })
}

/// What a cell observes of a group in each release.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Observed {
    /// An output column's value.
    Value(String),
    /// Whether the group is in the table.
    Presence,
    /// The group's row number in the published table: a release whose row order depends on
    /// anything but the released keys (the scan's order, say) shows it here.
    Position,
}

impl Observed {
    fn name(&self) -> String {
        match self {
            Self::Value(name) => name.clone(),
            Self::Presence => "presence".to_string(),
            Self::Position => "position".to_string(),
        }
    }
}

/// One cell before sampling.
struct CellSetup {
    query: usize,
    group: Vec<Option<String>>,
    output: Observed,
    claim: Claim,
}

/// A cell's output in one release: its value, `0` for presence, the row number for
/// position, `-∞` when the group is not in the table.
fn observe(plan: &Plan, tables: &[ReleasedTable], cell: &CellSetup) -> f64 {
    let Some(table) = tables.get(cell.query) else {
        return f64::NEG_INFINITY;
    };
    let group_by = &plan.queries[cell.query].query.group_by;
    let Some(row) = table
        .group_keys(group_by)
        .iter()
        .position(|key| *key == cell.group)
    else {
        return f64::NEG_INFINITY;
    };
    match &cell.output {
        Observed::Presence => 0.0,
        #[allow(clippy::cast_precision_loss)]
        Observed::Position => row as f64,
        Observed::Value(name) => table
            .column_as_f64(name)
            .and_then(|values| values.get(row).copied())
            .filter(|value| !value.is_nan())
            .unwrap_or(f64::NEG_INFINITY),
    }
}

/// Per query, a group's measures and histogram, for comparing datasets.
type Fingerprint = (Vec<i64>, Vec<(i64, i64)>);

fn fingerprints(
    query: &QueryPlan,
    scan: &veil_engine::plan::QueryScan,
    aggregates: &QueryAggregates,
) -> Result<BTreeMap<Vec<Option<String>>, Fingerprint>, AuditError> {
    let keys = aggregates.group_keys(&query.query.group_by)?;
    let mut result: BTreeMap<Vec<Option<String>>, Fingerprint> = keys
        .iter()
        .map(|key| (key.clone(), (Vec::new(), Vec::new())))
        .collect();
    for measure in &scan.measures {
        match measure {
            Measure::Histogram { .. } => {
                for (group, leaf, rows) in aggregates
                    .histogram(&measure.key(), &query.query.group_by)
                    .unwrap_or_default()
                {
                    if let Some(entry) = keys.get(group).and_then(|key| result.get_mut(key)) {
                        entry.1.push((leaf, rows));
                    }
                }
            }
            other => {
                let values = aggregates.measure(&other.key()).unwrap_or_default();
                for (key, value) in keys.iter().zip(values) {
                    if let Some(entry) = result.get_mut(key) {
                        entry.0.push(value);
                    }
                }
            }
        }
    }
    for entry in result.values_mut() {
        entry.1.sort_unstable();
    }
    Ok(result)
}

/// Per query, the groups whose aggregates differ between the datasets of some pair.
fn touched_groups(
    plan: &Plan,
    datasets: &[(Aggregated, Aggregated)],
) -> Result<Vec<BTreeSet<Vec<Option<String>>>>, AuditError> {
    let mut touched = vec![BTreeSet::new(); plan.queries.len()];
    for (base, changed) in datasets {
        for (index, (query, scan)) in plan.queries.iter().zip(&plan.scan.queries).enumerate() {
            let (Some(left), Some(right)) = (base.queries.get(index), changed.queries.get(index))
            else {
                continue;
            };
            let left = fingerprints(query, scan, left)?;
            let right = fingerprints(query, scan, right)?;
            for key in left.keys().chain(right.keys()) {
                if left.get(key) != right.get(key) {
                    touched[index].insert(key.clone());
                }
            }
        }
    }
    Ok(touched)
}

/// The aggregates of the touched groups only.
fn restrict(
    plan: &Plan,
    aggregated: &Aggregated,
    touched: &[BTreeSet<Vec<Option<String>>>],
) -> Result<Aggregated, AuditError> {
    let mut queries = Vec::new();
    for (index, (query, scan)) in plan.queries.iter().zip(&plan.scan.queries).enumerate() {
        let group_by = query.query.group_by.clone();
        let Some(aggregates) = aggregated.queries.get(index) else {
            continue;
        };
        let keys = aggregates.group_keys(&group_by)?;
        let kept: Vec<usize> = (0..keys.len())
            .filter(|&row| touched[index].contains(&keys[row]))
            .collect();
        let new_index: BTreeMap<usize, usize> = kept
            .iter()
            .enumerate()
            .map(|(new, &old)| (old, new))
            .collect();
        let mut measures = BTreeMap::new();
        let mut histograms = BTreeMap::new();
        for measure in &scan.measures {
            match measure {
                Measure::Histogram { .. } => {
                    let rows = aggregates
                        .histogram(&measure.key(), &group_by)
                        .unwrap_or_default()
                        .into_iter()
                        .filter_map(|(group, leaf, rows)| {
                            new_index.get(&group).map(|&group| (group, leaf, rows))
                        })
                        .collect();
                    histograms.insert(measure.key(), rows);
                }
                other => {
                    if let Some(values) = aggregates.measure(&other.key()) {
                        measures.insert(
                            other.key(),
                            kept.iter().map(|&row| values[row]).collect::<Vec<_>>(),
                        );
                    }
                }
            }
        }
        queries.push(ExternalAggregates {
            group_by,
            keys: kept.iter().map(|&row| keys[row].clone()).collect(),
            measures,
            histograms,
        });
    }
    Ok(Aggregated::from_external(
        queries,
        aggregated.counts.clone(),
    )?)
}

/// The plan reduced to what decides which groups a release publishes: partition selection
/// (and the released count it thresholds), no aggregates and no other measure.
fn presence_only(plan: &Plan) -> Plan {
    let mut plan = plan.clone();
    for query in &mut plan.queries {
        query.query.aggregates.clear();
        query.derivations.clear();
        let selection_count = query.selection_count.clone();
        query
            .measures
            .retain(|noisy| Some(noisy.measure.key()) == selection_count);
    }
    plan
}

/// The plan with public partitions reduced to the touched keys (the others are
/// released alike on both datasets).
fn restrict_plan(plan: &Plan, touched: &[BTreeSet<Vec<Option<String>>>]) -> Plan {
    let mut plan = plan.clone();
    for (query, touched) in plan.queries.iter_mut().zip(touched) {
        if let Partitions::Public { keys, .. } = &mut query.query.partitions {
            keys.retain(|key| {
                let key: Vec<Option<String>> = key.iter().cloned().map(Some).collect();
                touched.contains(&key)
            });
        }
    }
    plan
}
