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

use std::path::{Path, PathBuf};

use veil_accountant::{BudgetKey, BudgetLedger};
use veil_ledger::SqliteLedger;

/// The workspace's root folder (for `data/` and `configs/`).
pub(crate) fn workspace() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../..")
        .canonicalize()
        .expect("the workspace root exists")
}

/// Creates the budget of dataset "events", purpose "analytics" at (`epsilon`, `delta`) in
/// the ledger `directory/ledger.sqlite`, and returns the ledger's path.
pub(crate) fn budget(directory: &Path, epsilon: &str, delta: &str) -> PathBuf {
    let ledger = directory.join("ledger.sqlite");
    veil()
        .args(["budget", "init", "--ledger"])
        .arg(&ledger)
        .args(["--dataset", "events", "--purpose", "analytics"])
        .args(["--epsilon", epsilon, "--delta", delta])
        .assert()
        .success();
    ledger
}

/// Nothing was charged to `directory`'s ledger ("events", "analytics") and nothing was
/// written into `directory/out`.
pub(crate) fn nothing_released(directory: &Path) {
    let ledger = SqliteLedger::open(&directory.join("ledger.sqlite")).unwrap();
    let status = ledger
        .status(&BudgetKey {
            dataset: "events".into(),
            purpose: "analytics".into(),
        })
        .unwrap();
    assert_eq!(status.remaining, status.total, "nothing is charged");
    let written = std::fs::read_dir(directory.join("out"))
        .map(|entries| entries.count())
        .unwrap_or(0);
    assert_eq!(written, 0, "nothing is written");
}

/// One query: a count of rows per country, one group per unit and one row in it.
pub(crate) const COUNT_BY_COUNTRY: &str = r#"[[query]]
name = "by_country"
group_by = ["country"]
max_groups_per_unit = 1
max_rows_per_group = 1
aggregates = [{ kind = "count" }]"#;

/// A job file: `source` by `user_id`, charged ε = 1, δ = 1e-6 to the budget of dataset
/// "events", purpose "analytics" in `ledger`, releasing into `output`.
pub(crate) struct JobFile<'a> {
    pub(crate) source: &'a Path,
    pub(crate) ledger: &'a Path,
    pub(crate) output: &'a Path,
    /// Keys before the first table (`as_of = …`).
    pub(crate) top: &'a str,
    /// More `[source]` keys.
    pub(crate) source_keys: &'a str,
    /// Tables between `[budget]` and the queries (`[engine]`, `[consent]`).
    pub(crate) tables: &'a str,
    /// The `[[query]]` tables.
    pub(crate) queries: &'a str,
    /// More `[output]` keys.
    pub(crate) output_keys: &'a str,
}

impl<'a> JobFile<'a> {
    /// The job with [`COUNT_BY_COUNTRY`] and nothing else.
    pub(crate) fn new(source: &'a Path, ledger: &'a Path, output: &'a Path) -> Self {
        Self {
            source,
            ledger,
            output,
            top: "",
            source_keys: "",
            tables: "",
            queries: COUNT_BY_COUNTRY,
            output_keys: "",
        }
    }

    /// Writes the job to `directory/job.toml` and returns that path.
    pub(crate) fn write(&self, directory: &Path) -> PathBuf {
        let Self {
            source,
            ledger,
            output,
            top,
            source_keys,
            tables,
            queries,
            output_keys,
        } = self;
        let job = directory.join("job.toml");
        std::fs::write(
            &job,
            format!(
                r#"{top}
[source]
path = {source:?}
privacy_unit = "user_id"
{source_keys}

[budget]
ledger = {ledger:?}
dataset = "events"
purpose = "analytics"
epsilon = 1.0
delta = 1e-6

{tables}

{queries}

[output]
path = {output:?}
{output_keys}
"#
            ),
        )
        .unwrap();
        job
    }
}
