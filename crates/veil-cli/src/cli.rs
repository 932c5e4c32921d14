//! The command line's top level. Each command group defines its own arguments beside its
//! code (`commands/<group>.rs`); every help text says what it does, what it needs and an
//! example.

use std::process::ExitCode;

use clap::{Parser, Subcommand};

use crate::commands::{
    accountant, audit, budget, consent, explain, ldp, noise, preview, purge, purposes, report, run,
    sample_data,
};

/// Differentially private aggregates from Parquet exports.
///
/// Veil releases counts, sums, means and quantiles per group with exact noise, charges
/// every release to a persistent privacy budget, and shows what each privacy level costs
/// in accuracy before anyone commits to it.
#[derive(Debug, Parser)]
#[command(name = "veil", version, propagate_version = true, max_term_width = 100)]
pub(crate) struct Cli {
    #[command(subcommand)]
    pub(crate) command: Command,
}

#[derive(Debug, Subcommand)]
pub(crate) enum Command {
    // A command whose arguments are a struct of their own takes its help from that
    // struct's doc comment (its first paragraph is the line listed here): a doc comment on
    // the variant would replace the whole of it, examples and exit codes included.
    Run(run::RunArgs),
    Explain(explain::ExplainArgs),
    Report(report::ReportArgs),
    Preview(preview::PreviewArgs),
    SampleData(sample_data::SampleDataArgs),
    Purposes(purposes::PurposesArgs),
    Purge(purge::PurgeArgs),

    /// Private consent metrics: grants, revocations and consent in force per period.
    #[command(subcommand)]
    Consent(consent::ConsentCommand),

    /// Draw and calibrate noise: diagnostics for Veil's exact samplers.
    #[command(subcommand)]
    Noise(noise::NoiseCommand),

    /// Local differential privacy: protocol descriptors, client randomization, estimates.
    #[command(subcommand)]
    Ldp(ldp::LdpCommand),

    /// Compose privacy costs and calibrate noise for repeated releases.
    #[command(subcommand)]
    Accountant(accountant::AccountantCommand),

    /// Create and inspect privacy budgets in a ledger file; cancel reservations of dead runs.
    #[command(subcommand)]
    Budget(budget::BudgetCommand),

    /// Test privacy empirically: mechanisms, LDP protocols and whole jobs on neighbouring inputs.
    #[command(subcommand)]
    Audit(audit::AuditCommand),
}

impl Cli {
    /// Runs the parsed command line.
    pub(crate) fn run(self) -> anyhow::Result<ExitCode> {
        match self.command {
            Command::Run(args) => run::run(&args),
            Command::Explain(args) => explain::run(&args),
            Command::Noise(command) => noise::run(command),
            Command::SampleData(args) => sample_data::run(&args),
            Command::Purposes(args) => purposes::run(&args),
            Command::Purge(args) => purge::run(&args),
            Command::Consent(command) => consent::run(command),
            Command::Ldp(command) => ldp::run(command),
            Command::Accountant(command) => accountant::run(command),
            Command::Budget(command) => budget::run(command),
            Command::Audit(command) => audit::run(command),
            Command::Report(args) => report::run(&args),
            Command::Preview(args) => preview::run(&args),
        }
    }
}
