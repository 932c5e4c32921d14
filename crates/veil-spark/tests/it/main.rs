//! Live tests of the Spark engine against a Spark Connect server: set
//! `VEIL_SPARK_REMOTE=sc://host:port` to run them (`scripts/spark-test.sh` starts a local
//! server from the pyspark distribution and does). Without it each test says it was
//! skipped, so `cargo test --workspace` needs no Spark.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod equality;
mod failures;
mod fixtures;
