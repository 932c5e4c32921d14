//! `veil run` and `veil explain` on the Spark engine. The tests that need a server run
//! only in a build with the `spark` feature and with `VEIL_SPARK_REMOTE=sc://host:port`
//! (`scripts/spark-test.sh` starts a local Spark Connect server and sets both); the others
//! need no Spark.

use predicates::prelude::*;

use crate::{veil, workspace};

#[test]
fn the_spark_engine_needs_a_valid_remote() {
    veil()
        .current_dir(workspace())
        .args(["run", "configs/quickstart.toml", "--engine", "spark"])
        .assert()
        .code(2)
        .stderr(predicate::str::contains(
            "the Spark engine needs the server's address",
        ));
    veil()
        .current_dir(workspace())
        .args([
            "run",
            "configs/quickstart.toml",
            "--remote",
            "localhost:15002",
        ])
        .assert()
        .code(2)
        .stderr(predicate::str::contains("must start with sc://"));
    veil()
        .current_dir(workspace())
        .args([
            "run",
            "configs/quickstart.toml",
            "--remote",
            "sc://localhost:15002",
        ])
        .assert()
        .code(2)
        .stderr(predicate::str::contains("--remote is for the Spark engine"));
}

#[test]
fn explain_prints_the_spark_sql_of_a_local_job() {
    veil()
        .current_dir(workspace())
        .args(["explain", "configs/quickstart.toml", "--sql"])
        .assert()
        .success()
        .stdout(
            predicate::str::contains("Engine: local")
                .and(predicate::str::contains(
                    "CREATE OR REPLACE TEMPORARY VIEW veil_source",
                ))
                .and(predicate::str::contains(
                    "xxhash64(:veil_row_key, `user_id`, `country`, `value`, (IF(",
                ))
                .and(predicate::str::contains("'analytics'")),
        );
}

#[cfg(not(feature = "spark"))]
#[test]
fn a_build_without_spark_refuses_a_spark_job_and_says_how() {
    for command in ["run", "explain"] {
        veil()
            .current_dir(workspace())
            .args([command, "configs/quickstart.toml", "--engine", "spark"])
            .args(["--remote", "sc://localhost:15002"])
            .assert()
            .code(2)
            .stderr(predicate::str::contains(
                "this veil was built without the Spark engine",
            ))
            .stderr(predicate::str::contains("--features spark"));
    }
}

/// The tests that connect to Spark (a live server, or one that is not there).
#[cfg(feature = "spark")]
mod live {
    use std::path::{Path, PathBuf};

    use predicates::prelude::*;
    use veil_engine::table::{self, Column, Format, Table, TimeUnit, Values};

    use crate::{JobFile, budget, nothing_released, veil, workspace};

    /// The live server, or `None` (with a note) when `VEIL_SPARK_REMOTE` is not set.
    fn remote() -> Option<String> {
        let remote = std::env::var("VEIL_SPARK_REMOTE").ok();
        if remote.is_none() {
            eprintln!("skipped: set VEIL_SPARK_REMOTE=sc://host:port to run the live Spark tests");
        }
        remote
    }

