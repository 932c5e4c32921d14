//! `veil ldp protocol`, `veil ldp simulate` and `veil ldp aggregate`: local differential
//! privacy from the command line. The randomizers and estimators are `veil-ldp`'s; this
//! module reads and writes descriptors (TOML), Parquet and CSV.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::{Context, bail};
use clap::{Args, Subcommand, ValueEnum};
use veil_core::{Bounds, Epsilon};
use veil_engine::table::{Column, Values};
use veil_ldp::server::{Aggregator, Consistency, Estimates};
use veil_ldp::{
    DEFAULT_SKETCH_HASHES, DEFAULT_SKETCH_WIDTH, Domain, LdpError, Longitudinal, OracleName,
    Protocol, ProtocolConfig, ProtocolDescriptor,
};

use crate::exit::{Classify, usage_error};
use crate::guard::{Input, refuse_overwrite};
use crate::rng;

mod collect;
mod columns;

#[derive(Debug, Subcommand)]
pub(crate) enum LdpCommand {
    /// Write a protocol descriptor (TOML) that clients and the server share.
    ///
    /// The descriptor records the oracle, ε, the domain and every integer derived from them,
    /// and its id; the server refuses reports made under any other descriptor.
    ///
    /// Oracles: grr, oue, olh, hadamard, hcms (open domains), auto (least variance);
    /// numeric: duchi, piecewise, hybrid (auto picks hybrid).
    ///
    /// Examples:
    ///   veil ldp protocol --oracle auto --epsilon 1 --domain-size 1024
    ///   veil ldp protocol --oracle grr --epsilon 2 --domain-file countries.txt > country.toml
    ///   veil ldp protocol --oracle hybrid --epsilon 1 --numeric 0,100
    ///   veil ldp protocol --oracle hcms --epsilon 4 --open --candidates words.txt
    #[command(verbatim_doc_comment)]
    Protocol(ProtocolArgs),

    /// Randomize each row of a column (Parquet or CSV) as a client would, writing reports
    /// (Parquet).
    ///
    /// For tests and previews, and for data a team wants to protect before it leaves a
    /// source system. Each row is one client's report, randomized afresh (memoisation only
    /// matters across one client's repeated reports). Null rows and values outside the
    /// domain are counted and skipped (refused with --strict); numbers are clamped to the
    /// protocol's range and counted.
    ///
    /// Example:
    ///   veil ldp simulate --protocol country.toml --input data.parquet --column country \
    ///       --output reports.parquet
    #[command(verbatim_doc_comment)]
    Simulate(SimulateArgs),

    /// Estimate counts (or the mean) from reports, writing CSV (or Parquet).
    ///
    /// Columns: value, estimate, std_error, ci_low, ci_high, consistent_estimate. Estimates
    /// are counts of reports carrying each value, with standard errors in the same units
    /// and 95% intervals; consistent_estimate is post-processed (non-negative, summing to
    /// the number of reports). Numeric protocols give one row, value `mean`.
    ///
    /// Reports made under another descriptor (another oracle, ε, domain or version) and
    /// corrupt reports are not counted: a warning says how many, by reason and by the
    /// protocol id they carry (--strict refuses the first instead). When no report at all
    /// was made under the descriptor, or the file holds none, nothing is written and the
    /// command exits with status 2: estimates of zero reports would look like real zeros.
    ///
    /// No file is written over the command's inputs: --output must differ from --reports,
    /// --protocol and --candidates.
    ///
    /// Example:
    ///   veil ldp aggregate --protocol country.toml --reports reports.parquet \
    ///       --output estimates.csv
    #[command(verbatim_doc_comment)]
    Aggregate(AggregateArgs),

