//! One module per command; each turns parsed arguments into calls on Veil's crates.

use std::process::ExitCode;

use crate::cli::{Cli, Command};

pub(crate) mod explain;
pub(crate) mod ldp;
pub(crate) mod noise;
pub(crate) mod preview;
pub(crate) mod report;
pub(crate) mod sample_data;

/// Runs the parsed command line.
pub(crate) fn run(args: Cli) -> anyhow::Result<ExitCode> {
    match args.command {
        Command::Explain(args) => explain::run(&args),
        Command::Noise(command) => noise::run(command),
        Command::SampleData(args) => sample_data::run(&args),
        Command::Ldp(command) => ldp::run(command),
        Command::Report(args) => report::run(&args),
        Command::Preview(args) => preview::run(&args),
    }
}
