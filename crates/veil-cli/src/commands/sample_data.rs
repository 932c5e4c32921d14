//! `veil sample-data`: synthetic event tables for examples, tests and benchmarks.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use clap::Args;
use indicatif::{ProgressBar, ProgressStyle};
use rand_core::SeedableRng;
use veil_engine::Executor;
use veil_engine::job::{Source, SourceFormat};
use veil_engine::sample::{SampleSpec, write_sample};
use veil_engine::schema::ColumnKind;
use veil_engine::synthetic::{LikeSpec, Synthetic, SyntheticColumn, write_like};

use crate::config;
use crate::exit::{self, Classify, usage_error};
use crate::guard::{Input, refuse_overwrite};

/// Write a synthetic events table (user_id, event_time, country, feature, value) as Parquet
///
/// Events per user are heavy-tailed (most users have a few, some thousands), countries
/// and features are skewed, 1% of values are missing, and times span the 180 days before
/// 2026-11-01. The same --seed gives the same file. No real data is involved.
///
/// With --like, the table instead has the columns and types of a job's source (a job
/// file) or of a data file, read from its schema only: no value is read or copied.
/// Numbers are drawn within the job's declared bounds (or --range, else [0, 100]), skewed
/// towards the lower bound and never outside the bounds; text columns get
/// --categories skewed values named after the column. Use it with `veil preview` and
/// `veil report --sample` to look at a job without touching real data.
///
/// Examples:
///   veil sample-data --rows 1000000 --users 100000 --out data/events-1m.parquet
///   veil sample-data --rows 50000000 --users 5000000 --out /tmp/events-50m.parquet
///   veil sample-data --like configs/quickstart.toml --rows 100000 --out sample.parquet
///   veil sample-data --like export.parquet --unit account_id --range amount=0,500 --out s.parquet
#[derive(Debug, Args)]
#[command(verbatim_doc_comment)]
pub(crate) struct SampleDataArgs {
    /// Rows (events) to write.
    #[arg(long, default_value_t = 100_000)]
    rows: u64,

    /// Users to spread the events over.
    #[arg(long, default_value_t = 10_000)]
    users: u64,

    /// The Parquet file to write.
    #[arg(long)]
    out: PathBuf,

    /// Seed of the generator (the data is synthetic; the seed only makes it reproducible).
    #[arg(long, default_value_t = 42)]
    seed: u64,

    /// Also write a consent log for the same users (grants, revokes, re-grants per purpose).
    #[arg(long)]
    consent: Option<PathBuf>,

    /// The purposes of the consent log.
    #[arg(
        long,
        value_delimiter = ',',
        default_value = "analytics,recommendations"
    )]
    purposes: Vec<String>,
    /// A job file or a data file whose schema (only) the table copies.
    #[arg(long)]
    like: Option<PathBuf>,

    /// With --like on a data file: the privacy-unit column.
    #[arg(long, requires = "like")]
    unit: Option<String>,

    /// With --like: distinct values of each text column.
    #[arg(long, default_value_t = 20, requires = "like")]
    categories: u32,

    /// With --like: the range of a numeric column, as COLUMN=LOW,HIGH (repeatable).
    #[arg(long = "range", value_name = "COLUMN=LOW,HIGH", requires = "like")]
    ranges: Vec<String>,
}

pub(crate) fn run(args: &SampleDataArgs) -> anyhow::Result<ExitCode> {
    refuse_overwriting_inputs(args)?;
    if let Some(parent) = args
        .out
        .parent()
        .filter(|parent| !parent.as_os_str().is_empty())
    {
        std::fs::create_dir_all(parent)
            .with_context(|| format!("creating {}", parent.display()))?;
    }
    let bar = ProgressBar::new(args.rows).with_style(
        ProgressStyle::with_template("{spinner} writing {pos}/{len} rows [{bar:30}] {eta}")
            .expect("the template is valid")
            .progress_chars("=> "),
    );
    let mut rng = rand::rngs::ChaCha20Rng::seed_from_u64(args.seed);
    let summary = match &args.like {
        Some(like) => {
            let spec = like_spec(args, like)?;
            write_like(&spec, &args.out, &mut rng, &mut |rows| {
                bar.set_position(rows)
            })
        }
        None => write_sample(
            SampleSpec {
                rows: args.rows,
                users: args.users,
            },
            &args.out,
            &mut rng,
            &mut |rows| bar.set_position(rows),
        ),
    }
    .map_err(exit::engine)
    .with_context(|| format!("writing {}", args.out.display()))?;
    bar.finish_and_clear();
    errln!(
        "wrote {} rows for {} users to {}",
        summary.rows,
        summary.users_with_rows,
        args.out.display()
    );
    if let Some(consent) = &args.consent {
        let purposes: Vec<&str> = args.purposes.iter().map(String::as_str).collect();
        let rows =
            veil_engine::sample::write_sample_consent(args.users, &purposes, consent, &mut rng)
                .map_err(exit::engine)
                .with_context(|| format!("writing {}", consent.display()))?;
        errln!(
            "wrote {rows} consent events for purposes {} to {}",
            args.purposes.join(", "),
            consent.display()
        );
    }
    Ok(ExitCode::SUCCESS)
}