    /// Receive reports from devices over HTTPS and store them for `veil ldp aggregate`.
    ///
    /// Devices (the browser client in crates/veil-ldp-web, or any client of the format)
    /// POST batches to /v1/reports: each report as its length (2 bytes, little-endian) and
    /// its bytes, with Content-Type application/vnd.veil.ldp-reports. A batch is checked
    /// whole (every report decoded and made under --protocol) and stored or refused whole:
    /// 400 malformed, 413 too large, 415 wrong media type, 422 another protocol, 429 over
    /// the rate limit, 503 busy. GET /v1/protocol serves the descriptor as JSON.
    ///
    /// A batch is acknowledged only once it is synced to disk (a write-ahead log), so a
    /// crash loses at most the batches not yet answered; the log is sealed into a segment
    /// (a Parquet file written aside and renamed into place, its rows shuffled) when it is
    /// full or old, and at the next start after a crash. Nothing about the sender (address,
    /// cookies, user agent) is read or stored, and no request is logged.
    ///
    /// SIGTERM or Ctrl-C stops it cleanly: requests in flight finish, the log is sealed.
    ///
    /// Examples:
    ///   veil ldp collect --protocol country.toml --out reports/ \
    ///       --listen 0.0.0.0:8443 --cert cert.pem --key key.pem \
    ///       --allow-origin https://www.example.org
    ///   veil ldp aggregate --protocol country.toml --reports reports/ --output estimates.csv
    #[command(verbatim_doc_comment)]
    Collect(collect::CollectArgs),
}

/// An oracle name on the command line.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub(crate) enum OracleArg {
    /// Generalized randomized response: small domains.
    Grr,
    /// Optimized unary encoding.
    Oue,
    /// Optimized local hashing.
    Olh,
    /// Hadamard response.
    Hadamard,
    /// Hadamard count-mean sketch, for open domains (--open).
    Hcms,
    /// The least-variance oracle for the domain and ε.
    Auto,
    /// Duchi et al., for numbers (--numeric).
    Duchi,
    /// Piecewise mechanism, for numbers (--numeric).
    Piecewise,
    /// Hybrid of duchi and piecewise, for numbers (--numeric).
    Hybrid,
}

impl From<OracleArg> for OracleName {
    fn from(arg: OracleArg) -> Self {
        match arg {
            OracleArg::Grr => Self::Grr,
            OracleArg::Oue => Self::Oue,
            OracleArg::Olh => Self::Olh,
            OracleArg::Hadamard => Self::Hadamard,
            OracleArg::Hcms => Self::Hcms,
            OracleArg::Auto => Self::Auto,
            OracleArg::Duchi => Self::Duchi,
            OracleArg::Piecewise => Self::Piecewise,
            OracleArg::Hybrid => Self::Hybrid,
        }
    }
}

#[derive(Debug, Args)]
#[command(allow_negative_numbers = true)]
pub(crate) struct ProtocolArgs {
    /// The oracle or numeric mechanism.
    #[arg(long, default_value = "auto")]
    pub(crate) oracle: OracleArg,

    /// ε per report (finite, > 0; at most 40).
    #[arg(long)]
    pub(crate) epsilon: f64,

    /// A domain of this many values, reported by index 0..N.
    #[arg(long, group = "domain")]
    pub(crate) domain_size: Option<u32>,

    /// A domain listed in a file, one value per line (blank lines are skipped).
    #[arg(long, group = "domain")]
    pub(crate) domain_file: Option<PathBuf>,

    /// Numbers in the range LOWER,UPPER (e.g. 0,100); values outside are clamped.
    #[arg(long, group = "domain", value_name = "LOWER,UPPER")]
    pub(crate) numeric: Option<String>,

    /// An open domain: any string, hashed into a count-mean sketch (oracle hcms).
    #[arg(long, group = "domain")]
    pub(crate) open: bool,

    /// Open domain: strings the server estimates by default, one per line.
    #[arg(long, requires = "open")]
    pub(crate) candidates: Option<PathBuf>,

    /// Open domain: the number of hash functions.
    #[arg(long, default_value_t = DEFAULT_SKETCH_HASHES, requires = "open")]
    pub(crate) hashes: u32,

    /// Open domain: the sketch width (a power of two).
    #[arg(long, default_value_t = DEFAULT_SKETCH_WIDTH, requires = "open")]
    pub(crate) sketch_width: u32,

    /// Open domain: the seed of the hash functions (default: random). Public: it is
    /// written in the descriptor.
    #[arg(long, requires = "open")]
    pub(crate) hash_seed: Option<u64>,

    /// Clients memoise one permanent answer per value and resend it (RAPPOR-style), so
    /// repeated reports of a value cost ε once instead of once per report.
    #[arg(long)]
    pub(crate) memoize: bool,

    /// Write the descriptor to this file instead of stdout.
    #[arg(long)]
    pub(crate) output: Option<PathBuf>,

    /// Write the descriptor as JSON instead of TOML (the form the browser client reads;
    /// every command reads both).
    #[arg(long)]
    pub(crate) json: bool,
}

