//! `veil consent stats`: private counts of grants, revocations and consent in force.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use clap::{Args, Subcommand};
use comfy_table::{Table, presets::UTF8_FULL_CONDENSED};
use veil_accountant::BudgetKey;
use veil_core::{Delta, Epsilon, Released};
use veil_engine::consent_stats::{ConsentStatsSpec, release_consent_stats};
use veil_engine::job::{Consent, JobBudget, SourceFormat};
use veil_ledger::SqliteLedger;

use crate::config::purposes::parse_duration;
use crate::exit::{self, Classify, usage_error};

#[derive(Debug, Subcommand)]
pub(crate) enum ConsentCommand {
    /// Release differentially private consent metrics per period.
    ///
    /// For each of --periods windows of length --period ending at --as-of: how many people
    /// granted consent for the purpose, how many revoked it, and how many had it in force
    /// at the end. The counts are released with exact noise (one person changes each count
    /// by at most one) and charged to a budget in the ledger, so a team can watch
    /// withdrawal rates without seeing anyone's choice.
    ///
    /// Example:
    ///   veil budget init --ledger veil-ledger.sqlite --dataset consent \
    ///       --purpose consent-metrics --epsilon 2 --delta 1e-6
    ///   veil consent stats --consent data/consent.parquet --purpose analytics --period 30d --periods 6 \
    ///       --as-of 2026-11-01 --ledger veil-ledger.sqlite --epsilon 0.5 --delta 1e-7
    #[command(verbatim_doc_comment)]
    Stats(StatsArgs),
}

#[derive(Debug, Args)]
pub(crate) struct StatsArgs {
    /// The consent log (columns unit, purpose, action, at; see --unit-column).
    #[arg(long)]
    consent: PathBuf,

    /// The purpose whose consent is counted.
    #[arg(long)]
    purpose: String,

    /// The length of a period: 7d, 30d, 12h.
    #[arg(long, default_value = "7d")]
    period: String,

    /// How many periods, ending at --as-of.
    #[arg(long, default_value_t = 12)]
    periods: u32,

    /// The end of the last period (RFC 3339 or a date); default now.
    #[arg(long, value_parser = crate::clock::parse_as_of)]
    as_of: Option<i64>,

    /// The ledger to charge.
    #[arg(long)]
    ledger: PathBuf,

    #[command(flatten)]
    ledger_timeout: crate::ledger::LockTimeout,

    /// The budget's dataset in the ledger.
    #[arg(long, default_value = "consent")]
    dataset: String,

    /// The budget's purpose in the ledger.
    #[arg(long, default_value = "consent-metrics")]
    budget_purpose: String,

    /// ε spent by this release.
    #[arg(long)]
    epsilon: f64,

    /// δ spent by this release (Gaussian noise); without it, Laplace noise and pure ε-DP.
    #[arg(long)]
    delta: Option<f64>,

    /// The consent log's unit column.
    #[arg(long, default_value = "user_id")]
    unit_column: String,

    /// Also write the released counts as CSV here.
    #[arg(long)]
    output: Option<PathBuf>,
}

pub(crate) fn run(command: ConsentCommand) -> anyhow::Result<ExitCode> {
    match command {
        ConsentCommand::Stats(args) => stats(&args),
    }
}

fn stats(args: &StatsArgs) -> anyhow::Result<ExitCode> {
    let period_ms = parse_duration(&args.period)
        .map_err(usage_error)
        .context("--period")?;
    let epsilon = Epsilon::new(args.epsilon).usage().context("--epsilon")?;
    let budget = match args.delta {
        Some(delta) if delta > 0.0 => {
            JobBudget::Approx(epsilon, Delta::new(delta).usage().context("--delta")?)
        }
        _ => JobBudget::Pure(epsilon),
    };
    let spec = ConsentStatsSpec {
        consent: Consent {
            path: args.consent.clone(),
            format: SourceFormat::from_path(&args.consent),
            unit_column: args.unit_column.clone(),
            purpose_column: "purpose".to_string(),
            action_column: "action".to_string(),
            time_column: "at".to_string(),
        },
        purpose: args.purpose.clone(),
        as_of_ms: args.as_of.unwrap_or_else(crate::clock::now_ms),
        period_ms,
        periods: args.periods,
    };
    let mut ledger = SqliteLedger::open_with(&args.ledger, &args.ledger_timeout.options())
        .map_err(|error| {
            let failure = exit::budget_failure(&error).or(Some(exit::Failure::Usage));
            exit::classified(error, failure)
        })?;
    let key = BudgetKey {
        dataset: args.dataset.clone(),
        purpose: args.budget_purpose.clone(),
    };
    let mut rng = crate::rng::os_seeded()?;
    let (periods, charge) =
        release_consent_stats(&spec, budget, &mut ledger, &key, &mut rng).map_err(exit::engine)?;
    let interval = |released: &Released<i64>| {
        let value = *released.value();
        #[allow(clippy::cast_precision_loss)]
        let value_f = value as f64;
        format!(
            "{} [{:.0}, {:.0}]",
            value.max(0),
            (value_f - released.ci_half_width()).max(0.0),
            (value_f + released.ci_half_width()).max(0.0)
        )
    };
    let mut table = Table::new();
    table.load_style(UTF8_FULL_CONDENSED).set_header([
        "period",
        "granted (95% CI)",
        "revoked (95% CI)",
        "in force at end (95% CI)",
    ]);
    let mut csv = String::from(
        "from,to,grants,grants_std,revocations,revocations_std,in_force,in_force_std\n",
    );
    for period in &periods {
        let label = format!(
            "{} – {}",
            veil_engine::as_of_text(period.from_ms),
            veil_engine::as_of_text(period.to_ms)
        );
        table.add_row([
            label,
            interval(&period.grants),
            interval(&period.revocations),
            interval(&period.in_force),
        ]);
        csv.push_str(&format!(
            "{},{},{},{},{},{},{},{}\n",
            veil_engine::as_of_text(period.from_ms),
            veil_engine::as_of_text(period.to_ms),
            period.grants.value().max(&0),
            period.grants.std_dev(),
            period.revocations.value().max(&0),
            period.revocations.std_dev(),
            period.in_force.value().max(&0),
            period.in_force.std_dev()
        ));
    }
    outln!(
        "Consent for purpose {:?}, released under charge {charge} in {}:",
        args.purpose,
        args.ledger.display()
    );
    outln!("{table}");
    if let Some(output) = &args.output {
        std::fs::write(output, csv).with_context(|| format!("writing {}", output.display()))?;
        errln!("wrote {}", output.display());
    }
    Ok(ExitCode::SUCCESS)
}