    /// An address where nothing listens.
    fn dead_remote() -> String {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|listener| listener.local_addr())
            .unwrap()
            .port();
        format!("sc://127.0.0.1:{port}")
    }

    /// A job file in `directory` over `source`, on the Spark engine at `remote`, with its own
    /// ledger (and a budget in it).
    fn spark_job(directory: &Path, source: &Path, remote: &str, column: &str) -> PathBuf {
        let ledger = budget(directory, "5", "1e-5");
        let engine = format!("[engine]\nkind = \"spark\"\nremote = {remote:?}");
        let queries = format!(
            r#"[[query]]
name = "by_country"
group_by = ["country"]
max_groups_per_unit = 2
max_rows_per_group = 3
aggregates = [{{ kind = "count" }}, {{ kind = "sum", column = {column:?}, bounds = [0.0, 100.0] }}]"#
        );
        JobFile {
            tables: &engine,
            queries: &queries,
            ..JobFile::new(source, &ledger, &directory.join("out"))
        }
        .write(directory)
    }

    fn sample(path: &Path, rows: &str) {
        veil()
            .args(["sample-data", "--rows", rows, "--users", "500", "--out"])
            .arg(path)
            .assert()
            .success();
    }

    #[test]
    fn an_unreachable_server_is_named_and_nothing_is_released() {
        let directory = tempfile::tempdir().unwrap();
        let source = workspace().join("data/events.parquet");
        let remote = dead_remote();
        let job = spark_job(directory.path(), &source, &remote, "value");
        veil()
            .arg("run")
            .arg(&job)
            .assert()
            .code(1)
            .stderr(predicate::str::contains(format!(
                "cannot reach the Spark Connect server at {remote}"
            )));
        nothing_released(directory.path());
    }

    #[test]
    fn quickstart_runs_on_spark() {
        let Some(remote) = remote() else { return };
        let directory = tempfile::tempdir().unwrap();
        let output = directory.path().join("out");
        veil()
            .current_dir(workspace())
            .args([
                "run",
                "configs/quickstart.toml",
                "--engine",
                "spark",
                "--remote",
            ])
            .arg(&remote)
            .arg("--ledger")
            .arg(directory.path().join("ledger.sqlite"))
            .arg("--output")
            .arg(&output)
            .assert()
            .success()
            .stdout(predicate::str::contains("Released 1 table under charge 1"))
            .stderr(
                predicate::str::contains("spark: connected to")
                    .and(predicate::str::contains(
                        "spark: reading, bounding and aggregating on Spark",
                    ))
                    .and(predicate::str::contains("stages done")),
            );
        assert!(output.join("by_country.csv").exists());
        let manifest = std::fs::read_to_string(output.join("release.json")).unwrap();
        assert!(
            !manifest.contains("\"rows_read\""),
            "no exact count is published"
        );
    }

    #[test]
    fn explain_on_spark_reads_the_schema_there() {
        let Some(remote) = remote() else { return };
        veil()
            .current_dir(workspace())
            .args([
                "explain",
                "configs/quickstart.toml",
                "--engine",
                "spark",
                "--remote",
            ])
            .arg(&remote)
            .assert()
            .success()
            .stdout(
                predicate::str::contains("Engine: spark at")
                    .and(predicate::str::contains("WITH\n-- Retention")),
            );
    }

    #[test]
    fn a_failure_while_spark_runs_releases_nothing() {
        let Some(remote) = remote() else { return };
        let directory = tempfile::tempdir().unwrap();
        let source = directory.path().join("events.parquet");
        sample(&source, "50000");
        // Corrupt the data pages but keep the footer: the schema reads, a task fails.
        let mut bytes = std::fs::read(&source).unwrap();
        let half = bytes.len() / 2;
        for byte in &mut bytes[8..half] {
            *byte = 0x5A;
        }
        std::fs::write(&source, bytes).unwrap();
        let job = spark_job(directory.path(), &source, &remote, "value");
        veil()
            .arg("run")
            .arg(&job)
            .assert()
            .code(1)
            .stderr(predicate::str::contains(
                "aggregating on Spark failed: Spark reported",
            ));
        nothing_released(directory.path());
    }

    #[test]
    fn a_type_spark_cannot_read_is_named() {
        let Some(remote) = remote() else { return };
        let directory = tempfile::tempdir().unwrap();
        let source = directory.path().join("events.parquet");
        let table = Table::new(vec![
            Column::new("user_id", Values::I64(vec![Some(1), Some(2)])),
            Column::new(
                "country",
                Values::Text([Some("FR"), Some("DE")].into_iter().collect()),
            ),
            Column::new(
                "value",
                Values::Timestamp {
                    unit: TimeUnit::Nanoseconds,
                    time_zone: None,
                    values: vec![Some(1), Some(2)],
                },
            ),
        ])
        .unwrap();
        table::write(&table, &source, Format::Parquet).unwrap();
        let job = spark_job(directory.path(), &source, &remote, "value");
        veil()
            .arg("run")
            .arg(&job)
            .assert()
            .code(2)
            // Spark names the file and the Parquet type it refuses, not the column.
            .stderr(predicate::str::contains(
                "events.parquet: cannot read it as Parquet",
            ))
            .stderr(predicate::str::contains("TIMESTAMP(NANOS,false)"));
        nothing_released(directory.path());
    }
}
