//! Veil's side of the accuracy benchmark (`benches/accuracy/`): the same questions, data,
//! bounds and privacy as the peers, written as JSONL lines in the peers' format
//! (`"system": "veil"`), so that `benches/accuracy/report.py` puts them side by side.
//!
//! For each setting and release: a fresh bounding key, the real scan and the real release
//! (as `veil run` does, without the ledger and the files). The bounded truth is the same
//! aggregates computed exactly from the scan's bounded, clamped measures (noise only); the
//! raw truth uses every row with a value (bounding, clamping and noise).
//!
//! ```text
//! cargo run --release -p veil-bench --bin accuracy -- \
//!     --data ~/.cache/veil/accuracy/events-1m.parquet --releases 20 \
//!     --out ~/.cache/veil/accuracy/veil.jsonl
//! ```
#![allow(
    clippy::print_stdout,
    clippy::print_stderr,
    clippy::cast_precision_loss,
    clippy::cast_possible_truncation,
    clippy::cast_sign_loss
)]

use std::collections::BTreeMap;
use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::time::Instant;

use polars::prelude::*;
use rand::SeedableRng;
use rand::rngs::ChaCha20Rng;
use veil_core::{Bounds, Delta, Epsilon};
use veil_engine::job::{
    Aggregate, AggregateKind, AutoBound, ContributionBounds, Governance, Job, JobBudget,
    NoisePreference, Output, OutputFormat, Partitions, QuantileInterval, Query, Selection, Source,
    SourceFormat, ValueColumn,
};
use veil_engine::plan::{Derivation, HISTOGRAM_BRANCHING, HISTOGRAM_DEPTH, Measure, Plan};
use veil_engine::scan::{Aggregated, BoundingKey};

const LOWER: f64 = 0.0;
const UPPER: f64 = 100.0;

const USAGE: &str = "\
Veil's side of the accuracy benchmark: one JSONL line per question, aggregate and setting.

  --data FILE              the export (default events-1m.parquet)
  --out FILE               JSONL to append to (default veil.jsonl)
  --releases N             releases per setting (default 20)
  --questions q1,q2,q3,q4  which questions
  --epsilons 0.1,1,4       which total ε
  --partitions public,private
  --accounting pure,approx
  --selection units        private partitions selected on a count of people of their own
                           (variant selection=units)
  --bounds auto            L0, L∞ and value bounds chosen privately from a tenth of ε, afresh
                           for every release (variant bounds=auto)
  --interval rank          the median without a value interval: its whole budget on the
                           point (the job's interval = \"rank\"; variant interval=rank)
  --count-weight W         the count's weight in the job (default 1; variant count-weight=W)";

struct Args {
    data: PathBuf,
    epsilons: Vec<f64>,
    releases: usize,
    questions: Vec<String>,
    out: PathBuf,
    /// `--selection units`: private partitions selected on a count of users of their own
    /// (the job's `selection = "units"`), written as the variant `selection=units`.
    units: bool,
    /// `--bounds auto`: L0, L∞ and the value bounds chosen privately from the data (the
    /// job's `"auto"`, a tenth of ε), written as the variant `bounds=auto`.
    auto: bool,
    /// `--interval rank`: quantiles with a rank interval only (the job's `interval =
    /// "rank"`), written as the variant `interval=rank`.
    rank: bool,
    /// `--partitions public|private`: only those settings (both by default).
    partitions: Vec<String>,
    /// `--accounting pure|approx`: only those settings (both by default).
    accounting: Vec<String>,
    /// `--count-weight W`: the count aggregate's `weight` (1 by default), written as the
    /// variant `count-weight=W`.
    count_weight: f64,
}

fn args() -> Args {
    let mut args = Args {
        data: PathBuf::from("events-1m.parquet"),
        epsilons: vec![0.1, 1.0, 4.0],
        releases: 20,
        questions: ["q1", "q2", "q3", "q4"].map(String::from).to_vec(),
        out: PathBuf::from("veil.jsonl"),
        units: false,
        auto: false,
        rank: false,
        partitions: vec!["public".into(), "private".into()],
        accounting: vec!["pure".into(), "approx".into()],
        count_weight: 1.0,
    };
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        if flag == "--help" || flag == "-h" {
            println!("{USAGE}");
            std::process::exit(0);
        }
        let value = it.next().unwrap_or_default();
        match flag.as_str() {
            "--data" => args.data = PathBuf::from(value),
            "--epsilon" | "--epsilons" => {
                args.epsilons = value.split(',').filter_map(|v| v.parse().ok()).collect();
            }
            "--releases" => args.releases = value.parse().unwrap_or(20),
            "--question" | "--questions" => {
                args.questions = value.split(',').map(String::from).collect();
            }
            "--out" => args.out = PathBuf::from(value),
            "--selection" => args.units = value == "units",
            "--bounds" => args.auto = value == "auto",
            "--interval" => args.rank = value == "rank",
            "--partitions" => args.partitions = value.split(',').map(String::from).collect(),
            "--accounting" => args.accounting = value.split(',').map(String::from).collect(),
            "--count-weight" => args.count_weight = value.parse().unwrap_or(1.0),
            other => {
                eprintln!("unknown flag {other}");
                std::process::exit(2);
            }
        }
    }
    args
}