/// Refuses to write the table or the consent log over what `--like` reads (a job's file,
/// source, consent log, registry, ledger or keys; or the data file itself), or the two
/// over each other.
fn refuse_overwriting_inputs(args: &SampleDataArgs) -> anyhow::Result<()> {
    let mut outputs = vec![("--out", args.out.as_path())];
    if let Some(consent) = &args.consent {
        if consent == &args.out || crate::guard::same_file(consent, &args.out) {
            return Err(usage_error(format!(
                "--consent {} is --out: write the consent log to a file of its own",
                consent.display()
            )));
        }
        outputs.push(("--consent", consent.as_path()));
    }
    let Some(like) = &args.like else {
        return Ok(());
    };
    let is_job = like
        .extension()
        .is_some_and(|extension| extension.eq_ignore_ascii_case("toml"));
    if !is_job {
        return refuse_overwrite(&outputs, &[Input::new("--like", like)]);
    }
    let loaded = config::load(like, config::AsOf::from_flag(None)).usage()?;
    refuse_overwrite(&outputs, &crate::guard::job_inputs(&loaded))?;
    // A new file inside the source's folder or glob would be read as data too.
    crate::guard::refuse_among_sources(
        &outputs,
        &loaded.job,
        "the job's",
        "the job would read it as data: write it elsewhere",
    )
}

/// `COLUMN=LOW,HIGH` ranges.
fn parse_ranges(ranges: &[String]) -> anyhow::Result<Vec<(String, f64, f64)>> {
    ranges
        .iter()
        .map(|text| {
            let parsed = text.split_once('=').and_then(|(column, range)| {
                let (low, high) = range.split_once(',')?;
                let low: f64 = low.trim().parse().ok()?;
                let high: f64 = high.trim().parse().ok()?;
                (low.is_finite() && high.is_finite() && low < high)
                    .then(|| (column.trim().to_string(), low, high))
            });
            parsed.ok_or_else(|| {
                usage_error(format!(
                    "--range {text}: expected COLUMN=LOW,HIGH with LOW < HIGH, e.g. value=0,100"
                ))
            })
        })
        .collect()
}

/// The synthetic columns of a job's source (or a data file), from its schema and public
/// parameters only.
fn like_spec(args: &SampleDataArgs, like: &std::path::Path) -> anyhow::Result<LikeSpec> {
    let is_job = like
        .extension()
        .is_some_and(|extension| extension.eq_ignore_ascii_case("toml"));
    let mut ranges = parse_ranges(&args.ranges)?;
    let (source, unit, declared) = if is_job {
        let loaded = config::load(like, config::AsOf::from_flag(None)).usage()?;
        let job = loaded.job;
        // Declared bounds are public parameters of the job.
        for query in &job.queries {
            for aggregate in &query.aggregates {
                if let Some(column) = aggregate.kind.column()
                    && !ranges.iter().any(|(name, _, _)| *name == column.name)
                {
                    ranges.push((
                        column.name.clone(),
                        column.bounds.lower(),
                        column.bounds.upper(),
                    ));
                }
            }
        }
        let mut declared: Vec<(String, ColumnKind)> =
            vec![(job.source.privacy_unit.clone(), ColumnKind::Integer)];
        for query in &job.queries {
            for column in &query.group_by {
                declared.push((column.clone(), ColumnKind::String));
            }
            for aggregate in &query.aggregates {
                if let Some(column) = aggregate.kind.column() {
                    declared.push((column.name.clone(), ColumnKind::Float));
                }
            }
        }
        let mut seen = std::collections::BTreeSet::new();
        declared.retain(|(name, _)| seen.insert(name.clone()));
        let unit = args.unit.clone().unwrap_or(job.source.privacy_unit.clone());
        (job.source, unit, Some(declared))
    } else {
        let unit = args.unit.clone().ok_or_else(|| {
            usage_error("--like on a data file needs --unit COLUMN: the privacy-unit column")
        })?;
        let source = Source {
            path: like.to_path_buf(),
            format: SourceFormat::from_path(like),
            privacy_unit: unit.clone(),
        };
        (source, unit, None)
    };
    // The source's schema from its metadata; a job whose source is not here falls back
    // to the columns it declares.
    let columns = match veil_engine::LocalExecutor::default().schema(&source) {
        Ok(schema) => schema.columns,
        Err(error) => match declared {
            Some(declared) => {
                errln!(
                    "note: {} is not readable ({error}); using the columns the job declares",
                    source.path.display()
                );
                declared
            }
            None => return Err(exit::engine(error)),
        },
    };
    if !columns.iter().any(|(name, _)| *name == unit) {
        return Err(usage_error(format!(
            "the privacy-unit column {unit:?} is not among {}",
            columns
                .iter()
                .map(|(name, _)| name.as_str())
                .collect::<Vec<_>>()
                .join(", ")
        )));
    }
    let mut synthetic = Vec::new();
    for (name, kind) in columns {
        let range = ranges
            .iter()
            .find(|(column, _, _)| *column == name)
            .map(|(_, low, high)| (*low, *high));
        let generated = if name == unit {
            Synthetic::Unit {
                text: kind == ColumnKind::String,
            }
        } else {
            match kind {
                ColumnKind::Integer | ColumnKind::Float => {
                    let (lower, upper) = range.unwrap_or_else(|| {
                        errln!("note: no range for {name:?}; drawing it in [0, 100] (set --range {name}=LOW,HIGH)");
                        (0.0, 100.0)
                    });
                    Synthetic::Number {
                        lower,
                        upper,
                        integer: kind == ColumnKind::Integer,
                    }
                }
                ColumnKind::Boolean => Synthetic::Boolean,
                ColumnKind::Date => Synthetic::Date,
                ColumnKind::Timestamp => Synthetic::Timestamp,
                ColumnKind::String | ColumnKind::Other(_) => Synthetic::Category {
                    prefix: name.clone(),
                    count: args.categories.max(1),
                },
            }
        };
        synthetic.push(SyntheticColumn {
            name,
            kind: generated,
        });
    }
    Ok(LikeSpec {
        rows: args.rows,
        units: args.users,
        columns: synthetic,
    })
}
