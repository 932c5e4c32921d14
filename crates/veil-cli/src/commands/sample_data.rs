//! `veil sample-data`: synthetic event tables for examples, tests and benchmarks.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use clap::Args;
use indicatif::{ProgressBar, ProgressStyle};
use rand_core::SeedableRng;
use veil_engine::sample::{SampleSpec, write_sample};

use crate::exit;

/// Write a synthetic events table (user_id, event_time, country, feature, value) as Parquet.
///
/// Events per user are heavy-tailed (most users have a few, some thousands), countries
/// and features are skewed, 1% of values are missing, and times span the 180 days before
/// 2026-11-01. The same --seed gives the same file. No real data is involved.
///
/// Examples:
///   veil sample-data --rows 1000000 --users 100000 --out data/events-1m.parquet
///   veil sample-data --rows 50000000 --users 5000000 --out /tmp/events-50m.parquet
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
}

pub(crate) fn run(args: &SampleDataArgs) -> anyhow::Result<ExitCode> {
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
    let summary = write_sample(
        SampleSpec {
            rows: args.rows,
            users: args.users,
        },
        &args.out,
        &mut rng,
        &mut |rows| bar.set_position(rows),
    )
    .map_err(exit::engine)
    .with_context(|| format!("writing {}", args.out.display()))?;
    bar.finish_and_clear();
    eprintln!(
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
        eprintln!(
            "wrote {rows} consent events for purposes {} to {}",
            args.purposes.join(", "),
            consent.display()
        );
    }
    Ok(ExitCode::SUCCESS)
}
