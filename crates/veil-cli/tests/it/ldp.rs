//! End to end: `veil ldp protocol` → `simulate` → `aggregate` on small generated Parquet
//! files.

use std::path::{Path, PathBuf};

use predicates::prelude::*;
use veil_engine::table::{self, Column, Format, Table, Values};

use crate::veil;

const COUNTRIES: [&str; 5] = ["FR", "DE", "IT", "ES", "PL"];

fn write_parquet(path: &Path, name: &str, column: Values) {
    let table = Table::new(vec![Column::new(name, column)]).expect("a table");
    table::write(&table, path, Format::Parquet).expect("write parquet");
}

/// 4000 rows: FR 40%, DE 30%, IT 20%, ES 10%, PL never; plus 2 nulls and 3 values
/// outside the domain.
fn countries(dir: &Path) -> PathBuf {
    let mut values: Vec<Option<String>> = (0..4000)
        .map(|i| {
            Some(
                match i % 10 {
                    0..=3 => "FR",
                    4..=6 => "DE",
                    7 | 8 => "IT",
                    _ => "ES",
                }
                .to_string(),
            )
        })
        .collect();
    values.extend([
        None,
        None,
        Some("XX".into()),
        Some("ZZ".into()),
        Some("fr".into()),
    ]);
    let path = dir.join("data.parquet");
    write_parquet(&path, "country", Values::Text(values.into_iter().collect()));
    path
}

fn protocol(dir: &Path, args: &[&str]) -> PathBuf {
    let path = dir.join("protocol.toml");
    let output = veil()
        .args(["ldp", "protocol"])
        .args(args)
        .assert()
        .success()
        .get_output()
        .stdout
        .clone();
    std::fs::write(&path, output).expect("write descriptor");
    path
}

fn domain_file(dir: &Path) -> PathBuf {
    let path = dir.join("countries.txt");
    std::fs::write(&path, COUNTRIES.join("\n")).expect("write domain");
    path
}

fn read_csv(path: &Path) -> Vec<Vec<String>> {
    std::fs::read_to_string(path)
        .expect("csv written")
        .lines()
        .map(|line| line.split(',').map(String::from).collect())
        .collect()
}

fn number(cell: &str) -> f64 {
    cell.parse().expect("a number")
}

fn simulate(
    protocol: &Path,
    input: &Path,
    column: &str,
    output: &Path,
) -> assert_cmd::assert::Assert {
    veil()
        .args(["ldp", "simulate", "--protocol"])
        .arg(protocol)
        .arg("--input")
        .arg(input)
        .args(["--column", column, "--output"])
        .arg(output)
        .args(["--seed", "7"])
        .assert()
}

fn aggregate(protocol: &Path, reports: &Path, output: &Path) -> assert_cmd::assert::Assert {
    veil()
        .args(["ldp", "aggregate", "--protocol"])
        .arg(protocol)
        .arg("--reports")
        .arg(reports)
        .arg("--output")
        .arg(output)
        .assert()
}

#[test]
fn protocol_simulate_aggregate_for_every_categorical_oracle() {
    for oracle in ["grr", "oue", "olh", "hadamard", "auto"] {
        let dir = tempfile::tempdir().expect("tempdir");
        let input = countries(dir.path());
        let domain = domain_file(dir.path());
        let descriptor = protocol(
            dir.path(),
            &[
                "--oracle",
                oracle,
                "--epsilon",
                "4",
                "--domain-file",
                domain.to_str().expect("utf-8"),
            ],
        );
        let reports = dir.path().join("reports.parquet");
        simulate(&descriptor, &input, "country", &reports)
            .success()
            .stderr(predicate::str::contains("randomized 4000 of 4005 rows"))
            .stderr(predicate::str::contains(
                "skipped 2 null and 3 outside the domain",
            ))
            .stderr(predicate::str::contains("NOT private"));
        let estimates = dir.path().join("estimates.csv");
        aggregate(&descriptor, &reports, &estimates)
            .success()
            .stderr(predicate::str::contains("aggregated 4000 of 4000 reports"));
        let rows = read_csv(&estimates);
        assert_eq!(
            rows[0],
            [
                "value",
                "estimate",
                "std_error",
                "ci_low",
                "ci_high",
                "consistent_estimate"
            ]
        );
        assert_eq!(rows.len(), 1 + COUNTRIES.len(), "{oracle}");
        let truth = [1600.0, 1200.0, 800.0, 400.0, 0.0];
        let mut consistent_total = 0.0;
        for (row, (country, truth)) in rows[1..].iter().zip(COUNTRIES.iter().zip(truth)) {
            assert_eq!(row[0], *country);
            let (estimate, std_error) = (number(&row[1]), number(&row[2]));
            assert!(
                (estimate - truth).abs() < 5.0 * std_error,
                "{oracle} {country}: {estimate} vs {truth} ± {std_error}"
            );
            assert!(
                (number(&row[3]) - (estimate - 1.959_963_984_540_054 * std_error)).abs() < 1e-6
            );
            let consistent = number(&row[5]);
            assert!(consistent >= 0.0);
            consistent_total += consistent;
        }
        assert!(
            (consistent_total - 4000.0).abs() < 1e-6,
            "{oracle}: {consistent_total}"
        );
    }
}