/// Per country: rows with a value, their sum, and the values sorted.
struct Raw {
    count: f64,
    sum: f64,
    sorted: Vec<f64>,
}

fn raw_truth(data: &Path) -> BTreeMap<String, Raw> {
    let frame = LazyFrame::scan_parquet(
        PlRefPath::new(data.to_string_lossy().as_ref()),
        ScanArgsParquet::default(),
    )
    .expect("the data reads")
    .select([col("country"), col("value")])
    .filter(col("value").is_not_null().and(col("value").is_nan().not()))
    .collect()
    .expect("the data reads");
    let countries = frame
        .column("country")
        .and_then(|column| column.str().cloned())
        .expect("a text country column");
    let values = frame
        .column("value")
        .and_then(|column| column.f64().cloned())
        .expect("a float value column");
    let mut raw: BTreeMap<String, Raw> = BTreeMap::new();
    for (country, value) in countries.iter().zip(values.iter()) {
        let (Some(country), Some(value)) = (country, value) else {
            continue;
        };
        let entry = raw.entry(country.to_string()).or_insert(Raw {
            count: 0.0,
            sum: 0.0,
            sorted: Vec::new(),
        });
        entry.count += 1.0;
        entry.sum += value;
        entry.sorted.push(value);
    }
    for entry in raw.values_mut() {
        entry.sorted.sort_by(f64::total_cmp);
    }
    raw
}

fn rank_error(sorted: &[f64], released: f64) -> Option<f64> {
    let n = sorted.len();
    if n == 0 || !released.is_finite() {
        return None;
    }
    let low = sorted.partition_point(|value| *value < released);
    let high = sorted.partition_point(|value| *value <= released);
    #[allow(clippy::cast_precision_loss)]
    let (rank, n) = ((low + high) as f64 / 2.0, n as f64);
    Some((rank - 0.5 * n).abs() / n)
}

fn relative_error(truth: f64, released: f64) -> Option<f64> {
    (truth != 0.0 && released.is_finite()).then(|| (released - truth).abs() / truth.abs())
}

fn median(mut values: Vec<f64>) -> Option<f64> {
    if values.is_empty() {
        return None;
    }
    values.sort_by(f64::total_cmp);
    let middle = values.len() / 2;
    Some(if values.len().is_multiple_of(2) {
        f64::midpoint(values[middle - 1], values[middle])
    } else {
        values[middle]
    })
}

