use serde_json::Value;
use veil_accountant::{BudgetKey, BudgetLedger, Charge, ChargeItem, Component, ReleaseRecord};
use veil_ledger::SqliteLedger;

use crate::{veil, workspace};

fn init(ledger: &std::path::Path, extra: &[&str]) -> assert_cmd::assert::Assert {
    veil()
        .args(["budget", "init", "--ledger"])
        .arg(ledger)
        .args(extra)
        .assert()
}

fn charge(spec: &str) -> Charge {
    let component: Component = spec.parse().expect("spec");
    Charge {
        job: "daily".to_string(),
        job_hash: "0f3a".to_string(),
        items: vec![ChargeItem {
            label: "by_country.count".to_string(),
            profile: component.profile,
            times: u32::try_from(component.times).expect("small"),
        }],
    }
}

#[test]
fn init_status_and_history() {
    let directory = tempfile::tempdir().expect("temp dir");
    let path = directory.path().join("ledger.sqlite");
    init(
        &path,
        &[
            "--dataset",
            "events",
            "--purpose",
            "analytics",
            "--epsilon",
            "4",
            "--delta",
            "1e-6",
            "--period",
            "30d",
        ],
    )
    .success()
    .stdout(predicates::str::contains("renewing every 30d"));
    init(
        &path,
        &[
            "--dataset",
            "events",
            "--purpose",
            "research",
            "--rho",
            "0.5",
        ],
    )
    .success();
    init(
        &path,
        &[
            "--dataset",
            "events",
            "--purpose",
            "research",
            "--rho",
            "0.5",
        ],
    )
    .code(2)
    .stderr(predicates::str::contains("already exists"));

    // A job charges the ledger through the library, as the engine will.
    let key = BudgetKey {
        dataset: "events".to_string(),
        purpose: "analytics".to_string(),
    };
    let mut ledger = SqliteLedger::open(&path).expect("opens");
    let reservation = ledger
        .reserve(
            &key,
            &charge("discrete-gaussian:sigma=40,sensitivity=1,times=50"),
        )
        .expect("reserved");
    ledger.commit(&reservation).expect("committed");
    ledger
        .record_release(
            &reservation,
            &ReleaseRecord {
                name: "by_country".to_string(),
                location: "out/by_country.csv".to_string(),
            },
        )
        .expect("recorded");
    drop(ledger);

    let output = veil()
        .args([
            "budget",
            "status",
            "--json",
            "--dataset",
            "events",
            "--ledger",
        ])
        .arg(&path)
        .assert()
        .success()
        .get_output()
        .stdout
        .clone();
    let list: Value = serde_json::from_slice(&output).expect("JSON");
    let list = list.as_array().expect("a list");
    assert_eq!(list.len(), 2);
    let analytics = &list[0];
    assert_eq!(analytics["purpose"], "analytics");
    assert_eq!(analytics["period"], "30d");
    let spent = analytics["spent"]["epsilon"].as_f64().expect("spent");
    let remaining = analytics["remaining"]["epsilon"]
        .as_f64()
        .expect("remaining");
    assert!(spent > 0.5 && spent < 1.5, "{spent}");
    assert!((spent + remaining - 4.0).abs() < 1e-9);
    assert_eq!(list[1]["total"]["rho"].as_f64(), Some(0.5));

    veil()
        .args(["budget", "status", "--ledger"])
        .arg(&path)
        .assert()
        .success()
        .stdout(predicates::str::contains("analytics"))
        .stdout(predicates::str::contains("30d (renews"));
    veil()
        .args(["budget", "history", "--ledger"])
        .arg(&path)
        .assert()
        .success()
        .stdout(predicates::str::contains("committed"))
        .stdout(predicates::str::contains(
            "discrete-gaussian:sigma=40,sensitivity=1×50",
        ))
        .stdout(predicates::str::contains("out/by_country.csv"));
    let output = veil()
        .args(["budget", "history", "--json", "--ledger"])
        .arg(&path)
        .assert()
        .success()
        .get_output()
        .stdout
        .clone();
    let history: Value = serde_json::from_slice(&output).expect("JSON");
    assert_eq!(history[0]["state"], "committed");
    assert_eq!(history[0]["mechanisms"][0]["times"], 50);
}

