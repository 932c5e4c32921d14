//! `veil report`, `veil preview` and `veil sample-data --like`, end to end on small
//! generated data.

use std::path::{Path, PathBuf};

use serde_json::Value;

use crate::veil;

/// A synthetic events table of `rows` rows and `users` users in `directory`.
fn sample(directory: &Path, rows: u32, users: u32) -> PathBuf {
    let path = directory.join("events.parquet");
    veil()
        .args([
            "sample-data",
            "--rows",
            &rows.to_string(),
            "--users",
            &users.to_string(),
        ])
        .arg("--out")
        .arg(&path)
        .assert()
        .success();
    path
}

/// A job on `source` like the quickstart's, with a segment column.
fn job(directory: &Path, source: &Path, segment: &str) -> PathBuf {
    let path = directory.join("job.toml");
    let text = format!(
        r#"[source]
path = "{}"
privacy_unit = "user_id"

[budget]
ledger = "{}"
dataset = "events"
purpose = "analytics"
epsilon = 1.0
delta = 1e-6

[[query]]
name = "by_country"
group_by = ["country"]
max_groups_per_unit = 3
max_rows_per_group = 5
segment = "{segment}"
aggregates = [
  {{ kind = "count" }},
  {{ kind = "unit_count" }},
  {{ kind = "sum", column = "value", bounds = [0.0, 100.0] }},
  {{ kind = "mean", column = "value", bounds = [0.0, 100.0] }},
  {{ kind = "quantiles", column = "value", bounds = [0.0, 100.0], q = [0.5] }},
]

[output]
path = "{}"
format = "csv"
"#,
        source.display(),
        directory.join("ledger.sqlite").display(),
        directory.join("out").display()
    );
    std::fs::write(&path, text).unwrap();
    path
}

fn read_json(path: &Path) -> Value {
    serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
}

#[test]
fn a_seeded_report_is_the_same_every_time() {
    // The groups come out of the scan in any order and the Monte Carlo runs on threads:
    // neither may change a seeded report (beyond the last digits of floating-point sums).
    let directory = tempfile::tempdir().unwrap();
    let source = sample(directory.path(), 20_000, 2_000);
    let job = job(directory.path(), &source, "feature");
    let reports: Vec<Value> = ["first", "second"]
        .iter()
        .map(|name| {
            let output = directory.path().join(name);
            veil()
                .arg("report")
                .arg(&job)
                .args(["--epsilons", "0.5,1,2", "--trials", "30", "--seed", "5"])
                .arg("--output")
                .arg(&output)
                .assert()
                .success();
            read_json(&output.join("report.json"))
        })
        .collect();
    assert!(
        alike(&reports[0], &reports[1]),
        "two reports seeded alike differ"
    );
}

/// Equal JSON, numbers to a relative 1e-9: the true sums are floating-point sums over
/// the scan's pairs, whose order varies from one scan to the next.
fn alike(a: &Value, b: &Value) -> bool {
    match (a, b) {
        (Value::Number(x), Value::Number(y)) => {
            let (x, y) = (x.as_f64().unwrap(), y.as_f64().unwrap());
            (x - y).abs() <= 1e-9 * x.abs().max(y.abs())
        }
        (Value::Array(x), Value::Array(y)) => {
            x.len() == y.len() && x.iter().zip(y).all(|(x, y)| alike(x, y))
        }
        (Value::Object(x), Value::Object(y)) => {
            x.len() == y.len()
                && x.iter()
                    .all(|(key, x)| y.get(key).is_some_and(|y| alike(x, y)))
        }
        _ => a == b,
    }
}

