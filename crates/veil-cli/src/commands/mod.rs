//! One module per command; each turns parsed arguments into calls on Veil's crates.

use std::process::ExitCode;

use crate::cli::{Cli, Command};

pub(crate) mod accountant;
pub(crate) mod budget;
pub(crate) mod noise;

/// Runs the parsed command line.
pub(crate) fn run(args: Cli) -> anyhow::Result<ExitCode> {
    match args.command {
        Command::Noise(command) => noise::run(command),
        Command::Accountant(command) => accountant::run(command),
        Command::Budget(command) => budget::run(command),
    }
}