#[test]
fn mistakes_are_named() {
    let directory = tempfile::tempdir().expect("temp dir");
    let path = directory.path().join("ledger.sqlite");
    veil()
        .args(["budget", "status", "--ledger"])
        .arg(&path)
        .assert()
        .code(2)
        .stderr(predicates::str::contains("no ledger at"));
    init(
        &path,
        &[
            "--dataset",
            "d",
            "--purpose",
            "p",
            "--epsilon",
            "1",
            "--period",
            "monthly",
        ],
    )
    .code(2)
    .stderr(predicates::str::contains("--period"));
    init(
        &path,
        &[
            "--dataset",
            "d",
            "--purpose",
            "p",
            "--epsilon",
            "1",
            "--delta",
            "1.5",
        ],
    )
    .code(2)
    .stderr(predicates::str::contains("delta"));
    let foreign = directory.path().join("notes.txt");
    std::fs::write(
        &foreign,
        "not a database at all, just some text that is long enough",
    )
    .expect("written");
    veil()
        .args(["budget", "status", "--ledger"])
        .arg(&foreign)
        .assert()
        .code(1)
        .stderr(predicates::str::contains("not a Veil ledger"))
        .stderr(predicates::str::contains("notes.txt"));
}

fn key() -> BudgetKey {
    BudgetKey {
        dataset: "events".to_string(),
        purpose: "analytics".to_string(),
    }
}

fn init_events(path: &std::path::Path, epsilon: &str) {
    init(
        path,
        &[
            "--dataset",
            "events",
            "--purpose",
            "analytics",
            "--epsilon",
            epsilon,
            "--delta",
            "1e-5",
        ],
    )
    .success();
}

/// A process on this host that has ended.
fn finished_process() -> veil_ledger::Owner {
    let mut child = std::process::Command::new("true")
        .spawn()
        .expect("`true` runs");
    let pid = child.id();
    child.wait().expect("it ends");
    veil_ledger::Owner {
        pid,
        ..veil_ledger::Owner::current()
    }
}

fn stdout_of(args: &[&str], ledger: &std::path::Path) -> String {
    let output = veil()
        .args(args)
        .arg("--ledger")
        .arg(ledger)
        .assert()
        .success()
        .get_output()
        .stdout
        .clone();
    String::from_utf8(output).expect("UTF-8")
}

