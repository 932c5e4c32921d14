//! One module per command; each turns parsed arguments into calls on Veil's crates.

use crate::exit::usage_error;

pub(crate) mod accountant;
pub(crate) mod audit;
pub(crate) mod budget;
pub(crate) mod consent;
pub(crate) mod explain;
pub(crate) mod ldp;
pub(crate) mod noise;
pub(crate) mod preview;
pub(crate) mod purge;
pub(crate) mod purposes;
pub(crate) mod report;
pub(crate) mod run;
pub(crate) mod sample_data;

/// The `--as-of` flag of the commands that read a job's data.
#[derive(Debug, Clone, Copy, clap::Args)]
pub(crate) struct JobAsOf {
    /// Judge consent and retention as of this time (RFC 3339 or a date); default: the job
    /// file's `as_of`, else now.
    #[arg(long, value_parser = crate::clock::parse_as_of)]
    as_of: Option<i64>,
}

impl JobAsOf {
    /// The time to judge the job at, as the job loader takes it.
    pub(crate) fn get(self) -> crate::config::AsOf {
        crate::config::AsOf::from_flag(self.as_of)
    }
}

/// Refuses a `--sample` that reads any file of the job's real source (the same file, a
/// directory or glob that holds one of its files): a preview drops the consent filter and a
/// report on a sample says it may be shared, neither of which holds for real data.
pub(crate) fn check_sample_is_not_the_source(
    sample: &std::path::Path,
    source: &veil_engine::job::Source,
) -> anyhow::Result<()> {
    let files =
        |source: &veil_engine::job::Source| -> std::collections::BTreeSet<std::path::PathBuf> {
            veil_engine::scan::source_files(source)
                .unwrap_or_default()
                .into_iter()
                .filter_map(|file| file.canonicalize().ok())
                .collect()
        };
    let sample_source = veil_engine::job::Source {
        path: sample.to_path_buf(),
        format: veil_engine::job::SourceFormat::from_path(sample),
        privacy_unit: source.privacy_unit.clone(),
    };
    if !files(source).is_disjoint(&files(&sample_source)) {
        return Err(usage_error(format!(
            "--sample {} reads the job's own source: give sample or synthetic data (`veil sample-data --like`), or run without --sample for a report on the real data",
            sample.display()
        )));
    }
    Ok(())
}

/// The width a wide table wraps its cells to: the terminal's `COLUMNS` when the shell
/// exports it, else 120 (a table printed to a file or a pipe stays readable).
pub(crate) fn table_width() -> u16 {
    std::env::var("COLUMNS")
        .ok()
        .and_then(|columns| columns.trim().parse::<u16>().ok())
        .filter(|&columns| columns >= 60)
        .unwrap_or(120)
}
