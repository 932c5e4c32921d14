//! `veil ldp aggregate`: the server's estimates from report files, every report checked
//! against the descriptor first.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::Context;

use veil_engine::table::{Column, Values};
use veil_ldp::LdpError;
use veil_ldp::server::{Aggregator, Consistency, Estimates};

use crate::exit::usage_error;
use crate::guard::{Input, refuse_overwrite};

use super::{AggregateArgs, columns, load_protocol, read_lines};

/// Reports that `veil ldp aggregate` did not count, by reason.
#[derive(Debug, Default)]
pub(super) struct Rejected {
    /// Per protocol short id the reports carry, how many.
    other_protocol: BTreeMap<u64, u64>,
    truncated: u64,
    corrupt: u64,
    /// The first corrupt or truncated report: where it is and why.
    first_corrupt: Option<(String, String)>,
}

pub(super) fn aggregate(args: &AggregateArgs) -> anyhow::Result<ExitCode> {
    let mut inputs = vec![
        Input::new("--protocol", &args.protocol),
        Input::new("--reports", &args.reports),
    ];
    if let Some(path) = &args.candidates {
        inputs.push(Input::new("--candidates", path));
    }
    refuse_overwrite(&[("--output", &args.output)], &inputs)?;
    let built = load_protocol(&args.protocol)?;
    let mut aggregator = Aggregator::new(&built);
    if let Some(threads) = args.threads {
        aggregator.threads(threads);
    }
    let files = report_files(&args.reports, &args.output)?;
    let mut rejected = Rejected::default();
    let mut row = 0_u64;
    let mut batch = Vec::new();
    for file in &files {
        let mut reader = columns::ReportReader::open(file, &built)?;
        let mut in_file = 0_u64;
        while reader.next_batch(&mut batch)? {
            for report in batch.drain(..) {
                row += 1;
                in_file += 1;
                let outcome = report.and_then(|report| aggregator.add(&report));
                if let Err(error) = outcome {
                    let location = if files.len() == 1 {
                        format!("report {in_file}")
                    } else {
                        format!("report {in_file} of {}", file.display())
                    };
                    if args.strict {
                        return Err(error).with_context(|| {
                            format!("report {in_file} of {} (--strict)", file.display())
                        });
                    }
                    rejected.add(location, &error);
                }
            }
        }
    }
    if args.reports.is_dir() {
        let pending = veil_collect::store::pending_reports(&args.reports)
            .with_context(|| format!("reading {}", args.reports.display()))?;
        if pending > 0 {
            errln!(
                "warning: {pending} reports in {} are in a collector's write-ahead log, not yet in a segment, and are not counted: a running collector seals its log when it is full or old, and when it stops",
                args.reports.display()
            );
        }
    }
    let reports = aggregator.reports();
    if row == 0 {
        return Err(usage_error(format!(
            "{} holds no reports: there is nothing to estimate",
            args.reports.display()
        )));
    }
    if reports == 0 {
        return Err(usage_error(format!(
            "no report in {} was made under the protocol {} (id {:016x}): of {row} reports, {}; aggregate reports with the descriptor their clients used",
            args.reports.display(),
            args.protocol.display(),
            built.id().short(),
            rejected.describe(),
        )));
    }
    let candidates = match &args.candidates {
        Some(path) => Some(
            read_lines(path, "candidates file")
                .map_err(|error| usage_error(format!("{error:#}")))?,
        ),
        None => None,
    };
    let estimates = match candidates {
        Some(candidates) => aggregator.finish_candidates(&candidates),
        None => aggregator.finish(),
    }
    .context("estimating")?;
    columns::write_table(
        &args.output,
        estimate_columns(&estimates, args.consistency.into(), args.top),
    )?;
    if rejected.total() > 0 {
        errln!(
            "warning: {} of {row} reports in {} were NOT counted: {}. The estimates describe only the {reports} reports made under {} (id {:016x}).",
            rejected.total(),
            args.reports.display(),
            rejected.describe(),
            args.protocol.display(),
            built.id().short(),
        );
    }
    errln!(
        "aggregated {reports} of {row} reports into {} (oracle {}); skipped {} made under another protocol and {} corrupt",
        args.output.display(),
        built.oracle().name(),
        rejected.other_protocol.values().sum::<u64>(),
        rejected.truncated + rejected.corrupt,
    );
    Ok(ExitCode::SUCCESS)
}

