//! End-to-end tests of the engine: bounding, aggregation, release and the ledger protocol.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod bounding;
mod fixtures;
mod governance;
mod holes;
mod output;
mod run;
