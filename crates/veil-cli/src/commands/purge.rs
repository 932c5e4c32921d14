//! `veil purge`: rewrite exports without data no purpose may use any more.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::Args;
use veil_engine::job::{Consent, Source, SourceFormat};
use veil_engine::purge::{PurgeRules, purge};

use crate::config::purposes;
use crate::exit::{self, Classify};

/// Rewrite Parquet exports without rows past every purpose's retention and without the
/// units that withdrew all consent
///
/// Each file is rewritten atomically (a synced temporary file renamed over the original):
/// interrupted at any point, it is either the old file or the new one. A row is kept while
/// at least one purpose may still read it; rows without a time are kept.
///
/// Examples:
///   veil purge --purposes configs/purposes.toml --source data/events.parquet \
///       --consent data/consent.parquet --dry-run
///   veil purge --purposes configs/purposes.toml --source exports/ --as-of 2026-11-01
#[derive(Debug, Args)]
#[command(verbatim_doc_comment)]
pub(crate) struct PurgeArgs {
    /// The purposes registry (retention periods, purposes covered by consent).
    #[arg(long)]
    purposes: PathBuf,

    /// A Parquet file, a directory of them, or a glob.
    #[arg(long)]
    source: PathBuf,

    /// The consent log; units whose every purpose is withdrawn are removed.
    #[arg(long)]
    consent: Option<PathBuf>,

    /// The privacy-unit column (in the source and the consent log).
    #[arg(long, default_value = "user_id")]
    unit: String,

    /// The source's time column.
    #[arg(long, default_value = "event_time")]
    time_column: String,

    /// Apply retention and consent as of this time (RFC 3339 or a date); default now.
    #[arg(long, value_parser = crate::clock::parse_as_of)]
    as_of: Option<i64>,

    /// Count what would be removed; change nothing.
    #[arg(long)]
    dry_run: bool,
}

pub(crate) fn run(args: &PurgeArgs) -> anyhow::Result<ExitCode> {
    let registry = purposes::load(&args.purposes).usage()?;
    let as_of_ms = args.as_of.unwrap_or_else(crate::clock::now_ms);
    // A row may be removed only when it is past the retention of every purpose.
    let retentions: Vec<Option<i64>> = registry
        .purposes
        .values()
        .map(|entry| entry.retention_ms)
        .collect();
    let keep_from_ms = if retentions.iter().all(Option::is_some) {
        retentions
            .into_iter()
            .flatten()
            .max()
            .map(|longest| as_of_ms.saturating_sub(longest))
    } else {
        None
    };
    let consent = args.consent.as_ref().map(|path| {
        let table = Consent {
            path: path.clone(),
            format: SourceFormat::from_path(path),
            unit_column: args.unit.clone(),
            purpose_column: "purpose".to_string(),
            action_column: "action".to_string(),
            time_column: "at".to_string(),
        };
        (table, registry.purposes.keys().cloned().collect::<Vec<_>>())
    });
    let rules = PurgeRules {
        time_column: Some(args.time_column.clone()),
        keep_from_ms,
        consent,
        as_of_ms,
    };
    let source = Source {
        path: args.source.clone(),
        format: SourceFormat::Parquet,
        privacy_unit: args.unit.clone(),
    };
    let files = purge(&source, &rules, args.dry_run).map_err(exit::engine)?;
    let verb = if args.dry_run {
        "would remove"
    } else {
        "removed"
    };
    let (mut retention, mut withdrawal) = (0, 0);
    for file in &files {
        retention += file.removed_by_retention;
        withdrawal += file.removed_by_withdrawal;
        outln!(
            "{}: {verb} {} of {} rows ({} past every purpose's retention, {} of units that withdrew all consent){}",
            file.path.display(),
            file.removed_by_retention + file.removed_by_withdrawal,
            file.rows_before,
            file.removed_by_retention,
            file.removed_by_withdrawal,
            if file.rewritten { "; rewritten" } else { "" }
        );
    }
    match keep_from_ms {
        Some(from) => errln!(
            "retention: rows before {} are past every purpose's retention",
            veil_engine::as_of_text(from)
        ),
        None => errln!("retention: a purpose keeps data without limit, so no row is too old"),
    }
    errln!(
        "{verb} {} rows in {} files",
        retention + withdrawal,
        files.len()
    );
    Ok(ExitCode::SUCCESS)
}
