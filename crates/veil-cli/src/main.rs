//! `veil`: differentially private aggregation over Parquet exports.
//!
//! This binary wires Veil's crates together; it holds no privacy mathematics of its own.
//! `main` runs `commands::run`, prints any error with its chain of causes, and exits with a code
//! that scripts can act on (see `exit`).

use std::process::ExitCode;

use clap::Parser;

mod cli;
mod clock;
mod commands;
mod config;
mod engine;
mod exit;
mod rng;

fn main() -> ExitCode {
    let args = cli::Cli::parse();
    match commands::run(args) {
        Ok(code) => code,
        Err(error) => {
            let code = exit::code_for(&error);
            eprintln!("error: {error:#}");
            code
        }
    }
}
