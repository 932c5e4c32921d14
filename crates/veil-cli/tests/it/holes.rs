//! Regressions from a privacy review and a data team's walk through Veil (each test failed
//! before its fix): empty releases that charged, silent type mismatches, CSV delimiters.

use std::path::{Path, PathBuf};

use crate::{JobFile, budget, nothing_released, veil, workspace};
use predicates::prelude::*;

/// A job over `source` with more `[source]` keys and `extra` tables (a `[consent]`), its
/// own ledger and budget.
fn job(directory: &Path, source: &Path, source_keys: &str, extra: &str) -> PathBuf {
    let ledger = directory.join("ledger.sqlite");
    if !ledger.exists() {
        budget(directory, "5", "1e-5");
    }
    JobFile {
        top: r#"as_of = "2026-11-01T00:00:00Z""#,
        source_keys,
        tables: extra,
        ..JobFile::new(source, &ledger, &directory.join("out"))
    }
    .write(directory)
}

/// Regression: a consent log with text ids over a source with integer ids matched no one,
/// released 0 groups, charged the budget and exited 0.
#[test]
fn a_consent_log_of_another_id_type_is_a_configuration_error() {
    let directory = tempfile::tempdir().unwrap();
    let consent = directory.path().join("consent.csv");
    std::fs::write(
        &consent,
        "user_id,purpose,action,at\nu1,analytics,grant,2026-01-01T00:00:00Z\n",
    )
    .unwrap();
    let source = workspace().join("data/events.parquet");
    let job = job(
        directory.path(),
        &source,
        "",
        &format!("[consent]\npath = {consent:?}"),
    );
    veil()
        .arg("run")
        .arg(&job)
        .assert()
        .code(2)
        .stderr(predicate::str::contains("consent.unit_column"))
        .stderr(predicate::str::contains(
            "holds string ids but the source's privacy unit holds integer ids",
        ));
    nothing_released(directory.path());
}

/// Regression: consent given only after the as-of time left no one, and the empty
/// release was charged with exit 0.
#[test]
fn a_run_that_leaves_no_one_is_refused_and_says_why() {
    let directory = tempfile::tempdir().unwrap();
    let consent = directory.path().join("consent.csv");
    let mut log = String::from("user_id,purpose,action,at\n");
    for user in 0..5000 {
        log.push_str(&format!("{user},analytics,grant,2026-12-01T00:00:00Z\n"));
    }
    std::fs::write(&consent, log).unwrap();
    let source = workspace().join("data/events.parquet");
    let job = job(
        directory.path(),
        &source,
        "",
        &format!("[consent]\npath = {consent:?}"),
    );
    veil()
        .arg("run")
        .arg(&job)
        .assert()
        .code(1)
        .stderr(predicate::str::contains(
            "0 of the source's privacy units remain",
        ))
        .stderr(predicate::str::contains(
            "consent for the purpose was in force at the as-of time",
        ))
        .stderr(predicate::str::contains("nothing was released or charged"));
    nothing_released(directory.path());
}

/// A job can ask for a smallest population; below it nothing is released or charged.
#[test]
fn min_units_refuses_a_small_population() {
    let directory = tempfile::tempdir().unwrap();
    let source = workspace().join("data/events.parquet");
    let job = job(directory.path(), &source, "min_units = 1000000000", "");
    veil()
        .arg("run")
        .arg(&job)
        .assert()
        .code(1)
        .stderr(predicate::str::contains(
            "the job requires at least 1000000000 (source.min_units)",
        ));
    nothing_released(directory.path());
    let job = self::job(directory.path(), &source, "min_units = 0", "");
    veil()
        .arg("run")
        .arg(&job)
        .assert()
        .code(2)
        .stderr(predicate::str::contains(
            "source.min_units: must be at least 1",
        ));
}

/// A CSV source separated by semicolons: without `delimiter` the unit column is "missing",
/// and the message says the delimiter may be wrong; with it the job runs.
#[test]
fn a_csv_source_with_another_delimiter_is_named_and_readable() {
    let directory = tempfile::tempdir().unwrap();
    let source = directory.path().join("events.csv");
    let mut text = String::from("user_id;country\n");
    for user in 0..3000 {
        text.push_str(&format!("{user};{}\n", ["FR", "DE", "ES"][user % 3]));
    }
    std::fs::write(&source, text).unwrap();
    let job = job(directory.path(), &source, "", "");
    veil()
        .arg("run")
        .arg(&job)
        .assert()
        .code(2)
        .stderr(predicate::str::contains("source.delimiter"))
        .stderr(predicate::str::contains(
            "set `delimiter = \";\"` in [source]",
        ));
    nothing_released(directory.path());
    let job = self::job(directory.path(), &source, "delimiter = \";\"", "");
    veil()
        .arg("run")
        .arg(&job)
        .assert()
        .success()
        .stdout(predicate::str::contains("by_country: 3 groups"));
}