#[test]
fn strict_simulate_refuses_values_outside_the_domain() {
    let dir = tempfile::tempdir().expect("tempdir");
    let input = countries(dir.path());
    let domain = domain_file(dir.path());
    let descriptor = protocol(
        dir.path(),
        &[
            "--oracle",
            "grr",
            "--epsilon",
            "1",
            "--domain-file",
            domain.to_str().expect("utf-8"),
        ],
    );
    let reports = dir.path().join("reports.parquet");
    veil()
        .args(["ldp", "simulate", "--strict", "--protocol"])
        .arg(&descriptor)
        .arg("--input")
        .arg(&input)
        .args(["--column", "country", "--output"])
        .arg(&reports)
        .assert()
        .code(1)
        .stderr(predicate::str::contains("row 4001"))
        .stderr(predicate::str::contains("null"));
    // A missing column is a usage error that lists the columns.
    simulate(&descriptor, &input, "nation", &reports)
        .code(2)
        .stderr(predicate::str::contains(
            "no column \"nation\" (columns: country)",
        ));
}

#[test]
fn reports_of_another_protocol_and_corrupt_reports_are_skipped_or_refused() {
    let dir = tempfile::tempdir().expect("tempdir");
    let input = countries(dir.path());
    let domain = domain_file(dir.path());
    let domain = domain.to_str().expect("utf-8");
    let mine = protocol(
        dir.path(),
        &["--oracle", "grr", "--epsilon", "1", "--domain-file", domain],
    );
    let theirs = dir.path().join("theirs.toml");
    std::fs::rename(&mine, &theirs).expect("rename");
    let mine = protocol(
        dir.path(),
        &["--oracle", "grr", "--epsilon", "2", "--domain-file", domain],
    );
    let reports = dir.path().join("reports.parquet");
    simulate(&theirs, &input, "country", &reports).success();
    let estimates = dir.path().join("estimates.csv");
    // None of the reports is under `mine`: refused (see
    // `reports_of_another_protocol_only_or_none_at_all_are_refused`).
    aggregate(&mine, &reports, &estimates)
        .code(2)
        .stderr(predicate::str::contains(
            "of 4000 reports, 4000 made under another protocol",
        ));
    veil()
        .args(["ldp", "aggregate", "--strict", "--protocol"])
        .arg(&mine)
        .arg("--reports")
        .arg(&reports)
        .arg("--output")
        .arg(&estimates)
        .assert()
        .code(1)
        .stderr(predicate::str::contains("made under protocol"));

    // Binary reports: one good, one truncated, one corrupt.
    let built = veil_ldp::Protocol::from_descriptor(
        &toml::from_str(&std::fs::read_to_string(&mine).expect("descriptor")).expect("toml"),
    )
    .expect("valid descriptor");
    let mut rng = veil_testkit::seeded_rng(1);
    let good = built
        .randomize_value("FR", &mut rng)
        .expect("in domain")
        .encode();
    let mut corrupt = good.clone();
    corrupt[9] = 42;
    let binary = dir.path().join("binary.parquet");
    let column = Values::Binary(vec![
        Some(good.clone()),
        Some(good[..good.len() - 1].to_vec()),
        Some(corrupt),
    ]);
    write_parquet(&binary, "report", column);
    aggregate(&mine, &binary, &estimates)
        .success()
        .stderr(predicate::str::contains("aggregated 1 of 3 reports"))
        .stderr(predicate::str::contains("2 corrupt"));
}

