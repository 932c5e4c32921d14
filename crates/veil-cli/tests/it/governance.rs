//! `veil purposes`, `veil purge`, and the purpose and consent checks of job files.

use std::path::PathBuf;

use predicates::prelude::*;

use crate::{veil, workspace};

#[test]
fn purposes_are_summarized_in_plain_language() {
    veil()
        .current_dir(workspace())
        .args(["purposes", "--purposes", "configs/purposes.toml"])
        .assert()
        .success()
        .stdout(predicate::str::contains("recommendations"))
        .stdout(predicate::str::contains("kept for        90 days"))
        .stdout(predicate::str::contains("times more (or less) likely"))
        .stdout(predicate::str::contains("Settings > Privacy"));
    let directory = tempfile::tempdir().unwrap();
    let html = directory.path().join("purposes.html");
    veil()
        .current_dir(workspace())
        .args([
            "purposes",
            "--purposes",
            "configs/purposes.toml",
            "--lang",
            "fr",
            "--html",
        ])
        .arg(&html)
        .assert()
        .success();
    let page = std::fs::read_to_string(&html).unwrap();
    assert!(page.contains("Suggérer du contenu"));
    assert!(
        !page.contains("http://") && !page.contains("https://") && !page.contains("<script"),
        "self-contained"
    );
}

#[test]
fn purge_dry_run_changes_nothing_and_purge_is_idempotent() {
    let directory = tempfile::tempdir().unwrap();
    let source = directory.path().join("events.parquet");
    std::fs::copy(workspace().join("data/events.parquet"), &source).unwrap();
    let original = std::fs::read(&source).unwrap();
    let purge = |dry_run: bool| {
        let mut command = veil();
        command
            .current_dir(workspace())
            .args([
                "purge",
                "--purposes",
                "configs/purposes.toml",
                "--consent",
                "data/consent.parquet",
                "--as-of",
                "2026-11-01",
                "--source",
            ])
            .arg(&source);
        if dry_run {
            command.arg("--dry-run");
        }
        String::from_utf8(command.assert().success().get_output().stdout.clone()).unwrap()
    };
    let planned = purge(true);
    assert!(planned.contains("would remove"), "{planned}");
    assert_eq!(
        std::fs::read(&source).unwrap(),
        original,
        "a dry run changes nothing"
    );
    let done = purge(false);
    assert!(done.contains("rewritten"), "{done}");
    let again = purge(true);
    assert!(again.contains("would remove 0 of"), "{again}");
}

fn job_with(edit: impl Fn(String) -> String) -> (tempfile::TempDir, PathBuf) {
    let directory = tempfile::tempdir().unwrap();
    let text = std::fs::read_to_string(workspace().join("configs/quickstart.toml")).unwrap();
    let job = directory.path().join("job.toml");
    std::fs::write(&job, edit(text)).unwrap();
    (directory, job)
}

#[test]
fn undeclared_columns_and_unknown_purposes_are_refused() {
    let (_directory, job) = job_with(|text| {
        text.replace(
            "group_by = [\"country\"]",
            "group_by = [\"country\", \"device\"]",
        )
    });
    veil()
        .current_dir(workspace())
        .args(["explain"])
        .arg(&job)
        .assert()
        .code(2)
        .stderr(predicate::str::contains(
            "\"device\" is not among the columns purpose \"analytics\" may read",
        ));
    let (_directory, job) =
        job_with(|text| text.replace("purpose = \"analytics\"", "purpose = \"ads\""));
    veil()
        .current_dir(workspace())
        .args(["explain"])
        .arg(&job)
        .assert()
        .code(2)
        .stderr(predicate::str::contains(
            "budget.purpose: purpose \"ads\" is not in the registry",
        ));
    let (_directory, job) =
        job_with(|text| text.replace("time_column = \"event_time\"", "time_column = \"country\""));
    veil()
        .current_dir(workspace())
        .args(["explain"])
        .arg(&job)
        .assert()
        .code(2)
        .stderr(predicate::str::contains(
            "expected a timestamp or date column",
        ));
}

#[test]
fn explain_shows_purpose_retention_and_consent() {
    veil()
        .current_dir(workspace())
        .args(["explain", "configs/quickstart.toml"])
        .assert()
        .success()
        .stdout(predicate::str::contains("purpose       \"analytics\""))
        .stdout(predicate::str::contains("retention     only rows with event_time from 2026-05-05T00:00:00Z to 2026-11-01T00:00:00Z"))
        .stdout(predicate::str::contains("consent       only units whose latest consent event for \"analytics\""));
}
