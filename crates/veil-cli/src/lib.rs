//! The `veil` command: differentially private aggregation over Parquet exports.
//!
//! This crate wires Veil's crates together; it holds no privacy mathematics of its own.
//! The binary (`src/main.rs`) calls [`main`], which runs `Cli::run`, prints any error
//! with its chain of causes, and exits with a code that scripts can act on (see `exit`).
//! The library also serves programs that embed Veil: [`api`] loads the same job files,
//! runs, explains and reports them and reads the ledger as the commands do, returning
//! values (the Python package is built on it); and the configuration parsers can be
//! exercised on their own ([`parse`]): the fuzz targets in `fuzz/` call them with
//! arbitrary input.

use std::process::ExitCode;

use clap::Parser;

/// `print!` to stdout that stops quietly when the reader has gone (`veil run | head`):
/// what was charged and released stays so and the exit code says it, where `print!`
/// would panic (exit 101) after the charge. Any other write error panics as `print!`
/// does.
macro_rules! out {
    ($($arg:tt)*) => {{
        use std::io::Write as _;
        crate::stdout_written(write!(std::io::stdout(), $($arg)*));
    }};
}

/// `println!` that stops quietly when the reader has gone (see `out!`).
macro_rules! outln {
    ($($arg:tt)*) => {{
        use std::io::Write as _;
        crate::stdout_written(writeln!(std::io::stdout(), $($arg)*));
    }};
}

/// `eprintln!` that never panics: a message to an operator whose stderr is gone
/// (`veil run 2>&1 | head`) is dropped, as there is nowhere left to say anything, and the
/// run goes on to its commit and its exit code.
macro_rules! errln {
    ($($arg:tt)*) => {{
        use std::io::Write as _;
        let _ = writeln!(std::io::stderr(), $($arg)*);
    }};
}

/// The end of a write to stdout: a closed pipe is the reader's choice, not an error.
fn stdout_written(result: std::io::Result<()>) {
    match result {
        Err(error) if error.kind() != std::io::ErrorKind::BrokenPipe => {
            panic!("failed printing to stdout: {error}")
        }
        _ => {}
    }
}

pub mod api;
mod cli;
mod clock;
mod commands;
mod config;
mod engine;
mod exit;
mod guard;
mod ledger;
mod memory;
mod rng;

/// Parses the command line, runs the command, and reports any error.
#[must_use]
pub fn main() -> ExitCode {
    let args = cli::Cli::parse();
    match args.run() {
        Ok(code) => code,
        Err(error) => {
            let code = exit::code_for(&error);
            errln!("error: {}", exit::render(&error));
            code
        }
    }
}

/// The configuration parsers on text, as `veil` runs them on files: for fuzzing and
/// tools. They never panic; an `Err` holds the message `veil` would print.
pub mod parse {
    use std::path::Path;

    use crate::config::{self, AsOf};

    /// Parses and converts job-file text into the engine's job. Files the job names
    /// (a purposes registry, public partition keys) are read relative to the current
    /// directory.
    ///
    /// # Errors
    /// The configuration error, naming the key at fault.
    pub fn job(text: &str) -> Result<(), String> {
        config::parse(Path::new("job.toml"), text, AsOf::Given(0))
            .map(|_| ())
            .map_err(|error| error.to_string())
    }

    /// Parses and checks purposes-registry text.
    ///
    /// # Errors
    /// The configuration error, naming the key at fault.
    pub fn purposes(text: &str) -> Result<(), String> {
        config::purposes::parse(Path::new("purposes.toml"), text)
            .map(|_| ())
            .map_err(|error| error.to_string())
    }
}