#[test]
fn stale_reservations_are_shown_and_cancelled_only_when_their_run_is_gone() {
    if !std::path::Path::new("/proc/self/stat").exists() {
        return; // Liveness is read from /proc.
    }
    let directory = tempfile::tempdir().expect("temp dir");
    let path = directory.path().join("ledger.sqlite");
    init_events(&path, "4");
    // A run killed between its reservation and its commit.
    let dead = finished_process();
    let mut killed = SqliteLedger::open(&path)
        .expect("opens")
        .with_owner(dead.clone());
    let stale = killed
        .reserve(&key(), &charge("laplace:epsilon=1"))
        .expect("reserved");
    // A run still going (this test), one on another host, and a committed one.
    let mut ledger = SqliteLedger::open(&path).expect("opens");
    let running = ledger
        .reserve(&key(), &charge("laplace:epsilon=0.5"))
        .expect("reserved");
    let mut remote = SqliteLedger::open(&path)
        .expect("opens")
        .with_owner(veil_ledger::Owner {
            host: "batch-7.example".to_string(),
            ..veil_ledger::Owner::current()
        });
    let elsewhere = remote
        .reserve(&key(), &charge("laplace:epsilon=0.5"))
        .expect("reserved");
    let committed = ledger
        .reserve(&key(), &charge("laplace:epsilon=0.25"))
        .expect("reserved");
    ledger.commit(&committed).expect("committed");

    let status = stdout_of(&["budget", "status"], &path);
    assert!(status.contains("Reserved, not committed"), "{status}");
    assert!(
        status.contains(&format!("charge {} (job \"daily\"", stale.id)),
        "{status}"
    );
    assert!(
        status.contains(&format!("by process {} on host", dead.pid)),
        "{status}"
    );
    assert!(status.contains(" ago by "), "{status}");
    let list = stdout_of(&["budget", "reservations"], &path);
    assert_eq!(
        list.lines().filter(|line| line.contains("daily")).count(),
        3
    );
    assert!(list.contains("gone: no process"), "{list}");
    assert!(list.contains("running"), "{list}");
    assert!(
        list.contains("unknown: it was reserved on host batch-7.example"),
        "{list}"
    );
    let history = stdout_of(&["budget", "history"], &path);
    assert!(history.contains("run gone"), "{history}");
    let json: Value =
        serde_json::from_str(&stdout_of(&["budget", "reservations", "--json"], &path))
            .expect("JSON");
    assert_eq!(json[0]["id"], stale.id);
    assert_eq!(json[0]["run"], "gone");
    assert_eq!(json[0]["owner"]["pid"], dead.pid);
    assert!(json[0]["age_seconds"].as_i64().is_some());

    let cancel = |id: i64, extra: &[&str]| {
        veil()
            .args(["budget", "cancel", "--ledger"])
            .arg(&path)
            .args(["--charge", &id.to_string()])
            .args(extra)
            .assert()
    };
    cancel(committed.id, &["--force"])
        .code(2)
        .stderr(predicates::str::contains("it is committed"));
    cancel(running.id, &["--force"])
        .code(2)
        .stderr(predicates::str::contains("still running"));
    cancel(elsewhere.id, &[])
        .code(2)
        .stderr(predicates::str::contains("batch-7.example"))
        .stderr(predicates::str::contains("--force"));
    cancel(99, &[])
        .code(2)
        .stderr(predicates::str::contains("no charge 99"));
    cancel(stale.id, &["--note", "killed by the OOM killer"])
        .success()
        .stdout(predicates::str::contains("given back"))
        .stdout(predicates::str::contains(format!(
            "no process {}",
            dead.pid
        )));
    cancel(stale.id, &[])
        .code(2)
        .stderr(predicates::str::contains("already given back"));
    cancel(elsewhere.id, &["--force", "--note", "host retired"]).success();

    // The run, had it lived on, could never commit and publish now.
    assert!(killed.commit(&stale).is_err());
    let history = stdout_of(&["budget", "history"], &path);
    assert!(history.contains("cancelled"), "{history}");
    assert!(history.contains("killed by the OOM killer"), "{history}");
    assert!(history.contains("the operator vouched"), "{history}");
    let status: Value =
        serde_json::from_str(&stdout_of(&["budget", "status", "--json"], &path)).expect("JSON");
    // What still counts: the running reservation and the committed charge.
    let spent = status[0]["spent"]["epsilon"].as_f64().expect("spent");
    assert!((spent - 0.75).abs() < 1e-6, "{spent}");
    assert_eq!(status[0]["reserved"].as_array().map(Vec::len), Some(1));
}

#[test]
fn extreme_budgets_and_diagnostics_print_readably() {
    let directory = tempfile::tempdir().expect("temp dir");
    let path = directory.path().join("ledger.sqlite");
    init(
        &path,
        &[
            "--dataset",
            "events",
            "--purpose",
            "analytics",
            "--epsilon",
            "1e308",
            "--delta",
            "2.2e-308",
        ],
    )
    .success()
    .stdout(predicates::str::contains("ε = 1e308, δ = 2.2e-308"));
    let mut ledger = SqliteLedger::open(&path).expect("opens");
    for spec in ["laplace:epsilon=1e300", "pure:epsilon=2.2e-308"] {
        let reservation = ledger.reserve(&key(), &charge(spec)).expect("reserved");
        ledger.commit(&reservation).expect("committed");
        ledger
            .record_diagnostics(
                &reservation,
                &[
                    veil_accountant::NotPrivateCount {
                        name: "rows_read".into(),
                        count: 1200,
                    },
                    veil_accountant::NotPrivateCount {
                        name: "missing_values.value".into(),
                        count: 3,
                    },
                ],
            )
            .expect("recorded");
    }
    drop(ledger);
    for command in [["budget", "status"], ["budget", "history"]] {
        let text = stdout_of(&command, &path);
        for line in text.lines() {
            assert!(line.chars().count() < 200, "{line}");
        }
        assert!(text.contains("1e30"), "{text}");
    }
    let history = stdout_of(&["budget", "history"], &path);
    assert!(history.contains("pure:epsilon=2.2e-308"), "{history}");
    assert!(
        history.contains("Diagnostics (not private, for the operator"),
        "{history}"
    );
    assert!(
        history.contains("charge 1: missing_values.value 3, rows_read 1200"),
        "{history}"
    );
    let json: Value =
        serde_json::from_str(&stdout_of(&["budget", "history", "--json"], &path)).expect("JSON");
    assert_eq!(json[1]["diagnostics_not_private"]["rows_read"], 1200);
}

