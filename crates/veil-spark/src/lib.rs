//! Veil's Spark engine: the non-private part of a job — projection, retention and consent
//! filters, contribution bounding, per-group sums — compiled from the engine's
//! [`ScanPlan`](veil_engine::plan::ScanPlan) into Spark SQL and run by Apache Spark
//! through Spark Connect. Only the small table of per-group bounded aggregates comes
//! back; noise, partition selection, the ledger and the release stay in Veil
//! ([`veil_engine::run_with`]), exactly as in a local run.
//!
//! - [`compile`] turns a scan plan into [`SparkSql`]: views over the Parquet files, then
//!   one query whose rows are every per-group aggregate, histogram leaf and count. Each
//!   expression is the one the local Polars scan computes: values clamped and summed as
//!   64-bit integers in grid steps (ANSI mode makes an overflow fail, never wrap), rows
//!   and groups kept by Spark's `xxhash64` keyed with the run's secret
//!   [`BoundingKey`](veil_engine::scan::BoundingKey) — the local engine computes the same
//!   hash bit for bit, so both keep the same rows.
//! - `SparkExecutor` (with the `connect` feature) implements [`veil_engine::Executor`]: it reads the source's schema
//!   through Spark, runs the query, reports Spark's progress (`SparkEvent`), and hands
//!   the rows to [`Aggregated::from_external`](veil_engine::scan::Aggregated::from_external).
//! - [`Remote`] is a checked `sc://host:port` address.
//!
//! No noise is ever added inside Spark, and nothing Spark computes is released without
//! going through Veil's mechanisms.
//!
//! Compiling needs no Spark; executing needs the `connect` feature, whose Spark Connect
//! client compiles Spark's protocol files with `protoc` at build time.
//!
//! ```no_run
//! use veil_engine::Executor;
//! # let job: veil_engine::job::Job = unimplemented!();
//! let plan = veil_engine::check(&job)?;
//! let schema = veil_engine::LocalExecutor::default().schema(&job.source)?;
//! println!("{}", veil_spark::compile(&plan.scan, &schema)?);
//! Ok::<(), Box<dyn std::error::Error>>(())
//! ```
#![deny(missing_docs)]
#![deny(clippy::print_stdout, clippy::print_stderr)]

#[cfg(feature = "connect")]
mod executor;
mod remote;
mod sql;

#[cfg(feature = "connect")]
pub use executor::{
    OnEvent, RESULT_STEP, SCAN_STEP, SESSION_CONF, SparkEvent, SparkExecutor, SparkProgress,
};
pub use remote::{DEFAULT_PORT, Remote, RemoteError};
pub use sql::{PAIR_KEY, ROW_KEY, SparkSql, compile};