/// Regression: `veil explain` showed the variance's noise as the mean's (about 57 times
/// too small), and its JSON gave `noise_std` as text like "≈ 5349 / n".
#[test]
fn explain_gives_each_output_its_own_noise_as_numbers() {
    let output = veil()
        .current_dir(workspace())
        .args(["explain", "configs/quickstart.toml", "--json"])
        .output()
        .unwrap();
    assert!(output.status.success());
    let plan: serde_json::Value = serde_json::from_slice(&output.stdout).unwrap();
    let aggregates = plan["queries"][0]["aggregates"].as_array().unwrap();
    let find = |name: &str| {
        aggregates
            .iter()
            .find(|aggregate| aggregate["output"] == name)
            .unwrap_or_else(|| panic!("{name} in {aggregates:?}"))
    };
    assert!(find("count")["noise_std"].is_f64(), "{:?}", find("count"));
    // The 95% error of the noise's own family: Laplace ln 20 / √2 ≈ 2.12 std, Gaussian 1.96.
    let ratio =
        find("count")["error_95"].as_f64().unwrap() / find("count")["noise_std"].as_f64().unwrap();
    let laplace = 20_f64.ln() / std::f64::consts::SQRT_2;
    assert!(
        (ratio - laplace).abs() < 1e-9 || (ratio - 1.959_963_984_540_054).abs() < 1e-9,
        "{ratio}"
    );
    assert!(find("sum_value")["noise_std"].is_f64());
    assert!(find("mean_value")["noise_std_times_n"].is_f64());
    assert!(find("q50_value")["rank_error_95"].is_f64());
    assert!(
        find("mean_value")["formula"]
            .as_str()
            .unwrap()
            .contains("centered_sum")
    );
    for aggregate in aggregates {
        for value in aggregate.as_object().unwrap().values() {
            assert!(
                !value.as_str().is_some_and(|text| text.contains('≈')),
                "{aggregate}"
            );
        }
    }
}

/// `"auto"` bounds are chosen from the data under a tenth of the budget, released in
/// release.json, and the whole job still fits its budget.
#[test]
fn auto_bounds_are_chosen_privately_and_released() {
    let directory = tempfile::tempdir().unwrap();
    let source = workspace().join("data/events.parquet");
    let ledger = budget(directory.path(), "1", "1e-6");
    let job = JobFile {
        queries: r#"[[query]]
name = "by_country"
group_by = ["country"]
max_groups_per_unit = "auto"
max_rows_per_group = "auto"
aggregates = [{ kind = "count" }, { kind = "mean", column = "value", bounds = "auto" }]"#,
        output_keys: r#"format = "json""#,
        ..JobFile::new(&source, &ledger, &directory.path().join("out"))
    }
    .write(directory.path());
    veil()
        .arg("explain")
        .arg(&job)
        .assert()
        .success()
        .stdout(predicate::str::contains(
            "auto: max_groups_per_unit, max_rows_per_group, the bounds of value",
        ));
    // They are chosen from all rows at once: a budget too small for that is refused
    // before anything is charged, naming both ways out.
    veil()
        .arg("run")
        .arg(&job)
        .args(["--memory", "177MiB"])
        .assert()
        .code(2)
        .stderr(predicate::str::contains("\"auto\" bounds"))
        .stderr(predicate::str::contains("give the bounds as numbers"));
    assert!(!directory.path().join("out").exists());
    veil()
        .arg("run")
        .arg(&job)
        .assert()
        .success()
        .stderr(predicate::str::contains("chosen from the data, privately"));
    let manifest: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(directory.path().join("out/release.json")).unwrap(),
    )
    .unwrap();
    let auto = manifest["auto_bounds"].as_array().unwrap();
    assert_eq!(auto.len(), 3, "{auto:?}");
    let value = |bound: &str| {
        auto.iter()
            .find(|choice| choice["bound"] == bound)
            .and_then(|choice| choice["value"].as_str())
            .unwrap()
            .to_string()
    };
    let groups: u32 = value("max_groups_per_unit").parse().unwrap();
    let rows: u32 = value("max_rows_per_group").parse().unwrap();
    assert!(
        (1..=20).contains(&groups) && (1..=1024).contains(&rows),
        "{groups} {rows}"
    );
    assert!(
        value("bounds of value").starts_with("[0, "),
        "{}",
        value("bounds of value")
    );
    // The whole job, auto bounds included, fits the budget of ε = 1 exactly once.
    veil()
        .arg("run")
        .arg(&job)
        .arg("--output")
        .arg(directory.path().join("again"))
        .assert()
        .code(3);
}

