//! `veil audit mechanism|ldp|job`: empirical privacy testing.
//!
//! Each command runs real code on neighbouring inputs many times and prints, as JSON, a
//! lower bound on the true ε with its confidence and a verdict. The verdict is `fail`
//! only when the lower bound exceeds the claimed ε; then the exit code is 1.

use std::io::IsTerminal;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::Context;
use clap::{Args, Subcommand};
use serde_json::{Value, json};
use veil_audit::job::{JobAudit, JobAuditOptions, audit_job_with_progress};
use veil_audit::ldp::audit_protocol;
use veil_audit::mechanism::{MechanismAudit, MechanismName, MechanismSpec, audit_mechanism};
use veil_audit::{Audit, AuditError, Confidence, Order, Verdict};
use veil_core::{Bounds, Delta, Epsilon, L1Sensitivity};
use veil_ldp::{
    DEFAULT_SKETCH_HASHES, DEFAULT_SKETCH_WIDTH, Domain, Longitudinal, OracleName, Protocol,
    ProtocolConfig,
};

use crate::config;
use crate::exit::{self, Classify};
use crate::rng;

/// What every audit's JSON says about its noise.
const NOTE: &str = "an audit is a test: its noisy outputs are compared, never released";

/// A job audit runs on the job's data: it names groups (the heaviest unit's among them)
/// and its thresholds are chosen from many runs on the true data, so they sit near true
/// values; nothing of it is charged to the ledger.
const JOB_NOTICE: &str = "NOT PRIVATE: computed on the job's data, with group keys and thresholds close to true values; for the operator, not for publication";

#[derive(Debug, Subcommand)]
pub(crate) enum AuditCommand {
    /// Audit a noise mechanism on its worst pair of neighbouring inputs.
    ///
    /// Runs the mechanism --trials times on each input (0 and the sensitivity; for
    /// thresholding, an absent group against one person and the threshold's edge), finds
    /// the threshold event whose probabilities differ the most on half of the outputs,
    /// and bounds ε from below on the other half with Clopper–Pearson intervals. Prints
    /// JSON; the verdict fails only if the lower bound exceeds the claimed ε, which a
    /// correct mechanism does with probability at most 1 − confidence.
    ///
    /// Exit codes: 0 pass, 1 fail, 2 a usage error.
    ///
    /// Examples:
    ///   veil audit mechanism --mechanism laplace --epsilon 1 --trials 200000
    ///   veil audit mechanism --mechanism discrete-gaussian --epsilon 1 --delta 1e-6 --trials 1000000
    ///   veil audit mechanism --mechanism all --epsilon 1 --delta 1e-6 --trials 100000 --seed 1
    #[command(verbatim_doc_comment)]
    Mechanism(MechanismArgs),

    /// Audit a local-DP protocol's randomizer on its worst pair of values.
    ///
    /// --protocol is a descriptor file (as `veil ldp protocol` writes) or an oracle
    /// name (grr, oue, olh, hadamard, hcms, duchi, piecewise, hybrid) built with
    /// --epsilon and --domain-size, or `all` for every oracle. A frequency oracle's report
    /// is reduced to whether it supports one value and not the other (the event whose
    /// probability ratio is e^ε); a numeric report to its decoded value.
    ///
    /// Exit codes: 0 pass, 1 fail, 2 a usage error.
    ///
    /// Examples:
    ///   veil audit ldp --protocol configs/ldp-country.toml --trials 200000
    ///   veil audit ldp --protocol all --epsilon 2 --trials 100000 --seed 1
    #[command(verbatim_doc_comment)]
    Ldp(LdpArgs),

    /// Audit a job end to end through the engine, on neighbouring datasets.
    ///
    /// The job's source is aggregated as `veil run` would (retention, consent, bounding),
    /// and again with one unit added (in the largest groups, with --overflow times the
    /// rows a group allows and values past their bounds), with that unit alone in a new
    /// group, and without the heaviest unit. The release step (partition selection,
    /// noise, post-processing) then runs --trials times on each, and every released cell
    /// of every group that differs, and each group's presence, is tested against the
    /// plan's loss for it. Nothing is charged, written or released.
    ///
    /// Exit codes: 0 pass, 1 fail, 2 the job or its files are wrong.
    ///
    /// Examples:
    ///   veil audit job configs/quickstart.toml --trials 2000
    ///   veil audit job jobs/daily.toml --trials 500 --keys 2 --seed 1
    #[command(verbatim_doc_comment)]
    Job(JobArgs),
}