#[derive(Debug, Args)]
pub(crate) struct SimulateArgs {
    /// The protocol descriptor (TOML, from `veil ldp protocol`).
    #[arg(long)]
    pub(crate) protocol: PathBuf,

    /// The file with one client value per row: Parquet, or CSV with a header row when its
    /// name ends in .csv.
    #[arg(long)]
    pub(crate) input: PathBuf,

    /// The column to randomize: text for listed domains and open domains, integers for
    /// --domain-size protocols, numbers for numeric ones.
    #[arg(long)]
    pub(crate) column: String,

    /// The Parquet file of reports to write.
    #[arg(long)]
    pub(crate) output: PathBuf,

    /// Refuse (exit 1) on the first null or out-of-domain row instead of skipping it.
    #[arg(long)]
    pub(crate) strict: bool,

    /// Seed the generator for a reproducible run. The reports are then NOT private.
    #[arg(long)]
    pub(crate) seed: Option<u64>,
}

/// A consistency post-processing method.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub(crate) enum ConsistencyArg {
    /// Zero the negatives, shift the rest by one amount so they sum to n.
    NormSub,
    /// Euclidean projection onto the non-negative vectors summing to n.
    Projection,
    /// Zero estimates below a Bonferroni-corrected 95% significance threshold.
    BaseCut,
}

impl From<ConsistencyArg> for Consistency {
    fn from(arg: ConsistencyArg) -> Self {
        match arg {
            ConsistencyArg::NormSub => Self::NormSub,
            ConsistencyArg::Projection => Self::Projection,
            ConsistencyArg::BaseCut => Self::BaseCut,
        }
    }
}

#[derive(Debug, Args)]
pub(crate) struct AggregateArgs {
    /// The protocol descriptor the clients used.
    #[arg(long)]
    pub(crate) protocol: PathBuf,

    /// The Parquet file of reports (as `veil ldp simulate` writes them, or one binary
    /// column `report` in Veil's compact encoding), or a directory of such files (the
    /// segments `veil ldp collect` writes).
    #[arg(long)]
    pub(crate) reports: PathBuf,

    /// The file of estimates to write: CSV, or Parquet when its name ends in .parquet.
    #[arg(long)]
    pub(crate) output: PathBuf,

    /// How consistent_estimate is computed.
    #[arg(long, default_value = "norm-sub")]
    pub(crate) consistency: ConsistencyArg,

    /// Open domains: the strings to estimate, one per line (default: the descriptor's
    /// candidates).
    #[arg(long)]
    pub(crate) candidates: Option<PathBuf>,

    /// Write only the TOP items with the largest estimates, largest first.
    #[arg(long)]
    pub(crate) top: Option<usize>,

    /// Threads for OLH decoding (default: all cores).
    #[arg(long)]
    pub(crate) threads: Option<usize>,

    /// Refuse (exit 1) on the first report from another protocol or a corrupt report.
    #[arg(long)]
    pub(crate) strict: bool,
}

pub(crate) fn run(command: LdpCommand) -> anyhow::Result<ExitCode> {
    match command {
        LdpCommand::Protocol(args) => protocol(&args),
        LdpCommand::Simulate(args) => simulate(&args),
        LdpCommand::Aggregate(args) => aggregate(&args),
        LdpCommand::Collect(args) => collect::run(&args),
    }
}

fn read_lines(path: &Path, what: &str) -> anyhow::Result<Vec<String>> {
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("reading {what} {}", path.display()))?;
    Ok(text
        .lines()
        .map(|line| line.trim_end_matches('\r').to_string())
        .filter(|line| !line.trim().is_empty())
        .collect())
}

fn parse_numeric(text: &str) -> anyhow::Result<Bounds> {
    let parts: Vec<&str> = text.split(',').map(str::trim).collect();
    let [lower, upper] = parts.as_slice() else {
        return Err(usage_error(format!(
            "--numeric {text:?}: expected LOWER,UPPER such as 0,100"
        )));
    };
    let number = |value: &str| {
        value.parse::<f64>().map_err(|_| {
            usage_error(format!(
                "--numeric {text:?}: {value:?} is not a number; expected LOWER,UPPER such as 0,100"
            ))
        })
    };
    Bounds::new(number(lower)?, number(upper)?)
        .usage()
        .context("--numeric")
}

