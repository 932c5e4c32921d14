//! End-to-end tests of the `veil` binary: one test binary, one module per command.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod accountant;
mod architecture;
mod audit;
mod bad_input;
mod budget;
mod collect;
mod fuzz;
mod governance;
mod holes;
mod ldp;
mod noise;
mod report;
mod run;
mod spark;

use assert_cmd::Command;

/// The `veil` binary under test.
pub(crate) fn veil() -> Command {
    let mut command = Command::cargo_bin("veil").expect("the veil binary is built for tests");
    command.env_remove("VEIL_LOG");
    command
}