#[derive(Debug, Args)]
pub(crate) struct CommonArgs {
    /// Runs per input (half choose the event, half bound it).
    #[arg(long, default_value_t = 100_000)]
    trials: usize,

    /// Confidence of the whole audit: a correct implementation fails with probability at
    /// most 1 − confidence.
    #[arg(long, default_value_t = 0.99)]
    confidence: f64,

    /// Seed the generator, for a reproducible audit (nothing is released either way).
    #[arg(long)]
    seed: Option<u64>,
}

#[derive(Debug, Args)]
#[command(allow_negative_numbers = true)]
pub(crate) struct MechanismArgs {
    /// laplace, discrete-laplace, gaussian, discrete-gaussian, laplace-threshold,
    /// gaussian-threshold, or all.
    #[arg(long)]
    mechanism: String,

    /// The claimed ε.
    #[arg(long)]
    epsilon: f64,

    /// The claimed δ (needed by the Gaussian mechanisms and thresholding).
    #[arg(long, default_value_t = 0.0)]
    delta: f64,

    /// How much one person changes the answer (an integer for the discrete mechanisms;
    /// for thresholding, the groups one person may be in).
    #[arg(long, default_value_t = 1.0)]
    sensitivity: f64,

    #[command(flatten)]
    common: CommonArgs,
}

#[derive(Debug, Args)]
pub(crate) struct LdpArgs {
    /// A protocol descriptor file, an oracle name, or `all`.
    #[arg(long)]
    protocol: String,

    /// ε per report, for an oracle given by name.
    #[arg(long, default_value_t = 1.0)]
    epsilon: f64,

    /// Domain size, for a categorical oracle given by name.
    #[arg(long, default_value_t = 16)]
    domain_size: u32,

    #[command(flatten)]
    common: CommonArgs,
}

#[derive(Debug, Args)]
pub(crate) struct JobArgs {
    /// The job file.
    job: PathBuf,

    #[command(flatten)]
    as_of: super::JobAsOf,

    /// Releases per dataset.
    #[arg(long, default_value_t = 1000)]
    trials: usize,

    /// The added unit has this many times max_rows_per_group rows in each group.
    #[arg(long, default_value_t = 10)]
    overflow: u32,

    /// Bounding keys to draw (each costs one scan per dataset).
    #[arg(long, default_value_t = 1)]
    keys: usize,

    /// Confidence of the whole audit (split between its cells).
    #[arg(long, default_value_t = 0.99)]
    confidence: f64,

    /// Seed the generator, for a reproducible audit (nothing is released either way).
    #[arg(long)]
    seed: Option<u64>,
}

pub(crate) fn run(command: AuditCommand) -> anyhow::Result<ExitCode> {
    match command {
        AuditCommand::Mechanism(args) => mechanism(&args),
        AuditCommand::Ldp(args) => ldp(&args),
        AuditCommand::Job(args) => job(&args),
    }
}

fn audit_error(error: AuditError) -> anyhow::Error {
    let failure = match &error {
        AuditError::Option { .. } | AuditError::Param(_) | AuditError::Ldp(_) => {
            Some(exit::Failure::Usage)
        }
        AuditError::Engine(engine) => exit::engine_failure(engine),
        _ => None,
    };
    exit::classified(error, failure)
}

/// Prints the JSON and turns the verdict into the exit code.
fn finish(output: &Value, verdict: Verdict) -> anyhow::Result<ExitCode> {
    let text = serde_json::to_string_pretty(output).context("formatting the audit")?;
    outln!("{text}");
    match verdict {
        Verdict::Pass => Ok(ExitCode::SUCCESS),
        Verdict::Fail => {
            errln!(
                "audit failed: the empirical lower bound on ε exceeds the claimed ε (see \"verdict\" above)"
            );
            Ok(ExitCode::from(1))
        }
    }
}

fn confidence(value: f64) -> anyhow::Result<Confidence> {
    Confidence::new(value).map_err(audit_error)
}

fn pair_json(name: &str, audit: &Audit) -> Value {
    let bound = &audit.bound;
    json!({
        "pair": name,
        "claimed_epsilon": audit.claim.epsilon.get(),
        "claimed_delta": audit.claim.delta.get(),
        "empirical_epsilon_lower_bound": bound.epsilon,
        "confidence": audit.confidence.get(),
        "verdict": audit.verdict.as_str(),
        "event": bound.event.to_string(),
        "more_likely_under": match bound.order {
            Order::FirstOverSecond => "first",
            Order::SecondOverFirst => "second",
        },
        "evaluated_per_input": bound.evaluated,
        "hits": [bound.likely_hits, bound.unlikely_hits],
        "probability_bounds": [bound.likely_low, bound.unlikely_high],
    })
}

