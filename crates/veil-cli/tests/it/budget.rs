use serde_json::Value;
use veil_accountant::{BudgetKey, BudgetLedger, Charge, ChargeItem, Component, ReleaseRecord};
use veil_ledger::SqliteLedger;

use crate::veil;

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