#[test]
fn errors_name_each_cause_once_with_short_numbers() {
    let directory = tempfile::tempdir().expect("temp dir");
    let path = directory.path().join("ledger.sqlite");
    let stderr = |assert: assert_cmd::assert::Assert| {
        String::from_utf8(assert.get_output().stderr.clone()).expect("UTF-8")
    };
    let text = stderr(
        init(
            &path,
            &[
                "--dataset",
                "d",
                "--purpose",
                "p",
                "--epsilon",
                "1",
                "--delta",
                "1e300",
            ],
        )
        .code(2),
    );
    assert_eq!(text.matches("is out of range").count(), 1, "{text}");
    assert!(text.contains("delta = 1e300"), "{text}");
    let missing = directory
        .path()
        .join("no-such-folder")
        .join("ledger.sqlite");
    let text = stderr(
        init(
            &missing,
            &["--dataset", "d", "--purpose", "p", "--epsilon", "1"],
        )
        .code(1),
    );
    assert_eq!(
        text.matches("unable to open database file").count(),
        1,
        "{text}"
    );
    assert!(text.contains("no-such-folder"), "{text}");
    // An output folder under a regular file: the OS error once, after the path.
    std::fs::write(directory.path().join("a-file"), "").expect("written");
    let text = stderr(
        veil()
            .current_dir(workspace())
            .args(["run", "configs/quickstart.toml", "--ledger"])
            .arg(&path)
            .arg("--output")
            .arg(directory.path().join("a-file").join("out"))
            .assert()
            .code(1),
    );
    assert_eq!(text.matches("os error").count(), 1, "{text}");
}

/// Holds the ledger with an exclusive transaction, as a stuck SQLite client would.
fn hold(path: &std::path::Path) -> rusqlite::Connection {
    let holder = rusqlite::Connection::open(path).expect("opens");
    holder.execute_batch("BEGIN EXCLUSIVE").expect("locked");
    holder
}

#[test]
fn a_locked_ledger_is_announced_at_once_and_fails_after_the_timeout() {
    let directory = tempfile::tempdir().expect("temp dir");
    let path = directory.path().join("ledger.sqlite");
    init_events(&path, "20");
    let output = directory.path().join("out");
    let run = |timeout: &str| {
        let mut command = std::process::Command::new(assert_cmd::cargo::cargo_bin("veil"));
        command
            .current_dir(workspace())
            .env_remove("VEIL_LEDGER_TIMEOUT")
            .args(["run", "configs/quickstart.toml", "--ledger"])
            .arg(&path)
            .arg("--output")
            .arg(&output)
            .args(["--ledger-timeout", timeout]);
        command
    };

    let holder = hold(&path);
    let started = std::time::Instant::now();
    let failed = run("1s").output().expect("runs");
    let elapsed = started.elapsed();
    let stderr = String::from_utf8_lossy(&failed.stderr);
    assert_eq!(failed.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.starts_with("waiting for the ledger"),
        "the wait is announced first: {stderr}"
    );
    assert!(stderr.contains("giving up after 1 s"), "{stderr}");
    assert!(stderr.contains("held by another process"), "{stderr}");
    assert!(stderr.contains("gave up after waiting 1"), "{stderr}");
    assert!(elapsed < std::time::Duration::from_secs(60), "{elapsed:?}");
    assert!(!output.exists(), "no output folder");

    // With time to wait: the run says at once that it waits, then goes on.
    let mut child = run("90s")
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("runs");
    let mut stderr = std::io::BufReader::new(child.stderr.take().expect("piped"));
    let mut first = String::new();
    let started = std::time::Instant::now();
    std::io::BufRead::read_line(&mut stderr, &mut first).expect("a line");
    assert!(first.starts_with("waiting for the ledger"), "{first}");
    assert!(first.contains("giving up after 90 s"), "{first}");
    assert!(started.elapsed() < std::time::Duration::from_secs(60));
    drop(holder);
    let mut rest = String::new();
    std::io::Read::read_to_string(&mut stderr, &mut rest).expect("the rest");
    assert!(child.wait().expect("ends").success(), "{rest}");
    assert!(output.join("release.json").exists());

    // Every ledger command takes the flag; 0 fails at once.
    let _holder = hold(&path);
    veil()
        .args(["budget", "status", "--ledger-timeout", "0", "--ledger"])
        .arg(&path)
        .assert()
        .code(1)
        .stderr(predicates::str::contains("held by another process"));
    veil()
        .args(["budget", "history", "--ledger"])
        .arg(&path)
        .env("VEIL_LEDGER_TIMEOUT", "0")
        .assert()
        .code(1);
    veil()
        .args(["budget", "status", "--ledger-timeout", "soon", "--ledger"])
        .arg(&path)
        .assert()
        .code(2)
        .stderr(predicates::str::contains("not a duration"));
}