#[test]
fn edited_descriptors_are_refused() {
    let dir = tempfile::tempdir().expect("tempdir");
    let input = countries(dir.path());
    let descriptor = protocol(
        dir.path(),
        &["--oracle", "grr", "--epsilon", "1", "--domain-size", "5"],
    );
    let text = std::fs::read_to_string(&descriptor).expect("descriptor");
    let edited = text.replace("epsilon = 1.0", "epsilon = 0.5");
    std::fs::write(&descriptor, edited).expect("write");
    simulate(
        &descriptor,
        &input,
        "country",
        &dir.path().join("r.parquet"),
    )
    .code(2)
    .stderr(predicate::str::contains("regenerate the descriptor"));
}

#[test]
fn numeric_protocols_estimate_the_mean_and_count_clamped_values() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut values: Vec<Option<f64>> = (0..5000).map(|i| Some(f64::from(i % 101))).collect();
    values.extend([Some(250.0), Some(-3.0), None]);
    let input = dir.path().join("numbers.parquet");
    write_parquet(&input, "age", Values::F64(values));
    for oracle in ["duchi", "piecewise", "hybrid"] {
        let descriptor = protocol(
            dir.path(),
            &["--oracle", oracle, "--epsilon", "2", "--numeric", "0,100"],
        );
        let reports = dir.path().join("reports.parquet");
        simulate(&descriptor, &input, "age", &reports)
            .success()
            .stderr(predicate::str::contains("randomized 5002 of 5003 rows"))
            .stderr(predicate::str::contains("clamped 2 into the range"));
        let estimates = dir.path().join("estimates.csv");
        aggregate(&descriptor, &reports, &estimates).success();
        let rows = read_csv(&estimates);
        assert_eq!(rows.len(), 2);
        assert_eq!(rows[1][0], "mean");
        let (mean, std_error) = (number(&rows[1][1]), number(&rows[1][2]));
        let truth = (5000.0 * 50.0 + 100.0) / 5002.0;
        assert!(
            (mean - truth).abs() < 5.0 * std_error,
            "{oracle}: {mean} vs {truth}"
        );
        assert!((0.0..=100.0).contains(&number(&rows[1][5])));
    }
}

#[test]
fn protocol_refuses_bad_parameters() {
    veil()
        .args(["ldp", "protocol", "--epsilon", "-1", "--domain-size", "10"])
        .assert()
        .code(2)
        .stderr(predicate::str::contains("epsilon"));
    veil()
        .args(["ldp", "protocol", "--epsilon", "1", "--domain-size", "1"])
        .assert()
        .code(2)
        .stderr(predicate::str::contains("at least 2 values"));
    veil()
        .args([
            "ldp",
            "protocol",
            "--oracle",
            "duchi",
            "--epsilon",
            "1",
            "--domain-size",
            "10",
        ])
        .assert()
        .code(2)
        .stderr(predicate::str::contains("numeric range"));
    veil()
        .args(["ldp", "protocol", "--epsilon", "1"])
        .assert()
        .code(2)
        .stderr(predicate::str::contains("give the domain"));
}

#[test]
fn example_config_is_a_valid_descriptor() {
    let config = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../configs/ldp-country.toml");
    let text = std::fs::read_to_string(&config).expect("configs/ldp-country.toml exists");
    let descriptor: veil_ldp::ProtocolDescriptor = toml::from_str(&text).expect("valid TOML");
    let built = veil_ldp::Protocol::from_descriptor(&descriptor).expect("valid descriptor");
    assert_eq!(built.domain_size(), Some(10));
    let dir = tempfile::tempdir().expect("tempdir");
    let input = countries(dir.path());
    simulate(&config, &input, "country", &dir.path().join("r.parquet"))
        .success()
        .stderr(predicate::str::contains("randomized 4000"));
}

/// The protocol a descriptor file describes.
fn load(descriptor: &Path) -> veil_ldp::Protocol {
    veil_ldp::Protocol::from_descriptor(
        &toml::from_str(&std::fs::read_to_string(descriptor).expect("descriptor")).expect("toml"),
    )
    .expect("valid descriptor")
}

/// A file of encoded reports (one binary column `report`).
fn binary_reports(path: &Path, reports: Vec<Vec<u8>>) {
    write_parquet(
        path,
        "report",
        Values::Binary(reports.into_iter().map(Some).collect()),
    );
}