/// The report files `--reports` names: the file, or a directory's visible `.parquet` files
/// (a collector's segments) in name order. Refuses an output that would land in that
/// directory, where a later run would read it as reports.
pub(super) fn report_files(reports: &Path, output: &Path) -> anyhow::Result<Vec<PathBuf>> {
    if !reports.is_dir() {
        return Ok(vec![reports.to_path_buf()]);
    }
    let output_dir = output
        .parent()
        .filter(|parent| !parent.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    if crate::guard::same_file(output_dir, reports) {
        return Err(usage_error(format!(
            "--output {} would be written in --reports {}, and a later run would read it as reports; write it elsewhere",
            output.display(),
            reports.display()
        )));
    }
    let mut files = Vec::new();
    for entry in std::fs::read_dir(reports)
        .with_context(|| format!("reading --reports {}", reports.display()))?
    {
        let path = entry
            .with_context(|| format!("reading --reports {}", reports.display()))?
            .path();
        let visible = path
            .file_name()
            .is_some_and(|name| !name.to_string_lossy().starts_with('.'));
        if visible
            && path.is_file()
            && path
                .extension()
                .is_some_and(|extension| extension == "parquet")
        {
            files.push(path);
        }
    }
    files.sort();
    Ok(files)
}

/// The estimates as columns: value, estimate, std_error, ci_low, ci_high,
/// consistent_estimate; for frequencies in the domain's order, or the `top` largest first.
pub(super) fn estimate_columns(
    estimates: &Estimates,
    consistency: Consistency,
    top: Option<usize>,
) -> Vec<Column> {
    let mut labels = Vec::new();
    let mut numbers: [Vec<Option<f64>>; 5] = Default::default();
    let mut push = |label: &str, row: [f64; 5]| {
        labels.push(Some(label.to_string()));
        for (column, number) in numbers.iter_mut().zip(row) {
            column.push(Some(number));
        }
    };
    match estimates {
        Estimates::Frequencies(frequencies) => {
            let consistent = frequencies.consistent(consistency);
            let mut order: Vec<usize> = (0..frequencies.items().len()).collect();
            if let Some(top) = top {
                order.sort_by(|&a, &b| {
                    frequencies.items()[b]
                        .estimate
                        .total_cmp(&frequencies.items()[a].estimate)
                });
                order.truncate(top);
            }
            for index in order {
                let item = &frequencies.items()[index];
                push(
                    &item.label,
                    [
                        item.estimate,
                        item.std_error,
                        item.ci_low,
                        item.ci_high,
                        consistent[index],
                    ],
                );
            }
        }
        Estimates::Mean(mean) => push(
            "mean",
            [
                mean.mean,
                mean.std_error,
                mean.ci_low,
                mean.ci_high,
                mean.consistent,
            ],
        ),
    }
    let mut columns = vec![Column::new(
        "value",
        Values::Text(labels.into_iter().collect()),
    )];
    for (name, values) in [
        "estimate",
        "std_error",
        "ci_low",
        "ci_high",
        "consistent_estimate",
    ]
    .into_iter()
    .zip(numbers)
    {
        columns.push(Column::new(name, Values::F64(values)));
    }
    columns
}

impl Rejected {
    fn add(&mut self, location: String, error: &LdpError) {
        match error {
            LdpError::WrongProtocol { found, .. } => {
                *self.other_protocol.entry(*found).or_default() += 1;
            }
            LdpError::Truncated { .. } => self.truncated += 1,
            _ => self.corrupt += 1,
        }
        if !matches!(error, LdpError::WrongProtocol { .. }) && self.first_corrupt.is_none() {
            self.first_corrupt = Some((location, error.to_string()));
        }
    }

    fn total(&self) -> u64 {
        self.other_protocol.values().sum::<u64>() + self.truncated + self.corrupt
    }

    /// The reasons, with counts: "4000 made under another protocol (4000 under
    /// 1a2b3c4d5e6f7a8b), 2 truncated (the first: report 17, …)".
    fn describe(&self) -> String {
        let mut parts = Vec::new();
        let other: u64 = self.other_protocol.values().sum();
        if other > 0 {
            const LISTED: usize = 5;
            let mut ids: Vec<String> = self
                .other_protocol
                .iter()
                .take(LISTED)
                .map(|(id, count)| format!("{count} under {id:016x}"))
                .collect();
            if self.other_protocol.len() > LISTED {
                ids.push(format!(
                    "{} more protocols",
                    self.other_protocol.len() - LISTED
                ));
            }
            parts.push(format!(
                "{other} made under another protocol ({})",
                ids.join(", ")
            ));
        }
        if self.truncated > 0 {
            parts.push(format!("{} truncated", self.truncated));
        }
        if self.corrupt > 0 {
            parts.push(format!("{} corrupt", self.corrupt));
        }
        let mut text = match parts.len() {
            0 => String::from("none skipped"),
            1 => parts.remove(0),
            _ => {
                let last = parts.pop().unwrap_or_default();
                format!("{} and {last}", parts.join(", "))
            }
        };
        if let Some((location, reason)) = &self.first_corrupt {
            text.push_str(&format!(
                " (the first unreadable one, {location}: {reason})"
            ));
        }
        text
    }
}
