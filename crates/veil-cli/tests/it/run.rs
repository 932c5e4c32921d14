//! `veil run` end to end, and every file in `configs/`.

use std::path::{Path, PathBuf};

use predicates::prelude::*;

use crate::{COUNT_BY_COUNTRY, JobFile, budget, veil, workspace};

fn files_in(directory: &Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(directory)
        .map(|entries| {
            entries
                .flatten()
                .map(|entry| entry.file_name().to_string_lossy().to_string())
                .collect()
        })
        .unwrap_or_default();
    names.sort();
    names
}

fn run_quickstart(ledger: &Path, output: &Path) -> assert_cmd::assert::Assert {
    veil()
        .current_dir(workspace())
        .args(["run", "configs/quickstart.toml", "--ledger"])
        .arg(ledger)
        .arg("--output")
        .arg(output)
        .assert()
}

#[test]
fn quickstart_releases_and_charges_until_the_budget_is_spent() {
    let directory = tempfile::tempdir().unwrap();
    let ledger = directory.path().join("ledger.sqlite");
    // A small budget at the job's δ: the quickstart's ε = 1 job fits once, not twice.
    veil()
        .args(["budget", "init", "--ledger"])
        .arg(&ledger)
        .args([
            "--dataset",
            "events",
            "--purpose",
            "analytics",
            "--epsilon",
            "1.2",
            "--delta",
            "1e-6",
        ])
        .assert()
        .success();
    let first = directory.path().join("first");
    run_quickstart(&ledger, &first)
        .success()
        .stdout(predicate::str::contains("by_country:"))
        .stderr(predicate::str::contains("without consent"));
    assert_eq!(files_in(&first), ["by_country.csv", "release.json"]);
    let table = std::fs::read_to_string(first.join("by_country.csv")).unwrap();
    let header = table.lines().next().unwrap();
    assert!(
        header.starts_with("country,count,count_std,count_ci_low,count_ci_high,unit_count"),
        "{header}"
    );
    assert!(
        table.lines().count() > 10,
        "the large countries are released"
    );
    // Counts' intervals end on whole counts (they printed 258.999999999) around the count.
    let columns: Vec<&str> = header.split(',').collect();
    let at = |name: &str| columns.iter().position(|column| *column == name).unwrap();
    for line in table.lines().skip(1) {
        let fields: Vec<f64> = line
            .split(',')
            .map(|field| field.parse().unwrap_or(f64::NAN))
            .collect();
        for count in ["count", "unit_count"] {
            let (value, low, high) = (
                fields[at(count)],
                fields[at(&format!("{count}_ci_low"))],
                fields[at(&format!("{count}_ci_high"))],
            );
            assert!(low.fract().abs() < f64::EPSILON, "{line}");
            assert!(high.fract().abs() < f64::EPSILON, "{line}");
            // The count that selected the group (here unit_count) has an interval given
            // that it passed, which need not hold its noisy value.
            if count == "count" {
                assert!(low <= value && value <= high, "{line}");
            }
        }
    }
    let manifest: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(first.join("release.json")).unwrap())
            .unwrap();
    assert_eq!(manifest["purpose"]["name"], "analytics");
    assert_eq!(manifest["as_of"], "2026-11-01T00:00:00Z");
    assert_eq!(
        manifest["columns_read"],
        serde_json::json!(["user_id", "country", "value", "event_time"])
    );

    let second = directory.path().join("second");
    run_quickstart(&ledger, &second)
        .code(3)
        .stderr(predicate::str::contains("privacy budget exceeded"))
        .stderr(predicate::str::contains("this run needs ε = 1"));
    assert!(
        files_in(&second).is_empty(),
        "a refused job releases nothing: {:?}",
        files_in(&second)
    );
    let status = veil()
        .args(["budget", "status", "--json", "--ledger"])
        .arg(&ledger)
        .assert()
        .success()
        .get_output()
        .stdout
        .clone();
    let status = String::from_utf8(status).unwrap();
    assert!(status.contains("analytics"), "{status}");
}