/// A pure-ε job draws its count and centred sum together: `veil explain` names the joint
/// draw, and the JSON plan says which measures share its loss.
#[test]
fn explain_names_a_joint_draw() {
    let directory = tempfile::tempdir().unwrap();
    let source = workspace().join("data/events.parquet");
    let keys = workspace().join("data/countries.csv");
    let job = directory.path().join("job.toml");
    std::fs::write(
        &job,
        format!(
            r#"
[source]
path = {source:?}
privacy_unit = "user_id"

[budget]
ledger = "ledger.sqlite"
dataset = "events"
purpose = "analytics"
epsilon = 1.0

[[query]]
name = "by_country"
group_by = ["country"]
max_groups_per_unit = 3
max_rows_per_group = 5
partitions = {{ public = {keys:?} }}
drop_missing = ["value"]
aggregates = [{{ kind = "count" }}, {{ kind = "mean", column = "value", bounds = [0.0, 100.0] }}]

[output]
path = "out"
format = "json"
"#
        ),
    )
    .unwrap();
    veil()
        .arg("explain")
        .arg(&job)
        .assert()
        .success()
        .stdout(predicate::str::contains(
            "joint draw    rows + centered_sum:value[0,100] drawn together",
        ));
    let output = veil()
        .arg("explain")
        .arg(&job)
        .arg("--json")
        .output()
        .unwrap();
    let plan: serde_json::Value = serde_json::from_slice(&output.stdout).unwrap();
    let measures = plan["queries"][0]["measures"].as_array().unwrap();
    assert_eq!(measures.len(), 2, "{measures:?}");
    for measure in measures {
        assert_eq!(
            measure["drawn_with"].as_array().map(Vec::len),
            Some(2),
            "{measure}"
        );
    }
}

/// Regression: `veil run … | head` panicked (exit 101) when the reader closed the pipe
/// before the summary was printed, after the budget was charged and the release written;
/// a script retrying on failure would have spent the budget twice. The run now ends as
/// it did: released, exit 0.
#[test]
fn a_closed_stdout_does_not_fail_a_run_that_released() {
    /// The quickstart run into `directory`, its stdout and stderr piped.
    fn spawn_run(directory: &Path) -> std::process::Child {
        std::process::Command::new(assert_cmd::cargo::cargo_bin("veil"))
            .current_dir(workspace())
            .args(["run", "configs/quickstart.toml", "--ledger"])
            .arg(directory.join("ledger.sqlite"))
            .arg("--output")
            .arg(directory.join("out"))
            .env_remove("VEIL_LOG")
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap()
    }
    let directory = tempfile::tempdir().unwrap();
    let mut child = spawn_run(directory.path());
    // The reader leaves before the run prints anything (it reads and charges first).
    drop(child.stdout.take());
    let output = child.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "{:?}: {stderr}", output.status);
    assert!(!stderr.contains("panicked"), "{stderr}");
    assert!(directory.path().join("out/release.json").exists());
    // `veil run … 2>&1 | head`: stderr gone too, the run still commits and exits 0.
    let both = tempfile::tempdir().unwrap();
    let mut child = spawn_run(both.path());
    drop(child.stdout.take());
    drop(child.stderr.take());
    let status = child.wait().unwrap();
    assert!(status.success(), "{status:?}");
    assert!(both.path().join("out/release.json").exists());
}

