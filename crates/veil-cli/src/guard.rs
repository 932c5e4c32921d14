//! No command writes over any of its inputs. Before a command reads anything, it lists what
//! it reads (source files, consent log, purposes registry, ledger, reports, protocol, the job
//! file itself) and what it will write, and [`refuse_overwrite`] refuses (exit 2, naming both)
//! when an output is one of the inputs: the same path, the same file reached through another
//! path (a symbolic link, `..`), or a hard link to it.
//!
//! Outputs themselves are written to a temporary file beside their destination and renamed
//! into place, so an output that does exist is replaced whole or not at all; this check is
//! what keeps that replacement from ever being an input.

use std::path::{Path, PathBuf};

use veil_engine::job::{Partitions, Source};

use crate::config::LoadedJob;
use crate::exit::usage_error;

/// A file a command reads, and what it is to the command (`"the source"`, `"--reports"`).
#[derive(Debug, Clone)]
pub(crate) struct Input {
    /// What the file is, in the words of the command line or the job (`"--reports"`).
    pub(crate) what: String,
    /// The file.
    pub(crate) path: PathBuf,
}

impl Input {
    /// An input named `what`.
    pub(crate) fn new(what: impl Into<String>, path: impl Into<PathBuf>) -> Self {
        Self {
            what: what.into(),
            path: path.into(),
        }
    }
}

/// Refuses when any of `outputs` (each with what it is) would write over any of `inputs`.
///
/// # Errors
/// A usage error (exit 2) naming the output, the input and the path.
pub(crate) fn refuse_overwrite(outputs: &[(&str, &Path)], inputs: &[Input]) -> anyhow::Result<()> {
    for (output_what, output) in outputs {
        for input in inputs {
            if same_file(output, &input.path) {
                return Err(usage_error(format!(
                    "{output_what} {} is {} {}: Veil never writes over its inputs; write the output elsewhere",
                    output.display(),
                    input.what,
                    input.path.display()
                )));
            }
        }
    }
    Ok(())
}

/// Refuses to write `what` (`"the preview"`, `"the report"`) into `directory` when it
/// holds a release that `veil run` published (its `release.json` says `"private": true`):
/// a preview's manifest would replace the release's, and a report's true values would sit
/// beside its tables as if they were released.
///
/// # Errors
/// A usage error (exit 2) naming the directory.
pub(crate) fn refuse_release_directory(what: &str, directory: &Path) -> anyhow::Result<()> {
    let manifest = directory.join("release.json");
    if !manifest.exists() {
        return Ok(());
    }
    // A manifest that cannot be read or parsed counts as a release's: refusing is safe.
    let preview = std::fs::read_to_string(&manifest)
        .ok()
        .and_then(|text| serde_json::from_str::<serde_json::Value>(&text).ok())
        .is_some_and(|manifest| manifest["private"] == serde_json::Value::Bool(false));
    if !preview {
        return Err(usage_error(format!(
            "{} holds a published release ({}): write {what} elsewhere, e.g. --output {}-{}",
            directory.display(),
            manifest.display(),
            directory.display(),
            what.trim_start_matches("the ")
        )));
    }
    Ok(())
}

/// Refuses to publish a release into `directory` when a utility report is there: its
/// true values (not private) would sit beside the released tables as if they were part
/// of the release.
///
/// # Errors
/// A usage error (exit 2) naming the report file.
pub(crate) fn refuse_report_directory(directory: &Path) -> anyhow::Result<()> {
    for name in ["report.json", "report.html", "report.md"] {
        let report = directory.join(name);
        if report.exists() {
            return Err(usage_error(format!(
                "{} holds a utility report ({}), whose true values are not private: publish the release elsewhere ([output] path or --output), or move the report",
                directory.display(),
                report.display()
            )));
        }
    }
    Ok(())
}

/// Every file a job reads: the job file, its purposes registry, public partition keys, the
/// ledger, and the files of its source and consent log.
pub(crate) fn job_inputs(loaded: &LoadedJob) -> Vec<Input> {
    let job = &loaded.job;
    let mut inputs = vec![
        Input::new("the job file", &loaded.file),
        Input::new("the ledger (budget.ledger)", &loaded.budget.ledger),
    ];
    if let Some(registry) = &loaded.registry {
        inputs.push(Input::new("the purposes registry", &registry.file));
    }
    for (index, query) in job.queries.iter().enumerate() {
        if let Partitions::Public { origin, .. } = &query.partitions {
            inputs.push(Input::new(
                format!("query[{index}]'s public partition keys"),
                origin,
            ));
        }
    }
    let mut sources = vec![("a file of the source", job.source.clone())];
    if let Some(consent) = &job.governance.consent {
        sources.push(("a file of the consent log", consent.source()));
    }
    for (what, source) in &sources {
        for file in veil_engine::scan::source_files(source).unwrap_or_default() {
            inputs.push(Input::new(*what, file));
        }
    }
    inputs
}