fn mechanism_json(audit: &MechanismAudit, trials: usize, confidence: Confidence) -> Value {
    json!({
        "mechanism": audit.spec.name.as_str(),
        "claimed_epsilon": audit.spec.epsilon.get(),
        "claimed_delta": audit.spec.delta.get(),
        "sensitivity": audit.spec.sensitivity.get(),
        "empirical_epsilon_lower_bound": audit.epsilon_lower_bound,
        "confidence": confidence.get(),
        "verdict": audit.verdict.as_str(),
        "trials": trials,
        "pairs": audit.pairs.iter().map(|(name, audit)| pair_json(name, audit)).collect::<Vec<_>>(),
    })
}

fn mechanism(args: &MechanismArgs) -> anyhow::Result<ExitCode> {
    let confidence = confidence(args.common.confidence)?;
    let names: Vec<MechanismName> = if args.mechanism == "all" {
        MechanismName::ALL.to_vec()
    } else {
        vec![args.mechanism.parse().map_err(audit_error)?]
    };
    let epsilon = Epsilon::new(args.epsilon).usage().context("--epsilon")?;
    let delta = Delta::new(args.delta).usage().context("--delta")?;
    let sensitivity = L1Sensitivity::new(args.sensitivity)
        .usage()
        .context("--sensitivity")?;
    let mut rng = rng::for_audit(args.common.seed)?;
    let each = confidence.split(names.len());
    let mut audits = Vec::new();
    for name in names {
        let spec = MechanismSpec {
            name,
            epsilon,
            delta,
            sensitivity,
        };
        let audit = audit_mechanism(spec, args.common.trials, each, &mut rng)
            .map_err(audit_error)
            .with_context(|| format!("auditing {name}"))?;
        audits.push(audit);
    }
    let verdict = audits
        .iter()
        .fold(Verdict::Pass, |verdict, audit| verdict.and(audit.verdict));
    let output = if let [audit] = audits.as_slice() {
        let mut output = mechanism_json(audit, args.common.trials, confidence);
        output["seed"] = json!(args.common.seed);
        output["note"] = json!(NOTE);
        output
    } else {
        json!({
            "claimed_epsilon": epsilon.get(),
            "claimed_delta": delta.get(),
            "empirical_epsilon_lower_bound": audits.iter().map(|audit| audit.epsilon_lower_bound).fold(0.0, f64::max),
            "confidence": confidence.get(),
            "verdict": verdict.as_str(),
            "trials": args.common.trials,
            "seed": args.common.seed,
            "note": NOTE,
            "audits": audits.iter().map(|audit| mechanism_json(audit, args.common.trials, each)).collect::<Vec<_>>(),
        })
    };
    finish(&output, verdict)
}

/// The protocol of an oracle given by name, with default domains for the kinds that
/// need more than a size.
fn named_protocol(oracle: OracleName, args: &LdpArgs) -> anyhow::Result<Protocol> {
    let domain = if oracle.is_numeric() {
        Domain::Numeric(Bounds::new(0.0, 1.0).usage()?)
    } else if oracle == OracleName::Hcms {
        Domain::Open {
            hashes: DEFAULT_SKETCH_HASHES,
            width: DEFAULT_SKETCH_WIDTH,
            seed: 0,
            candidates: Vec::new(),
        }
    } else {
        Domain::Size(args.domain_size)
    };
    Protocol::new(ProtocolConfig {
        oracle,
        epsilon: Epsilon::new(args.epsilon).usage().context("--epsilon")?,
        domain,
        longitudinal: Longitudinal::Independent,
    })
    .usage()
    .with_context(|| format!("building protocol {oracle}"))
}