/// A signal while the run waits for the ledger stops it with nothing charged, nothing
/// published and no reservation left behind, whether it arrives before the run reserved
/// (it exits at once) or after (it gives the reservation back before committing).
#[test]
fn a_terminated_run_charges_nothing_and_leaves_no_reservation() {
    let directory = tempfile::tempdir().expect("temp dir");
    let path = directory.path().join("ledger.sqlite");
    init_events(&path, "20");
    let output = directory.path().join("out");
    let holder = hold(&path);
    let mut child = std::process::Command::new(assert_cmd::cargo::cargo_bin("veil"))
        .current_dir(workspace())
        .env_remove("VEIL_LEDGER_TIMEOUT")
        .args(["run", "configs/quickstart.toml", "--ledger"])
        .arg(&path)
        .arg("--output")
        .arg(&output)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("runs");
    let mut stderr = std::io::BufReader::new(child.stderr.take().expect("piped"));
    let mut first = String::new();
    std::io::BufRead::read_line(&mut stderr, &mut first).expect("a line");
    assert!(first.starts_with("waiting for the ledger"), "{first}");
    let killed = std::process::Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .expect("kill runs");
    assert!(killed.success());
    std::thread::sleep(std::time::Duration::from_millis(300));
    drop(holder);
    let mut rest = String::new();
    std::io::Read::read_to_string(&mut stderr, &mut rest).expect("the rest");
    let status = child.wait().expect("ends");
    assert!(!status.success(), "{rest}");
    assert!(
        rest.contains("nothing was charged") || rest.contains("reservation back"),
        "{rest}"
    );
    assert!(!output.exists(), "nothing published: {rest}");
    let ledger = SqliteLedger::open(&path).expect("opens");
    assert!(ledger.reservations().expect("lists").is_empty());
    assert!(
        ledger
            .history()
            .expect("lists")
            .iter()
            .all(|charge| charge.state != veil_accountant::ChargeState::Committed),
        "nothing charged"
    );
}

#[test]
fn runs_that_end_without_a_release_create_no_ledger_and_no_output_folder() {
    let directory = tempfile::tempdir().expect("temp dir");
    let ledger = directory.path().join("ledger.sqlite");
    let output = directory.path().join("out");
    let text = std::fs::read_to_string(workspace().join("configs/quickstart.toml")).expect("job");
    let job = |name: &str, edit: &dyn Fn(String) -> String| {
        let path = directory.path().join(name);
        std::fs::write(&path, edit(text.clone())).expect("written");
        path
    };
    let run = |job: &std::path::Path| {
        veil()
            .current_dir(workspace())
            .arg("run")
            .arg(job)
            .arg("--ledger")
            .arg(&ledger)
            .arg("--output")
            .arg(&output)
            .assert()
    };
    // More than the registry's budget (ε = 8): refused before the ledger is created.
    let greedy = job("greedy.toml", &|text| {
        text.replace("epsilon = 1.0\n", "epsilon = 9.0\n")
    });
    run(&greedy)
        .code(3)
        .stderr(predicates::str::contains("privacy budget exceeded"));
    assert!(!ledger.exists(), "a refused run created the ledger");
    assert!(!output.exists(), "a refused run left an output folder");
    // A source that does not exist: refused before anything is read or charged.
    let missing = job("missing.toml", &|text| {
        text.replace("data/events.parquet", "data/no-such-events.parquet")
    });
    run(&missing).code(2);
    assert!(!ledger.exists(), "a failed run created the ledger");
    assert!(!output.exists());
    // A run that releases creates both, and the registry's budget with them.
    let fitting = job("fitting.toml", &|text| text);
    run(&fitting)
        .success()
        .stderr(predicates::str::contains("from the registry"));
    assert!(ledger.exists() && output.join("release.json").exists());
    // A ledger in a folder that does not exist is named before anything runs.
    veil()
        .current_dir(workspace())
        .arg("run")
        .arg(&fitting)
        .arg("--ledger")
        .arg(directory.path().join("nowhere").join("ledger.sqlite"))
        .arg("--output")
        .arg(directory.path().join("out2"))
        .assert()
        .code(2)
        .stderr(predicates::str::contains("folder"))
        .stderr(predicates::str::contains("does not exist"));
    assert!(!directory.path().join("out2").exists());
}

