//! `veil ldp protocol`, `veil ldp simulate` and `veil ldp aggregate`: local differential
//! privacy from the command line. The randomizers and estimators are `veil-ldp`'s; this
//! module reads and writes descriptors (TOML), Parquet and CSV.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::Context;
use clap::{Args, Subcommand, ValueEnum};
use veil_core::{Bounds, Epsilon};

use veil_ldp::server::Consistency;
use veil_ldp::{
    DEFAULT_SKETCH_HASHES, DEFAULT_SKETCH_WIDTH, Domain, Longitudinal, OracleName, Protocol,
    ProtocolConfig, ProtocolDescriptor,
};

use crate::exit::{Classify, usage_error};
use crate::guard::{Input, refuse_overwrite};
use crate::rng;

mod aggregate;
mod collect;
mod columns;
mod simulate;

use aggregate::aggregate;
use simulate::simulate;

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

pub(super) fn read_lines(path: &Path, what: &str) -> anyhow::Result<Vec<String>> {
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("reading {what} {}", path.display()))?;
    Ok(text
        .lines()
        .map(|line| line.trim_end_matches('\r').to_string())
        .filter(|line| !line.trim().is_empty())
        .collect())
}

pub(super) fn parse_numeric(text: &str) -> anyhow::Result<Bounds> {
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

pub(super) fn protocol(args: &ProtocolArgs) -> anyhow::Result<ExitCode> {
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
        None => out!("{text}"),
    }
    errln!(
        "protocol {}: oracle {}, epsilon {} per report (actual {:.9})",
        built.id(),
        built.oracle().name(),
        built.epsilon(),
        built.actual_epsilon()
    );
    Ok(ExitCode::SUCCESS)
}

pub(super) fn descriptor_text(built: &Protocol) -> anyhow::Result<String> {
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

/// Writes `bytes` to a hidden temporary file beside `path`, syncs it and renames it into
/// place: `path` holds its old content or the new one, never part of it.
pub(super) fn write_atomically(path: &Path, bytes: &[u8]) -> anyhow::Result<()> {
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

/// Rows that `veil ldp simulate` skipped, by reason.
#[derive(Debug, Default)]
pub(super) struct Skipped {
    nulls: u64,
    out_of_domain: u64,
}