#[test]
fn quickstart_creates_its_budget_from_the_registry() {
    let directory = tempfile::tempdir().unwrap();
    let ledger = directory.path().join("ledger.sqlite");
    run_quickstart(&ledger, &directory.path().join("out"))
        .success()
        .stderr(predicate::str::contains(
            "created the budget for dataset \"events\", purpose \"analytics\" from the registry",
        ));
    veil()
        .args(["budget", "history", "--ledger"])
        .arg(&ledger)
        .assert()
        .success()
        .stdout(predicate::str::contains("quickstart"));
}

#[test]
fn missing_ledger_without_registry_budget_says_how_to_create_it() {
    let directory = tempfile::tempdir().unwrap();
    let job = directory.path().join("job.toml");
    let text = std::fs::read_to_string(workspace().join("configs/quickstart.toml")).unwrap();
    std::fs::write(
        &job,
        text.replace("purposes = \"configs/purposes.toml\"\n", ""),
    )
    .unwrap();
    veil()
        .current_dir(workspace())
        .arg("run")
        .arg(&job)
        .arg("--ledger")
        .arg(directory.path().join("none.sqlite"))
        .arg("--output")
        .arg(directory.path().join("out"))
        .assert()
        .code(2)
        .stderr(predicate::str::contains("veil budget init --ledger"));
}

/// Every file in `configs/` runs: jobs release (into a temporary ledger and directory),
/// purposes registries render, LDP protocols load.
#[test]
fn every_config_runs() {
    let directory = tempfile::tempdir().unwrap();
    let mut checked = 0;
    for entry in std::fs::read_dir(workspace().join("configs")).unwrap() {
        let path = entry.unwrap().path();
        let text = std::fs::read_to_string(&path).unwrap();
        let name = path.file_stem().unwrap().to_string_lossy().to_string();
        if text.contains("[source]") {
            veil()
                .current_dir(workspace())
                .arg("run")
                .arg(&path)
                .arg("--ledger")
                .arg(directory.path().join(format!("{name}.sqlite")))
                .arg("--output")
                .arg(directory.path().join(&name))
                .assert()
                .success();
        } else if text.contains("[purpose.") {
            veil()
                .args(["purposes", "--purposes"])
                .arg(&path)
                .assert()
                .success();
        } else {
            // A local-DP protocol descriptor: clients randomize the sample's countries.
            veil()
                .current_dir(workspace())
                .args(["ldp", "simulate", "--protocol"])
                .arg(&path)
                .args([
                    "--input",
                    "data/events.parquet",
                    "--column",
                    "country",
                    "--output",
                ])
                .arg(directory.path().join(format!("{name}-reports.parquet")))
                .assert()
                .success();
        }
        checked += 1;
    }
    assert!(
        checked >= 3,
        "configs/ holds the quickstart, the purposes registry and an LDP protocol"
    );
}

#[test]
fn a_ledger_without_the_budget_says_how_to_create_it() {
    let directory = tempfile::tempdir().unwrap();
    let ledger = directory.path().join("ledger.sqlite");
    veil()
        .args(["budget", "init", "--ledger"])
        .arg(&ledger)
        .args([
            "--dataset",
            "other",
            "--purpose",
            "analytics",
            "--epsilon",
            "1",
        ])
        .assert()
        .success();
    let job = directory.path().join("job.toml");
    let text = std::fs::read_to_string(workspace().join("configs/quickstart.toml")).unwrap();
    std::fs::write(
        &job,
        text.replace("purposes = \"configs/purposes.toml\"\n", ""),
    )
    .unwrap();
    let output = directory.path().join("out");
    veil()
        .current_dir(workspace())
        .arg("run")
        .arg(&job)
        .arg("--ledger")
        .arg(&ledger)
        .arg("--output")
        .arg(&output)
        .assert()
        .code(2)
        .stderr(predicate::str::contains(
            "no privacy budget for dataset \"events\", purpose \"analytics\"",
        ))
        .stderr(predicate::str::contains("veil budget init"));
    assert!(files_in(&output).is_empty());
}