fn protocol(args: &ProtocolArgs) -> anyhow::Result<ExitCode> {
    if let Some(output) = &args.output {
        let mut inputs = Vec::new();
        if let Some(path) = &args.domain_file {
            inputs.push(Input::new("--domain-file", path));
        }
        if let Some(path) = &args.candidates {
            inputs.push(Input::new("--candidates", path));
        }
        refuse_overwrite(&[("--output", output)], &inputs)?;
    }
    let epsilon = Epsilon::new(args.epsilon).usage().context("--epsilon")?;
    let domain = if let Some(size) = args.domain_size {
        Domain::Size(size)
    } else if let Some(path) = &args.domain_file {
        Domain::Values(
            read_lines(path, "domain file").map_err(|error| usage_error(format!("{error:#}")))?,
        )
    } else if let Some(text) = &args.numeric {
        Domain::Numeric(parse_numeric(text)?)
    } else if args.open {
        let candidates = match &args.candidates {
            Some(path) => read_lines(path, "candidates file")
                .map_err(|error| usage_error(format!("{error:#}")))?,
            None => Vec::new(),
        };
        let seed = match args.hash_seed {
            Some(seed) => seed,
            None => rand_core::Rng::next_u64(&mut rng::os_seeded()?),
        };
        Domain::Open {
            hashes: args.hashes,
            width: args.sketch_width,
            seed,
            candidates,
        }
    } else {
        return Err(usage_error(
            "give the domain: --domain-size N, --domain-file FILE, --numeric LOWER,UPPER or --open",
        ));
    };
    let longitudinal = if args.memoize {
        Longitudinal::Memoize
    } else {
        Longitudinal::Independent
    };
    let built = Protocol::new(ProtocolConfig {
        oracle: args.oracle.into(),
        epsilon,
        domain,
        longitudinal,
    })
    .usage()
    .context("building the protocol")?;
    let text = if args.json {
        let mut json = serde_json::to_string_pretty(&built.descriptor())
            .context("writing the descriptor as JSON")?;
        json.push('\n');
        json
    } else {
        descriptor_text(&built)?
    };
    match &args.output {
        Some(path) => write_atomically(path, text.as_bytes())
            .with_context(|| format!("writing the descriptor to {}", path.display()))?,
        None => print!("{text}"),
    }
    eprintln!(
        "protocol {}: oracle {}, epsilon {} per report (actual {:.9})",
        built.id(),
        built.oracle().name(),
        built.epsilon(),
        built.actual_epsilon()
    );
    Ok(ExitCode::SUCCESS)
}

fn descriptor_text(built: &Protocol) -> anyhow::Result<String> {
    let body = toml::to_string(&built.descriptor()).context("writing the descriptor as TOML")?;
    Ok(format!(
        "# Veil local-DP protocol descriptor. Share it unchanged with the clients and the server:\n\
         # every report carries the first 16 hex digits of `id`, and the server refuses reports\n\
         # made under any other descriptor. `derived` holds every integer the randomizer uses\n\
         # (probabilities are integers over 2^64); editing any field invalidates the descriptor.\n\
         # Each report is epsilon-LDP; see [longitudinal] for what repeated reports cost.\n\n{body}"
    ))
}

pub(crate) fn load_protocol(path: &Path) -> anyhow::Result<Protocol> {
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("reading the protocol descriptor {}", path.display()))?;
    let descriptor: ProtocolDescriptor = if text.trim_start().starts_with('{') {
        serde_json::from_str(&text)
            .usage()
            .with_context(|| format!("reading the protocol descriptor {} (JSON)", path.display()))?
    } else {
        toml::from_str(&text)
            .usage()
            .with_context(|| format!("reading the protocol descriptor {}", path.display()))?
    };
    Protocol::from_descriptor(&descriptor)
        .usage()
        .with_context(|| format!("checking the protocol descriptor {}", path.display()))
}

/// Rows that `veil ldp simulate` skipped, by reason.
#[derive(Debug, Default)]
struct Skipped {
    nulls: u64,
    out_of_domain: u64,
}