/// Regression: `veil sample-data --like job.toml --out <the job's source>` replaced the
/// job's real source with synthetic rows, and `--consent` could name its consent log. Both
/// are inputs of the job `--like` reads: refused, naming them, the file untouched.
#[test]
fn sample_data_never_writes_over_what_its_like_job_reads() {
    let directory = tempfile::tempdir().unwrap();
    let source = directory.path().join("events.parquet");
    std::fs::copy(workspace().join("data/events.parquet"), &source).unwrap();
    let before = std::fs::read(&source).unwrap();
    let job = job(directory.path(), &source, "", "");
    veil()
        .args(["sample-data", "--rows", "100", "--like"])
        .arg(&job)
        .arg("--out")
        .arg(&source)
        .assert()
        .code(2)
        .stderr(predicate::str::contains("a file of the source"))
        .stderr(predicate::str::contains("never writes over its inputs"));
    assert_eq!(std::fs::read(&source).unwrap(), before);
    veil()
        .args(["sample-data", "--rows", "100", "--like"])
        .arg(&job)
        .arg("--out")
        .arg(directory.path().join("sample.parquet"))
        .arg("--consent")
        .arg(&job)
        .assert()
        .code(2)
        .stderr(predicate::str::contains("the job file"));
    // A new file inside a source folder would be read as data by the next run.
    let folder = directory.path().join("exports");
    std::fs::create_dir(&folder).unwrap();
    std::fs::copy(&source, folder.join("part-0.parquet")).unwrap();
    let by_folder = tempfile::tempdir().unwrap();
    let job = self::job(by_folder.path(), &folder, "", "");
    veil()
        .args(["sample-data", "--rows", "100", "--like"])
        .arg(&job)
        .arg("--out")
        .arg(folder.join("part-1.parquet"))
        .assert()
        .code(2)
        .stderr(predicate::str::contains(
            "among the files of the job's source",
        ));
    assert!(!folder.join("part-1.parquet").exists());
}

/// Regression: `veil preview --output` and `veil report --output` pointed at a published
/// release's folder replaced its release.json with a preview's, or put a report of true
/// values beside its tables. Both are refused; a preview's own folder may be reused.
#[test]
fn previews_and_reports_stay_out_of_a_published_release() {
    let directory = tempfile::tempdir().unwrap();
    let released = directory.path().join("release");
    veil()
        .current_dir(workspace())
        .args(["run", "configs/quickstart.toml", "--ledger"])
        .arg(directory.path().join("ledger.sqlite"))
        .arg("--output")
        .arg(&released)
        .assert()
        .success();
    let manifest = std::fs::read(released.join("release.json")).unwrap();
    let sample = directory.path().join("sample.parquet");
    std::fs::copy(workspace().join("data/events.parquet"), &sample).unwrap();
    veil()
        .current_dir(workspace())
        .args([
            "preview",
            "configs/quickstart.toml",
            "--no-compare",
            "--sample",
        ])
        .arg(&sample)
        .arg("--output")
        .arg(&released)
        .assert()
        .code(2)
        .stderr(predicate::str::contains("holds a published release"));
    veil()
        .current_dir(workspace())
        .args([
            "report",
            "configs/quickstart.toml",
            "--analytic-only",
            "--epsilons",
            "1",
            "--output",
        ])
        .arg(&released)
        .assert()
        .code(2)
        .stderr(predicate::str::contains("holds a published release"));
    assert_eq!(
        std::fs::read(released.join("release.json")).unwrap(),
        manifest
    );
    assert!(!released.join("report.html").exists());
    // The other order: a release is not published beside a report's true values.
    let reported = directory.path().join("reported");
    veil()
        .current_dir(workspace())
        .args([
            "report",
            "configs/quickstart.toml",
            "--analytic-only",
            "--epsilons",
            "1",
            "--output",
        ])
        .arg(&reported)
        .assert()
        .success();
    // Its groups are sizes it imagined, not groups of the data it never read.
    let markdown = std::fs::read_to_string(reported.join("report.md")).unwrap();
    assert!(
        markdown.contains("illustrative group sizes (no data was read)")
            && !markdown.contains("groups in the data"),
        "{markdown}"
    );
    veil()
        .current_dir(workspace())
        .args(["run", "configs/quickstart.toml", "--ledger"])
        .arg(directory.path().join("ledger.sqlite"))
        .arg("--output")
        .arg(&reported)
        .assert()
        .code(2)
        .stderr(predicate::str::contains("holds a utility report"));
    assert!(!reported.join("release.json").exists());
}