#[test]
fn report_writes_every_rendering_and_charges_nothing() {
    let directory = tempfile::tempdir().unwrap();
    let source = sample(directory.path(), 20_000, 2_000);
    let job = job(directory.path(), &source, "feature");
    let output = directory.path().join("report");
    let assert = veil()
        .arg("report")
        .arg(&job)
        .args([
            "--epsilons",
            "0.5,1,2",
            "--trials",
            "30",
            "--seed",
            "5",
            "--output",
        ])
        .arg(&output)
        .assert()
        .success();
    let stdout = String::from_utf8(assert.get_output().stdout.clone()).unwrap();
    assert!(stdout.starts_with("NOT PRIVATE"), "{stdout}");
    for name in ["report.html", "report.md", "report.json"] {
        assert!(output.join(name).is_file(), "{name} is missing");
    }
    let markdown = std::fs::read_to_string(output.join("report.md")).unwrap();
    assert!(markdown.lines().next().unwrap().contains("NOT PRIVATE"));
    let html = std::fs::read_to_string(output.join("report.html")).unwrap();
    assert!(!html.to_lowercase().contains("<script") && html.contains("<svg"));
    let charts: Vec<String> = std::fs::read_dir(output.join("charts"))
        .unwrap()
        .map(|entry| entry.unwrap().file_name().to_string_lossy().to_string())
        .collect();
    assert_eq!(charts.len(), 6, "{charts:?}");
    let report = read_json(&output.join("report.json"));
    assert_eq!(report["origin"], "real");
    let query = &report["queries"][0];
    let names: Vec<&str> = query["aggregates"]
        .as_array()
        .unwrap()
        .iter()
        .map(|aggregate| aggregate["name"].as_str().unwrap())
        .collect();
    assert_eq!(
        names,
        [
            "count",
            "unit_count",
            "sum_value",
            "mean_value",
            "q50_value"
        ]
    );
    assert_eq!(query["aggregates"][0]["sweep"].as_array().unwrap().len(), 3);
    assert!(query["tuning"]["per_epsilon"].as_array().unwrap().len() == 3);
    assert!(
        !query["aggregates"][0]["sweep"][0]["by_segment"]
            .as_array()
            .unwrap()
            .is_empty()
    );
    // The ledger file was never opened, so never created.
    assert!(!directory.path().join("ledger.sqlite").exists());
}

/// The issue's check: on the sample data, the analytic median relative error of count,
/// sum and mean is within 5% (relative) of the Monte Carlo measurement.
#[test]
fn analytic_prediction_agrees_with_monte_carlo_on_sample_data() {
    let directory = tempfile::tempdir().unwrap();
    let source = sample(directory.path(), 100_000, 10_000);
    let job = job(directory.path(), &source, "feature");
    let output = directory.path().join("report");
    veil()
        .arg("report")
        .arg(&job)
        .args([
            "--epsilons",
            "0.5,1,2",
            "--trials",
            "400",
            "--seed",
            "1",
            "--output",
        ])
        .arg(&output)
        .assert()
        .success();
    let report = read_json(&output.join("report.json"));
    for aggregate in report["queries"][0]["aggregates"].as_array().unwrap() {
        let name = aggregate["name"].as_str().unwrap();
        if !["count", "sum_value", "mean_value"].contains(&name) {
            continue;
        }
        for at in aggregate["sweep"].as_array().unwrap() {
            let analytic = at["analytic"]["median_relative"].as_f64().unwrap();
            let empirical = at["empirical"]["median_relative"].as_f64().unwrap();
            let gap = (analytic - empirical).abs() / empirical;
            assert!(
                gap < 0.05,
                "{name} at ε = {}: analytic {analytic}, Monte Carlo {empirical}",
                at["epsilon"]
            );
        }
    }
}

#[test]
fn analytic_only_reads_no_data() {
    let directory = tempfile::tempdir().unwrap();
    let job = job(
        directory.path(),
        &directory.path().join("absent.parquet"),
        "feature",
    );
    let output = directory.path().join("shared");
    let assert = veil()
        .arg("report")
        .arg(&job)
        .args(["--epsilons", "1,2", "--analytic-only", "--output"])
        .arg(&output)
        .assert()
        .success();
    let stdout = String::from_utf8(assert.get_output().stdout.clone()).unwrap();
    assert!(
        stdout.lines().next().unwrap().contains("may be shared"),
        "{stdout}"
    );
    let report = read_json(&output.join("report.json"));
    assert_eq!(report["origin"], "analytic_only");
    assert_eq!(report["trials"], 0);
}

#[test]
fn a_missing_segment_column_is_a_usage_error_naming_its_key() {
    let directory = tempfile::tempdir().unwrap();
    let source = sample(directory.path(), 2_000, 200);
    let job = job(directory.path(), &source, "continent");
    veil()
        .arg("report")
        .arg(&job)
        .args(["--epsilons", "1", "--trials", "5", "--output"])
        .arg(directory.path().join("report"))
        .assert()
        .code(2)
        .stderr(predicates::str::contains("query[0].segment"));
}

#[test]
fn the_real_source_is_refused_as_a_sample() {
    let directory = tempfile::tempdir().unwrap();
    let source = sample(directory.path(), 200, 20);
    let job = job(directory.path(), &source, "feature");
    veil()
        .arg("preview")
        .arg(&job)
        .arg("--sample")
        .arg(&source)
        .assert()
        .code(2)
        .stderr(predicates::str::contains("the job's own source"));
    veil()
        .arg("report")
        .arg(&job)
        .args(["--epsilons", "1", "--trials", "5", "--sample"])
        .arg(&source)
        .arg("--output")
        .arg(directory.path().join("report"))
        .assert()
        .code(2)
        .stderr(predicates::str::contains("the job's own source"));
    assert!(!directory.path().join("report").exists());
    // A directory or a glob that holds the source's file reads it too.
    let glob = source.parent().unwrap().join("*.parquet");
    for sample in [source.parent().unwrap().to_path_buf(), glob] {
        veil()
            .arg("preview")
            .arg(&job)
            .arg("--sample")
            .arg(&sample)
            .assert()
            .code(2)
            .stderr(predicates::str::contains("the job's own source"));
    }
}