/// The question's aggregates: (the peers' name, Veil's kind).
fn aggregates(question: &str, rank: bool) -> Vec<(&'static str, AggregateKind)> {
    let column = || ValueColumn {
        name: "value".into(),
        bounds: Bounds::new(LOWER, UPPER).expect("valid bounds"),
    };
    match question {
        "q1" => vec![
            ("count", AggregateKind::Count),
            ("sum", AggregateKind::Sum(column())),
        ],
        "q2" => vec![
            ("count", AggregateKind::Count),
            ("sum", AggregateKind::Sum(column())),
            ("mean", AggregateKind::Mean(column())),
        ],
        "q3" => vec![("mean", AggregateKind::Mean(column()))],
        _ => vec![(
            "median",
            AggregateKind::Quantiles {
                column: column(),
                levels: vec![0.5],
                interval: if rank {
                    QuantileInterval::Rank
                } else {
                    QuantileInterval::Value
                },
            },
        )],
    }
}

fn job(data: &Path, question: &str, setting: &Setting, keys: &[String], args: &Args) -> Job {
    let epsilon = Epsilon::new(setting.epsilon).expect("valid ε");
    let delta = Delta::new(1e-6).expect("valid δ");
    let (budget, noise) = match (setting.partitions, setting.accounting) {
        ("public", "pure") => (JobBudget::Pure(epsilon), NoisePreference::Auto),
        ("private", "pure") => (JobBudget::Approx(epsilon, delta), NoisePreference::Laplace),
        _ => (JobBudget::Approx(epsilon, delta), NoisePreference::Auto),
    };
    let partitions = if setting.partitions == "public" {
        Partitions::Public {
            origin: "the 50 countries".into(),
            keys: keys.iter().map(|key| vec![key.clone()]).collect(),
        }
    } else {
        Partitions::Private
    };
    Job {
        name: question.into(),
        job_hash: question.into(),
        source: Source {
            path: data.to_path_buf(),
            format: SourceFormat::Parquet,
            privacy_unit: "user_id".into(),
        },
        budget,
        queries: vec![Query {
            name: question.into(),
            group_by: vec!["country".into()],
            bounds: ContributionBounds {
                max_groups_per_unit: 3,
                max_rows_per_group: 5,
            },
            partitions,
            aggregates: aggregates(question, args.rank)
                .into_iter()
                .map(|(_, kind)| Aggregate {
                    name: kind.default_name(),
                    weight: if matches!(kind, AggregateKind::Count) {
                        args.count_weight
                    } else {
                        1.0
                    },
                    kind,
                })
                .collect(),
            weight: 1.0,
            // The peers drop rows without a value before they see the data.
            drop_missing: vec!["value".into()],
            selection: if args.units {
                Selection::Units
            } else {
                Selection::Released
            },
            auto: if args.auto {
                vec![
                    AutoBound::GroupsPerUnit,
                    AutoBound::RowsPerGroup,
                    AutoBound::Values("value".into()),
                ]
            } else {
                Vec::new()
            },
        }],
        output: Output {
            directory: std::env::temp_dir(),
            format: OutputFormat::Parquet,
        },
        governance: Governance::unrestricted("analytics", veil_engine::sample::SAMPLE_END_MS),
        noise,
    }
}

struct Setting {
    epsilon: f64,
    accounting: &'static str,
    partitions: &'static str,
}