/// Refuses a job whose release (a file per query and `release.json`) would write over one
/// of its inputs, or land where its source or consent log would read it as data.
///
/// # Errors
/// A usage error (exit 2) naming the output and the input.
pub(crate) fn check_job_outputs(loaded: &LoadedJob) -> anyhow::Result<()> {
    let job = &loaded.job;
    let directory = &job.output.directory;
    let mut outputs: Vec<(String, PathBuf)> = job
        .queries
        .iter()
        .map(|query| {
            (
                format!("query {:?}'s output", query.name),
                directory.join(format!("{}.{}", query.name, job.output.format.extension())),
            )
        })
        .collect();
    outputs.push((
        "the release manifest".to_string(),
        directory.join("release.json"),
    ));
    let named: Vec<(&str, &Path)> = outputs
        .iter()
        .map(|(what, path)| (what.as_str(), path.as_path()))
        .collect();
    refuse_overwrite(&named, &job_inputs(loaded))?;
    refuse_report_directory(directory)?;
    refuse_among_sources(
        &named,
        job,
        "the",
        "a later run would read it as data; write the output elsewhere ([output] path or --output)",
    )
}

/// Refuses any of `outputs` that `job`'s source or consent log (named `whose source`)
/// would read as data: the same file, or a new one inside their folder or glob. The
/// refusal says `consequence` after naming both.
///
/// # Errors
/// A usage error (exit 2) naming the output and the source.
pub(crate) fn refuse_among_sources(
    outputs: &[(&str, &Path)],
    job: &veil_engine::job::Job,
    whose: &str,
    consequence: &str,
) -> anyhow::Result<()> {
    let mut sources: Vec<(&str, Source)> = vec![("source", job.source.clone())];
    if let Some(consent) = &job.governance.consent {
        sources.push(("consent log", consent.source()));
    }
    for (what, source) in &sources {
        for (output_what, output) in outputs {
            if veil_engine::scan::source_would_read(source, output) {
                return Err(usage_error(format!(
                    "{output_what} {} would be written among the files of {whose} {what} {}, and {consequence}",
                    output.display(),
                    source.path.display()
                )));
            }
        }
    }
    Ok(())
}

/// Whether `a` and `b` are the same file: equal canonical paths, or (on Unix) the same
/// device and inode. A path that does not exist is no file yet, so it is nothing else.
pub(crate) fn same_file(a: &Path, b: &Path) -> bool {
    let (Ok(a_meta), Ok(b_meta)) = (std::fs::metadata(a), std::fs::metadata(b)) else {
        return false;
    };
    #[cfg(unix)]
    {
        use std::os::unix::fs::MetadataExt;
        if a_meta.dev() == b_meta.dev() && a_meta.ino() == b_meta.ino() {
            return true;
        }
    }
    #[cfg(not(unix))]
    let _ = (a_meta, b_meta);
    match (std::fs::canonicalize(a), std::fs::canonicalize(b)) {
        (Ok(a), Ok(b)) => a == b,
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_output_over_an_input_is_refused_by_any_path_to_it() {
        let directory = tempfile::tempdir().unwrap();
        let source = directory.path().join("events.parquet");
        std::fs::write(&source, b"data").unwrap();
        let inputs = [Input::new("the source", &source)];
        let dotted = directory.path().join(".").join("events.parquet");
        let error = refuse_overwrite(&[("the output", &dotted)], &inputs).unwrap_err();
        assert!(error.to_string().contains("is the source"), "{error}");
        #[cfg(unix)]
        {
            let link = directory.path().join("link.parquet");
            std::os::unix::fs::symlink(&source, &link).unwrap();
            assert!(refuse_overwrite(&[("the output", &link)], &inputs).is_err());
            let hard = directory.path().join("hard.parquet");
            std::fs::hard_link(&source, &hard).unwrap();
            assert!(refuse_overwrite(&[("the output", &hard)], &inputs).is_err());
        }
        let other = directory.path().join("out.parquet");
        refuse_overwrite(&[("the output", &other)], &inputs).unwrap();
        std::fs::write(&other, b"old output").unwrap();
        refuse_overwrite(&[("the output", &other)], &inputs).unwrap();
    }
}