#[test]
fn report_rejects_a_bad_epsilon_list() {
    let directory = tempfile::tempdir().unwrap();
    let job = job(
        directory.path(),
        &directory.path().join("absent.parquet"),
        "feature",
    );
    veil()
        .arg("report")
        .arg(&job)
        .args(["--epsilons", "1,-2", "--output"])
        .arg(directory.path().join("report"))
        .assert()
        .code(2)
        .stderr(predicates::str::contains("--epsilons"));
}

#[test]
fn preview_runs_on_synthetic_data_like_the_job_and_charges_nothing() {
    let directory = tempfile::tempdir().unwrap();
    // The job's real source does not exist here: the sample comes from its declared
    // columns and bounds only.
    let job = job(
        directory.path(),
        &directory.path().join("real.parquet"),
        "feature",
    );
    let synthetic = directory.path().join("synthetic.parquet");
    veil()
        .args(["sample-data", "--rows", "5000", "--users", "500", "--like"])
        .arg(&job)
        .arg("--out")
        .arg(&synthetic)
        .assert()
        .success();
    let output = directory.path().join("preview");
    let assert = veil()
        .arg("preview")
        .arg(&job)
        .arg("--sample")
        .arg(&synthetic)
        .arg("--output")
        .arg(&output)
        .args(["--seed", "3"])
        .assert()
        .success();
    let stdout = String::from_utf8(assert.get_output().stdout.clone()).unwrap();
    assert!(stdout.starts_with("PREVIEW, NOT A RELEASE"), "{stdout}");
    assert!(stdout.contains("count true (all rows)"), "{stdout}");
    assert!(output.join("by_country-preview.csv").is_file());
    let manifest = read_json(&output.join("release.json"));
    assert_eq!(manifest["private"], false);
    assert!(
        manifest["not_private_because"]
            .as_str()
            .unwrap()
            .starts_with("preview, not a release")
    );
    assert!(!directory.path().join("ledger.sqlite").exists());
}

#[test]
fn sample_data_like_a_data_file_needs_the_unit_column() {
    let directory = tempfile::tempdir().unwrap();
    let source = sample(directory.path(), 1_000, 100);
    veil()
        .args(["sample-data", "--like"])
        .arg(&source)
        .arg("--out")
        .arg(directory.path().join("like.parquet"))
        .assert()
        .code(2)
        .stderr(predicates::str::contains("--unit"));
    veil()
        .args([
            "sample-data",
            "--unit",
            "user_id",
            "--range",
            "value=0,50",
            "--like",
        ])
        .arg(&source)
        .arg("--out")
        .arg(directory.path().join("like.parquet"))
        .assert()
        .success();
    assert!(directory.path().join("like.parquet").is_file());
}

/// The report and the preview's comparison run in memory: on a source too large for the
/// budget they are refused before reading it, with the size they would need and the
/// setting to change.
#[test]
fn report_and_preview_refuse_a_source_larger_than_the_memory_budget() {
    let directory = tempfile::tempdir().unwrap();
    let source = sample(directory.path(), 250_000, 25_000);
    let job = job(directory.path(), &source, "feature");
    let other = directory.path().join("other");
    std::fs::create_dir(&other).unwrap();
    let other = sample(&other, 250_000, 25_000);
    let refused = veil()
        .arg("report")
        .arg(&job)
        .args(["--epsilons", "1", "--memory", "177MiB", "--output"])
        .arg(directory.path().join("report"))
        .assert()
        .code(2);
    let message = String::from_utf8_lossy(&refused.get_output().stderr).to_string();
    assert!(message.contains("needs about"), "{message}");
    assert!(message.contains("--memory"), "{message}");
    assert!(!directory.path().join("report").exists());
    let refused = veil()
        .arg("preview")
        .arg(&job)
        .arg("--sample")
        .arg(&other)
        .args(["--memory", "177MiB", "--output"])
        .arg(directory.path().join("preview"))
        .assert()
        .code(2);
    let message = String::from_utf8_lossy(&refused.get_output().stderr).to_string();
    assert!(message.contains("--no-compare"), "{message}");
}