/// `veil budget amend` changes a total and keeps its δ unless told, the charges stay spent,
/// `history` lists the change with its note; a change of measure, a missing budget and a
/// missing note are usage errors (exit 2) that change nothing.
#[test]
fn amend_changes_the_total_and_records_why() {
    let directory = tempfile::tempdir().expect("temp dir");
    let path = crate::budget(directory.path(), "1", "1e-6");
    let mut ledger = SqliteLedger::open(&path).expect("opens");
    let key = BudgetKey {
        dataset: "events".to_string(),
        purpose: "analytics".to_string(),
    };
    let reservation = ledger
        .reserve(&key, &charge("pure:epsilon=0.75"))
        .expect("fits");
    ledger.commit(&reservation).expect("commits");
    drop(ledger);
    let amend = |extra: &[&str]| {
        veil()
            .args(["budget", "amend", "--ledger"])
            .arg(&path)
            .args(extra)
            .assert()
    };
    let events = ["--dataset", "events", "--purpose", "analytics"];
    amend(
        &[
            &events[..],
            &["--epsilon", "3", "--note", "board decision 2026-12"],
        ]
        .concat(),
    )
    .success()
    .stdout(predicates::str::contains(
        "ε = 1 (δ = 1e-6) → ε = 3 (δ = 1e-6)",
    ));
    let status = SqliteLedger::open(&path)
        .expect("opens")
        .status(&key)
        .expect("status");
    assert_eq!(
        status.total,
        veil_accountant::PrivacyBudget::Approx {
            epsilon: 3.0,
            delta: 1e-6
        }
    );
    assert!((status.spent.amount() - 0.75).abs() < 1e-4, "{status:?}");
    for (extra, says) in [
        (vec!["--rho", "1", "--note", "x"], "keeps its measure"),
        (
            vec!["--epsilon", "3", "--delta", "1e-3", "--note", "x"],
            "hand part of them back",
        ),
        (
            vec!["--epsilon", "2", "--note", "  "],
            "--note must say why",
        ),
        (vec!["--epsilon=-2", "--note", "x"], "invalid budget"),
    ] {
        amend(&[&events[..], &extra].concat())
            .code(2)
            .stderr(predicates::str::contains(says));
    }
    amend(&[
        "--dataset",
        "other",
        "--purpose",
        "analytics",
        "--epsilon",
        "2",
        "--note",
        "x",
    ])
    .code(2)
    .stderr(predicates::str::contains("no privacy budget for"));
    veil()
        .args(["budget", "history", "--ledger"])
        .arg(&path)
        .assert()
        .success()
        .stdout(predicates::str::contains("Budget totals changed"))
        .stdout(predicates::str::contains("\"board decision 2026-12\""));
    let output = veil()
        .args(["budget", "status", "--json", "--ledger"])
        .arg(&path)
        .output()
        .expect("runs");
    let json: Value = serde_json::from_slice(&output.stdout).expect("JSON");
    assert_eq!(json[0]["amendments"][0]["note"], "board decision 2026-12");
    assert_eq!(json[0]["amendments"][0]["to"]["epsilon"], 3.0);
    assert_eq!(json[0]["amendments"].as_array().map(Vec::len), Some(1));
    let status = SqliteLedger::open(&path)
        .expect("opens")
        .status(&key)
        .expect("status");
    assert!(
        (status.total.amount() - 3.0).abs() < f64::EPSILON,
        "{status:?}"
    );
}