/// The bounded truth of each aggregate per country, from the scan's exact measures.
fn bounded_truth(
    plan: &Plan,
    aggregated: &Aggregated,
) -> BTreeMap<String, BTreeMap<&'static str, f64>> {
    let query = &plan.queries[0];
    let aggregates = &aggregated.queries[0];
    let group_by = &query.query.group_by;
    let keys = aggregates.group_keys(group_by).expect("group keys");
    let measure = |key: &str| aggregates.measure(key).unwrap_or_default();
    let grid_unit = |key: &str| {
        query
            .noise_of(key)
            .map_or(1.0, |noisy| match &noisy.measure {
                Measure::Sum { grid, .. } => grid.granularity().to_f64(),
                Measure::CenteredSum { grid, .. } => grid.granularity().to_f64() / 2.0,
                _ => 1.0,
            })
    };
    let mut truth: BTreeMap<String, BTreeMap<&'static str, f64>> = BTreeMap::new();
    // The centre of the centred sums: the middle of the bounds the plan clamps to.
    let middle = query
        .measures
        .iter()
        .find_map(|noisy| match &noisy.measure {
            Measure::CenteredSum { bounds, .. } => {
                Some(f64::midpoint(bounds.lower(), bounds.upper()))
            }
            _ => None,
        })
        .unwrap_or(f64::midpoint(LOWER, UPPER));
    for (derivation, (name, _)) in query.derivations.iter().zip(aggregates_of(plan)) {
        let values: Vec<f64> = match derivation {
            Derivation::Count { rows } => measure(rows).iter().map(|&v| v as f64).collect(),
            Derivation::Sum { sum } => {
                let unit = grid_unit(sum);
                measure(sum).iter().map(|&v| v as f64 * unit).collect()
            }
            Derivation::CenteredSum { count, centered } | Derivation::Mean { count, centered } => {
                let unit = grid_unit(centered);
                let counts = measure(count);
                let centred = measure(centered);
                counts
                    .iter()
                    .zip(&centred)
                    .map(|(&n, &c)| {
                        let sum = middle * n as f64 + c as f64 * unit;
                        if matches!(derivation, Derivation::Mean { .. }) {
                            sum / (n as f64).max(1.0)
                        } else {
                            sum
                        }
                    })
                    .collect()
            }
            _ => continue,
        };
        for (key, value) in keys.iter().zip(values) {
            let country = key[0].clone().unwrap_or_default();
            truth.entry(country).or_default().insert(name, value);
        }
    }
    truth
}

fn aggregates_of(plan: &Plan) -> Vec<(&'static str, ())> {
    plan.queries[0]
        .query
        .aggregates
        .iter()
        .map(|aggregate| match aggregate.kind {
            AggregateKind::Count => ("count", ()),
            AggregateKind::Sum(_) => ("sum", ()),
            AggregateKind::Mean(_) => ("mean", ()),
            _ => ("median", ()),
        })
        .collect()
}

/// Per country, the rank of `released` among the bounded values, from the histogram.
fn bounded_rank_error(
    plan: &Plan,
    aggregated: &Aggregated,
    released: &BTreeMap<String, f64>,
) -> BTreeMap<String, f64> {
    let query = &plan.queries[0];
    let Some((key, lower, upper)) = query
        .measures
        .iter()
        .find_map(|noisy| match &noisy.measure {
            Measure::Histogram { bounds, .. } => {
                Some((noisy.measure.key(), bounds.lower(), bounds.upper()))
            }
            _ => None,
        })
    else {
        return BTreeMap::new();
    };
    let aggregates = &aggregated.queries[0];
    let keys = aggregates
        .group_keys(&query.query.group_by)
        .expect("group keys");
    let bins = HISTOGRAM_BRANCHING.pow(HISTOGRAM_DEPTH) as usize;
    let mut leaves = vec![vec![0_i64; bins]; keys.len()];
    for (group, leaf, rows) in aggregates
        .histogram(&key, &query.query.group_by)
        .unwrap_or_default()
    {
        leaves[group][usize::try_from(leaf).unwrap_or(0).min(bins - 1)] += rows;
    }
    let width = (upper - lower) / bins as f64;
    let mut errors = BTreeMap::new();
    for (key, leaves) in keys.iter().zip(leaves) {
        let country = key[0].clone().unwrap_or_default();
        let Some(&value) = released.get(&country) else {
            continue;
        };
        let n: i64 = leaves.iter().sum();
        if n == 0 {
            continue;
        }
        // Values below the released edge: the bins before it.
        let edge = (((value - lower) / width).round().max(0.0) as usize).min(bins);
        let below: i64 = leaves[..edge].iter().sum();
        errors.insert(country, (below as f64 - 0.5 * n as f64).abs() / n as f64);
    }
    errors
}