/// Regression: `veil run --help` (and explain, report, preview, sample-data, purposes,
/// purge) showed one line: the variant's doc comment replaced the command's whole help,
/// its exit codes and examples with it. Example lines fit the 100 columns help wraps at,
/// so they copy and paste whole.
#[test]
fn every_command_help_teaches_with_examples() {
    for command in [
        vec!["run"],
        vec!["explain"],
        vec!["report"],
        vec!["preview"],
        vec!["sample-data"],
        vec!["purposes"],
        vec!["purge"],
        vec!["budget", "init"],
        vec!["accountant", "compose"],
    ] {
        let output = veil().args(&command).arg("--help").output().unwrap();
        assert!(output.status.success(), "{command:?}");
        let help = String::from_utf8(output.stdout).unwrap();
        assert!(help.contains("Example"), "{command:?}: {help}");
        for line in help
            .lines()
            .filter(|line| line.trim_start().starts_with("veil "))
        {
            assert!(line.len() <= 100, "{command:?}: {line:?}");
        }
    }
    let help = String::from_utf8(veil().args(["run", "--help"]).output().unwrap().stdout).unwrap();
    assert!(help.contains("Exit codes"), "{help}");
}

/// Regression: `veil explain` showed a job costing ε = 5 beside a budget with ε = 3 left
/// and no word of it; the run then exited 3. Explain now asks the ledger whether the
/// charge fits (writing nothing) and says what it leaves, or that `veil run` would refuse.
#[test]
fn explain_says_whether_the_job_fits_its_budget() {
    let directory = tempfile::tempdir().unwrap();
    let source = workspace().join("data/events.parquet");
    let ledger = budget(directory.path(), "0.5", "1e-5");
    let job = JobFile::new(&source, &ledger, &directory.path().join("out")).write(directory.path());
    veil()
        .arg("explain")
        .arg(&job)
        .assert()
        .success()
        .stdout(predicate::str::contains("THIS JOB DOES NOT FIT"))
        .stdout(predicate::str::contains("would refuse it (exit 3)"));
    let roomy = tempfile::tempdir().unwrap();
    let ledger = budget(roomy.path(), "5", "1e-5");
    let job = JobFile::new(&source, &ledger, &roomy.path().join("out")).write(roomy.path());
    veil()
        .arg("explain")
        .arg(&job)
        .assert()
        .success()
        .stdout(predicate::str::contains("this job leaves ε = "))
        .stdout(predicate::str::contains("DOES NOT FIT").not());
    nothing_released(roomy.path());
}

/// Regression: a typo in `[budget] dataset` ("event" for "events") made the run create a
/// fresh budget from the registry, over the same people, and release. Where the ledger
/// already holds the purpose's budget under another dataset name, the run is refused and
/// says which; `veil budget init` creates a new dataset's budget on purpose.
#[test]
fn a_misspelt_dataset_does_not_open_a_fresh_budget() {
    let directory = tempfile::tempdir().unwrap();
    let ledger = budget(directory.path(), "5", "1e-5");
    let text = std::fs::read_to_string(workspace().join("configs/quickstart.toml")).unwrap();
    let job = directory.path().join("typo.toml");
    std::fs::write(
        &job,
        text.replace("dataset = \"events\"", "dataset = \"event\""),
    )
    .unwrap();
    veil()
        .current_dir(workspace())
        .arg("run")
        .arg(&job)
        .arg("--ledger")
        .arg(&ledger)
        .arg("--output")
        .arg(directory.path().join("out"))
        .assert()
        .code(2)
        .stderr(predicate::str::contains(
            "holds no budget for dataset \"event\" under purpose \"analytics\", only for dataset \"events\"",
        ));
    nothing_released(directory.path());
    let budgets = veil()
        .args(["budget", "status", "--json", "--ledger"])
        .arg(&ledger)
        .output()
        .unwrap();
    assert!(!String::from_utf8_lossy(&budgets.stdout).contains("\"event\""));
    // A new dataset's budget created on purpose runs.
    veil()
        .args(["budget", "init", "--ledger"])
        .arg(&ledger)
        .args(["--dataset", "event", "--purpose", "analytics"])
        .args(["--epsilon", "5", "--delta", "1e-5"])
        .assert()
        .success();
    veil()
        .current_dir(workspace())
        .arg("run")
        .arg(&job)
        .arg("--ledger")
        .arg(&ledger)
        .arg("--output")
        .arg(directory.path().join("out"))
        .assert()
        .success();
}
