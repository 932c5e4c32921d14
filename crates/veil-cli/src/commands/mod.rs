//! One module per command; each turns parsed arguments into calls on Veil's crates.

use std::process::ExitCode;

use crate::cli::{Cli, Command};

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

/// Runs the parsed command line.
pub(crate) fn run(args: Cli) -> anyhow::Result<ExitCode> {
    match args.command {
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