fn main() {
    let args = args();
    let raw = raw_truth(&args.data);
    let keys: Vec<String> = raw.keys().cloned().collect();
    let mut out = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(&args.out)
        .expect("the output opens");
    let mut rng = ChaCha20Rng::seed_from_u64(2026);
    for question in &args.questions {
        for &epsilon in &args.epsilons {
            for (partitions, accounting) in [
                ("public", "pure"),
                ("public", "approx"),
                ("private", "pure"),
                ("private", "approx"),
            ] {
                if (args.units && partitions == "public")
                    || !args.partitions.iter().any(|p| p == partitions)
                    || !args.accounting.iter().any(|a| a == accounting)
                {
                    continue;
                }
                let setting = Setting {
                    epsilon,
                    accounting,
                    partitions,
                };
                let job = job(&args.data, question, &setting, &keys, &args);
                let mut plan = veil_engine::plan::plan(&job).expect("the job plans");
                let auto_epsilon = plan.auto_epsilon;
                let mut chosen: BTreeMap<String, usize> = BTreeMap::new();
                let names = aggregates(question, args.rank);
                let mut errors: BTreeMap<&str, (Vec<f64>, Vec<f64>)> = BTreeMap::new();
                // Per aggregate and country, the bounded errors of the releases that had it.
                let mut by_country: BTreeMap<&str, BTreeMap<String, Vec<f64>>> = BTreeMap::new();
                let mut released_counts = Vec::new();
                let mut seconds = Vec::new();
                for _ in 0..args.releases {
                    let started = Instant::now();
                    if args.auto {
                        // Chosen afresh for every release, as `veil run` does.
                        let (resolved, choices) =
                            veil_engine::autobound::resolve(&job, auto_epsilon, &mut rng)
                                .expect("the bounds are chosen");
                        plan = veil_engine::plan::plan(&resolved).expect("the job plans");
                        let text = choices
                            .iter()
                            .map(|choice| format!("{} {}", choice.what, choice.value))
                            .collect::<Vec<_>>()
                            .join(", ");
                        *chosen.entry(text).or_default() += 1;
                    }
                    let key = BoundingKey::random(&mut rng);
                    let aggregated =
                        veil_engine::scan::aggregate(&plan.scan, key).expect("the scan runs");
                    let tables = veil_engine::release::release(&plan, &aggregated, &mut rng)
                        .expect("the release runs");
                    seconds.push(started.elapsed().as_secs_f64());
                    let table = &tables[0];
                    let countries: Vec<String> = table
                        .group_keys(&["country".to_string()])
                        .into_iter()
                        .map(|key| key[0].clone().unwrap_or_default())
                        .collect();
                    released_counts.push(countries.len() as f64);
                    let truth = bounded_truth(&plan, &aggregated);
                    for ((name, _), aggregate) in
                        names.iter().zip(&plan.queries[0].query.aggregates)
                    {
                        let column = veil_engine::plan::output_names_of(aggregate)[0].clone();
                        let values = table.column_as_f64(&column).unwrap_or_default();
                        let released: BTreeMap<String, f64> =
                            countries.iter().cloned().zip(values).collect();
                        let entry = errors.entry(name).or_default();
                        let countries_of = by_country.entry(name).or_default();
                        if *name == "median" {
                            for (country, error) in
                                bounded_rank_error(&plan, &aggregated, &released)
                            {
                                entry.0.push(error);
                                countries_of.entry(country.clone()).or_default().push(error);
                                if let Some(raw) = raw
                                    .get(&country)
                                    .and_then(|raw| rank_error(&raw.sorted, released[&country]))
                                {
                                    entry.1.push(raw);
                                }
                            }
                            continue;
                        }
                        for (country, value) in &released {
                            if let Some(error) = truth
                                .get(country)
                                .and_then(|t| t.get(name))
                                .and_then(|&t| relative_error(t, *value))
                            {
                                entry.0.push(error);
                                countries_of.entry(country.clone()).or_default().push(error);
                            }
                            let raw_value = raw.get(country).map(|raw| match *name {
                                "count" => raw.count,
                                "sum" => raw.sum,
                                _ => raw.sum / raw.count.max(1.0),
                            });
                            if let Some(error) = raw_value.and_then(|t| relative_error(t, *value)) {
                                entry.1.push(error);
                            }
                        }
                    }
                }
                let mechanism = format!(
                    "{} ({}), measures: {}",
                    plan.family,
                    match plan.cost {
                        veil_engine::plan::PlannedCost::Basic { epsilon, delta } =>
                            format!("ε = {epsilon:.4}, δ = {delta:e}"),
                        veil_engine::plan::PlannedCost::Zcdp {
                            rho,
                            epsilon,
                            conversion_delta,
                            selection_delta,
                        } => format!(
                            "ρ = {rho:.5} → ε = {epsilon:.4} at δ = {:e}",
                            conversion_delta + selection_delta
                        ),
                    },
                    plan.queries[0]
                        .measures
                        .iter()
                        .map(|noisy| {
                            let joint =
                                if matches!(noisy.noise, veil_engine::plan::MeasureNoise::Joint(_))
                                {
                                    " (joint)"
                                } else {
                                    ""
                                };
                            format!("{} {:.2}{joint}", noisy.measure.key(), noisy.share)
                        })
                        .collect::<Vec<_>>()
                        .join(", ")
                );
                for (name, _) in &names {
                    let (bounded, raw_errors) = errors.remove(name).unwrap_or_default();
                    // {country: [median bounded error, releases that had it]}.
                    let countries: serde_json::Map<String, serde_json::Value> = by_country
                        .remove(name)
                        .unwrap_or_default()
                        .into_iter()
                        .map(|(country, errors)| {
                            let releases = errors.len();
                            (country, serde_json::json!([median(errors), releases]))
                        })
                        .collect();
                    let line = serde_json::json!({
                        "system": "veil",
                        "variant": if args.units {
                            "selection=units".to_string()
                        } else if args.auto {
                            "bounds=auto".to_string()
                        } else if args.rank {
                            "interval=rank".to_string()
                        } else if args.count_weight.to_bits() != 1.0_f64.to_bits() {
                            format!("count-weight={}", args.count_weight)
                        } else {
                            "default".to_string()
                        },
                        "question": question,
                        "aggregate": name,
                        "metric": if *name == "median" { "rank error" } else { "relative error" },
                        "epsilon": epsilon,
                        "delta": if (partitions, accounting) == ("public", "pure") { 0.0 } else { 1e-6 },
                        "accounting": accounting,
                        "partitions": partitions,
                        "releases": args.releases,
                        "error_bounded": median(bounded),
                        "error_raw": median(raw_errors),
                        "countries_released": median(released_counts.clone()),
                        "countries_released_min": released_counts.iter().copied().fold(f64::INFINITY, f64::min),
                        "countries_released_max": released_counts.iter().copied().fold(0.0, f64::max),
                        "seconds_per_release": seconds.iter().sum::<f64>() / seconds.len().max(1) as f64,
                        "mechanism": mechanism,
                        "by_country": countries,
                        "notes": chosen
                            .iter()
                            .map(|(text, times)| format!("{text} ({times}×)"))
                            .collect::<Vec<_>>()
                            .join("; "),
                    });
                    writeln!(out, "{line}").expect("the output is written");
                }
                eprintln!("{question} ε={epsilon} {partitions}/{accounting}: {mechanism}");
            }
        }
    }
}