fn ldp(args: &LdpArgs) -> anyhow::Result<ExitCode> {
    let confidence = confidence(args.common.confidence)?;
    let protocols: Vec<(String, Protocol)> = if args.protocol == "all" {
        OracleName::ALL
            .into_iter()
            .filter(|oracle| *oracle != OracleName::Auto)
            .map(|oracle| named_protocol(oracle, args).map(|built| (oracle.to_string(), built)))
            .collect::<anyhow::Result<_>>()?
    } else if let Ok(oracle) = args.protocol.parse::<OracleName>() {
        vec![(args.protocol.clone(), named_protocol(oracle, args)?)]
    } else {
        let path = Path::new(&args.protocol);
        if !path.exists() {
            return Err(exit::usage_error(format!(
                "--protocol: {:?} is neither a descriptor file nor one of grr, oue, olh, hadamard, hcms, auto, duchi, piecewise, hybrid, all",
                args.protocol
            )));
        }
        vec![(args.protocol.clone(), super::ldp::load_protocol(path)?)]
    };
    let mut rng = rng::for_audit(args.common.seed)?;
    let each = confidence.split(protocols.len());
    let mut results = Vec::new();
    let mut verdict = Verdict::Pass;
    for (name, protocol) in &protocols {
        let audit = audit_protocol(
            protocol,
            protocol.epsilon(),
            args.common.trials,
            each,
            &mut rng,
        )
        .map_err(audit_error)
        .with_context(|| format!("auditing {name}"))?;
        verdict = verdict.and(audit.verdict);
        let mut entry = pair_json("first two values", &audit);
        entry["protocol"] = json!(name);
        entry["oracle"] = json!(protocol.oracle().name().as_str());
        entry["actual_epsilon"] = json!(protocol.actual_epsilon());
        results.push(entry);
    }
    let output = if let [single] = results.as_slice() {
        let mut output = single.clone();
        output["confidence"] = json!(confidence.get());
        output["trials"] = json!(args.common.trials);
        output["seed"] = json!(args.common.seed);
        output["note"] = json!(NOTE);
        output
    } else {
        json!({
            "claimed_epsilon": args.epsilon,
            "empirical_epsilon_lower_bound": results.iter().filter_map(|entry| entry["empirical_epsilon_lower_bound"].as_f64()).fold(0.0, f64::max),
            "confidence": confidence.get(),
            "verdict": verdict.as_str(),
            "trials": args.common.trials,
            "seed": args.common.seed,
            "note": NOTE,
            "audits": results,
        })
    };
    finish(&output, verdict)
}

fn job_json(audit: &JobAudit, args: &JobArgs, confidence: Confidence) -> Value {
    let cells: Vec<Value> = audit
        .cells
        .iter()
        .map(|cell| {
            let mut entry = pair_json(cell.pair.as_str(), &cell.audit);
            entry["query"] = json!(cell.query);
            entry["group"] = json!(cell.group);
            entry["output"] = json!(cell.output);
            entry
        })
        .collect();
    json!({
        "job": args.job.display().to_string(),
        "claimed_epsilon": audit.job_claim.epsilon.get(),
        "claimed_delta": audit.job_claim.delta.get(),
        "empirical_epsilon_lower_bound": audit.epsilon_lower_bound,
        "confidence": confidence.get(),
        "verdict": audit.verdict.as_str(),
        "trials": args.trials,
        "keys": args.keys,
        "overflow": args.overflow,
        "seed": args.seed,
        "note": NOTE,
        "notice": JOB_NOTICE,
        "cells_tested": audit.cells.len(),
        "skipped_pairs": audit.skipped.iter().map(|(pair, reason)| json!({"pair": pair.as_str(), "reason": reason})).collect::<Vec<_>>(),
        "cells": cells,
    })
}

fn job(args: &JobArgs) -> anyhow::Result<ExitCode> {
    let confidence = confidence(args.confidence)?;
    let loaded = config::load(&args.job, args.as_of.get()).usage()?;
    let mut rng = rng::for_audit(args.seed)?;
    let options = JobAuditOptions {
        trials: args.trials,
        confidence,
        overflow: args.overflow,
        keys: args.keys,
    };
    // On a terminal, how far the releases are (the scans before them show a spinner);
    // nothing when stderr is a file or a pipe.
    let bar = if std::io::stderr().is_terminal() {
        indicatif::ProgressBar::new_spinner()
    } else {
        indicatif::ProgressBar::hidden()
    };
    bar.set_message("reading the source and building neighbouring datasets");
    bar.enable_steady_tick(std::time::Duration::from_millis(120));
    let mut progress = |done: usize, total: usize| {
        if done == 1 {
            bar.disable_steady_tick();
            bar.set_style(
                indicatif::ProgressStyle::with_template(
                    "{spinner} auditing: {pos}/{len} trials [{bar:30}] {eta}",
                )
                .expect("the template is valid")
                .progress_chars("=> "),
            );
            bar.set_length(u64::try_from(total).unwrap_or(u64::MAX));
        }
        bar.set_position(u64::try_from(done).unwrap_or(u64::MAX));
    };
    let audit = audit_job_with_progress(&loaded.job, options, &mut rng, &mut progress)
        .map_err(audit_error)
        .with_context(|| format!("auditing {}", args.job.display()));
    bar.finish_and_clear();
    let audit = audit?;
    finish(&job_json(&audit, args, confidence), audit.verdict)
}