/// A job over `source` writing a parquet table named `query` into `output`, with its own
/// ledger and budget in `directory`.
fn overwriting_job(directory: &Path, source: &Path, query: &str, output: &Path) -> PathBuf {
    let ledger = budget(directory, "5", "1e-5");
    let queries = COUNT_BY_COUNTRY.replace(r#""by_country""#, &format!("{query:?}"));
    JobFile {
        queries: &queries,
        output_keys: r#"format = "parquet""#,
        ..JobFile::new(source, &ledger, output)
    }
    .write(directory)
}

/// Regression: `[output] path` at the source's folder with a query named like the source
/// replaced `events.parquet` with the release, exit 0. Every output over an input, or
/// among the source's files, is refused before anything is read or charged.
#[test]
fn a_release_never_lands_on_or_among_its_inputs() {
    let directory = tempfile::tempdir().unwrap();
    let data = directory.path().join("data");
    std::fs::create_dir(&data).unwrap();
    let source = data.join("events.parquet");
    std::fs::copy(workspace().join("data/events.parquet"), &source).unwrap();
    let before = std::fs::read(&source).unwrap();
    let cases = [
        // The source file itself.
        (
            source.clone(),
            "events",
            data.clone(),
            "is a file of the source",
        ),
        // The folder of a directory source: the next run would read the release.
        (
            data.clone(),
            "by_country",
            data.clone(),
            "among the files of the source",
        ),
    ];
    for (source, query, output, message) in cases {
        let job = overwriting_job(directory.path(), &source, query, &output);
        veil()
            .arg("run")
            .arg(&job)
            .assert()
            .code(2)
            .stderr(predicate::str::contains(message));
        std::fs::remove_file(directory.path().join("ledger.sqlite")).unwrap();
    }
    assert_eq!(
        std::fs::read(&source).unwrap(),
        before,
        "the source is intact"
    );
    assert_eq!(files_in(&data), ["events.parquet"]);
}

/// A budget too small for the quickstart's source in one piece: the run reads it once,
/// bounds it in partitions spilled beside the output, counts exactly what the in-memory run
/// counts, and leaves no spill folder behind.
#[test]
fn a_small_memory_budget_runs_in_partitions_and_cleans_up() {
    let directory = tempfile::tempdir().unwrap();
    let ledger = budget(directory.path(), "100", "1e-3");
    let counts = |assert: &assert_cmd::assert::Assert| -> String {
        String::from_utf8_lossy(&assert.get_output().stderr)
            .lines()
            .find(|line| line.starts_with("not private, for you only"))
            .unwrap_or_default()
            .to_string()
    };
    let whole = run_quickstart(&ledger, &directory.path().join("whole")).success();
    let spill = directory.path().join("spill");
    std::fs::create_dir(&spill).unwrap();
    let parts = veil()
        .current_dir(workspace())
        .args(["run", "configs/quickstart.toml", "--ledger"])
        .arg(&ledger)
        .arg("--output")
        .arg(directory.path().join("parts"))
        .args(["--memory", "177MiB", "--spill-dir"])
        .arg(&spill)
        .assert()
        .success()
        .stdout(predicate::str::contains("by_country:"));
    assert!(!counts(&whole).is_empty());
    assert_eq!(counts(&whole), counts(&parts));
    assert_eq!(files_in(&spill), Vec::<String>::new());
    assert_eq!(
        files_in(&directory.path().join("parts")),
        ["by_country.csv", "release.json"]
    );
}

#[test]
fn a_memory_budget_below_the_engine_s_floor_is_a_usage_error() {
    veil()
        .current_dir(workspace())
        .args(["run", "configs/quickstart.toml", "--memory", "10MiB"])
        .assert()
        .code(2)
        .stderr(predicate::str::contains("below"));
}