#[test]
fn reports_of_another_protocol_only_or_none_at_all_are_refused() {
    let dir = tempfile::tempdir().expect("tempdir");
    let domain = domain_file(dir.path());
    let domain = domain.to_str().expect("utf-8");
    let theirs = protocol(
        dir.path(),
        &["--oracle", "grr", "--epsilon", "1", "--domain-file", domain],
    );
    let theirs_path = dir.path().join("theirs.toml");
    std::fs::rename(&theirs, &theirs_path).expect("rename");
    let mine = protocol(
        dir.path(),
        &["--oracle", "grr", "--epsilon", "2", "--domain-file", domain],
    );
    let (theirs, mine_built) = (load(&theirs_path), load(&mine));
    let mut rng = veil_testkit::seeded_rng(3);
    let encoded = |built: &veil_ldp::Protocol, rng: &mut _| {
        built
            .randomize_value("DE", rng)
            .expect("in domain")
            .encode()
    };
    let estimates = dir.path().join("estimates.csv");
    std::fs::write(&estimates, "old estimates").expect("written");

    // Reports of another ε only: exit 2, the count by reason and by the id they carry,
    // and no estimates (the old file is left as it was).
    let other = dir.path().join("other.parquet");
    binary_reports(
        &other,
        (0..30).map(|_| encoded(&theirs, &mut rng)).collect(),
    );
    aggregate(&mine, &other, &estimates)
        .code(2)
        .stderr(predicate::str::contains(format!(
            "no report in {} was made under the protocol {} (id {:016x})",
            other.display(),
            mine.display(),
            mine_built.id().short()
        )))
        .stderr(predicate::str::contains(format!(
            "of 30 reports, 30 made under another protocol (30 under {:016x})",
            theirs.id().short()
        )));
    assert_eq!(
        std::fs::read_to_string(&estimates).expect("kept"),
        "old estimates"
    );

    // An empty file, in the columnar schema: exit 2.
    let empty = dir.path().join("empty.parquet");
    let table = Table::new(vec![
        Column::new("protocol_id", Values::U64(Vec::new())),
        Column::new("value", Values::U32(Vec::new())),
    ])
    .expect("a table");
    table::write(&table, &empty, Format::Parquet).expect("written");
    aggregate(&mine, &empty, &estimates)
        .code(2)
        .stderr(predicate::str::contains("holds no reports"));
    assert_eq!(
        std::fs::read_to_string(&estimates).expect("kept"),
        "old estimates"
    );

    // Some of each: estimates from the matching ones, and a loud warning with the counts.
    let mixed = dir.path().join("mixed.parquet");
    let mut reports: Vec<Vec<u8>> = (0..40).map(|_| encoded(&mine_built, &mut rng)).collect();
    reports.extend((0..25).map(|_| encoded(&theirs, &mut rng)));
    let mut corrupt = encoded(&mine_built, &mut rng);
    corrupt[9] = 42;
    reports.push(corrupt);
    binary_reports(&mixed, reports);
    aggregate(&mine, &mixed, &estimates)
        .success()
        .stderr(predicate::str::contains(format!(
            "warning: 26 of 66 reports in {} were NOT counted: 25 made under another protocol (25 under {:016x}) and 1 corrupt (the first unreadable one, report 66: ",
            mixed.display(),
            theirs.id().short()
        )))
        .stderr(predicate::str::contains("aggregated 40 of 66 reports"));
    assert_eq!(read_csv(&estimates).len(), 1 + COUNTRIES.len());
}

#[test]
fn no_ldp_command_writes_over_its_inputs() {
    let dir = tempfile::tempdir().expect("tempdir");
    let input = countries(dir.path());
    let domain = domain_file(dir.path());
    let descriptor = protocol(
        dir.path(),
        &[
            "--oracle",
            "grr",
            "--epsilon",
            "1",
            "--domain-file",
            domain.to_str().expect("utf-8"),
        ],
    );
    let reports = dir.path().join("reports.parquet");
    simulate(&descriptor, &input, "country", &reports).success();
    let before = |path: &Path| std::fs::read(path).expect("readable");
    let (reports_bytes, input_bytes, descriptor_bytes, domain_bytes) = (
        before(&reports),
        before(&input),
        before(&descriptor),
        before(&domain),
    );
    // The same file by another name.
    let dotted = dir.path().join(".").join("reports.parquet");
    aggregate(&descriptor, &reports, &dotted)
        .code(2)
        .stderr(predicate::str::contains(format!(
            "--output {} is --reports {}",
            dotted.display(),
            reports.display()
        )));
    aggregate(&descriptor, &reports, &descriptor)
        .code(2)
        .stderr(predicate::str::contains("is --protocol"));
    // Refused before anything is read: the protocol need not even exist.
    aggregate(&dir.path().join("missing.toml"), &reports, &reports)
        .code(2)
        .stderr(predicate::str::contains(
            "Veil never writes over its inputs",
        ));
    simulate(&descriptor, &input, "country", &input)
        .code(2)
        .stderr(predicate::str::contains("is --input"));
    simulate(&descriptor, &input, "country", &descriptor)
        .code(2)
        .stderr(predicate::str::contains("is --protocol"));
    veil()
        .args(["ldp", "protocol", "--epsilon", "1", "--domain-file"])
        .arg(&domain)
        .arg("--output")
        .arg(&domain)
        .assert()
        .code(2)
        .stderr(predicate::str::contains("is --domain-file"));
    assert_eq!(before(&reports), reports_bytes);
    assert_eq!(before(&input), input_bytes);
    assert_eq!(before(&descriptor), descriptor_bytes);
    assert_eq!(before(&domain), domain_bytes);
    // Writing elsewhere works, and leaves no temporary file behind.
    aggregate(&descriptor, &reports, &dir.path().join("estimates.csv")).success();
    let hidden: Vec<String> = std::fs::read_dir(dir.path())
        .expect("listed")
        .map(|entry| {
            entry
                .expect("entry")
                .file_name()
                .to_string_lossy()
                .to_string()
        })
        .filter(|name| name.starts_with('.'))
        .collect();
    assert!(hidden.is_empty(), "{hidden:?}");
}

