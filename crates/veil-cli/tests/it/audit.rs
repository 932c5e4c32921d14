//! `veil audit` end to end: the JSON it prints, its verdicts and exit codes.

use serde_json::Value;

use crate::{veil, workspace};

fn audit(arguments: &[&str]) -> (Option<i32>, Value) {
    let output = veil()
        .current_dir(workspace())
        .arg("audit")
        .args(arguments)
        .output()
        .unwrap();
    let json = serde_json::from_slice(&output.stdout).unwrap_or_else(|error| {
        panic!(
            "{error}: {}{}",
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        )
    });
    (output.status.code(), json)
}

#[test]
fn mechanism_audit_prints_the_verdict_as_json() {
    let (code, json) = audit(&[
        "mechanism",
        "--mechanism",
        "discrete-laplace",
        "--epsilon",
        "1",
        "--trials",
        "50000",
        "--seed",
        "1",
    ]);
    assert_eq!(code, Some(0), "{json}");
    assert_eq!(json["claimed_epsilon"], 1.0);
    assert_eq!(json["verdict"], "pass");
    assert_eq!(json["confidence"], 0.99);
    let bound = json["empirical_epsilon_lower_bound"].as_f64().unwrap();
    assert!(bound > 0.5 && bound <= 1.0, "{json}");
}

#[test]
fn every_mechanism_passes_and_the_same_seed_gives_the_same_audit() {
    let arguments = [
        "mechanism",
        "--mechanism",
        "all",
        "--epsilon",
        "1",
        "--delta",
        "1e-6",
        "--trials",
        "20000",
        "--seed",
        "3",
    ];
    let (code, first) = audit(&arguments);
    assert_eq!(code, Some(0), "{first}");
    assert_eq!(
        first["audits"].as_array().unwrap().len(),
        12,
        "every mechanism, the count thresholds (alone and joint), the quantile and the joint draws (plain, staircase and plateau) included"
    );
    let (_, second) = audit(&arguments);
    assert_eq!(first, second);
}

#[test]
fn ldp_audit_takes_a_descriptor_or_every_oracle() {
    let (code, json) = audit(&[
        "ldp",
        "--protocol",
        "configs/ldp-country.toml",
        "--trials",
        "50000",
        "--seed",
        "2",
    ]);
    assert_eq!(code, Some(0), "{json}");
    assert_eq!(json["claimed_epsilon"], 2.0);
    assert!(
        json["empirical_epsilon_lower_bound"].as_f64().unwrap() > 1.5,
        "{json}"
    );
    let (code, json) = audit(&[
        "ldp",
        "--protocol",
        "all",
        "--trials",
        "20000",
        "--seed",
        "2",
    ]);
    assert_eq!(code, Some(0), "{json}");
    assert_eq!(json["audits"].as_array().unwrap().len(), 8);
}

#[test]
fn job_audit_passes_the_quickstart() {
    let (code, json) = audit(&[
        "job",
        "configs/quickstart.toml",
        "--trials",
        "200",
        "--seed",
        "4",
    ]);
    assert_eq!(code, Some(0), "{json}");
    assert_eq!(json["verdict"], "pass");
    let cells = json["cells"].as_array().unwrap();
    for pair in ["add-unit", "add-unit-new-group", "remove-heaviest-unit"] {
        assert!(
            cells.iter().any(|cell| cell["pair"] == pair),
            "no cell of {pair}: {json}"
        );
    }
    assert!(cells.iter().any(|cell| cell["output"] == "presence"));
    // Nothing is charged or written: the quickstart's ledger and output are untouched.
    assert!(json["note"].as_str().unwrap().contains("never released"));
    assert!(json["notice"].as_str().unwrap().starts_with("NOT PRIVATE"));
}

#[test]
fn an_unknown_mechanism_is_a_usage_error() {
    veil()
        .args([
            "audit",
            "mechanism",
            "--mechanism",
            "fourier",
            "--epsilon",
            "1",
        ])
        .assert()
        .code(2)
        .stderr(predicates::str::contains(
            "--mechanism: \"fourier\" is not one of",
        ));
}