/// Reports that `veil ldp aggregate` did not count, by reason.
#[derive(Debug, Default)]
struct Rejected {
    /// Per protocol short id the reports carry, how many.
    other_protocol: BTreeMap<u64, u64>,
    truncated: u64,
    corrupt: u64,
    /// The first corrupt or truncated report: where it is and why.
    first_corrupt: Option<(String, String)>,
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

fn simulate(args: &SimulateArgs) -> anyhow::Result<ExitCode> {
    refuse_overwrite(
        &[("--output", &args.output)],
        &[
            Input::new("--protocol", &args.protocol),
            Input::new("--input", &args.input),
        ],
    )?;
    let built = load_protocol(&args.protocol)?;
    let mut rng = rng::from_optional_seed(args.seed)?;
    let mut reader = columns::open_column(&args.input, &args.column)?;
    let mut writer = columns::ReportWriter::create(&args.output, &built)?;
    let (mut written, mut clamped) = (0_u64, 0_u64);
    let mut skipped = Skipped::default();
    let mut row = 0_u64;
    let numeric = built.oracle().name().is_numeric();
    while let Some(batch) = reader.next_batch()? {
        for index in 0..batch.len() {
            let value = columns::cell(&batch, index);
            row += 1;
            let outcome = match value {
                columns::Value::Null => {
                    if args.strict {
                        bail!("row {row} of column {:?} is null (--strict)", args.column);
                    }
                    skipped.nulls += 1;
                    continue;
                }
                columns::Value::Text(text) => built.randomize_value(text, &mut rng),
                #[allow(clippy::cast_precision_loss)]
                columns::Value::Integer(integer) if numeric => built
                    .randomize_number(integer as f64, &mut rng)
                    .map(|outcome| {
                        clamped += u64::from(outcome.clamped);
                        outcome.report
                    }),
                columns::Value::Integer(integer) => match u32::try_from(integer) {
                    Ok(index) => built.randomize_index(index, &mut rng),
                    Err(_) => Err(LdpError::OutOfDomain {
                        index: u64::try_from(integer).unwrap_or(u64::MAX),
                        size: u64::from(built.domain_size().unwrap_or(0)),
                    }),
                },
                columns::Value::Number(number) => {
                    built.randomize_number(number, &mut rng).map(|numeric| {
                        clamped += u64::from(numeric.clamped);
                        numeric.report
                    })
                }
            };
            match outcome {
                Ok(report) => {
                    writer.push(&report)?;
                    written += 1;
                }
                Err(
                    error @ (LdpError::UnknownValue { .. }
                    | LdpError::OutOfDomain { .. }
                    | LdpError::NotANumber),
                ) => {
                    if args.strict {
                        return Err(error).with_context(|| {
                            format!("row {row} of column {:?} (--strict)", args.column)
                        });
                    }
                    skipped.out_of_domain += 1;
                }
                Err(error) => {
                    return Err(error).usage().with_context(|| {
                        format!(
                            "column {:?} does not fit protocol {}",
                            args.column,
                            args.protocol.display()
                        )
                    });
                }
            }
        }
    }
    writer.finish()?;
    eprintln!(
        "randomized {written} of {row} rows into {} (oracle {}, epsilon {} per report); skipped {} null and {} outside the domain; clamped {clamped} into the range",
        args.output.display(),
        built.oracle().name(),
        built.epsilon(),
        skipped.nulls,
        skipped.out_of_domain,
    );
    Ok(ExitCode::SUCCESS)
}

fn aggregate(args: &AggregateArgs) -> anyhow::Result<ExitCode> {
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
            eprintln!(
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
        eprintln!(
            "warning: {} of {row} reports in {} were NOT counted: {}. The estimates describe only the {reports} reports made under {} (id {:016x}).",
            rejected.total(),
            args.reports.display(),
            rejected.describe(),
            args.protocol.display(),
            built.id().short(),
        );
    }
    eprintln!(
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
fn report_files(reports: &Path, output: &Path) -> anyhow::Result<Vec<PathBuf>> {
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

/// Writes `bytes` to a hidden temporary file beside `path`, syncs it and renames it into
/// place: `path` holds its old content or the new one, never part of it.
fn write_atomically(path: &Path, bytes: &[u8]) -> anyhow::Result<()> {
    let name = path
        .file_name()
        .map(|name| name.to_string_lossy().to_string())
        .unwrap_or_default();
    let temporary = path.with_file_name(format!(".{name}.tmp-{}", std::process::id()));
    let written = (|| {
        let mut file = std::fs::File::create_new(&temporary)?;
        std::io::Write::write_all(&mut file, bytes)?;
        file.sync_all()?;
        std::fs::rename(&temporary, path)
    })();
    if written.is_err() {
        let _ = std::fs::remove_file(&temporary);
    }
    Ok(written?)
}

/// The estimates as columns: value, estimate, std_error, ci_low, ci_high,
/// consistent_estimate; for frequencies in the domain's order, or the `top` largest first.
fn estimate_columns(
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