#[test]
fn ldp_messages_are_sentences_without_debug_text() {
    let dir = tempfile::tempdir().expect("tempdir");
    let input = countries(dir.path());
    let descriptor = protocol(
        dir.path(),
        &["--oracle", "grr", "--epsilon", "1", "--domain-size", "5"],
    );
    let text = std::fs::read_to_string(&descriptor).expect("descriptor");
    std::fs::write(&descriptor, text.replace("epsilon = 1.0", "epsilon = 0.5")).expect("write");
    simulate(
        &descriptor,
        &input,
        "country",
        &dir.path().join("r.parquet"),
    )
    .code(2)
    .stderr(predicate::str::is_match(
        r"derived\.keep: is [0-9]+/2\^64, but epsilon and the domain give [0-9]+/2\^64; regenerate the descriptor",
    ).expect("a pattern"))
    .stderr(predicate::str::contains("Some(").not())
    .stderr(predicate::str::contains("Prob64").not());

    // A report column of another type: the message says which type it should have.
    let descriptor = protocol(
        dir.path(),
        &["--oracle", "grr", "--epsilon", "1", "--domain-size", "5"],
    );
    let reports = dir.path().join("typed.parquet");
    let table = Table::new(vec![
        Column::new("protocol_id", Values::U64(vec![Some(1)])),
        Column::new("value", Values::I64(vec![Some(1)])),
    ])
    .expect("a table");
    table::write(&table, &reports, Format::Parquet).expect("written");
    aggregate(&descriptor, &reports, &dir.path().join("e.csv"))
        .code(2)
        .stderr(predicate::str::contains(
            "column \"value\" of ",
        ))
        .stderr(predicate::str::contains(
            "has type 64-bit integer, not the report schema's 32-bit unsigned integer: reports are written by `veil ldp simulate`",
        ));
}

#[test]
fn a_json_descriptor_is_the_same_protocol_as_the_toml_one() {
    let dir = tempfile::tempdir().expect("tempdir");
    let input = countries(dir.path());
    let domain = domain_file(dir.path());
    let toml_path = protocol(
        dir.path(),
        &[
            "--oracle",
            "olh",
            "--epsilon",
            "2",
            "--domain-file",
            domain.to_str().expect("utf-8"),
        ],
    );
    let json_path = dir.path().join("protocol.json");
    veil()
        .args(["ldp", "protocol", "--json", "--output"])
        .arg(&json_path)
        .args(["--oracle", "olh", "--epsilon", "2", "--domain-file"])
        .arg(&domain)
        .assert()
        .success();
    let json = std::fs::read_to_string(&json_path).expect("written");
    let descriptor: veil_ldp::ProtocolDescriptor = serde_json::from_str(&json).expect("JSON");
    assert_eq!(
        veil_ldp::Protocol::from_descriptor(&descriptor)
            .expect("valid")
            .id(),
        load(&toml_path).id()
    );
    // Reports made under the JSON form aggregate under the TOML form.
    let reports = dir.path().join("reports.parquet");
    simulate(&json_path, &input, "country", &reports).success();
    aggregate(&toml_path, &reports, &dir.path().join("e.csv"))
        .success()
        .stderr(predicate::str::contains("aggregated 4000 of 4000 reports"));
}
